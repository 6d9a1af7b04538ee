// Turns raw driver failures into StorageError so callers never see better-sqlite3 or Kysely errors.
import { ErrorCode, StorageError, SwitchboardError } from '../protocol/errors.js';

/**
 * Wraps `err` as a StorageError naming the operation; the driver error stays in `cause` for
 * logs, while the message stays generic because it may reach a peer.
 */
export function toStorageError(operation: string, err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  return new StorageError(ErrorCode.STORAGE, `storage: ${operation} failed`, { cause: err });
}

/**
 * Runs one database operation, rethrowing any failure as a StorageError.
 *
 * @example
 * return guard('users.findById', () => db.selectFrom('users')...executeTakeFirst());
 */
export async function guard<T>(operation: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toStorageError(operation, err);
  }
}

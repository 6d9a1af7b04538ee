// Turns raw driver failures into StorageError with a code callers can act on: CONFLICT, RETRYABLE or STORAGE.
import { ErrorCode, StorageError, SwitchboardError } from '../protocol/errors.js';

// Both drivers put their code on `err.code`: better-sqlite3 the extended result code name
// (SQLITE_CONSTRAINT_UNIQUE), pg the five-character SQLSTATE (23505).
const CONFLICT_CODES: ReadonlySet<string> = new Set([
  '23505', // PostgreSQL unique_violation
  'SQLITE_CONSTRAINT_UNIQUE',
  'SQLITE_CONSTRAINT_PRIMARYKEY',
]);
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  '40001', // PostgreSQL serialization_failure
  '40P01', // PostgreSQL deadlock_detected
  'SQLITE_BUSY', // another connection held the lock past busy_timeout
  'SQLITE_BUSY_SNAPSHOT', // WAL: a read transaction cannot be upgraded to a write
  'SQLITE_BUSY_RECOVERY',
  'SQLITE_BUSY_TIMEOUT',
]);
/** How far down `cause` chains to look for the driver's error (Kysely and pg may wrap it). */
const MAX_CAUSE_DEPTH = 4;

/** The code for a driver error: CONFLICT, RETRYABLE, or STORAGE for everything else. */
export function storageCodeOf(err: unknown): ErrorCode {
  let current: unknown = err;
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (CONFLICT_CODES.has(code)) return ErrorCode.CONFLICT;
      if (RETRYABLE_CODES.has(code)) return ErrorCode.RETRYABLE;
    }
    current = current.cause;
  }
  return ErrorCode.STORAGE;
}

/**
 * Wraps `err` as a StorageError naming the operation, coded by {@link storageCodeOf}; the
 * driver error stays in `cause` for logs, while the message stays generic because it may
 * reach a peer. A SwitchboardError passes through unchanged.
 */
export function toStorageError(operation: string, err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  const code = storageCodeOf(err);
  const message =
    code === ErrorCode.CONFLICT
      ? `storage: ${operation} conflicts with an existing row`
      : code === ErrorCode.RETRYABLE
        ? `storage: ${operation} lost to a concurrent transaction; try again`
        : `storage: ${operation} failed`;
  return new StorageError(code, message, { cause: err });
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

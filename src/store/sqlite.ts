// Opens the SQLite store: one better-sqlite3 connection, WAL, pragmas, migrations, then the repositories.
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { openMigratedStore } from './kysely-repositories.js';
import type { Store } from './repositories.js';
import type { Database } from './schema.js';
import { toStorageError } from './storage-error.js';

/** How long a statement waits for another process's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000; // ms

export interface SqliteStoreOptions {
  /** Database file, created if missing (its directory must exist), or ':memory:'. */
  readonly file: string;
  /**
   * How long a statement waits for another process's lock before it fails RETRYABLE, in ms
   * (0 … 60 000). Default 5 000.
   */
  readonly busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) the database file, applies pending migrations and returns the
 * Store. better-sqlite3 is synchronous, so queries run on the event loop; Kysely serialises
 * them over the one connection, which also makes transactions exclusive within this process.
 *
 * @throws StorageError if the file cannot be opened or a migration fails
 * @example
 * const store = await openSqliteStore({ file: path.join(dataDir, 'switchboard.db') });
 * try { await store.users.count(); } finally { await store.close(); }
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  if (typeof options?.file !== 'string' || options.file === '') {
    throw new TypeError('openSqliteStore: options.file must be a non-empty path or ":memory:"');
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0 || busyTimeoutMs > 60_000)
    throw new TypeError(
      'openSqliteStore: options.busyTimeoutMs must be a whole number from 0 to 60000',
    );
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    sqlite = new BetterSqlite3(options.file);
    // busy_timeout first so the switch to WAL waits out another process instead of failing.
    sqlite.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // WAL lets readers run during a write. FULL syncs the WAL at every commit, so what the relay
    // acknowledged (a transfer settled, a message stored) survives power loss, not only a crash
    // (NORMAL risks the last commits then). It costs one fsync per write transaction (~0.6 ms
    // on the CI machine's disk). ':memory:' stays in 'memory' mode, which is fine.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    // Off by default in SQLite, and per connection: without it ON DELETE CASCADE is ignored.
    sqlite.pragma('foreign_keys = ON');
  } catch (err) {
    sqlite?.close();
    throw toStorageError('open', err);
  }

  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return openMigratedStore(db);
}

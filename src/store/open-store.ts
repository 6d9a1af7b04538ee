// Opens the store a database location names: a postgres:// URL for PostgreSQL, else a SQLite file.
import { isPostgresUrl } from './database-url.js';
import type { Store } from './repositories.js';
import { openSqliteStore } from './sqlite.js';

export interface StoreOptions {
  /**
   * `postgres://…` or `postgresql://…`: that PostgreSQL database (see openPostgresStore).
   * Anything else: a SQLite database file, created if missing, or ':memory:'.
   */
  readonly database: string;
}

/**
 * Opens the store, applying pending migrations.
 *
 * @throws StorageError if the database cannot be opened, reached or migrated
 * @example
 * const store = await openStore({ database: 'postgres://relay@db.internal/switchboard' });
 * const local = await openStore({ database: join(dataDir, 'switchboard.db') });
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  if (!isPostgresUrl(options.database)) return openSqliteStore({ file: options.database });
  // Loaded only when asked for, so a SQLite relay and the client commands never load pg.
  const { openPostgresStore } = await import('./postgres.js');
  return openPostgresStore({ url: options.database });
}

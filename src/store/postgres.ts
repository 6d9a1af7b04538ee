// Opens the PostgreSQL store: a pg pool whose int8 values read as numbers, migrations, then the repositories.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { openMigratedStore } from './kysely-repositories.js';
import type { Store } from './repositories.js';
import type { Database } from './schema.js';
import { isPostgresUrl } from './database-url.js';

/** Connections the pool may hold open at once. */
const DEFAULT_MAX_CONNECTIONS = 10;
/** How long a query waits for a connection (a new one, or a free one from the pool). */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000; // ms
/** An idle pooled connection is closed after this long. */
const IDLE_TIMEOUT_MS = 30_000; // ms
/** PostgreSQL's type OID of int8 (bigint), the type of every epoch-ms column and of count(*). */
const INT8_OID = 20;

export interface PostgresStoreOptions {
  /**
   * `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` (libpq-style parameters such as
   * `host=/run/postgresql` or `sslmode=require` are accepted). A missing password is looked up
   * in PGPASSWORD, then ~/.pgpass. The URL is never logged or put in an error message.
   */
  readonly url: string;
  /** Most connections in the pool, 1 … 1000. Default 10. */
  readonly maxConnections?: number;
  /** How long a query may wait for a connection, in ms (1 … 600 000). Default 10 000. */
  readonly connectTimeoutMs?: number;
}

/**
 * int8 as a JS number rather than pg's default string. Every int8 here is an epoch-ms time, an
 * id or a count, all far below 2^53, so no precision is lost. Scoped to this pool: the global
 * `pg.types` registry, which other code in the process may rely on, is left alone.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

function checkedInt(
  value: number | undefined,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max)
    throw new TypeError(
      `openPostgresStore: options.${name} must be a whole number from ${min} to ${max}`,
    );
  return value;
}

/**
 * Connects a pool to the database, applies pending migrations (the role needs the right to
 * create tables in the database's `public` schema) and returns the Store.
 *
 * @throws TypeError for a URL that is not `postgres://` or `postgresql://`, or bad limits
 * @throws StorageError if the server cannot be reached or a migration fails
 * @example
 * const store = await openPostgresStore({ url: 'postgres://relay@db.internal/switchboard' });
 * try { await store.users.count(); } finally { await store.close(); }
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  if (typeof options?.url !== 'string' || !isPostgresUrl(options.url))
    throw new TypeError(
      'openPostgresStore: options.url must start with postgres:// or postgresql://',
    );
  const max = checkedInt(
    options.maxConnections,
    'maxConnections',
    1,
    1000,
    DEFAULT_MAX_CONNECTIONS,
  );
  const connectionTimeoutMillis = checkedInt(
    options.connectTimeoutMs,
    'connectTimeoutMs',
    1,
    600_000,
    DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const pool = new pg.Pool({
    connectionString: options.url,
    max,
    connectionTimeoutMillis,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    application_name: 'switchboard',
    types,
  });
  // An idle connection that the server drops (restart, idle timeout) is an 'error' on the
  // pool; unhandled, it would end the process. pg discards that connection and the next
  // query opens a new one, whose failure, if any, reaches the caller as a StorageError.
  pool.on('error', () => undefined);

  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return openMigratedStore(db);
}

// The repositories over any Kysely<Database>: dialect-neutral SQL that runs on SQLite and PostgreSQL.
import type { Kysely, Selectable } from 'kysely';
import { ErrorCode, StorageError } from '../protocol/errors.js';
import { dialectOf, migrateToLatest } from './migrations.js';
import {
  ISOLATION_LEVELS,
  MAX_TRANSACTION_RETRIES,
  type DeviceRow,
  type DevicesRepo,
  type InviteRow,
  type InvitesRepo,
  type RemoteSessionRow,
  type RegisterRow,
  type RemoteSessionsRepo,
  type SessionLease,
  type Store,
  type StoreRepositories,
  type TokenRow,
  type TokensRepo,
  type TransactionOptions,
  type UserRow,
  type UsersRepo,
  type UserSummary,
} from './repositories.js';
import type {
  AuthTokensTable,
  Database,
  DevicesTable,
  InvitesTable,
  RemoteSessionsTable,
  UsersTable,
} from './schema.js';
import { guard, toStorageError } from './storage-error.js';
import { KyselyAuditRepo } from './audit-repository.js';
import { KyselyPrekeysRepo } from './prekey-repository.js';
import { KyselyMailboxRepo } from './mailbox-repository.js';
import { KyselyBroadcastsRepo } from './broadcast-repository.js';
import { KyselyLedgerRepo } from './ledger-repository.js';

// Conflicts are resolved with INSERT ... ON CONFLICT (SQLite >= 3.24, PostgreSQL >= 9.5)
// rather than by catching constraint errors: it is atomic under concurrency on both, and
// needs no parsing of driver-specific error codes. RETURNING needs SQLite >= 3.35.

/** Pause before the first retry of a transaction; it doubles per retry. */
const RETRY_BASE_MS = 5; // ms
/** Longest pause between two tries of a transaction. */
const RETRY_MAX_MS = 100; // ms

/**
 * Wraps a migrated database in a Store. The Store owns `db`: `close()` destroys it.
 *
 * @example
 * const store = createKyselyStore(new Kysely<Database>({ dialect }));
 */
/**
 * Brings the database's schema up to date and wraps it as a Store; on a failed migration the
 * connection is closed and a StorageError thrown. Both dialects open through here.
 */
export async function openMigratedStore(db: Kysely<Database>): Promise<Store> {
  try {
    await migrateToLatest(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw toStorageError('migrate', err);
  }
  return createKyselyStore(db);
}

export function createKyselyStore(db: Kysely<Database>): Store {
  const dialect = dialectOf(db as Kysely<unknown>);
  let closing: Promise<void> | undefined;

  /** One try: errors from `fn` pass through untouched; begin/commit failures become StorageError. */
  async function once<T>(
    fn: (store: StoreRepositories) => Promise<T>,
    isolation: TransactionOptions['isolation'],
  ): Promise<T> {
    let fnFailed = false;
    // SQLite has one connection and one writer: every transaction is serializable already,
    // and its driver has no isolation levels to set.
    const builder =
      dialect === 'postgres' && isolation !== undefined
        ? db.transaction().setIsolationLevel(isolation)
        : db.transaction();
    try {
      return await builder.execute(async (trx) => {
        try {
          return await fn(createRepositories(trx));
        } catch (err) {
          fnFailed = true;
          throw err;
        }
      });
    } catch (err) {
      if (fnFailed) throw err;
      throw toStorageError('transaction', err);
    }
  }

  return Object.freeze({
    ...createRepositories(db),
    dialect,
    async transaction<T>(
      fn: (store: StoreRepositories) => Promise<T>,
      options: TransactionOptions = {},
    ): Promise<T> {
      const { isolation, retries = 0 } = options;
      if (isolation !== undefined && !ISOLATION_LEVELS.includes(isolation))
        throw new TypeError(`transaction: isolation must be one of ${ISOLATION_LEVELS.join(', ')}`);
      if (!Number.isInteger(retries) || retries < 0 || retries > MAX_TRANSACTION_RETRIES)
        throw new TypeError(
          `transaction: retries must be a whole number from 0 to ${MAX_TRANSACTION_RETRIES}`,
        );
      let lastError: unknown;
      for (let attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) {
          // Jittered so two transactions that collided do not collide again in lockstep.
          const pause = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
          await new Promise((resolve) =>
            setTimeout(resolve, pause / 2 + Math.random() * (pause / 2)),
          );
        }
        try {
          return await once(fn, isolation);
        } catch (err) {
          if (!(err instanceof StorageError && err.code === ErrorCode.RETRYABLE)) throw err;
          lastError = err;
        }
      }
      throw lastError;
    },
    close(): Promise<void> {
      closing ??= guard('close', () => db.destroy());
      return closing;
    },
  });
}

/** Repositories issuing their queries through `db`, which may be a transaction. */
export function createRepositories(db: Kysely<Database>): StoreRepositories {
  return Object.freeze({
    users: new KyselyUsersRepo(db),
    devices: new KyselyDevicesRepo(db),
    tokens: new KyselyTokensRepo(db),
    remoteSessions: new KyselyRemoteSessionsRepo(db),
    invites: new KyselyInvitesRepo(db),
    audit: new KyselyAuditRepo(db),
    prekeys: new KyselyPrekeysRepo(db),
    mailbox: new KyselyMailboxRepo(db),
    broadcasts: new KyselyBroadcastsRepo(db),
    ledger: new KyselyLedgerRepo(db),
  });
}

/** SQLite's default cap on bound parameters is 32 766; stay far below it per statement. */
const IN_CHUNK = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += IN_CHUNK) out.push(items.slice(i, i + IN_CHUNK));
  return out;
}

class KyselyUsersRepo implements UsersRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  create(name: string, passwordHash: string, now: number): Promise<UserRow | undefined> {
    return guard('users.create', async () => {
      const row = await this.#db
        .insertInto('users')
        .values({ name, password_hash: passwordHash, created_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .returningAll()
        .executeTakeFirst();
      return row && toUser(row);
    });
  }

  findByName(name: string): Promise<UserRow | undefined> {
    return guard('users.findByName', async () => {
      const row = await this.#db
        .selectFrom('users')
        .selectAll()
        .where('name', '=', name)
        .executeTakeFirst();
      return row && toUser(row);
    });
  }

  findById(id: number): Promise<UserRow | undefined> {
    return guard('users.findById', async () => {
      const row = await this.#db
        .selectFrom('users')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row && toUser(row);
    });
  }

  /** Users with their devices' latest lastSeenAt, ordered by name; callers add WHERE/LIMIT. */
  #summaries() {
    return (
      this.#db
        .selectFrom('users')
        .leftJoin('devices', 'devices.user_id', 'users.id')
        .select((eb) => [
          'users.id',
          'users.name',
          'users.created_at',
          eb.fn.max('devices.last_seen_at').as('last_seen_at'),
        ])
        // PostgreSQL wants every selected plain column grouped, not just the key.
        .groupBy(['users.id', 'users.name', 'users.created_at'])
        .orderBy('users.name')
    );
  }

  listPage(after: string | undefined, limit: number): Promise<UserSummary[]> {
    return guard('users.listPage', async () => {
      let query = this.#summaries().limit(limit);
      if (after !== undefined) query = query.where('users.name', '>', after);
      return (await query.execute()).map(toUserSummary);
    });
  }

  summariesByIds(ids: readonly number[]): Promise<UserSummary[]> {
    return guard('users.summariesByIds', async () => {
      const out: UserSummary[] = [];
      for (const part of chunks([...new Set(ids)])) {
        const rows = await this.#summaries().where('users.id', 'in', part).execute();
        out.push(...rows.map(toUserSummary));
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  idsByNames(names: readonly string[]): Promise<number[]> {
    return guard('users.idsByNames', async () => {
      const out: number[] = [];
      for (const part of chunks([...new Set(names)])) {
        const rows = await this.#db
          .selectFrom('users')
          .select('id')
          .where('name', 'in', part)
          .execute();
        out.push(...rows.map((r) => r.id));
      }
      return out;
    });
  }

  setPasswordHash(id: number, passwordHash: string): Promise<boolean> {
    return guard('users.setPasswordHash', async () => {
      const result = await this.#db
        .updateTable('users')
        .set({ password_hash: passwordHash })
        .where('id', '=', id)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  delete(id: number): Promise<boolean> {
    return guard('users.delete', async () => {
      const result = await this.#db.deleteFrom('users').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }

  count(): Promise<number> {
    return guard('users.count', async () => {
      const { n } = await this.#db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(n);
    });
  }
}

class KyselyDevicesRepo implements DevicesRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  upsert(
    userId: number,
    publicKey: string,
    fingerprint: string,
    name: string,
    now: number,
  ): Promise<DeviceRow | undefined> {
    return guard('devices.upsert', async () => {
      // The WHERE on the update makes a key owned by someone else a no-op returning no row,
      // so "taken by another user" is decided atomically with the insert.
      const row = await this.#db
        .insertInto('devices')
        .values({
          user_id: userId,
          public_key: publicKey,
          fingerprint,
          name,
          created_at: now,
          last_seen_at: null,
        })
        .onConflict((oc) =>
          oc
            .column('public_key')
            .doUpdateSet((eb) => ({ name: eb.ref('excluded.name') }))
            .whereRef('devices.user_id', '=', 'excluded.user_id'),
        )
        .returningAll()
        .executeTakeFirst();
      return row && toDevice(row);
    });
  }

  findById(id: number): Promise<DeviceRow | undefined> {
    return guard('devices.findById', async () => {
      const row = await this.#db
        .selectFrom('devices')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row && toDevice(row);
    });
  }

  findByPublicKey(publicKey: string): Promise<DeviceRow | undefined> {
    return guard('devices.findByPublicKey', async () => {
      const row = await this.#db
        .selectFrom('devices')
        .selectAll()
        .where('public_key', '=', publicKey)
        .executeTakeFirst();
      return row && toDevice(row);
    });
  }

  listForUser(userId: number): Promise<DeviceRow[]> {
    return guard('devices.listForUser', async () => {
      const rows = await this.#db
        .selectFrom('devices')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('id')
        .execute();
      return rows.map(toDevice);
    });
  }

  touch(id: number, now: number): Promise<void> {
    return guard('devices.touch', async () => {
      await this.#db
        .updateTable('devices')
        .set({ last_seen_at: now })
        .where('id', '=', id)
        .execute();
    });
  }

  revoke(id: number, now: number): Promise<boolean> {
    return guard('devices.revoke', async () => {
      const result = await this.#db
        .updateTable('devices')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }
}

class KyselyTokensRepo implements TokensRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  create(row: Omit<TokenRow, 'id' | 'revokedAt'>): Promise<TokenRow> {
    return guard('tokens.create', async () => {
      const inserted = await this.#db
        .insertInto('auth_tokens')
        .values({
          user_id: row.userId,
          device_id: row.deviceId,
          token_hash: row.tokenHash,
          created_at: row.createdAt,
          last_used_at: row.lastUsedAt,
          expires_at: row.expiresAt,
          revoked_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toToken(inserted);
    });
  }

  findByHash(tokenHash: string): Promise<TokenRow | undefined> {
    return guard('tokens.findByHash', async () => {
      const row = await this.#db
        .selectFrom('auth_tokens')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .executeTakeFirst();
      return row && toToken(row);
    });
  }

  touch(id: number, now: number): Promise<void> {
    return guard('tokens.touch', async () => {
      await this.#db
        .updateTable('auth_tokens')
        .set({ last_used_at: now })
        .where('id', '=', id)
        .execute();
    });
  }

  revoke(id: number, now: number): Promise<number> {
    return guard('tokens.revoke', async () => {
      const result = await this.#db
        .updateTable('auth_tokens')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  revokeForDevice(deviceId: number, now: number): Promise<number> {
    return guard('tokens.revokeForDevice', async () => {
      const result = await this.#db
        .updateTable('auth_tokens')
        .set({ revoked_at: now })
        .where('device_id', '=', deviceId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  revokeAllForUser(userId: number, now: number): Promise<number> {
    return guard('tokens.revokeAllForUser', async () => {
      const result = await this.#db
        .updateTable('auth_tokens')
        .set({ revoked_at: now })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  revokeOthersForUser(userId: number, keepId: number, now: number): Promise<number> {
    return guard('tokens.revokeOthersForUser', async () => {
      const result = await this.#db
        .updateTable('auth_tokens')
        .set({ revoked_at: now })
        .where('user_id', '=', userId)
        .where('id', '!=', keepId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  deleteExpired(before: number): Promise<number> {
    return guard('tokens.deleteExpired', async () => {
      // `revoked_at < before` is NULL, hence false, for unrevoked tokens.
      const result = await this.#db
        .deleteFrom('auth_tokens')
        .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
}

class KyselyRemoteSessionsRepo implements RemoteSessionsRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  register(
    row: RegisterRow,
    now: number,
    lease?: SessionLease,
  ): Promise<RemoteSessionRow | undefined> {
    return guard('remoteSessions.register', async () => {
      // As in devices.upsert: an id held by another owner matches no row, so nothing
      // changes and nothing is returned, decided atomically with the insert.
      const stored = await this.#db
        .insertInto('remote_sessions')
        .values({
          id: row.id,
          owner_id: row.ownerId,
          kind: row.kind,
          host_name: row.hostName,
          allow: JSON.stringify(row.allow),
          viewers: JSON.stringify(row.viewers),
          tags: JSON.stringify(row.tags ?? {}),
          operators: JSON.stringify(row.operators ?? []),
          created_at: now,
          last_seen_at: now,
          status: 'live',
          relay_id: lease?.relayId ?? null,
          lease_until: lease?.until ?? null,
        })
        .onConflict((oc) =>
          oc
            .column('id')
            .doUpdateSet((eb) => ({
              kind: eb.ref('excluded.kind'),
              host_name: eb.ref('excluded.host_name'),
              allow: eb.ref('excluded.allow'),
              viewers: eb.ref('excluded.viewers'),
              tags: eb.ref('excluded.tags'),
              operators: eb.ref('excluded.operators'),
              last_seen_at: eb.ref('excluded.last_seen_at'),
              status: eb.ref('excluded.status'),
              relay_id: eb.ref('excluded.relay_id'),
              lease_until: eb.ref('excluded.lease_until'),
            }))
            .whereRef('remote_sessions.owner_id', '=', 'excluded.owner_id'),
        )
        .returningAll()
        .executeTakeFirst();
      return stored && toRemoteSession(stored, now);
    });
  }

  find(id: string, now?: number): Promise<RemoteSessionRow | undefined> {
    return guard('remoteSessions.find', async () => {
      const row = await this.#db
        .selectFrom('remote_sessions')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row && toRemoteSession(row, now);
    });
  }

  setStatus(id: string, status: RemoteSessionRow['status'], now: number): Promise<void> {
    return guard('remoteSessions.setStatus', async () => {
      await this.#db
        .updateTable('remote_sessions')
        .set({ status, last_seen_at: now, relay_id: null, lease_until: null })
        .where('id', '=', id)
        .execute();
    });
  }

  setOperators(id: string, operators: string[]): Promise<void> {
    return guard('remoteSessions.setOperators', async () => {
      await this.#db
        .updateTable('remote_sessions')
        .set({ operators: JSON.stringify(operators) })
        .where('id', '=', id)
        .execute();
    });
  }

  renewLeases(relayId: string, now: number, until: number): Promise<number> {
    return guard('remoteSessions.renewLeases', async () => {
      const result = await this.#db
        .updateTable('remote_sessions')
        .set({ lease_until: until, last_seen_at: now })
        .where('relay_id', '=', relayId)
        .where('status', '=', 'live')
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  releaseLease(id: string, relayId: string, now: number): Promise<boolean> {
    return guard('remoteSessions.releaseLease', async () => {
      const result = await this.#db
        .updateTable('remote_sessions')
        .set({ status: 'offline', last_seen_at: now, relay_id: null, lease_until: null })
        .where('id', '=', id)
        .where('relay_id', '=', relayId)
        .where('status', '=', 'live')
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  releaseLeases(relayId: string, now: number): Promise<number> {
    return guard('remoteSessions.releaseLeases', async () => {
      const result = await this.#db
        .updateTable('remote_sessions')
        .set({ status: 'offline', last_seen_at: now, relay_id: null, lease_until: null })
        .where('relay_id', '=', relayId)
        .where('status', '=', 'live')
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    });
  }

  listAll(now?: number): Promise<RemoteSessionRow[]> {
    return guard('remoteSessions.listAll', async () => {
      const rows = await this.#db
        .selectFrom('remote_sessions')
        .selectAll()
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map((r) => toRemoteSession(r, now));
    });
  }

  delete(id: string): Promise<boolean> {
    return guard('remoteSessions.delete', async () => {
      const result = await this.#db
        .deleteFrom('remote_sessions')
        .where('id', '=', id)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }

  countHeld(ownerId: number, reservedSince: number, now?: number): Promise<number> {
    return guard('remoteSessions.countHeld', async () => {
      const row = await this.#db
        .selectFrom('remote_sessions')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('owner_id', '=', ownerId)
        .where((eb) =>
          eb.or([
            now === undefined
              ? eb('status', '=', 'live')
              : eb.and([eb('status', '=', 'live'), eb('lease_until', '>', now)]),
            // A live row whose lease ran out is offline since it was last seen (renewed).
            eb.and([eb('status', '!=', 'closed'), eb('last_seen_at', '>', reservedSince)]),
          ]),
        )
        .executeTakeFirstOrThrow();
      return Number(row.n);
    });
  }

  deleteStale(before: number): Promise<number> {
    return guard('remoteSessions.deleteStale', async () => {
      const result = await this.#db
        .deleteFrom('remote_sessions')
        .where('last_seen_at', '<=', before)
        .where((eb) =>
          eb.or([
            eb('status', '!=', 'live'),
            eb('lease_until', 'is', null),
            eb('lease_until', '<=', before),
          ]),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
}

class KyselyInvitesRepo implements InvitesRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  create(row: Omit<InviteRow, 'id'>): Promise<InviteRow> {
    return guard('invites.create', async () => {
      const inserted = await this.#db
        .insertInto('invites')
        .values({
          code_hash: row.codeHash,
          created_by: row.createdBy,
          uses_left: row.usesLeft,
          expires_at: row.expiresAt,
          created_at: row.createdAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toInvite(inserted);
    });
  }

  findByHash(codeHash: string): Promise<InviteRow | undefined> {
    return guard('invites.findByHash', async () => {
      const row = await this.#db
        .selectFrom('invites')
        .selectAll()
        .where('code_hash', '=', codeHash)
        .executeTakeFirst();
      return row && toInvite(row);
    });
  }

  consume(codeHash: string, now: number): Promise<boolean> {
    return guard('invites.consume', async () => {
      // One conditional UPDATE: two sign-ups racing for the last use cannot both get it.
      const result = await this.#db
        .updateTable('invites')
        .set((eb) => ({ uses_left: eb('uses_left', '-', 1) }))
        .where('code_hash', '=', codeHash)
        .where('uses_left', '>', 0)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  listUsable(now: number, limit: number): Promise<InviteRow[]> {
    return guard('invites.listUsable', async () => {
      const rows = await this.#db
        .selectFrom('invites')
        .selectAll()
        .where('uses_left', '>', 0)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      return rows.map(toInvite);
    });
  }

  deleteUnusable(before: number): Promise<number> {
    return guard('invites.deleteUnusable', async () => {
      const result = await this.#db
        .deleteFrom('invites')
        .where((eb) => eb.or([eb('uses_left', '<=', 0), eb('expires_at', '<', before)]))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
}

function toUserSummary(r: {
  id: number;
  name: string;
  created_at: number;
  last_seen_at: number | string | bigint | null;
}): UserSummary {
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    // Aggregates come back as strings from pg's int8; normalise here, not in callers.
    lastSeenAt: r.last_seen_at === null ? null : Number(r.last_seen_at),
  };
}

function toInvite(r: Selectable<InvitesTable>): InviteRow {
  return {
    id: r.id,
    codeHash: r.code_hash,
    createdBy: r.created_by,
    usesLeft: r.uses_left,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
  };
}

function toUser(r: Selectable<UsersTable>): UserRow {
  return { id: r.id, name: r.name, passwordHash: r.password_hash, createdAt: r.created_at };
}

function toDevice(r: Selectable<DevicesTable>): DeviceRow {
  return {
    id: r.id,
    userId: r.user_id,
    publicKey: r.public_key,
    fingerprint: r.fingerprint,
    name: r.name,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    revokedAt: r.revoked_at ?? null,
  };
}

function toToken(r: Selectable<AuthTokensTable>): TokenRow {
  return {
    id: r.id,
    userId: r.user_id,
    deviceId: r.device_id,
    tokenHash: r.token_hash,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
  };
}

/** The row as callers see it; with `now`, a live row without an unexpired lease reads 'offline'. */
function toRemoteSession(r: Selectable<RemoteSessionsTable>, now?: number): RemoteSessionRow {
  const expired =
    now !== undefined && r.status === 'live' && (r.lease_until === null || r.lease_until <= now);
  return {
    id: r.id,
    ownerId: r.owner_id,
    kind: r.kind,
    hostName: r.host_name,
    allow: parseStringArray(r.allow),
    viewers: parseStringArray(r.viewers),
    tags: parseStringRecord(r.tags),
    operators: parseStringArray(r.operators),
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    status: expired ? 'offline' : r.status,
    relayId: r.relay_id,
    leaseUntil: r.lease_until,
  };
}

/** Reads a JSON object-of-strings column; anything else reads as {}. */
function parseStringRecord(text: string | null | undefined): Record<string, string> {
  try {
    const value = JSON.parse(text ?? '{}') as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    const entries = Object.entries(value).filter(
      (e): e is [string, string] => typeof e[1] === 'string',
    );
    return Object.fromEntries(entries);
  } catch {
    return {};
  }
}

/** Reads a JSON string[] column; anything else (bad JSON, wrong shape) is [] so callers fail closed. */
function parseStringArray(text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : [];
}

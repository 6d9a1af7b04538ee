// Tests of the store: the repository suite on SQLite (files in a temp dir) and on a real
// PostgreSQL this file starts itself, then what is particular to each dialect.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { startTestPostgres, type TestPostgres } from '../../test/postgres.js';
import { ErrorCode, StorageError } from '../protocol/errors.js';
import { migrations } from './migrations.js';
import { openStore } from './open-store.js';
import { randomBytes } from 'node:crypto';
import { generateDeviceKey } from '../crypto/device-key.js';
import { signTransfer } from '../crypto/ledger-signing.js';
import { Ledger } from '../server/ledger.js';
import { redactDatabaseUrl } from './database-url.js';
import { openPostgresStore } from './postgres.js';
import type { SqlDialect, Store, StoreRepositories } from './repositories.js';
import type { Database } from './schema.js';
import { openSqliteStore } from './sqlite.js';
import { storageCodeOf } from './storage-error.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-store-'));
const openStores: Store[] = [];
let fileCounter = 0;
/** Started by the PostgreSQL suite's before(); one server for the whole file. */
let pgServer: TestPostgres | undefined;

after(async () => {
  await Promise.all(openStores.map((s) => s.close()));
  await pgServer?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function freshFile(): string {
  return path.join(tmp, `db-${++fileCounter}.sqlite`);
}

/** A second, independent connection to the same file, for poking at it behind the store. */
function rawConnection(file: string): BetterSqlite3.Database {
  return new BetterSqlite3(file);
}

/** What the repository suite needs from a dialect. */
interface Backend {
  readonly dialect: SqlDialect;
  /** The location (file or URL) of a new, empty database. */
  fresh(): Promise<string>;
  /** A Kysely on its own connection to `location`, to change data behind the store's back. */
  side(location: string): Kysely<Database>;
}

const sqliteBackend: Backend = {
  dialect: 'sqlite',
  fresh: () => Promise.resolve(freshFile()),
  side: (file) =>
    new Kysely<Database>({ dialect: new SqliteDialect({ database: rawConnection(file) }) }),
};

const postgresBackend: Backend = {
  dialect: 'postgres',
  fresh: () => {
    assert.ok(pgServer, 'the PostgreSQL server did not start (see the before() failure)');
    return pgServer.createDatabase();
  },
  side: (url) =>
    new Kysely<Database>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
    }),
};

/** Resolves when `count` callers have arrived; each caller awaits it after arriving. */
function barrier(count: number): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((resolve) => (release = resolve));
  return async () => {
    if (++arrived === count) release();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('barrier: the other side never came')), 10_000);
    });
    try {
      await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

function isStorage(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}
/** The SQLite DDL of 0001_initial and 0002_invites, as relays that ran them hold it. */
const SHIPPED_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> = [
  [
    'index',
    'auth_tokens_token_hash_unique',
    'CREATE UNIQUE INDEX "auth_tokens_token_hash_unique" on "auth_tokens" ("token_hash")',
  ],
  [
    'index',
    'auth_tokens_user_id',
    'CREATE INDEX "auth_tokens_user_id" on "auth_tokens" ("user_id")',
  ],
  [
    'index',
    'devices_public_key_unique',
    'CREATE UNIQUE INDEX "devices_public_key_unique" on "devices" ("public_key")',
  ],
  ['index', 'devices_user_id', 'CREATE INDEX "devices_user_id" on "devices" ("user_id")'],
  [
    'index',
    'invites_code_hash_unique',
    'CREATE UNIQUE INDEX "invites_code_hash_unique" on "invites" ("code_hash")',
  ],
  [
    'index',
    'remote_sessions_owner_id',
    'CREATE INDEX "remote_sessions_owner_id" on "remote_sessions" ("owner_id")',
  ],
  ['index', 'users_name_unique', 'CREATE UNIQUE INDEX "users_name_unique" on "users" ("name")'],
  [
    'table',
    'auth_tokens',
    'CREATE TABLE "auth_tokens" ("id" integer primary key autoincrement, "user_id" integer not null references "users" ("id") on delete cascade, "device_id" integer not null references "devices" ("id") on delete cascade, "token_hash" text not null, "created_at" bigint not null, "last_used_at" bigint not null, "expires_at" bigint not null, "revoked_at" bigint)',
  ],
  [
    'table',
    'devices',
    'CREATE TABLE "devices" ("id" integer primary key autoincrement, "user_id" integer not null references "users" ("id") on delete cascade, "public_key" text not null, "fingerprint" text not null, "name" text not null, "created_at" bigint not null, "last_seen_at" bigint)',
  ],
  [
    'table',
    'invites',
    'CREATE TABLE "invites" ("id" integer primary key autoincrement, "code_hash" text not null, "created_by" integer references "users" ("id") on delete set null, "uses_left" integer not null, "expires_at" bigint not null, "created_at" bigint not null, constraint "invites_uses_left_check" check (uses_left >= 0))',
  ],
  [
    'table',
    'kysely_migration',
    'CREATE TABLE "kysely_migration" ("name" varchar(255) not null primary key, "timestamp" varchar(255) not null)',
  ],
  [
    'table',
    'kysely_migration_lock',
    'CREATE TABLE "kysely_migration_lock" ("id" varchar(255) not null primary key, "is_locked" integer default 0 not null)',
  ],
  [
    'table',
    'remote_sessions',
    'CREATE TABLE "remote_sessions" ("id" text primary key, "owner_id" integer not null references "users" ("id") on delete cascade, "kind" text not null, "host_name" text not null, "allow" text default \'[]\' not null, "viewers" text default \'[]\' not null, "created_at" bigint not null, "last_seen_at" bigint not null, "status" text not null, constraint "remote_sessions_kind_check" check (kind in (\'share\', \'agent\')), constraint "remote_sessions_status_check" check (status in (\'live\', \'offline\', \'closed\')))',
  ],
  [
    'table',
    'users',
    'CREATE TABLE "users" ("id" integer primary key autoincrement, "name" text not null, "password_hash" text not null, "created_at" bigint not null)',
  ],
];

/** What 0003_session_leases changed: SQLite appends added columns to the table's stored DDL. */
const SESSION_LEASES_SQLITE_SCHEMA: ReadonlyArray<
  readonly [type: string, name: string, sql: string]
> = [
  [
    'index',
    'remote_sessions_relay_id',
    'CREATE INDEX "remote_sessions_relay_id" on "remote_sessions" ("relay_id")',
  ],
  [
    'table',
    'remote_sessions',
    'CREATE TABLE "remote_sessions" ("id" text primary key, "owner_id" integer not null references "users" ("id") on delete cascade, "kind" text not null, "host_name" text not null, "allow" text default \'[]\' not null, "viewers" text default \'[]\' not null, "created_at" bigint not null, "last_seen_at" bigint not null, "status" text not null, "relay_id" text, "lease_until" bigint, constraint "remote_sessions_kind_check" check (kind in (\'share\', \'agent\')), constraint "remote_sessions_status_check" check (status in (\'live\', \'offline\', \'closed\')))',
  ],
];

/** What 0004_device_revocation changed. */
const DEVICE_REVOCATION_SQLITE_SCHEMA: ReadonlyArray<
  readonly [type: string, name: string, sql: string]
> = [
  [
    'table',
    'devices',
    'CREATE TABLE "devices" ("id" integer primary key autoincrement, "user_id" integer not null references "users" ("id") on delete cascade, "public_key" text not null, "fingerprint" text not null, "name" text not null, "created_at" bigint not null, "last_seen_at" bigint, "revoked_at" bigint)',
  ],
];

/** What 0005_session_tags and 0006_session_operators changed (SQLite appends the column to the stored DDL). */
const SESSION_TAGS_SQLITE_SCHEMA: ReadonlyArray<
  readonly [type: string, name: string, sql: string]
> = [
  [
    'table',
    'remote_sessions',
    'CREATE TABLE "remote_sessions" ("id" text primary key, "owner_id" integer not null references "users" ("id") on delete cascade, "kind" text not null, "host_name" text not null, "allow" text default \'[]\' not null, "viewers" text default \'[]\' not null, "created_at" bigint not null, "last_seen_at" bigint not null, "status" text not null, "relay_id" text, "lease_until" bigint, "tags" text default \'{}\' not null, "operators" text default \'[]\' not null, constraint "remote_sessions_kind_check" check (kind in (\'share\', \'agent\')), constraint "remote_sessions_status_check" check (status in (\'live\', \'offline\', \'closed\')))',
  ],
];

/** What 0007_audit_entries added. */
const AUDIT_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> = [
  [
    'table',
    'audit_entries',
    'CREATE TABLE "audit_entries" ("id" integer primary key autoincrement, "log" text not null, "seq" bigint not null, "owner_id" integer references "users" ("id") on delete set null, "session" text, "actor" text, "type" text not null, "time" bigint not null, "body" text not null, "sig" text not null, "signer" text not null)',
  ],
  [
    'index',
    'audit_entries_log_seq',
    'CREATE UNIQUE INDEX "audit_entries_log_seq" on "audit_entries" ("log", "seq")',
  ],
  [
    'index',
    'audit_entries_owner',
    'CREATE INDEX "audit_entries_owner" on "audit_entries" ("owner_id")',
  ],
  [
    'index',
    'audit_entries_actor',
    'CREATE INDEX "audit_entries_actor" on "audit_entries" ("actor")',
  ],
];

/** What 0008_device_prekeys added. */
const PREKEYS_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> = [
  [
    'table',
    'device_prekeys',
    'CREATE TABLE "device_prekeys" ("device_id" integer primary key references "devices" ("id") on delete cascade, "prekey_id" bigint not null, "expires_at" bigint not null, "bundle" text not null, "published_at" bigint not null)',
  ],
];

/** What 0009_mailbox added. */
const MAILBOX_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> = [
  [
    'table',
    'mailbox',
    'CREATE TABLE "mailbox" ("id" integer primary key autoincrement, "device_id" integer not null references "devices" ("id") on delete cascade, "sender_name" text not null, "sender_fingerprint" text not null, "message_id" text not null, "body" text not null, "created_at" bigint not null, "expires_at" bigint not null)',
  ],
  [
    'index',
    'mailbox_device_message',
    'CREATE UNIQUE INDEX "mailbox_device_message" on "mailbox" ("device_id", "message_id")',
  ],
  ['index', 'mailbox_expires', 'CREATE INDEX "mailbox_expires" on "mailbox" ("expires_at")'],
];

/** What 0010_broadcasts added. */
const BROADCASTS_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> =
  [
    [
      'table',
      'broadcast_deliveries',
      'CREATE TABLE "broadcast_deliveries" ("broadcast_id" integer not null references "broadcasts" ("id") on delete cascade, "user_id" integer not null references "users" ("id") on delete cascade, constraint "broadcast_deliveries_pk" primary key ("broadcast_id", "user_id"))',
    ],
    [
      'table',
      'broadcasts',
      'CREATE TABLE "broadcasts" ("id" integer primary key autoincrement, "sender_name" text not null, "sender_key" text not null, "body" text not null, "sig" text not null, "created_at" bigint not null, "expires_at" bigint not null)',
    ],
  ];

/** What 0011_ledger added. */
const LEDGER_SQLITE_SCHEMA: ReadonlyArray<readonly [type: string, name: string, sql: string]> = [
  [
    'table',
    'ledger_balances',
    'CREATE TABLE "ledger_balances" ("user_id" integer primary key, "balance" bigint not null check (balance >= 0))',
  ],
  [
    'table',
    'ledger_entries',
    'CREATE TABLE "ledger_entries" ("seq" integer primary key autoincrement, "transfer_id" text not null unique, "kind" text not null, "payer_id" integer, "payee_id" integer not null, "amount" bigint not null, "body" text not null, "sig" text not null, "signer_key" text not null, "hash" text not null, "created_at" bigint not null)',
  ],
  [
    'index',
    'ledger_entries_payee',
    'CREATE INDEX "ledger_entries_payee" on "ledger_entries" ("payee_id")',
  ],
  [
    'index',
    'ledger_entries_payer',
    'CREATE INDEX "ledger_entries_payer" on "ledger_entries" ("payer_id")',
  ],
];

/** The schema every migration makes today, ordered as sqlite_master is read below. */
const LATEST_SQLITE_SCHEMA = [
  ...SHIPPED_SQLITE_SCHEMA.filter(
    ([, name]) =>
      ![
        ...SESSION_LEASES_SQLITE_SCHEMA,
        ...DEVICE_REVOCATION_SQLITE_SCHEMA,
        ...SESSION_TAGS_SQLITE_SCHEMA,
      ].some(([, changed]) => changed === name),
  ),
  ...SESSION_LEASES_SQLITE_SCHEMA.filter(
    ([, name]) => !SESSION_TAGS_SQLITE_SCHEMA.some(([, changed]) => changed === name),
  ),
  ...DEVICE_REVOCATION_SQLITE_SCHEMA,
  ...SESSION_TAGS_SQLITE_SCHEMA,
  ...AUDIT_SQLITE_SCHEMA,
  ...PREKEYS_SQLITE_SCHEMA,
  ...MAILBOX_SQLITE_SCHEMA,
  ...BROADCASTS_SQLITE_SCHEMA,
  ...LEDGER_SQLITE_SCHEMA,
].sort(([ta, na], [tb, nb]) => (ta === tb ? (na < nb ? -1 : 1) : ta < tb ? -1 : 1));

/** The repository tests, the same on every dialect. */
function repositorySuite(b: Backend): void {
  async function open(location?: string): Promise<Store> {
    const store = await openStore({ database: location ?? (await b.fresh()) });
    openStores.push(store);
    return store;
  }

  async function userAndDevice(store: Store, name = 'alice'): Promise<[number, number]> {
    const user = await store.users.create(name, 'hash', 1_000);
    assert.ok(user);
    const device = await store.devices.upsert(
      user.id,
      `key-${name}`,
      `fp-${name}`,
      'laptop',
      1_000,
    );
    assert.ok(device);
    return [user.id, device.id];
  }

  describe('opening', () => {
    it(`opens a ${b.dialect} store from its location`, async () => {
      const store = await open();
      assert.equal(store.dialect, b.dialect);
      assert.equal(await store.users.count(), 0);
    });

    it('keeps data across reopen and does not re-run migrations', async () => {
      const location = await b.fresh();
      const first = await openStore({ database: location });
      await first.users.create('alice', 'h', 1_000);
      await first.close();
      await first.close(); // idempotent

      const read = async () => {
        const side = b.side(location);
        try {
          const { rows } = await sql<{
            name: string;
            timestamp: string;
          }>`select name, timestamp from kysely_migration order by name`.execute(side);
          return rows;
        } finally {
          await side.destroy();
        }
      };
      const before = await read();
      assert.deepEqual(
        before.map((r) => r.name),
        Object.keys(migrations),
      );

      const second = await open(location);
      assert.equal((await second.users.findByName('alice'))?.passwordHash, 'h');
      assert.equal(await second.users.count(), 1);
      assert.deepEqual(await read(), before);
    });
  });

  describe('users', () => {
    it('creates, finds and refuses a duplicate name without throwing', async () => {
      const store = await open();
      const alice = await store.users.create('alice', 'h1', 1_000);
      assert.deepEqual(alice, {
        id: alice?.id,
        name: 'alice',
        passwordHash: 'h1',
        createdAt: 1_000,
      });
      assert.equal(await store.users.create('alice', 'h2', 2_000), undefined);
      assert.equal((await store.users.findByName('alice'))?.passwordHash, 'h1');
      assert.deepEqual(await store.users.findById(alice!.id), alice);
      assert.equal(await store.users.findById(9_999), undefined);
      assert.equal(await store.users.count(), 1);
    });

    it('reads 64-bit times and counts back as numbers', async () => {
      const store = await open();
      const late = 4_102_444_800_000; // 2100-01-01 in ms: past 2^32
      const user = await store.users.create('alice', 'h', late);
      const device = await store.devices.upsert(user!.id, 'KEY', 'FP', 'laptop', late);
      await store.devices.touch(device!.id, late + 1);
      assert.strictEqual((await store.users.findById(user!.id))?.createdAt, late);
      assert.strictEqual((await store.devices.findById(device!.id))?.lastSeenAt, late + 1);
      assert.strictEqual((await store.users.listPage(undefined, 1))[0]?.lastSeenAt, late + 1);
      assert.strictEqual(await store.users.count(), 1);
      assert.strictEqual(await store.remoteSessions.countHeld(user!.id, 0), 0);
    });

    it('lists by name with the latest device lastSeenAt', async () => {
      const store = await open();
      const [bobId] = await userAndDevice(store, 'bob');
      const [aliceId, aliceDevice] = await userAndDevice(store, 'alice');
      const second = await store.devices.upsert(aliceId, 'key-2', 'fp-2', 'phone', 1_000);
      await store.devices.touch(aliceDevice, 5_000);
      await store.devices.touch(second!.id, 7_000);
      const both = [
        { id: aliceId, name: 'alice', createdAt: 1_000, lastSeenAt: 7_000 },
        { id: bobId, name: 'bob', createdAt: 1_000, lastSeenAt: null },
      ];
      assert.deepEqual(await store.users.listPage(undefined, 10), both);
      assert.deepEqual(await store.users.summariesByIds([bobId, aliceId, 9_999, bobId]), both);
      assert.deepEqual((await store.users.idsByNames(['bob', 'nobody', 'bob'])).sort(), [bobId]);
    });

    it('orders and pages names byte by byte, as JavaScript sorts them', async () => {
      const store = await open();
      // A locale collation would put "a-c" after "ab" and ignore the dash.
      const names = ['ab', 'a-c', 'a_b', 'a0', 'aa-', 'aa', 'z9', 'z-'];
      for (const n of names) await store.users.create(n, 'h', 1_000);
      const sorted = [...names].sort();
      assert.deepEqual(
        (await store.users.listPage(undefined, 100)).map((u) => u.name),
        sorted,
      );
      assert.deepEqual(
        (await store.users.listPage('a-c', 3)).map((u) => u.name),
        sorted.slice(sorted.indexOf('a-c') + 1, sorted.indexOf('a-c') + 4),
      );
    });

    it('pages through 1,200 users by name, each page at most the limit', async () => {
      const store = await open();
      await store.transaction(async (tx) => {
        for (let i = 0; i < 1_200; i++)
          await tx.users.create(`u${String(i).padStart(4, '0')}`, 'h', 1_000);
      });
      const seen: string[] = [];
      let after: string | undefined;
      for (let pages = 0; pages < 20; pages++) {
        const page = await store.users.listPage(after, 200);
        assert.ok(page.length <= 200);
        seen.push(...page.map((u) => u.name));
        if (page.length < 200) break;
        after = page[page.length - 1]!.name;
      }
      assert.equal(seen.length, 1_200);
      assert.deepEqual(seen, [...seen].sort());
      assert.equal(new Set(seen).size, 1_200);
      // More ids than one IN (...) chunk.
      const ids = await store.users.idsByNames(seen);
      assert.equal(ids.length, 1_200);
      assert.equal((await store.users.summariesByIds(ids)).length, 1_200);
    });

    it('changes a password hash and deletes a user', async () => {
      const store = await open();
      const alice = await store.users.create('alice', 'h1', 1_000);
      assert.equal(await store.users.setPasswordHash(alice!.id, 'h2'), true);
      assert.equal((await store.users.findById(alice!.id))?.passwordHash, 'h2');
      assert.equal(await store.users.setPasswordHash(9_999, 'h3'), false);
      assert.equal(await store.users.delete(alice!.id), true);
      assert.equal(await store.users.delete(alice!.id), false);
      assert.equal(await store.users.findByName('alice'), undefined);
    });

    it('creates 200 users concurrently, and gives one name to exactly one of 20 racers', async () => {
      const store = await open();
      const names = Array.from({ length: 200 }, (_, i) => `user-${i}`);
      const rows = await Promise.all(names.map((n) => store.users.create(n, 'h', 1_000)));
      assert.ok(rows.every((r) => r !== undefined));
      assert.equal(new Set(rows.map((r) => r!.id)).size, 200);
      assert.equal(await store.users.count(), 200);
      const racers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.users.create('taken', `h${i}`, 1_000)),
      );
      assert.equal(racers.filter((r) => r !== undefined).length, 1);
    });

    it('never hands out a deleted user’s id again', async () => {
      const store = await open();
      const first = await store.users.create('alice', 'h', 1_000);
      const second = await store.users.create('bob', 'h', 1_000);
      await store.users.delete(second!.id);
      const third = await store.users.create('carol', 'h', 1_000);
      assert.ok(third!.id > second!.id && second!.id > first!.id);
    });
  });

  describe('devices', () => {
    it('upserts the same key for the same user to the same row, renaming it', async () => {
      const store = await open();
      const user = await store.users.create('alice', 'h', 1_000);
      const a = await store.devices.upsert(user!.id, 'KEY', 'FP', 'laptop', 1_000);
      const b2 = await store.devices.upsert(user!.id, 'KEY', 'FP', 'work laptop', 2_000);
      assert.equal(b2?.id, a?.id);
      assert.equal(b2?.name, 'work laptop');
      assert.equal(b2?.createdAt, 1_000);
      assert.equal((await store.devices.listForUser(user!.id)).length, 1);
    });

    it("refuses a key registered to another user and leaves that user's row alone", async () => {
      const store = await open();
      const alice = await store.users.create('alice', 'h', 1_000);
      const bob = await store.users.create('bob', 'h', 1_000);
      const own = await store.devices.upsert(alice!.id, 'KEY', 'FP', 'laptop', 1_000);
      assert.equal(await store.devices.upsert(bob!.id, 'KEY', 'FP', 'stolen', 2_000), undefined);
      assert.deepEqual(await store.devices.findById(own!.id), own);
      assert.deepEqual(await store.devices.listForUser(bob!.id), []);
    });

    it('touches lastSeenAt', async () => {
      const store = await open();
      const [, deviceId] = await userAndDevice(store);
      assert.equal((await store.devices.findById(deviceId))?.lastSeenAt, null);
      await store.devices.touch(deviceId, 9_000);
      assert.equal((await store.devices.findById(deviceId))?.lastSeenAt, 9_000);
    });

    it('finds a device by public key and revokes every token but one', async () => {
      const store = await open();
      const [userId, deviceId] = await userAndDevice(store);
      assert.equal((await store.devices.findByPublicKey('key-alice'))?.id, deviceId);
      assert.equal(await store.devices.findByPublicKey('key-nobody'), undefined);
      const base = { userId, deviceId, createdAt: 0, lastUsedAt: 0, expiresAt: 1 };
      const keep = await store.tokens.create({ ...base, tokenHash: 't1' });
      await store.tokens.create({ ...base, tokenHash: 't2' });
      await store.tokens.create({ ...base, tokenHash: 't3' });
      assert.equal(await store.tokens.revokeOthersForUser(userId, keep.id, 50), 2);
      assert.equal((await store.tokens.findByHash('t1'))?.revokedAt, null);
      assert.equal((await store.tokens.findByHash('t2'))?.revokedAt, 50);
      assert.equal(await store.tokens.revokeOthersForUser(userId, keep.id, 60), 0);
    });
  });

  describe('tokens', () => {
    it('creates, finds, touches, revokes and cleans up', async () => {
      const store = await open();
      const [userId, deviceId] = await userAndDevice(store);
      const base = { userId, deviceId, createdAt: 1_000, lastUsedAt: 1_000 };
      const t1 = await store.tokens.create({ ...base, tokenHash: 'aa', expiresAt: 10_000 });
      const t2 = await store.tokens.create({ ...base, tokenHash: 'bb', expiresAt: 10_000 });
      const t3 = await store.tokens.create({ ...base, tokenHash: 'cc', expiresAt: 3_000 });
      assert.deepEqual(t1, {
        ...base,
        id: t1.id,
        tokenHash: 'aa',
        expiresAt: 10_000,
        revokedAt: null,
      });
      assert.deepEqual(await store.tokens.findByHash('aa'), t1);
      assert.equal(await store.tokens.findByHash('zz'), undefined);

      await store.tokens.touch(t1.id, 2_000);
      assert.equal((await store.tokens.findByHash('aa'))?.lastUsedAt, 2_000);

      assert.equal(await store.tokens.revoke(t1.id, 4_000), 1);
      assert.equal(await store.tokens.revoke(t1.id, 5_000), 0, 'already revoked');
      assert.equal(
        (await store.tokens.findByHash('aa'))?.revokedAt,
        4_000,
        'first revocation kept',
      );

      assert.equal(await store.tokens.revokeAllForUser(userId, 6_000), 2, 'only t2 and t3');
      assert.equal((await store.tokens.findByHash('bb'))?.revokedAt, 6_000);
      assert.equal(await store.tokens.revokeAllForUser(userId, 7_000), 0);

      // before=5_000: t1 revoked at 4_000 and t3 expired at 3_000 go; t2 (revoked 6_000) stays.
      assert.equal(await store.tokens.deleteExpired(5_000), 2);
      assert.equal(await store.tokens.findByHash('aa'), undefined);
      assert.equal(await store.tokens.findByHash('cc'), undefined);
      assert.equal((await store.tokens.findByHash('bb'))?.id, t2.id);
      assert.equal(t3.expiresAt, 3_000);
    });

    it('reports a duplicate hash as CONFLICT and a missing user as STORAGE', async () => {
      const store = await open();
      const [userId, deviceId] = await userAndDevice(store);
      const row = { userId, deviceId, tokenHash: 'aa', createdAt: 0, lastUsedAt: 0, expiresAt: 1 };
      await store.tokens.create(row);
      await assert.rejects(store.tokens.create(row), isStorage(ErrorCode.CONFLICT));
      await assert.rejects(
        store.tokens.create({ ...row, userId: 42, deviceId: 42, tokenHash: 'bb' }),
        isStorage(ErrorCode.STORAGE),
      );
    });
  });

  describe('remote sessions', () => {
    const fields = { kind: 'share' as const, hostName: 'box', allow: ['bob'], viewers: [] };

    it('registers, re-registers for the same owner keeping createdAt, refuses another owner', async () => {
      const store = await open();
      const [aliceId] = await userAndDevice(store, 'alice');
      const [bobId] = await userAndDevice(store, 'bob');

      const first = await store.remoteSessions.register(
        { id: 's1', ownerId: aliceId, ...fields },
        1_000,
        { relayId: 'relay-a', until: 31_000 },
      );
      assert.deepEqual(first, {
        id: 's1',
        ownerId: aliceId,
        ...fields,
        tags: {},
        operators: [],
        createdAt: 1_000,
        lastSeenAt: 1_000,
        status: 'live',
        relayId: 'relay-a',
        leaseUntil: 31_000,
      });

      await store.remoteSessions.setStatus('s1', 'offline', 1_500);
      const again = await store.remoteSessions.register(
        {
          id: 's1',
          ownerId: aliceId,
          kind: 'agent',
          hostName: 'box2',
          allow: ['carol'],
          viewers: ['bob'],
          tags: { env: 'prod' },
          operators: ['dave'],
        },
        2_000,
        { relayId: 'relay-b', until: 32_000 },
      );
      // Re-registering replaces the tags and operators with the host's current ones.
      assert.deepEqual(again, {
        id: 's1',
        ownerId: aliceId,
        kind: 'agent',
        hostName: 'box2',
        allow: ['carol'],
        viewers: ['bob'],
        tags: { env: 'prod' },
        operators: ['dave'],
        createdAt: 1_000,
        lastSeenAt: 2_000,
        status: 'live',
        relayId: 'relay-b',
        leaseUntil: 32_000,
      });
      // An agent that reloaded its policy: only the operators change.
      await store.remoteSessions.setOperators('s1', ['erin']);
      const updated = await store.remoteSessions.find('s1', 2_000);
      assert.deepEqual(updated?.operators, ['erin']);
      assert.deepEqual(updated?.tags, { env: 'prod' });
      await store.remoteSessions.setOperators('missing', ['erin']);
      await store.remoteSessions.setOperators('s1', ['dave']);

      assert.equal(
        await store.remoteSessions.register({ id: 's1', ownerId: bobId, ...fields }, 3_000, {
          relayId: 'relay-c',
          until: 33_000,
        }),
        undefined,
      );
      assert.deepEqual(await store.remoteSessions.find('s1'), again, 'unchanged by the refusal');
    });

    it('lists, counts held IDs and deletes', async () => {
      const store = await open();
      const [ownerId] = await userAndDevice(store);
      const lease = (until: number) => ({ relayId: 'r1', until });
      await store.remoteSessions.register({ id: 'a', ownerId, ...fields }, 1_000, lease(99_000));
      await store.remoteSessions.register({ id: 'b', ownerId, ...fields }, 2_000, lease(99_000));
      await store.remoteSessions.register({ id: 'c', ownerId, ...fields }, 3_000, lease(99_000));
      await store.remoteSessions.setStatus('c', 'closed', 3_500);
      assert.equal(await store.remoteSessions.countHeld(ownerId, 0, 4_000), 2);

      await store.remoteSessions.setStatus('a', 'offline', 5_000);
      await store.remoteSessions.setStatus('b', 'offline', 5_000);
      const all = await store.remoteSessions.listAll(5_000);
      assert.deepEqual(
        all.map((s) => [s.id, s.status, s.relayId, s.leaseUntil]),
        [
          ['a', 'offline', null, null],
          ['b', 'offline', null, null],
          ['c', 'closed', null, null],
        ],
      );
      assert.equal(await store.remoteSessions.countHeld(ownerId, 4_999, 6_000), 2);
      assert.equal(await store.remoteSessions.countHeld(ownerId, 5_000, 6_000), 0);
      assert.equal(
        await store.remoteSessions.deleteStale(4_000),
        1,
        'only c was last seen by then',
      );
      assert.equal(await store.remoteSessions.delete('a'), true);
      assert.equal(await store.remoteSessions.delete('a'), false);
      assert.equal(await store.remoteSessions.find('a'), undefined);
    });

    it('reads a live session as offline from the instant its lease runs out', async () => {
      const store = await open();
      const [ownerId] = await userAndDevice(store);
      await store.remoteSessions.register({ id: 's1', ownerId, ...fields }, 1_000, {
        relayId: 'r1',
        until: 31_000,
      });
      const status = async (now: number) => (await store.remoteSessions.find('s1', now))?.status;
      assert.equal(await status(30_999), 'live');
      assert.equal(await status(31_000), 'offline');
      assert.deepEqual(
        (await store.remoteSessions.listAll(31_000)).map((r) => r.status),
        ['offline'],
      );
      assert.equal((await store.remoteSessions.find('s1'))?.status, 'live', 'as stored');
      // Held while the lease runs whatever the reservation; after it, as an offline ID last
      // seen at 1 000.
      assert.equal(await store.remoteSessions.countHeld(ownerId, 5_000, 30_999), 1);
      assert.equal(await store.remoteSessions.countHeld(ownerId, 5_000, 31_000), 0);
      assert.equal(await store.remoteSessions.countHeld(ownerId, 999, 31_000), 1);
      // Housekeeping takes it only once both its lease and its last sighting are old enough.
      assert.equal(await store.remoteSessions.deleteStale(30_999), 0);
      assert.equal(await store.remoteSessions.deleteStale(31_000), 1);
    });

    it('renews and releases only the leases of the relay that asks, in one statement', async () => {
      const store = await open();
      const [ownerId] = await userAndDevice(store);
      const register = (id: string, relayId: string) =>
        store.remoteSessions.register({ id, ownerId, ...fields }, 1_000, {
          relayId,
          until: 31_000,
        });
      await register('a1', 'relay-a');
      await register('a2', 'relay-a');
      await register('b1', 'relay-b');
      await register('a3', 'relay-a');
      await store.remoteSessions.setStatus('a3', 'closed', 2_000);

      // relay-a renews at 40 000, after its leases ran out: nobody took them, so they come back.
      assert.equal(await store.remoteSessions.renewLeases('relay-a', 40_000, 70_000), 2);
      const at = async (now: number) =>
        (await store.remoteSessions.listAll(now)).map((r) => [r.id, r.status, r.leaseUntil]);
      assert.deepEqual(await at(40_000), [
        ['a1', 'live', 70_000],
        ['a2', 'live', 70_000],
        ['a3', 'closed', null],
        ['b1', 'offline', 31_000],
      ]);
      assert.equal((await store.remoteSessions.find('a1'))?.lastSeenAt, 40_000);
      assert.equal((await store.remoteSessions.find('b1'))?.lastSeenAt, 1_000);

      // A host that moved to relay-b: relay-a's late release and renewal leave it alone.
      await register('a2', 'relay-b');
      assert.equal(await store.remoteSessions.releaseLease('a2', 'relay-a', 41_000), false);
      assert.equal(await store.remoteSessions.renewLeases('relay-a', 42_000, 72_000), 1);
      const moved = await store.remoteSessions.find('a2', 2_000);
      assert.deepEqual([moved?.relayId, moved?.status], ['relay-b', 'live']);

      // relay-a releases one session, then stops: relay-b keeps what it holds.
      assert.equal(await store.remoteSessions.releaseLease('a1', 'relay-a', 43_000), true);
      assert.equal(await store.remoteSessions.releaseLease('a1', 'relay-a', 43_000), false);
      await register('a4', 'relay-a');
      assert.equal(await store.remoteSessions.releaseLeases('relay-a', 44_000), 1);
      const rows = await store.remoteSessions.listAll(2_000);
      assert.deepEqual(
        rows.map((r) => [r.id, r.status, r.relayId, r.lastSeenAt]),
        [
          ['a1', 'offline', null, 43_000],
          ['a2', 'live', 'relay-b', 1_000],
          ['a3', 'closed', null, 2_000],
          ['a4', 'offline', null, 44_000],
          ['b1', 'live', 'relay-b', 1_000],
        ],
      );
    });

    it('reads corrupt allow/viewers JSON as [] without throwing', async () => {
      const location = await b.fresh();
      const store = await open(location);
      const [ownerId] = await userAndDevice(store);
      await store.remoteSessions.register({ id: 's1', ownerId, ...fields }, 1_000);

      const side = b.side(location);
      try {
        await sql`update remote_sessions set allow = ${'{not json'}, viewers = ${'[1, "x"]'} where id = ${'s1'}`.execute(
          side,
        );
        const { rows } = await sql<{
          allow: string;
        }>`select allow from remote_sessions where id = ${'s1'}`.execute(side);
        assert.deepEqual(rows, [{ allow: '{not json' }], 'the corruption really is stored');
      } finally {
        await side.destroy();
      }

      const row = await store.remoteSessions.find('s1');
      assert.deepEqual(row?.allow, []);
      assert.deepEqual(row?.viewers, []);
      assert.equal((await store.remoteSessions.listAll()).length, 1);
    });
  });

  describe('schema', () => {
    it('cascades a user delete to devices, tokens and remote sessions', async () => {
      const store = await open();
      const [userId, deviceId] = await userAndDevice(store);
      const base = { userId, deviceId, createdAt: 0, lastUsedAt: 0, expiresAt: 1 };
      await store.tokens.create({ ...base, tokenHash: 'aa' });
      await store.remoteSessions.register(
        { id: 's1', ownerId: userId, kind: 'agent', hostName: 'h', allow: [], viewers: [] },
        0,
      );

      const invite = await store.invites.create({
        codeHash: 'ih',
        createdBy: userId,
        usesLeft: 1,
        expiresAt: 10,
        createdAt: 0,
      });
      assert.equal(await store.users.delete(userId), true);

      assert.equal(await store.devices.findById(deviceId), undefined);
      // An invite outlives its maker.
      assert.deepEqual(await store.invites.findByHash('ih'), { ...invite, createdBy: null });
      assert.equal(await store.tokens.findByHash('aa'), undefined);
      assert.equal(await store.remoteSessions.find('s1'), undefined);
    });

    it('refuses a session kind or status outside the check constraints', async () => {
      const location = await b.fresh();
      const store = await open(location);
      const [ownerId] = await userAndDevice(store);
      await store.remoteSessions.register(
        { id: 's1', ownerId, kind: 'agent', hostName: 'h', allow: [], viewers: [] },
        0,
      );
      const side = b.side(location);
      try {
        await assert.rejects(
          sql`update remote_sessions set kind = ${'pirate'} where id = ${'s1'}`.execute(side),
        );
      } finally {
        await side.destroy();
      }
      await assert.rejects(
        store.remoteSessions.setStatus('s1', 'gone' as 'closed', 1),
        isStorage(ErrorCode.STORAGE),
      );
    });
  });

  describe('invites', () => {
    it('consumes uses atomically, never past zero or after expiry, and lists usable ones', async () => {
      const store = await open();
      const [userId] = await userAndDevice(store);
      await store.invites.create({
        codeHash: 'two',
        createdBy: userId,
        usesLeft: 2,
        expiresAt: 1_000,
        createdAt: 1,
      });
      await store.invites.create({
        codeHash: 'old',
        createdBy: userId,
        usesLeft: 5,
        expiresAt: 100,
        createdAt: 2,
      });
      // Ten racing consumers of a two-use invite: exactly two win.
      const wins = await Promise.all(
        Array.from({ length: 10 }, () => store.invites.consume('two', 500)),
      );
      assert.equal(wins.filter(Boolean).length, 2);
      assert.equal((await store.invites.findByHash('two'))?.usesLeft, 0);
      assert.equal(await store.invites.consume('old', 100), false, 'expired at 100');
      assert.equal(await store.invites.consume('nope', 0), false);
      assert.deepEqual(
        (await store.invites.listUsable(50, 10)).map((i) => i.codeHash),
        ['old'],
        'the spent one is not listed',
      );
      await assert.rejects(
        store.invites.create({
          codeHash: 'old',
          createdBy: null,
          usesLeft: 1,
          expiresAt: 1,
          createdAt: 1,
        }),
        isStorage(ErrorCode.CONFLICT),
      );
      assert.equal(await store.invites.deleteUnusable(200), 2);
      assert.equal(await store.invites.findByHash('old'), undefined);
    });

    it('rolls a consumed use back with the transaction', async () => {
      const store = await open();
      await store.invites.create({
        codeHash: 'one',
        createdBy: null,
        usesLeft: 1,
        expiresAt: 1_000,
        createdAt: 1,
      });
      await assert.rejects(
        store.transaction(async (tx) => {
          assert.equal(await tx.invites.consume('one', 10), true);
          throw new Error('user exists');
        }),
      );
      assert.equal((await store.invites.findByHash('one'))?.usesLeft, 1);
    });
  });

  describe('ledger', () => {
    it('settles concurrent transfers once each and never below zero (the relay’s Ledger on this dialect)', async () => {
      const store = await open();
      const ledger = new Ledger(store, generateDeviceKey(), Date.now, { signupCredit: 100 });
      const key = generateDeviceKey();
      const payer = (await store.users.create('payer', 'h', 1_000))!;
      const payee = (await store.users.create('payee', 'h', 1_000))!;
      await store.devices.upsert(payer.id, key.publicKey.toString('base64'), 'FP', 'laptop', 1_000);
      await ledger.creditSignup(payer);
      const transfer = (amount: number) =>
        signTransfer(key, {
          v: 1,
          kind: 'transfer',
          ledger: ledger.id,
          id: randomBytes(16).toString('base64'),
          from: 'payer',
          to: 'payee',
          amount,
          memo: '',
          at: new Date().toISOString(),
        });
      // Ten transfers of 15 against 100, all at once: six settle, four find the balance short.
      const ts = Array.from({ length: 10 }, () => transfer(15));
      const outcomes = await Promise.all(
        ts.map((t) =>
          ledger.settle(t, payer).then(
            () => 'OK',
            (err: unknown) => (err as { code?: string }).code ?? 'ERROR',
          ),
        ),
      );
      assert.deepEqual(
        [
          outcomes.filter((o) => o === 'OK').length,
          outcomes.filter((o) => o === 'INSUFFICIENT_FUNDS').length,
        ],
        [6, 4],
      );
      // Each again: the settled ones are duplicates, nothing moves.
      const settled = ts.filter((_, i) => outcomes[i] === 'OK');
      for (const t of settled) assert.equal((await ledger.settle(t, payer)).duplicate, true);
      assert.deepEqual(
        [await store.ledger.balance(payer.id), await store.ledger.balance(payee.id)],
        [10, 90],
      );
      assert.deepEqual(await store.ledger.totals(), { balances: 100, mints: 100 });
      assert.equal(await store.ledger.count(), 7);
    });
  });

  describe('transactions', () => {
    it('commits what fn wrote when it resolves', async () => {
      const store = await open();
      const id = await store.transaction(async (tx) => {
        const user = await tx.users.create('alice', 'h', 1_000);
        await tx.devices.upsert(user!.id, 'KEY', 'FP', 'laptop', 1_000);
        return user!.id;
      });
      assert.equal((await store.devices.listForUser(id)).length, 1);
    });

    it('rolls back everything and rethrows fn’s error unchanged', async () => {
      const store = await open();
      const boom = new Error('boom');
      await assert.rejects(
        store.transaction(async (tx) => {
          const user = await tx.users.create('alice', 'h', 1_000);
          await tx.devices.upsert(user!.id, 'KEY', 'FP', 'laptop', 1_000);
          await tx.remoteSessions.register(
            { id: 's1', ownerId: user!.id, kind: 'share', hostName: 'h', allow: [], viewers: [] },
            1_000,
          );
          throw boom;
        }),
        (err: unknown) => err === boom,
      );
      assert.equal(await store.users.count(), 0);
      assert.equal(await store.remoteSessions.find('s1'), undefined);
      // The store is still usable after a rollback.
      assert.ok(await store.users.create('alice', 'h', 2_000));
    });

    it('runs at every isolation level, and refuses bad options before starting', async () => {
      const store = await open();
      for (const isolation of ['read committed', 'repeatable read', 'serializable'] as const) {
        const user = await store.transaction(
          (tx) => tx.users.create(isolation.replace(' ', '-'), 'h', 1),
          {
            isolation,
            retries: 1,
          },
        );
        assert.ok(user);
      }
      let ran = 0;
      const fn = async (_tx: StoreRepositories) => void ran++;
      await assert.rejects(
        store.transaction(fn, { isolation: 'chaos' as 'serializable' }),
        TypeError,
      );
      await assert.rejects(store.transaction(fn, { retries: -1 }), TypeError);
      await assert.rejects(store.transaction(fn, { retries: 11 }), TypeError);
      await assert.rejects(store.transaction(fn, { retries: 1.5 }), TypeError);
      assert.equal(ran, 0);
    });

    it('retries fn after a RETRYABLE failure, up to `retries` times, and not other failures', async () => {
      const store = await open();
      const retryable = () => new StorageError(ErrorCode.RETRYABLE, 'lost a race');
      let tries = 0;
      const result = await store.transaction(
        async (tx) => {
          tries += 1;
          await tx.users.create(`try-${tries}`, 'h', 1);
          if (tries < 3) throw retryable();
          return 'done';
        },
        { retries: 2 },
      );
      assert.equal(result, 'done');
      assert.equal(tries, 3);
      assert.deepEqual(
        (await store.users.listPage(undefined, 10)).map((u) => u.name),
        ['try-3'],
        'the failed tries were rolled back',
      );

      tries = 0;
      await assert.rejects(
        store.transaction(
          async () => {
            tries += 1;
            throw retryable();
          },
          { retries: 2 },
        ),
        isStorage(ErrorCode.RETRYABLE),
      );
      assert.equal(tries, 3, 'one try and two retries');

      tries = 0;
      await assert.rejects(
        store.transaction(
          async () => {
            tries += 1;
            throw new StorageError(ErrorCode.CONFLICT, 'taken');
          },
          { retries: 5 },
        ),
        isStorage(ErrorCode.CONFLICT),
      );
      assert.equal(tries, 1, 'a conflict is not retried');

      tries = 0;
      await assert.rejects(
        store.transaction(async () => {
          tries += 1;
          throw retryable();
        }),
        isStorage(ErrorCode.RETRYABLE),
      );
      assert.equal(tries, 1, 'no retries unless asked');
    });
  });
}

describe('sqlite', () => {
  repositorySuite(sqliteBackend);

  it('uses WAL journaling', async () => {
    const file = freshFile();
    const store = await openSqliteStore({ file });
    openStores.push(store);
    await store.users.create('alice', 'h', 1_000);
    assert.ok(fs.existsSync(`${file}-wal`), 'a write leaves a -wal file while open');
    const raw = rawConnection(file);
    try {
      // WAL is persistent in the file header, so any connection reports it.
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      raw.close();
    }
  });

  it('opens :memory:', async () => {
    const store = await openStore({ database: ':memory:' });
    openStores.push(store);
    assert.equal(store.dialect, 'sqlite');
    assert.equal(await store.users.count(), 0);
  });

  it('reports an unopenable file as StorageError', async () => {
    await assert.rejects(
      openSqliteStore({ file: path.join(tmp, 'no-such-dir', 'x.sqlite') }),
      isStorage(ErrorCode.STORAGE),
    );
  });

  it('creates exactly the schema the shipped migrations created', async () => {
    const file = freshFile();
    await (await openSqliteStore({ file })).close();
    const raw = rawConnection(file);
    try {
      const rows = raw
        .prepare(
          "select type, name, sql from sqlite_master where name not like 'sqlite_%' order by type, name",
        )
        .all() as { type: string; name: string; sql: string }[];
      assert.deepEqual(
        rows.map((r) => [r.type, r.name, r.sql]),
        LATEST_SQLITE_SCHEMA,
      );
    } finally {
      raw.close();
    }
  });

  it('opens and works on a database that the shipped migrations made', async () => {
    // Built from the recorded DDL, not from today's migrations: what an existing relay's
    // switchboard.db holds.
    const file = freshFile();
    const raw = rawConnection(file);
    for (const [, , ddl] of [...SHIPPED_SQLITE_SCHEMA].sort(([a], [b]) =>
      a === 'table' ? -1 : b === 'table' ? 1 : 0,
    ))
      raw.exec(ddl);
    const insert = raw.prepare('insert into kysely_migration (name, timestamp) values (?, ?)');
    for (const name of ['0001_initial', '0002_invites'])
      insert.run(name, '2025-01-01T00:00:00.000Z');
    raw.prepare("insert into users (name, password_hash, created_at) values ('old', 'h', 1)").run();
    raw
      .prepare(
        "insert into remote_sessions (id, owner_id, kind, host_name, created_at, last_seen_at, status) values ('s1', 1, 'share', 'box', 1, 1, 'live')",
      )
      .run();
    raw.close();

    const store = await openSqliteStore({ file });
    openStores.push(store);
    assert.equal((await store.users.findByName('old'))?.createdAt, 1);
    const user = await store.users.create('new', 'h', 2);
    assert.equal(user?.id, 2);
    assert.equal(await store.users.create('new', 'h', 3), undefined);
    // Live before leases existed: nobody holds it, so it reads offline until its host is back.
    const old = await store.remoteSessions.find('s1', 2);
    assert.deepEqual([old?.status, old?.relayId, old?.leaseUntil], ['offline', null, null]);
    assert.equal(await store.remoteSessions.countHeld(1, 1, 2), 0);
    const check = rawConnection(file);
    try {
      assert.deepEqual(
        check.prepare('select name from kysely_migration order by name').all(),
        [
          { name: '0001_initial' },
          { name: '0002_invites' },
          { name: '0003_session_leases' },
          { name: '0004_device_revocation' },
          { name: '0005_session_tags' },
          { name: '0006_session_operators' },
          { name: '0007_audit_entries' },
          { name: '0008_device_prekeys' },
          { name: '0009_mailbox' },
          { name: '0010_broadcasts' },
          { name: '0011_ledger' },
        ],
        'only the new migrations ran',
      );
    } finally {
      check.close();
    }
  });

  it('maps SQLITE_BUSY to RETRYABLE, and a transaction retried past it commits', async () => {
    const file = freshFile();
    const store = await openSqliteStore({ file, busyTimeoutMs: 0 });
    openStores.push(store);
    const other = rawConnection(file);
    try {
      other.exec('begin immediate'); // another process holds the write lock
      await assert.rejects(store.users.create('alice', 'h', 1), isStorage(ErrorCode.RETRYABLE));
      await assert.rejects(
        store.transaction((tx) => tx.users.create('alice', 'h', 1)),
        isStorage(ErrorCode.RETRYABLE),
      );
      let tries = 0;
      const user = await store.transaction(
        async (tx) => {
          tries += 1;
          if (tries === 2) other.exec('commit'); // the other process finishes meanwhile
          return tx.users.create('alice', 'h', 1);
        },
        { retries: 3 },
      );
      assert.equal(tries, 2);
      assert.equal(user?.name, 'alice');
    } finally {
      if (other.inTransaction) other.exec('rollback');
      other.close();
    }
  });
});

describe('postgres', () => {
  before(async () => {
    pgServer = await startTestPostgres();
  });

  repositorySuite(postgresBackend);

  async function openPg(): Promise<{ store: Store; url: string }> {
    const url = await postgresBackend.fresh();
    const store = await openStore({ database: url });
    openStores.push(store);
    return { store, url };
  }

  it('uses identity keys, 64-bit times and byte-order names; leaves pg’s global int8 parser alone', async () => {
    const { url } = await openPg();
    const side = postgresBackend.side(url);
    try {
      const { rows } = await sql<{
        table_name: string;
        column_name: string;
        data_type: string;
        is_identity: string;
        collation_name: string | null;
      }>`select table_name, column_name, data_type, is_identity, collation_name
           from information_schema.columns
          where table_schema = 'public' and table_name not like 'kysely%'
            and (column_name in ('id', 'name', 'created_at'))
          order by table_name, column_name`.execute(side);
      const ids = rows.filter((r) => r.column_name === 'id');
      assert.deepEqual(
        ids.map((r) => [r.table_name, r.data_type, r.is_identity]),
        [
          ['audit_entries', 'integer', 'YES'],
          ['auth_tokens', 'integer', 'YES'],
          ['broadcasts', 'integer', 'YES'],
          ['devices', 'integer', 'YES'],
          ['invites', 'integer', 'YES'],
          ['mailbox', 'integer', 'YES'],
          ['remote_sessions', 'text', 'NO'],
          ['users', 'integer', 'YES'],
        ],
      );
      assert.ok(
        rows.filter((r) => r.column_name === 'created_at').every((r) => r.data_type === 'bigint'),
      );
      const byName = (t: string, c: string) =>
        rows.find((r) => r.table_name === t && r.column_name === c);
      assert.equal(byName('users', 'name')?.collation_name, 'C');
      assert.equal(byName('remote_sessions', 'id')?.collation_name, 'C');
    } finally {
      await side.destroy();
    }
    assert.equal(
      pg.types.getTypeParser(20, 'text')('42'),
      '42',
      'the global parser still gives strings',
    );
  });

  it('maps a serialization failure to RETRYABLE, and a retried transaction commits', async () => {
    const { store } = await openPg();
    const invite = (codeHash: string) =>
      store.invites.create({
        codeHash,
        createdBy: null,
        usesLeft: 1,
        expiresAt: 1_000,
        createdAt: 1,
      });

    // Write skew: each reads one invite and spends the other. Serializable cannot commit both.
    const skew = async (x: string, y: string, retries: number) => {
      await invite(x);
      await invite(y);
      const bothRead = barrier(2);
      const side = (read: string, write: string) =>
        store.transaction(
          async (tx) => {
            await tx.invites.findByHash(read);
            await bothRead();
            return tx.invites.consume(write, 10);
          },
          { isolation: 'serializable', retries },
        );
      return Promise.allSettled([side(x, y), side(y, x)]);
    };

    const once = await skew('a', 'b', 0);
    const lost = once.filter((o) => o.status === 'rejected');
    assert.equal(lost.length, 1, 'exactly one of the two loses');
    isStorage(ErrorCode.RETRYABLE)(lost[0]!.reason);

    const retried = await skew('c', 'd', 3);
    assert.deepEqual(
      retried.map((o) => o.status),
      ['fulfilled', 'fulfilled'],
    );
    assert.equal((await store.invites.findByHash('c'))?.usesLeft, 0);
    assert.equal((await store.invites.findByHash('d'))?.usesLeft, 0);
  });

  it('maps a deadlock to RETRYABLE', async () => {
    const { store } = await openPg();
    for (const codeHash of ['a', 'b'])
      await store.invites.create({
        codeHash,
        createdBy: null,
        usesLeft: 5,
        expiresAt: 1_000,
        createdAt: 1,
      });
    // Each locks one row, then waits for the other's: the detector ends one of them.
    const bothLocked = barrier(2);
    const side = (first: string, second: string) =>
      store.transaction(async (tx) => {
        await tx.invites.consume(first, 10);
        await bothLocked();
        return tx.invites.consume(second, 10);
      });
    const outcomes = await Promise.allSettled([side('a', 'b'), side('b', 'a')]);
    const lost = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(lost.length, 1);
    isStorage(ErrorCode.RETRYABLE)(lost[0]!.reason);
    const reason = (lost[0] as PromiseRejectedResult).reason as StorageError;
    assert.equal((reason.cause as { code?: string }).code, '40P01');
  });

  it('reports an unreachable server as StorageError, without the URL or its password', async () => {
    const url = `postgresql://relay:s3cret@/none?host=${encodeURIComponent(path.join(tmp, 'no-server'))}`;
    await assert.rejects(openPostgresStore({ url, connectTimeoutMs: 2_000 }), (err: unknown) => {
      isStorage(ErrorCode.STORAGE)(err);
      assert.doesNotMatch(String((err as Error).message), /s3cret|no-server/);
      return true;
    });
    await assert.rejects(openPostgresStore({ url: 'mysql://x' }), TypeError);
    await assert.rejects(openPostgresStore({ url, maxConnections: 0 }), TypeError);
  });
});

describe('database URLs', () => {
  it('redacts the password, in the user part or a parameter', () => {
    assert.equal(
      redactDatabaseUrl('postgres://relay:s3cret@db:5432/sb'),
      'postgres://relay:***@db:5432/sb',
    );
    assert.equal(
      redactDatabaseUrl('postgresql://relay:p@ss@db/sb'),
      'postgresql://relay:***@db/sb',
    );
    assert.equal(redactDatabaseUrl('postgres://relay@db/sb'), 'postgres://relay@db/sb');
    assert.equal(
      redactDatabaseUrl('postgres://relay:p/w@db/sb?application_name=a@b'),
      'postgres://relay:***@db/sb?application_name=a@b',
    );
    assert.equal(
      redactDatabaseUrl('postgres://db/sb?user=relay&password=s3cret&sslmode=require'),
      'postgres://db/sb?user=relay&password=***&sslmode=require',
    );
  });

  it('classifies driver codes: unique → CONFLICT, serialization/deadlock/busy → RETRYABLE', () => {
    const coded = (code: string) => Object.assign(new Error('driver'), { code });
    assert.equal(storageCodeOf(coded('23505')), ErrorCode.CONFLICT);
    assert.equal(storageCodeOf(coded('SQLITE_CONSTRAINT_UNIQUE')), ErrorCode.CONFLICT);
    assert.equal(storageCodeOf(coded('40001')), ErrorCode.RETRYABLE);
    assert.equal(storageCodeOf(coded('40P01')), ErrorCode.RETRYABLE);
    assert.equal(storageCodeOf(coded('SQLITE_BUSY')), ErrorCode.RETRYABLE);
    assert.equal(
      storageCodeOf(coded('23503')),
      ErrorCode.STORAGE,
      'a foreign key is not a conflict',
    );
    assert.equal(storageCodeOf(coded('SQLITE_CONSTRAINT_FOREIGNKEY')), ErrorCode.STORAGE);
    assert.equal(
      storageCodeOf(new Error('wrapped', { cause: coded('40001') })),
      ErrorCode.RETRYABLE,
    );
    assert.equal(storageCodeOf('not an error'), ErrorCode.STORAGE);
  });
});

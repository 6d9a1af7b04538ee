// Tests of the SQLite store against real database files in a temp dir.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { ErrorCode, StorageError } from '../protocol/errors.js';
import { migrations } from './migrations.js';
import type { Store } from './repositories.js';
import type { Database } from './schema.js';
import { openSqliteStore } from './sqlite.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-store-'));
const openStores: Store[] = [];
let fileCounter = 0;

after(async () => {
  await Promise.all(openStores.map((s) => s.close()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

function freshFile(): string {
  return path.join(tmp, `db-${++fileCounter}.sqlite`);
}

async function open(file = freshFile()): Promise<Store> {
  const store = await openSqliteStore({ file });
  openStores.push(store);
  return store;
}

/** A second, independent connection to the same file, for poking at it behind the store. */
function rawConnection(file: string): BetterSqlite3.Database {
  return new BetterSqlite3(file);
}

async function userAndDevice(store: Store, name = 'alice'): Promise<[number, number]> {
  const user = await store.users.create(name, 'hash', 1_000);
  assert.ok(user);
  const device = await store.devices.upsert(user.id, `key-${name}`, `fp-${name}`, 'laptop', 1_000);
  assert.ok(device);
  return [user.id, device.id];
}

describe('opening', () => {
  it('keeps data across reopen and does not re-run migrations', async () => {
    const file = freshFile();
    const first = await openSqliteStore({ file });
    await first.users.create('alice', 'h', 1_000);
    await first.close();
    await first.close(); // idempotent

    const raw = rawConnection(file);
    const before = raw.prepare('select name, timestamp from kysely_migration').all();
    raw.close();
    assert.deepEqual(
      before.map((r) => (r as { name: string }).name),
      Object.keys(migrations),
    );

    const second = await open(file);
    assert.equal((await second.users.findByName('alice'))?.passwordHash, 'h');
    assert.equal(await second.users.count(), 1);

    const raw2 = rawConnection(file);
    const afterReopen = raw2.prepare('select name, timestamp from kysely_migration').all();
    raw2.close();
    assert.deepEqual(afterReopen, before);
  });

  it('uses WAL journaling', async () => {
    const file = freshFile();
    const store = await open(file);
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
    const store = await open(':memory:');
    assert.equal(await store.users.count(), 0);
  });

  it('reports an unopenable file as StorageError', async () => {
    await assert.rejects(
      openSqliteStore({ file: path.join(tmp, 'no-such-dir', 'x.sqlite') }),
      (err: unknown) => err instanceof StorageError && err.code === ErrorCode.STORAGE,
    );
  });
});

describe('users', () => {
  it('creates, finds and refuses a duplicate name without throwing', async () => {
    const store = await open();
    const alice = await store.users.create('alice', 'h1', 1_000);
    assert.deepEqual(alice, { id: alice?.id, name: 'alice', passwordHash: 'h1', createdAt: 1_000 });
    assert.equal(await store.users.create('alice', 'h2', 2_000), undefined);
    assert.equal((await store.users.findByName('alice'))?.passwordHash, 'h1');
    assert.deepEqual(await store.users.findById(alice!.id), alice);
    assert.equal(await store.users.findById(9_999), undefined);
    assert.equal(await store.users.count(), 1);
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

  it('creates 200 users concurrently', async () => {
    const store = await open();
    const names = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const rows = await Promise.all(names.map((n) => store.users.create(n, 'h', 1_000)));
    assert.ok(rows.every((r) => r !== undefined));
    assert.equal(new Set(rows.map((r) => r!.id)).size, 200);
    assert.equal(await store.users.count(), 200);
  });
});

describe('devices', () => {
  it('upserts the same key for the same user to the same row, renaming it', async () => {
    const store = await open();
    const user = await store.users.create('alice', 'h', 1_000);
    const a = await store.devices.upsert(user!.id, 'KEY', 'FP', 'laptop', 1_000);
    const b = await store.devices.upsert(user!.id, 'KEY', 'FP', 'work laptop', 2_000);
    assert.equal(b?.id, a?.id);
    assert.equal(b?.name, 'work laptop');
    assert.equal(b?.createdAt, 1_000);
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
    assert.equal((await store.tokens.findByHash('aa'))?.revokedAt, 4_000, 'first revocation kept');

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

  it('enforces foreign keys, reporting StorageError', async () => {
    const store = await open();
    await assert.rejects(
      store.tokens.create({
        userId: 42,
        deviceId: 42,
        tokenHash: 'aa',
        createdAt: 0,
        lastUsedAt: 0,
        expiresAt: 1,
      }),
      (err: unknown) => err instanceof StorageError && err.code === ErrorCode.STORAGE,
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
    );
    assert.deepEqual(first, {
      id: 's1',
      ownerId: aliceId,
      ...fields,
      createdAt: 1_000,
      lastSeenAt: 1_000,
      status: 'live',
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
      },
      2_000,
    );
    assert.deepEqual(again, {
      id: 's1',
      ownerId: aliceId,
      kind: 'agent',
      hostName: 'box2',
      allow: ['carol'],
      viewers: ['bob'],
      createdAt: 1_000,
      lastSeenAt: 2_000,
      status: 'live',
    });

    assert.equal(
      await store.remoteSessions.register({ id: 's1', ownerId: bobId, ...fields }, 3_000),
      undefined,
    );
    assert.deepEqual(await store.remoteSessions.find('s1'), again, 'unchanged by the refusal');
  });

  it('marks live sessions offline, lists and deletes', async () => {
    const store = await open();
    const [ownerId] = await userAndDevice(store);
    await store.remoteSessions.register({ id: 'a', ownerId, ...fields }, 1_000);
    await store.remoteSessions.register({ id: 'b', ownerId, ...fields }, 2_000);
    await store.remoteSessions.register({ id: 'c', ownerId, ...fields }, 3_000);
    await store.remoteSessions.setStatus('c', 'closed', 3_500);

    assert.equal(await store.remoteSessions.markAllOffline(5_000), 2);
    const all = await store.remoteSessions.listAll();
    assert.deepEqual(
      all.map((s) => [s.id, s.status]),
      [
        ['a', 'offline'],
        ['b', 'offline'],
        ['c', 'closed'],
      ],
    );
    assert.equal(await store.remoteSessions.delete('a'), true);
    assert.equal(await store.remoteSessions.delete('a'), false);
    assert.equal(await store.remoteSessions.find('a'), undefined);
  });

  it('reads corrupt allow/viewers JSON as [] without throwing', async () => {
    const file = freshFile();
    const store = await open(file);
    const [ownerId] = await userAndDevice(store);
    await store.remoteSessions.register({ id: 's1', ownerId, ...fields }, 1_000);

    const other = new Kysely<Database>({
      dialect: new SqliteDialect({ database: rawConnection(file) }),
    });
    try {
      await sql`update remote_sessions set allow = ${'{not json'}, viewers = ${'[1, "x"]'} where id = ${'s1'}`.execute(
        other,
      );
    } finally {
      await other.destroy();
    }

    const raw = rawConnection(file);
    const stored = raw.prepare('select allow from remote_sessions where id = ?').get('s1');
    raw.close();
    assert.deepEqual(stored, { allow: '{not json' }, 'the corruption really is on disk');

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
});

describe('devices by key and tokens of others', () => {
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
      (err: unknown) => err instanceof StorageError,
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
});

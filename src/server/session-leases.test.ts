// SessionLeases: two relays sharing one SQLite file, a clock the test moves, and mocked timers.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it, mock } from 'node:test';
import type { RemoteSessionsRepo, Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite.js';
import { silentLogger } from './logger.js';
import { SessionLeases } from './session-leases.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-leases-'));
const stores: Store[] = [];
let files = 0;
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => mock.timers.reset());

const LEASE = { leaseMs: 30_000, renewMs: 10_000 };
const fields = { kind: 'agent' as const, hostName: 'box', allow: [], viewers: [] };

/** Two relays' views of one database, and the clock they share. */
async function twoRelays() {
  const clock = { now: 1_000_000 };
  const now = () => clock.now;
  const store = await openSqliteStore({ file: join(dir, `db-${++files}.sqlite`) });
  stores.push(store);
  const owner = await store.users.create('alice', 'hash', now());
  assert.ok(owner);
  const a = new SessionLeases(store, now, silentLogger, { ...LEASE, relayId: 'relay-a' });
  const b = new SessionLeases(store, now, silentLogger, { ...LEASE, relayId: 'relay-b' });
  return { clock, store, ownerId: owner.id, a, b, viaA: a.bind(store), viaB: b.bind(store) };
}

describe('SessionLeases', () => {
  it('registers under its own lease; unrenewed, the session reads offline once the lease runs out', async () => {
    const { clock, store, ownerId, viaA } = await twoRelays();
    const row = await viaA.remoteSessions.register({ id: 's1', ownerId, ...fields }, clock.now);
    assert.deepEqual([row?.relayId, row?.leaseUntil], ['relay-a', clock.now + 30_000]);

    clock.now += 29_999;
    assert.equal((await viaA.remoteSessions.find('s1'))?.status, 'live');
    assert.equal(await viaA.remoteSessions.countHeld(ownerId, clock.now), 1);
    clock.now += 1;
    assert.equal((await viaA.remoteSessions.find('s1'))?.status, 'offline');
    assert.deepEqual(
      (await viaA.remoteSessions.listAll()).map((r) => r.status),
      ['offline'],
    );
    assert.equal(await viaA.remoteSessions.countHeld(ownerId, clock.now), 0);
    assert.equal((await store.remoteSessions.find('s1'))?.status, 'live', 'as stored');
  });

  it('renews all of its leases, and only its own', async () => {
    const { clock, ownerId, a, viaA, viaB } = await twoRelays();
    await viaA.remoteSessions.register({ id: 'a1', ownerId, ...fields }, clock.now);
    await viaB.remoteSessions.register({ id: 'b1', ownerId, ...fields }, clock.now);
    clock.now += 20_000;
    await a.renew();
    clock.now += 20_000; // 40 s after registering: b1's lease ran out, a1's was renewed at 20 s
    const rows = await viaA.remoteSessions.listAll();
    assert.deepEqual(
      rows.map((r) => [r.id, r.status]),
      [
        ['a1', 'live'],
        ['b1', 'offline'],
      ],
    );
  });

  it("stops by releasing its own leases; another relay's sessions stay live", async () => {
    const { clock, ownerId, a, viaA, viaB } = await twoRelays();
    await viaA.remoteSessions.register({ id: 'a1', ownerId, ...fields }, clock.now);
    await viaB.remoteSessions.register({ id: 'b1', ownerId, ...fields }, clock.now);
    assert.equal(await a.stop(), 1);
    const rows = await viaB.remoteSessions.listAll();
    assert.deepEqual(
      rows.map((r) => [r.id, r.status, r.relayId]),
      [
        ['a1', 'offline', null],
        ['b1', 'live', 'relay-b'],
      ],
    );
  });

  it('on a host disconnect releases the session unless another relay registered it since', async () => {
    const { clock, ownerId, a, viaA, viaB } = await twoRelays();
    await viaA.remoteSessions.register({ id: 's1', ownerId, ...fields }, clock.now);
    await viaA.remoteSessions.register({ id: 's2', ownerId, ...fields }, clock.now);
    // The host of s1 reconnected through relay B before A noticed its old connection died.
    await viaB.remoteSessions.register({ id: 's1', ownerId, ...fields }, clock.now);
    await a.release('s1'); // what the relay calls on a host's disconnect
    await viaA.remoteSessions.setStatus('s1', 'offline', clock.now); // what handlers call
    await a.release('s2');
    const rows = await viaA.remoteSessions.listAll();
    assert.deepEqual(
      rows.map((r) => [r.id, r.status, r.relayId]),
      [
        ['s1', 'live', 'relay-b'],
        ['s2', 'offline', null],
      ],
    );
  });

  it('renews every renewMs on its timer, and not after stop', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const calls: unknown[][] = [];
    const repo: Partial<RemoteSessionsRepo> = {
      renewLeases: (...args) => {
        calls.push(args);
        return Promise.resolve(0);
      },
      releaseLeases: () => Promise.resolve(0),
    };
    let now = 5_000;
    const leases = new SessionLeases({ remoteSessions: repo } as Store, () => now, silentLogger, {
      ...LEASE,
      relayId: 'r',
    });
    leases.start();
    mock.timers.tick(9_999);
    assert.equal(calls.length, 0);
    now = 15_000;
    mock.timers.tick(1);
    assert.deepEqual(calls, [['r', 15_000, 45_000]]);
    await leases.stop();
    mock.timers.tick(30_000);
    assert.equal(calls.length, 1);
  });

  it('retries a release that failed before the next renewal, unless the host registered again', async () => {
    const released: string[] = [];
    let failing = true;
    const repo: Partial<RemoteSessionsRepo> = {
      releaseLease: (id) => {
        if (failing) return Promise.reject(new Error('database down'));
        released.push(id);
        return Promise.resolve(true);
      },
      renewLeases: () => Promise.resolve(0),
      register: () => Promise.resolve(undefined),
    };
    const store = { remoteSessions: repo } as Store;
    const leases = new SessionLeases(store, () => 1, silentLogger, LEASE);
    await leases.release('gone');
    await leases.release('back');
    await leases.bind(store).remoteSessions.register({ id: 'back', ownerId: 1, ...fields }, 1);
    failing = false;
    await leases.renew();
    assert.deepEqual(released, ['gone']);
    await leases.renew();
    assert.deepEqual(released, ['gone'], 'released once');
  });

  it('refuses a renewal interval not shorter than the lease', () => {
    const store = {} as Store;
    assert.throws(
      () => new SessionLeases(store, Date.now, silentLogger, { leaseMs: 10_000, renewMs: 10_000 }),
      RangeError,
    );
    assert.throws(
      () => new SessionLeases(store, Date.now, silentLogger, { renewMs: 0 }),
      RangeError,
    );
  });
});

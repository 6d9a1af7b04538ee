// Attacks on accounts (issue 6, findings 3 and 4): a sign-up flood must not starve logins or
// break `users`; guessing from many addresses must not lock the owner's own device out.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import { MAX_FRAME_BYTES, USERS_PAGE_DEFAULT, USERS_PAGE_MAX } from '../src/protocol/limits.js';
import { DEFAULT_HASH_POOL_OPTIONS } from '../src/server/hash-pool.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import {
  FAST_ARGON2,
  httpsGet,
  makeTempDir,
  makeUser,
  newDevice,
  Opened,
  runCli,
  savedLogin,
  type TestRelay,
} from './helpers.js';

const opened = new Opened();
after(() => opened.close());

/** Settles to the error code, or 'OK'; keeps the error for inspection. */
async function outcome(p: Promise<unknown>): Promise<{ code: string; error?: SwitchboardError }> {
  try {
    await p;
    return { code: 'OK' };
  } catch (err) {
    if (err instanceof SwitchboardError) return { code: err.code, error: err };
    throw err;
  }
}

describe('finding 3: a sign-up flood', () => {
  it('never starves logins: every login within 2 s, floods THROTTLED with a retry-after, the hash queue bounded', async (t) => {
    // Each flooding connection comes from its own address, as a botnet's would; the real user's
    // connections from 127.0.0.1. The real Argon2 cost: the flood is about hashing.
    const floodAddresses: string[] = [];
    const r = await opened.relay({
      addressOf: (req) => floodAddresses.shift() ?? req.socket.remoteAddress ?? '?',
    });
    const PASSWORD = 'alice-correct-horse';
    const setup = await opened.client(r);
    await setup.request('auth.signup', { user: 'alice', password: PASSWORD });
    setup.close();

    const FLOODERS = 10;
    const FLOOD_MS = 3_000;
    const PER_SECOND = 45; // under the per-connection control rate of 50/s
    for (let i = 0; i < FLOODERS; i++) floodAddresses.push(`198.51.100.${i + 1}`);
    const flooders = [];
    for (let i = 0; i < FLOODERS; i++) flooders.push(await opened.client(r));

    const results: Array<Promise<{ code: string; error?: SwitchboardError }>> = [];
    let flooding = true;
    const floodStart = Date.now();
    const floods = flooders.map(async (c, i) => {
      for (
        let n = 0;
        Date.now() - floodStart < FLOOD_MS && n < (FLOOD_MS / 1000) * PER_SECOND;
        n++
      ) {
        results.push(
          outcome(c.request('auth.signup', { user: `bot${i}x${n}`, password: 'bot-password-123' })),
        );
        await new Promise((resolve) => setTimeout(resolve, 1000 / PER_SECOND));
      }
    });
    let maxQueuedSignups = 0;
    let maxRunning = 0;
    const sampler = setInterval(() => {
      const { hashes } = r.relay.stats();
      maxQueuedSignups = Math.max(maxQueuedSignups, hashes.queuedSignups);
      maxRunning = Math.max(maxRunning, hashes.running);
    }, 10);

    // The real user logs in again and again while the flood runs, each time on a new connection.
    const loginTimes: number[] = [];
    const logins = (async () => {
      // Let the flood build up first.
      while (results.length < 200 && Date.now() - floodStart < FLOOD_MS)
        await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; flooding && i < 20; i++) {
        const began = Date.now();
        const c = await opened.client(r);
        const login = await c.request('auth.login', {
          user: 'alice',
          password: PASSWORD,
          device: newDevice(),
        });
        loginTimes.push(Date.now() - began);
        assert.equal(login.user, 'alice');
        c.close();
      }
    })();
    await Promise.all(floods);
    flooding = false;
    await logins;
    const settled = await Promise.all(results);
    clearInterval(sampler);

    const ok = settled.filter((s) => s.code === 'OK').length;
    const throttled = settled.filter((s) => s.code === ErrorCode.THROTTLED);
    const other = settled.filter((s) => s.code !== 'OK' && s.code !== ErrorCode.THROTTLED);
    t.diagnostic(
      `${settled.length} sign-ups: ${ok} created, ${throttled.length} THROTTLED; ` +
        `logins took ${loginTimes.join(', ')} ms; hash queue ${JSON.stringify(r.relay.stats().hashes)}`,
    );
    assert.ok(loginTimes.length >= 3, `only ${loginTimes.length} logins during the flood`);
    assert.ok(
      loginTimes.every((ms) => ms < 2_000),
      `login times during the flood: ${loginTimes.join(', ')} ms`,
    );
    assert.ok(settled.length >= 500, `the flood sent only ${settled.length} sign-ups`);
    assert.deepEqual(
      other.map((s) => s.code),
      [],
      'no sign-up failed other than THROTTLED',
    );
    assert.ok(
      throttled.length > settled.length / 2,
      `${throttled.length} of ${settled.length} THROTTLED`,
    );
    assert.ok(
      throttled.every((s) => Number.isInteger(s.error?.retryAfterMs) && s.error!.retryAfterMs! > 0),
      'every THROTTLED refusal carries a retry-after',
    );
    // The relay-wide budget: a burst of 60, then 1 a second.
    assert.ok(ok <= 60 + FLOOD_MS / 1000 + 2, `${ok} sign-ups got through`);
    const { hashes } = r.relay.stats();
    const bound =
      DEFAULT_HASH_POOL_OPTIONS.concurrency +
      DEFAULT_HASH_POOL_OPTIONS.maxQueued.login +
      DEFAULT_HASH_POOL_OPTIONS.maxQueued.signup;
    assert.ok(hashes.peakPending <= bound, `peak ${hashes.peakPending} hashes pending`);
    assert.ok(maxQueuedSignups <= DEFAULT_HASH_POOL_OPTIONS.maxQueued.signup);
    assert.ok(maxRunning <= DEFAULT_HASH_POOL_OPTIONS.concurrency);
    for (const c of flooders) c.close();
  });
});

describe('finding 3: `users` with more accounts than one page', () => {
  const TOTAL = 1_500;
  let r: TestRelay;
  let home: string;

  it('keeps the default reply small and lists everyone with --all', async () => {
    // The accounts are written straight into the database before the relay starts (fast).
    const dataDir = makeTempDir('switchboard-relay-');
    const store = await openSqliteStore({ file: join(dataDir, 'switchboard.db') });
    await store.transaction(async (tx) => {
      for (let i = 0; i < TOTAL; i++)
        await tx.users.create(`member${String(i).padStart(4, '0')}`, 'not-a-hash', 1_000);
    });
    await store.close();
    r = await opened.relay({ dataDir, auth: { argon2: FAST_ARGON2 } });
    home = await makeUser(r, 'pager', 'pager-password-1');

    const mine = await runCli(['users', '--json'], { home });
    assert.equal(mine.code, 0, mine.stderr);
    const shown = JSON.parse(mine.stdout) as Array<{ user: string; online: boolean }>;
    assert.ok(shown.length <= USERS_PAGE_DEFAULT, `the default listing has ${shown.length} users`);
    assert.ok(shown.some((u) => u.user === 'pager' && u.online));

    const all = await runCli(['users', '--all', '--json'], { home });
    assert.equal(all.code, 0, all.stderr);
    const names = (JSON.parse(all.stdout) as Array<{ user: string }>).map((u) => u.user);
    assert.equal(names.length, TOTAL + 1);
    assert.equal(new Set(names).size, TOTAL + 1, 'no one listed twice');
    assert.deepEqual(names, [...names].sort());
  });

  it('lists by default the people one deals with, online or not', async () => {
    // owner2 lets pager into a session; pager names member0007 in one of hers. Both offline.
    const owner2 = await makeUser(r, 'owner2', 'owner2-password-1');
    const register = async (home: string, sessionId: string, names: object) => {
      const c = await opened.client(r, home);
      await c.request('auth.token', { token: savedLogin(home).token });
      await c.request('session.register', {
        sessionId,
        kind: 'agent',
        instance: `instance-${sessionId}-0123456789`,
        hostName: 'box',
        allow: [],
        viewers: [],
        ...names,
      });
      c.close();
    };
    await register(owner2, 'owner2-box', { allow: ['pager'] });
    await register(home, 'pager-box', { viewers: ['member0007'] });
    const mine = await runCli(['users', '--json'], { home });
    assert.equal(mine.code, 0, mine.stderr);
    const names = (JSON.parse(mine.stdout) as Array<{ user: string }>).map((u) => u.user);
    assert.ok(names.includes('owner2') && names.includes('member0007'), names.join());
    assert.equal(names.includes('member0008'), false);
  });

  it('answers one page per request, far below the frame limit', async () => {
    const c = await opened.client(r, home);
    await c.request('auth.token', { token: savedLogin(home).token });
    const page = await c.request('users.list', { all: true, limit: USERS_PAGE_MAX });
    assert.equal(page.users.length, USERS_PAGE_MAX);
    assert.equal(page.next, page.users.at(-1)?.user);
    assert.ok(JSON.stringify(page).length < MAX_FRAME_BYTES / 4);
    const last = await c.request('users.list', { all: true, after: 'member1499' });
    assert.deepEqual(
      last.users.map((u) => u.user),
      ['owner2', 'pager'],
    );
    assert.equal(last.next, undefined);
    c.close();
  });

  it('pages GET /v1/users too', async () => {
    const token = savedLogin(home).token;
    const get = (path: string) =>
      httpsGet(r.port, path, { authorization: `Bearer ${token}` }).then((res) => ({
        ...res,
        json: JSON.parse(res.body),
      }));
    const first = await get('/v1/users?limit=50');
    assert.equal(first.status, 200, first.body);
    assert.equal(first.json.users.length, 50);
    assert.equal(first.json.next, 'member0049');
    const second = await get(`/v1/users?limit=50&after=${first.json.next}`);
    assert.equal(second.json.users[0].user, 'member0050');
    const whole = await get('/v1/users');
    assert.equal(whole.json.users.length, USERS_PAGE_DEFAULT);
    assert.equal((await get('/v1/users?limit=100000')).status, 400);
  });
});

describe('finding 4: guessing from many addresses', () => {
  it("throttles the account, yet the owner's registered device logs in at once; an unregistered one does not", async () => {
    let address = '203.0.113.5'; // the owner's usual address
    // The relay's clock stands still, so no throttle delay can lapse at the test's pace; the
    // default policies are the ones under test.
    const clock = Date.now();
    const r = await opened.relay({
      addressOf: () => address,
      now: () => clock,
      auth: { argon2: FAST_ARGON2 },
    });
    const PASSWORD = 'olive-correct-horse';
    const owner = await makeUser(r, 'olive', PASSWORD);

    // 30 guesses, each from another address: no address or address+account record trips.
    const codes: string[] = [];
    for (let i = 0; i < 30; i++) {
      address = `198.51.100.${i + 1}`;
      const c = await opened.client(r);
      const { code } = await outcome(
        c.request('auth.login', { user: 'olive', password: `guess-${i}`, device: newDevice() }),
      );
      codes.push(code);
      c.close();
    }
    assert.equal(codes.filter((c) => c === ErrorCode.BAD_CREDENTIALS).length, 6, codes.join());
    assert.equal(codes.filter((c) => c === ErrorCode.THROTTLED).length, 24);

    // A device never registered to olive, with the right password: still throttled account-wide.
    address = '192.0.2.99';
    const stranger = await runCli(['login', '--user', 'olive', '--password-stdin'], {
      home: makeTempDir('switchboard-home-'),
      stdin: PASSWORD,
      env: { SWITCHBOARD_SERVER: r.server, SWITCHBOARD_FINGERPRINT: r.fingerprint },
    });
    assert.equal(stranger.code, 3, stranger.stderr);
    assert.match(stranger.stderr, /\[THROTTLED\] \(try again in \d+ s\)/);

    // Her own device (the CLI proves its key over the hello challenge): in at once.
    address = '203.0.113.5';
    const began = Date.now();
    const mine = await runCli(['login', '--user', 'olive', '--password-stdin'], {
      home: owner,
      stdin: PASSWORD,
    });
    assert.equal(mine.code, 0, mine.stderr);
    assert.ok(Date.now() - began < 10_000);

    // From a new address too (she travels), and again right after.
    address = '192.0.2.200';
    const travelling = await runCli(['login', '--user', 'olive', '--password-stdin'], {
      home: owner,
      stdin: PASSWORD,
    });
    assert.equal(travelling.code, 0, travelling.stderr);
  });

  it('gives every connection its own 32-byte challenge and refuses a forged proof', async () => {
    const r = await opened.relay({ auth: { argon2: FAST_ARGON2 } });
    await makeUser(r, 'percy', 'percy-password-1');
    const a = await opened.client(r);
    const b = await opened.client(r);
    assert.equal(a.challenge?.length, 32);
    assert.notDeepEqual(a.challenge, b.challenge);
    const { code } = await outcome(
      a.request('auth.login', {
        user: 'percy',
        password: 'percy-password-1',
        device: newDevice(),
        deviceProof: Buffer.alloc(64).toString('base64'),
      }),
    );
    assert.equal(code, ErrorCode.BAD_CREDENTIALS);
    // The relay is fine afterwards.
    const ok = await b.request('auth.login', {
      user: 'percy',
      password: 'percy-password-1',
      device: newDevice(),
    });
    assert.equal(ok.user, 'percy');
    a.close();
    b.close();
  });
});

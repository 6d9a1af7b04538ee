// Integration tests of the platform layer: accounts, trust, abuse, restarts and shutdown over real TLS.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { RelayClient } from '../src/client/relay-client.js';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import {
  HARD_MAX_FRAME_BYTES,
  MAX_FRAME_BYTES,
  MAX_PROTOCOL_ERRORS,
  PROTOCOL_VERSION,
} from '../src/protocol/limits.js';
import type { RelayEvent } from '../src/protocol/messages.js';
import { createLogger } from '../src/server/logger.js';
import { CERT_FILE_NAME, KEY_FILE_NAME } from '../src/server/certificate.js';
import {
  FAST_ARGON2,
  httpsGet,
  loginUser,
  makeTempDir,
  makeUser,
  newDevice,
  Opened,
  openRawTls,
  RawWs,
  runCli,
  savedLogin,
  startServeProcess,
  waitFor,
  type TestRelay,
} from './helpers.js';

// Recorded rather than thrown so one stray rejection fails the run at the end instead of crashing it.
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => {
  unhandled.push(reason);
});

/** Every relay and client a test opens, closed in after() even if the test failed half-way. */
const opened = new Opened();

after(async () => {
  await opened.close();
  assert.deepEqual(unhandled, [], 'unhandled promise rejections during the tests');
});

/** Asserts that `promise` rejects with a SwitchboardError carrying `code` (and `message`, if given). */
async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof SwitchboardError, `expected a SwitchboardError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

async function usersOnline(c: RelayClient): Promise<Map<string, boolean>> {
  const { users } = await c.request('users.list', { all: true });
  return new Map(users.map((u) => [u.user, u.online]));
}

const PW = {
  alice: 'alice-correct-horse',
  bob: 'bob-battery-staple',
  carol: 'carol-tr0ub4dor&3',
  dave: 'dave-long-password',
  erin: 'erin-secret-passphrase',
};

describe('1-2. accounts through the CLI', () => {
  let r: TestRelay;
  before(async () => {
    // Default Argon2 cost: these few logins are the real thing. The relay's clock stands still,
    // so a throttle delay cannot lapse while the test is still guessing.
    const clock = Date.now();
    r = await opened.relay({ now: () => clock });
  });

  it('1. signup → login → whoami → users, with one user online and one offline', async () => {
    const alice = await makeUser(r, 'alice', PW.alice);
    const login = await runCli(['login', '--user', 'alice', '--password-stdin'], {
      home: alice,
      stdin: PW.alice,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, new RegExp(`Logged in as alice on ${r.server}`));
    assert.equal(statSync(join(alice, 'login.json')).mode & 0o777, 0o600);

    const who = await runCli(['whoami', '--json'], { home: alice });
    assert.equal(who.code, 0, who.stderr);
    const me = JSON.parse(who.stdout) as { user: string; server: string };
    assert.equal(me.user, 'alice');
    assert.equal(me.server, r.server);

    const bob = await makeUser(r, 'bob', PW.bob);
    await makeUser(r, 'carol', PW.carol); // logged in, but holds no connection
    const bobLive = await opened.client(r, bob);
    await bobLive.request('auth.token', { token: savedLogin(bob).token });

    const listed = await runCli(['users', '--all', '--json'], { home: alice });
    assert.equal(listed.code, 0, listed.stderr);
    const users = JSON.parse(listed.stdout) as Array<{ user: string; online: boolean }>;
    const online = new Map(users.map((u) => [u.user, u.online]));
    assert.deepEqual([...online].sort(), [
      ['alice', true], // her own `users` command is connected while it asks
      ['bob', true],
      ['carol', false],
    ]);
    const table = await runCli(['users', '--all'], { home: alice });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^bob\s+online\s+now$/m);
    assert.match(table.stdout, /^carol\s+offline\s/m);
    // Without --all: who is online (and whom she deals with), not every account.
    const mine = await runCli(['users'], { home: alice });
    assert.equal(mine.code, 0, mine.stderr);
    assert.match(mine.stdout, /^bob\s+online\s+now$/m);
    assert.doesNotMatch(mine.stdout, /^carol\s/m);
    bobLive.close();
  });

  it('2. a wrong password exits 3 and writes no login; repeated failures are THROTTLED', async () => {
    const fresh = makeTempDir('switchboard-home-');
    const wrong = await runCli(
      ['login', '--user', 'alice', '--password-stdin', '--server', r.server],
      { home: fresh, stdin: 'not-her-password', env: { SWITCHBOARD_FINGERPRINT: r.fingerprint } },
    );
    assert.equal(wrong.code, 3, wrong.stderr);
    assert.match(wrong.stderr, /wrong user name or password/);
    assert.match(wrong.stderr, /BAD_CREDENTIALS/);
    assert.equal(existsSync(join(fresh, 'login.json')), false);

    // An existing login is left exactly as it was.
    const alice = await loginUser(r, 'alice', PW.alice);
    const before = readFileSync(join(alice, 'login.json'));
    const again = await runCli(['login', '--user', 'alice', '--password-stdin'], {
      home: alice,
      stdin: 'still-not-her-password',
    });
    assert.equal(again.code, 3, again.stderr);
    assert.deepEqual(readFileSync(join(alice, 'login.json')), before);

    // The throttle, driven directly: its own user so the CLI failures above do not count.
    const home = makeTempDir('switchboard-home-');
    const c = await opened.client(r, home);
    await c.request('auth.signup', { user: 'dave', password: PW.dave });
    const device = newDevice();
    for (let i = 1; i <= 4; i++) {
      await rejectsWith(
        c.request('auth.login', { user: 'dave', password: `guess-${i}-wrong`, device }),
        ErrorCode.BAD_CREDENTIALS,
      );
    }
    // Even the right password is refused while the delay runs: the throttle must not be an oracle.
    const refusal = await c.request('auth.login', { user: 'dave', password: PW.dave, device }).then(
      () => assert.fail('the right password got in during the delay'),
      (err: unknown) => err as SwitchboardError,
    );
    assert.equal(refusal.code, ErrorCode.THROTTLED, refusal.message);
    assert.ok((refusal.retryAfterMs ?? 0) > 0, 'the refusal says how long to wait');
    c.close();
  });
});

describe('one user per connection', () => {
  it('refuses a second login as another user without issuing that user a token', async () => {
    const r = await opened.relay({ auth: { argon2: FAST_ARGON2 } }); // hash cost is not under test
    const c = await opened.client(r, makeTempDir('switchboard-home-'));
    await c.request('auth.signup', { user: 'alice', password: PW.alice });
    await c.request('auth.signup', { user: 'bob', password: PW.bob });
    await c.request('auth.login', { user: 'alice', password: PW.alice, device: newDevice() });
    await rejectsWith(
      c.request('auth.login', { user: 'bob', password: PW.bob, device: newDevice() }),
      ErrorCode.BAD_CREDENTIALS,
      /already logged in as another user/,
    );
    assert.equal((await c.request('whoami', {})).user, 'alice');
    c.close();
    // WAL lets this read-only handle look while the relay holds the database open.
    const db = new BetterSqlite3(join(r.dataDir, 'switchboard.db'), { readonly: true });
    try {
      const row = db
        .prepare(
          'SELECT count(*) AS n FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = ?',
        )
        .get('bob') as { n: number };
      assert.equal(row.n, 0, 'no token was issued for the refused login');
    } finally {
      db.close();
    }
  });
});

describe('3. token expiry, revocation and logout --all', () => {
  it('an idle token expires: whoami exits 3 with TOKEN_EXPIRED and says to log in again', async () => {
    let clock = Date.now();
    const tokenIdleMs = 60_000;
    const r = await opened.relay({ now: () => clock, auth: { tokenIdleMs } });
    const home = await makeUser(r, 'alice', PW.alice);
    const ok = await runCli(['whoami'], { home });
    assert.equal(ok.code, 0, ok.stderr);

    clock += tokenIdleMs + 1_000;
    const expired = await runCli(['whoami'], { home });
    assert.equal(expired.code, 3, expired.stderr);
    assert.match(expired.stderr, /TOKEN_EXPIRED/);
    assert.match(expired.stderr, /log in again/);
  });

  it('a logged-out token is TOKEN_REVOKED; logout --all ends the logins of every home', async () => {
    const r = await opened.relay();
    const home = await makeUser(r, 'bob', PW.bob);
    const { token } = savedLogin(home);
    const out = await runCli(['logout'], { home });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^Logged out\.$/m);
    assert.equal(existsSync(join(home, 'login.json')), false);
    const c = await opened.client(r, home);
    await rejectsWith(c.request('auth.token', { token }), ErrorCode.TOKEN_REVOKED);
    c.close();

    const laptop = await makeUser(r, 'erin', PW.erin);
    const desktop = await loginUser(r, 'erin', PW.erin);
    for (const h of [laptop, desktop]) {
      const who = await runCli(['whoami'], { home: h });
      assert.equal(who.code, 0, who.stderr);
    }
    const all = await runCli(['logout', '--all'], { home: laptop });
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /Logged out everywhere \(2 login\(s\) revoked\)/);
    const gone = await runCli(['whoami'], { home: desktop });
    assert.equal(gone.code, 3, gone.stderr);
    assert.match(gone.stderr, /TOKEN_REVOKED/);
  });
});

describe('4. trusting the relay certificate', () => {
  let r: TestRelay;
  before(async () => {
    r = await opened.relay();
  });

  it('refuses an unpinned relay without --fingerprint (exit 4, names --fingerprint)', async () => {
    const home = makeTempDir('switchboard-home-');
    const res = await runCli(
      ['signup', '--user', 'alice', '--password-stdin', '--server', r.server],
      {
        home,
        stdin: PW.alice,
      },
    );
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /TRUST_REQUIRED/);
    assert.match(res.stderr, /--fingerprint/);
    assert.match(res.stderr, new RegExp(r.fingerprint));
    assert.equal(existsSync(join(home, 'known_servers.json')), false, 'nothing was pinned');
  });

  it('logs in with --ca naming the relay certificate, for localhost:PORT', async () => {
    // Runs before the certificate is replaced below; a CA login to the new cert is the same path.
    await makeUser(r, 'carol', PW.carol);
    const home = makeTempDir('switchboard-home-');
    const ca = join(r.dataDir, CERT_FILE_NAME);
    const server = `localhost:${r.port}`;
    const res = await runCli(
      ['login', '--user', 'carol', '--password-stdin', '--server', server, '--ca', ca],
      { home, stdin: PW.carol },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`Logged in as carol on ${server}`));
    const who = await runCli(['whoami', '--json', '--ca', ca], { home });
    assert.equal(who.code, 0, who.stderr);
    assert.equal((JSON.parse(who.stdout) as { user: string }).user, 'carol');
    // A CA that did not sign the relay's certificate is refused, not silently pinned around.
    const other = await opened.relay();
    const bad = await runCli(['whoami', '--ca', join(other.dataDir, CERT_FILE_NAME)], { home });
    assert.equal(bad.code, 4, bad.stderr);
    assert.match(bad.stderr, /did not verify against --ca/);
  });

  it('refuses loudly (CERT_CHANGED) when a pinned relay comes back with another certificate', async () => {
    const home = await makeUser(r, 'alice', PW.alice);
    const old = r.fingerprint;
    await r.relay.close();
    rmSync(join(r.dataDir, CERT_FILE_NAME));
    rmSync(join(r.dataDir, KEY_FILE_NAME));
    await r.restart();
    assert.notEqual(r.fingerprint, old, 'the restarted relay has a new certificate');

    const res = await runCli(['whoami'], { home });
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /CERT_CHANGED/);
    assert.match(res.stderr, /WARNING: RELAY CERTIFICATE HAS CHANGED/);
    assert.match(res.stderr, new RegExp(old));
    assert.match(res.stderr, new RegExp(r.fingerprint));
    // The pin still holds the old fingerprint: nothing was silently re-trusted.
    const pins = readFileSync(join(home, 'known_servers.json'), 'utf8');
    assert.ok(pins.includes(old) && !pins.includes(r.fingerprint));
  });
});

/** Writes `text` on a plain TCP connection to the TLS port; resolves with what came back once it closes. */
function plaintext(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the relay kept a plaintext connection open for 10 s'));
    }, 10_000);
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', () => undefined); // a reset is an acceptable way to refuse
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.write(text);
  });
}

describe('5. plaintext on the TLS port', () => {
  it('closes plaintext HTTP and a plaintext WebSocket upgrade, and stays healthy', async () => {
    const r = await opened.relay();
    const http = await plaintext(r.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.doesNotMatch(http, /HTTP\/1\.1/, 'no HTTP answer over plaintext');
    const upgrade = await plaintext(
      r.port,
      'GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    assert.doesNotMatch(upgrade, /HTTP\/1\.1|101/, 'no upgrade over plaintext');
    const health = await httpsGet(r.port, '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
  });
});

describe('6. malformed and abusive frames on a raw WebSocket', () => {
  let r: TestRelay;
  before(async () => {
    r = await opened.relay();
  });

  it('answers each bad frame with the right error code and keeps the connection usable', async () => {
    const ws = await RawWs.open(r.port);
    const cases: Array<[string, string | object, string, number | undefined]> = [
      ['malformed JSON', '{"type": "hello", ', ErrorCode.BAD_FRAME, undefined],
      ['unknown type', { type: 'no.such.thing', id: 1 }, ErrorCode.UNKNOWN_TYPE, 1],
      [
        'schema failure',
        { type: 'hello', id: 2, version: 'one', client: 'x' },
        ErrorCode.INVALID_MESSAGE,
        2,
      ],
      ['request before hello', { type: 'whoami', id: 3 }, ErrorCode.HELLO_REQUIRED, 3],
      [
        'oversized frame',
        JSON.stringify({ type: 'hello', id: 4, version: 1, client: 'x'.repeat(MAX_FRAME_BYTES) }),
        ErrorCode.FRAME_TOO_LARGE,
        undefined,
      ],
    ];
    for (const [name, frame, code, id] of cases) {
      const reply = await ws.exchange(frame);
      assert.equal(reply['type'], 'error', name);
      assert.equal(reply['code'], code, `${name}: ${String(reply['message'])}`);
      assert.equal(reply['id'], id, name);
      assert.equal(typeof reply['message'], 'string');
      assert.ok(!String(reply['message']).includes('    at '), 'no stack trace to the peer');
    }
    const hello = await ws.exchange({
      type: 'hello',
      id: 5,
      version: PROTOCOL_VERSION,
      client: 'raw',
    });
    assert.equal(hello['type'], 'reply');
    assert.equal(hello['id'], 5);
    assert.equal((hello['result'] as { version: number }).version, PROTOCOL_VERSION);
    ws.close();
  });

  it('closes with 1009 on a frame over the hard limit', async () => {
    const ws = await RawWs.open(r.port);
    ws.send(Buffer.alloc(HARD_MAX_FRAME_BYTES + 1, 0x20).toString());
    const { code } = await ws.closed;
    assert.equal(code, 1009);
  });

  it('closes with 1008 after too many protocol errors', async () => {
    const ws = await RawWs.open(r.port);
    for (let i = 0; i < MAX_PROTOCOL_ERRORS; i++) ws.send(`garbage ${i}`);
    const closed = await ws.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'too many protocol errors');
  });

  it('is still healthy afterwards', async () => {
    assert.equal((await httpsGet(r.port, '/healthz')).status, 200);
  });
});

/** A masked client text frame (RFC 6455 §5.2), as a browser would send it. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const head =
    payload.length < 126
      ? Buffer.from([0x81, 0x80 | payload.length])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([head, mask, body]);
}

/** Reads one unmasked server text frame (payload under 64 KiB) from `buffered` + the socket. */
async function readServerFrame(socket: NodeJS.ReadableStream, buffered: Buffer): Promise<string> {
  let buf = buffered;
  for (;;) {
    if (buf.length >= 2) {
      const len7 = buf[1]! & 0x7f;
      const headLen = len7 === 126 ? 4 : 2;
      const len = len7 === 126 && buf.length >= 4 ? buf.readUInt16BE(2) : len7;
      if (buf.length >= headLen && buf.length >= headLen + len && len7 !== 127)
        return buf.subarray(headLen, headLen + len).toString('utf8');
    }
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
}

describe('7. connections that die mid-stream', () => {
  let r: TestRelay;
  before(async () => {
    r = await opened.relay();
  });

  it('survives a socket cut in the middle of a frame', async () => {
    const socket = await openRawTls(r.port);
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${r.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let head = Buffer.alloc(0);
    while (!head.includes('\r\n\r\n')) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      head = Buffer.concat([head, chunk]);
    }
    const end = head.indexOf('\r\n\r\n') + 4;
    const response = head.subarray(0, end).toString('latin1');
    assert.match(response, /^HTTP\/1\.1 101 /);
    const accept = createHash('sha1')
      .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    assert.match(
      response,
      new RegExp(`sec-websocket-accept: ${accept.replace(/\+/g, '\\+')}`, 'i'),
    );

    // A whole frame first, so we know the hand-made framing is right...
    socket.write(
      maskedTextFrame(JSON.stringify({ type: 'hello', id: 1, version: 1, client: 'x' })),
    );
    const reply = JSON.parse(await readServerFrame(socket, head.subarray(end))) as {
      type: string;
      id: number;
    };
    assert.deepEqual([reply.type, reply.id], ['reply', 1]);
    // ...then half of the next one, and the socket is gone.
    const frame = maskedTextFrame(
      JSON.stringify({ type: 'users.list', id: 2, pad: 'y'.repeat(300) }),
    );
    await new Promise<void>((resolve) =>
      socket.write(frame.subarray(0, frame.length >> 1), () => resolve()),
    );
    socket.destroy();

    assert.equal((await httpsGet(r.port, '/healthz')).status, 200);
    const home = await makeUser(r, 'alice', PW.alice);
    const who = await runCli(['whoami'], { home });
    assert.equal(who.code, 0, who.stderr);
  });

  it('marks a user offline when their connection drops without a close', async () => {
    const bob = await makeUser(r, 'bob', PW.bob);
    const watcher = await opened.client(r, makeTempDir('switchboard-home-'));
    await watcher.request('auth.login', { user: 'alice', password: PW.alice, device: newDevice() });
    const c = await opened.client(r, bob);
    await c.request('auth.token', { token: savedLogin(bob).token });
    assert.equal((await usersOnline(watcher)).get('bob'), true);
    c.terminate();
    await waitFor(
      async () => (await usersOnline(watcher)).get('bob') === false,
      10_000,
      'bob to go offline',
    );
    watcher.close();
  });
});

describe('8. many clients at once', () => {
  it('200 concurrent logins all succeed with distinct tokens', async () => {
    // Fast Argon2: this tests concurrency of the connection and token paths, not hash cost, and
    // 200 default-cost hashes would take seconds on a 2-core machine. bench/platform.ts measures
    // logins with the real settings.
    // 20 sign-ups from one address are past its burst of 10 (abuse-accounts.test.ts tests that).
    const signupRate = { perMinute: 60, burst: 60 };
    const r = await opened.relay({
      auth: { argon2: FAST_ARGON2, signupRate: { perAddress: signupRate, relay: signupRate } },
    });
    const home = makeTempDir('switchboard-home-');
    const setup = await opened.client(r, home);
    const names = Array.from({ length: 20 }, (_, i) => `user${i}`);
    for (const user of names)
      await setup.request('auth.signup', { user, password: `pw-${user}-x` });
    setup.close();

    const N = 200;
    const started = Date.now();
    const results = await Promise.allSettled(
      Array.from({ length: N }, async (_, i) => {
        const user = names[i % names.length]!;
        const c = await opened.client(r, home);
        const login = await c.request('auth.login', {
          user,
          password: `pw-${user}-x`,
          device: newDevice(`dev${i}`),
        });
        const me = await c.request('whoami', {});
        return { c, user, token: login.token, me };
      }),
    );
    const failed = results.filter((x) => x.status === 'rejected');
    assert.deepEqual(
      failed.map((f) => String((f as PromiseRejectedResult).reason)),
      [],
      'every login succeeds',
    );
    const ok = results.map(
      (x) =>
        (
          x as PromiseFulfilledResult<{
            c: RelayClient;
            user: string;
            token: string;
            me: { user: string };
          }>
        ).value,
    );
    assert.equal(new Set(ok.map((o) => o.token)).size, N, 'every token is distinct');
    for (const o of ok) assert.equal(o.me.user, o.user);
    const metrics = (await httpsGet(r.port, '/metrics')).body;
    assert.match(metrics, new RegExp(`^switchboard_users_online ${names.length}$`, 'm'));
    for (const o of ok) o.c.close();
    assert.ok(Date.now() - started < 60_000);
  });
});

describe('9. restart', () => {
  it('keeps users, tokens and the certificate across a restart on the same data dir', async () => {
    const r = await opened.relay();
    const home = await makeUser(r, 'alice', PW.alice);
    const fingerprint = r.fingerprint;
    await r.restart();
    assert.equal(r.fingerprint, fingerprint);
    assert.ok(existsSync(join(r.dataDir, 'switchboard.db')));
    const who = await runCli(['whoami', '--json'], { home });
    assert.equal(who.code, 0, who.stderr);
    assert.equal((JSON.parse(who.stdout) as { user: string }).user, 'alice');
    const again = await runCli(['login', '--user', 'alice', '--password-stdin'], {
      home,
      stdin: PW.alice,
    });
    assert.equal(again.code, 0, again.stderr);
  });
});

describe('10. CLI usage and exit codes', () => {
  it('help exits 0, usage errors exit 2, no login exits 3', async () => {
    const home = makeTempDir('switchboard-home-');
    const help = await runCli(['--help'], { home });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: switchboard COMMAND/);
    const loginHelp = await runCli(['login', '--help'], { home });
    assert.equal(loginHelp.code, 0, loginHelp.stderr);
    assert.match(loginHelp.stdout, /--password-stdin/);
    const unknown = await runCli(['frobnicate'], { home });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const flag = await runCli(['whoami', '--no-such-flag'], { home });
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--no-such-flag/);
    const who = await runCli(['whoami'], { home });
    assert.equal(who.code, 3);
    assert.match(who.stderr, /not logged in/);
  });
});

describe('11. SIGTERM to `switchboard serve`', () => {
  it('tells clients, exits 0, and the data dir opens again cleanly', async () => {
    const dataDir = makeTempDir('switchboard-serve-');
    const home = makeTempDir('switchboard-home-');
    const first = await startServeProcess(dataDir);
    const c = await opened.client(first, home);
    await c.request('auth.signup', { user: 'alice', password: PW.alice });
    const { token } = await c.request('auth.login', {
      user: 'alice',
      password: PW.alice,
      device: newDevice(),
    });
    const events: RelayEvent[] = [];
    c.on('event', (e: RelayEvent) => events.push(e));
    const closed = once(c, 'close');
    first.child.kill('SIGTERM');
    const exit = await first.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, first.output().stderr);
    await closed;
    const shutdown = events.find((e) => e.type === 'shutdown');
    assert.ok(shutdown, `a shutdown event; got ${JSON.stringify(events)}`);
    assert.match(shutdown.reason, /SIGTERM/);
    assert.match(first.output().stderr, /"msg":"relay stopped"/);

    const second = await startServeProcess(dataDir);
    try {
      assert.equal(second.fingerprint, first.fingerprint);
      const c2 = await opened.client(second, home);
      const me = await c2.request('auth.token', { token });
      assert.equal(me.user, 'alice');
      c2.close();
    } finally {
      second.child.kill('SIGTERM');
      assert.equal((await second.exited).code, 0);
    }
    const db = new BetterSqlite3(join(dataDir, 'switchboard.db'), { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  });
});

describe('12. no secrets in the logs', () => {
  it('never writes a password or token, even at trace level', async () => {
    const dir = makeTempDir('switchboard-log-');
    const file = join(dir, 'relay.log');
    const fd = openSync(file, 'w');
    try {
      const r = await opened.relay({ logger: createLogger('trace', fd) });
      const home = await makeUser(r, 'alice', PW.alice);
      const wrong = 'a-wrong-password-123';
      const bad = await runCli(['login', '--user', 'alice', '--password-stdin'], {
        home: makeTempDir('switchboard-home-'),
        stdin: wrong,
        env: { SWITCHBOARD_SERVER: r.server, SWITCHBOARD_FINGERPRINT: r.fingerprint },
      });
      assert.equal(bad.code, 3);
      const { token } = savedLogin(home);
      for (const args of [['whoami'], ['users'], ['logout']]) {
        const res = await runCli(args, { home });
        assert.equal(res.code, 0, res.stderr);
      }
      await r.close();
      const log = readFileSync(file, 'utf8');
      assert.match(log, /"msg":"login"/, 'the log recorded the login');
      assert.match(log, /"level":20/, 'debug records were written');
      for (const secret of [PW.alice, wrong, token, token.slice(4)]) {
        assert.ok(!log.includes(secret), `the log contains a secret: ${secret.slice(0, 6)}…`);
      }
    } finally {
      closeSync(fd);
    }
  });
});

it('left no unhandled promise rejections', () => {
  assert.deepEqual(unhandled, []);
});

// Error codes no other test produces, each produced once by a real relay on loopback (or the client).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RelayClient } from '../src/client/relay-client.js';
import { RelayClient as Client } from '../src/client/relay-client.js';
import { KnownServers } from '../src/client/known-servers.js';
import type { SwitchboardError } from '../src/protocol/errors.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { CONTROL_BURST, MAX_PENDING_REQUESTS, PROTOCOL_VERSION } from '../src/protocol/limits.js';
import {
  FAST_ARGON2,
  RawWs,
  codeOf,
  registration,
  connectClient,
  httpsGet,
  makeTempDir,
  newDevice,
  removeTempDirs,
  runCli,
  startTestRelay,
  waitFor,
  type TestRelay,
} from './helpers.js';
import { TamperProxy } from './tamper-proxy.js';

/** Sign-ups here all come from 127.0.0.1; their rate limit is tested in abuse-accounts.test.ts. */
const ROOMY_SIGNUPS = { perMinute: 6_000, burst: 1_000 };

const clients = new Set<RelayClient>();
const CHANNEL_CAP = 16;
let r: TestRelay;
/** The relay's clock stands still: a token bucket never refills during a test. */
const clock = Date.now();

before(async () => {
  r = await startTestRelay({
    now: () => clock,
    // Lowered from MAX_CHANNELS_PER_CONNECTION so one test can reach it one attach at a time.
    maxChannelsPerConnection: CHANNEL_CAP,
    auth: { argon2: FAST_ARGON2, signupRate: { perAddress: ROOMY_SIGNUPS, relay: ROOMY_SIGNUPS } },
  });
});
after(async () => {
  for (const c of clients) c.terminate();
  await r.close();
  removeTempDirs();
});

async function client(): Promise<RelayClient> {
  const c = await connectClient(r.server, r.fingerprint, makeTempDir('switchboard-home-'));
  clients.add(c);
  return c;
}

/** A signed-up user and a logged-in connection of theirs. */
async function user(
  name: string,
): Promise<{ c: RelayClient; token: string; login(): Promise<RelayClient> }> {
  const password = `${name}-long-password`;
  const c = await client();
  await c.request('auth.signup', { user: name, password });
  const { token } = await c.request('auth.login', { user: name, password, device: newDevice() });
  return {
    c,
    token,
    login: async () => {
      const other = await client();
      await other.request('auth.token', { token });
      return other;
    },
  };
}

function register(host: RelayClient, sessionId: string) {
  return host.request('session.register', {
    sessionId,
    kind: 'agent',
    instance: randomBytes(16).toString('base64url'),
    hostName: 'test-host',
    allow: [],
    viewers: [],
  });
}

/** Raw socket after a successful hello. */
async function rawAfterHello(): Promise<RawWs> {
  const ws = await RawWs.open(r.port);
  const hello = await ws.exchange({
    type: 'hello',
    id: 1,
    version: PROTOCOL_VERSION,
    client: 'raw',
  });
  assert.equal(hello['type'], 'reply');
  return ws;
}

describe('protocol errors', () => {
  it('VERSION_MISMATCH: a hello for another protocol version', async () => {
    const ws = await RawWs.open(r.port);
    const reply = await ws.exchange({
      type: 'hello',
      id: 1,
      version: PROTOCOL_VERSION + 1,
      client: 'raw',
    });
    assert.equal(reply['code'], ErrorCode.VERSION_MISMATCH);
    assert.equal(reply['id'], 1);
    ws.close();
  });

  it('UNKNOWN_CHANNEL: a binary frame for channel 0', async () => {
    const ws = await rawAfterHello();
    const reply = await ws.exchange(Buffer.from([0, 0, 0, 0, 1]));
    assert.equal(reply['type'], 'error');
    assert.equal(reply['code'], ErrorCode.UNKNOWN_CHANNEL);
    ws.close();
  });

  it('RATE_LIMITED: a control message past the burst, while the clock stands still', async () => {
    const ws = await RawWs.open(r.port);
    for (let id = 1; id <= CONTROL_BURST + 1; id++)
      ws.send({ type: 'hello', id, version: PROTOCOL_VERSION, client: 'raw' });
    const replies = [];
    for (let i = 0; i <= CONTROL_BURST; i++) replies.push(await ws.next());
    // A refusal is sent at once, before the answers still being worked on: match by id.
    const refused = replies.filter((m) => m['type'] !== 'reply');
    assert.deepEqual(
      refused.map((m) => [m['id'], m['code']]),
      [[CONTROL_BURST + 1, ErrorCode.RATE_LIMITED]],
      'the burst passes, the one after it does not',
    );
    ws.close();
  });

  it('RATE_LIMITED: the client refuses a request past its limit in flight, sending nothing', async () => {
    const c = await client();
    const inFlight = Array.from({ length: MAX_PENDING_REQUESTS }, () =>
      codeOf(c.request('users.list', {})),
    );
    assert.equal(await codeOf(c.request('users.list', {})), ErrorCode.RATE_LIMITED);
    c.terminate();
    await Promise.all(inFlight);
  });

  it('RATE_LIMITED: session registrations of one account past the queue', async () => {
    const { c } = await user('eve-burst');
    const codes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => codeOf(register(c, `burst-${i}`))),
    );
    assert.ok(codes.includes(ErrorCode.RATE_LIMITED), codes.join());
    assert.deepEqual(
      codes.filter((code) => code !== 'OK' && code !== ErrorCode.RATE_LIMITED),
      [],
    );
  });
});

describe('auth errors', () => {
  it('AUTH_REQUIRED: a request that needs a login, over WebSocket and REST', async () => {
    const ws = await rawAfterHello();
    const reply = await ws.exchange({ type: 'whoami', id: 2 });
    assert.equal(reply['code'], ErrorCode.AUTH_REQUIRED);
    ws.close();
    const rest = await httpsGet(r.port, '/v1/whoami');
    assert.equal(rest.status, 401);
    assert.equal((JSON.parse(rest.body) as { code: string }).code, ErrorCode.AUTH_REQUIRED);
  });

  it('USER_EXISTS: sign-up with a taken name', async () => {
    await user('frank');
    const c = await client();
    assert.equal(
      await codeOf(c.request('auth.signup', { user: 'frank', password: 'another-long-one' })),
      ErrorCode.USER_EXISTS,
    );
  });

  it('WEAK_PASSWORD: a short password, or the user name, at sign-up and at passwd', async () => {
    const c = await client();
    assert.equal(
      await codeOf(c.request('auth.signup', { user: 'gina', password: 'short' })),
      ErrorCode.WEAK_PASSWORD,
    );
    assert.equal(
      await codeOf(c.request('auth.signup', { user: 'gina-long', password: 'GINA-LONG' })),
      ErrorCode.WEAK_PASSWORD,
    );
    const gina = await user('gina');
    assert.equal(
      await codeOf(
        gina.c.request('auth.passwd', { password: 'gina-long-password', newPassword: 'short' }),
      ),
      ErrorCode.WEAK_PASSWORD,
    );
  });

  it('TOKEN_INVALID: a token the relay never issued', async () => {
    const c = await client();
    assert.equal(
      await codeOf(
        c.request('auth.token', { token: `sbt_${randomBytes(32).toString('base64url')}` }),
      ),
      ErrorCode.TOKEN_INVALID,
    );
  });

  it('UNKNOWN_USER: the keys of a user that does not exist', async () => {
    const { c } = await user('hank');
    assert.equal(
      await codeOf(c.request('keys.get', { user: 'nobody-here' })),
      ErrorCode.UNKNOWN_USER,
    );
  });
});

describe('session errors', () => {
  it('SESSION_NOT_FOUND: attach to an unknown session', async () => {
    const { c } = await user('ivan');
    assert.equal(
      await codeOf(c.request('session.attach', { sessionId: 'no-such-session', readOnly: false })),
      ErrorCode.SESSION_NOT_FOUND,
    );
  });

  it('SESSION_OFFLINE: attach to a known session whose host is gone', async () => {
    const owner = await user('jane');
    const host = await owner.login();
    await register(host, 'jane-offline');
    host.terminate();
    const attach = () =>
      codeOf(owner.c.request('session.attach', { sessionId: 'jane-offline', readOnly: false }));
    // Until the relay sees the host's socket close, the attach reaches the (dead) host.
    await waitFor(async () => (await attach()) !== 'OK', 5_000, 'the relay to see the host go');
    assert.equal(await attach(), ErrorCode.SESSION_OFFLINE);
  });

  it('TOO_MANY_CHANNELS: one attach past the channels a connection may hold', async () => {
    const owner = await user('kate');
    const host = await owner.login();
    await register(host, 'kate-many');
    const attach = () =>
      codeOf(owner.c.request('session.attach', { sessionId: 'kate-many', readOnly: false }));
    for (let i = 0; i < CHANNEL_CAP; i++) assert.equal(await attach(), 'OK');
    assert.equal(await attach(), ErrorCode.TOO_MANY_CHANNELS);
  });

  it('VERSION_MISMATCH: an opener and a host on either side of services', async () => {
    const owner = await user('nora');
    // A client from before services: a hello without capabilities, then the token login.
    const old = async () => {
      const ws = await rawAfterHello();
      const auth = await ws.exchange({ type: 'auth.token', id: 2, token: owner.token });
      assert.equal(auth['type'], 'reply');
      return ws;
    };
    await register(await owner.login(), 'nora-new');
    const oldHost = await old();
    const reg = await oldHost.exchange({
      type: 'session.register',
      id: 3,
      ...registration('nora-old'),
    });
    assert.equal(reg['type'], 'reply');
    const oldController = await old();
    const attach = (sessionId: string, id: number) =>
      oldController.exchange({ type: 'session.attach', id, sessionId, readOnly: false });
    assert.equal((await attach('nora-new', 4))['code'], ErrorCode.VERSION_MISMATCH);
    assert.equal((await attach('nora-old', 5))['type'], 'reply');
    const open = owner.c.request('channel.open', {
      service: 'terminal',
      target: { kind: 'session', sessionId: 'nora-old' },
    });
    await assert.rejects(open, (err: SwitchboardError) => {
      assert.equal(err.code, ErrorCode.VERSION_MISMATCH);
      assert.match(err.message, /upgrade it on the host/);
      return true;
    });
    oldHost.close();
    oldController.close();
  });

  it('SERVICE_UNAVAILABLE: a channel to a service the host did not list', async () => {
    const owner = await user('kim');
    const host = await owner.login();
    await register(host, 'kim-terminal');
    const open = (service: string) =>
      codeOf(
        owner.c.request('channel.open', {
          service,
          target: { kind: 'session', sessionId: 'kim-terminal' },
        }),
      );
    // register() lists no services: an older host, which serves the terminal only.
    assert.equal(await open('terminal'), 'OK');
    assert.equal(await open('ping'), ErrorCode.SERVICE_UNAVAILABLE);
  });

  it('PEER_GONE and CHANNEL_CLOSED: a controller is told why its channel closed', async () => {
    const owner = await user('liam');
    const closeOf = async (sessionId: string, end: (host: RelayClient) => void) => {
      const host = await owner.login();
      await register(host, sessionId);
      const { channel } = await owner.c.request('session.attach', { sessionId, readOnly: false });
      const closed = new Promise<{ code: string; reason: string }>((resolve) =>
        owner.c.bindChannel(channel, {
          onData: () => undefined,
          onClose: (code, reason) => resolve({ code, reason }),
        }),
      );
      end(host);
      return closed;
    };
    assert.deepEqual(await closeOf('liam-gone', (host) => host.terminate()), {
      code: ErrorCode.PEER_GONE,
      reason: 'the other side disconnected',
    });
    assert.deepEqual(
      await closeOf(
        'liam-ends',
        (host) => void host.request('session.unregister', { sessionId: 'liam-ends' }),
      ),
      { code: ErrorCode.CHANNEL_CLOSED, reason: 'the host ended the session' },
    );
  });
});

describe('client-side errors', () => {
  it('CONNECT_FAILED: nothing listens on the port', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    assert.equal(
      await codeOf(connectClient(`127.0.0.1:${port}`, r.fingerprint, makeTempDir())),
      ErrorCode.CONNECT_FAILED,
    );
  });

  it('TIMEOUT: a reply that never comes', async () => {
    const proxy = await new TamperProxy(r.port).start();
    try {
      // The proxy renumbers every answer after the hello's, so the request is never answered.
      proxy.tamper = {
        toClientJson: (m) => ((m['id'] as number) > 1 ? { ...m, id: 999_999 } : m),
      };
      const c = await Client.connect({
        server: proxy.address,
        trust: {
          knownServers: new KnownServers(`${makeTempDir()}/known_servers.json`),
          fingerprint: proxy.fingerprint,
        },
        requestTimeoutMs: 200,
      });
      clients.add(c);
      assert.equal(await codeOf(c.request('users.list', {})), ErrorCode.TIMEOUT);
    } finally {
      await proxy.close();
    }
  });

  it('CONNECTION_CLOSED: the connection ends under a request in flight', async () => {
    const c = await client();
    const pending = codeOf(c.request('users.list', {}));
    c.terminate();
    assert.equal(await pending, ErrorCode.CONNECTION_CLOSED);
    assert.equal(await codeOf(c.request('users.list', {})), ErrorCode.CONNECTION_CLOSED);
  });

  it('NOT_LOGGED_IN: a command that needs a login, in a home without one', async () => {
    const result = await runCli(['whoami'], { home: makeTempDir('switchboard-home-') });
    assert.equal(result.code, 3);
    assert.match(result.stderr, /\[NOT_LOGGED_IN\]/);
  });
});

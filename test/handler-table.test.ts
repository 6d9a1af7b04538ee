// One handler table, two doors: hello's capability negotiation, unknown fields, and REST calling the same entries.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../src/protocol/errors.js';
import { CAPABILITIES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../src/protocol/limits.js';
import { FAST_ARGON2, Opened, RawWs, httpsGet, newDevice, type TestRelay } from './helpers.js';

const opened = new Opened({ auth: { argon2: FAST_ARGON2 } });
let r: TestRelay;
let token: string;

before(async () => {
  r = await opened.relay();
  const c = await opened.client(r);
  await c.request('auth.signup', { user: 'tabby', password: 'tabby-long-password' });
  ({ token } = await c.request('auth.login', {
    user: 'tabby',
    password: 'tabby-long-password',
    device: newDevice(),
  }));
  c.close();
});
after(() => opened.close());

/** POST over HTTPS without verifying the certificate; resolves with status, headers and JSON. */
function post(
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: r.port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(text) as Record<string, unknown>,
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = () => ({ authorization: `Bearer ${token}` });

async function hello(fields: Record<string, unknown>): Promise<Record<string, unknown>> {
  const ws = await RawWs.open(r.port);
  try {
    return await ws.exchange({ type: 'hello', id: 1, client: 'raw', ...fields });
  } finally {
    ws.close();
  }
}

describe('hello', () => {
  it('answers with the capabilities both sides support, in the relay order, and its version', async () => {
    const reply = await hello({
      version: PROTOCOL_VERSION,
      capabilities: ['users-paging', 'from-the-future', 'device-proof'],
    });
    assert.equal(reply['type'], 'reply', JSON.stringify(reply));
    const result = reply['result'] as { version: number; capabilities: string[] };
    assert.equal(result.version, PROTOCOL_VERSION);
    assert.deepEqual(result.capabilities, ['device-proof', 'users-paging']);
  });

  it('lets in a client that sends no capabilities (older than negotiation), with none', async () => {
    const reply = await hello({ version: MIN_PROTOCOL_VERSION });
    assert.equal(reply['type'], 'reply', JSON.stringify(reply));
    assert.deepEqual((reply['result'] as { capabilities: string[] }).capabilities, []);
  });

  it('refuses a version older than the relay speaks with VERSION_MISMATCH', async () => {
    const reply = await hello({ version: MIN_PROTOCOL_VERSION - 1, capabilities: [] });
    assert.equal(reply['code'], ErrorCode.VERSION_MISMATCH);
  });

  it('takes a hello with a field it does not know, and ignores it', async () => {
    const reply = await hello({ version: PROTOCOL_VERSION, resume: { from: 7 } });
    assert.equal(reply['type'], 'reply', JSON.stringify(reply));
  });

  it('gives RelayClient every capability it offered', async () => {
    const c = await opened.client(r);
    assert.deepEqual([...c.capabilities], [...CAPABILITIES]);
    c.close();
  });
});

describe('REST through the table', () => {
  it('GET /v1/whoami and POST /v1/requests/whoami answer from the same entry', async () => {
    const get = await httpsGet(r.port, '/v1/whoami', bearer());
    assert.equal(get.status, 200, get.body);
    const short = JSON.parse(get.body) as { user: string; device: string };
    const full = await post('/v1/requests/whoami', '', bearer());
    assert.equal(full.status, 200, JSON.stringify(full.json));
    const device = full.json['device'] as { fingerprint: string };
    assert.deepEqual(short, { user: 'tabby', device: device.fingerprint });
    assert.equal(full.json['user'], 'tabby');
  });

  it('answers AUTH_REQUIRED with 401 where a login is needed and no token came', async () => {
    const res = await post('/v1/requests/sessions.list', '{}');
    assert.equal(res.status, 401);
    assert.equal(res.json['code'], ErrorCode.AUTH_REQUIRED);
  });

  it('refuses requests that only a WebSocket may send, whatever the token', async () => {
    for (const [type, body] of [
      ['hello', '{"version":1,"client":"curl"}'],
      ['session.attach', '{"sessionId":"abc-1","readOnly":true}'],
      [
        'session.register',
        '{"kind":"agent","instance":"aaaaaaaaaaaaaaaa","hostName":"h","allow":[],"viewers":[]}',
      ],
      ['channel.close', '{"channel":1}'],
      ['channel.open', '{"service":"ping","target":{"kind":"session","sessionId":"abc-1"}}'],
      ['channel.fanout', '{"service":"ping","targets":[{"kind":"session","sessionId":"abc-1"}]}'],
      ['services.offer', '{"services":["ping"]}'],
      ['session.unregister', '{"sessionId":"abc-1"}'],
      ['auth.login', '{"user":"x1","password":"p","device":{"publicKey":"AAAA","name":"d"}}'],
      ['auth.token', `{"token":"${token}"}`],
    ] as const) {
      const res = await post(`/v1/requests/${type}`, body, bearer());
      assert.equal(res.status, 405, type);
      assert.equal(res.json['code'], ErrorCode.WEBSOCKET_REQUIRED, type);
    }
  });

  it('validates a body like a frame: unknown keys dropped, __proto__ and bad fields refused', async () => {
    const extra = await post(
      '/v1/requests/users.list',
      '{"all":true,"limit":1,"sort":"x"}',
      bearer(),
    );
    assert.equal(extra.status, 200, JSON.stringify(extra.json));
    assert.equal((extra.json['users'] as unknown[]).length, 1);
    const proto = await post(
      '/v1/requests/users.list',
      '{"all":true,"__proto__":{"x":1}}',
      bearer(),
    );
    assert.equal(proto.status, 400);
    assert.equal(proto.json['code'], ErrorCode.INVALID_MESSAGE);
    const bad = await post('/v1/requests/users.list', '{"limit":100000}', bearer());
    assert.equal(bad.status, 400);
    assert.equal(bad.json['code'], ErrorCode.INVALID_MESSAGE);
    const unknown = await post('/v1/requests/no.such', '{}', bearer());
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json['code'], ErrorCode.UNKNOWN_TYPE);
    // JSON sent as a type a web page may post cross-site without asking: refused.
    const form = await post('/v1/requests/users.list', '{"all":true}', {
      ...bearer(),
      'content-type': 'text/plain',
    });
    assert.equal(form.status, 400);
    assert.equal(form.json['code'], ErrorCode.INVALID_MESSAGE);
  });

  it('serves /v1/info from the info entry, the same over the WebSocket', async () => {
    const rest = JSON.parse((await httpsGet(r.port, '/v1/info')).body) as Record<string, unknown>;
    const ws = await RawWs.open(r.port);
    await ws.exchange({ type: 'hello', id: 1, version: PROTOCOL_VERSION, client: 'raw' });
    const reply = await ws.exchange({ type: 'info', id: 2 });
    ws.close();
    assert.deepEqual(reply['result'], rest);
    assert.equal(rest['fingerprint'], r.fingerprint);
  });
});

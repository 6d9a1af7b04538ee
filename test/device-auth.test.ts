// auth.device: a registered device proves its key instead of a password or token. Forged, replayed,
// misdirected and revoked proofs are refused and change nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { after, describe, it } from 'node:test';
import type { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey, type DeviceKeyPair } from '../src/crypto/device-key.js';
import { signDeviceAuth } from '../src/crypto/login-proof.js';
import { ErrorCode } from '../src/protocol/errors.js';
import {
  FAST_ARGON2,
  connectClient,
  httpsGet,
  makeTempDir,
  refusal,
  registration,
  startTestRelay,
} from './helpers.js';

const PASSWORD = 'correct horse battery';

describe('auth.device', async () => {
  const r = await startTestRelay({ auth: { argon2: FAST_ARGON2 } });
  after(() => r.close());
  const open: RelayClient[] = [];
  after(() => open.forEach((c) => c.close()));
  const connect = async () => {
    const c = await connectClient(r.server, r.fingerprint, makeTempDir('switchboard-home-'));
    open.push(c);
    return c;
  };
  /** Signs up `user` (once) and registers `key` as a device of theirs by a password login. */
  const register = async (user: string, key: DeviceKeyPair, signup = true) => {
    const c = await connect();
    if (signup) await c.request('auth.signup', { user, password: PASSWORD });
    await c.request('auth.login', {
      user,
      password: PASSWORD,
      device: { publicKey: key.publicKey.toString('base64'), name: 'box' },
    });
    return c;
  };

  it('lets a registered device in with a proof of its key, as itself', async () => {
    const key = generateDeviceKey();
    await register('dina', key);
    const c = await connect();
    const me = await c.authenticateDevice('dina', key);
    assert.equal(me.user, 'dina');
    assert.equal(me.device.publicKey, key.publicKey.toString('base64'));
    assert.deepEqual((await c.request('whoami', {})).user, 'dina');
  });

  it('refuses forged, replayed, misdirected and unregistered proofs', async () => {
    const key = generateDeviceKey();
    await register('ezra', key);
    const other = generateDeviceKey();
    const publicKey = key.publicKey.toString('base64');
    const send = (c: RelayClient, user: string, proof: string, pk = publicKey) =>
      refusal(c.request('auth.device', { user, publicKey: pk, proof }));

    // Signed by another key.
    let c = await connect();
    let err = await send(
      c,
      'ezra',
      signDeviceAuth(other, c.challenge!, 'ezra', c.relayFingerprint),
    );
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    // Made for another connection's challenge (a replay).
    const first = await connect();
    const replayed = signDeviceAuth(key, first.challenge!, 'ezra', first.relayFingerprint);
    c = await connect();
    err = await send(c, 'ezra', replayed);
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    // Made for another relay (its certificate fingerprint): a relay passing a challenge on.
    c = await connect();
    err = await send(c, 'ezra', signDeviceAuth(key, c.challenge!, 'ezra', 'AA:BB'));
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    // For another account.
    await register('fern', generateDeviceKey());
    c = await connect();
    err = await send(c, 'fern', signDeviceAuth(key, c.challenge!, 'fern', c.relayFingerprint));
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    assert.match(err.message, /not registered to fern/);
    // A key never registered.
    c = await connect();
    err = await send(
      c,
      'ezra',
      signDeviceAuth(other, c.challenge!, 'ezra', c.relayFingerprint),
      other.publicKey.toString('base64'),
    );
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    // None of it logged the connection in.
    err = await refusal(c.request('whoami', {}));
    assert.equal(err.code, ErrorCode.AUTH_REQUIRED);
    // A connection logged in as one user cannot prove a device of another: refused before any
    // token is made for that device.
    const doraKey = generateDeviceKey();
    await register('dora', doraKey);
    const tokensOf = (key: DeviceKeyPair) => {
      const db = new BetterSqlite3(join(r.dataDir, 'switchboard.db'), { readonly: true });
      try {
        return (
          db
            .prepare(
              'SELECT count(*) AS n FROM auth_tokens t JOIN devices d ON d.id = t.device_id WHERE d.public_key = ?',
            )
            .get(key.publicKey.toString('base64')) as { n: number }
        ).n;
      } finally {
        db.close();
      }
    };
    c = await connect();
    await c.authenticateDevice('ezra', key);
    const before = tokensOf(doraKey);
    err = await refusal(c.authenticateDevice('dora', doraKey));
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    assert.match(err.message, /already logged in as another user/);
    assert.equal(tokensOf(doraKey), before);
  });

  it("revokes a device: its proofs, tokens and password logins stop, it leaves the user's keys, and its connections close", async () => {
    const agentKey = generateDeviceKey();
    const owner = await register('gus', generateDeviceKey());
    const agentLogin = await connect();
    const { token: agentToken } = await agentLogin.request('auth.login', {
      user: 'gus',
      password: PASSWORD,
      device: { publicKey: agentKey.publicKey.toString('base64'), name: 'box' },
    });
    agentLogin.close();
    const agent = await connect();
    await agent.authenticateDevice('gus', agentKey);
    const closed = new Promise((resolve) => agent.once('close', resolve));
    const { devices } = await owner.request('devices.list', {});
    const target = devices.find((d) => !d.current)!;
    assert.equal(target.online, true);
    const result = await owner.request('devices.revoke', { fingerprint: target.fingerprint });
    assert.equal(result.revoked, true);
    // The agent's connection (and the login's, if the relay has not seen it go yet).
    assert.ok(result.closed >= 1, `closed ${result.closed}`);
    await closed;
    const c = await connect();
    const err = await refusal(c.authenticateDevice('gus', agentKey));
    assert.equal(err.code, ErrorCode.TOKEN_REVOKED);
    // Its old tokens say why they no longer work.
    const reuse = await connect();
    const stale = await refusal(reuse.request('auth.token', { token: agentToken }));
    assert.equal(stale.code, ErrorCode.TOKEN_REVOKED);
    assert.match(stale.message, /this device was revoked/);
    const login = await refusal(register('gus', agentKey, false));
    assert.equal(login.code, ErrorCode.TOKEN_REVOKED);
    // Refused before any token was made for it: none of its tokens is usable or even live.
    const db = new BetterSqlite3(join(r.dataDir, 'switchboard.db'), { readonly: true });
    try {
      const live = db
        .prepare(
          'SELECT count(*) AS n FROM auth_tokens t JOIN devices d ON d.id = t.device_id WHERE d.fingerprint = ? AND t.revoked_at IS NULL',
        )
        .get(target.fingerprint) as { n: number };
      assert.equal(live.n, 0);
    } finally {
      db.close();
    }
    const keys = await owner.request('keys.get', { user: 'gus' });
    assert.equal(keys.devices.length, 1, 'the revoked key is no longer listed');
    const listed = (await owner.request('devices.list', {})).devices.find(
      (d) => d.fingerprint === target.fingerprint,
    );
    assert.ok(listed?.revokedAt);
    assert.deepEqual(await owner.request('devices.revoke', { fingerprint: target.fingerprint }), {
      revoked: false,
      closed: 0,
    });
    // Nobody revokes another account's device: it is not theirs to name.
    const otherKey = generateDeviceKey();
    const other = await register('ivo', otherKey);
    const [theirs] = (await other.request('devices.list', {})).devices;
    const notYours = await refusal(
      owner.request('devices.revoke', { fingerprint: theirs!.fingerprint }),
    );
    assert.equal(notYours.code, ErrorCode.UNKNOWN_USER);
    const still = await connect();
    assert.equal((await still.authenticateDevice('ivo', otherKey)).user, 'ivo');
  });
});

describe('REST for scripts: GET /v1/sessions and /v1/devices', async () => {
  const r = await startTestRelay({ auth: { argon2: FAST_ARGON2 } });
  after(() => r.close());

  it('lists sessions with their tags (filtered by ?tag=KEY=VALUE) and the devices, with a bearer token', async () => {
    const c = await connectClient(r.server, r.fingerprint, makeTempDir('switchboard-home-'));
    after(() => c.close());
    await c.request('auth.signup', { user: 'hana', password: PASSWORD });
    const { token } = await c.request('auth.login', {
      user: 'hana',
      password: PASSWORD,
      device: { publicKey: generateDeviceKey().publicKey.toString('base64'), name: 'laptop' },
    });
    for (const [id, env] of [
      ['rest-1', 'prod'],
      ['rest-2', 'staging'],
    ] as const)
      await c.request('session.register', {
        ...registration(id),
        tags: { env, role: 'web' },
      });
    const get = async (path: string) => {
      const res = await httpsGet(r.port, path, { authorization: `Bearer ${token}` });
      return { status: res.status, json: JSON.parse(res.body) as Record<string, unknown> };
    };
    const all = await get('/v1/sessions');
    assert.equal(all.status, 200);
    const prod = await get('/v1/sessions?tag=env=prod&tag=role=web');
    assert.deepEqual(
      (prod.json['sessions'] as Array<{ sessionId: string; tags: unknown }>).map((s) => [
        s.sessionId,
        s.tags,
      ]),
      [['rest-1', { env: 'prod', role: 'web' }]],
    );
    assert.equal((all.json['sessions'] as unknown[]).length, 2);
    const devices = await get('/v1/devices');
    assert.deepEqual(
      (devices.json['devices'] as Array<{ name: string; current: boolean }>).map((d) => [
        d.name,
        d.current,
      ]),
      [['laptop', true]],
    );
    assert.equal((await httpsGet(r.port, '/v1/sessions', {})).status, 401);
    // A tag a session registers must be well formed: refused, nothing registered.
    const bad = await refusal(
      c.request('session.register', { ...registration('rest-3'), tags: { Env: 'x' } }),
    );
    assert.equal(bad.code, ErrorCode.INVALID_MESSAGE);
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`t${i}`, 'x']));
    const tooMany = await refusal(
      c.request('session.register', { ...registration('rest-4'), tags: many }),
    );
    assert.equal(tooMany.code, ErrorCode.INVALID_MESSAGE);
    assert.match(tooMany.message, /at most 16 tags/);
    assert.equal(((await get('/v1/sessions')).json['sessions'] as unknown[]).length, 2);
  });
});

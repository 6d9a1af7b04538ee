// The key directory's prekey bundles: published by each device, checked by the relay and again by
// senders, replaced only by newer prekeys, hidden once revoked or expired.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keysFileStore } from '../src/client/file-stores.js';
import { KnownServers } from '../src/client/known-servers.js';
import { MessagingKeys, PREKEY_ROTATE_BEFORE_MS } from '../src/client/messaging-keys.js';
import { RelayClient } from '../src/client/relay-client.js';
import { defaultCryptoProvider } from '../src/crypto/default-provider.js';
import { generateDeviceKey, keyFingerprint } from '../src/crypto/device-key.js';
import {
  DEFAULT_PREKEY_LIFETIME,
  createIdentityKey,
  createSignedPrekey,
  encodeBundle,
  verifyBundle,
} from '../src/crypto/prekeys.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { codeOf } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

describe('prekey bundles in the key directory', () => {
  let clock = Date.now();
  const h = new Harness({ now: () => clock });
  let ana: TestUser;
  let ben: TestUser;
  before(async () => {
    await h.start();
    ana = await h.user('pkana');
    ben = await h.user('pkben');
  });
  after(() => h.close());

  const byDevice = async (user: TestUser) => {
    const client = await RelayClient.connect({
      server: h.server,
      trust: {
        knownServers: new KnownServers(join(user.dir, 'known_servers.json')),
        fingerprint: h.relay.certificate.fingerprint,
      },
    });
    await client.authenticateDevice(user.name, user.key);
    return client;
  };

  /** The user's messaging keys in their home's messaging_keys.json, on the test's clock. */
  const keysOf = (user: TestUser) =>
    new MessagingKeys(keysFileStore(join(user.dir, 'messaging_keys.json')), user.key, () => clock);

  const bundles = async (user: string) => {
    const c = await byDevice(ben);
    try {
      return (await c.request('keys.bundles', { user })).devices;
    } finally {
      c.close();
    }
  };

  it('a device publishes its bundle once (0600 keys at home); a sender verifies it against the pinned key', async () => {
    const keys = keysOf(ana);
    assert.equal(statSync(join(ana.dir, 'messaging_keys.json')).mode & 0o777, 0o600);
    const c = await ana.connect();
    h.defer(() => c.close());
    const published = await keys.publish(c);
    assert.equal(published.prekeyId, 1);
    // Publishing again is a no-op, not an error.
    assert.equal((await keys.publish(c)).prekeyId, 1);
    const [device] = await bundles('pkana');
    assert.equal(device?.fingerprint, keyFingerprint(ana.key.publicKey));
    const verified = verifyBundle(defaultCryptoProvider, device!.bundle, {
      deviceKey: ana.key.publicKey,
      now: clock,
    });
    assert.deepEqual(Buffer.from(verified.identityKey), Buffer.from(keys.identity.publicKey));
    // The same keys come back from the file.
    const again = keysOf(ana);
    assert.deepEqual(Buffer.from(again.identity.publicKey), Buffer.from(keys.identity.publicKey));
    assert.equal(again.current.id, 1);
  });

  it('refuses a bundle of another device, a forged one, and an id that does not increase', async () => {
    const c = await ben.connect();
    h.defer(() => c.close());
    const stranger = generateDeviceKey();
    const identity = createIdentityKey(defaultCryptoProvider, stranger);
    const prekey = createSignedPrekey(defaultCryptoProvider, stranger, identity.publicKey, {
      id: 1,
    });
    const other = encodeBundle(stranger.publicKey, identity, prekey);
    assert.equal(
      await codeOf(c.request('keys.publish', { bundle: other as never })),
      ErrorCode.INVALID_MESSAGE,
    );
    // ben's own device key, but the prekey signed by someone else.
    const mine = createIdentityKey(defaultCryptoProvider, ben.key);
    const forged = encodeBundle(
      ben.key.publicKey,
      mine,
      createSignedPrekey(defaultCryptoProvider, stranger, mine.publicKey, { id: 1 }),
    );
    assert.equal(
      await codeOf(c.request('keys.publish', { bundle: forged as never })),
      ErrorCode.INVALID_MESSAGE,
    );
    const good = (id: number) =>
      encodeBundle(
        ben.key.publicKey,
        mine,
        createSignedPrekey(defaultCryptoProvider, ben.key, mine.publicKey, { id, now: clock }),
      );
    assert.equal((await c.request('keys.publish', { bundle: good(5) as never })).prekeyId, 5);
    assert.equal(
      await codeOf(c.request('keys.publish', { bundle: good(4) as never })),
      ErrorCode.CONFLICT,
    );
    const listed = await bundles('pkben');
    assert.equal(listed.length, 1);
    assert.equal((listed[0]!.bundle as { prekey: { id: number } }).prekey.id, 5);
  });

  it('rotates before expiry; an expired or revoked device is not listed', async () => {
    const keys = keysOf(ana);
    clock += DEFAULT_PREKEY_LIFETIME - PREKEY_ROTATE_BEFORE_MS + 1000;
    // Days on, the login token has lapsed: the device authenticates with its key, as agents do.
    const c = await byDevice(ana);
    h.defer(() => c.close());
    assert.equal((await keys.publish(c)).prekeyId, 2);
    assert.ok(keys.prekey(1), 'the previous prekey is kept for late messages');
    // Past the new prekey's end, unpublished since: not listed.
    clock += DEFAULT_PREKEY_LIFETIME;
    assert.deepEqual(await bundles('pkana'), []);
    // Revoked: not listed even with a fresh bundle.
    const tab = await h.user('pkana', h.server, h.relay.certificate.fingerprint, 'tablet');
    const tabKeys = keysOf(tab);
    const t = await tab.connect();
    await tabKeys.publish(t);
    t.close();
    assert.equal((await bundles('pkana')).length, 1);
    const a = await byDevice(ana);
    h.defer(() => a.close());
    await a.request('devices.revoke', { fingerprint: keyFingerprint(tab.key.publicKey) });
    assert.deepEqual(await bundles('pkana'), []);
    assert.equal(await codeOf(bundles('nobody')), ErrorCode.UNKNOWN_USER);
  });
});

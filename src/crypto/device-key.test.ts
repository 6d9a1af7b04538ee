// Unit tests for device identities: signing, PEM round trips, fingerprints and key parsing.
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { randomPrivateKey } from './raw-keys.js';
import {
  deviceKeyFromPrivatePem,
  generateDeviceKey,
  keyFingerprint,
  parsePublicKey,
  verifySignature,
} from './device-key.js';

// RFC 8032 section 7.1, TEST 1: secret key, public key, and the signature of the empty message.
const RFC_SECRET = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC_SIGNATURE =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
// The same secret as PKCS#8 PEM: the fixed Ed25519 PKCS#8 DER prefix followed by the 32-byte seed.
const RFC_PEM = [
  '-----BEGIN PRIVATE KEY-----',
  Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.from(RFC_SECRET, 'hex'),
  ]).toString('base64'),
  '-----END PRIVATE KEY-----',
  '',
].join('\n');

function isCryptoError(code: string) {
  return (err: unknown) => err instanceof CryptoError && err.code === code;
}

describe('device keys', () => {
  it('signs and verifies', () => {
    const key = generateDeviceKey();
    const data = Buffer.from('attach to session abc');
    const signature = key.sign(data);
    assert.equal(key.publicKey.length, 32);
    assert.equal(signature.length, 64);
    assert.equal(verifySignature(key.publicKey, data, signature), true);
    assert.equal(
      verifySignature(key.publicKey, Buffer.from('attach to session abd'), signature),
      false,
    );
    assert.equal(verifySignature(generateDeviceKey().publicKey, data, signature), false);
    const flipped = Buffer.from(signature);
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    assert.equal(verifySignature(key.publicKey, data, flipped), false);
  });

  it('matches the RFC 8032 test vector', () => {
    const key = deviceKeyFromPrivatePem(RFC_PEM);
    assert.equal(key.publicKey.toString('hex'), RFC_PUBLIC);
    assert.equal(key.sign(Buffer.alloc(0)).toString('hex'), RFC_SIGNATURE);
    assert.equal(
      verifySignature(
        Buffer.from(RFC_PUBLIC, 'hex'),
        Buffer.alloc(0),
        Buffer.from(RFC_SIGNATURE, 'hex'),
      ),
      true,
    );
    assert.equal(key.toPrivatePem(), RFC_PEM);
  });

  it('round-trips through PKCS#8 PEM', () => {
    const key = generateDeviceKey();
    const pem = key.toPrivatePem();
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
    const loaded = deviceKeyFromPrivatePem(pem);
    assert.deepEqual(loaded.publicKey, key.publicKey);
    const data = Buffer.from('hello');
    assert.equal(verifySignature(key.publicKey, data, loaded.sign(data)), true);
  });

  it('does not expose the private key when inspected or serialised', () => {
    const key = generateDeviceKey();
    const seed = key.toPrivatePem().split('\n')[1] ?? '';
    assert.ok(!JSON.stringify(key).includes(seed));
    assert.deepEqual(Object.keys(key), ['publicKey']);
  });

  it('fingerprints like ssh-keygen', () => {
    const raw = Buffer.from(RFC_PUBLIC, 'hex');
    const independent = `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
    assert.equal(keyFingerprint(raw), independent);
    // Computed once with `xxd -r -p | openssl dgst -sha256 -binary | base64`.
    assert.equal(keyFingerprint(raw), 'SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk');
    for (let i = 0; i < 20; i++) {
      assert.match(keyFingerprint(generateDeviceKey().publicKey), /^SHA256:[A-Za-z0-9+/]{43}$/);
    }
    assert.throws(() => keyFingerprint(Buffer.alloc(31)), RangeError);
  });

  it('returns false, never throws, for malformed verify input', () => {
    const key = generateDeviceKey();
    const data = Buffer.from('x');
    const signature = key.sign(data);
    assert.equal(verifySignature(Buffer.alloc(0), data, signature), false);
    assert.equal(verifySignature(Buffer.alloc(31), data, signature), false);
    assert.equal(verifySignature(Buffer.alloc(33), data, signature), false);
    assert.equal(verifySignature(key.publicKey, data, Buffer.alloc(0)), false);
    assert.equal(verifySignature(key.publicKey, data, signature.subarray(0, 63)), false);
    assert.equal(verifySignature(key.publicKey, data, Buffer.alloc(64)), false);
    assert.equal(verifySignature(Buffer.alloc(32, 0xff), data, signature), false);
    assert.equal(verifySignature(Buffer.alloc(32), data, Buffer.alloc(64)), false);
    assert.equal(verifySignature(key.publicKey, data, Buffer.alloc(64, 0xff)), false);
  });

  it('refuses small-order keys, under which OpenSSL accepts forgeries', () => {
    const p = 2n ** 255n - 19n;
    const y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
    const encode = (y: bigint, signBit: boolean) => {
      const bytes = Buffer.from(y.toString(16).padStart(64, '0'), 'hex').reverse();
      bytes[31] = (bytes[31] ?? 0) | (signBit ? 0x80 : 0);
      return bytes;
    };
    // (y, sign) pairs: x = 0 for y = 1 and y = p-1, so those have no negative twin.
    const weak = [
      encode(1n, false),
      encode(p - 1n, false),
      encode(0n, false),
      encode(0n, true),
      encode(y8, false),
      encode(y8, true),
      encode(p - y8, false),
      encode(p - y8, true),
      encode(p, false), // non-canonical spelling of y = 0
      encode(p + 1n, false), // non-canonical spelling of y = 1
    ];
    // The signature (R = identity, S = 0) is valid whenever [k]A is the identity, which for a
    // point of order <= 8 happens for about one message in eight; OpenSSL does not check A.
    const forged = Buffer.concat([encode(1n, false), Buffer.alloc(32)]);
    for (const key of weak) {
      const messages = Array.from({ length: 128 }, (_, i) => Buffer.from(`message ${i}`));
      const jwk = { kty: 'OKP', crv: 'Ed25519', x: key.toString('base64url') };
      const keyObject = createPublicKey({ key: jwk, format: 'jwk' });
      const accepted = messages.filter((m) => cryptoVerify(null, m, keyObject, forged));
      // Shows each listed key really is small-order (and that this check is what stops it).
      assert.ok(accepted.length > 0, `OpenSSL accepts no forgery under ${key.toString('hex')}`);
      for (const m of messages) assert.equal(verifySignature(key, m, forged), false);
      assert.throws(
        () => parsePublicKey(key.toString('base64')),
        isCryptoError(ErrorCode.HANDSHAKE_FAILED),
      );
    }
  });

  it('rejects a bad key file with CryptoError', () => {
    const bad = [
      '',
      'not a pem',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
      generateDeviceKey()
        .toPrivatePem()
        .replace(/[A-Za-z]/, (c) => (c === 'A' ? 'B' : 'A'))
        .slice(0, 60),
    ];
    for (const pem of bad) {
      assert.throws(() => deviceKeyFromPrivatePem(pem), isCryptoError(ErrorCode.DECRYPT_FAILED));
    }
  });

  it('rejects a PEM holding another key type', async () => {
    // Fixed fixtures rather than generateKeyPairSync (see raw-keys.ts on the Node 20 deadlock).
    const ecPem =
      '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2lHuSSfnf4EI2WlB\n4b9OAtwcACzGqOZX98ZYWqFCE/ehRANCAASpiS8jPd+8/DYPgEIpKTtGMoQL9vpi\n6to2DezVWe5DNYSZEZcHOcIu9nbjWglB5jsx51B2ind2p8yV7/lcizwO\n-----END PRIVATE KEY-----\n';
    const x25519 = randomPrivateKey('x25519');
    for (const pem of [ecPem, x25519.export({ type: 'pkcs8', format: 'pem' }).toString()]) {
      assert.throws(
        () => deviceKeyFromPrivatePem(pem),
        (err) =>
          isCryptoError(ErrorCode.DECRYPT_FAILED)(err) && /Ed25519/.test((err as Error).message),
      );
    }
    // A public key is not a key file either.
    const publicPem = createPublicKey(randomPrivateKey('ed25519')).export({
      type: 'spki',
      format: 'pem',
    });
    assert.throws(
      () => deviceKeyFromPrivatePem(publicPem.toString()),
      isCryptoError(ErrorCode.DECRYPT_FAILED),
    );
  });

  it('parses public keys from the network strictly', () => {
    const key = generateDeviceKey();
    assert.deepEqual(parsePublicKey(key.publicKey.toString('base64')), key.publicKey);
    const raw = Buffer.from(RFC_PUBLIC, 'hex');
    assert.deepEqual(parsePublicKey(raw.toString('base64')), raw);

    // The last data character of 32 bytes carries 2 unused bits; setting one keeps the bytes.
    const canonical = raw.toString('base64');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const nonCanonical = `${canonical.slice(0, 42)}${alphabet[alphabet.indexOf(canonical[42] ?? '') + 1]}=`;
    assert.deepEqual(Buffer.from(nonCanonical, 'base64'), raw);
    const bad = [
      '',
      'AAAA',
      Buffer.alloc(31).toString('base64'),
      Buffer.alloc(33).toString('base64'),
      canonical.slice(0, 43), // unpadded
      raw.toString('base64url'),
      nonCanonical,
      ` ${canonical}`,
      `${canonical}\n`,
    ];
    for (const input of bad) {
      assert.throws(() => parsePublicKey(input), isCryptoError(ErrorCode.HANDSHAKE_FAILED), input);
    }
    assert.throws(() => parsePublicKey(42 as unknown as string), CryptoError);
  });
});

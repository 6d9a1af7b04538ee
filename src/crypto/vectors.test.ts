// Both CryptoProviders against the same known-answer vectors (the browser runs them in test/crypto-browser.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHex, toHex } from './bytes.js';
import { generateDeviceKey, verifySignature } from './device-key.js';
import { nobleCryptoProvider } from './noble-provider.js';
import { nodeCryptoProvider } from './node-provider.js';
import type { CryptoProvider } from './provider.js';
import { ED25519_VECTORS } from './test-vectors.js';
import { VECTOR_CHECK_COUNT, checkVectors } from './vector-check.js';

const PROVIDERS: CryptoProvider[] = [nodeCryptoProvider, nobleCryptoProvider];

for (const provider of PROVIDERS) {
  describe(`${provider.name} provider`, () => {
    it('reproduces every known-answer vector', () => {
      const results = checkVectors(provider);
      const failed = results.filter((r) => !r.ok);
      assert.deepEqual(failed, []);
      assert.equal(results.length, VECTOR_CHECK_COUNT);
    });
  });
}

describe('vector checks can fail', () => {
  it('report each primitive a broken provider gets wrong', () => {
    const broken: CryptoProvider = {
      ...nobleCryptoProvider,
      name: 'broken',
      sha256: (...parts) => {
        const digest = nobleCryptoProvider.sha256(...parts);
        digest[0] = (digest[0] as number) ^ 1;
        return digest;
      },
      ed25519Verify: () => true,
      x25519: (own, peer) =>
        nobleCryptoProvider.x25519PublicKey(own).map((b, i) => b ^ (peer[i] as number)),
      aes256GcmOpen: (key, nonce, sealed) =>
        nobleCryptoProvider.aes256GcmSeal(key, nonce, sealed.subarray(0, sealed.length - 16)),
    };
    const failed = new Set(
      checkVectors(broken)
        .filter((r) => !r.ok)
        .map((r) => r.name),
    );
    for (const name of [
      'FIPS 180-2 B.1 "abc"',
      'RFC 8032 7.1 test 1: tampered signature refused',
      'Ed25519: small-order key with zero signature refused',
      'RFC 7748 5.2 vector 1',
      'X25519: low-order peer point (u = 0) refused',
      'GCM test case 14: tampered tag refused',
      'switchboard prekey bundle and offline agreement v1: header and secret',
    ]) {
      assert.ok(failed.has(name), `${name} should fail for a broken provider`);
    }
  });
});

describe('providers agree with device-key.ts', () => {
  it('a DeviceKeyPair signature verifies under both providers, and a provider signature under verifySignature', () => {
    const key = generateDeviceKey();
    const message = new TextEncoder().encode('cross-check');
    const signature = key.sign(message);
    for (const provider of PROVIDERS) {
      assert.ok(provider.ed25519Verify(key.publicKey, message, signature), provider.name);
    }
    const v = ED25519_VECTORS[2];
    const fromNoble = nobleCryptoProvider.ed25519Sign(fromHex(v.seed), fromHex(v.message));
    assert.equal(toHex(fromNoble), v.signature);
    assert.ok(verifySignature(fromHex(v.publicKey), fromHex(v.message), fromNoble));
  });

  it('random X25519 agreements match across providers', () => {
    for (let i = 0; i < 20; i += 1) {
      const a = nodeCryptoProvider.randomBytes(32);
      const b = nobleCryptoProvider.randomBytes(32);
      const fromNode = nodeCryptoProvider.x25519(a, nobleCryptoProvider.x25519PublicKey(b));
      const fromNoble = nobleCryptoProvider.x25519(b, nodeCryptoProvider.x25519PublicKey(a));
      assert.equal(toHex(fromNode), toHex(fromNoble));
    }
  });
});

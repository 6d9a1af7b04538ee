// The rules checkedProvider adds on top of any implementation, shown with primitives that
// would accept everything: whatever an implementation does, these refusals hold.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkedProvider, type CryptoPrimitives } from './provider.js';

const zeros = (n: number) => new Uint8Array(n);
const permissive: CryptoPrimitives = {
  randomBytes: zeros,
  sha256: () => zeros(32),
  hmacSha256: () => zeros(32),
  hkdfSha256: (_i, _s, _n, length) => zeros(length),
  ed25519PublicKey: () => zeros(32),
  ed25519Sign: () => zeros(64),
  ed25519Verify: () => true,
  x25519PublicKey: () => zeros(32),
  x25519: () => zeros(32),
  aes256GcmSeal: (_k, _n, plaintext) => plaintext,
  aes256GcmSealWithHeader: (_k, _n, _header, plaintext) => plaintext,
  aes256GcmOpen: (_k, _n, sealed) => sealed,
};
const provider = checkedProvider('permissive', permissive);
const key = new Uint8Array(32).fill(7);

describe('checkedProvider', () => {
  it('refuses an all-zero X25519 result even if the implementation returns one', () => {
    assert.throws(() => provider.x25519(key, key), /low-order point/);
  });

  it('never accepts a signature under a weak key or of the wrong length', () => {
    const smallOrder = zeros(32); // y = 0: a point of order 4
    assert.equal(provider.ed25519Verify(smallOrder, zeros(1), zeros(64)), false);
    assert.equal(provider.ed25519Verify(key, zeros(1), zeros(63)), false);
    assert.equal(provider.ed25519Verify(key, zeros(1), zeros(64)), true);
  });

  it('checks sizes before calling the implementation', () => {
    assert.throws(() => provider.ed25519Sign(zeros(31), zeros(1)), /32 bytes/);
    assert.throws(() => provider.x25519(key, zeros(31)), /32 bytes/);
    assert.throws(() => provider.aes256GcmSeal(key, zeros(11), zeros(1)), /12 bytes/);
    assert.throws(
      () => provider.aes256GcmSealWithHeader(key, zeros(13), zeros(8), zeros(1)),
      /12 bytes/,
    );
    assert.throws(
      () => provider.aes256GcmSealWithHeader(zeros(16), zeros(12), zeros(8), zeros(1)),
      /32 bytes/,
    );
    assert.throws(() => provider.aes256GcmOpen(key, zeros(12), zeros(15)), /shorter than its tag/);
  });
});

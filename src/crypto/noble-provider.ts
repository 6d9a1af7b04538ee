// CryptoProvider on @noble/* (audited pure JavaScript): the browser's implementation. Imports nothing from node:*.
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  GCM_NONCE_BYTES,
  KEY_BYTES,
  SIGNATURE_BYTES,
  expectBytes,
  isAllZero,
  isWeakEd25519Key,
  type CryptoProvider,
} from './provider.js';

const EMPTY = new Uint8Array(0);

/**
 * The @noble implementation; randomness comes from WebCrypto's getRandomValues (present in
 * browsers and in Node 20 as globalThis.crypto). Slower than OpenSSL, and no constant-time
 * guarantees beyond what JavaScript allows, so Node code uses nodeCryptoProvider.
 * @example nobleCryptoProvider.x25519(myPrivateKey, theirPublicKey)
 */
export const nobleCryptoProvider: CryptoProvider = Object.freeze({
  name: 'noble',

  randomBytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    // getRandomValues fills at most 65536 bytes per call.
    for (let offset = 0; offset < length; offset += 65536) {
      globalThis.crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
    }
    return out;
  },

  sha256(...parts: Uint8Array[]): Uint8Array {
    const hash = sha256.create();
    for (const part of parts) hash.update(part);
    return hash.digest();
  },

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    return hmac(sha256, key, data);
  },

  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    return hkdf(sha256, ikm, salt, info, length);
  },

  ed25519PublicKey(seed: Uint8Array): Uint8Array {
    expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
    return ed25519.getPublicKey(seed);
  },

  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
    return ed25519.sign(message, seed);
  },

  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      if (signature.length !== SIGNATURE_BYTES || isWeakEd25519Key(publicKey)) return false;
      // zip215: false is RFC 8032's strict decoding (canonical R and S), as OpenSSL does.
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },

  x25519PublicKey(privateKey: Uint8Array): Uint8Array {
    expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
    return x25519.getPublicKey(privateKey);
  },

  x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
    expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
    expectBytes(peerPublicKey, KEY_BYTES, 'an X25519 public key');
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, peerPublicKey);
    } catch (err) {
      // noble refuses an all-zero result itself; report it as node-provider does.
      throw new RangeError('X25519 with a low-order point', { cause: err });
    }
    if (isAllZero(shared)) throw new RangeError('X25519 with a low-order point');
    return shared;
  },

  aes256GcmSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array {
    expectBytes(key, KEY_BYTES, 'an AES-256 key');
    expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
    return gcm(key, nonce, aad).encrypt(plaintext);
  },

  aes256GcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array {
    expectBytes(key, KEY_BYTES, 'an AES-256 key');
    expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
    return gcm(key, nonce, aad).decrypt(sealed);
  },
});

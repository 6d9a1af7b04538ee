// CryptoProvider on node:crypto (OpenSSL): the fast path for the relay, the CLI, hosts and agents.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  diffieHellman,
  hkdfSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import {
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
  KEY_BYTES,
  SIGNATURE_BYTES,
  expectBytes,
  isAllZero,
  isWeakEd25519Key,
  type CryptoProvider,
} from './provider.js';
import { privateKeyFromRaw, publicKeyFromRaw, rawPublicKey } from './raw-keys.js';

const EMPTY = new Uint8Array(0);

/**
 * The node:crypto implementation. Stateless; keys are imported from raw bytes per call
 * (raw-keys.ts: never generateKeyPairSync + JWK export, which can deadlock on Node 20).
 * @example nodeCryptoProvider.ed25519Sign(seed, message)
 */
export const nodeCryptoProvider: CryptoProvider = Object.freeze({
  name: 'node',

  randomBytes(length: number): Uint8Array {
    return randomBytes(length);
  },

  sha256(...parts: Uint8Array[]): Uint8Array {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest();
  },

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    return createHmac('sha256', key).update(data).digest();
  },

  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
    return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
  },

  ed25519PublicKey(seed: Uint8Array): Uint8Array {
    expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
    return rawPublicKey(privateKeyFromRaw('ed25519', seed));
  },

  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
    // Ed25519 hashes internally, so the digest argument must be null.
    return sign(null, message, privateKeyFromRaw('ed25519', seed));
  },

  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      if (signature.length !== SIGNATURE_BYTES || isWeakEd25519Key(publicKey)) return false;
      return verify(null, message, publicKeyFromRaw('ed25519', publicKey), signature);
    } catch {
      return false;
    }
  },

  x25519PublicKey(privateKey: Uint8Array): Uint8Array {
    expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
    return rawPublicKey(privateKeyFromRaw('x25519', privateKey));
  },

  x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
    expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
    expectBytes(peerPublicKey, KEY_BYTES, 'an X25519 public key');
    const shared = diffieHellman({
      privateKey: privateKeyFromRaw('x25519', privateKey),
      publicKey: publicKeyFromRaw('x25519', peerPublicKey),
    });
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
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
    cipher.setAAD(aad);
    const body = cipher.update(plaintext);
    const final = cipher.final();
    return Buffer.concat([body, final, cipher.getAuthTag()]);
  },

  aes256GcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array = EMPTY,
  ): Uint8Array {
    expectBytes(key, KEY_BYTES, 'an AES-256 key');
    expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
    if (sealed.length < GCM_TAG_BYTES) throw new RangeError('GCM input shorter than its tag');
    const split = sealed.length - GCM_TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(split));
    const body = decipher.update(sealed.subarray(0, split));
    // final() throws on a bad tag; only then is the plaintext released.
    return Buffer.concat([body, decipher.final()]);
  },
});

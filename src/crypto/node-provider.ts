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
import { GCM_TAG_BYTES, checkedProvider, type CryptoProvider } from './provider.js';
import { privateKeyFromRaw, publicKeyFromRaw, rawPublicKey } from './raw-keys.js';

/**
 * The node:crypto implementation. Stateless; keys are imported from raw bytes per call
 * (raw-keys.ts: never generateKeyPairSync + JWK export, which can deadlock on Node 20).
 * @example nodeCryptoProvider.ed25519Sign(seed, message)
 */
export const nodeCryptoProvider: CryptoProvider = checkedProvider('node', {
  randomBytes: (length) => randomBytes(length),
  sha256(parts) {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest();
  },
  hmacSha256: (key, data) => createHmac('sha256', key).update(data).digest(),
  hkdfSha256: (ikm, salt, info, length) =>
    new Uint8Array(hkdfSync('sha256', ikm, salt, info, length)),
  ed25519PublicKey: (seed) => rawPublicKey(privateKeyFromRaw('ed25519', seed)),
  // Ed25519 hashes internally, so the digest argument must be null.
  ed25519Sign: (seed, message) => sign(null, message, privateKeyFromRaw('ed25519', seed)),
  ed25519Verify: (publicKey, message, signature) =>
    verify(null, message, publicKeyFromRaw('ed25519', publicKey), signature),
  x25519PublicKey: (privateKey) => rawPublicKey(privateKeyFromRaw('x25519', privateKey)),
  x25519: (privateKey, peerPublicKey) =>
    diffieHellman({
      privateKey: privateKeyFromRaw('x25519', privateKey),
      publicKey: publicKeyFromRaw('x25519', peerPublicKey),
    }),
  aes256GcmSeal: (key, nonce, plaintext, aad) => seal(key, nonce, aad, plaintext, undefined),
  // The header goes into the one Buffer.concat that joins OpenSSL's output pieces anyway.
  aes256GcmSealWithHeader: (key, nonce, header, plaintext) =>
    seal(key, nonce, header, plaintext, header),
  aes256GcmOpen(key, nonce, sealed, aad) {
    const split = sealed.length - GCM_TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(split));
    const body = decipher.update(sealed.subarray(0, split));
    // final() throws on a bad tag; only then is the plaintext released.
    return Buffer.concat([body, decipher.final()]);
  },
});

/** AES-256-GCM: [prefix ||] ciphertext || tag, joined in one copy. */
function seal(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  prefix: Uint8Array | undefined,
): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  const tag = cipher.getAuthTag();
  return Buffer.concat(prefix ? [prefix, body, final, tag] : [body, final, tag]);
}

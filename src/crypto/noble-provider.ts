// CryptoProvider on @noble/* (audited pure JavaScript): the browser's implementation. Imports nothing from node:*.
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { checkedProvider, type CryptoProvider } from './provider.js';

/** getRandomValues fills at most this many bytes per call. */
const RANDOM_CHUNK_BYTES = 65_536; // bytes

/**
 * The @noble implementation; randomness comes from WebCrypto's getRandomValues (present in
 * browsers and in Node 20 as globalThis.crypto). Slower than OpenSSL, and no constant-time
 * guarantees beyond what JavaScript allows, so Node code uses nodeCryptoProvider.
 * @example nobleCryptoProvider.x25519(myPrivateKey, theirPublicKey)
 */
export const nobleCryptoProvider: CryptoProvider = checkedProvider('noble', {
  randomBytes(length) {
    const out = new Uint8Array(length);
    for (let offset = 0; offset < length; offset += RANDOM_CHUNK_BYTES) {
      globalThis.crypto.getRandomValues(
        out.subarray(offset, Math.min(length, offset + RANDOM_CHUNK_BYTES)),
      );
    }
    return out;
  },
  sha256(parts) {
    const hash = sha256.create();
    for (const part of parts) hash.update(part);
    return hash.digest();
  },
  hmacSha256: (key, data) => hmac(sha256, key, data),
  hkdfSha256: (ikm, salt, info, length) => hkdf(sha256, ikm, salt, info, length),
  ed25519PublicKey: (seed) => ed25519.getPublicKey(seed),
  ed25519Sign: (seed, message) => ed25519.sign(message, seed),
  // zip215: false is RFC 8032's strict decoding (canonical R and S), as OpenSSL does.
  ed25519Verify: (publicKey, message, signature) =>
    ed25519.verify(signature, message, publicKey, { zip215: false }),
  x25519PublicKey: (privateKey) => x25519.getPublicKey(privateKey),
  x25519(privateKey, peerPublicKey) {
    try {
      return x25519.getSharedSecret(privateKey, peerPublicKey);
    } catch (err) {
      // noble refuses an all-zero result itself; report it as the checked provider does.
      throw new RangeError('X25519 with a low-order point', { cause: err });
    }
  },
  aes256GcmSeal: (key, nonce, plaintext, aad) => gcm(key, nonce, aad).encrypt(plaintext),
  aes256GcmSealWithHeader(key, nonce, header, plaintext) {
    const sealed = gcm(key, nonce, header).encrypt(plaintext);
    const out = new Uint8Array(header.length + sealed.length);
    out.set(header);
    out.set(sealed, header.length);
    return out;
  },
  aes256GcmOpen: (key, nonce, sealed, aad) => gcm(key, nonce, aad).decrypt(sealed),
});

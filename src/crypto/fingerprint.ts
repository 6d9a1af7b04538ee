// SSH-style key fingerprints, computed with the default provider (node:crypto in Node, @noble in
// the browser build), so the CLI and the page print the same string for the same key.
import { toBase64 } from './bytes.js';
import { defaultCryptoProvider } from './default-provider.js';

/** Size of a raw Ed25519 public key. */
const PUBLIC_KEY_BYTES = 32; // bytes

/**
 * "SHA256:" + unpadded base64 of SHA-256 over the raw 32-byte public key.
 * @example keyFingerprint(rfc8032Key1) // "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk"
 */
export function keyFingerprint(publicKey: Uint8Array): string {
  // A fingerprint of the wrong bytes would look just as trustworthy to a user, so refuse it.
  if (publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new RangeError(
      `an Ed25519 public key is ${PUBLIC_KEY_BYTES} bytes, got ${publicKey.length}`,
    );
  }
  return `SHA256:${toBase64(defaultCryptoProvider.sha256(publicKey)).replace(/=+$/, '')}`;
}

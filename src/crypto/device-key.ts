// A device's long-term Ed25519 identity: generate, load from PEM, sign, verify, fingerprint.
import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { isWeakEd25519Key } from './provider.js';
import { publicKeyFromRaw, randomPrivateKey, rawPublicKey } from './raw-keys.js';

/** Size of a raw Ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32; // bytes
/** Size of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64; // bytes

// Exactly the 44-character padded standard base64 of 32 bytes: 43 significant chars and one '='.
const PUBLIC_KEY_BASE64_RE = /^[A-Za-z0-9+/]{43}=$/;

/** A device's long-term signing key. The private half never leaves this object except as PEM. */
export interface DeviceKeyPair {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** Signs `data`; returns the 64-byte Ed25519 signature. */
  sign(data: Uint8Array): Buffer;
  /** PKCS#8 PEM of the private key (what goes in the 0600 key file; `openssl pkey` can read it). */
  toPrivatePem(): string;
}

class Ed25519DeviceKey implements DeviceKeyPair {
  readonly publicKey: Buffer;
  // A private field so the key object never shows up when a DeviceKeyPair is logged or spread.
  readonly #privateKey: KeyObject;

  constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.publicKey = rawPublicKey(createPublicKey(privateKey));
  }

  sign(data: Uint8Array): Buffer {
    // Ed25519 hashes internally, so the digest argument must be null.
    return cryptoSign(null, data, this.#privateKey);
  }

  toPrivatePem(): string {
    return this.#privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
}

/**
 * Creates a fresh device identity.
 * @example const key = generateDeviceKey(); writeKeyFile(key.toPrivatePem());
 */
export function generateDeviceKey(): DeviceKeyPair {
  return new Ed25519DeviceKey(randomPrivateKey('ed25519'));
}

/**
 * Loads a device identity from the PKCS#8 PEM written by `toPrivatePem()` (or by
 * `openssl genpkey -algorithm ed25519`). Throws CryptoError DECRYPT_FAILED for anything else.
 */
export function deviceKeyFromPrivatePem(pem: string): DeviceKeyPair {
  let key: KeyObject;
  try {
    if (typeof pem !== 'string') throw new TypeError('expected a PEM string');
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new CryptoError(
      ErrorCode.DECRYPT_FAILED,
      `the device key file is not an Ed25519 PKCS#8 key: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CryptoError(
      ErrorCode.DECRYPT_FAILED,
      `the device key file is not an Ed25519 PKCS#8 key: it holds a ${key.asymmetricKeyType ?? 'unknown'} key`,
    );
  }
  return new Ed25519DeviceKey(key);
}

/**
 * Checks an Ed25519 signature made with the raw 32-byte `publicKey`.
 * Returns false, never throws, for malformed keys or signatures: callers treat both as "not signed".
 * Also false for small-order keys, under which OpenSSL would accept forged signatures.
 */
export function verifySignature(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
    if (isWeakEd25519Key(publicKey)) return false;
    return cryptoVerify(null, data, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

export { keyFingerprint } from './fingerprint.js';

/**
 * Validates a raw public key received from the network: the padded standard base64 of exactly
 * 32 bytes, in canonical form (so one key has one spelling and pins compare byte-for-byte), and
 * not a small-order point (no one holds its private key, and anyone can "sign" for it).
 * Throws CryptoError HANDSHAKE_FAILED, since an unusable peer key means the peer cannot be authenticated.
 */
export function parsePublicKey(base64: string): Buffer {
  if (typeof base64 !== 'string' || !PUBLIC_KEY_BASE64_RE.test(base64)) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      'a device public key must be 32 bytes in padded standard base64 (44 characters)',
    );
  }
  const raw = Buffer.from(base64, 'base64');
  // Non-zero bits in the last character's padding decode to the same bytes; reject that spelling.
  if (raw.length !== PUBLIC_KEY_BYTES || raw.toString('base64') !== base64) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      'the device public key is not canonical base64',
    );
  }
  try {
    if (isWeakEd25519Key(raw)) throw new RangeError('small-order or non-canonical point');
    publicKeyObject(raw);
  } catch (err) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      'the device public key is not an Ed25519 key',
      {
        cause: err,
      },
    );
  }
  return raw;
}

/** Raw 32-byte Ed25519 public key -> KeyObject (see raw-keys.ts for why not JWK). */
function publicKeyObject(raw: Uint8Array): KeyObject {
  return publicKeyFromRaw('ed25519', raw);
}

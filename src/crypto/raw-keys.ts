// Raw 32-byte Ed25519/X25519 keys <-> node:crypto KeyObjects, through fixed DER wrappers.
//
// Why not generateKeyPairSync + export({format:'jwk'})? On Node.js 20 that pair can deadlock:
// the JWK export holds the key's mutex while allocating, a GC then runs the destructor of the
// key-generation job that made the key, and that destructor takes the same mutex (seen as a hung
// test process stuck in KeyGenJob::~KeyGenJob under KeyObjectHandle::ExportJWK). Keys made here
// come from random bytes imported as PKCS#8 DER, and raw public keys are read from SPKI DER, so
// neither a key-generation job nor a JWK export is ever involved.
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';

export type Curve = 'ed25519' | 'x25519';

/** DER prefixes (RFC 8410): PKCS#8 private key and SPKI public key, each followed by 32 raw bytes. */
const PKCS8_PREFIX: Record<Curve, Buffer> = {
  ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
};
const SPKI_PREFIX: Record<Curve, Buffer> = {
  ed25519: Buffer.from('302a300506032b6570032100', 'hex'),
  x25519: Buffer.from('302a300506032b656e032100', 'hex'),
};

export const RAW_KEY_BYTES = 32; // bytes

/** A private key from 32 raw bytes (an Ed25519 seed or an X25519 scalar). */
export function privateKeyFromRaw(curve: Curve, raw: Uint8Array): KeyObject {
  if (raw.length !== RAW_KEY_BYTES)
    throw new RangeError(`a raw ${curve} private key is ${RAW_KEY_BYTES} bytes`);
  return createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX[curve], raw]),
    format: 'der',
    type: 'pkcs8',
  });
}

/** A fresh private key from the system CSPRNG. */
export function randomPrivateKey(curve: Curve): KeyObject {
  return privateKeyFromRaw(curve, randomBytes(RAW_KEY_BYTES));
}

/** A public key from its 32 raw bytes. Throws (from node:crypto) if OpenSSL rejects them. */
export function publicKeyFromRaw(curve: Curve, raw: Uint8Array): KeyObject {
  if (raw.length !== RAW_KEY_BYTES)
    throw new RangeError(`a raw ${curve} public key is ${RAW_KEY_BYTES} bytes`);
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX[curve], raw]),
    format: 'der',
    type: 'spki',
  });
}

/** The 32 raw bytes of a public key (or of the public half of a private key). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return Buffer.from(der.subarray(der.length - RAW_KEY_BYTES));
}

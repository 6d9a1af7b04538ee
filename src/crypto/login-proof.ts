// The device proof of `auth.login`: the device key signs the connection's hello challenge and the account.
import {
  DEVICE_AUTH_CONTEXT,
  LOGIN_CHALLENGE_BYTES,
  LOGIN_PROOF_CONTEXT,
} from '../protocol/limits.js';
import type { Transport } from '../protocol/messages.js';
import { SIGNATURE_BYTES, verifySignature, type DeviceKeyPair } from './device-key.js';

/**
 * The bytes a device signs: "switchboard-login-v1" NUL challenge NUL user. The context string
 * keeps the signature from meaning anything elsewhere (the E2E handshake signs other things
 * with the same key); the fresh per-connection challenge keeps it from being replayed; the user
 * name binds it to one account. The challenge is a fixed 32 bytes and user names contain no NUL,
 * so the encoding is unambiguous.
 */
export function loginProofMessage(challenge: Uint8Array, user: string): Buffer {
  return Buffer.concat([
    Buffer.from(`${LOGIN_PROOF_CONTEXT}\0`, 'utf8'),
    challenge,
    Buffer.from(`\0${user}`, 'utf8'),
  ]);
}

/**
 * Signs the proof for `auth.login` (base64 of the 64-byte signature).
 * @example const deviceProof = signLoginProof(key, Buffer.from(hello.challenge, 'base64'), 'alice');
 */
export function signLoginProof(key: DeviceKeyPair, challenge: Uint8Array, user: string): string {
  return key.sign(loginProofMessage(challenge, user)).toString('base64');
}

/** True if `proof` (base64) is the device's signature over this challenge and user; never throws. */
export function verifyLoginProof(
  publicKey: Uint8Array,
  challenge: Uint8Array,
  user: string,
  proof: string,
): boolean {
  return verifyProof(publicKey, challenge, proof, () => loginProofMessage(challenge, user));
}

/** A base64 proof checked against the signed bytes `message()` builds; never throws. */
function verifyProof(
  publicKey: Uint8Array,
  challenge: Uint8Array,
  proof: string,
  message: () => Buffer,
): boolean {
  if (challenge.length !== LOGIN_CHALLENGE_BYTES) return false;
  const signature = Buffer.from(proof, 'base64');
  if (signature.length !== SIGNATURE_BYTES) return false;
  return verifySignature(publicKey, message(), signature);
}

/**
 * The bytes a device signs to authenticate without a password or token (`auth.device`):
 * "switchboard-device-auth-v1" NUL challenge NUL user NUL relay certificate fingerprint. The
 * fingerprint binds it to the relay the device sees: a relay that passes another relay's challenge
 * on gets a proof that relay refuses.
 */
function deviceAuthMessage(challenge: Uint8Array, user: string, relay: string): Buffer {
  return Buffer.concat([
    Buffer.from(`${DEVICE_AUTH_CONTEXT}\0`, 'utf8'),
    challenge,
    Buffer.from(`\0${user}\0${relay}`, 'utf8'),
  ]);
}

/**
 * What a device proof binds as "the relay" for a connection over `transport`. Over TLS: the
 * certificate fingerprint the client verified. Over plaintext the client sees no certificate, so
 * it binds "plain:" and the fingerprint the relay stated in `hello`; the relay checks the same
 * string for its plaintext connections. Nothing authenticates that statement, so over plaintext
 * this names the transport rather than proving the relay: a proof made over plaintext is refused
 * on every TLS connection, and the per-connection challenge still stops replay.
 *
 * @example deviceAuthBinding('plain', fp) // "plain:36:99:…"
 */
export function deviceAuthBinding(transport: Transport, fingerprint: string): string {
  return transport === 'plain' ? `plain:${fingerprint}` : fingerprint;
}

export function signDeviceAuth(
  key: DeviceKeyPair,
  challenge: Uint8Array,
  user: string,
  relay: string,
): string {
  return key.sign(deviceAuthMessage(challenge, user, relay)).toString('base64');
}

/** True if `proof` is the device's signature for this challenge, user and relay; never throws. */
export function verifyDeviceAuth(
  publicKey: Uint8Array,
  challenge: Uint8Array,
  user: string,
  relay: string,
  proof: string,
): boolean {
  return verifyProof(publicKey, challenge, proof, () => deviceAuthMessage(challenge, user, relay));
}

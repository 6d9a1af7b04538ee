// The device proof of `auth.login`: the device key signs the connection's hello challenge and the account.
import { LOGIN_CHALLENGE_BYTES } from '../protocol/limits.js';
import { deviceAuthMessage, loginProofMessage } from '../protocol/proof-messages.js';
import type { Transport } from '../protocol/messages.js';
import { SIGNATURE_BYTES, verifySignature, type DeviceKeyPair } from './device-key.js';

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
  message: () => Uint8Array,
): boolean {
  if (challenge.length !== LOGIN_CHALLENGE_BYTES) return false;
  const signature = Buffer.from(proof, 'base64');
  if (signature.length !== SIGNATURE_BYTES) return false;
  return verifySignature(publicKey, message(), signature);
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

// The bytes a device key signs to prove itself to the relay, shared by Node (crypto/login-proof.ts)
// and the web page: no I/O, no Node built-ins. The context strings keep a signature from meaning
// anything elsewhere; the fresh per-connection challenge keeps it from being replayed; challenges
// are a fixed 32 bytes and names contain no NUL, so each encoding is unambiguous.
import { concatBytes } from '../crypto/bytes.js';
import { DEVICE_AUTH_CONTEXT, LOGIN_PROOF_CONTEXT } from './limits.js';

const utf8 = new TextEncoder();

/** `auth.login`'s proof: "switchboard-login-v1" NUL challenge NUL user. */
export function loginProofMessage(challenge: Uint8Array, user: string): Uint8Array {
  return concatBytes(utf8.encode(`${LOGIN_PROOF_CONTEXT}\0`), challenge, utf8.encode(`\0${user}`));
}

/**
 * `auth.device`'s proof: "switchboard-device-auth-v1" NUL challenge NUL user NUL relay, where
 * relay is what the connection binds (crypto/login-proof.ts deviceAuthBinding).
 */
export function deviceAuthMessage(challenge: Uint8Array, user: string, relay: string): Uint8Array {
  return concatBytes(
    utf8.encode(`${DEVICE_AUTH_CONTEXT}\0`),
    challenge,
    utf8.encode(`\0${user}\0${relay}`),
  );
}

// Safety numbers: 60 digits two users compare aloud to know the relay gave each the other's real keys.
//
// Computed as Signal computes them (libsignal's NumericFingerprintGenerator, "for list"): for each
// side, h = u16be version 0 || keys || identifier, then h = SHA-512(h || keys), 5200 times; the first 30 bytes, six 5-byte big-endian numbers mod 100000, give 30 digits; the two
// sides' digits, the smaller first, give 60. `keys` is the side's identity keys sorted and
// concatenated: a user with several devices has one number over all of them, so a device added
// or replaced changes it, as a replaced key does. Pure: runs in Node and the browser.
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './bytes.js';

/** libsignal's iteration count for displayable fingerprints. */
export const SAFETY_NUMBER_ITERATIONS = 5200;
/** Digits per side; the safety number is twice as long. */
export const SAFETY_NUMBER_SIDE_DIGITS = 30;

/** One side: who (a stable identifier: the user name) and their identity keys (any order). */
export interface SafetySide {
  identifier: string;
  keys: readonly Uint8Array[];
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The 30 digits of one side. */
export function sideDigits(side: SafetySide, iterations = SAFETY_NUMBER_ITERATIONS): string {
  if (side.keys.length === 0) throw new RangeError('a safety number needs at least one key');
  const keys = concatBytes(...[...side.keys].sort(compareBytes));
  let hash = concatBytes(Uint8Array.of(0, 0), keys, utf8(side.identifier));
  for (let i = 0; i < iterations; i++) hash = sha512(concatBytes(hash, keys));
  let digits = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let n = 0;
    for (let i = 0; i < 5; i++) n = n * 256 + hash[chunk * 5 + i]!;
    digits += String(n % 100000).padStart(5, '0');
  }
  return digits;
}

/** The 60-digit safety number of two sides: the same whichever side computes it. */
export function safetyNumber(
  local: SafetySide,
  remote: SafetySide,
  iterations = SAFETY_NUMBER_ITERATIONS,
): string {
  const a = sideDigits(local, iterations);
  const b = sideDigits(remote, iterations);
  return a <= b ? a + b : b + a;
}

/** For reading aloud: twelve groups of five, four to a line. */
export function formatSafetyNumber(digits: string): string {
  const groups = digits.match(/\d{5}/g) ?? [];
  const lines: string[] = [];
  for (let i = 0; i < groups.length; i += 4) lines.push(groups.slice(i, i + 4).join(' '));
  return lines.join('\n');
}

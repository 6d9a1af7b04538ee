// Generated remote session IDs that are easy to read aloud (the format check is in messages.ts).

/** Crockford's base32, lowercase: no i, l, o, u, so nothing is misread or misheard. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** 20 symbols × 5 bits = 100 bits of entropy, in five groups of four. */
const SYMBOLS = 20;

/** A CSPRNG: `length` fresh random bytes (CryptoProvider.randomBytes, node:crypto's randomBytes). */
export type RandomBytes = (length: number) => Uint8Array;

/**
 * A fresh session ID such as `k7m2-x9qp-4rtw-8nze-3vha` (100 random bits from `randomBytes`).
 * @example generateSessionId(nodeCryptoProvider.randomBytes) // 'a3f9-0kzq-…'
 */
export function generateSessionId(randomBytes: RandomBytes): string {
  const bytes = randomBytes(SYMBOLS);
  if (bytes.length !== SYMBOLS) throw new RangeError(`randomBytes returned ${bytes.length} bytes`);
  let out = '';
  for (let i = 0; i < SYMBOLS; i++) {
    if (i > 0 && i % 4 === 0) out += '-';
    // 256 is a multiple of 32, so `& 31` keeps every symbol equally likely.
    out += ALPHABET[bytes[i]! & 31];
  }
  return out;
}

// Parsing a user-typed SSH-style key fingerprint ("SHA256:base64").
import { UsageError } from './exit-codes.js';

export function normalizeSshFingerprint(input: string): string {
  const body = input
    .trim()
    .replace(/^SHA256:/i, '')
    .replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]{43}$/.test(body))
    throw new UsageError(`"${input}" is not a key fingerprint like SHA256:abc…(43 chars)`);
  return `SHA256:${body}`;
}

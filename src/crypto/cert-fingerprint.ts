// Certificate fingerprints as people compare them: SHA-256 over the DER, in openssl's colon-hex form.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';

/** Size of a SHA-256 digest. */
const FINGERPRINT_BYTES = 32; // bytes

/**
 * Prefixes people paste along with the hex: `openssl x509 -fingerprint -sha256` prints
 * "sha256 Fingerprint=" (OpenSSL 3) or "SHA256 Fingerprint=" (1.1), and SSH users write "SHA256:".
 */
const PREFIX_RE = /^(?:sha-?256\s*fingerprint\s*=|sha-?256\s*:)/i;

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/;

/**
 * SHA-256 over a DER certificate, formatted as `openssl x509 -noout -fingerprint -sha256`
 * prints it after the '=', so an operator can compare the two by eye.
 *
 * @example certFingerprint(new X509Certificate(pem).raw) // 'AB:12:…:9F' (95 characters)
 */
export function certFingerprint(der: Uint8Array): string {
  return formatHex(createHash('sha256').update(der).digest('hex'));
}

/**
 * Accepts a fingerprint as a user types or pastes it (colons or none, any case, surrounding
 * whitespace, an optional "sha256 Fingerprint=" or "SHA256:" prefix) and returns the canonical
 * uppercase colon form that {@link certFingerprint} produces.
 *
 * @throws SwitchboardError(TRUST_REQUIRED) unless the input is exactly 32 bytes of hex.
 * @example normalizeFingerprint('sha256 Fingerprint=ab:cd:…') // 'AB:CD:…'
 */
export function normalizeFingerprint(input: string): string {
  const hex = input.trim().replace(PREFIX_RE, '').replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== FINGERPRINT_BYTES * 2) {
    throw new SwitchboardError(
      ErrorCode.TRUST_REQUIRED,
      `not a SHA-256 fingerprint: expected ${FINGERPRINT_BYTES * 2} hex digits ` +
        `(colons optional), as printed by "openssl x509 -noout -fingerprint -sha256", ` +
        `got ${describeInput(input)}`,
    );
  }
  return formatHex(hex);
}

/**
 * True when both fingerprints name the same certificate. Both are normalized first, so any
 * accepted spelling compares; the byte comparison runs in constant time.
 *
 * @throws SwitchboardError(TRUST_REQUIRED) if either is not a SHA-256 fingerprint.
 */
export function fingerprintsEqual(a: string, b: string): boolean {
  const bytesA = Buffer.from(normalizeFingerprint(a).replace(/:/g, ''), 'hex');
  const bytesB = Buffer.from(normalizeFingerprint(b).replace(/:/g, ''), 'hex');
  // Both are exactly FINGERPRINT_BYTES after normalizing, as timingSafeEqual requires.
  return timingSafeEqual(bytesA, bytesB);
}

/**
 * The DER bytes of the first CERTIFICATE block in a PEM text.
 *
 * @throws SwitchboardError(INVALID_MESSAGE) if there is no CERTIFICATE block.
 */
export function pemToDer(pem: string): Buffer {
  const match = PEM_CERT_RE.exec(pem);
  const body = match?.[1]?.replace(/\s/g, '') ?? '';
  const der = Buffer.from(body, 'base64');
  // Buffer.from ignores bad base64 silently; a round trip catches truncated or damaged bodies.
  if (der.length === 0 || der.toString('base64') !== body) {
    throw new SwitchboardError(
      ErrorCode.INVALID_MESSAGE,
      'not a PEM certificate: expected a "-----BEGIN CERTIFICATE-----" block',
    );
  }
  return der;
}

function formatHex(hex: string): string {
  return (hex.toUpperCase().match(/../g) ?? []).join(':');
}

/** Shows enough of a bad input to recognise it without echoing a whole pasted file. */
function describeInput(input: string): string {
  const MAX_SHOWN = 100; // characters
  const shown = input.length > MAX_SHOWN ? `${input.slice(0, MAX_SHOWN)}…` : input;
  return JSON.stringify(shown);
}

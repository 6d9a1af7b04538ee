// Audit entries: hash-chained, each signed by the device that wrote it (an agent, or the relay).
//
// An entry is a JSON body kept as the exact string that was signed: {v, log, seq, prev, time,
// type, ...what happened}. `prev` is the SHA-256 (hex) of the previous entry's body string, ''
// for the first; the signature is Ed25519 over "switchboard-audit-v1" NUL sha256(body). Editing
// an entry breaks its signature (and the next entry's `prev`); deleting one leaves a gap in
// `seq`; moving one puts a `seq` out of order; a forged entry has no valid signature. The key's
// fingerprint is part of the log's name, so a reader checks it against the account's devices.
import { createHash } from 'node:crypto';
import { verifySignature, type DeviceKeyPair } from '../crypto/device-key.js';

export const AUDIT_SIGNATURE_CONTEXT = 'switchboard-audit-v1';
export { AUDIT_APPEND_MAX_ENTRIES, AUDIT_LIST_MAX, AUDIT_MAX_BODY_BYTES } from './limits.js';

/** One line of a log, as stored by the agent and the relay. */
export interface SignedEntry {
  /** The body JSON, exactly as signed. */
  body: string;
  /** Ed25519 signature, base64. */
  sig: string;
}

/** The fields every body has; the rest depend on `type`. */
export interface EntryHead {
  v: 1;
  /** `agent:SESSION:FINGERPRINT` for an agent, `relay:FINGERPRINT` for a relay. */
  log: string;
  seq: number;
  prev: string;
  time: string;
  type: string;
  [field: string]: unknown;
}

export function bodyHash(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

function signedBytes(body: string): Buffer {
  return Buffer.concat([
    Buffer.from(`${AUDIT_SIGNATURE_CONTEXT}\0`, 'utf8'),
    Buffer.from(bodyHash(body), 'hex'),
  ]);
}

export function signEntry(key: DeviceKeyPair, body: EntryHead): SignedEntry {
  const text = JSON.stringify(body);
  return { body: text, sig: key.sign(signedBytes(text)).toString('base64') };
}

export function agentLogName(session: string, fingerprint: string): string {
  return `agent:${session}:${fingerprint}`;
}

/** The fingerprint a log's name says signed it. */
export function logSigner(log: string): string {
  return log.slice(log.indexOf(':SHA256:') + 1);
}

export interface ChainProblem {
  /** The entry where it was found (its position's expected seq). */
  seq: number;
  kind: 'altered' | 'deleted' | 'reordered' | 'forged' | 'malformed';
  message: string;
}

/**
 * Checks one log's entries in stored order: each body parses, names this log, carries the next
 * seq, links to the previous body's hash, and is signed by `publicKey`. Returns the first
 * problem, or undefined. `from` is the seq the first entry must have (1 for a whole log).
 */
export function verifyChain(
  log: string,
  entries: readonly SignedEntry[],
  publicKey: Uint8Array,
  from = 1,
  prevHash = '',
): ChainProblem | undefined {
  let expected = from;
  let prev = prevHash;
  const seqAt = (i: number): unknown => {
    try {
      return (JSON.parse(entries[i]!.body) as EntryHead).seq;
    } catch {
      return undefined;
    }
  };
  for (const [i, entry] of entries.entries()) {
    let head: EntryHead;
    try {
      head = JSON.parse(entry.body) as EntryHead;
    } catch {
      return { seq: expected, kind: 'malformed', message: `entry ${expected} is not JSON` };
    }
    if (head.log !== log || typeof head.seq !== 'number')
      return {
        seq: expected,
        kind: 'malformed',
        message: `entry ${expected} belongs to another log (${String(head.log)})`,
      };
    if (head.seq > expected && entries.some((_, j) => j > i && seqAt(j) === expected))
      return {
        seq: expected,
        kind: 'reordered',
        message: `entry ${head.seq} appears where ${expected} belongs (reordered)`,
      };
    if (head.seq > expected)
      return {
        seq: expected,
        kind: 'deleted',
        message:
          head.seq === expected + 1
            ? `entry ${expected} is missing (deleted): ${expected - 1} is followed by ${head.seq}`
            : `entries ${expected}-${head.seq - 1} are missing (deleted): ${expected - 1} is followed by ${head.seq}`,
      };
    if (head.seq < expected)
      return {
        seq: expected,
        kind: 'reordered',
        message: `entry ${head.seq} appears where ${expected} belongs (reordered or duplicated)`,
      };
    if (!verifySignature(publicKey, signedBytes(entry.body), Buffer.from(entry.sig, 'base64')))
      return {
        seq: expected,
        kind: prev !== '' && head.prev === prev ? 'altered' : 'forged',
        message: `entry ${expected}: the signature does not match its contents (altered, or forged)`,
      };
    if (head.prev !== prev)
      return {
        seq: expected,
        kind: 'altered',
        message: `entry ${expected} does not follow entry ${expected - 1} (its hash differs): entry ${expected - 1} was altered or replaced`,
      };
    prev = bodyHash(entry.body);
    expected += 1;
  }
  return undefined;
}

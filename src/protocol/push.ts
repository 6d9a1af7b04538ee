// The push service's messages, inside the end-to-end channel (the relay sees none of it).
//
// Controller → agent: one signed REQUEST (the directory and every file's name, size, mode and
// SHA-256; preceded by REQUEST_PARTs when it is larger than one record), then, once ACCEPTED, each file's bytes in order as DATA chunks (a chunk never spans
// two files; an empty file has none), or SKIP for a file the sender cannot finish. Agent →
// controller: ACCEPTED or REFUSED, ACKs of the data bytes it has written (or dropped), one FILE
// result per file as it is done, then DONE. The sender keeps at most PUSH_WINDOW_BYTES
// unacknowledged. Framing as for exec (service-message.ts); the request as signed-request.ts.
import { z } from 'zod';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { MAX_RECORD_PLAINTEXT } from '../crypto/secure-channel.js';
import type { ErrorCode } from './errors.js';
import {
  openRequest,
  sha256Hex,
  signRequest,
  signedRequestSchema,
  splitRequest,
  type SignedRequestFormat,
} from './signed-request.js';

export const PushType = {
  REQUEST: 0x01,
  DATA: 0x02,
  SKIP: 0x03,
  REQUEST_PART: 0x04,
  ACCEPTED: 0x11,
  ACK: 0x12,
  FILE: 0x13,
  DONE: 0x14,
  REFUSED: 0x16,
} as const;

/** The name controllers open and agents serve. */
export const PUSH_SERVICE = 'push';
/** What the signature covers besides the request: the context keeps it from meaning anything else. */
export const PUSH_SIGNATURE_CONTEXT = 'switchboard-push-v1';
/** Files in one push. */
export const PUSH_MAX_FILES = 1000;
/** All files of one push together (the agent's disk and the time one channel is held). */
export const PUSH_MAX_TOTAL_BYTES = 2 ** 30; // bytes (1 GiB)
/** A file name, in UTF-8 bytes: NAME_MAX on Linux and macOS. */
export const PUSH_MAX_NAME_BYTES = 255; // bytes
/** The directory, in UTF-8 bytes: PATH_MAX on Linux. */
export const PUSH_MAX_DIR_BYTES = 4096; // bytes
/** Largest signed request: PUSH_MAX_FILES entries of the longest name fit. */
export const PUSH_MAX_REQUEST_BYTES = 1024 * 1024; // bytes
/** Largest data chunk in one message: a record, less the type byte. */
export const PUSH_CHUNK_BYTES = MAX_RECORD_PLAINTEXT - 1; // bytes
/** Data sent and not yet acknowledged before the sender pauses (well under the relay's 8 MiB SLOW_PEER). */
export const PUSH_WINDOW_BYTES = 1024 * 1024; // bytes
/** The agent gives up on a push whose sender sends nothing for this long while data is due. */
export const PUSH_IDLE_TIMEOUT_MS = 60_000; // ms

/**
 * Whether `name` is a plain file name, safe to join to a directory: not empty, not `.` or `..`,
 * no `/`, no NUL or other control character, at most PUSH_MAX_NAME_BYTES in UTF-8.
 * @example isPushFileName('app.tar.gz') // true; isPushFileName('../x') // false
 */
export function isPushFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    // eslint-disable-next-line no-control-regex
    !/[\x00-\x1f\x7f]/.test(name) &&
    Buffer.byteLength(name, 'utf8') <= PUSH_MAX_NAME_BYTES
  );
}

/** Why `name` is not a plain file name, for people; undefined if it is one. */
export function pushFileNameProblem(name: string): string | undefined {
  if (isPushFileName(name)) return undefined;
  if (name === '' || name === '.' || name === '..') return 'not a file name';
  if (name.includes('/')) return 'a name may not contain "/"';
  if (Buffer.byteLength(name, 'utf8') > PUSH_MAX_NAME_BYTES)
    return `longer than ${PUSH_MAX_NAME_BYTES} bytes`;
  return 'a name may not contain control characters';
}

export const PushFile = z
  .object({
    name: z.string().refine(isPushFileName, (name) => ({
      message: `"${name.slice(0, 64)}": ${pushFileNameProblem(name) ?? 'invalid'}`,
    })),
    size: z.number().int().min(0).max(PUSH_MAX_TOTAL_BYTES),
    /** Permission bits as the agent sets them: only `mode & 0o777` is applied. */
    mode: z.number().int().min(0).max(0o7777),
    sha256: sha256Hex,
  })
  .strict();
export type PushFile = z.infer<typeof PushFile>;

export const PushRequest = signedRequestSchema('push', {
  /** Where the files go: absolute, on the agent. */
  dir: z
    .string()
    .min(1)
    .refine((d) => d.startsWith('/') && !d.includes('\0'), 'must be an absolute directory')
    .refine((d) => Buffer.byteLength(d, 'utf8') <= PUSH_MAX_DIR_BYTES, 'too long'),
  /** Create `dir` if missing (where the policy allows it). */
  mkdir: z.boolean(),
  files: z.array(PushFile).min(1).max(PUSH_MAX_FILES),
}).superRefine((r, ctx) => {
  const names = new Set<string>();
  let total = 0;
  r.files.forEach((f, i) => {
    if (names.has(f.name))
      ctx.addIssue({ code: 'custom', path: ['files', i, 'name'], message: 'named twice' });
    names.add(f.name);
    total += f.size;
  });
  if (total > PUSH_MAX_TOTAL_BYTES)
    ctx.addIssue({
      code: 'custom',
      path: ['files'],
      message: `${total} bytes in all; at most ${PUSH_MAX_TOTAL_BYTES}`,
    });
});
export type PushRequest = z.infer<typeof PushRequest>;

/** The push request's framing: type 0x01, signed over `switchboard-push-v1` NUL json. */
export const PUSH_REQUEST_FORMAT: SignedRequestFormat<PushRequest> = {
  type: PushType.REQUEST,
  context: PUSH_SIGNATURE_CONTEXT,
  schema: PushRequest,
  maxBytes: PUSH_MAX_REQUEST_BYTES,
};

/**
 * The signed request as the messages to send: REQUEST_PARTs with the JSON's leading pieces if it
 * does not fit one record, then the REQUEST (type, the 64-byte signature over context NUL json,
 * the JSON's rest).
 */
export function encodePushRequest(key: DeviceKeyPair, request: PushRequest): Uint8Array[] {
  return splitRequest(signRequest(PUSH_REQUEST_FORMAT, key, request), PushType.REQUEST_PART);
}

/** Checks a REQUEST's signature against `publicKey`, then parses it (see `openRequest`). */
export function openPushRequest(
  message: Uint8Array,
  publicKey: Uint8Array,
  leading: readonly Uint8Array[] = [],
): PushRequest {
  return openRequest(PUSH_REQUEST_FORMAT, message, publicKey, leading);
}

/** The agent takes the push: data may flow. */
export interface PushAccepted {
  /** The policy rule that allowed it. */
  rule: string;
  /** The directory the files go to, as the agent resolved it (symlinks followed). */
  dir: string;
  /** The agent created it (--mkdir). */
  created: boolean;
}

/** One file's outcome at the agent. */
export interface PushFileResult {
  /** Its place in the request's `files`. */
  index: number;
  name: string;
  result: 'written' | 'failed';
  /** Bytes received for it. */
  bytes: number;
  /** One line for a person: why it failed. */
  error?: string;
}

/** The agent's last word on a push. */
export interface PushDone {
  written: number;
  failed: number;
  /** Bytes of the files written. */
  bytes: number;
  durationMs: number;
}

export interface PushRefused {
  code: ErrorCode;
  /** What decided: a policy rule, `signature`, `request` or `dir`. */
  rule: string;
  message: string;
}

/** Why the sender gives up on the current file (SKIP). */
export interface PushSkip {
  reason: string;
}

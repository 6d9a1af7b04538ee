// The exec service's messages, inside the end-to-end channel (the relay sees none of it).
//
// Controller → agent: one signed REQUEST first (then SCRIPT chunks for a script), then STDIN
// chunks, STDIN_EOF, CANCEL and output ACKs. Agent → controller: STARTED or REFUSED, then
// STDOUT/STDERR chunks and STDIN_ACKs, then one EXIT. Each message is one type byte and a body:
// raw bytes for the data chunks, a u64be byte count for the acks, UTF-8 JSON for the rest. The
// request is signed by the requester's device key over its exact JSON bytes, bound to the agent
// (session and device key) and to this channel (the handshake hash), with a nonce and a time.
import { z } from 'zod';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { MAX_RECORD_PLAINTEXT } from '../crypto/secure-channel.js';
import type { ErrorCode } from './errors.js';
import {
  REQUEST_MAX_CLOCK_SKEW_MS,
  REQUEST_NONCE_BYTES,
  openRequest,
  sha256Hex,
  signRequest,
  signedRequestSchema,
  type SignedRequestFormat,
} from './signed-request.js';

export { decodeCount, decodeJson, encodeCount, encodeData, encodeJson } from './service-message.js';

export const ExecType = {
  REQUEST: 0x01,
  SCRIPT: 0x02,
  STDIN: 0x03,
  STDIN_EOF: 0x04,
  CANCEL: 0x05,
  ACK: 0x06,
  STARTED: 0x11,
  STDOUT: 0x12,
  STDERR: 0x13,
  EXIT: 0x14,
  STDIN_ACK: 0x15,
  REFUSED: 0x16,
} as const;

/** The name controllers open and agents serve. */
export const EXEC_SERVICE = 'exec';
/** What the signature covers besides the request: the context keeps it from meaning anything else. */
export const EXEC_SIGNATURE_CONTEXT = 'switchboard-exec-v1';
/**
 * Largest signed request's JSON (argv or shell line included): one record, less the type byte and
 * the 64-byte signature. A longer command goes as a --script.
 */
export const EXEC_MAX_REQUEST_BYTES = MAX_RECORD_PLAINTEXT - 1 - 64; // bytes
/** Largest argv: words, and bytes of one word. */
export const EXEC_MAX_ARGS = 4096;
/** Largest `--script` file. */
export const EXEC_MAX_SCRIPT_BYTES = 4 * 1024 * 1024; // bytes
/** Largest data chunk in one message (stdin, stdout, stderr, script): a record, less the type byte. */
export const EXEC_CHUNK_BYTES = MAX_RECORD_PLAINTEXT - 1; // bytes
/** Output (and stdin) sent and not yet acknowledged before the sender pauses. */
export const EXEC_WINDOW_BYTES = 1024 * 1024; // bytes
/** How far a request's time may be from the agent's clock, either way (as for every signed request). */
export const EXEC_MAX_CLOCK_SKEW_MS = REQUEST_MAX_CLOCK_SKEW_MS; // ms
/** Between the signals of a cancel or timeout: SIGINT, then SIGTERM, then SIGKILL. */
export const EXEC_KILL_GRACE_MS = 2_000; // ms
/** Nonce bytes (base64 in the request). */
export const EXEC_NONCE_BYTES = REQUEST_NONCE_BYTES; // bytes

/** An argument as a process can receive it: no NUL (exec would refuse it after the policy said yes). */
const word = z
  .string()
  .max(EXEC_MAX_REQUEST_BYTES)
  .regex(/^[^\0]*$/, 'an argument cannot contain NUL');

export const ExecCommand = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('argv'),
    argv: z.array(word).min(1).max(EXEC_MAX_ARGS),
  }),
  z.object({ kind: z.literal('shell'), line: word.min(1) }),
  z.object({
    kind: z.literal('script'),
    /** The file's base name, for the audit and the process title. */
    name: z.string().min(1).max(255),
    sha256: sha256Hex,
    size: z.number().int().min(1).max(EXEC_MAX_SCRIPT_BYTES),
    /** Arguments after the script. */
    args: z.array(word).max(EXEC_MAX_ARGS),
  }),
]);
export type ExecCommand = z.infer<typeof ExecCommand>;

export const ExecRequest = signedRequestSchema('exec', {
  command: ExecCommand,
  /** Kill the command after this long (the policy's limit applies anyway). */
  timeoutMs: z
    .number()
    .int()
    .min(1)
    .max(365 * 86_400_000)
    .optional(),
  /** The requester sends standard input (else the command's stdin is empty). */
  stdin: z.boolean(),
});
export type ExecRequest = z.infer<typeof ExecRequest>;

/** What the agent says before the command runs. */
export interface ExecStarted {
  /** The policy rule that allowed it. */
  rule: string;
  pid: number;
}

/** Why a command ended other than on its own. */
export type ExecEndReason =
  'timeout' | 'output-limit' | 'cancelled' | 'spawn-failed' | 'interrupted';

export interface StreamDigest {
  bytes: number;
  sha256: string;
}

/** The agent's last word on a command. */
export interface ExecExit {
  /** Its exit status; null if a signal ended it or it never started. */
  code: number | null;
  signal: string | null;
  reason?: ExecEndReason;
  /** One line for a person (spawn failures, limits). */
  message?: string;
  durationMs: number;
  stdout: StreamDigest;
  stderr: StreamDigest;
}

export interface ExecRefused {
  code: ErrorCode;
  /** What decided (a policy rule, or the check that failed). */
  rule: string;
  message: string;
}

/** The exec request's framing: type 0x01, signed over `switchboard-exec-v1` NUL json. */
export const EXEC_REQUEST_FORMAT: SignedRequestFormat<ExecRequest> = {
  type: ExecType.REQUEST,
  context: EXEC_SIGNATURE_CONTEXT,
  schema: ExecRequest,
  maxBytes: EXEC_MAX_REQUEST_BYTES,
  tooLargeHint: 'send a --script instead',
};

/** The REQUEST message: type, the 64-byte signature over context NUL json, then the json. */
export function encodeSignedRequest(key: DeviceKeyPair, request: ExecRequest): Uint8Array {
  return signRequest(EXEC_REQUEST_FORMAT, key, request);
}

/**
 * Checks a REQUEST message's signature against `publicKey` and parses it (`openRequest`):
 * SIGNATURE_INVALID before anything unsigned is read, INVALID_MESSAGE for a malformed request.
 */
export function openSignedRequest(message: Uint8Array, publicKey: Uint8Array): ExecRequest {
  return openRequest(EXEC_REQUEST_FORMAT, message, publicKey);
}

/** The command as a person reads it (the audit, refusals, the progress line). */
export function describeCommand(command: ExecCommand): string {
  switch (command.kind) {
    case 'argv':
      return command.argv.map(quoteWord).join(' ');
    case 'shell':
      return `sh -c ${quoteWord(command.line)}`;
    case 'script':
      return [`script ${command.name}`, ...command.args.map(quoteWord)].join(' ');
  }
}

/** A word as a POSIX shell would need it quoted to mean itself. */
export function quoteWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

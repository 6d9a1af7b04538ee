// The exec service's messages, inside the end-to-end channel (the relay sees none of it).
//
// Controller → agent: one signed REQUEST first (then SCRIPT chunks for a script), then STDIN
// chunks, STDIN_EOF, CANCEL and output ACKs. Agent → controller: STARTED or REFUSED, then
// STDOUT/STDERR chunks and STDIN_ACKs, then one EXIT. Each message is one type byte and a body:
// raw bytes for the data chunks, a u64be byte count for the acks, UTF-8 JSON for the rest. The
// request is signed by the requester's device key over its exact JSON bytes, bound to the agent
// (session and device key) and to this channel (the handshake hash), with a nonce and a time.
import { z } from 'zod';
import { SIGNATURE_BYTES, verifySignature, type DeviceKeyPair } from '../crypto/device-key.js';
import { MAX_RECORD_PLAINTEXT } from '../crypto/secure-channel.js';
import { ErrorCode, ProtocolError, SessionError } from './errors.js';
import { USERNAME_RE, SESSION_ID_RE } from './messages.js';

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
/** Largest signed request (argv or shell line included). */
export const EXEC_MAX_REQUEST_BYTES = 64 * 1024; // bytes
/** Largest argv: words, and bytes of one word. */
export const EXEC_MAX_ARGS = 4096;
/** Largest `--script` file. */
export const EXEC_MAX_SCRIPT_BYTES = 4 * 1024 * 1024; // bytes
/** Largest data chunk in one message (stdin, stdout, stderr, script): a record, less the type byte. */
export const EXEC_CHUNK_BYTES = MAX_RECORD_PLAINTEXT - 1; // bytes
/** Output (and stdin) sent and not yet acknowledged before the sender pauses. */
export const EXEC_WINDOW_BYTES = 1024 * 1024; // bytes
/** How far a request's time may be from the agent's clock, either way. */
export const EXEC_MAX_CLOCK_SKEW_MS = 5 * 60_000; // ms
/** Between the signals of a cancel or timeout: SIGINT, then SIGTERM, then SIGKILL. */
export const EXEC_KILL_GRACE_MS = 2_000; // ms
/** Nonce bytes (base64 in the request). */
export const EXEC_NONCE_BYTES = 16; // bytes

const nonce = z.string().regex(/^[A-Za-z0-9+/]{22}==$/, 'a 16-byte nonce in base64');
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const ExecCommand = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('argv'),
    argv: z.array(z.string().min(0).max(EXEC_MAX_REQUEST_BYTES)).min(1).max(EXEC_MAX_ARGS),
  }),
  z.object({ kind: z.literal('shell'), line: z.string().min(1).max(EXEC_MAX_REQUEST_BYTES) }),
  z.object({
    kind: z.literal('script'),
    /** The file's base name, for the audit and the process title. */
    name: z.string().min(1).max(255),
    sha256: sha256Hex,
    size: z.number().int().min(1).max(EXEC_MAX_SCRIPT_BYTES),
    /** Arguments after the script. */
    args: z.array(z.string().max(EXEC_MAX_REQUEST_BYTES)).max(EXEC_MAX_ARGS),
  }),
]);
export type ExecCommand = z.infer<typeof ExecCommand>;

export const ExecRequest = z
  .object({
    v: z.literal(1),
    op: z.literal('exec'),
    /** The requester, as the relay knows them: must be the channel's proven peer. */
    user: z.string().regex(USERNAME_RE),
    /** This agent: its session and its device key's fingerprint. */
    agent: z.object({ session: z.string().regex(SESSION_ID_RE), fingerprint: z.string().max(64) }),
    /** The channel's handshake hash (hex): a request is good in the channel it was signed for only. */
    channel: z.string().regex(/^[0-9a-f]{64}$/),
    nonce,
    /** Milliseconds since the epoch, at the requester. */
    issuedAt: z.number().int().min(0),
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
  })
  .strict();
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

function signedBytes(json: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${EXEC_SIGNATURE_CONTEXT}\0`, 'utf8'), json]);
}

/** The REQUEST message: type, the 64-byte signature over context NUL json, then the json. */
export function encodeSignedRequest(key: DeviceKeyPair, request: ExecRequest): Uint8Array {
  const json = Buffer.from(JSON.stringify(request), 'utf8');
  if (json.length > EXEC_MAX_REQUEST_BYTES)
    throw new ProtocolError(
      ErrorCode.FRAME_TOO_LARGE,
      `the command is ${json.length} bytes; at most ${EXEC_MAX_REQUEST_BYTES} (send a --script instead)`,
    );
  const signature = key.sign(signedBytes(json));
  return Buffer.concat([Buffer.from([ExecType.REQUEST]), signature, json]);
}

/**
 * Checks a REQUEST message's signature against `publicKey` and parses it. Throws
 * SIGNATURE_INVALID for a missing or wrong signature (before reading the JSON: nothing unsigned
 * is looked at), INVALID_MESSAGE for a signed but malformed request.
 */
export function openSignedRequest(message: Uint8Array, publicKey: Uint8Array): ExecRequest {
  if (message[0] !== ExecType.REQUEST || message.length <= 1 + SIGNATURE_BYTES)
    throw new SessionError(ErrorCode.SIGNATURE_INVALID, 'the request is not signed');
  if (message.length > 1 + SIGNATURE_BYTES + EXEC_MAX_REQUEST_BYTES)
    throw new ProtocolError(ErrorCode.FRAME_TOO_LARGE, 'the request is too large');
  const signature = message.subarray(1, 1 + SIGNATURE_BYTES);
  const json = message.subarray(1 + SIGNATURE_BYTES);
  if (!verifySignature(publicKey, signedBytes(json), signature))
    throw new SessionError(
      ErrorCode.SIGNATURE_INVALID,
      "the request's signature is not the requesting device's",
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(json).toString('utf8'));
  } catch {
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'the request is not JSON');
  }
  const result = ExecRequest.safeParse(parsed);
  if (!result.success)
    throw new ProtocolError(
      ErrorCode.INVALID_MESSAGE,
      `malformed request: ${result.error.issues[0]?.path.join('.') ?? ''} ${result.error.issues[0]?.message ?? ''}`.trim(),
    );
  return result.data;
}

export function encodeJson(type: number, body: unknown): Uint8Array {
  return Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body), 'utf8')]);
}

export function decodeJson<T>(message: Uint8Array): T {
  try {
    return JSON.parse(Buffer.from(message.subarray(1)).toString('utf8')) as T;
  } catch {
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'a malformed exec message');
  }
}

export function encodeData(type: number, data: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(1 + data.length);
  out[0] = type;
  out.set(data, 1);
  return out;
}

export function encodeCount(type: number, count: number): Uint8Array {
  const out = Buffer.allocUnsafe(9);
  out[0] = type;
  out.writeBigUInt64BE(BigInt(count), 1);
  return out;
}

export function decodeCount(message: Uint8Array): number {
  if (message.length !== 9) throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'a malformed ack');
  return Number(Buffer.from(message.buffer, message.byteOffset, 9).readBigUInt64BE(1));
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

// Terminal messages exchanged end to end (inside the encrypted channel) between host and controller.
import { z } from 'zod';
import { CryptoError, ErrorCode } from './errors.js';

/** Version of the terminal protocol spoken inside the E2E channel. */
export const TERMINAL_PROTOCOL_VERSION = 1;
/** Largest chunk of output or input in one message (fits a 64 KiB E2E record with headroom). */
export const MAX_CHUNK_BYTES = 32 * 1024; // bytes
/** Output a host sends ahead of a controller's acknowledgements. */
export const OUTPUT_WINDOW_BYTES = 1024 * 1024; // bytes
/** Output kept at the host for replay after a reconnect; older output is replaced by a screen snapshot. */
export const REPLAY_BUFFER_BYTES = 4 * 1024 * 1024; // bytes
/** Input a controller keeps unacknowledged (to resend after a reconnect) before it stops reading. */
export const INPUT_WINDOW_BYTES = 256 * 1024; // bytes
/** A controller acknowledges output at least this often. */
export const ACK_EVERY_BYTES = 64 * 1024; // bytes
export const ACK_DELAY_MS = 20; // ms

export const TerminalType = {
  HELLO: 0x10,
  WELCOME: 0x11,
  OUTPUT: 0x12,
  SNAPSHOT: 0x13,
  INPUT: 0x14,
  ACK: 0x15,
  RESIZE: 0x16,
  EXIT: 0x17,
  NOTICE: 0x18,
  BYE: 0x19,
} as const;

const dims = { cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) };

export const HelloSchema = z.object({
  v: z.number().int(),
  ...dims,
  readOnly: z.boolean(),
  term: z.string().max(64).optional(),
  /** Resume an earlier attachment: its id and the next output offset the controller needs. */
  resume: z
    .object({
      attachment: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
      offset: z.number().int().min(0),
    })
    .optional(),
});
export const WelcomeSchema = z.object({
  attachment: z.string(),
  readOnly: z.boolean(),
  resumed: z.boolean(),
  /** Input offset the host has consumed; the controller resends anything after it. */
  inputOffset: z.number().int().min(0),
  kind: z.enum(['share', 'agent']),
});
export const ExitSchema = z.object({ code: z.number().int(), signal: z.number().int().optional() });
export const NoticeSchema = z.object({ text: z.string().max(1024) });
export const ByeSchema = z.object({
  reason: z.string().max(256),
  /** The error code of a refusal or drop (absent for a plain detach). */
  code: z
    .string()
    .regex(/^[A-Z][A-Z_]{2,31}$/)
    .optional(),
});

export type Hello = z.infer<typeof HelloSchema>;
export type Welcome = z.infer<typeof WelcomeSchema>;

export type TerminalMessage =
  | { type: 'hello'; hello: Hello }
  | { type: 'welcome'; welcome: Welcome }
  | { type: 'output'; offset: number; data: Buffer }
  | { type: 'snapshot'; offset: number; data: Buffer }
  | { type: 'input'; offset: number; data: Buffer }
  | { type: 'ack'; offset: number }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'exit'; code: number; signal?: number }
  | { type: 'notice'; text: string }
  | { type: 'bye'; reason: string; code?: string };

function withJson(type: number, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = type;
  body.copy(out, 1);
  return out;
}

function withOffset(type: number, offset: number, data?: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(9 + (data?.length ?? 0));
  out[0] = type;
  out.writeBigUInt64BE(BigInt(offset), 1);
  if (data) out.set(data, 9);
  return out;
}

/** Encodes one terminal message (the plaintext of one E2E record). */
export function encodeTerminal(msg: TerminalMessage): Buffer {
  switch (msg.type) {
    case 'hello':
      return withJson(TerminalType.HELLO, msg.hello);
    case 'welcome':
      return withJson(TerminalType.WELCOME, msg.welcome);
    case 'output':
      return withOffset(TerminalType.OUTPUT, msg.offset, msg.data);
    case 'snapshot':
      return withOffset(TerminalType.SNAPSHOT, msg.offset, msg.data);
    case 'input':
      return withOffset(TerminalType.INPUT, msg.offset, msg.data);
    case 'ack':
      return withOffset(TerminalType.ACK, msg.offset);
    case 'resize': {
      const out = Buffer.allocUnsafe(5);
      out[0] = TerminalType.RESIZE;
      out.writeUInt16BE(msg.cols, 1);
      out.writeUInt16BE(msg.rows, 3);
      return out;
    }
    case 'exit':
      return withJson(
        TerminalType.EXIT,
        msg.signal === undefined ? { code: msg.code } : { code: msg.code, signal: msg.signal },
      );
    case 'notice':
      return withJson(TerminalType.NOTICE, { text: msg.text });
    case 'bye':
      return withJson(
        TerminalType.BYE,
        msg.code ? { reason: msg.reason, code: msg.code } : { reason: msg.reason },
      );
    default: {
      const unreachable: never = msg;
      throw new Error(`unknown terminal message ${String(unreachable)}`);
    }
  }
}

function bad(why: string): CryptoError {
  // The record decrypted, so the peer holds the key: this is a broken or hostile peer, not noise.
  return new CryptoError(ErrorCode.INVALID_MESSAGE, `bad terminal message: ${why}`);
}

function json<T>(body: Buffer, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw bad(parsed.error.issues[0]?.message ?? 'schema');
  return parsed.data;
}

function offsetOf(buf: Buffer): number {
  if (buf.length < 9) throw bad('too short');
  const big = buf.readBigUInt64BE(1);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('offset out of range');
  return Number(big);
}

/** Decodes one terminal message; throws CryptoError(INVALID_MESSAGE) on anything malformed. */
export function decodeTerminal(buf: Buffer): TerminalMessage {
  if (buf.length < 1) throw bad('empty');
  const body = buf.subarray(1);
  switch (buf[0]) {
    case TerminalType.HELLO:
      return { type: 'hello', hello: json(body, HelloSchema) };
    case TerminalType.WELCOME:
      return { type: 'welcome', welcome: json(body, WelcomeSchema) };
    case TerminalType.OUTPUT:
      return { type: 'output', offset: offsetOf(buf), data: buf.subarray(9) };
    case TerminalType.SNAPSHOT:
      return { type: 'snapshot', offset: offsetOf(buf), data: buf.subarray(9) };
    case TerminalType.INPUT:
      return { type: 'input', offset: offsetOf(buf), data: buf.subarray(9) };
    case TerminalType.ACK:
      if (buf.length !== 9) throw bad('ack length');
      return { type: 'ack', offset: offsetOf(buf) };
    case TerminalType.RESIZE: {
      if (buf.length !== 5) throw bad('resize length');
      const cols = buf.readUInt16BE(1);
      const rows = buf.readUInt16BE(3);
      if (cols < 1 || rows < 1 || cols > 1000 || rows > 1000) throw bad('resize out of range');
      return { type: 'resize', cols, rows };
    }
    case TerminalType.EXIT: {
      const exit = json(body, ExitSchema);
      return exit.signal === undefined
        ? { type: 'exit', code: exit.code }
        : { type: 'exit', code: exit.code, signal: exit.signal };
    }
    case TerminalType.NOTICE:
      return { type: 'notice', text: json(body, NoticeSchema).text };
    case TerminalType.BYE: {
      const bye = json(body, ByeSchema);
      return bye.code === undefined
        ? { type: 'bye', reason: bye.reason }
        : { type: 'bye', reason: bye.reason, code: bye.code };
    }
    default:
      throw bad(`unknown type 0x${(buf[0] ?? 0).toString(16)}`);
  }
}

/** The handshake prologue both ends compute on their own; a relay lying about names breaks it. */
export function e2ePrologue(sessionId: string, hostUser: string, controllerUser: string): Buffer {
  return Buffer.from(`switchboard-e2e-v1\0${sessionId}\0${hostUser}\0${controllerUser}`);
}

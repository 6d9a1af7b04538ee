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
/**
 * …or this long after the first byte it has not acknowledged. Acks only move the flow-control
 * window (1 MiB) and free replay state, so they need not follow each keystroke's echo: at 20 ms
 * half the keystrokes of a typist cost an extra record through the relay.
 */
export const ACK_DELAY_MS = 200; // ms
/**
 * The host acknowledges input this long after the first byte it has not acknowledged, or at
 * once past INPUT_ACK_EVERY_BYTES: the controller keeps unacknowledged input only to resend it
 * after a reconnect, and the host drops what it already consumed.
 */
export const INPUT_ACK_DELAY_MS = 200; // ms
export const INPUT_ACK_EVERY_BYTES = 16 * 1024; // bytes
/**
 * While output streams, the host sends it at most once per this interval (or as soon as a full
 * MAX_CHUNK_BYTES is waiting), so a burst goes out in fewer, larger records instead of one per
 * 4 KiB PTY read. Output after a pause at least this long goes out at once: a keystroke's echo is
 * never held.
 */
export const OUTPUT_COALESCE_MS = 2; // ms

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
  /** Controller → host: send me a snapshot of the screen now (the CLI drew over it). */
  REPAINT: 0x1a,
} as const;

const dims = { cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) };

export const HelloSchema = z.object({
  v: z.number().int(),
  ...dims,
  readOnly: z.boolean(),
  term: z.string().max(64).optional(),
  /**
   * Resume an earlier attachment: its id and the next output offset the controller needs; with
   * `repaint`, the controller's screen does not show the earlier output (a new process on a new
   * terminal), so it wants the current screen rather than a replay from `offset`.
   */
  resume: z
    .object({
      attachment: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
      offset: z.number().int().min(0),
      repaint: z.boolean().optional(),
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
  /** An agent's viewer watches another controller's shell: that controller's user. */
  watching: z.string().max(64).optional(),
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
  | { type: 'output'; offset: number; data: Uint8Array }
  | { type: 'snapshot'; offset: number; data: Uint8Array }
  | { type: 'input'; offset: number; data: Uint8Array }
  | { type: 'ack'; offset: number }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'exit'; code: number; signal?: number }
  | { type: 'notice'; text: string }
  | { type: 'bye'; reason: string; code?: string }
  | { type: 'repaint' };

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF, so a body starting with one is not JSON (as with Buffer#toString).
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Type byte and u64 offset in front of output, snapshot and input data. */
const OFFSET_HEADER_BYTES = 9; // bytes
const TWO_32 = 2 ** 32;

function withJson(type: number, value: unknown): Uint8Array {
  const body = encoder.encode(JSON.stringify(value));
  const out = new Uint8Array(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}

/** `[type][u64be offset][data]`: the data is copied once, into the message. */
function withOffset(type: number, offset: number, data?: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`offset ${offset} is not a non-negative safe integer`);
  }
  const out = new Uint8Array(OFFSET_HEADER_BYTES + (data?.length ?? 0));
  out[0] = type;
  // Two u32 halves by hand: no DataView or BigInt allocated per message.
  writeU32(out, 1, Math.floor(offset / TWO_32));
  writeU32(out, 5, offset >>> 0);
  if (data) out.set(data, OFFSET_HEADER_BYTES);
  return out;
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

function readU32(buf: Uint8Array, at: number): number {
  return (
    (((buf[at] as number) << 24) |
      ((buf[at + 1] as number) << 16) |
      ((buf[at + 2] as number) << 8) |
      (buf[at + 3] as number)) >>>
    0
  );
}

/** Encodes one terminal message (the plaintext of one E2E record). */
export function encodeTerminal(msg: TerminalMessage): Uint8Array {
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
      const { cols, rows } = msg;
      if (cols >>> 0 !== cols || rows >>> 0 !== rows || cols > 0xffff || rows > 0xffff) {
        throw new RangeError(`resize ${cols}x${rows} does not fit two u16`);
      }
      return Uint8Array.of(TerminalType.RESIZE, cols >>> 8, cols & 0xff, rows >>> 8, rows & 0xff);
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
    case 'repaint':
      return Uint8Array.of(TerminalType.REPAINT);
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

function json<T>(body: Uint8Array, schema: z.ZodType<T>): T {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch {
    throw bad('not JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw bad(parsed.error.issues[0]?.message ?? 'schema');
  return parsed.data;
}

/** Largest high half of a u64 offset that keeps it a safe integer (2^53 - 1). */
const MAX_SAFE_HIGH = 2 ** 21 - 1;

function offsetOf(buf: Uint8Array): number {
  if (buf.length < OFFSET_HEADER_BYTES) throw bad('too short');
  const high = readU32(buf, 1);
  if (high > MAX_SAFE_HIGH) throw bad('offset out of range');
  return high * TWO_32 + readU32(buf, 5);
}

/**
 * Decodes one terminal message; throws CryptoError(INVALID_MESSAGE) on anything malformed.
 * Output, snapshot and input data are views into `buf`, not copies.
 */
export function decodeTerminal(buf: Uint8Array): TerminalMessage {
  if (buf.length < 1) throw bad('empty');
  const body = buf.subarray(1);
  switch (buf[0]) {
    case TerminalType.HELLO:
      return { type: 'hello', hello: json(body, HelloSchema) };
    case TerminalType.WELCOME:
      return { type: 'welcome', welcome: json(body, WelcomeSchema) };
    case TerminalType.OUTPUT:
      return { type: 'output', offset: offsetOf(buf), data: buf.subarray(OFFSET_HEADER_BYTES) };
    case TerminalType.SNAPSHOT:
      return { type: 'snapshot', offset: offsetOf(buf), data: buf.subarray(OFFSET_HEADER_BYTES) };
    case TerminalType.INPUT:
      return { type: 'input', offset: offsetOf(buf), data: buf.subarray(OFFSET_HEADER_BYTES) };
    case TerminalType.ACK:
      if (buf.length !== OFFSET_HEADER_BYTES) throw bad('ack length');
      return { type: 'ack', offset: offsetOf(buf) };
    case TerminalType.RESIZE: {
      if (buf.length !== 5) throw bad('resize length');
      const cols = ((buf[1] as number) << 8) | (buf[2] as number);
      const rows = ((buf[3] as number) << 8) | (buf[4] as number);
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
    case TerminalType.REPAINT:
      if (buf.length !== 1) throw bad('repaint carries nothing');
      return { type: 'repaint' };
    default:
      throw bad(`unknown type 0x${(buf[0] ?? 0).toString(16)}`);
  }
}

// Frame codec: JSON control messages (text frames) and channel data (binary frames). No I/O.
import { ErrorCode, ProtocolError } from './errors.js';
import { MAX_FRAME_BYTES } from './limits.js';
import {
  EventSchemas,
  RequestEnvelope,
  RequestParams,
  ServerEnvelope,
  isRequestType,
  type Request,
  type ServerMessage,
} from './messages.js';

/** Bytes of the binary frame header: a big-endian u32 channel id. */
export const DATA_HEADER_BYTES = 4;

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: ProtocolError; id?: number };

/** A binary frame: opaque payload for one logical channel. */
export interface DataFrame {
  channel: number;
  payload: Buffer;
}

/** Encodes a control message as the text of a WebSocket text frame. */
export function encodeControl(message: object): string {
  return JSON.stringify(message);
}

/**
 * Encodes channel data: `[u32 channel][payload]`.
 * @example encodeData(3, Buffer.from('hi')) // <00 00 00 03 68 69>
 */
export function encodeData(channel: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(DATA_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(channel, 0);
  frame.set(payload, DATA_HEADER_BYTES);
  return frame;
}

/** Decodes a binary frame; the payload is a view into `frame`, not a copy. */
export function decodeData(frame: Buffer, maxBytes = MAX_FRAME_BYTES): Decoded<DataFrame> {
  if (frame.length > maxBytes)
    return fail(
      ErrorCode.FRAME_TOO_LARGE,
      `frame of ${frame.length} bytes exceeds the ${maxBytes}-byte limit`,
    );
  if (frame.length < DATA_HEADER_BYTES)
    return fail(ErrorCode.BAD_FRAME, 'binary frame shorter than its 4-byte channel header');
  const channel = frame.readUInt32BE(0);
  if (channel === 0) return fail(ErrorCode.UNKNOWN_CHANNEL, 'channel 0 is reserved');
  return { ok: true, value: { channel, payload: frame.subarray(DATA_HEADER_BYTES) } };
}

/** Parses JSON text into an object, or a BAD_FRAME error. */
function parseJson(text: Buffer | string, maxBytes: number): Decoded<Record<string, unknown>> {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > maxBytes)
    return fail(
      ErrorCode.FRAME_TOO_LARGE,
      `frame of ${size} bytes exceeds the ${maxBytes}-byte limit`,
    );
  let value: unknown;
  try {
    value = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    return fail(ErrorCode.BAD_FRAME, 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(ErrorCode.BAD_FRAME, 'a control message must be a JSON object');
  }
  return { ok: true, value: value as Record<string, unknown> };
}

/**
 * True if any object in `value` has an own "__proto__" key. JSON.parse makes such keys own
 * properties, which object spreads and schemas then drop or misread; the relay refuses them
 * like any other unknown key. Iterative, so deep nesting cannot overflow the stack.
 */
function hasProtoKey(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (!Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, '__proto__')) return true;
    for (const child of Object.values(v)) if (typeof child === 'object') stack.push(child);
  }
  return false;
}

/** Decodes and validates a client request (relay side). */
export function decodeRequest(text: Buffer | string, maxBytes = MAX_FRAME_BYTES): Decoded<Request> {
  const parsed = parseJson(text, maxBytes);
  if (!parsed.ok) return parsed;
  const envelope = RequestEnvelope.safeParse(parsed.value);
  if (!envelope.success) {
    return fail(ErrorCode.INVALID_MESSAGE, 'a request needs a string "type" and an integer "id"');
  }
  const { type, id } = envelope.data;
  // Every request is walked: the key can be spelled with escapes ("__proto\u005f_").
  if (hasProtoKey(parsed.value))
    return fail(ErrorCode.INVALID_MESSAGE, 'the key "__proto__" is not allowed in a message', id);
  if (!isRequestType(type))
    return fail(ErrorCode.UNKNOWN_TYPE, `unknown message type "${type}"`, id);
  const { type: _t, id: _i, ...rest } = envelope.data;
  const params = RequestParams[type].strict().safeParse(rest);
  if (!params.success)
    return fail(ErrorCode.INVALID_MESSAGE, `invalid "${type}": ${describe(params.error)}`, id);
  return { ok: true, value: { type, id, ...params.data } as Request };
}

/** Decodes and validates a relay message (client side). */
export function decodeServerMessage(
  text: Buffer | string,
  maxBytes = MAX_FRAME_BYTES * 4,
): Decoded<ServerMessage> {
  const parsed = parseJson(text, maxBytes);
  if (!parsed.ok) return parsed;
  const type = parsed.value['type'];
  if (typeof type !== 'string' || !(type === 'reply' || type === 'error' || type in EventSchemas)) {
    return fail(ErrorCode.UNKNOWN_TYPE, `unknown message type "${String(type)}"`);
  }
  const result = ServerEnvelope.safeParse(parsed.value);
  if (!result.success)
    return fail(ErrorCode.INVALID_MESSAGE, `invalid "${type}": ${describe(result.error)}`);
  return { ok: true, value: result.data as ServerMessage };
}

function describe(error: {
  issues: Array<{ path: Array<string | number>; message: string }>;
}): string {
  const MAX_DESCRIPTION = 512; // characters: messages stay well under the 1024 clients accept
  const text = error.issues
    .slice(0, 3)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}

function fail<T>(code: ErrorCode, message: string, id?: number): Decoded<T> {
  return id === undefined
    ? { ok: false, error: new ProtocolError(code, message) }
    : { ok: false, error: new ProtocolError(code, message), id };
}

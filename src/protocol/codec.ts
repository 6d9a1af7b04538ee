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

/**
 * A binary frame: opaque payload for one logical channel. The payload is a view of the frame and
 * of the same class (a Buffer frame in Node gives a Buffer payload).
 */
export interface DataFrame<P extends Uint8Array = Uint8Array> {
  channel: number;
  payload: P;
}

/** Encodes a control message as the text of a WebSocket text frame. */
export function encodeControl(message: object): string {
  return JSON.stringify(message);
}

/**
 * Encodes channel data: `[u32 channel][payload]`.
 * The payload is copied once, into the frame; nothing else is allocated.
 * @example encodeData(3, new TextEncoder().encode('hi')) // <00 00 00 03 68 69>
 */
export function encodeData(channel: number, payload: Uint8Array): Uint8Array {
  if (channel >>> 0 !== channel) throw new RangeError(`channel ${channel} is not a u32`);
  const frame = new Uint8Array(DATA_HEADER_BYTES + payload.length);
  frame[0] = channel >>> 24;
  frame[1] = channel >>> 16;
  frame[2] = channel >>> 8;
  frame[3] = channel;
  frame.set(payload, DATA_HEADER_BYTES);
  return frame;
}

/** Decodes a binary frame; the payload is a view into `frame`, not a copy. */
export function decodeData<F extends Uint8Array>(
  frame: F,
  maxBytes = MAX_FRAME_BYTES,
): Decoded<DataFrame<F>> {
  if (frame.length > maxBytes)
    return fail(
      ErrorCode.FRAME_TOO_LARGE,
      `frame of ${frame.length} bytes exceeds the ${maxBytes}-byte limit`,
    );
  if (frame.length < DATA_HEADER_BYTES)
    return fail(ErrorCode.BAD_FRAME, 'binary frame shorter than its 4-byte channel header');
  const channel =
    (((frame[0] as number) << 24) |
      ((frame[1] as number) << 16) |
      ((frame[2] as number) << 8) |
      (frame[3] as number)) >>>
    0;
  if (channel === 0) return fail(ErrorCode.UNKNOWN_CHANNEL, 'channel 0 is reserved');
  // subarray keeps the frame's class (TypedArray species), so a Buffer frame gives a Buffer.
  const payload = frame.subarray(DATA_HEADER_BYTES) as F;
  return { ok: true, value: { channel, payload } };
}

// ignoreBOM keeps a leading U+FEFF in the text (as Buffer#toString does), so JSON.parse refuses
// it: by default TextDecoder would drop it and accept a frame the relay has always refused.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Bytes `text` takes in UTF-8, counted without encoding it (a lone surrogate counts 3, as U+FFFD). */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 2 units, 4 bytes
      i += 1;
    } else bytes += 2;
  }
  return bytes;
}

/** Parses JSON text into an object, or a BAD_FRAME error. */
function parseJson(text: Uint8Array | string, maxBytes: number): Decoded<Record<string, unknown>> {
  const size = typeof text === 'string' ? utf8Length(text) : text.length;
  if (size > maxBytes)
    return fail(
      ErrorCode.FRAME_TOO_LARGE,
      `frame of ${size} bytes exceeds the ${maxBytes}-byte limit`,
    );
  let value: unknown;
  try {
    value = JSON.parse(typeof text === 'string' ? text : utf8Decoder.decode(text));
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
export function decodeRequest(
  text: Uint8Array | string,
  maxBytes = MAX_FRAME_BYTES,
): Decoded<Request> {
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
  // Unknown keys are dropped, never acted on: a newer client's optional fields must not break it.
  const params = RequestParams[type].strip().safeParse(rest);
  if (!params.success)
    return fail(ErrorCode.INVALID_MESSAGE, `invalid "${type}": ${describe(params.error)}`, id);
  return { ok: true, value: { type, id, ...params.data } as Request };
}

/**
 * A relay message of a type this client does not know (an event from a newer relay): decoding
 * drops it, and a client must too (it is not an error; `error` only says what it was).
 */
export interface IgnoredMessage {
  ok: false;
  ignored: true;
  type: string;
  error: ProtocolError;
}

/**
 * Decodes and validates a relay message (client side). Unknown fields are dropped; an unknown
 * type comes back as an `IgnoredMessage`.
 */
export function decodeServerMessage(
  text: Uint8Array | string,
  maxBytes = MAX_FRAME_BYTES * 4,
): Decoded<ServerMessage> | IgnoredMessage {
  const parsed = parseJson(text, maxBytes);
  if (!parsed.ok) return parsed;
  const type = parsed.value['type'];
  if (typeof type !== 'string')
    return fail(ErrorCode.INVALID_MESSAGE, 'a relay message needs a string "type"');
  if (!(type === 'reply' || type === 'error' || Object.hasOwn(EventSchemas, type))) {
    // A newer relay's event: nothing to act on, and no reason to doubt the connection.
    const error = new ProtocolError(ErrorCode.UNKNOWN_TYPE, `unknown message type "${type}"`);
    return { ok: false, ignored: true, type: type.slice(0, 64), error };
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

// The framing exec and push share inside the E2E channel: one type byte, then a body (raw bytes, a u64be count or UTF-8 JSON).
import { ErrorCode, ProtocolError } from './errors.js';

/** A message of `type` whose body is `body` as UTF-8 JSON. */
export function encodeJson(type: number, body: unknown): Uint8Array {
  return Buffer.concat([Buffer.from([type]), Buffer.from(JSON.stringify(body), 'utf8')]);
}

/** The JSON body of a message (its type byte skipped); INVALID_MESSAGE if it is not JSON. */
export function decodeJson<T>(message: Uint8Array): T {
  try {
    return JSON.parse(Buffer.from(message.subarray(1)).toString('utf8')) as T;
  } catch {
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'a malformed service message');
  }
}

/** A data message: the type byte, then `data` (one copy, into the message). */
export function encodeData(type: number, data: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(1 + data.length);
  out[0] = type;
  out.set(data, 1);
  return out;
}

/** A count message (acknowledgements): the type byte, then `count` as a u64be. */
export function encodeCount(type: number, count: number): Uint8Array {
  const out = Buffer.allocUnsafe(9);
  out[0] = type;
  out.writeBigUInt64BE(BigInt(count), 1);
  return out;
}

/** The count of a count message; INVALID_MESSAGE unless it is exactly 9 bytes. */
export function decodeCount(message: Uint8Array): number {
  if (message.length !== 9) throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'a malformed ack');
  return Number(Buffer.from(message.buffer, message.byteOffset, 9).readBigUInt64BE(1));
}

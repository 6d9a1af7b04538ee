// Signed requests: the first message of exec and push, signed by the requester's device key.
//
// One type byte, the 64-byte Ed25519 signature over `CONTEXT NUL json`, then the JSON. The
// context names the operation and its version, so an exec request's signature can never be
// taken for a push's. A request larger than one record (a push of many files) is sent as leading
// parts of its JSON, each a message of its own, then the request message with the JSON's rest. Every request binds the requester (`user`), the agent (its session and its
// device key's fingerprint), the channel (the E2E handshake hash), a nonce and a time; the agent
// checks those (host/services/signed-request.ts), the operation's own fields are its schema's.
import { z } from 'zod';
import { SIGNATURE_BYTES, verifySignature, type DeviceKeyPair } from '../crypto/device-key.js';
import { MAX_RECORD_PLAINTEXT } from '../crypto/secure-channel.js';
import { ErrorCode, ProtocolError, SessionError } from './errors.js';
import { SESSION_ID_RE, USERNAME_RE } from './messages.js';

/** Nonce bytes (base64 in the request). */
export const REQUEST_NONCE_BYTES = 16; // bytes
/** How far a request's time may be from the agent's clock, either way. */
export const REQUEST_MAX_CLOCK_SKEW_MS = 5 * 60_000; // ms

const nonce = z.string().regex(/^[A-Za-z0-9+/]{22}==$/, 'a 16-byte nonce in base64');
/** A SHA-256 digest in lower-case hex. */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * The schema of operation `op`'s request: the fields every signed request has (`v`, `op`, then
 * the binding), then the operation's own `fields`; no other key.
 * @example signedRequestSchema('exec', { command: ExecCommand, stdin: z.boolean() })
 */
export function signedRequestSchema<Op extends string, F extends z.ZodRawShape>(op: Op, fields: F) {
  return z
    .object({
      v: z.literal(1),
      op: z.literal(op),
      /** The requester, as the relay knows them: must be the channel's proven peer. */
      user: z.string().regex(USERNAME_RE),
      /** This agent: its session and its device key's fingerprint. */
      agent: z.object({
        session: z.string().regex(SESSION_ID_RE),
        fingerprint: z.string().max(64),
      }),
      /** The channel's handshake hash (hex): a request is good in the channel it was signed for only. */
      channel: z.string().regex(/^[0-9a-f]{64}$/),
      nonce,
      /** Milliseconds since the epoch, at the requester. */
      issuedAt: z.number().int().min(0),
    })
    .extend(fields)
    .strict();
}

/** What the agent checks on any signed request, whatever its operation. */
export interface SignedRequestBase {
  v: 1;
  op: string;
  user: string;
  agent: { session: string; fingerprint: string };
  channel: string;
  nonce: string;
  issuedAt: number;
}

/** One operation's signed request: its type byte, signature context, schema and size limit. */
export interface SignedRequestFormat<T extends SignedRequestBase> {
  /** The message's type byte. */
  type: number;
  /** Signed before the JSON (then a NUL): `switchboard-exec-v1`, `switchboard-push-v1`. */
  context: string;
  schema: z.ZodType<T, z.ZodTypeDef, unknown>;
  /** Largest JSON body, in bytes. */
  maxBytes: number;
  /** Said to the requester when a request is over `maxBytes`: what to do instead. */
  tooLargeHint?: string;
}

function signedBytes(context: string, json: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${context}\0`, 'utf8'), json]);
}

/** The request message: type, the signature over context NUL json, then the json. */
export function signRequest<T extends SignedRequestBase>(
  format: SignedRequestFormat<T>,
  key: DeviceKeyPair,
  request: T,
): Uint8Array {
  const json = Buffer.from(JSON.stringify(request), 'utf8');
  if (json.length > format.maxBytes)
    throw new ProtocolError(
      ErrorCode.FRAME_TOO_LARGE,
      `the request is ${json.length} bytes; at most ${format.maxBytes}${format.tooLargeHint ? ` (${format.tooLargeHint})` : ''}`,
    );
  const signature = key.sign(signedBytes(format.context, json));
  return Buffer.concat([Buffer.from([format.type]), signature, json]);
}

/**
 * A request message (`signRequest`) as messages of at most `maxMessage` bytes: one if it fits,
 * else leading pieces of its JSON as `partType` messages, then the request message (type,
 * signature, the JSON's last piece). `openRequest` takes the pieces back as `leading`.
 */
export function splitRequest(
  message: Uint8Array,
  partType: number,
  maxMessage = MAX_RECORD_PLAINTEXT,
): Uint8Array[] {
  if (message.length <= maxMessage) return [message];
  const head = 1 + SIGNATURE_BYTES;
  const json = message.subarray(head);
  const lead = json.length - (maxMessage - head);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < lead; at += maxMessage - 1) {
    const piece = json.subarray(at, Math.min(lead, at + maxMessage - 1));
    parts.push(Buffer.concat([Buffer.from([partType]), piece]));
  }
  parts.push(Buffer.concat([message.subarray(0, head), json.subarray(lead)]));
  return parts;
}

/**
 * Checks a request message's signature against `publicKey` and parses it; `leading` are the
 * bodies of the parts that came before it (`splitRequest`), if any. Throws SIGNATURE_INVALID
 * for a missing or wrong signature (before reading the JSON: nothing unsigned is looked at),
 * FRAME_TOO_LARGE past the format's limit, INVALID_MESSAGE for a signed but malformed request.
 * The binding (user, agent, channel, time, nonce) is the caller's to check.
 */
export function openRequest<T extends SignedRequestBase>(
  format: SignedRequestFormat<T>,
  message: Uint8Array,
  publicKey: Uint8Array,
  leading: readonly Uint8Array[] = [],
): T {
  if (message[0] !== format.type || message.length <= 1 + SIGNATURE_BYTES)
    throw new SessionError(ErrorCode.SIGNATURE_INVALID, 'the request is not signed');
  const lead = leading.reduce((n, part) => n + part.length, 0);
  if (lead + message.length > 1 + SIGNATURE_BYTES + format.maxBytes)
    throw new ProtocolError(ErrorCode.FRAME_TOO_LARGE, 'the request is too large');
  const signature = message.subarray(1, 1 + SIGNATURE_BYTES);
  const tail = message.subarray(1 + SIGNATURE_BYTES);
  const json = lead > 0 ? Buffer.concat([...leading, tail]) : tail;
  if (!verifySignature(publicKey, signedBytes(format.context, json), signature))
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
  const result = format.schema.safeParse(parsed);
  if (!result.success)
    throw new ProtocolError(
      ErrorCode.INVALID_MESSAGE,
      `malformed request: ${result.error.issues[0]?.path.join('.') ?? ''} ${result.error.issues[0]?.message ?? ''}`.trim(),
    );
  return result.data;
}

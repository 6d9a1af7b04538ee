// Errors with stable codes: one base class, one subclass per area; peers only ever see {code, message}.

/** Every error code Switchboard emits. Stable: scripts and docs/protocol.md depend on them. */
export const ErrorCode = {
  // protocol: the peer sent something we cannot accept
  BAD_FRAME: 'BAD_FRAME',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  VERSION_MISMATCH: 'VERSION_MISMATCH',
  HELLO_REQUIRED: 'HELLO_REQUIRED',
  /** A request that acts on a WebSocket connection (hello, login, hosting, channels) sent over REST. */
  WEBSOCKET_REQUIRED: 'WEBSOCKET_REQUIRED',
  RATE_LIMITED: 'RATE_LIMITED',
  UNKNOWN_CHANNEL: 'UNKNOWN_CHANNEL',
  TOO_MANY_CHANNELS: 'TOO_MANY_CHANNELS',
  CONNECTION_LIMIT: 'CONNECTION_LIMIT',
  DEVICE_LIMIT: 'DEVICE_LIMIT',
  // auth
  AUTH_REQUIRED: 'AUTH_REQUIRED',
  BAD_CREDENTIALS: 'BAD_CREDENTIALS',
  USER_EXISTS: 'USER_EXISTS',
  WEAK_PASSWORD: 'WEAK_PASSWORD',
  THROTTLED: 'THROTTLED',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  TOKEN_REVOKED: 'TOKEN_REVOKED',
  TOKEN_INVALID: 'TOKEN_INVALID',
  UNKNOWN_USER: 'UNKNOWN_USER',
  SIGNUP_CLOSED: 'SIGNUP_CLOSED',
  INVITE_REQUIRED: 'INVITE_REQUIRED',
  INVITE_INVALID: 'INVITE_INVALID',
  // remote sessions
  SESSION_TAKEN: 'SESSION_TAKEN',
  SESSION_NOT_FOUND: 'SESSION_NOT_FOUND',
  SESSION_OFFLINE: 'SESSION_OFFLINE',
  SESSION_LIMIT: 'SESSION_LIMIT',
  NOT_ALLOWED: 'NOT_ALLOWED',
  DENIED: 'DENIED',
  PEER_GONE: 'PEER_GONE',
  CHANNEL_CLOSED: 'CHANNEL_CLOSED',
  SLOW_PEER: 'SLOW_PEER',
  /** A signed request (exec, push) whose signature is missing, forged, or not for this agent. */
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  /** A signed request seen before, or signed for another channel: a replay. */
  REQUEST_REPLAYED: 'REQUEST_REPLAYED',
  /** A signed request whose time is too far from the agent's clock. */
  REQUEST_STALE: 'REQUEST_STALE',
  /** A device has MAILBOX_MAX_PENDING messages waiting: it must fetch before more are stored. */
  MAILBOX_FULL: 'MAILBOX_FULL',
  /** A ledger amount that is not a positive whole number within AMOUNT_MAX. */
  INVALID_AMOUNT: 'INVALID_AMOUNT',
  /** A transfer past the payer's balance: nothing moved. */
  INSUFFICIENT_FUNDS: 'INSUFFICIENT_FUNDS',
  /** A transfer id settled before with other contents (ids are idempotency keys). */
  TRANSFER_CONFLICT: 'TRANSFER_CONFLICT',
  /** A transfer signed for another relay's ledger, or paying oneself. */
  TRANSFER_INVALID: 'TRANSFER_INVALID',
  /** The target does not serve the service a channel asked for. */
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  // end-to-end
  HANDSHAKE_FAILED: 'HANDSHAKE_FAILED',
  PEER_KEY_CHANGED: 'PEER_KEY_CHANGED',
  DECRYPT_FAILED: 'DECRYPT_FAILED',
  /** A genuine E2E record whose sequence number was already accepted (replayed or reordered). */
  RECORD_REPLAYED: 'RECORD_REPLAYED',
  /** A genuine E2E record ahead of the next expected number: records in between were lost. */
  RECORD_SKIPPED: 'RECORD_SKIPPED',
  // client-side connection and trust
  TRUST_REQUIRED: 'TRUST_REQUIRED',
  CERT_CHANGED: 'CERT_CHANGED',
  CONNECT_FAILED: 'CONNECT_FAILED',
  TIMEOUT: 'TIMEOUT',
  CONNECTION_CLOSED: 'CONNECTION_CLOSED',
  NOT_LOGGED_IN: 'NOT_LOGGED_IN',
  // server
  STORAGE: 'STORAGE',
  /** A write collided with a row that exists (a unique key): the operation cannot succeed as is. */
  CONFLICT: 'CONFLICT',
  /** A transaction lost to a concurrent one (serialization failure, deadlock, busy): retry it. */
  RETRYABLE: 'RETRYABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** True for a string that is one of our error codes (used when decoding a peer's error). */
export function isErrorCode(value: string): value is ErrorCode {
  return KNOWN_CODES.has(value);
}

/** Base class of every Switchboard error. `code` is what callers switch on, never `message`. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  /** For refusals that pass (THROTTLED): how long to wait before trying again, in whole ms. */
  readonly retryAfterMs: number | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryAfterMs =
      options?.retryAfterMs === undefined
        ? undefined
        : Math.max(0, Math.ceil(options.retryAfterMs));
  }
  /** The shape sent to a peer: never a stack trace. */
  toWire(): { code: ErrorCode; message: string; retryAfterMs?: number } {
    return this.retryAfterMs === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, retryAfterMs: this.retryAfterMs };
  }
}

/** The peer broke the wire protocol (bad frame, schema, size, order). */
export class ProtocolError extends SwitchboardError {}
/** Credentials, tokens, throttling. */
export class AuthError extends SwitchboardError {}
/** Remote sessions and channels. */
export class SessionError extends SwitchboardError {}
/** End-to-end handshake, key pinning, decryption. */
export class CryptoError extends SwitchboardError {}
/** Reaching and trusting the relay. */
export class ConnectError extends SwitchboardError {}
/** Database failures. */
export class StorageError extends SwitchboardError {}

/** An error reported by the remote side as {code, message}. */
export class RemoteError extends SwitchboardError {}

/** The relay's `error` frame as a RemoteError: its code (INTERNAL if unknown to us) and any retry-after. */
export function remoteError(error: {
  code: string;
  message: string;
  retryAfterMs?: number | undefined;
}): RemoteError {
  return new RemoteError(
    isErrorCode(error.code) ? error.code : ErrorCode.INTERNAL,
    error.message,
    error.retryAfterMs === undefined ? undefined : { retryAfterMs: error.retryAfterMs },
  );
}

/** Codes that mean the relay was not reached (or not to the end), not that it said no. */
const TRANSIENT_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.CONNECT_FAILED,
  ErrorCode.CONNECTION_CLOSED,
  ErrorCode.TIMEOUT,
]);

/** A failure a new connection may cure (the relay unreachable, the connection lost or timed out). */
export function isTransient(err: unknown): err is SwitchboardError {
  return err instanceof SwitchboardError && TRANSIENT_CODES.has(err.code);
}

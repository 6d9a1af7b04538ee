// Exit codes of the `switchboard` command; the README lists them.
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';

export const Exit = {
  OK: 0,
  /** Something failed at run time (network, server error, storage). */
  FAILURE: 1,
  /** The command line was wrong: unknown command or option, missing argument. */
  USAGE: 2,
  /** Not logged in, wrong password, expired or revoked login, throttled. */
  AUTH: 3,
  /** The relay cannot be reached or is not trusted (fingerprint missing or changed). */
  TRUST: 4,
  /** Refused: not allowed, denied by the host, no such session, a peer key changed. */
  REFUSED: 5,
  /** Interrupted by SIGINT. */
  INTERRUPTED: 130,
} as const;

/** A usage error: wrong flags or arguments. Printed with a pointer to --help. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return Exit.USAGE;
  if (!(err instanceof SwitchboardError)) return Exit.FAILURE;
  switch (err.code) {
    case ErrorCode.AUTH_REQUIRED:
    case ErrorCode.BAD_CREDENTIALS:
    case ErrorCode.TOKEN_EXPIRED:
    case ErrorCode.TOKEN_REVOKED:
    case ErrorCode.TOKEN_INVALID:
    case ErrorCode.THROTTLED:
    case ErrorCode.NOT_LOGGED_IN:
    case ErrorCode.USER_EXISTS:
    case ErrorCode.WEAK_PASSWORD:
    case ErrorCode.SIGNUP_CLOSED:
    case ErrorCode.INVITE_REQUIRED:
    case ErrorCode.INVITE_INVALID:
      return Exit.AUTH;
    case ErrorCode.TRUST_REQUIRED:
    case ErrorCode.CERT_CHANGED:
    case ErrorCode.CONNECT_FAILED:
    case ErrorCode.CONNECTION_CLOSED:
    case ErrorCode.TIMEOUT:
    case ErrorCode.VERSION_MISMATCH:
      return Exit.TRUST;
    // The far end closed the channel before the work began (e.g. the host refused the attach).
    case ErrorCode.CHANNEL_CLOSED:
    case ErrorCode.NOT_ALLOWED:
    case ErrorCode.DENIED:
    case ErrorCode.SERVICE_UNAVAILABLE:
    case ErrorCode.SESSION_NOT_FOUND:
    case ErrorCode.SESSION_OFFLINE:
    case ErrorCode.SESSION_TAKEN:
    case ErrorCode.SESSION_LIMIT:
    case ErrorCode.CONNECTION_LIMIT:
    case ErrorCode.DEVICE_LIMIT:
    case ErrorCode.PEER_KEY_CHANGED:
    case ErrorCode.HANDSHAKE_FAILED:
    case ErrorCode.UNKNOWN_USER:
    case ErrorCode.SIGNATURE_INVALID:
    case ErrorCode.REQUEST_REPLAYED:
    case ErrorCode.REQUEST_STALE:
    case ErrorCode.MAILBOX_FULL:
    case ErrorCode.INVALID_AMOUNT:
    case ErrorCode.INSUFFICIENT_FUNDS:
    case ErrorCode.TRANSFER_CONFLICT:
    case ErrorCode.TRANSFER_INVALID:
      return Exit.REFUSED;
    default:
      return Exit.FAILURE;
  }
}

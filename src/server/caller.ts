// Who is asking, whatever the door: a WebSocket `Connection`, or one REST request and its bearer token.
import type { Authenticated } from './auth-service.js';

/**
 * What the handler table needs to know about the sender of a request. `Connection` satisfies it;
 * the REST door builds a `RestCaller` per HTTP request.
 */
export interface Caller {
  /** The source address, as throttles and logs key it. */
  readonly address: string;
  /** Who is logged in: set by `auth.login` / `auth.token` on a WebSocket, by the bearer token on REST. */
  auth: Authenticated | undefined;
  /** True once `hello` was answered; a REST request has no hello and is always past it. */
  readonly helloDone: boolean;
  /** True once the caller went away: long work (a password hash) is abandoned. */
  readonly closed: boolean;
  /**
   * Takes `n` control tokens from the caller's bucket, or none and returns false. Absent where
   * the door has no per-caller bucket (REST), which then costs nothing beyond the door's limits.
   */
  takeTokens?(now: number, n: number): boolean;
}

/** A caller the `auth: 'user'` middleware has let through. */
export type UserCaller<C extends Caller = Caller> = C & { auth: Authenticated };

/**
 * One REST request as a caller. `closed` turns true if the client goes away before the answer
 * is written.
 *
 * @example
 * const caller = new RestCaller(address);
 * res.once('close', () => caller.markClosed());
 */
export class RestCaller implements Caller {
  readonly address: string;
  auth: Authenticated | undefined;
  readonly helloDone = true;
  #closed = false;

  constructor(address: string) {
    this.address = address;
  }

  get closed(): boolean {
    return this.#closed;
  }

  markClosed(): void {
    this.#closed = true;
  }
}

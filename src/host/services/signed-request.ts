// The agent's checks on a signed request (exec, push): signature, binding to this agent and channel, freshness, replay.
//
// The relay is trusted with none of it: the signature is checked against the key the E2E
// handshake proved (and the pins confirmed), the request must name that peer, this agent's
// session and key, and this channel's handshake hash, its time must be within
// REQUEST_MAX_CLOCK_SKEW_MS of ours, and its nonce must be new to this agent. One NonceCache
// serves every signed service of an agent, so nothing accepted by one is accepted again.
import type { SecureDuplex } from '../../channel/e2e.js';
import { keyFingerprint } from '../../crypto/device-key.js';
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import type { PeerInfo } from '../../protocol/messages.js';
import {
  REQUEST_MAX_CLOCK_SKEW_MS,
  openRequest,
  type SignedRequestBase,
  type SignedRequestFormat,
} from '../../protocol/signed-request.js';
import type { HostSession } from '../host-session.js';

/** Nonces remembered (each for twice the clock skew); past this, the oldest are dropped early. */
export const REQUEST_NONCES_MAX = 100_000;

/**
 * The nonces an agent has accepted, each kept until a request carrying it would be stale anyway
 * (2 × REQUEST_MAX_CLOCK_SKEW_MS). Bounded: past `max`, the oldest go first.
 * @example const nonces = new NonceCache(); [execService({..., nonces}), pushService({..., nonces})]
 */
export class NonceCache {
  readonly #seen = new Map<string, number>();
  readonly #max: number;

  constructor(max = REQUEST_NONCES_MAX) {
    this.#max = max;
  }

  /** Records `nonce` at `now` (ms); REQUEST_REPLAYED if it was seen before. */
  remember(nonce: string, now: number): void {
    const seen = this.#seen;
    if (seen.has(nonce))
      throw new SwitchboardError(
        ErrorCode.REQUEST_REPLAYED,
        'the request was seen before: a replay',
      );
    // Insertion order is expiry order: drop from the front while expired or over the bound.
    for (const [n, until] of seen) {
      if (until > now && seen.size < this.#max) break;
      seen.delete(n);
    }
    seen.set(nonce, now + 2 * REQUEST_MAX_CLOCK_SKEW_MS);
  }

  get size(): number {
    return this.#seen.size;
  }
}

/** What the checks need of the channel a request came on. */
export interface SignedRequestContext {
  host: HostSession;
  channel: SecureDuplex;
  peer: PeerInfo;
  nonces: NonceCache;
  now: () => number;
}

/**
 * Opens a signed request (`openRequest`, with the `leading` parts of a split one) with the
 * peer's proven key and checks its binding.
 * Throws SIGNATURE_INVALID (unsigned, forged, another user or agent), REQUEST_REPLAYED (another
 * channel, a nonce seen before), REQUEST_STALE (out of the time window), FRAME_TOO_LARGE or
 * INVALID_MESSAGE; the nonce is remembered only once everything else holds.
 */
export function acceptSignedRequest<T extends SignedRequestBase>(
  format: SignedRequestFormat<T>,
  message: Uint8Array,
  ctx: SignedRequestContext,
  leading: readonly Uint8Array[] = [],
): T {
  const publicKey = Buffer.from(ctx.peer.publicKey, 'base64');
  const request = openRequest(format, message, publicKey, leading);
  if (request.user !== ctx.peer.user)
    throw new SwitchboardError(
      ErrorCode.SIGNATURE_INVALID,
      `the request names ${request.user}, but ${ctx.peer.user} sent it`,
    );
  const me = keyFingerprint(ctx.host.options.key.publicKey);
  if (request.agent.session !== ctx.host.sessionId || request.agent.fingerprint !== me)
    throw new SwitchboardError(
      ErrorCode.SIGNATURE_INVALID,
      `the request was signed for ${request.agent.session} (${request.agent.fingerprint}), not this agent`,
    );
  if (request.channel !== ctx.channel.handshakeHash)
    throw new SwitchboardError(
      ErrorCode.REQUEST_REPLAYED,
      'the request was signed for another channel: a replay',
    );
  const now = ctx.now();
  const skew = request.issuedAt - now;
  if (Math.abs(skew) > REQUEST_MAX_CLOCK_SKEW_MS)
    throw new SwitchboardError(
      ErrorCode.REQUEST_STALE,
      `the request's time is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'ahead of' : 'behind'} this agent's clock ` +
        `(at most ${REQUEST_MAX_CLOCK_SKEW_MS / 1000} s): check both clocks`,
    );
  ctx.nonces.remember(request.nonce, now);
  return request;
}

/** Who may do anything here, as they may through `attach`: the owner and `--allow` users. */
export function fullAccess(host: HostSession, user: string): 'owner' | '--allow' | undefined {
  const o = host.options.policy;
  return user === o.owner ? 'owner' : o.allow.includes(user) ? '--allow' : undefined;
}

/** A thrown value as a SwitchboardError (anything else is INTERNAL, its text kept from the peer). */
export function asSwitchboardError(err: unknown, what: string): SwitchboardError {
  return err instanceof SwitchboardError ? err : new SwitchboardError(ErrorCode.INTERNAL, what);
}

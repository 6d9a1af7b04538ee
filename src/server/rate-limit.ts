// Token buckets per key (an address, or one key for the whole relay): a steady rate with a burst.

export interface RatePolicy {
  /** Tokens added per minute (the sustained rate). */
  perMinute: number; // tokens/min
  /** Bucket size: how many may pass at once after a quiet spell. */
  burst: number; // tokens
}

interface Bucket {
  tokens: number;
  at: number;
}

const MINUTE_MS = 60_000; // ms

/**
 * Keyed token buckets in a bounded map (least recently used evicted past `maxKeys`).
 *
 * @example
 * const signups = new RateLimiter({ perMinute: 5, burst: 10 });
 * const wait = signups.waitMs(address, now); // 0: may pass; then signups.take(address, now)
 */
export class RateLimiter {
  readonly #policy: RatePolicy;
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxKeys: number;

  constructor(policy: RatePolicy, maxKeys = 100_000) {
    if (!(policy.perMinute > 0) || !(policy.burst >= 1))
      throw new RangeError('RateLimiter: perMinute must be > 0 and burst >= 1');
    this.#policy = Object.freeze({ ...policy });
    this.#maxKeys = maxKeys;
  }

  #level(key: string, now: number): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return this.#policy.burst;
    const refill = ((now - bucket.at) / MINUTE_MS) * this.#policy.perMinute;
    return Math.min(this.#policy.burst, bucket.tokens + Math.max(0, refill));
  }

  /** Milliseconds until `key` has a token; 0 if it has one now. Takes nothing. */
  waitMs(key: string, now: number): number {
    const level = this.#level(key, now);
    if (level >= 1) return 0;
    return Math.ceil(((1 - level) / this.#policy.perMinute) * MINUTE_MS);
  }

  /** Takes one token from `key` (call after `waitMs` returned 0). */
  take(key: string, now: number): void {
    const tokens = this.#level(key, now) - 1;
    this.#buckets.delete(key);
    this.#buckets.set(key, { tokens, at: now });
    if (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }
}

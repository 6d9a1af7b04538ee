// Where login throttles and sign-up rates keep their state: async, so several relays could share it.
import { RateLimiter, type RatePolicy } from './rate-limit.js';
import { FailureThrottle, type ThrottlePolicy } from './throttle.js';

/** Failure records with growing delays (login throttles), keyed by account, address, etc. */
export interface ThrottleRecords {
  /** Milliseconds the caller must wait before trying `key` again; 0 if it may try now. */
  waitMs(key: string, now: number): Promise<number>;
  /** Records a failure of `key`; resolves to the delay it imposes from `now` (ms). */
  fail(key: string, now: number): Promise<number>;
  /** Forgets the failures of `key` (after a successful login). */
  reset(key: string): Promise<void>;
}

/** Keyed token buckets (sign-up rates). */
export interface RateBuckets {
  /**
   * Takes one token from `key` if it has one, resolving to 0; otherwise takes nothing and
   * resolves to the milliseconds until it will have one. Check and take are one step, so
   * relays sharing the buckets cannot both take the last token.
   */
  take(key: string, now: number): Promise<number>;
}

/**
 * The state behind every cross-connection limiter of the relay. One instance per relay holds it
 * in process ({@link InProcessLimiterStore}, the default); an implementation over Redis would
 * let several relays share it (one class: these two methods).
 *
 * `name` says which limiter asks (`login.account`, `signup.relay`, ...): a shared store keeps
 * each one's keys apart and applies `policy` to them. The same name always comes with the
 * same policy; a store may keep the first one it was given.
 */
export interface LimiterStore {
  throttle(name: string, policy: ThrottlePolicy): ThrottleRecords;
  rate(name: string, policy: RatePolicy): RateBuckets;
}

/**
 * The limiters in this process's memory: bounded maps (least recently used evicted past
 * `maxKeys` per limiter). Two AuthServices given the same instance share their limits, as
 * relays sharing a Redis would.
 *
 * @example
 * const auth = new AuthService(store, Date.now, { limiters: new InProcessLimiterStore() });
 */
export class InProcessLimiterStore implements LimiterStore {
  readonly #throttles = new Map<string, ThrottleRecords>();
  readonly #rates = new Map<string, RateBuckets>();
  readonly #maxKeys: number;

  /** @param maxKeys keys remembered per limiter (default 100 000) */
  constructor(maxKeys = 100_000) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1)
      throw new RangeError('InProcessLimiterStore: maxKeys must be a whole number >= 1');
    this.#maxKeys = maxKeys;
  }

  throttle(name: string, policy: ThrottlePolicy): ThrottleRecords {
    let records = this.#throttles.get(name);
    if (!records) {
      const throttle = new FailureThrottle(policy, this.#maxKeys);
      records = {
        waitMs: (key, now) => Promise.resolve(throttle.waitMs(key, now)),
        fail: (key, now) => Promise.resolve(throttle.fail(key, now)),
        reset: (key) => Promise.resolve(throttle.reset(key)),
      };
      this.#throttles.set(name, records);
    }
    return records;
  }

  rate(name: string, policy: RatePolicy): RateBuckets {
    let buckets = this.#rates.get(name);
    if (!buckets) {
      const limiter = new RateLimiter(policy, this.#maxKeys);
      buckets = {
        take: (key, now) => {
          const wait = limiter.waitMs(key, now);
          if (wait === 0) limiter.take(key, now);
          return Promise.resolve(wait);
        },
      };
      this.#rates.set(name, buckets);
    }
    return buckets;
  }
}

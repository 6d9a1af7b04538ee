// Failure throttling with growing delays: slows password guessing without long lockouts.

export interface ThrottlePolicy {
  /** Failures allowed before any delay. */
  freeFailures: number;
  /** Delay after the first failure past the free ones; doubles with each further failure. */
  baseDelayMs: number; // ms
  /** Cap on the delay, so an attacker can never lock a real user out for longer than this. */
  maxDelayMs: number; // ms
  /** A key with no failure for this long is forgotten. */
  forgetAfterMs: number; // ms
}

interface Entry {
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

/** Tracks failures per key (account, address, or both) in a bounded map. */
export class FailureThrottle {
  readonly #policy: ThrottlePolicy;
  readonly #entries = new Map<string, Entry>();
  readonly #maxKeys: number;

  constructor(policy: ThrottlePolicy, maxKeys = 100_000) {
    this.#policy = Object.freeze({ ...policy });
    this.#maxKeys = maxKeys;
  }

  /** Milliseconds the caller must wait before trying `key` again; 0 if it may try now. */
  waitMs(key: string, now: number): number {
    const entry = this.#entries.get(key);
    if (!entry) return 0;
    if (now - entry.lastFailure > this.#policy.forgetAfterMs) {
      this.#entries.delete(key);
      return 0;
    }
    return Math.max(0, entry.blockedUntil - now);
  }

  /** Records a failure and returns the delay it imposes from now. */
  fail(key: string, now: number): number {
    let entry = this.#entries.get(key);
    if (!entry || now - entry.lastFailure > this.#policy.forgetAfterMs) {
      entry = { failures: 0, lastFailure: now, blockedUntil: 0 };
    }
    entry.failures += 1;
    entry.lastFailure = now;
    const over = entry.failures - this.#policy.freeFailures;
    const delay =
      over <= 0
        ? 0
        : Math.min(this.#policy.maxDelayMs, this.#policy.baseDelayMs * 2 ** Math.min(over - 1, 30));
    entry.blockedUntil = now + delay;
    // Re-insert so the map's order is least-recently-failed first, then evict past the bound.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size > this.#maxKeys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    return delay;
  }

  /** Forgets a key's failures (after a successful login). */
  reset(key: string): void {
    this.#entries.delete(key);
  }
}

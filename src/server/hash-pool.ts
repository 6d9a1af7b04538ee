// A bounded queue for password hashing: few Argon2 runs at once, logins before sign-ups, and an
// immediate refusal with a retry-after when full, so a flood can neither grow memory nor starve logins.
import { AuthError, ConnectError, ErrorCode } from '../protocol/errors.js';

/** Logins (and other checks of an existing password) go before sign-ups. */
export type HashClass = 'login' | 'signup';

export interface HashPoolOptions {
  /** Hashes running at once (Argon2id costs ~19 MiB and tens of ms of CPU each). */
  concurrency: number;
  /** Of those, at most this many sign-ups: the other slots stay free for logins. */
  maxRunningSignups: number;
  /** Requests waiting per class beyond which new ones are refused with THROTTLED. */
  maxQueued: { login: number; signup: number };
}

export const DEFAULT_HASH_POOL_OPTIONS: HashPoolOptions = Object.freeze({
  concurrency: 2,
  maxRunningSignups: 1,
  maxQueued: Object.freeze({ login: 64, signup: 16 }),
});

/** Figures for tests and metrics. */
export interface HashPoolStats {
  running: number;
  queuedLogins: number;
  queuedSignups: number;
  /** Highest running + queued ever seen. */
  peakPending: number;
  /** Requests refused because their queue was full. */
  refused: number;
}

/** Shortest retry-after a refusal suggests. */
const MIN_RETRY_AFTER_MS = 1_000; // ms
/** Until a hash has been timed, assume this long per hash. */
const INITIAL_HASH_MS = 100; // ms

interface Waiter {
  start: () => void;
  cancel: () => void;
  isCancelled: (() => boolean) | undefined;
}

/**
 * Runs password-hashing tasks with bounded concurrency and bounded, prioritised queues.
 *
 * @example
 * const pool = new HashPool();
 * const ok = await pool.run('login', () => argonVerify(hash, password), () => conn.closed);
 */
export class HashPool {
  readonly #options: HashPoolOptions;
  readonly #queues: Record<HashClass, Waiter[]> = { login: [], signup: [] };
  #running = 0;
  #runningSignups = 0;
  #peakPending = 0;
  #refused = 0;
  /** Moving average of a task's duration, for the retry-after estimate. */
  #averageMs = INITIAL_HASH_MS;

  constructor(options: Partial<HashPoolOptions> = {}) {
    const merged = { ...DEFAULT_HASH_POOL_OPTIONS, ...options };
    const { concurrency, maxRunningSignups, maxQueued } = merged;
    for (const [name, value, min] of [
      ['concurrency', concurrency, 1],
      ['maxRunningSignups', maxRunningSignups, 1],
      ['maxQueued.login', maxQueued.login, 0],
      ['maxQueued.signup', maxQueued.signup, 0],
    ] as const) {
      if (!Number.isInteger(value) || value < min)
        throw new RangeError(`HashPool: ${name} must be an integer >= ${min}, got ${value}`);
    }
    this.#options = Object.freeze({ ...merged, maxQueued: Object.freeze({ ...maxQueued }) });
  }

  get stats(): HashPoolStats {
    return {
      running: this.#running,
      queuedLogins: this.#queues.login.length,
      queuedSignups: this.#queues.signup.length,
      peakPending: this.#peakPending,
      refused: this.#refused,
    };
  }

  /**
   * Runs `task` when a slot is free. Rejects at once with THROTTLED (and a retry-after) if the
   * class's queue is full, and with CONNECTION_CLOSED, without running it, if `isCancelled`
   * says the requester left while it waited.
   */
  run<T>(kind: HashClass, task: () => Promise<T>, isCancelled?: () => boolean): Promise<T> {
    if (this.#canStart(kind)) return this.#start(kind, task);
    const queue = this.#queues[kind];
    if (queue.length >= this.#options.maxQueued[kind]) {
      this.#refused += 1;
      const retryAfterMs = this.#retryAfterMs();
      return Promise.reject(
        new AuthError(ErrorCode.THROTTLED, 'the relay is busy checking passwords', {
          retryAfterMs,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      queue.push({
        start: () => this.#start(kind, task).then(resolve, reject),
        cancel: () =>
          reject(
            new ConnectError(
              ErrorCode.CONNECTION_CLOSED,
              'the connection closed before its password could be checked',
            ),
          ),
        isCancelled,
      });
      this.#notePending();
    });
  }

  #canStart(kind: HashClass): boolean {
    if (this.#running >= this.#options.concurrency) return false;
    if (kind === 'login') return true;
    return this.#runningSignups < this.#options.maxRunningSignups;
  }

  async #start<T>(kind: HashClass, task: () => Promise<T>): Promise<T> {
    this.#running += 1;
    if (kind === 'signup') this.#runningSignups += 1;
    this.#notePending();
    const began = performance.now();
    try {
      return await task();
    } finally {
      this.#averageMs = 0.8 * this.#averageMs + 0.2 * (performance.now() - began);
      this.#running -= 1;
      if (kind === 'signup') this.#runningSignups -= 1;
      this.#pump();
    }
  }

  /** Starts queued work while there are free slots: logins first, then sign-ups. */
  #pump(): void {
    while (this.#running < this.#options.concurrency) {
      const next =
        this.#takeLive('login') ??
        (this.#runningSignups < this.#options.maxRunningSignups
          ? this.#takeLive('signup')
          : undefined);
      if (!next) return;
      next.start();
    }
  }

  /** The first queued waiter of `kind` whose requester is still there; the others are dropped. */
  #takeLive(kind: HashClass): Waiter | undefined {
    const queue = this.#queues[kind];
    for (let w = queue.shift(); w; w = queue.shift()) {
      if (w.isCancelled?.()) w.cancel();
      else return w;
    }
    return undefined;
  }

  #notePending(): void {
    const pending = this.#running + this.#queues.login.length + this.#queues.signup.length;
    if (pending > this.#peakPending) this.#peakPending = pending;
  }

  /** Roughly how long until the queues have drained: queued work × average time / slots. */
  #retryAfterMs(): number {
    const queued = this.#queues.login.length + this.#queues.signup.length + this.#running;
    const estimate = (queued * this.#averageMs) / this.#options.concurrency;
    return Math.max(MIN_RETRY_AFTER_MS, Math.ceil(estimate));
  }
}

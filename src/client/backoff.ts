// Exponential backoff with jitter for reconnect loops.

export class Backoff {
  #attempt = 0;
  readonly #baseMs: number;
  readonly #maxMs: number;

  /** First retry after ~baseMs, doubling up to maxMs; ±25% jitter so clients do not stampede. */
  constructor(baseMs = 250, maxMs = 10_000) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
  }

  nextDelay(): number {
    const raw = Math.min(this.#maxMs, this.#baseMs * 2 ** this.#attempt);
    this.#attempt += 1;
    return Math.round(raw * (0.75 + Math.random() * 0.5));
  }

  /** Resolves after the next delay, or at once when `signal` aborts (the caller then checks why). */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, this.nextDelay());
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  reset(): void {
    this.#attempt = 0;
  }
}

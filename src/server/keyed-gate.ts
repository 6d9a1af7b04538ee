// Bounded concurrency per key (an account, an address), with a bounded queue behind it.

interface Lane {
  running: number;
  queue: Array<() => void>;
}

export class KeyedGate {
  readonly #lanes = new Map<string, Lane>();
  readonly #concurrency: number;
  readonly #maxQueued: number;

  /** At most `concurrency` runs per key at once; at most `maxQueued` more wait; beyond that, refused. */
  constructor(concurrency: number, maxQueued: number) {
    this.#concurrency = concurrency;
    this.#maxQueued = maxQueued;
  }

  /** Runs `fn` when the key has room; resolves `undefined` without running it if the queue is full. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    let lane = this.#lanes.get(key);
    if (!lane) this.#lanes.set(key, (lane = { running: 0, queue: [] }));
    if (lane.running >= this.#concurrency) {
      if (lane.queue.length >= this.#maxQueued) return undefined;
      await new Promise<void>((resolve) => lane!.queue.push(resolve));
    }
    lane.running += 1;
    try {
      return { value: await fn() };
    } finally {
      lane.running -= 1;
      const next = lane.queue.shift();
      if (next) next();
      else if (lane.running === 0) this.#lanes.delete(key);
    }
  }
}

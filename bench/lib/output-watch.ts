// A remote terminal's output as the benchmarks see it: timed waits for text, or a raw tap for bulk data.
import { performance } from 'node:perf_hooks';

/** Recent output searched by waitFor; older text is dropped. */
const KEEP_BYTES = 64 * 1024; // bytes

interface Waiter {
  pattern: RegExp | string;
  resolve(at: number): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Collects output chunks. `waitFor` resolves with the arrival time (performance.now(), ms) of the
 * chunk that completed a match, so latencies are measured at delivery, not when a promise runs.
 * @example watch.clear(); term.write('a'); const at = await watch.waitFor('a', 5000, 'the echo');
 */
export class OutputWatch {
  #text = '';
  #waiters = new Set<Waiter>();
  #tap: ((chunk: Buffer, at: number) => void) | undefined;
  #ended: string | undefined;
  /** Every byte received, tapped or not. */
  bytes = 0;

  push(chunk: Buffer): void {
    const at = performance.now();
    this.bytes += chunk.length;
    if (this.#tap) return this.#tap(chunk, at);
    // latin1 maps bytes 1:1 to characters, so split UTF-8 sequences cannot garble a match.
    this.#text += chunk.toString('latin1');
    if (this.#text.length > KEEP_BYTES) this.#text = this.#text.slice(-KEEP_BYTES);
    for (const w of this.#waiters) {
      if (!matches(this.#text, w.pattern)) continue;
      this.#waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(at);
    }
  }

  /** The terminal is gone: pending and later waits fail with this reason. */
  end(reason: string): void {
    this.#ended = reason;
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`${reason} while waiting for ${describe(w.pattern)}${this.#tail()}`));
    }
    this.#waiters.clear();
  }

  /** Forgets the text so far: the next waitFor looks only at output arriving after this. */
  clear(): void {
    this.#text = '';
  }

  /** While set, chunks go to `fn` instead of the searchable text (bulk output). */
  tap(fn: ((chunk: Buffer, at: number) => void) | undefined): void {
    this.#tap = fn;
  }

  waitFor(pattern: RegExp | string, timeoutMs: number, what: string): Promise<number> {
    if (matches(this.#text, pattern)) return Promise.resolve(performance.now());
    if (this.#ended !== undefined)
      return Promise.reject(new Error(`${this.#ended} before ${what}${this.#tail()}`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pattern,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new Error(`no ${what} within ${timeoutMs} ms${this.#tail()}`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  #tail(): string {
    return `; last output: ${JSON.stringify(this.#text.slice(-300))}`;
  }
}

function matches(text: string, pattern: RegExp | string): boolean {
  return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
}

function describe(pattern: RegExp | string): string {
  return typeof pattern === 'string' ? JSON.stringify(pattern) : String(pattern);
}

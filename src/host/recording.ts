// Session recordings: an agent shell's terminal as an asciicast v2 file (what `asciinema play`
// plays), written on the agent only (mode 0600); the relay never sees it.
import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export interface RecordingOptions {
  /** The directory the .cast files go to (it exists: the agent checked at start). */
  dir: string;
  /** Keystrokes too ("i" events). Off by default: they include whatever is typed, passwords too. */
  input: boolean;
}

/**
 * One asciicast v2 file: a header line, then `[seconds, "o" | "i" | "r", text]` lines. Output is
 * decoded as UTF-8 across chunk boundaries (a character split between two PTY reads is written
 * whole); writes are buffered by a write stream, never blocking the PTY.
 */
export class Recording {
  readonly path: string;
  readonly #out: WriteStream;
  readonly #start = performance.now();
  readonly #output = new StringDecoder('utf8');
  readonly #input = new StringDecoder('utf8');
  #closed = false;
  /** Resolves once the file is complete on disk. */
  readonly done: Promise<string>;

  constructor(
    dir: string,
    name: string,
    header: { width: number; height: number; title: string; term: string },
  ) {
    this.path = join(dir, name);
    // 'wx': never over an existing file; 0600: a recording holds everything the shell printed.
    this.#out = createWriteStream('', { fd: openSync(this.path, 'wx', 0o600) });
    this.done = new Promise((resolve, reject) => {
      this.#out.once('close', () => resolve(this.path));
      this.#out.once('error', reject);
    });
    this.#line({
      version: 2,
      width: header.width,
      height: header.height,
      timestamp: Math.floor(Date.now() / 1000),
      title: header.title,
      env: { TERM: header.term },
    });
  }

  output(data: Buffer): void {
    this.#event('o', this.#output.write(data));
  }

  input(data: Buffer): void {
    this.#event('i', this.#input.write(data));
  }

  resize(cols: number, rows: number): void {
    this.#event('r', `${cols}x${rows}`);
  }

  close(): void {
    if (this.#closed) return;
    this.#event('o', this.#output.end());
    this.#closed = true;
    this.#out.end();
  }

  #event(type: 'o' | 'i' | 'r', text: string): void {
    if (this.#closed || text === '') return;
    const seconds = Math.round(performance.now() - this.#start) / 1000;
    this.#line([seconds, type, text]);
  }

  #line(value: unknown): void {
    this.#out.write(`${JSON.stringify(value)}\n`);
  }
}

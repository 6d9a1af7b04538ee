// The local terminal while sharing or attached: raw mode, size, and restoring it afterwards.
import type { Io } from './command.js';

/** How a status line of the CLI's own starts (bold "[switchboard]"), after a line break. */
export const NOTICE_PREFIX = '\x1b[1m[switchboard]\x1b[0m ';

export class LocalTerminal {
  readonly #io: Io;
  #raw = false;

  constructor(io: Io) {
    this.#io = io;
  }

  get isTty(): boolean {
    return Boolean(this.#io.stdin.isTTY);
  }

  size(): { cols: number; rows: number } {
    const out = this.#io.stdout;
    return { cols: out.columns || 80, rows: out.rows || 24 };
  }

  enterRaw(): void {
    if (!this.#io.stdin.isTTY || this.#raw) return;
    this.#io.stdin.setRawMode(true);
    this.#raw = true;
  }

  restore(): void {
    if (this.#raw) {
      this.#io.stdin.setRawMode(false);
      this.#raw = false;
    }
    this.#io.stdin.pause();
  }

  /** A status line, on its own line, that never goes to the remote side. */
  notice(text: string): void {
    const lines = text.split('\n').join('\r\n');
    this.#io.stderr.write(`\r\n${NOTICE_PREFIX}${lines}\r\n`);
  }

  onResize(listener: (cols: number, rows: number) => void): () => void {
    const handler = () => {
      const { cols, rows } = this.size();
      listener(cols, rows);
    };
    this.#io.stdout.on('resize', handler);
    return () => this.#io.stdout.off('resize', handler);
  }
}

// The host's copy of the screen (headless xterm), so a late or resumed controller gets a repaint.
import { createRequire } from 'node:module';

interface HeadlessTerminal {
  write(data: Uint8Array, callback?: () => void): void;
  resize(cols: number, rows: number): void;
  loadAddon(addon: unknown): void;
  dispose(): void;
}
interface SerializeAddon {
  serialize(options?: { scrollback?: number }): string;
}

const require = createRequire(import.meta.url);
const { Terminal } = require('@xterm/headless') as {
  Terminal: new (options: object) => HeadlessTerminal;
};
const { SerializeAddon: Serialize } = require('@xterm/addon-serialize') as {
  SerializeAddon: new () => SerializeAddon;
};

/** Lines of scrollback kept and repainted for a joining controller. */
export const SNAPSHOT_SCROLLBACK = 200; // lines

export class Screen {
  readonly #term: HeadlessTerminal;
  readonly #serializer: SerializeAddon;
  /** Stream offset up to which the emulator has parsed output (its writes complete asynchronously). */
  #parsed = 0;
  #queued = 0;

  constructor(cols: number, rows: number) {
    this.#term = new Terminal({ cols, rows, scrollback: 1000, allowProposedApi: true });
    this.#serializer = new Serialize();
    this.#term.loadAddon(this.#serializer);
  }

  /** Offset the snapshot reflects. */
  get parsedOffset(): number {
    return this.#parsed;
  }

  write(data: Buffer): void {
    this.#queued += data.length;
    const end = this.#queued;
    this.#term.write(data, () => {
      this.#parsed = end;
    });
  }

  resize(cols: number, rows: number): void {
    this.#term.resize(cols, rows);
  }

  /** A byte string that, written to a fresh terminal, redraws the current screen; and the offset it is valid at. */
  snapshot(): { data: Buffer; offset: number } {
    // Clear the controller's screen first so the repaint replaces, not mixes with, what it showed.
    const body = this.#serializer.serialize({ scrollback: SNAPSHOT_SCROLLBACK });
    return { data: Buffer.from(`\x1b[H\x1b[2J\x1b[3J${body}`), offset: this.#parsed };
  }

  dispose(): void {
    this.#term.dispose();
  }
}

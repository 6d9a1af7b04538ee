// The local terminal while sharing or attached: raw mode, size, and restoring it afterwards.
import { spawnSync } from 'node:child_process';
import type { Io } from './command.js';
import { TerminalModes } from './terminal-modes.js';

/** How a status line of the CLI's own starts (bold "[switchboard]"), after a line break. */
export const NOTICE_PREFIX = '\x1b[1m[switchboard]\x1b[0m ';
/** Columns NOTICE_PREFIX takes on the screen. */
const NOTICE_PREFIX_WIDTH = '[switchboard] '.length;
/**
 * How long a notice drawn over a full-screen program stays on its bottom line before the screen
 * is repainted from the emulator (which removes it).
 */
export const OVERLAY_MS = 4_000; // ms

/** `text` on one line of at most `room` columns (cut with an ellipsis). */
function oneLine(text: string, room: number): string {
  const line = text.replace(/\s*\n\s*/g, ' · ');
  return line.length > room ? `${line.slice(0, Math.max(1, room - 1))}…` : line;
}

export class LocalTerminal {
  readonly #io: Io;
  #raw = false;
  readonly #modes = new TerminalModes();
  #wrote = false;
  #statusShown = false;
  #overlayTimer: NodeJS.Timeout | undefined;
  /**
   * Called when a notice drawn over a full-screen program should go: the owner redraws the
   * screen (attach asks the host for a snapshot; share takes one from its own emulator).
   */
  onRepaintNeeded: (() => void) | undefined;

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

  /**
   * Raw input, and no output processing: the remote PTY already turned each newline into CRLF,
   * and the local terminal's ONLCR (which Node's raw mode keeps) would make it CR CR LF. `stty
   * -opost` is what ssh's raw mode does too; leaving raw mode (here or at exit) restores the
   * settings libuv saved on entering it, OPOST included.
   */
  enterRaw(): void {
    if (!this.#io.stdin.isTTY || this.#raw) return;
    this.#io.stdin.setRawMode(true);
    this.#raw = true;
    // Best effort: without stty the terminal still works, with CR CR LF.
    spawnSync('stty', ['-opost'], { stdio: [this.#io.stdin, 'ignore', 'ignore'] });
  }

  /** Output of the remote (or shared) program, drawn on the local terminal. */
  write(data: Uint8Array): void {
    this.#modes.feed(data);
    this.#wrote = true;
    this.#io.stdout.write(data);
  }

  /**
   * Leaves the local terminal as it was found: the modes the program switched on (alternate
   * screen, mouse, keypad, hidden cursor…) off, then cooked mode. Every exit path calls it.
   */
  restore(): void {
    clearTimeout(this.#overlayTimer);
    if (this.#wrote && this.#io.stdout.isTTY) {
      this.#wrote = false;
      this.#io.stdout.write(this.#modes.restoreSequence());
    }
    if (this.#raw) {
      this.#io.stdin.setRawMode(false);
      this.#raw = false;
    }
    this.#io.stdin.pause();
  }

  /**
   * A status line that never goes to the remote side. On the main screen it is printed on its own
   * line (and stays in the scrollback). Over a full-screen program (alternate screen) printing
   * would scroll and corrupt the program's screen: it is drawn on the bottom line instead, the
   * cursor and its attributes kept, and the screen is repainted OVERLAY_MS later (or, `sticky`,
   * once the next notice has been shown that long: a question stays until it is answered).
   */
  notice(text: string, sticky = false): void {
    if (this.#modes.altScreen && this.#io.stdout.isTTY) {
      const { cols, rows } = this.size();
      const shown = oneLine(text, cols - NOTICE_PREFIX_WIDTH - 1);
      this.#io.stderr.write(
        `\x1b7\x1b[${rows};1H\x1b[0m\x1b[2K\x1b[7m[switchboard] ${shown}\x1b[0m\x1b8`,
      );
      clearTimeout(this.#overlayTimer);
      this.#overlayTimer = sticky
        ? undefined
        : setTimeout(() => {
            this.#overlayTimer = undefined;
            this.onRepaintNeeded?.();
          }, OVERLAY_MS).unref();
      return;
    }
    const lines = text.split('\n').join('\r\n');
    this.#io.stderr.write(`\r\n${NOTICE_PREFIX}${lines}\r\n`);
  }

  /**
   * A status line that updates in place (one line, however many times it is set), e.g. while
   * reconnecting; `final` writes its last text and ends the line.
   */
  status(text: string, final = false): void {
    const start = this.#statusShown ? '\r\x1b[2K' : '\r\n';
    this.#statusShown = !final;
    // Cut to the width: a wrapped line could not be rewritten in place.
    const shown = oneLine(text, Math.max(10, this.size().cols - 1 - NOTICE_PREFIX_WIDTH));
    this.#io.stderr.write(`${start}${NOTICE_PREFIX}${shown}${final ? '\r\n' : ''}`);
  }

  /** Whether the remote program has the local terminal on its alternate screen (full-screen). */
  get altScreen(): boolean {
    return this.#modes.altScreen;
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

// What the remote program switched on in the local terminal, so leaving can switch it off again.
//
// A full-screen program turns on modes of the terminal it draws on (the alternate screen, mouse
// reporting, application keypad, a hidden cursor, bracketed paste). When the connection ends
// while it runs, nothing on the remote side turns them off, so the local terminal is left in
// vim's alternate screen with the mouse captured. The tracker watches the output for the one
// mode that is unsafe to reset blindly (leaving the alternate screen restores a saved cursor)
// and `restoreSequence` resets the others unconditionally, as resetting them is harmless.

/** DEC private modes that select the alternate screen (xterm's 1049, and the older 1047 and 47). */
const ALT_SCREEN_MODES = new Set(['1049', '1047', '47']);
/** Longest tail of a chunk kept in case a mode sequence is split across chunks. */
const MAX_TAIL = 32; // characters

/**
 * Turned off on leaving, whatever the remote did: mouse reporting (1000, 1002, 1003) and its
 * encodings (1005, 1006, 1015), focus events (1004), bracketed paste (2004), application cursor
 * keys (1), the application keypad (66, and ESC >); the cursor shown (25); scroll region and
 * character attributes reset. Resetting the scroll region moves the cursor home, so the cursor is
 * saved around it (ESC 7, ESC 8): what is printed next goes where the cursor was, not over the top
 * of the screen.
 */
const RESET =
  '\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1004l' +
  '\x1b[?2004l\x1b[?1l\x1b[?66l\x1b[?25h\x1b>\x1b7\x1b[r\x1b8\x1b[0m';

// `ESC [ ? Pm h|l`: a DEC private mode set or reset, several modes separated by `;`.
const DEC_MODE_RE = /\x1b\[\?([\d;]*)([hl])/g; // eslint-disable-line no-control-regex
/** The start of one (a chunk without it, and not ending in a cut one, changes nothing). */
const DEC_MODE_START = '\x1b[?';
/** What a mode sequence cut short looks like at the end of a chunk. */
const UNFINISHED_DEC_MODE_RE = /^\x1b(\[(\?[\d;]*)?)?$/; // eslint-disable-line no-control-regex

export class TerminalModes {
  #altScreen = false;
  #tail = '';

  /** Whether the remote program left the local terminal on its alternate screen. */
  get altScreen(): boolean {
    return this.#altScreen;
  }

  feed(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
    // Every output chunk comes here: most hold no mode sequence and end on none, so they are
    // passed over without decoding (found with two byte searches).
    if (this.#tail === '' && bytes.indexOf(DEC_MODE_START) < 0) {
      const esc = bytes.lastIndexOf(0x1b);
      if (esc < 0 || bytes.length - esc >= MAX_TAIL) return;
    }
    // latin1 keeps one character per byte: the sequences are ASCII, the rest does not matter.
    const text = this.#tail + bytes.toString('latin1');
    for (const m of text.matchAll(DEC_MODE_RE))
      for (const mode of m[1]!.split(';'))
        if (ALT_SCREEN_MODES.has(mode)) this.#altScreen = m[2] === 'h';
    // Keep a sequence cut at the end of the chunk that may still become a mode change.
    const esc = text.lastIndexOf('\x1b');
    const rest = esc >= 0 && text.length - esc < MAX_TAIL ? text.slice(esc) : '';
    this.#tail = UNFINISHED_DEC_MODE_RE.test(rest) ? rest : '';
  }

  /** Written on leaving: back to the main screen if needed, every other mode to its default. */
  restoreSequence(): string {
    return `${this.#altScreen ? '\x1b[?1049l' : ''}${RESET}`;
  }
}

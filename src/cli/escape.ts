// SSH-style escapes: "~" right after Enter starts a command ("~." detach, "~~" a literal "~").

/** Bracketed paste markers (the terminal sends them around pasted text when the program asks). */
const PASTE_START = '\x1b[200~';
const PASTE_END = '\x1b[201~';

export type Scanned = { type: 'data'; data: Buffer } | { type: 'command'; key: string };

export class EscapeScanner {
  readonly #keys: Set<string>;
  #atLineStart = true;
  #pendingTilde = false;
  /** Inside a bracketed paste (ESC[200~ … ESC[201~): pasted text never forms an escape. */
  #inPaste = false;
  /** The last bytes seen, to find the paste markers also when a read splits them. */
  #recent = '';

  /** `keys`: the characters that form commands after "~" (e.g. ".", "?"). */
  constructor(keys: string) {
    this.#keys = new Set(keys);
  }

  /** Treats what comes next as the start of a line (e.g. right after a question was shown). */
  atLineStart(): void {
    this.#atLineStart = true;
  }

  feed(chunk: Buffer): Scanned[] {
    const out: Scanned[] = [];
    let start = 0;
    const flush = (end: number) => {
      if (end > start) out.push({ type: 'data', data: chunk.subarray(start, end) });
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      this.#recent = (this.#recent + String.fromCharCode(byte)).slice(-PASTE_START.length);
      if (this.#inPaste) {
        if (this.#recent === PASTE_END) this.#inPaste = false;
        continue;
      }
      if (this.#recent === PASTE_START) {
        this.#inPaste = true;
        this.#atLineStart = false;
        continue;
      }
      if (this.#pendingTilde) {
        this.#pendingTilde = false;
        const ch = String.fromCharCode(byte);
        if (this.#keys.has(ch)) {
          out.push({ type: 'command', key: ch });
          start = i + 1;
          this.#atLineStart = false;
          continue;
        }
        // "~~" sends one "~"; anything else sends the held "~" and itself.
        out.push({ type: 'data', data: Buffer.from('~') });
        start = byte === 0x7e ? i + 1 : i;
        this.#atLineStart = byte === 0x0d || byte === 0x0a;
        continue;
      }
      if (byte === 0x7e && this.#atLineStart) {
        flush(i);
        this.#pendingTilde = true;
        start = i + 1;
        continue;
      }
      this.#atLineStart = byte === 0x0d || byte === 0x0a;
    }
    if (!this.#pendingTilde) flush(chunk.length);
    else if (start < chunk.length) flush(chunk.length);
    return out;
  }
}

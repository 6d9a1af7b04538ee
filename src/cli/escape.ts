// SSH-style escapes: "~" right after Enter starts a command ("~." detach, "~~" a literal "~").

/** Bracketed paste markers (the terminal sends them around pasted text when the program asks). */
const PASTE_START = Buffer.from('\x1b[200~');
const PASTE_END = Buffer.from('\x1b[201~');

export type Scanned = { type: 'data'; data: Buffer } | { type: 'command'; key: string };

export class EscapeScanner {
  readonly #keys: Set<string>;
  #atLineStart = true;
  #pendingTilde = false;
  /** Inside a bracketed paste (ESC[200~ … ESC[201~): pasted text never forms an escape. */
  #inPaste = false;
  /** The last bytes seen (as many as a paste marker has), to find one also when a read splits it. */
  readonly #recent = Buffer.alloc(PASTE_START.length);

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
      this.#recent.copyWithin(0, 1);
      this.#recent[this.#recent.length - 1] = byte;
      // Both markers end in "~": compared only then, with no allocation per byte.
      const marker = byte === 0x7e;
      if (this.#inPaste) {
        if (marker && this.#recent.equals(PASTE_END)) this.#inPaste = false;
        continue;
      }
      if (marker && this.#recent.equals(PASTE_START)) {
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

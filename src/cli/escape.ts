// SSH-style escapes: "~" right after Enter starts a command ("~." detach, "~~" a literal "~").

export type Scanned = { type: 'data'; data: Buffer } | { type: 'command'; key: string };

export class EscapeScanner {
  readonly #keys: Set<string>;
  #atLineStart = true;
  #pendingTilde = false;

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

// A bounded buffer of the most recent terminal output, addressed by absolute stream offset.

export class OutputRing {
  readonly #capacity: number;
  #chunks: Buffer[] = [];
  #size = 0;
  /** Offset of the first byte still held. */
  #start = 0;

  constructor(capacityBytes: number) {
    this.#capacity = capacityBytes;
  }

  get start(): number {
    return this.#start;
  }

  /** Offset just past the last byte written. */
  get end(): number {
    return this.#start + this.#size;
  }

  append(data: Buffer): void {
    if (data.length === 0) return;
    this.#chunks.push(Buffer.from(data));
    this.#size += data.length;
    while (this.#size > this.#capacity && this.#chunks.length > 1) {
      const dropped = this.#chunks.shift()!;
      this.#size -= dropped.length;
      this.#start += dropped.length;
    }
  }

  /** Bytes from `offset` (inclusive), at most `max`; undefined if `offset` has already been dropped. */
  read(offset: number, max: number): Buffer | undefined {
    if (offset < this.#start || offset > this.end) return undefined;
    const parts: Buffer[] = [];
    let pos = this.#start;
    let want = Math.min(max, this.end - offset);
    for (const chunk of this.#chunks) {
      if (want <= 0) break;
      const chunkEnd = pos + chunk.length;
      if (chunkEnd > offset) {
        const from = Math.max(0, offset - pos);
        const piece = chunk.subarray(from, Math.min(chunk.length, from + want));
        parts.push(piece);
        want -= piece.length;
        offset += piece.length;
      }
      pos = chunkEnd;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

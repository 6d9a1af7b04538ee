// A bounded buffer of the most recent terminal output, addressed by absolute stream offset.
//
// Output is copied into blocks of 1/64 of the capacity (at most BLOCK_BYTES; a larger write gets
// a block of its own size), so a long session of small writes (echoed keystrokes) holds about 64
// blocks, not millions of chunks: append is O(1) amortised, and read finds its block by binary
// search. Past the capacity the oldest whole blocks are dropped.

/** Largest block: 4 MiB of history is 64 blocks. */
export const BLOCK_BYTES = 64 * 1024; // bytes

interface Block {
  bytes: Buffer;
  /** Bytes of `bytes` in use (only the newest block is ever partly filled). */
  used: number;
  /** Absolute offset of `bytes[0]`. */
  start: number;
}

export class OutputRing {
  readonly #capacity: number;
  readonly #blockBytes: number;
  /** Live blocks are `#blocks[#head…]`; the dropped prefix is trimmed now and then. */
  #blocks: Block[] = [];
  #head = 0;
  #size = 0;
  /** Offset of the first byte still held. */
  #start = 0;

  constructor(capacityBytes: number) {
    this.#capacity = capacityBytes;
    this.#blockBytes = Math.min(BLOCK_BYTES, Math.max(16, Math.ceil(capacityBytes / 64)));
  }

  get start(): number {
    return this.#start;
  }

  /** Offset just past the last byte written. */
  get end(): number {
    return this.#start + this.#size;
  }

  append(data: Uint8Array): void {
    let from = 0;
    while (from < data.length) {
      let tail = this.#blocks[this.#blocks.length - 1];
      if (this.#blocks.length === this.#head || !tail || tail.used === tail.bytes.length) {
        const size = Math.max(this.#blockBytes, data.length - from);
        tail = { bytes: Buffer.allocUnsafe(size), used: 0, start: this.end };
        this.#blocks.push(tail);
      }
      const n = Math.min(data.length - from, tail.bytes.length - tail.used);
      tail.bytes.set(data.subarray(from, from + n), tail.used);
      tail.used += n;
      this.#size += n;
      from += n;
    }
    // Past the capacity, drop whole blocks from the oldest (the newest always stays).
    while (this.#size > this.#capacity && this.#blocks.length - this.#head > 1) {
      const oldest = this.#blocks[this.#head]!;
      this.#head += 1;
      this.#size -= oldest.used;
      this.#start += oldest.used;
    }
    if (this.#head > 64 && this.#head * 2 > this.#blocks.length) {
      this.#blocks = this.#blocks.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Bytes from `offset` (inclusive), at most `max`; undefined if `offset` has already been dropped. */
  read(offset: number, max: number): Buffer | undefined {
    if (offset < this.#start || offset > this.end) return undefined;
    let want = Math.min(max, this.end - offset);
    if (want <= 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (let i = this.#find(offset); want > 0 && i < this.#blocks.length; i++) {
      const block = this.#blocks[i]!;
      const from = offset - block.start;
      const piece = block.bytes.subarray(from, Math.min(block.used, from + want));
      parts.push(piece);
      want -= piece.length;
      offset += piece.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Index of the live block holding `offset` (binary search over block starts). */
  #find(offset: number): number {
    let lo = this.#head;
    let hi = this.#blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#blocks[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

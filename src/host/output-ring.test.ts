// The replay ring: absolute offsets, bounded memory, reads across chunk boundaries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputRing } from './output-ring.js';

describe('OutputRing', () => {
  it('reads any range that is still held, across chunks', () => {
    const ring = new OutputRing(100);
    ring.append(Buffer.from('hello '));
    ring.append(Buffer.from('world'));
    assert.equal(ring.end, 11);
    assert.equal(ring.read(3, 5)?.toString(), 'lo wo');
    assert.equal(ring.read(11, 5)?.length, 0);
    assert.equal(ring.read(12, 5), undefined);
  });

  it('drops the oldest chunks past its capacity and says so', () => {
    const ring = new OutputRing(10);
    for (let i = 0; i < 5; i++) ring.append(Buffer.from(`${i}${i}${i}${i}`));
    assert.equal(ring.end, 20);
    assert.ok(ring.start >= 10, `start ${ring.start}`);
    assert.equal(ring.read(0, 4), undefined, 'dropped output is not pretended to exist');
    assert.equal(ring.read(ring.start, 100)?.length, ring.end - ring.start);
    assert.equal(ring.read(16, 4)?.toString(), '4444');
  });

  it('agrees with a plain copy of the stream for every read, across blocks and drops', () => {
    const capacity = 1000;
    const ring = new OutputRing(capacity);
    let stream = '';
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 3000; i++) {
      // Mostly small writes (echoes), sometimes one larger than a block or than the capacity.
      const len = rand(10) === 0 ? rand(1500) : rand(8);
      const text = String.fromCharCode(97 + (i % 26)).repeat(len);
      ring.append(Buffer.from(text));
      stream += text;
      assert.equal(ring.end, stream.length);
      assert.ok(ring.start <= ring.end);
      const offset = ring.start + rand(ring.end - ring.start + 1);
      const max = rand(300);
      assert.equal(
        ring.read(offset, max)?.toString(),
        stream.slice(offset, offset + max),
        `read(${offset}, ${max}) after ${i + 1} writes`,
      );
      if (ring.start > 0) assert.equal(ring.read(ring.start - 1, 1), undefined);
    }
  });

  it('keeps about its capacity, however many small writes made the history', () => {
    const ring = new OutputRing(4096);
    for (let i = 0; i < 100_000; i++) ring.append(Buffer.from('ab\n'));
    const held = ring.end - ring.start;
    // Whole blocks of capacity/64 are dropped: between capacity - one block and capacity.
    assert.ok(held <= 4096 && held > 4096 - 64, `holds ${held} bytes`);
    assert.equal(ring.read(ring.end - 3, 10)?.toString(), 'ab\n');
  });
});

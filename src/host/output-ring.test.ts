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
});

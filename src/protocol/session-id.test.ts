// Session ID generation with injected randomness: the alphabet, the grouping, the entropy source.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateSessionId } from './session-id.js';

describe('generateSessionId', () => {
  it('spells the injected bytes in lowercase Crockford base32, in five groups of four', () => {
    const bytes = Uint8Array.from({ length: 20 }, (_, i) => i * 13);
    // Each symbol is the low 5 bits of one byte; 0x20 | 5 shows the high bits are dropped.
    bytes[0] = 0x20 | 5;
    assert.equal(
      generateSessionId(() => bytes),
      '5dt7-m1ev-8n2f-w9p3-gxaq',
    );
  });

  it('asks for 20 bytes and refuses a source that returns fewer', () => {
    const asked: number[] = [];
    generateSessionId((n) => {
      asked.push(n);
      return randomBytes(n);
    });
    assert.deepEqual(asked, [20]);
    assert.throws(() => generateSessionId(() => new Uint8Array(19)), RangeError);
  });

  it('matches the session ID format and differs each time with a real source', () => {
    const a = generateSessionId(randomBytes);
    assert.match(a, /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){4}$/);
    assert.notEqual(a, generateSessionId(randomBytes));
  });
});

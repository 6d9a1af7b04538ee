// Safety numbers: libsignal's published vector, symmetry, and change on any key change.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { fromHex } from './bytes.js';
import { formatSafetyNumber, safetyNumber, sideDigits } from './safety-number.js';

// libsignal-protocol-c tests/test_fingerprint.c: serialized Curve25519 identity keys (0x05 first),
// phone numbers as identifiers, 5200 iterations.
const ALICE = fromHex('0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868');
const BOB = fromHex('05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b');
const VECTOR = '300354477692869396892869876765458257569162576843440918079131';

describe('safety numbers', () => {
  it("match libsignal's test vector, computed from either side", () => {
    const alice = { identifier: '+14152222222', keys: [ALICE] };
    const bob = { identifier: '+14153333333', keys: [BOB] };
    assert.equal(safetyNumber(alice, bob), VECTOR);
    assert.equal(safetyNumber(bob, alice), VECTOR);
  });

  it('cover every device key of a side, in any order; any change changes them', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    const ann = { identifier: 'ann', keys };
    const bea = { identifier: 'bea', keys: [randomBytes(32)] };
    const n = safetyNumber(ann, bea, 64);
    assert.match(n, /^\d{60}$/);
    assert.equal(safetyNumber({ identifier: 'ann', keys: [keys[1]!, keys[0]!] }, bea, 64), n);
    assert.notEqual(safetyNumber({ identifier: 'ann', keys: [keys[0]!] }, bea, 64), n);
    assert.notEqual(safetyNumber(ann, { identifier: 'bea', keys: [randomBytes(32)] }, 64), n);
    assert.notEqual(safetyNumber({ identifier: 'anne', keys }, bea, 64), n);
    assert.throws(() => sideDigits({ identifier: 'x', keys: [] }), RangeError);
  });

  it('print as twelve groups of five, four to a line', () => {
    assert.equal(
      formatSafetyNumber(VECTOR),
      '30035 44776 92869 39689\n28698 76765 45825 75691\n62576 84344 09180 79131',
    );
  });
});

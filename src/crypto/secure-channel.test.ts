// Unit tests for the AEAD record layer: round trips, tampering, replay, reordering, poisoning, limits.
import { createCipheriv, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { MAX_RECORD_PLAINTEXT, SecureChannel, TAG_BYTES } from './secure-channel.js';

function pair(): [SecureChannel, SecureChannel] {
  const a2b = randomBytes(32);
  const b2a = randomBytes(32);
  return [new SecureChannel(a2b, b2a), new SecureChannel(b2a, a2b)];
}

const decryptFailed = (err: unknown) =>
  err instanceof CryptoError && err.code === ErrorCode.DECRYPT_FAILED;

describe('SecureChannel', () => {
  it('round-trips records in both directions', () => {
    const [a, b] = pair();
    for (let i = 0; i < 5; i++) {
      const fromA = Buffer.from(`a says ${i}`);
      const fromB = randomBytes(i * 100);
      const record = a.seal(fromA);
      assert.equal(record.length, fromA.length + TAG_BYTES);
      assert.deepEqual(b.open(record), fromA);
      assert.deepEqual(a.open(b.seal(fromB)), fromB);
    }
    const big = randomBytes(MAX_RECORD_PLAINTEXT);
    assert.deepEqual(b.open(a.seal(big)), big);
    assert.deepEqual(b.open(a.seal(new Uint8Array(0))), Buffer.alloc(0));
  });

  it('uses the documented wire format: AES-256-GCM, nonce = 4 zero bytes || u64be counter', () => {
    const sendKey = randomBytes(32);
    const channel = new SecureChannel(sendKey, randomBytes(32));
    const records = [0, 1, 2].map((i) => channel.seal(Buffer.from(`record ${i}`)));
    records.forEach((record, i) => {
      const iv = Buffer.alloc(12);
      iv.writeBigUInt64BE(BigInt(i), 4);
      const cipher = createCipheriv('aes-256-gcm', sendKey, iv);
      const expected = Buffer.concat([
        cipher.update(`record ${i}`),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      assert.deepEqual(record, expected);
    });
  });

  it('does not encrypt the same plaintext the same way twice', () => {
    const [a] = pair();
    assert.notDeepEqual(a.seal(Buffer.from('same')), a.seal(Buffer.from('same')));
  });

  it('rejects a record with any byte flipped', () => {
    const plaintext = Buffer.from('rm -rf /tmp/scratch\n');
    const length = plaintext.length + TAG_BYTES;
    for (let i = 0; i < length; i++) {
      const [a, b] = pair();
      const record = a.seal(plaintext);
      record[i] = (record[i] ?? 0) ^ 0x01;
      assert.throws(() => b.open(record), decryptFailed, `byte ${i}`);
    }
  });

  it('rejects truncated, extended and empty records', () => {
    const [a, b] = pair();
    const record = a.seal(Buffer.from('hello'));
    assert.throws(() => b.open(record.subarray(0, record.length - 1)), decryptFailed);
    const [c, d] = pair();
    assert.throws(
      () => d.open(Buffer.concat([c.seal(Buffer.from('x')), Buffer.of(0)])),
      decryptFailed,
    );
    const [, f] = pair();
    assert.throws(() => f.open(Buffer.alloc(0)), decryptFailed);
    const [, h] = pair();
    assert.throws(() => h.open(Buffer.alloc(TAG_BYTES - 1)), decryptFailed);
    const [, j] = pair();
    assert.throws(() => j.open(Buffer.alloc(MAX_RECORD_PLAINTEXT + TAG_BYTES + 1)), decryptFailed);
  });

  it('rejects a replayed record', () => {
    const [a, b] = pair();
    const record = a.seal(Buffer.from('once'));
    assert.deepEqual(b.open(record), Buffer.from('once'));
    assert.throws(() => b.open(record), decryptFailed);
  });

  it('rejects reordered and dropped records', () => {
    const a2b = randomBytes(32);
    const b2a = randomBytes(32);
    const a = new SecureChannel(a2b, b2a);
    const first = a.seal(Buffer.from('first'));
    const second = a.seal(Buffer.from('second'));
    // The same two records open in order on one receiver and fail swapped on another.
    const inOrder = new SecureChannel(b2a, a2b);
    assert.deepEqual(inOrder.open(first), Buffer.from('first'));
    assert.deepEqual(inOrder.open(second), Buffer.from('second'));
    const swapped = new SecureChannel(b2a, a2b);
    assert.throws(() => swapped.open(second), decryptFailed);

    const [c, d] = pair();
    c.seal(Buffer.from('dropped'));
    assert.throws(() => d.open(c.seal(Buffer.from('next'))), decryptFailed);
  });

  it('rejects a record reflected back to its sender', () => {
    const [a] = pair();
    assert.throws(() => a.open(a.seal(Buffer.from('echo'))), decryptFailed);
  });

  it('stays poisoned after a failure, even for records that would have been valid', () => {
    const [a, b] = pair();
    const good = a.seal(Buffer.from('good'));
    const tampered = Buffer.from(good);
    tampered[0] = (tampered[0] ?? 0) ^ 0x80;
    assert.throws(() => b.open(tampered), decryptFailed);
    assert.throws(() => b.open(good), decryptFailed);
    assert.throws(() => b.open(a.seal(Buffer.from('later'))), decryptFailed);
  });

  it('refuses oversized plaintext without consuming a counter', () => {
    const [a, b] = pair();
    assert.throws(() => a.seal(Buffer.alloc(MAX_RECORD_PLAINTEXT + 1)), RangeError);
    assert.deepEqual(b.open(a.seal(Buffer.from('still in step'))), Buffer.from('still in step'));
  });

  it('validates its keys', () => {
    const key = randomBytes(32);
    assert.throws(() => new SecureChannel(randomBytes(16), key), RangeError);
    assert.throws(() => new SecureChannel(key, randomBytes(31)), RangeError);
    assert.throws(() => new SecureChannel(key, Buffer.from(key)), RangeError);
  });

  it('keeps working after the caller wipes its key buffers', () => {
    const a2b = randomBytes(32);
    const b2a = randomBytes(32);
    const a = new SecureChannel(a2b, b2a);
    const b = new SecureChannel(Buffer.from(b2a), Buffer.from(a2b));
    a2b.fill(0);
    b2a.fill(1);
    assert.deepEqual(b.open(a.seal(Buffer.from('ok'))), Buffer.from('ok'));
  });
});

// Unit tests for the AEAD record layer: wire format, round trips, forgery, replay, reordering, loss, limits; on both providers.
import { createCipheriv, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { toHex, utf8 } from './bytes.js';
import { nobleCryptoProvider } from './noble-provider.js';
import { nodeCryptoProvider } from './node-provider.js';
import type { CryptoProvider } from './provider.js';
import {
  MAX_RECORDS,
  MAX_RECORD_PLAINTEXT,
  RECORD_OVERHEAD,
  SEQ_BYTES,
  SecureChannel,
  TAG_BYTES,
} from './secure-channel.js';

const withCode = (code: ErrorCode, pattern?: RegExp) => (err: unknown) =>
  err instanceof CryptoError &&
  err.code === code &&
  (pattern === undefined || pattern.test(err.message));
const forged = withCode(ErrorCode.DECRYPT_FAILED);
const replayed = withCode(ErrorCode.RECORD_REPLAYED);
const skipped = withCode(ErrorCode.RECORD_SKIPPED);

/** Byte-for-byte equality whatever the classes (a Buffer from node, a Uint8Array from noble). */
function same(actual: Uint8Array, expected: Uint8Array | string, message?: string): void {
  assert.equal(
    toHex(actual),
    toHex(typeof expected === 'string' ? utf8(expected) : expected),
    message,
  );
}

/** The record a spec-following sender seals for `seq`, written from node:crypto alone. */
function referenceRecord(key: Uint8Array, seq: bigint, plaintext: Uint8Array): Buffer {
  const header = Buffer.alloc(SEQ_BYTES);
  header.writeBigUInt64BE(seq);
  const nonce = Buffer.concat([Buffer.alloc(4), header]);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(header);
  return Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

for (const provider of [nodeCryptoProvider, nobleCryptoProvider]) {
  const pair = (
    options: { maxRecords?: number; receiver?: CryptoProvider } = {},
  ): [SecureChannel, SecureChannel] => {
    const a2b = randomBytes(32);
    const b2a = randomBytes(32);
    return [
      new SecureChannel(a2b, b2a, { provider, maxRecords: options.maxRecords }),
      new SecureChannel(b2a, a2b, { provider: options.receiver ?? provider }),
    ];
  };

  describe(`SecureChannel (${provider.name} provider)`, () => {
    it('round-trips records in both directions and counts them', () => {
      const [a, b] = pair();
      for (let i = 0; i < 5; i++) {
        const fromA = utf8(`a says ${i}`);
        const fromB = randomBytes(i * 100);
        const record = a.seal(fromA);
        assert.equal(record.length, fromA.length + RECORD_OVERHEAD);
        same(b.open(record), fromA);
        same(a.open(b.seal(fromB)), fromB);
        assert.deepEqual(
          [a.nextSendSeq, a.nextReceiveSeq, b.nextSendSeq, b.nextReceiveSeq],
          [i + 1, i + 1, i + 1, i + 1],
        );
      }
      const big = randomBytes(MAX_RECORD_PLAINTEXT);
      same(b.open(a.seal(big)), big);
      same(b.open(a.seal(new Uint8Array(0))), new Uint8Array(0));
    });

    it('uses the documented wire format: u64be seq || GCM(nonce = 0^4 || seq, aad = seq)', () => {
      const sendKey = randomBytes(32);
      const channel = new SecureChannel(sendKey, randomBytes(32), { provider });
      for (let i = 0; i < 3; i++) {
        const plaintext = utf8(`record ${i}`);
        same(
          channel.seal(plaintext),
          referenceRecord(sendKey, BigInt(i), plaintext),
          `record ${i}`,
        );
      }
    });

    it('does not encrypt the same plaintext the same way twice', () => {
      const [a] = pair();
      assert.notEqual(toHex(a.seal(utf8('same'))), toHex(a.seal(utf8('same'))));
    });

    it('refuses a record with any bit flipped, header included, as forged', () => {
      const plaintext = utf8('rm -rf /tmp/scratch\n');
      for (let i = 0; i < plaintext.length + RECORD_OVERHEAD; i++) {
        const [a, b] = pair();
        const record = a.seal(plaintext);
        record[i] = (record[i] as number) ^ (i < SEQ_BYTES ? 0x80 >> (i % 8) : 0x01);
        assert.throws(() => b.open(record), forged, `byte ${i}`);
      }
    });

    it('refuses a genuine record relabelled with another sequence number as forged', () => {
      const [a, b] = pair();
      const first = a.seal(utf8('first'));
      const second = a.seal(utf8('second'));
      // Record 1 claiming to be the expected record 0: the number is authenticated.
      const relabelled = Uint8Array.from(second);
      relabelled[SEQ_BYTES - 1] = 0;
      assert.throws(() => b.open(relabelled), forged);
      assert.throws(() => b.open(first), forged, 'poisoned');

      const [c, d] = pair();
      const early = Uint8Array.from(c.seal(utf8('zero')));
      early[SEQ_BYTES - 1] = 1; // record 0 claiming to be record 1: not a loss, a forgery
      assert.throws(() => d.open(early), forged);
    });

    it('refuses a number past the record limit unopened, even under a valid tag', () => {
      const a2b = randomBytes(32);
      const b = new SecureChannel(randomBytes(32), a2b, { provider });
      const beyond = referenceRecord(a2b, BigInt(MAX_RECORDS), utf8('from the future'));
      assert.throws(() => b.open(beyond), withCode(ErrorCode.DECRYPT_FAILED, /record limit/));
    });

    it('refuses truncated, extended and empty records', () => {
      const [a, b] = pair();
      const record = a.seal(utf8('hello'));
      assert.throws(() => b.open(record.subarray(0, record.length - 1)), forged);
      const [c, d] = pair();
      assert.throws(() => d.open(Buffer.concat([c.seal(utf8('x')), Buffer.of(0)])), forged);
      for (const length of [
        0,
        SEQ_BYTES,
        RECORD_OVERHEAD - 1,
        MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD + 1,
      ]) {
        const [, f] = pair();
        assert.throws(() => f.open(new Uint8Array(length)), forged, `length ${length}`);
      }
    });

    it('refuses a replayed record as RECORD_REPLAYED and stays usable', () => {
      const [a, b] = pair();
      const record = a.seal(utf8('once'));
      same(b.open(record), 'once');
      assert.throws(
        () => b.open(record),
        withCode(ErrorCode.RECORD_REPLAYED, /record 0 .*expected 1/),
      );
      assert.equal(b.nextReceiveSeq, 1);
      same(b.open(a.seal(utf8('twice?'))), 'twice?');
    });

    it('refuses reordered records: an early one as RECORD_SKIPPED, a late one as RECORD_REPLAYED', () => {
      const [a, b] = pair();
      const records = ['r0', 'r1', 'r2'].map((text) => a.seal(utf8(text)));
      same(b.open(records[0]!), 'r0');
      assert.throws(() => b.open(records[2]!), skipped, 'r2 before r1');
      same(b.open(records[1]!), 'r1');
      same(b.open(records[2]!), 'r2');
      assert.throws(() => b.open(records[1]!), replayed, 'r1 after r2');
      assert.equal(b.nextReceiveSeq, 3);
    });

    it('refuses the record after a gap as RECORD_SKIPPED, saying how many were lost', () => {
      const [a, b] = pair();
      a.seal(utf8('lost 0'));
      a.seal(utf8('lost 1'));
      const next = a.seal(utf8('next'));
      assert.throws(() => b.open(next), withCode(ErrorCode.RECORD_SKIPPED, /2 lost/));
      assert.equal(b.nextReceiveSeq, 0);
    });

    it('refuses a record reflected back to its sender', () => {
      const [a] = pair();
      assert.throws(() => a.open(a.seal(utf8('echo'))), forged);
    });

    it('stays poisoned after a forged record, even for records that would have been valid', () => {
      const [a, b] = pair();
      const good = a.seal(utf8('good'));
      const tampered = Uint8Array.from(good);
      tampered[SEQ_BYTES] = (tampered[SEQ_BYTES] as number) ^ 0x80;
      assert.throws(() => b.open(tampered), forged);
      assert.throws(
        () => b.open(good),
        withCode(ErrorCode.DECRYPT_FAILED, /closed after a forged/),
      );
      assert.throws(() => b.open(a.seal(utf8('later'))), forged);
    });

    it('refuses to seal at the record limit, every time after, and never reuses a number', () => {
      const [a, b] = pair({ maxRecords: 3 });
      const seen = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const record = a.seal(utf8(`r${i}`));
        seen.add(toHex(record.subarray(0, SEQ_BYTES)));
        same(b.open(record), `r${i}`);
      }
      assert.equal(seen.size, 3);
      for (let i = 0; i < 3; i++) {
        assert.throws(
          () => a.seal(utf8('one more')),
          withCode(ErrorCode.HANDSHAKE_FAILED, /record limit/),
        );
      }
      assert.equal(a.nextSendSeq, 3);
    });

    it('refuses oversized plaintext without consuming a number', () => {
      const [a, b] = pair();
      assert.throws(() => a.seal(new Uint8Array(MAX_RECORD_PLAINTEXT + 1)), RangeError);
      assert.equal(a.nextSendSeq, 0);
      same(b.open(a.seal(utf8('still in step'))), 'still in step');
    });

    it('validates its keys and options', () => {
      const key = randomBytes(32);
      assert.throws(() => new SecureChannel(randomBytes(16), key, { provider }), RangeError);
      assert.throws(() => new SecureChannel(key, randomBytes(31), { provider }), RangeError);
      assert.throws(() => new SecureChannel(key, Uint8Array.from(key), { provider }), RangeError);
      for (const maxRecords of [0, 1.5, MAX_RECORDS + 1, Number.NaN]) {
        assert.throws(() => new SecureChannel(key, randomBytes(32), { maxRecords }), RangeError);
      }
      new SecureChannel(key, randomBytes(32), { maxRecords: MAX_RECORDS });
    });

    it('keeps working after the caller wipes its key buffers', () => {
      const a2b = randomBytes(32);
      const b2a = randomBytes(32);
      const a = new SecureChannel(a2b, b2a, { provider });
      const b = new SecureChannel(Buffer.from(b2a), Buffer.from(a2b), { provider });
      a2b.fill(0);
      b2a.fill(1);
      same(b.open(a.seal(utf8('ok'))), 'ok');
    });
  });
}

describe('SecureChannel across providers', () => {
  it('node seals what noble opens, and the reverse', () => {
    const a2b = randomBytes(32);
    const b2a = randomBytes(32);
    const node = new SecureChannel(a2b, b2a, { provider: nodeCryptoProvider });
    const noble = new SecureChannel(b2a, a2b, { provider: nobleCryptoProvider });
    for (let i = 0; i < 3; i++) {
      same(noble.open(node.seal(utf8(`down ${i}`))), `down ${i}`);
      same(node.open(noble.seal(utf8(`up ${i}`))), `up ${i}`);
    }
  });

  it('defaults to node:crypto in Node', () => {
    const a2b = randomBytes(32);
    const b2a = randomBytes(32);
    const record = new SecureChannel(a2b, b2a).seal(utf8('default'));
    assert.ok(Buffer.isBuffer(record), 'node:crypto returns Buffers');
    assert.equal(TAG_BYTES, 16);
  });
});

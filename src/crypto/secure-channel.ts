// The AEAD record layer used after the handshake: AES-256-GCM with per-direction keys and explicit sequence numbers.
//
// record = u64be(seq) || AES-256-GCM(key, nonce = 0x00000000 || u64be(seq), aad = u64be(seq))
//
// The receiver takes only the next expected number. A record is authenticated under the number
// it carries before it is judged, so a genuine record out of place (replayed, reordered, or after
// a loss) is told apart from a forged one, and a changed number is a forgery like any other
// changed byte. Primitives come from a CryptoProvider, so this file runs unchanged in a browser.
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { bytesEqual } from './bytes.js';
import { defaultCryptoProvider } from './default-provider.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, type CryptoProvider } from './provider.js';

/** Largest plaintext one record may carry. */
export const MAX_RECORD_PLAINTEXT = 64 * 1024; // bytes
/** GCM authentication tag appended to every record. */
export const TAG_BYTES = GCM_TAG_BYTES; // bytes
/** AES-256 key size. */
export const KEY_BYTES = 32; // bytes
/** The record header: the record's sequence number as a big-endian u64. */
export const SEQ_BYTES = 8; // bytes
/** Bytes a record adds to its plaintext: header and tag. */
export const RECORD_OVERHEAD = SEQ_BYTES + TAG_BYTES; // bytes
/**
 * Records one key may seal. The nonce would only repeat after 2^64 records, but AES-GCM's
 * confidentiality bound degrades with the data under one key: 2^32 records of 64 KiB is 2^44
 * AES blocks, a distinguishing advantage of about 2^-40. Past that, run a fresh handshake. The
 * header has room for 2^64 so the limit is policy, not format; a number at or past it is never
 * sealed, and a record claiming one is refused unopened.
 */
export const MAX_RECORDS = 2 ** 32; // records

/** Options of a SecureChannel; every field has a default. */
export interface SecureChannelOptions {
  /** The primitives. Default: node:crypto in Node, @noble in the browser build. */
  provider?: CryptoProvider;
  /**
   * Records this end seals before it refuses (a rekeying policy, or a test reaching the limit).
   * An integer in [1, MAX_RECORDS]; default MAX_RECORDS. Opening is bounded by MAX_RECORDS only.
   */
  maxRecords?: number;
}

/**
 * One end of an encrypted, ordered, authenticated record stream.
 *
 * `open` throws CryptoError with a code that says what happened:
 * - DECRYPT_FAILED: forged or corrupted (bad tag, bad length, a number past MAX_RECORDS). The
 *   channel is poisoned: every later record is refused too.
 * - RECORD_REPLAYED: genuine, but its number was already accepted (a replay, a duplicate, or
 *   a record delivered after a later one).
 * - RECORD_SKIPPED: genuine, but ahead of the next expected number: records were lost.
 * The last two release nothing and leave the channel as it was, so a caller moving the stream to
 * another transport can drop a duplicate and carry on; `nextReceiveSeq` says where it stands.
 * @example const record = channel.seal(utf8('ls\n')); peer.open(record);
 */
export class SecureChannel {
  readonly #provider: CryptoProvider;
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  readonly #maxRecords: number;
  #nextSend = 0;
  #nextReceive = 0;
  #poisoned = false;

  constructor(sendKey: Uint8Array, receiveKey: Uint8Array, options: SecureChannelOptions = {}) {
    if (sendKey?.length !== KEY_BYTES || receiveKey?.length !== KEY_BYTES) {
      throw new RangeError(`SecureChannel keys are ${KEY_BYTES} bytes each`);
    }
    // With one key for both directions a relay could bounce our own records back to us.
    if (bytesEqual(sendKey, receiveKey)) {
      throw new RangeError('SecureChannel send and receive keys must differ');
    }
    const { provider = defaultCryptoProvider, maxRecords = MAX_RECORDS } = options;
    if (!Number.isInteger(maxRecords) || maxRecords < 1 || maxRecords > MAX_RECORDS) {
      throw new RangeError(`SecureChannel maxRecords must be an integer in [1, ${MAX_RECORDS}]`);
    }
    this.#provider = provider;
    this.#maxRecords = maxRecords;
    // Copies, so the caller may wipe its buffers afterwards.
    this.#sendKey = Uint8Array.from(sendKey);
    this.#receiveKey = Uint8Array.from(receiveKey);
  }

  /** The sequence number the next `seal` will use (equals the records sealed so far). */
  get nextSendSeq(): number {
    return this.#nextSend;
  }

  /** The only sequence number `open` will accept next (equals the records accepted so far). */
  get nextReceiveSeq(): number {
    return this.#nextReceive;
  }

  /** Encrypts one record: u64be(seq) || ciphertext || 16-byte tag. */
  seal(plaintext: Uint8Array): Uint8Array {
    if (plaintext.length > MAX_RECORD_PLAINTEXT) {
      throw new RangeError(
        `a record carries at most ${MAX_RECORD_PLAINTEXT} bytes, got ${plaintext.length}; split it`,
      );
    }
    const seq = this.#nextSend;
    if (seq >= this.#maxRecords) {
      throw new CryptoError(
        ErrorCode.HANDSHAKE_FAILED,
        'this channel has sealed its record limit; a fresh handshake is required',
      );
    }
    // Counted before sealing: whatever happens next, this number is never used again.
    this.#nextSend = seq + 1;
    const nonce = nonceFor(seq);
    return this.#provider.aes256GcmSealWithHeader(
      this.#sendKey,
      nonce,
      nonce.subarray(GCM_NONCE_BYTES - SEQ_BYTES),
      plaintext,
    );
  }

  /** Decrypts the record with the next expected number; see the class comment for refusals. */
  open(record: Uint8Array): Uint8Array {
    if (this.#poisoned) {
      throw new CryptoError(ErrorCode.DECRYPT_FAILED, 'channel closed after a forged record');
    }
    const length = record?.length;
    if (!(length >= RECORD_OVERHEAD && length <= MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD)) {
      throw this.#forged(`record length ${String(length)} out of range`);
    }
    // Exact below 2^53, which is all the comparison with MAX_RECORDS (2^32) needs.
    const seq = readU32(record, 0) * 2 ** 32 + readU32(record, 4);
    // No sender seals a number at or past the limit, so this cannot be genuine: not worth a decryption.
    if (seq >= MAX_RECORDS) throw this.#forged(`record number ${seq} is past the record limit`);
    const header = record.subarray(0, SEQ_BYTES);
    let plaintext: Uint8Array;
    try {
      plaintext = this.#provider.aes256GcmOpen(
        this.#receiveKey,
        nonceFor(seq),
        record.subarray(SEQ_BYTES),
        header,
      );
    } catch (err) {
      throw this.#forged(`record ${seq} failed authentication (forged or corrupted)`, err);
    }
    const expected = this.#nextReceive;
    if (seq !== expected) {
      plaintext.fill(0);
      throw seq < expected
        ? new CryptoError(
            ErrorCode.RECORD_REPLAYED,
            `record ${seq} was already received (replayed or reordered); expected ${expected}`,
          )
        : new CryptoError(
            ErrorCode.RECORD_SKIPPED,
            `record ${seq} arrived while ${expected} was expected: ${seq - expected} lost`,
          );
    }
    this.#nextReceive = expected + 1;
    return plaintext;
  }

  #forged(message: string, cause?: unknown): CryptoError {
    this.#poisoned = true;
    return new CryptoError(
      ErrorCode.DECRYPT_FAILED,
      message,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** 96-bit GCM nonce: 4 zero bytes || u64be(seq); its last 8 bytes are the record header. */
function nonceFor(seq: number): Uint8Array {
  const nonce = new Uint8Array(GCM_NONCE_BYTES);
  const high = Math.floor(seq / 2 ** 32);
  const low = seq >>> 0;
  nonce[4] = high >>> 24;
  nonce[5] = high >>> 16;
  nonce[6] = high >>> 8;
  nonce[7] = high;
  nonce[8] = low >>> 24;
  nonce[9] = low >>> 16;
  nonce[10] = low >>> 8;
  nonce[11] = low;
  return nonce;
}

function readU32(bytes: Uint8Array, at: number): number {
  return (
    (((bytes[at] as number) << 24) |
      ((bytes[at + 1] as number) << 16) |
      ((bytes[at + 2] as number) << 8) |
      (bytes[at + 3] as number)) >>>
    0
  );
}

// The AEAD record layer used after the handshake: AES-256-GCM with per-direction keys and counter nonces.
import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CryptoError, ErrorCode } from '../protocol/errors.js';

/** Largest plaintext one record may carry. */
export const MAX_RECORD_PLAINTEXT = 64 * 1024; // bytes
/** GCM authentication tag appended to every record. */
export const TAG_BYTES = 16; // bytes
/** AES-256 key size. */
export const KEY_BYTES = 32; // bytes
/**
 * Records one key may seal. Nonces would only repeat after 2^64 records, but AES-GCM's
 * confidentiality bound degrades with the data under one key: 2^32 records of 64 KiB is 2^44
 * AES blocks, a distinguishing advantage of about 2^-40. Past that, run a fresh handshake,
 * which also keeps the counter far inside Number's exact-integer range.
 */
export const MAX_RECORDS = 2 ** 32; // records

const NONCE_BYTES = 12; // bytes

/**
 * One end of an encrypted, ordered, authenticated record stream. Records carry no sequence
 * number: each side counts, so a replayed, dropped or reordered record fails authentication.
 * @example const record = channel.seal(Buffer.from('ls\n')); peer.open(record);
 */
export class SecureChannel {
  readonly #sendKey: KeyObject;
  readonly #receiveKey: KeyObject;
  #sendCounter = 0;
  #receiveCounter = 0;
  #poisoned = false;

  constructor(sendKey: Buffer, receiveKey: Buffer) {
    if (sendKey.length !== KEY_BYTES || receiveKey.length !== KEY_BYTES) {
      throw new RangeError(`SecureChannel keys are ${KEY_BYTES} bytes each`);
    }
    // With one key for both directions a relay could bounce our own records back to us.
    if (sendKey.equals(receiveKey)) {
      throw new RangeError('SecureChannel send and receive keys must differ');
    }
    // KeyObjects copy the bytes, so the caller may wipe its buffers afterwards.
    this.#sendKey = createSecretKey(sendKey);
    this.#receiveKey = createSecretKey(receiveKey);
  }

  /** Encrypts one record: ciphertext || 16-byte tag. Records must be opened in the order sealed. */
  seal(plaintext: Uint8Array): Buffer {
    if (plaintext.length > MAX_RECORD_PLAINTEXT) {
      throw new RangeError(
        `a record carries at most ${MAX_RECORD_PLAINTEXT} bytes, got ${plaintext.length}; split it`,
      );
    }
    if (this.#sendCounter >= MAX_RECORDS) {
      throw new CryptoError(
        ErrorCode.HANDSHAKE_FAILED,
        'this channel has sealed its record limit; a fresh handshake is required',
      );
    }
    const cipher = createCipheriv('aes-256-gcm', this.#sendKey, nonce(this.#sendCounter), {
      authTagLength: TAG_BYTES,
    });
    this.#sendCounter += 1;
    const body = cipher.update(plaintext);
    const final = cipher.final();
    return Buffer.concat([body, final, cipher.getAuthTag()]);
  }

  /**
   * Decrypts the next record in order. Any failure throws CryptoError DECRYPT_FAILED and poisons
   * the channel: after tampering the stream position is unknowable, so later records cannot be trusted.
   */
  open(record: Uint8Array): Buffer {
    if (this.#poisoned) {
      throw new CryptoError(ErrorCode.DECRYPT_FAILED, 'channel closed after a failed record');
    }
    try {
      return this.#open(record);
    } catch (err) {
      this.#poisoned = true;
      throw new CryptoError(ErrorCode.DECRYPT_FAILED, `record ${this.#receiveCounter} rejected`, {
        cause: err,
      });
    }
  }

  #open(record: Uint8Array): Buffer {
    if (record.length < TAG_BYTES || record.length > MAX_RECORD_PLAINTEXT + TAG_BYTES) {
      throw new RangeError(`record length ${record.length} out of range`);
    }
    if (this.#receiveCounter >= MAX_RECORDS) throw new RangeError('record limit reached');
    const decipher = createDecipheriv(
      'aes-256-gcm',
      this.#receiveKey,
      nonce(this.#receiveCounter),
      {
        authTagLength: TAG_BYTES,
      },
    );
    const split = record.length - TAG_BYTES;
    decipher.setAuthTag(record.subarray(split));
    const body = decipher.update(record.subarray(0, split));
    // final() throws on a bad tag; only then is the plaintext released and the counter advanced.
    const plaintext = Buffer.concat([body, decipher.final()]);
    this.#receiveCounter += 1;
    return plaintext;
  }
}

/** 96-bit GCM nonce: 4 zero bytes || 64-bit big-endian record counter. */
function nonce(counter: number): Buffer {
  const iv = Buffer.alloc(NONCE_BYTES);
  iv.writeBigUInt64BE(BigInt(counter), NONCE_BYTES - 8);
  return iv;
}

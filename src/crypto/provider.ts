// The primitives Switchboard's cryptography is built from, as one interface with a Node and a browser implementation.
//
// Implementations: `nodeCryptoProvider` (node-provider.ts, node:crypto/OpenSSL, the fast path)
// and `nobleCryptoProvider` (noble-provider.ts, @noble/*, pure JavaScript, for the browser).
// Both are checked against the same known-answer vectors (test-vectors.ts) under Node and in
// Chromium. The interface is synchronous on purpose: both implementations are synchronous, and
// WebCrypto (which is not) would force every caller, the handshake included, to become async.
// The handshake and the record layer (handshake.ts, secure-channel.ts) go through it too; the
// record layer's seal is one call (aes256GcmSealWithHeader) that writes the record in one piece,
// so the interface adds no copy to the hot path.

/** Raw X25519 keys, Ed25519 seeds and public keys, AES-256 keys, SHA-256 digests. */
export const KEY_BYTES = 32; // bytes
/** Ed25519 signature. */
export const SIGNATURE_BYTES = 64; // bytes
/** AES-GCM nonce as used here (96 bits). */
export const GCM_NONCE_BYTES = 12; // bytes
/** AES-GCM authentication tag appended to every ciphertext. */
export const GCM_TAG_BYTES = 16; // bytes

/**
 * Every primitive takes and returns plain Uint8Array (a Node implementation may return a
 * Buffer, which is one). Secret inputs are raw bytes: an Ed25519 private key is its 32-byte
 * RFC 8032 seed, an X25519 private key its 32-byte scalar (clamped by the implementation).
 */
export interface CryptoProvider {
  /** Short name for test output and logs ('node', 'noble'). */
  readonly name: string;
  /** `length` bytes from the platform CSPRNG. */
  randomBytes(length: number): Uint8Array;
  /** SHA-256 over the concatenation of `parts`. */
  sha256(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-SHA256(key, data). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HKDF-SHA256 (RFC 5869), extract then expand to `length` bytes (at most 255 * 32). */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /** The Ed25519 public key of a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** A 64-byte Ed25519 signature (RFC 8032, deterministic) of `message` under `seed`. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /**
   * True only for a valid signature under a usable key. Never throws: a malformed key or
   * signature is false, and so is a small-order or non-canonical public key (isWeakEd25519Key),
   * under which some verifiers accept signatures nobody made.
   */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** The X25519 public key (u-coordinate) of a 32-byte private scalar. */
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * X25519(privateKey, peerPublicKey). Throws RangeError when the result is all zero (a
   * low-order peer point), since such a "shared secret" is known to everyone.
   */
  x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array;
  /** AES-256-GCM encryption: ciphertext || 16-byte tag. */
  aes256GcmSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad?: Uint8Array,
  ): Uint8Array;
  /**
   * AES-256-GCM with `header` as the associated data, returned as header || ciphertext || tag in
   * one fresh array: a record layer's framing with a single copy of the plaintext's ciphertext.
   */
  aes256GcmSealWithHeader(
    key: Uint8Array,
    nonce: Uint8Array,
    header: Uint8Array,
    plaintext: Uint8Array,
  ): Uint8Array;
  /** AES-256-GCM decryption of ciphertext || tag; throws on a bad tag, releasing no plaintext. */
  aes256GcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad?: Uint8Array,
  ): Uint8Array;
}

// Curve25519's field prime, and the y-coordinates of the 8 points of order dividing 8: the
// identity (1), order 2 (p-1), order 4 (0) and order 8 (Y8 and p-Y8, each with both signs of x).
const FIELD_P = 2n ** 255n - 19n;
const ORDER8_Y = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, FIELD_P - 1n, ORDER8_Y, FIELD_P - ORDER8_Y]);

/**
 * True for Ed25519 public keys no honest device has: a small-order point, for which OpenSSL
 * accepts signatures nobody made (under the all-zero key an all-zero signature verifies for one
 * message in four), or a non-canonical spelling (y >= p) that would give one key two
 * fingerprints. Both providers refuse these before verifying, so they agree on them.
 */
export function isWeakEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== KEY_BYTES) return true;
  // Little-endian y with the top bit (the sign of x) cleared.
  let y = 0n;
  for (let i = KEY_BYTES - 1; i >= 0; i -= 1) y = (y << 8n) | BigInt(raw[i] as number);
  y &= (1n << 255n) - 1n;
  return y >= FIELD_P || SMALL_ORDER_Y.has(y);
}

/** Throws RangeError unless `bytes` is a Uint8Array of exactly `length` bytes. */
export function expectBytes(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new RangeError(`${what} must be ${length} bytes`);
  }
}

/** True if every byte is zero (constant time in the length). */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const byte of bytes) acc |= byte;
  return acc === 0;
}

/**
 * The bare operations an implementation supplies; {@link checkedProvider} adds the rules both
 * share (input sizes, weak-key and signature-length refusals, the all-zero X25519 result, a
 * short GCM input), so the two implementations cannot drift apart on them.
 */
export interface CryptoPrimitives {
  randomBytes(length: number): Uint8Array;
  sha256(parts: Uint8Array[]): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** May throw on malformed input; the checked provider turns that into false. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array;
  aes256GcmSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
  aes256GcmSealWithHeader(
    key: Uint8Array,
    nonce: Uint8Array,
    header: Uint8Array,
    plaintext: Uint8Array,
  ): Uint8Array;
  aes256GcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** A CryptoProvider from bare primitives, with the checks every implementation must make. */
export function checkedProvider(name: string, p: CryptoPrimitives): CryptoProvider {
  return Object.freeze({
    name,
    randomBytes: (length: number) => p.randomBytes(length),
    sha256: (...parts: Uint8Array[]) => p.sha256(parts),
    hmacSha256: (key: Uint8Array, data: Uint8Array) => p.hmacSha256(key, data),
    hkdfSha256: (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number) =>
      p.hkdfSha256(ikm, salt, info, length),
    ed25519PublicKey(seed: Uint8Array): Uint8Array {
      expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
      return p.ed25519PublicKey(seed);
    },
    ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
      expectBytes(seed, KEY_BYTES, 'an Ed25519 seed');
      return p.ed25519Sign(seed, message);
    },
    ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
      try {
        if (signature.length !== SIGNATURE_BYTES || isWeakEd25519Key(publicKey)) return false;
        return p.ed25519Verify(publicKey, message, signature);
      } catch {
        return false;
      }
    },
    x25519PublicKey(privateKey: Uint8Array): Uint8Array {
      expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
      return p.x25519PublicKey(privateKey);
    },
    x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
      expectBytes(privateKey, KEY_BYTES, 'an X25519 private key');
      expectBytes(peerPublicKey, KEY_BYTES, 'an X25519 public key');
      const shared = p.x25519(privateKey, peerPublicKey);
      if (isAllZero(shared)) throw new RangeError('X25519 with a low-order point');
      return shared;
    },
    aes256GcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad = EMPTY) {
      expectBytes(key, KEY_BYTES, 'an AES-256 key');
      expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
      return p.aes256GcmSeal(key, nonce, plaintext, aad);
    },
    aes256GcmSealWithHeader(
      key: Uint8Array,
      nonce: Uint8Array,
      header: Uint8Array,
      plaintext: Uint8Array,
    ) {
      expectBytes(key, KEY_BYTES, 'an AES-256 key');
      expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
      return p.aes256GcmSealWithHeader(key, nonce, header, plaintext);
    },
    aes256GcmOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad = EMPTY) {
      expectBytes(key, KEY_BYTES, 'an AES-256 key');
      expectBytes(nonce, GCM_NONCE_BYTES, 'a GCM nonce');
      if (sealed.length < GCM_TAG_BYTES) throw new RangeError('GCM input shorter than its tag');
      return p.aes256GcmOpen(key, nonce, sealed, aad);
    },
  });
}

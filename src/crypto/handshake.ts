// End-to-end handshake between a controller and a host: SIGMA-I over X25519, Ed25519 and AES-256-GCM.
//
// The relay in between is untrusted and forwards three opaque messages. Wire format (|| is
// concatenation, strings are ASCII, u32be is a 4-byte big-endian length):
//
//   msg1 (controller -> host, 33 bytes):  0x01 || e_c
//   msg2 (host -> controller, 145 bytes): 0x02 || e_h || GCM(k_h2c, static_h || sig_h)
//   msg3 (controller -> host, 113 bytes): 0x03 || GCM(k_c2h, static_c || sig_c)
//
//   dh            = X25519(e_c, e_h)                       (all-zero output is rejected)
//   h1            = SHA256("sb-hs1" || u32be(len prologue) || prologue || e_c || e_h)
//   k_c2h || k_h2c = HKDF-SHA256(ikm = dh, salt = h1, info = "sb handshake", 64 bytes)
//   sig_h         = Ed25519(host key, "sb-host-sig" || h1)
//   h2            = SHA256(h1 || static_h)
//   sig_c         = Ed25519(controller key, "sb-ctl-sig" || h2)
//   h3            = SHA256(h2 || static_c)                 (the handshake hash)
//   c2h || h2c    = HKDF-SHA256(ikm = dh, salt = h3, info = "sb traffic", 64 bytes)
//
// GCM(k, p) is AES-256-GCM with a 12-byte zero nonce (each handshake key seals exactly one
// payload), no associated data, output ciphertext || 16-byte tag. Identities travel encrypted
// under keys only the two DH parties hold, so a relay cannot swap in its own identity; each
// signature covers both ephemerals, so neither side can be impersonated; fresh ephemerals per
// handshake give forward secrecy.
import { createCipheriv, createDecipheriv, createHash, diffieHellman, hkdfSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import type { DeviceKeyPair } from './device-key.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifySignature } from './device-key.js';
import { publicKeyFromRaw, randomPrivateKey, rawPublicKey } from './raw-keys.js';
import { KEY_BYTES, SecureChannel, TAG_BYTES } from './secure-channel.js';

/** Longest prologue accepted; it is hashed once, the bound only catches misuse. */
export const MAX_PROLOGUE_BYTES = 64 * 1024; // bytes

const EPHEMERAL_BYTES = 32; // bytes, raw X25519 public key
const PAYLOAD_BYTES = PUBLIC_KEY_BYTES + SIGNATURE_BYTES; // bytes, static key || signature
const MSG1_BYTES = 1 + EPHEMERAL_BYTES;
const MSG2_BYTES = 1 + EPHEMERAL_BYTES + PAYLOAD_BYTES + TAG_BYTES;
const MSG3_BYTES = 1 + PAYLOAD_BYTES + TAG_BYTES;
const MESSAGE_BYTES = { 1: MSG1_BYTES, 2: MSG2_BYTES, 3: MSG3_BYTES } as const;

const LABEL_H1 = Buffer.from('sb-hs1');
const LABEL_HOST_SIG = Buffer.from('sb-host-sig');
const LABEL_CTL_SIG = Buffer.from('sb-ctl-sig');
const INFO_HANDSHAKE = Buffer.from('sb handshake');
const INFO_TRAFFIC = Buffer.from('sb traffic');

type ControllerState = 'new' | 'started' | 'received' | 'done' | 'failed';
type HostState = 'new' | 'responded' | 'done' | 'failed';

/** What a completed handshake proves and provides. */
export interface HandshakeResult {
  /** The peer's raw Ed25519 key, proven by its signature over this handshake. */
  readonly peerPublicKey: Buffer;
  /** Already keyed for this role's directions. */
  readonly channel: SecureChannel;
  /** h3: equal on both sides, so users can compare it out of band. */
  readonly handshakeHash: Buffer;
}

/** Options shared by both roles. */
export interface HandshakeOptions {
  /** This device's long-term identity. */
  key: DeviceKeyPair;
  /** Context both sides must agree on (protocol name, session id, ...); a mismatch fails the handshake. */
  prologue: Uint8Array;
}

/**
 * The initiator: the user attaching to a host.
 * @example
 * const hs = new ControllerHandshake({ key, prologue });
 * send(hs.start());
 * const { peerPublicKey } = hs.receive(await next()); // check pins here, before finish()
 * const { message, result } = hs.finish();
 * send(message);
 */
export class ControllerHandshake {
  readonly #key: DeviceKeyPair;
  readonly #prologue: Buffer;
  #state: ControllerState = 'new';
  #ephemeral: Ephemeral | undefined;
  #pending: (Pending & { peer: Buffer }) | undefined;

  constructor(options: HandshakeOptions) {
    [this.#key, this.#prologue] = validateOptions(options);
  }

  /** Returns msg1. */
  start(): Buffer {
    return this.#step('new', 'start()', () => {
      this.#ephemeral = newEphemeral();
      this.#state = 'started';
      return Buffer.concat([Buffer.of(1), this.#ephemeral.publicKey]);
    });
  }

  /**
   * Processes msg2. Returns the host's proven public key so the caller can check it against
   * pins BEFORE revealing its own identity; then call finish().
   */
  receive(msg2: Uint8Array): { peerPublicKey: Buffer } {
    return this.#step('started', 'receive()', () => {
      const ephemeral = this.#ephemeral as Ephemeral;
      const message = expectMessage(msg2, 2);
      const hostEphemeral = message.subarray(1, 1 + EPHEMERAL_BYTES);
      const dh = x25519(ephemeral.privateKey, hostEphemeral);
      const h1 = transcriptStart(this.#prologue, ephemeral.publicKey, hostEphemeral);
      const [keyC2h, keyH2c] = split(hkdf(dh, h1, INFO_HANDSHAKE, 2 * KEY_BYTES));
      const payload = openPayload(keyH2c, message.subarray(1 + EPHEMERAL_BYTES), 'msg2');
      wipe(keyH2c);
      const [hostKey, hostSig] = split(payload, PUBLIC_KEY_BYTES);
      if (!verifySignature(hostKey, Buffer.concat([LABEL_HOST_SIG, h1]), hostSig)) {
        throw fail('the host signature does not verify');
      }
      this.#ephemeral = undefined;
      this.#pending = { dh, keyC2h, h2: sha256(h1, hostKey), peer: hostKey };
      this.#state = 'received';
      return { peerPublicKey: Buffer.from(hostKey) };
    });
  }

  /** Signs the transcript and returns msg3 together with the keyed channel. */
  finish(): { message: Buffer; result: HandshakeResult } {
    return this.#step('received', 'finish()', () => {
      const { dh, h2, keyC2h, peer } = this.#pending as Pending & { peer: Buffer };
      const ownKey = this.#key.publicKey;
      const signature = this.#key.sign(Buffer.concat([LABEL_CTL_SIG, h2]));
      const message = Buffer.concat([Buffer.of(3), sealPayload(keyC2h, ownKey, signature)]);
      const h3 = sha256(h2, ownKey);
      const [c2h, h2c] = split(hkdf(dh, h3, INFO_TRAFFIC, 2 * KEY_BYTES));
      const channel = new SecureChannel(c2h, h2c);
      wipe(dh, keyC2h, c2h, h2c);
      this.#pending = undefined;
      this.#state = 'done';
      return { message, result: { peerPublicKey: Buffer.from(peer), channel, handshakeHash: h3 } };
    });
  }

  #step<T>(expected: ControllerState, call: string, body: () => T): T {
    return runStep(this.#state, expected, call, body, () => {
      this.#state = 'failed';
      this.#ephemeral = undefined;
      wipe(this.#pending?.dh, this.#pending?.keyC2h);
      this.#pending = undefined;
    });
  }
}

/**
 * The responder: the device that owns the terminal.
 * @example
 * const hs = new HostHandshake({ key, prologue });
 * send(hs.respond(msg1));
 * const { peerPublicKey, channel } = hs.receive(msg3); // then check peerPublicKey against pins
 */
export class HostHandshake {
  readonly #key: DeviceKeyPair;
  readonly #prologue: Buffer;
  #state: HostState = 'new';
  #pending: Pending | undefined;

  constructor(options: HandshakeOptions) {
    [this.#key, this.#prologue] = validateOptions(options);
  }

  /** Processes msg1 and returns msg2. */
  respond(msg1: Uint8Array): Buffer {
    return this.#step('new', 'respond()', () => {
      const controllerEphemeral = expectMessage(msg1, 1).subarray(1);
      const ephemeral = newEphemeral();
      const dh = x25519(ephemeral.privateKey, controllerEphemeral);
      const h1 = transcriptStart(this.#prologue, controllerEphemeral, ephemeral.publicKey);
      const [keyC2h, keyH2c] = split(hkdf(dh, h1, INFO_HANDSHAKE, 2 * KEY_BYTES));
      const ownKey = this.#key.publicKey;
      const signature = this.#key.sign(Buffer.concat([LABEL_HOST_SIG, h1]));
      const sealed = sealPayload(keyH2c, ownKey, signature);
      wipe(keyH2c);
      this.#pending = { dh, keyC2h, h2: sha256(h1, ownKey) };
      this.#state = 'responded';
      return Buffer.concat([Buffer.of(2), ephemeral.publicKey, sealed]);
    });
  }

  /** Processes msg3; returns the controller's proven key and the keyed channel. */
  receive(msg3: Uint8Array): HandshakeResult {
    return this.#step('responded', 'receive()', () => {
      const { dh, h2, keyC2h } = this.#pending as Pending;
      const payload = openPayload(keyC2h, expectMessage(msg3, 3).subarray(1), 'msg3');
      const [controllerKey, controllerSig] = split(payload, PUBLIC_KEY_BYTES);
      if (!verifySignature(controllerKey, Buffer.concat([LABEL_CTL_SIG, h2]), controllerSig)) {
        throw fail('the controller signature does not verify');
      }
      const h3 = sha256(h2, controllerKey);
      const [c2h, h2c] = split(hkdf(dh, h3, INFO_TRAFFIC, 2 * KEY_BYTES));
      const channel = new SecureChannel(h2c, c2h);
      wipe(dh, keyC2h, c2h, h2c);
      this.#pending = undefined;
      this.#state = 'done';
      return { peerPublicKey: Buffer.from(controllerKey), channel, handshakeHash: h3 };
    });
  }

  #step<T>(expected: HostState, call: string, body: () => T): T {
    return runStep(this.#state, expected, call, body, () => {
      this.#state = 'failed';
      wipe(this.#pending?.dh, this.#pending?.keyC2h);
      this.#pending = undefined;
    });
  }
}

/**
 * Which handshake message `message` is (1, 2 or 3), judged by its type byte and exact length;
 * undefined for anything else. Lets the app route the first frames of a session.
 */
export function handshakeStep(message: Uint8Array): 1 | 2 | 3 | undefined {
  const step = message[0];
  if (step !== 1 && step !== 2 && step !== 3) return undefined;
  return message.length === MESSAGE_BYTES[step] ? step : undefined;
}

/** Secrets kept between two steps: the DH output, the c2h handshake key and h2. */
interface Pending {
  dh: Buffer;
  keyC2h: Buffer;
  h2: Buffer;
}

interface Ephemeral {
  privateKey: KeyObject;
  publicKey: Buffer;
}

function validateOptions(options: HandshakeOptions): [DeviceKeyPair, Buffer] {
  const { key, prologue } = (options ?? {}) as Partial<HandshakeOptions>;
  if (!key || typeof key.sign !== 'function' || key.publicKey?.length !== PUBLIC_KEY_BYTES) {
    throw new TypeError('handshake option `key` must be a DeviceKeyPair');
  }
  if (!(prologue instanceof Uint8Array)) {
    throw new TypeError('handshake option `prologue` must be a Uint8Array');
  }
  if (prologue.length > MAX_PROLOGUE_BYTES) {
    throw new RangeError(`handshake prologue is at most ${MAX_PROLOGUE_BYTES} bytes`);
  }
  // Copied so a caller reusing its buffer cannot change what this handshake binds to.
  return [key, Buffer.from(prologue)];
}

/** Runs one step: refuses a call out of order, and on any failure marks the handshake dead. */
function runStep<S extends string, T>(
  state: S,
  expected: S,
  call: string,
  body: () => T,
  onFailure: () => void,
): T {
  try {
    if (state !== expected) {
      throw fail(
        state === 'failed'
          ? `${call}: this handshake already failed; start a new one`
          : `${call} called out of order (handshake is ${state})`,
      );
    }
    return body();
  } catch (err) {
    onFailure();
    if (err instanceof CryptoError && err.code === ErrorCode.HANDSHAKE_FAILED) throw err;
    throw new CryptoError(ErrorCode.HANDSHAKE_FAILED, `${call} failed`, { cause: err });
  }
}

function fail(message: string): CryptoError {
  return new CryptoError(ErrorCode.HANDSHAKE_FAILED, message);
}

function expectMessage(message: Uint8Array, step: 1 | 2 | 3): Buffer {
  if (!(message instanceof Uint8Array) || message.length === 0) {
    throw fail(`expected handshake message ${step}, got nothing`);
  }
  if (message[0] !== step) {
    throw fail(`expected handshake message ${step}, got type byte ${message[0]}`);
  }
  if (message.length !== MESSAGE_BYTES[step]) {
    throw fail(
      `handshake message ${step} must be ${MESSAGE_BYTES[step]} bytes, got ${message.length}`,
    );
  }
  return Buffer.from(message.buffer, message.byteOffset, message.length);
}

function newEphemeral(): Ephemeral {
  const privateKey = randomPrivateKey('x25519');
  return { privateKey, publicKey: rawPublicKey(privateKey) };
}

function x25519(privateKey: KeyObject, peerRaw: Buffer): Buffer {
  let peer: KeyObject;
  let shared: Buffer;
  try {
    peer = publicKeyFromRaw('x25519', peerRaw);
    shared = diffieHellman({ privateKey, publicKey: peer });
  } catch (err) {
    throw new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'the peer ephemeral key is not usable', {
      cause: err,
    });
  }
  // A low-order peer point yields zero whatever our key is; such a "secret" is known to anyone.
  if (shared.every((byte) => byte === 0)) throw fail('the peer ephemeral key is a low-order point');
  return shared;
}

function transcriptStart(prologue: Buffer, controllerEph: Buffer, hostEph: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(prologue.length);
  return sha256(LABEL_H1, length, prologue, controllerEph, hostEph);
}

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function hkdf(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** Splits at `at` (default: the middle) into two views of the same memory. */
function split(buffer: Buffer, at = buffer.length / 2): [Buffer, Buffer] {
  return [buffer.subarray(0, at), buffer.subarray(at)];
}

// Each handshake key seals exactly one payload, so a fixed zero nonce never repeats under a key.
const ZERO_NONCE = Buffer.alloc(12);

function sealPayload(key: Buffer, staticKey: Buffer, signature: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, ZERO_NONCE, { authTagLength: TAG_BYTES });
  const body = Buffer.concat([cipher.update(staticKey), cipher.update(signature), cipher.final()]);
  return Buffer.concat([body, cipher.getAuthTag()]);
}

function openPayload(key: Buffer, sealed: Buffer, name: string): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, ZERO_NONCE, { authTagLength: TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(PAYLOAD_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(0, PAYLOAD_BYTES)), decipher.final()]);
  } catch (err) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `${name} failed authentication (prologue mismatch, tampering, or a relay in the middle)`,
      { cause: err },
    );
  }
}

/** Best-effort: overwrite key material we no longer need (the GC may still hold copies). */
function wipe(...buffers: (Buffer | undefined)[]): void {
  for (const buffer of buffers) buffer?.fill(0);
}

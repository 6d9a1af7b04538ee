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
//
// Every primitive comes from a CryptoProvider (default: node:crypto in Node, @noble in the browser
// build), so this file runs unchanged in both; inputs and outputs are plain Uint8Array.
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { concatBytes, u32be, utf8 } from './bytes.js';
import { defaultCryptoProvider } from './default-provider.js';
import type { DeviceSigner } from './prekeys.js';
import { KEY_BYTES as RAW_KEY_BYTES, SIGNATURE_BYTES, type CryptoProvider } from './provider.js';
import { KEY_BYTES, SecureChannel, TAG_BYTES } from './secure-channel.js';

/** Longest prologue accepted; it is hashed once, the bound only catches misuse. */
export const MAX_PROLOGUE_BYTES = 64 * 1024; // bytes

const PUBLIC_KEY_BYTES = RAW_KEY_BYTES; // bytes, raw Ed25519 public key
const EPHEMERAL_BYTES = RAW_KEY_BYTES; // bytes, raw X25519 public key
const PAYLOAD_BYTES = PUBLIC_KEY_BYTES + SIGNATURE_BYTES; // bytes, static key || signature
const MSG1_BYTES = 1 + EPHEMERAL_BYTES;
const MSG2_BYTES = 1 + EPHEMERAL_BYTES + PAYLOAD_BYTES + TAG_BYTES;
const MSG3_BYTES = 1 + PAYLOAD_BYTES + TAG_BYTES;
const MESSAGE_BYTES = { 1: MSG1_BYTES, 2: MSG2_BYTES, 3: MSG3_BYTES } as const;

const LABEL_H1 = utf8('sb-hs1');
const LABEL_HOST_SIG = utf8('sb-host-sig');
const LABEL_CTL_SIG = utf8('sb-ctl-sig');
const INFO_HANDSHAKE = utf8('sb handshake');
const INFO_TRAFFIC = utf8('sb traffic');

type ControllerState = 'new' | 'started' | 'received' | 'signing' | 'done' | 'failed';
type HostState = 'new' | 'responded' | 'done' | 'failed';

/** What a completed handshake proves and provides. */
export interface HandshakeResult {
  /** The peer's raw Ed25519 key (32 bytes, a copy), proven by its signature over this handshake. */
  readonly peerPublicKey: Uint8Array;
  /** Already keyed for this role's directions, on the handshake's provider. */
  readonly channel: SecureChannel;
  /** h3 (32 bytes): equal on both sides, so users can compare it out of band. */
  readonly handshakeHash: Uint8Array;
}

/**
 * A device key that signs asynchronously: the page's non-extractable WebCrypto key. Only a
 * controller can use one (`ControllerHandshake.finishAsync`).
 */
export interface AsyncDeviceSigner {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  signAsync(data: Uint8Array): Promise<Uint8Array>;
}

/** Options shared by both roles. */
export interface HandshakeOptions {
  /** This device's long-term identity: a DeviceKeyPair in Node, a seedSigner or AsyncDeviceSigner in the browser. */
  key: DeviceSigner | AsyncDeviceSigner;
  /** Context both sides must agree on (protocol name, session id, ...); a mismatch fails the handshake. */
  prologue: Uint8Array;
  /** The primitives, for the handshake and its channel. Default: node:crypto in Node, @noble in the browser build. */
  provider?: CryptoProvider;
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
  readonly #key: DeviceSigner | AsyncDeviceSigner;
  readonly #prologue: Uint8Array;
  readonly #p: CryptoProvider;
  #state: ControllerState = 'new';
  #ephemeral: Ephemeral | undefined;
  #pending: (Pending & { peer: Uint8Array }) | undefined;

  constructor(options: HandshakeOptions) {
    [this.#key, this.#prologue, this.#p] = validateOptions(options, 'controller');
  }

  /** Returns msg1. */
  start(): Uint8Array {
    return this.#step('new', 'start()', () => {
      this.#ephemeral = newEphemeral(this.#p);
      this.#state = 'started';
      return concatBytes(Uint8Array.of(1), this.#ephemeral.publicKey);
    });
  }

  /**
   * Processes msg2. Returns the host's proven public key so the caller can check it against
   * pins BEFORE revealing its own identity; then call finish().
   */
  receive(msg2: Uint8Array): { peerPublicKey: Uint8Array } {
    return this.#step('started', 'receive()', () => {
      const p = this.#p;
      const ephemeral = this.#ephemeral as Ephemeral;
      const message = expectMessage(msg2, 2);
      const hostEphemeral = message.subarray(1, 1 + EPHEMERAL_BYTES);
      const dh = x25519(p, ephemeral.privateKey, hostEphemeral);
      wipe(ephemeral.privateKey);
      this.#ephemeral = undefined;
      const h1 = transcriptStart(p, this.#prologue, ephemeral.publicKey, hostEphemeral);
      const [keyC2h, keyH2c] = split(p.hkdfSha256(dh, h1, INFO_HANDSHAKE, 2 * KEY_BYTES));
      const payload = openPayload(p, keyH2c, message.subarray(1 + EPHEMERAL_BYTES), 'msg2');
      wipe(keyH2c);
      const [hostKey, hostSig] = split(payload, PUBLIC_KEY_BYTES);
      if (!p.ed25519Verify(hostKey, concatBytes(LABEL_HOST_SIG, h1), hostSig)) {
        throw fail('the host signature does not verify');
      }
      this.#pending = { dh, keyC2h, h2: p.sha256(h1, hostKey), peer: hostKey };
      this.#state = 'received';
      return { peerPublicKey: Uint8Array.from(hostKey) };
    });
  }

  /** Signs the transcript and returns msg3 together with the keyed channel. */
  finish(): { message: Uint8Array; result: HandshakeResult } {
    return this.#step('received', 'finish()', () => {
      const key = this.#key;
      if (!('sign' in key)) throw new TypeError('an AsyncDeviceSigner finishes with finishAsync()');
      return this.#seal(key.sign(this.#transcriptToSign()));
    });
  }

  /** As finish(), for any key: awaits its signature (a WebCrypto key signs asynchronously). */
  async finishAsync(): Promise<{ message: Uint8Array; result: HandshakeResult }> {
    const data = this.#step('received', 'finishAsync()', () => {
      this.#state = 'signing';
      return this.#transcriptToSign();
    });
    const key = this.#key;
    let signature: Uint8Array;
    try {
      signature = 'sign' in key ? key.sign(data) : await key.signAsync(data);
    } catch (err) {
      this.#abort();
      throw new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'the device key could not sign', {
        cause: err,
      });
    }
    return this.#step('signing', 'finishAsync()', () => this.#seal(signature));
  }

  #transcriptToSign(): Uint8Array {
    return concatBytes(LABEL_CTL_SIG, (this.#pending as Pending).h2);
  }

  /** msg3 and the keyed channel, with this device's signature over the transcript. */
  #seal(signature: Uint8Array): { message: Uint8Array; result: HandshakeResult } {
    const p = this.#p;
    const { dh, h2, keyC2h, peer } = this.#pending as Pending & { peer: Uint8Array };
    const ownKey = this.#key.publicKey;
    if (signature.length !== SIGNATURE_BYTES) throw fail('the device key gave no signature');
    const message = concatBytes(Uint8Array.of(3), sealPayload(p, keyC2h, ownKey, signature));
    const h3 = p.sha256(h2, ownKey);
    const [c2h, h2c] = split(p.hkdfSha256(dh, h3, INFO_TRAFFIC, 2 * KEY_BYTES));
    const channel = new SecureChannel(c2h, h2c, { provider: p });
    wipe(dh, keyC2h, c2h, h2c);
    this.#pending = undefined;
    this.#state = 'done';
    const result = {
      peerPublicKey: Uint8Array.from(peer),
      channel,
      handshakeHash: Uint8Array.from(h3),
    };
    return { message, result };
  }

  #step<T>(expected: ControllerState, call: string, body: () => T): T {
    return runStep(this.#state, expected, call, body, () => this.#abort());
  }

  /** Marks the handshake failed and wipes its secrets. */
  #abort(): void {
    this.#state = 'failed';
    wipe(this.#ephemeral?.privateKey);
    this.#ephemeral = undefined;
    wipe(this.#pending?.dh, this.#pending?.keyC2h);
    this.#pending = undefined;
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
  readonly #key: DeviceSigner;
  readonly #prologue: Uint8Array;
  readonly #p: CryptoProvider;
  #state: HostState = 'new';
  #pending: Pending | undefined;

  constructor(options: HandshakeOptions & { key: DeviceSigner }) {
    [this.#key, this.#prologue, this.#p] = validateOptions(options, 'host') as [
      DeviceSigner,
      Uint8Array,
      CryptoProvider,
    ];
  }

  /** Processes msg1 and returns msg2. */
  respond(msg1: Uint8Array): Uint8Array {
    return this.#step('new', 'respond()', () => {
      const p = this.#p;
      const controllerEphemeral = expectMessage(msg1, 1).subarray(1);
      const ephemeral = newEphemeral(p);
      let dh: Uint8Array;
      try {
        dh = x25519(p, ephemeral.privateKey, controllerEphemeral);
      } finally {
        wipe(ephemeral.privateKey);
      }
      const h1 = transcriptStart(p, this.#prologue, controllerEphemeral, ephemeral.publicKey);
      const [keyC2h, keyH2c] = split(p.hkdfSha256(dh, h1, INFO_HANDSHAKE, 2 * KEY_BYTES));
      const ownKey = this.#key.publicKey;
      const signature = this.#key.sign(concatBytes(LABEL_HOST_SIG, h1));
      const sealed = sealPayload(p, keyH2c, ownKey, signature);
      wipe(keyH2c);
      this.#pending = { dh, keyC2h, h2: p.sha256(h1, ownKey) };
      this.#state = 'responded';
      return concatBytes(Uint8Array.of(2), ephemeral.publicKey, sealed);
    });
  }

  /** Processes msg3; returns the controller's proven key and the keyed channel. */
  receive(msg3: Uint8Array): HandshakeResult {
    return this.#step('responded', 'receive()', () => {
      const p = this.#p;
      const { dh, h2, keyC2h } = this.#pending as Pending;
      const payload = openPayload(p, keyC2h, expectMessage(msg3, 3).subarray(1), 'msg3');
      const [controllerKey, controllerSig] = split(payload, PUBLIC_KEY_BYTES);
      if (!p.ed25519Verify(controllerKey, concatBytes(LABEL_CTL_SIG, h2), controllerSig)) {
        throw fail('the controller signature does not verify');
      }
      const h3 = p.sha256(h2, controllerKey);
      const [c2h, h2c] = split(p.hkdfSha256(dh, h3, INFO_TRAFFIC, 2 * KEY_BYTES));
      const channel = new SecureChannel(h2c, c2h, { provider: p });
      wipe(dh, keyC2h, c2h, h2c);
      this.#pending = undefined;
      this.#state = 'done';
      return {
        peerPublicKey: Uint8Array.from(controllerKey),
        channel,
        handshakeHash: Uint8Array.from(h3),
      };
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
  dh: Uint8Array;
  keyC2h: Uint8Array;
  h2: Uint8Array;
}

interface Ephemeral {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

function validateOptions(
  options: HandshakeOptions,
  role: 'controller' | 'host',
): [DeviceSigner | AsyncDeviceSigner, Uint8Array, CryptoProvider] {
  const {
    key,
    prologue,
    provider = defaultCryptoProvider,
  } = (options ?? {}) as Partial<HandshakeOptions>;
  const signs =
    typeof (key as DeviceSigner | undefined)?.sign === 'function' ||
    (role === 'controller' &&
      typeof (key as AsyncDeviceSigner | undefined)?.signAsync === 'function');
  if (!key || !signs || key.publicKey?.length !== PUBLIC_KEY_BYTES) {
    throw new TypeError(
      role === 'controller'
        ? 'handshake option `key` must be a DeviceSigner (a DeviceKeyPair) or an AsyncDeviceSigner'
        : 'handshake option `key` must be a DeviceSigner (a DeviceKeyPair)',
    );
  }
  if (!(prologue instanceof Uint8Array)) {
    throw new TypeError('handshake option `prologue` must be a Uint8Array');
  }
  if (prologue.length > MAX_PROLOGUE_BYTES) {
    throw new RangeError(`handshake prologue is at most ${MAX_PROLOGUE_BYTES} bytes`);
  }
  if (typeof provider?.x25519 !== 'function') {
    throw new TypeError('handshake option `provider` must be a CryptoProvider');
  }
  // Copied so a caller reusing its buffer cannot change what this handshake binds to.
  return [key, Uint8Array.from(prologue), provider];
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

function expectMessage(message: Uint8Array, step: 1 | 2 | 3): Uint8Array {
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
  return message;
}

function newEphemeral(p: CryptoProvider): Ephemeral {
  const privateKey = p.randomBytes(EPHEMERAL_BYTES);
  return { privateKey, publicKey: p.x25519PublicKey(privateKey) };
}

function x25519(p: CryptoProvider, privateKey: Uint8Array, peer: Uint8Array): Uint8Array {
  try {
    // The provider refuses an all-zero result: a low-order peer point yields zero whatever our
    // key is, and such a "secret" is known to anyone.
    return p.x25519(privateKey, peer);
  } catch (err) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      'the peer ephemeral key is not usable (a low-order point or malformed)',
      { cause: err },
    );
  }
}

function transcriptStart(
  p: CryptoProvider,
  prologue: Uint8Array,
  controllerEph: Uint8Array,
  hostEph: Uint8Array,
): Uint8Array {
  return p.sha256(LABEL_H1, u32be(prologue.length), prologue, controllerEph, hostEph);
}

/** Splits at `at` (default: the middle) into two views of the same memory. */
function split(bytes: Uint8Array, at = bytes.length / 2): [Uint8Array, Uint8Array] {
  return [bytes.subarray(0, at), bytes.subarray(at)];
}

// Each handshake key seals exactly one payload, so a fixed zero nonce never repeats under a key.
const ZERO_NONCE = new Uint8Array(12);

function sealPayload(
  p: CryptoProvider,
  key: Uint8Array,
  staticKey: Uint8Array,
  signature: Uint8Array,
): Uint8Array {
  return p.aes256GcmSeal(key, ZERO_NONCE, concatBytes(staticKey, signature));
}

function openPayload(
  p: CryptoProvider,
  key: Uint8Array,
  sealed: Uint8Array,
  name: string,
): Uint8Array {
  try {
    return p.aes256GcmOpen(key, ZERO_NONCE, sealed);
  } catch (err) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `${name} failed authentication (prologue mismatch, tampering, or a relay in the middle)`,
      { cause: err },
    );
  }
}

/** Best-effort: overwrite key material we no longer need (the GC may still hold copies). */
function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const buffer of buffers) buffer?.fill(0);
}

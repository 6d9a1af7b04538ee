// The end-to-end layer every service shares: the handshake over a transport, then sealed records.
//
// Both ends run the same steps whatever the service: the controller (who opened the channel)
// sends msg1, the host answers msg2, the controller msg3 (crypto/handshake.ts). Each checks
// that the key its peer proved is the one the relay announced and that it matches its pin
// (known_peers); then `SecureDuplex` carries the service's messages, sealed, in order.
import { ControllerHandshake, HostHandshake, type AsyncDeviceSigner } from '../crypto/handshake.js';
import type { DeviceSigner } from '../crypto/prekeys.js';
import type { SecureChannel } from '../crypto/secure-channel.js';
import { fromBase64, toBase64, toHex } from '../crypto/bytes.js';
import { keyFingerprint } from '../crypto/fingerprint.js';
import {
  CryptoError,
  ErrorCode,
  SessionError,
  SwitchboardError,
  isErrorCode,
} from '../protocol/errors.js';
import type { PeerInfo } from '../protocol/messages.js';
import type { ChannelHandlers, ChannelTransport } from './transport.js';

/** Records that may arrive before the service has set its handlers; more is a protocol error. */
export const MAX_EARLY_RECORDS = 64;

/**
 * Bytes both sides feed into the handshake, so a relay cannot splice a channel into another
 * session, service or pair of users. `v2`: records carry their sequence number (v1 peers could
 * complete a handshake with us and then fail on the first record; now they fail at once).
 */
export function channelPrologue(
  service: string,
  /** `targetKey` of the target: the session ID, `user:NAME` or `device:NAME:FP`. */
  target: string,
  hostUser: string,
  controllerUser: string,
): Uint8Array {
  return new TextEncoder().encode(
    `switchboard-e2e-v2\0${service}\0${target}\0${hostUser}\0${controllerUser}`,
  );
}

export interface E2EOptions {
  /** This device's key; an AsyncDeviceSigner (the page's WebCrypto key) only to open channels. */
  key: DeviceSigner | AsyncDeviceSigner;
  prologue: Uint8Array;
  /** Who the relay says is at the other end: the handshake must prove this key. */
  expected: PeerInfo;
  /**
   * Checks the proven peer (`expected`, its key now proven) against the pins: throws to refuse
   * (a PinError's `tellPeer` is what the other end is told), pins on first contact.
   */
  verifyPin(peer: PeerInfo): void;
  /** Give up (HANDSHAKE_FAILED) if the handshake is not done by then. */
  timeoutMs?: number;
}

/**
 * A sealed, ordered message stream over a transport: itself a ChannelTransport, carrying
 * plaintext. A record that fails to open ends the channel with DECRYPT_FAILED.
 */
export class SecureDuplex implements ChannelTransport {
  readonly peer: PeerInfo;
  /** Equal on both sides (hex): users may compare it out of band. */
  readonly handshakeHash: string;
  readonly #transport: ChannelTransport;
  readonly #secure: SecureChannel;
  #handlers: ChannelHandlers | undefined;
  #early: Uint8Array[] = [];
  #earlyClose: { code: string; reason: string } | undefined;
  /** onClose reaches a service at most once. */
  #closeDelivered = false;
  #closed = false;

  constructor(
    transport: ChannelTransport,
    secure: SecureChannel,
    peer: PeerInfo,
    handshakeHash: string,
  ) {
    this.#transport = transport;
    this.#secure = secure;
    this.peer = peer;
    this.handshakeHash = handshakeHash;
    transport.setHandlers({
      onMessage: (record) => this.#onRecord(record),
      onClose: (code, reason) => this.#onClose(code, reason),
    });
  }

  setHandlers(handlers: ChannelHandlers): void {
    this.#handlers = handlers;
    // Records that came first, in order, for as long as these stay the handlers (a service may
    // switch handlers from inside onMessage: the rest go to the new ones, none is lost).
    while (this.#early.length > 0 && this.#handlers === handlers)
      handlers.onMessage(this.#early.shift()!);
    if (this.#early.length > 0 || this.#handlers !== handlers) return;
    const close = this.#earlyClose;
    this.#earlyClose = undefined;
    if (close && !this.#closeDelivered) {
      this.#closeDelivered = true;
      handlers.onClose(close.code, close.reason);
    }
  }

  send(plaintext: Uint8Array): void {
    if (this.#closed || this.#transport.closed) return;
    this.#transport.send(this.#secure.seal(plaintext));
  }

  async close(reason: string, code?: ErrorCode): Promise<void> {
    this.#closed = true;
    await this.#transport.close(reason, code);
  }

  get bufferedAmount(): number {
    return this.#transport.bufferedAmount;
  }

  get closed(): boolean {
    return this.#closed || this.#transport.closed;
  }

  #onRecord(record: Uint8Array): void {
    if (this.#closed) return;
    let plaintext: Uint8Array;
    try {
      plaintext = this.#secure.open(record);
    } catch (err) {
      const error =
        err instanceof SwitchboardError
          ? err
          : new CryptoError(ErrorCode.DECRYPT_FAILED, 'a record failed to open');
      this.#fail(error.code, error.message);
      return;
    }
    if (this.#handlers && this.#early.length === 0) {
      this.#handlers.onMessage(plaintext);
      return;
    }
    if (this.#early.length >= MAX_EARLY_RECORDS) {
      this.#fail(ErrorCode.INVALID_MESSAGE, 'too many records before the service started');
      return;
    }
    this.#early.push(plaintext);
  }

  #fail(code: ErrorCode, reason: string): void {
    this.#closed = true;
    void this.#transport.close(reason, code);
    this.#onClose(code, reason);
  }

  #onClose(code: string, reason: string): void {
    if (this.#closeDelivered) return;
    if (this.#handlers && this.#early.length === 0) {
      this.#closeDelivered = true;
      this.#handlers.onClose(code, reason);
    } else {
      this.#earlyClose ??= { code, reason };
    }
  }
}

/** The opener's side: sends msg1, checks msg2, sends msg3; resolves with the sealed duplex. */
export function connectE2E(transport: ChannelTransport, o: E2EOptions): Promise<SecureDuplex> {
  const handshake = new ControllerHandshake({ key: o.key, prologue: o.prologue });
  return run(
    transport,
    o,
    (payload, done) => {
      const { peerPublicKey } = handshake.receive(payload);
      checkProven(o, toBase64(peerPublicKey), 'host');
      const send = ({ message, result }: ReturnType<ControllerHandshake['finish']>): void => {
        if (transport.closed) return; // failed or timed out while the key was signing
        transport.send(message);
        done(result.channel, toHex(result.handshakeHash));
      };
      if ('sign' in o.key) return send(handshake.finish());
      return handshake.finishAsync().then(send);
    },
    () => transport.send(handshake.start()),
  );
}

/** The served side: answers msg1, checks msg3; resolves with the sealed duplex. */
export function acceptE2E(
  transport: ChannelTransport,
  o: E2EOptions & { key: DeviceSigner },
): Promise<SecureDuplex> {
  const handshake = new HostHandshake({ key: o.key, prologue: o.prologue });
  let responded = false;
  return run(transport, o, (payload, done) => {
    if (!responded) {
      responded = true;
      transport.send(handshake.respond(payload));
      return;
    }
    const result = handshake.receive(payload);
    checkProven(o, toBase64(result.peerPublicKey), 'controller');
    done(result.channel, toHex(result.handshakeHash));
  });
}

function checkProven(o: E2EOptions, proven: string, role: 'host' | 'controller'): void {
  if (proven !== o.expected.publicKey) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `the ${role} proved a different key than the relay announced: the relay may be tampering`,
    );
  }
  // What people compare (the approval prompt, the terminal's facts line) is the fingerprint: it
  // must be the proven key's, not a label the relay chose.
  if (o.expected.fingerprint !== keyFingerprint(fromBase64(proven))) {
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `the relay announced the ${role}'s key under another key's fingerprint: the relay may be tampering`,
    );
  }
  o.verifyPin(o.expected);
}

/** Drives one side's handshake steps over the transport until `done` or a failure. */
function run(
  transport: ChannelTransport,
  o: E2EOptions,
  /** One handshake message; may finish asynchronously (a key that signs asynchronously). */
  step: (
    payload: Uint8Array,
    done: (secure: SecureChannel, hash: string) => void,
  ) => void | Promise<void>,
  start?: () => void,
): Promise<SecureDuplex> {
  return new Promise<SecureDuplex>((resolve, reject) => {
    let settled = false;
    let busy = false;
    const timer =
      o.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              fail(
                new CryptoError(
                  ErrorCode.HANDSHAKE_FAILED,
                  'the end-to-end handshake took too long',
                ),
              ),
            o.timeoutMs,
          );
    // In Node the timer alone does not hold the process open (a browser's timer is a number).
    (timer as { unref?(): void } | undefined)?.unref?.();
    const fail = (err: SwitchboardError, tell = true): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // The other end is told the first line, or what a refusal meant for it (PinError).
      const told =
        'tellPeer' in err && typeof err.tellPeer === 'string' ? err.tellPeer : err.message;
      if (tell) void transport.close(told.split('\n')[0]!.slice(0, 256), err.code);
      reject(err);
    };
    transport.setHandlers({
      onMessage: (payload) => {
        if (settled) return;
        const failed = (err: unknown): void =>
          fail(
            err instanceof SwitchboardError
              ? err
              : new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'the end-to-end handshake failed'),
          );
        // Nothing may come while our own step is still signing: the peer waits for it.
        if (busy) return failed(new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'unexpected message'));
        try {
          const pending = step(payload, (secure, hash) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve(new SecureDuplex(transport, secure, o.expected, hash));
          });
          if (pending) {
            busy = true;
            pending.then(() => (busy = false), failed);
          }
        } catch (err) {
          failed(err);
        }
      },
      onClose: (code, reason) => {
        fail(new SessionError(isErrorCode(code) ? code : ErrorCode.CHANNEL_CLOSED, reason), false);
      },
    });
    start?.();
  });
}

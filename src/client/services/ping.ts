// The ping service, controller side: round trips through the end-to-end channel to a host.
//
// Wire (inside the E2E channel): ping = 0x01 || u32be seq || padding, pong = the same bytes
// with 0x02 first. The host echoes; the time is measured here, so the host's clock never matters.
import type { SecureDuplex } from '../../channel/e2e.js';
import { ErrorCode, SessionError } from '../../protocol/errors.js';

export const PingType = { PING: 0x01, PONG: 0x02 } as const;
/** Bytes of a ping's header: type and sequence number. */
export const PING_HEADER_BYTES = 5; // bytes
/** Largest ping (header included) a host answers; `ping -s` is capped to fit. */
export const PING_MAX_BYTES = 64 * 1024; // bytes
/** Default padding, as `ping` sends 56 data bytes. */
export const PING_DEFAULT_DATA_BYTES = 56; // bytes

/** One ping's outcome: its round trip in ms, or undefined if no pong came within the wait. */
export interface PingReply {
  seq: number;
  bytes: number;
  rttMs: number | undefined;
}

/**
 * Sends pings on an open `ping` channel and matches pongs by sequence number. A pong that
 * arrives after its wait is counted late (ignored), like `ping` does.
 */
export class Pinger {
  readonly #channel: SecureDuplex;
  readonly #waiting = new Map<
    number,
    { sentAt: number; waitMs: number; done: (rtt: number | undefined) => void }
  >();
  #closed: SessionError | undefined;
  #seq = 0;

  constructor(channel: SecureDuplex) {
    this.#channel = channel;
    channel.setHandlers({
      onMessage: (message) => this.#onPong(message),
      onClose: (code, reason) => {
        this.#closed = new SessionError(
          code === ErrorCode.CHANNEL_CLOSED ? ErrorCode.PEER_GONE : (code as ErrorCode),
          reason,
        );
        for (const [, w] of this.#waiting) w.done(undefined);
        this.#waiting.clear();
      },
    });
  }

  /** Why the channel ended, once it has. */
  get closed(): SessionError | undefined {
    return this.#closed;
  }

  /** Sends one ping with `dataBytes` of padding; resolves when its pong arrives or `waitMs` passes. */
  ping(dataBytes: number, waitMs: number): Promise<PingReply> {
    const seq = ++this.#seq >>> 0;
    const message = new Uint8Array(PING_HEADER_BYTES + dataBytes);
    message[0] = PingType.PING;
    new DataView(message.buffer).setUint32(1, seq);
    const bytes = message.length;
    if (this.#closed) return Promise.resolve({ seq, bytes, rttMs: undefined });
    return new Promise<PingReply>((resolve) => {
      const timer = setTimeout(() => done(undefined), waitMs);
      const done = (rttMs: number | undefined): void => {
        clearTimeout(timer);
        this.#waiting.delete(seq);
        resolve({ seq, bytes, rttMs });
      };
      this.#waiting.set(seq, { sentAt: performance.now(), waitMs, done });
      this.#channel.send(message);
    });
  }

  close(): Promise<void> {
    return this.#channel.close('ping done');
  }

  #onPong(message: Uint8Array): void {
    if (message.length < PING_HEADER_BYTES || message[0] !== PingType.PONG) return;
    const seq = new DataView(message.buffer, message.byteOffset, message.length).getUint32(1);
    const waiting = this.#waiting.get(seq);
    if (!waiting) return;
    const rtt = performance.now() - waiting.sentAt;
    // Past its wait (the timer had not run yet): late, and counted lost, as ping -W does.
    waiting.done(rtt <= waiting.waitMs ? rtt : undefined);
  }
}

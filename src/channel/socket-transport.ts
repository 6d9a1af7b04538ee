// A ChannelTransport over a TCP socket: the direct peer-to-peer path (client/direct.ts).
//
// Framing: u32be length || payload, each payload at most SOCKET_MAX_FRAME_BYTES. Nothing on it
// is trusted: a longer length closes the transport with FRAME_TOO_LARGE, a socket that ends
// (mid-frame or not) with PEER_GONE; more than MAX_EARLY_FRAMES before anyone reads them, with
// INVALID_MESSAGE. The close code stays local: TCP tells the peer only that the socket closed.
// What it carries is the E2E handshake and then sealed records (channel/e2e.ts), as over the relay.
import type { Socket } from 'node:net';
import { ErrorCode } from '../protocol/errors.js';
import { MAX_RECORD_PLAINTEXT, RECORD_OVERHEAD } from '../crypto/secure-channel.js';
import type { ChannelHandlers, ChannelTransport } from './transport.js';

/** Largest frame: one sealed record, and room for its envelope. */
export const SOCKET_MAX_FRAME_BYTES = MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD + 64; // bytes
const LENGTH_BYTES = 4;
/** Frames kept while nobody reads them (between the token and the handshake taking over). */
export const MAX_EARLY_FRAMES = 16;

export class SocketTransport implements ChannelTransport {
  readonly socket: Socket;
  #handlers: ChannelHandlers | undefined;
  #early: Uint8Array[] = [];
  #closeInfo: { code: string; reason: string } | undefined;
  #closeDelivered = false;
  #buffer: Buffer = Buffer.alloc(0);

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.#ended(ErrorCode.PEER_GONE, 'the direct connection closed'));
  }

  setHandlers(handlers: ChannelHandlers): void {
    this.#handlers = handlers;
    while (this.#early.length > 0 && this.#handlers === handlers)
      handlers.onMessage(this.#early.shift()!);
    this.#deliverClose();
  }

  /** Frames that arrive from now on are kept until the next `setHandlers`. */
  hold(): void {
    this.#handlers = undefined;
  }

  send(payload: Uint8Array): void {
    if (this.closed) return;
    const head = Buffer.alloc(LENGTH_BYTES);
    head.writeUInt32BE(payload.length);
    this.socket.write(Buffer.concat([head, payload]));
  }

  async close(reason: string, code: ErrorCode = ErrorCode.CHANNEL_CLOSED): Promise<void> {
    this.#ended(code, reason);
    this.socket.end();
    // A peer that never reads must not hold the socket open.
    this.socket.destroySoon();
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  get closed(): boolean {
    return this.#closeInfo !== undefined || this.socket.destroyed;
  }

  #onData(chunk: Buffer): void {
    if (this.#closeInfo) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= LENGTH_BYTES) {
      const length = this.#buffer.readUInt32BE(0);
      if (length > SOCKET_MAX_FRAME_BYTES) {
        this.#ended(ErrorCode.FRAME_TOO_LARGE, `a direct frame of ${length} bytes`);
        this.socket.destroy();
        return;
      }
      if (this.#buffer.length < LENGTH_BYTES + length) return;
      const payload = this.#buffer.subarray(LENGTH_BYTES, LENGTH_BYTES + length);
      this.#buffer = this.#buffer.subarray(LENGTH_BYTES + length);
      if (this.#handlers && this.#early.length === 0) this.#handlers.onMessage(payload);
      else if (this.#early.length < MAX_EARLY_FRAMES) this.#early.push(payload);
      else {
        this.#ended(ErrorCode.INVALID_MESSAGE, 'too many frames before the handshake took them');
        this.socket.destroy();
        return;
      }
      if (this.#closeInfo) return;
    }
  }

  #ended(code: string, reason: string): void {
    this.#closeInfo ??= { code, reason };
    this.#deliverClose();
  }

  #deliverClose(): void {
    if (!this.#closeInfo || this.#closeDelivered || !this.#handlers || this.#early.length > 0)
      return;
    this.#closeDelivered = true;
    this.#handlers.onClose(this.#closeInfo.code, this.#closeInfo.reason);
  }
}

// A channel through the relay as a ChannelTransport: the first implementation of the seam.
import type { ChannelHandlers, ChannelTransport } from '../channel/transport.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { RelayConnection } from './relay-connection.js';

export class RelayChannel implements ChannelTransport {
  readonly client: RelayConnection;
  readonly channel: number;
  #closed = false;

  /** Data for the channel is dropped until `setHandlers`: call it before asking the peer to send. */
  constructor(client: RelayConnection, channel: number) {
    this.client = client;
    this.channel = channel;
  }

  setHandlers(handlers: ChannelHandlers): void {
    this.client.bindChannel(this.channel, {
      onData: (payload) => handlers.onMessage(payload),
      onClose: (code, reason) => {
        this.#closed = true;
        handlers.onClose(code, reason);
      },
    });
  }

  send(payload: Uint8Array): void {
    if (!this.#closed) this.client.sendData(this.channel, payload);
  }

  async close(reason: string, code?: ErrorCode): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.client.closeChannel(this.channel, reason, code);
  }

  get bufferedAmount(): number {
    return this.client.bufferedAmount;
  }

  get closed(): boolean {
    return this.#closed || this.client.closed;
  }
}

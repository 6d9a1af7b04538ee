// The channels of one relay connection and where their traffic goes: what RelayClient (Node) and
// WebRelay (the page) both keep, so the two route data and closes the same way.
import type { ChannelHandler } from './relay-connection.js';

/** Closes of channels not bound yet kept for a late `bind` (the newest this many). */
export const UNBOUND_CLOSES_KEPT = 64;

export class ChannelTable {
  readonly #handlers = new Map<number, ChannelHandler>();
  /**
   * `channel.closed` for channels nobody has bound yet (the close can arrive in the same read as
   * the reply that named the channel), kept for `bind`.
   */
  readonly #unboundCloses = new Map<number, { code: string; reason: string }>();

  /** Registers a channel's handler; a close that came first reaches it on the next microtask. */
  bind(channel: number, handler: ChannelHandler): void {
    const closed = this.#unboundCloses.get(channel);
    if (closed) {
      this.#unboundCloses.delete(channel);
      queueMicrotask(() => handler.onClose(closed.code, closed.reason));
      return;
    }
    this.#handlers.set(channel, handler);
  }

  /** Forgets a channel: its later traffic is dropped. */
  unbind(channel: number): void {
    this.#handlers.delete(channel);
  }

  /** A data frame for `channel` (dropped if nobody is bound). */
  data(channel: number, payload: Uint8Array): void {
    this.#handlers.get(channel)?.onData(payload);
  }

  /** The relay closed `channel`: its handler hears it, or the close waits for a `bind`. */
  closed(channel: number, code: string, reason: string): void {
    const handler = this.#handlers.get(channel);
    this.#handlers.delete(channel);
    if (handler) return handler.onClose(code, reason);
    this.#unboundCloses.set(channel, { code, reason });
    const oldest = this.#unboundCloses.keys().next().value;
    if (this.#unboundCloses.size > UNBOUND_CLOSES_KEPT && oldest !== undefined)
      this.#unboundCloses.delete(oldest);
  }

  /** The connection ended: every bound channel hears it, with `code`. */
  closeAll(code: string, reason: string): void {
    for (const [channel, handler] of this.#handlers) {
      this.#handlers.delete(channel);
      handler.onClose(code, reason);
    }
  }
}

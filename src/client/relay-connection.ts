// What channels and services need of a logged-in relay connection. Two implement it: the CLI's
// RelayClient (ws over TLS or plaintext, Node) and the page's WebRelay (the browser's WebSocket),
// so the E2E handshake, `openService` and terminals (AttachSession) run unchanged in both.
import type { ErrorCode } from '../protocol/errors.js';
import type { Params, RelayEvent, RequestType, Results } from '../protocol/messages.js';

/** Where a channel's traffic goes once bound. */
export interface ChannelHandler {
  onData(payload: Uint8Array): void;
  onClose(code: string, reason: string): void;
}

export interface RelayConnection {
  /** A typed request; rejects with the relay's code (a SwitchboardError) or CONNECTION_CLOSED. */
  request<T extends RequestType>(type: T, params: Params<T>): Promise<Results[T]>;
  /** Registers the handler for a channel the relay assigned; a close that came first is delivered. */
  bindChannel(channel: number, handler: ChannelHandler): void;
  sendData(channel: number, payload: Uint8Array): void;
  /** Closes a channel; the relay tells the other side, with `code` (default CHANNEL_CLOSED). */
  closeChannel(channel: number, reason: string, code?: ErrorCode): Promise<void>;
  /** Bytes queued for the relay: callers use it to apply backpressure. */
  readonly bufferedAmount: number;
  readonly closed: boolean;
  close(): void;
  /** Calls `listener` once when the connection ends; returns the function that cancels it. */
  onClosed(listener: (reason: string) => void): () => void;
  /** Calls `listener` with every event the relay pushes (messages, broadcasts, channel opens…), in order; returns the function that cancels it. */
  onEvent(listener: (event: RelayEvent) => void): () => void;
}

/**
 * Asks the relay to close `channel` (it tells the other side, with `code`), the reason cut to
 * what the relay accepts; a connection already gone has nothing to close.
 */
export async function requestChannelClose(
  conn: RelayConnection,
  channel: number,
  reason: string,
  code?: ErrorCode,
): Promise<void> {
  await conn
    .request('channel.close', { channel, reason: reason.slice(0, 256), ...(code ? { code } : {}) })
    .catch(() => undefined);
}

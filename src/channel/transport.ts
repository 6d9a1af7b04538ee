// The transport seam: what a service's logic needs from whatever carries its channel.
import type { ErrorCode } from '../protocol/errors.js';

/** Where a transport delivers what arrives. */
export interface ChannelHandlers {
  /** One message, whole and in order. */
  onMessage(payload: Uint8Array): void;
  /** The channel ended (`code` is an ErrorCode, or one a peer sent); called at most once. */
  onClose(code: string, reason: string): void;
}

/**
 * A message-oriented duplex carrying one channel: the relay (`client/relay-channel.ts`) today,
 * a direct peer-to-peer connection or a browser WebSocket later. The E2E layer
 * (`channel/e2e.ts`) is built on one and is one itself, so services never see which carries them.
 */
export interface ChannelTransport {
  /**
   * Sets where messages and the close go. Call it before the peer can send (the relay channel
   * drops data for a channel nobody handles yet, but keeps its close, delivered here).
   */
  setHandlers(handlers: ChannelHandlers): void;
  /** Queues one message; after the close it is dropped. */
  send(payload: Uint8Array): void;
  /** Ends the channel; the other side is told `code` (default CHANNEL_CLOSED) and `reason`. */
  close(reason: string, code?: ErrorCode): Promise<void>;
  /** Bytes queued toward the other side and not yet written: senders apply backpressure on it. */
  readonly bufferedAmount: number;
  readonly closed: boolean;
}

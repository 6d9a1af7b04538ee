// One client's WebSocket on the relay: framing, limits, rate and abuse accounting, channel table.
import type { WebSocket } from 'ws';
import { encodeControl, encodeData } from '../protocol/codec.js';
import type { SwitchboardError } from '../protocol/errors.js';
import {
  CLOSE_TIMEOUT_MS,
  CONTROL_BURST,
  CONTROL_RATE_PER_SEC,
  ERROR_WINDOW_MS,
  HARD_MAX_QUEUED_BYTES,
  MAX_CHANNELS_PER_CONNECTION,
  MAX_PROTOCOL_ERRORS,
  MAX_QUEUED_BYTES,
  SLOW_PEER_GRACE_MS,
} from '../protocol/limits.js';
import type { RelayEvent, Transport } from '../protocol/messages.js';
import type { Authenticated } from './auth-service.js';
import type { Caller } from './caller.js';
import type { Logger } from './logger.js';

/** One end of a routed channel, as seen from the connection that owns it. */
export interface Route {
  owner: Connection;
  channel: number;
  peer: Connection;
  peerChannel: number;
  /** Where the opener aimed (`targetKey`: a session ID, `user:NAME` or `device:NAME:FP`). */
  target: string;
  /** What the channel carries (`terminal`, `ping`...): metadata the relay may log. */
  service: string;
  role: 'host' | 'controller';
  /** Bytes this end sent into the channel (metadata the relay may log; never content). */
  bytesIn: number;
  openedAt: number;
}

/** WebSocket close codes the relay uses. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
} as const;

/** Why the relay cut a connection without a close handshake. */
export type CutReason = 'slow_reader' | 'queue_overflow';

export interface ConnectionOptions {
  /** Time a connection that got SLOW_PEER has to drain below MAX_QUEUED_BYTES. Default 5 s. */
  slowPeerGraceMs?: number;
  /** Time the peer has to answer the relay's close frame before it is cut. Default 2 s. */
  closeTimeoutMs?: number;
  /** Channels the connection may hold at once. Default MAX_CHANNELS_PER_CONNECTION. */
  maxChannels?: number;
  /** The listener the connection came in on. Default 'tls'. */
  transport?: Transport;
  /** Told whenever the relay cuts this connection for not reading (metrics). */
  onCut?: (reason: CutReason) => void;
}

let nextConnectionId = 1;

export class Connection implements Caller {
  readonly id = nextConnectionId++;
  readonly ws: WebSocket;
  readonly address: string;
  readonly transport: Transport;
  readonly log: Logger;
  readonly openedAt: number;
  helloDone = false;
  /** What `hello` negotiated (CAPABILITIES both sides support). */
  capabilities: ReadonlySet<string> = new Set();
  /** Last time this connection refreshed its token's idle timer. */
  touchedAt = 0;
  auth: Authenticated | undefined;
  /** The random bytes of this connection's hello reply; a device signs them to prove itself. */
  challenge: Buffer | undefined;
  /** Cleared by the heartbeat, set only by a pong: any other inbound message proves nothing. */
  alive = true;
  /** Set once the relay or the peer starts closing: no further inbound frame is processed. */
  closed = false;
  readonly channels = new Map<number, Route>();
  /** Services this connection serves to channels aimed at its user or device (`services.offer`). */
  offered: ReadonlySet<string> = new Set();
  #nextChannel = 1;
  #tokens = CONTROL_BURST;
  #tokensAt: number;
  /** Times of the last MAX_PROTOCOL_ERRORS protocol errors, oldest first (a fixed-size window). */
  readonly #errors: number[] = [];
  #closeTimer: NodeJS.Timeout | undefined;
  #slowTimer: NodeJS.Timeout | undefined;
  readonly #slowPeerGraceMs: number;
  readonly #closeTimeoutMs: number;
  readonly #maxChannels: number;
  readonly #onCut: (reason: CutReason) => void;

  /** `log` is the relay's logger; the connection logs through a child tagged with its id. */
  constructor(
    ws: WebSocket,
    address: string,
    log: Logger,
    now: number,
    options: ConnectionOptions = {},
  ) {
    this.ws = ws;
    this.#slowPeerGraceMs = options.slowPeerGraceMs ?? SLOW_PEER_GRACE_MS;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    this.#maxChannels = options.maxChannels ?? MAX_CHANNELS_PER_CONNECTION;
    this.#onCut = options.onCut ?? (() => undefined);
    this.address = address;
    this.transport = options.transport ?? 'tls';
    this.log = log.child({ conn: this.id });
    this.openedAt = now;
    this.#tokensAt = now;
  }

  /** Allocates a channel id unique on this connection, or undefined when at the limit. */
  allocateChannel(): number | undefined {
    if (this.channels.size >= this.#maxChannels) return undefined;
    while (this.channels.has(this.#nextChannel))
      this.#nextChannel = (this.#nextChannel % 0xfffffffe) + 1;
    const id = this.#nextChannel;
    this.#nextChannel = (this.#nextChannel % 0xfffffffe) + 1;
    return id;
  }

  /** Token bucket over control messages; false means over the rate. */
  takeToken(now: number): boolean {
    return this.takeTokens(now, 1);
  }

  /** Takes `n` tokens at once (a request that costs more than one message), or none. */
  takeTokens(now: number, n: number): boolean {
    this.#tokens = Math.min(
      CONTROL_BURST,
      this.#tokens + ((now - this.#tokensAt) / 1000) * CONTROL_RATE_PER_SEC,
    );
    this.#tokensAt = now;
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Counts a protocol error; true when the connection has now earned being closed. */
  countError(now: number): boolean {
    // Constant work per call: only the last MAX_PROTOCOL_ERRORS times matter.
    this.#errors.push(now);
    if (this.#errors.length > MAX_PROTOCOL_ERRORS) this.#errors.shift();
    const oldest = this.#errors[0] ?? now;
    return this.#errors.length >= MAX_PROTOCOL_ERRORS && now - oldest < ERROR_WINDOW_MS;
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  sendReply(id: number, result: unknown): void {
    this.#sendText(encodeControl({ type: 'reply', id, result }));
  }

  sendError(
    id: number | undefined,
    error: SwitchboardError | { code: string; message: string },
  ): void {
    const { retryAfterMs } = error as { retryAfterMs?: number };
    // Clients accept messages up to 1024 characters (ServerEnvelope): never send a longer one.
    const message =
      error.message.length > 1024 ? `${error.message.slice(0, 1023)}…` : error.message;
    const body =
      retryAfterMs === undefined
        ? { code: error.code, message }
        : { code: error.code, message, retryAfterMs };
    this.#sendText(
      encodeControl(id === undefined ? { type: 'error', ...body } : { type: 'error', id, ...body }),
    );
  }

  sendEvent(event: RelayEvent): void {
    this.#sendText(encodeControl(event));
  }

  sendData(channel: number, payload: Uint8Array): void {
    if (this.closed || !this.#roomFor(payload.length)) return;
    this.ws.send(encodeData(channel, payload), { binary: true });
  }

  #sendText(text: string): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN || !this.#roomFor(text.length)) return;
    this.ws.send(text);
  }

  /**
   * False, and the connection cut, when queuing `bytes` more would pass HARD_MAX_QUEUED_BYTES: a
   * peer that far behind is not reading, and cutting it is the only way to free what it holds.
   */
  #roomFor(bytes: number): boolean {
    if (this.ws.bufferedAmount + bytes <= HARD_MAX_QUEUED_BYTES) return true;
    this.#cut('queue_overflow');
    return false;
  }

  /**
   * Called when a channel toward this connection was closed with SLOW_PEER: what is already
   * queued stays in memory until the peer reads it, so a peer that does not drain below
   * MAX_QUEUED_BYTES within the grace period is cut and its queue freed.
   */
  markSlow(): void {
    if (this.#slowTimer || this.closed) return;
    this.#slowTimer = setTimeout(() => {
      this.#slowTimer = undefined;
      if (this.ws.bufferedAmount > MAX_QUEUED_BYTES) this.#cut('slow_reader');
    }, this.#slowPeerGraceMs);
    this.#slowTimer.unref();
  }

  #cut(reason: CutReason): void {
    if (this.ws.readyState === this.ws.CLOSED) return;
    this.log.info(
      { user: this.auth?.user.name, queued: this.ws.bufferedAmount, reason },
      'cutting a connection that stopped reading',
    );
    this.#onCut(reason);
    this.terminate();
  }

  /**
   * Starts the close handshake and stops processing this connection's frames. A peer that does
   * not answer the close within CLOSE_TIMEOUT_MS is cut, so a flood cannot keep it alive.
   */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
    this.#closeTimer = setTimeout(() => this.ws.terminate(), this.#closeTimeoutMs);
    this.#closeTimer.unref();
  }

  /** Drops the TCP connection at once, discarding whatever is queued toward the peer. */
  terminate(): void {
    this.closed = true;
    this.ws.terminate();
  }

  /** Called once the socket is gone: releases timers. */
  dispose(): void {
    this.closed = true;
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#slowTimer);
  }
}

// One client's WebSocket on the relay: framing, limits, rate and abuse accounting, channel table.
import type { WebSocket } from 'ws';
import { encodeControl, encodeData } from '../protocol/codec.js';
import type { SwitchboardError } from '../protocol/errors.js';
import {
  CONTROL_BURST,
  CONTROL_RATE_PER_SEC,
  ERROR_WINDOW_MS,
  MAX_CHANNELS_PER_CONNECTION,
  MAX_PROTOCOL_ERRORS,
} from '../protocol/limits.js';
import type { RelayEvent } from '../protocol/messages.js';
import type { Authenticated } from './auth-service.js';
import type { Logger } from './logger.js';

/** One end of a routed channel, as seen from the connection that owns it. */
export interface Route {
  owner: Connection;
  channel: number;
  peer: Connection;
  peerChannel: number;
  sessionId: string;
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

let nextConnectionId = 1;

export class Connection {
  readonly id = nextConnectionId++;
  readonly ws: WebSocket;
  readonly address: string;
  readonly log: Logger;
  readonly openedAt: number;
  helloDone = false;
  /** Last time this connection refreshed its token's idle timer. */
  touchedAt = 0;
  auth: Authenticated | undefined;
  /** Set by the heartbeat; a connection that misses a pong between two beats is dead. */
  alive = true;
  closed = false;
  readonly channels = new Map<number, Route>();
  #nextChannel = 1;
  #tokens = CONTROL_BURST;
  #tokensAt: number;
  #errors: number[] = [];

  /** `log` is the relay's logger; the connection logs through a child tagged with its id. */
  constructor(ws: WebSocket, address: string, log: Logger, now: number) {
    this.ws = ws;
    this.address = address;
    this.log = log.child({ conn: this.id });
    this.openedAt = now;
    this.#tokensAt = now;
  }

  /** Allocates a channel id unique on this connection, or undefined when at the limit. */
  allocateChannel(): number | undefined {
    if (this.channels.size >= MAX_CHANNELS_PER_CONNECTION) return undefined;
    while (this.channels.has(this.#nextChannel))
      this.#nextChannel = (this.#nextChannel % 0xfffffffe) + 1;
    const id = this.#nextChannel;
    this.#nextChannel = (this.#nextChannel % 0xfffffffe) + 1;
    return id;
  }

  /** Token bucket over control messages; false means over the rate. */
  takeToken(now: number): boolean {
    this.#tokens = Math.min(
      CONTROL_BURST,
      this.#tokens + ((now - this.#tokensAt) / 1000) * CONTROL_RATE_PER_SEC,
    );
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Counts a protocol error; true when the connection has now earned being closed. */
  countError(now: number): boolean {
    this.#errors = this.#errors.filter((t) => now - t < ERROR_WINDOW_MS);
    this.#errors.push(now);
    return this.#errors.length >= MAX_PROTOCOL_ERRORS;
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
    const body = { code: error.code, message: error.message };
    this.#sendText(
      encodeControl(id === undefined ? { type: 'error', ...body } : { type: 'error', id, ...body }),
    );
  }

  sendEvent(event: RelayEvent): void {
    this.#sendText(encodeControl(event));
  }

  sendData(channel: number, payload: Uint8Array): void {
    if (this.closed) return;
    this.ws.send(encodeData(channel, payload), { binary: true });
  }

  #sendText(text: string): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // Close reasons are limited to 123 bytes by RFC 6455.
    this.ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }
}

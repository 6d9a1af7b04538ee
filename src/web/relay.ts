// The page's connection to the relay that served it: the same WebSocket protocol as the CLI
// (protocol/codec.ts, protocol/messages.ts), over wss:// to this origin (the page's CSP allows
// no other), with typed requests, the relay's events, and channels (binary frames) — a
// RelayConnection, so terminals and services run over it as over the CLI's RelayClient.
import { decodeData, decodeServerMessage, encodeControl, encodeData } from '../protocol/codec.js';
import { ConnectError, ErrorCode, remoteError } from '../protocol/errors.js';
import {
  CAPABILITIES,
  HARD_MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  WS_PATH,
} from '../protocol/limits.js';
import type {
  Params,
  RelayEvent,
  RequestType,
  Results,
  ServerMessage,
} from '../protocol/messages.js';
import { fromBase64 } from '../crypto/bytes.js';
import { ChannelTable } from '../client/channel-table.js';
import {
  requestChannelClose,
  type ChannelHandler,
  type RelayConnection,
} from '../client/relay-connection.js';

/** The page's name in `hello` (the relay logs it). */
const CLIENT_NAME = 'switchboard-web/0.1.0';
/** Time the relay has to answer the connection and each request. */
const CONNECT_TIMEOUT_MS = 10_000; // ms
const REQUEST_TIMEOUT_MS = 30_000; // ms

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: number };

/** A connection silent for this many of the relay's heartbeat intervals is taken for dead. */
const SILENT_INTERVALS = 2;

export class WebRelay implements RelayConnection {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(event: RelayEvent) => void>();
  readonly #closeListeners = new Set<(reason: string) => void>();
  readonly #channels = new ChannelTable();
  #nextId = 1;
  #closed: string | undefined;
  /** When the relay was last heard from (any frame), and the liveness check's timer. */
  #heard = Date.now();
  #heartbeat: number | undefined;
  /** This connection's hello challenge (what a device signs), and who may sign up. */
  challenge: Uint8Array = new Uint8Array();
  signup: 'open' | 'invite' | 'closed' | undefined;
  minPassword: number | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => {
      this.#heard = Date.now();
      this.#receive(e.data);
    };
    ws.onclose = (e) => this.#end(e.reason || `the connection to the relay closed (${e.code})`);
  }

  /** Opens wss://THIS-HOST/v1/ws and says hello. */
  static async connect(): Promise<WebRelay> {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${WS_PATH}`);
    await new Promise<void>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        ws.close();
        reject(
          new ConnectError(
            ErrorCode.CONNECT_FAILED,
            `no answer from ${location.host} within ${CONNECT_TIMEOUT_MS / 1000} s`,
          ),
        );
      }, CONNECT_TIMEOUT_MS);
      ws.onopen = () => {
        window.clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        window.clearTimeout(timer);
        reject(
          new ConnectError(ErrorCode.CONNECT_FAILED, `cannot reach the relay at ${location.host}`),
        );
      };
    });
    const relay = new WebRelay(ws);
    let hello: Results['hello'];
    try {
      hello = await relay.request('hello', {
        version: PROTOCOL_VERSION,
        client: CLIENT_NAME,
        capabilities: [...CAPABILITIES],
      });
    } catch (err) {
      relay.close(); // not left open behind a refused or unanswered hello
      throw err;
    }
    relay.#watch(hello.heartbeatMs);
    relay.challenge =
      typeof hello.challenge === 'string' ? fromBase64(hello.challenge) : relay.challenge;
    relay.signup = hello.signup;
    relay.minPassword = hello.minPassword;
    return relay;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  request<T extends RequestType>(type: T, params: Params<T>): Promise<Results[T]> {
    // Closing already (the relay said goodbye, the page closed it): nothing more is sent.
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN)
      return Promise.reject(
        new ConnectError(ErrorCode.CONNECTION_CLOSED, this.#closed ?? 'the connection is closing'),
      );
    const id = this.#nextId++;
    return new Promise<Results[T]>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.#pending.delete(id);
        reject(new ConnectError(ErrorCode.TIMEOUT, `the relay did not answer "${type}" in time`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#ws.send(encodeControl({ ...params, type, id }));
    });
  }

  /** Events the relay pushes (presence, messages, channel opens…); returns the unsubscriber. */
  listen(listener: (event: RelayEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** RelayConnection's name for `listen` (the messaging engine subscribes so). */
  onEvent(listener: (event: RelayEvent) => void): () => void {
    return this.listen(listener);
  }

  onClosed(listener: (reason: string) => void): () => void {
    if (this.#closed !== undefined) {
      const reason = this.#closed;
      queueMicrotask(() => listener(reason));
      return () => undefined;
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  bindChannel(channel: number, handler: ChannelHandler): void {
    this.#channels.bind(channel, handler);
  }

  sendData(channel: number, payload: Uint8Array): void {
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(encodeData(channel, payload));
  }

  async closeChannel(channel: number, reason: string, code?: ErrorCode): Promise<void> {
    this.#channels.unbind(channel);
    if (this.#closed) return;
    await requestChannelClose(this, channel, reason, code);
  }

  close(): void {
    this.#ws.close(1000, 'bye');
    this.#end('closed by the page');
  }

  #receive(data: unknown): void {
    if (data instanceof ArrayBuffer) {
      const frame = decodeData(new Uint8Array(data), HARD_MAX_FRAME_BYTES);
      if (frame.ok) this.#channels.data(frame.value.channel, frame.value.payload);
      return;
    }
    if (typeof data !== 'string') return;
    const decoded = decodeServerMessage(data);
    if (!decoded.ok) return; // an event this page does not know, or a malformed frame
    const message: ServerMessage = decoded.value;
    if (message.type === 'reply' || message.type === 'error') {
      const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id!);
      window.clearTimeout(pending.timer);
      if (message.type === 'reply') pending.resolve(message.result);
      else pending.reject(remoteError(message));
      return;
    }
    if (message.type === 'channel.closed')
      this.#channels.closed(message.channel, message.code, message.reason);
    for (const listener of [...this.#listeners]) listener(message as RelayEvent);
  }

  /**
   * A page cannot see the WebSocket's pings, and a connection the network dropped silently (a
   * laptop asleep, Wi-Fi changed) can look open for minutes: each heartbeat interval the relay
   * named in `hello`, a connection silent for that long is asked something small (`info`), and
   * one silent for SILENT_INTERVALS of them is ended, so terminals reconnect and resume.
   */
  #watch(heartbeatMs: number): void {
    const every = Math.max(1_000, heartbeatMs);
    this.#heartbeat = window.setInterval(() => {
      const silent = Date.now() - this.#heard;
      if (silent >= SILENT_INTERVALS * every) {
        this.#end(`no answer from the relay in ${Math.round(silent / 1000)} s`);
        this.#ws.close();
      } else if (silent >= every) {
        this.request('info', {}).catch(() => undefined);
      }
    }, every);
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.#closed = reason;
    window.clearInterval(this.#heartbeat);
    for (const { reject, timer } of this.#pending.values()) {
      window.clearTimeout(timer);
      reject(new ConnectError(ErrorCode.CONNECTION_CLOSED, reason));
    }
    this.#pending.clear();
    this.#channels.closeAll(ErrorCode.CONNECTION_CLOSED, reason);
    for (const listener of [...this.#closeListeners]) listener(reason);
    this.#closeListeners.clear();
  }
}

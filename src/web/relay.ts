// The page's connection to the relay that served it: the same WebSocket protocol as the CLI
// (protocol/codec.ts, protocol/messages.ts), over wss:// to this origin (the page's CSP allows
// no other), with typed requests and the relay's events.
import { decodeServerMessage, encodeControl } from '../protocol/codec.js';
import { CAPABILITIES, PROTOCOL_VERSION, WS_PATH } from '../protocol/limits.js';
import type { Params, RequestType, Results, ServerMessage } from '../protocol/messages.js';
import { fromBase64 } from '../crypto/bytes.js';

/** The page's name in `hello` (the relay logs it). */
const CLIENT_NAME = 'switchboard-web/0.1.0';
/** Time the relay has to answer the connection and each request. */
const CONNECT_TIMEOUT_MS = 10_000; // ms
const REQUEST_TIMEOUT_MS = 30_000; // ms

/** A refusal from the relay: its stable code and message. */
export class RelayError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: number };
type RelayEvent = Exclude<ServerMessage, { type: 'reply' } | { type: 'error' }>;

export class WebRelay {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(event: RelayEvent) => void>();
  #nextId = 1;
  #closed: string | undefined;
  /** This connection's hello challenge (what a device signs), and who may sign up. */
  challenge: Uint8Array = new Uint8Array();
  signup: 'open' | 'invite' | 'closed' | undefined;
  minPassword: number | undefined;
  /** Called once when the connection ends, with why. */
  onclose: ((reason: string) => void) | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => this.#receive(e.data);
    ws.onclose = (e) => this.#end(e.reason || `the connection to the relay closed (${e.code})`);
  }

  /** Opens wss://THIS-HOST/v1/ws and says hello. */
  static async connect(): Promise<WebRelay> {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${WS_PATH}`);
    await new Promise<void>((resolve, reject) => {
      const timer = window.setTimeout(
        () =>
          reject(
            new Error(`no answer from ${location.host} within ${CONNECT_TIMEOUT_MS / 1000} s`),
          ),
        CONNECT_TIMEOUT_MS,
      );
      ws.onopen = () => {
        window.clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        window.clearTimeout(timer);
        reject(new Error(`cannot reach the relay at ${location.host}`));
      };
    });
    const relay = new WebRelay(ws);
    const hello = await relay.request('hello', {
      version: PROTOCOL_VERSION,
      client: CLIENT_NAME,
      capabilities: [...CAPABILITIES],
    });
    relay.challenge =
      typeof hello.challenge === 'string' ? fromBase64(hello.challenge) : relay.challenge;
    relay.signup = hello.signup;
    relay.minPassword = hello.minPassword;
    return relay;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  request<T extends RequestType>(type: T, params: Params<T>): Promise<Results[T]> {
    if (this.#closed) return Promise.reject(new RelayError('CONNECTION_CLOSED', this.#closed));
    const id = this.#nextId++;
    return new Promise<Results[T]>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.#pending.delete(id);
        reject(new RelayError('TIMEOUT', `the relay did not answer "${type}" in time`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#ws.send(encodeControl({ ...params, type, id }));
    });
  }

  /** Events the relay pushes (presence, messages, channel traffic…); returns the unsubscriber. */
  listen(listener: (event: RelayEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#ws.close(1000, 'bye');
    this.#end('closed by the page');
  }

  #receive(data: unknown): void {
    if (typeof data !== 'string') return; // binary frames are channel data: not used yet
    const decoded = decodeServerMessage(data);
    if (!decoded.ok) return; // an event this page does not know, or a malformed frame
    const message = decoded.value;
    if (message.type === 'reply' || message.type === 'error') {
      const pending = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id!);
      window.clearTimeout(pending.timer);
      if (message.type === 'reply') pending.resolve(message.result);
      else pending.reject(new RelayError(message.code, message.message));
      return;
    }
    for (const listener of this.#listeners) listener(message as RelayEvent);
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.#closed = reason;
    for (const { reject, timer } of this.#pending.values()) {
      window.clearTimeout(timer);
      reject(new RelayError('CONNECTION_CLOSED', reason));
    }
    this.#pending.clear();
    this.onclose?.(reason);
  }
}

// A client connection to the relay: typed requests and replies, events, and channel data.
import { certFingerprint } from '../crypto/cert-fingerprint.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { deviceAuthBinding, signDeviceAuth } from '../crypto/login-proof.js';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import { decodeData, decodeServerMessage, encodeControl, encodeData } from '../protocol/codec.js';
import { ConnectError, ErrorCode, RemoteError, remoteError } from '../protocol/errors.js';
import {
  CAPABILITIES,
  HARD_MAX_FRAME_BYTES,
  CONTROL_BURST,
  CONTROL_RATE_PER_SEC,
  FANOUT_TARGETS_PER_TOKEN,
  MAX_PENDING_REQUESTS,
  PROTOCOL_VERSION,
  REQUEST_TIMEOUT_MS,
  WS_PATH,
  type Capability,
} from '../protocol/limits.js';
import type {
  ErrorMessage,
  Params,
  RelayEvent,
  RequestType,
  Results,
  Transport,
} from '../protocol/messages.js';
import { connectPlain } from './plain-connect.js';
import { ChannelTable } from './channel-table.js';
import {
  requestChannelClose,
  type ChannelHandler,
  type RelayConnection,
} from './relay-connection.js';
import {
  PLAIN_SCHEME,
  connectTrusted,
  parseServerAddress,
  type TrustOptions,
} from './tls-connect.js';

export const CLIENT_NAME = 'switchboard-cli/0.1.0';
/** A deliberate bound: how long close() waits for the relay's close frame before cutting the socket. */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 1_000; // ms

export interface RelayClientOptions {
  /** "HOST:PORT" (TLS), or "plain://HOST:PORT" for a relay's plaintext listener. */
  server: string;
  /** How a TLS relay is trusted; unused for plain:// (there is no certificate to check). */
  trust: TrustOptions;
  /**
   * Accept a plain:// address that is not loopback (`--insecure`). Passwords and tokens then
   * cross the network in clear. Default false: such an address fails with TRUST_REQUIRED.
   */
  insecure?: boolean;
  /** Reply timeout. Default 30 s. */
  requestTimeoutMs?: number;
  /** Client ping interval, so a dead relay is noticed within two intervals. Default 15 s. */
  heartbeatMs?: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  type: string;
}

export type { ChannelHandler };

/**
 * Events: 'event' (RelayEvent), 'close' ({code, reason}).
 * Channel data goes to the handler registered with `openChannel`.
 */
export class RelayClient extends EventEmitter implements RelayConnection {
  readonly server: string;
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, Pending>();
  readonly #channels = new ChannelTable();
  readonly #timeoutMs: number;
  readonly #pacer = new Pacer(
    CONTROL_BURST - PACER_MARGIN,
    CONTROL_RATE_PER_SEC - PACER_MARGIN_RATE,
  );
  #nextId = 1;
  #closed = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #alive = true;
  #challenge: Buffer | undefined;
  #signup: 'open' | 'invite' | 'closed' | undefined;
  #minPassword: number | undefined;
  #relayFingerprint = '';
  #transport: Transport = 'tls';
  #ignoredEvents = 0;
  #capabilities: ReadonlySet<Capability> = new Set();

  private constructor(server: string, ws: WebSocket, options: RelayClientOptions) {
    super();
    this.server = server;
    this.#ws = ws;
    this.#timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    ws.on('message', (data: RawData, isBinary: boolean) =>
      this.#onMessage(toBuffer(data), isBinary),
    );
    ws.on('pong', () => {
      this.#alive = true;
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason.toString()));
    ws.on('error', () => {
      // 'close' follows and carries the outcome.
    });
    const heartbeatMs = options.heartbeatMs ?? 15_000;
    this.#heartbeat = setInterval(() => {
      if (!this.#alive) {
        ws.terminate();
        return;
      }
      this.#alive = false;
      if (ws.readyState === ws.OPEN) ws.ping();
    }, heartbeatMs);
    this.#heartbeat.unref();
  }

  /**
   * Connects over TLS (trust checked before anything is sent), or over plaintext for a plain://
   * address (loopback unless `insecure`), and exchanges `hello`.
   *
   * @example const client = await RelayClient.connect({ server: 'plain://127.0.0.1:8080', trust });
   */
  static async connect(options: RelayClientOptions): Promise<RelayClient> {
    const address = parseServerAddress(options.server);
    const plain = address.transport === 'plain';
    let relayFingerprint = '';
    let socket: Socket;
    if (plain) {
      socket = await connectPlain(address, { insecure: options.insecure === true });
    } else {
      const tlsSocket = await connectTrusted(address, options.trust);
      const raw = tlsSocket.getPeerCertificate(false)?.raw;
      relayFingerprint = raw ? certFingerprint(raw) : '';
      socket = tlsSocket;
    }
    const hostPort = plain ? address.label.slice(PLAIN_SCHEME.length) : address.label;
    const ws = new WebSocket(`${plain ? 'ws' : 'wss'}://${hostPort}${WS_PATH}`, {
      createConnection: () => socket,
      maxPayload: HARD_MAX_FRAME_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        reject(
          new ConnectError(
            ErrorCode.CONNECT_FAILED,
            `${address.label} refused the WebSocket upgrade (HTTP ${res.statusCode})`,
          ),
        );
        ws.terminate();
      });
      ws.once('error', (err) =>
        reject(
          new ConnectError(
            ErrorCode.CONNECT_FAILED,
            `cannot open the protocol channel to ${address.label}: ${err.message}` +
              (plain ? ` (is it a relay's --plain-port? its TLS port takes HOST:PORT)` : ''),
          ),
        ),
      );
    });
    const client = new RelayClient(address.label, ws, options);
    const offer = { version: PROTOCOL_VERSION, client: CLIENT_NAME };
    // A relay from before negotiation refuses the unknown `capabilities` key: greet it without.
    const hello = await client
      .request('hello', { ...offer, capabilities: [...CAPABILITIES] })
      .catch((err: unknown) => {
        if (!(err instanceof RemoteError && err.code === ErrorCode.INVALID_MESSAGE)) throw err;
        return client.request('hello', offer);
      });
    // Only names this client offered count, whatever the relay answered.
    const agreed: unknown = hello.capabilities;
    client.#capabilities = new Set(
      CAPABILITIES.filter((c) => Array.isArray(agreed) && agreed.includes(c)),
    );
    client.#challenge =
      typeof hello.challenge === 'string' ? Buffer.from(hello.challenge, 'base64') : undefined;
    client.#signup = hello.signup;
    client.#transport = address.transport;
    // Over plaintext there is no certificate: the relay states its fingerprint (unverifiable).
    client.#relayFingerprint = plain ? (hello.fingerprint ?? '') : relayFingerprint;
    client.#minPassword = hello.minPassword;
    return client;
  }

  /** The capabilities both sides support, as the relay's hello answered (none from an older relay). */
  get capabilities(): ReadonlySet<Capability> {
    return this.#capabilities;
  }

  /**
   * SHA-256 fingerprint of the certificate this connection's relay presented. Over plaintext:
   * the one the relay stated in `hello`, which nothing verifies.
   */
  get relayFingerprint(): string {
    return this.#relayFingerprint;
  }

  /** 'tls', or 'plain' for a plain:// connection (no TLS, no certificate pinned). */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * Authenticates as `user` by proving the device key (`auth.device`): no password or token.
   * The proof binds this connection's challenge and the relay (`deviceAuthBinding`: over
   * plaintext, the transport and the relay's stated fingerprint).
   */
  authenticateDevice(user: string, key: DeviceKeyPair): Promise<Results['auth.device']> {
    const challenge = this.challenge;
    if (!challenge)
      throw new ConnectError(ErrorCode.VERSION_MISMATCH, 'this relay does not take device proofs');
    return this.request('auth.device', {
      user,
      publicKey: key.publicKey.toString('base64'),
      proof: signDeviceAuth(
        key,
        challenge,
        user,
        deviceAuthBinding(this.#transport, this.#relayFingerprint),
      ),
    });
  }

  /** The relay's shortest accepted password (from its hello), if it said. */
  get minPasswordLength(): number | undefined {
    return this.#minPassword;
  }

  /** Who may sign up on this relay, as its hello said (undefined from an older relay). */
  get signupMode(): 'open' | 'invite' | 'closed' | undefined {
    return this.#signup;
  }

  /** The random bytes of this connection's hello reply: what a device signs to log in (login-proof.ts). */
  get challenge(): Buffer | undefined {
    return this.#challenge;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Events of types this client does not know (from a newer relay), dropped unread. */
  get ignoredEvents(): number {
    return this.#ignoredEvents;
  }

  /** Sends a request and resolves with its typed result, or rejects with a RemoteError carrying the relay's code. */
  request<T extends RequestType>(type: T, params: Params<T>): Promise<Results[T]> {
    if (this.#closed)
      return Promise.reject(
        new ConnectError(ErrorCode.CONNECTION_CLOSED, 'the connection to the relay is closed'),
      );
    if (this.#pending.size >= MAX_PENDING_REQUESTS) {
      return Promise.reject(
        new ConnectError(ErrorCode.RATE_LIMITED, 'too many requests in flight'),
      );
    }
    const id = this.#nextId++;
    // Paced under the relay's control rate: a burst of requests waits here instead of being
    // refused there (each refusal counts toward closing the connection).
    const wait = this.#pacer.take(
      type === 'channel.fanout'
        ? 1 +
            Math.floor(
              (params as Params<'channel.fanout'>).targets.length / FANOUT_TARGETS_PER_TOKEN,
            )
        : 1,
    );
    return new Promise<Results[T]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new ConnectError(
            ErrorCode.TIMEOUT,
            `the relay did not answer "${type}" within ${this.#timeoutMs / 1000} s`,
          ),
        );
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, type });
      const frame = encodeControl({ ...params, type, id });
      if (wait === 0) this.#ws.send(frame);
      else
        setTimeout(() => {
          if (!this.#closed && this.#pending.has(id)) this.#ws.send(frame);
        }, wait);
    });
  }

  /** Registers the handler for a channel the relay assigned (attach reply or channel.open event). */
  bindChannel(channel: number, handler: ChannelHandler): void {
    this.#channels.bind(channel, handler);
  }

  unbindChannel(channel: number): void {
    this.#channels.unbind(channel);
  }

  sendData(channel: number, payload: Uint8Array): void {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.send(encodeData(channel, payload), { binary: true });
  }

  /** Bytes queued in the socket: callers use it to apply backpressure. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** Closes a channel; the relay tells the other side, with `code` (default CHANNEL_CLOSED). */
  async closeChannel(channel: number, reason: string, code?: ErrorCode): Promise<void> {
    this.#channels.unbind(channel);
    if (this.#closed) return;
    await requestChannelClose(this, channel, reason, code);
  }

  close(): void {
    if (this.#closed) return;
    this.#ws.close(1000, 'client closed');
    // If the close handshake does not complete, cut it.
    setTimeout(() => this.#ws.terminate(), CLOSE_HANDSHAKE_TIMEOUT_MS).unref();
  }

  onClosed(listener: (reason: string) => void): () => void {
    const once = ({ code, reason }: { code: number; reason: string }): void =>
      listener(`the relay closed the connection${reason ? `: ${reason}` : ''} (${code})`);
    this.once('close', once);
    return () => void this.off('close', once);
  }

  onEvent(listener: (event: RelayEvent) => void): () => void {
    this.on('event', listener);
    return () => void this.off('event', listener);
  }

  /** Stops reading from the socket: TCP backpressure reaches the relay, which drops channels it cannot deliver. */
  pauseReading(): void {
    this.#ws.pause();
  }

  resumeReading(): void {
    this.#ws.resume();
  }

  /** Cuts the connection at once, without a close handshake (tests use it to simulate a drop). */
  terminate(): void {
    this.#ws.terminate();
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#alive = true;
    if (isBinary) {
      const frame = decodeData(data, HARD_MAX_FRAME_BYTES);
      if (!frame.ok) return;
      this.#channels.data(frame.value.channel, frame.value.payload);
      return;
    }
    const decoded = decodeServerMessage(data);
    if (!decoded.ok) {
      // An event from a newer relay that this client does not know: not an error.
      if ('ignored' in decoded) {
        this.#ignoredEvents += 1;
        return;
      }
      this.emit('protocolError', decoded.error);
      return;
    }
    const msg = decoded.value;
    switch (msg.type) {
      case 'reply':
      case 'error': {
        if (msg.id === undefined) {
          this.emit('protocolError', remoteError(msg as ErrorMessage));
          return;
        }
        const pending = this.#pending.get(msg.id);
        if (!pending) return;
        this.#pending.delete(msg.id);
        clearTimeout(pending.timer);
        if (msg.type === 'reply') {
          pending.resolve(msg.result);
        } else {
          pending.reject(remoteError(msg as ErrorMessage));
        }
        return;
      }
      case 'channel.closed': {
        this.#channels.closed(msg.channel, msg.code, msg.reason);
        this.emit('event', msg);
        return;
      }
      default:
        this.emit('event', msg as RelayEvent);
    }
  }

  #onClose(code: number, reason: string): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const err = new ConnectError(
      ErrorCode.CONNECTION_CLOSED,
      `the relay closed the connection${reason ? `: ${reason}` : ''} (${code})`,
    );
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(err);
      this.#pending.delete(id);
    }
    this.#channels.closeAll(ErrorCode.CONNECTION_CLOSED, err.message);
    this.emit('close', { code, reason });
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Tokens the client keeps in hand below the relay's burst (other control frames: closes, acks). */
const PACER_MARGIN = 20;
/** Requests per second below the relay's rate the client paces itself at. */
const PACER_MARGIN_RATE = 5;

/**
 * The relay's token bucket (CONTROL_BURST, CONTROL_RATE_PER_SEC) mirrored on the client:
 * `take(n)` reserves n tokens and says how long to wait before sending (0: now). Reservations
 * queue in order, so paced requests keep their order.
 */
export class Pacer {
  readonly #burst: number;
  readonly #perSec: number;
  #tokens: number;
  #at = Date.now();

  constructor(burst: number, perSec: number) {
    this.#burst = burst;
    this.#perSec = perSec;
    this.#tokens = burst;
  }

  take(n: number): number {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#perSec);
    this.#at = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#perSec) * 1000);
  }
}

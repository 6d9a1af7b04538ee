// The host side of a remote session: registration, reconnection, and one E2E peer per channel.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { KnownPeers } from '../client/known-peers.js';
import type { RelayClient } from '../client/relay-client.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { keyFingerprint } from '../crypto/device-key.js';
import { HostHandshake } from '../crypto/handshake.js';
import type { SecureChannel } from '../crypto/secure-channel.js';
import { CryptoError, ErrorCode, SwitchboardError } from '../protocol/errors.js';
import type { EventOf, PeerInfo, RelayEvent } from '../protocol/messages.js';
import {
  MAX_CHUNK_BYTES,
  TERMINAL_PROTOCOL_VERSION,
  decodeTerminal,
  e2ePrologue,
  encodeTerminal,
  type Hello,
  type TerminalMessage,
} from '../protocol/terminal.js';
import { decideAccess, type AccessPolicy } from './access.js';
import { Attachment, TerminalStream } from './terminal-stream.js';
import type { Pty } from './pty.js';
import { Backoff } from '../client/backoff.js';

/** How long the host waits for the person at the terminal to approve an attach (share). */
export const APPROVAL_TIMEOUT_MS = 60_000; // ms
/** How long a disconnected controller's place (and, on agent, its shell) is kept for a resume. */
export const DETACHED_TTL_MS = 10 * 60_000; // ms
/** A connected controller that acknowledges nothing for this long is dropped as too slow. */
export const SLOW_CONTROLLER_TIMEOUT_MS = 60_000; // ms
/** Time a channel has to finish the E2E handshake and hello. */
export const PEER_SETUP_TIMEOUT_MS = 15_000; // ms

export interface HostSessionOptions {
  kind: 'share' | 'agent';
  sessionId?: string;
  hostName: string;
  policy: AccessPolicy;
  key: DeviceKeyPair;
  /** The relay's address (key of the peer pins). */
  server: string;
  knownPeers: KnownPeers;
  /** Opens a logged-in connection to the relay. */
  connect(): Promise<RelayClient>;
  /** share: the one terminal everyone sees. */
  stream?: TerminalStream;
  /** agent: a fresh login shell for each new attachment. */
  spawnShell?(cols: number, rows: number): Pty;
  /** share: asks the person at the host; resolves true to admit. */
  approve?(peer: PeerInfo): Promise<boolean>;
  detachedTtlMs?: number;
  /** Default SLOW_CONTROLLER_TIMEOUT_MS. */
  slowControllerTimeoutMs?: number;
  now?: () => number;
}

export interface ControllerInfo {
  attachment: string;
  user: string;
  fingerprint: string;
  readOnly: boolean;
  connected: boolean;
}

interface Placed {
  att: Attachment;
  stream: TerminalStream;
}

/**
 * Events: 'notice' (text for the person at the host), 'registered' (sessionId), 'state'
 * ('connected' | 'reconnecting'), 'fatal' (SwitchboardError: the host cannot go on).
 */
export class HostSession extends EventEmitter {
  readonly #o: HostSessionOptions;
  readonly #instance = randomBytes(16).toString('base64url');
  readonly #placed = new Map<string, Placed>();
  readonly #peers = new Set<HostPeer>();
  #client: RelayClient | undefined;
  #sessionId: string | undefined;
  #stopped = false;
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: HostSessionOptions) {
    super();
    this.#o = options;
    if (options.kind === 'share' && !options.stream) throw new TypeError('share needs a stream');
    if (options.kind === 'agent' && !options.spawnShell)
      throw new TypeError('agent needs spawnShell');
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  get now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Connects and registers; afterwards reconnects by itself until stop(). */
  async start(): Promise<string> {
    await this.#connectOnce();
    const slowMs = this.#o.slowControllerTimeoutMs ?? SLOW_CONTROLLER_TIMEOUT_MS;
    this.#sweep = setInterval(() => this.#expire(), Math.min(10_000, Math.max(100, slowMs / 4)));
    this.#sweep.unref();
    return this.#sessionId!;
  }

  async #connectOnce(): Promise<void> {
    const client = await this.#o.connect();
    try {
      const { sessionId } = await client.request('session.register', {
        ...((this.#sessionId ?? this.#o.sessionId)
          ? { sessionId: this.#sessionId ?? this.#o.sessionId }
          : {}),
        kind: this.#o.kind,
        instance: this.#instance,
        hostName: this.#o.hostName,
        allow: [...this.#o.policy.allow],
        viewers: [...this.#o.policy.viewers],
      });
      this.#sessionId = sessionId;
    } catch (err) {
      client.close();
      throw err;
    }
    this.#client = client;
    client.on('event', (event: RelayEvent) => {
      if (event.type === 'channel.open') this.#onChannelOpen(client, event);
    });
    client.once('close', () => {
      if (this.#client === client) this.#client = undefined;
      if (!this.#stopped) void this.#reconnect();
    });
    this.emit('registered', this.#sessionId);
    this.emit('state', 'connected');
  }

  async #reconnect(): Promise<void> {
    this.emit('state', 'reconnecting');
    const backoff = new Backoff();
    while (!this.#stopped) {
      await backoff.wait();
      if (this.#stopped) return;
      try {
        await this.#connectOnce();
        return;
      } catch (err) {
        if (err instanceof SwitchboardError && isFatal(err.code)) {
          this.emit('fatal', err);
          return;
        }
      }
    }
  }

  #onChannelOpen(client: RelayClient, event: EventOf<'channel.open'>): void {
    if (event.sessionId !== this.#sessionId) {
      void client.closeChannel(event.channel, 'not this session');
      return;
    }
    const peer = new HostPeer(this, client, event);
    this.#peers.add(peer);
    peer.once('closed', () => this.#peers.delete(peer));
  }

  // --- used by HostPeer --------------------------------------------------------------------------

  get options(): HostSessionOptions {
    return this.#o;
  }

  placed(attachment: string): Placed | undefined {
    return this.#placed.get(attachment);
  }

  /** Finds or creates the attachment for a hello; undefined if a resume names someone else's. */
  place(
    hello: Hello,
    user: string,
    publicKey: string,
    readOnly: boolean,
  ): { placed: Placed; resumed: boolean } | undefined {
    if (hello.resume) {
      const existing = this.#placed.get(hello.resume.attachment);
      if (
        existing &&
        existing.att.publicKey === publicKey &&
        existing.att.user === user &&
        !existing.stream.exit
      ) {
        return { placed: existing, resumed: true };
      }
    }
    const att = new Attachment(user, publicKey, readOnly);
    let stream = this.#o.stream;
    if (!stream) {
      const pty = this.#o.spawnShell!(hello.cols, hello.rows);
      stream = new TerminalStream({ pty, cols: hello.cols, rows: hello.rows, lossless: true });
      // The shell ended: forget it once its controller has the exit, or at once if none is
      // connected (a resume cannot continue an ended shell).
      stream.on('exitSent', (sentTo: Attachment) => {
        if (sentTo === att) this.forget(att.id);
      });
      stream.once('exit', () => {
        if (!att.sink) this.forget(att.id);
      });
    }
    const placed = { att, stream };
    this.#placed.set(att.id, placed);
    return { placed, resumed: false };
  }

  forget(attachment: string): void {
    const placed = this.#placed.get(attachment);
    if (!placed) return;
    this.#placed.delete(attachment);
    placed.stream.remove(placed.att);
    if (placed.stream !== this.#o.stream) placed.stream.close();
  }

  /** Drops attachments (and agent shells) whose controller has been gone past the TTL. */
  #expire(): void {
    const ttl = this.#o.detachedTtlMs ?? DETACHED_TTL_MS;
    const slowMs = this.#o.slowControllerTimeoutMs ?? SLOW_CONTROLLER_TIMEOUT_MS;
    const now = this.now;
    for (const [id, p] of this.#placed) {
      if (
        p.att.sink === undefined &&
        p.att.detachedAt !== undefined &&
        now - p.att.detachedAt > ttl
      ) {
        this.forget(id);
      } else if (
        p.att.sink &&
        p.att.waitingSince !== undefined &&
        Date.now() - p.att.waitingSince > slowMs
      ) {
        this.notice(
          `dropped ${p.att.user}: acknowledged nothing for ${Math.round(slowMs / 1000)} s`,
        );
        this.drop(
          id,
          ErrorCode.SLOW_PEER,
          'your connection did not keep up with the output; attach again',
        );
      }
    }
  }

  controllers(): ControllerInfo[] {
    return [...this.#placed.values()].map(({ att }) => ({
      attachment: att.id,
      user: att.user,
      fingerprint: keyFingerprint(Buffer.from(att.publicKey, 'base64')),
      readOnly: att.readOnly,
      connected: att.sink !== undefined,
    }));
  }

  /** Drops a controller: its channel is closed with a code and reason, its place forgotten. */
  drop(
    attachment: string,
    code: ErrorCode = ErrorCode.CHANNEL_CLOSED,
    reason = 'dropped by the host',
  ): boolean {
    for (const peer of this.#peers) {
      if (peer.attachment === attachment) peer.refuse(code, reason);
    }
    const had = this.#placed.has(attachment);
    this.forget(attachment);
    return had;
  }

  notice(text: string): void {
    this.emit('notice', text);
  }

  /** Tells every connected controller the session ended, unregisters, disconnects. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#sweep);
    const client = this.#client;
    if (client && this.#sessionId) {
      await client
        .request('session.unregister', { sessionId: this.#sessionId })
        .catch(() => undefined);
    }
    for (const id of [...this.#placed.keys()]) this.forget(id);
    client?.close();
  }
}

function isFatal(code: string): boolean {
  return (
    code === ErrorCode.TOKEN_EXPIRED ||
    code === ErrorCode.TOKEN_REVOKED ||
    code === ErrorCode.TOKEN_INVALID ||
    code === ErrorCode.SESSION_TAKEN ||
    code === ErrorCode.CERT_CHANGED ||
    code === ErrorCode.TRUST_REQUIRED
  );
}

/** One controller's channel at the host: handshake, access decision, then the terminal protocol. */
class HostPeer extends EventEmitter {
  readonly #host: HostSession;
  readonly #client: RelayClient;
  readonly #channel: number;
  readonly #peer: PeerInfo;
  readonly #requestedReadOnly: boolean;
  readonly #handshake: HostHandshake;
  #secure: SecureChannel | undefined;
  #step: 'msg1' | 'msg3' | 'hello' | 'deciding' | 'running' | 'closed' = 'msg1';
  #placed: Placed | undefined;
  #setupTimer: NodeJS.Timeout;

  constructor(host: HostSession, client: RelayClient, event: EventOf<'channel.open'>) {
    super();
    this.#host = host;
    this.#client = client;
    this.#channel = event.channel;
    this.#peer = event.peer;
    this.#requestedReadOnly = event.readOnly;
    const o = host.options;
    this.#handshake = new HostHandshake({
      key: o.key,
      prologue: e2ePrologue(event.sessionId, o.policy.owner, event.peer.user),
    });
    client.bindChannel(event.channel, {
      onData: (payload) => this.#onData(payload),
      onClose: (code, reason) => this.#onClosed(code, reason),
    });
    this.#setupTimer = setTimeout(() => {
      if (this.#step !== 'running' && this.#step !== 'deciding')
        this.refuse(ErrorCode.CHANNEL_CLOSED, 'the end-to-end handshake took too long');
    }, PEER_SETUP_TIMEOUT_MS);
    this.#setupTimer.unref();
  }

  get attachment(): string | undefined {
    return this.#placed?.att.id;
  }

  #send(msg: TerminalMessage): void {
    if (!this.#secure || this.#step === 'closed') return;
    this.#client.sendData(this.#channel, this.#secure.seal(encodeTerminal(msg)));
  }

  /**
   * Closes the channel with a code and a reason the controller will show: inside the E2E channel
   * when there is one (the relay cannot forge that), and in the relay's close either way.
   */
  refuse(code: ErrorCode, reason: string): void {
    if (this.#step === 'closed') return;
    if (this.#secure) this.#send({ type: 'bye', reason, code });
    this.#finish();
    void this.#client.closeChannel(this.#channel, reason, code);
  }

  #finish(): void {
    if (this.#step === 'closed') return;
    this.#step = 'closed';
    clearTimeout(this.#setupTimer);
    if (this.#placed) this.#placed.stream.disconnect(this.#placed.att, this.#host.now);
    this.emit('closed');
  }

  #onClosed(_code: string, _reason: string): void {
    const placed = this.#placed;
    this.#finish();
    if (placed?.stream.exit) {
      this.#host.notice(`${placed.att.user}'s shell exited with ${placed.stream.exit.code}`);
    } else if (placed) {
      this.#host.notice(`${placed.att.user} disconnected (may resume)`);
    }
  }

  #onData(payload: Buffer): void {
    try {
      switch (this.#step) {
        case 'msg1':
          this.#client.sendData(this.#channel, this.#handshake.respond(payload));
          this.#step = 'msg3';
          return;
        case 'msg3': {
          const result = this.#handshake.receive(payload);
          const proven = result.peerPublicKey.toString('base64');
          if (proven !== this.#peer.publicKey) {
            throw new CryptoError(
              ErrorCode.HANDSHAKE_FAILED,
              'the key the controller proved differs from the one the relay announced',
            );
          }
          this.#host.options.knownPeers.verify(this.#host.options.server, this.#peer.user, proven);
          this.#secure = result.channel;
          this.#step = 'hello';
          return;
        }
        case 'hello':
        case 'running':
        case 'deciding': {
          const msg = decodeTerminal(this.#secure!.open(payload));
          if (this.#step === 'hello') {
            if (msg.type !== 'hello')
              throw new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'expected hello');
            void this.#admit(msg.hello);
            return;
          }
          if (this.#step === 'running') this.#onMessage(msg);
          return;
        }
        case 'closed':
          return;
      }
    } catch (err) {
      const message = err instanceof SwitchboardError ? err.message : 'internal error';
      this.#host.notice(
        `refused ${this.#peer.user} (${this.#peer.fingerprint}): ${message.split('\n')[0]}`,
      );
      if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED)
        this.#host.notice(message);
      if (err instanceof SwitchboardError) this.refuse(err.code, message);
      else this.refuse(ErrorCode.CHANNEL_CLOSED, 'internal error');
    }
  }

  async #admit(hello: Hello): Promise<void> {
    const o = this.#host.options;
    if (hello.v !== TERMINAL_PROTOCOL_VERSION)
      return this.refuse(
        ErrorCode.CHANNEL_CLOSED,
        `terminal protocol ${hello.v} is not supported (want ${TERMINAL_PROTOCOL_VERSION})`,
      );
    this.#step = 'deciding';
    const resumed = hello.resume ? this.#host.placed(hello.resume.attachment) : undefined;
    let readOnly: boolean;
    if (resumed && resumed.att.publicKey === this.#peer.publicKey) {
      readOnly = resumed.att.readOnly;
    } else {
      const decision = decideAccess(
        o.policy,
        this.#peer.user,
        this.#requestedReadOnly || hello.readOnly,
      );
      if (decision === 'deny') {
        this.#host.notice(
          `refused ${this.#peer.user} (${this.#peer.fingerprint}): not allowed on this ${o.kind}`,
        );
        return this.refuse(
          ErrorCode.NOT_ALLOWED,
          `${this.#peer.user} is not allowed on this session`,
        );
      }
      if (decision === 'ask') {
        this.#send({ type: 'notice', text: 'waiting for the host to approve…' });
        const approved = await Promise.race([
          o.approve ? o.approve(this.#peer).catch(() => false) : Promise.resolve(false),
          new Promise<boolean>((r) => setTimeout(() => r(false), APPROVAL_TIMEOUT_MS).unref()),
        ]);
        if (this.#step !== 'deciding') return;
        if (!approved) {
          this.#host.notice(`denied ${this.#peer.user}`);
          return this.refuse(ErrorCode.DENIED, 'the host did not approve');
        }
        readOnly = this.#requestedReadOnly || hello.readOnly;
      } else {
        readOnly = decision === 'ro';
      }
    }
    const placedResult = this.#host.place(hello, this.#peer.user, this.#peer.publicKey, readOnly);
    if (!placedResult) return this.refuse(ErrorCode.CHANNEL_CLOSED, 'cannot place this attachment');
    const { placed, resumed: didResume } = placedResult;
    this.#placed = placed;
    clearTimeout(this.#setupTimer);
    this.#step = 'running';
    this.#send({
      type: 'welcome',
      welcome: {
        attachment: placed.att.id,
        readOnly: placed.att.readOnly,
        resumed: didResume,
        inputOffset: placed.att.inputOffset,
        kind: o.kind,
      },
    });
    if (!placed.att.readOnly && (o.kind === 'agent' || !didResume))
      placed.stream.resize(hello.cols, hello.rows);
    const sink = {
      send: (msg: TerminalMessage) => {
        if (msg.type === 'snapshot' && msg.data.length > MAX_CHUNK_BYTES) {
          for (let i = 0; i < msg.data.length; i += MAX_CHUNK_BYTES) {
            this.#send({
              type: 'snapshot',
              offset: msg.offset,
              data: msg.data.subarray(i, i + MAX_CHUNK_BYTES),
            });
          }
          return;
        }
        this.#send(msg);
      },
    };
    placed.stream.connect(placed.att, sink, didResume ? hello.resume?.offset : undefined);
    this.#host.notice(
      `${this.#peer.user} (${this.#peer.fingerprint}) ${didResume ? 'resumed' : 'attached'} ${placed.att.readOnly ? 'read-only' : 'read-write'}`,
    );
  }

  #onMessage(msg: TerminalMessage): void {
    const placed = this.#placed!;
    switch (msg.type) {
      case 'input':
        placed.stream.input(placed.att, msg.offset, msg.data);
        if (!placed.att.readOnly) this.#send({ type: 'ack', offset: placed.att.inputOffset });
        return;
      case 'ack':
        placed.stream.ack(placed.att, msg.offset);
        return;
      case 'resize':
        if (!placed.att.readOnly) placed.stream.resize(msg.cols, msg.rows);
        return;
      case 'bye': {
        const { att } = placed;
        this.#host.notice(`${att.user} detached`);
        // share: the controller is gone for good; agent: its shell stays for a later attach.
        if (this.#host.options.kind === 'share') this.#host.forget(att.id);
        this.#finish();
        void this.#client.closeChannel(this.#channel, 'detached');
        return;
      }
      default:
        // hello/welcome/output/snapshot/exit/notice are not for the host: ignore quietly.
        return;
    }
  }
}

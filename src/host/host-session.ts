// The host side of a remote session: registration, reconnection, and one E2E peer per channel.
import { Recording, type RecordingOptions } from './recording.js';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { KnownPeers, NewDevicePolicy } from '../client/known-peers.js';
import { RelayChannel } from '../client/relay-channel.js';
import type { RelayClient } from '../client/relay-client.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { keyFingerprint } from '../crypto/device-key.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import type { EventOf, PeerInfo, RelayEvent } from '../protocol/messages.js';
import type { Hello } from '../protocol/terminal.js';
import { acceptChannel } from './accept-channel.js';
import { decideAccess, type AccessPolicy } from './access.js';
import { pingService } from './services/ping.js';
import type { HostService } from './services/service.js';
import { terminalService, type TerminalPeer } from './services/terminal.js';
import { Attachment, TerminalStream } from './terminal-stream.js';
import type { Pty } from './pty.js';
import { Backoff } from '../client/backoff.js';

/** How long a disconnected controller's place (and, on agent, its shell) is kept for a resume. */
export const DETACHED_TTL_MS = 10 * 60_000; // ms
/** A connected controller that acknowledges nothing for this long is dropped as too slow. */
export const SLOW_CONTROLLER_TIMEOUT_MS = 60_000; // ms

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
  spawnShell?(cols: number, rows: number, term: string): Pty;
  /**
   * share: asks the person at the host; resolves true to admit. `withdrawn` aborts when the
   * question no longer stands (the requester left, or no answer came in APPROVAL_TIMEOUT_MS,
   * the abort's reason then being 'timeout'): take the question off the screen.
   */
  approve?(peer: PeerInfo, withdrawn: AbortSignal, why?: { newDevice: boolean }): Promise<boolean>;
  /**
   * A device of a pinned user that is not pinned yet. Default: a share asks its host ('defer',
   * through `approve`); an agent pins it and says so ('pin'); --strict-keys refuses ('refuse').
   */
  newDevice?: NewDevicePolicy;
  /** `agent --record DIR`: each agent shell as an asciicast v2 file there (see recording.ts). */
  record?: RecordingOptions;
  /** `agent --tag KEY=VALUE`s, registered with the session (`sessions --tag` selects by them). */
  tags?: Record<string, string>;
  /** Users the agent's --policy grants commands to: the relay routes their exec (not the terminal). */
  operators?: readonly string[];
  detachedTtlMs?: number;
  /** Default SLOW_CONTROLLER_TIMEOUT_MS. */
  slowControllerTimeoutMs?: number;
  now?: () => number;
  /**
   * Services served on channels into this session, by name. Default: the terminal and ping.
   * A service is a module (`services/*.ts`); the relay routes any name the host lists here.
   */
  services?: readonly HostService[];
}

/** What a host serves unless told otherwise. */
export const DEFAULT_SERVICES: readonly HostService[] = [terminalService, pingService];

export interface ControllerInfo {
  attachment: string;
  user: string;
  fingerprint: string;
  readOnly: boolean;
  connected: boolean;
}

export interface Placed {
  att: Attachment;
  stream: TerminalStream;
  /** A viewer of an agent watching another controller's shell: whose (the shell is not its own). */
  watching?: string;
}

/**
 * Events: 'notice' (text for the person at the host), 'registered' (sessionId), 'state'
 * ('connected' | 'reconnecting'), 'fatal' (SwitchboardError: the host cannot go on).
 */
export class HostSession extends EventEmitter {
  readonly #o: HostSessionOptions;
  readonly #instance = randomBytes(16).toString('base64url');
  readonly #placed = new Map<string, Placed>();
  readonly #peers = new Set<TerminalPeer>();
  readonly #services: ReadonlyMap<string, HostService>;
  #client: RelayClient | undefined;
  #sessionId: string | undefined;
  #stopped = false;
  /** Aborted by stop(): ends a reconnect's wait at once. */
  readonly #stopping = new AbortController();
  #sweep: NodeJS.Timeout | undefined;
  #operators: string[];

  constructor(options: HostSessionOptions) {
    super();
    this.#o = options;
    this.#services = new Map((options.services ?? DEFAULT_SERVICES).map((svc) => [svc.name, svc]));
    this.#operators = [...(options.operators ?? [])];
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
        services: [...this.#services.keys()],
        ...(this.#o.tags && Object.keys(this.#o.tags).length > 0 ? { tags: this.#o.tags } : {}),
        ...(this.#operators.length > 0 ? { operators: this.#operators } : {}),
      });
      this.#sessionId = sessionId;
    } catch (err) {
      client.close();
      throw err;
    }
    if (this.#stopped) {
      // stop() ran while this connection was being made: it could not reach it, so end it here.
      await client.request('session.unregister', { sessionId: this.#sessionId }).catch(() => {});
      client.close();
      return;
    }
    this.#client = client;
    client.on('event', (event: RelayEvent) => {
      if (event.type === 'channel.open') this.#onChannelOpen(client, event);
    });
    client.once('close', () => {
      if (this.#client === client) {
        this.#client = undefined;
        this.emit('client', undefined);
      }
      if (!this.#stopped) void this.#reconnect();
    });
    this.emit('registered', this.#sessionId);
    this.emit('client', client);
    this.emit('state', 'connected');
  }

  async #reconnect(): Promise<void> {
    this.emit('state', 'reconnecting');
    const backoff = new Backoff();
    while (!this.#stopped) {
      await backoff.wait(this.#stopping.signal);
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

  /** A channel into the session: the E2E handshake, then the service it names takes it over. */
  #onChannelOpen(client: RelayClient, event: EventOf<'channel.open'>): void {
    const transport = new RelayChannel(client, event.channel);
    const sessionId = event.sessionId;
    if (
      sessionId === undefined ||
      sessionId !== this.#sessionId ||
      (event.target !== undefined && event.target.kind !== 'session')
    ) {
      void transport.close('not this session');
      return;
    }
    const o = this.#o;
    acceptChannel(client, event, sessionId, {
      key: o.key,
      server: o.server,
      knownPeers: o.knownPeers,
      newDevice: o.newDevice ?? (o.kind === 'share' ? 'defer' : 'pin'),
      owner: o.policy.owner,
      services: this.#services,
      access: (peer, readOnly) => decideAccess(o.policy, peer.user, readOnly),
      host: this,
      stopped: () => this.#stopped,
      notice: (text) => this.notice(text),
    });
  }

  /**
   * A reloaded --policy names other users: the relay routes their exec from now on (and at
   * every later registration). Sent at once when connected; a reconnect registers the new list.
   */
  async setOperators(operators: readonly string[]): Promise<void> {
    this.#operators = [...operators];
    const client = this.#client;
    if (client && this.#sessionId)
      await client.request('session.update', {
        sessionId: this.#sessionId,
        operators: this.#operators,
      });
  }

  /** The terminal service's peers, so `drop` can reach them. */
  addTerminal(peer: TerminalPeer): void {
    this.#peers.add(peer);
    peer.once('closed', () => this.#peers.delete(peer));
  }

  // --- used by the services --------------------------------------------------------------------------

  get options(): HostSessionOptions {
    return this.#o;
  }

  /** How long a controller that is away keeps its attachment (and an agent its shell). */
  get detachedTtlMs(): number {
    return this.#o.detachedTtlMs ?? DETACHED_TTL_MS;
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
  ): { placed: Placed; resumed: boolean } | 'nothing-to-watch' | undefined {
    if (hello.resume) {
      const existing = this.#placed.get(hello.resume.attachment);
      // An agent shell that ended while its controller was away is resumed too: the controller
      // gets the rest of its output and its exit status, not a fresh shell.
      if (existing && existing.att.publicKey === publicKey && existing.att.user === user) {
        return { placed: existing, resumed: true };
      }
    }
    const att = new Attachment(user, publicKey, readOnly);
    if (readOnly && !this.#o.stream) {
      // An agent's viewer watches a shell someone has open (a fresh one it could not type into
      // would be pointless): the one with a controller connected, the latest attached first.
      const live = [...this.#placed.values()].filter((p) => !p.watching && !p.stream.exit);
      const target = live.filter((p) => p.att.sink).at(-1) ?? live.at(-1);
      if (!target) return 'nothing-to-watch';
      const placed: Placed = { att, stream: target.stream, watching: target.att.user };
      // Gone with the shell: at once if away, else once it was sent the exit.
      target.stream.on('exitSent', (sentTo: Attachment) => {
        if (sentTo === att) this.forget(att.id);
      });
      target.stream.once('exit', () => {
        if (!att.sink) this.forget(att.id);
      });
      this.#placed.set(att.id, placed);
      return { placed, resumed: false };
    }
    let stream = this.#o.stream;
    if (!stream) {
      const term = controllerTerm(hello.term);
      // The recording first: if its file cannot be made, no shell is started (and none leaks).
      const recording = this.#o.record && this.#newRecording(att, hello, term);
      let pty: Pty;
      try {
        pty = this.#o.spawnShell!(hello.cols, hello.rows, term);
      } catch (err) {
        recording?.close();
        throw err;
      }
      stream = new TerminalStream({ pty, cols: hello.cols, rows: hello.rows, lossless: true });
      if (recording) this.#record(stream, recording);
      // The shell ended: forget it once its controller has the exit. A controller that is away
      // gets it on resume; one that never comes back is forgotten with the detached TTL.
      stream.on('exitSent', (sentTo: Attachment) => {
        if (sentTo === att) this.forget(att.id);
      });
    }
    const placed = { att, stream };
    this.#placed.set(att.id, placed);
    return { placed, resumed: false };
  }

  #newRecording(att: Attachment, size: { cols: number; rows: number }, term: string): Recording {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return new Recording(
      this.#o.record!.dir,
      `${this.#sessionId ?? this.#o.sessionId}-${stamp}-${att.user}-${att.id.slice(0, 8)}.cast`,
      {
        width: size.cols,
        height: size.rows,
        title: `${this.#sessionId ?? this.#o.sessionId}: ${att.user}`,
        term,
      },
    );
  }

  /** Records an agent shell from its first byte to its exit; 'recorded' (path) when complete. */
  #record(stream: TerminalStream, recording: Recording): void {
    stream.on('output', (data: Buffer) => recording.output(data));
    stream.on('resize', (cols: number, rows: number) => recording.resize(cols, rows));
    if (this.#o.record!.input) stream.on('input', (data: Buffer) => recording.input(data));
    stream.once('exit', () => recording.close());
    recording.done.then(
      (path) => this.emit('recorded', path),
      (err: Error) => this.notice(`recording ${recording.path} failed: ${err.message}`),
    );
  }

  forget(attachment: string): void {
    const placed = this.#placed.get(attachment);
    if (!placed) return;
    this.#placed.delete(attachment);
    placed.stream.remove(placed.att);
    // A watcher leaves the shell it watched to its owner.
    if (placed.stream !== this.#o.stream && !placed.watching) placed.stream.close();
  }

  /** Drops attachments (and agent shells) whose controller has been gone past the TTL. */
  #expire(): void {
    const ttl = this.detachedTtlMs;
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
    this.#stopping.abort();
    clearInterval(this.#sweep);
    // Each controller is told why, inside its E2E channel, before the relay hears of it.
    const why =
      this.#o.kind === 'agent'
        ? `the agent on ${this.#o.hostName} stopped`
        : `${this.#o.policy.owner} stopped sharing`;
    for (const peer of [...this.#peers]) peer.refuse(ErrorCode.CHANNEL_CLOSED, why);
    // Commands still running end now (exec stops their process groups), audited, before we go.
    await Promise.all([...this.#services.values()].map((svc) => svc.stop?.()));
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

/** The controller's TERM for a new agent shell, as sshd passes the client's; a plain name only. */
export function controllerTerm(term: string | undefined): string {
  return term !== undefined && /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(term)
    ? term
    : 'xterm-256color';
}

// The controller side of a remote terminal: attach, E2E handshake, resume after drops, flow control.
// Runs in Node (`switchboard attach`) and in the page (web/terminal.ts): nothing here is Node's.
import type { SecureDuplex } from '../channel/e2e.js';
import type { AsyncDeviceSigner } from '../crypto/handshake.js';
import type { DeviceSigner } from '../crypto/prekeys.js';
import {
  CryptoError,
  ErrorCode,
  SessionError,
  SwitchboardError,
  isErrorCode,
} from '../protocol/errors.js';
import type { ChannelOpened, PeerInfo } from '../protocol/messages.js';
import {
  ACK_DELAY_MS,
  ACK_EVERY_BYTES,
  INPUT_WINDOW_BYTES,
  MAX_CHUNK_BYTES,
  TERMINAL_PROTOCOL_VERSION,
  decodeTerminal,
  encodeTerminal,
  type TerminalMessage,
  type Welcome,
} from '../protocol/terminal.js';
import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import type { PeerPins, PinCheck } from './peer-pins.js';
import { openService } from './open-channel.js';
import type { RelayConnection } from './relay-connection.js';

/** How long a controller keeps trying to get back to a session before giving up. */
export const RESUME_GIVE_UP_MS = 10 * 60_000; // ms

export interface AttachOptions {
  sessionId: string;
  readOnly: boolean;
  /** My account name (as the relay knows it). */
  user: string;
  key: DeviceSigner | AsyncDeviceSigner;
  server: string;
  knownPeers: PeerPins;
  /** Opens a logged-in connection to the relay. */
  connect(): Promise<Connection>;
  cols: number;
  rows: number;
  term?: string;
  /** An attachment to resume (e.g. after `attach` was restarted). */
  resume?: { attachment: string; offset: number };
  /**
   * Asked when resuming after a drop: true to get the current screen instead of a replay of what
   * was missed (`attach` asks for it while a full-screen program is shown, which its
   * reconnecting status line has drawn over; a shell's history is replayed).
   */
  repaintOnResume?: () => boolean;
}

/** Where a reconnection stands ('reconnecting' event, once per failed attempt). */
export interface ReconnectInfo {
  /** Why the connection was lost, or why the last attempt failed. */
  reason: string;
  attempt: number;
  lostForMs: number;
  nextInMs: number;
}

export interface AttachedInfo {
  host: PeerInfo;
  hostName: string;
  kind: 'share' | 'agent';
  welcome: Welcome;
  handshakeHash: string;
}

/** Codes after which trying again cannot help. */
const FATAL = new Set<string>([
  ErrorCode.NOT_ALLOWED,
  ErrorCode.DENIED,
  ErrorCode.PEER_KEY_CHANGED,
  ErrorCode.HANDSHAKE_FAILED,
  ErrorCode.TOKEN_EXPIRED,
  ErrorCode.TOKEN_REVOKED,
  ErrorCode.TOKEN_INVALID,
  ErrorCode.CERT_CHANGED,
  ErrorCode.TRUST_REQUIRED,
  ErrorCode.SESSION_NOT_FOUND,
  ErrorCode.INVALID_MESSAGE,
]);

interface Unacked {
  offset: number;
  data: Uint8Array;
}

/** The relay connection, with what the tests' simulations use where it has it (RelayClient). */
type Connection = RelayConnection & {
  pauseReading?(): void;
  resumeReading?(): void;
  terminate?(): void;
};

/**
 * Events: 'output' (Uint8Array), 'snapshot' (Uint8Array: repaint, written as is), 'attached' (AttachedInfo),
 * 'notice' (string), 'state' ('attached' | 'reconnecting'), 'reconnecting' (ReconnectInfo, each
 * failed attempt), 'drain' (input window has room),
 * 'end' ({ exit?: {code, signal?}, error?: SwitchboardError, detached?: boolean }).
 */
export class AttachSession extends Emitter {
  readonly #o: AttachOptions;
  #client: Connection | undefined;
  /** The E2E channel to the host's terminal service, while attached. */
  #channel: SecureDuplex | undefined;
  #attachment: string | undefined;
  /** Next output offset expected, and the last one acknowledged. */
  #expected = 0;
  #acked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #inputOffset = 0;
  #unacked: Unacked[] = [];
  #unackedBytes = 0;
  #cols: number;
  #rows: number;
  #readOnly: boolean;
  #ended = false;
  #running = false;
  #everAttached = false;
  #lostSince: number | undefined;

  constructor(options: AttachOptions) {
    super();
    this.#o = options;
    this.#cols = options.cols;
    this.#rows = options.rows;
    this.#readOnly = options.readOnly;
    if (options.resume) {
      this.#attachment = options.resume.attachment;
      this.#expected = this.#acked = options.resume.offset;
    }
  }

  /** Resume point for a later process: attachment id and the next output offset. */
  get position(): { attachment: string; offset: number } | undefined {
    return this.#attachment ? { attachment: this.#attachment, offset: this.#expected } : undefined;
  }

  /** Attaches; resolves once the host has welcomed us, rejects if the first attempt is refused. */
  start(): Promise<AttachedInfo> {
    return new Promise((resolve, reject) => {
      this.once('attached', resolve);
      this.once('end', (end: { error?: SwitchboardError }) =>
        reject(end.error ?? new SessionError(ErrorCode.CHANNEL_CLOSED, 'the session ended')),
      );
      void this.#attempt();
    });
  }

  async #attempt(): Promise<void> {
    if (this.#ended) return; // detached or failed while this attempt waited its turn
    let client: Connection;
    try {
      client = await this.#o.connect();
    } catch (err) {
      return this.#lost(err);
    }
    if (this.#ended) return client.close();
    this.#client = client;
    client.onClosed(() => {
      if (this.#client === client)
        this.#lost(new SessionError(ErrorCode.CONNECTION_CLOSED, 'connection to the relay lost'));
    });
    let channel: SecureDuplex;
    let opened: ChannelOpened;
    let pin: PinCheck;
    try {
      ({ channel, opened, pin } = await openService(client, {
        service: 'terminal',
        target: { kind: 'session', sessionId: this.#o.sessionId },
        readOnly: this.#o.readOnly,
        user: this.#o.user,
        key: this.#o.key,
        server: this.#o.server,
        knownPeers: this.#o.knownPeers,
      }));
    } catch (err) {
      client.close();
      if (err instanceof SwitchboardError) return this.#channelEnded(err);
      return this.#lost(err);
    }
    if (this.#client !== client) return void channel.close('gave up');
    this.#channel = channel;
    if (pin === 'new-device') {
      const { user, deviceName, fingerprint } = opened.host;
      this.emit(
        'notice',
        `${user}'s device "${deviceName}" (${fingerprint}) is new to you: pinned it next to ` +
          `${user}'s others (compare with ${user}: switchboard keys ${user})`,
      );
    }
    let step: 'welcome' | 'running' = 'welcome';
    channel.setHandlers({
      onMessage: (payload) => {
        try {
          const msg = decodeTerminal(payload);
          if (step === 'welcome' && msg.type === 'welcome') {
            step = 'running';
            this.#onWelcome(msg.welcome, {
              host: opened.host,
              hostName: opened.hostName ?? '',
              kind: opened.kind ?? 'agent',
              welcome: msg.welcome,
              handshakeHash: channel.handshakeHash,
            });
            return;
          }
          this.#onMessage(msg);
        } catch (err) {
          this.#fail(
            err instanceof SwitchboardError
              ? err
              : new CryptoError(ErrorCode.INVALID_MESSAGE, String(err)),
          );
        }
      },
      onClose: (code, reason) => {
        if (this.#channel !== channel) return;
        this.#channelEnded(new SessionError(code as ErrorCode, reason));
      },
    });
    this.#send({
      type: 'hello',
      hello: {
        v: TERMINAL_PROTOCOL_VERSION,
        cols: this.#cols,
        rows: this.#rows,
        readOnly: this.#o.readOnly,
        ...(this.#o.term ? { term: this.#o.term } : {}),
        // A process resuming another's attachment (options.resume) has a fresh screen: it asks
        // for a repaint; its own reconnects get the replay of what they missed.
        ...(this.#attachment
          ? {
              resume: {
                attachment: this.#attachment,
                offset: this.#expected,
                ...(!this.#everAttached || this.#o.repaintOnResume?.() ? { repaint: true } : {}),
              },
            }
          : {}),
      },
    });
  }

  /** The channel ended, while opening or attached: final, or a drop to resume from. */
  #channelEnded(err: SwitchboardError): void {
    // Closed by the host (or by the relay because the host ended the session): final.
    if (err.code === ErrorCode.CHANNEL_CLOSED) return this.#fail(err);
    // #lost ends it on the codes retrying cannot help (FATAL); PEER_GONE, SLOW_PEER… resume.
    this.#lost(err);
  }

  #onWelcome(welcome: Welcome, info: AttachedInfo): void {
    if (this.#everAttached && this.#attachment && !welcome.resumed) {
      this.emit(
        'notice',
        'could not resume the old attachment (it expired or its shell ended); this is a fresh one',
      );
      this.#expected = this.#acked = 0;
      this.#inputOffset = 0;
      this.#unacked = [];
      this.#unackedBytes = 0;
    }
    if (!this.#everAttached && welcome.inputOffset > 0) {
      // A new process resuming an old attachment: its own input starts where the host's stands.
      const base = this.#unacked[0]?.offset ?? this.#inputOffset;
      for (const u of this.#unacked) u.offset = welcome.inputOffset + (u.offset - base);
      this.#inputOffset = welcome.inputOffset + (this.#inputOffset - base);
    }
    this.#attachment = welcome.attachment;
    this.#running = true;
    if (welcome.readOnly && !this.#readOnly) {
      this.#readOnly = true;
      // On the first attach the caller shows welcome.readOnly with its banner, after the repaint
      // (a notice now would be cleared by it); later the change is news.
      if (this.#everAttached)
        this.emit(
          'notice',
          'read-only: the host does not take your keystrokes (~. still detaches)',
        );
    }
    this.#backoff?.reset();
    this.#lostSince = undefined;
    this.#attempts = 0;
    // Resend whatever input the host has not consumed yet.
    this.#unacked = this.#unacked.filter((u) => u.offset + u.data.length > welcome.inputOffset);
    for (const u of this.#unacked) this.#send({ type: 'input', offset: u.offset, data: u.data });
    if (!this.#everAttached) {
      this.#everAttached = true;
      this.emit('attached', info);
    } else {
      this.emit('state', 'attached');
    }
    this.#send({ type: 'resize', cols: this.#cols, rows: this.#rows });
  }

  #onMessage(msg: TerminalMessage): void {
    switch (msg.type) {
      case 'output': {
        const end = msg.offset + msg.data.length;
        if (end <= this.#expected) return; // already have it (resent after a resume)
        if (msg.offset > this.#expected) {
          // A gap cannot happen on an ordered channel; resync by reconnecting (resume or repaint).
          this.#lost(new SessionError(ErrorCode.INVALID_MESSAGE, 'output gap'));
          return;
        }
        this.emit('output', msg.data.subarray(this.#expected - msg.offset));
        this.#expected = end;
        this.#scheduleAck();
        return;
      }
      case 'snapshot':
        this.#expected = msg.offset;
        this.emit('snapshot', msg.data);
        this.#scheduleAck();
        return;
      case 'ack': {
        // The host consumed our input up to here.
        while (this.#unacked.length > 0) {
          const first = this.#unacked[0]!;
          if (first.offset + first.data.length > msg.offset) break;
          this.#unacked.shift();
          this.#unackedBytes -= first.data.length;
        }
        if (this.#unackedBytes < INPUT_WINDOW_BYTES) this.emit('drain');
        return;
      }
      case 'exit':
        this.#sendAck();
        this.#end({
          exit:
            msg.signal === undefined ? { code: msg.code } : { code: msg.code, signal: msg.signal },
        });
        return;
      case 'notice':
        this.emit('notice', msg.text);
        return;
      case 'bye':
        this.#fail(
          new SessionError(
            msg.code && isErrorCode(msg.code) ? msg.code : ErrorCode.CHANNEL_CLOSED,
            msg.reason,
          ),
        );
        return;
      default:
        return;
    }
  }

  #scheduleAck(): void {
    if (this.#expected - this.#acked >= ACK_EVERY_BYTES) return this.#sendAck();
    this.#ackTimer ??= setTimeout(() => this.#sendAck(), ACK_DELAY_MS);
  }

  #sendAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#expected === this.#acked) return;
    this.#acked = this.#expected;
    this.#send({ type: 'ack', offset: this.#acked });
  }

  #send(msg: TerminalMessage): void {
    if (!this.#channel || !this.#client || this.#client.closed) return;
    this.#channel.send(encodeTerminal(msg));
  }

  /**
   * Sends keystrokes (kept until the host confirms them, and resent after a reconnect).
   * Returns false when the unconfirmed input is over its window: stop reading until 'drain'.
   */
  input(data: Uint8Array): boolean {
    // Read-only: nothing is sent (the host would drop it), so nothing piles up unacknowledged.
    if (this.#ended || this.#readOnly) return true;
    for (let i = 0; i < data.length; i += MAX_CHUNK_BYTES) {
      // A copy: the caller may reuse its buffer (and a Buffer's slice would not copy).
      const piece = new Uint8Array(data.subarray(i, i + MAX_CHUNK_BYTES));
      const u = { offset: this.#inputOffset, data: piece };
      this.#inputOffset += piece.length;
      this.#unacked.push(u);
      this.#unackedBytes += piece.length;
      if (this.#running) this.#send({ type: 'input', offset: u.offset, data: u.data });
    }
    return this.#unackedBytes < INPUT_WINDOW_BYTES;
  }

  /** Asks the host for the current screen (after the CLI drew a notice over it). */
  requestRepaint(): void {
    if (this.#running) this.#send({ type: 'repaint' });
  }

  resize(cols: number, rows: number): void {
    this.#cols = cols;
    this.#rows = rows;
    if (this.#running) this.#send({ type: 'resize', cols, rows });
  }

  /** Leaves without ending the remote shell. */
  async detach(): Promise<void> {
    if (this.#ended) return;
    this.#send({ type: 'bye', reason: 'detached' });
    const client = this.#client;
    this.#client = undefined;
    // The relay answers the close after forwarding the bye, so the host has seen it before we go.
    if (client) await this.#channel?.close('detached');
    client?.close();
    this.#end({ detached: true });
  }

  /** Stops reading from the relay, as a congested link would; returns the function that resumes (tests use it). */
  simulateStall(): () => void {
    const client = this.#client;
    client?.pauseReading?.();
    return () => client?.resumeReading?.();
  }

  /** Cuts the relay connection as a network failure would (tests use it). */
  simulateDrop(): void {
    this.#client?.terminate?.();
  }

  #lost(err: unknown): void {
    if (this.#ended) return;
    const error =
      err instanceof SwitchboardError
        ? err
        : new SessionError(ErrorCode.CONNECTION_CLOSED, String(err));
    if (
      FATAL.has(error.code) &&
      !(this.#everAttached && error.code === ErrorCode.SESSION_NOT_FOUND)
    )
      return this.#fail(error);
    const client = this.#client;
    this.#client = undefined;
    this.#channel = undefined;
    this.#running = false;
    client?.close();
    this.#lostSince ??= Date.now();
    if (
      !this.#everAttached &&
      error.code !== ErrorCode.CONNECTION_CLOSED &&
      error.code !== ErrorCode.PEER_GONE
    ) {
      // The first attach failed for a reason other than the network: report it.
      return this.#fail(error);
    }
    if (Date.now() - this.#lostSince > RESUME_GIVE_UP_MS) return this.#fail(error);
    this.#attempts++;
    this.emit('state', 'reconnecting');
    const backoff = (this.#backoff ??= new Backoff());
    const delayMs = backoff.nextDelay();
    const info: ReconnectInfo = {
      reason: error.message,
      attempt: this.#attempts,
      lostForMs: Date.now() - this.#lostSince,
      nextInMs: delayMs,
    };
    this.emit('reconnecting', info);
    setTimeout(() => void this.#attempt(), delayMs);
  }

  #backoff: Backoff | undefined;
  /** Reconnect attempts since the connection was last up. */
  #attempts = 0;

  #fail(error: SwitchboardError): void {
    this.#end({ error });
  }

  #end(result: {
    exit?: { code: number; signal?: number };
    error?: SwitchboardError;
    detached?: boolean;
  }): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#ackTimer);
    const client = this.#client;
    this.#client = undefined;
    if (!result.detached) {
      const channel = this.#channel;
      if (client)
        void (channel?.close('controller done') ?? Promise.resolve()).finally(() => client.close());
    }
    this.emit('end', result);
  }
}

// The terminal service, host side: the access decision, then the terminal protocol (protocol/terminal.ts).
import { EventEmitter } from 'node:events';
import type { SecureDuplex } from '../../channel/e2e.js';
import { CryptoError, ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import type { PeerInfo } from '../../protocol/messages.js';
import {
  INPUT_ACK_DELAY_MS,
  INPUT_ACK_EVERY_BYTES,
  MAX_CHUNK_BYTES,
  TERMINAL_PROTOCOL_VERSION,
  decodeTerminal,
  encodeTerminal,
  type Hello,
  type TerminalMessage,
} from '../../protocol/terminal.js';
import { decideAccess } from '../access.js';
import type { HostSession, Placed } from '../host-session.js';
import { APPROVAL_TIMEOUT_MS, PEER_SETUP_TIMEOUT_MS } from '../timeouts.js';
import type { HostService, ServiceContext } from './service.js';

export const terminalService: HostService = {
  name: 'terminal',
  serve(ctx) {
    const host = ctx.host;
    // A terminal is a session's: there is none on a channel aimed at a user or device.
    if (!host) return void ctx.channel.close('no terminal here', ErrorCode.SERVICE_UNAVAILABLE);
    host.addTerminal(new TerminalPeer({ ...ctx, host }));
  },
};

/** One controller's terminal at the host: hello, access decision, then the terminal protocol. */
export class TerminalPeer extends EventEmitter {
  readonly #host: HostSession;
  readonly #channel: SecureDuplex;
  readonly #peer: PeerInfo;
  readonly #requestedReadOnly: boolean;
  #step: 'hello' | 'deciding' | 'running' | 'closed' = 'hello';
  #placed: Placed | undefined;
  /** The host's open question about this controller (share), aborted to withdraw it. */
  #question: AbortController | undefined;
  /** A device of a pinned user not pinned yet: the host is asked, and it is pinned if let in. */
  readonly #newDevice: boolean;
  /** Input offset last acknowledged, and the timer of the next acknowledgement. */
  #inputAcked = 0;
  #inputAckTimer: NodeJS.Timeout | undefined;
  #setupTimer: NodeJS.Timeout;

  constructor(ctx: ServiceContext & { host: HostSession }) {
    super();
    this.#host = ctx.host;
    this.#channel = ctx.channel;
    this.#peer = ctx.peer;
    this.#requestedReadOnly = ctx.readOnly;
    this.#newDevice = ctx.newDevice;
    ctx.channel.setHandlers({
      onMessage: (payload) => this.#onData(payload),
      onClose: (code, reason) => this.#onClosed(code, reason),
    });
    this.#setupTimer = setTimeout(() => {
      if (this.#step === 'hello')
        this.refuse(ErrorCode.CHANNEL_CLOSED, 'the terminal hello took too long');
    }, PEER_SETUP_TIMEOUT_MS);
    this.#setupTimer.unref();
  }

  get attachment(): string | undefined {
    return this.#placed?.att.id;
  }

  #send(msg: TerminalMessage): void {
    if (this.#step === 'closed') return;
    this.#channel.send(encodeTerminal(msg));
  }

  /**
   * Closes the channel with a code and a reason the controller will show: inside the E2E channel
   * (the relay cannot forge that), and in the relay's close.
   */
  refuse(code: ErrorCode, reason: string): void {
    if (this.#step === 'closed') return;
    this.#send({ type: 'bye', reason, code });
    this.#finish();
    void this.#channel.close(reason, code);
  }

  #finish(): void {
    if (this.#step === 'closed') return;
    this.#step = 'closed';
    this.#question?.abort('gone');
    clearTimeout(this.#setupTimer);
    clearTimeout(this.#inputAckTimer);
    if (this.#placed) this.#placed.stream.disconnect(this.#placed.att, this.#host.now);
    this.emit('closed');
  }

  #onClosed(_code: string, _reason: string): void {
    const placed = this.#placed;
    this.#finish();
    if (placed?.stream.exit) {
      this.#host.notice(`${placed.att.user}'s shell exited with ${placed.stream.exit.code}`);
    } else if (placed) {
      this.#host.notice(
        `${placed.att.user}'s connection dropped; they can resume within ${ttlText(this.#host.detachedTtlMs)}`,
      );
    }
  }

  #onData(payload: Uint8Array): void {
    try {
      if (this.#step === 'closed') return;
      const msg = decodeTerminal(payload);
      if (this.#step === 'hello') {
        if (msg.type !== 'hello')
          throw new CryptoError(ErrorCode.HANDSHAKE_FAILED, 'expected the terminal hello');
        this.#admit(msg.hello).catch((err: unknown) => this.#setupFailed(err));
        return;
      }
      if (this.#step === 'running') this.#onMessage(msg);
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

  /**
   * Setting up the attachment failed at this end (the shell could not be started: no PTY left,
   * a fork that failed): the controller is told why, the host's log says it, the host carries on.
   */
  #setupFailed(err: unknown): void {
    const why = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    this.#host.notice(`could not start a shell for ${this.#peer.user}: ${why}`);
    this.refuse(ErrorCode.SERVICE_UNAVAILABLE, `the host could not start a shell: ${why}`);
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
      // A new device of a pinned user is asked about even where the user would be let in.
      if (decision === 'ask' || this.#newDevice) {
        this.#send({
          type: 'notice',
          text: this.#newDevice
            ? 'waiting for the host to approve this device (new to them)…'
            : 'waiting for the host to approve…',
        });
        // Withdrawn when the requester leaves (#finish) or when the host does not answer in time.
        const question = new AbortController();
        this.#question = question;
        let timer: NodeJS.Timeout | undefined;
        const approved = await Promise.race([
          o.approve
            ? o
                .approve(this.#peer, question.signal, { newDevice: this.#newDevice })
                .catch(() => false)
            : false,
          new Promise<'timeout'>((r) => {
            timer = setTimeout(() => r('timeout'), APPROVAL_TIMEOUT_MS).unref();
          }),
          new Promise<'withdrawn'>((r) =>
            question.signal.addEventListener('abort', () => r('withdrawn'), { once: true }),
          ),
        ]);
        clearTimeout(timer);
        this.#question = undefined;
        if (approved === 'timeout') {
          question.abort('timeout');
          this.#host.notice(
            `no answer in ${APPROVAL_TIMEOUT_MS / 1000} s: ${this.#peer.user} was not let in`,
          );
          return this.refuse(
            ErrorCode.DENIED,
            `the host did not answer within ${APPROVAL_TIMEOUT_MS / 1000} s`,
          );
        }
        // Only #finish aborts before the race is over: the requester's channel closed.
        if (approved === 'withdrawn')
          return this.#host.notice(`${this.#peer.user} stopped asking to attach`);
        if (this.#step !== 'deciding') return;
        if (!approved) {
          this.#host.notice(`denied ${this.#peer.user}`);
          return this.refuse(ErrorCode.DENIED, 'the host did not approve');
        }
        if (this.#newDevice) {
          const { user, publicKey, deviceName } = this.#peer;
          o.knownPeers.pin(o.server, user, publicKey, 'new-device', deviceName);
        }
        readOnly = decision === 'ro' || this.#requestedReadOnly || hello.readOnly;
      } else {
        readOnly = decision === 'ro';
      }
    }
    const placedResult = this.#host.place(hello, this.#peer.user, this.#peer.publicKey, readOnly);
    if (placedResult === 'nothing-to-watch') {
      this.#host.notice(`${this.#peer.user} wanted to watch, but no shell is open`);
      return this.refuse(
        ErrorCode.SERVICE_UNAVAILABLE,
        'nothing to watch: no one has a shell open on this agent (a viewer watches one; try again once someone is attached)',
      );
    }
    if (!placedResult) return this.refuse(ErrorCode.CHANNEL_CLOSED, 'cannot place this attachment');
    const { placed, resumed: didResume } = placedResult;
    this.#placed = placed;
    // The welcome tells the controller where input stands: that is an acknowledgement too.
    this.#inputAcked = placed.att.inputOffset;
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
        ...(placed.watching !== undefined ? { watching: placed.watching } : {}),
      },
    });
    // Counts once connected (below): the PTY fits the smallest of the terminals sharing it.
    placed.stream.setControllerSize(placed.att, hello.cols, hello.rows);
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
    // A resume continues from the controller's offset, unless it asks for the screen instead.
    const resumeOffset = didResume && !hello.resume?.repaint ? hello.resume?.offset : undefined;
    placed.stream.connect(placed.att, sink, resumeOffset);
    this.#host.emit('audit', {
      type: 'attach',
      user: this.#peer.user,
      fingerprint: this.#peer.fingerprint,
      mode: placed.att.readOnly ? 'read-only' : 'read-write',
      resumed: didResume,
      ...(placed.watching !== undefined ? { watching: placed.watching } : {}),
    });
    this.#host.notice(
      `${this.#peer.user} (${this.#peer.fingerprint}) ${didResume ? 'resumed' : 'attached'} ${placed.att.readOnly ? 'read-only' : 'read-write'}${placed.watching !== undefined ? `, watching ${placed.watching}'s shell` : ''}`,
    );
  }

  /** Acknowledges consumed input soon, in one record for many keystrokes (see INPUT_ACK_DELAY_MS). */
  #ackInput(): void {
    const placed = this.#placed;
    if (!placed) return;
    if (placed.att.inputOffset - this.#inputAcked >= INPUT_ACK_EVERY_BYTES)
      return this.#sendInputAck();
    this.#inputAckTimer ??= setTimeout(this.#sendInputAck, INPUT_ACK_DELAY_MS);
  }

  /** One timer callback for the life of the peer, not a closure per keystroke. */
  readonly #sendInputAck = (): void => {
    clearTimeout(this.#inputAckTimer);
    this.#inputAckTimer = undefined;
    const offset = this.#placed?.att.inputOffset;
    if (offset === undefined || offset === this.#inputAcked || this.#step !== 'running') return;
    this.#inputAcked = offset;
    this.#send({ type: 'ack', offset });
  };

  #onMessage(msg: TerminalMessage): void {
    const placed = this.#placed!;
    switch (msg.type) {
      case 'input':
        placed.stream.input(placed.att, msg.offset, msg.data);
        if (!placed.att.readOnly) this.#ackInput();
        return;
      case 'ack':
        placed.stream.ack(placed.att, msg.offset);
        return;
      case 'resize':
        placed.stream.setControllerSize(placed.att, msg.cols, msg.rows);
        return;
      case 'repaint':
        placed.stream.repaint(placed.att, Date.now());
        return;
      case 'bye': {
        const { att } = placed;
        this.#host.notice(
          this.#host.options.kind === 'share' || placed.watching !== undefined
            ? `${att.user} detached`
            : `${att.user} detached; their shell keeps running, for \`attach\` within ${ttlText(this.#host.detachedTtlMs)}`,
        );
        // share, or an agent's viewer: gone for good; agent: its shell stays for a later attach.
        if (this.#host.options.kind === 'share' || placed.watching !== undefined)
          this.#host.forget(att.id);
        this.#finish();
        void this.#channel.close('detached');
        return;
      }
      default:
        // hello/welcome/output/snapshot/exit/notice are not for the host: ignore quietly.
        return;
    }
  }
}

/** A TTL for a notice: "10 min", "90 s". */
function ttlText(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}

// One PTY's output stream fanned out to attachments, with offsets, acknowledgements and replay.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import {
  MAX_CHUNK_BYTES,
  OUTPUT_COALESCE_MS,
  OUTPUT_WINDOW_BYTES,
  REPLAY_BUFFER_BYTES,
  type TerminalMessage,
} from '../protocol/terminal.js';
import { OutputRing } from './output-ring.js';
import type { Pty } from './pty.js';
import { SCREEN_BACKLOG_BYTES, Screen, blankSnapshot, type Snapshot } from './screen.js';

/** Where an attachment's messages go while its controller is connected (the E2E channel). */
/** Repaints one controller may ask for (after its CLI drew over the screen): one a second. */
export const REPAINT_MIN_INTERVAL_MS = 1_000; // ms

export interface AttachmentSink {
  send(msg: TerminalMessage): void;
}

/** One controller's position in the stream; outlives its connection so it can resume. */
export class Attachment {
  readonly id = randomBytes(16).toString('base64url');
  readonly user: string;
  readonly publicKey: string;
  readonly readOnly: boolean;
  sink: AttachmentSink | undefined;
  /** Next output offset to send, and the highest the controller acknowledged. */
  sent = 0;
  acked = 0;
  /** Input offset consumed so far (the controller resends anything after it on resume). */
  inputOffset = 0;
  exitSent = false;
  detachedAt: number | undefined;
  /** When output first went unacknowledged (undefined while fully acknowledged): finds stalled controllers. */
  waitingSince: number | undefined;
  /** A repaint was asked of the emulator for this attachment: nothing is sent until it is. */
  awaitingSnapshot = false;
  /** When the controller last asked for a repaint (see TerminalStream.repaint). */
  lastRepaintAt: number | undefined;
  /** The controller's terminal size, as it last said (read-write controllers share the PTY's). */
  size: { cols: number; rows: number } | undefined;

  constructor(user: string, publicKey: string, readOnly: boolean) {
    this.user = user;
    this.publicKey = publicKey;
    this.readOnly = readOnly;
  }
}

export interface TerminalStreamOptions {
  pty: Pty;
  cols: number;
  rows: number;
  /**
   * Pause the program when an attachment falls a window behind (agent: one controller per shell,
   * nothing may be lost). Off for share, where the local user must never be slowed by a controller.
   */
  lossless: boolean;
  replayBytes?: number;
}

/**
 * Events: 'output' (Buffer, for the local terminal), 'exit' ({code, signal}), 'exitSent'
 * (Attachment: its controller has been sent the exit, after all the output before it), 'input'
 * (Buffer: a controller's keystrokes, as written to the PTY), 'resize' (cols, rows).
 */
export class TerminalStream extends EventEmitter {
  readonly pty: Pty;
  readonly #ring: OutputRing;
  readonly #screen: Screen;
  readonly #lossless: boolean;
  readonly attachments = new Set<Attachment>();
  #paused = false;
  /** When output was last pumped to the attachments, and the timer of a held pump (see OUTPUT_COALESCE_MS). */
  #pumpedAt = -Infinity;
  #pumpTimer: NodeJS.Timeout | undefined;
  /** Ring offset at the last pump of all attachments. */
  #pumpedEnd = 0;
  exit: { code: number; signal?: number } | undefined;
  cols: number;
  rows: number;
  /** The host's own terminal (share), which the PTY must fit as well as the controllers'. */
  #hostSize: { cols: number; rows: number } | undefined;

  constructor(options: TerminalStreamOptions) {
    super();
    this.pty = options.pty;
    this.cols = options.cols;
    this.rows = options.rows;
    this.#lossless = options.lossless;
    this.#ring = new OutputRing(options.replayBytes ?? REPLAY_BUFFER_BYTES);
    this.#screen = new Screen(options.cols, options.rows);
    this.#screen.onProgress = () => this.#updatePause();
    this.pty.onData((data) => {
      this.#ring.append(data);
      this.#screen.write(data);
      if (this.#screen.backlog >= SCREEN_BACKLOG_BYTES) this.#updatePause();
      this.emit('output', data);
      this.#schedulePump();
    });
    // The Pty reports the exit only after its last output (see Pty.onExit).
    this.pty.onExit(({ exitCode, signal }) => {
      this.exit = signal ? { code: exitCode, signal } : { code: exitCode };
      this.#pumpAll();
      this.emit('exit', this.exit);
    });
  }

  /**
   * New output goes out at once after a pause; during a burst it waits until OUTPUT_COALESCE_MS
   * after the last pump, or until a full chunk is waiting, so it leaves in fewer, larger records.
   */
  #schedulePump(): void {
    if (this.#ring.end - this.#pumpedEnd >= MAX_CHUNK_BYTES) return this.#pumpAll();
    if (this.#pumpTimer) return;
    const wait = this.#pumpedAt + OUTPUT_COALESCE_MS - performance.now();
    if (wait <= 0) return this.#pumpAll();
    this.#pumpTimer = setTimeout(this.#pumpAll, wait);
  }

  readonly #pumpAll = (): void => {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    this.#pumpedAt = performance.now();
    this.#pumpedEnd = this.#ring.end;
    for (const a of this.attachments) this.pump(a);
  };

  get end(): number {
    return this.#ring.end;
  }

  /**
   * The screen as of all output emitted so far (its `offset` is `end` now), for the share's own
   * terminal; undefined without an emulator.
   */
  screenSnapshot(): Promise<Snapshot | undefined> {
    return this.#screen.snapshot();
  }

  /** Output read and not yet parsed by the emulator (bounded by SCREEN_BACKLOG_BYTES). */
  get screenBacklog(): number {
    return this.#screen.backlog;
  }

  /**
   * Connects an attachment's sink. With `resumeOffset` inside the replay buffer it continues from
   * there (nothing lost or repeated); otherwise it starts from a repaint of the current screen.
   */
  connect(att: Attachment, sink: AttachmentSink, resumeOffset?: number): void {
    this.attachments.add(att);
    att.sink = sink;
    att.detachedAt = undefined;
    att.exitSent = false;
    // A repaint asked for by an earlier connection is not this one's (see #requestSnapshot).
    att.awaitingSnapshot = false;
    if (
      resumeOffset !== undefined &&
      resumeOffset >= this.#ring.start &&
      resumeOffset <= this.#ring.end
    ) {
      att.sent = att.acked = resumeOffset;
    } else {
      this.#requestSnapshot(att);
    }
    this.#fitSize();
    this.pump(att);
  }

  disconnect(att: Attachment, now: number): void {
    att.sink = undefined;
    att.detachedAt = now;
    this.#fitSize();
    this.#updatePause();
    this.emit('delivery');
  }

  remove(att: Attachment): void {
    this.attachments.delete(att);
    att.sink = undefined;
    this.#fitSize();
    this.#updatePause();
    this.emit('delivery');
  }

  /** True once the program has exited and every connected controller has been sent the exit. */
  get exitDelivered(): boolean {
    if (!this.exit) return false;
    for (const a of this.attachments) if (a.sink && !a.exitSent) return false;
    return true;
  }

  /**
   * Resolves when {@link exitDelivered} holds, or after `timeoutMs` (a controller that stopped
   * reading cannot hold the caller forever); true if it was delivered.
   */
  whenExitDelivered(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (!this.exitDelivered) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (delivered: boolean) => {
        clearTimeout(timer);
        this.off('delivery', check);
        this.off('exit', check);
        resolve(delivered);
      };
      this.on('delivery', check);
      this.on('exit', check);
      check();
    });
  }

  /**
   * Asks the emulator for a repaint for this attachment; until it arrives the attachment gets
   * nothing, then the snapshot and the output after it. A snapshot that fell out of the replay
   * buffer while it was made (only if output outran the emulator's bound) is asked for again.
   */
  #requestSnapshot(att: Attachment): void {
    const sink = att.sink;
    if (!sink || att.awaitingSnapshot) return;
    att.awaitingSnapshot = true;
    void this.#screen.snapshot().then((snap: Snapshot | undefined) => {
      if (att.sink !== sink || !att.awaitingSnapshot) return; // gone, resumed or reconnected since
      att.awaitingSnapshot = false;
      // Without an emulator (its worker failed): a clear screen and all the replay buffer holds.
      const use = snap ?? blankSnapshot(this.#ring.start);
      if (use.offset < this.#ring.start) return this.#requestSnapshot(att);
      sink.send({ type: 'snapshot', offset: use.offset, data: use.data });
      att.sent = use.offset;
      this.pump(att);
    });
  }

  /**
   * A controller asked for the current screen (its CLI drew a notice over it): sent like any
   * repaint, at most one per REPAINT_MIN_INTERVAL_MS per attachment (more are ignored).
   */
  repaint(att: Attachment, now: number): void {
    if (att.lastRepaintAt !== undefined && now - att.lastRepaintAt < REPAINT_MIN_INTERVAL_MS)
      return;
    att.lastRepaintAt = now;
    this.#requestSnapshot(att);
  }

  /** Sends what the attachment's window allows. */
  pump(att: Attachment): void {
    const sink = att.sink;
    if (!sink || att.awaitingSnapshot) return;
    for (;;) {
      if (att.sent < this.#ring.start) {
        // Fell behind the replay buffer (a slow controller): bring it to the current screen, but
        // only once it has caught up with what it was sent, so a stalled one costs one snapshot.
        if (att.acked === att.sent) this.#requestSnapshot(att);
        break;
      }
      const room = OUTPUT_WINDOW_BYTES - (att.sent - att.acked);
      // Nothing new: stop without a read (every pump used to end with an empty one).
      if (room <= 0 || att.sent >= this.#ring.end) break;
      const chunk = this.#ring.read(att.sent, Math.min(MAX_CHUNK_BYTES, room));
      if (!chunk || chunk.length === 0) break;
      sink.send({ type: 'output', offset: att.sent, data: chunk });
      att.sent += chunk.length;
      att.waitingSince ??= Date.now();
    }
    if (this.exit && !att.exitSent && att.sent === this.#ring.end) {
      att.exitSent = true;
      sink.send({ type: 'exit', ...this.exit });
      this.#updatePause();
      this.emit('exitSent', att);
      this.emit('delivery');
      return;
    }
    this.#updatePause();
  }

  ack(att: Attachment, offset: number): void {
    if (offset > att.sent || offset < att.acked) return;
    att.acked = offset;
    att.waitingSince = offset === att.sent ? undefined : Date.now();
    this.pump(att);
  }

  /** Writes a controller's input once, whatever it resends after a reconnect. */
  input(att: Attachment, offset: number, data: Uint8Array): void {
    if (att.readOnly) return;
    const end = offset + data.length;
    if (end <= att.inputOffset) return;
    const skip = Math.max(0, att.inputOffset - offset);
    // A Buffer view of the decoded record for the PTY edge (no copy).
    const bytes = Buffer.from(data.buffer, data.byteOffset + skip, data.length - skip);
    this.pty.write(bytes);
    att.inputOffset = end;
    this.emit('input', bytes);
  }

  /** Input from the host's own terminal (share). */
  localInput(data: Buffer): void {
    this.pty.write(data);
  }

  /** The host's own terminal's size (share): the PTY is never larger. */
  setHostSize(cols: number, rows: number): void {
    this.#hostSize = { cols, rows };
    this.#fitSize();
  }

  /** A controller's terminal size (a read-only one's does not count: see #fitSize). */
  setControllerSize(att: Attachment, cols: number, rows: number): void {
    att.size = { cols, rows };
    this.#fitSize();
  }

  /**
   * The PTY takes the smallest size of the host's terminal and of the connected read-write
   * controllers' (as tmate does), so every one of them shows the whole screen; recomputed when
   * any of them resizes, joins or leaves. With none of them, the size stays as it was.
   */
  #fitSize(): void {
    let cols = this.#hostSize?.cols ?? Infinity;
    let rows = this.#hostSize?.rows ?? Infinity;
    for (const a of this.attachments) {
      if (!a.sink || a.readOnly || !a.size) continue;
      cols = Math.min(cols, a.size.cols);
      rows = Math.min(rows, a.size.rows);
    }
    if (Number.isFinite(cols) && Number.isFinite(rows)) this.resize(cols, rows);
  }

  resize(cols: number, rows: number): void {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    this.pty.resize(cols, rows);
    this.#screen.resize(cols, rows);
    this.emit('resize', cols, rows);
  }

  /**
   * Pauses the PTY while the emulator is over its backlog bound (both kinds of host: the program
   * is slowed, as it was when the emulator ran on this thread) or, for a lossless host, while a
   * controller is a window behind; resumes once neither holds.
   */
  #updatePause(): void {
    // Resumes at half the bound, so a program that outruns the emulator is not paused per read.
    const screenLimit = this.#paused ? SCREEN_BACKLOG_BYTES / 2 : SCREEN_BACKLOG_BYTES;
    let behind = this.#screen.backlog >= screenLimit;
    // A read-only watcher never holds the program back: one that falls behind is repainted.
    if (this.#lossless)
      for (const a of this.attachments)
        if (!a.readOnly && this.#ring.end - a.acked >= OUTPUT_WINDOW_BYTES) behind = true;
    if (behind && !this.#paused) {
      this.#paused = true;
      this.pty.pause();
    } else if (!behind && this.#paused) {
      this.#paused = false;
      this.pty.resume();
    }
  }

  close(): void {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    this.pty.kill('SIGHUP');
    this.#screen.dispose();
  }
}

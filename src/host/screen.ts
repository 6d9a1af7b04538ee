// The host's copy of the screen, so a late or resumed controller gets a repaint.
//
// Each shell's output is parsed by a headless xterm, which costs more per byte than everything
// else on the host's output path together (docs/performance.md). The emulators of all shells of
// a process live on one worker thread, off the thread that reads the PTYs and feeds the relay;
// output is posted to it as it is read, and a snapshot is asked for (and arrives) asynchronously.
import { Worker } from 'node:worker_threads';

/** Lines of scrollback kept and repainted for a joining controller. */
export const SNAPSHOT_SCROLLBACK = 200; // lines
/**
 * Output read from the PTY but not yet parsed by the emulator, past which the host pauses the
 * PTY (the program blocks) until the emulator catches up: the worker's queue stays bounded, and a
 * snapshot's offset stays inside the replay buffer.
 */
export const SCREEN_BACKLOG_BYTES = 1024 * 1024; // bytes
/**
 * Output goes to the worker in batches: once this much is waiting, or once no output has come
 * for this long. While someone types, the echoes wait for a pause in the output, so the worker
 * (on the other core) does not wake and parse while the next keystroke's echo is on its way.
 */
export const SCREEN_BATCH_BYTES = 64 * 1024; // bytes
export const SCREEN_BATCH_IDLE_MS = 50; // ms
/**
 * Clears the controller's screen first, so the repaint replaces, not mixes with, what it showed;
 * not its scrollback (no `ESC[3J`): what the user had in their terminal's history stays. It
 * leaves the alternate screen first: the snapshot draws the main screen, then switches to the
 * alternate one if the program is on it, and a terminal already there would draw both on it.
 */
const CLEAR = '\x1b[?1049l\x1b[H\x1b[2J';

export type ScreenRequest =
  | { op: 'open'; id: number; cols: number; rows: number }
  | { op: 'write'; id: number; data: Uint8Array; end: number }
  | { op: 'resize'; id: number; cols: number; rows: number }
  | { op: 'snapshot'; id: number; req: number; scrollback: number }
  | { op: 'close'; id: number };

export type ScreenReply =
  | { op: 'parsed'; id: number; end: number }
  | { op: 'snapshot'; id: number; req: number; offset: number; data: string };

export interface Snapshot {
  /** Written to a fresh terminal, redraws the screen as it was at `offset`. */
  data: Buffer;
  offset: number;
}

/** The worker thread shared by every Screen of this process, started with the first one. */
class ScreenWorker {
  readonly #worker: Worker;
  readonly #screens = new Map<number, Screen>();
  #nextId = 1;

  constructor() {
    this.#worker = new Worker(new URL('./screen-worker.js', import.meta.url));
    this.#worker.on('message', (msg: ScreenReply) => this.#screens.get(msg.id)?.onReply(msg));
    const fail = (err: Error) => {
      if (shared === this)
        process.emitWarning(
          `the screen emulator stopped (${err.message}); repaints now come from the replay buffer`,
        );
      for (const screen of this.#screens.values()) screen.onWorkerFailed();
      this.#screens.clear();
      if (shared === this) shared = undefined;
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`the screen worker exited (${code})`)));
    // Never what keeps the process alive: the PTYs and sockets do that (after the listeners,
    // which would take the reference again).
    this.#worker.unref();
  }

  /** Snapshots asked for and not yet answered: they keep the process alive until they are. */
  #waiting = 0;

  hold(delta: 1 | -1): void {
    this.#waiting += delta;
    if (this.#waiting === 1 && delta === 1) this.#worker.ref();
    else if (this.#waiting === 0) this.#worker.unref();
  }

  add(screen: Screen): number {
    const id = this.#nextId++;
    this.#screens.set(id, screen);
    return id;
  }

  remove(id: number): void {
    this.#screens.delete(id);
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }

  post(msg: ScreenRequest, transfer?: ArrayBuffer[]): void {
    this.#worker.postMessage(msg, transfer);
  }
}

let shared: ScreenWorker | undefined;

/** @internal Tests: ends the worker as a crash would (the next Screen starts a new one). */
export async function terminateScreenWorker(): Promise<void> {
  await shared?.terminate();
}

export class Screen {
  readonly #worker: ScreenWorker;
  readonly #id: number;
  /** Stream offset of the output posted to the emulator, and of what it reported parsed. */
  #posted = 0;
  #parsed = 0;
  #nextReq = 1;
  /** Output not yet posted to the worker (see SCREEN_BATCH_BYTES), and its timer. */
  #batch: Buffer[] = [];
  #batchBytes = 0;
  #batchTimer: NodeJS.Timeout | undefined;
  readonly #pending = new Map<number, (snap: Snapshot | undefined) => void>();
  #failed = false;
  #disposed = false;
  /** Called when the emulator's backlog shrinks (see SCREEN_BACKLOG_BYTES). */
  onProgress: (() => void) | undefined;

  constructor(cols: number, rows: number) {
    shared ??= new ScreenWorker();
    this.#worker = shared;
    this.#id = this.#worker.add(this);
    this.#worker.post({ op: 'open', id: this.#id, cols, rows });
  }

  /** Output posted to the emulator and not yet parsed there. */
  get backlog(): number {
    return this.#failed ? 0 : this.#posted - this.#parsed;
  }

  write(data: Buffer): void {
    this.#posted += data.length;
    if (this.#failed || this.#disposed) return;
    this.#batch.push(data);
    this.#batchBytes += data.length;
    if (this.#batchBytes >= SCREEN_BATCH_BYTES) return this.#flush();
    if (this.#batchTimer) this.#batchTimer.refresh();
    else this.#batchTimer = setTimeout(this.#flush, SCREEN_BATCH_IDLE_MS).unref();
  }

  /** Posts the waiting output: one copy of just these bytes, moved (not cloned) to the worker. */
  readonly #flush = (): void => {
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    if (this.#batchBytes === 0) return;
    const data = new Uint8Array(this.#batchBytes);
    let at = 0;
    for (const chunk of this.#batch) {
      data.set(chunk, at);
      at += chunk.length;
    }
    this.#batch = [];
    this.#batchBytes = 0;
    this.#worker.post({ op: 'write', id: this.#id, data, end: this.#posted }, [data.buffer]);
  };

  resize(cols: number, rows: number): void {
    if (this.#failed || this.#disposed) return;
    this.#flush(); // the output before the resize is parsed at the old size
    this.#worker.post({ op: 'resize', id: this.#id, cols, rows });
  }

  /**
   * The screen as of all output written so far, and the offset it is valid at; undefined if the
   * emulator failed (the caller repaints from its replay buffer instead).
   */
  snapshot(): Promise<Snapshot | undefined> {
    if (this.#failed || this.#disposed) return Promise.resolve(undefined);
    this.#flush();
    const req = this.#nextReq++;
    this.#worker.hold(1);
    return new Promise((resolve) => {
      this.#pending.set(req, (snap) => {
        this.#worker.hold(-1);
        resolve(snap);
      });
      this.#worker.post({ op: 'snapshot', id: this.#id, req, scrollback: SNAPSHOT_SCROLLBACK });
    });
  }

  /** @internal From the worker. */
  onReply(msg: ScreenReply): void {
    if (msg.op === 'parsed') {
      this.#parsed = Math.max(this.#parsed, msg.end);
      this.onProgress?.();
      return;
    }
    this.#parsed = Math.max(this.#parsed, msg.offset);
    const resolve = this.#pending.get(msg.req);
    this.#pending.delete(msg.req);
    resolve?.({ data: Buffer.from(`${CLEAR}${msg.data}`), offset: msg.offset });
    this.onProgress?.();
  }

  /** @internal The worker died: nothing more will be parsed. */
  onWorkerFailed(): void {
    this.#failed = true;
    clearTimeout(this.#batchTimer);
    this.#batch = [];
    for (const resolve of this.#pending.values()) resolve(undefined);
    this.#pending.clear();
    this.onProgress?.();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    clearTimeout(this.#batchTimer);
    this.#batch = [];
    for (const resolve of this.#pending.values()) resolve(undefined);
    this.#pending.clear();
    this.#worker.remove(this.#id);
    if (!this.#failed) this.#worker.post({ op: 'close', id: this.#id });
  }
}

/** The repaint used when the emulator is gone: a clear screen, then the replay buffer from `offset`. */
export function blankSnapshot(offset: number): Snapshot {
  return { data: Buffer.from(CLEAR), offset };
}

// The PTY edge: the small interface the host needs, and its node-pty implementation.
import { readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface Pty {
  readonly pid: number;
  write(data: string | Buffer): void;
  resize(cols: number, rows: number): void;
  /** Stop reading the PTY (backpressure); the program blocks once the kernel buffer fills. */
  pause(): void;
  resume(): void;
  kill(signal?: string): void;
  onData(listener: (data: Buffer) => void): void;
  /**
   * Called once the program has exited and its last output has been delivered to onData (node-pty
   * reports the exit only after the PTY's read side has closed, and spawnPty drains what libuv left
   * behind), so nothing follows it. Not yet lossless: if the PTY is paused when the program exits,
   * node-pty destroys the read side 200 ms later and the output still unread there is lost.
   */
  onExit(listener: (exit: { exitCode: number; signal?: number }) => void): void;
}

export interface SpawnOptions {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
}

interface NodePtyModule {
  spawn(
    file: string,
    args: string[],
    options: {
      name: string;
      cols: number;
      rows: number;
      cwd: string;
      env: Record<string, string>;
      encoding: null;
    },
  ): {
    pid: number;
    write(data: string | Buffer): void;
    resize(cols: number, rows: number): void;
    pause(): void;
    resume(): void;
    kill(signal?: string): void;
    onData(listener: (data: string | Buffer) => void): void;
    onExit(listener: (e: { exitCode: number; signal?: number }) => void): void;
    /** The master's file descriptor (UnixTerminal). */
    readonly fd: number;
    /** Forwarded to the master's tty.ReadStream: 'end' is libuv's EOF. */
    on(event: 'end', listener: () => void): void;
  };
}

/** Most bytes read from the master after libuv's early EOF: the kernel's PTY buffer is far less. */
const DRAIN_MAX_BYTES = 1024 * 1024;
/** Read size while draining (a PTY read returns at most a few KB). */
const DRAIN_CHUNK_BYTES = 64 * 1024;

/**
 * Reads what is left in the master after libuv reported EOF too early. libuv (1.46, Node 20) takes
 * POLLHUP after a partial read as EOF, but a Linux PTY master still holds output when the program
 * wrote it and exited at once (libuv/libuv#4992, fixed upstream by #4997 and #5165): without this
 * the last few KB are lost. The fd is still open here (the socket is destroyed after 'end'), and
 * with the slave closed the kernel returns the buffered data, then EIO.
 */
function drain(fd: number, deliver: (data: Buffer) => void): void {
  for (let total = 0; total < DRAIN_MAX_BYTES;) {
    const buf = Buffer.allocUnsafe(DRAIN_CHUNK_BYTES);
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch {
      return; // EIO: the slave is closed and nothing is left (EAGAIN: nothing left either).
    }
    if (n === 0) return;
    deliver(buf.subarray(0, n));
    total += n;
  }
}

const require = createRequire(import.meta.url);

/** Spawns a program on a new PTY (raw bytes out: `encoding: null`). */
/**
 * Writes to the PTY master directly: at once while the kernel takes the bytes (a keystroke is one
 * `write` syscall on the main thread, where node-pty's writer hands each write to the thread
 * pool and back, 0.33 ms a key in the profile), and what the kernel does not take yet is queued
 * and retried in order on the next turn, as node-pty does. The master fd is non-blocking, so a
 * write never stalls the event loop: a full PTY answers EAGAIN.
 */
class MasterWriter {
  readonly #fd: number;
  readonly #queue: Buffer[] = [];
  #retry: NodeJS.Immediate | undefined;
  #broken = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  write(data: Buffer): void {
    if (data.length === 0 || this.#broken) return;
    // Behind queued bytes, a new write waits its turn (order is everything for a terminal).
    if (this.#queue.length > 0) {
      this.#queue.push(Buffer.from(data));
      return;
    }
    const rest = this.#writeNow(data);
    if (rest) {
      this.#queue.push(Buffer.from(rest));
      this.#schedule();
    }
  }

  dispose(): void {
    clearImmediate(this.#retry);
    this.#retry = undefined;
    this.#queue.length = 0;
  }

  /** Writes what the kernel takes now; returns the rest (undefined: all written, or the PTY is gone). */
  #writeNow(data: Buffer): Buffer | undefined {
    let offset = 0;
    while (offset < data.length) {
      try {
        offset += writeSync(this.#fd, data, offset, data.length - offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return data.subarray(offset);
        // EIO and the like: the other side is gone; the exit is reported through onExit.
        this.#broken = true;
        this.#queue.length = 0;
        return undefined;
      }
    }
    return undefined;
  }

  #schedule(): void {
    this.#retry ??= setImmediate(() => {
      this.#retry = undefined;
      while (this.#queue.length > 0) {
        const rest = this.#writeNow(this.#queue[0]!);
        if (rest) {
          this.#queue[0] = rest;
          this.#schedule();
          return;
        }
        this.#queue.shift();
      }
    });
  }
}

export function spawnPty(options: SpawnOptions): Pty {
  const nodePty = require('node-pty') as NodePtyModule;
  const p = nodePty.spawn(options.file, options.args, {
    name: options.env['TERM'] ?? 'xterm-256color',
    cols: options.cols,
    rows: options.rows,
    cwd: options.cwd,
    env: options.env,
    encoding: null,
  });
  let exited = false;
  const dataListeners: ((data: Buffer) => void)[] = [];
  const deliver = (data: Buffer) => {
    for (const listener of dataListeners) listener(data);
  };
  p.onData((d) => deliver(typeof d === 'string' ? Buffer.from(d) : d));
  // 'end' comes after the last 'data' and before 'close', after which node-pty reports the exit.
  p.on('end', () => drain(p.fd, deliver));
  const writer = new MasterWriter(p.fd);
  return {
    pid: p.pid,
    write: (data) => {
      if (!exited) writer.write(typeof data === 'string' ? Buffer.from(data) : data);
    },
    resize: (cols, rows) => {
      if (!exited) p.resize(cols, rows);
    },
    pause: () => p.pause(),
    resume: () => p.resume(),
    kill: (signal) => {
      if (!exited) p.kill(signal);
    },
    onData: (listener) => {
      dataListeners.push(listener);
    },
    onExit: (listener) =>
      p.onExit((e) => {
        exited = true;
        writer.dispose();
        listener(e);
      }),
  };
}

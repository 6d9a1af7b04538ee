// The PTY edge: the small interface the host needs, and its node-pty implementation.
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
   * reports the exit only after the PTY's read side has closed), so nothing follows it.
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
  };
}

const require = createRequire(import.meta.url);

/** Spawns a program on a new PTY (raw bytes out: `encoding: null`). */
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
  return {
    pid: p.pid,
    write: (data) => {
      if (!exited) p.write(data);
    },
    resize: (cols, rows) => {
      if (!exited) p.resize(cols, rows);
    },
    pause: () => p.pause(),
    resume: () => p.resume(),
    kill: (signal) => {
      if (!exited) p.kill(signal);
    },
    onData: (listener) => p.onData((d) => listener(typeof d === 'string' ? Buffer.from(d) : d)),
    onExit: (listener) =>
      p.onExit((e) => {
        exited = true;
        listener(e);
      }),
  };
}

// Long-running helper processes (relay, agent, sshd): start, wait for a line, stop by pid.
import { spawn, type ChildProcess } from 'node:child_process';

/** Output kept per stream for error messages. */
const TAIL_CHARS = 4_000; // characters
/** Time a child gets after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000; // ms

export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout = '';
  stderr = '';
  #exitCode: number | null | undefined;

  constructor(name: string, file: string, args: string[], env: NodeJS.ProcessEnv) {
    this.name = name;
    this.process = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout = (this.stdout + s).slice(-TAIL_CHARS);
    });
    this.process.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-TAIL_CHARS);
    });
    this.exited = new Promise((resolve) => {
      this.process.once('error', (err) => {
        this.stderr += `\n${err.message}`;
        this.#exitCode = null;
        resolve(null);
      });
      this.process.once('exit', (code) => {
        this.#exitCode = code;
        resolve(code);
      });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /** What it printed, for an error message. */
  describe(): string {
    return `${this.name} stdout:\n${this.stdout.trim()}\n${this.name} stderr:\n${this.stderr.trim()}`;
  }

  /** Resolves with the first match of `re` on stdout; rejects if it exits or times out first. */
  waitForStdout(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.stdout);
        if (!m) return;
        done();
        resolve(m);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.name} printed nothing matching ${re} within ${timeoutMs} ms\n${this.describe()}`,
          ),
        );
      }, timeoutMs);
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`${this.name} exited (${code}) before it was ready\n${this.describe()}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.process.stdout!.off('data', check);
        this.process.off('exit', onExit);
      };
      this.process.stdout!.on('data', check);
      this.process.once('exit', onExit);
      if (this.#exitCode !== undefined) onExit(this.#exitCode);
      else check();
    });
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.#exitCode !== undefined) return this.#exitCode;
    this.process.kill('SIGTERM');
    if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) this.process.kill('SIGKILL');
    return this.exited;
  }
}

/** True if the promise settles within the time, false otherwise (the timer never outlives it). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => true as const,
        () => true as const,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// The real `switchboard` binary on its own PTY, its screen output collected (CLI tests).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { IPty } from 'node-pty';

const require = createRequire(import.meta.url);
const nodePty = require('node-pty') as {
  spawn: (file: string, args: string[], options: object) => IPty;
};

export const BIN = fileURLToPath(new URL('../../bin/switchboard', import.meta.url));

/** Every CLI process the tests started: killed after them, so a failed test cannot hang the file. */
export const started = new Set<PtyProcess>();

/** A CLI process on its own PTY, with its screen output collected. */
export class PtyProcess {
  readonly proc: IPty;
  out = '';
  exitCode: number | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(args: string[], env: Record<string, string>, cols = 100, rows = 30) {
    this.proc = nodePty.spawn(process.execPath, [BIN, ...args], {
      name: env['TERM'] ?? 'xterm-256color',
      cols,
      rows,
      cwd: process.cwd(),
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'xterm-256color', ...env },
    });
    started.add(this);
    this.proc.onData((d) => {
      this.out += d;
      for (const w of this.#waiters) w();
    });
    this.proc.onExit(({ exitCode }) => {
      this.exitCode = exitCode;
      for (const w of this.#waiters) w();
    });
  }

  waitFor(test: (out: string) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (test(this.out)) done(resolve);
        else if (this.exitCode !== undefined)
          done(() =>
            reject(
              new Error(
                `exited ${this.exitCode} while waiting for ${what}: ${JSON.stringify(this.out.slice(-400))}`,
              ),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new Error(`timed out waiting for ${what}: ${JSON.stringify(this.out.slice(-400))}`),
            ),
          ),
        timeoutMs,
      );
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        fn();
      };
      this.#waiters.add(check);
      check();
    });
  }

  waitText(text: string, timeoutMs?: number): Promise<void> {
    return this.waitFor((o) => o.includes(text), JSON.stringify(text), timeoutMs);
  }

  waitExit(timeoutMs = 20_000): Promise<number> {
    return this.waitFor(() => this.exitCode !== undefined, 'exit', timeoutMs).then(
      () => this.exitCode!,
    );
  }

  write(data: string): void {
    this.proc.write(data);
  }

  /** Ends it if it still runs (a failed test must not leave it holding the test process open). */
  kill(): void {
    if (this.exitCode === undefined) this.proc.kill('SIGKILL');
  }
}

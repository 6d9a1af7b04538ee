// The relay a bench run starts for itself (relay-child.ts in its own process), and its readings.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { settlesWithin } from './child.js';
import type { OwnRelayReady } from './relay-child.js';

/** Time the relay process has to listen. */
const START_MS = 60_000; // ms
/** Time it has to close after the bench disconnects (then SIGKILL). */
const STOP_MS = 10_000; // ms

export class OwnRelay {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  port = 0;
  plainPort = 0;
  fingerprint = '';
  #stderr = '';

  private constructor(dataDir: string) {
    this.#child = fork(fileURLToPath(new URL('./relay-child.js', import.meta.url)), [dataDir], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.#child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-4_000);
    });
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
  }

  static async start(dataDir: string): Promise<OwnRelay> {
    const relay = new OwnRelay(dataDir);
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      new Promise<OwnRelayReady | { type: 'failed'; message: string }>((resolve) =>
        relay.#child.once('message', resolve as (m: unknown) => void),
      ),
      relay.#exited.then(() => ({ type: 'failed' as const, message: 'it exited' })),
      new Promise<{ type: 'failed'; message: string }>(
        (resolve) =>
          (timer = setTimeout(
            () => resolve({ type: 'failed', message: `not listening within ${START_MS / 1000} s` }),
            START_MS,
          )),
      ),
    ]);
    clearTimeout(timer);
    if (first.type !== 'listening') {
      relay.#child.kill('SIGKILL');
      throw new Error(`the bench's relay did not start: ${first.message}\n${relay.#stderr}`);
    }
    relay.port = first.port;
    relay.plainPort = first.plainPort;
    relay.fingerprint = first.fingerprint;
    return relay;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    if (this.#child.connected) this.#child.disconnect();
    if (!(await settlesWithin(this.#exited, STOP_MS))) this.#child.kill('SIGKILL');
    await this.#exited;
  }
}

// A relay in its own Node.js process for the messaging benchmark (so its memory and CPU are its
// own), started with startRelay() and driven over IPC: listening, memory readings, close.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { settlesWithin } from '../../src/bench/child.js';

/** Time the relay process has to listen, and to answer one IPC request. */
const START_TIMEOUT_MS = 30_000; // ms
const REQUEST_TIMEOUT_MS = 30_000; // ms
/** Time it has to exit after a close request (then SIGKILL). */
const STOP_GRACE_MS = 10_000; // ms

/** What the child is started with (argv[2], JSON). */
export interface RelayProcessConfig {
  dataDir: string;
  /** RelayOptions.maxConnections; default the relay's (10 000, within ulimit -n). */
  maxConnections?: number;
  /** RelayOptions.maxConnectionsPerAddress; default the relay's (256). */
  maxConnectionsPerAddress?: number;
  /** RelayOptions.signupCredit: credits minted for each new account; default the relay's (100). */
  signupCredit?: number;
}

/** Cumulative readings of the relay process since it started. */
export interface RelayLoad {
  /** process.cpuUsage(), µs, every thread (SQLite runs on the main one): user, and system (the kernel's work for it: sockets, writes, fsync). */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** performance.eventLoopUtilization(): time the event loop was busy, and idle, ms. */
  eluActiveMs: number;
  eluIdleMs: number;
}

/** The relay process's memory: process.memoryUsage(), bytes. */
export interface RelayMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** Parent → child. */
export type RelayRequest =
  | { id: number; type: 'memory'; gc: boolean }
  | { id: number; type: 'stats' }
  | { id: number; type: 'load' }
  | { id: number; type: 'close' };

/** Child → parent. */
export type RelayReport =
  | { type: 'listening'; port: number; fingerprint: string }
  | { type: 'failed'; message: string }
  | { id: number; type: 'memory'; memory: RelayMemory }
  | { id: number; type: 'stats'; connections: number; sockets: number }
  | { id: number; type: 'load'; load: RelayLoad }
  | { id: number; type: 'closed' };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export class RelayProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  server = '';
  port = 0;
  fingerprint = '';
  #nextId = 1;
  readonly #waiting = new Map<number, (r: RelayReport) => void>();
  #stderr = '';

  private constructor(config: RelayProcessConfig, nodeArgs: readonly string[]) {
    const entry = fileURLToPath(new URL('./relay-child.js', import.meta.url));
    // --expose-gc: a heap reading after a full collection is steadier than one between them.
    this.child = fork(entry, [JSON.stringify(config)], {
      execArgv: ['--expose-gc', ...nodeArgs],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-4_000);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.on('message', (m: RelayReport) => {
      if (!('id' in m)) return;
      const settle = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      settle?.(m);
    });
  }

  /** Forks the relay (`node [nodeArgs]`, e.g. --cpu-prof) and resolves once it listens on 127.0.0.1. */
  static async start(
    config: RelayProcessConfig,
    nodeArgs: readonly string[] = [],
  ): Promise<RelayProcess> {
    const p = new RelayProcess(config, nodeArgs);
    const first = await Promise.race([
      new Promise<RelayReport>((resolve) => p.child.once('message', resolve)),
      p.exited.then((code): RelayReport => ({ type: 'failed', message: `exited (${code})` })),
      new Promise<RelayReport>((resolve) =>
        setTimeout(
          () => resolve({ type: 'failed', message: `not listening within ${START_TIMEOUT_MS} ms` }),
          START_TIMEOUT_MS,
        ).unref(),
      ),
    ]);
    if (first.type !== 'listening') {
      p.child.kill('SIGKILL');
      throw new Error(
        `the relay process did not start: ${first.type === 'failed' ? first.message : first.type}\n${p.#stderr}`,
      );
    }
    p.port = first.port;
    p.server = `127.0.0.1:${first.port}`;
    p.fingerprint = first.fingerprint;
    return p;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends a request; resolves with the child's answer of type `answer`. */
  #request<T extends RelayReport['type']>(
    body: DistributiveOmit<RelayRequest, 'id'>,
    answer: T,
  ): Promise<Extract<RelayReport, { type: T }>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`the relay process did not answer ${body.type} in time\n${this.#stderr}`));
      }, REQUEST_TIMEOUT_MS);
      this.#waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.type === answer) resolve(r as Extract<RelayReport, { type: T }>);
        else reject(new Error(`the relay process answered ${body.type} with ${r.type}`));
      });
      this.child.send({ ...body, id });
    });
  }

  /** The relay process's memory now; with `gc`, after a full garbage collection. */
  async memory(gc = false): Promise<RelayMemory> {
    return (await this.#request({ type: 'memory', gc }, 'memory')).memory;
  }

  /** WebSocket connections and TCP sockets the relay holds now. */
  async stats(): Promise<{ connections: number; sockets: number }> {
    const r = await this.#request({ type: 'stats' }, 'stats');
    return { connections: r.connections, sockets: r.sockets };
  }

  /** The relay process's CPU time and event-loop utilisation since it started. */
  async load(): Promise<RelayLoad> {
    return (await this.#request({ type: 'load' }, 'load')).load;
  }

  /** Closes the relay (its clients are told), then the process; SIGKILL if it hangs. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected)
      await settlesWithin(this.#request({ type: 'close' }, 'closed'), STOP_GRACE_MS);
    if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) this.child.kill('SIGKILL');
    await this.exited;
  }
}

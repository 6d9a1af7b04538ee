// Many connected users for the broadcast benchmark, spread over child processes (one Node.js
// process cannot do 10 000 TLS handshakes quickly on one thread): each child signs its users up,
// logs each in on its own connection and keeps it; on request logs them all in again with their
// tokens (to a restarted relay); reports when each got a broadcast.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { settlesWithin } from '../../src/bench/child.js';

/** Time a child has to close its connections and exit before SIGKILL. */
const STOP_GRACE_MS = 15_000; // ms

/** What one child is started with (argv[2], JSON). */
export interface FleetChildConfig {
  server: string;
  fingerprint: string;
  /** Scratch directory for the child's known_servers file. */
  dir: string;
  /** Its users are `${prefix}${first}` … `${prefix}${first + count - 1}`. */
  prefix: string;
  first: number;
  count: number;
  /** Users being set up at once in this child. */
  concurrency: number;
  /** No user is started after this epoch time (ms); those left count as not connected. */
  deadline: number;
}

/** Parent → child. */
export type FleetRequest =
  | { type: 'reconnect'; relay: { server: string; fingerprint: string }; deadline: number }
  | { type: 'collect'; timeoutMs: number }
  | { type: 'verify' }
  | { type: 'close' };

/**
 * Per-user setup timings by step, ms: `connect` (TLS + WebSocket + hello), then `signup` and
 * `login` (accounts), or `token` (auth.token, reconnecting).
 */
export type SetupTimes = Record<string, number[]>;

/** Child → parent. */
export type FleetReport =
  | {
      type: 'ready';
      connected: number;
      failed: number;
      firstError: string | undefined;
      times: SetupTimes;
      rss: number;
    }
  | {
      type: 'arrivals';
      /** Epoch ms (performance.timeOrigin + now()) at which each user got the broadcast. */
      times: number[];
      /** Users online that did not get it within the timeout; users whose connection closed. */
      missing: number;
      closed: number;
      rss: number;
    }
  | { type: 'verified'; ok: number; bad: number };

class FleetChild {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr = '';
  readonly #queue: FleetReport[] = [];
  #waiter: ((r: FleetReport) => void) | undefined;

  constructor(config: FleetChildConfig) {
    const entry = fileURLToPath(new URL('./broadcast-child.js', import.meta.url));
    this.process = fork(entry, [JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.process.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-4_000);
    });
    this.exited = new Promise((resolve) => this.process.once('exit', (code) => resolve(code)));
    this.process.on('message', (m: FleetReport) => {
      const w = this.#waiter;
      this.#waiter = undefined;
      if (w) w(m);
      else this.#queue.push(m);
    });
  }

  /** The child's next report; rejects if it exits first or after `timeoutMs`. */
  next<T extends FleetReport['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FleetReport, { type: T }>> {
    const check = (r: FleetReport): Extract<FleetReport, { type: T }> => {
      if (r.type !== type) throw new Error(`a fleet child reported ${r.type}, not ${type}`);
      return r as Extract<FleetReport, { type: T }>;
    };
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(check(queued));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new Error(`a fleet child sent no ${type} within ${timeoutMs} ms\n${this.stderr}`));
      }, timeoutMs);
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`a fleet child exited (${code}) before ${type}\n${this.stderr}`));
      });
      this.#waiter = (r) => {
        clearTimeout(timer);
        try {
          resolve(check(r));
        } catch (err) {
          reject(err as Error);
        }
      };
    });
  }

  send(r: FleetRequest): void {
    if (this.process.connected) this.process.send(r);
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.send({ type: 'close' });
    if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) this.process.kill('SIGKILL');
    await this.exited;
  }
}

export interface FleetOptions {
  server: string;
  fingerprint: string;
  dir: string;
  prefix: string;
  users: number;
  children: number;
  /** Users set up at once per child. */
  concurrency: number;
  /** Each setup stops starting users after this long; the rest count as not connected. */
  setupLimitMs: number;
}

export interface FleetReady {
  connected: number;
  failed: number;
  firstError: string | undefined;
  times: SetupTimes;
  /** Summed RSS of the child processes, bytes. */
  childrenRss: number;
}

/** `users` users over `children` processes; `start()` resolves once every child is set up. */
export class BroadcastFleet {
  readonly #o: FleetOptions;
  readonly #children: FleetChild[] = [];

  constructor(o: FleetOptions) {
    this.#o = o;
  }

  /** Forks the children; resolves once each has signed up and logged in its users. */
  async start(): Promise<FleetReady> {
    const { users, children } = this.#o;
    const deadline = Date.now() + this.#o.setupLimitMs;
    let first = 0;
    for (let i = 0; i < children; i++) {
      const count = Math.floor(users / children) + (i < users % children ? 1 : 0);
      this.#children.push(
        new FleetChild({
          server: this.#o.server,
          fingerprint: this.#o.fingerprint,
          dir: this.#o.dir,
          prefix: this.#o.prefix,
          first,
          count,
          concurrency: this.#o.concurrency,
          deadline,
        }),
      );
      first += count;
    }
    return this.#ready();
  }

  /** Every user's connection closed, then opened again to `relay` with its token. */
  async reconnect(relay: { server: string; fingerprint: string }): Promise<FleetReady> {
    const deadline = Date.now() + this.#o.setupLimitMs;
    for (const c of this.#children) c.send({ type: 'reconnect', relay, deadline });
    return this.#ready();
  }

  async #ready(): Promise<FleetReady> {
    // The children stop starting users at the deadline; those in flight get the TLS and
    // request timeouts (10 s and 30 s) on top.
    const reports = await Promise.all(
      this.#children.map((c) => c.next('ready', this.#o.setupLimitMs + 60_000)),
    );
    const times: SetupTimes = {};
    for (const r of reports)
      for (const [step, xs] of Object.entries(r.times))
        times[step] = [...(times[step] ?? []), ...xs];
    return {
      connected: reports.reduce((n, r) => n + r.connected, 0),
      failed: reports.reduce((n, r) => n + r.failed, 0),
      firstError: reports.find((r) => r.firstError)?.firstError,
      times,
      childrenRss: reports.reduce((n, r) => n + r.rss, 0),
    };
  }

  /** Every user's arrival time of the broadcast just sent, waiting up to `timeoutMs`. */
  async arrivals(timeoutMs: number) {
    for (const c of this.#children) c.send({ type: 'collect', timeoutMs });
    const reports = await Promise.all(
      this.#children.map((c) => c.next('arrivals', timeoutMs + 30_000)),
    );
    return {
      times: reports.flatMap((r) => r.times),
      missing: reports.reduce((n, r) => n + r.missing, 0),
      closed: reports.reduce((n, r) => n + r.closed, 0),
      childrenRss: reports.reduce((n, r) => n + r.rss, 0),
    };
  }

  /** Each user checks the broadcast's signature (after the timing, so it does not slow it). */
  async verify(timeoutMs: number): Promise<{ ok: number; bad: number }> {
    for (const c of this.#children) c.send({ type: 'verify' });
    const reports = await Promise.all(this.#children.map((c) => c.next('verified', timeoutMs)));
    return {
      ok: reports.reduce((n, r) => n + r.ok, 0),
      bad: reports.reduce((n, r) => n + r.bad, 0),
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.#children.map((c) => c.stop()));
  }
}

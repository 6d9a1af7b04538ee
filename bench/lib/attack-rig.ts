// Tools for replaying attacks on a `switchboard serve` child: a descriptor-limited relay, raw sockets from chosen source addresses, /metrics and /proc readings.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { WS_PATH } from '../../src/protocol/limits.js';
import { httpsGet } from '../../test/helpers.js';

/** Time the relay has to print its port and fingerprint. */
const START_TIMEOUT_MS = 30_000; // ms
/** Time it has to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000; // ms
/** Log lines kept whose `msg` the caller asked for (the rest are only counted). */
const MAX_KEPT_LOG_LINES = 10_000;

/** One JSON log line of the relay. */
export interface LogLine {
  time: number;
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface RelayChildOptions {
  /** Data directory (a fresh temp dir). */
  dataDir: string;
  /** `ulimit -n` for the relay process (soft and hard). */
  fdLimit: number;
  /** Extra `serve` flags, e.g. ['--log-level', 'info']. */
  extra?: string[];
  /** Log messages (`msg`) to keep with their fields, for timings read from the relay's own clock. */
  keep?: readonly string[];
}

/**
 * `bin/switchboard serve` on 127.0.0.1, port 0, under `ulimit -n`, as an operator would run it
 * behind a default systemd or shell limit. `exec` keeps the pid: /proc/PID is the relay itself.
 */
export class RelayChild {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  port = 0;
  server = '';
  fingerprint = '';
  /** Bytes the relay wrote to stderr (its log) so far. */
  stderrBytes = 0;
  /** The `relay listening` log line (maxConnections, maxPerAddress). */
  listening: LogLine | undefined;
  readonly kept: LogLine[] = [];
  #stdout = '';
  #stderrTail = '';
  #partial = '';
  readonly #keep: ReadonlySet<string>;

  private constructor(bin: string, options: RelayChildOptions) {
    this.#keep = new Set(['relay listening', ...(options.keep ?? [])]);
    const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', options.dataDir];
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
    this.child = spawn(
      'bash',
      [
        '-c',
        `ulimit -n ${options.fdLimit} && exec "$0" "$@"`,
        process.execPath,
        bin,
        ...args,
        ...(options.extra ?? []),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.#stdout += s));
    this.child.stderr!.on('data', (chunk: Buffer) => this.#onStderr(chunk));
  }

  /** Starts the relay and resolves once it has printed its port and fingerprint. */
  static async start(bin: string, options: RelayChildOptions): Promise<RelayChild> {
    const relay = new RelayChild(bin, options);
    const started = await settlesWithin(
      new Promise<boolean>((resolve) => {
        const check = () => {
          const m = /listening on \S+:(\d+) [^\n]*\n[^\n]*fingerprint:\n\s+([0-9A-Fa-f:]{95})/.exec(
            relay.#stdout,
          );
          if (!m) return;
          relay.port = Number(m[1]);
          relay.server = `127.0.0.1:${relay.port}`;
          relay.fingerprint = m[2]!;
          relay.child.stdout!.off('data', check);
          resolve(true);
        };
        relay.child.stdout!.on('data', check);
        void relay.exited.then(() => resolve(false));
      }),
      START_TIMEOUT_MS,
    );
    if (!started || relay.port === 0) {
      relay.child.kill('SIGKILL');
      throw new Error(`the relay did not start\n${relay.#stdout}\n${relay.#stderrTail}`);
    }
    return relay;
  }

  get pid(): number {
    return this.child.pid!;
  }

  #onStderr(chunk: Buffer): void {
    this.stderrBytes += chunk.length;
    const text = this.#partial + chunk.toString('utf8');
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    this.#stderrTail = (this.#stderrTail + text).slice(-4_000);
    for (const line of lines) {
      // Cheap filter first: a flood of log lines must not cost the benchmark a parse each.
      if (!line.includes('"msg":"')) continue;
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      if (msg === undefined || !this.#keep.has(msg) || this.kept.length >= MAX_KEPT_LOG_LINES)
        continue;
      try {
        const parsed = JSON.parse(line) as LogLine;
        if (msg === 'relay listening') this.listening = parsed;
        else this.kept.push(parsed);
      } catch {
        // a partial or non-JSON line: not ours to judge here
      }
    }
  }

  /** The last few KB of stderr, for error messages. */
  get stderrTail(): string {
    return this.#stderrTail;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) this.child.kill('SIGKILL');
    return this.exited;
  }
}

// --- /proc ---------------------------------------------------------------------------------------

/** Open descriptors of a process (entries of /proc/PID/fd); undefined if it cannot be read. */
export function descriptors(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** The soft `Max open files` limit of a process, from /proc/PID/limits. */
export function fdLimitOf(pid: number): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Samples a number every `intervalMs` and keeps the highest and the latest. */
export class PeakSampler {
  peak: number | undefined;
  last: number | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #read: () => number | undefined;

  constructor(read: () => number | undefined, intervalMs: number) {
    this.#read = read;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): number | undefined {
    const v = this.#read();
    if (v !== undefined) {
      this.last = v;
      this.peak = Math.max(this.peak ?? v, v);
    }
    return v;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

// --- /metrics ------------------------------------------------------------------------------------

/** A parsed Prometheus text exposition: `name{labels}` (as printed) → value. */
export type Metrics = Map<string, number>;

/** GETs /metrics from loopback (allowed without a token) and parses it. */
export async function scrapeMetrics(port: number): Promise<Metrics> {
  const { status, body } = await httpsGet(port, '/metrics');
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
  const out: Metrics = new Map();
  for (const line of body.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** A metric's value, `name{k="v"}` exactly as the relay prints it; 0 when absent (never bumped). */
export function metric(m: Metrics, name: string, labels?: Record<string, string>): number {
  const key = labels
    ? `${name}{${Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')}}`
    : name;
  return m.get(key) ?? 0;
}

// --- raw clients from chosen source addresses ---------------------------------------------------

/**
 * TCP connections to the relay that send the first 3 bytes of a TLS record header and then
 * nothing: a ClientHello that never completes. Each comes from `localAddress`.
 */
export function halfOpen(port: number, count: number, localAddress: string): Promise<net.Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
            s.write(Buffer.from([0x16, 0x03, 0x01]));
            resolve(s);
          });
          s.on('error', () => undefined); // a refused one is reset: counted by its 'close'
          s.once('error', reject);
        }),
    ),
  );
}

/** How a request ended: 'OK' with its result, or the relay's error code (or a local failure). */
export interface Outcome {
  code: string;
  result?: unknown;
  message?: string;
  retryAfterMs?: number;
  ms: number;
}

/**
 * A protocol connection from a chosen source address (127.0.0.N), trusting any certificate:
 * what an attacker's own client would be. Requests are JSON with ids; replies match by id.
 */
export class SourceClient {
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #pending = new Map<number, (o: Omit<Outcome, 'ms'>) => void>();
  #nextId = 1;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(String(data)) as Record<string, unknown>;
      const settle = typeof m['id'] === 'number' ? this.#pending.get(m['id']) : undefined;
      if (!settle) return;
      this.#pending.delete(m['id'] as number);
      if (m['type'] === 'reply') settle({ code: 'OK', result: m['result'] });
      else
        settle({
          code: String(m['code']),
          message: String(m['message']),
          ...(typeof m['retryAfterMs'] === 'number' ? { retryAfterMs: m['retryAfterMs'] } : {}),
        });
    });
    ws.on('error', () => undefined); // 'close' carries the outcome
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        for (const settle of this.#pending.values())
          settle({ code: 'CONNECTION_CLOSED', message: `closed (${code})` });
        this.#pending.clear();
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  /** Opens wss://127.0.0.1:PORT/v1/ws from `localAddress`; with `hello`, also exchanges hello. */
  static async open(
    port: number,
    localAddress: string,
    options: { hello?: boolean; timeoutMs?: number } = {},
  ): Promise<SourceClient> {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${WS_PATH}`, {
      rejectUnauthorized: false,
      perMessageDeflate: false,
      localAddress,
      handshakeTimeout: options.timeoutMs ?? 10_000,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        ws.off('error', reject);
        resolve();
      });
      ws.once('error', reject);
    });
    const client = new SourceClient(ws);
    if (options.hello !== false) {
      const hello = await client.request('hello', { version: 1, client: 'bench-attacker' });
      if (hello.code !== 'OK') {
        client.terminate();
        throw new Error(`hello failed: ${hello.code} ${hello.message ?? ''}`);
      }
    }
    return client;
  }

  /** Sends a request; resolves (never rejects) with its outcome, or TIMEOUT after `timeoutMs`. */
  request(type: string, params: object, timeoutMs = 30_000): Promise<Outcome> {
    const id = this.#nextId++;
    const t0 = performance.now();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ code: 'TIMEOUT', ms: performance.now() - t0 });
      }, timeoutMs);
      this.#pending.set(id, (o) => {
        clearTimeout(timer);
        resolve({ ...o, ms: performance.now() - t0 });
      });
      if (this.ws.readyState !== WebSocket.OPEN) {
        this.#pending.get(id)?.({ code: 'CONNECTION_CLOSED' });
        this.#pending.delete(id);
        return;
      }
      this.ws.send(JSON.stringify({ ...params, type, id }));
    });
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** 127.0.0.N: a source address on loopback the relay sees as a different client. */
export const loopback = (n: number): string => `127.0.0.${n}`;

/** Milliseconds since `t0` (performance.now()), rounded. */
export const since = (t0: number): number => Math.round(performance.now() - t0);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True if `promise` settles (either way) within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    const settled = promise.then(
      () => true as const,
      () => true as const,
    );
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Runs the fuzz corpus against a live relay over real TLS WebSockets and judges every answer; with a /healthz poller and an RSS sampler.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { WebSocket } from 'ws';
import { decodeServerMessage } from '../src/protocol/codec.js';
import { ErrorCode, isErrorCode } from '../src/protocol/errors.js';
import { PROTOCOL_VERSION, WS_PATH } from '../src/protocol/limits.js';
import { SETUP_IDS, generateScript, type FuzzFrame, type FuzzScript } from './fuzz-corpus.js';

/** Frames handed to the socket between two looks at whether the relay has closed it. */
const FRAMES_PER_TURN = 16;
/** Violations kept verbatim in the report (all are counted). */
const MAX_EXAMPLES = 20;
/** Characters of a frame quoted in a violation. */
const EXCERPT_CHARS = 160;
/** Time to open a connection (TLS + upgrade) and to get a setup reply. */
const CONNECT_TIMEOUT_MS = 10_000; // ms
/** Time the relay gets to finish the close handshake we start. */
const CLOSE_TIMEOUT_MS = 5_000; // ms

export interface FuzzOptions {
  port: number;
  host?: string;
  seed: number;
  /** No script starts once this many messages have been sent. */
  messages: number;
  /** Connections (scripts) running at once. */
  concurrency: number;
  /** No script starts after this long. */
  timeLimitMs: number;
  /** The fuzz account's name and a token from its login (authenticated scripts use it). */
  user: string;
  token: string;
  /** How long a script waits for all its answers, or for the close it expects. Default 15 s. */
  answerTimeoutMs?: number;
  /** Called every `progressEveryMs` with the report so far. */
  onProgress?: (report: Readonly<FuzzReport>) => void;
  progressEveryMs?: number;
}

export interface FuzzReport {
  seed: number;
  elapsedMs: number;
  scripts: number;
  scriptsByKind: Record<string, number>;
  /** Total milliseconds spent in scripts of each kind (connect to close). */
  scriptMsByKind: Record<string, number>;
  /** Frames written to the relay's socket (setup frames included), and their bytes. */
  sent: { messages: number; text: number; binary: number; raw: number; bytes: number };
  sentByFamily: Record<string, number>;
  received: {
    replies: number;
    errors: number;
    errorsWithoutId: number;
    events: number;
    binaryFrames: number;
  };
  errorCodes: Record<string, number>;
  eventTypes: Record<string, number>;
  /** Closes by WebSocket close code; `1000 (ours)` counts the connections we ended. */
  closes: Record<string, number>;
  /** Requests left unanswered because the relay closed their connection first (allowed). */
  unansweredAtClose: number;
  connectFailures: number;
  violations: number;
  examples: string[];
}

function newReport(seed: number): FuzzReport {
  return {
    seed,
    elapsedMs: 0,
    scripts: 0,
    scriptsByKind: {},
    scriptMsByKind: {},
    sent: { messages: 0, text: 0, binary: 0, raw: 0, bytes: 0 },
    sentByFamily: {},
    received: { replies: 0, errors: 0, errorsWithoutId: 0, events: 0, binaryFrames: 0 },
    errorCodes: {},
    eventTypes: {},
    closes: {},
    unansweredAtClose: 0,
    connectFailures: 0,
    violations: 0,
    examples: [],
  };
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

function excerpt(data: string | Buffer): string {
  const text = typeof data === 'string' ? data : data.subarray(0, EXCERPT_CHARS).toString('hex');
  const cut =
    text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}… (${text.length})` : text;
  return JSON.stringify(cut);
}

/** Text that looks like a stack trace or a source location: never to be sent to a peer. */
const STACK_RE = /\n\s*at \S|\bat \S+ \(\S+:\d+:\d+\)|node:internal|\.[cm]?[jt]s:\d+:\d+/;

/**
 * Runs scripts 0, 1, 2, … of `seed` (each on a new connection, `concurrency` at a time) until
 * `messages` frames were sent or `timeLimitMs` passed, and reports what the relay did.
 */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const report = newReport(opts.seed);
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (report.sent.messages < opts.messages && performance.now() - started < opts.timeLimitMs) {
      const script = generateScript(opts.seed, next++, { user: opts.user });
      report.scripts++;
      bump(report.scriptsByKind, script.kind);
      const t0 = performance.now();
      await new ScriptRun(script, opts, report).run();
      bump(report.scriptMsByKind, script.kind, Math.round(performance.now() - t0));
    }
  };
  const progress = opts.onProgress
    ? setInterval(() => opts.onProgress!(report), opts.progressEveryMs ?? 10_000)
    : undefined;
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    clearInterval(progress);
  }
  report.elapsedMs = Math.round(performance.now() - started);
  return report;
}

/** One script on one connection: send, collect, judge. */
class ScriptRun {
  readonly #script: FuzzScript;
  readonly #opts: FuzzOptions;
  readonly #report: FuzzReport;
  readonly #pending = new Map<number, FuzzFrame>();
  readonly #setupWaiters = new Map<number, (msg: Record<string, unknown>) => void>();
  /** Frames sent that warrant an error without an id, and such errors received. */
  #idlessExpected = 0;
  #idlessReceived = 0;
  #ws: WebSocket | undefined;
  #closed: { code: number; reason: string } | undefined;
  #closedByUs = false;
  /** Called whenever something arrives, so a wait can re-check its condition. */
  #wake: (() => void) | undefined;

  constructor(script: FuzzScript, opts: FuzzOptions, report: FuzzReport) {
    this.#script = script;
    this.#opts = opts;
    this.#report = report;
  }

  #violation(what: string): void {
    this.#report.violations++;
    if (this.#report.examples.length < MAX_EXAMPLES)
      this.#report.examples.push(`script ${this.#script.index} (${this.#script.kind}): ${what}`);
  }

  async run(): Promise<void> {
    const { host = '127.0.0.1', port } = this.#opts;
    const ws = new WebSocket(`wss://${host}:${port}${WS_PATH}`, {
      rejectUnauthorized: false,
      perMessageDeflate: false,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      maxPayload: 64 * 1024 * 1024,
    });
    this.#ws = ws;
    ws.on('error', () => undefined); // 'close' carries the outcome
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = { code, reason: reason.toString() };
      this.#wake?.();
    });
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('close', () => resolve(false));
    });
    if (!opened) {
      this.#report.connectFailures++;
      this.#violation(`could not connect (close ${this.#closed?.code})`);
      return;
    }
    try {
      if (await this.#setup()) {
        await this.#sendFrames();
        if (this.#script.expectClose === undefined && !this.#closed)
          this.#send({
            kind: 'sentinel',
            data: JSON.stringify({
              type: 'hello',
              id: SETUP_IDS.sentinel,
              version: 0,
              client: 'end',
            }),
            frame: 'text',
            id: SETUP_IDS.sentinel,
            expect: 'error',
            protocolError: false,
          });
        await this.#finish();
      }
    } finally {
      if (!this.#closed) ws.terminate();
    }
  }

  async #setup(): Promise<boolean> {
    const steps: Array<[number, Record<string, unknown>]> = [];
    if (this.#script.setup !== 'none')
      steps.push([
        SETUP_IDS.hello,
        { type: 'hello', id: SETUP_IDS.hello, version: PROTOCOL_VERSION, client: 'fuzz' },
      ]);
    if (this.#script.setup === 'token')
      steps.push([
        SETUP_IDS.token,
        { type: 'auth.token', id: SETUP_IDS.token, token: this.#opts.token },
      ]);
    for (const [id, request] of steps) {
      const answer = new Promise<Record<string, unknown> | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), CONNECT_TIMEOUT_MS);
        this.#setupWaiters.set(id, (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
        this.#wake = () => {
          if (this.#closed) {
            clearTimeout(timer);
            resolve(undefined);
          }
        };
      });
      this.#send({
        kind: 'setup',
        data: JSON.stringify(request),
        frame: 'text',
        id: undefined,
        expect: 'silent',
        protocolError: false,
      });
      const msg = await answer;
      this.#wake = undefined;
      if (msg?.['type'] !== 'reply') {
        this.#violation(
          `setup ${String(request['type'])} failed: ${msg ? JSON.stringify(msg) : this.#closed ? `closed ${this.#closed.code}` : 'no answer'}`,
        );
        return false;
      }
    }
    return true;
  }

  #send(frame: FuzzFrame): void {
    const ws = this.#ws!;
    const bytes =
      typeof frame.data === 'string' ? Buffer.byteLength(frame.data) : frame.data.length;
    const onWritten = (err?: Error | null) => {
      if (err) {
        // Never reached the relay: it expects nothing.
        if (frame.id !== undefined) this.#pending.delete(frame.id);
        if (frame.id === undefined && frame.expect === 'error') this.#idlessExpected--;
        return;
      }
      const sent = this.#report.sent;
      sent.messages++;
      sent.bytes += bytes;
      sent[frame.frame]++;
      bump(this.#report.sentByFamily, frame.kind);
    };
    if (frame.id !== undefined) this.#pending.set(frame.id, frame);
    if (frame.id === undefined && frame.expect === 'error') this.#idlessExpected++;
    if (frame.frame === 'raw') {
      (ws as unknown as { _socket: Socket })._socket.write(frame.data, onWritten);
    } else {
      ws.send(frame.data, { binary: frame.frame === 'binary' }, onWritten);
    }
  }

  async #sendFrames(): Promise<void> {
    const frames = this.#script.frames;
    for (let i = 0; i < frames.length; i++) {
      if (this.#closed || this.#ws!.readyState !== WebSocket.OPEN) return;
      this.#send(frames[i]!);
      // Let the relay's answers (and its close) in, so a closed connection stops being written to.
      if (i % FRAMES_PER_TURN === FRAMES_PER_TURN - 1) await new Promise((r) => setImmediate(r));
    }
  }

  /** Resolves when `done()` holds, the socket closed, or the time is up (then false). */
  #waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (!done() && !this.#closed) return;
        clearTimeout(timer);
        this.#wake = undefined;
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, timeoutMs);
      this.#wake = check;
      check();
    });
  }

  async #finish(): Promise<void> {
    const timeoutMs = this.#opts.answerTimeoutMs ?? 15_000;
    const expectClose = this.#script.expectClose;
    const answered = () =>
      expectClose === undefined &&
      this.#pending.size === 0 &&
      this.#idlessReceived >= this.#idlessExpected;
    const inTime = await this.#waitFor(answered, timeoutMs);
    let timedOut = false;
    if (this.#closed) {
      const { code, reason } = this.#closed;
      bump(this.#report.closes, String(code));
      this.#report.unansweredAtClose += this.#pending.size;
      if (code !== expectClose)
        this.#violation(
          `closed with ${code} "${reason}", expected ${expectClose === undefined ? 'to stay open' : expectClose}`,
        );
    } else if (!inTime) {
      timedOut = true;
      const kinds = [...new Set([...this.#pending.values()].map((f) => f.kind))].join(', ');
      this.#violation(
        expectClose !== undefined
          ? `not closed with ${expectClose} within ${timeoutMs} ms`
          : `no answer within ${timeoutMs} ms to ${this.#pending.size} requests (${kinds}), ` +
              `${this.#idlessReceived} errors without id for ${this.#idlessExpected} frames that warrant one`,
      );
    }
    if (!timedOut && this.#idlessReceived > this.#idlessExpected)
      this.#violation(
        `${this.#idlessReceived} errors without id for ${this.#idlessExpected} frames that warrant one`,
      );
    if (!this.#closed) {
      this.#closedByUs = true;
      this.#ws!.close(1000, 'fuzz script done');
      await this.#waitFor(() => false, CLOSE_TIMEOUT_MS);
      bump(this.#report.closes, this.#closed ? '1000 (ours)' : 'terminated (ours)');
    }
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    const received = this.#report.received;
    if (isBinary) {
      received.binaryFrames++;
      return;
    }
    if (this.#closedByUs) return;
    const text = data.toString('utf8');
    const decoded = decodeServerMessage(text);
    if (!decoded.ok)
      this.#violation(
        `sent a message a client rejects (${decoded.error.code}: ${decoded.error.message}): ${excerpt(text)}`,
      );
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.#violation(`sent a text frame that is not JSON: ${excerpt(text)}`);
      return;
    }
    const type = msg['type'];
    const id = typeof msg['id'] === 'number' ? msg['id'] : undefined;
    if (type === 'reply' || type === 'error') {
      if (type === 'reply') received.replies++;
      else this.#checkError(msg);
      const setup = id === undefined ? undefined : this.#setupWaiters.get(id);
      if (setup) {
        this.#setupWaiters.delete(id!);
        setup(msg);
      } else if (id === undefined) {
        if (type === 'reply') this.#violation(`a reply without an id: ${excerpt(text)}`);
        this.#idlessReceived++;
        received.errorsWithoutId++;
      } else {
        const frame = this.#pending.get(id);
        if (!frame)
          this.#violation(`an answer to id ${id}, which is not pending: ${excerpt(text)}`);
        else if (frame.expect === 'error' && type === 'reply')
          this.#violation(
            `accepted a ${frame.kind} frame it must refuse: ${excerpt(frame.data)} → ${excerpt(text)}`,
          );
        this.#pending.delete(id);
      }
    } else {
      received.events++;
      bump(this.#report.eventTypes, String(type));
      if (type === 'shutdown') this.#violation(`the relay is shutting down: ${excerpt(text)}`);
    }
    this.#wake?.();
  }

  #checkError(msg: Record<string, unknown>): void {
    this.#report.received.errors++;
    const code = String(msg['code']);
    bump(this.#report.errorCodes, code);
    if (!isErrorCode(code))
      this.#violation(`an undocumented error code: ${excerpt(JSON.stringify(msg))}`);
    if (code === ErrorCode.INTERNAL) this.#violation(`INTERNAL: ${excerpt(JSON.stringify(msg))}`);
    if (STACK_RE.test(String(msg['message'])))
      this.#violation(
        `a stack trace or source path in an error: ${excerpt(String(msg['message']))}`,
      );
  }
}

// --- health and memory, sampled while the fuzzer runs ---------------------------------------------

export interface HealthSummary {
  samples: number;
  failures: number;
  firstFailure: string | undefined;
  worstMs: number;
  p99Ms: number;
}

/**
 * The poller's loop, run in a worker thread so that the fuzzer's own busy event loop does not
 * count as relay latency. Each GET opens a new TLS connection, as a monitoring probe would.
 */
const POLLER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const https = require('node:https');
const { performance } = require('node:perf_hooks');
let stopped = false;
let wake = () => {};
parentPort.on('message', () => { stopped = true; wake(); });
function get() {
  return new Promise((resolve) => {
    const req = https.request(
      { host: workerData.host, port: workerData.port, path: '/healthz', method: 'GET',
        rejectUnauthorized: false, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? '' : 'HTTP ' + res.statusCode));
        res.on('error', (e) => resolve(e.message));
      });
    req.setTimeout(workerData.timeoutMs, () => req.destroy(new Error('no answer in time')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}
(async () => {
  while (!stopped) {
    const t0 = performance.now();
    const failure = await get();
    parentPort.postMessage({ ms: performance.now() - t0, failure });
    if (!stopped) await new Promise((r) => { wake = r; setTimeout(r, workerData.intervalMs); });
  }
  parentPort.close();
})();
`;

/** Time a single /healthz request may take before it counts as failed. */
const HEALTHZ_TIMEOUT_MS = 10_000; // ms

/** GETs /healthz from a worker thread until stopped, timing each answer. */
export class HealthPoller {
  readonly #latencies: number[] = [];
  #failures = 0;
  #firstFailure: string | undefined;
  readonly #worker: Worker;
  readonly #exited: Promise<void>;

  /** `intervalMs`: pause between one answer and the next request. */
  constructor(port: number, intervalMs = 100, host = '127.0.0.1') {
    this.#worker = new Worker(POLLER_SOURCE, {
      eval: true,
      workerData: { host, port, intervalMs, timeoutMs: HEALTHZ_TIMEOUT_MS },
    });
    this.#worker.on('message', ({ ms, failure }: { ms: number; failure: string }) => {
      this.#latencies.push(ms);
      if (failure) {
        this.#failures++;
        this.#firstFailure ??= failure;
      }
    });
    this.#worker.on('error', (err) => {
      this.#failures++;
      this.#firstFailure ??= `poller crashed: ${err.message}`;
    });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
  }

  /** Stops polling (after the request in flight, at most HEALTHZ_TIMEOUT_MS) and summarises. */
  async stop(): Promise<HealthSummary> {
    this.#worker.postMessage('stop');
    const timer = setTimeout(() => void this.#worker.terminate(), HEALTHZ_TIMEOUT_MS + 1_000);
    await this.#exited;
    clearTimeout(timer);
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
    return {
      samples: sorted.length,
      failures: this.#failures,
      firstFailure: this.#firstFailure,
      worstMs: Math.round(sorted[sorted.length - 1] ?? NaN),
      p99Ms: Math.round(at(0.99)),
    };
  }
}

/** Resident set size of a process in KiB, from /proc (Linux); undefined if it cannot be read. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `intervalMs` and keeps the peak. */
export class RssSampler {
  readonly startKiB: number | undefined;
  #peakKiB: number | undefined;
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;

  constructor(pid: number, intervalMs = 200) {
    this.#pid = pid;
    this.startKiB = this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Reads the RSS now (and updates the peak). */
  sample(): number | undefined {
    const kib = rssKiB(this.#pid);
    if (kib !== undefined) this.#peakKiB = Math.max(this.#peakKiB ?? 0, kib);
    return kib;
  }

  get peakKiB(): number | undefined {
    return this.#peakKiB;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

// A load-generator thread of `switchboard bench`: it opens its share of a phase's clients, runs
// their operations back to back from the common start, and reports the response time of every
// operation that completed inside the measured window, so the generator's work spreads over the
// machine's cores instead of one event loop.
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { workloadNamed } from './workloads/index.js';
import { OPENSSH_WORKLOADS } from './workloads/openssh.js';
import type { BenchClient, ClientContext, Transport, Workload } from './workload.js';

/** Error messages kept per worker and phase. */
const ERROR_SAMPLES = 5;
/** How often progress is reported. */
const PROGRESS_MS = 250; // ms
/** Time one attempt to reopen a failed client may take. */
const REOPEN_TIMEOUT_MS = 30_000; // ms
/** Waits between attempts to reopen a failed client: doubling from the first to the last. */
const REOPEN_FIRST_MS = 100; // ms
const REOPEN_MAX_MS = 2_000; // ms

/** Main → worker; every request is answered once with its id. */
export type WorkerRequest = { id: number } & (
  | {
      type: 'open';
      workload: string;
      system: 'switchboard' | 'openssh';
      transport: Transport;
      data: unknown;
      /** Clients in the whole phase, and the indices this worker runs. */
      clients: number;
      indices: number[];
    }
  | { type: 'go'; startAt: number; warmupMs: number; durationMs: number }
  | { type: 'close' }
);

/** What a phase's operations came to in one worker. */
export interface WorkerTally {
  /** Response times of the operations that completed in the window, ms. */
  latencies: Float64Array;
  ops: number;
  bytes: number;
  /** Failures in the window: operations, and attempts to reopen a client. */
  errors: number;
  errorSamples: string[];
  /** Event-loop utilisation during the window, 0..1. */
  busy: number;
}

/** Worker → main. */
export type WorkerReport =
  | { type: 'progress'; ops: number; errors: number }
  | ({ id: number } & (
      | { type: 'ready' }
      | { type: 'failed'; message: string }
      | ({ type: 'done' } & WorkerTally)
      | { type: 'closed' }
    ));

const port = parentPort!;
/** An error as a line: its code first, when it has one (a relay's refusal: INSUFFICIENT_FUNDS, …). */
const message = (err: unknown): string => {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.startsWith(code)
    ? `${code}: ${err.message}`
    : err.message;
};

interface Phase {
  workload: Workload;
  context: Omit<ClientContext, 'index'>;
  clients: Array<{ index: number; client: BenchClient | undefined }>;
}

let phase: Phase | undefined;

function workloadOf(request: Extract<WorkerRequest, { type: 'open' }>): Workload {
  const workload =
    request.system === 'openssh'
      ? OPENSSH_WORKLOADS[request.workload]
      : workloadNamed(request.workload);
  if (!workload) throw new Error(`no ${request.system} workload named ${request.workload}`);
  return workload;
}

async function openClients(request: Extract<WorkerRequest, { type: 'open' }>): Promise<void> {
  const current: Phase = {
    workload: workloadOf(request),
    context: { transport: request.transport, data: request.data, clients: request.clients },
    clients: request.indices.map((index) => ({ index, client: undefined })),
  };
  phase = current;
  await Promise.all(
    current.clients.map(async (c) => {
      c.client = await current.workload.open({ ...current.context, index: c.index });
    }),
  );
}

/** `open`, or a rejection after `ms`; a client that opens too late is closed. */
function openWithin(p: Phase, index: number, ms: number): Promise<BenchClient> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`reopening the client took over ${ms / 1000} s`));
    }, ms);
    p.workload.open({ ...p.context, index }).then(
      (client) => {
        clearTimeout(timer);
        if (late) void client.close().catch(() => undefined);
        else resolve(client);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

async function run(go: Extract<WorkerRequest, { type: 'go' }>): Promise<WorkerTally> {
  const current = phase!;
  const latencies: number[] = [];
  let ops = 0;
  let bytes = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  // Date.now() is shared with the main thread; performance.now() is this thread's own clock.
  const startAt = performance.now() + Math.max(0, go.startAt - Date.now());
  const measureFrom = startAt + go.warmupMs;
  const endAt = measureFrom + go.durationMs;
  const inWindow = (t: number): boolean => t >= measureFrom && t < endAt;
  /** One rule for every failure: it counts if it happened inside the window. */
  const failed = (err: unknown, what = ''): void => {
    if (!inWindow(performance.now())) return;
    errors++;
    if (errorSamples.length < ERROR_SAMPLES) errorSamples.push(`${what}${message(err)}`);
  };
  let elu: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  const progress = setInterval(
    () => port.postMessage({ type: 'progress', ops, errors } satisfies WorkerReport),
    PROGRESS_MS,
  );
  const eluTimer = setTimeout(
    () => (elu = performance.eventLoopUtilization()),
    measureFrom - performance.now(),
  );
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - performance.now())));
  await Promise.all(
    current.clients.map(async (c) => {
      let wait = REOPEN_FIRST_MS;
      while (performance.now() < endAt) {
        if (!c.client) {
          // A failed operation may leave the client broken: it starts again, as a user would.
          try {
            c.client = await openWithin(current, c.index, REOPEN_TIMEOUT_MS);
            wait = REOPEN_FIRST_MS;
          } catch (err) {
            failed(err, 'reconnecting: ');
            await new Promise((resolve) =>
              setTimeout(resolve, Math.min(wait, Math.max(0, endAt - performance.now()))),
            );
            wait = Math.min(wait * 2, REOPEN_MAX_MS);
          }
          continue;
        }
        const t0 = performance.now();
        try {
          const moved = await c.client.op();
          const t1 = performance.now();
          if (inWindow(t1)) {
            latencies.push(t1 - t0);
            ops++;
            bytes += moved;
          }
        } catch (err) {
          failed(err);
          const broken = c.client;
          c.client = undefined;
          await broken.close().catch(() => undefined);
        }
      }
    }),
  );
  clearInterval(progress);
  clearTimeout(eluTimer);
  const busy = elu ? performance.eventLoopUtilization(elu).utilization : 0;
  return { latencies: Float64Array.from(latencies), ops, bytes, errors, errorSamples, busy };
}

async function closeClients(): Promise<void> {
  const current = phase;
  phase = undefined;
  if (!current) return;
  await Promise.all(current.clients.map((c) => c.client?.close().catch(() => undefined)));
}

port.on('message', (request: WorkerRequest) => {
  const answer = (r: WorkerReport, transfer?: ArrayBuffer[]): void => port.postMessage(r, transfer);
  const { id } = request;
  const work: Promise<void> =
    request.type === 'open'
      ? openClients(request).then(() => answer({ id, type: 'ready' }))
      : request.type === 'go'
        ? run(request).then((tally) =>
            answer({ id, type: 'done', ...tally }, [tally.latencies.buffer as ArrayBuffer]),
          )
        : closeClients().then(() => answer({ id, type: 'closed' }));
  work.catch((err: unknown) => answer({ id, type: 'failed', message: message(err) }));
});

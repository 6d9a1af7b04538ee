// A load-generator thread of `switchboard bench`: it opens its share of a phase's clients, runs
// their operations back to back from the common start, and reports every response time, so the
// generator's work spreads over the machine's cores instead of one event loop.
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { workloadNamed } from './workloads/index.js';
import { OPENSSH_WORKLOADS } from './workloads/openssh.js';
import type { BenchClient, Transport, Workload } from './workload.js';

/** Error messages kept per worker and phase. */
const ERROR_SAMPLES = 5;
/** How often progress is reported. */
const PROGRESS_MS = 250; // ms

/** Main → worker. */
export type WorkerRequest =
  | {
      type: 'open';
      workload: string;
      system: 'switchboard' | 'openssh';
      transport: Transport;
      data: unknown;
      indices: number[];
    }
  | { type: 'go'; startAt: number; warmupMs: number; durationMs: number }
  | { type: 'close' };

/** Worker → main. */
export type WorkerReport =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'progress'; ops: number; errors: number }
  | {
      type: 'done';
      latencies: Float64Array;
      ops: number;
      bytes: number;
      errors: number;
      errorSamples: string[];
      /** Seconds from the end of warm-up to the last operation counted. */
      measuredS: number;
      /** Event-loop utilisation during the measured window, 0..1. */
      busy: number;
    }
  | { type: 'closed' };

const port = parentPort!;
const send = (r: WorkerReport, transfer?: ArrayBuffer[]): void => port.postMessage(r, transfer);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface Phase {
  workload: Workload;
  transport: Transport;
  data: unknown;
  clients: Array<{ index: number; client: BenchClient | undefined }>;
}

let phase: Phase | undefined;

async function openClients(request: Extract<WorkerRequest, { type: 'open' }>): Promise<void> {
  const workload =
    request.system === 'openssh'
      ? OPENSSH_WORKLOADS[request.workload]
      : workloadNamed(request.workload);
  if (!workload) throw new Error(`no ${request.system} workload named ${request.workload}`);
  const current: Phase = {
    workload,
    transport: request.transport,
    data: request.data,
    clients: request.indices.map((index) => ({ index, client: undefined })),
  };
  phase = current;
  await Promise.all(
    current.clients.map(async (c) => {
      c.client = await workload.open({
        transport: request.transport,
        index: c.index,
        data: request.data,
      });
    }),
  );
}

async function run(go: Extract<WorkerRequest, { type: 'go' }>): Promise<void> {
  const current = phase!;
  const workload = current.workload;
  const latencies: number[] = [];
  let ops = 0;
  let bytes = 0;
  let errors = 0;
  let lastAt = 0;
  const errorSamples: string[] = [];
  // Date.now() is shared with the main thread; performance.now() is this thread's own clock.
  const startAt = performance.now() + Math.max(0, go.startAt - Date.now());
  const measureFrom = startAt + go.warmupMs;
  const endAt = measureFrom + go.durationMs;
  let elu: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  const progress = setInterval(() => send({ type: 'progress', ops, errors }), PROGRESS_MS);
  const eluTimer = setTimeout(
    () => (elu = performance.eventLoopUtilization()),
    measureFrom - performance.now(),
  );
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - performance.now())));
  await Promise.all(
    current.clients.map(async (c) => {
      while (performance.now() < endAt && c.client) {
        const t0 = performance.now();
        try {
          const moved = await c.client.op();
          const t1 = performance.now();
          if (t0 >= measureFrom) {
            latencies.push(t1 - t0);
            ops++;
            bytes += moved;
            lastAt = Math.max(lastAt, t1);
          }
        } catch (err) {
          if (t0 >= measureFrom || performance.now() >= measureFrom) {
            errors++;
            if (errorSamples.length < ERROR_SAMPLES) errorSamples.push(message(err));
          }
          // A failed operation may leave the client broken: start it again, as a user would.
          const broken = c.client;
          c.client = undefined;
          await broken.close().catch(() => undefined);
          if (performance.now() >= endAt) break;
          c.client = await workload
            .open({ transport: current.transport, index: c.index, data: current.data })
            .catch((reopen: unknown) => {
              errors++;
              if (errorSamples.length < ERROR_SAMPLES)
                errorSamples.push(`reconnecting: ${message(reopen)}`);
              return undefined;
            });
        }
      }
    }),
  );
  clearInterval(progress);
  clearTimeout(eluTimer);
  const busy = elu ? performance.eventLoopUtilization(elu).utilization : 0;
  const measuredS = Math.max(go.durationMs, lastAt - measureFrom) / 1000;
  const array = Float64Array.from(latencies);
  send(
    {
      type: 'done',
      latencies: array,
      ops,
      bytes,
      errors,
      errorSamples,
      measuredS,
      busy,
    },
    [array.buffer as ArrayBuffer],
  );
}

async function closeClients(): Promise<void> {
  const current = phase;
  phase = undefined;
  if (!current) return;
  await Promise.all(current.clients.map((c) => c.client?.close().catch(() => undefined)));
}

port.on('message', (request: WorkerRequest) => {
  const work =
    request.type === 'open'
      ? openClients(request).then(() => send({ type: 'ready' }))
      : request.type === 'go'
        ? run(request)
        : closeClients().then(() => send({ type: 'closed' }));
  work.catch((err: unknown) => send({ type: 'failed', message: message(err) }));
});

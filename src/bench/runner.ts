// `switchboard bench`'s engine: the relay (its own, or the one named), the workloads' fixtures per
// transport, a pool of load-generator threads, and one measured phase per workload × clients ×
// transport, TLS and plaintext interleaved at each client count so slow drift hits both alike.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BenchAccounts } from './accounts.js';
import { startAgent, type AgentRef } from './agent.js';
import { OwnRelay } from './own-relay.js';
import { readRelayMetrics, type RelayReading } from './relay-metrics.js';
import { OPENSSH_WORKLOADS, prepareOpenSsh, type SshFixture } from './workloads/openssh.js';
import { cpuModel, cpuSeconds, machineCpuTimes, rssMiB } from './proc.js';
import type { BenchResult, BenchRun, MachineInfo } from './results.js';
import { percentile, round } from './stats.js';
import type { WorkerReport, WorkerRequest } from './worker.js';
import type { Transport, Workload } from './workload.js';

/** Time the clients of a phase have to connect and get ready, and to close. */
const OPEN_MS = 120_000; // ms
const CLOSE_MS = 30_000; // ms
/** A worker whose event loop was busier than this measured itself as much as the relay. */
export const SATURATED_BUSY = 0.9;
/** Lead time from "go" to the common start, so every worker starts together. */
const START_LEAD_MS = 50; // ms
/** Where the relay's CPU and memory are read during a phase. */
const SAMPLE_MS = 250; // ms

export interface BenchOptions {
  /** Relay addresses; without them the bench starts its own. */
  server?: string;
  plainServer?: string;
  fingerprint?: string;
  insecure: boolean;
  workloads: Workload[];
  clients: number[];
  tls: boolean[];
  durationS: number;
  warmupS: number;
  /** Names of the bench's accounts start with it (default a random one on a given relay). */
  prefix?: string;
  command: string;
  version: string;
  /** Load-generator threads (default: one per core, at most the clients). */
  workers?: number;
  /** Bearer token for a given relay's /metrics when it is not on loopback (serve --metrics-token). */
  metricsToken?: string;
  /** OpenSSH rows for the workloads that have a counterpart (echo, stream, exec). */
  compareSsh: boolean;
  /** Aborting it stops the run (Ctrl-C): runBench rejects after cleaning up. */
  signal?: AbortSignal;
}

export interface PhaseInfo {
  workload: string;
  system: 'switchboard' | 'openssh';
  clients: number;
  tls: boolean;
  warmupMs: number;
  durationMs: number;
}

/** What the runner tells whoever shows progress. */
export interface BenchEvents {
  stage(text: string): void;
  phaseStart(phase: PhaseInfo): void;
  phaseProgress(phase: PhaseInfo, o: { elapsedMs: number; ops: number; errors: number }): void;
  phaseEnd(phase: PhaseInfo, result: BenchResult): void;
}

export function machineInfo(version: string): MachineInfo {
  return {
    hostname: hostname(),
    platform: process.platform,
    kernel: release(),
    arch: process.arch,
    cpuModel: cpuModel(),
    cpus: cpus().length,
    memGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    switchboard: version,
    loadAvgAtStart: round(loadavg()[0] ?? 0, 2),
  };
}

/** A load-generator thread; requests carry ids, so a late answer never settles another. */
class LoadWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { settle: (r: WorkerReport | Error) => void; timer: NodeJS.Timeout }
  >();
  #nextId = 1;
  #onProgress: ((r: { ops: number; errors: number }) => void) | undefined;
  /** Failed, timed out or exited: terminated, to be replaced before the next phase. */
  broken = false;

  constructor() {
    this.#worker = new Worker(new URL('./worker.js', import.meta.url));
    this.#worker.on('message', (r: WorkerReport) => {
      if (r.type === 'progress') return this.#onProgress?.(r);
      const pending = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      if (pending) {
        clearTimeout(pending.timer);
        pending.settle(r);
      }
    });
    this.#worker.on('error', (err) => this.#fail(err));
    this.#worker.on('exit', (code) =>
      this.#fail(new Error(`a load-generator thread exited (${code})`)),
    );
  }

  #fail(err: Error): void {
    this.broken = true;
    for (const { settle, timer } of this.#pending.values()) {
      clearTimeout(timer);
      settle(err);
    }
    this.#pending.clear();
  }

  ask<T extends Exclude<WorkerReport['type'], 'progress'>>(
    request: DistributiveOmit<WorkerRequest, 'id'>,
    answer: T,
    timeoutMs: number,
    onProgress?: (r: { ops: number; errors: number }) => void,
  ): Promise<Extract<WorkerReport, { type: T }>> {
    if (this.broken) return Promise.reject(new Error('the load-generator thread is gone'));
    this.#onProgress = onProgress;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        void this.discard();
        reject(new Error(`a load-generator thread did not answer ${request.type} in time`));
      }, timeoutMs);
      this.#pending.set(id, {
        timer,
        settle: (r) => {
          if (r instanceof Error) reject(r);
          else if (r.type === answer) resolve(r as Extract<WorkerReport, { type: T }>);
          else reject(new Error(r.type === 'failed' ? r.message : `unexpected ${r.type}`));
        },
      });
      this.#worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }

  /** Ends the thread (its connections close with it); the pool replaces it. */
  async discard(): Promise<void> {
    this.broken = true;
    await this.#worker.terminate();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * What a run started, stopped last first. Something registered after the stops began (a setup
 * step cut short by Ctrl-C that finished later) is stopped at once.
 */
class Cleanups {
  readonly #stops: Array<() => Promise<unknown>> = [];
  #running = false;

  add(stop: () => Promise<unknown>): void {
    if (this.#running) void stop().catch(() => undefined);
    else this.#stops.push(stop);
  }

  async run(): Promise<void> {
    this.#running = true;
    while (this.#stops.length > 0) await this.#stops.pop()!().catch(() => undefined);
  }
}

/** Rejects with the signal's reason once it is aborted; else as `p`. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Runs every phase; the caller shows events. Never throws for a failed phase: it is a row with errors. */
export async function runBench(o: BenchOptions, events: BenchEvents): Promise<BenchRun> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo(o.version);
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-'));
  const cleanups = new Cleanups();
  const workers: LoadWorker[] = [];
  try {
    // The transports.
    let relayPid: number | undefined;
    const transports = new Map<boolean, Transport>();
    if (o.server === undefined && o.plainServer === undefined) {
      events.stage('starting a relay on 127.0.0.1 in a temporary directory');
      const own = await OwnRelay.start(join(dir, 'relay'));
      cleanups.add(() => own.stop());
      relayPid = own.pid;
      const fingerprint = own.fingerprint;
      transports.set(true, {
        server: `127.0.0.1:${own.port}`,
        tls: true,
        fingerprint,
        insecure: false,
      });
      transports.set(false, {
        server: `plain://127.0.0.1:${own.plainPort}`,
        tls: false,
        fingerprint,
        insecure: false,
      });
    } else {
      if (o.server !== undefined)
        transports.set(true, {
          server: o.server,
          tls: true,
          fingerprint: o.fingerprint ?? '',
          insecure: false,
        });
      if (o.plainServer !== undefined)
        transports.set(false, {
          server: o.plainServer,
          tls: false,
          fingerprint: o.fingerprint ?? '',
          insecure: o.insecure,
        });
    }
    // TLS when there is a choice: a metrics token must not cross in clear.
    const scrapeVia = transports.get(true) ?? transports.get(false)!;
    const relayWatch: RelayWatch =
      relayPid === undefined
        ? { read: () => readRelayMetrics(scrapeVia, dir, o.metricsToken) }
        : ownRelayWatch(relayPid);
    const prefix =
      o.prefix ?? (relayPid === undefined ? `bench${randomBytes(3).toString('hex')}` : 'bench');
    const maxClients = Math.max(...o.clients);
    const accounts = new BenchAccounts(dir, prefix, 2 * maxClients + 2);
    // On a relay of yours the bench's accounts go when it ends (its own relay goes whole).
    if (relayPid === undefined) cleanups.add(() => accounts.removeAll(scrapeVia));
    const workerCount = Math.max(
      1,
      Math.min(maxClients, o.workers ?? Math.max(1, availableParallelism())),
    );
    const freshPool = (): LoadWorker[] => {
      for (let i = 0; i < workerCount; i++)
        if (!workers[i] || workers[i]!.broken) workers[i] = new LoadWorker();
      return workers;
    };

    // Each workload's fixture per transport, made before any phase so setup is never measured.
    const agents = new Map<boolean, Promise<AgentRef>>();
    const fixtures = new Map<string, unknown>();
    for (const workload of o.workloads) {
      for (const tls of o.tls) {
        const transport = transports.get(tls)!;
        o.signal?.throwIfAborted();
        events.stage(`preparing ${workload.name} (${tls ? 'TLS' : 'plaintext'})`);
        fixtures.set(
          `${workload.name}/${tls}`,
          await abortable(
            workload.prepare({
              transport,
              accounts,
              maxClients,
              dir,
              agent: () => {
                let agent = agents.get(tls);
                if (!agent) {
                  agent = startAgent(accounts, transport, (stop) => cleanups.add(stop));
                  agents.set(tls, agent);
                }
                return agent;
              },
              onCleanup: (stop) => cleanups.add(stop),
            }),
            o.signal,
          ),
        );
      }
    }

    let ssh: SshFixture | undefined;
    if (o.compareSsh && o.workloads.some((w) => OPENSSH_WORKLOADS[w.name])) {
      events.stage('starting two private sshds on 127.0.0.1 (jump host and target)');
      const sshDir = join(dir, 'openssh');
      mkdirSync(sshDir, { mode: 0o700 });
      ssh = await abortable(
        prepareOpenSsh(sshDir, (stop) => cleanups.add(stop)),
        o.signal,
      );
      machine.openssh = ssh.version;
    }

    const results: BenchResult[] = [];
    const measure = async (
      phase: PhaseInfo,
      transport: Transport,
      data: unknown,
      bytes: boolean,
    ) => {
      o.signal?.throwIfAborted();
      const result = await runPhase(
        phase,
        { transport, data, bytesFlow: bytes, pool: freshPool(), relay: relayWatch, events },
        o.signal,
      );
      results.push(result);
      events.phaseEnd(phase, result);
    };
    for (const workload of o.workloads) {
      for (const [step, clients] of o.clients.entries()) {
        const sshTwin = OPENSSH_WORKLOADS[workload.name];
        if (ssh && sshTwin) {
          const phase: PhaseInfo = {
            workload: workload.name,
            system: 'openssh',
            clients,
            tls: true,
            warmupMs: o.warmupS * 1000,
            durationMs: o.durationS * 1000,
          };
          await measure(phase, transports.values().next().value!, ssh, workload.bytes === true);
        }
        // TLS first at one client count, plaintext first at the next: drift over a long run
        // (a growing database, a warming machine) does not always land on the same side.
        for (const tls of step % 2 === 0 ? o.tls : [...o.tls].reverse()) {
          const phase: PhaseInfo = {
            workload: workload.name,
            system: 'switchboard',
            clients,
            tls,
            warmupMs: o.warmupS * 1000,
            durationMs: o.durationS * 1000,
          };
          await measure(
            phase,
            transports.get(tls)!,
            fixtures.get(`${workload.name}/${tls}`),
            workload.bytes === true,
          );
        }
      }
    }
    return {
      results,
      machine,
      command: o.command,
      startedAt,
      relay: relayPid === undefined ? [o.server, o.plainServer].filter(Boolean).join(' ') : 'own',
      workloads: Object.fromEntries(o.workloads.map((w) => [w.name, w.describe])),
    };
  } finally {
    await Promise.all(workers.map((w) => w.discard()));
    await cleanups.run();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface PhaseSetup {
  transport: Transport;
  data: unknown;
  bytesFlow: boolean;
  pool: LoadWorker[];
  relay: RelayWatch;
  events: BenchEvents;
}

async function runPhase(
  phase: PhaseInfo,
  { transport, data, bytesFlow, pool, relay, events }: PhaseSetup,
  signal: AbortSignal | undefined,
): Promise<BenchResult> {
  const used = pool.slice(0, Math.min(pool.length, phase.clients));
  const shares = used.map((_, w) =>
    Array.from({ length: phase.clients }, (_, i) => i).filter((i) => i % used.length === w),
  );
  const failedPhase = (why: string): BenchResult => ({
    workload: phase.workload,
    system: phase.system,
    clients: phase.clients,
    tls: phase.tls,
    durationS: 0,
    ops: 0,
    opsPerSec: 0,
    latencyMs: { p50: 0, p95: 0, p99: 0, max: 0, mean: 0 },
    errors: 1,
    errorSamples: [why],
    failed: true,
    generator: { workers: used.length, busiest: 0, saturated: false },
  });
  // A phase that failed or was cut short leaves its threads in an unknown state: they go.
  const abandon = async (): Promise<void> => {
    await closeAll(used);
    await Promise.all(used.map((w) => w.discard()));
  };
  events.phaseStart(phase);
  try {
    await abortable(
      Promise.all(
        used.map((w, i) =>
          w.ask(
            {
              type: 'open',
              workload: phase.workload,
              system: phase.system,
              transport,
              data,
              clients: phase.clients,
              indices: shares[i]!,
            },
            'ready',
            OPEN_MS,
          ),
        ),
      ),
      signal,
    );
  } catch (err) {
    await abandon();
    if (signal?.aborted) throw err;
    return failedPhase(`the clients could not start: ${err instanceof Error ? err.message : err}`);
  }
  const progress = used.map(() => ({ ops: 0, errors: 0 }));
  const startAt = Date.now() + START_LEAD_MS;
  const measureFrom = startAt + phase.warmupMs;
  // The relay's and the machine's CPU from the end of the warm-up to the end of the phase.
  let relayFrom: Promise<RelayReading | undefined> = Promise.resolve(undefined);
  let machineFrom: MachineTimes | undefined;
  let rssPeak = 0;
  const first = setTimeout(() => {
    machineFrom = machineCpu();
    relayFrom = relay.read();
  }, measureFrom - Date.now());
  const sampler = setInterval(() => {
    const now = Date.now();
    if (now >= measureFrom) rssPeak = Math.max(rssPeak, relay.rssNow?.() ?? 0);
    events.phaseProgress(phase, {
      elapsedMs: Math.max(0, now - startAt),
      ops: progress.reduce((sum, p) => sum + p.ops, 0),
      errors: progress.reduce((sum, p) => sum + p.errors, 0),
    });
  }, SAMPLE_MS);
  let done: Array<Extract<WorkerReport, { type: 'done' }>>;
  try {
    done = await abortable(
      Promise.all(
        used.map((w, i) =>
          w.ask(
            { type: 'go', startAt, warmupMs: phase.warmupMs, durationMs: phase.durationMs },
            'done',
            START_LEAD_MS + phase.warmupMs + phase.durationMs + OPEN_MS,
            (p) => (progress[i] = p),
          ),
        ),
      ),
      signal,
    );
  } catch (err) {
    clearInterval(sampler);
    clearTimeout(first);
    await abandon();
    if (signal?.aborted) throw err;
    return failedPhase(`the phase failed: ${err instanceof Error ? err.message : err}`);
  }
  clearInterval(sampler);
  clearTimeout(first);
  const machineTo = machineCpu();
  const [from, to] = await Promise.all([relayFrom, relay.read()]);
  await closeAll(used);

  const latencies = Float64Array.from(done.flatMap((d) => Array.from(d.latencies))).sort();
  const ops = done.reduce((sum, d) => sum + d.ops, 0);
  const bytes = done.reduce((sum, d) => sum + d.bytes, 0);
  // Operations that completed inside the window, over the window.
  const durationS = phase.durationMs / 1000;
  const busiest = Math.max(...done.map((d) => d.busy));
  const mean = latencies.reduce((sum, x) => sum + x, 0) / Math.max(1, latencies.length);
  const ms = (x: number): number => (Number.isFinite(x) ? round(x, 3) : 0);
  const result: BenchResult = {
    workload: phase.workload,
    system: phase.system,
    clients: phase.clients,
    tls: phase.tls,
    durationS,
    ops,
    opsPerSec: round(ops / durationS, 1),
    latencyMs: {
      p50: ms(percentile(latencies, 0.5)),
      p95: ms(percentile(latencies, 0.95)),
      p99: ms(percentile(latencies, 0.99)),
      max: ms(latencies[latencies.length - 1] ?? NaN),
      mean: ms(mean),
    },
    errors: done.reduce((sum, d) => sum + d.errors, 0),
    errorSamples: [...new Set(done.flatMap((d) => d.errorSamples))].slice(0, 5),
    generator: {
      workers: used.length,
      busiest: round(busiest, 2),
      saturated: busiest > SATURATED_BUSY,
    },
  };
  if (bytesFlow) {
    result.bytes = bytes;
    result.mbPerSec = round(bytes / 1e6 / durationS, 2);
  }
  if (machineFrom && machineTo && machineTo.total > machineFrom.total)
    result.machineCpuPercent = round(
      ((machineTo.busy - machineFrom.busy) / (machineTo.total - machineFrom.total)) * 100,
      1,
    );
  // The relay's own clock: its CPU seconds between two readings over the wall time between them.
  if (phase.system === 'switchboard' && from && to && to.at > from.at)
    result.relay = {
      cpuPercent: round(((to.cpuSeconds - from.cpuSeconds) / ((to.at - from.at) / 1000)) * 100, 1),
      rssMiB: round(Math.max(rssPeak, to.rssBytes / 2 ** 20), 1),
    };
  return result;
}

/** Where the relay's CPU and memory come from: /proc for its own relay, else its /metrics. */
interface RelayWatch {
  read(): Promise<RelayReading | undefined>;
  /** Resident memory now, MiB, where it is cheap to read often. */
  rssNow?(): number | undefined;
}

function ownRelayWatch(pid: number): RelayWatch {
  return {
    read: async () => {
      const cpu = cpuSeconds(pid);
      const rss = rssMiB(pid);
      return cpu === undefined || rss === undefined
        ? undefined
        : { cpuSeconds: cpu, rssBytes: rss * 2 ** 20, at: Date.now() };
    },
    rssNow: () => rssMiB(pid),
  };
}

type MachineTimes = ReturnType<typeof machineCpuTimes>;

/** The machine's CPU seconds so far, busy and all, or undefined where /proc/stat cannot be read. */
function machineCpu(): MachineTimes | undefined {
  try {
    return machineCpuTimes();
  } catch {
    return undefined;
  }
}

async function closeAll(workers: LoadWorker[]): Promise<void> {
  await Promise.all(
    workers.map((w) =>
      w.broken ? undefined : w.ask({ type: 'close' }, 'closed', CLOSE_MS).catch(() => undefined),
    ),
  );
}

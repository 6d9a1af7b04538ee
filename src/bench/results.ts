// What `switchboard bench` measures and reports: one row per workload × clients × TLS setting
// (× system, with --compare-ssh), and the run around them. `--json` prints a BenchRun; the report
// (report.ts) draws it.

/** Response-time percentiles of one row, in milliseconds. */
export interface LatencyMs {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** One measured phase: a workload at a client count over TLS or plaintext. */
export interface BenchResult {
  /** `login`, `exec`, `echo`, `stream`, `chat`, `pay`, … */
  workload: string;
  /** What was measured: `switchboard`, or `openssh` for --compare-ssh rows. */
  system: 'switchboard' | 'openssh';
  /** Concurrent clients, each on its own connection. */
  clients: number;
  /** Whether the clients reached the relay over TLS (false: the plaintext listener). */
  tls: boolean;
  /** Seconds the phase measured for (after warm-up). */
  durationS: number;
  /** Operations completed in that time. */
  ops: number;
  opsPerSec: number;
  /** Response time of one operation (the workload says what one is). */
  latencyMs: LatencyMs;
  /** Operations (and reconnections) that failed; the first few messages in errorSamples. */
  errors: number;
  errorSamples: string[];
  /** The phase itself failed (its clients could not start, a thread died): no figures. */
  failed?: boolean;
  /** Payload bytes moved and their rate, for workloads where bytes flow (stream). */
  bytes?: number;
  mbPerSec?: number;
  /**
   * The whole machine's CPU use during the phase, % of all its cores (Linux): near 100, the relay
   * and the clients on this machine were competing for cores.
   */
  machineCpuPercent?: number;
  /** The relay's CPU (% of one core) and resident memory during the phase, when it could be read. */
  relay?: { cpuPercent: number; rssMiB: number };
  /**
   * The load generator: its busiest worker's event-loop utilisation (0..1), and whether it was
   * saturated (then the figures measure the generator as much as the relay).
   */
  generator: { workers: number; busiest: number; saturated: boolean };
}

/** The machine and software a run was made on. */
export interface MachineInfo {
  hostname: string;
  platform: string;
  kernel: string;
  arch: string;
  cpuModel: string;
  cpus: number;
  memGiB: number;
  node: string;
  switchboard: string;
  openssh?: string;
  /** 1-minute load average when the run started (other work on the machine). */
  loadAvgAtStart: number;
}

/** A whole `switchboard bench` run: what `--json` prints and `--report` draws. */
export interface BenchRun {
  results: BenchResult[];
  machine: MachineInfo;
  /** The command line that produced it. */
  command: string;
  startedAt: string;
  /** The relay measured: `own` (started by the bench) or the address given with --server. */
  relay: string;
  /** Workload descriptions: what one operation is, per workload name. */
  workloads: Record<string, string>;
}

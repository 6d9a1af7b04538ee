// `switchboard bench`: response time, throughput and scalability of a relay under 1, 5, 10 and 20
// concurrent clients, over TLS and plaintext, for every workload — a table, --json, --report.
import { KnownServers } from '../../client/known-servers.js';
import { PLAIN_SCHEME } from '../../client/tls-connect.js';
import { runBench, type BenchEvents, type PhaseInfo } from '../../bench/runner.js';
import { tlsCost, writeReport } from '../../bench/report.js';
import type { BenchResult, BenchRun } from '../../bench/results.js';
import { table } from '../../bench/stats.js';
import { WORKLOADS, workloadNamed } from '../../bench/workloads/index.js';
import type { Workload } from '../../bench/workload.js';
import { JSON_OPTION, bool, list, numberOption, str, type Command } from '../command.js';
import { homeOf, normalizeServer } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';

/** Bounds on the options, so a typo cannot start a thousand clients or run for a day. */
const MAX_CLIENTS = 50;
const MAX_DURATION_S = 3600; // s
const DEFAULT_CLIENTS = [1, 5, 10, 20];
const DEFAULT_DURATION_S = 10; // s
/** Machine CPU use, % of all cores, from which a row is marked CPU-bound. */
const MACHINE_BUSY_PERCENT = 90;
/** Progress-bar width in cells. */
const BAR_CELLS = 24;

function clientCounts(values: string[]): number[] {
  if (values.length === 0) return DEFAULT_CLIENTS;
  const counts = values.map((v) => numberOption(v, 'clients', 1, MAX_CLIENTS, true)!);
  return [...new Set(counts)].sort((a, b) => a - b);
}

function tlsSettings(values: string[]): boolean[] {
  if (values.length === 0) return [true, false];
  const settings = values.map((v) => {
    if (v === 'on') return true;
    if (v === 'off') return false;
    throw new UsageError(`--tls takes on, off or on,off, not "${v}"`);
  });
  return [...new Set(settings)].sort((a, b) => Number(b) - Number(a));
}

function workloadsOf(values: string[]): Workload[] {
  if (values.length === 0) return [...WORKLOADS];
  const names = [...new Set(values)];
  return names.map((name) => {
    const w = workloadNamed(name);
    if (!w)
      throw new UsageError(
        `no workload named "${name}"; choose from ${WORKLOADS.map((x) => x.name).join(', ')}`,
      );
    return w;
  });
}

const fixed = (n: number | undefined, digits: number): string =>
  n === undefined ? '-' : n.toFixed(digits);

/** The table printed at the end. */
export function resultsTable(results: readonly BenchResult[]): string {
  const rows = results.map((r) => [
    r.workload,
    r.system === 'openssh' ? 'openssh' : r.tls ? 'TLS' : 'plain',
    r.clients,
    r.ops,
    fixed(r.opsPerSec, 1),
    fixed(r.latencyMs.p50, 2),
    fixed(r.latencyMs.p95, 2),
    fixed(r.latencyMs.p99, 2),
    fixed(r.latencyMs.max, 2),
    fixed(r.mbPerSec, 1),
    r.errors,
    fixed(r.relay?.cpuPercent, 0),
    fixed(r.relay?.rssMiB, 0),
    [
      r.generator.saturated ? 'generator saturated' : '',
      (r.machineCpuPercent ?? 0) >= MACHINE_BUSY_PERCENT ? 'machine CPU-bound' : '',
    ]
      .filter(Boolean)
      .join(', '),
  ]);
  const headers = ['workload', 'transport', 'clients', 'ops', 'ops/s', 'p50 ms', 'p95 ms'];
  headers.push('p99 ms', 'max ms', 'MB/s', 'errors', 'relay CPU%', 'relay MiB', 'note');
  return table(headers, rows)
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

/** The cost of TLS (report.ts tlsCost), a line per workload: TLS p50 and ops/s over plaintext's. */
export function tlsCostLines(results: readonly BenchResult[]): string[] {
  const parts = new Map<string, string[]>();
  for (const c of tlsCost(results)) {
    if (c.p50 === null || c.throughput === null) continue;
    const line = parts.get(c.workload) ?? [];
    line.push(`${c.clients}: p50 ×${c.p50.toFixed(2)}, ops/s ×${c.throughput.toFixed(2)}`);
    parts.set(c.workload, line);
  }
  return [...parts].map(([name, line]) => `  ${name.padEnd(7)} ${line.join('; ')}`);
}

/** The command as the report names it, with the metrics token hidden. */
export function commandLine(args: readonly string[]): string {
  const shown = args.map((a, i) =>
    args[i - 1] === '--metrics-token'
      ? '…'
      : a.startsWith('--metrics-token=')
        ? '--metrics-token=…'
        : a,
  );
  return ['switchboard', 'bench', ...shown].join(' ');
}

const label = (p: PhaseInfo): string =>
  `${p.workload.padEnd(7)} ${String(p.clients).padStart(2)} client${p.clients === 1 ? ' ' : 's'} ` +
  (p.system === 'openssh' ? 'ssh  ' : p.tls ? 'TLS  ' : 'plain');

/** Progress on stderr: a bar per phase on a terminal, a line per phase otherwise. */
function progressOn(stderr: NodeJS.WriteStream): BenchEvents {
  const tty = stderr.isTTY === true;
  return {
    stage: (text) => stderr.write(`${text}…\n`),
    phaseStart: (p) => {
      if (tty) stderr.write(`${label(p)} [${' '.repeat(BAR_CELLS)}]`);
    },
    phaseProgress: (p, o) => {
      if (!tty) return;
      const total = p.warmupMs + p.durationMs;
      const filled = Math.min(BAR_CELLS, Math.round((o.elapsedMs / total) * BAR_CELLS));
      const bar = '█'.repeat(filled) + '░'.repeat(BAR_CELLS - filled);
      const phase = o.elapsedMs < p.warmupMs ? 'warm-up' : `${o.ops} ops`;
      const errors = o.errors > 0 ? `, ${o.errors} errors` : '';
      stderr.write(`\r\x1b[K${label(p)} [${bar}] ${phase}${errors}`);
    },
    phaseEnd: (p, r) => {
      const summary =
        `${fixed(r.opsPerSec, 1)} ops/s, p50 ${fixed(r.latencyMs.p50, 2)} ms, p99 ${fixed(r.latencyMs.p99, 2)} ms` +
        (r.mbPerSec === undefined ? '' : `, ${fixed(r.mbPerSec, 1)} MB/s`) +
        (r.errors > 0 ? `, ${r.errors} errors (${r.errorSamples[0] ?? ''})` : '') +
        (r.generator.saturated ? ' (load generator saturated)' : '');
      stderr.write(tty ? `\r\x1b[K${label(p)} ${summary}\n` : `${label(p)} ${summary}\n`);
    },
  };
}

export const bench: Command = {
  name: 'bench',
  summary: 'Measure a relay: response time and throughput at 1–20 clients, TLS and plaintext.',
  usage:
    '[--server HOST:PORT] [--plain-server plain://HOST:PORT] [--clients 1,5,10,20] [--tls on,off]\n' +
    '       [--workloads LIST] [--duration SECONDS] [--compare-ssh] [--json] [--report DIR]',
  details:
    'Each workload runs over real connections and the real protocol, at each client count, over\n' +
    'TLS and over the plaintext listener, interleaved; clients run in worker threads. Per phase:\n' +
    'operations, operations per second, response time p50/p95/p99/max, MB/s where bytes flow,\n' +
    "errors, the relay's CPU and memory (when it runs here), and whether the load generator was\n" +
    'saturated. Workloads: login (connect, TLS, authenticate), exec (a command through an agent),\n' +
    'echo (keystroke round trip), stream (terminal output), chat (a message between two users),\n' +
    'pay (a signed transfer settled).\n\n' +
    'Without --server it starts its own relay on 127.0.0.1 in a temporary directory, with an agent\n' +
    'and the accounts it needs, and removes them after. With --server (and --plain-server for\n' +
    '--tls off) it signs up accounts named PREFIX-… on that relay (sign-up must be open) and\n' +
    'starts its agents on this machine. Exits 0 when every operation succeeded, 1 if any failed.',
  positionals: [0, 0],
  options: {
    server: {
      type: 'string',
      value: 'HOST:PORT',
      description: 'measure this relay over TLS instead of starting one',
    },
    'plain-server': {
      type: 'string',
      value: 'plain://HOST:PORT',
      description: "that relay's plaintext listener (serve --plain-port), for --tls off",
    },
    fingerprint: {
      type: 'string',
      value: 'HEX',
      description: "the relay certificate's SHA-256 (default: your pin for --server)",
    },
    'metrics-token': {
      type: 'string',
      value: 'TOKEN',
      description:
        "read a --server relay's CPU and memory from /metrics with this token (env SWITCHBOARD_METRICS_TOKEN; loopback needs none)",
    },
    insecure: {
      type: 'boolean',
      description: 'allow a --plain-server that is not on loopback',
    },
    clients: {
      type: 'string',
      multiple: true,
      value: 'LIST',
      description: `concurrent clients per phase (default ${DEFAULT_CLIENTS.join(',')}; at most ${MAX_CLIENTS})`,
    },
    tls: {
      type: 'string',
      multiple: true,
      value: 'on,off',
      description: 'transports (default on,off)',
    },
    workloads: {
      type: 'string',
      multiple: true,
      value: 'LIST',
      description: `what to run (default ${WORKLOADS.map((w) => w.name).join(',')})`,
    },
    duration: {
      type: 'string',
      value: 'SECONDS',
      description: `measured time per phase (default ${DEFAULT_DURATION_S})`,
    },
    warmup: {
      type: 'string',
      value: 'SECONDS',
      description: 'unmeasured time before each phase (default a fifth of --duration, at most 2)',
    },
    workers: {
      type: 'string',
      value: 'N',
      description: 'load-generator threads (default one per CPU core, at most the clients)',
    },
    prefix: {
      type: 'string',
      value: 'NAME',
      description: "the bench accounts' name prefix (default bench, or random with --server)",
    },
    'compare-ssh': {
      type: 'boolean',
      description:
        'add OpenSSH rows for echo, stream and exec: ssh -J through private sshds on 127.0.0.1',
    },
    report: {
      type: 'string',
      value: 'DIR',
      description: 'write index.html (charts), results.csv and results.json to DIR',
    },
    ...JSON_OPTION,
  },
  async run(inv) {
    const io = inv.io;
    const durationS =
      numberOption(str(inv, 'duration'), 'duration', 0.1, MAX_DURATION_S) ?? DEFAULT_DURATION_S;
    const warmupS =
      numberOption(str(inv, 'warmup'), 'warmup', 0, MAX_DURATION_S) ?? Math.min(2, durationS / 5);
    const workers = numberOption(str(inv, 'workers'), 'workers', 1, MAX_CLIENTS, true);
    const clients = clientCounts(list(inv, 'clients'));
    const tls = tlsSettings(list(inv, 'tls'));
    const workloads = workloadsOf(list(inv, 'workloads'));
    const server = str(inv, 'server');
    let plainServer = str(inv, 'plain-server');
    if (plainServer !== undefined && !plainServer.startsWith(PLAIN_SCHEME))
      plainServer = `${PLAIN_SCHEME}${plainServer}`;
    if (server === undefined && plainServer !== undefined && tls.includes(true))
      throw new UsageError('--plain-server needs --server too, or --tls off');
    if (server !== undefined && plainServer === undefined && tls.includes(false))
      throw new UsageError(
        "--tls off needs the relay's plaintext listener: pass --plain-server plain://HOST:PORT (serve --plain-port), or --tls on",
      );
    let fingerprint = str(inv, 'fingerprint');
    if (server !== undefined && fingerprint === undefined) {
      const home = homeOf(inv);
      fingerprint = new KnownServers(home.path(FILES.knownServers)).get(
        normalizeServer(server),
      )?.fingerprint;
      if (fingerprint === undefined)
        throw new UsageError(
          `no pinned certificate for ${server}: pass --fingerprint HEX (what the relay printed at start)`,
        );
    }
    const metricsToken = str(inv, 'metrics-token') ?? io.env['SWITCHBOARD_METRICS_TOKEN'];
    const command = commandLine(process.argv.slice(process.argv.indexOf('bench') + 1));
    const { VERSION } = await import('../main.js');
    // Ctrl-C or SIGTERM: the run stops and cleans up (its relay, agents, sshds, accounts, temp
    // directory); a second one exits at once.
    const stop = new AbortController();
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signals++ > 0) process.exit(Exit.INTERRUPTED);
      io.stderr.write(`\n${signal}: stopping the run and cleaning up…\n`);
      stop.abort(new Error(`interrupted by ${signal}`));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let run: BenchRun;
    try {
      run = await runBench(
        {
          ...(server === undefined ? {} : { server: normalizeServer(server) }),
          ...(plainServer === undefined ? {} : { plainServer }),
          ...(fingerprint === undefined ? {} : { fingerprint }),
          ...(str(inv, 'prefix') === undefined ? {} : { prefix: str(inv, 'prefix')! }),
          ...(workers === undefined ? {} : { workers }),
          ...(metricsToken === undefined ? {} : { metricsToken }),
          insecure: bool(inv, 'insecure'),
          compareSsh: bool(inv, 'compare-ssh'),
          workloads,
          clients,
          tls,
          durationS,
          warmupS,
          command,
          version: VERSION,
          signal: stop.signal,
        },
        progressOn(io.stderr),
      );
    } catch (err) {
      if (!stop.signal.aborted) throw err;
      io.stderr.write('switchboard bench: interrupted; everything it started is stopped\n');
      return Exit.INTERRUPTED;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const report = str(inv, 'report');
    if (report !== undefined) {
      const files = await writeReport(report, run);
      io.stderr.write(`report: ${files[0]}\n`);
    }
    if (bool(inv, 'json')) io.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
    else {
      io.stdout.write(`${resultsTable(run.results)}\n`);
      const cost = tlsCostLines(run.results);
      if (cost.length > 0)
        io.stdout.write(`\nTLS cost (TLS ÷ plaintext, by clients):\n${cost.join('\n')}\n`);
      if (run.results.some((r) => r.generator.saturated))
        io.stdout.write(
          '\nRows marked "generator saturated": a load-generator thread was busy over 90% of the time,\n' +
            'so those figures measure this machine’s clients as much as the relay.\n',
        );
      if (run.results.some((r) => (r.machineCpuPercent ?? 0) >= MACHINE_BUSY_PERCENT))
        io.stdout.write(
          `\nRows marked "machine CPU-bound": this machine's ${run.machine.cpus} cores were over ${MACHINE_BUSY_PERCENT}% busy; the relay\n` +
            'and the clients (and agents) competed for them, so adding clients could not add throughput.\n',
        );
    }
    const failed = run.results.reduce((s, r) => s + r.errors, 0);
    if (failed > 0) {
      io.stderr.write(`switchboard bench: ${failed} operations failed (the errors column)\n`);
      return Exit.FAILURE;
    }
    return Exit.OK;
  },
};

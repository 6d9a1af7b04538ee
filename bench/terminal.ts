// Benchmark of remote terminals: keystroke echo, bulk output and attach time, Switchboard vs OpenSSH.
//
// Usage: npm run bench:terminal -- [--quick] [--keystrokes N] [--size MIB] [--attach-runs N]
//                                   [--gap MS] [--no-ssh] [--cpu-prof DIR]
// Everything runs on this machine over 127.0.0.1; both sides run `/bin/sh -l` on a remote PTY.
// Switchboard: `switchboard serve` and `switchboard agent` as child processes; the controller both
// in this process (AttachSession: bytes timed where they arrive, no terminal in between) and as
// `switchboard attach` on a PTY. OpenSSH: two private sshds (temp host key, temp authorized_keys)
// as jump host and target, reached with `ssh -J`, on a PTY and on pipes: the same
// client → relay hop → host shape. As root, a missing openssh-server/openssh-client is installed
// with apt-get first (not timed); otherwise the OpenSSH columns are skipped with the reason.
import { findRoot } from './lib/root.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds } from './lib/cpu.js';
import { OpenSshRig, ensureOpenSsh, type OpenSshTools } from './lib/openssh-rig.js';
import { writePayload, type Payload } from './lib/payload.js';
import type { RemoteTerminal } from './lib/remote-terminal.js';
import { round, summarize, table, type Summary } from './lib/stats.js';
import { SwitchboardRig } from './lib/switchboard-rig.js';
import {
  measureAttach,
  measureEcho,
  measureThroughput,
  type ThroughputResult,
} from './lib/terminal-probes.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    keystrokes: { type: 'string' },
    size: { type: 'string' },
    'attach-runs': { type: 'string' },
    gap: { type: 'string' },
    'no-ssh': { type: 'boolean' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:terminal -- [--quick] [--keystrokes N=300] [--size MIB=64] [--attach-runs N=10]\n' +
      '                          [--gap MS=10] [--no-ssh] [--cpu-prof DIR]\n' +
      '--quick: 100 keystrokes, 8 MiB, 5 attaches. As root, installs OpenSSH with apt-get if missing.\n' +
      '--cpu-prof DIR: the relay, the agent and every `switchboard attach` write a V8 CPU profile to DIR.',
  );
  process.exit(0);
}

function intFlag(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

const QUICK = flags.quick === true;
const KEYSTROKES = intFlag('keystrokes', flags.keystrokes, QUICK ? 100 : 300, 1, 5_000);
const SIZE_MIB = intFlag('size', flags.size, QUICK ? 8 : 64, 1, 1_024);
const ATTACH_RUNS = intFlag('attach-runs', flags['attach-runs'], QUICK ? 5 : 10, 1, 100);
/** Pause between keystrokes, so each one starts from an idle pipeline like typing does. */
const GAP_MS = intFlag('gap', flags.gap, 10, 0, 1_000); // ms
/** Unmeasured keystrokes and attaches first (JIT, caches, first-contact key pinning). */
const ECHO_WARMUP = 20;
const ATTACH_WARMUP = 1;
/** Limit on any single wait: a prompt, an echo, a marker. */
const STEP_TIMEOUT_MS = 15_000; // ms
/** Limit on the whole bulk-output run (one `cat`). */
const CAT_TIMEOUT_MS = 120_000; // ms
/** Limit on the whole measurement (after any apt-get install); then it cleans up and fails. */
const RUN_LIMIT_MS = 5 * 60_000; // ms
/** The remote shell on both sides: dash, no readline, no bracketed paste; `-l` as agent and sshd run it. */
const SHELL = '/bin/sh';
const COLS = 80;
const ROWS = 24;

const ROOT = findRoot();

interface SystemResult {
  echoMs: Summary;
  throughput: ThroughputResult;
  /** CPU seconds each process spent during the bulk-output run, where they can be read. */
  throughputCpuSeconds?: Record<string, number>;
  attachMs: Summary;
  /** In-process controller only: start → E2E session established (before the shell's prompt). */
  attachedMs?: Summary;
}

interface System {
  /** Key in the JSON line. */
  key: string;
  label: string;
  open(): RemoteTerminal & { attachedAt?: Promise<number> };
  /** Processes whose CPU time to report for the bulk-output run. */
  cpuPids?: Record<string, number | undefined>;
}

/** One fresh remote shell per measurement; the terminal is always closed afterwards. */
async function withTerminal<T>(
  open: () => RemoteTerminal,
  run: (t: RemoteTerminal) => Promise<T>,
): Promise<T> {
  const term = open();
  try {
    return await run(term);
  } finally {
    await term.close();
  }
}

function sampleCpu(pids: Record<string, number | undefined>): Record<string, number | undefined> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
}

async function measureSystem(system: System, payload: Payload): Promise<SystemResult> {
  const { label, open } = system;
  console.log(`${label}: time to attach (${ATTACH_WARMUP} + ${ATTACH_RUNS} runs)…`);
  const attach = await measureAttach(open, {
    runs: ATTACH_RUNS,
    warmup: ATTACH_WARMUP,
    timeoutMs: STEP_TIMEOUT_MS,
  });
  console.log(`${label}: keystroke echo (${ECHO_WARMUP} + ${KEYSTROKES} keystrokes)…`);
  const echo = await withTerminal(open, (t) =>
    measureEcho(t, {
      keystrokes: KEYSTROKES,
      warmup: ECHO_WARMUP,
      gapMs: GAP_MS,
      timeoutMs: STEP_TIMEOUT_MS,
    }),
  );
  console.log(`${label}: output throughput (cat of ${SIZE_MIB} MiB)…`);
  const pids = { ...system.cpuPids, 'bench process': process.pid };
  const cpuBefore = sampleCpu(pids);
  const throughput = await withTerminal(open, (t) =>
    measureThroughput(t, payload, { timeoutMs: CAT_TIMEOUT_MS }),
  );
  const cpuAfter = sampleCpu(pids);
  const cpu: Record<string, number> = {};
  for (const [name, after] of Object.entries(cpuAfter)) {
    const before = cpuBefore[name];
    if (after !== undefined && before !== undefined) cpu[name] = round(after - before, 2);
  }
  const attached = attach.flatMap((s) => (s.attachedMs === undefined ? [] : [s.attachedMs]));
  return {
    echoMs: summarize(echo),
    throughput: {
      ...throughput,
      mibPerSec: round(throughput.mibPerSec, 1),
      seconds: round(throughput.seconds, 3),
      startMs: round(throughput.startMs, 1),
    },
    throughputCpuSeconds: cpu,
    attachMs: summarize(
      attach.map((s) => s.promptMs),
      1,
    ),
    ...(attached.length > 0 ? { attachedMs: summarize(attached, 1) } : {}),
  };
}

function unavailable(): never {
  throw new Error('OpenSSH is not available');
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) return m[1].trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

function report(systems: System[], results: Map<string, SystemResult>, payload: Payload): void {
  const rows: Array<[string, (r: SystemResult) => number | string | undefined]> = [
    ['keystroke echo p50 (ms)', (r) => r.echoMs.p50],
    ['keystroke echo p99 (ms)', (r) => r.echoMs.p99],
    ['keystroke echo mean (ms)', (r) => r.echoMs.mean],
    [`output throughput, cat ${SIZE_MIB} MiB (MiB/s)`, (r) => r.throughput.mibPerSec],
    ['  received intact (size + SHA-256)', (r) => (r.throughput.verified ? 'yes' : 'NO')],
    ['time to attach → prompt, median (ms)', (r) => r.attachMs.p50],
    ['time to attach → prompt, max (ms)', (r) => r.attachMs.max],
    ['  → E2E session up, median (ms)', (r) => r.attachedMs?.p50],
  ];
  console.log(
    `\nkeystrokes: ${KEYSTROKES} (+${ECHO_WARMUP} warm-up), ${GAP_MS} ms apart; file: ${payload.bytes} bytes ` +
      `(${payload.lines} base64 lines); attaches: ${ATTACH_RUNS} (+${ATTACH_WARMUP} warm-up)\n`,
  );
  console.log(
    table(
      ['', ...systems.map((s) => s.label)],
      rows.map(([label, f]) => [
        label,
        ...systems.map((s) => {
          const r = results.get(s.key);
          return r === undefined ? 'skipped' : String(f(r) ?? '-');
        }),
      ]),
    ),
  );
  console.log(
    '\nCPU seconds during the bulk-output run (bench process: also the byte check after it):',
  );
  for (const s of systems) {
    const cpu = results.get(s.key)?.throughputCpuSeconds;
    if (cpu)
      console.log(
        `  ${s.label}: ${Object.entries(cpu)
          .map(([name, sec]) => `${name} ${sec}`)
          .join(', ')}`,
      );
  }
}

async function main(): Promise<void> {
  const sshTools: OpenSshTools | string = flags['no-ssh']
    ? 'skipped with --no-ssh'
    : ensureOpenSsh((text) => console.log(text));
  const machine = {
    nproc: cpus().length,
    cpuModel: cpuModel(),
    memGiB: round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    /** Other load on the machine when the run started (1-minute load average). */
    loadAvgAtStart: round(loadavg()[0] ?? 0, 2),
    ssh: typeof sshTools === 'string' ? null : sshTools.version,
  };
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}, ${machine.ssh ?? 'no OpenSSH'}; ` +
      `load average ${machine.loadAvgAtStart}`,
  );
  if (typeof sshTools === 'string') console.log(`OpenSSH comparison skipped: ${sshTools}`);

  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-term-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  /** Clients still running, closed first when the run is cut short. */
  const live = new Set<RemoteTerminal>();
  const tracked =
    (open: System['open']): System['open'] =>
    () => {
      const term = open();
      live.add(term);
      void term.ended.then(() => live.delete(term));
      return term;
    };
  const cleanup = async () => {
    await Promise.all([...live].map((t) => t.close().catch(() => undefined)));
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: cleaning up…`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const watchdog = setTimeout(() => {
    console.error(`\nthe benchmark took over ${RUN_LIMIT_MS / 1000} s; cleaning up and giving up`);
    void cleanup().finally(() => process.exit(1));
  }, RUN_LIMIT_MS);
  watchdog.unref();

  try {
    const payload = writePayload(join(dir, 'payload.b64'), SIZE_MIB * 2 ** 20);

    const systems: System[] = [];
    const results = new Map<string, SystemResult>();

    const sbRig = new SwitchboardRig({
      root: ROOT,
      dir: join(dir, 'sb'),
      shell: SHELL,
      cols: COLS,
      rows: ROWS,
      ...(flags['cpu-prof']
        ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', resolve(flags['cpu-prof'])] }
        : {}),
    });
    cleanups.push(() => sbRig.stop());
    await sbRig.start();
    const sbTls = await sbRig.tlsInfo();
    const cpuPids = { agent: sbRig.agentPid, relay: sbRig.relayPid };
    systems.push(
      {
        key: 'switchboard',
        label: 'switchboard in-process',
        open: tracked(() => sbRig.openInProcess()),
        cpuPids,
      },
      {
        key: 'switchboardCli',
        label: 'switchboard attach on PTY',
        open: tracked(() => sbRig.openCli()),
        cpuPids,
      },
    );
    for (const s of systems) results.set(s.key, await measureSystem(s, payload));
    // Stopped before OpenSSH runs, so its idle processes take nothing from the comparison.
    await cleanups.pop()!();

    let sshCrypto: string | null = null;
    const sshSystems: System[] = [];
    if (typeof sshTools !== 'string') {
      const sshRig = new OpenSshRig({
        tools: sshTools,
        dir: join(dir, 'ssh'),
        shell: SHELL,
        cols: COLS,
        rows: ROWS,
      });
      cleanups.push(() => sshRig.stop());
      await sshRig.start();
      sshCrypto = sshRig.negotiated();
      sshSystems.push(
        { key: 'opensshPty', label: 'ssh -J on PTY', open: tracked(() => sshRig.open('pty')) },
        {
          key: 'opensshPipes',
          label: 'ssh -J on pipes',
          open: tracked(() => sshRig.open('pipes')),
        },
      );
      for (const s of sshSystems) results.set(s.key, await measureSystem(s, payload));
      await cleanups.pop()!();
    } else {
      sshSystems.push(
        { key: 'opensshPty', label: 'ssh -J on PTY', open: () => unavailable() },
        { key: 'opensshPipes', label: 'ssh -J on pipes', open: () => unavailable() },
      );
    }
    systems.push(...sshSystems);

    report(systems, results, payload);
    const notes = [
      `Switchboard: 3 Node.js processes (controller, relay, agent); TLS (${sbTls}) on both hops ` +
        'and end-to-end AES-256-GCM inside it. OpenSSH (C): ssh -J is two SSH transports, the ' +
        `inner one end to end through the outer (${sshCrypto ?? 'n/a'}): both encrypt twice.`,
      'Two private sshds (jump host, target) stand in for the relay hop and the host; ssh refuses ' +
        'a jump through the same host:port. All on one machine over loopback: no network delay, ' +
        `and every process shares ${machine.nproc} cores, so the figures are software overhead.`,
      '"in-process" and "on pipes" have no local terminal (one PTY: the remote shell\'s); "on PTY" ' +
        'runs the client program on a local PTY (node-pty) as a person would, adding a PTY hop.',
      "The agent keeps a headless terminal emulator of each shell's screen (for repaints on attach) " +
        'and a replay buffer, and flow-controls output with acknowledgements; sshd does neither.',
      'Attach: switchboard = TLS + token login + attach + E2E handshake + a new login shell; ' +
        'ssh = process start + two key exchanges + two public-key logins + a new login shell. ' +
        'The in-process figure leaves out the Node.js process start; "attach on PTY" includes it.',
    ];
    console.log(`\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
    console.log(
      JSON.stringify({
        bench: 'terminal',
        date: new Date().toISOString(),
        quick: QUICK,
        machine,
        params: {
          keystrokes: KEYSTROKES,
          echoWarmup: ECHO_WARMUP,
          gapMs: GAP_MS,
          fileBytes: payload.bytes,
          fileLines: payload.lines,
          attachRuns: ATTACH_RUNS,
          attachWarmup: ATTACH_WARMUP,
          remoteShell: `${SHELL} -l`,
          terminal: `${COLS}x${ROWS}`,
        },
        crypto: { switchboardTls: sbTls, openssh: sshCrypto },
        results: Object.fromEntries(systems.map((s) => [s.key, results.get(s.key) ?? null])),
        opensshSkipped: typeof sshTools === 'string' ? sshTools : null,
      }),
    );
    const broken = systems.filter((s) => results.get(s.key)?.throughput.verified === false);
    if (broken.length > 0)
      throw new Error(
        `bulk output was not received intact through ${broken.map((s) => s.label).join(', ')}`,
      );
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

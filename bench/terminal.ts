// Benchmark of remote terminals: keystroke echo, bulk output and attach time, Switchboard vs OpenSSH.
//
// Usage: npm run bench:terminal -- [--quick] [--keystrokes N] [--size MIB] [--attach-runs N]
//                                   [--gap MS] [--seq N] [--rounds N] [--no-ssh] [--cpu-prof DIR]
// Everything runs on this machine over 127.0.0.1; both sides run `/bin/sh -l` on a remote PTY.
// Switchboard: `switchboard serve` and `switchboard agent` as child processes; the controller both
// in this process (AttachSession: bytes timed where they arrive, no terminal in between) and as
// `switchboard attach` on a PTY. OpenSSH: two private sshds (temp host key, temp authorized_keys)
// as jump host and target, reached with `ssh -J`, on a PTY and on pipes: the same
// client → relay hop → host shape. As root, a missing openssh-server/openssh-client is installed
// with apt-get first (not timed); otherwise the OpenSSH columns are skipped with the reason.
import { findRoot } from './lib/root.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { guardRun, machineInfo } from './lib/bench-run.js';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds } from '../src/bench/proc.js';
import type { OpenSshTools } from '../src/bench/openssh.js';
import { OpenSshRig, ensureOpenSsh } from './lib/openssh-rig.js';
import { seqPayload, writePayload, type Payload } from './lib/payload.js';
import type { RemoteTerminal } from './lib/remote-terminal.js';
import { median, round, summarize, table, type Summary } from '../src/bench/stats.js';
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
    seq: { type: 'string' },
    rounds: { type: 'string' },
    'no-ssh': { type: 'boolean' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:terminal -- [--quick] [--keystrokes N=300] [--size MIB=64] [--attach-runs N=10]\n' +
      '                          [--gap MS=10] [--seq N=3000000] [--rounds N=3] [--no-ssh]\n' +
      '                          [--cpu-prof DIR]\n' +
      '--quick: 100 keystrokes, 8 MiB, seq 1 1000000, 5 attaches, 1 round.\n' +
      '--rounds: every client is measured once per round, in turn; the table shows medians.\n' +
      'As root, installs OpenSSH with apt-get if missing.\n' +
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
/** `seq 1 N` for the short-line bulk-output run. */
const SEQ_N = intFlag('seq', flags.seq, QUICK ? 1_000_000 : 3_000_000, 1, 100_000_000);
/** Rounds: each measures every client once, so slow drifts in the machine's load hit all alike. */
const ROUNDS = intFlag('rounds', flags.rounds, QUICK ? 1 : 3, 1, 20);
/** Unmeasured keystrokes and attaches first (JIT, caches, first-contact key pinning). */
const ECHO_WARMUP = 20;
const ATTACH_WARMUP = 1;
/** Limit on any single wait: a prompt, an echo, a marker. */
const STEP_TIMEOUT_MS = 15_000; // ms
/** Limit on the whole bulk-output run (one `cat`). */
const CAT_TIMEOUT_MS = 120_000; // ms
/** Limit on each round of the measurement (after any apt-get install); then it cleans up and fails. */
const ROUND_LIMIT_MS = 5 * 60_000; // ms
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
  /** `seq 1 N`: short lines. */
  seq: ThroughputResult;
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

function roundThroughput(r: ThroughputResult): ThroughputResult {
  return {
    ...r,
    mibPerSec: round(r.mibPerSec, 1),
    seconds: round(r.seconds, 3),
    startMs: round(r.startMs, 1),
  };
}

async function measureSystem(
  system: System,
  payloads: { cat: Payload; seq: Payload },
  tag: string,
): Promise<SystemResult> {
  const { label, open } = system;
  console.log(`${tag} ${label}: time to attach (${ATTACH_WARMUP} + ${ATTACH_RUNS} runs)…`);
  const attach = await measureAttach(open, {
    runs: ATTACH_RUNS,
    warmup: ATTACH_WARMUP,
    timeoutMs: STEP_TIMEOUT_MS,
  });
  console.log(`${tag} ${label}: keystroke echo (${ECHO_WARMUP} + ${KEYSTROKES} keystrokes)…`);
  const echo = await withTerminal(open, (t) =>
    measureEcho(t, {
      keystrokes: KEYSTROKES,
      warmup: ECHO_WARMUP,
      gapMs: GAP_MS,
      timeoutMs: STEP_TIMEOUT_MS,
    }),
  );
  console.log(`${tag} ${label}: output throughput (${payloads.cat.label})…`);
  const pids = { ...system.cpuPids, 'bench process': process.pid };
  const cpuBefore = sampleCpu(pids);
  const throughput = await withTerminal(open, (t) =>
    measureThroughput(t, payloads.cat, { timeoutMs: CAT_TIMEOUT_MS }),
  );
  const cpuAfter = sampleCpu(pids);
  const cpu: Record<string, number> = {};
  for (const [name, after] of Object.entries(cpuAfter)) {
    const before = cpuBefore[name];
    if (after !== undefined && before !== undefined) cpu[name] = round(after - before, 2);
  }
  console.log(`${tag} ${label}: output throughput (${payloads.seq.label})…`);
  const seq = await withTerminal(open, (t) =>
    measureThroughput(t, payloads.seq, { timeoutMs: CAT_TIMEOUT_MS }),
  );
  const attached = attach.flatMap((s) => (s.attachedMs === undefined ? [] : [s.attachedMs]));
  return {
    echoMs: summarize(echo),
    throughput: roundThroughput(throughput),
    throughputCpuSeconds: cpu,
    seq: roundThroughput(seq),
    attachMs: summarize(
      attach.map((s) => s.promptMs),
      1,
    ),
    ...(attached.length > 0 ? { attachedMs: summarize(attached, 1) } : {}),
  };
}

/** The figures of the report: per round, and their median over the rounds. */
const FIGURES: Array<{
  key: string;
  label: (payloads: { cat: Payload; seq: Payload }) => string;
  of: (r: SystemResult) => number | undefined;
  digits: number;
}> = [
  { key: 'echoP50Ms', label: () => 'keystroke echo p50 (ms)', of: (r) => r.echoMs.p50, digits: 3 },
  { key: 'echoP99Ms', label: () => 'keystroke echo p99 (ms)', of: (r) => r.echoMs.p99, digits: 3 },
  {
    key: 'catMiBps',
    label: (p) => `output throughput, ${p.cat.label} (MiB/s)`,
    of: (r) => r.throughput.mibPerSec,
    digits: 1,
  },
  {
    key: 'seqMiBps',
    label: (p) => `output throughput, ${p.seq.label} (MiB/s)`,
    of: (r) => r.seq.mibPerSec,
    digits: 1,
  },
  {
    key: 'attachP50Ms',
    label: () => 'time to attach → prompt, median (ms)',
    of: (r) => r.attachMs.p50,
    digits: 1,
  },
  {
    key: 'attachedP50Ms',
    label: () => '  → E2E session up, median (ms)',
    of: (r) => r.attachedMs?.p50,
    digits: 1,
  },
];

function medians(rounds: SystemResult[]): Record<string, number | undefined> {
  return Object.fromEntries(
    FIGURES.map((f) => {
      const values = rounds.flatMap((r) => {
        const v = f.of(r);
        return v === undefined ? [] : [v];
      });
      return [f.key, values.length > 0 ? round(median(values), f.digits) : undefined];
    }),
  );
}

function unavailable(): never {
  throw new Error('OpenSSH is not available');
}

function report(
  systems: System[],
  results: Map<string, SystemResult[]>,
  payloads: { cat: Payload; seq: Payload },
): void {
  const cell = (key: string, f: (typeof FIGURES)[number]) => {
    const rounds = results.get(key);
    if (!rounds) return 'skipped';
    const m = medians(rounds)[f.key];
    return m === undefined ? '-' : String(m);
  };
  console.log(
    `\nkeystrokes: ${KEYSTROKES} (+${ECHO_WARMUP} warm-up), ${GAP_MS} ms apart; ` +
      `${payloads.cat.label} (${payloads.cat.lines} base64 lines); ${payloads.seq.label}; ` +
      `attaches: ${ATTACH_RUNS} (+${ATTACH_WARMUP} warm-up); rounds: ${ROUNDS} (medians below)\n`,
  );
  console.log(
    table(
      ['', ...systems.map((s) => s.label)],
      [
        ...FIGURES.map((f) => [f.label(payloads), ...systems.map((s) => cell(s.key, f))]),
        [
          '  all output received intact (size + SHA-256)',
          ...systems.map((s) => {
            const rounds = results.get(s.key);
            if (!rounds) return 'skipped';
            return rounds.every((r) => r.throughput.verified && r.seq.verified) ? 'yes' : 'NO';
          }),
        ],
      ],
    ),
  );
  if (ROUNDS > 1) {
    console.log('\nEach round (echo p50 ms / p99 ms / cat MiB/s / seq MiB/s / attach ms):');
    for (const s of systems) {
      const rounds = results.get(s.key);
      if (!rounds) continue;
      const text = rounds.map(
        (r) =>
          `${r.echoMs.p50} / ${r.echoMs.p99} / ${r.throughput.mibPerSec} / ${r.seq.mibPerSec} / ${r.attachMs.p50}`,
      );
      console.log(`  ${s.label}: ${text.join('  |  ')}`);
    }
  }
  console.log(
    `\nCPU seconds during the ${payloads.cat.label} run, each round (bench process: also the byte check after it):`,
  );
  for (const s of systems) {
    const rounds = results.get(s.key) ?? [];
    for (const [i, r] of rounds.entries())
      if (r.throughputCpuSeconds && Object.keys(r.throughputCpuSeconds).length > 0)
        console.log(
          `  ${s.label}, round ${i + 1}: ${Object.entries(r.throughputCpuSeconds)
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
    ...machineInfo(),
    ssh: typeof sshTools === 'string' ? null : sshTools.version,
  };
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}, ${machine.ssh ?? 'no OpenSSH'}; ` +
      `load average ${machine.loadAvgAtStart}`,
  );
  if (typeof sshTools === 'string') console.log(`OpenSSH comparison skipped: ${sshTools}`);

  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-term-'));
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
  const { cleanups, done } = guardRun({
    dir,
    limitMs: ROUND_LIMIT_MS * ROUNDS,
    first: () => Promise.all([...live].map((t) => t.close().catch(() => undefined))),
  });

  try {
    const payloads = {
      cat: writePayload(join(dir, 'payload.b64'), SIZE_MIB * 2 ** 20),
      seq: seqPayload(SEQ_N),
    };

    const systems: System[] = [];
    const results = new Map<string, SystemResult[]>();

    // Both sides stay up for the whole run (idle, they take no CPU), so rounds can interleave.
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

    let sshCrypto: string | null = null;
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
      systems.push(
        { key: 'opensshPty', label: 'ssh -J on PTY', open: tracked(() => sshRig.open('pty')) },
        {
          key: 'opensshPipes',
          label: 'ssh -J on pipes',
          open: tracked(() => sshRig.open('pipes')),
        },
      );
    }
    const measured = [...systems];
    if (typeof sshTools === 'string')
      systems.push(
        { key: 'opensshPty', label: 'ssh -J on PTY', open: () => unavailable() },
        { key: 'opensshPipes', label: 'ssh -J on pipes', open: () => unavailable() },
      );

    for (let r = 0; r < ROUNDS; r++) {
      // Each round starts with the next client, so none is always first (or last) after a pause.
      const order = measured.map((_, i) => measured[(i + r) % measured.length]!);
      for (const s of order) {
        const result = await measureSystem(s, payloads, `[round ${r + 1}/${ROUNDS}]`);
        results.set(s.key, [...(results.get(s.key) ?? []), result]);
      }
    }

    report(systems, results, payloads);
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
          fileBytes: payloads.cat.bytes,
          fileLines: payloads.cat.lines,
          seq: SEQ_N,
          seqBytes: payloads.seq.bytes,
          rounds: ROUNDS,
          attachRuns: ATTACH_RUNS,
          attachWarmup: ATTACH_WARMUP,
          remoteShell: `${SHELL} -l`,
          terminal: `${COLS}x${ROWS}`,
        },
        crypto: { switchboardTls: sbTls, openssh: sshCrypto },
        results: Object.fromEntries(
          systems.map((s) => {
            const rounds = results.get(s.key);
            return [s.key, rounds ? { median: medians(rounds), rounds } : null];
          }),
        ),
        opensshSkipped: typeof sshTools === 'string' ? sshTools : null,
      }),
    );
    const broken = systems.filter((s) =>
      (results.get(s.key) ?? []).some((r) => !r.throughput.verified || !r.seq.verified),
    );
    if (broken.length > 0)
      throw new Error(
        `bulk output was not received intact through ${broken.map((s) => s.label).join(', ')}`,
      );
  } finally {
    await done();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

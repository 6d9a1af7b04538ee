// Benchmark of remote terminals: keystroke echo, bulk output and attach time, Switchboard vs OpenSSH.
//
// Usage: npm run bench:terminal -- [--quick] [--keystrokes N] [--size MIB] [--attach-runs N]
//                                   [--gap MS] [--no-ssh]
// Everything runs on this machine over 127.0.0.1. Switchboard: `switchboard serve` and
// `switchboard agent` as child processes, the controller in this process (AttachSession), so
// bytes are timed where they arrive, with no terminal emulator in between. OpenSSH: a private
// sshd (temp host key, temp authorized_keys) used as both jump host and target, reached with
// `ssh -J` on a PTY: the same client → relay hop → host shape. Both run `/bin/sh -l` remotely.
// As root, a missing openssh-server/openssh-client is installed with apt-get first (not timed).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OpenSshRig, ensureOpenSsh, type OpenSshTools } from './lib/openssh-rig.js';
import { writePayload, type Payload } from './lib/payload.js';
import type { RemoteTerminal } from './lib/remote-terminal.js';
import { round, summarize, table, type Summary } from './lib/stats.js';
import { SwitchboardRig } from './lib/switchboard-rig.js';
import {
  measureAttach,
  measureEcho,
  measureThroughput,
  type AttachSample,
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
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:terminal -- [--quick] [--keystrokes N=300] [--size MIB=64] [--attach-runs N=10]\n' +
      '                          [--gap MS=10] [--no-ssh]\n' +
      '--quick: 100 keystrokes, 8 MiB, 5 attaches. As root, installs OpenSSH with apt-get if missing.',
  );
  process.exit(0);
}

function positiveInt(
  name: string,
  text: string | undefined,
  fallback: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new Error(`--${name} must be an integer from 0 to ${max}`);
  return n;
}

const QUICK = flags.quick === true;
const KEYSTROKES = positiveInt('keystrokes', flags.keystrokes, QUICK ? 100 : 300, 5_000);
const SIZE_MIB = positiveInt('size', flags.size, QUICK ? 8 : 64, 1_024);
const ATTACH_RUNS = positiveInt('attach-runs', flags['attach-runs'], QUICK ? 5 : 10, 100);
/** Pause between keystrokes, so each one starts from an idle pipeline like typing does. */
const GAP_MS = positiveInt('gap', flags.gap, 10, 1_000); // ms
/** Unmeasured keystrokes and attaches first (JIT, caches, first-contact key pinning). */
const ECHO_WARMUP = 20;
const ATTACH_WARMUP = 1;
/** Limit on any single wait: a prompt, an echo, a marker. */
const STEP_TIMEOUT_MS = 15_000; // ms
/** Limit on the whole bulk-output run (one `cat`). */
const CAT_TIMEOUT_MS = 120_000; // ms
/** Limit on the whole measurement (after any apt-get install); then it cleans up and fails. */
const RUN_LIMIT_MS = 8 * 60_000; // ms
/** The remote shell on both sides: dash, no readline, no bracketed paste; `-l` as agent and sshd run it. */
const SHELL = '/bin/sh';
const COLS = 80;
const ROWS = 24;

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'switchboard'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find bin/switchboard');
    dir = up;
  }
  return dir;
})();

interface SystemResult {
  echoMs: Summary;
  throughput: ThroughputResult;
  attachMs: Summary;
  /** Switchboard only: start → E2E session established (before the shell's prompt). */
  attachedMs?: Summary;
  /** Switchboard only: `switchboard attach` as a new process on a PTY → prompt. */
  attachCliMs?: Summary;
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

async function measureSystem(
  name: string,
  open: () => RemoteTerminal & { attachedAt?: Promise<number> },
  payload: Payload,
  openCli?: () => RemoteTerminal,
): Promise<SystemResult> {
  console.log(`${name}: time to attach (${ATTACH_WARMUP} + ${ATTACH_RUNS} runs)…`);
  const attach = await measureAttach(open, {
    runs: ATTACH_RUNS,
    warmup: ATTACH_WARMUP,
    timeoutMs: STEP_TIMEOUT_MS,
  });
  let cli: AttachSample[] | undefined;
  if (openCli) {
    console.log(`${name}: time to attach with the CLI process…`);
    cli = await measureAttach(openCli, {
      runs: ATTACH_RUNS,
      warmup: ATTACH_WARMUP,
      timeoutMs: STEP_TIMEOUT_MS,
    });
  }
  console.log(`${name}: keystroke echo (${ECHO_WARMUP} + ${KEYSTROKES} keystrokes)…`);
  const echo = await withTerminal(open, (t) =>
    measureEcho(t, {
      keystrokes: KEYSTROKES,
      warmup: ECHO_WARMUP,
      gapMs: GAP_MS,
      timeoutMs: STEP_TIMEOUT_MS,
    }),
  );
  console.log(`${name}: output throughput (cat of ${SIZE_MIB} MiB)…`);
  const throughput = await withTerminal(open, (t) =>
    measureThroughput(t, payload, { timeoutMs: CAT_TIMEOUT_MS }),
  );
  const attached = attach.flatMap((s) => (s.attachedMs === undefined ? [] : [s.attachedMs]));
  return {
    echoMs: summarize(echo),
    throughput: {
      ...throughput,
      mibPerSec: round(throughput.mibPerSec, 1),
      seconds: round(throughput.seconds, 3),
      startMs: round(throughput.startMs, 1),
    },
    attachMs: summarize(
      attach.map((s) => s.promptMs),
      1,
    ),
    ...(attached.length > 0 ? { attachedMs: summarize(attached, 1) } : {}),
    ...(cli
      ? {
          attachCliMs: summarize(
            cli.map((s) => s.promptMs),
            1,
          ),
        }
      : {}),
  };
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

function report(sb: SystemResult, ssh: SystemResult | undefined, payload: Payload): void {
  const cell = (
    f: (r: SystemResult) => number | string | undefined,
    r: SystemResult | undefined,
  ) => (r === undefined ? 'skipped' : String(f(r) ?? '-'));
  const rows: Array<[string, (r: SystemResult) => number | string | undefined]> = [
    ['keystroke echo p50 (ms)', (r) => r.echoMs.p50],
    ['keystroke echo p99 (ms)', (r) => r.echoMs.p99],
    ['keystroke echo mean (ms)', (r) => r.echoMs.mean],
    [`output throughput, cat ${SIZE_MIB} MiB (MiB/s)`, (r) => r.throughput.mibPerSec],
    ['  bytes verified (size + SHA-256)', (r) => (r.throughput.verified ? 'yes' : 'NO')],
    ['time to attach → prompt, median (ms)', (r) => r.attachMs.p50],
    ['time to attach → prompt, max (ms)', (r) => r.attachMs.max],
    ['  → E2E session up, median (ms)', (r) => r.attachedMs?.p50],
    ['  CLI process on a PTY → prompt, median (ms)', (r) => r.attachCliMs?.p50],
  ];
  console.log(
    `\nkeystrokes: ${KEYSTROKES} (+${ECHO_WARMUP} warm-up), ${GAP_MS} ms apart; file: ${payload.bytes} bytes ` +
      `(${payload.lines} base64 lines); attaches: ${ATTACH_RUNS} (+${ATTACH_WARMUP} warm-up)\n`,
  );
  console.log(
    table(
      ['', 'switchboard', 'openssh ssh -J'],
      rows.map(([label, f]) => [label, cell(f, sb), cell(f, ssh)]),
    ),
  );
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
    ssh: typeof sshTools === 'string' ? null : sshTools.version,
  };
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}, ${machine.ssh ?? 'no OpenSSH'}`,
  );
  if (typeof sshTools === 'string') console.log(`OpenSSH comparison skipped: ${sshTools}`);

  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-term-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
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

    const sbRig = new SwitchboardRig({
      root: ROOT,
      dir: join(dir, 'sb'),
      shell: SHELL,
      cols: COLS,
      rows: ROWS,
    });
    cleanups.push(() => sbRig.stop());
    await sbRig.start();
    const sbTls = await sbRig.tlsInfo();
    const sb = await measureSystem(
      'switchboard',
      () => sbRig.openInProcess(),
      payload,
      () => sbRig.openCli(),
    );
    // Stopped before OpenSSH runs, so its idle processes take nothing from the comparison.
    await cleanups.pop()!();

    let ssh: SystemResult | undefined;
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
      ssh = await measureSystem('openssh', () => sshRig.open(), payload);
      await cleanups.pop()!();
    }

    report(sb, ssh, payload);
    const notes = [
      `Switchboard: 3 Node.js processes (controller here, relay, agent); TLS (${sbTls}) on each hop plus ` +
        'end-to-end AES-256-GCM inside it. OpenSSH (C): ssh -J is two SSH transports, the inner one ' +
        `end to end through the outer one (${sshCrypto ?? 'n/a'}), so both encrypt twice.`,
      'ssh -J here uses one sshd as both jump host and target (two connections to it); on a real ' +
        'relay the jump hop is another machine. Both run on one machine over loopback: no network ' +
        `delay, and all processes share ${machine.nproc} cores, so the figures are software overhead.`,
      'The switchboard controller is timed in-process (no terminal); ssh is timed through a local ' +
        'PTY (node-pty), which adds a PTY hop to every ssh figure, and its own process start to attach.',
      "The agent keeps a headless terminal emulator of each shell's screen (for repaints on attach) " +
        'and a replay buffer, and flow-controls output with acknowledgements; sshd does neither.',
      'Attach: switchboard = TLS + token login + attach + E2E handshake + a new login shell; ' +
        'ssh = process start + two key exchanges + two public-key logins + a new login shell. ' +
        'The CLI row adds the Node.js process start that the in-process figure leaves out.',
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
        switchboard: { ...sb, tls: sbTls },
        openssh: ssh ? { ...ssh, crypto: sshCrypto } : null,
        opensshSkipped: typeof sshTools === 'string' ? sshTools : null,
      }),
    );
    if (!sb.throughput.verified || (ssh && !ssh.throughput.verified))
      throw new Error('bulk output was not received intact (see "bytes verified")');
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

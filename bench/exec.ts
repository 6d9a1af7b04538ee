// Benchmark of `switchboard exec` on a fleet: a trivial command on 1, 10, 50 and 100 agents, vs pssh.
//
// Usage: npm run bench:exec -- [--quick] [--rounds N] [--agents N] [--parallel N] [--no-ssh]
//                              [--cpu-prof DIR]
// Everything runs on this machine over 127.0.0.1. Switchboard: `switchboard serve` and one
// `switchboard agent` process per agent (each its own home and device key, dealt alternately to
// two accounts so the relay's default per-account limits hold), tagged so that `--tag inN=yes`
// selects the first N; the real CLI `switchboard exec --tag inN=yes --parallel 100 --json -- true`
// is timed from spawn to exit. OpenSSH: one private sshd (temp host key, temp authorized_keys),
// reached under N distinct Host aliases by Debian's `parallel-ssh -p 100 -h hosts -i true`. As
// root, missing openssh-server/openssh-client and pssh are installed with apt-get first (not timed).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { guardRun, machineInfo } from './lib/bench-run.js';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  SshFleet,
  SwitchboardFleet,
  ensurePssh,
  memAvailableKiB,
  procCpu,
  procMemory,
  type PsshTool,
} from './lib/exec-fleet.js';
import { parseJsonEvents, timed } from './lib/exec-runs.js';
import { intFlag } from './lib/flags.js';
import type { OpenSshTools } from '../src/bench/openssh.js';
import { ensureOpenSsh } from './lib/openssh-rig.js';
import { findRoot } from './lib/root.js';
import { machineCpuSeconds } from '../src/bench/proc.js';
import { median, round, table } from '../src/bench/stats.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    rounds: { type: 'string' },
    agents: { type: 'string' },
    parallel: { type: 'string' },
    'no-ssh': { type: 'boolean' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:exec -- [--quick] [--rounds N=3] [--agents N=100] [--parallel N=100] [--no-ssh]\n' +
      '                      [--cpu-prof DIR]\n' +
      '--quick: 20 agents (1, 10, 20 selected), 1 round.\n' +
      '--rounds: every fleet size with both tools once per round, in turn; the table shows medians.\n' +
      'As root, installs OpenSSH and pssh with apt-get if missing.\n' +
      '--cpu-prof DIR: the relay, the first agent and every `switchboard exec` write a V8 CPU profile to DIR.',
  );
  process.exit(0);
}

const QUICK = flags.quick === true;
/** Agent processes (and sshd host aliases); at most 100: two accounts of 50 live sessions each. */
const AGENTS = flags.agents ? intFlag('agents', flags.agents, 1, 100) : QUICK ? 20 : 100;
const ROUNDS = flags.rounds ? intFlag('rounds', flags.rounds, 1, 20) : QUICK ? 1 : 3;
/** Hosts at once, for both tools (`exec --parallel`, `pssh -p`). */
const PARALLEL = flags.parallel ? intFlag('parallel', flags.parallel, 1, 256) : 100;
/** Fleet sizes measured: these, up to AGENTS, and AGENTS itself. */
const SIZES = [...new Set([1, 10, 50, 100].filter((n) => n < AGENTS).concat(AGENTS))];
/** Limit on one timed run of either tool; then it is killed and the benchmark fails. */
const RUN_TIMEOUT_MS = 120_000; // ms
/** Limit on the whole benchmark after installs; then it cleans up and fails. */
const TOTAL_LIMIT_MS = 15 * 60_000 + ROUNDS * 5 * 60_000; // ms
/** Time an agent is left alone after it starts before its memory is read. */
const SETTLE_MS = 3_000; // ms
/** Head room asked of the machine beyond the agents' measured memory. */
const MEMORY_MARGIN = 1.5;
/** The pssh runs: ssh's defaults, and with the classic X25519 key exchange (no sntrup761). */
interface PsshVariant {
  key: string;
  label: string;
  /** ssh -o options. */
  sshOptions: string[];
}
const PSSH_VARIANTS: PsshVariant[] = [
  { key: 'pssh', label: 'pssh', sshOptions: [] },
  {
    key: 'psshX25519',
    label: 'pssh, x25519 kex',
    sshOptions: ['KexAlgorithms=curve25519-sha256'],
  },
];
/** Unmeasured runs allowed before exec must succeed on every agent (first contact pins keys). */
const WARMUP_ATTEMPTS = 3;
/** The command both tools run: nothing to do, so the figures are the tools' own cost. */
const COMMAND = 'true';

const ROOT = findRoot();
/** Set by SIGINT/SIGTERM: the run's own failure that follows is not worth reporting. */
let interrupted = false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SwitchboardRun {
  wallMs: number;
  /** `channel.fanout` sent → last host's exit: the longest per-host durationMs in --json. */
  fanoutMs: number;
  /** Spawn → the first host's `start` event arrived (start-up, TLS, login, list, fan-out, E2E). */
  firstStartMs: number;
  /** The `summary` event arrived → the process exited. */
  exitTailMs: number;
  clientCpu: number;
}

interface PsshRun {
  wallMs: number;
  clientCpu: number;
}

const mib = (kib: number) => round(kib / 1024, 1);

interface MemoryReading {
  agentRssMiB: { median: number; min: number; max: number; total: number };
  agentPssTotalMiB: number;
  relayRssMiB: number | undefined;
  sshdRssMiB: number | undefined;
}

function readMemory(sb: SwitchboardFleet, ssh: SshFleet | undefined): MemoryReading {
  const agents = sb.agentPids.map((pid) => procMemory(pid)).filter((m) => m !== undefined);
  const rss = agents.map((m) => m.rssKiB);
  return {
    agentRssMiB: {
      median: mib(median(rss)),
      min: mib(Math.min(...rss)),
      max: mib(Math.max(...rss)),
      total: mib(rss.reduce((a, b) => a + b, 0)),
    },
    agentPssTotalMiB: mib(agents.reduce((a, m) => a + m.pssKiB, 0)),
    relayRssMiB: ((m) => (m ? mib(m.rssKiB) : undefined))(procMemory(sb.relayPid)),
    sshdRssMiB: ((m) => (m ? mib(m.rssKiB) : undefined))(procMemory(ssh?.sshdPid)),
  };
}

/** CPU seconds of the long-lived processes, summed, for the figures per exec. */
function serverCpu(sb: SwitchboardFleet, ssh: SshFleet | undefined) {
  let agents = 0;
  let agentChildren = 0;
  for (const pid of sb.agentPids) {
    const c = procCpu(pid);
    agents += c?.self ?? 0;
    agentChildren += c?.children ?? 0;
  }
  const sshd = procCpu(ssh?.sshdPid);
  return {
    machine: machineCpuSeconds(),
    relay: procCpu(sb.relayPid)?.self ?? 0,
    agents,
    agentChildren,
    sshd: sshd ? sshd.self + sshd.children : 0,
  };
}

async function main(): Promise<void> {
  const log = (text: string) => console.log(text);
  let sshTools: OpenSshTools | string = 'skipped with --no-ssh';
  let pssh: PsshTool | string = 'skipped with --no-ssh';
  if (!flags['no-ssh']) {
    sshTools = ensureOpenSsh(log);
    if (typeof sshTools !== 'string') pssh = ensurePssh(log);
  }
  const sshSkipped =
    typeof sshTools === 'string' ? sshTools : typeof pssh === 'string' ? pssh : undefined;
  const machine = {
    ...machineInfo(),
    ssh: typeof sshTools === 'string' ? null : sshTools.version,
    pssh: typeof pssh === 'string' ? null : pssh.version,
  };
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}, ${machine.ssh ?? 'no OpenSSH'}, ` +
      `${machine.pssh ?? 'no pssh'}; load average ${machine.loadAvgAtStart}`,
  );
  if (sshSkipped) console.log(`pssh comparison skipped: ${sshSkipped}`);

  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-exec-'));
  const cpuProf = flags['cpu-prof'] ? resolve(flags['cpu-prof']) : undefined;
  const profArgs = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', cpuProf] : [];
  const { cleanups, done } = guardRun({
    dir,
    limitMs: TOTAL_LIMIT_MS,
    onInterrupt: () => (interrupted = true),
  });

  try {
    // Agent i carries inN=yes for every size N > i, so --tag inN=yes selects exactly N agents.
    const sb = new SwitchboardFleet({
      root: ROOT,
      dir: join(dir, 'sb'),
      agents: AGENTS,
      tags: (i) => SIZES.filter((n) => i < n).map((n) => `in${n}=yes`),
      nodeArgs: profArgs,
      afterFirst: async (pid) => {
        await sleep(SETTLE_MS);
        const one = procMemory(pid);
        if (!one) throw new Error('cannot read the first agent’s memory from /proc');
        const need = one.rssKiB * (AGENTS - 1) * MEMORY_MARGIN;
        const available = memAvailableKiB();
        console.log(
          `one idle agent: RSS ${mib(one.rssKiB)} MiB, PSS ${mib(one.pssKiB)} MiB; ` +
            `${AGENTS - 1} more need about ${mib(need)} MiB with margin, ${mib(available)} MiB available`,
        );
        if (need > available)
          throw new Error(
            `not enough memory for ${AGENTS} agent processes; run with --agents ${Math.floor(available / (one.rssKiB * MEMORY_MARGIN))}`,
          );
      },
    });
    cleanups.push(() => sb.stop());
    const startedAt = performance.now();
    console.log(`starting the relay and ${AGENTS} agent processes…`);
    await sb.start();
    console.log(`  up in ${round((performance.now() - startedAt) / 1000, 1)} s`);

    let ssh: SshFleet | undefined;
    let sshCrypto: string | null = null;
    if (!sshSkipped) {
      ssh = new SshFleet({
        tools: sshTools as OpenSshTools,
        dir: join(dir, 'ssh'),
        hosts: AGENTS,
      });
      cleanups.push(() => ssh!.stop());
      await ssh.start();
      sshCrypto = ssh.negotiated();
    }
    await sleep(SETTLE_MS);
    const memoryIdle = readMemory(sb, ssh);

    const cliEnv = { ...process.env, SWITCHBOARD_HOME: sb.controllerHome };
    /** One `exec --json` run: its timing and its per-host outcome (state, or error code). */
    const execOnce = async (n: number) => {
      const args = [...profArgs, sb.bin, 'exec', '--tag', `in${n}=yes`];
      args.push('--parallel', String(PARALLEL), '--json', '--', COMMAND);
      const ran = await timed(process.execPath, args, cliEnv, RUN_TIMEOUT_MS);
      const events = parseJsonEvents(ran);
      const ends = events.filter((e) => e['event'] !== 'start' && e['event'] !== 'summary');
      const outcomes = new Map<string, number>();
      for (const e of ends) {
        const error = e['error'] as { code?: string } | undefined;
        const key = String(error?.code ?? e['state']);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      const succeeded = ends.filter((e) => e['state'] === 'succeeded');
      const firstStart = events.find((e) => e['event'] === 'start');
      const summary = events.find((e) => e['event'] === 'summary');
      return {
        ran,
        succeeded,
        outcomes,
        firstStartMs: firstStart?.atMs ?? NaN,
        exitTailMs: summary ? ran.wallMs - summary.atMs : NaN,
      };
    };
    const describe = (outcomes: Map<string, number>) =>
      [...outcomes].map(([k, v]) => `${v} ${k}`).join(', ') || 'no host events';
    const runSwitchboard = async (n: number): Promise<SwitchboardRun> => {
      const { ran, succeeded, outcomes, firstStartMs, exitTailMs } = await execOnce(n);
      if (ran.code !== 0 || succeeded.length !== n)
        throw new Error(
          `switchboard exec on ${n} agents: ${describe(outcomes)} (exit ${ran.code})\n` +
            `${ran.stdout
              .split('\n')
              .filter((l) => !/"state":"succeeded"/.test(l))
              .join('\n')
              .slice(-3000)}${ran.stderr}`,
        );
      return {
        wallMs: ran.wallMs,
        fanoutMs: Math.max(...succeeded.map((e) => Number(e['durationMs']))),
        firstStartMs,
        exitTailMs,
        clientCpu: ran.clientCpu,
      };
    };
    const psshEnv = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: dir,
      LANG: 'C.UTF-8',
    };
    const runPssh = async (n: number, variant: PsshVariant): Promise<PsshRun> => {
      const tool = pssh as PsshTool;
      const sshArgs = [`-F ${ssh!.config}`, ...variant.sshOptions.map((o) => `-o ${o}`)];
      const args = ['-p', String(PARALLEL), '-h', ssh!.hostsFile(n), '-x', sshArgs.join(' ')];
      args.push('-t', '60', '-i', COMMAND);
      const ran = await timed(tool.path, args, psshEnv, RUN_TIMEOUT_MS);
      const ok = ran.stdout.match(/\[SUCCESS\]/g)?.length ?? 0;
      if (ran.code !== 0 || ok !== n)
        throw new Error(
          `${variant.label} on ${n} hosts: ${ok} of ${n} succeeded (exit ${ran.code})\n` +
            `${ran.stdout.slice(-3000)}${ran.stderr}`,
        );
      return { wallMs: ran.wallMs, clientCpu: ran.clientCpu };
    };
    const runVersion = async (): Promise<number> =>
      (await timed(process.execPath, [sb.bin, '--version'], cliEnv, RUN_TIMEOUT_MS)).wallMs;

    // Unmeasured: first contact pins every agent's key (and the controller's at each agent),
    // fills sshd's known_hosts, and warms the JIT of the relay and the agents.
    const biggest = SIZES[SIZES.length - 1]!;
    console.log(`warm-up: one run of each on ${biggest} hosts…`);
    // The first contact is reported, not required to succeed: it is where pinning happens.
    const firstContact: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const { ran, succeeded, outcomes } = await execOnce(biggest);
      firstContact.push(`exit ${ran.code}: ${describe(outcomes)}`);
      console.log(`  switchboard exec, run ${attempt}: ${firstContact[attempt - 1]}`);
      if (ran.code === 0 && succeeded.length === biggest) break;
      if (attempt === WARMUP_ATTEMPTS)
        throw new Error(
          `switchboard exec on ${biggest} agents did not succeed in ${WARMUP_ATTEMPTS} runs\n` +
            `${ran.stdout.slice(-3000)}${ran.stderr}`,
        );
    }
    const variants = ssh ? PSSH_VARIANTS : [];
    for (const v of variants) await runPssh(biggest, v);

    const sbRuns = new Map<number, SwitchboardRun[]>(SIZES.map((n) => [n, []]));
    const psshRuns = new Map<string, Map<number, PsshRun[]>>(
      variants.map((v) => [v.key, new Map(SIZES.map((n) => [n, []]))]),
    );
    const versionRuns: number[] = [];
    /** Summed over the runs on the biggest fleet, per tool. */
    const sbCpuSum = { execs: 0, cli: 0, relay: 0, agents: 0, agentChildren: 0, machine: 0 };
    const psshCpuSum = new Map(
      variants.map((v) => [v.key, { execs: 0, client: 0, sshd: 0, machine: 0 }]),
    );
    const tools = ['switchboard', ...variants.map((v) => v.key)];
    for (let r = 0; r < ROUNDS; r++) {
      versionRuns.push(await runVersion());
      for (const [k, n] of SIZES.entries()) {
        // Which tool goes first rotates with the size and the round.
        const order = tools.map((_, i) => tools[(i + r + k) % tools.length]!);
        for (const tool of order) {
          const tag = `[round ${r + 1}/${ROUNDS}]`;
          const before = serverCpu(sb, ssh);
          if (tool === 'switchboard') {
            const run = await runSwitchboard(n);
            sbRuns.get(n)!.push(run);
            if (n === biggest) {
              const after = serverCpu(sb, ssh);
              sbCpuSum.execs += n;
              sbCpuSum.cli += run.clientCpu;
              sbCpuSum.relay += after.relay - before.relay;
              sbCpuSum.agents += after.agents - before.agents;
              sbCpuSum.agentChildren += after.agentChildren - before.agentChildren;
              sbCpuSum.machine += after.machine - before.machine;
            }
            console.log(
              `${tag} switchboard exec, ${n} agents: ${round(run.wallMs)} ms ` +
                `(fan-out ${round(run.fanoutMs)} ms)`,
            );
          } else {
            const variant = variants.find((v) => v.key === tool)!;
            const run = await runPssh(n, variant);
            psshRuns.get(tool)!.get(n)!.push(run);
            if (n === biggest) {
              const after = serverCpu(sb, ssh);
              const sum = psshCpuSum.get(tool)!;
              sum.execs += n;
              sum.client += run.clientCpu;
              sum.sshd += after.sshd - before.sshd;
              sum.machine += after.machine - before.machine;
            }
            console.log(`${tag} ${variant.label}, ${n} hosts: ${round(run.wallMs)} ms`);
          }
        }
      }
    }
    await sleep(SETTLE_MS);
    const memoryAfter = readMemory(sb, ssh);

    // The report.
    const ms = (x: number) => String(round(x, 0));
    const rows = SIZES.map((n) => {
      const s = sbRuns.get(n)!;
      const wall = median(s.map((x) => x.wallMs));
      const cells = [
        String(n),
        ms(wall),
        ms(median(s.map((x) => x.firstStartMs))),
        ms(median(s.map((x) => x.fanoutMs))),
        ms(median(s.map((x) => x.exitTailMs))),
      ];
      for (const v of variants) {
        const pw = median(
          psshRuns
            .get(v.key)!
            .get(n)!
            .map((x) => x.wallMs),
        );
        cells.push(ms(pw), `${round(wall / pw, 2)}×`);
      }
      return cells;
    });
    console.log(
      `\n${AGENTS} agent processes, one per agent; --parallel ${PARALLEL} / pssh -p ${PARALLEL}; ` +
        `command: ${COMMAND}; rounds: ${ROUNDS} (medians below, ms)\n`,
    );
    console.log(
      table(
        [
          'hosts',
          'switchboard exec',
          'to 1st host started',
          'fan-out → last exit',
          'summary → exit',
          ...variants.flatMap((v) => [v.label, 'ratio']),
        ],
        rows,
      ),
    );
    if (variants.length === 0) console.log(`(pssh skipped: ${sshSkipped})`);
    console.log(
      `\nswitchboard --version (Node.js + CLI start-up alone): ${ms(median(versionRuns))} ms`,
    );
    console.log(
      '\nEach round (ms): switchboard exec wall / to 1st start / fan-out / summary → exit' +
        variants.map((v) => `  |  ${v.label}`).join(''),
    );
    for (const n of SIZES) {
      const s = sbRuns
        .get(n)!
        .map(
          (x) =>
            `${ms(x.wallMs)} / ${ms(x.firstStartMs)} / ${ms(x.fanoutMs)} / ${ms(x.exitTailMs)}`,
        );
      const p = variants.map((v) =>
        psshRuns
          .get(v.key)!
          .get(n)!
          .map((x) => ms(x.wallMs))
          .join(', '),
      );
      console.log(`  ${n}: ${[s.join(', '), ...p].join('  |  ')}`);
    }
    const perExec = (sec: number, execs: number) => round((sec / Math.max(1, execs)) * 1000, 2);
    const cpuPerExecMs: Record<string, Record<string, number>> = {
      switchboard: {
        cli: perExec(sbCpuSum.cli, sbCpuSum.execs),
        relay: perExec(sbCpuSum.relay, sbCpuSum.execs),
        agent: perExec(sbCpuSum.agents, sbCpuSum.execs),
        command: perExec(sbCpuSum.agentChildren, sbCpuSum.execs),
      },
    };
    /** The whole machine's busy CPU during the same runs, other people's work included. */
    const machinePerExecMs: Record<string, number> = {
      switchboard: perExec(sbCpuSum.machine, sbCpuSum.execs),
    };
    for (const [key, sum] of psshCpuSum) {
      cpuPerExecMs[key] = {
        client: perExec(sum.client, sum.execs),
        sshd: perExec(sum.sshd, sum.execs),
      };
      machinePerExecMs[key] = perExec(sum.machine, sum.execs);
    }
    const all = (x: Record<string, number>) =>
      round(
        Object.values(x).reduce((a, b) => a + b),
        2,
      );
    const sbCpu = cpuPerExecMs['switchboard']!;
    console.log(
      `\nCPU per exec over the ${biggest}-host runs (ms of CPU per host, from /proc/PID/stat):\n` +
        `  switchboard: exec CLI ${sbCpu['cli']}, relay ${sbCpu['relay']}, agent ${sbCpu['agent']} ` +
        `(+ the command itself ${sbCpu['command']}); all ${all(sbCpu)}; whole machine ` +
        `meanwhile ${machinePerExecMs['switchboard']}` +
        variants
          .map((v) => {
            const c = cpuPerExecMs[v.key]!;
            return (
              `\n  ${v.label}: client (parallel-ssh + ssh) ${c['client']}, sshd (with its ` +
              `per-connection processes and the command) ${c['sshd']}; all ${all(c)}; ` +
              `whole machine meanwhile ${machinePerExecMs[v.key]}`
            );
          })
          .join(''),
    );
    const memLine = (m: MemoryReading) =>
      `agent RSS median ${m.agentRssMiB.median} MiB (${m.agentRssMiB.min}–${m.agentRssMiB.max}), ` +
      `all ${AGENTS}: RSS ${m.agentRssMiB.total} MiB, PSS ${m.agentPssTotalMiB} MiB; ` +
      `relay RSS ${m.relayRssMiB ?? '-'} MiB; sshd (listener) RSS ${m.sshdRssMiB ?? '-'} MiB`;
    console.log(
      `\nMemory at idle, before the runs: ${memLine(memoryIdle)}\n` +
        `Memory at idle, after the runs:  ${memLine(memoryAfter)}`,
    );
    console.log(
      `\nFirst contact (the unmeasured warm-up on ${biggest} agents, a fresh controller home):\n` +
        firstContact.map((t, i) => `  run ${i + 1}: ${t}`).join('\n'),
    );
    const notes = [
      `Switchboard: every host is a separate \`switchboard agent\` process with its own device key ` +
        `(two accounts of ${Math.ceil(AGENTS / 2)} agents, --allow'ing the controller's account); ` +
        'each exec is signed by the controller device and runs over an E2E channel through the relay.',
      `pssh: ${machine.pssh ?? 'n/a'} with ssh to one sshd under distinct Host aliases ` +
        `(${sshCrypto ?? 'n/a'} by default; "x25519 kex" adds -o KexAlgorithms=curve25519-sha256); ` +
        'every host is a new TCP connection, key exchange and public-key login; sshd runs the ' +
        'command through the login shell (SHLVL=1 so bash skips ~/.bashrc).',
      '"to 1st host started": spawn → the first `start` event of `exec --json` read from its ' +
        'stdout (Node.js and CLI start-up, TLS, token login, sessions.list, channel.fanout, one ' +
        'E2E handshake); "fan-out → last exit": the longest per-host durationMs (channel.fanout ' +
        'sent → that host\'s exit); "summary → exit": the summary event read → the process exited.',
      `All on one machine over loopback with ${machine.nproc} cores shared by the relay, the agents, ` +
        'the client and sshd: the figures are software overhead, not network delay.',
    ];
    console.log(`\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
    console.log(
      JSON.stringify({
        bench: 'exec',
        date: new Date().toISOString(),
        quick: QUICK,
        machine,
        params: {
          agents: AGENTS,
          sizes: SIZES,
          rounds: ROUNDS,
          parallel: PARALLEL,
          command: COMMAND,
        },
        crypto: { openssh: sshCrypto },
        results: Object.fromEntries(
          SIZES.map((n) => [
            n,
            {
              switchboard: sbRuns.get(n)!.map((x) => ({
                wallMs: round(x.wallMs, 1),
                fanoutMs: round(x.fanoutMs, 1),
                firstStartMs: round(x.firstStartMs, 1),
                exitTailMs: round(x.exitTailMs, 1),
                clientCpuS: round(x.clientCpu, 3),
              })),
              ...Object.fromEntries(
                variants.map((v) => [
                  v.key,
                  psshRuns
                    .get(v.key)!
                    .get(n)!
                    .map((x) => ({
                      wallMs: round(x.wallMs, 1),
                      clientCpuS: round(x.clientCpu, 3),
                    })),
                ]),
              ),
            },
          ]),
        ),
        versionMs: versionRuns.map((x) => round(x, 1)),
        cpuPerExecMs,
        machinePerExecMs,
        memory: { idle: memoryIdle, afterRuns: memoryAfter },
        firstContact,
        psshSkipped: sshSkipped ?? null,
      }),
    );
  } finally {
    await done();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (interrupted) process.exit(130);
    console.error(err);
    process.exit(1);
  },
);

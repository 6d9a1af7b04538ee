// Benchmark of the ledger (issue 12): durable transfers per second through one relay and their
// latency, at 1, 5, 10 and 20 concurrent clients, with the ledger's invariants checked after
// every run.
//
// Usage: npm run bench:ledger -- [--quick] [--clients 1,5,10,20] [--rounds N] [--seconds N]
//                                [--burst N] [--cpu-prof DIR]
// Everything runs on this machine over 127.0.0.1. Every run gets a fresh relay: startRelay() in a
// child process (bench/lib/relay-process.ts) with a sign-up credit of 1 000 000, the test suite's
// cheap Argon2 and roomy sign-up limits, and an empty SQLite ledger; 20 payers and one auditor
// sign up (bench/lib/messaging-users.ts), each on its own connection and device key, all online
// for the whole run. The clients of a run are the first N payers; each pays random other payers,
// one transfer in flight at a time, signed here (signTransfer) and submitted with ledger.pay.
// After 20 unmeasured transfers by every payer at once, a run has two phases, measured apart:
//   sustained: each client submits for --seconds at 44 a second, just under the 45 a second at
//          which RelayClient paces a connection, so no request waits in the client's pacer and
//          latency is the relay's round trip alone;
//   burst: each client submits --burst transfers as fast as the replies come (a connection that
//          has kept under the rate may send that many at once: the client's pacer and the
//          relay's rate never hold one), which shows what the relay itself can settle.
// Latency is from the ledger.pay request (the transfer signed) to its reply, which comes after
// the transaction committed. Then the invariants: the auditor pages through ledger.entries and
// runs verifyLedger against the relay's signed checkpoint and the one from before the run; every
// user's ledger.balance matches it, is not negative, and the balances sum to the mints; every
// acknowledged transfer is in the ledger once, at the seq its reply gave, with the body signed.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { verifyLedger, type VerifyResult } from '../src/client/ledger-verify.js';
import { Pacer, type RelayClient } from '../src/client/relay-client.js';
import { signTransfer } from '../src/crypto/ledger-signing.js';
import { type TransferBody } from '../src/protocol/ledger.js';
import { CONTROL_BURST, CONTROL_RATE_PER_SEC, LEDGER_PAGE_MAX } from '../src/protocol/limits.js';
import type { LedgerEntryView, Results } from '../src/protocol/messages.js';
import { metric, scrapeMetrics } from './lib/attack-rig.js';
import { guardRun, machineInfo } from './lib/bench-run.js';
import { intFlag } from './lib/flags.js';
import { commitProbe, type Synchronous } from './lib/ledger-commit-probe.js';
import { RelayProcess, type RelayLoad } from './lib/relay-process.js';
import { createUser, type BenchUser } from './lib/messaging-users.js';
import { median, round, summarize, table, type Summary } from '../src/bench/stats.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    clients: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    burst: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:ledger -- [--quick] [--clients 1,5,10,20] [--rounds N=3] [--seconds N=5]\n' +
      '                        [--burst N=100] [--cpu-prof DIR]\n' +
      '--quick: clients 1,5, one round, 2 s sustained, 50 per client in the burst.\n' +
      '--clients: concurrent clients per run (each its own connection and user), every count\n' +
      '           once per round, the order rotating; --rounds: how many rounds.\n' +
      '--seconds: the sustained phase, each client at 44 transfers a second.\n' +
      '--burst: transfers per client in the burst phase, after the sustained one (at most 140:\n' +
      '         what is left of a connection’s allowance before the client paces it).\n' +
      '--cpu-prof DIR: every relay process writes a V8 CPU profile to DIR.',
  );
  process.exit(0);
}

const QUICK = flags.quick === true;
const LEVELS = (flags.clients ?? (QUICK ? '1,5' : '1,5,10,20'))
  .split(',')
  .map((s) => intFlag('clients', s.trim(), 1, 100));
const ROUNDS = flags.rounds ? intFlag('rounds', flags.rounds, 1, 20) : QUICK ? 1 : 3;
const SECONDS = flags.seconds ? intFlag('seconds', flags.seconds, 1, 120) : QUICK ? 2 : 5;
/**
 * RelayClient's pacer (src/client/relay-client.ts: CONTROL_BURST and CONTROL_RATE_PER_SEC less
 * its private margins of 20 and 5): what one connection may send at once, then per second.
 */
const CLIENT_PACER_BURST = CONTROL_BURST - 20;
const CLIENT_PACER_RATE = CONTROL_RATE_PER_SEC - 5; // per second
/** The sustained phase's rate per client: just under the pacer's, so it never holds a request. */
const PACED_RATE = CLIENT_PACER_RATE - 1; // per second
/**
 * Tokens of a connection's allowance gone before the burst (hello, auth.token, the warm-up), with
 * room; the sustained phase, under the pacer's rate, leaves it as it found it.
 */
const SETUP_REQUESTS = 40;
const BURST = flags.burst
  ? intFlag('burst', flags.burst, 1, CLIENT_PACER_BURST - SETUP_REQUESTS)
  : QUICK
    ? 50
    : 100;
/** Node.js options of the relay processes. */
const RELAY_NODE_ARGS = flags['cpu-prof']
  ? ['--cpu-prof', '--cpu-prof-dir', resolve(flags['cpu-prof'])]
  : [];
/** Users who pay and are paid; the clients of a run are the first N. */
const POOL = Math.max(20, ...LEVELS);
/**
 * Unmeasured transfers first in every run, by each of the POOL payers at once (a fresh relay
 * process: its JIT is cold).
 */
const WARMUP = 20;
/** Credits minted for each account at sign-up: enough that no run runs out. */
const SIGNUP_CREDIT = 1_000_000;
/** Largest amount paid (random, from 1). */
const AMOUNT_MAX = 100;
/** The burst phase's time limit (its end is a count); then it stops where it is. */
const BURST_LIMIT_MS = 60_000; // ms
/** Most pages of ledger.entries read in one check (LEDGER_PAGE_MAX each). */
const MAX_PAGES = 2_000;
/** fdatasync calls timed on the relays' file system before the runs. */
const FSYNC_PROBES = 50;
/** SQLite alone (bench/lib/ledger-commit-probe.ts): rounds, each FULL and NORMAL in turn. */
const COMMIT_PROBE_ROUNDS = 3;
const COMMIT_PROBE_TRANSACTIONS = 200;
/** The whole benchmark; then it cleans up and fails. */
const TOTAL_LIMIT_MS = 10 * 60_000; // ms

const machine = machineInfo();
let interrupted = false;
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- machine-wide CPU ---------------------------------------------------------------------------

/** Busy and total clock ticks of every core together so far (/proc/stat), or undefined. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    // cpu user nice system idle iowait irq softirq steal
    const f = first.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3]! - f[4]!, total };
  } catch {
    return undefined;
  }
}

/**
 * Nanoseconds the main thread of process `pid` has run on a core, and has waited on a run queue
 * for one (/proc/PID/schedstat), or undefined. The relay's JavaScript and SQLite run there.
 */
function schedstat(pid: number): { runNs: number; waitNs: number } | undefined {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/);
    return { runNs: Number(run), waitNs: Number(wait) };
  } catch {
    return undefined;
  }
}

/**
 * SQLite's `synchronous` as the relay's store sets it (the compiled src/store/sqlite.ts next to
 * this file), or 'unknown': FULL syncs the WAL at every commit, NORMAL only at checkpoints.
 */
function sqliteSynchronous(): string {
  try {
    const text = readFileSync(new URL('../src/store/sqlite.js', import.meta.url), 'utf8');
    return /pragma\('synchronous = (\w+)'\)/.exec(text)?.[1]?.toUpperCase() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Milliseconds of one fdatasync after a 4 KiB append, `n` times, in `dir`. */
function fsyncProbe(dir: string, n: number): number[] {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      writeSync(fd, block);
      const t = performance.now();
      fdatasyncSync(fd);
      out.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return out;
}

const SYNCHRONOUS = sqliteSynchronous();

/** What a reply to ledger.pay promises, by SYNCHRONOUS. */
function durability(): string {
  if (SYNCHRONOUS === 'FULL' || SYNCHRONOUS === 'EXTRA')
    return (
      'The WAL is synced before each reply, so an acknowledged transfer survives kill -9 and a ' +
      'power cut (if the disk honours flushes); one fsync per transfer, on the relay’s event loop.'
    );
  if (SYNCHRONOUS === 'NORMAL')
    return (
      'The WAL is synced at checkpoints only, so an acknowledged transfer survives kill -9 of ' +
      'the relay, but a power cut may lose the last ones (the database stays consistent).'
    );
  return 'Durability unknown.';
}

// --- one phase ----------------------------------------------------------------------------------

interface Payer {
  user: BenchUser;
  client: RelayClient;
}

interface Ack {
  id: string;
  seq: number;
  body: string;
  duplicate: boolean;
}

type Mode = 'warm-up' | 'burst' | 'sustained';

interface Phase {
  mode: Mode;
  clients: number;
  round: number;
  sent: number;
  acked: number;
  /** Failed requests by error code. */
  errors: Record<string, number>;
  /** From the start to the last reply. */
  elapsedMs: number;
  perSec: number;
  /** Submit → reply, ms. */
  latency: Summary;
  /** CPU seconds per second of the phase: the relay process, this process (all the clients), every core. */
  relayCores: number;
  clientCores: number;
  machineCores: number;
  /** The relay's event loop: busy share of the phase. */
  relayElu: number;
  /**
   * The relay's main thread (its JavaScript and SQLite) over the phase: share it ran on a core,
   * share it was ready but waited for one, and the rest of the loop's busy time, blocked in the
   * kernel (the fsync of every commit). Approximate: a wait just before a callback counts as idle.
   */
  relayRun: number;
  relayWait: number;
  relayBlocked: number;
  /** Share of the phase this process's main thread (every client) waited for a core. */
  clientWait: number;
  /** The relay's CPU per acknowledged transfer, ms: all of it, and the kernel's part. */
  relayCpuMsPerTransfer: number;
  relaySysMsPerTransfer: number;
  clientCpuMsPerTransfer: number;
}

interface Readings {
  at: number;
  relay: RelayLoad;
  clientCpuUs: number;
  machine: { busy: number; total: number } | undefined;
  relaySched: { runNs: number; waitNs: number } | undefined;
  clientSched: { runNs: number; waitNs: number } | undefined;
}

async function readings(relay: RelayProcess): Promise<Readings> {
  const load = await relay.load();
  const cpu = process.cpuUsage();
  return {
    at: performance.now(),
    relay: load,
    clientCpuUs: cpu.user + cpu.system,
    machine: machineTicks(),
    relaySched: schedstat(relay.pid),
    clientSched: schedstat(process.pid),
  };
}

/** Share of `wallS` the main thread ran or waited for a core (`field`) between two readings. */
function schedShare(
  a: Readings['relaySched'],
  b: Readings['relaySched'],
  field: 'runNs' | 'waitNs',
  wallS: number,
): number {
  return a && b ? (b[field] - a[field]) / 1e9 / wallS : NaN;
}

/**
 * Every payer in `payers` submits transfers to random others of `names` at once, one in flight
 * each: `count` each, within `windowMs`, at `perSec` each if given. Acknowledged transfers are
 * added to `acks`.
 */
async function phase(
  relay: RelayProcess,
  o: {
    mode: Mode;
    round: number;
    payers: Payer[];
    names: readonly string[];
    ledgerId: string;
    count: number;
    windowMs: number;
    perSec?: number;
    acks: Ack[];
  },
): Promise<Phase> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  let sent = 0;
  let lastReply = 0;
  const before = await readings(relay);
  const start = performance.now();
  const deadline = start + o.windowMs;
  await Promise.all(
    o.payers.map(async ({ user, client }) => {
      const others = o.names.filter((n) => n !== user.name);
      const pacer = o.perSec === undefined ? undefined : new Pacer(1, o.perSec);
      for (let i = 0; i < o.count && performance.now() < deadline; i++) {
        const wait = pacer?.take(1) ?? 0;
        if (wait > 0) await delay(wait);
        if (performance.now() >= deadline) break;
        const body: TransferBody = {
          v: 1,
          kind: 'transfer',
          ledger: o.ledgerId,
          id: randomBytes(16).toString('base64'),
          from: user.name,
          to: others[Math.floor(Math.random() * others.length)]!,
          amount: 1 + Math.floor(Math.random() * AMOUNT_MAX),
          memo: 'bench',
          at: new Date().toISOString(),
        };
        const transfer = signTransfer(user.key, body);
        sent++;
        const t0 = performance.now();
        try {
          const r = await client.request('ledger.pay', { transfer });
          lastReply = performance.now();
          latencies.push(lastReply - t0);
          o.acks.push({ id: body.id, seq: r.seq, body: transfer.body, duplicate: r.duplicate });
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'ERROR';
          errors[code] = (errors[code] ?? 0) + 1;
          if (code === 'CONNECTION_CLOSED') break;
        }
      }
    }),
  );
  const elapsedMs = (lastReply || performance.now()) - start;
  const after = await readings(relay);
  const wallS = (after.at - before.at) / 1000;
  const relaySysS = (after.relay.cpuSystemUs - before.relay.cpuSystemUs) / 1e6;
  const relayCpuS = (after.relay.cpuUserUs - before.relay.cpuUserUs) / 1e6 + relaySysS;
  const clientCpuS = (after.clientCpuUs - before.clientCpuUs) / 1e6;
  const activeMs = after.relay.eluActiveMs - before.relay.eluActiveMs;
  const idleMs = after.relay.eluIdleMs - before.relay.eluIdleMs;
  const relayElu = activeMs / Math.max(1e-9, activeMs + idleMs);
  const relayRun = schedShare(before.relaySched, after.relaySched, 'runNs', wallS);
  const relayWait = schedShare(before.relaySched, after.relaySched, 'waitNs', wallS);
  const m0 = before.machine;
  const m1 = after.machine;
  const cores = machine.nproc;
  return {
    mode: o.mode,
    clients: o.payers.length,
    round: o.round,
    sent,
    acked: latencies.length,
    errors,
    elapsedMs,
    perSec: latencies.length / (elapsedMs / 1000),
    latency: summarize(latencies, 2),
    relayCores: relayCpuS / wallS,
    clientCores: clientCpuS / wallS,
    machineCores: m0 && m1 ? ((m1.busy - m0.busy) / (m1.total - m0.total)) * cores : NaN,
    relayElu,
    relayRun,
    relayWait,
    relayBlocked: Math.max(0, relayElu - relayRun - relayWait),
    clientWait: schedShare(before.clientSched, after.clientSched, 'waitNs', wallS),
    relayCpuMsPerTransfer: (relayCpuS * 1000) / Math.max(1, latencies.length),
    relaySysMsPerTransfer: (relaySysS * 1000) / Math.max(1, latencies.length),
    clientCpuMsPerTransfer: (clientCpuS * 1000) / Math.max(1, latencies.length),
  };
}

// --- the invariants -----------------------------------------------------------------------------

interface Invariants {
  ok: boolean;
  entries: number;
  verify: { ok: boolean; problem: string | null };
  /** Every user's ledger.balance: summed, against the mints; below zero; unlike the chain's. */
  balanceSum: number;
  mints: number;
  expectedMints: number;
  negative: number;
  unlikeChain: number;
  /** Acknowledged transfers not in the ledger, in it more than once, or at another seq or body. */
  acked: number;
  ackedMissing: number;
  ackedTwice: number;
  ackedElsewhere: number;
  /** Acknowledged as a retry of an earlier transfer (none is retried: 0). */
  ackedDuplicate: number;
  /** Transfers in the ledger nobody was told had settled (a request that failed late). */
  unacknowledged: number;
  /** Requests the relay refused for the control rate during the run (should be 0). */
  rateLimited: number;
  checkMs: number;
}

async function checkInvariants(
  relay: RelayProcess,
  auditor: Payer,
  everyone: Payer[],
  before: Results['ledger.info'],
  acks: Ack[],
): Promise<Invariants> {
  const t0 = performance.now();
  const a = auditor.client;
  const info = await a.request('ledger.info', {});
  const entries: LedgerEntryView[] = [];
  let after = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await a.request('ledger.entries', { after, limit: LEDGER_PAGE_MAX });
    entries.push(...r.entries);
    if (!r.more || r.entries.length === 0) break;
    after = r.entries[r.entries.length - 1]!.seq;
  }
  const keys = new Map(everyone.map((p) => [p.user.name, p.user.key.publicKey.toString('base64')]));
  const v: VerifyResult = verifyLedger(entries, {
    ledgerId: info.ledger,
    ledgerKey: Buffer.from(info.key, 'base64'),
    signerKnown: (user, key) => keys.get(user) === key,
    checkpoint: info.checkpoint,
    remembered: before.checkpoint,
  });
  const balances = await Promise.all(
    everyone.map(async (p) => ({
      name: p.user.name,
      balance: (await p.client.request('ledger.balance', {})).balance,
    })),
  );
  const byId = new Map<string, { seq: number; body: string; times: number }>();
  for (const e of entries) {
    const id = (JSON.parse(e.body) as TransferBody).id;
    const seen = byId.get(id);
    if (seen) seen.times++;
    else byId.set(id, { seq: e.seq, body: e.body, times: 1 });
  }
  let ackedMissing = 0;
  let ackedTwice = 0;
  let ackedElsewhere = 0;
  const ackedIds = new Set<string>();
  for (const k of acks) {
    ackedIds.add(k.id);
    const e = byId.get(k.id);
    if (!e) ackedMissing++;
    else if (e.times > 1) ackedTwice++;
    else if (e.seq !== k.seq || e.body !== k.body) ackedElsewhere++;
  }
  let unacknowledged = 0;
  for (const e of entries)
    if ((JSON.parse(e.body) as TransferBody).kind === 'transfer') {
      const id = (JSON.parse(e.body) as TransferBody).id;
      if (!ackedIds.has(id)) unacknowledged++;
    }
  const m = await scrapeMetrics(relay.port);
  const rateLimited = metric(m, 'switchboard_throttled_total', { limit: 'control_rate' });
  const balanceSum = balances.reduce((s, b) => s + b.balance, 0);
  const negative = balances.filter((b) => b.balance < 0).length;
  const unlikeChain = balances.filter((b) => (v.balances.get(b.name) ?? 0) !== b.balance).length;
  const expectedMints = everyone.length * SIGNUP_CREDIT;
  const ackedDuplicate = acks.filter((k) => k.duplicate).length;
  return {
    ok:
      v.ok &&
      v.entries === info.checkpoint.count &&
      balanceSum === v.mints &&
      v.mints === expectedMints &&
      negative === 0 &&
      unlikeChain === 0 &&
      ackedMissing + ackedTwice + ackedElsewhere + ackedDuplicate === 0 &&
      unacknowledged === 0 &&
      rateLimited === 0,
    entries: entries.length,
    verify: { ok: v.ok, problem: v.problem?.message ?? null },
    balanceSum,
    mints: v.mints,
    expectedMints,
    negative,
    unlikeChain,
    acked: acks.length,
    ackedMissing,
    ackedTwice,
    ackedElsewhere,
    ackedDuplicate,
    unacknowledged,
    rateLimited,
    checkMs: performance.now() - t0,
  };
}

// --- one run: a fresh relay, N clients ----------------------------------------------------------

interface Run {
  clients: number;
  round: number;
  setupMs: number;
  burst: Phase;
  sustained: Phase;
  invariants: Invariants;
}

async function run(
  dir: string,
  n: number,
  round: number,
  cleanups: Array<() => Promise<unknown>>,
): Promise<Run> {
  const t0 = performance.now();
  const relay = await RelayProcess.start(
    { dataDir: join(dir, 'relay'), signupCredit: SIGNUP_CREDIT },
    RELAY_NODE_ARGS,
  );
  cleanups.push(() => relay.stop());
  const everyone: Payer[] = [];
  try {
    const users = await Promise.all([
      ...Array.from({ length: POOL }, (_, i) => createUser(relay, dir, `payer${i}`)),
      createUser(relay, dir, 'auditor'),
    ]);
    for (const user of users) everyone.push({ user, client: await user.connect() });
    const auditor = everyone[POOL]!;
    const payers = everyone.slice(0, POOL);
    const names = payers.map((p) => p.user.name);
    const before = await auditor.client.request('ledger.info', {});
    const setupMs = performance.now() - t0;
    const acks: Ack[] = [];
    const common = { round, names, ledgerId: before.ledger, acks };
    await phase(relay, {
      ...common,
      mode: 'warm-up',
      payers,
      count: WARMUP,
      windowMs: BURST_LIMIT_MS,
    });
    // Sustained first: under the pacer's rate it leaves each connection's allowance (and the
    // relay's) nearly whole for the burst, which then meets a relay warmed by both.
    const clients = payers.slice(0, n);
    const sustained = await phase(relay, {
      ...common,
      mode: 'sustained',
      payers: clients,
      count: Math.ceil(SECONDS * PACED_RATE) + 1,
      windowMs: SECONDS * 1000,
      perSec: PACED_RATE,
    });
    const burst = await phase(relay, {
      ...common,
      mode: 'burst',
      payers: clients,
      count: BURST,
      windowMs: BURST_LIMIT_MS,
    });
    const invariants = await checkInvariants(relay, auditor, everyone, before, acks);
    return { clients: n, round, setupMs, burst, sustained, invariants };
  } finally {
    for (const p of everyone) p.client.close();
    await relay.stop();
  }
}

// --- report -------------------------------------------------------------------------------------

/** What held a phase back, from its rate and the CPU readings. */
function bottleneck(p: Phase): string {
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  if (p.mode === 'sustained' && p.perSec >= 0.95 * p.clients * PACED_RATE)
    return `clients: pacing (${PACED_RATE}/s each)`;
  if (p.relayElu >= 0.85) {
    const parts: Array<[string, number]> = [
      ['CPU', p.relayRun],
      ['no core', p.relayWait],
      ['I/O', p.relayBlocked],
    ];
    const [most] = parts.sort((a, b) => b[1] - a[1])[0]!;
    return `relay: loop ${pct(p.relayElu)} busy, most on ${most}`;
  }
  if (p.clientCores >= 0.85 || p.clientWait >= 0.25) return 'clients: this process';
  if (p.machineCores >= 0.9 * machine.nproc) return 'machine: every core busy';
  return p.clients === 1 ? 'round trips (1 in flight)' : 'neither saturated';
}

function levelRows(runs: Run[], pick: (r: Run) => Phase): Array<Array<string | number>> {
  return LEVELS.map((n) => {
    const ps = runs.filter((r) => r.clients === n).map(pick);
    const rates = ps.map((p) => p.perSec);
    const mid = (f: (p: Phase) => number, digits = 1) => round(median(ps.map(f)), digits);
    const errors = ps.reduce((s, p) => s + Object.values(p.errors).reduce((a, b) => a + b, 0), 0);
    // The verdict of the median run by rate.
    const byRate = [...ps].sort((a, b) => a.perSec - b.perSec);
    return [
      String(n),
      ps.reduce((s, p) => s + p.acked, 0),
      round(median(rates)),
      `${round(Math.min(...rates))}–${round(Math.max(...rates))}`,
      mid((p) => p.latency.p50, 2),
      mid((p) => p.latency.p99, 2),
      `${mid((p) => p.relayElu * 100, 0)} %`,
      `${mid((p) => p.relayRun * 100, 0)} %`,
      `${mid((p) => p.relayWait * 100, 0)} %`,
      `${mid((p) => p.relayBlocked * 100, 0)} %`,
      `${mid((p) => p.relayCpuMsPerTransfer, 2)} (${mid((p) => p.relaySysMsPerTransfer, 2)})`,
      `${mid((p) => p.clientCores * 100, 0)} %`,
      `${mid((p) => p.clientWait * 100, 0)} %`,
      `${mid((p) => p.machineCores, 2)}`,
      errors,
      bottleneck(byRate[byRate.length >> 1]!),
    ];
  });
}

const HEADERS = [
  'clients',
  'transfers',
  'per s',
  'range',
  'p50 ms',
  'p99 ms',
  'relay loop',
  'on CPU',
  'no core',
  'I/O',
  'relay CPU ms/tr (sys)',
  'clients CPU',
  'clients wait',
  'cores busy',
  'errors',
  'bottleneck (median run)',
];

function phaseJson(p: Phase) {
  return {
    sent: p.sent,
    acked: p.acked,
    errors: p.errors,
    elapsedMs: round(p.elapsedMs, 1),
    perSec: round(p.perSec, 1),
    latencyMs: p.latency,
    relayCores: round(p.relayCores, 3),
    relayElu: round(p.relayElu, 3),
    relayRun: round(p.relayRun, 3),
    relayWait: round(p.relayWait, 3),
    relayBlocked: round(p.relayBlocked, 3),
    clientWait: round(p.clientWait, 3),
    clientCores: round(p.clientCores, 3),
    machineCores: round(p.machineCores, 2),
    relayCpuMsPerTransfer: round(p.relayCpuMsPerTransfer, 3),
    relaySysMsPerTransfer: round(p.relaySysMsPerTransfer, 3),
    clientCpuMsPerTransfer: round(p.clientCpuMsPerTransfer, 3),
    bottleneck: bottleneck(p),
  };
}

async function main(): Promise<void> {
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}; load average ${machine.loadAvgAtStart}`,
  );
  console.log(
    `RelayClient paces each connection: ${CLIENT_PACER_BURST} requests at once, then ` +
      `${CLIENT_PACER_RATE}/s (the relay allows ${CONTROL_BURST}, then ${CONTROL_RATE_PER_SEC}/s), ` +
      `so one client cannot settle more than ~${CLIENT_PACER_RATE} transfers/s sustained.`,
  );
  console.log(
    `Per run: a fresh relay, ${POOL} payers + 1 auditor signed up (credit ${SIGNUP_CREDIT} each), ` +
      `${WARMUP} warm-up transfers by each payer at once; sustained: ${SECONDS} s at ` +
      `${PACED_RATE}/s per client; then burst: ${BURST} per client unpaced. Clients ${LEVELS.join(', ')}, ${ROUNDS} round(s), order rotating.\n`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-ledger-'));
  const { cleanups, done } = guardRun({
    dir,
    limitMs: TOTAL_LIMIT_MS,
    onInterrupt: () => (interrupted = true),
  });
  const started = performance.now();
  try {
    const fsync = summarize(fsyncProbe(dir, FSYNC_PROBES), 3);
    const commit: Record<Synchronous, number[]> = { FULL: [], NORMAL: [] };
    for (let r = 0; r < COMMIT_PROBE_ROUNDS; r++)
      for (const mode of r % 2 === 0
        ? (['FULL', 'NORMAL'] as const)
        : (['NORMAL', 'FULL'] as const))
        commit[mode].push(...(await commitProbe(dir, mode, COMMIT_PROBE_TRANSACTIONS)));
    const commitMs = { FULL: summarize(commit.FULL, 3), NORMAL: summarize(commit.NORMAL, 3) };
    console.log(
      `SQLite: WAL, synchronous=${SYNCHRONOUS} (src/store/sqlite.ts). ${durability()}\n` +
        `This file system: fdatasync of a 4 KiB append p50 ${fsync.p50} ms, p90 ${fsync.p90} ms ` +
        `(${FSYNC_PROBES} tries); one settling transaction in SQLite alone (better-sqlite3, the ` +
        `ledger's statements prepared once, ${COMMIT_PROBE_ROUNDS} × ${COMMIT_PROBE_TRANSACTIONS} ` +
        `each): FULL p50 ${commitMs.FULL.p50} ms, p99 ${commitMs.FULL.p99} ms; NORMAL p50 ` +
        `${commitMs.NORMAL.p50} ms, p99 ${commitMs.NORMAL.p99} ms.\n`,
    );
    const runs: Run[] = [];
    let k = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const order = LEVELS.map((_, i) => LEVELS[(i + r) % LEVELS.length]!);
      for (const n of order) {
        const x = await run(join(dir, `run${k++}`), n, r, cleanups);
        runs.push(x);
        const inv = x.invariants;
        const line = (p: Phase) =>
          `${p.acked} in ${round(p.elapsedMs)} ms = ${round(p.perSec)}/s ` +
          `(p50 ${round(p.latency.p50, 2)}, p99 ${round(p.latency.p99, 2)} ms; relay loop ` +
          `${Math.round(p.relayElu * 100)} %)`;
        console.log(
          `  [round ${r + 1}/${ROUNDS}] ${n} client(s): sustained ${line(x.sustained)}; ` +
            `burst ${line(x.burst)}; invariants ` +
            (inv.ok
              ? `ok (${inv.entries} entries, checked in ${round(inv.checkMs)} ms)`
              : `FAILED ${JSON.stringify(inv)}`),
        );
      }
    }

    console.log(
      `\nSustained: each client ${PACED_RATE} transfers/s for ${SECONDS} s (offered: clients × ` +
        `${PACED_RATE}/s); ${ROUNDS} round(s), medians\n`,
    );
    console.log(
      table(
        HEADERS,
        levelRows(runs, (r) => r.sustained),
      ),
    );
    console.log(
      `\nBurst, after the sustained phase: each client ${BURST} transfers back to back, one in ` +
        `flight (within the connection's allowance: unpaced); ${ROUNDS} round(s), medians\n`,
    );
    console.log(
      table(
        HEADERS,
        levelRows(runs, (r) => r.burst),
      ),
    );
    console.log(
      '\nLatency: ledger.pay sent → its reply (after the COMMIT). Relay loop: the relay’s ' +
        'event-loop utilisation, split by its main thread’s /proc/PID/schedstat into on CPU, no ' +
        'core (ready, waiting for one) and I/O (the rest: blocked in the kernel, mostly the ' +
        'fsync of each commit). Relay CPU ms/tr: process.cpuUsage in the relay child (every ' +
        'thread) per transfer, the kernel’s part in brackets. Clients CPU: this process (every ' +
        'client), 100 % = one core; clients wait: its main thread ready without a core. Cores ' +
        `busy: the whole machine (/proc/stat, ${machine.nproc} cores, other work included). ` +
        `SQLite synchronous=${SYNCHRONOUS}. ${durability()}`,
    );
    const failed = runs.filter((r) => !r.invariants.ok);
    console.log(
      `Invariants after every run (verifyLedger ok, balances = mints, none negative, every ` +
        `acknowledged transfer once): ${failed.length === 0 ? 'all held' : `${failed.length} run(s) FAILED`} ` +
        `over ${runs.length} runs, ${runs.reduce((s, r) => s + r.invariants.entries, 0)} entries. ` +
        `Whole run ${round((performance.now() - started) / 1000)} s; load average at the end ` +
        `${round(loadavg()[0] ?? 0, 2)}.`,
    );

    console.log(
      JSON.stringify({
        bench: 'ledger',
        date: new Date().toISOString(),
        quick: QUICK,
        machine: { ...machine, loadAvgAtEnd: round(loadavg()[0] ?? 0, 2) },
        params: {
          clients: LEVELS,
          rounds: ROUNDS,
          seconds: SECONDS,
          burst: BURST,
          pacedRatePerClient: PACED_RATE,
          clientPacer: { burst: CLIENT_PACER_BURST, perSec: CLIENT_PACER_RATE },
          pool: POOL,
          warmupPerPayer: WARMUP,
          signupCredit: SIGNUP_CREDIT,
          sqlite: { journalMode: 'wal', synchronous: SYNCHRONOUS },
        },
        fsyncMs: fsync,
        sqliteTransactionMs: commitMs,
        runs: runs.map((r) => ({
          clients: r.clients,
          round: r.round,
          setupMs: round(r.setupMs),
          burst: phaseJson(r.burst),
          sustained: phaseJson(r.sustained),
          invariants: { ...r.invariants, checkMs: round(r.invariants.checkMs) },
        })),
        invariantsHeld: failed.length === 0,
      }),
    );
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    await done();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    if (interrupted) process.exit(130);
    console.error(err);
    process.exit(1);
  },
);

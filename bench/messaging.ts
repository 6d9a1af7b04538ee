// Benchmark of messaging: one message's latency direct and through the relay, messages per second
// through one relay, and one broadcast to 10 000 connected users with the relay's memory.
//
// Usage: npm run bench:messaging -- [--quick] [--messages N] [--pairs 1,5,10,20] [--burst N]
//                                   [--rounds N] [--clients N] [--workers N] [--no-broadcast]
//                                   [--cpu-prof DIR]
// Everything runs on this machine over 127.0.0.1. The relay is startRelay() in a child process
// (bench/lib/relay-child.ts) with the test suite's cheap Argon2 and roomy sign-up limits; the
// broadcast's relay also has its connection caps raised to fit every client. Senders and
// receivers are real Messengers (src/client/messenger.ts) in this process; the broadcast's users
// are plain logged-in connections spread over child processes (bench/lib/broadcast-child.ts).
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { signBroadcast } from '../src/protocol/broadcast.js';
import { CONTROL_BURST, CONTROL_RATE_PER_SEC } from '../src/protocol/limits.js';
import { metric, scrapeMetrics } from './lib/attack-rig.js';
import { guardRun, machineInfo } from './lib/bench-run.js';
import { BroadcastFleet } from './lib/broadcast-fleet.js';
import { cpuSeconds } from '../src/bench/proc.js';
import { intFlag } from './lib/flags.js';
import {
  Arrivals,
  measureBurst,
  measureLatency,
  type BurstResult,
  type LatencySample,
  type Pair,
} from './lib/messaging-probes.js';
import {
  acceptEachOther,
  createUser,
  goOnline,
  type BenchUser,
  type RelayAddress,
} from './lib/messaging-users.js';
import { RelayProcess, type RelayMemory } from './lib/relay-process.js';
import { median, percentile, round, summarize, table } from '../src/bench/stats.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    messages: { type: 'string' },
    pairs: { type: 'string' },
    burst: { type: 'string' },
    rounds: { type: 'string' },
    clients: { type: 'string' },
    workers: { type: 'string' },
    'no-broadcast': { type: 'boolean' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:messaging -- [--quick] [--messages N=300] [--pairs 1,5,10,20] [--burst N=80]\n' +
      '                           [--rounds N=3] [--clients N=10000] [--workers N=4] [--no-broadcast]\n' +
      '                           [--cpu-prof DIR]\n' +
      '--quick: 60 messages per path, pairs 1,5, 1 round, 1000 broadcast clients.\n' +
      '--messages: latency samples per path (direct, relayed), in 6 interleaved rounds.\n' +
      '--burst: messages per pair in one throughput run (at most 90: the relay’s per-connection\n' +
      '         burst of control messages); --rounds: every pair count once per round, in turn.\n' +
      '--clients: users online for the broadcast, over --workers child processes.\n' +
      '--cpu-prof DIR: the relay processes write V8 CPU profiles to DIR (for this process, run\n' +
      '                node --cpu-prof dist/bench/messaging.js).',
  );
  process.exit(0);
}

const QUICK = flags.quick === true;
const MESSAGES = flags.messages ? intFlag('messages', flags.messages, 6, 3000) : QUICK ? 60 : 300;
const PAIRS = (flags.pairs ?? (QUICK ? '1,5' : '1,5,10,20'))
  .split(',')
  .map((s) => intFlag('pairs', s.trim(), 1, 100));
/**
 * Messages per pair per throughput run. Each relayed message costs its sender about two control
 * messages (message.send, message.ack of the receipt) and its receiver two (message.ack, the
 * receipt's message.send); a fresh connection may send CONTROL_BURST (200) at once, then
 * CONTROL_RATE_PER_SEC (50) a second. 80 leaves room for the connection's own start-up requests.
 */
const BURST = flags.burst ? intFlag('burst', flags.burst, 1, 90) : 80;
const ROUNDS = flags.rounds ? intFlag('rounds', flags.rounds, 1, 20) : QUICK ? 1 : 3;
const CLIENTS = flags.clients
  ? intFlag('clients', flags.clients, 1, 20_000)
  : QUICK
    ? 1000
    : 10_000;
/** Node.js options of the relay processes. */
const RELAY_NODE_ARGS = flags['cpu-prof']
  ? ['--cpu-prof', '--cpu-prof-dir', resolve(flags['cpu-prof'])]
  : [];
const WORKERS = flags.workers ? intFlag('workers', flags.workers, 1, 32) : 4;
/** Latency rounds: the two paths alternate, MESSAGES / LATENCY_ROUNDS each per round. */
const LATENCY_ROUNDS = 6;
/** Unmeasured messages per path first (JIT, first bundles fetched, pins). */
const WARMUP_MESSAGES = 20;
/** Relayed control messages per latency message on each side (see BURST). */
const CONTROL_PER_MESSAGE = 2;
/** One latency message started at most every PACE_MS: 80 % of the control rate, both paths. */
const PACE_MS = Math.ceil((CONTROL_PER_MESSAGE * 1000) / (CONTROL_RATE_PER_SEC * 0.8)); // ms
/** Broadcast users set up at once per child process. */
const SETUP_CONCURRENCY = 32;
/** The broadcast's users stop being set up after this; the rest are reported as not connected. */
const SETUP_LIMIT_MS = 240_000; // ms
/** Longest wait for the last user to get the broadcast. */
const BROADCAST_TIMEOUT_MS = 60_000; // ms
/** The whole benchmark; then it cleans up and fails. */
const TOTAL_LIMIT_MS = 15 * 60_000; // ms

const epochNow = (): number => performance.timeOrigin + performance.now();
const mib = (bytes: number): number => round(bytes / 2 ** 20, 1);
let interrupted = false;

interface ControlRateReading {
  throttled: number;
  rateLimitedErrors: number;
}

/** Requests the relay refused for the control rate so far: a run that hit it is not clean. */
async function controlRate(relay: RelayProcess): Promise<ControlRateReading> {
  const m = await scrapeMetrics(relay.port);
  return {
    throttled: metric(m, 'switchboard_throttled_total', { limit: 'control_rate' }),
    rateLimitedErrors: metric(m, 'switchboard_protocol_errors_total', { code: 'RATE_LIMITED' }),
  };
}

async function pairOnline(
  sender: BenchUser,
  receiver: BenchUser,
  relay: RelayAddress,
  direct: boolean,
): Promise<Pair> {
  const s = await goOnline(sender, relay, direct);
  const r = await goOnline(receiver, relay, direct);
  return { sender: s, receiver: r, arrivals: new Arrivals(r.messenger) };
}

async function pairOffline(p: Pair): Promise<void> {
  p.arrivals.close();
  // The receiver first: its stop() sends the receipts it still holds to a sender still online.
  await p.receiver.stop();
  await p.sender.stop();
}

// --- 1. latency ---------------------------------------------------------------------------------

interface LatencyReport {
  direct: LatencySample[];
  relay: LatencySample[];
  /** p50 of deliverMs per round, per path. */
  roundP50: { direct: number[]; relay: number[] };
  control: ControlRateReading;
}

async function latency(relay: RelayProcess, dir: string): Promise<LatencyReport> {
  const [ds, dr, rs, rr] = await Promise.all(
    ['dsend', 'drecv', 'rsend', 'rrecv'].map((n) => createUser(relay, dir, n)),
  );
  acceptEachOther(ds!, dr!);
  acceptEachOther(rs!, rr!);
  // Both sides of the relayed pair have direct off: the sender opens no link, so every message
  // is sealed, stored and pushed (message.send → mailbox → `message` event).
  const direct = await pairOnline(ds!, dr!, relay, true);
  const relayed = await pairOnline(rs!, rr!, relay, false);
  try {
    if (!(await direct.sender.messenger.link(dr!.name)))
      throw new Error('dsend could not link to drecv');
    if (direct.sender.messenger.linkPath(dr!.name) !== 'direct')
      throw new Error(
        `the link dsend → drecv is ${direct.sender.messenger.linkPath(dr!.name)}, not direct`,
      );
    await measureLatency(direct, 'warm-up direct', WARMUP_MESSAGES, PACE_MS);
    await measureLatency(relayed, 'warm-up relay', WARMUP_MESSAGES, PACE_MS);
    const before = await controlRate(relay);
    const out: LatencyReport = {
      direct: [],
      relay: [],
      roundP50: { direct: [], relay: [] },
      control: before,
    };
    const perRound = Math.ceil(MESSAGES / LATENCY_ROUNDS);
    for (let r = 0; r < LATENCY_ROUNDS; r++) {
      const order = r % 2 === 0 ? (['direct', 'relay'] as const) : (['relay', 'direct'] as const);
      for (const path of order) {
        const n = Math.min(perRound, MESSAGES - r * perRound);
        if (n <= 0) continue;
        const samples = await measureLatency(
          path === 'direct' ? direct : relayed,
          `${path} ${r}`,
          n,
          PACE_MS,
        );
        out[path].push(...samples);
        const p50 = summarize(samples.map((s) => s.deliverMs)).p50;
        out.roundP50[path].push(p50);
        console.log(
          `  [round ${r + 1}/${LATENCY_ROUNDS}] ${path}: ${n} messages, p50 ${round(p50, 2)} ms`,
        );
      }
    }
    const after = await controlRate(relay);
    out.control = {
      throttled: after.throttled - before.throttled,
      rateLimitedErrors: after.rateLimitedErrors - before.rateLimitedErrors,
    };
    return out;
  } finally {
    await pairOffline(direct).catch(() => undefined);
    await pairOffline(relayed).catch(() => undefined);
  }
}

// --- 2. throughput ------------------------------------------------------------------------------

interface ThroughputRun extends BurstResult {
  round: number;
  msgsPerSec: number;
  /** CPU ms per delivered message: the relay process, and this process (all the clients). */
  relayCpuMsPerMsg: number;
  clientCpuMsPerMsg: number;
  control: ControlRateReading;
}

async function throughput(relay: RelayProcess, dir: string): Promise<ThroughputRun[]> {
  const most = Math.max(...PAIRS);
  const senders: BenchUser[] = [];
  const receivers: BenchUser[] = [];
  for (let i = 0; i < most; i++) {
    const [s, r] = await Promise.all([
      createUser(relay, dir, `tsend${i}`),
      createUser(relay, dir, `trecv${i}`),
    ]);
    acceptEachOther(s, r);
    senders.push(s);
    receivers.push(r);
  }
  const runs: ThroughputRun[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // The order of pair counts rotates with the round.
    const order = PAIRS.map((_, i) => PAIRS[(i + r) % PAIRS.length]!);
    for (const n of order) {
      // Fresh connections for every run: each starts with the full control-message burst.
      const pairs: Pair[] = [];
      try {
        for (let i = 0; i < n; i++)
          pairs.push(await pairOnline(senders[i]!, receivers[i]!, relay, false));
        const before = await controlRate(relay);
        const relayCpu0 = cpuSeconds(relay.pid) ?? NaN;
        const clientCpu0 = cpuSeconds(process.pid) ?? NaN;
        const result = await measureBurst(pairs, `tp ${r} ${n}`, BURST);
        const relayCpu = (cpuSeconds(relay.pid) ?? NaN) - relayCpu0;
        const clientCpu = (cpuSeconds(process.pid) ?? NaN) - clientCpu0;
        const after = await controlRate(relay);
        const run: ThroughputRun = {
          ...result,
          round: r,
          msgsPerSec: result.delivered / (result.elapsedMs / 1000),
          relayCpuMsPerMsg: (relayCpu * 1000) / result.delivered,
          clientCpuMsPerMsg: (clientCpu * 1000) / result.delivered,
          control: {
            throttled: after.throttled - before.throttled,
            rateLimitedErrors: after.rateLimitedErrors - before.rateLimitedErrors,
          },
        };
        runs.push(run);
        console.log(
          `  [round ${r + 1}/${ROUNDS}] ${n} pair(s): ${run.delivered}/${run.sent} shown in ` +
            `${round(run.elapsedMs)} ms = ${round(run.msgsPerSec)} msgs/s` +
            (run.control.throttled > 0 ? ` (${run.control.throttled} requests rate-limited)` : ''),
        );
      } finally {
        for (const p of pairs) await pairOffline(p).catch(() => undefined);
      }
    }
  }
  return runs;
}

// --- 3. broadcast -------------------------------------------------------------------------------

interface MemoryPoint {
  rssMiB: number;
  heapUsedMiB: number;
  heapUsedAfterGcMiB: number;
  externalMiB: number;
}

async function memoryPoint(relay: RelayProcess): Promise<MemoryPoint> {
  const now: RelayMemory = await relay.memory(false);
  const gc = await relay.memory(true);
  return {
    rssMiB: mib(now.rss),
    heapUsedMiB: mib(now.heapUsed),
    heapUsedAfterGcMiB: mib(gc.heapUsed),
    externalMiB: mib(now.external),
  };
}

/**
 * Two relays on one data directory. The first takes the sign-ups and password logins of every
 * user (timed, each on the connection it keeps), then stops; the second starts fresh and every
 * user logs in again with its token: its memory is then the connections', not what thousands of
 * Argon2 hashes and sign-up transactions left behind (both are reported).
 */
async function broadcast(dir: string, cleanups: Array<() => Promise<unknown>>) {
  // One connection per user, all from 127.0.0.1: the per-address and total caps are raised to
  // fit (RelayOptions.maxConnectionsPerAddress, maxConnections; the total also stays within the
  // relay's `ulimit -n`).
  const config = {
    dataDir: join(dir, 'relay-broadcast'),
    maxConnections: CLIENTS + 64,
    maxConnectionsPerAddress: CLIENTS + 64,
  };
  const workers = Math.min(WORKERS, CLIENTS);
  const first = await RelayProcess.start(config, RELAY_NODE_ARGS);
  cleanups.push(() => first.stop());
  const memoryFirstIdle = await memoryPoint(first);
  const sender = await createUser(first, dir, 'bcaster');
  const fleet = new BroadcastFleet({
    server: first.server,
    fingerprint: first.fingerprint,
    dir,
    prefix: 'bc',
    users: CLIENTS,
    children: workers,
    concurrency: SETUP_CONCURRENCY,
    setupLimitMs: SETUP_LIMIT_MS,
  });
  cleanups.push(() => fleet.stop());
  console.log(`  signing up and logging in ${CLIENTS} users over ${workers} processes…`);
  let t = performance.now();
  const accounts = await fleet.start();
  const accountsMs = performance.now() - t;
  console.log(
    `  ${accounts.connected} signed up and online in ${round(accountsMs / 1000, 1)} s` +
      (accounts.failed > 0 ? `; ${accounts.failed} failed (first: ${accounts.firstError})` : ''),
  );
  const memoryFirstConnected = await memoryPoint(first);
  await first.stop();

  const relay = await RelayProcess.start(config, RELAY_NODE_ARGS);
  cleanups.push(() => relay.stop());
  const memoryIdle = await memoryPoint(relay);
  const client = await sender.connect(relay);
  cleanups.push(async () => client.close());
  console.log(`  relay restarted; ${accounts.connected} users log in again with their tokens…`);
  t = performance.now();
  const online = await fleet.reconnect(relay);
  const reconnectMs = performance.now() - t;
  console.log(
    `  ${online.connected} online in ${round(reconnectMs / 1000, 1)} s` +
      (online.failed > 0 ? `; ${online.failed} failed (first: ${online.firstError})` : ''),
  );
  const stats = await relay.stats();
  const memoryConnected = await memoryPoint(relay);

  const body = {
    v: 1 as const,
    id: randomBytes(16).toString('base64'),
    from: sender.name,
    sentAt: new Date().toISOString(),
    text: 'bench: one broadcast to everyone online',
  };
  const signed = signBroadcast(sender.key, body);
  const cpu0 = cpuSeconds(relay.pid) ?? NaN;
  const t0 = epochNow();
  const reply = await client.request('broadcast.send', signed);
  const replyMs = epochNow() - t0;
  const arrivals = await fleet.arrivals(BROADCAST_TIMEOUT_MS);
  const relayCpuS = (cpuSeconds(relay.pid) ?? NaN) - cpu0;
  const memoryAfter = await memoryPoint(relay);
  const verified = await fleet.verify(BROADCAST_TIMEOUT_MS);
  const since = arrivals.times.map((x) => x - t0).sort((a, b) => a - b);
  const p50s = (times: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(times).map(([k, xs]) => [k, summarize(xs, 1)]));
  const perConnection = (a: MemoryPoint, b: MemoryPoint, n: number) =>
    round(((b.rssMiB - a.rssMiB) * 1024) / Math.max(1, n), 1);
  return {
    clients: CLIENTS,
    workers,
    accounts: {
      created: accounts.connected,
      failed: accounts.failed,
      firstError: accounts.firstError ?? null,
      sec: round(accountsMs / 1000, 1),
      perSec: round(accounts.connected / (accountsMs / 1000)),
      msPerUser: p50s(accounts.times),
    },
    reconnect: {
      online: online.connected,
      failed: online.failed,
      firstError: online.firstError ?? null,
      sec: round(reconnectMs / 1000, 1),
      perSec: round(online.connected / (reconnectMs / 1000)),
      msPerUser: p50s(online.times),
    },
    relayConnections: stats.connections,
    online: reply.online,
    replyMs: round(replyMs, 1),
    received: since.length,
    missing: arrivals.missing,
    closed: arrivals.closed,
    firstMs: round(since[0] ?? NaN, 1),
    p50Ms: round(percentile(since, 0.5), 1),
    p99Ms: round(percentile(since, 0.99), 1),
    lastMs: round(since[since.length - 1] ?? NaN, 1),
    relayCpuMs: round(relayCpuS * 1000, 0),
    verified,
    memory: {
      accountsRelayIdle: memoryFirstIdle,
      accountsRelayConnected: memoryFirstConnected,
      idle: memoryIdle,
      connected: memoryConnected,
      afterBroadcast: memoryAfter,
    },
    relayKiBPerConnection: perConnection(memoryIdle, memoryConnected, stats.connections),
    accountsRelayKiBPerConnection: perConnection(
      memoryFirstIdle,
      memoryFirstConnected,
      accounts.connected + 1,
    ),
    clientProcessesRssMiB: mib(arrivals.childrenRss),
  };
}

// --- report -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const machine = machineInfo();
  console.log(
    `machine: ${machine.nproc} cores (${machine.cpuModel}), ${machine.memGiB} GiB, ` +
      `Linux ${machine.kernel}, node ${machine.node}; load average ${machine.loadAvgAtStart}`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-messaging-'));
  const { cleanups, done } = guardRun({
    dir,
    limitMs: TOTAL_LIMIT_MS,
    onInterrupt: () => (interrupted = true),
  });
  try {
    const relay = await RelayProcess.start({ dataDir: join(dir, 'relay') }, RELAY_NODE_ARGS);
    cleanups.push(() => relay.stop());

    console.log(
      `\n1. latency: ${MESSAGES} messages per path in ${LATENCY_ROUNDS} alternating rounds, ` +
        `one at a time, at most one per ${PACE_MS} ms…`,
    );
    const lat = await latency(relay, join(dir, 'latency'));

    console.log(`\n2. throughput: ${BURST} messages per pair, pairs ${PAIRS.join(', ')}…`);
    const tp = await throughput(relay, join(dir, 'throughput'));
    await relay.stop();

    let bc: Awaited<ReturnType<typeof broadcast>> | undefined;
    if (!flags['no-broadcast']) {
      console.log(`\n3. broadcast to ${CLIENTS} connected users…`);
      bc = await broadcast(join(dir, 'broadcast'), cleanups);
    }

    // The tables.
    const ms = (x: number) => round(x, 2);
    const latRow = (path: 'direct' | 'relay') => {
      const d = summarize(
        lat[path].map((s) => s.deliverMs),
        2,
      );
      const s = summarize(
        lat[path].map((x) => x.sendMs),
        2,
      );
      const p50s = lat.roundP50[path];
      const off = lat[path].filter((x) => x.path !== path).length;
      return [
        path === 'direct' ? 'direct (TCP on loopback)' : 'relayed (mailbox, pushed)',
        d.n,
        ms(d.p50),
        ms(d.p90),
        ms(d.p99),
        ms(d.max),
        `${ms(Math.min(...p50s))}–${ms(Math.max(...p50s))}`,
        ms(s.p50),
        ms(s.p99),
        off,
      ];
    };
    console.log(
      `\n1. Message latency, ms (send() called → the receiver's Messenger emits 'message'); ` +
        `${LATENCY_ROUNDS} rounds, pooled\n`,
    );
    console.log(
      table(
        [
          'path',
          'n',
          'p50',
          'p90',
          'p99',
          'max',
          'round p50s',
          'send() p50',
          'send() p99',
          'other path',
        ],
        [latRow('direct'), latRow('relay')],
      ),
    );
    console.log(
      `send(): until it resolved (direct: the peer's acknowledgement on the link; relayed: the ` +
        `relay's reply to message.send, stored). Requests refused for the control rate meanwhile: ` +
        `${lat.control.throttled}.`,
    );

    const tpRows = PAIRS.map((n) => {
      const rs = tp.filter((r) => r.pairs === n);
      const rates = rs.map((r) => r.msgsPerSec);
      return [
        String(n),
        String(rs.reduce((a, r) => a + r.delivered, 0)),
        String(rs.reduce((a, r) => a + r.sent, 0)),
        String(round(median(rates))),
        `${round(Math.min(...rates))}–${round(Math.max(...rates))}`,
        String(round(median(rs.map((r) => r.elapsedMs)))),
        String(round(median(rs.map((r) => r.relayCpuMsPerMsg)), 2)),
        String(round(median(rs.map((r) => r.clientCpuMsPerMsg)), 2)),
        `${rs.reduce((a, r) => a + r.receipts, 0)}`,
        String(rs.reduce((a, r) => a + r.control.throttled, 0)),
      ];
    });
    console.log(
      `\n2. Messages per second through one relay: ${BURST} messages per pair per run, all pairs ` +
        `at once; ${ROUNDS} round(s), medians\n`,
    );
    console.log(
      table(
        [
          'pairs',
          'shown',
          'sent',
          'msgs/s',
          'range',
          'ms to last',
          'relay CPU ms/msg',
          'clients CPU ms/msg',
          'receipts',
          'rate-limited',
        ],
        tpRows,
      ),
    );
    console.log(
      `The relay lets one connection send ${CONTROL_BURST} control messages at once, then ` +
        `${CONTROL_RATE_PER_SEC}/s: about ${CONTROL_RATE_PER_SEC / CONTROL_PER_MESSAGE} relayed ` +
        'messages a second per sender or receiver, sustained (not raisable by an option).',
    );

    if (bc) {
      console.log(
        `\n3. One broadcast to ${bc.relayConnections - 1} connected users (${bc.workers} client processes)\n`,
      );
      const steps = (x: Record<string, { p50: number }>) =>
        `${Object.keys(x).join(' / ')}: ${Object.values(x)
          .map((s) => s.p50)
          .join(' / ')} ms`;
      console.log(
        table(
          ['measure', 'value'],
          [
            [
              'accounts: sign-up + password login, each user',
              `${bc.accounts.created} in ${bc.accounts.sec} s (${bc.accounts.perSec}/s)`,
            ],
            ['  per user, p50', steps(bc.accounts.msPerUser)],
            [
              'relay restarted: token login, each user',
              `${bc.reconnect.online} in ${bc.reconnect.sec} s (${bc.reconnect.perSec}/s)`,
            ],
            ['  per user, p50', steps(bc.reconnect.msPerUser)],
            ['relay WebSocket connections (users + sender)', `${bc.relayConnections}`],
            ['broadcast.send reply (users reached)', `${bc.replyMs} ms (${bc.online})`],
            ['send → first user has it', `${bc.firstMs} ms`],
            ['send → half of them', `${bc.p50Ms} ms`],
            ['send → 99 %', `${bc.p99Ms} ms`],
            ['send → last user has it', `${bc.lastMs} ms`],
            ['received / missing / closed', `${bc.received} / ${bc.missing} / ${bc.closed}`],
            ['signatures verified / bad', `${bc.verified.ok} / ${bc.verified.bad}`],
            ['relay CPU from send to last arrival', `${bc.relayCpuMs} ms`],
          ],
        ),
      );
      const m = bc.memory;
      console.log('\nRelay memory, MiB (process.memoryUsage(); heap also after a forced GC)\n');
      console.log(
        table(
          ['relay, when', 'RSS', 'heap used', 'heap after GC', 'external'],
          (
            [
              ['accounts relay, fresh', m.accountsRelayIdle],
              [
                `accounts relay, ${bc.accounts.created} signed up, online`,
                m.accountsRelayConnected,
              ],
              ['restarted relay, fresh', m.idle],
              [`restarted relay, ${bc.relayConnections} connected`, m.connected],
              ['restarted relay, after the broadcast', m.afterBroadcast],
            ] as const
          ).map(([when, x]) => [
            when,
            x.rssMiB,
            x.heapUsedMiB,
            x.heapUsedAfterGcMiB,
            x.externalMiB,
          ]),
        ),
      );
      console.log(
        `Relay RSS per connection: ${bc.relayKiBPerConnection} KiB (token logins on the ` +
          `restarted relay); ${bc.accountsRelayKiBPerConnection} KiB on the relay that took the ` +
          `sign-ups. The ${bc.workers} client processes: ${bc.clientProcessesRssMiB} MiB RSS together.`,
      );
    }

    console.log(
      JSON.stringify({
        bench: 'messaging',
        date: new Date().toISOString(),
        quick: QUICK,
        machine,
        params: {
          messages: MESSAGES,
          latencyRounds: LATENCY_ROUNDS,
          paceMs: PACE_MS,
          pairs: PAIRS,
          burst: BURST,
          rounds: ROUNDS,
          clients: flags['no-broadcast'] ? 0 : CLIENTS,
          workers: WORKERS,
        },
        latency: {
          direct: {
            deliverMs: summarize(lat.direct.map((s) => s.deliverMs)),
            sendMs: summarize(lat.direct.map((s) => s.sendMs)),
            roundP50: lat.roundP50.direct,
            otherPath: lat.direct.filter((s) => s.path !== 'direct').length,
          },
          relay: {
            deliverMs: summarize(lat.relay.map((s) => s.deliverMs)),
            sendMs: summarize(lat.relay.map((s) => s.sendMs)),
            roundP50: lat.roundP50.relay,
            otherPath: lat.relay.filter((s) => s.path !== 'relay').length,
          },
          controlRateRefusals: lat.control.throttled,
        },
        throughput: tp.map((r) => ({
          pairs: r.pairs,
          round: r.round,
          sent: r.sent,
          delivered: r.delivered,
          receipts: r.receipts,
          elapsedMs: round(r.elapsedMs, 1),
          storedMs: round(r.storedMs, 1),
          msgsPerSec: round(r.msgsPerSec, 1),
          relayCpuMsPerMsg: round(r.relayCpuMsPerMsg, 3),
          clientCpuMsPerMsg: round(r.clientCpuMsPerMsg, 3),
          controlRateRefusals: r.control.throttled,
        })),
        broadcast: bc ?? null,
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

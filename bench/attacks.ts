// Replays each attack of issue 6 at the issue's scale against `switchboard serve`, and prints what it does now.
//
// Usage: npm run bench:attacks -- [--only N[,N...]] [--json] [--guess-seconds S=60]
//                                 [--flood-seconds S=30] [--fd-limit N=1024]
// Every attack gets a fresh relay: `bin/switchboard serve --host 127.0.0.1 --port 0` with a temp
// data dir, started under `ulimit -n 1024` (as the issue measured it), default limits. Attackers
// and users run in this process or as CLI children on the same machine, on loopback only; the
// relay tells clients apart by their source address, so attackers bind 127.0.0.N (N ≥ 2) and the
// real user keeps 127.0.0.1. Every loop is bounded in count and time. Progress goes to stderr;
// stdout carries the report table, or one JSON document with --json.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { RelayClient } from '../src/client/relay-client.js';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import { SLOW_PEER_GRACE_MS } from '../src/protocol/limits.js';
import type { Params, RelayEvent } from '../src/protocol/messages.js';
import { HealthPoller, rssKiB, type HealthSummary } from '../test/fuzz-driver.js';
import {
  CLI,
  ROOT,
  connectClient,
  httpsGet,
  makeTempDir,
  makeUser,
  newDevice,
  removeTempDirs,
  runCli,
  savedLogin,
} from '../test/helpers.js';
import {
  PeakSampler,
  RelayChild,
  SourceClient,
  descriptors,
  fdLimitOf,
  halfOpen,
  loopback,
  metric,
  scrapeMetrics,
  settlesWithin,
  since,
  sleep,
  type Outcome,
} from './lib/attack-rig.js';
import { cpuSeconds } from './lib/cpu.js';
import { percentile, round } from './lib/stats.js';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    'guess-seconds': { type: 'string', default: '60' },
    'flood-seconds': { type: 'string', default: '30' },
    'fd-limit': { type: 'string', default: '1024' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:attacks -- [--only N[,N...]] [--json] [--guess-seconds S=60] [--flood-seconds S=30] [--fd-limit N=1024]\n' +
      'Attacks: 1 half-open TLS, 2 condemned connection, 3 sign-up flood, 4 guessing from many\n' +
      'addresses, 5 session squatting, 6 stalled readers.',
  );
  process.exit(0);
}

function intFlag(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

const ONLY = flags.only?.split(',').map((s) => intFlag('only', s.trim(), 1, 6));
const GUESS_MS = intFlag('guess-seconds', flags['guess-seconds'], 5, 600) * 1000; // ms
const FLOOD_MS = intFlag('flood-seconds', flags['flood-seconds'], 5, 600) * 1000; // ms
const FD_LIMIT = intFlag('fd-limit', flags['fd-limit'], 256, 1_048_576);

/** Progress, on stderr so that stdout is only the report. */
const say = (line: string) => process.stderr.write(`${line}\n`);

/** One row of the report: what the issue measured before the fix, and what this run measured. */
interface Figure {
  figure: string;
  before: string;
  after: string;
}

interface AttackResult {
  n: number;
  title: string;
  figures: Figure[];
  /** What still hurts, in words; empty when the fix holds on every figure. */
  stillHurts: string[];
  data: Record<string, unknown>;
}

// --- shared helpers -------------------------------------------------------------------------------

/** Runs `fn` against a fresh relay child, then stops it and removes its data dir. */
async function withRelay<T>(
  options: { logLevel?: string; keep?: readonly string[] },
  fn: (relay: RelayChild) => Promise<T>,
): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-bench-attack-'));
  const relay = await RelayChild.start(CLI, {
    dataDir,
    fdLimit: FD_LIMIT,
    extra: ['--log-level', options.logLevel ?? 'info'],
    ...(options.keep ? { keep: options.keep } : {}),
  });
  try {
    return await fn(relay);
  } finally {
    const code = await relay.stop();
    if (code !== 0) say(`  note: the relay exited with ${code} after SIGTERM`);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

interface CliLogin {
  /** 'OK', the error code the CLI printed ([CODE]), or TIMEOUT. */
  code: string;
  ms: number;
  stderr: string;
}

/** `switchboard login` in `home` (a person at the CLI): wall time, outcome. */
async function cliLogin(
  home: string,
  user: string,
  password: string,
  extra: string[] = [],
): Promise<CliLogin> {
  const t0 = performance.now();
  try {
    const r = await runCli(['login', '--user', user, '--password-stdin', ...extra], {
      home,
      stdin: `${password}\n`,
      timeoutMs: 45_000,
    });
    const code = r.code === 0 ? 'OK' : (/\[([A-Z_]+)\]/.exec(r.stderr)?.[1] ?? `exit ${r.code}`);
    return { code, ms: since(t0), stderr: r.stderr.trim() };
  } catch (err) {
    return { code: 'TIMEOUT', ms: since(t0), stderr: (err as Error).message.split('\n')[0]! };
  }
}

/** One timed GET /healthz: status (0 if it failed) and milliseconds. */
async function healthOnce(port: number): Promise<{ status: number; ms: number; error?: string }> {
  const t0 = performance.now();
  try {
    const { status } = await httpsGet(port, '/healthz');
    return { status, ms: since(t0) };
  } catch (err) {
    return { status: 0, ms: since(t0), error: (err as Error).message };
  }
}

const describeLogin = (l: CliLogin) => `${l.code === 'OK' ? 'ok' : l.code} in ${fmtMs(l.ms)}`;
const fmtMs = (ms: number) => (ms >= 10_000 ? `${round(ms / 1000)} s` : `${Math.round(ms)} ms`);
const fmtBytes = (b: number) =>
  b >= 1024 * 1024
    ? `${round(b / 2 ** 20, 2)} MiB`
    : b >= 1024
      ? `${round(b / 1024, 1)} KiB`
      : `${b} B`;
const mib = (kib: number | undefined) => (kib === undefined ? 'n/a' : `${round(kib / 1024)} MiB`);

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');

function registration(sessionId: string): Params<'session.register'> {
  return {
    sessionId,
    kind: 'agent',
    instance: randomBytes(16).toString('hex'),
    hostName: 'bench-host',
    allow: [],
    viewers: [],
  };
}

/** A RelayClient logged in with `token` (the CLI's own path for every command after login). */
async function tokenClient(relay: RelayChild, token: string): Promise<RelayClient> {
  const c = await connectClient(relay.server, relay.fingerprint, makeTempDir('sb-bench-home-'));
  await c.request('auth.token', { token });
  return c;
}

// --- 1. half-open TLS -----------------------------------------------------------------------------

/** Connections that never finish the handshake, and how long they are held, as in the issue. */
const HALF_OPEN = 1_100;
const HALF_OPEN_HOLD_MS = 12_000; // ms
/** When, into the hold, the real user tries to log in. */
const LOGIN_DURING_AT_MS = 4_000; // ms
const AFTER_CLOSE_MS = 2_000; // ms

interface HalfOpenRound {
  sourceAddresses: number;
  opened: number;
  openedMs: number;
  descriptors: { baseline?: number; during?: number; peak?: number; after?: number };
  refused: { address_full: number; relay_full: number };
  handshakeTimeouts: number;
  closedByRelay: number;
  closedByRelayWithin1s: number;
  closedByRelayLastMs: number | null;
  stillOpenAtEndOfHold: number;
  healthDuring: HealthSummary;
  loginDuring: CliLogin;
  healthAfter: { status: number; ms: number; error?: string };
  loginAfter: CliLogin;
}

async function halfOpenRound(
  relay: RelayChild,
  home: string,
  password: string,
  addresses: string[],
): Promise<HalfOpenRound> {
  const before = await scrapeMetrics(relay.port);
  const baseline = descriptors(relay.pid);
  const fds = new PeakSampler(() => descriptors(relay.pid), 100);
  const health = new HealthPoller(relay.port, 100);
  const t0 = performance.now();
  const per = Math.ceil(HALF_OPEN / addresses.length);
  const sockets = (
    await Promise.all(
      addresses.map((a, i) => halfOpen(relay.port, Math.min(per, HALF_OPEN - i * per), a)),
    )
  ).flat();
  const openedMs = since(t0);
  const closedByRelayAt: number[] = [];
  let leaving = false;
  for (const s of sockets)
    s.once('close', () => {
      if (!leaving) closedByRelayAt.push(since(t0));
    });
  await sleep(LOGIN_DURING_AT_MS - since(t0));
  const fdsDuring = descriptors(relay.pid);
  const loginDuring = await cliLogin(home, 'alice', password);
  await sleep(HALF_OPEN_HOLD_MS - since(t0));
  const healthDuring = await health.stop();
  fds.stop();
  leaving = true;
  const stillOpen = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  await sleep(AFTER_CLOSE_MS);
  const fdsAfter = descriptors(relay.pid);
  const healthAfter = await healthOnce(relay.port);
  const loginAfter = await cliLogin(home, 'alice', password);
  const after = await scrapeMetrics(relay.port);
  const diff = (name: string, labels: Record<string, string>) =>
    metric(after, name, labels) - metric(before, name, labels);
  const refused = {
    address_full: diff('switchboard_connections_refused_total', { reason: 'address_full' }),
    relay_full: diff('switchboard_connections_refused_total', { reason: 'relay_full' }),
  };
  const refusedFast = closedByRelayAt.filter((t) => t < openedMs + 1_000).length;
  return {
    sourceAddresses: addresses.length,
    opened: sockets.length,
    openedMs,
    descriptors: { baseline, during: fdsDuring, peak: fds.peak, after: fdsAfter },
    refused,
    handshakeTimeouts: diff('switchboard_tls_handshake_failures_total', { reason: 'timeout' }),
    closedByRelay: closedByRelayAt.length,
    closedByRelayWithin1s: refusedFast,
    closedByRelayLastMs: closedByRelayAt.length ? Math.max(...closedByRelayAt) : null,
    stillOpenAtEndOfHold: stillOpen,
    healthDuring,
    loginDuring,
    healthAfter,
    loginAfter,
  };
}

async function attackHalfOpen(): Promise<AttackResult> {
  return withRelay({}, async (relay) => {
    const password = 'alice-password-1';
    const home = await makeUser(relay, 'alice', password);
    const limits = {
      fdLimit: fdLimitOf(relay.pid),
      maxConnections: relay.listening?.['maxConnections'],
      maxPerAddress: relay.listening?.['maxPerAddress'],
    };
    say(`  relay pid ${relay.pid}: ${JSON.stringify(limits)}`);
    say(`  ${HALF_OPEN} half-open connections from one address (127.0.0.2), held 12 s`);
    const one = await halfOpenRound(relay, home, password, [loopback(2)]);
    say(`  ${HALF_OPEN} half-open connections from 11 addresses (127.0.0.2-12), held 12 s`);
    const many = await halfOpenRound(
      relay,
      home,
      password,
      Array.from({ length: 11 }, (_, i) => loopback(2 + i)),
    );
    const [a, b] = [one, many];
    const healthText = (h: HealthSummary) =>
      h.failures === 0
        ? `${h.samples} ok, worst ${h.worstMs} ms, p99 ${h.p99Ms} ms`
        : `${h.failures} of ${h.samples} failed (${h.firstFailure ?? '?'}); worst ${h.worstMs} ms`;
    const stillHurts: string[] = [];
    for (const [name, r] of [
      ['one address', a],
      ['11 addresses', b],
    ] as const) {
      if ((r.descriptors.after ?? Infinity) > (r.descriptors.baseline ?? 0) + 10)
        stillHurts.push(`${name}: descriptors not released (${r.descriptors.after})`);
      if (r.loginAfter.code !== 'OK') stillHurts.push(`${name}: login after ${r.loginAfter.code}`);
    }
    if (a.loginDuring.code !== 'OK' || a.healthDuring.failures > 0)
      stillHurts.push('one address: the real user was refused during the attack');
    if (b.loginDuring.code !== 'OK' || b.healthDuring.failures > 0)
      stillHurts.push(
        `11 addresses: while ${(b.descriptors.peak ?? 0) - (b.descriptors.baseline ?? 0)} half-open connections ` +
          `fill the relay-wide cap (${String(limits.maxConnections)}), new connections are refused: ` +
          `/healthz ${healthText(b.healthDuring)}, login ${b.loginDuring.code}, ` +
          `until the ${b.closedByRelayLastMs === null ? '?' : fmtMs(b.closedByRelayLastMs)} handshake timeout frees them`,
      );
    return {
      n: 1,
      title: `Half-open TLS: ${HALF_OPEN} connections, held 12 s, ulimit -n ${limits.fdLimit}`,
      figures: [
        {
          figure: 'relay descriptors during (peak) / 2 s after [one address]',
          before: '1,024 (the limit) / 1,024, still 75 s later',
          after: `${a.descriptors.peak} / ${a.descriptors.after} (baseline ${a.descriptors.baseline})`,
        },
        {
          figure: 'refused at accept [one address]',
          before: 'none (no cap)',
          after: `${a.refused.address_full} by the per-address cap (${String(limits.maxPerAddress)}); the rest timed out at 10 s (${a.handshakeTimeouts})`,
        },
        {
          figure: '/healthz during [one address]',
          before: 'failed',
          after: healthText(a.healthDuring),
        },
        {
          figure: 'real login during / after [one address]',
          before: 'CONNECT_FAILED / CONNECT_FAILED',
          after: `${describeLogin(a.loginDuring)} / ${describeLogin(a.loginAfter)}`,
        },
        {
          figure: 'relay descriptors during (peak) / 2 s after [11 addresses]',
          before: '-',
          after: `${b.descriptors.peak} / ${b.descriptors.after} (relay-wide cap ${String(limits.maxConnections)})`,
        },
        {
          figure: 'refused at accept [11 addresses]',
          before: '-',
          after: `${b.refused.relay_full} relay_full, ${b.refused.address_full} address_full`,
        },
        {
          figure: '/healthz during [11 addresses]',
          before: '-',
          after: healthText(b.healthDuring),
        },
        {
          figure: 'real login during / after [11 addresses]',
          before: '-',
          after: `${describeLogin(b.loginDuring)} / ${describeLogin(b.loginAfter)}`,
        },
      ],
      stillHurts,
      data: { limits, oneAddress: one, elevenAddresses: many },
    };
  });
}

// --- 2. a condemned connection --------------------------------------------------------------------

const FLOOD_FRAMES = 50_000;
/** The hello and sign-up ride in the stream after this many bad frames (past the 10th error). */
const SIGNUP_AFTER_FRAMES = 100;

async function attackCondemned(): Promise<AttackResult> {
  return withRelay({ logLevel: 'info' }, async (relay) => {
    const health = new HealthPoller(relay.port, 50);
    await sleep(500); // a few samples of the quiet relay
    const logBefore = relay.stderrBytes;
    const cpuBefore = cpuSeconds(relay.pid);
    const ws = await SourceClient.open(relay.port, loopback(3), { hello: false });
    let answers = 0;
    ws.ws.on('message', () => answers++);
    const password = 'ghost-password-1';
    const t0 = performance.now();
    for (let i = 0; i < FLOOD_FRAMES; i++) {
      if (i === SIGNUP_AFTER_FRAMES) {
        ws.ws.send(JSON.stringify({ type: 'hello', id: 1, version: 1, client: 'attacker' }));
        ws.ws.send(JSON.stringify({ type: 'auth.signup', id: 2, user: 'ghost', password }));
      }
      ws.ws.send('x');
    }
    ws.ws.send(JSON.stringify({ type: 'auth.signup', id: 3, user: 'ghost-two', password }));
    const deadline = performance.now() + 30_000;
    while (
      ws.ws.bufferedAmount > 0 &&
      ws.ws.readyState === ws.ws.OPEN &&
      performance.now() < deadline
    )
      await sleep(5);
    const sentMs = since(t0);
    const unsent = ws.ws.bufferedAmount;
    const closedWithin = await settlesWithin(ws.closed, 35_000);
    const closeMs = since(t0);
    const closed = closedWithin ? await ws.closed : { code: -1, reason: 'not closed within 35 s' };
    await sleep(3_000);
    const h = await health.stop();
    const logBytes = relay.stderrBytes - logBefore;
    const cpu = (cpuSeconds(relay.pid) ?? 0) - (cpuBefore ?? 0);
    // Did the sign-ups sent after the condemning errors run? Log in with their password.
    const checker = await SourceClient.open(relay.port, loopback(1));
    const ran: Record<string, string> = {};
    for (const user of ['ghost', 'ghost-two']) {
      const o = await checker.request('auth.login', { user, password, device: newDevice() });
      ran[user] = o.code === 'OK' ? 'account exists' : `no account (${o.code})`;
    }
    checker.terminate();
    const stillHurts: string[] = [];
    if (h.worstMs > 1_000 || h.failures > 0)
      stillHurts.push(`/healthz worst ${h.worstMs} ms, ${h.failures} failures`);
    if (Object.values(ran).some((r) => r === 'account exists'))
      stillHurts.push('a request sent after the close ran');
    if (logBytes > 100_000) stillHurts.push(`${fmtBytes(logBytes)} of log`);
    return {
      n: 2,
      title: `Condemned connection: ${FLOOD_FRAMES.toLocaleString('en')} one-byte frames, no hello`,
      figures: [
        {
          figure: 'worst /healthz latency during (poll every 50 ms)',
          before: '63 s (blocked)',
          after: `${h.worstMs} ms (p99 ${h.p99Ms} ms, ${h.samples} polls, ${h.failures} failed)`,
        },
        {
          figure: 'relay log written (--log-level info)',
          before: '10 MB',
          after: fmtBytes(logBytes),
        },
        {
          figure: 'requests sent after the close',
          before: 'ran (an account was created)',
          after: `did not run (ghost: ${ran['ghost']}; ghost-two: ${ran['ghost-two']})`,
        },
        {
          figure: 'connection closed / relay CPU',
          before: 'after ws 30 s close timer',
          after: `${closed.code} "${closed.reason}" at ${fmtMs(closeMs)}; ${answers} answers; relay CPU ${round(cpu, 2)} s`,
        },
      ],
      stillHurts,
      data: {
        sentMs,
        unsentBytes: unsent,
        closeMs,
        closed,
        answers,
        health: h,
        logBytes,
        cpu,
        ran,
      },
    };
  });
}

// --- 3. a sign-up flood ---------------------------------------------------------------------------

const FLOODERS = 10;
/** Sign-ups per second per connection: just under the control rate (50/s), as in the issue. */
const FLOOD_RATE = 45;
/** Time the relay has to settle after the flood (bounded wait). */
const IDLE_WAIT_MS = 120_000; // ms

async function attackSignupFlood(): Promise<AttackResult> {
  return withRelay({}, async (relay) => {
    const password = 'alice-correct-horse';
    const home = await makeUser(relay, 'alice', password);
    const baseline: CliLogin[] = [];
    for (let i = 0; i < 3; i++) baseline.push(await cliLogin(home, 'alice', password));
    say(`  baseline CLI logins: ${baseline.map(describeLogin).join(', ')}`);

    const flooders = await Promise.all(
      Array.from({ length: FLOODERS }, (_, i) => SourceClient.open(relay.port, loopback(11 + i))),
    );
    const outcomes: Array<Promise<Outcome>> = [];
    let hashPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await scrapeMetrics(relay.port).catch(() => undefined);
        if (m) hashPeak = Math.max(hashPeak, metric(m, 'switchboard_password_hashes_pending'));
        await sleep(100);
      }
    })();
    const floodStart = performance.now();
    const perConnection = Math.floor((FLOOD_MS / 1000) * FLOOD_RATE);
    const floods = flooders.map(async (c, i) => {
      for (let n = 0; n < perConnection && performance.now() - floodStart < FLOOD_MS; n++) {
        outcomes.push(
          c.request(
            'auth.signup',
            { user: `f${i}x${n}`, password: 'flood-password-123' },
            IDLE_WAIT_MS,
          ),
        );
        await sleep(floodStart + ((n + 1) * 1000) / FLOOD_RATE - performance.now());
      }
    });
    // The real user logs in through the CLI once a second while the flood runs.
    const logins: CliLogin[] = [];
    const loginLoop = (async () => {
      for (let k = 1; k <= FLOOD_MS / 1000; k++) {
        const wait = floodStart + k * 1000 - performance.now();
        if (wait > 0) await sleep(wait);
        if (performance.now() - floodStart >= FLOOD_MS) break;
        logins.push(await cliLogin(home, 'alice', password));
        k = Math.max(k, Math.floor((performance.now() - floodStart) / 1000));
      }
    })();
    await Promise.all(floods);
    const floodEnd = performance.now();
    await loginLoop;
    // Idle: every sign-up answered and nothing left in the hash queue.
    const settled = await Promise.all(outcomes);
    let idleMs: number | undefined;
    while (performance.now() - floodEnd < IDLE_WAIT_MS) {
      const m = await scrapeMetrics(relay.port);
      if (metric(m, 'switchboard_password_hashes_pending') === 0) {
        idleMs = since(floodEnd);
        break;
      }
      await sleep(100);
    }
    sampling = false;
    await sampler;
    for (const c of flooders) c.terminate();

    const codes: Record<string, number> = {};
    for (const o of settled) bump(codes, o.code);
    const throttled = settled.filter((o) => o.code === ErrorCode.THROTTLED);
    const withRetry = throttled.filter((o) => (o.retryAfterMs ?? 0) > 0).length;
    const retries = throttled.map((o) => o.retryAfterMs ?? 0).sort((x, y) => x - y);
    const accepted = codes['OK'] ?? 0;
    const ms = logins.map((l) => l.ms).sort((x, y) => x - y);
    const failedLogins = logins.filter((l) => l.code !== 'OK');

    // `users`: the default reply and every page, with however many accounts now exist.
    const usersDefault = await runCli(['users', '--json'], { home, timeoutMs: 30_000 });
    const usersAll = await runCli(['users', '--all', '--json'], { home, timeoutMs: 60_000 });
    const client = await tokenClient(relay, savedLogin(home).token);
    const replyDefault = JSON.stringify(await client.request('users.list', {})).length;
    let pages = 0;
    let biggestPage = 0;
    let listed = 0;
    let after: string | undefined;
    do {
      const page = await client.request('users.list', {
        all: true,
        limit: 200,
        ...(after ? { after } : {}),
      });
      pages++;
      listed += page.users.length;
      biggestPage = Math.max(biggestPage, JSON.stringify(page).length);
      after = page.next;
    } while (after !== undefined && pages < 1_000);
    client.close();
    const defaultCount = (JSON.parse(usersDefault.stdout || '[]') as unknown[]).length;
    const allCount = (JSON.parse(usersAll.stdout || '[]') as unknown[]).length;

    const stillHurts: string[] = [];
    if (failedLogins.length > 0)
      stillHurts.push(`${failedLogins.length} of ${logins.length} logins failed during the flood`);
    if ((ms.at(-1) ?? 0) > 5_000) stillHurts.push(`slowest login ${fmtMs(ms.at(-1)!)}`);
    if (idleMs === undefined || idleMs > 10_000)
      stillHurts.push(`relay busy ${idleMs === undefined ? '>120 s' : fmtMs(idleMs)} after`);
    if (usersDefault.code !== 0 || usersAll.code !== 0) stillHurts.push('`users` failed');
    return {
      n: 3,
      title: `Sign-up flood: ${FLOODERS} connections (127.0.0.11-20) × ${FLOOD_RATE}/s for ${FLOOD_MS / 1000} s, real Argon2`,
      figures: [
        {
          figure: 'real user CLI login during the flood: p50 / max (n)',
          before: 'timed out at 30 s, 4 of 4',
          after:
            `${fmtMs(percentile(ms, 0.5))} / ${fmtMs(ms.at(-1) ?? NaN)} (${logins.length}, ` +
            `${failedLogins.length} failed; baseline ${fmtMs(baseline[1]?.ms ?? NaN)})`,
        },
        {
          figure: 'sign-ups sent / accepted / refused',
          before: 'all queued (17,442 hashes)',
          after:
            `${settled.length} / ${accepted} / ${throttled.length} THROTTLED ` +
            `(${withRetry} with retryAfterMs, ${fmtMs(retries[0] ?? NaN)}-${fmtMs(retries.at(-1) ?? NaN)})` +
            (Object.keys(codes).length > 2 ? `; all: ${countsText(codes)}` : ''),
        },
        {
          figure: 'password-hash queue peak (/metrics, 100 ms polls)',
          before: '17,442',
          after: String(hashPeak),
        },
        {
          figure: 'relay idle after the flood stops',
          before: '167 s',
          after: idleMs === undefined ? '> 120 s' : fmtMs(idleMs),
        },
        {
          figure: `\`users\` reply, ${listed} accounts: default / --all`,
          before: '1.6 MB, fails past ~11k accounts',
          after:
            `${fmtBytes(replyDefault)} (${defaultCount} users, exit ${usersDefault.code}) / ` +
            `${pages} page(s) ≤ ${fmtBytes(biggestPage)} (${allCount} users, exit ${usersAll.code})`,
        },
      ],
      stillHurts,
      data: {
        baseline,
        logins,
        codes,
        accepted,
        throttled: throttled.length,
        withRetry,
        hashPeak,
        idleMs,
        users: { accounts: listed, replyDefault, pages, biggestPage, defaultCount, allCount },
      },
    };
  });
}

// --- 4. guessing from many addresses --------------------------------------------------------------

const GUESS_ADDRESSES = 30;
/** Each guessing address waits this long between guesses (each on a new connection). */
const GUESS_PAUSE_MS = 500; // ms
/** The owner's logins during the guessing, evenly spread. */
const OWNER_LOGINS = 6;

async function attackGuessing(): Promise<AttackResult> {
  return withRelay({}, async (relay) => {
    const password = 'olive-correct-horse';
    const owner = await makeUser(relay, 'olive', password);
    const codes: Record<string, number> = {};
    let stop = false;
    const t0 = performance.now();
    const maxPerAddress = Math.ceil(GUESS_MS / GUESS_PAUSE_MS);
    const guessers = Array.from({ length: GUESS_ADDRESSES }, async (_, i) => {
      for (let n = 0; !stop && n < maxPerAddress; n++) {
        let c: SourceClient | undefined;
        try {
          c = await SourceClient.open(relay.port, loopback(101 + i));
          const o = await c.request('auth.login', {
            user: 'olive',
            password: `guess-${i}-${n}`,
            device: newDevice('guesser'),
          });
          bump(codes, o.code);
        } catch {
          bump(codes, 'CONNECT_FAILED');
        } finally {
          c?.terminate();
        }
        await sleep(GUESS_PAUSE_MS);
      }
    });
    const during: CliLogin[] = [];
    let stranger: CliLogin | undefined;
    for (let k = 1; k <= OWNER_LOGINS; k++) {
      await sleep(t0 + (k * GUESS_MS) / (OWNER_LOGINS + 1) - performance.now());
      during.push(await cliLogin(owner, 'olive', password));
      if (k === Math.ceil(OWNER_LOGINS / 2))
        stranger = await cliLogin(makeTempDir('sb-bench-home-'), 'olive', password, [
          '--server',
          relay.server,
          '--fingerprint',
          relay.fingerprint,
        ]);
    }
    await sleep(t0 + GUESS_MS - performance.now());
    stop = true;
    await Promise.all(guessers);
    const guessMs = since(t0);
    const afterLogin = await cliLogin(owner, 'olive', password);
    const m = await scrapeMetrics(relay.port);
    const guesses = Object.values(codes).reduce((s, n) => s + n, 0);
    const ok = during.filter((l) => l.code === 'OK').length;
    const dms = during.map((l) => l.ms).sort((x, y) => x - y);
    const stillHurts: string[] = [];
    if (ok < during.length)
      stillHurts.push(`owner refused ${during.length - ok} of ${during.length}`);
    return {
      n: 4,
      title: `Guessing from ${GUESS_ADDRESSES} addresses (127.0.0.101-130) for ${round(guessMs / 1000)} s; the owner on her registered device from 127.0.0.1`,
      figures: [
        {
          figure: "owner's logins during the guessing: ok / THROTTLED",
          before: '0 / 6',
          after: `${ok} / ${during.filter((l) => l.code === 'THROTTLED').length} of ${during.length}${ok < during.length ? ` (${during.map((l) => l.code).join(',')})` : ''}`,
        },
        {
          figure: "owner's login time: p50 / max (CLI wall time)",
          before: '-',
          after: `${fmtMs(percentile(dms, 0.5))} / ${fmtMs(dms.at(-1) ?? NaN)}; after the guessing ${describeLogin(afterLogin)}`,
        },
        {
          figure: 'guesses made / password checks run',
          before: '? / 11',
          after: `${guesses} / ${codes[ErrorCode.BAD_CREDENTIALS] ?? 0} (${countsText(codes)})`,
        },
        {
          figure: 'right password from an unregistered device, during',
          before: '-',
          after: stranger ? describeLogin(stranger) : '-',
        },
      ],
      stillHurts,
      data: {
        guessMs,
        codes,
        during,
        stranger,
        afterLogin,
        logins: {
          ok: metric(m, 'switchboard_logins_total', { result: 'ok' }),
          badCredentials: metric(m, 'switchboard_logins_total', { result: 'bad_credentials' }),
          throttled: metric(m, 'switchboard_logins_total', { result: 'throttled' }),
        },
      },
    };
  });
}

// --- 5. session squatting -------------------------------------------------------------------------

/** Bounds of the squatter's loops: sessions tried, connections tried. */
const SQUAT_MAX_SESSIONS = 1_000;
const SQUAT_MAX_CONNECTIONS = 150;
const AGENT_START_TIMEOUT_MS = 20_000; // ms

/** Registers new session IDs one after another until refused; the count and the refusal. */
async function registerUntilRefused(
  c: RelayClient,
  prefix: string,
  from: number,
): Promise<{ registered: number; ms: number; refusal?: SwitchboardError }> {
  const t0 = performance.now();
  let registered = 0;
  for (let i = from; i < from + SQUAT_MAX_SESSIONS; i++) {
    try {
      await c.request('session.register', registration(`${prefix}-${i}`));
      registered++;
    } catch (err) {
      if (err instanceof SwitchboardError) return { registered, ms: since(t0), refusal: err };
      throw err;
    }
  }
  return { registered, ms: since(t0) };
}

/** Times the squatter reconnects to register more IDs (each time its sessions go offline). */
const SQUAT_MAX_ROUNDS = 5;

/** `switchboard agent --session ID` in `home`: true once it prints the ID (it registered). */
async function agentStarts(
  home: string,
  sessionId: string,
): Promise<{ ok: boolean; ms: number; output: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  env['SWITCHBOARD_HOME'] = home;
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [CLI, 'agent', '--session', sessionId, '--shell', '/bin/sh'],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const ready = new Promise<boolean>((resolve) => {
    const check = (s: string) => {
      output += s;
      if (new RegExp(`^${sessionId}$`, 'm').test(output)) resolve(true);
    };
    child.stdout.setEncoding('utf8').on('data', check);
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.once('exit', () => resolve(false));
  });
  const ok = (await settlesWithin(ready, AGENT_START_TIMEOUT_MS)) && (await ready);
  const ms = since(t0);
  const exited = new Promise((r) => child.once('exit', r));
  if (child.exitCode === null) child.kill('SIGTERM');
  if (!(await settlesWithin(exited, 5_000))) child.kill('SIGKILL');
  return { ok, ms, output: output.trim().slice(-500) };
}

async function attackSquatting(): Promise<AttackResult> {
  return withRelay({}, async (relay) => {
    const held: RelayClient[] = [];
    try {
      const mallory = await connectClient(
        relay.server,
        relay.fingerprint,
        makeTempDir('sb-bench-home-'),
      );
      held.push(mallory);
      await mallory.request('auth.signup', { user: 'mallory', password: 'mallory-password-1' });
      const { token } = await mallory.request('auth.login', {
        user: 'mallory',
        password: 'mallory-password-1',
        device: newDevice('mallory'),
      });
      const live = await registerUntilRefused(mallory, 'build-box', 0);
      say(`  live: ${live.registered} in ${live.ms} ms, then ${live.refusal?.code}`);
      // The squatter leaves (its sessions go offline, their IDs stay reserved to it) and comes
      // back for more, until the relay refuses it new IDs even with no session live.
      let idsHeld = live.registered;
      let idRefusal: SwitchboardError | undefined;
      let again = mallory;
      for (let round = 0; round < SQUAT_MAX_ROUNDS; round++) {
        again.close();
        await sleep(500);
        again = await tokenClient(relay, token);
        held.push(again);
        const more = await registerUntilRefused(again, 'build-box', idsHeld);
        idsHeld += more.registered;
        idRefusal = more.refusal;
        say(`  reconnected: ${more.registered} more IDs, then ${more.refusal?.code}`);
        if (more.registered === 0) break;
      }
      // Connections: as many logged-in connections as the account may hold, and one more.
      let connections = 1; // `again`
      let connRefusal: SwitchboardError | undefined;
      for (let i = 0; i < SQUAT_MAX_CONNECTIONS && !connRefusal; i++) {
        const c = await connectClient(
          relay.server,
          relay.fingerprint,
          makeTempDir('sb-bench-home-'),
        );
        held.push(c);
        await c.request('auth.token', { token }).then(
          () => connections++,
          (err: unknown) => {
            if (err instanceof SwitchboardError) connRefusal = err;
            else throw err;
          },
        );
      }
      say(`  connections: ${connections}, then ${connRefusal?.code}`);
      // A real user's agent, while the squatter holds everything it may.
      const alice = await makeUser(relay, 'alice', 'alice-password-1');
      const agent = await agentStarts(alice, 'alice-box');
      const stillHurts: string[] = [];
      if (!agent.ok) stillHurts.push(`the real user's agent did not start: ${agent.output}`);
      if (!live.refusal) stillHurts.push(`no refusal after ${live.registered} live sessions`);
      return {
        n: 5,
        title: 'Session squatting: one account registers sessions as fast as it can',
        figures: [
          {
            figure: 'live sessions before refusal (time)',
            before: "1,000 in 23.5 s (the relay's limit)",
            after: `${live.registered} in ${fmtMs(live.ms)}: ${live.refusal?.code} "${live.refusal?.message}"`,
          },
          {
            figure: 'session IDs held (reconnecting, sessions offline)',
            before: '1,000, reserved 7 days',
            after: `${idsHeld}: ${idRefusal?.code} "${idRefusal?.message}"`,
          },
          {
            figure: 'connections of one account',
            before: 'no cap',
            after: `${connections}: ${connRefusal?.code} "${connRefusal?.message}"`,
          },
          {
            figure: "second user's `agent` registration",
            before: 'failed (SESSION_LIMIT)',
            after: agent.ok ? `ok in ${fmtMs(agent.ms)}` : `FAILED: ${agent.output}`,
          },
        ],
        stillHurts,
        data: {
          live: { ...live, refusal: live.refusal?.message },
          idsHeld,
          idRefusal: idRefusal?.message,
          connections,
          connRefusal: connRefusal?.message,
          agent,
        },
      };
    } finally {
      for (const c of held) c.terminate();
    }
  });
}

// --- 6. stalled readers ---------------------------------------------------------------------------

const STALLED = 30;
/** Each stalled controller sends one small request this often (the issue's keep-alive). */
const KEEPALIVE_MS = 5_000; // ms
const STREAM_CHUNK = 64 * 1024; // bytes
const STREAM_LIMIT_MS = 30_000; // ms
/** Longest wait for the relay to cut them (its heartbeat alone would take ≤ 30 s). */
const CUT_WAIT_MS = 40_000; // ms
const RSS_AFTER_MS = 10_000; // ms
/** Rounds on the same relay: the second shows whether memory from the first is reused or grows. */
const STALL_ROUNDS = 2;
const CUT_MSG = 'cutting a connection that stopped reading';
const HEARTBEAT_MSG = 'dropping a peer that stopped answering heartbeats';

/** What one round of stalled readers did to the relay. */
interface StallRound {
  rssBeforeKiB?: number;
  rssPeakKiB?: number;
  rssAfterKiB?: number;
  streamMs: number;
  streamedBytes: number;
  slowPeer: number;
  /** Seconds from the start of streaming: first and last SLOW_PEER, first and last cut. */
  slowPeerSec: [number, number] | null;
  cutSec: [number, number] | null;
  cuts: number;
  heartbeatDrops: number;
  /** k-th cut minus k-th SLOW_PEER, ascending. */
  cutDelaysMs: number[];
  authenticatedAfter: number;
  queuedBytesAfter: number;
  heapUsedAfter: number;
  externalAfter: number;
}

/**
 * STALLED controllers attach to the host's session and stop reading; the host streams until the
 * relay has closed every channel with SLOW_PEER; the relay must then cut each reader itself.
 */
async function stallRound(
  relay: RelayChild,
  host: RelayClient,
  token: string,
): Promise<StallRound> {
  const channels: number[] = [];
  const slowAt = new Map<number, number>();
  const onEvent = (e: RelayEvent) => {
    if (e.type === 'channel.open') channels.push(e.channel);
    if (e.type === 'channel.closed' && e.code === ErrorCode.SLOW_PEER)
      slowAt.set(e.channel, Date.now());
  };
  host.on('event', onEvent);
  const controllers: RelayClient[] = [];
  let keepAlive: NodeJS.Timeout | undefined;
  const cutsBefore = relay.kept.filter((l) => l.msg === CUT_MSG).length;
  const heartbeatsBefore = relay.kept.filter((l) => l.msg === HEARTBEAT_MSG).length;
  try {
    for (let i = 0; i < STALLED; i++) {
      const c = await tokenClient(relay, token);
      controllers.push(c);
      await c.request('session.attach', { sessionId: 'stall-host', readOnly: true });
      c.pauseReading();
    }
    const attachDeadline = performance.now() + 10_000;
    while (channels.length < STALLED && performance.now() < attachDeadline) await sleep(20);
    await sleep(1_000);
    const rssBefore = rssKiB(relay.pid);
    const rss = new PeakSampler(() => rssKiB(relay.pid), 100);
    keepAlive = setInterval(() => {
      for (const c of controllers) if (!c.closed) c.request('whoami', {}).catch(() => undefined);
    }, KEEPALIVE_MS);
    keepAlive.unref();

    // The host streams output to every channel until the relay has given up on each reader.
    const chunk = randomBytes(STREAM_CHUNK);
    const t0 = Date.now();
    let streamed = 0;
    while (slowAt.size < channels.length && Date.now() - t0 < STREAM_LIMIT_MS) {
      for (const ch of channels)
        if (!slowAt.has(ch)) {
          host.sendData(ch, chunk);
          streamed += chunk.length;
        }
      while (host.bufferedAmount > 1024 * 1024 && Date.now() - t0 < STREAM_LIMIT_MS) await sleep(2);
      await sleep(0);
    }
    const streamMs = Date.now() - t0;
    // Wait for the relay to cut them (its log says when, on its own clock).
    const cuts = () => relay.kept.filter((l) => l.msg === CUT_MSG).slice(cutsBefore);
    const cutDeadline = Date.now() + CUT_WAIT_MS;
    while (cuts().length < STALLED && Date.now() < cutDeadline) await sleep(50);
    await sleep(RSS_AFTER_MS);
    const rssAfter = rssKiB(relay.pid);
    rss.stop();
    const m = await scrapeMetrics(relay.port);

    const slowTimes = [...slowAt.values()].sort((a, b) => a - b);
    const cutTimes = cuts()
      .map((l) => l.time)
      .sort((a, b) => a - b);
    // Pair the k-th SLOW_PEER with the k-th cut: each reader is cut one grace period after its own.
    const delays = cutTimes
      .map((t, k) => (slowTimes[k] === undefined ? NaN : t - slowTimes[k]!))
      .filter((d) => Number.isFinite(d))
      .sort((a, b) => a - b);
    const span = (times: number[]): [number, number] | null =>
      times.length === 0
        ? null
        : [round((times[0]! - t0) / 1000), round((times.at(-1)! - t0) / 1000)];
    return {
      ...(rssBefore === undefined ? {} : { rssBeforeKiB: rssBefore }),
      ...(rss.peak === undefined ? {} : { rssPeakKiB: rss.peak }),
      ...(rssAfter === undefined ? {} : { rssAfterKiB: rssAfter }),
      streamMs,
      streamedBytes: streamed,
      slowPeer: slowAt.size,
      slowPeerSec: span(slowTimes),
      cutSec: span(cutTimes),
      cuts: cutTimes.length,
      heartbeatDrops: relay.kept.filter((l) => l.msg === HEARTBEAT_MSG).length - heartbeatsBefore,
      cutDelaysMs: delays,
      authenticatedAfter: metric(m, 'switchboard_connections', { state: 'authenticated' }),
      queuedBytesAfter: metric(m, 'switchboard_queued_bytes'),
      // What the relay's JavaScript still holds, apart from what the allocator keeps from the OS.
      heapUsedAfter: metric(m, 'nodejs_heap_size_used_bytes'),
      externalAfter: metric(m, 'nodejs_external_memory_bytes'),
    };
  } finally {
    clearInterval(keepAlive);
    host.off('event', onEvent);
    for (const c of controllers) c.terminate();
  }
}

async function attackStalledReaders(): Promise<AttackResult> {
  return withRelay({ logLevel: 'info', keep: [CUT_MSG, HEARTBEAT_MSG] }, async (relay) => {
    const host = await connectClient(
      relay.server,
      relay.fingerprint,
      makeTempDir('sb-bench-home-'),
    );
    try {
      await host.request('auth.signup', { user: 'hoster', password: 'hoster-password-1' });
      const { token } = await host.request('auth.login', {
        user: 'hoster',
        password: 'hoster-password-1',
        device: newDevice('hoster'),
      });
      await host.request('session.register', registration('stall-host'));
      const rounds: StallRound[] = [];
      for (let i = 0; i < STALL_ROUNDS; i++) {
        rounds.push(await stallRound(relay, host, token));
        say(`  round ${i + 1}: ${JSON.stringify(rounds.at(-1))}`);
      }
      const [r1, r2] = [rounds[0]!, rounds.at(-1)!];
      const spanText = (s: [number, number] | null) => (s ? `${s[0]}-${s[1]} s` : '-');
      const stillHurts: string[] = [];
      for (const [k, r] of rounds.entries()) {
        if (r.cuts < STALLED)
          stillHurts.push(`round ${k + 1}: only ${r.cuts} of ${STALLED} stalled readers were cut`);
        if ((r.cutDelaysMs.at(-1) ?? 0) > SLOW_PEER_GRACE_MS + 2_000)
          stillHurts.push(
            `round ${k + 1}: a reader was cut ${fmtMs(r.cutDelaysMs.at(-1)!)} after SLOW_PEER`,
          );
      }
      const grew = (r2.rssPeakKiB ?? 0) - (r1.rssPeakKiB ?? 0);
      if (grew > 64 * 1024)
        stillHurts.push(`the second round's peak RSS is ${mib(grew)} above the first's`);
      if ((r1.rssAfterKiB ?? 0) - (r1.rssBeforeKiB ?? 0) > 100 * 1024)
        stillHurts.push(
          `relay RSS stays at ${mib(r1.rssAfterKiB)} ${RSS_AFTER_MS / 1000} s after the cut (from ${mib(r1.rssBeforeKiB)}), ` +
            `though nothing is queued: ${fmtBytes(r1.externalAfter)} of freed buffers wait for a GC and the allocator keeps the pages`,
        );
      return {
        n: 6,
        title: `Stalled readers: ${STALLED} paused controllers on one host, one request each every 5 s (${STALL_ROUNDS} rounds)`,
        figures: [
          {
            figure: `relay RSS before / peak / ${RSS_AFTER_MS / 1000} s after the cut`,
            before: '193 MB / 435 MB / 435 MB (held)',
            after: `${mib(r1.rssBeforeKiB)} / ${mib(r1.rssPeakKiB)} / ${mib(r1.rssAfterKiB)}`,
          },
          {
            figure: 'SLOW_PEER sent / readers cut (slow_reader), from the start of output',
            before: `${STALLED} / 0 (kept alive by any message)`,
            after: `${r1.slowPeer} at ${spanText(r1.slowPeerSec)} / ${r1.cuts} at ${spanText(r1.cutSec)}; ${r1.heartbeatDrops} by heartbeat`,
          },
          {
            figure: `cut after SLOW_PEER (grace ${SLOW_PEER_GRACE_MS / 1000} s)`,
            before: 'never',
            after:
              r1.cutDelaysMs.length === 0
                ? '-'
                : `${fmtMs(r1.cutDelaysMs[0]!)}-${fmtMs(r1.cutDelaysMs.at(-1)!)} (p50 ${fmtMs(percentile(r1.cutDelaysMs, 0.5))})`,
          },
          {
            figure: `left ${RSS_AFTER_MS / 1000} s after: connections / queued / JS heap + external`,
            before: '30 / ~8 MiB each / -',
            after: `${r1.authenticatedAfter} (the host) / ${fmtBytes(r1.queuedBytesAfter)} / ${fmtBytes(r1.heapUsedAfter)} + ${fmtBytes(r1.externalAfter)}`,
          },
          {
            figure: 'second round on the same relay: RSS peak / after; cuts',
            before: '-',
            after: `${mib(r2.rssPeakKiB)} / ${mib(r2.rssAfterKiB)}; ${r2.cuts} cut ${r2.cutDelaysMs.length ? `${fmtMs(r2.cutDelaysMs[0]!)}-${fmtMs(r2.cutDelaysMs.at(-1)!)}` : '-'} after SLOW_PEER`,
          },
        ],
        stillHurts,
        data: { rounds },
      };
    } finally {
      host.terminate();
    }
  });
}

/** A Markdown table, left-aligned: readable as text and pasted as is into docs/security.md. */
function markdownTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// --- driver ---------------------------------------------------------------------------------------

const ATTACKS: Array<{ n: number; name: string; run: () => Promise<AttackResult> }> = [
  { n: 1, name: 'half-open TLS', run: attackHalfOpen },
  { n: 2, name: 'condemned connection', run: attackCondemned },
  { n: 3, name: 'sign-up flood', run: attackSignupFlood },
  { n: 4, name: 'guessing from many addresses', run: attackGuessing },
  { n: 5, name: 'session squatting', run: attackSquatting },
  { n: 6, name: 'stalled readers', run: attackStalledReaders },
];

async function main(): Promise<number> {
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    relayFdLimit: FD_LIMIT,
  };
  say(
    `machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}; relay under ulimit -n ${FD_LIMIT}`,
  );
  const results: AttackResult[] = [];
  const failures: Array<{ n: number; error: string }> = [];
  const started = performance.now();
  for (const attack of ATTACKS) {
    if (ONLY && !ONLY.includes(attack.n)) continue;
    say(`\n[${attack.n}] ${attack.name}`);
    const t0 = performance.now();
    try {
      const r = await attack.run();
      results.push(r);
      say(`  done in ${round((performance.now() - t0) / 1000)} s`);
    } catch (err) {
      failures.push({ n: attack.n, error: (err as Error).stack ?? String(err) });
      say(`  FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }
  const totalSec = round((performance.now() - started) / 1000);
  removeTempDirs();
  if (flags.json) {
    console.log(
      JSON.stringify({
        bench: 'attacks',
        date: new Date().toISOString(),
        machine,
        totalSec,
        results,
        failures,
      }),
    );
  } else {
    for (const r of results) {
      console.log(`\n${r.n}. ${r.title}\n`);
      console.log(
        markdownTable(
          ['figure', 'before the fix (issue 6)', 'after'],
          r.figures.map((f) => [f.figure, f.before, f.after]),
        ),
      );
      console.log(
        r.stillHurts.length === 0
          ? 'holds: nothing above still hurts'
          : `STILL HURTS:\n${r.stillHurts.map((s) => `  - ${s}`).join('\n')}`,
      );
    }
    for (const f of failures) console.log(`\n${f.n}. FAILED to run: ${f.error.split('\n')[0]}`);
    console.log(`\ntotal ${totalSec} s`);
  }
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

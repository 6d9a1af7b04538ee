// Attacks on the relay itself (issue 6, findings 1, 2 and 6): half-open TLS, a condemned connection, stalled readers.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { RelayClient } from '../../src/client/relay-client.js';
import { ErrorCode } from '../../src/protocol/errors.js';
import { SLOW_PEER_GRACE_MS } from '../../src/protocol/limits.js';
import type { RelayEvent } from '../../src/protocol/messages.js';
import { HealthPoller, rssKiB, type HealthSummary } from '../../test/fuzz-driver.js';
import { connectClient, makeTempDir, makeUser, newDevice } from '../../test/helpers.js';
import {
  describeLogin,
  cliLogin,
  fmtBytes,
  fmtMs,
  healthOnce,
  mib,
  registration,
  tokenClient,
  withRelay,
  type AttackOptions,
  type AttackResult,
  type CliLogin,
} from './attack-common.js';
import {
  PeakSampler,
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
  type RelayChild,
} from './attack-rig.js';
import { cpuSeconds } from '../../src/bench/proc.js';
import { percentile, round } from '../../src/bench/stats.js';

// --- 1. half-open TLS -----------------------------------------------------------------------------

/** Connections that never finish the handshake, and how long they are held, as in the issue. */
const HALF_OPEN = 1_100;
const HALF_OPEN_HOLD_MS = 12_000; // ms
/** When, into the hold, the real user tries to log in. */
const LOGIN_DURING_AT_MS = 4_000; // ms
/** The persistent attacker: holds longer than two handshake timeouts, re-opening what is closed. */
const PERSISTENT_HOLD_MS = 25_000; // ms
const PERSISTENT_LOGIN_AT_MS = 15_000; // ms, after the first timeouts
const REOPEN_PAUSE_MS = 100; // ms
const MAX_REOPENS = 5_000;
/** A connection closed later than this after it opened was held by the relay, not refused. */
const HELD_MS = 5_000; // ms
const AFTER_CLOSE_MS = 2_000; // ms

interface HalfOpenRound {
  sourceAddresses: number;
  holdMs: number;
  reconnect: boolean;
  opened: number;
  reopened: number;
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
  round: { holdMs: number; loginAtMs: number; reconnect: boolean },
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
  let reopened = 0;
  const watch = (s: Socket, address: string) => {
    const openedAt = performance.now();
    s.once('close', () => {
      if (leaving) return;
      closedByRelayAt.push(since(t0));
      // A persistent attacker opens a new one for each the relay held and timed out (refused ones
      // are not retried: that would only spin), after a short pause, a bounded number of times.
      const held = performance.now() - openedAt > HELD_MS;
      if (!round.reconnect || !held || reopened >= MAX_REOPENS) return;
      reopened++;
      setTimeout(() => {
        if (leaving) return;
        halfOpen(relay.port, 1, address).then(
          ([n]) => {
            if (leaving) return void n!.destroy();
            sockets.push(n!);
            watch(n!, address);
          },
          () => undefined,
        );
      }, REOPEN_PAUSE_MS);
    });
  };
  for (const s of sockets) watch(s, s.localAddress ?? addresses[0]!);
  await sleep(round.loginAtMs - since(t0));
  const fdsDuring = descriptors(relay.pid);
  const loginDuring = await cliLogin(home, 'alice', password);
  await sleep(round.holdMs - since(t0));
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
    holdMs: round.holdMs,
    reconnect: round.reconnect,
    opened: HALF_OPEN,
    reopened,
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

export async function attackHalfOpen(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, {}, async (relay) => {
    const password = 'alice-password-1';
    const home = await makeUser(relay, 'alice', password);
    const limits = {
      fdLimit: fdLimitOf(relay.pid),
      maxConnections: relay.listening?.['maxConnections'],
      maxPerAddress: relay.listening?.['maxPerAddress'],
    };
    opts.say(`  relay pid ${relay.pid}: ${JSON.stringify(limits)}`);
    opts.say(`  ${HALF_OPEN} half-open connections from one address (127.0.0.2), held 12 s`);
    const asIssue = { holdMs: HALF_OPEN_HOLD_MS, loginAtMs: LOGIN_DURING_AT_MS, reconnect: false };
    const one = await halfOpenRound(relay, home, password, [loopback(2)], asIssue);
    const eleven = Array.from({ length: 11 }, (_, i) => loopback(2 + i));
    opts.say(`  ${HALF_OPEN} half-open connections from 11 addresses (127.0.0.2-12), held 12 s`);
    const many = await halfOpenRound(relay, home, password, eleven, asIssue);
    opts.say(`  the same, re-opening each one the relay closes, for 25 s`);
    const persistent = await halfOpenRound(relay, home, password, eleven, {
      holdMs: PERSISTENT_HOLD_MS,
      loginAtMs: PERSISTENT_LOGIN_AT_MS,
      reconnect: true,
    });
    const [a, b, c] = [one, many, persistent];
    const healthText = (h: HealthSummary) =>
      h.failures === 0
        ? `${h.samples} ok, worst ${h.worstMs} ms, p99 ${h.p99Ms} ms`
        : `${h.failures} of ${h.samples} failed (${h.firstFailure ?? '?'}); worst ${h.worstMs} ms`;
    const stillHurts: string[] = [];
    for (const [name, r] of [
      ['one address', a],
      ['11 addresses', b],
      ['11 addresses, re-opening', c],
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
          `until the 10 s handshake timeout frees them (the last at ${b.closedByRelayLastMs === null ? '?' : fmtMs(b.closedByRelayLastMs)})`,
      );
    if (c.loginDuring.code !== 'OK' || c.healthDuring.failures > 0)
      stillHurts.push(
        `11 addresses re-opening what the relay closes: the relay stays full for the whole ${c.holdMs / 1000} s ` +
          `(/healthz ${healthText(c.healthDuring)}; login at ${PERSISTENT_LOGIN_AT_MS / 1000} s ${c.loginDuring.code}); ` +
          `it recovers ${AFTER_CLOSE_MS / 1000} s after the attacker stops (login ${c.loginAfter.code})`,
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
        {
          figure: `[11 addresses, re-opening for ${c.holdMs / 1000} s] descriptors peak / after; /healthz`,
          before: '-',
          after: `${c.descriptors.peak} / ${c.descriptors.after}; ${healthText(c.healthDuring)} (${c.reopened} re-opened)`,
        },
        {
          figure: `[11 addresses, re-opening] login at ${PERSISTENT_LOGIN_AT_MS / 1000} s / after`,
          before: '-',
          after: `${describeLogin(c.loginDuring)} / ${describeLogin(c.loginAfter)}`,
        },
      ],
      stillHurts,
      data: { limits, oneAddress: one, elevenAddresses: many, persistent },
    };
  });
}

// --- 2. a condemned connection --------------------------------------------------------------------

const FLOOD_FRAMES = 50_000;
/** The hello and sign-up ride in the stream after this many bad frames (past the 10th error). */
const SIGNUP_AFTER_FRAMES = 100;

export async function attackCondemned(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, {}, async (relay) => {
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
          figure: 'connection closed / answers / relay CPU',
          before: 'after ws 30 s close timer',
          after:
            `${closed.code} "${closed.reason}" at ${fmtMs(closeMs)} (frames written in ${fmtMs(sentMs)}); ` +
            `${answers} answers; relay CPU ${round(cpu, 2)} s`,
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

// --- 6. stalled readers ---------------------------------------------------------------------------

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
 * `stalled` controllers attach to the host's session and stop reading; the host streams until the
 * relay has closed every channel with SLOW_PEER; the relay must then cut each reader itself.
 */
async function stallRound(
  relay: RelayChild,
  host: RelayClient,
  token: string,
  stalled: number,
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
    for (let i = 0; i < stalled; i++) {
      const c = await tokenClient(relay, token);
      controllers.push(c);
      await c.request('session.attach', { sessionId: 'stall-host', readOnly: true });
      c.pauseReading();
    }
    const attachDeadline = performance.now() + 10_000;
    while (channels.length < stalled && performance.now() < attachDeadline) await sleep(20);
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
    while (cuts().length < stalled && Date.now() < cutDeadline) await sleep(50);
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

export async function attackStalledReaders(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, { keep: [CUT_MSG, HEARTBEAT_MSG] }, async (relay) => {
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
        rounds.push(await stallRound(relay, host, token, opts.stalled));
        opts.say(`  round ${i + 1}: ${JSON.stringify(rounds.at(-1))}`);
      }
      const [r1, r2] = [rounds[0]!, rounds.at(-1)!];
      const spanText = (s: [number, number] | null) => (s ? `${s[0]}-${s[1]} s` : '-');
      const stillHurts: string[] = [];
      for (const [k, r] of rounds.entries()) {
        if (r.cuts < opts.stalled)
          stillHurts.push(
            `round ${k + 1}: only ${r.cuts} of ${opts.stalled} stalled readers were cut`,
          );
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
        title: `Stalled readers: ${opts.stalled} paused controllers on one host, one request each every 5 s (${STALL_ROUNDS} rounds)`,
        figures: [
          {
            figure: `relay RSS before / peak / ${RSS_AFTER_MS / 1000} s after the cut`,
            before: '193 MB / 435 MB / 435 MB (held)',
            after: `${mib(r1.rssBeforeKiB)} / ${mib(r1.rssPeakKiB)} / ${mib(r1.rssAfterKiB)}`,
          },
          {
            figure: 'SLOW_PEER sent / readers cut (slow_reader), from the start of output',
            before: `${opts.stalled} / 0 (kept alive by any message)`,
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

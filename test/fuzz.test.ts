// Fuzz test: 100,000+ malformed, random and hostile messages against a live `switchboard serve`, which must stay healthy, small and correct.
//
// The corpus (test/fuzz-corpus.ts) is generated from a seed, printed below; replay a failure with
// SWITCHBOARD_FUZZ_SEED=<seed> node scripts/run-tests.mjs fuzz. The larger run is bench/fuzz.ts.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RelayClient } from '../src/client/relay-client.js';
import { HealthPoller, RssSampler, rssKiB, runFuzz, type FuzzReport } from './fuzz-driver.js';
import {
  connectClient,
  httpsGet,
  makeTempDir,
  newDevice,
  removeTempDirs,
  startServeProcess,
  type ServeProcess,
} from './helpers.js';

/** Messages the run must send (no new connection starts past it). */
const FUZZ_MESSAGES = 100_000;
/** Connections fuzzing at once: the relay closes a connection after 10 protocol errors. */
const FUZZ_CONCURRENCY = 12;
/** The run must have sent FUZZ_MESSAGES by then (the whole test stays under a minute). */
const FUZZ_TIME_LIMIT_MS = 55_000; // ms
/** Worst /healthz answer allowed while fuzzing (generous: speed is for bench/fuzz.ts). */
const HEALTHZ_WORST_MS = 5_000; // ms
/** Relay RSS growth allowed over the run, from after setup to the peak. */
const RSS_GROWTH_MIB = 256; // MiB

const SEED = process.env['SWITCHBOARD_FUZZ_SEED']
  ? Number(process.env['SWITCHBOARD_FUZZ_SEED'])
  : randomInt(2 ** 31);
const REPLAY = `replay with SWITCHBOARD_FUZZ_SEED=${SEED}`;

// Recorded rather than thrown so one stray rejection fails the run at the end instead of crashing it.
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => {
  unhandled.push(reason);
});

const clients = new Set<RelayClient>();
let relay: ServeProcess | undefined;

after(async () => {
  for (const c of clients) c.terminate();
  if (relay && relay.child.exitCode === null) {
    relay.child.kill('SIGTERM');
    await relay.exited;
  }
  removeTempDirs();
  assert.deepEqual(unhandled, [], 'unhandled promise rejections during the test');
});

const FUZZ_USER = { user: 'fuzzer', password: 'fuzzer-password-1234' };

describe('fuzzing a live relay', () => {
  let r: ServeProcess;
  let token: string;
  let home: string;

  before(async () => {
    // --log-level warn: errors (an INTERNAL, a crash) still show, per-connection info lines do not.
    r = relay = await startServeProcess(makeTempDir('switchboard-fuzz-relay-'), [
      '--log-level',
      'warn',
    ]);
    home = makeTempDir('switchboard-fuzz-home-');
    const c = await connectClient(r.server, r.fingerprint, home);
    clients.add(c);
    await c.request('auth.signup', FUZZ_USER);
    ({ token } = await c.request('auth.login', { ...FUZZ_USER, device: newDevice('fuzzer') }));
    c.close();
  });

  it(`survives ${FUZZ_MESSAGES} hostile messages, answering each as documented`, async (t) => {
    const pid = r.child.pid!;
    const rss = new RssSampler(pid);
    const health = new HealthPoller(r.port);
    let report: FuzzReport;
    try {
      report = await runFuzz({
        port: r.port,
        seed: SEED,
        messages: FUZZ_MESSAGES,
        concurrency: FUZZ_CONCURRENCY,
        timeLimitMs: FUZZ_TIME_LIMIT_MS,
        user: FUZZ_USER.user,
        token,
      });
    } finally {
      rss.stop();
    }
    const healthz = await health.stop();
    const endKiB = rssKiB(pid);
    const mib = (kib: number | undefined) => (kib === undefined ? NaN : Math.round(kib / 1024));
    const seconds = report.elapsedMs / 1000;
    t.diagnostic(`seed ${SEED} (${REPLAY})`);
    t.diagnostic(
      `sent ${report.sent.messages} messages (${report.sent.text} text, ${report.sent.binary} binary, ` +
        `${report.sent.raw} raw; ${Math.round(report.sent.bytes / 2 ** 20)} MiB) over ${report.scripts} ` +
        `connections in ${seconds.toFixed(1)} s: ${Math.round(report.sent.messages / seconds)} msg/s`,
    );
    t.diagnostic(
      `received ${JSON.stringify(report.received)}; closes ${JSON.stringify(report.closes)}`,
    );
    t.diagnostic(`error codes ${JSON.stringify(report.errorCodes)}`);
    t.diagnostic(`scripts ${JSON.stringify(report.scriptsByKind)}`);
    t.diagnostic(`script ms ${JSON.stringify(report.scriptMsByKind)}`);
    t.diagnostic(`families ${JSON.stringify(report.sentByFamily)}`);
    t.diagnostic(
      `/healthz: ${healthz.samples} polls, worst ${healthz.worstMs} ms, p99 ${healthz.p99Ms} ms, ` +
        `${healthz.failures} failed; relay RSS ${mib(rss.startKiB)} → peak ${mib(rss.peakKiB)} → ` +
        `end ${mib(endKiB)} MiB`,
    );

    for (const example of report.examples) t.diagnostic(`violation: ${example}`);

    assert.equal(r.child.exitCode, null, `the relay exited (${REPLAY})\n${r.output().stderr}`);
    assert.equal(
      report.violations,
      0,
      `${report.violations} violations (${REPLAY}):\n${report.examples.join('\n')}`,
    );
    assert.ok(
      report.sent.messages >= FUZZ_MESSAGES,
      `sent only ${report.sent.messages} messages in ${FUZZ_TIME_LIMIT_MS} ms (${REPLAY})`,
    );
    assert.equal(report.connectFailures, 0, 'every connection opened');
    assert.equal(healthz.failures, 0, `/healthz failed: ${healthz.firstFailure}`);
    assert.ok(healthz.samples > 0, '/healthz was polled');
    assert.ok(healthz.worstMs < HEALTHZ_WORST_MS, `worst /healthz ${healthz.worstMs} ms`);
    assert.ok(rss.startKiB !== undefined && rss.peakKiB !== undefined, 'relay RSS was read');
    assert.ok(
      rss.peakKiB - rss.startKiB < RSS_GROWTH_MIB * 1024,
      `relay RSS grew ${mib(rss.peakKiB - rss.startKiB)} MiB (bound ${RSS_GROWTH_MIB})`,
    );
    // pino level 50 = error, 60 = fatal: an exception reached the relay's top level.
    const errors = r
      .output()
      .stderr.split('\n')
      .filter((line) => /"level":(50|60)/.test(line));
    assert.deepEqual(errors.slice(0, 5), [], `the relay logged ${errors.length} errors`);
  });

  it('still serves a new user afterwards: sign-up, login, whoami, /healthz', async () => {
    const c = await connectClient(r.server, r.fingerprint, makeTempDir('switchboard-fuzz-home-'));
    clients.add(c);
    const alice = { user: 'alice', password: 'alice-correct-horse' };
    await c.request('auth.signup', alice);
    await c.request('auth.login', { ...alice, device: newDevice('alice') });
    const me = await c.request('whoami', {});
    assert.equal(me.user, 'alice');
    c.close();
    assert.equal((await httpsGet(r.port, '/healthz')).status, 200);
  });

  it('stops cleanly on SIGTERM afterwards', async () => {
    r.child.kill('SIGTERM');
    const exit = await r.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, r.output().stderr.slice(-4000));
  });
});

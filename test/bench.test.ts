// `switchboard bench` from the real binary: every workload for a second at 1 and 2 clients over
// TLS and plaintext on its own relay (sane figures, no errors, the documented JSON, a report),
// the same against a relay it is pointed at, and the usage errors.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { BenchResult, BenchRun } from '../src/bench/results.js';
import { metricValue } from '../src/bench/relay-metrics.js';
import { commandLine } from '../src/cli/commands/bench.js';
import { CLI, runCli, startServeProcess } from './helpers.js';
import { Harness } from './terminal-harness.js';

const WORKLOADS = ['login', 'exec', 'echo', 'stream', 'chat', 'pay'];
/** The whole matrix: setup (a relay, an agent per transport, 30 accounts) and 24 phases of ~1.2 s. */
const MATRIX_TIMEOUT_MS = 240_000; // ms

/** Command lines of this machine's processes that contain any of `needles`. */
function processesMatching(...needles: string[]): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (needles.some((n) => cmdline.includes(n))) found.push(cmdline);
  }
  return found;
}

/** Polls `check` until it holds (rejects after `ms`). */
async function waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Every documented key of a result, with the type it must have. */
function checkShape(r: BenchResult): void {
  assert.equal(typeof r.workload, 'string');
  assert.equal(r.system, 'switchboard');
  assert.equal(typeof r.tls, 'boolean');
  for (const key of ['clients', 'ops', 'opsPerSec', 'errors', 'durationS'] as const)
    assert.equal(typeof r[key], 'number', key);
  for (const key of ['p50', 'p95', 'p99', 'max', 'mean'] as const)
    assert.equal(typeof r.latencyMs[key], 'number', `latencyMs.${key}`);
  assert.ok(Array.isArray(r.errorSamples));
  assert.equal(typeof r.generator.saturated, 'boolean');
}

/** What "sane" means for a row that ran. */
function checkSane(r: BenchResult): void {
  const name = `${r.workload} ${r.clients} ${r.tls ? 'TLS' : 'plain'}`;
  assert.equal(r.errors, 0, `${name}: ${r.errorSamples.join('; ')}`);
  assert.ok(r.ops > 0, `${name}: no operations`);
  assert.ok(r.latencyMs.p50 > 0, `${name}: p50 ${r.latencyMs.p50}`);
  assert.ok(r.latencyMs.p95 >= r.latencyMs.p50, `${name}: p95 < p50`);
  assert.ok(r.latencyMs.p99 >= r.latencyMs.p95, `${name}: p99 < p95`);
  assert.ok(r.latencyMs.max >= r.latencyMs.p99, `${name}: max < p99`);
  // Each client runs one operation at a time, back to back: their response times add up to about
  // the clients' time (not past it, and not far below: the clock and the units are right).
  const busyS = (r.ops * r.latencyMs.mean) / 1000;
  const clientS = r.clients * r.durationS;
  assert.ok(
    busyS <= clientS * 1.05 + r.latencyMs.max / 1000 && busyS >= clientS * 0.5,
    `${name}: ${r.ops} ops of ${r.latencyMs.mean} ms in ${r.durationS} s`,
  );
}

describe('switchboard bench', () => {
  const dirs: string[] = [];
  const scratch = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'bench-test-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it(
    'runs every workload at 1 and 2 clients over TLS and plaintext on its own relay',
    { timeout: MATRIX_TIMEOUT_MS + 10_000 },
    async () => {
      const home = scratch();
      const report = join(home, 'report');
      const temp = scratch();
      const r = await runCli(
        ['bench', '--clients', '1,2', '--duration', '1', '--warmup', '0.2', '--json'].concat(
          '--report',
          report,
        ),
        { home, timeoutMs: MATRIX_TIMEOUT_MS, env: { TMPDIR: temp } },
      );
      assert.equal(r.code, 0, r.stderr);
      // Its relay's data, the accounts' homes and keys went with the run.
      assert.deepEqual(readdirSync(temp), [], 'nothing left in the temporary directory');
      const run = JSON.parse(r.stdout) as BenchRun;
      assert.equal(run.relay, 'own');
      assert.match(run.command, /^switchboard bench --clients 1,2 /);
      for (const key of ['cpuModel', 'node', 'switchboard', 'kernel'] as const)
        assert.ok(run.machine[key], `machine.${key}`);
      assert.ok(run.machine.cpus >= 1);
      assert.deepEqual(Object.keys(run.workloads), WORKLOADS);
      // Phases in order: each workload, each client count, TLS first at 1 client and
      // plaintext first at 2 (drift does not always land on the same side).
      const expected = WORKLOADS.flatMap((w) => [
        `${w}/1/true`,
        `${w}/1/false`,
        `${w}/2/false`,
        `${w}/2/true`,
      ]);
      assert.deepEqual(
        run.results.map((x) => `${x.workload}/${x.clients}/${x.tls}`),
        expected,
      );
      for (const x of run.results) {
        checkShape(x);
        checkSane(x);
        assert.ok(x.relay && x.relay.cpuPercent > 0 && x.relay.rssMiB > 10, 'relay readings');
        if (x.workload === 'stream') {
          assert.ok(x.bytes! >= x.ops * 2 ** 20, 'a stream operation moves at least 1 MiB');
          assert.ok(x.mbPerSec! > 0);
        } else assert.equal(x.mbPerSec, undefined, `${x.workload} moves no payload`);
      }
      // Progress went to stderr, one summary per phase (no terminal: no bars).
      assert.equal(r.stderr.match(/ops\/s, p50 /g)?.length, expected.length, r.stderr);
      // The report: its page with a chart per workload and figure, and the raw data.
      assert.deepEqual(readdirSync(report).sort(), ['index.html', 'results.csv', 'results.json']);
      const html = readFileSync(join(report, 'index.html'), 'utf8');
      assert.ok(
        (html.match(/<svg/g)?.length ?? 0) >= WORKLOADS.length * 2,
        'two charts a workload',
      );
      assert.deepEqual(
        (JSON.parse(readFileSync(join(report, 'results.json'), 'utf8')) as BenchRun).results,
        run.results,
      );
      const csv = readFileSync(join(report, 'results.csv'), 'utf8').trim().split('\n');
      assert.equal(csv.length, 1 + run.results.length);
    },
  );

  it('measures a relay it is pointed at, over TLS and its plaintext listener', async () => {
    const h = await new Harness({ plainPort: 0 }).start();
    try {
      const home = scratch();
      const r = await runCli(
        ['bench', '--server', h.server, '--fingerprint', h.relay.certificate.fingerprint].concat(
          ['--plain-server', `plain://127.0.0.1:${h.relay.plainPort}`, '--workloads', 'login,pay'],
          ['--clients', '2', '--duration', '1', '--warmup', '0', '--prefix', 'rb', '--json'],
        ),
        { home, timeoutMs: 120_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const run = JSON.parse(r.stdout) as BenchRun;
      assert.equal(run.relay, `${h.server} plain://127.0.0.1:${h.relay.plainPort}`);
      assert.equal(run.results.length, 4);
      for (const x of run.results) {
        checkShape(x);
        checkSane(x);
        // Read from the relay's /metrics (open to loopback): this test process is the relay.
        assert.ok(x.relay && x.relay.cpuPercent > 0 && x.relay.rssMiB > 10, 'relay readings');
      }
      // Every transfer it counted is settled in the relay's ledger, and its accounts are gone.
      const db = new Database(join(h.dataDir, 'switchboard.db'), { readonly: true });
      const count = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
      const settled = count("SELECT count(*) AS n FROM ledger_entries WHERE kind = 'transfer'");
      const left = count("SELECT count(*) AS n FROM users WHERE name LIKE 'rb-%'");
      db.close();
      const paid = run.results.filter((x) => x.workload === 'pay');
      assert.ok(settled >= paid.reduce((s, x) => s + x.ops, 0), `${settled} transfers settled`);
      assert.equal(left, 0, 'the bench removed the accounts it made');
      // A name that is taken stops the run: it never logs in to someone else's account.
      await h.user('rb2-ops');
      const taken = await runCli(
        ['bench', '--server', h.server, '--fingerprint', h.relay.certificate.fingerprint].concat(
          ['--tls', 'on', '--workloads', 'login', '--clients', '1', '--duration', '0.2'],
          ['--prefix', 'rb2'],
        ),
        { home, timeoutMs: 60_000 },
      );
      assert.equal(taken.code, 3, taken.stderr);
      assert.match(taken.stderr, /rb2-ops already exists on this relay; pass another --prefix/);
    } finally {
      await h.close();
    }
  });

  it('stops at bad options with exit 2, naming the fix', async () => {
    const home = scratch();
    const cases: Array<[string[], RegExp]> = [
      [['--tls', 'maybe'], /--tls takes on, off or on,off, not "maybe"/],
      [['--clients', '0'], /--clients must be a whole number from 1 to 50/],
      [['--clients', '2,x'], /--clients must be a whole number/],
      [['--workloads', 'login,nope'], /no workload named "nope"; choose from login, exec, echo/],
      [['--duration', '0'], /--duration must be a number from 0.1 to 3600/],
      [['--server', '127.0.0.1:1', '--fingerprint', 'AA'], /--tls off needs .*--plain-server/],
      [['--plain-server', '127.0.0.1:1'], /--plain-server needs --server too, or --tls off/],
      [['--server', '127.0.0.1:1', '--tls', 'on'], /no pinned certificate for 127\.0\.0\.1:1/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['bench', ...args], { home });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(existsSync(join(home, 'known_servers.json')), false);
  });

  it('counts failed operations, names them, and exits 1', { timeout: 120_000 }, async () => {
    // No credit at sign-up: every transfer is refused for want of funds.
    const h = await new Harness({ signupCredit: 0 }).start();
    try {
      const home = scratch();
      const r = await runCli(
        ['bench', '--server', h.server, '--fingerprint', h.relay.certificate.fingerprint].concat(
          ['--tls', 'on', '--workloads', 'pay', '--clients', '1', '--duration', '0.5'],
          ['--warmup', '0', '--json'],
        ),
        { home, timeoutMs: 90_000 },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /switchboard bench: \d+ operations failed/);
      const [row] = (JSON.parse(r.stdout) as BenchRun).results;
      assert.equal(row!.ops, 0);
      assert.ok(row!.errors > 1, `${row!.errors} errors`);
      assert.match(row!.errorSamples.join('\n'), /^INSUFFICIENT_FUNDS: /m);
    } finally {
      await h.close();
    }
  });

  it('on a stock relay, stops at its sign-up limit naming serve --signup-rate', async () => {
    const data = scratch();
    const relay = await startServeProcess(data);
    try {
      const r = await runCli(
        ['bench', '--server', relay.server, '--fingerprint', relay.fingerprint].concat([
          '--tls',
          'on',
          '--workloads',
          'chat',
          '--clients',
          '6',
          '--duration',
          '0.2',
        ]),
        { home: scratch(), timeoutMs: 90_000 },
      );
      assert.equal(r.code, 3, r.stderr);
      assert.match(
        r.stderr,
        /stopped the bench's sign-ups after \d+ accounts .*this run makes up to 14 .*`serve --signup-rate 14`, or pass fewer --clients/,
      );
    } finally {
      relay.child.kill('SIGTERM');
      await relay.exited;
    }
  });

  /**
   * Starts `bench --workloads echo` (its relay and an agent per transport), waits for `ready`,
   * sends SIGINT, and checks that it exits 130 having stopped everything and removed its files.
   */
  async function interrupt(
    name: string,
    ready: (stderr: string, prefix: string) => Promise<void>,
  ): Promise<void> {
    // Its own names, so processes left by another run never count.
    const prefix = `${name}${process.pid}`;
    const temp = scratch();
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: temp, SWITCHBOARD_HOME: scratch() };
    const args = ['bench', '--workloads', 'echo', '--clients', '1', '--duration', '60'];
    const child = spawn(process.execPath, [CLI, ...args, '--prefix', prefix], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (s: string) => {
        stderr += s;
        if (stderr.includes('preparing echo (plaintext)')) resolve();
      });
      void exited.then((code) => reject(new Error(`exited (${code}) first: ${stderr}`)));
    });
    await ready(stderr, prefix);
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted; everything it started is stopped/);
    const left = processesMatching(`${prefix}-tls`, `${prefix}-plain`, temp);
    assert.deepEqual(left, [], 'no relay or agent left running');
    assert.deepEqual(readdirSync(temp), [], 'nothing left in the temporary directory');
  }

  it('stops on Ctrl-C with its relay and agents up, leaving nothing', { timeout: 120_000 }, () =>
    interrupt('sigup', (stderr, prefix) =>
      waitUntil(
        () => processesMatching(`${prefix}-tls`, `${prefix}-plain`).length >= 2,
        60_000,
        `two agents: ${stderr}`,
      ),
    ),
  );

  it(
    'stops on Ctrl-C during setup, and an agent starting then stops too',
    { timeout: 120_000 },
    () =>
      // The plaintext agent's account is being made: its agent starts after the stop began.
      interrupt('sigset', async () => undefined),
  );

  it('names its command without the metrics token, and reads the relay from Prometheus text', () => {
    assert.equal(
      commandLine(['--server', 'r:1', '--metrics-token', 's3cret', '--metrics-token=s3cret', '-V']),
      'switchboard bench --server r:1 --metrics-token … --metrics-token=… -V',
    );
    const page =
      '# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total_other 9\n' +
      'process_cpu_seconds_total 12.5\nprocess_resident_memory_bytes{a="b"} 1.5e8\n';
    assert.equal(metricValue(page, 'process_cpu_seconds_total'), 12.5);
    assert.equal(metricValue(page, 'process_resident_memory_bytes'), 1.5e8);
    assert.equal(metricValue(page, 'nodejs_heap'), undefined);
  });
});

// The large fuzz run: a million malformed, random and hostile messages against `switchboard serve`, with /healthz latency and relay memory.
//
// Usage: npm run bench:fuzz -- [--messages N] [--concurrency N] [--seed N] [--time-limit S]
// The relay runs as a child process (`bin/switchboard serve --log-level warn`, default limits)
// on 127.0.0.1 port 0 with a temp data dir; the fuzzer (test/fuzz-corpus.ts, test/fuzz-driver.ts,
// the same as the CI test) runs in this process and a /healthz poller in a worker thread. On a
// small machine the three compete for CPU. Writes nothing but its report to stdout; exits 1 if the
// relay broke a documented rule, crashed or logged an error.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { HealthPoller, RssSampler, rssKiB, runFuzz } from '../test/fuzz-driver.js';
import { connectClient, newDevice, startServeProcess } from '../test/helpers.js';
import { cpuSeconds } from '../src/bench/proc.js';
import { round, table } from '../src/bench/stats.js';
import { intFlag } from './lib/flags.js';

const { values: flags } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    concurrency: { type: 'string', default: '16' },
    seed: { type: 'string' },
    'time-limit': { type: 'string', default: '900' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:fuzz -- [--messages N=1000000] [--concurrency N=16] [--seed N] [--time-limit S=900]\n' +
      'The seed defaults to a random one (printed); the same seed sends the same messages.',
  );
  process.exit(0);
}

const MESSAGES = intFlag('messages', flags.messages, 1, 1e9);
const CONCURRENCY = intFlag('concurrency', flags.concurrency, 1, 200);
const SEED =
  flags.seed === undefined ? randomInt(2 ** 31) : intFlag('seed', flags.seed, 0, 2 ** 32 - 1);
/** No new connection starts after this; each running one then has its answer timeout (15 s). */
const TIME_LIMIT_MS = intFlag('time-limit', flags['time-limit'], 1, 86_400) * 1000; // ms
/** How often a progress line is printed. */
const PROGRESS_EVERY_MS = 15_000; // ms

const mib = (kib: number | undefined) => (kib === undefined ? 'n/a' : `${round(kib / 1024)} MiB`);

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-bench-fuzz-relay-'));
  const home = mkdtempSync(join(tmpdir(), 'switchboard-bench-fuzz-home-'));
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
  };
  console.log(
    `machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}`,
  );
  console.log(
    `fuzzing: ${MESSAGES} messages, ${CONCURRENCY} connections at once, seed ${SEED} ` +
      `(replay: npm run bench:fuzz -- --seed ${SEED} --messages ${MESSAGES} --concurrency ${CONCURRENCY})`,
  );
  const relay = await startServeProcess(dataDir, ['--log-level', 'warn']);
  const pid = relay.child.pid!;
  try {
    const user = { user: 'fuzzer', password: 'fuzzer-password-1234' };
    const c = await connectClient(relay.server, relay.fingerprint, home);
    await c.request('auth.signup', user);
    const { token } = await c.request('auth.login', { ...user, device: newDevice('fuzzer') });
    c.close();

    const cpuBefore = { relay: cpuSeconds(pid), bench: cpuSeconds(process.pid) };
    const rss = new RssSampler(pid);
    const health = new HealthPoller(relay.port);
    const report = await runFuzz({
      port: relay.port,
      seed: SEED,
      messages: MESSAGES,
      concurrency: CONCURRENCY,
      timeLimitMs: TIME_LIMIT_MS,
      user: user.user,
      token,
      progressEveryMs: PROGRESS_EVERY_MS,
      onProgress: (r) =>
        console.log(
          `  … ${r.sent.messages} sent, ${r.scripts} connections, ${r.violations} violations, ` +
            `relay RSS ${mib(rss.sample())}`,
        ),
    });
    rss.stop();
    const healthz = await health.stop();
    const cpu = {
      relay: (cpuSeconds(pid) ?? NaN) - (cpuBefore.relay ?? NaN),
      bench: (cpuSeconds(process.pid) ?? NaN) - (cpuBefore.bench ?? NaN),
    };
    const endKiB = rssKiB(pid);

    // Afterwards, a new user must still get in.
    const after = await connectClient(relay.server, relay.fingerprint, home);
    const alice = { user: 'alice', password: 'alice-correct-horse' };
    await after.request('auth.signup', alice);
    await after.request('auth.login', { ...alice, device: newDevice('alice') });
    const whoami = (await after.request('whoami', {})).user;
    after.close();

    const seconds = report.elapsedMs / 1000;
    const relayErrors = relay
      .output()
      .stderr.split('\n')
      .filter((line) => /"level":(50|60)/.test(line));
    const warnLines = relay
      .output()
      .stderr.split('\n')
      .filter((line) => /"level":40/.test(line)).length;
    console.log('');
    console.log(
      table(
        ['messages', 'text', 'binary', 'raw', 'MiB', 'connections', 'seconds', 'msg/s'],
        [
          [
            report.sent.messages,
            report.sent.text,
            report.sent.binary,
            report.sent.raw,
            round(report.sent.bytes / 2 ** 20),
            report.scripts,
            round(seconds, 1),
            Math.round(report.sent.messages / seconds),
          ],
        ],
      ),
    );
    console.log('');
    console.log(
      table(
        ['replies', 'errors', 'errors w/o id', 'events', 'binary in', 'unanswered at close'],
        [
          [
            report.received.replies,
            report.received.errors,
            report.received.errorsWithoutId,
            report.received.events,
            report.received.binaryFrames,
            report.unansweredAtClose,
          ],
        ],
      ),
    );
    const sortedEntries = (o: Record<string, number>) =>
      Object.entries(o).sort((a, b) => b[1] - a[1]);
    console.log(
      `\ncloses by code: ${sortedEntries(report.closes)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}`,
    );
    console.log(
      `error codes: ${sortedEntries(report.errorCodes)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `connections by script: ${sortedEntries(report.scriptsByKind)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `messages by family: ${sortedEntries(report.sentByFamily)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log('');
    console.log(
      table(
        [
          '/healthz polls',
          'failed',
          'worst ms',
          'p99 ms',
          'relay RSS start',
          'peak',
          'end',
          'relay CPU s',
          'fuzzer CPU s',
        ],
        [
          [
            healthz.samples,
            healthz.failures,
            healthz.worstMs,
            healthz.p99Ms,
            mib(rss.startKiB),
            mib(rss.peakKiB),
            mib(endKiB),
            round(cpu.relay, 1),
            round(cpu.bench, 1),
          ],
        ],
      ),
    );
    console.log(
      `\nafterwards: a new user signed up, logged in, whoami = ${whoami}; relay log: ` +
        `${relayErrors.length} error lines, ${warnLines} warn lines`,
    );
    console.log(
      `violations: ${report.violations}${report.violations ? ` (${report.connectFailures} failed connects)` : ''}`,
    );
    for (const example of report.examples) console.log(`  ${example}`);
    for (const line of relayErrors.slice(0, 5)) console.log(`  relay: ${line.slice(0, 300)}`);
    console.log(
      '\n' +
        JSON.stringify({
          bench: 'fuzz',
          date: new Date().toISOString(),
          machine,
          seed: SEED,
          concurrency: CONCURRENCY,
          report,
          healthz,
          relayRssKiB: { start: rss.startKiB, peak: rss.peakKiB, end: endKiB },
          cpuSeconds: { relay: round(cpu.relay, 1), fuzzer: round(cpu.bench, 1) },
          relayErrorLines: relayErrors.length,
        }),
    );
    return report.violations === 0 && relayErrors.length === 0 && healthz.failures === 0 ? 0 : 1;
  } finally {
    relay.child.kill('SIGTERM');
    const timer = setTimeout(() => relay.child.kill('SIGKILL'), 15_000);
    const { code } = await relay.exited;
    clearTimeout(timer);
    if (code !== 0) console.log(`note: the relay exited with ${code} after SIGTERM`);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

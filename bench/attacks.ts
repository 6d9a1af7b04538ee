// Replays each attack of issue 6 at the issue's scale against `switchboard serve`, and prints what it does now.
//
// Usage: npm run bench:attacks -- [--only N[,N...]] [--json] [--guess-seconds S=60]
//                                 [--flood-seconds S=30] [--stalled N=30] [--fd-limit N=1024]
// Every attack gets a fresh relay: `bin/switchboard serve --host 127.0.0.1 --port 0 --log-level
// info` with a temp data dir and default limits, started under `ulimit -n 1024` (as the issue
// measured it). Attackers and users run in this process or as CLI children on the same machine,
// on loopback only; the relay tells clients apart by their source address, so attackers bind
// 127.0.0.N (N ≥ 2) and the real user keeps 127.0.0.1. Every loop is bounded in count and time;
// the whole run takes about 4 minutes. Progress goes to stderr; stdout carries the report (one
// Markdown table per attack) and, with --json, one JSON document as its last line. Exits 1 if an
// attack could not run; what still hurts is reported, not an exit status.
import { cpus, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { MAX_CHANNELS_PER_CONNECTION } from '../src/protocol/limits.js';
import { removeTempDirs } from '../test/helpers.js';
import { markdownTable, type AttackOptions, type AttackResult } from './lib/attack-common.js';
import { attackGuessing, attackSignupFlood, attackSquatting } from './lib/attacks-accounts.js';
import { attackCondemned, attackHalfOpen, attackStalledReaders } from './lib/attacks-relay.js';
import { round } from '../src/bench/stats.js';
import { intFlag } from './lib/flags.js';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    'guess-seconds': { type: 'string', default: '60' },
    'flood-seconds': { type: 'string', default: '30' },
    stalled: { type: 'string', default: '30' },
    'fd-limit': { type: 'string', default: '1024' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:attacks -- [--only N[,N...]] [--json] [--guess-seconds S=60] [--flood-seconds S=30]\n' +
      '                         [--stalled N=30] [--fd-limit N=1024]\n' +
      'Attacks: 1 half-open TLS, 2 condemned connection, 3 sign-up flood, 4 guessing from many\n' +
      'addresses, 5 session squatting, 6 stalled readers.',
  );
  process.exit(0);
}

const ONLY = flags.only?.split(',').map((s) => intFlag('only', s.trim(), 1, 6));
const options: AttackOptions = Object.freeze({
  fdLimit: intFlag('fd-limit', flags['fd-limit'], 256, 1_048_576),
  guessMs: intFlag('guess-seconds', flags['guess-seconds'], 5, 600) * 1000,
  floodMs: intFlag('flood-seconds', flags['flood-seconds'], 5, 600) * 1000,
  // All attach to one host connection: at most MAX_CHANNELS_PER_CONNECTION of them.
  stalled: intFlag('stalled', flags.stalled, 1, MAX_CHANNELS_PER_CONNECTION),
  say: (line: string) => void process.stderr.write(`${line}\n`),
});

const ATTACKS: Array<{
  n: number;
  name: string;
  run: (o: AttackOptions) => Promise<AttackResult>;
}> = [
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
    relayFdLimit: options.fdLimit,
  };
  options.say(
    `machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}; ` +
      `relay under ulimit -n ${options.fdLimit}`,
  );
  const results: AttackResult[] = [];
  const failures: Array<{ n: number; error: string }> = [];
  const started = performance.now();
  for (const attack of ATTACKS) {
    if (ONLY && !ONLY.includes(attack.n)) continue;
    options.say(`\n[${attack.n}] ${attack.name}`);
    const t0 = performance.now();
    try {
      results.push(await attack.run(options));
      options.say(`  done in ${round((performance.now() - t0) / 1000)} s`);
    } catch (err) {
      failures.push({ n: attack.n, error: (err as Error).stack ?? String(err) });
      options.say(`  FAILED: ${(err as Error).stack ?? String(err)}`);
    }
  }
  const totalSec = round((performance.now() - started) / 1000);
  removeTempDirs();
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
        ? '\nholds: nothing above still hurts'
        : `\nstill hurts:\n${r.stillHurts.map((s) => `  - ${s}`).join('\n')}`,
    );
  }
  for (const f of failures) console.log(`\n${f.n}. could not run: ${f.error.split('\n')[0]}`);
  console.log(
    `\n${machine.cpus} cores (${machine.cpuModel}), node ${machine.node}, relay ulimit -n ${options.fdLimit}; total ${totalSec} s`,
  );
  if (flags.json) {
    const { say: _say, ...settings } = options;
    console.log(
      JSON.stringify({
        bench: 'attacks',
        date: new Date().toISOString(),
        machine,
        settings,
        totalSec,
        results,
        failures,
      }),
    );
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

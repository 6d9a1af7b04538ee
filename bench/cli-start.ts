// CLI start-up: how long `switchboard` takes to print its version and two helps, next to `node -e 0`.
//
//   npm run bench:cli-start -- [--before DIR] [--rounds N]
//
// DIR is another checkout (built) to compare with, e.g. `git worktree add /tmp/old REV && (cd
// /tmp/old && npm ci)`. Rounds are interleaved (every command once per round) and the median of
// each is printed, then one JSON line.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../test/helpers.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const rounds = Math.min(100, Math.max(1, Number(flag('rounds') ?? 15)));
const before = flag('before');

const trees: Array<[string, string]> = [['after', ROOT]];
if (before) trees.unshift(['before', before]);
const commands: Array<[string, string[]]> = [];
for (const [label, dir] of trees) {
  const bin = join(dir, 'bin', 'switchboard');
  for (const argv of [['--version'], ['ping', '--help'], ['attach', '--help']])
    commands.push([`${label}: switchboard ${argv.join(' ')}`, [bin, ...argv]]);
}
commands.push(['node -e 0', ['-e', '0']]);

const times = new Map<string, number[]>(commands.map(([name]) => [name, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, argv] of commands) {
    const started = process.hrtime.bigint();
    const run = spawnSync(process.execPath, argv, { stdio: 'ignore' });
    if (run.status !== 0) throw new Error(`${name} exited ${run.status}`);
    times.get(name)!.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const result: Record<string, number> = {};
for (const [name, xs] of times) {
  result[name] = Math.round(median(xs));
  console.log(`${String(result[name]).padStart(6)} ms  ${name}`);
}
console.log(JSON.stringify({ rounds, medianMs: result }));

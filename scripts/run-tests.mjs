// Runs every compiled test file (dist/**/*.test.js) with node's test runner.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const filter = process.argv.slice(2);
const files = find('dist')
  .filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/; run `npm run build` first');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  [
    '--import',
    fileURLToPath(new globalThis.URL('./report-leaks.mjs', import.meta.url)),
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    ...files,
  ],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);

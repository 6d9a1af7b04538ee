// The README's exit-code table and exitCodeFor say the same thing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { exitCodeFor } from './exit-codes.js';

describe('exit codes', () => {
  it('maps every error code the README lists to the exit code of its row, and lists every mapped one', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const listed = new Map<string, number>();
    for (const line of readme.split('\n')) {
      const row = /^\| (\d+)\s+\| `[A-Z]+`\s+\| (.*)\|$/.exec(line);
      if (!row || !['3', '4', '5'].includes(row[1]!)) continue;
      for (const m of row[2]!.matchAll(/`([A-Z_]+)`/g)) listed.set(m[1]!, Number(row[1]));
    }
    for (const code of Object.values(ErrorCode)) {
      const exit = exitCodeFor(new SwitchboardError(code, 'x'));
      if (exit === 1) assert.equal(listed.get(code), undefined, `${code} is listed but exits 1`);
      else
        assert.equal(
          listed.get(code),
          exit,
          `${code} exits ${exit}: the README's row says otherwise`,
        );
    }
  });
});

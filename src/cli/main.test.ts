// The lazy command table: every entry loads its command, with the same name and summary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMANDS } from './main.js';

describe('the command table', () => {
  it('loads each command under its own name, with the summary the top help shows', async () => {
    const names = new Set<string>();
    for (const lazy of COMMANDS) {
      const cmd = await lazy.load();
      assert.equal(cmd.name, lazy.name);
      assert.equal(cmd.summary, lazy.summary, `summary of ${lazy.name}`);
      names.add(cmd.name);
    }
    assert.equal(names.size, COMMANDS.length, 'a command is listed twice');
  });
});

// The PTY edge: what is written reaches the program whole and in order, even past a full PTY.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnPty } from './pty.js';

describe('spawnPty', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-pty-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('delivers every byte in order when writes outrun the program (the PTY fills up)', async () => {
    const total = 400_000; // bytes: about 30 times what a PTY holds before EAGAIN
    const out = join(dir, 'out');
    const pty = spawnPty({
      file: '/bin/sh',
      // Raw mode: no line editing, no echo; the program reads slower than we write. Nothing is
      // written before it says it is in raw mode: a cooked line discipline drops what overflows
      // its 4 KiB line, and the test then waited forever (seen under load in CI).
      args: ['-c', `stty raw -echo; echo RAW; sleep 0.2; exec head -c ${total} > ${out}`],
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'xterm' },
      cols: 80,
      rows: 24,
    });
    const exited = new Promise<number>((resolve) => pty.onExit((e) => resolve(e.exitCode)));
    let shown = '';
    await new Promise<void>((resolve) =>
      pty.onData((d) => {
        shown += d.toString('latin1');
        if (shown.includes('RAW')) resolve();
      }),
    );
    const expected = Buffer.alloc(total);
    for (let i = 0; i < total; i++) expected[i] = 33 + ((i * 7) % 90);
    // Mixed sizes: single keystrokes and pastes, all written at once.
    for (let at = 0, n = 1; at < total; at += n, n = (n * 13 + 5) % 9000 || 1)
      pty.write(expected.subarray(at, Math.min(total, at + n)));
    assert.equal(await exited, 0);
    const got = readFileSync(out);
    assert.equal(got.length, total);
    assert.ok(got.equals(expected), 'bytes arrived out of order or changed');
  });
});

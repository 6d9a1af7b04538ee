// TerminalStream over a real PTY: a controller gets the exit only after all the output, and the wait for it is an event.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { OUTPUT_WINDOW_BYTES, type TerminalMessage } from '../protocol/terminal.js';
import { spawnPty } from './pty.js';
import { Attachment, TerminalStream } from './terminal-stream.js';

/** Bytes the test program prints: three output windows, under the replay buffer. */
const BYTES = 3_000_000;

function program(command: string) {
  return spawnPty({
    file: '/bin/sh',
    args: ['-c', command],
    cwd: tmpdir(),
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    cols: 80,
    rows: 24,
  });
}

describe('TerminalStream', () => {
  it('sends the exit to a controller only once it has all the output, and says when', async () => {
    const stream = new TerminalStream({
      pty: program(`head -c ${BYTES} /dev/zero | tr '\\0' x; exit 5`),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      const att = new Attachment('bob', 'key', false);
      const got: TerminalMessage[] = [];
      stream.connect(att, { send: (m) => got.push(m) });
      await new Promise((resolve) => stream.once('exit', resolve));
      // What the PTY gave before its exit is all there will be (node-pty reports the exit once its
      // read side has closed). Under load the kernel may drop the last bytes of a program that
      // exits at once, so the count is the stream's, not BYTES.
      const end = stream.end;
      assert.ok(end > OUTPUT_WINDOW_BYTES, `only ${end} bytes of output`);
      // The controller acknowledged nothing, so it is a window behind: no exit for it yet.
      assert.equal(stream.exitDelivered, false);
      assert.equal(
        got.some((m) => m.type === 'exit'),
        false,
      );
      assert.equal(await stream.whenExitDelivered(1), false, 'bounded: gives up after the timeout');

      const delivered = stream.whenExitDelivered(10_000);
      const sentTo = new Promise((resolve) => stream.once('exitSent', resolve));
      for (let i = 0; i < 100 && !got.some((m) => m.type === 'exit'); i++)
        stream.ack(att, att.sent);
      assert.equal(await delivered, true);
      assert.equal(await sentTo, att);
      assert.deepEqual(got.at(-1), { type: 'exit', code: 5 });
      const output = got.flatMap((m) => (m.type === 'output' ? [m.data.length] : []));
      assert.equal(
        output.reduce((a, b) => a + b, 0),
        end,
        'all the output came before the exit',
      );
      assert.equal(stream.end, end, 'no output after the exit');
    } finally {
      stream.close();
    }
  });

  it('counts a controller that disconnected as not waiting for the exit', async () => {
    const stream = new TerminalStream({
      pty: program(`head -c ${BYTES} /dev/zero | tr '\\0' x; exit 0`),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      const att = new Attachment('bob', 'key', false);
      stream.connect(att, { send: () => undefined });
      await new Promise((resolve) => stream.once('exit', resolve));
      const delivered = stream.whenExitDelivered(10_000);
      stream.disconnect(att, 0);
      assert.equal(await delivered, true);
    } finally {
      stream.close();
    }
  });
});

// TerminalStream over a real PTY: a controller gets the exit only after all the output, and the wait for it is an event.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  MAX_CHUNK_BYTES,
  OUTPUT_COALESCE_MS,
  OUTPUT_WINDOW_BYTES,
  type TerminalMessage,
} from '../protocol/terminal.js';
import { spawnPty } from './pty.js';
import { SCREEN_BACKLOG_BYTES, terminateScreenWorker } from './screen.js';
import { Attachment, REPAINT_MIN_INTERVAL_MS, TerminalStream } from './terminal-stream.js';

/** Bytes the test program prints: three output windows, under the replay buffer. */
const BYTES = 3_000_000;
/** Runs of the lossless-exit check: the loss showed in most runs, so 10 clean ones show it gone. */
const RUNS = 10;

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
      // The Pty reports the exit after its last output, and all of it: every byte the program printed.
      const end = stream.end;
      assert.equal(end, BYTES, 'every byte before the exit');
      assert.ok(end > OUTPUT_WINDOW_BYTES, 'more than a window, so the controller falls behind');
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

  it('delivers every byte of a program that prints 3 MB and exits at once, in each of 10 runs', async () => {
    // The last few KB sat in the PTY when libuv took the hangup for the end (see pty.ts drain).
    for (let run = 0; run < RUNS; run++) {
      const stream = new TerminalStream({
        pty: program(`head -c ${BYTES} /dev/zero | tr '\\0' x; exit 0`),
        cols: 80,
        rows: 24,
        lossless: false,
      });
      try {
        const chunks: Buffer[] = [];
        stream.on('output', (data: Buffer) => chunks.push(data));
        await new Promise((resolve) => stream.once('exit', resolve));
        const output = Buffer.concat(chunks);
        assert.equal(output.length, BYTES, `run ${run}: ${BYTES - output.length} bytes lost`);
        assert.ok(
          output.every((b) => b === 0x78),
          `run ${run}: output is not all 'x'`,
        );
        assert.equal(stream.end, BYTES);
      } finally {
        stream.close();
      }
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

  it('sends a burst in records larger than one PTY read, and output after a pause at once', async () => {
    // A PTY read returns at most 4 KiB (the line discipline's buffer), so without coalescing every
    // record is at most that. The program prints a burst, then echoes what it is sent.
    const stream = new TerminalStream({
      pty: program(`stty raw -echo; head -c 300000 /dev/zero | tr '\\0' x; echo READY; exec cat`),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      const att = new Attachment('bob', 'key', false);
      const sizes: number[] = [];
      let sent = '';
      let readySent: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => (readySent = resolve));
      stream.connect(att, {
        send: (m) => {
          if (m.type !== 'output') return;
          sizes.push(m.data.length);
          sent += Buffer.from(m.data).toString('latin1');
          if (sent.includes('READY')) readySent();
          // Acknowledged as a controller would, after the record (never inside the host's send).
          queueMicrotask(() => stream.ack(att, att.sent));
        },
      });
      await ready;
      assert.ok(
        Math.max(...sizes) > 4096,
        `largest record ${Math.max(...sizes)} B: the burst was not coalesced`,
      );
      assert.ok(Math.max(...sizes) <= MAX_CHUNK_BYTES);
      // The user types after a pause (the pause is the scenario, not a synchronisation): the echo
      // must reach the controller in the turn it is read, not after a coalescing timer.
      await delay(OUTPUT_COALESCE_MS * 10);
      const echoed = new Promise<boolean>((resolve) =>
        stream.on('output', (data: Buffer) => {
          if (!data.includes('k')) return;
          // Read from the PTY just now; checked once this read is handled, before any timer runs.
          queueMicrotask(() => resolve(sent.endsWith('k')));
        }),
      );
      stream.input(att, 0, Buffer.from('k'));
      assert.equal(await echoed, true, 'the echo after a pause was held back');
    } finally {
      stream.close();
    }
  });

  it("keeps the emulator's backlog bounded by pausing the program, and repaints from all of it", async () => {
    // seq prints short lines far faster than the emulator parses them (a line feed and a scroll each).
    const lines = 3_000_000;
    const stream = new TerminalStream({
      pty: program(`seq 1 ${lines}; exec sleep 60`),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      let most = 0;
      let total = 0;
      const expected = Array.from({ length: lines }, (_, i) => `${i + 1}\r\n`).join('').length;
      await new Promise<void>((resolve) =>
        stream.on('output', (data: Buffer) => {
          most = Math.max(most, stream.screenBacklog);
          total += data.length;
          if (total >= expected) resolve();
        }),
      );
      // Reads already under way when the PTY is paused still arrive: a few, not a megabyte.
      assert.ok(
        most <= SCREEN_BACKLOG_BYTES + 128 * 1024,
        `the emulator fell ${most} bytes behind (bound ${SCREEN_BACKLOG_BYTES})`,
      );
      // A joiner now is repainted from the emulator, which has parsed every byte.
      const att = new Attachment('bob', 'key', true);
      const snapshot = new Promise<TerminalMessage>((resolve) =>
        stream.connect(att, { send: (m) => m.type === 'snapshot' && resolve(m) }),
      );
      const snap = await snapshot;
      assert.equal(snap.type === 'snapshot' && snap.offset, stream.end);
      const text = snap.type === 'snapshot' ? Buffer.from(snap.data).toString() : '';
      assert.match(text, new RegExp(`${lines}\\s*$`), 'the last line is on the repainted screen');
    } finally {
      stream.close();
    }
  });

  it('repaints from the replay buffer when the emulator is gone', async () => {
    const stream = new TerminalStream({
      pty: program(`echo before-the-crash; exec sleep 60`),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      await new Promise<void>((resolve) =>
        stream.on('output', (data: Buffer) => data.includes('crash') && resolve()),
      );
      await terminateScreenWorker();
      const att = new Attachment('bob', 'key', true);
      const got: TerminalMessage[] = [];
      const output = new Promise<void>((resolve) =>
        stream.connect(att, {
          send: (m) => {
            got.push(m);
            if (m.type === 'output') resolve();
          },
        }),
      );
      await output;
      assert.equal(got[0]?.type, 'snapshot', 'a (blank) repaint first');
      assert.equal(got[0]?.type === 'snapshot' && got[0].offset, 0, 'from the start of the buffer');
      const text = got.flatMap((m) => (m.type === 'output' ? [Buffer.from(m.data)] : []));
      assert.match(Buffer.concat(text).toString(), /before-the-crash/);
    } finally {
      stream.close();
    }
  });

  it("fits the PTY to the smallest of the host's and the connected read-write controllers' sizes", () => {
    const stream = new TerminalStream({
      pty: program('exec sleep 60'),
      cols: 100,
      rows: 30,
      lossless: false,
    });
    try {
      stream.setHostSize(100, 30);
      const sink = { send: () => undefined };
      const small = new Attachment('bob', 'key', false);
      stream.setControllerSize(small, 80, 20);
      assert.deepEqual([stream.cols, stream.rows], [100, 30], 'not before it is connected');
      stream.connect(small, sink);
      assert.deepEqual([stream.cols, stream.rows], [80, 20], 'a smaller joiner shrinks it');
      const viewer = new Attachment('carol', 'key', true);
      stream.setControllerSize(viewer, 40, 10);
      stream.connect(viewer, sink);
      assert.deepEqual([stream.cols, stream.rows], [80, 20], 'a viewer does not count');
      stream.disconnect(small, 0);
      assert.deepEqual([stream.cols, stream.rows], [100, 30], 'back to the host once it left');
    } finally {
      stream.close();
    }
  });

  it('sends at most one asked-for repaint a second per attachment (REPAINT_MIN_INTERVAL_MS)', async () => {
    const stream = new TerminalStream({
      pty: program('exec cat'),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    try {
      const att = new Attachment('bob', 'key', false);
      const got: TerminalMessage[] = [];
      let wake = () => {};
      stream.connect(att, {
        send: (m) => {
          got.push(m);
          wake();
        },
      });
      const until = (done: () => boolean) =>
        new Promise<void>((resolve) => {
          wake = () => done() && resolve();
          wake();
        });
      const snapshots = () => got.filter((m) => m.type === 'snapshot').length;
      await until(() => snapshots() === 1); // the repaint every new attachment starts with
      stream.repaint(att, 10_000);
      await until(() => snapshots() === 2);
      stream.repaint(att, 10_000 + REPAINT_MIN_INTERVAL_MS - 1); // too soon: ignored
      // A repaint holds the output back until it is sent: the marker's echo comes after it.
      stream.input(att, 0, Buffer.from('marker\n'));
      await until(() =>
        got.some((m) => m.type === 'output' && Buffer.from(m.data).toString().includes('marker')),
      );
      assert.equal(snapshots(), 2);
      stream.repaint(att, 10_000 + REPAINT_MIN_INTERVAL_MS);
      await until(() => snapshots() === 3);
    } finally {
      stream.close();
    }
  });
});

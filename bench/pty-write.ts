// Keystrokes into a PTY: node-pty's own writer (each write goes through the libuv thread pool)
// against spawnPty's direct non-blocking write, on `cat` in raw mode, interleaved rounds.
//
//   npm run bench:pty-write
import { createRequire } from 'node:module';
import { spawnPty } from '../src/host/pty.js';

interface NodePtyLike {
  write(data: Buffer): void;
  onData(listener: (data: Buffer | string) => void): void;
  kill(signal?: string): void;
}
const require = createRequire(import.meta.url);
const nodePty = require('node-pty') as {
  spawn(file: string, args: string[], options: object): NodePtyLike;
};

const KEYS = 2_000;
const ROUNDS = 3;
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'xterm' };

/** CPU µs per keystroke (write + reading its echo), after the shell's `stty` is done. */
async function keystrokes(
  write: (b: Buffer) => void,
  onData: (f: (d: Buffer | string) => void) => void,
): Promise<number> {
  let got = 0;
  let ready!: () => void;
  let done!: () => void;
  const first = new Promise<void>((r) => (ready = r));
  const finished = new Promise<void>((r) => (done = r));
  onData((d) => {
    got += d.length;
    if (got >= 5) ready(); // the "ready" marker echoed back
    if (got >= 5 + KEYS) done();
  });
  write(Buffer.from('ready'));
  await first;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < KEYS; i++) {
    write(Buffer.from('x'));
    await new Promise<void>((r) => setImmediate(r));
  }
  await finished;
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / KEYS;
}

const results: Record<string, number[]> = { 'node-pty write': [], 'direct write': [] };
for (let r = 0; r < ROUNDS; r++) {
  const a = nodePty.spawn('/bin/sh', ['-c', 'stty raw; exec cat'], {
    cols: 80,
    rows: 24,
    encoding: null,
    env,
  });
  results['node-pty write']!.push(
    await keystrokes(
      (b) => a.write(b),
      (f) => a.onData(f),
    ),
  );
  a.kill('SIGKILL');
  const b = spawnPty({
    file: '/bin/sh',
    args: ['-c', 'stty raw; exec cat'],
    cwd: '/',
    env,
    cols: 80,
    rows: 24,
  });
  results['direct write']!.push(
    await keystrokes(
      (x) => b.write(x),
      (f) => b.onData(f),
    ),
  );
  b.kill('SIGKILL');
}
for (const [name, xs] of Object.entries(results))
  console.log(`${name.padEnd(15)} ${xs.map((x) => x.toFixed(1)).join(' / ')} µs CPU per keystroke`);
console.log(JSON.stringify({ keys: KEYS, cpuUsPerKey: results }));
process.exit(0);

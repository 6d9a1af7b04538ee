// The three measurements, run the same way over any RemoteTerminal: attach time, echo, bulk output.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Payload } from './payload.js';
import { settlesWithin, type RemoteTerminal } from './remote-terminal.js';

/** A shell prompt (dash: "# " for root, "$ " otherwise) at the end of the output so far. */
export const PROMPT_RE = /[#$] $/;
/** Wait for a remote shell to end after `exit` or ^C before it is closed by force. */
const END_TIMEOUT_MS = 5_000; // ms
/** Ends a marker string; typed as `$((6*7))`, so the echoed command line never matches it. */
const MARK = '42';
const MARK_TYPED = '$((6*7))';

export interface AttachSample {
  /** Start → first prompt on the screen. */
  promptMs: number;
  /** Start → end-to-end session established, when the client reports it. */
  attachedMs?: number;
}

/**
 * Opens, waits for the first prompt, types `exit`, waits for the end; `warmup` runs are not kept.
 * `open` must start the client and return at once, so the timing includes all of its start-up.
 */
export async function measureAttach(
  open: () => RemoteTerminal & { attachedAt?: Promise<number> },
  options: { runs: number; warmup: number; timeoutMs: number },
): Promise<AttachSample[]> {
  const samples: AttachSample[] = [];
  for (let i = 0; i < options.warmup + options.runs; i++) {
    const t0 = performance.now();
    const term = open();
    try {
      const at = await term.output.waitFor(PROMPT_RE, options.timeoutMs, 'first prompt');
      const attachedAt = term.attachedAt ? await term.attachedAt : undefined;
      if (i >= options.warmup)
        samples.push({
          promptMs: at - t0,
          ...(attachedAt === undefined ? {} : { attachedMs: attachedAt - t0 }),
        });
      term.write('exit\r');
      await settlesWithin(term.ended, END_TIMEOUT_MS);
    } finally {
      await term.close();
    }
  }
  return samples;
}

/**
 * Keystroke → echo round trips through a remote `cat` (non-canonical, no tty echo: the program
 * itself echoes, as an editor or readline would). One keystroke in flight at a time, `gapMs` apart.
 */
export async function measureEcho(
  term: RemoteTerminal,
  options: { keystrokes: number; warmup: number; gapMs: number; timeoutMs: number },
): Promise<number[]> {
  const { output } = term;
  await output.waitFor(PROMPT_RE, options.timeoutMs, 'first prompt');
  output.clear();
  term.write(`stty -icanon -echo; echo EC_${MARK_TYPED}; exec cat\r`);
  await output.waitFor(`EC_${MARK}`, options.timeoutMs, 'the echo test to start');
  const samples: number[] = [];
  for (let i = 0; i < options.warmup + options.keystrokes; i++) {
    await sleep(options.gapMs);
    const key = String.fromCharCode(97 + (i % 26)); // a..z
    output.clear();
    const t0 = performance.now();
    term.write(key);
    const at = await output.waitFor(key, options.timeoutMs, `the echo of keystroke ${i + 1}`);
    if (i >= options.warmup) samples.push(at - t0);
  }
  term.write('\x03'); // ^C ends cat, which is the shell
  await settlesWithin(term.ended, END_TIMEOUT_MS);
  return samples;
}

export interface ThroughputResult {
  /** File bytes per second, MiB/s (1 MiB = 2^20 bytes), from Enter to the end marker. */
  mibPerSec: number;
  seconds: number;
  /** Enter → start marker: command start-up before the first file byte. */
  startMs: number;
  /** Bytes between the markers as received (with the PTY's \r\n). */
  receivedBytes: number;
  /** The body had exactly the PTY form's size and SHA-256: nothing lost, added or changed. */
  verified: boolean;
}

/** `cat` of the payload on the remote shell, timed from Enter until its end marker arrives. */
export async function measureThroughput(
  term: RemoteTerminal,
  payload: Payload,
  options: { timeoutMs: number },
): Promise<ThroughputResult> {
  const { output } = term;
  await output.waitFor(PROMPT_RE, options.timeoutMs, 'first prompt');
  output.clear();
  term.write(`stty -echo; PS1=''; echo TP_${MARK_TYPED}\r`);
  await output.waitFor(`TP_${MARK}`, options.timeoutMs, 'the throughput test to start');

  const begin = Buffer.from(`SB_BEGIN_${MARK}\r\n`);
  const end = Buffer.from(`SB_END_${MARK}`);
  const hash = createHash('sha256');
  let state: 'before' | 'body' = 'before';
  let before = Buffer.alloc(0);
  let held = Buffer.alloc(0); // body bytes that might be the start of the end marker
  let received = 0;
  let startAt = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve) => {
    const body = (data: Buffer, at: number) => {
      const all = held.length > 0 ? Buffer.concat([held, data]) : data;
      const i = all.indexOf(end);
      if (i >= 0) {
        hash.update(all.subarray(0, i));
        received += i;
        output.tap(undefined);
        resolve(at);
        return;
      }
      const keep = Math.min(all.length, end.length - 1);
      hash.update(all.subarray(0, all.length - keep));
      received += all.length - keep;
      held = Buffer.from(all.subarray(all.length - keep));
    };
    output.tap((chunk, at) => {
      if (state === 'body') return body(chunk, at);
      before = Buffer.concat([before, chunk]);
      const i = before.indexOf(begin);
      if (i < 0) return;
      state = 'body';
      startAt = at;
      const rest = before.subarray(i + begin.length);
      before = Buffer.alloc(0);
      body(rest, at);
    });
  });
  t0 = performance.now();
  term.write(`echo SB_BEGIN_${MARK_TYPED}; cat '${payload.path}'; echo SB_END_${MARK_TYPED}\r`);
  let timer: NodeJS.Timeout | undefined;
  const finishedAt = await Promise.race([
    done,
    term.ended.then(() => Promise.reject(new Error('the terminal ended during the cat'))),
    new Promise<never>(
      (_, reject) =>
        (timer = setTimeout(
          () =>
            reject(
              new Error(
                `the cat did not finish within ${options.timeoutMs} ms ` +
                  `(${received} of ${payload.ptyBytes} bytes arrived)`,
              ),
            ),
          options.timeoutMs,
        )),
    ),
  ]).finally(() => {
    clearTimeout(timer);
    output.tap(undefined);
  });
  const seconds = (finishedAt - t0) / 1000;
  const verified = received === payload.ptyBytes && hash.digest('hex') === payload.ptySha256;
  term.write('exit\r');
  await settlesWithin(term.ended, END_TIMEOUT_MS);
  return {
    mibPerSec: payload.bytes / 2 ** 20 / seconds,
    seconds,
    startMs: startAt - t0,
    receivedBytes: received,
    verified,
  };
}

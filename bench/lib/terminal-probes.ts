// The three measurements, run the same way over any RemoteTerminal: attach time, echo, bulk output.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { NOTICE_PREFIX } from '../../src/cli/terminal-io.js';
import type { Payload } from './payload.js';
import { settlesWithin } from '../../src/bench/child.js';
import type { RemoteTerminal } from './remote-terminal.js';

/**
 * A shell prompt (dash: "# " for root, "$ " otherwise) at the end of the output so far, or followed
 * only by the client's own status lines: `switchboard attach` prints its banner after the first
 * repaint, so a prompt that arrives inside that repaint is never the last thing on the screen.
 */
export const PROMPT_RE = new RegExp(
  `[#$] (?:\\r\\n${escapeRegExp(NOTICE_PREFIX)}[^\\r\\n]*\\r\\n)*$`,
);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

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
  /** Output bytes per second, MiB/s (1 MiB = 2^20 bytes), from Enter to the end marker. */
  mibPerSec: number;
  seconds: number;
  /** Enter → start marker: command start-up before the first output byte. */
  startMs: number;
  /** Bytes between the markers as received (a PTY turns each \n into \r\n, or more \r). */
  receivedBytes: number;
  /** The bytes between the markers, \r removed, have the expected size and SHA-256. */
  verified: boolean;
}

/** Output kept for verification, as a multiple of the file size (beyond it: not intact). */
const KEEP_FACTOR = 3;

/** Finds a byte string in a stream of chunks, also across chunk boundaries. */
function streamFinder(needle: Buffer): (chunk: Buffer) => boolean {
  let tail = Buffer.alloc(0);
  return (chunk) => {
    const seam = Buffer.concat([tail, chunk.subarray(0, needle.length - 1)]);
    if (seam.includes(needle) || chunk.includes(needle)) return true;
    const joined = chunk.length >= needle.length - 1 ? chunk : Buffer.concat([tail, chunk]);
    tail = Buffer.from(joined.subarray(Math.max(0, joined.length - (needle.length - 1))));
    return false;
  };
}

/**
 * The payload's command (`cat`, `seq`) on the remote shell, timed from Enter until its end marker arrives. The
 * clock path only stores chunks and looks for the markers; the content is checked afterwards.
 */
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

  const begin = `SB_BEGIN_${MARK}`;
  const end = `SB_END_${MARK}`;
  const findBegin = streamFinder(Buffer.from(begin));
  const findEnd = streamFinder(Buffer.from(end));
  const chunks: Buffer[] = [];
  let kept = 0;
  let startAt: number | undefined;
  const done = new Promise<number>((resolve) => {
    output.tap((chunk, at) => {
      if (kept < payload.bytes * KEEP_FACTOR) {
        chunks.push(chunk);
        kept += chunk.length;
      }
      if (startAt === undefined && findBegin(chunk)) startAt = at;
      if (findEnd(chunk)) {
        output.tap(undefined);
        resolve(at);
      }
    });
  });
  const t0 = performance.now();
  term.write(`echo SB_BEGIN_${MARK_TYPED}; ${payload.command}; echo SB_END_${MARK_TYPED}\r`);
  let timer: NodeJS.Timeout | undefined;
  const finishedAt = await Promise.race([
    done,
    term.ended.then(() => Promise.reject(new Error(`the terminal ended during ${payload.label}`))),
    new Promise<never>(
      (_, reject) =>
        (timer = setTimeout(
          () =>
            reject(
              new Error(
                `${payload.label} did not finish within ${options.timeoutMs} ms ` +
                  `(${output.bytes} bytes of output so far; expected ${payload.bytes})`,
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

  const text = Buffer.concat(chunks).toString('latin1');
  const bodyStart = text.indexOf('\n', text.indexOf(begin)) + 1;
  const bodyEnd = text.indexOf(end, bodyStart);
  const body = bodyStart > 0 && bodyEnd >= 0 ? text.slice(bodyStart, bodyEnd) : '';
  const content = body.replaceAll('\r', '');
  const verified =
    content.length === payload.bytes &&
    createHash('sha256').update(content, 'latin1').digest('hex') === payload.sha256;
  term.write('exit\r');
  await settlesWithin(term.ended, END_TIMEOUT_MS);
  return {
    mibPerSec: payload.bytes / 2 ** 20 / seconds,
    seconds,
    startMs: (startAt ?? finishedAt) - t0,
    receivedBytes: body.length,
    verified,
  };
}

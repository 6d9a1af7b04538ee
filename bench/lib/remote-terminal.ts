// The one shape every benchmarked client takes: keystrokes in, watched output out, an end.
import { spawnPty, type SpawnOptions } from '../../src/host/pty.js';
import { OutputWatch } from './output-watch.js';

export interface RemoteTerminal {
  readonly output: OutputWatch;
  /** Keystrokes, sent as they are. */
  write(data: string): void;
  /** Resolves once the remote program has ended (or the client gave up); never rejects. */
  readonly ended: Promise<void>;
  /** Ends it by force if it is still running (kills the client or detaches); idempotent. */
  close(): Promise<void>;
}

/** Time a PTY client gets after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 3_000; // ms

/** A client program (ssh, `switchboard attach`) run on a local PTY, as a person would run it. */
export function ptyTerminal(name: string, options: SpawnOptions): RemoteTerminal {
  const pty = spawnPty(options);
  const output = new OutputWatch();
  let exited = false;
  pty.onData((data) => output.push(data));
  const ended = new Promise<void>((resolve) =>
    pty.onExit(({ exitCode, signal }) => {
      exited = true;
      output.end(`${name} exited (code ${exitCode}${signal ? `, signal ${signal}` : ''})`);
      resolve();
    }),
  );
  return {
    output,
    write: (data) => pty.write(data),
    ended,
    close: async () => {
      if (exited) return;
      pty.kill('SIGTERM');
      if (await settlesWithin(ended, KILL_GRACE_MS)) return;
      pty.kill('SIGKILL');
      await settlesWithin(ended, KILL_GRACE_MS);
    },
  };
}

/** True if the promise settles within the time, false otherwise (the timer never outlives it). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => true as const,
        () => true as const,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

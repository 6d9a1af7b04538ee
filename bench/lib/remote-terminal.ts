// The one shape every benchmarked client takes (in-process, on a PTY, on pipes): keys in, output out.
import { spawn } from 'node:child_process';
import { spawnPty, type SpawnOptions } from '../../src/host/pty.js';
import { settlesWithin } from '../../src/bench/child.js';
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

/**
 * A client program with plain pipes for stdin and stdout (no local terminal), e.g. `ssh -tt`,
 * which still gets a PTY on the remote side. Its stderr is kept for error messages only.
 */
export function pipeTerminal(
  name: string,
  options: { file: string; args: string[]; cwd: string; env: Record<string, string> },
): RemoteTerminal {
  const child = spawn(options.file, options.args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = new OutputWatch();
  let stderr = '';
  let exited = false;
  child.stdout.on('data', (data: Buffer) => output.push(data));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-1_000);
  });
  child.stdin.on('error', () => {
    // EPIPE once it has exited; 'close' reports the end.
  });
  const ended = new Promise<void>((resolve) => {
    const finish = (how: string) => {
      if (exited) return;
      exited = true;
      output.end(`${name} ${how}${stderr ? ` (stderr: ${JSON.stringify(stderr.trim())})` : ''}`);
      resolve();
    };
    child.once('error', (err) => finish(`failed: ${err.message}`));
    child.once('close', (code, signal) => finish(`exited (code ${code}, signal ${signal})`));
  });
  return {
    output,
    write: (data) => {
      if (!exited) child.stdin.write(data);
    },
    ended,
    close: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      if (await settlesWithin(ended, KILL_GRACE_MS)) return;
      child.kill('SIGKILL');
      await settlesWithin(ended, KILL_GRACE_MS);
    },
  };
}

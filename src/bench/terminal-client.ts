// A bench client's remote terminal: `switchboard attach` as a library (AttachSession over its own
// logged-in connection), or `ssh -tt -J` on pipes for --compare-ssh, with the output watched for
// markers as it arrives; and the two terminal operations, keystroke echo and bulk output.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { AttachSession } from '../client/attach-session.js';
import { KnownPeers } from '../client/known-peers.js';
import { FILES, Home } from '../cli/home.js';
import { connectAs } from './accounts.js';
import type { AgentRef } from './agent.js';
import { settlesWithin } from './child.js';
import type { BenchClient, Transport } from './workload.js';

/** Characters of output kept to find a marker split across chunks. */
const TAIL_CHARS = 256; // characters
/** Time a shell has to end after `exit` before the terminal is closed anyway. */
const END_MS = 3_000; // ms
/** Time to attach and get the shell ready. */
const READY_MS = 30_000; // ms
/** Time one keystroke's echo may take before the operation fails. */
const ECHO_TIMEOUT_MS = 10_000; // ms
/** Output per stream operation. */
export const STREAM_BYTES = 1 << 20; // bytes
/** Time one stream operation's output may take. */
const STREAM_TIMEOUT_MS = 60_000; // ms

/** Watches a terminal's output for one marker at a time, across chunk boundaries. */
class OutputWaiter {
  #tail = '';
  #waiter: { needle: string; settle: (err?: Error) => void } | undefined;
  #endReason: string | undefined;
  /** Output bytes received since the start. */
  bytes = 0;

  take(data: Buffer): void {
    this.bytes += data.length;
    const w = this.#waiter;
    if (!w) return;
    const text = this.#tail + data.toString('latin1');
    if (text.includes(w.needle)) w.settle();
    else this.#tail = text.slice(-TAIL_CHARS);
  }

  end(reason: string): void {
    this.#endReason ??= reason;
    this.#waiter?.settle(new Error(reason));
  }

  get ended(): boolean {
    return this.#endReason !== undefined;
  }

  /** Resolves when `needle` arrives in output after this call. */
  waitFor(needle: string, timeoutMs: number): Promise<void> {
    if (this.#endReason) return Promise.reject(new Error(this.#endReason));
    this.#tail = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => settle(new Error(`"${needle}" did not arrive within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiter = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.#waiter = { needle, settle };
    });
  }
}

/** What the terminal operations need of a remote terminal. */
export interface BenchShell {
  readonly output: OutputWaiter;
  write(text: string): void;
  close(): Promise<void>;
}

/** Turns echo off and clears the prompt, so the output is what the operations print. */
async function quietShell(shell: BenchShell): Promise<void> {
  // The marker is typed as $((6*7)) so the echoed command line never matches it.
  const ready = shell.output.waitFor('READY_42', READY_MS);
  shell.write("stty -echo; PS1=''; echo READY_$((6*7))\r");
  await ready;
}

/** Attaches to the agent's session as the ops account. */
export async function attachShell(agent: AgentRef, transport: Transport): Promise<BenchShell> {
  const home = new Home(agent.ops.home);
  const session = new AttachSession({
    sessionId: agent.session,
    readOnly: false,
    user: agent.ops.user,
    key: home.deviceKey(),
    server: transport.server,
    knownPeers: new KnownPeers(join(agent.ops.home, FILES.knownPeers)),
    connect: () => connectAs(agent.ops, transport),
    cols: 120,
    rows: 40,
    term: 'xterm-256color',
  });
  const output = new OutputWaiter();
  session.on('output', (data: Buffer) => output.take(data));
  session.on('snapshot', (data: Buffer) => output.take(data));
  const ended = new Promise<void>((resolve) =>
    session.once('end', (end: { exit?: { code: number }; error?: Error }) => {
      output.end(
        end.exit
          ? `the remote shell exited (${end.exit.code})`
          : `the session ended (${end.error?.message ?? 'detached'})`,
      );
      resolve();
    }),
  );
  await session.start();
  const shell: BenchShell = {
    output,
    write: (text) => void session.input(Buffer.from(text)),
    close: async () => {
      if (!output.ended) {
        shell.write('\x03exit\r');
        await settlesWithin(ended, END_MS);
      }
      await session.detach().catch(() => undefined);
    },
  };
  await quietShell(shell).catch(async (err: unknown) => {
    await shell.close();
    throw err;
  });
  return shell;
}

/** `ssh -tt ARGS…` on pipes: the remote shell gets a PTY, this side none (as AttachSession). */
export async function sshShell(ssh: string, args: readonly string[], env: NodeJS.ProcessEnv) {
  const child: ChildProcess = spawn(ssh, ['-tt', ...args], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = new OutputWaiter();
  let stderr = '';
  child.stdout!.on('data', (data: Buffer) => output.take(data));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-500)));
  child.stdin!.on('error', () => undefined); // reported as the exit
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      output.end(`ssh did not start: ${err.message}`);
      resolve();
    });
    child.once('exit', (code) => {
      output.end(`ssh exited (${code})${stderr ? `: ${stderr.trim()}` : ''}`);
      resolve();
    });
  });
  const shell: BenchShell = {
    output,
    write: (text) => void child.stdin!.write(text),
    close: async () => {
      if (!output.ended) {
        shell.write('\x03exit\r');
        if (!(await settlesWithin(exited, END_MS))) child.kill('SIGKILL');
      }
      await exited;
    },
  };
  await quietShell(shell).catch(async (err: unknown) => {
    await shell.close();
    throw err;
  });
  return shell;
}

/** `echo`: one keystroke into non-canonical `cat`, timed until it is echoed back. */
export async function echoClient(shell: BenchShell): Promise<BenchClient> {
  const started = shell.output.waitFor('ECHO_42', READY_MS);
  shell.write('stty -icanon; echo ECHO_$((6*7)); exec cat\r');
  await started;
  let i = 0;
  return {
    async op() {
      const key = String.fromCharCode(97 + (i++ % 26)); // a..z
      const echoed = shell.output.waitFor(key, ECHO_TIMEOUT_MS);
      shell.write(key);
      await echoed;
      return 0;
    },
    close: () => shell.close(),
  };
}

/** `stream`: 1 MiB of text printed by the remote shell, timed from Enter to the end marker. */
export function streamClient(shell: BenchShell): BenchClient {
  const line =
    `yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c ${STREAM_BYTES}; ` +
    'echo; echo END_$((6*7))\r';
  return {
    async op() {
      const before = shell.output.bytes;
      const done = shell.output.waitFor('END_42', STREAM_TIMEOUT_MS);
      shell.write(line);
      await done;
      return shell.output.bytes - before;
    },
    close: () => shell.close(),
  };
}

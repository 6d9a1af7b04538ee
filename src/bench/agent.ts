// The agent the exec and terminal workloads reach: a real `switchboard agent` process per
// transport, owned by the bench's host account, letting the ops account in, with /bin/sh shells.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AccountRef, BenchAccounts } from './accounts.js';
import type { Transport } from './workload.js';

/** Time the agent has to register its session. */
const AGENT_START_MS = 60_000; // ms
/** Time it has to stop after SIGTERM before SIGKILL. */
const AGENT_STOP_MS = 10_000; // ms
/** Output kept for an error message. */
const TAIL_CHARS = 4_000; // characters

const BIN = fileURLToPath(new URL('../../../bin/switchboard', import.meta.url));

/** What the workloads' clients need to reach the agent. */
export interface AgentRef {
  session: string;
  /** The account the clients use: allowed to attach and exec. */
  ops: AccountRef;
}

export interface RunningAgent extends AgentRef {
  stop(): Promise<void>;
}

/** Starts `switchboard agent` from the host account's home once its session is registered. */
export async function startAgent(
  accounts: BenchAccounts,
  transport: Transport,
): Promise<RunningAgent> {
  const [host, ops] = await Promise.all([
    accounts.device('host', transport),
    accounts.device('ops', transport),
  ]);
  const session = `${accounts.prefix}-${transport.tls ? 'tls' : 'plain'}`;
  const args = [BIN, 'agent', '--session', session, '--allow', ops.user, '--shell', '/bin/sh'];
  args.push('--server', transport.server, '--fingerprint', transport.fingerprint);
  if (transport.insecure) args.push('--insecure');
  const child = spawn(process.execPath, args, {
    env: { ...process.env, SWITCHBOARD_HOME: host.home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null));
    child.once('exit', (code) => resolve(code));
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(`the agent did not register ${session} within ${AGENT_START_MS / 1000} s`),
      AGENT_START_MS,
    );
    const onData = (s: string): void => {
      output = (output + s).slice(-TAIL_CHARS);
      if (new RegExp(`^${session}$`, 'm').test(output)) done(resolve);
    };
    const fail = (why: string): void =>
      done(() => reject(new Error(`${why}\nagent output:\n${output.trim()}`)));
    const done = (then: () => void): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      then();
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      output = (output + s).slice(-TAIL_CHARS);
    });
    void exited.then((code) => fail(`the agent exited (${code}) before it was ready`));
  });
  return {
    session,
    ops,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await stopWithin(child, exited, AGENT_STOP_MS);
    },
  };
}

async function stopWithin(
  child: ChildProcess,
  exited: Promise<unknown>,
  ms: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  if ((await Promise.race([exited, late])) === 'late') child.kill('SIGKILL');
  clearTimeout(timer);
  await exited;
}

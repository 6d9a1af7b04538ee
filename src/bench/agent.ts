// The agent the exec and terminal workloads reach: a real `switchboard agent` process per
// transport, owned by the bench's host account, letting the ops account in, with /bin/sh shells.
import { fileURLToPath } from 'node:url';
import type { AccountRef, BenchAccounts } from './accounts.js';
import { Child } from './child.js';
import type { Transport } from './workload.js';

/** Time the agent has to register its session. */
const AGENT_START_MS = 60_000; // ms

const BIN = fileURLToPath(new URL('../../../bin/switchboard', import.meta.url));

/** What the workloads' clients need to reach the agent. */
export interface AgentRef {
  session: string;
  /** The account the clients use: allowed to attach and exec. */
  ops: AccountRef;
}

/** Starts `switchboard agent` from the host account's home once its session is registered. */
export async function startAgent(
  accounts: BenchAccounts,
  transport: Transport,
  onCleanup: (stop: () => Promise<unknown>) => void,
): Promise<AgentRef> {
  const [host, ops] = await Promise.all([
    accounts.device('host', transport),
    accounts.device('ops', transport),
  ]);
  const session = `${accounts.prefix}-${transport.tls ? 'tls' : 'plain'}`;
  const args = [BIN, 'agent', '--session', session, '--allow', ops.user, '--shell', '/bin/sh'];
  args.push('--server', transport.server, '--fingerprint', transport.fingerprint);
  if (transport.insecure) args.push('--insecure');
  const agent = new Child(`agent ${session}`, process.execPath, args, {
    ...process.env,
    SWITCHBOARD_HOME: host.home,
  });
  // Registered at once: a run stopped meanwhile stops it too.
  onCleanup(() => agent.stop());
  try {
    // It prints the session ID once the relay has registered it.
    await agent.waitForStdout(new RegExp(`^${session}$`, 'm'), AGENT_START_MS);
  } catch (err) {
    await agent.stop();
    throw err;
  }
  return { session, ops };
}

// `echo`: a keystroke's round trip through a remote terminal — typed into an attached terminal,
// through the relay to the agent's PTY, echoed by `cat` (as an editor or readline echoes), back.
import type { AgentRef } from '../agent.js';
import { attachShell, echoClient } from '../terminal-client.js';
import type { Workload } from '../workload.js';

export const echo: Workload = {
  name: 'echo',
  describe:
    'one keystroke typed into an attached terminal and echoed back by the remote program (non-canonical cat), one in flight per client',
  async prepare(ctx) {
    return ctx.agent();
  },
  async open(ctx) {
    return echoClient(await attachShell(ctx.data as AgentRef, ctx.transport));
  },
};

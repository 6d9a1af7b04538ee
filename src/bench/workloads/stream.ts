// `stream`: terminal output throughput — a command in an attached terminal prints 1 MiB, which
// crosses the agent's PTY, the end-to-end channel and the relay to the client; one op per MiB.
import type { AgentRef } from '../agent.js';
import { attachShell, streamClient } from '../terminal-client.js';
import type { Workload } from '../workload.js';

export const stream: Workload = {
  name: 'stream',
  describe:
    '1 MiB of text printed by `yes | head -c 1048576` in an attached terminal, from Enter to the end marker on the client',
  bytes: true,
  async prepare(ctx) {
    return ctx.agent();
  },
  async open(ctx) {
    return streamClient(await attachShell(ctx.data as AgentRef, ctx.transport));
  },
};

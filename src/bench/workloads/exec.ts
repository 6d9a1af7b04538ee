// `exec`: what `switchboard exec SESSION -- echo ok` does on a logged-in connection — open the
// exec service on the agent (end-to-end handshake), send the signed request, the agent checks it
// against its policy and runs the command, its output and exit status come back.
import { ExecCall } from '../../client/services/exec.js';
import { KnownPeers } from '../../client/known-peers.js';
import { openService } from '../../client/open-channel.js';
import { FILES, Home } from '../../cli/home.js';
import { EXEC_SERVICE } from '../../protocol/exec.js';
import { connectAs } from '../accounts.js';
import type { AgentRef } from '../agent.js';
import type { Workload } from '../workload.js';
import { join } from 'node:path';

export const exec: Workload = {
  name: 'exec',
  describe:
    '`echo ok` on an agent: open the exec service (end-to-end handshake), signed request, run, output and exit status back',
  async prepare(ctx) {
    return ctx.agent();
  },
  async open(ctx) {
    const agent = ctx.data as AgentRef;
    const home = new Home(agent.ops.home);
    const key = home.deviceKey();
    const knownPeers = new KnownPeers(join(agent.ops.home, FILES.knownPeers));
    const client = await connectAs(agent.ops, ctx.transport);
    return {
      async op() {
        const { channel, opened } = await openService(client, {
          service: EXEC_SERVICE,
          target: { kind: 'session', sessionId: agent.session },
          user: agent.ops.user,
          key,
          server: ctx.transport.server,
          knownPeers,
        });
        let bytes = 0;
        const call = new ExecCall(
          {
            channel,
            user: agent.ops.user,
            key,
            session: agent.session,
            agentFingerprint: opened.host.fingerprint,
            command: { kind: 'argv', argv: ['echo', 'ok'] },
            stdin: false,
          },
          {
            onStdout: (d, done) => {
              bytes += d.length;
              done();
            },
            onStderr: (_d, done) => done(),
            onStdinDrain: () => undefined,
          },
        );
        const outcome = await call.result;
        if (outcome.kind !== 'exit' || outcome.exit.code !== 0 || bytes !== 3)
          throw new Error(`echo ok: ${JSON.stringify(outcome).slice(0, 200)}`);
        return 0;
      },
      async close() {
        client.close();
      },
    };
  },
};

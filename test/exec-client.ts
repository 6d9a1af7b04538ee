// Runs a command on an agent through the exec library as a test user, collecting its output.
import { ExecCall, type ExecOutcome } from '../src/client/services/exec.js';
import { EXEC_SERVICE, type ExecCommand } from '../src/protocol/exec.js';
import type { Harness, TestUser } from './terminal-harness.js';

export interface Ran {
  outcome: ExecOutcome;
  stdout: Buffer;
  stderr: Buffer;
  call: ExecCall;
}

/** Runs `command` on `sessionId` as `user` through the library, collecting all output. */
export async function run(
  h: Harness,
  user: TestUser,
  sessionId: string,
  command: ExecCommand | string[],
  o: {
    stdin?: Buffer;
    timeoutMs?: number;
    script?: Buffer;
    onStarted?: (call: ExecCall) => void;
    /** Each piece of stdout as it arrives (it is collected as well). */
    onStdout?: (data: Buffer) => void;
    server?: string;
  } = {},
): Promise<Ran> {
  const { client, channel, opened } = await h.openService(user, EXEC_SERVICE, sessionId, o.server);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const call: ExecCall = new ExecCall(
    {
      channel,
      user: user.name,
      key: user.key,
      session: sessionId,
      agentFingerprint: opened.host.fingerprint,
      command: Array.isArray(command) ? { kind: 'argv', argv: command } : command,
      ...(o.script ? { script: o.script } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      stdin: o.stdin !== undefined,
    },
    {
      onStarted: () => o.onStarted?.(call),
      onStdout: (d, done) => {
        out.push(Buffer.from(d));
        o.onStdout?.(Buffer.from(d));
        done();
      },
      onStderr: (d, done) => {
        err.push(Buffer.from(d));
        done();
      },
      onStdinDrain: () => pump(),
    },
  );
  // Standard input in 64 KiB pieces, waiting for the window when the agent has not caught up.
  let at = 0;
  const pump = (): void => {
    const input = o.stdin;
    if (!input) return;
    while (at < input.length) {
      const piece = input.subarray(at, at + 65536);
      at += piece.length;
      if (!call.writeStdin(piece)) return;
    }
    call.endStdin();
  };
  pump();
  const outcome = await call.result;
  client.close();
  return { outcome, stdout: Buffer.concat(out), stderr: Buffer.concat(err), call };
}

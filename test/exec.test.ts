// exec end to end: real relay, real agents (HostSession + the exec service), real processes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExecCall, type ExecOutcome } from '../src/client/services/exec.js';
import { generateDeviceKey, keyFingerprint } from '../src/crypto/device-key.js';
import { DEFAULT_SERVICES, type HostSession } from '../src/host/host-session.js';
import { parsePolicy } from '../src/host/policy-file.js';
import type { ExecPolicy } from '../src/host/policy.js';
import { execService } from '../src/host/services/exec.js';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import {
  EXEC_SERVICE,
  ExecType,
  decodeJson,
  encodeSignedRequest,
  type ExecRefused,
  type ExecRequest,
} from '../src/protocol/exec.js';
import { codeOf, waitFor } from './helpers.js';
import { run, type Ran } from './exec-client.js';
import { flipFirstLargeRecord, proxiedHarness } from './tamper-proxy.js';
import { Harness, type TestUser } from './terminal-harness.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir(), LANG: 'C.UTF-8' };

/** An agent serving exec under `policy` (JSON text), as `agent --policy` does. */
async function execAgent(
  h: Harness,
  owner: TestUser,
  sessionId: string,
  policy?: string,
  extra: { allow?: string[] } = {},
): Promise<HostSession> {
  const parsed: ExecPolicy | undefined = policy ? parsePolicy(policy, 'policy.json') : undefined;
  return h.agent(owner, sessionId, extra, {
    operators: parsed ? [...parsed.users.keys()] : [],
    services: [
      ...DEFAULT_SERVICES,
      execService({
        policy: () => parsed,
        env: (user) => ({ ...ENV, SWITCHBOARD_SESSION: sessionId, SWITCHBOARD_USER: user }),
        cwd: tmpdir(),
      }),
    ],
  });
}

function exitOf(ran: Ran) {
  assert.equal(ran.outcome.kind, 'exit', JSON.stringify(ran.outcome));
  return (ran.outcome as Extract<ExecOutcome, { kind: 'exit' }>).exit;
}

function refusalOf(ran: Ran): ExecRefused {
  assert.equal(ran.outcome.kind, 'refused', JSON.stringify(ran.outcome));
  return (ran.outcome as Extract<ExecOutcome, { kind: 'refused' }>).refused;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('exec on an agent', () => {
  const h = new Harness();
  let owner: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  before(async () => {
    await h.start();
    owner = await h.user('exowner');
    carol = await h.user('excarol');
    dave = await h.user('exdave');
    await execAgent(
      h,
      owner,
      'ex-box',
      JSON.stringify({
        users: {
          excarol: {
            commands: [
              ['echo', '...'],
              ['uname', '-s'],
              ['printf', '*', '*'],
            ],
            maxOutput: '1KiB',
          },
        },
      }),
    );
  });
  after(() => h.close());

  it('runs a command as an argv and returns its stdout, stderr and exit code apart', async () => {
    const ran = await run(h, owner, 'ex-box', ['sh', '-c', 'printf out; printf err >&2; exit 7']);
    const exit = exitOf(ran);
    assert.equal(exit.code, 7);
    assert.equal(ran.stdout.toString(), 'out');
    assert.equal(ran.stderr.toString(), 'err');
    assert.equal(exit.stdout.sha256, createHash('sha256').update('out').digest('hex'));
  });

  it('keeps shell metacharacters in arguments literal: nothing is interpreted', async () => {
    const marker = join(tmpdir(), `sb-exec-marker-${randomBytes(4).toString('hex')}`);
    const word = `a;b|c && touch ${marker} $(touch ${marker}) \`touch ${marker}\` * ~ "q" 'q' $HOME`;
    const ran = await run(h, carol, 'ex-box', ['printf', '%s', word]);
    assert.equal(exitOf(ran).code, 0);
    assert.equal(ran.stdout.toString(), word);
    assert.equal(existsSync(marker), false);
  });

  it('refuses at the agent what the policy does not grant, naming the rule', async () => {
    const refused = refusalOf(await run(h, carol, 'ex-box', ['uname', '-a']));
    assert.equal(refused.code, ErrorCode.NOT_ALLOWED);
    assert.match(refused.message, /excarol may not run "uname -a"/);
    assert.match(refused.message, /users\.excarol\.commands/);
    // The same user, a granted command: it runs.
    assert.equal(exitOf(await run(h, carol, 'ex-box', ['uname', '-s'])).code, 0);
    // A shell line is refused unless the policy says shell: true.
    const shell = refusalOf(await run(h, carol, 'ex-box', { kind: 'shell', line: 'echo hi' }));
    assert.match(shell.message, /users\.excarol\.shell is not true/);
  });

  it('is refused at the relay for a user the policy does not name (no terminal for operators either)', async () => {
    assert.equal(await codeOf(run(h, dave, 'ex-box', ['echo', 'hi'])), ErrorCode.NOT_ALLOWED);
    const client = await carol.connect();
    h.defer(() => client.close());
    const code = await codeOf(
      client.request('channel.open', {
        service: 'terminal',
        target: { kind: 'session', sessionId: 'ex-box' },
      }),
    );
    assert.equal(code, ErrorCode.NOT_ALLOWED);
  });

  it("stops a command at the policy's output limit and says so", async () => {
    const ran = await run(h, carol, 'ex-box', ['printf', '%05000d', '0']);
    const exit = exitOf(ran);
    assert.equal(exit.reason, 'output-limit');
    assert.equal(ran.stdout.length, 1024);
    assert.equal(exit.stdout.bytes, 1024);
  });

  it('forwards standard input, past the flow-control window, byte for byte', async () => {
    const input = randomBytes(3 * 1024 * 1024 + 17);
    const ran = await run(h, owner, 'ex-box', ['sha256sum'], { stdin: input });
    assert.equal(exitOf(ran).code, 0);
    assert.equal(
      ran.stdout.toString().split(' ')[0],
      createHash('sha256').update(input).digest('hex'),
    );
  });

  it('delivers 64 MiB of stdout intact (SHA-256)', async () => {
    const bytes = 64 * 1024 * 1024;
    const ran = await run(h, owner, 'ex-box', [
      'sh',
      '-c',
      `yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c ${bytes}`,
    ]);
    const exit = exitOf(ran);
    assert.equal(exit.code, 0);
    assert.equal(ran.stdout.length, bytes);
    const line = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz\n');
    const expected = createHash('sha256');
    for (let n = 0; n < bytes; n += line.length)
      expected.update(line.subarray(0, Math.min(line.length, bytes - n)));
    const want = expected.digest('hex');
    assert.equal(createHash('sha256').update(ran.stdout).digest('hex'), want);
    assert.equal(exit.stdout.sha256, want);
  });

  it('--timeout kills the whole process tree, background children included', async () => {
    const ran = await run(h, owner, 'ex-box', ['sh', '-c', 'sleep 300 & echo $!; wait'], {
      timeoutMs: 300,
    });
    const exit = exitOf(ran);
    assert.equal(exit.reason, 'timeout');
    const child = Number(ran.stdout.toString().trim());
    assert.ok(child > 0, ran.stdout.toString());
    // Killed before the exit was sent; init reaps it a moment later.
    await waitFor(() => !alive(child), 2_000, 'the background sleep to be gone');
  });

  it('a cancel ends the remote process group (SIGINT first)', async () => {
    let pid = 0;
    const ran = await run(h, owner, 'ex-box', ['sh', '-c', 'echo $$; exec sleep 300'], {
      onStarted: (call) => {
        // Cancel once the command is known to run.
        setImmediate(() => call.cancel());
      },
    });
    const exit = exitOf(ran);
    pid = Number(ran.stdout.toString().trim() || '0');
    assert.equal(exit.reason, 'cancelled');
    assert.equal(exit.signal, 'SIGINT');
    if (pid) assert.equal(alive(pid), false);
  });

  it('takes a command up to one record, and refuses a longer one locally with a clear error', async () => {
    const word = 'x'.repeat(60_000);
    const ran = await run(h, owner, 'ex-box', ['printf', '%s', word]);
    assert.equal(ran.stdout.toString(), word);
    const code = await codeOf(run(h, owner, 'ex-box', ['printf', '%s', 'x'.repeat(65_200)]));
    assert.equal(code, ErrorCode.FRAME_TOO_LARGE);
  });

  it('cuts off a controller that floods standard input past the window', async () => {
    const { channel, opened } = await h.openService(owner, EXEC_SERVICE, 'ex-box');
    const call = new ExecCall(
      {
        channel,
        user: owner.name,
        key: owner.key,
        session: 'ex-box',
        agentFingerprint: opened.host.fingerprint,
        command: { kind: 'argv', argv: ['sleep', '30'] },
        stdin: true,
      },
      {
        onStarted: () => {
          // Ignores writeStdin's false: 8 MiB into a command that reads nothing.
          for (let i = 0; i < 128; i++) call.writeStdin(Buffer.alloc(65536));
        },
        onStdout: (_d, done) => done(),
        onStderr: (_d, done) => done(),
      },
    );
    const outcome = await call.result;
    assert.equal(outcome.kind, 'lost', JSON.stringify(outcome));
    assert.equal((outcome as { code: string }).code, ErrorCode.INVALID_MESSAGE);
  });

  it('an agent that stops ends the commands still running, and records them first', async () => {
    const records: Array<{ exit?: { reason?: string; signal: string | null } }> = [];
    const host = await execAgent(h, owner, 'ex-stopping');
    host.on('exec', (r: (typeof records)[number]) => records.push(r));
    let pid = 0;
    let armed!: () => void;
    const ignoring = new Promise<void>((r) => (armed = r));
    // The shell says when it ignores SIGINT (a stop before that would end it at SIGINT).
    const ran = run(
      h,
      owner,
      'ex-stopping',
      ['sh', '-c', 'trap "" INT; echo armed; exec sleep 300'],
      {
        onStarted: (call) => {
          pid = call.started!.pid; // exec keeps the pid: it is sleep's
        },
        onStdout: (d) => {
          if (d.toString().includes('armed')) armed();
        },
      },
    );
    await ignoring;
    assert.ok(alive(pid));
    await host.stop();
    // Stopped, and recorded, by the time stop() returns: SIGINT ignored, SIGTERM ended it.
    assert.equal(records.length, 1);
    assert.equal(records[0]!.exit?.reason, 'interrupted');
    assert.equal(records[0]!.exit?.signal, 'SIGTERM');
    await waitFor(() => !alive(pid), 2_000, 'the command to be gone');
    await ran.catch(() => undefined);
  });

  it('runs a script with its #! interpreter, checked by SHA-256', async () => {
    const script = Buffer.from('#!/bin/sh\necho "script $1 as $SWITCHBOARD_USER"\n');
    const ran = await run(
      h,
      owner,
      'ex-box',
      {
        kind: 'script',
        name: 'hello.sh',
        sha256: createHash('sha256').update(script).digest('hex'),
        size: script.length,
        args: ['one'],
      },
      { script },
    );
    assert.equal(exitOf(ran).code, 0);
    assert.equal(ran.stdout.toString(), 'script one as exowner\n');
  });
});

describe('exec through a relay that tampers', () => {
  const { h, proxy } = proxiedHarness();
  let owner: TestUser;
  let ops: TestUser;
  const marker = join(tmpdir(), `sb-exec-tamper-${randomBytes(4).toString('hex')}`);
  before(async () => {
    owner = await h.user('tpowner');
    ops = await h.user('tpops');
    await execAgent(h, owner, 'tp-box', undefined, { allow: ['tpops'] });
  });

  /** Opens an exec channel as `user` and sends `message` as its first record; the agent's answer. */
  async function sendRaw(
    user: TestUser,
    message: (ctx: { handshakeHash: string; fingerprint: string }) => Uint8Array | Uint8Array[],
  ): Promise<ExecRefused | { closed: string }> {
    const { channel, opened } = await h.openService(user, EXEC_SERVICE, 'tp-box');
    const answer = new Promise<ExecRefused | { closed: string }>((resolve) =>
      channel.setHandlers({
        onMessage: (m) => {
          if (m[0] === ExecType.REFUSED) resolve(decodeJson<ExecRefused>(m));
          else resolve({ closed: `message ${m[0]}` });
        },
        onClose: (code) => resolve({ closed: code }),
      }),
    );
    const sent = message({
      handshakeHash: channel.handshakeHash,
      fingerprint: opened.host.fingerprint,
    });
    for (const m of Array.isArray(sent) ? sent : [sent]) channel.send(m);
    return answer;
  }

  function request(
    ctx: { handshakeHash: string; fingerprint: string },
    o: Partial<ExecRequest> = {},
  ): ExecRequest {
    return {
      v: 1,
      op: 'exec',
      user: 'tpops',
      agent: { session: 'tp-box', fingerprint: ctx.fingerprint },
      channel: ctx.handshakeHash,
      nonce: randomBytes(16).toString('base64'),
      issuedAt: Date.now(),
      command: { kind: 'argv', argv: ['touch', marker] },
      stdin: false,
      ...o,
    };
  }

  it('an argv rewritten in transit fails to open: the agent runs nothing', async () => {
    const opsViaProxy = await h.user('tpops', proxy().address, proxy().fingerprint, 'via-proxy');
    const flipped = flipFirstLargeRecord(proxy());
    const code = await codeOf(
      run(h, opsViaProxy, 'tp-box', ['touch', marker], { server: proxy().address }).then((r) => {
        if (r.outcome.kind === 'lost')
          throw new SwitchboardError(r.outcome.code as ErrorCode, r.outcome.message);
        return r;
      }),
    );
    assert.equal(flipped(), 1);
    assert.equal(code, ErrorCode.DECRYPT_FAILED);
    assert.equal(existsSync(marker), false);
  });

  it('an unsigned request is refused', async () => {
    const answer = await sendRaw(ops, (ctx) =>
      Buffer.concat([
        Buffer.from([ExecType.REQUEST]),
        Buffer.alloc(64),
        Buffer.from(JSON.stringify(request(ctx))),
      ]),
    );
    assert.equal((answer as ExecRefused).code, ErrorCode.SIGNATURE_INVALID);
    assert.equal(existsSync(marker), false);
  });

  it('a request signed by another key than the channel proved is refused (forged)', async () => {
    const answer = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(generateDeviceKey(), request(ctx)),
    );
    assert.equal((answer as ExecRefused).code, ErrorCode.SIGNATURE_INVALID);
    assert.equal(existsSync(marker), false);
  });

  it('a request signed for another agent, or naming another user, is refused', async () => {
    const other = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(
        ops.key,
        request(ctx, { agent: { session: 'tp-other', fingerprint: ctx.fingerprint } }),
      ),
    );
    assert.equal((other as ExecRefused).code, ErrorCode.SIGNATURE_INVALID);
    const otherKey = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(
        ops.key,
        request(ctx, {
          agent: { session: 'tp-box', fingerprint: keyFingerprint(generateDeviceKey().publicKey) },
        }),
      ),
    );
    assert.equal((otherKey as ExecRefused).code, ErrorCode.SIGNATURE_INVALID);
    const asOwner = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(ops.key, request(ctx, { user: 'tpowner' })),
    );
    assert.equal((asOwner as ExecRefused).code, ErrorCode.SIGNATURE_INVALID);
    assert.equal(existsSync(marker), false);
  });

  it('a replayed request is refused: in a new channel, and again in the same one', async () => {
    let captured: Uint8Array | undefined;
    const probe = join(tmpdir(), `sb-exec-replay-${randomBytes(4).toString('hex')}`);
    const first = await sendRaw(ops, (ctx) => {
      captured = encodeSignedRequest(
        ops.key,
        request(ctx, { command: { kind: 'argv', argv: ['sh', '-c', `echo x >> ${probe}`] } }),
      );
      return captured;
    });
    // The genuine one ran (its channel then closed after the exit).
    assert.deepEqual(first, { closed: `message ${ExecType.STARTED}` });
    const replay = await sendRaw(ops, () => captured!);
    assert.equal((replay as ExecRefused).code, ErrorCode.REQUEST_REPLAYED);
    // Within one channel: a second request is a protocol error, never a second run.
    const twice = await sendRaw(ops, (ctx) => [
      encodeSignedRequest(ops.key, request(ctx, { command: { kind: 'argv', argv: ['true'] } })),
      encodeSignedRequest(
        ops.key,
        request(ctx, { command: { kind: 'argv', argv: ['sh', '-c', `echo y >> ${probe}`] } }),
      ),
    ]);
    assert.deepEqual(twice, { closed: ErrorCode.INVALID_MESSAGE });
    // The probe has the genuine request's line only: neither the replay nor the second one ran.
    await waitFor(() => existsSync(probe), 2_000, 'the genuine command');
    assert.equal(readFileSync(probe, 'utf8'), 'x\n');
  });

  it('a request signed for another channel is refused, even with a fresh nonce', async () => {
    const answer = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(ops.key, request(ctx, { channel: 'ab'.repeat(32) })),
    );
    assert.equal((answer as ExecRefused).code, ErrorCode.REQUEST_REPLAYED);
    assert.equal(existsSync(marker), false);
  });

  it('a request whose time is outside the window is refused as stale', async () => {
    const answer = await sendRaw(ops, (ctx) =>
      encodeSignedRequest(ops.key, request(ctx, { issuedAt: Date.now() - 3_600_000 })),
    );
    assert.equal((answer as ExecRefused).code, ErrorCode.REQUEST_STALE);
    assert.equal(existsSync(marker), false);
  });

  it('the owner can still run it honestly (control)', async () => {
    const ran = await run(h, owner, 'tp-box', ['echo', 'honest']);
    assert.equal(exitOf(ran).code, 0);
  });
});

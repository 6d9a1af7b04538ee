// The exec service, agent side: one signed command per channel, checked here, run without a shell.
//
// The agent trusts nothing the relay says about a request: the requester's device signs it
// (over this agent's session and key, this channel's handshake hash, a nonce and a time), the
// signature is checked against the key the E2E handshake proved (and the pins confirmed), and the
// policy (host/policy.ts) decides. The command then runs as an argv (no shell unless the policy
// grants --shell), in its own process group, with a clean environment; its output flows back
// under a window the controller acknowledges, so a slow reader pauses the command instead of
// filling the agent's memory. Every outcome, refusals included, is reported as an 'exec' event
// on the host session: the audit's input.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureDuplex } from '../../channel/e2e.js';
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import {
  EXEC_CHUNK_BYTES,
  EXEC_KILL_GRACE_MS,
  EXEC_REQUEST_FORMAT,
  EXEC_SERVICE,
  EXEC_WINDOW_BYTES,
  ExecType,
  decodeCount,
  describeCommand,
  encodeCount,
  encodeData,
  encodeJson,
  type ExecEndReason,
  type ExecExit,
  type ExecRefused,
  type ExecRequest,
  type StreamDigest,
} from '../../protocol/exec.js';
import type { PeerInfo } from '../../protocol/messages.js';
import type { HostSession } from '../host-session.js';
import { decide, type Decision, type ExecAsk, type ExecPolicy } from '../policy.js';
import { PEER_SETUP_TIMEOUT_MS } from '../timeouts.js';
import type { HostService } from './service.js';
import {
  NonceCache,
  REQUEST_NONCES_MAX,
  acceptSignedRequest,
  asSwitchboardError,
  fullAccess,
} from './signed-request.js';

/** Nonces remembered (each for twice the clock skew); past this, the oldest are dropped early. */
export const EXEC_NONCES_MAX = REQUEST_NONCES_MAX;

/** How the agent runs commands: set by `agent` (policy file, environment, home directory). */
export interface ExecConfig {
  /** The policy in force now (reloaded on SIGHUP); undefined without --policy. */
  policy(): ExecPolicy | undefined;
  /** The environment of a command run for `user` (like sshd: clean, not the agent's own). */
  env(user: string): Record<string, string>;
  cwd: string;
  /** The agent's replay cache, shared with push (default: one of its own). */
  nonces?: NonceCache;
  now?: () => number;
}

/** What the agent reports for each request: the audit's entry, without any output. */
export interface ExecRecord {
  time: string;
  user: string;
  fingerprint: string;
  session: string;
  /** The command as a person reads it; a script by name and SHA-256. */
  command: string;
  kind: 'argv' | 'shell' | 'script';
  argv?: string[];
  script?: { name: string; sha256: string };
  decision: 'allowed' | 'refused';
  rule: string;
  /** Refusals and ends other than the command's own. */
  code?: string;
  message?: string;
  exit?: ExecExit;
}

/** The exec service for an agent; its replay cache lives as long as the agent. */
export function execService(config: ExecConfig): HostService {
  const nonces = config.nonces ?? new NonceCache();
  const now = config.now ?? Date.now;
  const runs = new Set<ExecRun>();
  return {
    name: EXEC_SERVICE,
    decidesAccess: true,
    serve(ctx) {
      if (!ctx.host) return void ctx.channel.close('exec runs in a session', ErrorCode.NOT_ALLOWED);
      const run = new ExecRun(ctx.host, ctx.channel, ctx.peer, config, now, nonces, () =>
        runs.delete(run),
      );
      runs.add(run);
    },
    // The agent stops: every command still running is ended (and audited) before it goes.
    async stop() {
      await Promise.all([...runs].map((run) => run.interrupt()));
    },
  };
}

class ExecRun {
  readonly #host: HostSession;
  readonly #channel: SecureDuplex;
  readonly #peer: PeerInfo;
  readonly #config: ExecConfig;
  readonly #now: () => number;
  readonly #nonces: NonceCache;
  readonly #firstTimer: NodeJS.Timeout;
  #request: ExecRequest | undefined;
  #decision: Decision | undefined;
  #script: { chunks: Buffer[]; got: number } | undefined;
  #child: ChildProcess | undefined;
  #startedAt = 0;
  #out = new OutputCounter();
  #err = new OutputCounter();
  #sent = 0;
  #acked = 0;
  #paused = false;
  #reason: ExecEndReason | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #runTimer: NodeJS.Timeout | undefined;
  #tmpDir: string | undefined;
  #uploadTimer: NodeJS.Timeout | undefined;
  #done = false;
  readonly #onDone: () => void;
  readonly #finished: Promise<void>;
  #resolveFinished!: () => void;

  constructor(
    host: HostSession,
    channel: SecureDuplex,
    peer: PeerInfo,
    config: ExecConfig,
    now: () => number,
    nonces: NonceCache,
    onDone: () => void,
  ) {
    this.#onDone = onDone;
    this.#finished = new Promise((resolve) => (this.#resolveFinished = resolve));
    this.#host = host;
    this.#channel = channel;
    this.#peer = peer;
    this.#config = config;
    this.#now = now;
    this.#nonces = nonces;
    // A channel that never sends its request is not kept open.
    this.#firstTimer = setTimeout(
      () => void channel.close('no request came', ErrorCode.TIMEOUT),
      PEER_SETUP_TIMEOUT_MS,
    );
    channel.setHandlers({
      onMessage: (message) => this.#guard(() => this.#onMessage(message)),
      onClose: () => this.#onChannelClosed(),
    });
  }

  /** Runs `fn`; what it throws ends this request (never the agent). */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#fail(err);
    }
  }

  #onMessage(message: Uint8Array): void {
    if (message.length === 0) return;
    if (!this.#request) {
      clearTimeout(this.#firstTimer);
      this.#onRequest(message);
      return;
    }
    switch (message[0]) {
      case ExecType.SCRIPT:
        return this.#onScript(message.subarray(1));
      case ExecType.STDIN:
        return this.#onStdin(message.subarray(1));
      case ExecType.STDIN_EOF:
        this.#child?.stdin?.end();
        return;
      case ExecType.CANCEL:
        return this.#kill('cancelled');
      case ExecType.ACK:
        // Never more than was sent: a larger count would switch flow control off.
        this.#acked = Math.min(this.#sent, Math.max(this.#acked, decodeCount(message)));
        if (this.#paused && this.#sent - this.#acked < EXEC_WINDOW_BYTES) {
          this.#paused = false;
          this.#child?.stdout?.resume();
          this.#child?.stderr?.resume();
        }
        return;
      case ExecType.REQUEST:
        throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'one request per channel');
      default:
        throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, `unknown exec message ${message[0]}`);
    }
  }

  /** Signature, binding, freshness, then the policy; refusals are sent sealed and recorded. */
  #onRequest(message: Uint8Array): void {
    let request: ExecRequest;
    try {
      request = acceptSignedRequest(EXEC_REQUEST_FORMAT, message, {
        host: this.#host,
        channel: this.#channel,
        peer: this.#peer,
        nonces: this.#nonces,
        now: this.#now,
      });
    } catch (err) {
      const e = asError(err);
      return this.#refuse({ code: e.code, rule: 'signature', message: e.message }, undefined);
    }
    this.#request = request;
    const user = this.#peer.user;
    const decision = decide(
      this.#config.policy(),
      { user, full: fullAccess(this.#host, user) },
      askOf(request),
    );
    this.#decision = decision;
    if (!decision.allowed)
      return this.#refuse(
        { code: ErrorCode.NOT_ALLOWED, rule: decision.rule, message: decision.reason },
        request,
      );
    if (request.command.kind === 'script') {
      this.#script = { chunks: [], got: 0 };
      return;
    }
    this.#start(
      request.command.kind === 'argv'
        ? request.command.argv
        : ['/bin/sh', '-c', request.command.line],
    );
  }

  /** Ends what runs, as when the controller goes away; resolves once it is over and recorded. */
  interrupt(): Promise<void> {
    if (this.#child && !this.#done) this.#kill('interrupted');
    else if (!this.#done)
      this.#fail(new SwitchboardError(ErrorCode.CHANNEL_CLOSED, 'the agent stopped'));
    return this.#finished;
  }

  /** Marks the run over (once): timers off, temporary files gone, the service forgets it. */
  #end(): void {
    this.#done = true;
    clearTimeout(this.#firstTimer);
    clearTimeout(this.#uploadTimer);
    clearTimeout(this.#runTimer);
    this.#cleanup();
    this.#onDone();
    this.#resolveFinished();
  }

  #onScript(chunk: Uint8Array): void {
    const request = this.#request!;
    const script = this.#script;
    if (!script || request.command.kind !== 'script')
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'no script was announced');
    script.got += chunk.length;
    if (script.got > request.command.size)
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'the script is longer than announced');
    script.chunks.push(Buffer.from(chunk));
    clearTimeout(this.#uploadTimer);
    if (script.got < request.command.size) {
      this.#uploadTimer = setTimeout(
        () => this.#fail(new SwitchboardError(ErrorCode.TIMEOUT, 'the script stopped arriving')),
        PEER_SETUP_TIMEOUT_MS,
      );
      return;
    }
    const body = Buffer.concat(script.chunks);
    this.#script = undefined;
    if (createHash('sha256').update(body).digest('hex') !== request.command.sha256)
      throw new SwitchboardError(
        ErrorCode.SIGNATURE_INVALID,
        'the script is not the one the request was signed for (SHA-256 differs)',
      );
    this.#tmpDir = mkdtempSync(join(tmpdir(), 'switchboard-script-'));
    const file = join(this.#tmpDir, 'script');
    writeFileSync(file, body, { mode: 0o700 });
    this.#start([file, ...request.command.args]);
  }

  #onStdin(chunk: Uint8Array): void {
    const stdin = this.#child?.stdin;
    if (!this.#request?.stdin || !stdin || stdin.writableEnded) return;
    // Our controller waits for STDIN_ACKs; one that does not would fill this agent's memory.
    if (stdin.writableLength > EXEC_WINDOW_BYTES)
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'standard input past the window');
    const n = chunk.length;
    stdin.write(chunk, () => this.#channel.send(encodeCount(ExecType.STDIN_ACK, n)));
  }

  #start(argv: string[]): void {
    const request = this.#request!;
    const decision = this.#decision!;
    // Cancelled while its script was still arriving: it never starts.
    if (this.#reason) return this.#finish({ code: null, signal: null, reason: this.#reason });
    this.#startedAt = this.#now();
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: this.#config.cwd,
      env: this.#config.env(this.#peer.user),
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a cancel reaches everything it started.
      detached: true,
    });
    this.#child = child;
    child.stdin.on('error', () => undefined);
    if (!request.stdin) child.stdin.end();
    child.stdout.on('data', (chunk: Buffer) =>
      this.#guard(() => this.#output(ExecType.STDOUT, chunk, this.#out)),
    );
    child.stderr.on('data', (chunk: Buffer) =>
      this.#guard(() => this.#output(ExecType.STDERR, chunk, this.#err)),
    );
    child.once('error', (err: NodeJS.ErrnoException) => {
      // Never started (ENOENT, EACCES): 127/126 as a shell says it.
      this.#finish({
        code: err.code === 'ENOENT' ? 127 : 126,
        signal: null,
        reason: 'spawn-failed',
        message: spawnMessage(argv[0]!, err, request.command.kind === 'script'),
      });
    });
    child.once('spawn', () => {
      this.#channel.send(encodeJson(ExecType.STARTED, { rule: decision.rule, pid: child.pid }));
      const limit = Math.min(request.timeoutMs ?? Infinity, decision.maxRunMs);
      if (Number.isFinite(limit)) this.#runTimer = setTimeout(() => this.#kill('timeout'), limit);
    });
    child.once('close', (code, signal) => this.#finish({ code, signal }));
  }

  #output(type: number, chunk: Buffer, counter: OutputCounter): void {
    if (this.#reason === 'output-limit') return;
    const limit = this.#decision!.maxOutputBytes;
    const room = limit - this.#out.bytes - this.#err.bytes;
    let data = chunk;
    if (data.length > room) {
      data = data.subarray(0, Math.max(0, room));
      queueMicrotask(() => this.#kill('output-limit'));
    }
    counter.add(data);
    for (let at = 0; at < data.length; at += EXEC_CHUNK_BYTES)
      this.#channel.send(encodeData(type, data.subarray(at, at + EXEC_CHUNK_BYTES)));
    this.#sent += data.length;
    if (!this.#paused && this.#sent - this.#acked >= EXEC_WINDOW_BYTES) {
      this.#paused = true;
      this.#child?.stdout?.pause();
      this.#child?.stderr?.pause();
    }
  }

  /** SIGINT, then SIGTERM, then SIGKILL to the process group, EXEC_KILL_GRACE_MS apart. */
  #kill(reason: ExecEndReason): void {
    if (this.#done) return;
    if (this.#reason === undefined) this.#reason = reason;
    if (this.#killTimer) return;
    const child = this.#child;
    if (!child?.pid) return;
    // The output that would not fit is dropped; a paused reader must not keep it alive.
    if (reason === 'output-limit' || reason === 'interrupted') {
      child.stdout?.resume();
      child.stderr?.resume();
    }
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGKILL'];
    const pgid = child.pid;
    const next = (): void => {
      const signal = signals.shift();
      if (!signal) return;
      try {
        process.kill(-pgid, signal);
      } catch {
        return; // the group is gone
      }
      this.#killTimer = setTimeout(next, EXEC_KILL_GRACE_MS);
    };
    next();
  }

  #finish(end: Pick<ExecExit, 'code' | 'signal' | 'reason' | 'message'>): void {
    if (this.#done) return;
    this.#done = true;
    const reason = end.reason ?? this.#reason;
    const exit: ExecExit = {
      code: end.code,
      signal: end.signal,
      ...(reason ? { reason } : {}),
      ...(end.message
        ? { message: end.message }
        : reason === 'output-limit'
          ? {
              message: `stopped at the policy's output limit of ${this.#decision!.maxOutputBytes} bytes`,
            }
          : reason === 'timeout'
            ? { message: 'stopped at its time limit' }
            : reason === 'cancelled'
              ? { message: 'cancelled' }
              : {}),
      durationMs: this.#startedAt ? this.#now() - this.#startedAt : 0,
      stdout: this.#out.digest(),
      stderr: this.#err.digest(),
    };
    this.#channel.send(encodeJson(ExecType.EXIT, exit));
    void this.#channel.close('done');
    this.#record({ decision: 'allowed', rule: this.#decision!.rule, exit });
    this.#end();
  }

  #cleanup(): void {
    if (this.#tmpDir) rmSync(this.#tmpDir, { recursive: true, force: true });
    this.#tmpDir = undefined;
  }

  #refuse(refused: ExecRefused, request: ExecRequest | undefined): void {
    this.#done = true;
    this.#channel.send(encodeJson(ExecType.REFUSED, refused));
    void this.#channel.close('refused', refused.code);
    this.#host.notice(`refused ${this.#peer.user} (${this.#peer.fingerprint}): ${refused.message}`);
    this.#record(
      { decision: 'refused', rule: refused.rule, code: refused.code, message: refused.message },
      request,
    );
    this.#end();
  }

  #fail(err: unknown): void {
    const e = asError(err);
    if (this.#child && !this.#done) this.#kill('interrupted');
    else if (!this.#done) {
      // Ended before a command ran (a protocol error, a script that did not match or stopped
      // arriving): recorded too, if there was a request to record.
      this.#end();
      if (this.#request)
        this.#record({
          decision: this.#decision?.allowed ? 'allowed' : 'refused',
          rule: this.#decision?.rule ?? 'request',
          code: e.code,
          message: e.message,
        });
    }
    void this.#channel.close(e.message, e.code);
  }

  /** The controller went away: what runs is cancelled (as sshd hangs up a command). */
  #onChannelClosed(): void {
    clearTimeout(this.#firstTimer);
    if (this.#child && !this.#done) this.#kill('interrupted');
    else if (!this.#done && this.#request && !this.#child)
      this.#fail(new SwitchboardError(ErrorCode.CHANNEL_CLOSED, 'the requester went away first'));
    else if (!this.#done) this.#end();
  }

  #record(
    outcome: Pick<ExecRecord, 'decision' | 'rule' | 'code' | 'message' | 'exit'>,
    request: ExecRequest | undefined = this.#request,
  ): void {
    const command = request?.command;
    const entry: ExecRecord = {
      time: new Date(this.#now()).toISOString(),
      user: this.#peer.user,
      fingerprint: this.#peer.fingerprint,
      session: this.#host.sessionId ?? '',
      command: command ? describeCommand(command) : '(unreadable request)',
      kind: command?.kind ?? 'argv',
      ...(command?.kind === 'argv' ? { argv: command.argv } : {}),
      ...(command?.kind === 'script'
        ? { script: { name: command.name, sha256: command.sha256 } }
        : {}),
      ...outcome,
    };
    this.#host.emit('exec', entry);
  }
}

class OutputCounter {
  bytes = 0;
  readonly #hash = createHash('sha256');
  add(data: Uint8Array): void {
    this.bytes += data.length;
    this.#hash.update(data);
  }
  digest(): StreamDigest {
    return { bytes: this.bytes, sha256: this.#hash.digest('hex') };
  }
}

function askOf(request: ExecRequest): ExecAsk {
  const c = request.command;
  if (c.kind === 'argv') return { kind: 'argv', argv: c.argv };
  if (c.kind === 'shell') return { kind: 'shell', line: c.line };
  return { kind: 'script', name: c.name, sha256: c.sha256 };
}

function asError(err: unknown): SwitchboardError {
  return asSwitchboardError(err, 'the agent failed to run the request');
}

function spawnMessage(file: string, err: NodeJS.ErrnoException, script: boolean): string {
  if (script && (err.code === 'ENOEXEC' || err.code === 'EACCES'))
    return 'the script cannot be run: does it start with a #! line?';
  if (err.code === 'ENOENT') return `${file}: command not found`;
  if (err.code === 'EACCES') return `${file}: permission denied`;
  return `${file}: cannot run it (${err.code ?? 'error'})`;
}

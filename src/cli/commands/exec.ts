// `switchboard exec`: a command on one agent (like `ssh host cmd`) or on a fleet (like pssh).
import { signedCallOn } from '../../client/services/signed-call.js';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { constants as osConstants } from 'node:os';
import { openService } from '../../client/open-channel.js';
import { ExecCall, type ExecOutcome } from '../../client/services/exec.js';
import { SwitchboardError, type ErrorCode } from '../../protocol/errors.js';
import {
  EXEC_MAX_SCRIPT_BYTES,
  EXEC_SERVICE,
  type ExecCommand,
  type ExecExit,
} from '../../protocol/exec.js';
import type { SessionSummary } from '../../protocol/messages.js';
import { formatBytes, formatDuration, parseDuration } from '../../protocol/units.js';
import { CLIENT_OPTIONS, bool, str, type Command, type Invocation } from '../command.js';
import { connectAuthed, type Session } from '../client-context.js';
import { Exit, UsageError, exitCodeFor } from '../exit-codes.js';
import {
  FANOUT_CONNECT_TIMEOUT_MS,
  FANOUT_DEFAULT_PARALLEL,
  FanoutExitCode,
  FanoutStatus,
  countStates,
  fanoutExitCode,
  flushed,
  isSingleTarget,
  openOptions,
  parallelOption,
  runFanout,
  selectHosts,
  type FanoutRun,
  type HostState,
} from '../fanout.js';
import { TAG_OPTION, tagsOption } from '../tags.js';

/** Exit codes of a fan-out (the README lists them), and of one target at its --timeout. */
export const ExecExitCode = {
  /** At least one host ran the command and it failed (non-zero, signal, limit) or was refused. */
  SOME_FAILED: FanoutExitCode.SOME_FAILED,
  /** At least one host could not be reached (offline, no answer, lost mid-command). */
  SOME_UNREACHABLE: FanoutExitCode.SOME_UNREACHABLE,
  /** One target: the agent stopped the command at its --timeout (as timeout(1) exits). */
  TIMED_OUT: 124,
} as const;

/** Hosts running at once unless --parallel says otherwise. */
export const EXEC_DEFAULT_PARALLEL = FANOUT_DEFAULT_PARALLEL;
/** The agent must finish the E2E handshake within this, or it is reported unreachable. */
export const EXEC_CONNECT_TIMEOUT_MS = FANOUT_CONNECT_TIMEOUT_MS; // ms
/** What --group keeps of one host's output to print as a block; the rest is counted, not shown. */
export const EXEC_GROUP_BUFFER_BYTES = 16 * 1024 * 1024; // bytes

export const exec: Command = {
  name: 'exec',
  summary: 'Run a command on agents: one like `ssh host cmd`, many with live output and a summary.',
  usage: '[TARGET] [--tag KEY=VALUE]... [options] -- CMD [ARGS...]',
  details:
    "TARGET is a session ID, a comma-separated list, or a glob (quote it: 'web-*'); --tag selects\n" +
    'agents by their tags (all must match). The command runs as an argv, with no shell: ; | $ and\n' +
    "quotes reach it literally. --shell 'LINE' runs /bin/sh -c LINE and --script FILE runs a local\n" +
    "script with its #! interpreter, where the agent's policy allows it. Each request is signed by\n" +
    "this device's key and sent end to end; the agent checks the signature and its --policy.\n" +
    '\n' +
    'One session ID: stdout and stderr come through raw and apart, stdin is forwarded (-n: not),\n' +
    "and exec exits with the command's exit code (128+N for signal N, 124 at --timeout).\n" +
    'Several targets, a glob or --tag: --parallel at a time, each line prefixed with its host\n' +
    '(--group: each host in one block), a progress line on a terminal, a summary on stderr.\n' +
    'Exits 0 if every host succeeded, 6 if any failed or was refused, 7 if any was unreachable.\n' +
    'Ctrl-C cancels everywhere (SIGINT, then SIGTERM, then SIGKILL to the process group).\n' +
    '--json prints NDJSON events: start, stdout, stderr, exit or unreachable per host, then summary.',
  positionals: [0, Infinity],
  rest: true,
  options: {
    ...TAG_OPTION,
    tag: { ...TAG_OPTION.tag, description: 'agents with this tag (repeatable: all must match)' },
    shell: {
      type: 'string',
      value: 'LINE',
      description: 'run LINE through /bin/sh -c on the agent (if its policy allows)',
    },
    script: {
      type: 'string',
      value: 'FILE',
      description: `send FILE (up to ${formatBytes(EXEC_MAX_SCRIPT_BYTES)}) and run it with its #! interpreter`,
    },
    parallel: {
      type: 'string',
      value: 'N',
      description: `hosts at once (default ${EXEC_DEFAULT_PARALLEL})`,
    },
    timeout: {
      type: 'string',
      value: 'DURATION',
      description: 'stop the command after this long on each host (30s, 5m, 1h)',
    },
    group: { type: 'boolean', description: "print each host's output in one block as it finishes" },
    'out-dir': {
      type: 'string',
      value: 'DIR',
      description:
        "write each host's stdout and stderr to DIR, plus hosts.succeeded / hosts.failed",
    },
    'no-stdin': {
      type: 'boolean',
      short: 'n',
      description: 'one target: do not forward standard input (the command reads nothing)',
    },
    json: { type: 'boolean', description: 'print NDJSON events instead of text' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const request = parseRequest(inv);
    const session = await connectAuthed(inv);
    try {
      const hosts = await selectHosts(session.client, request.target, request.tags, 'exec');
      if (request.single && !request.json) return await runOne(inv, session, hosts[0]!, request);
      return await runMany(inv, session, hosts, request);
    } finally {
      session.client.close();
    }
  },
};

interface ExecRequestOptions {
  target: string | undefined;
  tags: Record<string, string>;
  command: ExecCommand;
  script?: Uint8Array;
  timeoutMs?: number;
  parallel: number;
  /** One literal session ID, no --tag: behaves like `ssh host cmd`. */
  single: boolean;
  json: boolean;
  group: boolean;
  outDir?: string;
}

function parseRequest(inv: Invocation): ExecRequestOptions {
  const tags = tagsOption(inv);
  const hasTags = Object.keys(tags).length > 0;
  // Without --, the first word is the target (unless --tag selects) and the rest the command.
  let target: string | undefined;
  let argv: string[];
  if (inv.rest) {
    if (inv.positionals.length > 1)
      throw new UsageError(
        `one TARGET before --, not "${inv.positionals.join(' ')}" (a list is comma-separated)`,
      );
    target = inv.positionals[0];
    argv = inv.rest;
  } else if (hasTags) {
    argv = inv.positionals;
  } else {
    target = inv.positionals[0];
    argv = inv.positionals.slice(1);
  }
  if (target === undefined && !hasTags)
    throw new UsageError('name a TARGET (session ID, list or glob) or --tag KEY=VALUE');
  const shell = str(inv, 'shell');
  const scriptFile = str(inv, 'script');
  const modes = [argv.length > 0, shell !== undefined, scriptFile !== undefined].filter(Boolean);
  if (modes.length !== 1)
    throw new UsageError(
      modes.length === 0
        ? 'no command: write it after -- (switchboard exec web-1 -- uname -a), or use --shell or --script'
        : 'give one of: a command after --, --shell LINE, --script FILE (arguments after -- go to the script)',
    );
  let command: ExecCommand;
  let script: Uint8Array | undefined;
  if (scriptFile !== undefined) {
    try {
      script = readFileSync(scriptFile);
    } catch (err) {
      throw new UsageError(
        `--script ${scriptFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
    if (script.length === 0) throw new UsageError(`--script ${scriptFile} is empty`);
    if (script.length > EXEC_MAX_SCRIPT_BYTES)
      throw new UsageError(
        `--script ${scriptFile} is ${formatBytes(script.length)}; at most ${formatBytes(EXEC_MAX_SCRIPT_BYTES)} (use switchboard push for files)`,
      );
    command = {
      kind: 'script',
      name: basename(scriptFile),
      sha256: createHash('sha256').update(script).digest('hex'),
      size: script.length,
      args: inv.rest ?? [],
    };
  } else if (shell !== undefined) {
    if (shell.trim() === '') throw new UsageError('--shell needs a command line');
    command = { kind: 'shell', line: shell };
  } else {
    command = { kind: 'argv', argv };
  }
  const timeoutText = str(inv, 'timeout');
  let timeoutMs: number | undefined;
  if (timeoutText !== undefined) {
    try {
      timeoutMs = parseDuration(timeoutText);
    } catch (err) {
      throw new UsageError(`--timeout: ${(err as Error).message}`);
    }
  }
  const parallel = parallelOption(inv);
  const single = isSingleTarget(target, tags);
  const outDir = str(inv, 'out-dir');
  return {
    target,
    tags,
    command,
    ...(script ? { script } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    parallel,
    single: single && !bool(inv, 'group') && outDir === undefined,
    json: bool(inv, 'json'),
    group: bool(inv, 'group'),
    ...(outDir !== undefined ? { outDir } : {}),
  };
}

function callOptions(session: Session, request: ExecRequestOptions) {
  return {
    ...openOptions(session, EXEC_SERVICE),
    command: request.command,
    ...(request.script ? { script: request.script } : {}),
    ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
  };
}

/** The exit status a shell would give: the code, or 128 + the signal's number. */
export function shellStatus(exit: ExecExit): number {
  if (exit.code !== null) return exit.code;
  const n = exit.signal ? osConstants.signals[exit.signal as NodeJS.Signals] : undefined;
  return n === undefined ? Exit.FAILURE : 128 + n;
}

/** One target, as `ssh host cmd`: raw output, stdin forwarded, the command's exit code. */
async function runOne(
  inv: Invocation,
  session: Session,
  host: SessionSummary,
  request: ExecRequestOptions,
): Promise<number> {
  const io = inv.io;
  const o = callOptions(session, request);
  const { channel, opened } = await openService(session.client, {
    ...o,
    target: { kind: 'session', sessionId: host.sessionId },
  });
  const forwardStdin = !bool(inv, 'no-stdin');
  const outHash = createHash('sha256');
  const errHash = createHash('sha256');
  const call = new ExecCall(
    {
      channel,
      user: o.user,
      key: o.key,
      session: host.sessionId,
      agentFingerprint: opened.host.fingerprint,
      command: o.command,
      ...(o.script ? { script: o.script } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      stdin: forwardStdin,
    },
    {
      onStdout: (data, done) => {
        outHash.update(data);
        writeOrDrop(io.stdout, data, done);
      },
      onStderr: (data, done) => {
        errHash.update(data);
        writeOrDrop(io.stderr, data, done);
      },
      onStdinDrain: () => io.stdin.resume(),
    },
  );
  const onData = (chunk: Buffer): void => {
    if (!call.writeStdin(chunk)) io.stdin.pause();
  };
  const onEnd = (): void => call.endStdin();
  if (forwardStdin) {
    io.stdin.on('data', onData);
    io.stdin.once('end', onEnd);
    io.stdin.on('error', onEnd);
    io.stdin.resume();
  }
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts += 1;
    if (interrupts === 1) call.cancel();
    else call.abandon('cancelled');
  };
  process.on('SIGINT', onSigint);
  // `exec box -- cat big | head`: the reader went away; stop the command, as ssh does on SIGPIPE.
  let pipeClosed = false;
  const onOutError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    if (!pipeClosed) call.cancel();
    pipeClosed = true;
  };
  io.stdout.on('error', onOutError);
  io.stderr.on('error', onOutError);
  let outcome: ExecOutcome;
  try {
    outcome = await call.result;
  } finally {
    process.removeListener('SIGINT', onSigint);
    io.stdout.removeListener('error', onOutError);
    io.stderr.removeListener('error', onOutError);
    if (forwardStdin) {
      io.stdin.removeListener('data', onData);
      io.stdin.removeListener('end', onEnd);
      io.stdin.removeListener('error', onEnd);
      io.stdin.pause();
      // A terminal or pipe nobody reads any more must not keep the process alive.
      (io.stdin as { unref?: () => void }).unref?.();
    }
  }
  if (pipeClosed) return EXIT_PIPE_CLOSED;
  await Promise.all([flushed(io.stdout), flushed(io.stderr)]);
  const name = `switchboard exec: ${host.sessionId}`;
  if (outcome.kind === 'refused') {
    io.stderr.write(`${name}: refused: ${outcome.refused.message} [${outcome.refused.code}]\n`);
    return exitCodeFor(new SwitchboardError(outcome.refused.code, outcome.refused.message));
  }
  if (outcome.kind === 'lost') {
    io.stderr.write(
      `${name}: the agent ${outcome.started ? 'was lost while the command ran' : 'did not run the command'}: ${outcome.message} [${outcome.code}]\n`,
    );
    return outcome.started
      ? Exit.FAILURE
      : exitCodeFor(new SwitchboardError(outcome.code as ErrorCode, outcome.message));
  }
  const exit = outcome.exit;
  if (
    outHash.digest('hex') !== exit.stdout.sha256 ||
    errHash.digest('hex') !== exit.stderr.sha256
  ) {
    io.stderr.write(`${name}: the output received differs from what the agent sent (SHA-256)\n`);
    return Exit.FAILURE;
  }
  if (exit.message) io.stderr.write(`${name}: ${exit.message}\n`);
  if (interrupts > 0) return Exit.INTERRUPTED;
  if (exit.reason === 'timeout') return ExecExitCode.TIMED_OUT;
  return shellStatus(exit);
}

/** What a shell reports for a program killed by SIGPIPE (128 + 13): `exec ... | head`. */
const EXIT_PIPE_CLOSED = 141;

/** Writes `data`, then calls `done`; a reader that went away (EPIPE) drops the rest, as ssh does. */
function writeOrDrop(out: NodeJS.WritableStream, data: Uint8Array, done: () => void): void {
  if ((out as WriteStream).destroyed) return done();
  out.write(data, () => done());
}

interface HostRun extends FanoutRun {
  outcome?: ExecOutcome;
  call?: ExecCall;
  bytes: { stdout: number; stderr: number };
  lines: { stdout: LineSplitter; stderr: LineSplitter };
  block?: { stdout: Buffer[]; stderr: Buffer[]; kept: number; dropped: number };
  files?: { stdout: string; stderr: string };
}

/** Many hosts (or --json): --parallel at once, live prefixed lines, a summary, exit 0/6/7. */
async function runMany(
  inv: Invocation,
  session: Session,
  hosts: SessionSummary[],
  request: ExecRequestOptions,
): Promise<number> {
  const io = inv.io;
  const o = callOptions(session, request);
  const out = new FleetOutput(inv, request, hosts);
  if (request.outDir) {
    try {
      mkdirSync(request.outDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new UsageError(
        `--out-dir ${request.outDir}: cannot create it (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
  }
  const runs: HostRun[] = hosts.map((host) => ({
    host,
    state: 'pending',
    bytes: { stdout: 0, stderr: 0 },
    lines: { stdout: new LineSplitter(), stderr: new LineSplitter() },
    ...(request.group ? { block: { stdout: [], stderr: [], kept: 0, dropped: 0 } } : {}),
    ...(request.outDir
      ? {
          files: {
            stdout: join(request.outDir, `${host.sessionId}.stdout`),
            stderr: join(request.outDir, `${host.sessionId}.stderr`),
          },
        }
      : {}),
  }));
  // This run's files only: what an earlier run left for these hosts goes first.
  for (const run of runs)
    if (run.files) for (const f of [run.files.stdout, run.files.stderr]) rmSync(f, { force: true });
  const { interrupts } = await runFanout({
    client: session.client,
    open: o,
    runs,
    parallel: request.parallel,
    view: out,
    work: async (run, opened) => {
      const call = new ExecCall(
        {
          ...signedCallOn(opened, o, run.host.sessionId),
          command: o.command,
          ...(o.script ? { script: o.script } : {}),
          ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
          stdin: false,
        },
        {
          onStdout: (data, done) => out.data(run, 'stdout', data, done),
          onStderr: (data, done) => out.data(run, 'stderr', data, done),
        },
      );
      run.call = call;
      const outcome = await call.result.finally(() => (run.call = undefined));
      run.outcome = outcome;
      if (outcome.kind === 'lost')
        return {
          state: 'unreachable',
          problem: {
            code: outcome.code,
            message: outcome.started
              ? `lost while the command ran: ${outcome.message}`
              : outcome.message,
          },
        };
      if (outcome.kind === 'refused')
        return {
          state: 'failed',
          problem: { code: outcome.refused.code, message: outcome.refused.message },
        };
      return {
        state:
          outcome.exit.code === 0 && outcome.exit.reason === undefined ? 'succeeded' : 'failed',
      };
    },
    interrupt: (run, first) => {
      if (first) run.call?.cancel();
      else run.call?.abandon('cancelled');
    },
  });
  out.summary(runs);
  if (request.outDir) {
    const names = (states: HostState[]) =>
      runs
        .filter((r) => states.includes(r.state))
        .map((r) => `${r.host.sessionId}\n`)
        .join('');
    writeFileSync(join(request.outDir, 'hosts.succeeded'), names(['succeeded']), { mode: 0o600 });
    writeFileSync(
      join(request.outDir, 'hosts.failed'),
      names(['failed', 'unreachable', 'cancelled']),
      {
        mode: 0o600,
      },
    );
    writeFileSync(join(request.outDir, 'hosts.unreachable'), names(['unreachable']), {
      mode: 0o600,
    });
  }
  await Promise.all([flushed(io.stdout), flushed(io.stderr)]);
  return fanoutExitCode(runs, interrupts);
}

/** Splits a byte stream into whole lines (the last partial one kept until more comes or the end). */
class LineSplitter {
  #partial: Buffer = Buffer.alloc(0);
  push(data: Uint8Array): Buffer[] {
    const buf = this.#partial.length ? Buffer.concat([this.#partial, data]) : Buffer.from(data);
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      lines.push(buf.subarray(start, nl + 1));
      start = nl + 1;
    }
    this.#partial = buf.subarray(start);
    return lines;
  }
  end(): Buffer | undefined {
    const rest = this.#partial;
    this.#partial = Buffer.alloc(0);
    return rest.length > 0 ? Buffer.concat([rest, Buffer.from('\n')]) : undefined;
  }
}

const COLOURS = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92];

/** Everything a fan-out prints: prefixed lines or blocks, NDJSON, progress, files, summary. */
class FleetOutput {
  readonly #io: Invocation['io'];
  readonly #r: ExecRequestOptions;
  readonly #width: number;
  readonly #colour: boolean;
  readonly #status: FanoutStatus;
  readonly #decoders = new Map<string, StringDecoder>();

  constructor(inv: Invocation, request: ExecRequestOptions, hosts: SessionSummary[]) {
    this.#io = inv.io;
    this.#r = request;
    this.#width = Math.min(32, Math.max(...hosts.map((h) => h.sessionId.length)));
    const noColour = inv.io.env['NO_COLOR'] !== undefined && inv.io.env['NO_COLOR'] !== '';
    this.#colour = Boolean(inv.io.stdout.isTTY) && !noColour;
    this.#status = new FanoutStatus(inv.io.stderr, Boolean(inv.io.stderr.isTTY) && !request.json);
  }

  #event(event: Record<string, unknown>): void {
    this.#io.stdout.write(`${JSON.stringify(event)}\n`);
  }

  #prefix(run: HostRun): string {
    const name = run.host.sessionId.padEnd(this.#width);
    if (!this.#colour) return `${name} | `;
    const hash = [...run.host.sessionId].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
    return `\x1b[${COLOURS[hash % COLOURS.length]}m${name}\x1b[0m | `;
  }

  progress(runs: readonly HostRun[]): void {
    this.#status.progress(runs);
  }

  started(run: HostRun): void {
    if (this.#r.json) this.#event({ event: 'start', host: run.host.sessionId });
  }

  /** Appends to a host's --out-dir file (emptied at the start of the run); a failure (disk full) is said once and stops its files. */
  #appendFile(run: HostRun, file: string, data: Uint8Array): void {
    if (!run.files) return;
    try {
      writeFileSync(file, data, { flag: 'a', mode: 0o600 });
    } catch (err) {
      run.files = undefined;
      this.#status.clear();
      this.#io.stderr.write(
        `switchboard exec: ${run.host.sessionId}: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); its output goes on without --out-dir\n`,
      );
    }
  }

  data(run: HostRun, stream: 'stdout' | 'stderr', data: Uint8Array, done: () => void): void {
    run.bytes[stream] += data.length;
    if (run.files) this.#appendFile(run, run.files[stream], data);
    if (this.#r.json) {
      const key = `${run.host.sessionId}\0${stream}`;
      let decoder = this.#decoders.get(key);
      if (!decoder) this.#decoders.set(key, (decoder = new StringDecoder('utf8')));
      const text = decoder.write(Buffer.from(data));
      if (text) this.#event({ event: stream, host: run.host.sessionId, data: text });
      return done();
    }
    if (run.block) {
      const room = EXEC_GROUP_BUFFER_BYTES - run.block.kept;
      if (data.length <= room) {
        run.block[stream].push(Buffer.from(data));
        run.block.kept += data.length;
      } else run.block.dropped += data.length;
      return done();
    }
    const lines = run.lines[stream].push(data);
    if (lines.length === 0) return done();
    this.#status.clear();
    const sink = stream === 'stdout' ? this.#io.stdout : this.#io.stderr;
    const prefix = this.#prefix(run);
    sink.write(lines.map((l) => `${prefix}${l.toString('utf8')}`).join(''), () => done());
  }

  finished(run: HostRun): void {
    const name = run.host.sessionId;
    if (!this.#r.json && !run.block) {
      for (const stream of ['stdout', 'stderr'] as const) {
        const rest = run.lines[stream].end();
        if (!rest) continue;
        this.#status.clear();
        (stream === 'stdout' ? this.#io.stdout : this.#io.stderr).write(
          `${this.#prefix(run)}${rest.toString('utf8')}`,
        );
      }
    }
    if (run.block && !this.#r.json && run.state !== 'cancelled') {
      this.#status.clear();
      this.#io.stdout.write(`── ${name}: ${this.#verdict(run)} ──\n`);
      for (const b of run.block.stdout) this.#io.stdout.write(b);
      for (const b of run.block.stderr) this.#io.stderr.write(b);
      if (run.block.dropped > 0)
        this.#io.stdout.write(
          `[${formatBytes(run.block.dropped)} more not shown; --out-dir keeps all of it]\n`,
        );
      // Printed: not kept until the end (a thousand hosts would hold their output all along).
      run.block = { stdout: [], stderr: [], kept: 0, dropped: 0 };
    }
    if (this.#r.json) {
      const exit = run.outcome?.kind === 'exit' ? run.outcome.exit : undefined;
      this.#event({
        event:
          run.state === 'unreachable'
            ? 'unreachable'
            : run.state === 'cancelled'
              ? 'cancelled'
              : 'exit',
        host: name,
        state: run.state,
        ...(exit ? { code: exit.code, signal: exit.signal } : {}),
        ...(exit?.reason ? { reason: exit.reason } : {}),
        ...(exit?.message ? { message: exit.message } : {}),
        ...(run.problem ? { error: run.problem } : {}),
        ...(run.durationMs !== undefined ? { durationMs: Math.round(run.durationMs) } : {}),
        ...(exit ? { stdout: exit.stdout, stderr: exit.stderr } : {}),
      });
    }
  }

  #verdict(run: HostRun): string {
    const exit = run.outcome?.kind === 'exit' ? run.outcome.exit : undefined;
    if (run.state === 'unreachable') return `unreachable: ${run.problem?.message ?? ''}`;
    if (run.state === 'cancelled') return 'not run (cancelled)';
    if (run.problem) return `refused: ${run.problem.message}`;
    if (!exit) return run.state;
    const status = exit.code !== null ? `exit ${exit.code}` : `signal ${exit.signal ?? '?'}`;
    return exit.message ? `${status} (${exit.message})` : status;
  }

  summary(runs: HostRun[]): void {
    if (this.#r.json) {
      const { running: _running, ...totals } = countStates(runs);
      this.#event({
        event: 'summary',
        hosts: runs.length,
        ...totals,
        ...(this.#r.outDir ? { outDir: this.#r.outDir } : {}),
      });
      return;
    }
    this.#status.summary(runs, [
      { head: 'STATUS', cell: (r) => this.#verdict(r) },
      {
        head: 'TIME',
        cell: (r) => (r.durationMs !== undefined ? formatDuration(r.durationMs) : '-'),
      },
      {
        head: 'STDOUT / STDERR',
        cell: (r) =>
          r.state === 'unreachable' || r.state === 'cancelled'
            ? '-'
            : `${formatBytes(r.bytes.stdout)} / ${formatBytes(r.bytes.stderr)}`,
      },
    ]);
  }
}

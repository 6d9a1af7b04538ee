// `switchboard push FILE... TARGET:DIR`: files to a fleet of agents, each verified by SHA-256 at the agent.
import { signedCallOn } from '../../client/services/signed-call.js';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { PushCall, type LocalFile, type PushOutcome } from '../../client/services/push.js';
import {
  PUSH_MAX_FILES,
  PUSH_MAX_TOTAL_BYTES,
  PUSH_SERVICE,
  pushFileNameProblem,
  type PushFileResult,
} from '../../protocol/push.js';
import { formatBytes, formatDuration } from '../../protocol/units.js';
import { CLIENT_OPTIONS, bool, type Command, type Invocation } from '../command.js';
import { connectAuthed } from '../client-context.js';
import { UsageError } from '../exit-codes.js';
import {
  FANOUT_DEFAULT_PARALLEL,
  FanoutStatus,
  REFUSAL_CODES,
  countStates,
  fanoutExitCode,
  flushed,
  openOptions,
  parallelOption,
  runFanout,
  selectHosts,
  type FanoutRun,
} from '../fanout.js';
import { TAG_OPTION, tagsOption } from '../tags.js';

/** Bytes read at a time while hashing a local file. */
const HASH_READ_BYTES = 1024 * 1024; // bytes

export const push: Command = {
  name: 'push',
  summary: 'Copy files to agents: verified by SHA-256, written under a temporary name, renamed.',
  usage: 'FILE... TARGET:DIR [--tag KEY=VALUE]... [options]',
  details:
    "TARGET is a session ID, a comma-separated list, or a glob (quote it: 'web-*:/srv/app'); with\n" +
    '--tag, write :DIR (or TARGET:DIR to narrow further). DIR is absolute, on the agents.\n' +
    'Each FILE is read and hashed once, before any agent is contacted; the request (names,\n' +
    "sizes, modes, SHA-256s) is signed by this device's key and sent end to end. Each agent\n" +
    'writes every file to a temporary name in DIR, checks its SHA-256, keeps its mode, and renames\n' +
    'it into place; a file that fails (or changes here mid-push) is removed, never left half\n' +
    "written. --mkdir creates a missing DIR where the agent's --policy allows it.\n" +
    'A progress line on a terminal, a summary per host on stderr. Exits 0 if every file reached\n' +
    'every host, 6 if any host refused or failed a file, 7 if any host was unreachable.\n' +
    '--json prints NDJSON events: start, file (one per file), done per host, then summary.',
  positionals: [1, Infinity],
  options: {
    ...TAG_OPTION,
    tag: { ...TAG_OPTION.tag, description: 'agents with this tag (repeatable: all must match)' },
    parallel: {
      type: 'string',
      value: 'N',
      description: `hosts at once (default ${FANOUT_DEFAULT_PARALLEL})`,
    },
    mkdir: {
      type: 'boolean',
      description: "create DIR if it is missing (where the agent's policy allows it)",
    },
    json: { type: 'boolean', description: 'print NDJSON events instead of text' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const request = parseRequest(inv);
    const files = await readLocalFiles(request.paths);
    const session = await connectAuthed(inv);
    try {
      const hosts = await selectHosts(session.client, request.target, request.tags, 'push');
      const open = openOptions(session, PUSH_SERVICE);
      const out = new PushOutput(inv, request.json);
      const runs: PushRun[] = hosts.map((host) => ({
        host,
        state: 'pending',
        files: [],
        bytes: 0,
      }));
      const { interrupts } = await runFanout({
        client: session.client,
        open,
        runs,
        parallel: request.parallel,
        view: out,
        work: async (run, opened) => {
          const call = new PushCall(
            {
              ...signedCallOn(opened, open, run.host.sessionId),
              dir: request.dir,
              mkdir: request.mkdir,
              files,
            },
            { onFile: (result) => out.file(run, result) },
          );
          run.call = call;
          const outcome = await call.result.finally(() => (run.call = undefined));
          run.outcome = outcome;
          return verdictOf(outcome, files.length);
        },
        interrupt: (run) => run.call?.abandon('cancelled'),
      });
      out.summary(runs, files);
      await Promise.all([flushed(inv.io.stdout), flushed(inv.io.stderr)]);
      return fanoutExitCode(runs, interrupts);
    } finally {
      session.client.close();
    }
  },
};

interface PushOptions {
  paths: string[];
  target: string | undefined;
  tags: Record<string, string>;
  dir: string;
  mkdir: boolean;
  parallel: number;
  json: boolean;
}

/** FILE... TARGET:DIR: the last word is where to; TARGET may be empty with --tag. */
function parseRequest(inv: Invocation): PushOptions {
  const tags = tagsOption(inv);
  const words = inv.positionals;
  const dest = words[words.length - 1]!;
  const paths = words.slice(0, -1);
  const colon = dest.indexOf(':');
  if (colon < 0)
    throw new UsageError(
      `the last argument is where to: TARGET:DIR (or :DIR with --tag), not "${dest}"`,
    );
  if (paths.length === 0) throw new UsageError(`no FILE to push to ${dest}`);
  const target = dest.slice(0, colon) || undefined;
  const dir = dest.slice(colon + 1);
  const hasTags = Object.keys(tags).length > 0;
  if (target === undefined && !hasTags)
    throw new UsageError(`"${dest}": name a TARGET before the colon, or select agents with --tag`);
  if (!dir.startsWith('/'))
    throw new UsageError(
      `"${dest}": DIR must be an absolute directory on the agents, like web-1:/srv/app`,
    );
  return {
    paths,
    target,
    tags,
    dir,
    mkdir: bool(inv, 'mkdir'),
    parallel: parallelOption(inv),
    json: bool(inv, 'json'),
  };
}

/**
 * Each FILE stat'ed, named and hashed once, before any agent is contacted: a missing,
 * unreadable or non-regular FILE, a name an agent would refuse, two files of one name, or too
 * much in all is a usage error naming it.
 */
export async function readLocalFiles(paths: readonly string[]): Promise<LocalFile[]> {
  if (paths.length > PUSH_MAX_FILES)
    throw new UsageError(`${paths.length} files; at most ${PUSH_MAX_FILES} in one push`);
  const files: LocalFile[] = [];
  const names = new Map<string, string>();
  let total = 0;
  for (const path of paths) {
    const name = basename(path);
    const problem = pushFileNameProblem(name);
    if (problem)
      throw new UsageError(`${path}: cannot push it under the name "${name}": ${problem}`);
    const other = names.get(name);
    if (other !== undefined)
      throw new UsageError(`${other} and ${path} would both be ${name} on the agents`);
    names.set(name, path);
    const file = await hashFile(path, name);
    total += file.size;
    if (total > PUSH_MAX_TOTAL_BYTES)
      throw new UsageError(
        `the files come to more than ${formatBytes(PUSH_MAX_TOTAL_BYTES)}; at most that in one push`,
      );
    files.push(file);
  }
  return files;
}

async function hashFile(path: string, name: string): Promise<LocalFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw new UsageError(`${path}: cannot read it (${osReason(err)})`);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new UsageError(`${path} is a directory; push sends files`);
    if (!stat.isFile()) throw new UsageError(`${path} is not a regular file`);
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, Math.max(1, stat.size)));
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    const after = await handle.stat();
    if (size !== stat.size || after.size !== stat.size || after.mtimeMs !== stat.mtimeMs)
      throw new UsageError(`${path} changed while it was being read; try again`);
    return {
      path,
      name,
      size,
      mode: stat.mode & 0o777,
      sha256: hash.digest('hex'),
      mtimeMs: stat.mtimeMs,
    };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${path}: cannot read it (${osReason(err)})`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

interface PushRun extends FanoutRun {
  call?: PushCall;
  outcome?: PushOutcome;
  /** The agent's results, as they came. */
  files: PushFileResult[];
  /** Bytes of the files written. */
  bytes: number;
}

/** Succeeded only if every file was written; a refusal or any failed file is a failure. */
function verdictOf(outcome: PushOutcome, expected: number) {
  switch (outcome.kind) {
    case 'refused':
      return {
        state: 'failed' as const,
        problem: { code: outcome.refused.code, message: outcome.refused.message },
      };
    case 'lost':
      return {
        state: 'unreachable' as const,
        problem: {
          code: outcome.code,
          message: outcome.accepted
            ? `lost after ${outcome.files.length} of ${expected} files: ${outcome.message}`
            : outcome.message,
        },
      };
    case 'done': {
      const written = outcome.files.filter((f) => f.result === 'written').length;
      return { state: written === expected ? ('succeeded' as const) : ('failed' as const) };
    }
  }
}

/** Everything a push prints: per-file failures, NDJSON, progress, the summary. */
class PushOutput {
  readonly #io: Invocation['io'];
  readonly #json: boolean;
  readonly #status: FanoutStatus;

  constructor(inv: Invocation, json: boolean) {
    this.#io = inv.io;
    this.#json = json;
    this.#status = new FanoutStatus(inv.io.stderr, Boolean(inv.io.stderr.isTTY) && !json);
  }

  #event(event: Record<string, unknown>): void {
    this.#io.stdout.write(`${JSON.stringify(event)}\n`);
  }

  started(run: PushRun): void {
    if (this.#json) this.#event({ event: 'start', host: run.host.sessionId });
  }

  file(run: PushRun, result: PushFileResult): void {
    run.files.push(result);
    if (result.result === 'written') run.bytes += result.bytes;
    if (this.#json) {
      this.#event({
        event: 'file',
        host: run.host.sessionId,
        name: result.name,
        result: result.result,
        bytes: result.bytes,
        ...(result.error ? { error: result.error } : {}),
      });
    } else if (result.result !== 'written') {
      this.#status.clear();
      this.#io.stderr.write(`${run.host.sessionId}: ${result.name}: ${result.error ?? 'failed'}\n`);
    }
  }

  finished(run: PushRun): void {
    if (!this.#json) return;
    const written = run.files.filter((f) => f.result === 'written').length;
    this.#event({
      event: 'done',
      host: run.host.sessionId,
      state: run.state,
      written,
      failed: run.files.length - written,
      bytes: run.bytes,
      ...(run.outcome?.kind === 'done' ? { dir: run.outcome.accepted.dir } : {}),
      ...(run.problem ? { error: run.problem } : {}),
      ...(run.durationMs !== undefined ? { durationMs: Math.round(run.durationMs) } : {}),
    });
  }

  progress(runs: readonly PushRun[]): void {
    this.#status.progress(runs);
  }

  summary(runs: PushRun[], files: readonly LocalFile[]): void {
    if (this.#json) {
      const { running: _running, ...totals } = countStates(runs);
      this.#event({
        event: 'summary',
        hosts: runs.length,
        ...totals,
        files: files.length,
        bytes: files.reduce((n, f) => n + f.size, 0),
      });
      return;
    }
    const reached = (r: PushRun) => r.state !== 'unreachable' && r.state !== 'cancelled';
    this.#status.summary(runs, [
      {
        head: 'FILES',
        cell: (r) =>
          reached(r)
            ? `${r.files.filter((f) => f.result === 'written').length}/${files.length}`
            : '-',
      },
      { head: 'BYTES', cell: (r) => (reached(r) ? formatBytes(r.bytes) : '-') },
      {
        head: 'TIME',
        cell: (r) => (r.durationMs !== undefined ? formatDuration(r.durationMs) : '-'),
      },
      { head: 'STATUS', cell: (r) => statusOf(r, files.length) },
    ]);
  }
}

/** One host's outcome in a few words, for the summary. */
function statusOf(run: PushRun, expected: number): string {
  if (run.state === 'cancelled') return 'not run (cancelled)';
  if (run.outcome?.kind === 'done') {
    const failed = run.files.filter((f) => f.result !== 'written').length;
    return failed === 0
      ? `written to ${run.outcome.accepted.dir}`
      : `${failed} of ${expected} files failed`;
  }
  if (run.problem) {
    const how =
      run.state === 'unreachable'
        ? 'unreachable'
        : REFUSAL_CODES.has(run.problem.code)
          ? 'refused'
          : 'failed';
    return `${how}: ${run.problem.message}`;
  }
  return run.state;
}

function osReason(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}

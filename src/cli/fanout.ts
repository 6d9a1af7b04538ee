// The fan-out exec and push share: choosing agents, running --parallel at a time, progress, summary, exit codes 0/6/7, Ctrl-C.
//
// Hosts are opened in batches with one `channel.fanout` each (the relay answers every target
// apart), then the E2E handshake per host; what runs on each channel is the command's own
// (`work`). Offline agents are reported at once and hosts that do not answer within the connect
// timeout are unreachable, never waited on for ever.
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { KnownPeers } from '../client/known-peers.js';
import {
  secureOpened,
  type OpenServiceOptions,
  type OpenedService,
} from '../client/open-channel.js';
import type { RelayClient } from '../client/relay-client.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { FANOUT_MAX_TARGETS } from '../protocol/limits.js';
import type { Results, SessionSummary } from '../protocol/messages.js';
import { numberOption, str, type Invocation } from './command.js';
import type { Session } from './client-context.js';
import { Exit, UsageError } from './exit-codes.js';
import { FILES } from './home.js';

/** Exit codes of a fan-out (the README lists them). */
export const FanoutExitCode = {
  /** At least one host was reached and failed (or refused). */
  SOME_FAILED: 6,
  /** At least one host could not be reached (offline, no answer, lost mid-way). */
  SOME_UNREACHABLE: 7,
} as const;

/** Hosts worked on at once unless --parallel says otherwise. */
export const FANOUT_DEFAULT_PARALLEL = 32;
/** The agent must finish the E2E handshake within this, or it is reported unreachable. */
export const FANOUT_CONNECT_TIMEOUT_MS = 10_000; // ms

const GLOB_CHARS = /[*?[]/;

/** `--parallel N` (1 to FANOUT_MAX_TARGETS), else FANOUT_DEFAULT_PARALLEL. */
export function parallelOption(inv: Invocation): number {
  return (
    numberOption(str(inv, 'parallel'), 'parallel', 1, FANOUT_MAX_TARGETS, true) ??
    FANOUT_DEFAULT_PARALLEL
  );
}

/** One literal session ID and no --tag: the command may behave as for one host. */
export function isSingleTarget(target: string | undefined, tags: Record<string, string>): boolean {
  return (
    target !== undefined &&
    Object.keys(tags).length === 0 &&
    !target.includes(',') &&
    !GLOB_CHARS.test(target)
  );
}

/** A glob over session IDs: `*` any run, `?` one character, `[...]` a class. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) throw new UsageError(`"${glob}": a [ without its ]`);
      const body = glob
        .slice(i + 1, end)
        .replace(/^!/, '^')
        .replace(/[\\\]]/g, '\\$&');
      re += `[${body}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The sessions TARGET and --tag name, among those the relay lists for me. Nothing matching is
 * a usage error that says what exists; a literal ID not listed is one too. `command` names the
 * command in the message for a share ("exec runs on agents").
 */
export async function selectHosts(
  client: RelayClient,
  target: string | undefined,
  tags: Record<string, string>,
  command: string,
): Promise<SessionSummary[]> {
  const hasTags = Object.keys(tags).length > 0;
  const { sessions } = await client.request('sessions.list', hasTags ? { tags } : {});
  const agents = sessions.filter((s) => s.kind === 'agent');
  const exists = (): string => {
    const names = agents.map((s) => s.sessionId);
    if (names.length === 0)
      return hasTags
        ? 'no agent you may reach has those tags (switchboard sessions lists what you may reach)'
        : 'you may reach no agent (switchboard sessions lists sessions)';
    const shown = names.slice(0, 20).join(', ');
    return `agents you may reach${hasTags ? ' with those tags' : ''}: ${shown}${names.length > 20 ? `, and ${names.length - 20} more` : ''}`;
  };
  if (target === undefined) {
    if (agents.length === 0) throw new UsageError(exists());
    return agents;
  }
  const chosen = new Map<string, SessionSummary>();
  for (const pattern of target.split(',').map((p) => p.trim())) {
    if (pattern === '') throw new UsageError(`"${target}": an empty name in the list`);
    if (GLOB_CHARS.test(pattern)) {
      const re = globRegExp(pattern);
      const hits = agents.filter((s) => re.test(s.sessionId));
      if (hits.length === 0) throw new UsageError(`"${pattern}" matches no agent; ${exists()}`);
      for (const s of hits) chosen.set(s.sessionId, s);
    } else {
      const hit = agents.find((s) => s.sessionId === pattern);
      if (!hit) {
        const share = sessions.find((s) => s.sessionId === pattern);
        throw new UsageError(
          share
            ? `"${pattern}" is a share, not an agent: ${command} runs on agents (switchboard agent)`
            : `no agent "${pattern}"${hasTags ? ' with those tags' : ''}; ${exists()}`,
        );
      }
      chosen.set(hit.sessionId, hit);
    }
  }
  return [...chosen.values()];
}

/** How the opener proves itself and checks each agent: this device, its pins, the connect timeout. */
/** What the CLI opens services with: its own device key (a DeviceKeyPair, which signs calls too). */
export type CliOpenOptions = Omit<OpenServiceOptions, 'target' | 'key'> & { key: DeviceKeyPair };

export function openOptions(session: Session, service: string): CliOpenOptions {
  return {
    service,
    user: session.me.user,
    key: session.home.deviceKey(),
    server: session.login.server,
    knownPeers: new KnownPeers(session.home.path(FILES.knownPeers)),
    timeoutMs: FANOUT_CONNECT_TIMEOUT_MS,
  };
}

export type HostState =
  'pending' | 'running' | 'succeeded' | 'failed' | 'unreachable' | 'cancelled';

export interface Problem {
  code: string;
  message: string;
}

/** One host of a fan-out; commands extend it with what they keep per host. */
export interface FanoutRun {
  host: SessionSummary;
  state: HostState;
  /** performance.now() when its channel was asked for. */
  startedAt?: number;
  durationMs?: number;
  /** Why it failed, is unreachable or was not run. */
  problem?: Problem;
}

/** How a host's work ended. */
export type Verdict =
  { state: 'succeeded' | 'failed'; problem?: Problem } | { state: 'unreachable'; problem: Problem };

/** What the runner tells the command's output about. */
export interface FanoutView<R extends FanoutRun> {
  /** The channel is open and the work begins. */
  started(run: R): void;
  /** `run.state` is final. */
  finished(run: R): void;
  progress(runs: readonly R[]): void;
}

export interface FanoutOptions<R extends FanoutRun> {
  client: RelayClient;
  open: CliOpenOptions;
  runs: R[];
  parallel: number;
  view: FanoutView<R>;
  /** The command's work on one host's open channel; what it throws counts as unreachable. */
  work(run: R, opened: OpenedService): Promise<Verdict>;
  /** Ctrl-C while `run` works: the first asks to stop (`first`), later ones give up on it. */
  interrupt(run: R, first: boolean): void;
}

/** Refusals by the relay or the agent: the host was reached and said no (failed, not unreachable). */
export const REFUSAL_CODES = new Set<string>([
  ErrorCode.NOT_ALLOWED,
  ErrorCode.DENIED,
  ErrorCode.SERVICE_UNAVAILABLE,
  ErrorCode.SIGNATURE_INVALID,
  ErrorCode.REQUEST_REPLAYED,
  ErrorCode.REQUEST_STALE,
]);

/**
 * Runs `work` on every host, `parallel` at a time, until all are done or Ctrl-C cancelled the
 * rest; returns how many times SIGINT came. Every run ends in a final state.
 */
export async function runFanout<R extends FanoutRun>(
  o: FanoutOptions<R>,
): Promise<{ interrupts: number }> {
  const { runs, view } = o;
  const queue = [...runs];
  const working = new Set<R>();
  let cancelled = false;
  let interrupts = 0;
  let running = 0;
  let wake!: () => void;
  const settled = new Promise<void>((resolve) => (wake = resolve));
  const checkDone = (): void => {
    if (running === 0 && (queue.length === 0 || cancelled)) wake();
  };
  const finish = (run: R, state: HostState, problem?: Problem): void => {
    run.state = state;
    if (problem) run.problem = problem;
    if (run.startedAt !== undefined && state !== 'cancelled')
      run.durationMs = performance.now() - run.startedAt;
    view.finished(run);
  };
  // Offline agents are reported at once, never waited on.
  for (const run of runs)
    if (!run.host.live) {
      queue.splice(queue.indexOf(run), 1);
      finish(run, 'unreachable', {
        code: ErrorCode.SESSION_OFFLINE,
        message: 'the agent is offline',
      });
    }

  const launch = async (): Promise<void> => {
    const batch = queue.splice(0, Math.max(0, o.parallel - running));
    if (batch.length === 0 || cancelled) return checkDone();
    running += batch.length;
    for (const run of batch) {
      run.state = 'running';
      run.startedAt = performance.now();
    }
    view.progress(runs);
    let results: Results['channel.fanout']['results'];
    try {
      ({ results } = await o.client.request('channel.fanout', {
        service: o.open.service,
        targets: batch.map((r) => ({ kind: 'session' as const, sessionId: r.host.sessionId })),
      }));
    } catch (err) {
      const e = problemOf(err);
      results = batch.map(() => ({ error: e }));
    }
    batch.forEach((run, i) => void runHost(run, results[i]!));
  };

  const runHost = async (
    run: R,
    result: Results['channel.fanout']['results'][number],
  ): Promise<void> => {
    try {
      if ('error' in result) {
        finish(run, REFUSAL_CODES.has(result.error.code) ? 'failed' : 'unreachable', result.error);
        return;
      }
      let opened: OpenedService;
      try {
        opened = await secureOpened(o.client, result, { ...o.open, target: result.target });
      } catch (err) {
        const e = problemOf(err);
        const refused = REFUSAL_CODES.has(e.code) || e.code === ErrorCode.PEER_KEY_CHANGED;
        finish(run, refused ? 'failed' : 'unreachable', e);
        return;
      }
      if (cancelled) {
        void opened.channel.close('cancelled');
        finish(run, 'cancelled');
        return;
      }
      view.started(run);
      working.add(run);
      let verdict: Verdict;
      try {
        verdict = await o.work(run, opened);
      } catch (err) {
        verdict = { state: 'unreachable', problem: problemOf(err) };
      } finally {
        working.delete(run);
      }
      finish(run, verdict.state, verdict.problem);
    } finally {
      running -= 1;
      view.progress(runs);
      void launch();
      checkDone();
    }
  };

  const onSigint = (): void => {
    interrupts += 1;
    cancelled = true;
    for (const run of queue.splice(0)) finish(run, 'cancelled');
    for (const run of working) o.interrupt(run, interrupts === 1);
    checkDone();
  };
  process.on('SIGINT', onSigint);
  try {
    void launch();
    checkDone();
    await settled;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  return { interrupts };
}

function problemOf(err: unknown): Problem {
  const e = err instanceof SwitchboardError ? err : undefined;
  return { code: e?.code ?? ErrorCode.INTERNAL, message: e?.message ?? String(err) };
}

/** 130 after Ctrl-C, else 7 if any host was unreachable, 6 if any failed, 0 if all succeeded. */
export function fanoutExitCode(runs: readonly FanoutRun[], interrupts: number): number {
  if (interrupts > 0) return Exit.INTERRUPTED;
  if (runs.some((r) => r.state === 'unreachable')) return FanoutExitCode.SOME_UNREACHABLE;
  if (runs.some((r) => r.state !== 'succeeded')) return FanoutExitCode.SOME_FAILED;
  return Exit.OK;
}

/** Resolves once what was written to `out` so far is flushed (at once if it was destroyed). */
export function flushed(out: NodeJS.WritableStream): Promise<void> {
  const w = out as NodeJS.WritableStream & { destroyed?: boolean; writableLength?: number };
  if (w.destroyed || !w.writableLength) return Promise.resolve();
  return new Promise((resolve) => out.write('', () => resolve()));
}

/** Hosts per final state, for summaries. */
export function countStates(runs: readonly FanoutRun[]) {
  const count = (s: HostState) => runs.filter((r) => r.state === s).length;
  return {
    succeeded: count('succeeded'),
    failed: count('failed'),
    unreachable: count('unreachable'),
    cancelled: count('cancelled'),
    running: count('running'),
  };
}

/** A column of the summary table. */
export interface SummaryColumn<R> {
  head: string;
  cell(run: R): string;
}

/**
 * The lines on stderr every fan-out shares: a live progress line on a terminal (taken off before
 * other output: `clear`), and at the end a table per host and `N succeeded, M failed, K unreachable`.
 */
export class FanoutStatus {
  readonly #err: NodeJS.WritableStream;
  readonly #live: boolean;
  #shown = false;

  /** `live`: draw the progress line (stderr is a terminal and the output is not --json). */
  constructor(err: NodeJS.WritableStream, live: boolean) {
    this.#err = err;
    this.#live = live;
  }

  /** Takes the progress line off before other output goes to the terminal. */
  clear(): void {
    if (this.#shown) {
      this.#err.write('\r\x1b[K');
      this.#shown = false;
    }
  }

  progress(runs: readonly FanoutRun[]): void {
    if (!this.#live) return;
    const c = countStates(runs);
    const done = c.succeeded + c.failed + c.unreachable + c.cancelled;
    this.#err.write(
      `\r\x1b[K[${done}/${runs.length}] ${c.running} running, ${c.succeeded} succeeded, ` +
        `${c.failed} failed, ${c.unreachable} unreachable`,
    );
    this.#shown = true;
  }

  /** The table (HOST, RESULT, then `columns`) and the totals line. */
  summary<R extends FanoutRun>(runs: readonly R[], columns: SummaryColumn<R>[]): void {
    this.clear();
    const rows = runs.map((r) => [r.host.sessionId, r.state, ...columns.map((c) => c.cell(r))]);
    const head = ['HOST', 'RESULT', ...columns.map((c) => c.head)];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    const c = countStates(runs);
    this.#err.write(
      `\n${line(head)}\n${rows.map((r) => `${line(r)}\n`).join('')}` +
        `${c.succeeded} succeeded, ${c.failed} failed, ${c.unreachable} unreachable` +
        `${c.cancelled ? `, ${c.cancelled} not run (cancelled)` : ''}\n`,
    );
  }
}

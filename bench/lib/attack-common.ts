// What every replayed attack shares: its options and report shape, a fresh relay, a timed CLI login, formatting.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { RelayClient } from '../../src/client/relay-client.js';
import type { Params } from '../../src/protocol/messages.js';
import {
  CLI,
  connectClient,
  httpsGet,
  makeTempDir,
  registration as testRegistration,
  runCli,
} from '../../test/helpers.js';
import { RelayChild, since } from './attack-rig.js';
import { round } from '../../src/bench/stats.js';

/** What the driver passes every attack. */
export interface AttackOptions {
  /** `ulimit -n` the relay runs under. */
  fdLimit: number;
  /** How long attack 4 guesses. */
  guessMs: number; // ms
  /** How long attack 3 floods. */
  floodMs: number; // ms
  /** Stalled controllers in attack 6. */
  stalled: number;
  /** Progress lines (stderr). */
  say: (line: string) => void;
}

/** One row of the report: what the issue measured before the fix, and what this run measured. */
export interface Figure {
  figure: string;
  before: string;
  after: string;
}

export interface AttackResult {
  n: number;
  title: string;
  figures: Figure[];
  /** What still hurts, in words; empty when the fix holds on every figure. */
  stillHurts: string[];
  data: Record<string, unknown>;
}

/** Runs `fn` against a fresh relay child, then stops it and removes its data dir. */
export async function withRelay<T>(
  opts: AttackOptions,
  options: { logLevel?: string; keep?: readonly string[] },
  fn: (relay: RelayChild) => Promise<T>,
): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-bench-attack-'));
  const relay = await RelayChild.start(CLI, {
    dataDir,
    fdLimit: opts.fdLimit,
    extra: ['--log-level', options.logLevel ?? 'info'],
    ...(options.keep ? { keep: options.keep } : {}),
  });
  try {
    return await fn(relay);
  } finally {
    const code = await relay.stop();
    if (code !== 0) opts.say(`  note: the relay exited with ${code} after SIGTERM`);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export interface CliLogin {
  /** 'OK', the error code the CLI printed ([CODE]), or TIMEOUT. */
  code: string;
  ms: number;
  stderr: string;
}

/** `switchboard login` in `home` (a person at the CLI): wall time, outcome. */
export async function cliLogin(
  home: string,
  user: string,
  password: string,
  extra: string[] = [],
): Promise<CliLogin> {
  const t0 = performance.now();
  try {
    const r = await runCli(['login', '--user', user, '--password-stdin', ...extra], {
      home,
      stdin: `${password}\n`,
      timeoutMs: 45_000,
    });
    const code = r.code === 0 ? 'OK' : (/\[([A-Z_]+)\]/.exec(r.stderr)?.[1] ?? `exit ${r.code}`);
    return { code, ms: since(t0), stderr: r.stderr.trim() };
  } catch (err) {
    return { code: 'TIMEOUT', ms: since(t0), stderr: (err as Error).message.split('\n')[0]! };
  }
}

/** One timed GET /healthz: status (0 if it failed) and milliseconds. */
export async function healthOnce(
  port: number,
): Promise<{ status: number; ms: number; error?: string }> {
  const t0 = performance.now();
  try {
    const { status } = await httpsGet(port, '/healthz');
    return { status, ms: since(t0) };
  } catch (err) {
    return { status: 0, ms: since(t0), error: (err as Error).message };
  }
}

export const describeLogin = (l: CliLogin) =>
  `${l.code === 'OK' ? 'ok' : l.code} in ${fmtMs(l.ms)}`;
export const fmtMs = (ms: number) =>
  ms >= 10_000 ? `${round(ms / 1000)} s` : `${Math.round(ms)} ms`;
export const fmtBytes = (b: number) =>
  b >= 1024 * 1024
    ? `${round(b / 2 ** 20, 2)} MiB`
    : b >= 1024
      ? `${round(b / 1024, 1)} KiB`
      : `${b} B`;
export const mib = (kib: number | undefined) =>
  kib === undefined ? 'n/a' : `${round(kib / 1024)} MiB`;

export function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');

/** A `session.register` for a bench agent (see test/helpers.ts). */
export function registration(sessionId: string): Params<'session.register'> {
  return testRegistration(sessionId, 'bench-host');
}

/** A RelayClient logged in with `token` (the CLI's own path for every command after login). */
export async function tokenClient(relay: RelayChild, token: string): Promise<RelayClient> {
  const c = await connectClient(relay.server, relay.fingerprint, makeTempDir('sb-bench-home-'));
  await c.request('auth.token', { token });
  return c;
}

/** A Markdown table, left-aligned: readable as text and pasted as is into docs/security.md. */
export function markdownTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

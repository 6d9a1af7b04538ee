// Timed runs of client programs for the exec benchmark: wall time, CPU, and when each line came.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { procCpu } from './exec-fleet.js';

export interface Ran {
  /** Spawn to exit, as a user waits for it. */
  wallMs: number;
  /** CPU seconds of the client process and everything it waited for (ssh children for pssh). */
  clientCpu: number;
  stdout: string;
  stderr: string;
  /** When each line of stdout arrived, ms after the spawn (one entry per '\n'). */
  lineMs: number[];
  code: number | null;
}

/**
 * Runs a client program to its exit; the clock stops at `exit`, output is read to the end. It is
 * killed after `timeoutMs`. Its CPU is read from this process's waited-for children, so nothing
 * else may be reaped meanwhile.
 */
export function timed(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<Ran> {
  const cpuBefore = procCpu('self')!.children;
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let wallMs = 0;
    let code: number | null = null;
    const lineMs: number[] = [];
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const at = performance.now() - started;
      for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) lineMs.push(at);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (c) => {
      wallMs = performance.now() - started;
      code = c;
    });
    child.once('close', () => {
      clearTimeout(timer);
      const clientCpu = procCpu('self')!.children - cpuBefore;
      resolvePromise({ wallMs, clientCpu, stdout, stderr, lineMs, code });
    });
  });
}

/** NDJSON lines of stdout, each with the time it arrived (see Ran.lineMs). */
export function parseJsonEvents(ran: Ran): Array<Record<string, unknown> & { atMs: number }> {
  const lines = ran.stdout.split('\n').slice(0, ran.lineMs.length);
  return lines.map((l, i) => ({
    ...(JSON.parse(l) as Record<string, unknown>),
    atMs: ran.lineMs[i]!,
  }));
}

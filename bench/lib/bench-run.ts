// What every long benchmark script does around its measurement: the machine it ran on, and one
// cleanup of its processes and scratch directory on success, failure, a signal or its time limit.
import { rmSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { cpuModel } from '../../src/bench/proc.js';
import { round } from '../../src/bench/stats.js';

/** The machine, for the report's first line and the JSON line. */
export function machineInfo() {
  return {
    nproc: cpus().length,
    cpuModel: cpuModel(),
    memGiB: round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    /** Other load on the machine when the run started (1-minute load average). */
    loadAvgAtStart: round(loadavg()[0] ?? 0, 2),
  };
}

export interface RunGuard {
  /** Stops of what was started, run last first by `cleanup`. */
  readonly cleanups: Array<() => Promise<unknown>>;
  /** Runs once, however many paths ask for it; removes `dir` last. */
  cleanup(): Promise<void>;
  /** At the end of the run: disarms the time limit and cleans up. */
  done(): Promise<void>;
}

/**
 * Cleans up and exits on SIGINT/SIGTERM (130) or after `limitMs` (1). `first` runs before the
 * cleanups (e.g. closing clients); `onInterrupt` is told of a signal, whose failure follows.
 */
export function guardRun(o: {
  dir: string;
  limitMs: number;
  first?: () => Promise<unknown>;
  onInterrupt?: () => void;
}): RunGuard {
  const cleanups: Array<() => Promise<unknown>> = [];
  // One cleanup, however many paths ask for it (a signal, the watchdog, main's finally): a run
  // cut short fails in main while the signal's cleanup is still stopping processes.
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await o.first?.();
      while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
      rmSync(o.dir, { recursive: true, force: true });
    })());
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    o.onInterrupt?.();
    console.error(`\n${signal}: cleaning up…`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const watchdog = setTimeout(() => {
    console.error(`\nthe benchmark took over ${o.limitMs / 1000} s; cleaning up and giving up`);
    void cleanup().finally(() => process.exit(1));
  }, o.limitMs);
  watchdog.unref();
  return {
    cleanups,
    cleanup,
    done: () => {
      clearTimeout(watchdog);
      return cleanup();
    },
  };
}

// Benchmark of the platform layer: password logins per second with the real Argon2 cost, and idle authenticated connections held.
//
// Usage: npm run bench:platform -- [--logins N] [--concurrency 8,16,32] [--max-connections N]
//                                   [--batch N] [--hold S] [--time-limit S]
// The relay runs as a child process (`bin/switchboard serve`, default settings) on 127.0.0.1
// port 0 with a temp data dir, so its memory is measured apart from the clients'. Clients run
// in this process on the same machine: on a small box they compete with the relay for CPU.
import { findRoot } from './lib/root.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { KnownServers } from '../src/client/known-servers.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';

const { values: flags } = parseArgs({
  options: {
    logins: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8,16,32' },
    'max-connections': { type: 'string', default: '5000' },
    batch: { type: 'string', default: '250' },
    hold: { type: 'string', default: '35' },
    'time-limit': { type: 'string', default: '300' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (flags.help) {
  console.log(
    'npm run bench:platform -- [--logins N=200] [--concurrency 8,16,32] [--max-connections N=5000]\n' +
      '                          [--batch N=250] [--hold SECONDS=35] [--time-limit SECONDS=300]',
  );
  process.exit(0);
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

const LOGINS = positiveInt('logins', flags.logins);
const LEVELS = flags.concurrency.split(',').map((s) => positiveInt('concurrency', s.trim()));
const REQUESTED_CONNECTIONS = positiveInt('max-connections', flags['max-connections']);
const BATCH = positiveInt('batch', flags.batch);
/** Default 35 s: two relay heartbeat rounds (15 s each), so a connection that fails them is gone. */
const HOLD_MS = positiveInt('hold', flags.hold) * 1000; // ms
/** Each phase stops starting new work after this; the whole run is bounded by phases × this. */
const TIME_LIMIT_MS = positiveInt('time-limit', flags['time-limit']) * 1000; // ms
/** File descriptors kept free for the database, logs, pipes and the listening socket. */
const FD_RESERVE = 256;

const ROOT = findRoot();

interface RelayChild {
  child: ChildProcess;
  server: string;
  fingerprint: string;
  exited: Promise<number | null>;
}

/** Starts `switchboard serve` exactly as an operator would, with default settings. */
function startRelayProcess(dataDir: string): Promise<RelayChild> {
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir];
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'switchboard'), ...args, '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err = (err + s).slice(-10_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the relay did not start within 30 s\n${out}\n${err}`));
    }, 30_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code})\n${out}\n${err}`));
    });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on \S+:(\d+) [^\n]*\n[^\n]*fingerprint:\n\s+([0-9A-Fa-f:]{95})/.exec(
        out,
      );
      if (!m) return;
      clearTimeout(timer);
      resolve({ child, server: `127.0.0.1:${m[1]}`, fingerprint: m[2]!, exited });
    });
  });
}

/** Resident set size of a process in KiB, from /proc (Linux only; undefined elsewhere). */
function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function fdLimit(): number {
  try {
    const text = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return text === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(text);
  } catch {
    return 1024;
  }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-bench-relay-'));
  const home = mkdtempSync(join(tmpdir(), 'switchboard-bench-home-'));
  const limit = fdLimit();
  const maxConnections = Math.min(REQUESTED_CONNECTIONS, Math.max(0, limit - FD_RESERVE));
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    fdLimit: limit,
  };
  console.log(
    `machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}, ulimit -n ${limit}`,
  );
  if (maxConnections < REQUESTED_CONNECTIONS)
    console.log(
      `note: --max-connections capped from ${REQUESTED_CONNECTIONS} to ${maxConnections} by ulimit -n ${limit}` +
        ' (raise it with `ulimit -n 65536` for more)',
    );

  const relay = await startRelayProcess(dataDir);
  const pid = relay.child.pid!;
  const open = new Set<RelayClient>();
  const connect = () =>
    RelayClient.connect({
      server: relay.server,
      trust: {
        knownServers: new KnownServers(join(home, 'known_servers.json')),
        fingerprint: relay.fingerprint,
      },
    });

  try {
    const rssStart = rssKiB(pid);
    // --- (a) logins per second -----------------------------------------------------------------
    const maxLevel = Math.max(...LEVELS);
    const users = Array.from({ length: maxLevel }, (_, i) => ({
      user: `bench${i}`,
      password: `bench-password-${i}`,
      device: { publicKey: generateDeviceKey().publicKey.toString('base64'), name: `bench${i}` },
    }));
    const setup = await connect();
    for (const u of users)
      await setup.request('auth.signup', { user: u.user, password: u.password });
    setup.close();
    // Warm-up: the first login registers each device; not measured. One connection per user,
    // since a connection stays logged in as one user.
    await Promise.all(
      users.map(async (u) => {
        const c = await connect();
        try {
          await c.request('auth.login', { user: u.user, password: u.password, device: u.device });
        } finally {
          c.close();
        }
      }),
    );

    const loginRows: Array<Record<string, number>> = [];
    for (const level of LEVELS) {
      const total: number[] = [];
      const rpc: number[] = [];
      let next = 0;
      let failures = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: level }, async (_, w) => {
          const u = users[w]!;
          while (next < LOGINS && performance.now() - started < TIME_LIMIT_MS) {
            next++;
            const t0 = performance.now();
            let c: RelayClient | undefined;
            try {
              c = await connect(); // TLS handshake, WebSocket upgrade, hello
              const t1 = performance.now();
              await c.request('auth.login', {
                user: u.user,
                password: u.password,
                device: u.device,
              });
              const t2 = performance.now();
              total.push(t2 - t0);
              rpc.push(t2 - t1);
            } catch (err) {
              failures++;
              if (failures === 1) console.log(`login failed: ${(err as Error).message}`);
            } finally {
              c?.close();
            }
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      total.sort((a, b) => a - b);
      rpc.sort((a, b) => a - b);
      loginRows.push({
        concurrency: level,
        logins: total.length,
        failures,
        seconds: round(seconds, 2),
        loginsPerSec: round(total.length / seconds),
        p50Ms: round(percentile(total, 0.5)),
        p99Ms: round(percentile(total, 0.99)),
        loginRpcP50Ms: round(percentile(rpc, 0.5)),
        loginRpcP99Ms: round(percentile(rpc, 0.99)),
      });
    }

    // --- (b) idle authenticated connections ----------------------------------------------------
    const tokenClient = await connect();
    const { token } = await tokenClient.request('auth.login', {
      user: users[0]!.user,
      password: users[0]!.password,
      device: users[0]!.device,
    });
    tokenClient.close();
    const rssBefore = rssKiB(pid);
    const batches: Array<{ opened: number; ms: number }> = [];
    let stopReason = `reached --max-connections ${maxConnections}`;
    const openStarted = performance.now();
    while (open.size < maxConnections) {
      if (performance.now() - openStarted > TIME_LIMIT_MS) {
        stopReason = `time limit ${TIME_LIMIT_MS / 1000} s`;
        break;
      }
      const n = Math.min(BATCH, maxConnections - open.size);
      const t0 = performance.now();
      const results = await Promise.allSettled(
        Array.from({ length: n }, async () => {
          const c = await connect();
          open.add(c);
          await c.request('auth.token', { token });
          return c;
        }),
      );
      batches.push({ opened: n, ms: performance.now() - t0 });
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) {
        stopReason = `a connection failed at ~${open.size}: ${String((failed as PromiseRejectedResult).reason?.message ?? failed)}`;
        break;
      }
    }
    const openMs = performance.now() - openStarted;
    const attempted = open.size;
    const rssAfterOpen = rssKiB(pid);
    // Hold them: the heartbeat and timers run; anything the relay drops shows up here.
    await new Promise((r) => setTimeout(r, HOLD_MS));
    const stillOpen = [...open].filter((c) => !c.closed).length;
    const rssHeld = rssKiB(pid);
    const benchRssKiB = Math.round(process.memoryUsage().rss / 1024);
    const relayDelta =
      rssHeld !== undefined && rssBefore !== undefined ? rssHeld - rssBefore : undefined;
    const idle = {
      requested: REQUESTED_CONNECTIONS,
      cap: maxConnections,
      opened: attempted,
      stillOpenAfterHold: stillOpen,
      holdSec: HOLD_MS / 1000,
      openSeconds: round(openMs / 1000, 2),
      connectionsPerSec: round(attempted / (openMs / 1000)),
      slowestBatchMs: round(Math.max(...batches.map((b) => b.ms))),
      stopReason,
      relayRssStartMiB: rssStart === undefined ? null : round(rssStart / 1024),
      relayRssBeforeMiB: rssBefore === undefined ? null : round(rssBefore / 1024),
      relayRssAfterOpenMiB: rssAfterOpen === undefined ? null : round(rssAfterOpen / 1024),
      relayRssHeldMiB: rssHeld === undefined ? null : round(rssHeld / 1024),
      relayKiBPerConnection:
        relayDelta === undefined || stillOpen === 0 ? null : round(relayDelta / stillOpen),
      benchProcessRssMiB: round(benchRssKiB / 1024),
    };

    console.log(
      '\n(a) password logins (default Argon2id: 19 MiB, 2 passes), each on a new connection',
    );
    console.log(
      '    latency = TLS handshake + WebSocket upgrade + hello + auth.login; rpc = auth.login alone\n',
    );
    console.log(
      table(
        [
          'concurrency',
          'logins',
          'failed',
          'seconds',
          'logins/s',
          'p50 ms',
          'p99 ms',
          'rpc p50',
          'rpc p99',
        ],
        loginRows.map((r) => [
          r['concurrency']!,
          r['logins']!,
          r['failures']!,
          r['seconds']!,
          r['loginsPerSec']!,
          r['p50Ms']!,
          r['p99Ms']!,
          r['loginRpcP50Ms']!,
          r['loginRpcP99Ms']!,
        ]),
      ),
    );
    console.log(
      `\n(b) idle authenticated connections (batches of ${BATCH}, held ${HOLD_MS / 1000} s)\n`,
    );
    console.log(
      table(
        [
          'opened',
          'open after hold',
          'open s',
          'conn/s',
          'relay RSS before',
          'relay RSS held',
          'KiB/conn',
        ],
        [
          [
            idle.opened,
            idle.stillOpenAfterHold,
            idle.openSeconds,
            idle.connectionsPerSec,
            `${idle.relayRssBeforeMiB} MiB`,
            `${idle.relayRssHeldMiB} MiB`,
            idle.relayKiBPerConnection ?? '-',
          ],
        ],
      ),
    );
    console.log(
      `stopped: ${stopReason}; bench (client) process RSS ${idle.benchProcessRssMiB} MiB\n`,
    );
    console.log(
      JSON.stringify({
        bench: 'platform',
        date: new Date().toISOString(),
        machine,
        logins: loginRows,
        idle,
      }),
    );
  } finally {
    for (const c of open) c.terminate();
    relay.child.kill('SIGTERM');
    const timer = setTimeout(() => relay.child.kill('SIGKILL'), 15_000);
    const code = await relay.exited;
    clearTimeout(timer);
    if (code !== 0) console.log(`note: the relay exited with ${code} after SIGTERM`);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

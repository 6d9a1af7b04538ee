// The relay process of the messaging and ledger benchmarks (forked by relay-process.ts): startRelay() on
// 127.0.0.1, port 0, with the test suite's relaxed account options, answering IPC requests.
import { performance } from 'node:perf_hooks';
import { startRelay } from '../../src/server/relay.js';
import type { RelayProcessConfig, RelayReport, RelayRequest } from './relay-process.js';

/** Cheap Argon2id, as test/terminal-harness.ts's FAST_ARGON2: thousands of accounts are made. */
const FAST_ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
/** Sign-ups by the thousand from 127.0.0.1 (the defaults allow 10 at once, then 5 a minute). */
const ROOMY_SIGNUPS = { perMinute: 1_000_000, burst: 100_000 };
/**
 * The password queue sized for a setup burst: every child of the broadcast fleet has logins in
 * flight (defaults: 64 logins and 16 sign-ups queued, one sign-up hashing at a time).
 */
const ROOMY_HASH_POOL = {
  concurrency: 2,
  maxRunningSignups: 2,
  maxQueued: { login: 100_000, signup: 100_000 },
};

const send = (r: RelayReport): void => void process.send!(r);

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as RelayProcessConfig;
  const relay = await startRelay({
    host: '127.0.0.1',
    port: 0,
    dataDir: config.dataDir,
    auth: {
      argon2: FAST_ARGON2,
      signupRate: { perAddress: ROOMY_SIGNUPS, relay: ROOMY_SIGNUPS },
      hashPool: ROOMY_HASH_POOL,
    },
    ...(config.signupCredit === undefined ? {} : { signupCredit: config.signupCredit }),
    ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
    ...(config.maxConnectionsPerAddress === undefined
      ? {}
      : { maxConnectionsPerAddress: config.maxConnectionsPerAddress }),
  });
  let closing = false;
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    await relay.close('the benchmark is over');
  };
  process.on('message', (m: RelayRequest) => {
    void (async () => {
      switch (m.type) {
        case 'memory': {
          if (m.gc) (globalThis as { gc?: () => void }).gc?.();
          const u = process.memoryUsage();
          const memory = {
            rss: u.rss,
            heapUsed: u.heapUsed,
            heapTotal: u.heapTotal,
            external: u.external,
            arrayBuffers: u.arrayBuffers,
          };
          return send({ id: m.id, type: 'memory', memory });
        }
        case 'stats': {
          const s = relay.stats();
          return send({ id: m.id, type: 'stats', connections: s.connections, sockets: s.sockets });
        }
        case 'load': {
          const cpu = process.cpuUsage();
          const elu = performance.eventLoopUtilization();
          const load = {
            cpuUserUs: cpu.user,
            cpuSystemUs: cpu.system,
            eluActiveMs: elu.active,
            eluIdleMs: elu.idle,
          };
          return send({ id: m.id, type: 'load', load });
        }
        case 'close':
          await close();
          send({ id: m.id, type: 'closed' });
          process.disconnect();
          return;
      }
    })();
  });
  // The benchmark died or went: no relay outlives it.
  process.once('disconnect', () => void close().finally(() => process.exit(0)));
  send({ type: 'listening', port: relay.port, fingerprint: relay.certificate.fingerprint });
}

main().catch((err: unknown) => {
  send({
    type: 'failed',
    message: err instanceof Error ? (err.stack ?? err.message) : String(err),
  });
  process.exit(1);
});

// The relay `switchboard bench` starts when it is not given --server: forked by own-relay.ts so
// that its CPU and memory are its own, on 127.0.0.1 (TLS and plaintext listeners, free ports),
// in the run's temporary data directory. It closes when the bench disconnects.
import { startRelay, type Relay } from '../server/relay.js';

/** Sign-ups the bench makes from 127.0.0.1 at once (the relay's default allows 10, then 5 a minute). */
const ROOMY_SIGNUPS = { perMinute: 100_000, burst: 10_000 };
/** Credits each bench account starts with, so the pay workload never runs dry. */
const BENCH_CREDIT = 1_000_000_000;

export interface OwnRelayReady {
  type: 'listening';
  port: number;
  plainPort: number;
  fingerprint: string;
}

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (!dataDir) throw new Error('usage: relay-child DATA_DIR');
  // The bench went: so does the relay (at once if it is not up yet).
  const up: { relay?: Relay } = {};
  const close = (): void =>
    void (up.relay?.close('the benchmark is over') ?? Promise.resolve()).finally(() =>
      process.exit(0),
    );
  process.once('disconnect', close);
  const relay = (up.relay = await startRelay({
    host: '127.0.0.1',
    port: 0,
    plainPort: 0,
    dataDir,
    signupCredit: BENCH_CREDIT,
    auth: { signupRate: { perAddress: ROOMY_SIGNUPS, relay: ROOMY_SIGNUPS } },
  }));
  const ready: OwnRelayReady = {
    type: 'listening',
    port: relay.port,
    plainPort: relay.plainPort!,
    fingerprint: relay.certificate.fingerprint,
  };
  process.send!(ready);
}

main().catch((err: unknown) => {
  process.send?.({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});

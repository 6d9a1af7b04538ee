// The relay's Prometheus metrics: one registry per relay, counters bumped where things happen.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Live figures the relay computes when scraped (cheaper than updating a gauge on every event). */
export interface RelayGauges {
  /** TCP connections by state: `pending` (TLS handshake or plain HTTP), `unauthenticated`, `authenticated`. */
  connections(): { pending: number; unauthenticated: number; authenticated: number };
  liveSessions(): number;
  usersOnline(): number;
  /** Bytes of channel data forwarded since start (payload only). */
  bytesRelayed(): number;
  /** Bytes queued toward all connections right now. */
  queuedBytes(): number;
  /** Password hashes running or waiting. */
  pendingHashes(): number;
}

/**
 * Every metric the relay exports. Counters are bumped by the code that sees the event; gauges
 * are read from {@link RelayGauges} at scrape time. Names follow Prometheus conventions.
 *
 * @example
 * const metrics = new RelayMetrics(gauges);
 * metrics.logins.inc({ result: 'ok' });
 * res.end(await metrics.render());
 */
export class RelayMetrics {
  readonly registry = new Registry();
  /** TLS handshakes that did not finish within HANDSHAKE_TIMEOUT_MS, or failed. */
  readonly handshakeFailures: Counter<'reason'>;
  /** TCP connections refused before TLS: per-address cap, relay-wide cap, shutting down. */
  readonly connectionsRefused: Counter<'reason'>;
  /** Login attempts by result: ok, bad_credentials, throttled, error. */
  readonly logins: Counter<'result'>;
  /** Sign-up attempts by result: ok, refused (mode or invite), throttled, error. */
  readonly signups: Counter<'result'>;
  /** Requests refused by a rate limit or throttle, by what limited them. */
  readonly throttled: Counter<'limit'>;
  /** Protocol errors sent to clients, by code. */
  readonly protocolErrors: Counter<'code'>;
  /** Connections the relay closed for abuse: protocol errors, slow readers, heartbeats. */
  readonly connectionsDropped: Counter<'reason'>;

  constructor(gauges: RelayGauges) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    this.handshakeFailures = new Counter({
      name: 'switchboard_tls_handshake_failures_total',
      help: 'TLS handshakes that failed or timed out',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'switchboard_connections_refused_total',
      help: 'TCP connections refused at accept time',
      labelNames: ['reason'],
      registers,
    });
    this.logins = new Counter({
      name: 'switchboard_logins_total',
      help: 'Password logins by result',
      labelNames: ['result'],
      registers,
    });
    this.signups = new Counter({
      name: 'switchboard_signups_total',
      help: 'Sign-ups by result',
      labelNames: ['result'],
      registers,
    });
    this.throttled = new Counter({
      name: 'switchboard_throttled_total',
      help: 'Requests refused by a rate limit or throttle',
      labelNames: ['limit'],
      registers,
    });
    this.protocolErrors = new Counter({
      name: 'switchboard_protocol_errors_total',
      help: 'Protocol errors answered, by code',
      labelNames: ['code'],
      registers,
    });
    this.connectionsDropped = new Counter({
      name: 'switchboard_connections_dropped_total',
      help: 'WebSocket connections the relay closed for abuse or silence',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'switchboard_connections',
      help: 'Open TCP connections by state',
      labelNames: ['state'],
      registers,
      collect() {
        const c = gauges.connections();
        this.set({ state: 'pending' }, c.pending);
        this.set({ state: 'unauthenticated' }, c.unauthenticated);
        this.set({ state: 'authenticated' }, c.authenticated);
      },
    });
    new Gauge({
      name: 'switchboard_live_sessions',
      help: 'Remote sessions whose host is connected',
      registers,
      collect() {
        this.set(gauges.liveSessions());
      },
    });
    new Gauge({
      name: 'switchboard_users_online',
      help: 'Users with at least one logged-in connection',
      registers,
      collect() {
        this.set(gauges.usersOnline());
      },
    });
    new Gauge({
      name: 'switchboard_queued_bytes',
      help: 'Bytes queued toward all connections',
      registers,
      collect() {
        this.set(gauges.queuedBytes());
      },
    });
    new Gauge({
      name: 'switchboard_password_hashes_pending',
      help: 'Password hashes running or waiting',
      registers,
      collect() {
        this.set(gauges.pendingHashes());
      },
    });
    // A counter read at scrape time: the data path only adds to a plain number.
    new Counter({
      name: 'switchboard_relayed_bytes_total',
      help: 'Channel payload bytes forwarded between peers',
      registers,
      collect() {
        this.reset();
        this.inc(gauges.bytesRelayed());
      },
    });
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

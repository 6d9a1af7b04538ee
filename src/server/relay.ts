// The relay: a TLS port (and any plaintext one) serving HTTP and the WebSocket protocol; heartbeats; shutdown.
import { BROADCAST_WINDOW_MS } from '../protocol/limits.js';
import { RelayAudit, loadRelayAuditKey, loadRelayKey } from './relay-audit.js';
import { LEDGER_KEY_FILE, Ledger } from './ledger.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import {
  createServer as createPlainServer,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { decodeData, decodeRequest } from '../protocol/codec.js';
import { ErrorCode, ProtocolError, SwitchboardError } from '../protocol/errors.js';
import {
  CLOSE_TIMEOUT_MS,
  HANDSHAKE_EVICTION_AGE_MS,
  HANDSHAKE_TIMEOUT_MS,
  HARD_MAX_FRAME_BYTES,
  HEARTBEAT_INTERVAL_MS,
  HELLO_TIMEOUT_MS,
  IDLE_UNAUTHENTICATED_MS,
  MAX_CONNECTIONS,
  MAX_CONNECTIONS_PER_ACCOUNT,
  MAX_CONNECTIONS_PER_ADDRESS,
  MAX_FRAME_BYTES,
  MAX_LIVE_SESSIONS_PER_ACCOUNT,
  MAX_REGISTERED_SESSIONS_PER_ACCOUNT,
  RESERVED_DESCRIPTORS,
  SESSION_RESERVE_MS,
  WS_PATH,
} from '../protocol/limits.js';
import { isLoopbackHost } from '../protocol/loopback.js';
import type { Transport } from '../protocol/messages.js';
import { openStore } from '../store/open-store.js';
import { isPostgresUrl, redactDatabaseUrl } from '../store/database-url.js';
import type { Store } from '../store/repositories.js';
import { AuthService, type AuthOptions, type SignupMode } from './auth-service.js';
import {
  loadCertificateFiles,
  loadOrCreateCertificate,
  tlsServerOptions,
  type ServerCertificate,
} from './certificate.js';
import { CloseCode, Connection } from './connection.js';
import { Directory } from './directory.js';
import { handle, type Services } from './handlers.js';
import type { HashPoolStats } from './hash-pool.js';
import { handleHttp } from './http-api.js';
import { InviteService } from './invites.js';
import { silentLogger, type Logger } from './logger.js';
import { RelayMetrics } from './metrics.js';
import { SessionLeases, type SessionLeaseOptions } from './session-leases.js';
import { loadWebAssets } from './web-assets.js';
import { addressKey } from './address-key.js';

/** How often a live connection refreshes its login's idle timer (a long-running agent never idles out). */
const TOKEN_TOUCH_INTERVAL_MS = 3600_000; // ms

export interface RelayOptions {
  /** Address to listen on. Default 0.0.0.0. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 7443. */
  port?: number;
  /**
   * Port of a second listener without TLS (`serve --plain-port`) serving the same HTTP API and
   * WebSocket under the same caps and timeouts, for a TLS-terminating proxy in front or a
   * benchmark; 0 picks a free one. Passwords and tokens cross it in clear. Default: none.
   */
  plainPort?: number;
  /** Address of the plaintext listener. Default 127.0.0.1: only this machine reaches it. */
  plainHost?: string;
  /** Directory for the database and the generated certificate (created 0700). */
  dataDir: string;
  /**
   * The database: a `postgres://` or `postgresql://` URL, or a SQLite file path. Default
   * `switchboard.db` in `dataDir`. A URL may carry a password: it is never logged.
   */
  database?: string;
  /** Use this certificate and key instead of the generated one. Both or neither. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Extra host names for the generated certificate's subjectAltName. */
  hostnames?: string[];
  /** Most live remote sessions at once. Default 1000. */
  maxRemotes?: number;
  /** How long a broadcast reaches users who come online. Default BROADCAST_WINDOW_MS (30 min). */
  broadcastWindowMs?: number;
  /** Credits minted for each new account (`serve --signup-credit`, default 100; 0: none). */
  signupCredit?: number;
  /** The ledger's unit, as shown to users (default "credits"). */
  unit?: string;
  logger?: Logger;
  /** Clock in epoch ms; tests move it to expire tokens. Default Date.now. */
  now?: () => number;
  auth?: Partial<AuthOptions>;
  /** Heartbeat interval; a peer silent for two intervals is dropped. Default 15 s. */
  heartbeatMs?: number;
  /** Grace given to clients to close on shutdown before they are cut. Default 2 s. */
  shutdownGraceMs?: number;
  /** Time a TCP connection has to finish TLS and send its HTTP request. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Time a connection told SLOW_PEER has to drain its queue before it is cut. Default 5 s. */
  slowPeerGraceMs?: number;
  /** Channels one connection may hold (tests lower it). Default MAX_CHANNELS_PER_CONNECTION. */
  maxChannelsPerConnection?: number;
  /** TCP connections one source address may hold. Default 256. */
  maxConnectionsPerAddress?: number;
  /** TCP connections in all; lowered to fit the descriptor limit. Default 10 000. */
  maxConnections?: number;
  /** Age from which a handshaking connection may be evicted when full. Default 1 s. */
  handshakeEvictionAgeMs?: number;
  /** Per-account caps: connections, live sessions, registered (not closed) sessions. */
  perAccount?: Partial<PerAccountLimits>;
  /** An offline session's ID is released to others after this long. Default 72 h. */
  sessionReserveMs?: number;
  /** This relay's id and lease timing for the sessions it hosts (see session-leases.ts). */
  sessionLeases?: SessionLeaseOptions;
  /** Bearer token that opens GET /metrics to non-loopback addresses. */
  metricsToken?: string;
  /**
   * The built web page (scripts/build-web.mjs), loaded once at start. Default dist/web/ next to
   * the compiled relay. Missing or inconsistent: the relay starts and `/` answers 503.
   */
  webDir?: string;
  /** Who may sign up (`serve --signup`). Default 'open'. */
  signup?: SignupMode;
  /** User names that may create invites (`serve --admin`). Default none. */
  admins?: string[];
  /**
   * The address a WebSocket connection is throttled and logged under. Default: the TCP peer's.
   * Tests give connections different addresses; behind a trusted proxy it could read a header.
   */
  addressOf?: (req: IncomingMessage) => string;
}

export interface PerAccountLimits {
  connections: number;
  liveSessions: number;
  registeredSessions: number;
}

export interface Relay {
  readonly host: string;
  readonly port: number;
  /** The plaintext listener's port, when `plainPort` was given; else undefined. */
  readonly plainPort: number | undefined;
  /** The plaintext listener's address, when `plainPort` was given; else undefined. */
  readonly plainHost: string | undefined;
  readonly certificate: ServerCertificate;
  /** Whether the web page is built and served at / (else / answers 503). */
  readonly webPage: boolean;
  readonly dataDir: string;
  /** Prometheus metrics (what GET /metrics serves). */
  readonly metrics: RelayMetrics;
  /** Counts of what the relay holds right now, for tests and diagnostics. */
  stats(): RelayStats;
  /** Stops accepting, tells every client why, closes the database. Idempotent. */
  close(reason?: string): Promise<void>;
}

export interface RelayStats {
  /** Open TCP connections of any kind (TLS handshake, HTTP, WebSocket). */
  sockets: number;
  /** WebSocket connections. */
  connections: number;
  /** Bytes queued toward all WebSocket connections. */
  queuedBytes: number;
  /** The password-hashing queue (running, queued per class, peak, refused). */
  hashes: HashPoolStats;
}

const DEFAULT_MAX_REMOTES = 1000;

/** The process's soft limit on open descriptors, where the OS tells it (Linux); else undefined. */
function descriptorLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The address a socket came from, with IPv4-mapped IPv6 folded to IPv4. */
function addressOf(socket: Socket): string {
  const a = socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Starts a relay and resolves once it listens. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const log = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const host = options.host ?? '0.0.0.0';
  const plainHost =
    options.plainPort === undefined ? undefined : (options.plainHost ?? '127.0.0.1');
  if (
    options.plainPort !== undefined &&
    !(Number.isInteger(options.plainPort) && options.plainPort >= 0 && options.plainPort <= 65535)
  )
    throw new SwitchboardError(ErrorCode.INTERNAL, '--plain-port must be a port from 0 to 65535');
  const maxRemotes = options.maxRemotes ?? DEFAULT_MAX_REMOTES;
  if (!Number.isInteger(maxRemotes) || maxRemotes < 1)
    throw new SwitchboardError(ErrorCode.INTERNAL, '--max-remotes must be a positive integer');
  if ((options.tlsCertFile === undefined) !== (options.tlsKeyFile === undefined)) {
    throw new SwitchboardError(
      ErrorCode.INTERNAL,
      '--tls-cert and --tls-key go together: give both or neither',
    );
  }
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const certificate =
    options.tlsCertFile && options.tlsKeyFile
      ? loadCertificateFiles(options.tlsCertFile, options.tlsKeyFile)
      : await loadOrCreateCertificate({
          dataDir: options.dataDir,
          hostnames: options.hostnames ?? [],
        });

  const database = options.database ?? join(options.dataDir, 'switchboard.db');
  const postgres = isPostgresUrl(database);
  // The database holds password hashes: a SQLite file is created 0600 (SQLite gives its
  // -wal/-shm files the same mode).
  if (!postgres && database !== ':memory:') {
    try {
      if (existsSync(database)) chmodSync(database, 0o600);
      else writeFileSync(database, '', { mode: 0o600 });
    } catch (err) {
      throw new SwitchboardError(ErrorCode.STORAGE, `cannot create database file ${database}`, {
        cause: err,
      });
    }
  }
  if ((statSync(options.dataDir).mode & 0o077) !== 0) {
    log.warn(
      { dataDir: options.dataDir },
      'the data directory is accessible to other users; chmod 700 it',
    );
  }
  const store: Store = await openStore({ database });
  log.info(
    { dialect: store.dialect, database: postgres ? redactDatabaseUrl(database) : database },
    'database open',
  );
  // Other relays may share this database: their live sessions are theirs. Ours are leased
  // (renewed while hosted, released on stop), and a crashed relay's run out on their own.
  const leases = new SessionLeases(store, now, log, options.sessionLeases);
  log.info({ relayId: leases.relayId }, 'session leases');

  const directory = new Directory();
  const perAccount: PerAccountLimits = Object.freeze({
    connections: options.perAccount?.connections ?? MAX_CONNECTIONS_PER_ACCOUNT,
    liveSessions: options.perAccount?.liveSessions ?? MAX_LIVE_SESSIONS_PER_ACCOUNT,
    registeredSessions:
      options.perAccount?.registeredSessions ?? MAX_REGISTERED_SESSIONS_PER_ACCOUNT,
  });
  const sessionReserveMs = options.sessionReserveMs ?? SESSION_RESERVE_MS;
  let shuttingDown = false;
  const connections = new Set<Connection>();
  /** Every TCP connection, WebSocket or not, so none can outlive a close or leak its descriptor. */
  const sockets = new Set<Socket>();
  const socketsByAddress = new Map<string, number>();
  /** Set while shutting down: called when the last connection has closed. */
  let onAllClosed: (() => void) | undefined;
  const auth = new AuthService(store, now, {
    ...options.auth,
    ...(options.signup ? { signupMode: options.signup } : {}),
  });
  const metrics = new RelayMetrics({
    connections: () => {
      let authenticated = 0;
      for (const c of connections) if (c.auth) authenticated += 1;
      return {
        pending: Math.max(0, sockets.size - connections.size),
        unauthenticated: connections.size - authenticated,
        authenticated,
      };
    },
    liveSessions: () => directory.liveCount,
    usersOnline: () => directory.onlineCount,
    bytesRelayed: () => directory.bytesRelayed,
    queuedBytes,
    pendingHashes: () => auth.pendingHashes ?? 0,
  });
  const invites = new InviteService(store, now, { admins: options.admins ?? [] });
  for (const name of await invites.start())
    log.warn(
      { admin: name },
      'no account has this --admin name, so it gets no admin rights; sign it up, then restart',
    );
  const relayAudit = new RelayAudit(store, loadRelayAuditKey(options.dataDir), log, now);
  const ledger = new Ledger(store, loadRelayKey(options.dataDir, LEDGER_KEY_FILE), now, {
    ...(options.signupCredit === undefined ? {} : { signupCredit: options.signupCredit }),
    ...(options.unit === undefined ? {} : { unit: options.unit }),
  });
  const services: Services = {
    audit: relayAudit,
    ledger,
    store: leases.bind(store),
    auth,
    invites,
    directory,
    state: directory.state,
    now,
    log,
    maxRemotes,
    broadcastWindowMs: options.broadcastWindowMs ?? BROADCAST_WINDOW_MS,
    perAccount,
    sessionReserveMs,
    metrics,
    fingerprint: certificate.fingerprint,
    heartbeatMs: options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS,
  };

  function queuedBytes(): number {
    let n = 0;
    for (const c of connections) n += c.bufferedBytes;
    return n;
  }

  const web = loadWebAssets(options.webDir);
  if (web.ok) log.info({ dir: web.dir, files: web.files.size }, 'web page loaded');
  else log.warn({ dir: web.dir, reason: web.reason }, 'the web page is not built: / answers 503');

  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const server: Server = createServer({
    ...tlsServerOptions(certificate),
    handshakeTimeout: handshakeTimeoutMs,
  });
  const plain: HttpServer | undefined =
    options.plainPort === undefined ? undefined : createPlainServer();

  // Connection caps, checked before any TLS work: per source address, and in all within the
  // process's descriptor limit, so one client cannot exhaust descriptors for everyone. Both
  // listeners share them: a client gains nothing by opening connections on the other one.
  const fdLimit = descriptorLimit();
  const maxConnections = Math.max(
    1,
    Math.min(
      options.maxConnections ?? MAX_CONNECTIONS,
      fdLimit === undefined ? Infinity : fdLimit - RESERVED_DESCRIPTORS,
    ),
  );
  const maxPerAddress = options.maxConnectionsPerAddress ?? MAX_CONNECTIONS_PER_ADDRESS;
  const evictionAgeMs = options.handshakeEvictionAgeMs ?? HANDSHAKE_EVICTION_AGE_MS;
  /**
   * Sockets that have not yet earned their place, oldest first, with when they came (monotonic
   * ms): TLS ones until their handshake is done, plaintext ones until their first request.
   */
  const handshaking = new Map<Socket, number>();
  /**
   * Plaintext sockets that have sent no request yet, with the timer that cuts them: Node's
   * headersTimeout only starts at the first byte, and there is no TLS handshake timeout to do it.
   */
  const awaitingRequest = new Map<Socket, NodeJS.Timeout>();
  /** At the cap, makes room by evicting the oldest handshake if it is old enough; true if it did. */
  function evictOldestHandshake(): boolean {
    const oldest = handshaking.entries().next().value;
    if (!oldest || performance.now() - oldest[1] < evictionAgeMs) return false;
    handshaking.delete(oldest[0]);
    oldest[0].destroy();
    metrics.connectionsDropped.inc({ reason: 'evicted_handshake' });
    return true;
  }
  /** A plaintext socket sent its first request: it is no longer evictable or on the clock. */
  function requestArrived(socket: Socket): void {
    const timer = awaitingRequest.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    awaitingRequest.delete(socket);
    handshaking.delete(socket);
  }
  let refusedLogged = 0;
  function accept(socket: Socket, transport: Transport): void {
    const address = addressKey(addressOf(socket));
    const held = socketsByAddress.get(address) ?? 0;
    // The address's own cap first: a full address never evicts anyone else's handshake.
    const reason = shuttingDown
      ? 'shutting_down'
      : held >= maxPerAddress
        ? 'address_full'
        : sockets.size >= maxConnections && !evictOldestHandshake()
          ? 'relay_full'
          : undefined;
    if (reason) {
      metrics.connectionsRefused.inc({ reason });
      // One line per second at most: a flood must not turn into a log flood.
      if (now() - refusedLogged > 1000) {
        refusedLogged = now();
        log.warn({ address, reason, open: sockets.size, transport }, 'refusing connections');
      }
      socket.destroy();
      return;
    }
    sockets.add(socket);
    handshaking.set(socket, performance.now());
    socketsByAddress.set(address, held + 1);
    if (transport === 'plain') {
      const timer = setTimeout(() => {
        log.debug({ address }, 'plaintext connection sent no request in time');
        socket.destroy();
      }, handshakeTimeoutMs);
      timer.unref();
      awaitingRequest.set(socket, timer);
    }
    socket.once('close', () => {
      sockets.delete(socket);
      handshaking.delete(socket);
      clearTimeout(awaitingRequest.get(socket));
      awaitingRequest.delete(socket);
      const left = (socketsByAddress.get(address) ?? 1) - 1;
      if (left > 0) socketsByAddress.set(address, left);
      else socketsByAddress.delete(address);
    });
  }

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: HARD_MAX_FRAME_BYTES,
    perMessageDeflate: false,
  });

  /**
   * Wires a listener to what both share: the caps, the timeouts, the HTTP API and the WebSocket
   * upgrade. Only TLS itself (handshake failures, the end of a handshake) is the TLS one's own.
   */
  function serveOn(listener: HttpServer, transport: Transport): void {
    listener.headersTimeout = handshakeTimeoutMs;
    listener.requestTimeout = 30_000; // ms
    listener.keepAliveTimeout = 5_000; // ms
    listener.on('connection', (socket: Socket) => accept(socket, transport));
    listener.on('request', (req, res) => {
      requestArrived(req.socket);
      void handleHttp(req, res, {
        ...services,
        fingerprint: certificate.fingerprint,
        web,
        isShuttingDown: () => shuttingDown,
        addressOf: (r) => options.addressOf?.(r) ?? addressOf(r.socket),
        ...(options.metricsToken === undefined ? {} : { metricsToken: options.metricsToken }),
      });
    });
    listener.on('clientError', (err: Error & { code?: string }, socket) => {
      log.debug({ err: err.message, code: err.code, transport }, 'bad HTTP request');
      // A socket whose TLS handshake never finished cannot carry an HTTP answer: writing one would
      // queue it for ever and leave the descriptor in CLOSE-WAIT. Timeouts get no answer either.
      const established =
        (transport === 'plain' || (socket as Partial<TLSSocket>).encrypted === true) &&
        socket.writable;
      if (!established || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      // The answer is a courtesy: a client that does not read it loses the connection anyway.
      setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS).unref();
    });
    listener.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      requestArrived(req.socket);
      socket.on('error', () => socket.destroy());
      const path = new URL(req.url ?? '/', 'https://relay').pathname;
      if (shuttingDown || path !== WS_PATH) {
        socket.end(
          `HTTP/1.1 ${shuttingDown ? '503 Service Unavailable' : '404 Not Found'}\r\nconnection: close\r\n\r\n`,
        );
        setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS).unref();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) =>
        onConnection(ws, options.addressOf?.(req) ?? addressOf(req.socket), transport),
      );
    });
  }

  serveOn(server, 'tls');
  if (plain) serveOn(plain, 'plain');
  server.on('secureConnection', (tlsSocket: TLSSocket) => {
    // The TLS socket wraps the raw one the caps track (its `_parent`, which Node does not
    // document: without it nothing is evicted, which is the behaviour before eviction existed).
    const raw = (tlsSocket as TLSSocket & { _parent?: Socket })._parent;
    if (raw) handshaking.delete(raw);
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    metrics.handshakeFailures.inc({
      reason: err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'timeout' : 'error',
    });
    log.debug({ err: err.message, address: socket.remoteAddress }, 'TLS handshake failed');
    socket.destroy();
  });

  function protocolError(conn: Connection, error: SwitchboardError, id?: number): void {
    metrics.protocolErrors.inc({ code: error.code });
    conn.log.debug({ code: error.code }, 'protocol error');
    conn.sendError(id, error);
    if (conn.countError(now())) {
      metrics.connectionsDropped.inc({ reason: 'protocol_errors' });
      conn.log.warn({ address: conn.address }, 'closing connection after repeated protocol errors');
      conn.close(CloseCode.POLICY, 'too many protocol errors');
    }
  }

  function onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      const decoded = decodeData(data);
      if (!decoded.ok) return protocolError(conn, decoded.error);
      const route = conn.channels.get(decoded.value.channel);
      // Data racing a close is normal (the sender has not seen channel.closed yet): drop it quietly.
      if (!route) return;
      directory.forward(route, decoded.value.payload);
      return;
    }
    const decoded = decodeRequest(data, MAX_FRAME_BYTES);
    if (!conn.takeToken(now())) {
      metrics.throttled.inc({ limit: 'control_rate' });
      const id = decoded.ok ? decoded.value.id : decoded.id;
      return protocolError(
        conn,
        new ProtocolError(ErrorCode.RATE_LIMITED, 'too many control messages; slow down'),
        id,
      );
    }
    if (!decoded.ok) return protocolError(conn, decoded.error, decoded.id);
    const request = decoded.value;
    handle(conn, request, services).then(
      (result) => {
        count(request.type, 'ok');
        conn.sendReply(request.id, result);
      },
      (err: unknown) => {
        if (err instanceof SwitchboardError) {
          count(request.type, err.code);
          conn.sendError(request.id, err);
        } else {
          conn.log.error({ err, type: request.type }, 'request failed');
          conn.sendError(request.id, {
            code: ErrorCode.INTERNAL,
            message: 'internal error; the relay log has details',
          });
        }
      },
    );
  }

  /** Feeds the login, sign-up and throttle metrics from a request's outcome. */
  function count(type: string, outcome: string): void {
    const result = outcome.toLowerCase();
    if (type === 'auth.login') metrics.logins.inc({ result });
    else if (type === 'auth.signup') metrics.signups.inc({ result });
    if (outcome === ErrorCode.THROTTLED || outcome === ErrorCode.RATE_LIMITED)
      metrics.throttled.inc({ limit: type });
  }

  const slowPeerGraceMs = options.slowPeerGraceMs;
  function onConnection(ws: WebSocket, address: string, transport: Transport): void {
    const conn = new Connection(ws, address, log, now(), {
      transport,
      ...(slowPeerGraceMs === undefined ? {} : { slowPeerGraceMs }),
      ...(options.maxChannelsPerConnection === undefined
        ? {}
        : { maxChannels: options.maxChannelsPerConnection }),
      onCut: (reason) => metrics.connectionsDropped.inc({ reason }),
    });
    connections.add(conn);
    conn.log.debug({ address, transport }, 'connected');
    const helloTimer = setTimeout(() => {
      if (!conn.helloDone)
        conn.close(CloseCode.POLICY, `no hello within ${HELLO_TIMEOUT_MS / 1000} s`);
    }, HELLO_TIMEOUT_MS);
    const authTimer = setTimeout(() => {
      if (!conn.auth)
        conn.close(CloseCode.POLICY, `not logged in within ${IDLE_UNAUTHENTICATED_MS / 1000} s`);
    }, IDLE_UNAUTHENTICATED_MS);
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // A connection being closed processes nothing more: a flood after the close costs nothing.
      if (conn.closed) return;
      try {
        // ws delivers a Buffer (binaryType 'nodebuffer'): use it as is, no copy per frame.
        const frame = Buffer.isBuffer(data)
          ? data
          : Array.isArray(data)
            ? Buffer.concat(data)
            : Buffer.from(data);
        onMessage(conn, frame, isBinary);
      } catch (err) {
        conn.log.error({ err }, 'message handling failed');
        conn.close(CloseCode.INTERNAL, 'internal error');
      }
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes with 1009 itself for frames over maxPayload.
      conn.log.debug({ err: err.message, code: err.code }, 'websocket error');
    });
    ws.on('close', (code: number) => {
      clearTimeout(helloTimer);
      clearTimeout(authTimer);
      conn.dispose();
      connections.delete(conn);
      if (connections.size === 0) onAllClosed?.();
      const gone = directory.dropConnection(conn);
      conn.log.debug({ code, user: conn.auth?.user.name }, 'disconnected');
      for (const live of gone) {
        conn.log.info({ session: live.row.id }, 'session offline (host disconnected)');
        // On shutdown leases.stop() releases them all in one statement.
        if (!shuttingDown) void leases.release(live.row.id);
      }
    });
  }

  const heartbeatMs = services.heartbeatMs;
  const heartbeat = setInterval(() => {
    for (const conn of connections) {
      // Only a pong proves the peer reads: a client that sends but never reads is dropped.
      if (!conn.alive) {
        metrics.connectionsDropped.inc({ reason: 'heartbeat' });
        conn.log.info(
          { user: conn.auth?.user.name },
          'dropping a peer that stopped answering heartbeats',
        );
        conn.terminate();
        continue;
      }
      conn.alive = false;
      if (conn.auth && now() - conn.touchedAt > TOKEN_TOUCH_INTERVAL_MS) {
        conn.touchedAt = now();
        services.auth
          .touch(conn.auth)
          .catch((err: unknown) => log.warn({ err }, 'token touch failed'));
      }
      try {
        conn.ws.ping();
      } catch {
        conn.terminate();
      }
    }
  }, heartbeatMs);
  heartbeat.unref();
  const housekeeping = setInterval(() => {
    store.tokens
      .deleteExpired(now() - 24 * 3600_000)
      .catch((err: unknown) => log.warn({ err }, 'token cleanup failed'));
    store.remoteSessions
      .deleteStale(now() - sessionReserveMs)
      .catch((err: unknown) => log.warn({ err }, 'session cleanup failed'));
    store.broadcasts
      .deleteExpired(now())
      .catch((err: unknown) => log.warn({ err }, 'broadcast cleanup failed'));
    store.mailbox
      .deleteExpired(now())
      .catch((err: unknown) => log.warn({ err }, 'mailbox cleanup failed'));
  }, 3600_000);
  housekeeping.unref();

  /** Listens on HOST:PORT; a port in use names the flag that chose it. */
  function listenOn(listener: HttpServer, at: string, port: number, flag: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, at, () => {
        listener.off('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') throw err;
      throw new SwitchboardError(
        ErrorCode.INTERNAL,
        `port ${port} on ${at} is in use; stop the other process or pass another ${flag}`,
      );
    });
  }
  try {
    await listenOn(server, host, options.port ?? 7443, '--port');
    if (plain && plainHost !== undefined)
      await listenOn(plain, plainHost, options.plainPort ?? 0, '--plain-port');
  } catch (err) {
    clearInterval(heartbeat);
    clearInterval(housekeeping);
    server.close();
    await store.close();
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'server error'));
  plain?.on('error', (err) => log.error({ err, transport: 'plain' }, 'server error'));
  leases.start();
  const port = (server.address() as AddressInfo).port;
  const plainPort = plain ? (plain.address() as AddressInfo).port : undefined;
  log.info(
    {
      host,
      port,
      fingerprint: certificate.fingerprint,
      maxConnections,
      maxPerAddress,
      ...(plain ? { plainHost, plainPort } : {}),
    },
    'relay listening',
  );
  if (plainHost !== undefined && !isLoopbackHost(plainHost))
    log.warn(
      { plainHost, plainPort },
      'the plaintext listener is reachable from other machines: passwords, tokens and metadata cross it in clear',
    );

  let closing: Promise<void> | undefined;
  async function close(reason = 'the relay is shutting down'): Promise<void> {
    shuttingDown = true;
    clearInterval(heartbeat);
    clearInterval(housekeeping);
    const serverClosed = Promise.all(
      [server, plain].map((l) => l && new Promise<void>((resolve) => l.close(() => resolve()))),
    );
    for (const conn of connections) {
      conn.sendEvent({ type: 'shutdown', reason });
      conn.close(CloseCode.GOING_AWAY, reason);
    }
    if (connections.size > 0) {
      // Clients get the grace period to close; whoever is still there after it is cut.
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        onAllClosed = resolve;
        timer = setTimeout(resolve, options.shutdownGraceMs ?? 2_000);
      });
      clearTimeout(timer);
    }
    for (const conn of connections) conn.terminate();
    // Half-open TLS handshakes and idle HTTP connections too: nothing may hold the close up.
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    plain?.closeAllConnections();
    await serverClosed;
    // Only this relay's leases: another relay sharing the database keeps its sessions live.
    await leases.stop();
    await relayAudit.flush();
    await store.close();
    log.info({ reason }, 'relay stopped');
  }

  return {
    host,
    port,
    plainPort,
    plainHost,
    certificate,
    webPage: web.ok,
    dataDir: options.dataDir,
    metrics,
    stats: () => ({
      sockets: sockets.size,
      connections: connections.size,
      queuedBytes: queuedBytes(),
      hashes: auth.hashStats,
    }),
    close: (reason) => (closing ??= close(reason)),
  };
}

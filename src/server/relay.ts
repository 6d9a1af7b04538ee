// The relay: one TLS port serving HTTPS, the WebSocket protocol, heartbeats and clean shutdown.
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { decodeData, decodeRequest } from '../protocol/codec.js';
import { ErrorCode, ProtocolError, SwitchboardError } from '../protocol/errors.js';
import {
  HANDSHAKE_TIMEOUT_MS,
  HARD_MAX_FRAME_BYTES,
  HEARTBEAT_INTERVAL_MS,
  HELLO_TIMEOUT_MS,
  IDLE_UNAUTHENTICATED_MS,
  MAX_FRAME_BYTES,
  WS_PATH,
} from '../protocol/limits.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/repositories.js';
import { AuthService, type AuthOptions } from './auth-service.js';
import {
  loadCertificateFiles,
  loadOrCreateCertificate,
  tlsServerOptions,
  type ServerCertificate,
} from './certificate.js';
import { CloseCode, Connection } from './connection.js';
import { Directory } from './directory.js';
import { handle, type Services } from './handlers.js';
import { handleHttp } from './http-api.js';
import { silentLogger, type Logger } from './logger.js';

/** How often a live connection refreshes its login's idle timer (a long-running agent never idles out). */
const TOKEN_TOUCH_INTERVAL_MS = 3600_000; // ms

export interface RelayOptions {
  /** Address to listen on. Default 0.0.0.0. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 7443. */
  port?: number;
  /** Directory for the database and the generated certificate (created 0700). */
  dataDir: string;
  /** Use this certificate and key instead of the generated one. Both or neither. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Extra host names for the generated certificate's subjectAltName. */
  hostnames?: string[];
  /** Most live remote sessions at once. Default 1000. */
  maxRemotes?: number;
  logger?: Logger;
  /** Clock in epoch ms; tests move it to expire tokens. Default Date.now. */
  now?: () => number;
  auth?: Partial<AuthOptions>;
  /** Heartbeat interval; a peer silent for two intervals is dropped. Default 15 s. */
  heartbeatMs?: number;
  /** Grace given to clients to close on shutdown before they are cut. Default 2 s. */
  shutdownGraceMs?: number;
}

export interface Relay {
  readonly host: string;
  readonly port: number;
  readonly certificate: ServerCertificate;
  readonly dataDir: string;
  /** Stops accepting, tells every client why, closes the database. Idempotent. */
  close(reason?: string): Promise<void>;
}

const DEFAULT_MAX_REMOTES = 1000;

/** Starts a relay and resolves once it listens. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const log = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const host = options.host ?? '0.0.0.0';
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

  const dbFile = join(options.dataDir, 'switchboard.db');
  // The database holds password hashes: created 0600 (SQLite gives its -wal/-shm files the same mode).
  if (existsSync(dbFile)) chmodSync(dbFile, 0o600);
  else writeFileSync(dbFile, '', { mode: 0o600 });
  if ((statSync(options.dataDir).mode & 0o077) !== 0) {
    log.warn(
      { dataDir: options.dataDir },
      'the data directory is accessible to other users; chmod 700 it',
    );
  }
  const store: Store = await openSqliteStore({ file: dbFile });
  const offline = await store.remoteSessions.markAllOffline(now());
  if (offline > 0)
    log.info(
      { sessions: offline },
      'sessions from the last run wait for their hosts to re-register',
    );

  const directory = new Directory();
  const services: Services = {
    store,
    auth: new AuthService(store, now, options.auth),
    directory,
    now,
    log,
    maxRemotes,
  };
  const startedAt = now();
  let shuttingDown = false;
  const connections = new Set<Connection>();
  /** Set while shutting down: called when the last connection has closed. */
  let onAllClosed: (() => void) | undefined;

  const server: Server = createServer({
    ...tlsServerOptions(certificate),
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  server.headersTimeout = HANDSHAKE_TIMEOUT_MS;
  server.requestTimeout = 30_000; // ms
  server.keepAliveTimeout = 5_000; // ms
  server.on('request', (req, res) => {
    void handleHttp(req, res, {
      ...services,
      fingerprint: certificate.fingerprint,
      startedAt,
      isShuttingDown: () => shuttingDown,
    });
  });
  server.on('tlsClientError', (err, socket) => {
    log.debug({ err: err.message, address: socket.remoteAddress }, 'TLS handshake failed');
  });
  server.on('clientError', (err, socket) => {
    log.debug({ err: err.message }, 'bad HTTP request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: HARD_MAX_FRAME_BYTES,
    perMessageDeflate: false,
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'https://relay').pathname;
    if (shuttingDown || path !== WS_PATH) {
      socket.end(
        `HTTP/1.1 ${shuttingDown ? '503 Service Unavailable' : '404 Not Found'}\r\nconnection: close\r\n\r\n`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) =>
      onConnection(ws, req.socket.remoteAddress ?? 'unknown'),
    );
  });

  function protocolError(conn: Connection, error: SwitchboardError, id?: number): void {
    conn.log.debug({ code: error.code }, 'protocol error');
    conn.sendError(id, error);
    if (conn.countError(now())) {
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
      (result) => conn.sendReply(request.id, result),
      (err: unknown) => {
        if (err instanceof SwitchboardError) {
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

  function onConnection(ws: WebSocket, address: string): void {
    const conn = new Connection(ws, address, log, now());
    connections.add(conn);
    conn.log.debug({ address }, 'connected');
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
      conn.alive = true;
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
      conn.closed = true;
      connections.delete(conn);
      if (connections.size === 0) onAllClosed?.();
      const gone = directory.dropConnection(conn);
      conn.log.debug({ code, user: conn.auth?.user.name }, 'disconnected');
      for (const live of gone) {
        conn.log.info({ session: live.row.id }, 'session offline (host disconnected)');
        if (!shuttingDown) {
          store.remoteSessions.setStatus(live.row.id, 'offline', now()).catch((err: unknown) => {
            log.error({ err }, 'could not mark session offline');
          });
        }
      }
    });
  }

  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
  const heartbeat = setInterval(() => {
    for (const conn of connections) {
      if (!conn.alive) {
        conn.log.info(
          { user: conn.auth?.user.name },
          'dropping a peer that stopped answering heartbeats',
        );
        conn.ws.terminate();
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
        conn.ws.terminate();
      }
    }
  }, heartbeatMs);
  heartbeat.unref();
  const housekeeping = setInterval(() => {
    store.tokens
      .deleteExpired(now() - 24 * 3600_000)
      .catch((err: unknown) => log.warn({ err }, 'token cleanup failed'));
  }, 3600_000);
  housekeeping.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7443, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: NodeJS.ErrnoException) => {
    await store.close();
    if (err.code === 'EADDRINUSE') {
      throw new SwitchboardError(
        ErrorCode.INTERNAL,
        `port ${options.port} on ${host} is in use; stop the other process or pass --port`,
      );
    }
    throw err;
  });
  server.on('error', (err) => log.error({ err }, 'server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host, port, fingerprint: certificate.fingerprint }, 'relay listening');

  let closing: Promise<void> | undefined;
  async function close(reason = 'the relay is shutting down'): Promise<void> {
    shuttingDown = true;
    clearInterval(heartbeat);
    clearInterval(housekeeping);
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
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
    for (const conn of connections) conn.ws.terminate();
    server.closeAllConnections();
    await serverClosed;
    await store.remoteSessions.markAllOffline(now()).catch(() => 0);
    await store.close();
    log.info({ reason }, 'relay stopped');
  }

  return {
    host,
    port,
    certificate,
    dataDir: options.dataDir,
    close: (reason) => (closing ??= close(reason)),
  };
}

// Opens a TLS socket to the relay and decides, before a single byte is sent, whether to trust it.
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import { certFingerprint } from '../crypto/cert-fingerprint.js';
import { ConnectError, ErrorCode } from '../protocol/errors.js';
import type { Transport } from '../protocol/messages.js';
import { checkServerTrust, trustRequiredError, type KnownServers } from './known-servers.js';

export interface TrustOptions {
  /** Pins: the client's known_servers file. */
  knownServers: KnownServers;
  /** `--fingerprint`: the SHA-256 the user expects (any accepted spelling). */
  fingerprint?: string;
  /** `--ca FILE`: verify the chain and host name against this CA instead of pinning. */
  caFile?: string;
  /** Trust-on-first-use prompt; only given when a person is at a terminal. Resolves true to trust. */
  ask?: (server: string, fingerprint: string) => Promise<boolean>;
}

export interface ServerAddress {
  host: string;
  port: number;
  /**
   * "host:port" as the user wrote it, the key of the pin and the saved login; a plaintext
   * address keeps its scheme ("plain://host:port"), so the two never share pins or logins.
   */
  label: string;
  /** 'tls' for HOST:PORT; 'plain' for plain://HOST:PORT (a relay's `serve --plain-port`). */
  transport: Transport;
}

/** The scheme of a plaintext address: `plain://HOST:PORT`. */
export const PLAIN_SCHEME = 'plain://';

/**
 * Parses HOST:PORT (IPv6 as [::1]:7443; the port defaults to 7443) or plain://HOST:PORT (the
 * port required: a plaintext listener has no default).
 *
 * @example parseServerAddress('plain://127.0.0.1:8080') // { transport: 'plain', label: 'plain://127.0.0.1:8080', ... }
 */
export function parseServerAddress(input: string): ServerAddress {
  const text = input.trim();
  const plain = text.slice(0, PLAIN_SCHEME.length).toLowerCase() === PLAIN_SCHEME;
  const rest = plain ? text.slice(PLAIN_SCHEME.length) : text;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+))(?::(\d{1,5}))?$/.exec(rest);
  const host = m?.[1] ?? m?.[2];
  const port = m?.[3] === undefined ? (plain ? 0 : 7443) : Number(m[3]);
  if (!m || !host || port < 1 || port > 65535) {
    throw new ConnectError(
      ErrorCode.CONNECT_FAILED,
      plain
        ? `"${input}" is not plain://HOST:PORT (for example plain://127.0.0.1:8080)`
        : `"${input}" is not HOST:PORT (for example relay.example.com:7443)`,
    );
  }
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return plain
    ? { host, port, label: `${PLAIN_SCHEME}${hostPort}`, transport: 'plain' }
    : { host, port, label: hostPort, transport: 'tls' };
}

/** How long a connect (TCP, and TLS where there is one) may take before CONNECT_FAILED. */
export const CONNECT_TIMEOUT_MS = 10_000; // ms

/** Resolves with a TLS socket the user trusts, or rejects with TRUST_REQUIRED / CERT_CHANGED / CONNECT_FAILED. */
export async function connectTrusted(
  address: ServerAddress,
  trust: TrustOptions,
): Promise<TLSSocket> {
  const ca = trust.caFile === undefined ? undefined : readCa(trust.caFile);
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({
      host: address.host,
      port: address.port,
      servername: isIp(address.host) ? undefined : address.host,
      ALPNProtocols: ['http/1.1'],
      minVersion: 'TLSv1.2',
      // With --ca the chain and name are checked by OpenSSL; otherwise we check the pin below.
      rejectUnauthorized: ca !== undefined,
      ...(ca ? { ca } : {}),
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new ConnectError(
          ErrorCode.CONNECT_FAILED,
          `no TLS answer from ${address.label} within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(describeConnectError(address, err));
    });
  });
  if (ca) return socket;
  try {
    const raw = socket.getPeerCertificate(false)?.raw;
    if (!raw)
      throw new ConnectError(ErrorCode.CONNECT_FAILED, `${address.label} presented no certificate`);
    const presented = certFingerprint(raw);
    const pinned = trust.knownServers.get(address.label);
    const decision = checkServerTrust({
      server: address.label,
      presented,
      pinned,
      ...(trust.fingerprint ? { expected: trust.fingerprint } : {}),
    });
    if (decision.action === 'pin') {
      trust.knownServers.pin(address.label, presented, decision.via);
    } else if (decision.action === 'ask') {
      if (!trust.ask) throw trustRequiredError(address.label, presented);
      if (!(await trust.ask(address.label, presented))) {
        throw new ConnectError(
          ErrorCode.TRUST_REQUIRED,
          `not connecting: you did not trust ${address.label}`,
        );
      }
      trust.knownServers.pin(address.label, presented, 'tofu');
    }
    return socket;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConnectError(
      ErrorCode.CONNECT_FAILED,
      `cannot read the CA file ${file}: ${(err as Error).message}`,
    );
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** A failed connect as a CONNECT_FAILED that says what to check. */
export function describeConnectError(
  address: ServerAddress,
  err: NodeJS.ErrnoException,
): ConnectError {
  const where = address.label;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new ConnectError(
        ErrorCode.CONNECT_FAILED,
        `nothing listens on ${where}; is the relay running (switchboard serve)?`,
        { cause: err },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConnectError(
        ErrorCode.CONNECT_FAILED,
        `cannot resolve ${address.host}; check --server`,
        { cause: err },
      );
    case 'ETIMEDOUT':
      return new ConnectError(ErrorCode.CONNECT_FAILED, `connecting to ${where} timed out`, {
        cause: err,
      });
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'EPROTO':
      return new ConnectError(
        ErrorCode.CONNECT_FAILED,
        `${where} does not speak TLS 1.2+; is it a Switchboard relay?`,
        { cause: err },
      );
    default:
      if (err.code?.startsWith('ERR_TLS') || /certificate|self.signed|verify/i.test(err.message)) {
        return new ConnectError(
          ErrorCode.CONNECT_FAILED,
          `the certificate of ${where} did not verify against --ca: ${err.message}`,
          { cause: err },
        );
      }
      return new ConnectError(
        ErrorCode.CONNECT_FAILED,
        `cannot connect to ${where}: ${err.message}`,
        { cause: err },
      );
  }
}

// `switchboard serve`: run the relay in the foreground until SIGINT/SIGTERM.
import { parseDuration } from '../../protocol/units.js';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { startRelay } from '../../server/relay.js';
import { redactDatabaseUrl } from '../../store/database-url.js';
import { LOG_LEVELS, createLogger, type LogLevel } from '../../server/logger.js';
import {
  DEFAULT_AUTH_OPTIONS,
  SIGNUP_MODES,
  type AuthOptions,
  type SignupMode,
} from '../../server/auth-service.js';
import { USERNAME_RE } from '../../protocol/messages.js';
import { isLoopbackHost } from '../../protocol/loopback.js';
import {
  MAX_CONNECTIONS_PER_ACCOUNT,
  MAX_CONNECTIONS_PER_ADDRESS,
  MAX_LIVE_SESSIONS_PER_ACCOUNT,
} from '../../protocol/limits.js';
import { list, numberOption, str, type Command } from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';

function intOption(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  return numberOption(value, name, min, max, true) ?? fallback;
}

const DEFAULT_SIGNUP_RATE = DEFAULT_AUTH_OPTIONS.signupRate;
/** Highest `--signup-rate`: sign-ups a minute from one address. */
const MAX_SIGNUP_RATE = 100_000;

/**
 * The sign-up buckets for `--signup-rate N`: one address may create N accounts a minute and at
 * least as many at once (never fewer than the default burst), and the relay-wide bucket is
 * raised to match, or a single address could never use what it was given.
 *
 * @example signupRate(30) // per address 30 a minute, 30 at once; relay-wide 60 and 60 (the default)
 */
function signupRate(perMinute: number): AuthOptions['signupRate'] {
  const { perAddress, relay } = DEFAULT_SIGNUP_RATE;
  return {
    perAddress: { perMinute, burst: Math.max(perMinute, perAddress.burst) },
    relay: {
      perMinute: Math.max(perMinute, relay.perMinute),
      burst: Math.max(perMinute, relay.burst),
    },
  };
}

export const serve: Command = {
  name: 'serve',
  summary: 'Run the relay: one TLS port for the CLI, hosts, browsers and the REST API.',
  usage:
    '[--host H] [--port P] [--data-dir D] [--database URL] [--max-remotes N] [--tls-cert F --tls-key F]\n' +
    '       [--cert-name NAME]... [--signup open|invite|closed] [--signup-rate N] [--admin USER]...\n' +
    '       [--max-connections-per-address N] [--max-connections-per-user N] [--max-sessions-per-user N]\n' +
    '       [--metrics-token TOKEN] [--log-level L] [--plain-port P [--plain-host H]]',
  details:
    'On first start it generates an ECDSA P-256 certificate in the data directory and prints its\n' +
    'SHA-256 fingerprint; clients pin it with --fingerprint. Logs are JSON lines on stderr.\n' +
    'SIGINT or SIGTERM stops it cleanly (clients are told why) and it exits 0.\n' +
    '--plain-port adds a listener without TLS, on loopback unless --plain-host says otherwise, for a\n' +
    'TLS-terminating proxy in front or a benchmark; clients reach it with --server plain://HOST:PORT.',
  positionals: [0, 0],
  options: {
    host: { type: 'string', value: 'H', description: 'address to listen on (default 0.0.0.0)' },
    port: {
      type: 'string',
      value: 'P',
      description: 'TCP port (default 7443; 0 picks a free one)',
    },
    'plain-port': {
      type: 'string',
      value: 'P',
      description:
        'also serve the same API without TLS on this port (0 picks a free one): passwords and tokens cross it in clear',
    },
    'plain-host': {
      type: 'string',
      value: 'H',
      description:
        'address of the --plain-port listener (default 127.0.0.1); another one prints a warning',
    },
    'data-dir': {
      type: 'string',
      value: 'D',
      description:
        'database and certificate directory (default $SWITCHBOARD_DATA or ~/.local/share/switchboard)',
    },
    database: {
      type: 'string',
      value: 'URL',
      description:
        'postgres://USER@HOST/DB to use PostgreSQL, or a SQLite file (env SWITCHBOARD_DATABASE; default switchboard.db in the data directory)',
    },
    'max-remotes': {
      type: 'string',
      value: 'N',
      description: 'most live remote sessions at once (default 1000)',
    },
    unit: {
      type: 'string',
      value: 'NAME',
      description: "the name of the ledger's unit, as users see it (default credits)",
    },
    'signup-credit': {
      type: 'string',
      value: 'N',
      description: 'credits minted for each new account (default 100; 0: none)',
    },
    'broadcast-window': {
      type: 'string',
      value: 'DURATION',
      description: 'how long a broadcast reaches users who come online: 90s, 5m, 1h (default 30m)',
    },
    'tls-cert': {
      type: 'string',
      value: 'F',
      description: 'PEM certificate to use instead of the generated one',
    },
    'tls-key': { type: 'string', value: 'F', description: 'PEM private key for --tls-cert' },
    'cert-name': {
      type: 'string',
      value: 'NAME',
      multiple: true,
      description:
        'DNS name or IP to put in the generated certificate (repeatable; only when it is first made)',
    },
    'max-connections-per-address': {
      type: 'string',
      value: 'N',
      description:
        'TCP connections one source address may hold (default 256; raise it for big NATs)',
    },
    'max-connections-per-user': {
      type: 'string',
      value: 'N',
      description: 'live connections one account may hold (default 100)',
    },
    'max-sessions-per-user': {
      type: 'string',
      value: 'N',
      description: 'live sessions one account may host (default 50); it may hold twice as many IDs',
    },
    'metrics-token': {
      type: 'string',
      value: 'TOKEN',
      description:
        'serve GET /metrics to whoever sends this bearer token, loopback included (env SWITCHBOARD_METRICS_TOKEN); without it, loopback only',
    },
    signup: {
      type: 'string',
      value: 'MODE',
      description:
        'who may create accounts: open (anyone), invite (with a code from an admin) or closed (default open)',
    },
    'signup-rate': {
      type: 'string',
      value: 'N',
      description: `accounts one address may create a minute, and at once (default ${DEFAULT_SIGNUP_RATE.perAddress.perMinute} a minute, ${DEFAULT_SIGNUP_RATE.perAddress.burst} at once); raise it for a benchmark or a classroom behind one NAT`,
    },
    admin: {
      type: 'string',
      value: 'USER',
      multiple: true,
      description: 'user who may make invite codes (repeatable)',
    },
    'log-level': {
      type: 'string',
      value: 'L',
      description: `${LOG_LEVELS.join('|')} (default info)`,
    },
  },
  async run(inv) {
    const { stdout, env } = inv.io;
    const level = (str(inv, 'log-level') ?? 'info') as LogLevel;
    if (!LOG_LEVELS.includes(level))
      throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
    const port = intOption(str(inv, 'port'), 'port', 0, 65535, 7443);
    const maxRemotes = intOption(str(inv, 'max-remotes'), 'max-remotes', 1, 1_000_000, 1000);
    const unit = str(inv, 'unit');
    if (unit !== undefined && !/^[\p{L}\p{N} _-]{1,32}$/u.test(unit))
      throw new UsageError('--unit is a name of 1 to 32 letters, digits, spaces, - or _');
    const creditText = str(inv, 'signup-credit');
    let signupCredit: number | undefined;
    if (creditText !== undefined) {
      if (!/^\d+$/.test(creditText) || Number(creditText) > 1e12)
        throw new UsageError('--signup-credit takes a whole number of credits (0 for none)');
      signupCredit = Number(creditText);
    }
    const windowText = str(inv, 'broadcast-window');
    let broadcastWindowMs: number | undefined;
    if (windowText !== undefined) {
      try {
        broadcastWindowMs = parseDuration(windowText);
      } catch (err) {
        throw new UsageError(`--broadcast-window: ${(err as Error).message}`);
      }
    }
    const dataDir =
      str(inv, 'data-dir') ??
      env['SWITCHBOARD_DATA'] ??
      join(homedir(), '.local', 'share', 'switchboard');
    const database = str(inv, 'database') ?? env['SWITCHBOARD_DATABASE'];
    if (database === '') throw new UsageError('--database must not be empty');
    const certFile = str(inv, 'tls-cert');
    const keyFile = str(inv, 'tls-key');
    if ((certFile === undefined) !== (keyFile === undefined))
      throw new UsageError('--tls-cert and --tls-key go together');
    const host = str(inv, 'host') ?? '0.0.0.0';
    const plainPort = numberOption(str(inv, 'plain-port'), 'plain-port', 0, 65535, true);
    const plainHostGiven = str(inv, 'plain-host');
    if (plainHostGiven !== undefined && plainPort === undefined)
      throw new UsageError('--plain-host needs --plain-port');
    const plainHost = plainHostGiven ?? '127.0.0.1';
    const perUserConnections = intOption(
      str(inv, 'max-connections-per-user'),
      'max-connections-per-user',
      1,
      100_000,
      MAX_CONNECTIONS_PER_ACCOUNT,
    );
    const perUserSessions = intOption(
      str(inv, 'max-sessions-per-user'),
      'max-sessions-per-user',
      1,
      1_000_000,
      MAX_LIVE_SESSIONS_PER_ACCOUNT,
    );
    const perAddress = intOption(
      str(inv, 'max-connections-per-address'),
      'max-connections-per-address',
      1,
      1_000_000,
      MAX_CONNECTIONS_PER_ADDRESS,
    );
    const metricsToken = str(inv, 'metrics-token') ?? env['SWITCHBOARD_METRICS_TOKEN'];
    if (metricsToken !== undefined && metricsToken.length < 16)
      throw new UsageError('--metrics-token must be at least 16 characters');
    const signupMode = (str(inv, 'signup') ?? 'open') as SignupMode;
    if (!SIGNUP_MODES.includes(signupMode))
      throw new UsageError(`--signup must be one of ${SIGNUP_MODES.join(', ')}`);
    const signupRatePerAddress = numberOption(
      str(inv, 'signup-rate'),
      'signup-rate',
      1,
      MAX_SIGNUP_RATE,
      true,
    );
    const admins = list(inv, 'admin');
    for (const name of admins)
      if (!USERNAME_RE.test(name)) throw new UsageError(`--admin "${name}" is not a user name`);
    // Before anything is created: a busy port is the command line's to fix, not an internal error.
    if (port !== 0) await ensurePortFree(host, port);
    if (plainPort !== undefined && plainPort !== 0) {
      if (plainPort === port) throw new UsageError('--plain-port must differ from --port');
      await ensurePortFree(plainHost, plainPort, '--plain-port', '--plain-host');
    }
    const logger = createLogger(level);
    const relay = await startRelay({
      signup: signupMode,
      ...(signupRatePerAddress === undefined
        ? {}
        : { auth: { signupRate: signupRate(signupRatePerAddress) } }),
      admins,
      host,
      port,
      dataDir,
      ...(database === undefined ? {} : { database }),
      maxRemotes,
      ...(broadcastWindowMs !== undefined ? { broadcastWindowMs } : {}),
      ...(signupCredit !== undefined ? { signupCredit } : {}),
      ...(str(inv, 'unit') !== undefined ? { unit: str(inv, 'unit')! } : {}),
      logger,
      hostnames: list(inv, 'cert-name'),
      maxConnectionsPerAddress: perAddress,
      perAccount: {
        connections: perUserConnections,
        liveSessions: perUserSessions,
        registeredSessions: perUserSessions * 2,
      },
      ...(metricsToken === undefined ? {} : { metricsToken }),
      ...(certFile && keyFile ? { tlsCertFile: certFile, tlsKeyFile: keyFile } : {}),
      ...(plainPort === undefined ? {} : { plainPort, plainHost }),
    });
    const shown =
      host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    stdout.write(
      `Switchboard relay listening on ${host}:${relay.port} (data in ${dataDir}${database === undefined ? '' : `, database ${redactDatabaseUrl(database)}`})\n` +
        `TLS certificate SHA-256 fingerprint:\n  ${relay.certificate.fingerprint}\n` +
        `Clients trust this relay with:\n` +
        `  switchboard login --server ${shown}:${relay.port} --fingerprint ${relay.certificate.fingerprint} --user NAME\n` +
        (shown === 'localhost'
          ? "(from another machine, use this machine's address instead of localhost)\n"
          : '') +
        (relay.webPage
          ? `Web page (terminals and chat in a browser): https://${shown}:${relay.port}/\n` +
            '  (its certificate is self-signed unless you gave one: check the browser shows the fingerprint above)\n'
          : ''),
    );
    if (relay.plainPort !== undefined && relay.plainHost !== undefined) {
      const bound = relay.plainHost.includes(':') ? `[${relay.plainHost}]` : relay.plainHost;
      const loopback = isLoopbackHost(relay.plainHost);
      // From this machine a wildcard listener is reached on loopback, where no --insecure is needed.
      const dial = relay.plainHost === '0.0.0.0' || relay.plainHost === '::' ? '127.0.0.1' : bound;
      stdout.write(
        `plaintext listener on ${bound}:${relay.plainPort} (no TLS)\n` +
          `  switchboard login --server plain://${dial}:${relay.plainPort}${loopback || dial === '127.0.0.1' ? '' : ' --insecure'} --user NAME\n`,
      );
      if (!loopback) inv.io.stderr.write(plaintextWarning(bound));
    }
    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) {
          resolve(Exit.INTERRUPTED);
          return;
        }
        stopping = true;
        logger.info({ signal }, 'stopping');
        relay.close(`the relay is shutting down (${signal})`).then(
          () => resolve(Exit.OK),
          (err: unknown) => {
            logger.error({ err }, 'unclean shutdown');
            resolve(Exit.FAILURE);
          },
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};

/** The warning for a plaintext listener other machines can reach: loud, and saying what to do. */
function plaintextWarning(host: string): string {
  const rule = '*'.repeat(78);
  return (
    `${rule}\n` +
    `WARNING: the plaintext listener on ${host} is reachable from other machines.\n` +
    `Passwords, login tokens and metadata (who talks to whom, session names) cross it in\n` +
    `clear: anyone on the path can read them and take over accounts. Use it only behind a\n` +
    `TLS-terminating proxy or on a network you trust; otherwise drop --plain-host (loopback).\n` +
    `Clients must pass --insecure to use it.\n` +
    `${rule}\n`
  );
}

/**
 * Fails with a usage error when HOST:PORT cannot be listened on (in use, or not allowed), before
 * the data directory or the database is created. The relay's own listen still reports the rare
 * case of the port being taken between this check and it.
 */
function ensurePortFree(
  host: string,
  port: number,
  portFlag = '--port',
  hostFlag = '--host',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is in use; stop the other process or pass another ${portFlag}`
          : err.code === 'EACCES'
            ? `not allowed to listen on port ${port} (ports below 1024 need privileges); pass ${portFlag}`
            : err.code === 'EADDRNOTAVAIL'
              ? `${host} is not an address of this machine; pass ${hostFlag}`
              : `cannot listen on ${host}:${port}: ${err.message}`;
      reject(new UsageError(why));
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

// Turns flags and environment into a trusted, logged-in relay connection for client commands.
import { KnownServers } from '../client/known-servers.js';
import { RelayClient } from '../client/relay-client.js';
import { PLAIN_SCHEME, parseServerAddress, type TrustOptions } from '../client/tls-connect.js';
import { AuthError, ErrorCode } from '../protocol/errors.js';
import type { Results } from '../protocol/messages.js';
import { bool, str, type Invocation } from './command.js';
import { UsageError } from './exit-codes.js';
import { FILES, Home, defaultHome, type SavedLogin } from './home.js';
import { confirm, interactive } from './prompt.js';

export function homeOf(inv: Invocation): Home {
  return new Home(defaultHome(inv.io.env));
}

/**
 * A relay address as the client keeps it, `HOST:PORT` (the port defaults to 7443), so `localhost`,
 * `localhost:7443` and `switchboard://localhost` are one relay for logins and pins alike. A
 * plaintext listener is `plain://HOST:PORT` (port required), kept with its scheme: never the same
 * relay as `HOST:PORT` for logins or pins. A web address (`https://…`) is refused with what to
 * write instead.
 */
export function normalizeServer(input: string): string {
  let text = input.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  const name = scheme?.[1]?.toLowerCase();
  if (scheme) {
    if (name !== 'switchboard' && name !== 'plain')
      throw new UsageError(
        `"${input}" is a ${scheme[1]} URL; give the relay as HOST:PORT (for example relay.example.com:7443)`,
      );
    text = text.replace(/\/+$/, '');
    // plain:// stays: parseServerAddress reads it.
    if (name === 'switchboard') text = text.slice(scheme[0].length);
  }
  try {
    return parseServerAddress(text).label;
  } catch {
    throw new UsageError(
      name === 'plain'
        ? `"${input}" is not plain://HOST:PORT (for example plain://127.0.0.1:8080)`
        : `"${input}" is not HOST:PORT (for example relay.example.com:7443)`,
    );
  }
}

/** The relay to use: --server, then SWITCHBOARD_SERVER, then the remembered one; normalised. */
export function serverOf(inv: Invocation, home: Home): string {
  const server =
    str(inv, 'server') ??
    inv.io.env['SWITCHBOARD_SERVER'] ??
    home.login()?.server ??
    home.config().server;
  if (!server)
    throw new UsageError(
      'which relay? pass --server HOST:PORT (or plain://HOST:PORT) or set SWITCHBOARD_SERVER',
    );
  return normalizeServer(server);
}

/** Whether two addresses name the same relay (a saved one may predate normalising). */
function sameServer(a: string, b: string): boolean {
  try {
    return normalizeServer(a) === normalizeServer(b);
  } catch {
    return a === b;
  }
}

export function trustOf(inv: Invocation, home: Home, server: string): TrustOptions {
  const fingerprint = str(inv, 'fingerprint') ?? inv.io.env['SWITCHBOARD_FINGERPRINT'];
  const config = home.config();
  // A remembered CA applies only to the relay it was given for.
  const caFile =
    str(inv, 'ca') ??
    (config.server !== undefined && sameServer(config.server, server) ? config.caFile : undefined);
  const trust: TrustOptions = { knownServers: new KnownServers(home.path(FILES.knownServers)) };
  if (fingerprint) trust.fingerprint = fingerprint;
  if (caFile) trust.caFile = caFile;
  if (interactive(inv.io)) {
    trust.ask = async (server, presented) => {
      inv.io.stderr.write(
        `The authenticity of relay ${server} can't be established.\n` +
          `Its certificate's SHA-256 fingerprint is\n  ${presented}\n` +
          `Compare it with what the relay printed at start (or: openssl x509 -noout -fingerprint -sha256 -in tls-cert.pem).\n`,
      );
      return confirm(inv.io, 'Trust this relay and remember it?');
    };
  }
  return trust;
}

/** Connects to the relay (no login). */
export function connect(
  inv: Invocation,
  home: Home,
  server = serverOf(inv, home),
): Promise<RelayClient> {
  if (server.startsWith(PLAIN_SCHEME))
    for (const flag of ['fingerprint', 'ca'])
      if (str(inv, flag) !== undefined)
        inv.io.stderr.write(
          `switchboard: --${flag} does not apply to ${server}: without TLS there is no certificate to check\n`,
        );
  return RelayClient.connect({
    server,
    trust: trustOf(inv, home, server),
    insecure: bool(inv, 'insecure'),
  });
}

export interface Session {
  client: RelayClient;
  login: SavedLogin;
  me: Results['auth.token'];
  home: Home;
}

/**
 * How a command proves who it is: the saved login token, or (`device`, for agents that run for
 * months) the device key itself, which outlives any token until the device is revoked.
 */
export type AuthBy = 'token' | 'device';

function authenticate(client: RelayClient, home: Home, login: SavedLogin, by: AuthBy) {
  return by === 'device'
    ? client.authenticateDevice(login.user, home.deviceKey())
    : client.request('auth.token', { token: login.token });
}

/** Connects and authenticates with the saved login token (or, `by: 'device'`, the device key). */
export async function connectAuthed(inv: Invocation, by: AuthBy = 'token'): Promise<Session> {
  const home = homeOf(inv);
  const login = home.login();
  if (!login)
    throw new AuthError(
      ErrorCode.NOT_LOGGED_IN,
      'not logged in; run `switchboard login --server HOST:PORT --fingerprint FP --user NAME` ' +
        '(or `switchboard signup` with the same options for a new account)',
    );
  const server = normalizeServer(
    str(inv, 'server') ?? inv.io.env['SWITCHBOARD_SERVER'] ?? login.server,
  );
  if (!sameServer(server, login.server)) {
    throw new AuthError(
      ErrorCode.NOT_LOGGED_IN,
      `you are logged in to ${login.server}, not ${server}; run \`switchboard login --server ${server}\``,
    );
  }
  const client = await connect(inv, home, server);
  try {
    const me = await authenticate(client, home, login, by);
    return { client, login, me, home };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** Runs `fn` with a logged-in connection and closes the connection afterwards, whatever happens. */
export async function withSession<T>(
  inv: Invocation,
  fn: (session: Session) => Promise<T>,
): Promise<T> {
  const session = await connectAuthed(inv);
  try {
    return await fn(session);
  } finally {
    session.client.close();
  }
}

/**
 * For long-running commands (share, agent, attach): checks the login once, then returns a
 * factory that opens a fresh logged-in connection each time it is called (reconnects).
 */
export async function authedConnector(
  inv: Invocation,
  by: AuthBy = 'token',
): Promise<Session & { connect: () => Promise<RelayClient> }> {
  const session = await connectAuthed(inv, by);
  const trust = trustOf(inv, session.home, session.login.server);
  // Pinned now: reconnects must never prompt.
  delete trust.ask;
  const server = session.login.server;
  return {
    ...session,
    connect: async () => {
      const client = await RelayClient.connect({
        server,
        trust,
        insecure: bool(inv, 'insecure'),
      });
      try {
        await authenticate(client, session.home, session.login, by);
        return client;
      } catch (err) {
        client.close();
        throw err;
      }
    },
  };
}

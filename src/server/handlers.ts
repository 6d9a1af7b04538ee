// The handler table: one typed entry per request type, with its middleware, for every door (WebSocket and REST).
import { randomBytes } from 'node:crypto';
import { auditAppend, auditHead, auditList } from './audit-handlers.js';
import type { RelayAudit } from './relay-audit.js';
import type { Ledger } from './ledger.js';
import {
  ledgerBalance,
  ledgerEntries,
  ledgerHistory,
  ledgerInfo,
  ledgerMint,
  ledgerPay,
  ledgerSigners,
} from './ledger-handlers.js';
import { keysBundles, keysPublish } from './prekey-handlers.js';
import { userDevices } from './user-devices.js';
import { messageAck, messageFetch, messageSend } from './message-handlers.js';
import { broadcastAck, broadcastFetch, broadcastSend } from './broadcast-handlers.js';
import { AuthError, ErrorCode, ProtocolError, SessionError } from '../protocol/errors.js';
import {
  FANOUT_TARGETS_PER_TOKEN,
  LOGIN_CHALLENGE_BYTES,
  MAX_FRAME_BYTES,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  CAPABILITIES,
  SESSIONS_LIST_MAX,
  USERS_PAGE_DEFAULT,
} from '../protocol/limits.js';
import type {
  Params,
  Request,
  RequestType,
  Results,
  SessionSummary,
} from '../protocol/messages.js';
import { generateSessionId } from '../protocol/session-id.js';
import { deviceAuthBinding } from '../crypto/login-proof.js';
import type { Store, UserSummary } from '../store/repositories.js';
import type { AuthService, Authenticated } from './auth-service.js';
import type { Caller, UserCaller } from './caller.js';
import { Connection } from './connection.js';
import {
  channelClose,
  channelFanout,
  channelOpen,
  relayAccess,
  servicesOffer,
  sessionAttach,
} from './channels.js';
import { devicePeerInfo, type Directory } from './directory.js';
import type { RelayState } from './relay-state.js';
import type { InviteService } from './invites.js';
import type { Logger } from './logger.js';
import type { RelayMetrics } from './metrics.js';
import type { PerAccountLimits } from './relay.js';

/** What the relay calls itself to anyone: the software and version, never the machine's name. */
export const SERVER_NAME = 'switchboard/0.1.0';

export interface Services {
  /** The relay's own signed audit log (relay-audit.ts). */
  audit: RelayAudit;
  /** Transfers, mints, balances and checkpoints (ledger.ts). */
  ledger: Ledger;
  store: Store;
  auth: AuthService;
  /** Sign-up invites and who may make them (`serve --admin`). */
  invites: InviteService;
  /** Channel routes of this process (the data plane). */
  directory: Directory;
  /** Presence, live sessions, reaching connections: shared between relays later (relay-state.ts). */
  state: RelayState;
  now: () => number;
  log: Logger;
  /** Cap on live remote sessions (`serve --max-remotes`). */
  maxRemotes: number;
  /** Caps per account: connections, live sessions, registered sessions. */
  perAccount: PerAccountLimits;
  /** An offline session's ID stays reserved to its owner this long (ms). */
  sessionReserveMs: number;
  metrics: RelayMetrics;
  /** How long a broadcast reaches users who come online (`serve --broadcast-window`). */
  broadcastWindowMs: number;
  /** SHA-256 fingerprint of the relay's certificate (what `info` tells anyone). */
  fingerprint: string;
  /** How often the relay checks its connections are alive (told in `hello`; `heartbeatMs`). */
  heartbeatMs: number;
}

/** A request type's function: who asks, its validated parameters, the relay's services. */
export type Handler<T extends RequestType, C extends Caller = Caller> = (
  caller: C,
  params: Params<T>,
  s: Services,
) => Promise<Results[T]>;

/**
 * Middleware an entry declares. `auth`: 'none' (only `hello`: allowed before `hello`), 'hello'
 * (after `hello`; HELLO_REQUIRED before it) or 'user' (logged in too; AUTH_REQUIRED otherwise).
 * A REST request has no hello and always counts as past it. `door`: 'any', or 'websocket' for
 * requests that act on the connection itself (its hello, its login, the sessions it hosts, its
 * channels): REST refuses those with WEBSOCKET_REQUIRED.
 */
export type AuthLevel = 'none' | 'hello' | 'user';

export interface Entry<T extends RequestType> {
  readonly auth: AuthLevel;
  readonly door: 'any' | 'websocket';
  /** The handler behind its middleware. */
  readonly run: Handler<T>;
}

/** The table: every request type has exactly one entry (the compiler checks it is complete). */
export type HandlerTable = { readonly [T in RequestType]: Entry<T> };

/**
 * `cost`: control tokens a request takes beyond the one its frame took (a request that does
 * the work of many), from the caller's bucket; RATE_LIMITED, and nothing run, when it is short.
 */
type EntrySpec<T extends RequestType> = { cost?: (params: Params<T>) => number } & (
  | { auth: 'none' | 'hello'; door: 'any'; handler: Handler<T> }
  | { auth: 'user'; door: 'any'; handler: Handler<T, UserCaller> }
  | { auth: 'none' | 'hello'; door: 'websocket'; handler: Handler<T, Connection> }
  | { auth: 'user'; door: 'websocket'; handler: Handler<T, UserCaller<Connection>> }
);

/** Wraps a handler in the middleware its spec declares: door, hello, login, then rate. */
function entry<T extends RequestType>(spec: EntrySpec<T>): Entry<T> {
  const run: Handler<T> = async (caller, params, s) => {
    if (spec.door === 'websocket' && !(caller instanceof Connection)) {
      throw new ProtocolError(
        ErrorCode.WEBSOCKET_REQUIRED,
        'this request acts on a WebSocket connection; send it over wss://HOST:PORT/v1/ws',
      );
    }
    if (spec.auth !== 'none' && !caller.helloDone) {
      throw new AuthError(ErrorCode.HELLO_REQUIRED, 'send "hello" with the protocol version first');
    }
    if (spec.auth === 'user' && !caller.auth) {
      throw new AuthError(
        ErrorCode.AUTH_REQUIRED,
        caller instanceof Connection
          ? 'log in first: `switchboard login --user NAME`'
          : 'send "Authorization: Bearer <token>" (the token is in $SWITCHBOARD_HOME/login.json after login)',
      );
    }
    const cost = spec.cost?.(params) ?? 0;
    if (cost > 0 && caller.takeTokens && !caller.takeTokens(s.now(), cost)) {
      s.metrics.throttled.inc({ limit: 'control_rate' });
      throw new ProtocolError(
        ErrorCode.RATE_LIMITED,
        `this request costs ${cost + 1} control messages; slow down`,
      );
    }
    // The checks above are what the spec's caller type promises; one narrowing, for every entry.
    return (spec.handler as Handler<T, never>)(caller as never, params, s);
  };
  return { auth: spec.auth, door: spec.door, run };
}

/** Every request type, its middleware and its handler. */
const HANDLERS: HandlerTable = {
  hello: entry({ auth: 'none', door: 'websocket', handler: hello }),
  info: entry({ auth: 'hello', door: 'any', handler: info }),
  'auth.signup': entry({ auth: 'hello', door: 'any', handler: signup }),
  'auth.login': entry({ auth: 'hello', door: 'websocket', handler: login }),
  'auth.token': entry({ auth: 'hello', door: 'websocket', handler: tokenAuth }),
  'auth.device': entry({ auth: 'hello', door: 'websocket', handler: deviceAuth }),
  'devices.list': entry({ auth: 'user', door: 'any', handler: devicesList }),
  'devices.revoke': entry({ auth: 'user', door: 'any', handler: devicesRevoke }),
  'auth.logout': entry({ auth: 'user', door: 'any', handler: logout }),
  'auth.passwd': entry({ auth: 'user', door: 'any', handler: passwd }),
  'account.delete': entry({ auth: 'user', door: 'any', handler: accountDelete }),
  'invite.create': entry({ auth: 'user', door: 'any', handler: inviteCreate }),
  'invite.list': entry({ auth: 'user', door: 'any', handler: inviteList }),
  whoami: entry({ auth: 'user', door: 'any', handler: whoami }),
  'users.list': entry({ auth: 'user', door: 'any', handler: usersList }),
  'keys.get': entry({ auth: 'user', door: 'any', handler: keysGet }),
  'keys.publish': entry({ auth: 'user', door: 'any', handler: keysPublish }),
  'keys.bundles': entry({ auth: 'user', door: 'any', handler: keysBundles }),
  'message.send': entry({ auth: 'user', door: 'any', handler: messageSend }),
  'message.fetch': entry({ auth: 'user', door: 'any', handler: messageFetch }),
  'message.ack': entry({ auth: 'user', door: 'any', handler: messageAck }),
  'broadcast.send': entry({ auth: 'user', door: 'any', handler: broadcastSend }),
  'broadcast.fetch': entry({ auth: 'user', door: 'any', handler: broadcastFetch }),
  'broadcast.ack': entry({ auth: 'user', door: 'any', handler: broadcastAck }),
  'ledger.info': entry({ auth: 'hello', door: 'any', handler: ledgerInfo }),
  'ledger.pay': entry({ auth: 'user', door: 'any', handler: ledgerPay }),
  'ledger.mint': entry({ auth: 'user', door: 'any', handler: ledgerMint }),
  'ledger.balance': entry({ auth: 'user', door: 'any', handler: ledgerBalance }),
  'ledger.history': entry({ auth: 'user', door: 'any', handler: ledgerHistory }),
  'ledger.entries': entry({ auth: 'user', door: 'any', handler: ledgerEntries }),
  'ledger.signers': entry({ auth: 'user', door: 'any', handler: ledgerSigners }),
  'audit.head': entry({ auth: 'user', door: 'websocket', handler: auditHead }),
  'audit.append': entry({ auth: 'user', door: 'websocket', handler: auditAppend }),
  'audit.list': entry({ auth: 'user', door: 'any', handler: auditList }),
  'session.register': entry({ auth: 'user', door: 'websocket', handler: sessionRegister }),
  'session.update': entry({ auth: 'user', door: 'websocket', handler: sessionUpdate }),
  'session.unregister': entry({ auth: 'user', door: 'websocket', handler: sessionUnregister }),
  'sessions.list': entry({ auth: 'user', door: 'any', handler: sessionsList }),
  'session.attach': entry({ auth: 'user', door: 'websocket', handler: sessionAttach }),
  'services.offer': entry({ auth: 'user', door: 'websocket', handler: servicesOffer }),
  'channel.open': entry({ auth: 'user', door: 'websocket', handler: channelOpen }),
  'channel.fanout': entry({
    auth: 'user',
    door: 'websocket',
    // Beyond the one token its frame took: 256 targets cost 32 more.
    cost: (p) => Math.floor(p.targets.length / FANOUT_TARGETS_PER_TOKEN),
    handler: channelFanout,
  }),
  'channel.close': entry({ auth: 'user', door: 'websocket', handler: channelClose }),
};

/** Runs one validated request through its entry's middleware. Throws SwitchboardErrors. */
export function dispatch<T extends RequestType>(
  caller: Caller,
  type: T,
  params: Params<T>,
  s: Services,
): Promise<Results[T]> {
  const e: Entry<T> = HANDLERS[type];
  return e.run(caller, params, s);
}

/** Runs one request decoded from a WebSocket frame (the relay's WebSocket door). */
export function handle(conn: Connection, req: Request, s: Services): Promise<unknown> {
  return dispatch(conn, req.type, req, s);
}

/** The middleware a request type declares (the REST door reads it before authenticating). */
export function entryOf(type: RequestType): Pick<Entry<RequestType>, 'auth' | 'door'> {
  const { auth, door } = HANDLERS[type];
  return { auth, door };
}

/**
 * Version and features: any client whose major version the relay speaks is let in, and the
 * reply names the capabilities both sides support, in the relay's order. A client that sends no
 * `capabilities` (older than negotiation) gets none.
 */
async function hello(
  conn: Connection,
  req: Params<'hello'>,
  s: Services,
): Promise<Results['hello']> {
  if (req.version < MIN_PROTOCOL_VERSION || req.version > PROTOCOL_VERSION) {
    throw new AuthError(
      ErrorCode.VERSION_MISMATCH,
      `this relay speaks protocol ${supportedVersions()}, the client ${req.version}; upgrade the older side`,
    );
  }
  const offered = new Set(req.capabilities ?? []);
  const agreed = CAPABILITIES.filter((c) => offered.has(c));
  conn.capabilities = new Set(agreed);
  conn.helloDone = true;
  // Fresh per connection (and per hello): a device proof made for it is worthless elsewhere.
  conn.challenge = randomBytes(LOGIN_CHALLENGE_BYTES);
  return {
    version: PROTOCOL_VERSION,
    capabilities: agreed,
    server: SERVER_NAME,
    maxFrameBytes: MAX_FRAME_BYTES,
    heartbeatMs: s.heartbeatMs,
    challenge: conn.challenge.toString('base64'),
    signup: s.auth.signupMode,
    minPassword: s.auth.minPasswordLength,
    transport: conn.transport,
    // Only where the client sees no certificate: over TLS it binds the one it verified.
    ...(conn.transport === 'plain' ? { fingerprint: s.fingerprint } : {}),
  };
}

function supportedVersions(): string {
  return MIN_PROTOCOL_VERSION === PROTOCOL_VERSION
    ? String(PROTOCOL_VERSION)
    : `${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`;
}

/** What anyone may know about the relay (GET /v1/info): no host name, uptime or counts. */
async function info(_caller: Caller, _req: Params<'info'>, s: Services): Promise<Results['info']> {
  return { server: SERVER_NAME, protocol: PROTOCOL_VERSION, fingerprint: s.fingerprint };
}

async function signup(
  conn: Caller,
  req: Params<'auth.signup'>,
  s: Services,
): Promise<Results['auth.signup']> {
  const user = await s.auth.signup(req.user, req.password, {
    address: conn.address,
    invite: req.invite,
    isCancelled: () => conn.closed,
  });
  s.log.info({ user: user.name, invited: req.invite !== undefined }, 'account created');
  // Money enters at sign-up (serve --signup-credit), as a mint signed by the ledger key.
  await s.ledger.creditSignup(user);
  return { user: user.name };
}

async function setAuth(conn: Connection, auth: Authenticated, s: Services): Promise<void> {
  if (conn.auth && conn.auth.user.id !== auth.user.id) {
    throw new AuthError(
      ErrorCode.BAD_CREDENTIALS,
      'this connection is already logged in as another user',
    );
  }
  // A login whose connection closed while its password was being checked must not count as
  // online: the close handler has already run, so nothing would ever remove it.
  if (conn.closed)
    throw new AuthError(ErrorCode.CONNECTION_CLOSED, 'the connection closed during login');
  const limit = s.perAccount.connections;
  if (!(await s.state.presence.tryJoin(auth.user.id, conn, limit))) {
    throw new AuthError(
      ErrorCode.CONNECTION_LIMIT,
      `your account already holds ${limit} connections to this relay, its limit; close some (detach, stop agents) and try again`,
    );
  }
  // The same check again: with shared presence the join may have taken a round trip.
  if (conn.closed) {
    await s.state.presence.leave(auth.user.id, conn);
    throw new AuthError(ErrorCode.CONNECTION_CLOSED, 'the connection closed during login');
  }
  conn.auth = auth;
  conn.touchedAt = s.now();
  // The sign-up credit, if the relay stopped between creating the account and minting it (a
  // lookup by its fixed id when it is there). A ledger failure does not fail the login.
  await s.ledger
    .creditSignup(auth.user)
    .catch((err: unknown) => s.log.error({ err, user: auth.user.name }, 'sign-up credit failed'));
}

async function login(
  conn: Connection,
  req: Params<'auth.login'>,
  s: Services,
): Promise<Results['auth.login']> {
  refuseOtherUser(conn, req.user);
  const result = await audited(
    s,
    { type: 'login-failed', user: req.user, address: conn.address },
    s.auth.login(req.user, req.password, req.device, {
      address: conn.address,
      challenge: conn.challenge,
      deviceProof: req.deviceProof,
      isCancelled: () => conn.closed,
    }),
  );
  s.audit.record({
    type: 'login',
    user: result.user.name,
    fingerprint: result.device.fingerprint,
    address: conn.address,
  });
  // Resolve through the new token so a logout on this connection revokes exactly that token.
  await setAuth(conn, await s.auth.authenticate(result.token), s);
  s.log.info({ user: result.user.name, device: result.device.fingerprint, conn: conn.id }, 'login');
  return {
    user: result.user.name,
    token: result.token,
    expiresAt: new Date(result.expiresAt).toISOString(),
    idleTimeoutSec: s.auth.idleTimeoutSec,
  };
}

async function tokenAuth(
  conn: Connection,
  req: Params<'auth.token'>,
  s: Services,
): Promise<Results['auth.token']> {
  const auth = await s.auth.authenticate(req.token);
  await setAuth(conn, auth, s);
  return authReply(auth);
}

/** The reply of `auth.token` and `auth.device`: who the connection is now. */
function authReply(auth: Authenticated): Results['auth.token'] {
  return {
    user: auth.user.name,
    device: devicePeerInfo(auth.user.name, auth.device),
    expiresAt: new Date(auth.expiresAt).toISOString(),
  };
}

/** `work`'s result; if it fails with a refusal (not a crash), `failed` goes in the relay's audit. */
async function audited<T>(
  s: Services,
  failed: { type: 'login-failed' | 'device-auth'; user: string; [k: string]: unknown },
  work: Promise<T>,
): Promise<T> {
  try {
    return await work;
  } catch (err) {
    // Throttled attempts are refused before any check: counted in metrics, not audited one by one.
    if (err instanceof AuthError && err.code !== ErrorCode.THROTTLED)
      s.audit.record({ ...failed, code: err.code });
    throw err;
  }
}

/**
 * Refuses a login as `user` on a connection logged in as someone else, before verifying anything:
 * setAuth would refuse too, but only after a token was issued.
 */
function refuseOtherUser(conn: Connection, user: string): void {
  if (conn.auth && conn.auth.user.name !== user)
    throw new AuthError(
      ErrorCode.BAD_CREDENTIALS,
      'this connection is already logged in as another user',
    );
}

async function logout(
  conn: UserCaller,
  req: Params<'auth.logout'>,
  s: Services,
): Promise<Results['auth.logout']> {
  const all = req.all === true;
  const revoked = await s.auth.logout(conn.auth, all);
  // The revoked logins end now, not at their next reconnect: close the other connections using them.
  await s.state.connections.closeConnections(
    conn.auth.user.id,
    {
      ...(all ? {} : { token: conn.auth.tokenId }),
      ...(conn instanceof Connection ? { exceptConnection: conn.id } : {}),
    },
    'logged out',
  );
  s.log.info({ user: conn.auth.user.name, all, revoked }, 'logout');
  return { revoked };
}

async function passwd(
  conn: UserCaller,
  req: Params<'auth.passwd'>,
  s: Services,
): Promise<Results['auth.passwd']> {
  const revokeOthers = req.revokeOthers === true;
  const revoked = await s.auth.changePassword(
    conn.auth,
    req.password,
    req.newPassword,
    revokeOthers,
    { address: conn.address, isCancelled: () => conn.closed },
  );
  if (revokeOthers) {
    // Connections sharing this connection's token (the same home) keep going; the others end now.
    await s.state.connections.closeConnections(
      conn.auth.user.id,
      { exceptToken: conn.auth.tokenId },
      'logged out: the password was changed',
    );
  }
  s.log.info({ user: conn.auth.user.name, revoked }, 'password changed');
  return { revoked };
}

async function accountDelete(
  conn: UserCaller,
  req: Params<'account.delete'>,
  s: Services,
): Promise<Results['account.delete']> {
  const userId = conn.auth.user.id;
  const owned = (await s.store.remoteSessions.listAll()).filter((r) => r.ownerId === userId);
  const user = await s.auth.deleteAccount(conn.auth, req.password, {
    address: conn.address,
    isCancelled: () => conn.closed,
  });
  // The rows went with the account (foreign keys cascade); end what is live of it now.
  let ended = 0;
  for (const row of owned) {
    if ((await s.state.sessions.locate(row.id))?.row.ownerId !== userId) continue;
    await s.state.sessions.release(row.id, ErrorCode.PEER_GONE, 'the owner deleted the account');
    ended += 1;
  }
  await s.state.connections.closeConnections(
    userId,
    conn instanceof Connection ? { exceptConnection: conn.id } : {},
    'the account was deleted',
  );
  // This connection gets its reply, logged out.
  if (conn instanceof Connection) await s.state.presence.leave(userId, conn);
  (conn as Caller).auth = undefined;
  s.log.info({ user: user.name, sessions: owned.length, live: ended }, 'account deleted');
  return { user: user.name };
}

async function inviteCreate(
  conn: UserCaller,
  req: Params<'invite.create'>,
  s: Services,
): Promise<Results['invite.create']> {
  const { code, row } = await s.invites.create(conn.auth.user, req.uses, req.expiresSec);
  // Never the code: it is a credential.
  s.log.info(
    { by: conn.auth.user.name, invite: row.id, uses: row.usesLeft, expiresAt: row.expiresAt },
    'invite created',
  );
  return { code, uses: row.usesLeft, expiresAt: new Date(row.expiresAt).toISOString() };
}

async function inviteList(
  conn: UserCaller,
  _req: Params<'invite.list'>,
  s: Services,
): Promise<Results['invite.list']> {
  const rows = await s.invites.list(conn.auth.user);
  return {
    invites: rows.map((r) => ({
      id: r.id,
      createdBy: r.createdByName,
      usesLeft: r.usesLeft,
      expiresAt: new Date(r.expiresAt).toISOString(),
      createdAt: new Date(r.createdAt).toISOString(),
    })),
  };
}

async function whoami(
  conn: UserCaller,
  _req: Params<'whoami'>,
  _s: Services,
): Promise<Results['whoami']> {
  const { user, device, expiresAt } = conn.auth;
  return {
    user: user.name,
    device: devicePeerInfo(user.name, device),
    since: new Date(user.createdAt).toISOString(),
    expiresAt: new Date(expiresAt).toISOString(),
    address: conn.address,
  };
}

/**
 * Never a reply that grows with the number of accounts: with `all`, one page by name; without,
 * the caller, the people they deal with (owners of sessions they may join, users named in their
 * own sessions) and then whoever is online, at most `limit` in all.
 */
async function usersList(
  conn: UserCaller,
  req: Params<'users.list'>,
  s: Services,
): Promise<Results['users.list']> {
  const limit = req.limit ?? USERS_PAGE_DEFAULT;
  const shown = (u: UserSummary, online: Set<number>) => ({
    user: u.name,
    online: online.has(u.id),
    since: new Date(u.createdAt).toISOString(),
    lastSeen: u.lastSeenAt === null ? null : new Date(u.lastSeenAt).toISOString(),
  });
  if (req.all === true) {
    // One more than asked tells whether another page follows.
    const page = await s.store.users.listPage(req.after, limit + 1);
    const users = page.slice(0, limit);
    const last = users[users.length - 1];
    const online = await s.state.presence.onlineAmong(users.map((u) => u.id));
    return {
      users: users.map((u) => shown(u, online)),
      ...(page.length > limit && last ? { next: last.name } : {}),
    };
  }
  const me = conn.auth.user;
  const ids: number[] = [me.id];
  const named = new Set<string>();
  for (const row of await s.store.remoteSessions.listAll()) {
    if (row.status === 'closed') continue;
    if (row.ownerId === me.id) {
      for (const name of [...row.allow, ...row.viewers]) named.add(name);
    } else {
      const access = relayAccess(row, me.id, me.name);
      if (access !== 'none' && access !== 'ask') ids.push(row.ownerId);
    }
  }
  named.delete(me.name);
  ids.push(...(await s.store.users.idsByNames([...named].slice(0, limit))));
  const chosen = new Set(ids);
  // Online users fill what room is left.
  if (chosen.size < limit)
    for (const id of await s.state.presence.someOnline(limit)) {
      if (chosen.size >= limit) break;
      chosen.add(id);
    }
  const summaries = await s.store.users.summariesByIds([...chosen].slice(0, limit));
  const online = await s.state.presence.onlineAmong(summaries.map((u) => u.id));
  return { users: summaries.map((u) => shown(u, online)) };
}

async function keysGet(
  _caller: Caller,
  req: Params<'keys.get'>,
  s: Services,
): Promise<Results['keys.get']> {
  // A revoked device is no longer the user's: it is not listed, so nobody pins it as theirs.
  const { user, devices } = await userDevices(s.store, req.user);
  return { user: user.name, devices: devices.map((d) => devicePeerInfo(user.name, d)) };
}

async function deviceAuth(
  conn: Connection,
  req: Params<'auth.device'>,
  s: Services,
): Promise<Results['auth.device']> {
  refuseOtherUser(conn, req.user);
  const token = await audited(
    s,
    { type: 'device-auth', user: req.user, address: conn.address, ok: false },
    s.auth.deviceLogin(req.user, req.publicKey, req.proof, {
      challenge: conn.challenge,
      relayFingerprint: deviceAuthBinding(conn.transport, s.fingerprint),
    }),
  );
  const auth = await s.auth.authenticate(token);
  await setAuth(conn, auth, s);
  s.log.info(
    { user: auth.user.name, device: auth.device.fingerprint, conn: conn.id },
    'device auth',
  );
  s.audit.record({
    type: 'device-auth',
    user: auth.user.name,
    fingerprint: auth.device.fingerprint,
    address: conn.address,
    ok: true,
  });
  return authReply(auth);
}

async function devicesList(
  conn: UserCaller,
  _req: Params<'devices.list'>,
  s: Services,
): Promise<Results['devices.list']> {
  const [devices, online] = await Promise.all([
    s.store.devices.listForUser(conn.auth.user.id),
    s.state.connections.onlineDevices(conn.auth.user.id),
  ]);
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    devices: devices.map((d) => ({
      name: d.name,
      fingerprint: d.fingerprint,
      createdAt: new Date(d.createdAt).toISOString(),
      lastSeenAt: iso(d.lastSeenAt),
      revokedAt: iso(d.revokedAt),
      online: online.has(d.id),
      current: d.id === conn.auth.device.id,
    })),
  };
}

async function devicesRevoke(
  conn: UserCaller,
  req: Params<'devices.revoke'>,
  s: Services,
): Promise<Results['devices.revoke']> {
  const { revoked, deviceId } = await s.auth.revokeDevice(conn.auth.user.id, req.fingerprint);
  if (deviceId === undefined)
    throw new AuthError(
      ErrorCode.UNKNOWN_USER,
      `your account has no device ${req.fingerprint}; \`switchboard devices\` lists them`,
    );
  // Its live connections end now (an agent on it stops), not at their next reconnect.
  const closed = await s.state.connections.closeConnections(
    conn.auth.user.id,
    { device: deviceId },
    'device revoked',
  );
  s.log.info({ user: conn.auth.user.name, device: req.fingerprint, closed }, 'device revoked');
  s.audit.record({
    type: 'device-revoked',
    user: conn.auth.user.name,
    ownerId: conn.auth.user.id,
    fingerprint: req.fingerprint,
    closed,
  });
  return { revoked, closed };
}

/**
 * Registrations of one account run one at a time, and each holds a relay-wide slot from its
 * first check to its end: requests sent together cannot all pass the caps on the same counts.
 */
async function sessionRegister(
  conn: UserCaller<Connection>,
  req: Params<'session.register'>,
  s: Services,
): Promise<Results['session.register']> {
  const outcome = await s.directory.registrations.run(String(conn.auth.user.id), async () => {
    s.directory.pendingRegistrations += 1;
    try {
      return await registerOne(conn, req, s);
    } finally {
      s.directory.pendingRegistrations -= 1;
    }
  });
  if (!outcome)
    throw new ProtocolError(
      ErrorCode.RATE_LIMITED,
      'too many session registrations at once for your account; wait for the replies',
    );
  return outcome.value;
}

async function registerOne(
  conn: UserCaller<Connection>,
  req: Params<'session.register'>,
  s: Services,
): Promise<Results['session.register']> {
  const now = s.now();
  const owner = conn.auth.user;
  const sessionId = req.sessionId ?? generateSessionId(randomBytes);
  const live = await s.state.sessions.locate(sessionId);
  if (live) {
    if (live.row.ownerId !== owner.id) {
      throw new SessionError(
        ErrorCode.SESSION_TAKEN,
        `session "${sessionId}" is live for another user; choose another --session`,
      );
    }
    if (live.instance !== req.instance) {
      throw new SessionError(
        ErrorCode.SESSION_TAKEN,
        `session "${sessionId}" is already live from another host process of yours (${live.row.hostName}); stop it or choose another --session`,
      );
    }
  } else if ((await s.state.sessions.countLiveOf(owner.id)) >= s.perAccount.liveSessions) {
    throw new SessionError(
      ErrorCode.SESSION_LIMIT,
      `your account already hosts ${s.perAccount.liveSessions} live sessions, its limit; stop one first`,
    );
  } else if (
    (await s.state.sessions.countLive()) + s.directory.pendingRegistrations - 1 >=
    s.maxRemotes
  ) {
    // pendingRegistrations counts this one: the others are registrations still in flight.
    throw new SessionError(
      ErrorCode.SESSION_LIMIT,
      `this relay is at its limit of ${s.maxRemotes} live remote sessions; try again later`,
    );
  }
  // The row's checks and writes are one transaction: two relays sharing a database (or two
  // requests) cannot both take the ID, and a failure leaves the old row as it was.
  const reservedSince = now - s.sessionReserveMs;
  const row = await s.store.transaction(
    async (tx) => {
      const existing = await tx.remoteSessions.find(sessionId);
      if (!existing || existing.ownerId !== owner.id || existing.status === 'closed') {
        // A new ID for this owner: count the ones it already holds (live, or offline and reserved).
        const held = await tx.remoteSessions.countHeld(owner.id, reservedSince);
        if (held >= s.perAccount.registeredSessions) {
          throw new SessionError(
            ErrorCode.SESSION_LIMIT,
            `your account holds ${held} session IDs, its limit of ${s.perAccount.registeredSessions}; end unused ones (they are released ${Math.round(s.sessionReserveMs / 3600_000)} h after going offline)`,
          );
        }
      }
      if (
        existing &&
        existing.ownerId !== owner.id &&
        existing.status !== 'closed' &&
        existing.lastSeenAt > reservedSince
      ) {
        throw new SessionError(
          ErrorCode.SESSION_TAKEN,
          `session "${sessionId}" belongs to another user; choose another --session`,
        );
      }
      if (existing && existing.ownerId !== owner.id) await tx.remoteSessions.delete(sessionId);
      return tx.remoteSessions.register(
        {
          id: sessionId,
          ownerId: owner.id,
          kind: req.kind,
          hostName: req.hostName,
          allow: req.allow,
          viewers: req.viewers,
          ...(req.tags ? { tags: req.tags } : {}),
          ...(req.operators ? { operators: req.operators } : {}),
        },
        now,
      );
    },
    { isolation: 'serializable', retries: 3 },
  );
  if (!row)
    throw new SessionError(
      ErrorCode.SESSION_TAKEN,
      `session "${sessionId}" belongs to another user; choose another --session`,
    );
  if (live) {
    // The same host process came back on a new connection: the old one is dead or dying.
    await s.state.sessions.release(sessionId, ErrorCode.PEER_GONE, 'the host reconnected');
    live.host.sendEvent({
      type: 'session.revoked',
      sessionId,
      code: ErrorCode.SESSION_TAKEN,
      reason: 'registered again from a new connection',
    });
  }
  if (conn.closed) {
    // The host left while this was being stored: nothing may be routed to a dead connection.
    await s.store.remoteSessions.setStatus(sessionId, 'offline', s.now());
    throw new SessionError(
      ErrorCode.CONNECTION_CLOSED,
      'the connection closed during registration',
    );
  }
  await s.state.sessions.claim({
    row,
    instance: req.instance,
    host: conn,
    // A host from before services lists none: it serves the terminal.
    services: new Set(req.services ?? ['terminal']),
    controllers: new Set(),
  });
  s.log.info(
    { session: sessionId, owner: owner.name, kind: req.kind, conn: conn.id },
    'session live',
  );
  return { sessionId };
}

async function sessionUpdate(
  conn: UserCaller,
  req: Params<'session.update'>,
  s: Services,
): Promise<Results['session.update']> {
  const live = await s.state.sessions.locate(req.sessionId);
  if (!live || live.host !== conn)
    throw new SessionError(
      ErrorCode.SESSION_NOT_FOUND,
      `session "${req.sessionId}" is not registered on this connection`,
    );
  await s.store.remoteSessions.setOperators(req.sessionId, req.operators);
  live.row = { ...live.row, operators: req.operators };
  s.log.info({ session: req.sessionId, operators: req.operators.length }, 'session updated');
  return { sessionId: req.sessionId };
}

async function sessionUnregister(
  conn: UserCaller,
  req: Params<'session.unregister'>,
  s: Services,
): Promise<Results['session.unregister']> {
  const live = await s.state.sessions.locate(req.sessionId);
  if (!live || live.host !== conn) return { removed: false };
  await s.state.sessions.release(
    req.sessionId,
    ErrorCode.CHANNEL_CLOSED,
    'the host ended the session',
  );
  await s.store.remoteSessions.setStatus(req.sessionId, 'closed', s.now());
  s.log.info({ session: req.sessionId }, 'session closed');
  return { removed: true };
}

async function sessionsList(
  conn: UserCaller,
  req: Params<'sessions.list'>,
  s: Services,
): Promise<Results['sessions.list']> {
  const rows = await s.store.remoteSessions.listAll();
  const me = conn.auth.user;
  const owners = new Map<number, string>();
  const sessions: SessionSummary[] = [];
  const wanted = Object.entries(req.tags ?? {});
  for (const row of rows) {
    if (row.status === 'closed') continue;
    if (!wanted.every(([k, v]) => row.tags[k] === v)) continue;
    const access = relayAccess(row, me.id, me.name);
    if (access === 'none' || access === 'ask') continue;
    // A bounded reply, whoever names this user in their --allow lists (see SESSIONS_LIST_MAX).
    if (sessions.length >= SESSIONS_LIST_MAX) return { sessions, truncated: true };
    let owner = owners.get(row.ownerId);
    if (owner === undefined) {
      owner = (await s.store.users.findById(row.ownerId))?.name ?? '?';
      owners.set(row.ownerId, owner);
    }
    const live = await s.state.sessions.locate(row.id);
    sessions.push({
      sessionId: row.id,
      owner,
      kind: row.kind,
      hostName: row.hostName,
      tags: row.tags,
      since: new Date(row.createdAt).toISOString(),
      // Terminals attached (or being attached) now; pings and other services are not controllers.
      controllers: live ? [...live.controllers].filter((r) => r.service === 'terminal').length : 0,
      live: live !== undefined,
    });
  }
  return { sessions };
}

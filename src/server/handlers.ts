// Request handlers: one function per request type, dispatched by an exhaustive switch.
import { randomBytes } from 'node:crypto';
import { AuthError, ErrorCode, ProtocolError, SessionError } from '../protocol/errors.js';
import {
  HEARTBEAT_INTERVAL_MS,
  LOGIN_CHALLENGE_BYTES,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  SESSIONS_LIST_MAX,
  USERS_PAGE_DEFAULT,
} from '../protocol/limits.js';
import type { Params, Request, Results, SessionSummary } from '../protocol/messages.js';
import { generateSessionId } from '../protocol/session-id.js';
import type { RemoteSessionRow, Store, UserSummary } from '../store/repositories.js';
import type { AuthService, Authenticated } from './auth-service.js';
import { CloseCode, type Connection } from './connection.js';
import { devicePeerInfo, peerInfoOf, type Directory } from './directory.js';
import type { InviteService } from './invites.js';
import type { Logger } from './logger.js';
import type { RelayMetrics } from './metrics.js';
import type { PerAccountLimits } from './relay.js';

/** What the relay calls itself to anyone: the software and version, never the machine's name. */
export const SERVER_NAME = 'switchboard/0.1.0';

export interface Services {
  store: Store;
  auth: AuthService;
  /** Sign-up invites and who may make them (`serve --admin`). */
  invites: InviteService;
  directory: Directory;
  now: () => number;
  log: Logger;
  /** Cap on live remote sessions (`serve --max-remotes`). */
  maxRemotes: number;
  /** Caps per account: connections, live sessions, registered sessions. */
  perAccount: PerAccountLimits;
  /** An offline session's ID stays reserved to its owner this long (ms). */
  sessionReserveMs: number;
  metrics: RelayMetrics;
}

/** Runs one validated request. Throws SwitchboardErrors; the caller turns them into error replies. */
export async function handle(conn: Connection, req: Request, s: Services): Promise<unknown> {
  const type = req.type;
  if (type !== 'hello' && !conn.helloDone) {
    throw new AuthError(ErrorCode.HELLO_REQUIRED, 'send "hello" with the protocol version first');
  }
  switch (type) {
    case 'hello':
      return hello(conn, req as Request<'hello'>, s);
    case 'auth.signup':
      return signup(conn, req as Request<'auth.signup'>, s);
    case 'auth.login':
      return login(conn, req as Request<'auth.login'>, s);
    case 'auth.token':
      return tokenAuth(conn, req as Request<'auth.token'>, s);
    case 'auth.logout':
      return logout(requireAuth(conn), req as Request<'auth.logout'>, s);
    case 'auth.passwd':
      return passwd(requireAuth(conn), req as Request<'auth.passwd'>, s);
    case 'account.delete':
      return accountDelete(requireAuth(conn), req as Request<'account.delete'>, s);
    case 'invite.create':
      return inviteCreate(requireAuth(conn), req as Request<'invite.create'>, s);
    case 'invite.list':
      return inviteList(requireAuth(conn), req as Request<'invite.list'>, s);
    case 'whoami':
      return whoami(requireAuth(conn), req as Request<'whoami'>, s);
    case 'users.list':
      return usersList(requireAuth(conn), req as Request<'users.list'>, s);
    case 'keys.get':
      return keysGet(requireAuth(conn), req as Request<'keys.get'>, s);
    case 'session.register':
      return sessionRegister(requireAuth(conn), req as Request<'session.register'>, s);
    case 'session.unregister':
      return sessionUnregister(requireAuth(conn), req as Request<'session.unregister'>, s);
    case 'sessions.list':
      return sessionsList(requireAuth(conn), req as Request<'sessions.list'>, s);
    case 'session.attach':
      return sessionAttach(requireAuth(conn), req as Request<'session.attach'>, s);
    case 'channel.close':
      return channelClose(requireAuth(conn), req as Request<'channel.close'>, s);
    default: {
      const unreachable: never = type;
      throw new SessionError(
        ErrorCode.UNKNOWN_TYPE,
        `unknown message type "${String(unreachable)}"`,
      );
    }
  }
}

function requireAuth(conn: Connection): Connection & { auth: Authenticated } {
  if (!conn.auth)
    throw new AuthError(ErrorCode.AUTH_REQUIRED, 'log in first: `switchboard login --user NAME`');
  return conn as Connection & { auth: Authenticated };
}

async function hello(
  conn: Connection,
  req: Params<'hello'>,
  s: Services,
): Promise<Results['hello']> {
  if (req.version !== PROTOCOL_VERSION) {
    throw new AuthError(
      ErrorCode.VERSION_MISMATCH,
      `this relay speaks protocol ${PROTOCOL_VERSION}, the client ${req.version}; upgrade the older side`,
    );
  }
  conn.helloDone = true;
  // Fresh per connection (and per hello): a device proof made for it is worthless elsewhere.
  conn.challenge = randomBytes(LOGIN_CHALLENGE_BYTES);
  return {
    version: PROTOCOL_VERSION,
    server: SERVER_NAME,
    maxFrameBytes: MAX_FRAME_BYTES,
    heartbeatMs: HEARTBEAT_INTERVAL_MS,
    challenge: conn.challenge.toString('base64'),
    signup: s.auth.signupMode,
  };
}

async function signup(
  conn: Connection,
  req: Params<'auth.signup'>,
  s: Services,
): Promise<Results['auth.signup']> {
  const user = await s.auth.signup(req.user, req.password, {
    address: conn.address,
    invite: req.invite,
    isCancelled: () => conn.closed,
  });
  s.log.info({ user: user.name, invited: req.invite !== undefined }, 'account created');
  return { user: user.name };
}

function setAuth(conn: Connection, auth: Authenticated, s: Services): void {
  if (conn.auth && conn.auth.user.id !== auth.user.id) {
    throw new AuthError(
      ErrorCode.BAD_CREDENTIALS,
      'this connection is already logged in as another user',
    );
  }
  const limit = s.perAccount.connections;
  if (!conn.auth && s.directory.connectionCountOf(auth.user.id) >= limit) {
    throw new AuthError(
      ErrorCode.CONNECTION_LIMIT,
      `your account already holds ${limit} connections to this relay, its limit; close some (detach, stop agents) and try again`,
    );
  }
  // A login whose connection closed while its password was being checked must not count as
  // online: the close handler has already run, so nothing would ever remove it.
  if (conn.closed)
    throw new AuthError(ErrorCode.CONNECTION_CLOSED, 'the connection closed during login');
  s.directory.removeOnline(conn);
  conn.auth = auth;
  conn.touchedAt = s.now();
  s.directory.addOnline(conn);
}

async function login(
  conn: Connection,
  req: Params<'auth.login'>,
  s: Services,
): Promise<Results['auth.login']> {
  // Refuse before verifying: setAuth would refuse anyway, but only after a token was issued.
  if (conn.auth && conn.auth.user.name !== req.user) {
    throw new AuthError(
      ErrorCode.BAD_CREDENTIALS,
      'this connection is already logged in as another user',
    );
  }
  const result = await s.auth.login(req.user, req.password, req.device, {
    address: conn.address,
    challenge: conn.challenge,
    deviceProof: req.deviceProof,
    isCancelled: () => conn.closed,
  });
  // Resolve through the new token so a logout on this connection revokes exactly that token.
  setAuth(conn, await s.auth.authenticate(result.token), s);
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
  setAuth(conn, auth, s);
  return {
    user: auth.user.name,
    device: devicePeerInfo(auth.user.name, auth.device),
    expiresAt: new Date(auth.expiresAt).toISOString(),
  };
}

async function logout(
  conn: Connection & { auth: Authenticated },
  req: Params<'auth.logout'>,
  s: Services,
): Promise<Results['auth.logout']> {
  const all = req.all === true;
  const revoked = await s.auth.logout(conn.auth, all);
  // The revoked logins end now, not at their next reconnect: close the other connections using them.
  for (const other of s.directory.connectionsOf(conn.auth.user.id)) {
    if (other === conn) continue;
    if (all || other.auth?.tokenId === conn.auth.tokenId)
      other.close(CloseCode.POLICY, 'logged out');
  }
  s.log.info({ user: conn.auth.user.name, all, revoked }, 'logout');
  return { revoked };
}

async function passwd(
  conn: Connection & { auth: Authenticated },
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
    for (const other of s.directory.connectionsOf(conn.auth.user.id)) {
      if (other !== conn && other.auth?.tokenId !== conn.auth.tokenId)
        other.close(CloseCode.POLICY, 'logged out: the password was changed');
    }
  }
  s.log.info({ user: conn.auth.user.name, revoked }, 'password changed');
  return { revoked };
}

async function accountDelete(
  conn: Connection & { auth: Authenticated },
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
    if (s.directory.live(row.id)?.row.ownerId !== userId) continue;
    s.directory.removeLive(row.id, ErrorCode.PEER_GONE, 'the owner deleted the account');
    ended += 1;
  }
  for (const other of s.directory.connectionsOf(userId)) {
    if (other !== conn) other.close(CloseCode.POLICY, 'the account was deleted');
  }
  // This connection gets its reply, logged out.
  s.directory.removeOnline(conn);
  (conn as Connection).auth = undefined;
  s.log.info({ user: user.name, sessions: owned.length, live: ended }, 'account deleted');
  return { user: user.name };
}

async function inviteCreate(
  conn: Connection & { auth: Authenticated },
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
  conn: Connection & { auth: Authenticated },
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
  conn: Connection & { auth: Authenticated },
  _req: Params<'whoami'>,
  _s: Services,
): Promise<Results['whoami']> {
  const { user, device, expiresAt } = conn.auth;
  return {
    user: user.name,
    device: devicePeerInfo(user.name, device),
    since: new Date(user.createdAt).toISOString(),
    expiresAt: new Date(expiresAt).toISOString(),
  };
}

/**
 * Never a reply that grows with the number of accounts: with `all`, one page by name; without,
 * the caller, the people they deal with (owners of sessions they may join, users named in their
 * own sessions) and then whoever is online, at most `limit` in all.
 */
async function usersList(
  conn: Connection & { auth: Authenticated },
  req: Params<'users.list'>,
  s: Services,
): Promise<Results['users.list']> {
  const limit = req.limit ?? USERS_PAGE_DEFAULT;
  const shown = (u: UserSummary) => ({
    user: u.name,
    online: s.directory.isOnline(u.id),
    since: new Date(u.createdAt).toISOString(),
    lastSeen: u.lastSeenAt === null ? null : new Date(u.lastSeenAt).toISOString(),
  });
  if (req.all === true) {
    // One more than asked tells whether another page follows.
    const page = await s.store.users.listPage(req.after, limit + 1);
    const users = page.slice(0, limit);
    const last = users[users.length - 1];
    return {
      users: users.map(shown),
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
  // Online users fill what room is left (a loop, not a spread: there may be very many).
  for (const id of s.directory.onlineUserIds()) {
    if (chosen.size >= limit) break;
    chosen.add(id);
  }
  return { users: (await s.store.users.summariesByIds([...chosen].slice(0, limit))).map(shown) };
}

async function keysGet(
  _conn: Connection,
  req: Params<'keys.get'>,
  s: Services,
): Promise<Results['keys.get']> {
  const user = await s.store.users.findByName(req.user);
  if (!user) throw new AuthError(ErrorCode.UNKNOWN_USER, `there is no user "${req.user}"`);
  const devices = await s.store.devices.listForUser(user.id);
  return { user: user.name, devices: devices.map((d) => devicePeerInfo(user.name, d)) };
}

/**
 * Registrations of one account run one at a time, and each holds a relay-wide slot from its
 * first check to its end: requests sent together cannot all pass the caps on the same counts.
 */
async function sessionRegister(
  conn: Connection & { auth: Authenticated },
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
  conn: Connection & { auth: Authenticated },
  req: Params<'session.register'>,
  s: Services,
): Promise<Results['session.register']> {
  const now = s.now();
  const owner = conn.auth.user;
  const sessionId = req.sessionId ?? generateSessionId();
  const live = s.directory.live(sessionId);
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
  } else if (s.directory.liveCountOf(owner.id) >= s.perAccount.liveSessions) {
    throw new SessionError(
      ErrorCode.SESSION_LIMIT,
      `your account already hosts ${s.perAccount.liveSessions} live sessions, its limit; stop one first`,
    );
  } else if (s.directory.liveCount + s.directory.pendingRegistrations - 1 >= s.maxRemotes) {
    // pendingRegistrations counts this one: the others are registrations still in flight.
    throw new SessionError(
      ErrorCode.SESSION_LIMIT,
      `this relay is at its limit of ${s.maxRemotes} live remote sessions; try again later`,
    );
  }
  const existing = await s.store.remoteSessions.find(sessionId);
  const reservedSince = now - s.sessionReserveMs;
  if (!existing || existing.ownerId !== owner.id || existing.status === 'closed') {
    // A new ID for this owner: count the ones it already holds (live, or offline and reserved).
    const held = await s.store.remoteSessions.countHeld(owner.id, reservedSince);
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
  if (existing && existing.ownerId !== owner.id) await s.store.remoteSessions.delete(sessionId);
  const row = await s.store.remoteSessions.register(
    {
      id: sessionId,
      ownerId: owner.id,
      kind: req.kind,
      hostName: req.hostName,
      allow: req.allow,
      viewers: req.viewers,
    },
    now,
  );
  if (!row)
    throw new SessionError(
      ErrorCode.SESSION_TAKEN,
      `session "${sessionId}" belongs to another user; choose another --session`,
    );
  if (live) {
    // The same host process came back on a new connection: the old one is dead or dying.
    s.directory.removeLive(sessionId, ErrorCode.PEER_GONE, 'the host reconnected');
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
  s.directory.setLive({ row, instance: req.instance, host: conn, controllers: new Set() });
  s.log.info(
    { session: sessionId, owner: owner.name, kind: req.kind, conn: conn.id },
    'session live',
  );
  return { sessionId };
}

async function sessionUnregister(
  conn: Connection & { auth: Authenticated },
  req: Params<'session.unregister'>,
  s: Services,
): Promise<Results['session.unregister']> {
  const live = s.directory.live(req.sessionId);
  if (!live || live.host !== conn) return { removed: false };
  s.directory.removeLive(req.sessionId, ErrorCode.CHANNEL_CLOSED, 'the host ended the session');
  await s.store.remoteSessions.setStatus(req.sessionId, 'closed', s.now());
  s.log.info({ session: req.sessionId }, 'session closed');
  return { removed: true };
}

/** Relay-side access check; the host checks again and its answer is the one that counts. */
function relayAccess(
  row: RemoteSessionRow,
  userId: number,
  userName: string,
): 'owner' | 'allow' | 'viewer' | 'ask' | 'none' {
  if (row.ownerId === userId) return 'owner';
  if (row.allow.includes(userName)) return 'allow';
  if (row.viewers.includes(userName)) return 'viewer';
  return row.kind === 'share' ? 'ask' : 'none';
}

async function sessionsList(
  conn: Connection & { auth: Authenticated },
  _req: Params<'sessions.list'>,
  s: Services,
): Promise<Results['sessions.list']> {
  const rows = await s.store.remoteSessions.listAll();
  const me = conn.auth.user;
  const owners = new Map<number, string>();
  const sessions: SessionSummary[] = [];
  for (const row of rows) {
    if (row.status === 'closed') continue;
    const access = relayAccess(row, me.id, me.name);
    if (access === 'none' || access === 'ask') continue;
    // A bounded reply, whoever names this user in their --allow lists (see SESSIONS_LIST_MAX).
    if (sessions.length >= SESSIONS_LIST_MAX) return { sessions, truncated: true };
    let owner = owners.get(row.ownerId);
    if (owner === undefined) {
      owner = (await s.store.users.findById(row.ownerId))?.name ?? '?';
      owners.set(row.ownerId, owner);
    }
    const live = s.directory.live(row.id);
    sessions.push({
      sessionId: row.id,
      owner,
      kind: row.kind,
      hostName: row.hostName,
      since: new Date(row.createdAt).toISOString(),
      controllers: live ? live.controllers.size : 0,
      live: live !== undefined,
    });
  }
  return { sessions };
}

async function sessionAttach(
  conn: Connection & { auth: Authenticated },
  req: Params<'session.attach'>,
  s: Services,
): Promise<Results['session.attach']> {
  const live = s.directory.live(req.sessionId);
  if (!live) {
    const row = await s.store.remoteSessions.find(req.sessionId);
    if (row && row.status !== 'closed') {
      throw new SessionError(
        ErrorCode.SESSION_OFFLINE,
        `session "${req.sessionId}" exists but its host is not connected right now`,
      );
    }
    throw new SessionError(
      ErrorCode.SESSION_NOT_FOUND,
      `no session "${req.sessionId}"; \`switchboard sessions\` lists the ones you may attach to`,
    );
  }
  const me = conn.auth.user;
  const access = relayAccess(live.row, me.id, me.name);
  if (access === 'none') {
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      `you are not allowed on session "${req.sessionId}"; ask its owner to add you with --allow`,
    );
  }
  const readOnly = req.readOnly || access === 'viewer';
  const hostAuth = live.host.auth;
  if (!hostAuth) throw new SessionError(ErrorCode.SESSION_OFFLINE, 'the host is not logged in');
  const route = s.directory.openChannel(conn, live, s.now());
  live.host.sendEvent({
    type: 'channel.open',
    channel: route.peerChannel,
    sessionId: live.row.id,
    readOnly,
    peer: peerInfoOf(conn),
  });
  s.log.info({ session: live.row.id, user: me.name, readOnly, channel: route.channel }, 'attach');
  return {
    channel: route.channel,
    sessionId: live.row.id,
    kind: live.row.kind,
    hostName: live.row.hostName,
    host: devicePeerInfo(hostAuth.user.name, hostAuth.device),
  };
}

async function channelClose(
  conn: Connection & { auth: Authenticated },
  req: Params<'channel.close'>,
  s: Services,
): Promise<Results['channel.close']> {
  const route = conn.channels.get(req.channel);
  if (!route) return { closed: false };
  const bytes = {
    in: route.bytesIn,
    out: route.peer.channels.get(route.peerChannel)?.bytesIn ?? 0,
  };
  s.directory.closeRoute(
    route,
    req.code ?? ErrorCode.CHANNEL_CLOSED,
    req.reason ?? 'closed by the other side',
    false,
  );
  s.log.info({ session: route.sessionId, channel: route.channel, bytes }, 'channel closed');
  return { closed: true };
}

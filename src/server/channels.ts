// Channel requests: open one channel, or one per target (fan-out), to a service at a target.
//
// The relay routes without knowing what a service does: a host lists the services it serves
// when it registers its session, and the relay only checks that the target is live, that the
// caller may reach it, and that the target serves the name asked for. What the bytes mean is
// between the two ends (channel/e2e.ts and each side's services/).
import { ErrorCode, ProtocolError, SessionError, SwitchboardError } from '../protocol/errors.js';
import {
  targetKey,
  type ChannelOpened,
  type ChannelTarget,
  type Params,
  type Results,
} from '../protocol/messages.js';
import type { RemoteSessionRow } from '../store/repositories.js';
import type { UserCaller } from './caller.js';
import type { Connection } from './connection.js';
import { devicePeerInfo, peerInfoOf, type LiveSession } from './directory.js';
import type { Services } from './handlers.js';

/** What an agent's policy users (`operators`) may open: the services that check the policy. */
export const OPERATOR_SERVICES: ReadonlySet<string> = new Set(['exec', 'push']);

/** Relay-side access check; the host checks again and its answer is the one that counts. */
export function relayAccess(
  row: RemoteSessionRow,
  userId: number,
  userName: string,
): 'owner' | 'allow' | 'viewer' | 'operator' | 'ask' | 'none' {
  if (row.ownerId === userId) return 'owner';
  if (row.allow.includes(userName)) return 'allow';
  if (row.viewers.includes(userName)) return 'viewer';
  if (row.kind === 'agent' && row.operators.includes(userName)) return 'operator';
  return row.kind === 'share' ? 'ask' : 'none';
}

/** Where a channel lands: the connection that serves it, and what the opener is told. */
interface Landing {
  host: Connection & { auth: NonNullable<Connection['auth']> };
  readOnly: boolean;
  live?: LiveSession;
  /** The session's facts, for session targets. */
  session?: { sessionId: string; kind: 'share' | 'agent'; hostName: string };
}

/** A session target: live, the caller allowed, the service registered by its host. */
async function toSession(
  conn: UserCaller<Connection>,
  sessionId: string,
  service: string,
  askedReadOnly: boolean,
  s: Services,
  knock: boolean,
): Promise<Landing> {
  const live = await s.state.sessions.locate(sessionId);
  if (!live) {
    const row = await s.store.remoteSessions.find(sessionId);
    if (row && row.status !== 'closed') {
      throw new SessionError(
        ErrorCode.SESSION_OFFLINE,
        `session "${sessionId}" exists but its host is not connected right now`,
      );
    }
    throw new SessionError(
      ErrorCode.SESSION_NOT_FOUND,
      `no session "${sessionId}"; \`switchboard sessions\` lists the ones you may attach to`,
    );
  }
  const me = conn.auth.user;
  const access = relayAccess(live.row, me.id, me.name);
  if (access === 'none' || (access === 'ask' && !knock)) {
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      `you are not allowed on session "${sessionId}"; ask its owner to add you with --allow`,
    );
  }
  // An agent's --policy grants commands, not a shell: the agent decides what they may run.
  if (access === 'operator' && !OPERATOR_SERVICES.has(service)) {
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      `session "${sessionId}" grants you commands (switchboard exec), not "${service}"`,
    );
  }
  if (!live.services.has(service)) {
    throw new SessionError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `session "${sessionId}" does not serve "${service}" (it serves ${[...live.services].join(', ')}); its host may need a newer switchboard`,
    );
  }
  const host = live.host;
  if (!host.auth) throw new SessionError(ErrorCode.SESSION_OFFLINE, 'the host is not logged in');
  // An end-to-end handshake between a switchboard from before services and one after fails;
  // say which side to upgrade instead.
  const hostNew = host.capabilities.has('services');
  if (hostNew !== conn.capabilities.has('services')) {
    throw new SessionError(
      ErrorCode.VERSION_MISMATCH,
      hostNew
        ? `session "${sessionId}" runs a newer switchboard than yours; upgrade your switchboard`
        : `session "${sessionId}" runs a switchboard from before services; upgrade it on the host`,
    );
  }
  return {
    host: host as Landing['host'],
    readOnly: askedReadOnly || access === 'viewer',
    live,
    session: { sessionId: live.row.id, kind: live.row.kind, hostName: live.row.hostName },
  };
}

/**
 * A user or device target: any logged-in user may knock; the service at the other end decides
 * (as a share's terminal asks its user). The relay only finds a connection that offers it.
 */
async function toUser(
  user: string,
  fingerprint: string | undefined,
  service: string,
  askedReadOnly: boolean,
  s: Services,
): Promise<Landing> {
  const row = await s.store.users.findByName(user);
  if (!row) throw new SessionError(ErrorCode.UNKNOWN_USER, `there is no user "${user}"`);
  let deviceId: number | undefined;
  if (fingerprint !== undefined) {
    const device = (await s.store.devices.listForUser(row.id)).find(
      (d) => d.fingerprint === fingerprint,
    );
    if (!device)
      throw new SessionError(
        ErrorCode.UNKNOWN_USER,
        `${user} has no device ${fingerprint}; \`switchboard keys ${user}\` lists them`,
      );
    deviceId = device.id;
  }
  const host = await s.state.connections.offering(row.id, service, deviceId);
  if (!host?.auth) {
    const where = fingerprint === undefined ? user : `${user}'s device ${fingerprint}`;
    throw new SessionError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `${where} is not online with "${service}" right now`,
    );
  }
  return { host: host as Landing['host'], readOnly: askedReadOnly };
}

/** Opens one channel to `service` at `target`; throws the reason it cannot. */
async function openOne(
  conn: UserCaller<Connection>,
  service: string,
  target: ChannelTarget,
  askedReadOnly: boolean,
  s: Services,
  { knock = true }: { knock?: boolean } = {},
): Promise<ChannelOpened> {
  if (!knock && target.kind !== 'session')
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      'a fan-out reaches sessions only; open a channel to a user or device with channel.open',
    );
  const landing =
    target.kind === 'session'
      ? await toSession(conn, target.sessionId, service, askedReadOnly, s, knock)
      : await toUser(
          target.user,
          target.kind === 'device' ? target.fingerprint : undefined,
          service,
          askedReadOnly,
          s,
        );
  const key = targetKey(target);
  const { host, readOnly } = landing;
  if (host === conn)
    throw new SessionError(ErrorCode.NOT_ALLOWED, 'a connection cannot open a channel to itself');
  // Either end may have gone while the lookups above awaited: route nothing to a dead one.
  if (conn.closed)
    throw new SessionError(ErrorCode.CONNECTION_CLOSED, 'the connection closed during the open');
  if (host.closed) throw new SessionError(ErrorCode.PEER_GONE, 'the other side just disconnected');
  const route = s.directory.openChannel(
    conn,
    { host, target: key, ...(landing.live ? { live: landing.live } : {}) },
    service,
    s.now(),
  );
  host.sendEvent({
    type: 'channel.open',
    channel: route.peerChannel,
    service,
    target,
    ...(landing.session ? { sessionId: landing.session.sessionId } : {}),
    readOnly,
    peer: peerInfoOf(conn),
  });
  s.log.info(
    { target: key, service, user: conn.auth.user.name, readOnly, channel: route.channel },
    'channel open',
  );
  // Who reached what, through this relay: attaches, exec and push routing.
  s.audit.record({
    type: 'channel',
    user: conn.auth.user.name,
    fingerprint: conn.auth.device.fingerprint,
    service,
    target: key,
    readOnly,
    ...(landing.live ? { ownerId: landing.live.row.ownerId, session: landing.live.row.id } : {}),
  });
  return {
    channel: route.channel,
    service,
    target,
    ...(landing.session ? { kind: landing.session.kind, hostName: landing.session.hostName } : {}),
    host: devicePeerInfo(host.auth.user.name, host.auth.device),
  };
}

/** A connection serves these services to channels aimed at its user or its device. */
export async function servicesOffer(
  conn: UserCaller<Connection>,
  req: Params<'services.offer'>,
  s: Services,
): Promise<Results['services.offer']> {
  conn.offered = new Set(req.services);
  s.log.info({ user: conn.auth.user.name, services: req.services }, 'services offered');
  return { services: [...conn.offered] };
}

export async function channelOpen(
  conn: UserCaller<Connection>,
  req: Params<'channel.open'>,
  s: Services,
): Promise<Results['channel.open']> {
  return openOne(conn, req.service, req.target, req.readOnly ?? false, s);
}

/** The terminal at a session, as clients before services asked for it. */
export async function sessionAttach(
  conn: UserCaller<Connection>,
  req: Params<'session.attach'>,
  s: Services,
): Promise<Results['session.attach']> {
  const opened = await openOne(
    conn,
    'terminal',
    { kind: 'session', sessionId: req.sessionId },
    req.readOnly,
    s,
  );
  return {
    channel: opened.channel,
    sessionId: req.sessionId,
    kind: opened.kind!,
    hostName: opened.hostName!,
    host: opened.host,
  };
}

/**
 * One request, many channels: each target is opened in turn and answered apart, so one agent
 * that is offline or refuses does not fail the rest. Targets past the connection's channel cap
 * get TOO_MANY_CHANNELS. It reaches only targets the caller may enter without asking (owner,
 * `allow`, `viewers`): knocking on a share is one `channel.open` at a time. A target named twice
 * is answered INVALID_MESSAGE. Its control-rate cost is in the handler table.
 */
export async function channelFanout(
  conn: UserCaller<Connection>,
  req: Params<'channel.fanout'>,
  s: Services,
): Promise<Results['channel.fanout']> {
  const results: Results['channel.fanout']['results'] = [];
  const seen = new Set<string>();
  for (const target of req.targets) {
    const key = targetKey(target);
    try {
      if (seen.has(key))
        throw new ProtocolError(ErrorCode.INVALID_MESSAGE, `target "${key}" is named twice`);
      seen.add(key);
      results.push(
        await openOne(conn, req.service, target, req.readOnly ?? false, s, { knock: false }),
      );
    } catch (err) {
      if (!(err instanceof SwitchboardError)) throw err;
      results.push({ error: { code: err.code, message: err.message } });
    }
  }
  return { results };
}

export async function channelClose(
  conn: UserCaller<Connection>,
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
  s.log.info(
    { target: route.target, service: route.service, channel: route.channel, bytes },
    'channel closed',
  );
  return { closed: true };
}

// Channel requests: open one channel, or one per target (fan-out), to a service at a target.
//
// The relay routes without knowing what a service does: a host lists the services it serves
// when it registers its session, and the relay only checks that the target is live, that the
// caller may reach it, and that the target serves the name asked for. What the bytes mean is
// between the two ends (channel/e2e.ts and each side's services/).
import { ErrorCode, ProtocolError, SessionError, SwitchboardError } from '../protocol/errors.js';
import { FANOUT_TARGETS_PER_TOKEN } from '../protocol/limits.js';
import type { ChannelOpened, ChannelTarget, Params, Results } from '../protocol/messages.js';
import type { RemoteSessionRow } from '../store/repositories.js';
import type { UserCaller } from './caller.js';
import type { Connection } from './connection.js';
import { devicePeerInfo, peerInfoOf } from './directory.js';
import type { Services } from './handlers.js';

/** Relay-side access check; the host checks again and its answer is the one that counts. */
export function relayAccess(
  row: RemoteSessionRow,
  userId: number,
  userName: string,
): 'owner' | 'allow' | 'viewer' | 'ask' | 'none' {
  if (row.ownerId === userId) return 'owner';
  if (row.allow.includes(userName)) return 'allow';
  if (row.viewers.includes(userName)) return 'viewer';
  return row.kind === 'share' ? 'ask' : 'none';
}

/** Opens one channel to `service` at `target`; throws the reason it cannot. */
async function openOne(
  conn: UserCaller<Connection>,
  service: string,
  target: ChannelTarget,
  askedReadOnly: boolean,
  s: Services,
): Promise<ChannelOpened> {
  const { sessionId } = target;
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
  if (access === 'none') {
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      `you are not allowed on session "${sessionId}"; ask its owner to add you with --allow`,
    );
  }
  if (!live.services.has(service)) {
    throw new SessionError(
      ErrorCode.SERVICE_UNAVAILABLE,
      `session "${sessionId}" does not serve "${service}" (it serves ${[...live.services].join(', ')}); its host may need a newer switchboard`,
    );
  }
  const readOnly = askedReadOnly || access === 'viewer';
  const hostAuth = live.host.auth;
  if (!hostAuth) throw new SessionError(ErrorCode.SESSION_OFFLINE, 'the host is not logged in');
  const route = s.directory.openChannel(conn, live, service, s.now());
  live.host.sendEvent({
    type: 'channel.open',
    channel: route.peerChannel,
    service,
    sessionId: live.row.id,
    readOnly,
    peer: peerInfoOf(conn),
  });
  s.log.info(
    { session: live.row.id, service, user: me.name, readOnly, channel: route.channel },
    'channel open',
  );
  return {
    channel: route.channel,
    service,
    target: { kind: 'session', sessionId: live.row.id },
    kind: live.row.kind,
    hostName: live.row.hostName,
    host: devicePeerInfo(hostAuth.user.name, hostAuth.device),
  };
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
    sessionId: opened.target.sessionId,
    kind: opened.kind,
    hostName: opened.hostName,
    host: opened.host,
  };
}

/**
 * One request, many channels: each target is opened in turn and answered apart, so one agent
 * that is offline or refuses does not fail the rest. Targets past the connection's channel cap
 * get TOO_MANY_CHANNELS. The request costs control-rate tokens by its size.
 */
export async function channelFanout(
  conn: UserCaller<Connection>,
  req: Params<'channel.fanout'>,
  s: Services,
): Promise<Results['channel.fanout']> {
  const extra = Math.floor(req.targets.length / FANOUT_TARGETS_PER_TOKEN);
  if (extra > 0 && !conn.takeTokens(s.now(), extra)) {
    s.metrics.throttled.inc({ limit: 'control_rate' });
    throw new ProtocolError(
      ErrorCode.RATE_LIMITED,
      `a fan-out to ${req.targets.length} targets costs ${extra + 1} control messages; slow down`,
    );
  }
  const results: Results['channel.fanout']['results'] = [];
  for (const target of req.targets) {
    try {
      results.push(await openOne(conn, req.service, target, req.readOnly ?? false, s));
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
    { session: route.sessionId, service: route.service, channel: route.channel, bytes },
    'channel closed',
  );
  return { closed: true };
}

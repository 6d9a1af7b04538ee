// Broadcasts: checked and stored by the relay, pushed to everyone online, offered to whoever comes
// online until the window closes, once per user (issue 11, part 6). Public to all users by design.
import { openBroadcast } from '../protocol/broadcast.js';
import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { BROADCAST_FETCH_MAX, BROADCAST_PER_HOUR } from '../protocol/limits.js';
import type { BroadcastView, Params, Results } from '../protocol/messages.js';
import type { BroadcastRow } from '../store/broadcast-repository.js';
import type { UserCaller } from './caller.js';
import type { Services } from './handlers.js';

function view(r: BroadcastRow): BroadcastView {
  return {
    id: r.id,
    from: r.senderName,
    key: r.senderKey,
    body: r.body,
    sig: r.sig,
    sentAt: new Date(r.createdAt).toISOString(),
  };
}

export async function broadcastSend(
  conn: UserCaller,
  req: Params<'broadcast.send'>,
  s: Services,
): Promise<Results['broadcast.send']> {
  const me = conn.auth.user;
  const key = conn.auth.device.publicKey;
  const body = openBroadcast(Buffer.from(key, 'base64'), req.body, req.sig);
  if (!body || body.from !== me.name)
    throw new ProtocolError(
      ErrorCode.SIGNATURE_INVALID,
      'a broadcast must be signed by this device and name you as its sender',
    );
  const now = s.now();
  if ((await s.store.broadcasts.countSince(me.name, now - 3600_000)) >= BROADCAST_PER_HOUR)
    throw new ProtocolError(
      ErrorCode.RATE_LIMITED,
      `at most ${BROADCAST_PER_HOUR} broadcasts an hour; try again later`,
    );
  const row = await s.store.broadcasts.add({
    senderName: me.name,
    senderKey: key,
    body: req.body,
    sig: req.sig,
    createdAt: now,
    expiresAt: now + s.broadcastWindowMs,
  });
  const online = await s.state.connections.notifyAll({ type: 'broadcast', ...view(row) });
  s.log.info({ user: me.name, broadcast: row.id, online }, 'broadcast');
  return { id: row.id, expiresAt: new Date(row.expiresAt).toISOString(), online };
}

export async function broadcastFetch(
  conn: UserCaller,
  _req: Params<'broadcast.fetch'>,
  s: Services,
): Promise<Results['broadcast.fetch']> {
  const rows = await s.store.broadcasts.pendingFor(conn.auth.user.id, s.now(), BROADCAST_FETCH_MAX);
  return { broadcasts: rows.map(view) };
}

export async function broadcastAck(
  conn: UserCaller,
  req: Params<'broadcast.ack'>,
  s: Services,
): Promise<Results['broadcast.ack']> {
  await s.store.broadcasts.ack(conn.auth.user.id, req.ids);
  return { acked: req.ids.length };
}

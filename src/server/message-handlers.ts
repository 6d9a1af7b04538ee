// Messages through the relay: sealed envelopes stored per device until acknowledged (issue 11).
//
// The relay routes and stores ciphertext: it checks each envelope is for a device of the
// recipient (or of the sender's own account), stores all of them in one transaction before it
// answers (so "sent" means durable), pushes them to devices online now, and deletes each on its
// device's acknowledgement or after MESSAGE_TTL_MS.
import { ErrorCode, ProtocolError, SessionError } from '../protocol/errors.js';
import { MAILBOX_MAX_PENDING, MESSAGE_FETCH_MAX, MESSAGE_TTL_MS } from '../protocol/limits.js';
import type { MailboxMessage, Params, Results } from '../protocol/messages.js';
import type { MailboxRow } from '../store/mailbox-repository.js';
import type { UserCaller } from './caller.js';
import { activeDevices, userDevices } from './user-devices.js';
import type { Services } from './handlers.js';

function view(r: MailboxRow): MailboxMessage {
  return {
    seq: r.seq,
    from: r.senderName,
    fromDevice: r.senderFingerprint,
    id: r.messageId,
    body: r.body,
    sentAt: new Date(r.createdAt).toISOString(),
  };
}

export async function messageSend(
  conn: UserCaller,
  req: Params<'message.send'>,
  s: Services,
): Promise<Results['message.send']> {
  const me = conn.auth.user;
  const to = await userDevices(s.store, req.to);
  // The recipient's devices, and the sender's other devices (their copy of the conversation).
  const devices = new Map<string, { id: number; userId: number }>();
  const mine = to.user.id === me.id ? [] : await activeDevices(s.store, me.id);
  for (const d of [...to.devices, ...mine])
    if (d.id !== conn.auth.device.id) devices.set(d.fingerprint, { id: d.id, userId: d.userId });
  const seen = new Set<string>();
  for (const e of req.envelopes) {
    if (!devices.has(e.device))
      throw new ProtocolError(
        ErrorCode.INVALID_MESSAGE,
        `${e.device} is not a device of ${req.to} or of your other devices; \`switchboard keys ${req.to}\` lists them`,
      );
    if (seen.has(e.device))
      throw new ProtocolError(ErrorCode.INVALID_MESSAGE, `two envelopes for ${e.device}`);
    seen.add(e.device);
  }
  const now = s.now();
  const rows = req.envelopes.map((e) => ({
    deviceId: devices.get(e.device)!.id,
    senderName: me.name,
    senderFingerprint: conn.auth.device.fingerprint,
    messageId: req.messageId,
    body: e.body,
    createdAt: now,
    expiresAt: now + MESSAGE_TTL_MS,
  }));
  const stored = await s.store.transaction(
    async (tx) => {
      for (const r of rows)
        if ((await tx.mailbox.count(r.deviceId)) >= MAILBOX_MAX_PENDING)
          throw new SessionError(
            ErrorCode.MAILBOX_FULL,
            `a device of ${req.to} has ${MAILBOX_MAX_PENDING} messages waiting; try again once they have read them`,
          );
      return tx.mailbox.put(rows);
    },
    { isolation: 'serializable', retries: 3 },
  );
  // Durable now; devices online get it at once (they fetch what they miss).
  const owners = new Map([...devices.values()].map((d) => [d.id, d.userId]));
  for (const row of stored)
    await s.state.connections.notifyDevice(owners.get(row.deviceId)!, row.deviceId, {
      type: 'message',
      ...view(row),
    });
  return { messageId: req.messageId, stored: stored.length };
}

export async function messageFetch(
  conn: UserCaller,
  req: Params<'message.fetch'>,
  s: Services,
): Promise<Results['message.fetch']> {
  const limit = req.limit ?? MESSAGE_FETCH_MAX;
  const rows = await s.store.mailbox.list(conn.auth.device.id, req.after ?? 0, limit + 1, s.now());
  return { messages: rows.slice(0, limit).map(view), more: rows.length > limit };
}

export async function messageAck(
  conn: UserCaller,
  req: Params<'message.ack'>,
  s: Services,
): Promise<Results['message.ack']> {
  return { deleted: await s.store.mailbox.ack(conn.auth.device.id, req.upTo) };
}

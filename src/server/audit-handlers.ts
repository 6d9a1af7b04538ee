// Audit requests: agents ship their signed logs here; owners (and actors) list them.
//
// The relay checks what it stores as a reader would: every entry is signed by the device the
// log is named after (the caller's own), continues the chain the relay holds (next seq, prev =
// hash of the last body), and belongs to a session the caller owns. So the relay's copy has no
// gaps, and what it serves can be checked again by anyone with the device's public key.
import { ErrorCode, ProtocolError, SessionError } from '../protocol/errors.js';
import { bodyHash, verifyChain, type EntryHead } from '../protocol/audit.js';
import { AUDIT_LIST_MAX, AUDIT_LIST_MAX_BYTES } from '../protocol/limits.js';
import type { AuditEntryView, Params, Results } from '../protocol/messages.js';
import type { AuditRow } from '../store/audit-repository.js';
import type { UserCaller } from './caller.js';
import type { Services } from './handlers.js';

/** `agent:SESSION:FP` of the caller's device, on a session it owns; else NOT_ALLOWED. */
async function ownLog(conn: UserCaller, log: string, s: Services): Promise<{ session: string }> {
  const m = /^agent:([A-Za-z0-9-]{3,64}):(SHA256:.+)$/.exec(log);
  if (!m || m[2] !== conn.auth.device.fingerprint)
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      'an agent ships only its own log (agent:SESSION:FINGERPRINT of this device)',
    );
  const row = await s.store.remoteSessions.find(m[1]!);
  if (!row || row.ownerId !== conn.auth.user.id)
    throw new SessionError(ErrorCode.NOT_ALLOWED, `session "${m[1]}" is not yours`);
  return { session: m[1]! };
}

export async function auditHead(
  conn: UserCaller,
  req: Params<'audit.head'>,
  s: Services,
): Promise<Results['audit.head']> {
  await ownLog(conn, req.log, s);
  const head = await s.store.audit.head(req.log);
  return head ? { seq: head.seq, hash: bodyHash(head.body) } : { seq: 0, hash: '' };
}

export async function auditAppend(
  conn: UserCaller,
  req: Params<'audit.append'>,
  s: Services,
): Promise<Results['audit.append']> {
  const { session } = await ownLog(conn, req.log, s);
  const device = conn.auth.device;
  const key = Buffer.from(device.publicKey, 'base64');
  // One log's appends in order: two at once (a reconnect) must not both take the next seq.
  return s.store.transaction(
    async (tx) => {
      const head = await tx.audit.head(req.log);
      const from = (head?.seq ?? 0) + 1;
      const problem = verifyChain(req.log, req.entries, key, from, head ? bodyHash(head.body) : '');
      if (problem)
        throw new ProtocolError(
          ErrorCode.CONFLICT,
          `${problem.message}; the relay holds up to entry ${from - 1}`,
        );
      const rows: AuditRow[] = req.entries.map((e) => {
        const body = JSON.parse(e.body) as EntryHead;
        const time = Date.parse(body.time);
        return {
          log: req.log,
          seq: body.seq,
          ownerId: conn.auth.user.id,
          session,
          actor: typeof body['user'] === 'string' ? body['user'] : null,
          type: String(body.type).slice(0, 32),
          time: Number.isFinite(time) ? time : s.now(),
          body: e.body,
          sig: e.sig,
          signer: device.publicKey,
        };
      });
      await tx.audit.append(rows);
      return { seq: rows.at(-1)!.seq };
    },
    { isolation: 'serializable', retries: 3 },
  );
}

export async function auditList(
  conn: UserCaller,
  req: Params<'audit.list'>,
  s: Services,
): Promise<Results['audit.list']> {
  const limit = req.limit ?? AUDIT_LIST_MAX;
  const rows = await s.store.audit.list({
    visibleTo: { userId: conn.auth.user.id, name: conn.auth.user.name },
    ...(req.host !== undefined ? { session: req.host } : {}),
    ...(req.user !== undefined ? { actor: req.user } : {}),
    ...(req.since !== undefined ? { since: req.since } : {}),
    ...(req.after ? { after: req.after } : {}),
    limit: limit + 1,
  });
  // A page also stops at AUDIT_LIST_MAX_BYTES of encoded entries (UTF-8, JSON escapes included),
  // so the reply fits any client's message limit.
  const page: AuditEntryView[] = [];
  let bytes = 0;
  for (const r of rows.slice(0, limit)) {
    const entry = { log: r.log, seq: r.seq, body: r.body, sig: r.sig, key: r.signer };
    bytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (page.length > 0 && bytes > AUDIT_LIST_MAX_BYTES) break;
    page.push(entry);
  }
  const more = rows.length > page.length;
  const last = page.at(-1);
  return {
    entries: page,
    ...(more && last ? { next: { log: last.log, seq: last.seq } } : {}),
  };
}

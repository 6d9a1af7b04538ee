// The ledger's requests (issue 12): pay, mint, balance, history, the whole ledger, its checkpoint.
import { ErrorCode, SessionError } from '../protocol/errors.js';
import { LEDGER_PAGE_MAX } from '../protocol/limits.js';
import type { LedgerEntryView, Params, Results } from '../protocol/messages.js';
import type { LedgerEntryRow } from '../store/ledger-repository.js';
import type { Caller, UserCaller } from './caller.js';
import type { Services } from './handlers.js';

function view(r: LedgerEntryRow): LedgerEntryView {
  return {
    seq: r.seq,
    body: r.body,
    sig: r.sig,
    key: r.signerKey,
    hash: r.hash,
    settledAt: new Date(r.createdAt).toISOString(),
  };
}

/** Public, like `info`: the key and checkpoint are what anyone verifies against. */
export async function ledgerInfo(
  _conn: Caller,
  _req: Params<'ledger.info'>,
  s: Services,
): Promise<Results['ledger.info']> {
  return {
    ledger: s.ledger.id,
    key: s.ledger.key.publicKey.toString('base64'),
    unit: s.ledger.unit,
    checkpoint: await s.ledger.checkpoint(),
  };
}

export async function ledgerPay(
  conn: UserCaller,
  req: Params<'ledger.pay'>,
  s: Services,
): Promise<Results['ledger.pay']> {
  const r = await s.ledger.settle(req.transfer, conn.auth.user);
  const balance = await s.store.ledger.balance(conn.auth.user.id);
  if (!r.duplicate) {
    const body = JSON.parse(r.entry.body) as { from: string; amount: number; memo: string };
    // The payee's devices online hear of it at once (a notice, not the record: that is the ledger).
    for (const device of await s.state.connections.onlineDevices(r.entry.payeeId))
      await s.state.connections.notifyDevice(r.entry.payeeId, device, {
        type: 'payment',
        seq: r.seq,
        id: r.id,
        from: body.from,
        amount: body.amount,
        memo: body.memo,
      });
  }
  return { seq: r.seq, id: r.id, duplicate: r.duplicate, balance };
}

export async function ledgerMint(
  conn: UserCaller,
  req: Params<'ledger.mint'>,
  s: Services,
): Promise<Results['ledger.mint']> {
  if (!s.invites.isAdmin(conn.auth.user))
    throw new SessionError(
      ErrorCode.NOT_ALLOWED,
      'only an admin mints (`serve --admin NAME` on the relay)',
    );
  const r = await s.ledger.mint(req.transfer, conn.auth.user);
  return { seq: r.seq, id: r.id, duplicate: r.duplicate };
}

export async function ledgerBalance(
  conn: UserCaller,
  _req: Params<'ledger.balance'>,
  s: Services,
): Promise<Results['ledger.balance']> {
  return {
    balance: await s.store.ledger.balance(conn.auth.user.id),
    unit: s.ledger.unit,
    ledger: s.ledger.id,
  };
}

export async function ledgerHistory(
  conn: UserCaller,
  req: Params<'ledger.history'>,
  s: Services,
): Promise<Results['ledger.history']> {
  const limit = req.limit ?? LEDGER_PAGE_MAX;
  const rows = await s.store.ledger.listFor(conn.auth.user.id, req.after ?? 0, limit + 1);
  return { entries: rows.slice(0, limit).map(view), more: rows.length > limit };
}

export async function ledgerEntries(
  _conn: UserCaller,
  req: Params<'ledger.entries'>,
  s: Services,
): Promise<Results['ledger.entries']> {
  const limit = req.limit ?? LEDGER_PAGE_MAX;
  const rows = await s.store.ledger.list(req.after ?? 0, limit + 1);
  return { entries: rows.slice(0, limit).map(view), more: rows.length > limit };
}

export async function ledgerSigners(
  _conn: UserCaller,
  req: Params<'ledger.signers'>,
  s: Services,
): Promise<Results['ledger.signers']> {
  const user = await s.store.users.findByName(req.user);
  if (!user) throw new SessionError(ErrorCode.UNKNOWN_USER, `there is no user "${req.user}"`);
  const devices = await s.store.devices.listForUser(user.id);
  return {
    user: user.name,
    keys: devices.map((d) => ({ publicKey: d.publicKey, revoked: d.revokedAt !== null })),
  };
}

// `pay`, `deposit`, `balance`, `history` and `ledger verify | mint`: the ledger from the CLI.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../../client/atomic-file.js';
import { Contacts } from '../../client/contacts.js';
import { contactsFileStore } from '../../client/file-stores.js';
import { KnownPeers } from '../../client/known-peers.js';
import { verifyLedger } from '../../client/ledger-verify.js';
import type { RelayClient } from '../../client/relay-client.js';
import { signTransfer } from '../../crypto/ledger-signing.js';
import { ErrorCode, SwitchboardError, isTransient } from '../../protocol/errors.js';
import {
  MEMO_MAX_CHARS,
  parseAmount,
  type Checkpoint,
  type SignedTransfer,
  type TransferBody,
} from '../../protocol/ledger.js';
import { USERNAME_RE, type LedgerEntryView } from '../../protocol/messages.js';
import { CLIENT_OPTIONS, bool, str, type Command, type Invocation } from '../command.js';
import { connectAuthed, withSession, type Session } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';
import { json } from '../output.js';
import { DIRECT_OPTION, messengerOf } from './messages.js';

/** Submitting a signed transfer again after a lost connection: it settles once whatever happens. */
const SUBMIT_ATTEMPTS = 3;

/**
 * Submits `t`, reconnecting and resubmitting the same signed transfer if the connection drops.
 * A new connection replaces `session.client`, so what follows (and withSession's close) uses it.
 */
async function submit(inv: Invocation, session: Session, t: SignedTransfer) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await session.client.request('ledger.pay', { transfer: t });
    } catch (err) {
      if (attempt >= SUBMIT_ATTEMPTS || !isTransient(err)) throw err;
      session.client.close();
      session.client = (await connectAuthed(inv)).client;
    }
  }
}

function settledLine(r: { duplicate: boolean; balance: number }, what: string, unit: string) {
  return `${what}${r.duplicate ? ' (it had settled before: nothing moved now)' : ''}; your balance: ${r.balance} ${unit}\n`;
}

export const pay: Command = {
  name: 'pay',
  summary: 'Pay USER AMOUNT from your balance: a transfer signed by this device (--out: a cheque).',
  usage: 'USER AMOUNT [--memo TEXT] [--out FILE] [--json]',
  details:
    'AMOUNT is a whole number of the smallest unit. The transfer is signed here with a random id,\n' +
    "for this relay's ledger only; the relay settles it exactly once (a retry after a lost\n" +
    'connection gets the first result). --out writes the signed transfer to FILE instead: a\n' +
    'cheque the payee deposits with `switchboard deposit FILE` (valid 30 days).',
  positionals: [2, 2],
  options: {
    memo: {
      type: 'string',
      value: 'TEXT',
      description: `a note for both of you (≤ ${MEMO_MAX_CHARS} characters)`,
    },
    ...DIRECT_OPTION,
    out: {
      type: 'string',
      value: 'FILE',
      description: 'write a cheque to FILE instead of paying now',
    },
    json: {
      type: 'boolean',
      description: 'print {"id", "seq", "amount", "to", "balance"} as JSON',
    },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const [to, amountText] = inv.positionals as [string, string];
    if (!USERNAME_RE.test(to)) throw new UsageError(`"${to}" is not a user name`);
    const amount = parseAmount(amountText);
    if (typeof amount === 'string') throw new UsageError(amount);
    const memo = str(inv, 'memo') ?? '';
    if (memo.length > MEMO_MAX_CHARS)
      throw new UsageError(`a memo is at most ${MEMO_MAX_CHARS} characters`);
    return withSession(inv, async (session) => {
      const info = await session.client.request('ledger.info', {});
      if (to === session.me.user) throw new UsageError('paying yourself moves nothing');
      const body: TransferBody = {
        v: 1,
        kind: 'transfer',
        ledger: info.ledger,
        id: randomBytes(16).toString('base64'),
        from: session.me.user,
        to,
        amount,
        memo,
        at: new Date().toISOString(),
      };
      const t = signTransfer(session.home.deviceKey(), body);
      const out = str(inv, 'out');
      if (out !== undefined) {
        writeFileSync(out, `${JSON.stringify(t)}\n`, { mode: 0o600, flag: 'wx' });
        if (bool(inv, 'json')) json(inv.io.stdout, { id: body.id, cheque: out, amount, to });
        else
          inv.io.stdout.write(
            `wrote a cheque for ${amount} ${info.unit} to ${to} in ${out}: they run \`switchboard deposit ${out}\`\n`,
          );
        return Exit.OK;
      }
      // An online contact gets the cheque directly and deposits it; it is submitted here too
      // (it settles once however it travels), so the answer below is the ledger's.
      let handed = false;
      // Only an accepted contact gets a direct link (Messenger.link): for anyone else, starting
      // a Messenger (keys.publish, a listener, the history) would change nothing.
      const contact = new Contacts(contactsFileStore(session.home.path(FILES.contacts))).get(to);
      if (!bool(inv, 'no-direct') && contact?.state === 'accepted') {
        const messenger = messengerOf(session, inv);
        try {
          await messenger.start();
          handed = await messenger.handCheque(to, t);
        } catch {
          // Not handed over: submitted below all the same.
        } finally {
          await messenger.stop();
        }
      }
      const r = await submit(inv, session, t);
      if (bool(inv, 'json'))
        json(inv.io.stdout, {
          id: r.id,
          seq: r.seq,
          amount,
          to,
          balance: r.balance,
          // Handed over, the payee's device deposited it before acknowledging: our own submission
          // then finds it settled.
          duplicate: r.duplicate && !handed,
          path: handed ? 'direct' : 'relay',
          depositedBy: handed && r.duplicate ? 'payee' : 'payer',
        });
      else
        inv.io.stdout.write(
          settledLine(
            { ...r, duplicate: r.duplicate && !handed },
            `paid ${to} ${amount} ${info.unit}${handed ? ' (the cheque went to them directly)' : ''}`,
            info.unit,
          ),
        );
      return Exit.OK;
    });
  },
};

export const deposit: Command = {
  name: 'deposit',
  summary: 'Deposit a cheque (a signed transfer from `pay --out`) made out to you.',
  usage: 'FILE [--json]',
  positionals: [1, 1],
  options: { json: { type: 'boolean', description: 'print JSON' }, ...CLIENT_OPTIONS },
  async run(inv) {
    const file = inv.positionals[0]!;
    let t: SignedTransfer;
    try {
      t = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8')) as SignedTransfer;
    } catch (err) {
      throw new UsageError(
        `${file} is not a cheque: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (typeof t?.body !== 'string' || typeof t.sig !== 'string' || typeof t.key !== 'string')
      throw new UsageError(`${file} is not a cheque (it has no body, sig and key)`);
    return withSession(inv, async (session) => {
      const r = await submit(inv, session, t);
      // ledger.pay answers with the submitter's balance: the payee's here.
      const info = {
        balance: r.balance,
        unit: (await session.client.request('ledger.info', {})).unit,
      };
      const body = JSON.parse(t.body) as TransferBody;
      if (bool(inv, 'json'))
        json(inv.io.stdout, {
          id: r.id,
          seq: r.seq,
          amount: body.amount,
          from: body.from,
          balance: info.balance,
          duplicate: r.duplicate,
        });
      else
        inv.io.stdout.write(
          settledLine(
            { duplicate: r.duplicate, balance: info.balance },
            `deposited ${body.amount} ${info.unit} from ${body.from}`,
            info.unit,
          ),
        );
      return Exit.OK;
    });
  },
};

export const balance: Command = {
  name: 'balance',
  summary: 'Your balance on this relay’s ledger.',
  usage: '[--json]',
  positionals: [0, 0],
  options: {
    json: { type: 'boolean', description: 'print {"balance", "unit", "ledger"}' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    return withSession(inv, async (session) => {
      const r = await session.client.request('ledger.balance', {});
      if (bool(inv, 'json')) json(inv.io.stdout, r);
      else inv.io.stdout.write(`${r.balance} ${r.unit}\n`);
      return Exit.OK;
    });
  },
};

/** Every page of a paged ledger request. */
async function allEntries(
  client: RelayClient,
  type: 'ledger.history' | 'ledger.entries',
): Promise<LedgerEntryView[]> {
  const out: LedgerEntryView[] = [];
  for (;;) {
    const r = await client.request(type, { after: out.at(-1)?.seq ?? 0 });
    out.push(...r.entries);
    if (!r.more) return out;
  }
}

export const history: Command = {
  name: 'history',
  summary: 'Your transfers: time, counterparty, amount, memo, running balance.',
  usage: '[--json]',
  positionals: [0, 0],
  options: {
    json: { type: 'boolean', description: 'print the entries as a JSON array' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    return withSession(inv, async (session) => {
      const me = session.me.user;
      let running = 0;
      const rows = (await allEntries(session.client, 'ledger.history')).map((e) => {
        const b = JSON.parse(e.body) as TransferBody;
        const delta = b.to === me ? b.amount : -b.amount;
        running += delta;
        const counterparty = b.kind === 'mint' ? `mint by ${b.by}` : b.to === me ? b.from! : b.to;
        return {
          seq: e.seq,
          time: e.settledAt,
          counterparty,
          amount: delta,
          memo: b.memo,
          balance: running,
          status: 'settled',
          id: b.id,
        };
      });
      if (bool(inv, 'json')) json(inv.io.stdout, rows);
      else if (rows.length === 0) inv.io.stdout.write('(no transfers yet)\n');
      else
        for (const r of rows)
          inv.io.stdout.write(
            `${r.time.replace(/\.\d+Z$/, 'Z')}  ${(r.amount > 0 ? `+${r.amount}` : String(r.amount)).padStart(8)}  ${r.counterparty.padEnd(20)} ${String(r.balance).padStart(8)}  ${r.memo}\n`,
          );
      return Exit.OK;
    });
  },
};

interface SavedLedger {
  key: string;
  checkpoint: Checkpoint;
}

export const ledger: Command = {
  name: 'ledger',
  summary: 'Verify the relay’s whole ledger (signatures, chain, balances), or mint as an admin.',
  usage: 'verify [--json] | mint USER AMOUNT [--memo TEXT]',
  details:
    '`verify` fetches every entry and checks each signature and signer, the hash chain, that no\n' +
    'balance ever went below zero and that balances sum to mints, and the relay’s signed\n' +
    'checkpoint; it remembers the checkpoint ($SWITCHBOARD_HOME/ledger.json) and catches a relay\n' +
    'that rewrites or forks history on a later run. Exits 1 naming the first bad entry.',
  positionals: [1, 3],
  options: {
    memo: { type: 'string', value: 'TEXT', description: 'mint: a note' },
    json: { type: 'boolean', description: 'print JSON' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const [action, user, amountText] = inv.positionals;
    if (action === 'mint') {
      if (!user || !USERNAME_RE.test(user) || amountText === undefined)
        throw new UsageError('`switchboard ledger mint USER AMOUNT`');
      const amount = parseAmount(amountText);
      if (typeof amount === 'string') throw new UsageError(amount);
      return withSession(inv, async (session) => {
        const info = await session.client.request('ledger.info', {});
        const t = signTransfer(session.home.deviceKey(), {
          v: 1,
          kind: 'mint',
          ledger: info.ledger,
          id: randomBytes(16).toString('base64'),
          to: user,
          amount,
          memo: str(inv, 'memo') ?? '',
          at: new Date().toISOString(),
          by: session.me.user,
        });
        const r = await session.client.request('ledger.mint', { transfer: t });
        if (bool(inv, 'json')) json(inv.io.stdout, { ...r, to: user, amount });
        else inv.io.stdout.write(`minted ${amount} ${info.unit} to ${user} (entry ${r.seq})\n`);
        return Exit.OK;
      });
    }
    if (action !== 'verify' || user !== undefined)
      throw new UsageError('`switchboard ledger verify` or `switchboard ledger mint USER AMOUNT`');
    return withSession(inv, async (session) => {
      const { client, login } = session;
      const file = session.home.path(FILES.ledger);
      let saved: Record<string, SavedLedger> = {};
      try {
        saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, SavedLedger>;
      } catch {
        // first run
      }
      const info = await client.request('ledger.info', {});
      const mine = saved[login.server];
      if (mine && mine.key !== info.key)
        throw new SwitchboardError(
          ErrorCode.SIGNATURE_INVALID,
          `the relay's ledger key changed since you last verified (was ${mine.key}): its history cannot be trusted`,
        );
      const entries = await allEntries(client, 'ledger.entries');
      // Signers: every device the relay says the user registered (revoked too), and any pinned key.
      const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
      const keys = new Map<string, Set<string>>();
      for (const e of entries) {
        const b = JSON.parse(e.body) as TransferBody;
        const signer = b.kind === 'transfer' ? b.from : b.by;
        if (typeof signer !== 'string' || signer === '@relay' || keys.has(signer)) continue;
        // Revoked devices too: what one signed before its revocation stays valid.
        const listed = await client.request('ledger.signers', { user: signer }).then(
          (r) => r.keys.map((k) => k.publicKey),
          () => [],
        );
        keys.set(
          signer,
          new Set([...listed, ...knownPeers.list(login.server, signer).map((p) => p.publicKey)]),
        );
      }
      const r = verifyLedger(entries, {
        ledgerId: info.ledger,
        ledgerKey: Buffer.from(info.key, 'base64'),
        signerKnown: (u, k) => keys.get(u)?.has(k) ?? false,
        checkpoint: info.checkpoint,
        remembered: mine?.checkpoint,
      });
      if (r.ok) {
        const { ledger: id, count, head, at } = info.checkpoint;
        saved[login.server] = { key: info.key, checkpoint: { ledger: id, count, head, at } };
        writeFileAtomic(file, `${JSON.stringify(saved, null, 2)}\n`, 0o600);
      }
      if (bool(inv, 'json'))
        json(inv.io.stdout, {
          ok: r.ok,
          entries: r.entries,
          head: r.head,
          mints: r.mints,
          ...(r.problem ? { problem: r.problem } : {}),
        });
      else if (r.ok)
        inv.io.stdout.write(
          `ledger ${info.ledger} verified: ${r.entries} entries, every signature and the hash chain hold, no balance below zero, balances sum to mints (${r.mints} ${info.unit})\n`,
        );
      else inv.io.stderr.write(`switchboard ledger verify: FAILED at ${r.problem!.message}\n`);
      return r.ok ? Exit.OK : Exit.FAILURE;
    });
  },
};

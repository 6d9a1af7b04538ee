// The ledger (issue 12): entries appended in order, hash-chained (protocol/ledger.ts), never
// updated or deleted, and balances moved only together with the entry that moves them. Callers
// run `append` inside a store transaction after checking the payer's balance in it.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { guard } from './storage-error.js';

export interface LedgerEntryRow {
  seq: number;
  transferId: string;
  kind: 'transfer' | 'mint';
  payerId: number | null;
  payeeId: number;
  amount: number;
  body: string;
  sig: string;
  signerKey: string;
  hash: string;
  createdAt: number;
}

export interface LedgerRepo {
  /** The entry with this transfer id (the idempotency key), if settled. */
  byTransferId(id: string): Promise<LedgerEntryRow | undefined>;
  /** The last entry (its hash is the chain's head), or undefined for an empty ledger. */
  head(): Promise<LedgerEntryRow | undefined>;
  /** Entries after `after` (seq), oldest first, at most `limit`. */
  list(after: number, limit: number): Promise<LedgerEntryRow[]>;
  /** A user's entries (paid or received) after `after`, oldest first. */
  listFor(userId: number, after: number, limit: number): Promise<LedgerEntryRow[]>;
  count(): Promise<number>;
  balance(userId: number): Promise<number>;
  /**
   * Appends an entry and moves the balances: payer down, payee up. The caller checked the
   * payer's balance in the same transaction (the table's CHECK refuses a negative one anyway).
   */
  append(row: Omit<LedgerEntryRow, 'seq'>): Promise<LedgerEntryRow>;
  /** Sum of all balances and of all mints (the invariant: equal). */
  totals(): Promise<{ balances: number; mints: number }>;
}

type Row = Database['ledger_entries'] extends infer T ? { [K in keyof T]: unknown } : never;

function toRow(r: Row): LedgerEntryRow {
  return {
    seq: Number(r.seq),
    transferId: String(r.transfer_id),
    kind: r.kind as LedgerEntryRow['kind'],
    payerId: r.payer_id === null ? null : Number(r.payer_id),
    payeeId: Number(r.payee_id),
    amount: Number(r.amount),
    body: String(r.body),
    sig: String(r.sig),
    signerKey: String(r.signer_key),
    hash: String(r.hash),
    createdAt: Number(r.created_at),
  };
}

export class KyselyLedgerRepo implements LedgerRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  byTransferId(id: string): Promise<LedgerEntryRow | undefined> {
    return guard('ledger.byTransferId', async () => {
      const r = await this.#db
        .selectFrom('ledger_entries')
        .selectAll()
        .where('transfer_id', '=', id)
        .executeTakeFirst();
      return r ? toRow(r) : undefined;
    });
  }

  head(): Promise<LedgerEntryRow | undefined> {
    return guard('ledger.head', async () => {
      const r = await this.#db
        .selectFrom('ledger_entries')
        .selectAll()
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return r ? toRow(r) : undefined;
    });
  }

  list(after: number, limit: number): Promise<LedgerEntryRow[]> {
    return guard('ledger.list', async () => {
      const rows = await this.#db
        .selectFrom('ledger_entries')
        .selectAll()
        .where('seq', '>', after)
        .orderBy('seq')
        .limit(limit)
        .execute();
      return rows.map(toRow);
    });
  }

  listFor(userId: number, after: number, limit: number): Promise<LedgerEntryRow[]> {
    return guard('ledger.listFor', async () => {
      const rows = await this.#db
        .selectFrom('ledger_entries')
        .selectAll()
        .where('seq', '>', after)
        .where((eb) => eb.or([eb('payer_id', '=', userId), eb('payee_id', '=', userId)]))
        .orderBy('seq')
        .limit(limit)
        .execute();
      return rows.map(toRow);
    });
  }

  count(): Promise<number> {
    return guard('ledger.count', async () => {
      const r = await this.#db
        .selectFrom('ledger_entries')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      return Number(r.n);
    });
  }

  balance(userId: number): Promise<number> {
    return guard('ledger.balance', async () => {
      const r = await this.#db
        .selectFrom('ledger_balances')
        .select('balance')
        .where('user_id', '=', userId)
        .executeTakeFirst();
      return r ? Number(r.balance) : 0;
    });
  }

  append(row: Omit<LedgerEntryRow, 'seq'>): Promise<LedgerEntryRow> {
    return guard('ledger.append', async () => {
      const r = await this.#db
        .insertInto('ledger_entries')
        .values({
          transfer_id: row.transferId,
          kind: row.kind,
          payer_id: row.payerId,
          payee_id: row.payeeId,
          amount: row.amount,
          body: row.body,
          sig: row.sig,
          signer_key: row.signerKey,
          hash: row.hash,
          created_at: row.createdAt,
        })
        .returning('seq')
        .executeTakeFirstOrThrow();
      if (row.payerId !== null)
        await this.#db
          .updateTable('ledger_balances')
          .set((eb) => ({ balance: eb('balance', '-', row.amount) }))
          .where('user_id', '=', row.payerId)
          .execute();
      await this.#db
        .insertInto('ledger_balances')
        .values({ user_id: row.payeeId, balance: row.amount })
        .onConflict((oc) =>
          oc.column('user_id').doUpdateSet((eb) => ({
            balance: eb('ledger_balances.balance', '+', row.amount),
          })),
        )
        .execute();
      return { ...row, seq: Number(r.seq) };
    });
  }

  totals(): Promise<{ balances: number; mints: number }> {
    return guard('ledger.totals', async () => {
      const b = await this.#db
        .selectFrom('ledger_balances')
        .select((eb) => eb.fn.sum<number>('balance').as('s'))
        .executeTakeFirstOrThrow();
      const m = await this.#db
        .selectFrom('ledger_entries')
        .select((eb) => eb.fn.sum<number>('amount').as('s'))
        .where('kind', '=', 'mint')
        .executeTakeFirstOrThrow();
      return { balances: Number(b.s ?? 0), mints: Number(m.s ?? 0) };
    });
  }
}

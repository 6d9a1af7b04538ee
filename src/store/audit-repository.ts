// The relay's copy of audit logs: append in order, read the head, list what a user may see.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { guard } from './storage-error.js';

export interface AuditRow {
  log: string;
  seq: number;
  ownerId: number | null;
  session: string | null;
  actor: string | null;
  type: string;
  /** epoch ms */
  time: number;
  body: string;
  sig: string;
  signer: string;
}

export interface AuditFilter {
  /** Entries of logs this user owns, or where this user acted. */
  visibleTo: { userId: number; name: string };
  session?: string;
  actor?: string;
  since?: number;
  /** Continue after this (log, seq), in (log, seq) order. */
  after?: { log: string; seq: number };
  limit: number;
}

export interface AuditRepo {
  /** The log's last entry (seq and body), or undefined for an empty log. */
  head(log: string): Promise<{ seq: number; body: string } | undefined>;
  /** Inserts rows (one log, consecutive seqs). @throws StorageError CONFLICT if a seq is taken */
  append(rows: readonly AuditRow[]): Promise<void>;
  /** Ordered by log, then seq. */
  list(filter: AuditFilter): Promise<AuditRow[]>;
}

export class KyselyAuditRepo implements AuditRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  head(log: string): Promise<{ seq: number; body: string } | undefined> {
    return guard('audit.head', async () => {
      const row = await this.#db
        .selectFrom('audit_entries')
        .select(['seq', 'body'])
        .where('log', '=', log)
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row && { seq: Number(row.seq), body: row.body };
    });
  }

  append(rows: readonly AuditRow[]): Promise<void> {
    return guard('audit.append', async () => {
      if (rows.length === 0) return;
      await this.#db
        .insertInto('audit_entries')
        .values(
          rows.map((r) => ({
            log: r.log,
            seq: r.seq,
            owner_id: r.ownerId,
            session: r.session,
            actor: r.actor,
            type: r.type,
            time: r.time,
            body: r.body,
            sig: r.sig,
            signer: r.signer,
          })),
        )
        .execute();
    });
  }

  list(f: AuditFilter): Promise<AuditRow[]> {
    return guard('audit.list', async () => {
      let q = this.#db
        .selectFrom('audit_entries')
        .selectAll()
        .where((eb) =>
          eb.or([eb('owner_id', '=', f.visibleTo.userId), eb('actor', '=', f.visibleTo.name)]),
        );
      if (f.session !== undefined) q = q.where('session', '=', f.session);
      if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
      if (f.since !== undefined) q = q.where('time', '>=', f.since);
      const after = f.after;
      if (after)
        q = q.where((eb) =>
          eb.or([
            eb('log', '>', after.log),
            eb.and([eb('log', '=', after.log), eb('seq', '>', after.seq)]),
          ]),
        );
      const rows = await q.orderBy('log').orderBy('seq').limit(f.limit).execute();
      return rows.map((r) => ({
        log: r.log,
        seq: Number(r.seq),
        ownerId: r.owner_id,
        session: r.session,
        actor: r.actor,
        type: r.type,
        time: Number(r.time),
        body: r.body,
        sig: r.sig,
        signer: r.signer,
      }));
    });
  }
}

// Broadcasts (issue 11): signed by their sender, offered to every user until the window closes,
// each user acknowledging once (a delivery row), so nobody gets one twice.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { guard } from './storage-error.js';

export interface BroadcastRow {
  id: number;
  senderName: string;
  /** The signing device's raw public key, base64. */
  senderKey: string;
  /** The signed JSON, as sent. */
  body: string;
  sig: string;
  createdAt: number;
  expiresAt: number;
}

export interface BroadcastsRepo {
  add(row: Omit<BroadcastRow, 'id'>): Promise<BroadcastRow>;
  /** Unexpired broadcasts at `now` that `userId` has not acknowledged, oldest first. */
  pendingFor(userId: number, now: number, limit: number): Promise<BroadcastRow[]>;
  /** Records that `userId` has these; ids already recorded are skipped. */
  ack(userId: number, ids: readonly number[]): Promise<void>;
  /** The sender's broadcasts since `since`, for the rate limit. */
  countSince(senderName: string, since: number): Promise<number>;
  /** Housekeeping: deletes broadcasts (and their deliveries) expired before `now`. */
  deleteExpired(now: number): Promise<number>;
}

export class KyselyBroadcastsRepo implements BroadcastsRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  add(row: Omit<BroadcastRow, 'id'>): Promise<BroadcastRow> {
    return guard('broadcasts.add', async () => {
      const r = await this.#db
        .insertInto('broadcasts')
        .values({
          sender_name: row.senderName,
          sender_key: row.senderKey,
          body: row.body,
          sig: row.sig,
          created_at: row.createdAt,
          expires_at: row.expiresAt,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return { ...row, id: Number(r.id) };
    });
  }

  pendingFor(userId: number, now: number, limit: number): Promise<BroadcastRow[]> {
    return guard('broadcasts.pendingFor', async () => {
      const rows = await this.#db
        .selectFrom('broadcasts')
        .selectAll()
        .where('expires_at', '>', now)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('broadcast_deliveries')
                .select('broadcast_id')
                .whereRef('broadcast_deliveries.broadcast_id', '=', 'broadcasts.id')
                .where('broadcast_deliveries.user_id', '=', userId),
            ),
          ),
        )
        .orderBy('id')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        id: Number(r.id),
        senderName: r.sender_name,
        senderKey: r.sender_key,
        body: r.body,
        sig: r.sig,
        createdAt: Number(r.created_at),
        expiresAt: Number(r.expires_at),
      }));
    });
  }

  ack(userId: number, ids: readonly number[]): Promise<void> {
    return guard('broadcasts.ack', async () => {
      for (const id of ids)
        await this.#db
          .insertInto('broadcast_deliveries')
          .values({ broadcast_id: id, user_id: userId })
          .onConflict((oc) => oc.columns(['broadcast_id', 'user_id']).doNothing())
          .execute();
    });
  }

  countSince(senderName: string, since: number): Promise<number> {
    return guard('broadcasts.countSince', async () => {
      const r = await this.#db
        .selectFrom('broadcasts')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('sender_name', '=', senderName)
        .where('created_at', '>=', since)
        .executeTakeFirst();
      return Number(r?.n ?? 0);
    });
  }

  deleteExpired(now: number): Promise<number> {
    return guard('broadcasts.deleteExpired', async () => {
      const r = await this.#db
        .deleteFrom('broadcasts')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }
}

// Messages waiting for a device (messaging, issue 11): ciphertext only, deleted on acknowledgement
// or expiry. `seq` (the row id) orders a device's mailbox.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { guard } from './storage-error.js';

export interface MailboxRow {
  seq: number;
  deviceId: number;
  senderName: string;
  senderFingerprint: string;
  /** The sender's id for the message (the same for every device it went to): dedupe key. */
  messageId: string;
  /** Opaque to the relay: the sealed envelope, as the sender made it. */
  body: string;
  createdAt: number;
  expiresAt: number;
}

export interface MailboxRepo {
  /** Stores each row unless that device already has that message id; returns the new ones. */
  put(rows: ReadonlyArray<Omit<MailboxRow, 'seq'>>): Promise<MailboxRow[]>;
  /** The device's unexpired messages after `after`, oldest first. */
  list(deviceId: number, after: number, limit: number, now: number): Promise<MailboxRow[]>;
  /** Deletes the device's messages up to `upTo`; returns how many. */
  ack(deviceId: number, upTo: number): Promise<number>;
  /** Messages waiting for the device. */
  count(deviceId: number): Promise<number>;
  /** Housekeeping: deletes messages expired before `now`; returns how many. */
  deleteExpired(now: number): Promise<number>;
}

export class KyselyMailboxRepo implements MailboxRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  put(rows: ReadonlyArray<Omit<MailboxRow, 'seq'>>): Promise<MailboxRow[]> {
    return guard('mailbox.put', async () => {
      const added: MailboxRow[] = [];
      for (const r of rows) {
        const result = await this.#db
          .insertInto('mailbox')
          .values({
            device_id: r.deviceId,
            sender_name: r.senderName,
            sender_fingerprint: r.senderFingerprint,
            message_id: r.messageId,
            body: r.body,
            created_at: r.createdAt,
            expires_at: r.expiresAt,
          })
          .onConflict((oc) => oc.columns(['device_id', 'message_id']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (result) added.push({ ...r, seq: Number(result.id) });
      }
      return added;
    });
  }

  list(deviceId: number, after: number, limit: number, now: number): Promise<MailboxRow[]> {
    return guard('mailbox.list', async () => {
      const rows = await this.#db
        .selectFrom('mailbox')
        .selectAll()
        .where('device_id', '=', deviceId)
        .where('id', '>', after)
        .where('expires_at', '>', now)
        .orderBy('id')
        .limit(limit)
        .execute();
      return rows.map((r) => ({
        seq: Number(r.id),
        deviceId: r.device_id,
        senderName: r.sender_name,
        senderFingerprint: r.sender_fingerprint,
        messageId: r.message_id,
        body: r.body,
        createdAt: Number(r.created_at),
        expiresAt: Number(r.expires_at),
      }));
    });
  }

  ack(deviceId: number, upTo: number): Promise<number> {
    return guard('mailbox.ack', async () => {
      const result = await this.#db
        .deleteFrom('mailbox')
        .where('device_id', '=', deviceId)
        .where('id', '<=', upTo)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  count(deviceId: number): Promise<number> {
    return guard('mailbox.count', async () => {
      const row = await this.#db
        .selectFrom('mailbox')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('device_id', '=', deviceId)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    });
  }

  deleteExpired(now: number): Promise<number> {
    return guard('mailbox.deleteExpired', async () => {
      const result = await this.#db
        .deleteFrom('mailbox')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
}

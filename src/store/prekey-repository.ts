// Published prekey bundles: one per device, replaced only by a newer prekey (messaging, issue 11).
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { guard } from './storage-error.js';

export interface PrekeyRow {
  deviceId: number;
  prekeyId: number;
  /** epoch ms */
  expiresAt: number;
  /** The bundle as the device published it (JSON text; checked before it is stored). */
  bundle: string;
  publishedAt: number;
}

export interface PrekeysRepo {
  /**
   * Stores the device's bundle if it has none, or if `prekeyId` is above the stored one (one
   * conditional statement); false if a bundle with this id or a newer one is stored.
   */
  put(row: PrekeyRow): Promise<boolean>;
  /** The bundles of these devices that are unexpired at `now`. */
  forDevices(deviceIds: readonly number[], now: number): Promise<PrekeyRow[]>;
}

export class KyselyPrekeysRepo implements PrekeysRepo {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  put(row: PrekeyRow): Promise<boolean> {
    return guard('prekeys.put', async () => {
      const stored = await this.#db
        .insertInto('device_prekeys')
        .values({
          device_id: row.deviceId,
          prekey_id: row.prekeyId,
          expires_at: row.expiresAt,
          bundle: row.bundle,
          published_at: row.publishedAt,
        })
        .onConflict((oc) =>
          oc
            .column('device_id')
            .doUpdateSet((eb) => ({
              prekey_id: eb.ref('excluded.prekey_id'),
              expires_at: eb.ref('excluded.expires_at'),
              bundle: eb.ref('excluded.bundle'),
              published_at: eb.ref('excluded.published_at'),
            }))
            .whereRef('device_prekeys.prekey_id', '<', 'excluded.prekey_id'),
        )
        .returning('device_id')
        .executeTakeFirst();
      return stored !== undefined;
    });
  }

  forDevices(deviceIds: readonly number[], now: number): Promise<PrekeyRow[]> {
    return guard('prekeys.forDevices', async () => {
      if (deviceIds.length === 0) return [];
      const rows = await this.#db
        .selectFrom('device_prekeys')
        .selectAll()
        .where('device_id', 'in', [...deviceIds])
        .where('expires_at', '>', now)
        .execute();
      return rows.map((r) => ({
        deviceId: r.device_id,
        prekeyId: Number(r.prekey_id),
        expiresAt: Number(r.expires_at),
        bundle: r.bundle,
        publishedAt: Number(r.published_at),
      }));
    });
  }
}

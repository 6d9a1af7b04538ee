// Versioned schema migrations for SQLite and PostgreSQL, defined in code so they compile into dist.
import { Migrator, PostgresAdapter, sql } from 'kysely';
import type {
  ColumnDataType,
  ColumnDefinitionBuilder,
  Expression,
  Kysely,
  Migration,
  MigrationProvider,
} from 'kysely';
import { ErrorCode, StorageError } from '../protocol/errors.js';
import type { SqlDialect } from './repositories.js';

/** Which dialect `db` speaks, from its Kysely adapter. */
export function dialectOf(db: Kysely<unknown>): SqlDialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * The generated integer key. SQLite: `integer primary key autoincrement`, so a deleted row's id
 * is never handed out again. PostgreSQL has no AUTOINCREMENT; an identity column draws from a
 * sequence, which never hands out a value twice either.
 */
function id(db: Kysely<unknown>) {
  const postgres = dialectOf(db) === 'postgres';
  return (c: ColumnDefinitionBuilder): ColumnDefinitionBuilder =>
    postgres ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement();
}

/**
 * Text compared byte by byte. SQLite's default (BINARY) already is; a PostgreSQL database's
 * default collation follows its locale, where `a-c` sorts after `ab`, so paging by name would
 * order differently from SQLite and from JavaScript. `"C"` makes it the same everywhere.
 */
function bytewiseText(db: Kysely<unknown>): ColumnDataType | Expression<unknown> {
  return dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text';
}

// Migrations see the schema as it was when they were written, not today's `Database`, so
// they take an untyped Kysely. Names sort lexically: keep the zero-padded prefix.
// Never change what a migration that has shipped does on a dialect it shipped for; add a new
// one. store.test.ts pins the SQLite DDL of 0001 and 0002, and what 0003 adds, byte for byte.
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', 'integer', id(db))
        .addColumn('name', bytewiseText(db), (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('users_name_unique')
        .unique()
        .on('users')
        .column('name')
        .execute();

      // AUTOINCREMENT so a deleted device's or token's id is never handed out again while
      // something (a log line, a live connection) may still refer to it.
      await db.schema
        .createTable('devices')
        .addColumn('id', 'integer', id(db))
        .addColumn('user_id', 'integer', (c) =>
          c.notNull().references('users.id').onDelete('cascade'),
        )
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('devices_public_key_unique')
        .unique()
        .on('devices')
        .column('public_key')
        .execute();
      await db.schema.createIndex('devices_user_id').on('devices').column('user_id').execute();

      await db.schema
        .createTable('auth_tokens')
        .addColumn('id', 'integer', id(db))
        .addColumn('user_id', 'integer', (c) =>
          c.notNull().references('users.id').onDelete('cascade'),
        )
        .addColumn('device_id', 'integer', (c) =>
          c.notNull().references('devices.id').onDelete('cascade'),
        )
        .addColumn('token_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('auth_tokens_token_hash_unique')
        .unique()
        .on('auth_tokens')
        .column('token_hash')
        .execute();
      await db.schema
        .createIndex('auth_tokens_user_id')
        .on('auth_tokens')
        .column('user_id')
        .execute();

      await db.schema
        .createTable('remote_sessions')
        .addColumn('id', bytewiseText(db), (c) => c.primaryKey())
        .addColumn('owner_id', 'integer', (c) =>
          c.notNull().references('users.id').onDelete('cascade'),
        )
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('host_name', 'text', (c) => c.notNull())
        .addColumn('allow', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('viewers', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addCheckConstraint('remote_sessions_kind_check', sql`kind in ('share', 'agent')`)
        .addCheckConstraint(
          'remote_sessions_status_check',
          sql`status in ('live', 'offline', 'closed')`,
        )
        .execute();
      await db.schema
        .createIndex('remote_sessions_owner_id')
        .on('remote_sessions')
        .column('owner_id')
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['remote_sessions', 'auth_tokens', 'devices', 'users']) {
        await db.schema.dropTable(table).execute();
      }
    },
  },
  '0002_invites': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Only the SHA-256 of a code is stored; an invite outlives the admin who made it.
      await db.schema
        .createTable('invites')
        .addColumn('id', 'integer', id(db))
        .addColumn('code_hash', 'text', (c) => c.notNull())
        .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
        .addColumn('uses_left', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addCheckConstraint('invites_uses_left_check', sql`uses_left >= 0`)
        .execute();
      await db.schema
        .createIndex('invites_code_hash_unique')
        .unique()
        .on('invites')
        .column('code_hash')
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('invites').execute();
    },
  },
  '0003_session_leases': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Which relay process holds a live session, and until when (epoch ms): several relays
      // may share this database, so none may mark every live session offline when it starts.
      // Rows live before this migration have no lease, so they read as offline until their
      // host registers again (what marking them offline at start did).
      await db.schema.alterTable('remote_sessions').addColumn('relay_id', 'text').execute();
      await db.schema.alterTable('remote_sessions').addColumn('lease_until', 'bigint').execute();
      // Renewal and release select by relay.
      await db.schema
        .createIndex('remote_sessions_relay_id')
        .on('remote_sessions')
        .column('relay_id')
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('remote_sessions_relay_id').execute();
      await db.schema.alterTable('remote_sessions').dropColumn('lease_until').execute();
      await db.schema.alterTable('remote_sessions').dropColumn('relay_id').execute();
    },
  },
  '0004_device_revocation': {
    async up(db: Kysely<unknown>): Promise<void> {
      // A revoked device (`devices revoke`) may not log in or authenticate again.
      await db.schema.alterTable('devices').addColumn('revoked_at', 'bigint').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('devices').dropColumn('revoked_at').execute();
    },
  },
  '0005_session_tags': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The host's `--tag KEY=VALUE`s, as a JSON object (`sessions --tag` and, later, exec).
      await db.schema
        .alterTable('remote_sessions')
        .addColumn('tags', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('remote_sessions').dropColumn('tags').execute();
    },
  },
  '0006_session_operators': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The users an agent's --policy grants commands to: the relay routes their exec and push
      // channels (never the terminal), and the agent decides what they may run.
      await db.schema
        .alterTable('remote_sessions')
        .addColumn('operators', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('remote_sessions').dropColumn('operators').execute();
    },
  },
  '0007_audit_entries': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The relay's copy of every agent's signed, hash-chained audit log (and, later, its own):
      // append-only by design; `body` is the exact signed JSON, the other columns index it.
      await db.schema
        .createTable('audit_entries')
        .addColumn('id', 'integer', id(db))
        .addColumn('log', 'text', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        // An account's deletion must not erase the record (nor leave holes in the relay's chain).
        .addColumn('owner_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
        .addColumn('session', 'text')
        .addColumn('actor', 'text')
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('sig', 'text', (c) => c.notNull())
        .addColumn('signer', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('audit_entries_log_seq')
        .unique()
        .on('audit_entries')
        .columns(['log', 'seq'])
        .execute();
      await db.schema
        .createIndex('audit_entries_owner')
        .on('audit_entries')
        .column('owner_id')
        .execute();
      await db.schema
        .createIndex('audit_entries_actor')
        .on('audit_entries')
        .column('actor')
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('audit_entries').execute();
    },
  },
  '0008_device_prekeys': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Each device's current signed prekey bundle (messaging): public keys only, checked by the
      // relay before it is stored and again by every sender against the pinned device key.
      await db.schema
        .createTable('device_prekeys')
        .addColumn('device_id', 'integer', (c) =>
          c.primaryKey().references('devices.id').onDelete('cascade'),
        )
        .addColumn('prekey_id', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('bundle', 'text', (c) => c.notNull())
        .addColumn('published_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('device_prekeys').execute();
    },
  },
  '0009_mailbox': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Sealed messages waiting for a device, until it acknowledges them or they expire; the
      // relay never holds a key to them. One row per (device, message id): a retry stores nothing.
      await db.schema
        .createTable('mailbox')
        .addColumn('id', 'integer', id(db))
        .addColumn('device_id', 'integer', (c) =>
          c.notNull().references('devices.id').onDelete('cascade'),
        )
        .addColumn('sender_name', 'text', (c) => c.notNull())
        .addColumn('sender_fingerprint', 'text', (c) => c.notNull())
        .addColumn('message_id', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('mailbox_device_message')
        .unique()
        .on('mailbox')
        .columns(['device_id', 'message_id'])
        .execute();
      await db.schema.createIndex('mailbox_expires').on('mailbox').column('expires_at').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('mailbox').execute();
    },
  },
  '0010_broadcasts': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Broadcasts offered to every user until they expire, and who has acknowledged which: a
      // user gets each once, on whichever device, however often they reconnect.
      await db.schema
        .createTable('broadcasts')
        .addColumn('id', 'integer', id(db))
        .addColumn('sender_name', 'text', (c) => c.notNull())
        .addColumn('sender_key', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('sig', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('broadcast_deliveries')
        .addColumn('broadcast_id', 'integer', (c) =>
          c.notNull().references('broadcasts.id').onDelete('cascade'),
        )
        .addColumn('user_id', 'integer', (c) =>
          c.notNull().references('users.id').onDelete('cascade'),
        )
        .addPrimaryKeyConstraint('broadcast_deliveries_pk', ['broadcast_id', 'user_id'])
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('broadcast_deliveries').execute();
      await db.schema.dropTable('broadcasts').execute();
    },
  },
  '0011_ledger': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The ledger (issue 12): every transfer and mint, in order, hash-chained, never updated or
      // deleted; and each user's balance, kept in the same transaction as the entry that moves
      // it (never below zero: the CHECK is the last line behind the handler's own check).
      await db.schema
        .createTable('ledger_entries')
        .addColumn('seq', 'integer', id(db))
        .addColumn('transfer_id', 'text', (c) => c.notNull().unique())
        .addColumn('kind', 'text', (c) => c.notNull())
        // No foreign keys: the ledger outlives a deleted account (its entries are history that
        // anyone verifies; the signed bodies name the users), and so does its frozen balance.
        .addColumn('payer_id', 'integer')
        .addColumn('payee_id', 'integer', (c) => c.notNull())
        .addColumn('amount', 'bigint', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('sig', 'text', (c) => c.notNull())
        .addColumn('signer_key', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('ledger_entries_payer')
        .on('ledger_entries')
        .column('payer_id')
        .execute();
      await db.schema
        .createIndex('ledger_entries_payee')
        .on('ledger_entries')
        .column('payee_id')
        .execute();
      await db.schema
        .createTable('ledger_balances')
        .addColumn('user_id', 'integer', (c) => c.primaryKey())
        .addColumn('balance', 'bigint', (c) => c.notNull().check(sql`balance >= 0`))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('ledger_balances').execute();
      await db.schema.dropTable('ledger_entries').execute();
    },
  },
});

const provider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};

/**
 * Brings the schema up to the newest migration; already-applied ones are skipped (Kysely
 * records them in `kysely_migration`). Each migration runs in its own transaction.
 *
 * @returns the names of the migrations applied by this call, in order
 * @throws StorageError if a migration fails, or if the database was migrated by a newer
 *   Switchboard (it records migrations this build does not know)
 */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<string[]> {
  // On PostgreSQL the Migrator holds an advisory lock, so relays starting together take turns.
  const migrator = new Migrator({ db, provider });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    throw new StorageError(ErrorCode.STORAGE, 'storage: migration failed', { cause: error });
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

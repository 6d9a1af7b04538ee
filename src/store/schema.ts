// Table types of the Switchboard database as Kysely sees them; only store/ imports this file.
import type { Generated } from 'kysely';

// Every time column holds epoch milliseconds. They are 64-bit (`bigint` in the migrations)
// because epoch ms overflow a 32-bit integer; a PostgreSQL dialect must parse int8 as number.

/** One account. `name` is unique exactly as stored: callers normalise case before storing. */
export interface UsersTable {
  id: Generated<number>;
  name: string;
  password_hash: string;
  created_at: number;
}

/** An Ed25519 key a user logs in with; a key belongs to at most one user. */
export interface DevicesTable {
  id: Generated<number>;
  user_id: number;
  /** base64 of the raw 32-byte public key */
  public_key: string;
  fingerprint: string;
  name: string;
  created_at: number;
  last_seen_at: number | null;
  /** epoch ms; set when the device was revoked (`devices revoke`): it may not authenticate again */
  revoked_at: number | null;
}

/** A bearer token issued to a device; only its SHA-256 is stored. */
export interface AuthTokensTable {
  id: Generated<number>;
  user_id: number;
  device_id: number;
  /** lower-case hex SHA-256 of the token */
  token_hash: string;
  created_at: number;
  last_used_at: number;
  expires_at: number;
  revoked_at: number | null;
}

/** A terminal shared through the relay; `allow` and `viewers` are JSON arrays of strings. */
export interface RemoteSessionsTable {
  id: string;
  owner_id: number;
  kind: 'share' | 'agent';
  host_name: string;
  /** JSON text: string[] */
  allow: string;
  /** JSON text: string[] */
  viewers: string;
  created_at: number;
  last_seen_at: number;
  status: 'live' | 'offline' | 'closed';
  /** The relay process holding a live session; null when not live (migration 0003). */
  relay_id: string | null;
  /** epoch ms: a 'live' row is live only before this; null when not live (migration 0003). */
  lease_until: number | null;
  /** JSON text: Record<string, string>, the host's `--tag KEY=VALUE`s (migration 0005). */
  tags: string;
  /** JSON text: string[], the users the agent's --policy names (migration 0006). */
  operators: string;
}

/** A sign-up invite; only the SHA-256 of its code is stored. */
export interface InvitesTable {
  id: Generated<number>;
  /** lower-case hex SHA-256 of the code */
  code_hash: string;
  /** null once the admin who made it is deleted */
  created_by: number | null;
  uses_left: number;
  expires_at: number;
  created_at: number;
}

/** One audit entry as the relay keeps it (migration 0007); `body` is the signed JSON. */
export interface AuditEntriesTable {
  id: Generated<number>;
  log: string;
  seq: number;
  /** The agent's owner (who may list the log); null for the relay's own log. */
  owner_id: number | null;
  session: string | null;
  /** The user who acted (exec, attach...), if any. */
  actor: string | null;
  type: string;
  /** epoch ms, from the body */
  time: number;
  body: string;
  sig: string;
  /** The signer's raw public key, base64. */
  signer: string;
}

/** A device's published prekey bundle (migration 0008). */
export interface DevicePrekeysTable {
  device_id: number;
  prekey_id: number;
  /** epoch ms */
  expires_at: number;
  /** The bundle JSON as published. */
  bundle: string;
  published_at: number;
}

/** A sealed message waiting for a device (migration 0009). */
export interface MailboxTable {
  id: Generated<number>;
  device_id: number;
  sender_name: string;
  sender_fingerprint: string;
  message_id: string;
  body: string;
  created_at: number;
  expires_at: number;
}

/** A broadcast (migration 0010). */
export interface BroadcastsTable {
  id: Generated<number>;
  sender_name: string;
  sender_key: string;
  body: string;
  sig: string;
  created_at: number;
  expires_at: number;
}

/** Who has acknowledged which broadcast (migration 0010). */
export interface BroadcastDeliveriesTable {
  broadcast_id: number;
  user_id: number;
}

/** A ledger entry: a settled transfer or a mint (migration 0011). Never updated or deleted. */
export interface LedgerEntriesTable {
  seq: Generated<number>;
  transfer_id: string;
  kind: string;
  payer_id: number | null;
  payee_id: number;
  amount: number;
  body: string;
  sig: string;
  signer_key: string;
  hash: string;
  created_at: number;
}

/** A user's balance (migration 0011): changed only with the entry that moves it. */
export interface LedgerBalancesTable {
  user_id: number;
  balance: number;
}

export interface Database {
  users: UsersTable;
  devices: DevicesTable;
  auth_tokens: AuthTokensTable;
  remote_sessions: RemoteSessionsTable;
  invites: InvitesTable;
  audit_entries: AuditEntriesTable;
  device_prekeys: DevicePrekeysTable;
  mailbox: MailboxTable;
  broadcasts: BroadcastsTable;
  broadcast_deliveries: BroadcastDeliveriesTable;
  ledger_entries: LedgerEntriesTable;
  ledger_balances: LedgerBalancesTable;
}

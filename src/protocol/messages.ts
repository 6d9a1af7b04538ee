// The one message-types module: every control message on the wire, as zod schemas and TS types.
import { z } from 'zod';
import { TRANSFER_MAX_BODY_BYTES, type SignedCheckpoint } from './ledger.js';
import {
  BROADCAST_FETCH_MAX,
  LEDGER_PAGE_MAX,
  BROADCAST_MAX_BODY_BYTES,
  MESSAGE_FETCH_MAX,
  MESSAGE_MAX_BODY_BYTES,
  MESSAGE_MAX_ENVELOPES,
  AUDIT_APPEND_MAX_ENTRIES,
  AUDIT_LIST_MAX,
  AUDIT_MAX_BODY_BYTES,
  FANOUT_MAX_TARGETS,
  INVITE_MAX_LIFETIME_SEC,
  MAX_SERVICES_PER_SESSION,
  INVITE_MAX_USES,
  INVITE_PREFIX,
  MAX_CAPABILITIES,
  MAX_CAPABILITY_CHARS,
  USERS_PAGE_MAX,
  type Capability,
} from './limits.js';

/** A tag's key: a lower-case word (`env`, `role`, `dc.zone`). */
export const TAG_KEY_RE = /^[a-z][a-z0-9_.-]{0,31}$/;
/** A tag's value: no spaces or shell metacharacters, at most 64 characters. */
export const TAG_VALUE_RE = /^[A-Za-z0-9_.:/@+-]{0,64}$/;
/** Tags one session may carry. */
export const MAX_TAGS = 16;

/** Account names: lowercase, start with a letter, 2–32 chars. */
export const USERNAME_RE = /^[a-z][a-z0-9_-]{1,31}$/;
/** Remote session IDs: letters, digits and dashes, 3–64 chars. */
export const SESSION_ID_RE = /^[A-Za-z0-9-]{3,64}$/;

const username = z
  .string()
  .regex(USERNAME_RE, 'user names are 2-32 chars: a-z, 0-9, _ and -, starting with a letter');
const sessionId = z
  .string()
  .regex(SESSION_ID_RE, 'session IDs are 3-64 letters, digits and dashes');
const password = z.string().min(1).max(1024);
/** `agent:SESSION:FINGERPRINT` or `relay:FINGERPRINT` (protocol/audit.ts). */
const auditLog = z
  .string()
  .max(160)
  .regex(/^(agent:[A-Za-z0-9-]{3,64}|relay):SHA256:[A-Za-z0-9+/]{43}$/, 'an audit log name');
const b64 = z
  .string()
  .max(4096)
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/);
const channel = z.number().int().min(1).max(0xffffffff);
/** A service name: what a channel carries (`terminal`, `ping`; later `exec`, `chat`, ...). */
export const SERVICE_RE = /^[a-z][a-z0-9-]{1,31}$/;
const service = z.string().regex(SERVICE_RE, 'service names are 2-32 chars: a-z, 0-9 and -');
/** A device key's fingerprint as `keyFingerprint` prints it: "SHA256:" + 43 base64 chars. */
const signedTransfer = z.object({
  body: z.string().min(2).max(TRANSFER_MAX_BODY_BYTES),
  sig: z.string().max(128),
  key: z.string().max(64),
});
const fingerprint = z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'not a key fingerprint');
/** A session's tags (see TAG_KEY_RE, TAG_VALUE_RE, MAX_TAGS). */
const tags = z
  .record(z.string().regex(TAG_KEY_RE), z.string().regex(TAG_VALUE_RE))
  .refine((t) => Object.keys(t).length <= MAX_TAGS, `at most ${MAX_TAGS} tags`);
/**
 * Where a channel goes: a remote session (its host serves what it registered), a user (the
 * newest of their connections that offers the service) or one device of a user (its
 * connection that offers the service). Users and devices offer services with `services.offer`.
 */
export const ChannelTarget = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('session'), sessionId }),
  z.object({ kind: z.literal('user'), user: username }),
  z.object({ kind: z.literal('device'), user: username, fingerprint }),
]);
export type ChannelTarget = z.infer<typeof ChannelTarget>;

/**
 * The name a target goes by in routes, logs and the E2E prologue: the session ID, `user:NAME`
 * or `device:NAME:FINGERPRINT`. Session IDs contain no ':', so the forms never collide.
 */
export function targetKey(target: ChannelTarget): string {
  switch (target.kind) {
    case 'session':
      return target.sessionId;
    case 'user':
      return `user:${target.user}`;
    case 'device':
      return `device:${target.user}:${target.fingerprint}`;
  }
}
const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const userList = z.array(username).max(256);
/** An invite code as `invite.create` returns it: the prefix, then base64url. */
const inviteCode = z
  .string()
  .max(128)
  .regex(new RegExp(`^${INVITE_PREFIX}[A-Za-z0-9_-]{16,100}$`), 'not an invite code');

/** A device's public key as registered with the relay: raw 32-byte Ed25519 key, base64. */
export const DeviceInfo = z.object({ publicKey: b64, name: z.string().min(1).max(64) });

/** A capability name: lowercase words joined by dashes. Names a side does not know are ignored. */
const capabilityName = z
  .string()
  .regex(new RegExp(`^[a-z][a-z0-9-]{0,${MAX_CAPABILITY_CHARS - 1}}$`), 'not a capability name');

/**
 * Parameters of each request type; the relay answers each with `reply` or `error`. Keys a
 * schema does not name are dropped on decoding (a newer peer's optional fields), never acted on.
 */
export const RequestParams = {
  hello: z.object({
    /** The protocol version the client speaks (limits.ts PROTOCOL_VERSION). */
    version: z.number().int(),
    client: z.string().max(128),
    /** Capabilities the client supports (limits.ts CAPABILITIES); absent from older clients. */
    capabilities: z.array(capabilityName).max(MAX_CAPABILITIES).optional(),
  }),
  /** What anyone may know about the relay (also GET /v1/info). */
  info: z.object({}),
  'auth.signup': z.object({ user: username, password, invite: inviteCode.optional() }),
  'auth.login': z.object({
    user: username,
    password,
    device: DeviceInfo,
    /** Ed25519 signature by the device key over the hello challenge (crypto/login-proof.ts), base64. */
    deviceProof: b64.optional(),
  }),
  'auth.passwd': z.object({
    password,
    newPassword: password,
    /** Revoke every other login of the account (and close their connections). */
    revokeOthers: z.boolean().optional(),
  }),
  'account.delete': z.object({ password }),
  'invite.create': z.object({
    uses: z.number().int().min(1).max(INVITE_MAX_USES).optional(),
    expiresSec: z.number().int().min(60).max(INVITE_MAX_LIFETIME_SEC).optional(),
  }),
  'invite.list': z.object({}),
  'auth.token': z.object({ token: z.string().min(1).max(128) }),
  /** A registered device proves its key (no password, no token): agents that run for months. */
  'auth.device': z.object({
    user: username,
    publicKey: z.string().max(64),
    /** base64 Ed25519 signature over deviceAuthMessage(hello challenge, user, relay fingerprint) */
    proof: z.string().max(128),
  }),
  /** The account's devices; `revoke`: one of them, by fingerprint, and its live connections. */
  'devices.list': z.object({}),
  'devices.revoke': z.object({ fingerprint }),
  'auth.logout': z.object({ all: z.boolean().optional() }),
  whoami: z.object({}),
  'users.list': z.object({
    /** Everyone, page by page (by name); without it, the people one deals with and who is online. */
    all: z.boolean().optional(),
    /** With `all`: the `next` of the previous page. */
    after: username.optional(),
    limit: z.number().int().min(1).max(USERS_PAGE_MAX).optional(),
  }),
  'keys.get': z.object({ user: username }),
  /**
   * This device's signed prekey bundle (crypto/prekeys.ts), for senders of offline messages. The
   * relay checks it belongs to the caller's device and is signed, and keeps it only if its prekey
   * id is above the stored one.
   */
  'keys.publish': z.object({ bundle: z.record(z.unknown()) }),
  /** The published, unexpired bundles of a user's unrevoked devices. */
  'keys.bundles': z.object({ user: username }),
  /**
   * A sealed message for a user: one envelope per device (theirs, and the sender's other ones, so
   * history follows the sender), stored until each device acknowledges it. `messageId` is the
   * sender's (random, 16 bytes): the same id twice stores nothing new.
   */
  'message.send': z.object({
    to: username,
    messageId: z.string().regex(/^[A-Za-z0-9+/]{22}==$/, 'a 16-byte message id in base64'),
    envelopes: z
      .array(
        z.object({
          device: z.string().max(64),
          body: z.string().min(1).max(MESSAGE_MAX_BODY_BYTES),
        }),
      )
      .min(1)
      .max(MESSAGE_MAX_ENVELOPES),
  }),
  /** This device's waiting messages after `after`, oldest first. */
  'message.fetch': z.object({
    after: z.number().int().min(0).optional(),
    limit: z.number().int().min(1).max(MESSAGE_FETCH_MAX).optional(),
  }),
  /** This device has kept everything up to `upTo`: the relay deletes it. */
  'message.ack': z.object({ upTo: z.number().int().min(0) }),
  /**
   * A broadcast to every user: `body` is JSON {v: 1, id, from, sentAt, text}, `sig` the sending
   * device's Ed25519 signature over "switchboard-broadcast-v1" NUL body.
   */
  'broadcast.send': z.object({
    body: z.string().min(2).max(BROADCAST_MAX_BODY_BYTES),
    sig: b64,
  }),
  /** Broadcasts still in their window that this user has not acknowledged. */
  'broadcast.fetch': z.object({}),
  /** This user has these broadcasts: none is offered to them again. */
  'broadcast.ack': z.object({
    ids: z.array(z.number().int().min(1)).min(1).max(BROADCAST_FETCH_MAX),
  }),
  /** An agent's audit log: the relay's last entry of it (0 if none). */
  'audit.head': z.object({ log: auditLog }),
  /** An agent ships entries of its own log, in order, continuing from the relay's head. */
  'audit.append': z.object({
    log: auditLog,
    entries: z
      .array(
        z.object({
          body: z.string().min(2).max(AUDIT_MAX_BODY_BYTES),
          sig: b64,
        }),
      )
      .min(1)
      .max(AUDIT_APPEND_MAX_ENTRIES),
  }),
  /**
   * Audit entries the caller may see: of their own agents, and of their own actions elsewhere.
   * Ordered by log, then seq; `after` continues a listing.
   */
  /** The ledger's id, key, unit and a signed checkpoint of its head. */
  'ledger.info': z.object({}),
  /** A signed transfer (protocol/ledger.ts), submitted by its payer or (a cheque) its payee. */
  'ledger.pay': z.object({ transfer: signedTransfer }),
  /** An admin's signed mint (`serve --admin`). */
  'ledger.mint': z.object({ transfer: signedTransfer }),
  'ledger.balance': z.object({}),
  /** The caller's entries (paid or received) after `after`, oldest first. */
  'ledger.history': z.object({
    after: z.number().int().min(0).optional(),
    limit: z.number().int().min(1).max(LEDGER_PAGE_MAX).optional(),
  }),
  /**
   * Every device key `user` ever registered, revoked ones too: a transfer stays verifiable after
   * the device that signed it is revoked.
   */
  'ledger.signers': z.object({ user: username }),
  /** Every entry after `after`, oldest first: what `ledger verify` checks. */
  'ledger.entries': z.object({
    after: z.number().int().min(0).optional(),
    limit: z.number().int().min(1).max(LEDGER_PAGE_MAX).optional(),
  }),
  'audit.list': z.object({
    host: sessionId.optional(),
    user: username.optional(),
    /** Epoch ms: entries at or after. */
    since: z.number().int().min(0).optional(),
    after: z.object({ log: auditLog, seq: z.number().int().min(0) }).optional(),
    limit: z.number().int().min(1).max(AUDIT_LIST_MAX).optional(),
  }),
  'session.register': z.object({
    sessionId: sessionId.optional(),
    kind: z.enum(['share', 'agent']),
    /** Random per host process: lets a reconnecting host take its session back, and no one else. */
    instance: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
    hostName: z.string().min(1).max(255),
    allow: userList,
    viewers: userList,
    /** The services this host serves on channels into the session. Absent: `terminal` only. */
    services: z.array(service).min(1).max(MAX_SERVICES_PER_SESSION).optional(),
    /** The host's `--tag KEY=VALUE`s. */
    tags: tags.optional(),
    /** Users the agent's --policy grants commands to: routed to its exec and push, never its terminal. */
    operators: userList.optional(),
  }),
  /** A live host changes what it registered: an agent's reloaded --policy names other operators. */
  'session.update': z.object({ sessionId, operators: userList }),
  'session.unregister': z.object({ sessionId }),
  /** With `tags`: only sessions carrying every one (filtered before the reply's cap). */
  'sessions.list': z.object({ tags: tags.optional() }),
  /** Before services: `channel.open` of the terminal at a session, kept for older clients. */
  'session.attach': z.object({ sessionId, readOnly: z.boolean() }),
  /** The services this connection serves to channels aimed at its user or device (replaces any earlier offer). */
  'services.offer': z.object({ services: z.array(service).max(MAX_SERVICES_PER_SESSION) }),
  /** Opens a channel to a service at a target: the relay routes, the target's host serves. */
  'channel.open': z.object({
    service,
    target: ChannelTarget,
    /** Ask for less than one's access allows (a terminal watched, not typed into). */
    readOnly: z.boolean().optional(),
  }),
  /** One `channel.open` to many targets (an operator's command on a fleet), each answered apart. */
  'channel.fanout': z.object({
    service,
    targets: z.array(ChannelTarget).min(1).max(FANOUT_MAX_TARGETS),
    readOnly: z.boolean().optional(),
  }),
  'channel.close': z.object({
    channel,
    reason: z.string().max(256).optional(),
    /** Why, as an error code the other side can act on; forwarded as `channel.closed.code`. */
    code: z
      .string()
      .regex(/^[A-Z][A-Z_]{2,31}$/)
      .optional(),
  }),
} as const;

export type RequestType = keyof typeof RequestParams;
export type Params<T extends RequestType> = z.infer<(typeof RequestParams)[T]>;

export interface PeerInfo {
  user: string;
  /** Raw Ed25519 public key, base64. */
  publicKey: string;
  fingerprint: string;
  deviceName: string;
}

export interface DeviceSummary {
  name: string;
  fingerprint: string;
  createdAt: string;
  /** ISO time; null if it never authenticated */
  lastSeenAt: string | null;
  /** ISO time; null unless revoked */
  revokedAt: string | null;
  online: boolean;
  /** The device this request came from. */
  current: boolean;
}

export interface SessionSummary {
  sessionId: string;
  owner: string;
  kind: 'share' | 'agent';
  hostName: string;
  /** The host's `--tag KEY=VALUE`s. */
  tags: Record<string, string>;
  since: string;
  controllers: number;
  live: boolean;
}

/** A ledger entry as served: the signed transfer, its place and its chain hash. */
export interface LedgerEntryView {
  seq: number;
  body: string;
  sig: string;
  key: string;
  hash: string;
  settledAt: string;
}

/** A message waiting for this device, as `message.fetch` and the `message` event give it. */
export interface MailboxMessage {
  /** Its place in this device's mailbox: acknowledge up to it. */
  seq: number;
  from: string;
  fromDevice: string;
  id: string;
  body: string;
  sentAt: string;
}

/** A broadcast as users get it: verify `sig` with `key` (the sender's device) over the body. */
export interface BroadcastView {
  id: number;
  from: string;
  /** The signing device's raw public key, base64. */
  key: string;
  body: string;
  sig: string;
  sentAt: string;
}

/** One stored audit entry, with the key the relay checked its signature against. */
export interface AuditEntryView {
  log: string;
  seq: number;
  body: string;
  sig: string;
  /** The signer's raw Ed25519 public key, base64 (its fingerprint is the log name's last part). */
  key: string;
}

/** An invite as admins see it (never the code: only its hash is stored). */
export interface InviteSummary {
  id: number;
  createdBy: string | null;
  usesLeft: number;
  expiresAt: string;
  createdAt: string;
}

/** An open channel as its opener sees it: its number, and who serves it at the other end. */
export interface ChannelOpened {
  channel: number;
  service: string;
  /** The target as opened (sessions: the session ID the relay routed to). */
  target: ChannelTarget;
  /** The session's kind and host name (session targets only). */
  kind?: 'share' | 'agent';
  hostName?: string;
  /** The device at the other end: the E2E handshake must prove this key. */
  host: PeerInfo;
}

/**
 * The listener a connection came in on: the TLS port, or the plaintext one (`serve --plain-port`,
 * for a TLS-terminating proxy in front or a loopback benchmark).
 */
export type Transport = 'tls' | 'plain';

/** What the relay answers to each request type. */
export interface Results {
  hello: {
    /** The relay's own protocol version. */
    version: number;
    /** The capabilities both sides support: the client's offer that the relay supports too. */
    capabilities: Capability[];
    server: string;
    maxFrameBytes: number;
    heartbeatMs: number;
    /** 32 random bytes, base64, fresh per connection: what a device signs in `auth.login`. */
    challenge: string;
    /** Who may sign up: anyone, holders of an invite code, or nobody (`serve --signup`). */
    signup: 'open' | 'invite' | 'closed';
    /** The shortest password sign-up and passwd accept (absent from relays before it was sent). */
    minPassword?: number;
    /** The listener this connection came in on (absent from relays before plaintext listeners). */
    transport?: Transport;
    /**
     * Plaintext connections only: the relay's certificate fingerprint, stated because the client
     * sees no certificate. Unverifiable; device proofs bind it (see `deviceAuthBinding`).
     */
    fingerprint?: string;
  };
  info: { server: string; protocol: number; fingerprint: string };
  'auth.signup': { user: string };
  'auth.passwd': { revoked: number };
  'account.delete': { user: string };
  'invite.create': { code: string; uses: number; expiresAt: string };
  'invite.list': { invites: InviteSummary[] };
  'auth.login': { user: string; token: string; expiresAt: string; idleTimeoutSec: number };
  'auth.token': { user: string; device: PeerInfo; expiresAt: string };
  'auth.device': { user: string; device: PeerInfo; expiresAt: string };
  'devices.list': { devices: DeviceSummary[] };
  'devices.revoke': { revoked: boolean; closed: number };
  'auth.logout': { revoked: number };
  whoami: {
    user: string;
    device: PeerInfo;
    since: string;
    expiresAt: string;
    /** The address this relay sees the caller connect from (a direct-connection candidate). */
    address?: string;
  };
  'users.list': {
    users: Array<{ user: string; online: boolean; since: string; lastSeen: string | null }>;
    /** Only with `all`, when there are more: pass it as `after` for the next page. */
    next?: string;
  };
  'keys.get': { user: string; devices: PeerInfo[] };
  'keys.publish': { prekeyId: number; expiresAt: string };
  'keys.bundles': { user: string; devices: Array<PeerInfo & { bundle: unknown }> };
  'message.send': { messageId: string; stored: number };
  'message.fetch': { messages: MailboxMessage[]; more: boolean };
  'message.ack': { deleted: number };
  'broadcast.send': { id: number; expiresAt: string; online: number };
  'broadcast.fetch': { broadcasts: BroadcastView[] };
  'broadcast.ack': { acked: number };
  'ledger.info': { ledger: string; key: string; unit: string; checkpoint: SignedCheckpoint };
  'ledger.pay': { seq: number; id: string; duplicate: boolean; balance: number };
  'ledger.mint': { seq: number; id: string; duplicate: boolean };
  'ledger.balance': { balance: number; unit: string; ledger: string };
  'ledger.history': { entries: LedgerEntryView[]; more: boolean };
  'ledger.entries': { entries: LedgerEntryView[]; more: boolean };
  'ledger.signers': { user: string; keys: Array<{ publicKey: string; revoked: boolean }> };
  'audit.head': { seq: number; hash: string };
  'audit.append': { seq: number };
  'audit.list': {
    entries: AuditEntryView[];
    /** More entries follow: pass as `after`. */
    next?: { log: string; seq: number };
  };
  'session.register': { sessionId: string };
  'session.update': { sessionId: string };
  'session.unregister': { removed: boolean };
  /** `truncated`: there were more than SESSIONS_LIST_MAX; the first ones by age are listed. */
  'sessions.list': { sessions: SessionSummary[]; truncated?: boolean };
  'session.attach': {
    channel: number;
    sessionId: string;
    kind: 'share' | 'agent';
    hostName: string;
    host: PeerInfo;
  };
  'services.offer': { services: string[] };
  'channel.open': ChannelOpened;
  /** One entry per target, in the order asked: the channel, or why it could not open. */
  'channel.fanout': {
    results: Array<ChannelOpened | { error: { code: string; message: string } }>;
  };
  'channel.close': { closed: boolean };
}

/** A request as sent by a client. */
export type Request<T extends RequestType = RequestType> = { type: T; id: number } & Params<T>;

/** Messages the relay sends that are not replies: events. */
export const EventSchemas = {
  'channel.open': z.object({
    channel,
    /** Absent from relays older than services: `terminal`. */
    service: service.default('terminal'),
    /** Where the opener aimed (absent from older relays: the session `sessionId`). */
    target: ChannelTarget.optional(),
    /** Session targets: the session. */
    sessionId: sessionId.optional(),
    readOnly: z.boolean(),
    peer: z.object({
      user: username,
      publicKey: b64,
      fingerprint: z.string(),
      deviceName: z.string(),
    }),
  }),
  'channel.closed': z.object({ channel, code: z.string(), reason: z.string() }),
  shutdown: z.object({ reason: z.string() }),
  'session.revoked': z.object({ sessionId, code: z.string(), reason: z.string() }),
  /** A broadcast just sent, pushed to everyone online (acknowledge it as any other). */
  broadcast: z.object({
    id: z.number().int(),
    from: username,
    key: z.string(),
    body: z.string(),
    sig: z.string(),
    sentAt: z.string(),
  }),
  /** A transfer to this user just settled. */
  payment: z.object({
    seq: z.number().int(),
    id: z.string(),
    from: username,
    amount: z.number().int(),
    memo: z.string(),
  }),
  /** A message for this device, stored and now pushed (fetch and ack it as any other). */
  message: z.object({
    seq: z.number().int(),
    from: username,
    fromDevice: z.string(),
    id: z.string(),
    body: z.string(),
    sentAt: z.string(),
  }),
} as const;
export type EventType = keyof typeof EventSchemas;
export type EventOf<T extends EventType> = { type: T } & z.infer<(typeof EventSchemas)[T]>;
export type RelayEvent = { [K in EventType]: EventOf<K> }[EventType];

export interface ReplyMessage {
  type: 'reply';
  id: number;
  result: unknown;
}
export interface ErrorMessage {
  type: 'error';
  /** Absent when the error is not tied to a request (e.g. an undecodable frame). */
  id?: number;
  code: string;
  message: string;
  /** With THROTTLED: wait this long (ms) before trying again. */
  retryAfterMs?: number;
}
/** Everything the relay sends as JSON. */
export type ServerMessage = ReplyMessage | ErrorMessage | RelayEvent;

export const ServerEnvelope = z.discriminatedUnion('type', [
  z.object({ type: z.literal('reply'), id: requestId, result: z.unknown() }),
  z.object({
    type: z.literal('error'),
    id: requestId.optional(),
    code: z.string().max(64),
    message: z.string().max(1024),
    retryAfterMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  }),
  ...(Object.entries(EventSchemas).map(([type, schema]) =>
    schema.extend({ type: z.literal(type) }),
  ) as unknown as [z.ZodObject<{ type: z.ZodLiteral<string> }>]),
]);

export const RequestEnvelope = z.object({ type: z.string().max(64), id: requestId }).passthrough();

export function isRequestType(type: string): type is RequestType {
  return Object.prototype.hasOwnProperty.call(RequestParams, type);
}

// Protocol version and every wire limit, with units. docs/protocol.md lists the same values.

/** The WebSocket endpoint on the relay's port. */
export const WS_PATH = '/v1/ws';

/**
 * Wire protocol (major) version: what the relay answers in `hello`, and the newest a client may
 * send. A change that an older peer cannot ignore bumps it; anything else is a capability.
 */
export const PROTOCOL_VERSION = 1;
/** The oldest protocol version the relay still speaks; `hello` refuses older ones. */
export const MIN_PROTOCOL_VERSION = 1;
/**
 * Optional features negotiated in `hello` (docs/protocol.md, "Capabilities"): a client offers
 * the ones it supports, the relay answers with those it supports too, in this order. Names it
 * does not know are ignored, so neighbouring versions still meet.
 */
export const CAPABILITIES = [
  /** `hello` carries `challenge`; `auth.login` takes `deviceProof`. */
  'device-proof',
  /** Sign-up modes (`hello.signup`), `invite.create`, `invite.list`, `auth.signup.invite`. */
  'invites',
  /** `users.list` with `all`, `after`, `limit` and `next`. */
  'users-paging',
  /**
   * Services over channels: `channel.open`, `channel.fanout`, `services.offer`, and the E2E
   * layer they imply (prologue v2, records with sequence numbers). The relay joins an opener and
   * a host only if both or neither have it: their handshakes could not meet otherwise.
   */
  'services',
] as const;
export type Capability = (typeof CAPABILITIES)[number];
/** Most capability names one `hello` may carry, and the longest name. */
export const MAX_CAPABILITIES = 64;
export const MAX_CAPABILITY_CHARS = 32; // characters

/** Largest WebSocket message the relay will accept and answer with an error. */
export const MAX_FRAME_BYTES = 256 * 1024; // bytes
/** Above this the WebSocket layer closes the connection (1009) without reading the message. */
export const HARD_MAX_FRAME_BYTES = 4 * 1024 * 1024; // bytes
/** Time a new TLS connection has to finish the TLS handshake and the WebSocket upgrade. */
export const HANDSHAKE_TIMEOUT_MS = 10_000; // ms
/** Time after the WebSocket upgrade in which `hello` must arrive. */
export const HELLO_TIMEOUT_MS = 10_000; // ms
/** A connection that has not logged in this long after connecting is closed. */
export const IDLE_UNAUTHENTICATED_MS = 60_000; // ms
/** Interval between WebSocket pings; a peer missing two pongs is dropped (dead within 30 s). */
export const HEARTBEAT_INTERVAL_MS = 15_000; // ms
/** Protocol errors tolerated per connection within ERROR_WINDOW_MS before it is closed. */
export const MAX_PROTOCOL_ERRORS = 10;
export const ERROR_WINDOW_MS = 60_000; // ms
/** Control messages per second (sustained) and burst, per connection. */
export const CONTROL_RATE_PER_SEC = 50;
export const CONTROL_BURST = 200;
/**
 * Logical channels one connection may hold open at once. Sized for fan-out: an operator's
 * command on a fleet holds one channel per agent (the relay keeps a few hundred bytes each).
 */
export const MAX_CHANNELS_PER_CONNECTION = 1024;
/** Targets one `channel.fanout` may name. */
export const FANOUT_MAX_TARGETS = 256;
/**
 * Targets one control-rate token pays for in `channel.fanout` (the request itself costs one):
 * 256 targets cost 1 + 32 tokens, so one connection opens at most ~400 channels a second.
 */
export const FANOUT_TARGETS_PER_TOKEN = 8;
/** Services one remote session, or one connection (`services.offer`), may serve. */
export const MAX_SERVICES_PER_SESSION = 16;
/** Bytes queued toward one connection before the relay drops the channel feeding it. */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024; // bytes
/**
 * Hard cap on bytes queued toward one connection (replies, events, data together). A peer past it
 * is not reading at all: the relay cuts the connection and frees what it held.
 */
export const HARD_MAX_QUEUED_BYTES = 2 * MAX_QUEUED_BYTES; // bytes
/**
 * A connection whose channel was closed with SLOW_PEER must drain its queue below
 * MAX_QUEUED_BYTES within this time, or it is cut (its queued bytes would otherwise stay held).
 */
export const SLOW_PEER_GRACE_MS = 5_000; // ms
/** After the relay closes a WebSocket, the peer has this long to finish the close handshake. */
export const CLOSE_TIMEOUT_MS = 2_000; // ms
/** TCP connections (TLS handshake, HTTP, WebSocket) one source address may hold at once. */
export const MAX_CONNECTIONS_PER_ADDRESS = 256;
/** TCP connections the relay holds at once (lowered to fit the process's descriptor limit). */
export const MAX_CONNECTIONS = 10_000;
/**
 * When the relay is at MAX_CONNECTIONS, a new connection evicts the oldest one still in its TLS
 * handshake if that one has been at it this long: half-open floods cannot keep real clients
 * out, and a real handshake (milliseconds) is never the one evicted.
 */
export const HANDSHAKE_EVICTION_AGE_MS = 1_000; // ms
/** Descriptors kept free for the database, logs and the certificate when sizing MAX_CONNECTIONS. */
export const RESERVED_DESCRIPTORS = 64;
/** Live WebSocket connections one account may hold (every CLI, share, agent and attach). */
export const MAX_CONNECTIONS_PER_ACCOUNT = 100;
/** Device keys one account may have registered (each login from a new key registers one). */
export const MAX_DEVICES_PER_ACCOUNT = 100;
/** Most sessions one `sessions.list` reply carries (the client's frame limit must never be reached). */
export const SESSIONS_LIST_MAX = 1000;
/** Live remote sessions one account may host at once. */
export const MAX_LIVE_SESSIONS_PER_ACCOUNT = 50;
/** Session IDs one account may hold registered (live or offline, not closed). */
export const MAX_REGISTERED_SESSIONS_PER_ACCOUNT = 100;
/** An offline session's ID stays reserved for its owner this long, then anyone may take it. */
export const SESSION_RESERVE_MS = 72 * 3600_000; // ms
/**
 * A live session is held by one relay process under a lease: the relay renews the leases of the
 * sessions it hosts every SESSION_LEASE_RENEW_MS, in one UPDATE, and a session whose lease is
 * SESSION_LEASE_MS old without a renewal reads as offline everywhere (its relay crashed or lost
 * the database). Three renewals fit in a lease, so one slow or failed renewal loses nothing.
 */
export const SESSION_LEASE_MS = 30_000; // ms
export const SESSION_LEASE_RENEW_MS = 10_000; // ms
/** Requests a client may have in flight; further ones fail fast. */
export const MAX_PENDING_REQUESTS = 256;
/** Default time a client waits for a reply. */
export const REQUEST_TIMEOUT_MS = 30_000; // ms

/** `users.list` page size: the default, and the most a client may ask for. */
export const USERS_PAGE_DEFAULT = 100; // users
export const USERS_PAGE_MAX = 200; // users
/** Random bytes in the `challenge` of the `hello` reply (signed by a device in `auth.login`). */
export const LOGIN_CHALLENGE_BYTES = 32; // bytes
/** Domain separation of the device proof in `auth.login` (see crypto/login-proof.ts). */
export const LOGIN_PROOF_CONTEXT = 'switchboard-login-v1';
/** Context string of a device's proof in `auth.device` (see crypto/login-proof.ts). */
export const DEVICE_AUTH_CONTEXT = 'switchboard-device-auth-v1';
/** Invite codes: prefix and random bytes (base64url after the prefix). */
export const INVITE_PREFIX = 'sbi_';
export const INVITE_CODE_BYTES = 24; // bytes
/** Bounds of `invite.create`: uses per code and lifetime. */
export const INVITE_MAX_USES = 1000;
export const INVITE_MAX_LIFETIME_SEC = 365 * 24 * 3600; // s
export const INVITE_DEFAULT_LIFETIME_SEC = 7 * 24 * 3600; // s

/** Largest body of one audit entry (argv included); a longer argv is cut, its SHA-256 kept. */
export const AUDIT_MAX_BODY_BYTES = 16 * 1024; // bytes
/** Entries one `audit.append` carries. */
export const AUDIT_APPEND_MAX_ENTRIES = 100;
/** Entries one `audit.list` answers with at most (the reply says where to go on). */
export const AUDIT_LIST_MAX = 1000;
/** Bytes of entries one `audit.list` answers with at most (clients drop messages past 1 MiB). */
export const AUDIT_LIST_MAX_BYTES = 512 * 1024; // bytes

/** Largest sealed envelope of one message for one device (base64 text). */
export const MESSAGE_MAX_BODY_BYTES = 96 * 1024; // bytes
/** Envelopes one `message.send` carries: the recipient's devices and the sender's other ones. */
export const MESSAGE_MAX_ENVELOPES = 200;
/** Messages waiting for one device; past it `message.send` is refused with MAILBOX_FULL. */
export const MAILBOX_MAX_PENDING = 10_000;
/** How long a message waits for a device before the relay drops it. */
export const MESSAGE_TTL_MS = 30 * 86_400_000; // ms
/** Messages one `message.fetch` returns at most. */
export const MESSAGE_FETCH_MAX = 500;

/** Largest signed broadcast body (its JSON, text included). */
export const BROADCAST_MAX_BODY_BYTES = 8 * 1024; // bytes
/** Broadcasts one user may send per hour. */
export const BROADCAST_PER_HOUR = 10;
/** How long a broadcast reaches users who come online (`serve --broadcast-window`). */
export const BROADCAST_WINDOW_MS = 30 * 60_000; // ms
/** Broadcasts one `broadcast.fetch` returns at most. */
export const BROADCAST_FETCH_MAX = 100;
/** What a broadcast's signature covers besides its body. */
export const BROADCAST_SIGNATURE_CONTEXT = 'switchboard-broadcast-v1';

/** Most ledger entries in one `ledger.history` or `ledger.entries` page. */
export const LEDGER_PAGE_MAX = 500;

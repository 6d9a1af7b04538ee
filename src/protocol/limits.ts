// Protocol version and every wire limit, with units. docs/protocol.md lists the same values.

/** The WebSocket endpoint on the relay's port. */
export const WS_PATH = '/v1/ws';

/** Wire protocol version; a client must send it in `hello`. */
export const PROTOCOL_VERSION = 1;

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
/** Logical channels one connection may hold open at once. */
export const MAX_CHANNELS_PER_CONNECTION = 64;
/** Bytes queued toward one connection before the relay drops the channel feeding it. */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024; // bytes
/** Requests a client may have in flight; further ones fail fast. */
export const MAX_PENDING_REQUESTS = 256;
/** Default time a client waits for a reply. */
export const REQUEST_TIMEOUT_MS = 30_000; // ms

// The host's timeouts, in one place (host-session.ts and the services both use them).

/** How long the host waits for the person at the terminal to approve an attach (share). */
export const APPROVAL_TIMEOUT_MS = 60_000; // ms
/** Time a channel has to finish the E2E handshake, and then the terminal's hello. */
export const PEER_SETUP_TIMEOUT_MS = 15_000; // ms

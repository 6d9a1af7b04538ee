// The opener's side of any service: ask the relay for a channel, then the E2E handshake on it.
import { channelPrologue, connectE2E, type SecureDuplex } from '../channel/e2e.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import type { ChannelOpened } from '../protocol/messages.js';
import type { KnownPeers } from './known-peers.js';
import { RelayChannel } from './relay-channel.js';
import type { RelayClient } from './relay-client.js';

/** How long the host has to answer the handshake before the opener gives up. */
export const OPEN_HANDSHAKE_TIMEOUT_MS = 30_000; // ms

export interface OpenServiceOptions {
  service: string;
  sessionId: string;
  /** Ask only to watch (services that distinguish it, like the terminal). */
  readOnly?: boolean;
  /** My account name (as the relay knows it): part of the handshake's prologue. */
  user: string;
  key: DeviceKeyPair;
  /** The relay's address: the key of the peer pins. */
  server: string;
  knownPeers: KnownPeers;
  timeoutMs?: number;
}

export interface OpenedService {
  channel: SecureDuplex;
  opened: ChannelOpened;
}

/**
 * Opens `service` on a session and completes the E2E handshake: the host must prove the key
 * the relay announced, and that key must match our pin. Rejects with the relay's or the
 * host's code (SESSION_OFFLINE, SERVICE_UNAVAILABLE, NOT_ALLOWED, PEER_KEY_CHANGED...).
 */
export async function openService(
  client: RelayClient,
  o: OpenServiceOptions,
): Promise<OpenedService> {
  const opened = await client.request('channel.open', {
    service: o.service,
    target: { kind: 'session', sessionId: o.sessionId },
    ...(o.readOnly ? { readOnly: true } : {}),
  });
  const transport = new RelayChannel(client, opened.channel);
  if (opened.target.sessionId !== o.sessionId || opened.service !== o.service) {
    await transport.close('wrong target');
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `the relay opened "${opened.service}" on "${opened.target.sessionId}", not "${o.service}" on "${o.sessionId}"`,
    );
  }
  const channel = await connectE2E(transport, {
    key: o.key,
    prologue: channelPrologue(o.service, o.sessionId, opened.host.user, o.user),
    expected: opened.host,
    verifyPin: (user, publicKey) => o.knownPeers.verify(o.server, user, publicKey),
    timeoutMs: o.timeoutMs ?? OPEN_HANDSHAKE_TIMEOUT_MS,
  });
  return { channel, opened };
}

// The opener's side of any service: ask the relay for a channel, then the E2E handshake on it.
import { channelPrologue, connectE2E, type SecureDuplex } from '../channel/e2e.js';
import type { AsyncDeviceSigner } from '../crypto/handshake.js';
import type { DeviceSigner } from '../crypto/prekeys.js';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { targetKey, type ChannelOpened, type ChannelTarget } from '../protocol/messages.js';
import type { NewDevicePolicy, PeerPins, PinCheck } from './peer-pins.js';
import { RelayChannel } from './relay-channel.js';
import type { RelayConnection } from './relay-connection.js';

/** How long the host has to answer the handshake before the opener gives up. */
export const OPEN_HANDSHAKE_TIMEOUT_MS = 30_000; // ms

export interface OpenServiceOptions {
  service: string;
  /** A session, a user or one of a user's devices (`ChannelTarget`). */
  target: ChannelTarget;
  /** Ask only to watch (services that distinguish it, like the terminal). */
  readOnly?: boolean;
  /** My account name (as the relay knows it): part of the handshake's prologue. */
  user: string;
  /** This device's key (the page's WebCrypto key signs asynchronously). */
  key: DeviceSigner | AsyncDeviceSigner;
  /** The relay's address: the key of the peer pins. */
  server: string;
  knownPeers: PeerPins;
  /** A device of the host's user not pinned yet, under a new name: default pin it (TOFU per device). */
  newDevice?: NewDevicePolicy;
  timeoutMs?: number;
}

export interface OpenedService {
  channel: SecureDuplex;
  opened: ChannelOpened;
  /** How the host's key stood against the pins ('new-device': pinned now, worth a notice). */
  pin: PinCheck;
}

/**
 * Opens `service` at a target and completes the E2E handshake: the host must prove the key
 * the relay announced, and that key must match our pin. Rejects with the relay's or the
 * host's code (SESSION_OFFLINE, SERVICE_UNAVAILABLE, NOT_ALLOWED, PEER_KEY_CHANGED...).
 */
export async function openService(
  client: RelayConnection,
  o: OpenServiceOptions,
): Promise<OpenedService> {
  const opened = await client.request('channel.open', {
    service: o.service,
    target: o.target,
    ...(o.readOnly ? { readOnly: true } : {}),
  });
  return secureOpened(client, opened, o);
}

/**
 * The E2E handshake on a channel the relay opened (`channel.open`, or one result of
 * `channel.fanout`): checks it is the target and service asked for, then as `openService`.
 */
export async function secureOpened(
  client: RelayConnection,
  opened: ChannelOpened,
  o: OpenServiceOptions,
): Promise<OpenedService> {
  const transport = new RelayChannel(client, opened.channel);
  const asked = targetKey(o.target);
  const got = targetKey(opened.target);
  if (got !== asked || opened.service !== o.service) {
    await transport.close('wrong target');
    throw new CryptoError(
      ErrorCode.HANDSHAKE_FAILED,
      `the relay opened "${opened.service}" at "${got}", not "${o.service}" at "${asked}"`,
    );
  }
  // A key that is not pinned for a user who has pins: another device of theirs only if the
  // directory lists it next to a pinned one (asked before the handshake, which we start).
  const listed = await listedIfUnpinned(client, o.knownPeers, o.server, opened.host);
  let pin: PinCheck = 'pinned';
  const channel = await connectE2E(transport, {
    key: o.key,
    // Our own idea of the target and service, never the relay's.
    prologue: channelPrologue(o.service, asked, opened.host.user, o.user),
    expected: opened.host,
    verifyPin: (peer) => {
      pin = o.knownPeers.verify(o.server, peer, o.newDevice ?? 'pin', listed);
    },
    timeoutMs: o.timeoutMs ?? OPEN_HANDSHAKE_TIMEOUT_MS,
  });
  return { channel, opened, pin };
}

/** How long one directory answer serves further channels to the same user (a fleet's handshakes). */
export const DIRECTORY_MEMO_MS = 10_000; // ms

const directoryMemo = new WeakMap<
  RelayConnection,
  Map<string, { at: number; keys: Promise<string[] | undefined> }>
>();

/**
 * The keys the relay's directory lists for `peer.user`, fetched whenever `peer`'s key is not
 * pinned yet: to tell another device of theirs from a replaced key. That includes first
 * contact: channels opened in parallel (a fan-out to a user's agents on several machines) pin
 * one device while the others are still in their handshake, and each of those then needs the
 * list. One answer per user and connection serves for DIRECTORY_MEMO_MS. Undefined if the key is
 * pinned, or the directory cannot be asked (the key then counts as changed).
 */
export async function listedIfUnpinned(
  client: RelayConnection,
  knownPeers: PeerPins,
  server: string,
  peer: { user: string; publicKey: string },
): Promise<string[] | undefined> {
  if (knownPeers.check(server, peer.user, peer.publicKey) === 'pinned') return undefined;
  let memo = directoryMemo.get(client);
  if (!memo) directoryMemo.set(client, (memo = new Map()));
  const now = Date.now();
  const hit = memo.get(peer.user);
  // A recent answer that lists this key serves; one that does not is asked again (the key may
  // be a device registered since).
  if (hit && now - hit.at < DIRECTORY_MEMO_MS) {
    const keys = await hit.keys;
    if (keys?.includes(peer.publicKey)) return keys;
  }
  const keys = client.request('keys.get', { user: peer.user }).then(
    (r) => r.devices.map((d) => d.publicKey),
    () => undefined,
  );
  memo.set(peer.user, { at: now, keys });
  return keys;
}

// The served side of any channel: the E2E handshake, then the service the channel names.
import { acceptE2E, channelPrologue } from '../channel/e2e.js';
import type { ChannelHandlers, ChannelTransport } from '../channel/transport.js';
import { listedIfUnpinned } from '../client/open-channel.js';
import type { KnownPeers, NewDevicePolicy, PinCheck } from '../client/known-peers.js';
import { RelayChannel } from '../client/relay-channel.js';
import type { RelayClient } from '../client/relay-client.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import type { EventOf, PeerInfo } from '../protocol/messages.js';
import type { AccessDecision } from './access.js';
import type { HostSession } from './host-session.js';
import type { HostService } from './services/service.js';
import { PEER_SETUP_TIMEOUT_MS } from './timeouts.js';

export interface AcceptOptions {
  key: DeviceKeyPair;
  /** The relay's address (key of the peer pins). */
  server: string;
  knownPeers: KnownPeers;
  /**
   * A device of a pinned user that is not pinned yet: pin it (and say so), leave it to the
   * service ('defer': a share asks its host), or refuse it (--strict-keys). Default 'pin'.
   */
  newDevice?: NewDevicePolicy;
  /** Our account name: the host side of the prologue. */
  owner: string;
  services: ReadonlyMap<string, HostService>;
  /** Our own access decision for the peer; the relay's grant is never enough. */
  access(peer: PeerInfo, readOnly: boolean): AccessDecision;
  /** The session the channel came through, for services that need it (the terminal). */
  host?: HostSession;
  /** Whether we stopped serving while the handshake ran. */
  stopped(): boolean;
  /** A line for the person at this end (refusals). */
  notice(text: string): void;
}

/**
 * Takes one `channel.open` aimed at `target` (its `targetKey`): refuses a service we do not
 * serve, runs the E2E handshake (the peer must prove the key the relay announced, and match our
 * pin), then hands the sealed channel to the service.
 */
export function acceptChannel(
  client: RelayClient,
  event: EventOf<'channel.open'>,
  target: string,
  o: AcceptOptions,
): void {
  const transport = new RelayChannel(client, event.channel);
  const service = o.services.get(event.service);
  if (!service) {
    void transport.close(
      `this end does not serve "${event.service}"`,
      ErrorCode.SERVICE_UNAVAILABLE,
    );
    return;
  }
  const peer = event.peer;
  const newDevice = o.newDevice ?? 'pin';
  let pin: PinCheck = 'pinned';
  // The controller's first handshake message may come while the directory is asked (below):
  // held until the handshake takes the channel.
  const held = new HeldTransport(transport);
  void listedIfUnpinned(client, o.knownPeers, o.server, peer).then((listed) =>
    acceptE2E(held, {
      key: o.key,
      prologue: channelPrologue(event.service, target, o.owner, peer.user),
      expected: peer,
      verifyPin: (proven) => {
        pin = o.knownPeers.verify(o.server, proven, newDevice, listed);
      },
      timeoutMs: PEER_SETUP_TIMEOUT_MS,
    }).then(
      (channel) => {
        if (o.stopped()) return void channel.close('no longer served');
        if (pin === 'new-device' && newDevice === 'pin')
          o.notice(
            `${peer.user} connects from a new device "${peer.deviceName}" (${peer.fingerprint}): ` +
              'pinned (--strict-keys refuses new devices)',
          );
        const access = o.access(peer, event.readOnly);
        // Refused here, for every service: a relay that routes anyone at all gets no further.
        if (access === 'deny' && !service.decidesAccess) {
          o.host?.emit('audit', {
            type: 'refusal',
            user: peer.user,
            fingerprint: peer.fingerprint,
            service: event.service,
            code: ErrorCode.NOT_ALLOWED,
            message: 'not allowed here',
          });
          o.notice(`refused ${peer.user} (${peer.fingerprint}): not allowed here`);
          return void channel.close(`${peer.user} is not allowed here`, ErrorCode.NOT_ALLOWED);
        }
        service.serve({
          ...(o.host ? { host: o.host } : {}),
          channel,
          peer,
          readOnly: event.readOnly,
          access,
          newDevice: pin === 'new-device' && newDevice === 'defer',
        });
      },
      (err: unknown) => {
        // Closed before the handshake finished (the opener gave up): nothing to report.
        if (err instanceof SwitchboardError && transport.closed && !isHandshakeError(err)) return;
        const message = err instanceof SwitchboardError ? err.message : 'internal error';
        o.notice(`refused ${peer.user} (${peer.fingerprint}): ${message.split('\n')[0]}`);
        if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED)
          o.notice(message);
      },
    ),
  );
}

/** Messages a channel may hold while the host asks the directory: a handshake's first few. */
export const HELD_MESSAGES_MAX = 8;

/**
 * A transport that takes its channel's messages (and close) at once and holds them until
 * `setHandlers`: the relay channel drops data nobody handles yet. Holds at most
 * HELD_MESSAGES_MAX messages; a peer that sends more before the handshake is cut off.
 */
export class HeldTransport implements ChannelTransport {
  readonly #inner: ChannelTransport;
  #handlers: ChannelHandlers | undefined;
  readonly #held: Uint8Array[] = [];
  #close: { code: string; reason: string } | undefined;

  constructor(inner: ChannelTransport) {
    this.#inner = inner;
    inner.setHandlers({
      onMessage: (payload) => {
        if (this.#handlers) return this.#handlers.onMessage(payload);
        if (this.#held.length >= HELD_MESSAGES_MAX)
          return void inner.close('too much before the handshake', ErrorCode.HANDSHAKE_FAILED);
        this.#held.push(payload);
      },
      onClose: (code, reason) => {
        if (this.#handlers) this.#handlers.onClose(code, reason);
        else this.#close = { code, reason };
      },
    });
  }

  setHandlers(handlers: ChannelHandlers): void {
    this.#handlers = handlers;
    for (const payload of this.#held.splice(0)) handlers.onMessage(payload);
    if (this.#close) handlers.onClose(this.#close.code, this.#close.reason);
  }

  send(payload: Uint8Array): void {
    this.#inner.send(payload);
  }

  close(reason: string, code?: ErrorCode): Promise<void> {
    return this.#inner.close(reason, code);
  }

  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }

  get closed(): boolean {
    return this.#inner.closed;
  }
}

function isHandshakeError(err: SwitchboardError): boolean {
  return err.code === ErrorCode.HANDSHAKE_FAILED || err.code === ErrorCode.PEER_KEY_CHANGED;
}

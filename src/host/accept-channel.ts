// The served side of any channel: the E2E handshake, then the service the channel names.
import { acceptE2E, channelPrologue } from '../channel/e2e.js';
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
  acceptE2E(transport, {
    key: o.key,
    prologue: channelPrologue(event.service, target, o.owner, peer.user),
    expected: peer,
    verifyPin: (proven) => {
      pin = o.knownPeers.verify(o.server, proven, newDevice);
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
      if (access === 'deny') {
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
  );
}

function isHandshakeError(err: SwitchboardError): boolean {
  return err.code === ErrorCode.HANDSHAKE_FAILED || err.code === ErrorCode.PEER_KEY_CHANGED;
}

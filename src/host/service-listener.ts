// Services a logged-in connection serves to channels aimed at its user or its device.
import { EventEmitter } from 'node:events';
import type { KnownPeers } from '../client/known-peers.js';
import type { RelayClient } from '../client/relay-client.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { targetKey, type EventOf, type RelayEvent } from '../protocol/messages.js';
import { acceptChannel } from './accept-channel.js';
import type { AccessDecision } from './access.js';
import type { HostService } from './services/service.js';

export interface ServiceListenerOptions {
  /** My account name, and this device's key and fingerprint (what device targets name). */
  user: string;
  key: DeviceKeyPair;
  fingerprint: string;
  server: string;
  knownPeers: KnownPeers;
  services: readonly HostService[];
}

/**
 * Offers `services` on a logged-in relay connection (`services.offer`) and serves each channel
 * opened to this user or this device: the E2E handshake, then the service. My own other devices
 * get 'rw'; anyone else 'ask', and the service decides (ping refuses them).
 * Events: 'notice' (refusals, for the person at this end).
 */
export class ServiceListener extends EventEmitter {
  readonly #client: RelayClient;
  readonly #o: ServiceListenerOptions;
  readonly #services: ReadonlyMap<string, HostService>;
  readonly #onEvent = (event: RelayEvent): void => {
    if (event.type === 'channel.open') this.#onChannelOpen(event);
  };
  #stopped = false;

  constructor(client: RelayClient, options: ServiceListenerOptions) {
    super();
    this.#client = client;
    this.#o = options;
    this.#services = new Map(options.services.map((svc) => [svc.name, svc]));
  }

  /** Tells the relay what this connection serves; channels start arriving after it answers. */
  async start(): Promise<void> {
    this.#client.on('event', this.#onEvent);
    await this.#client.request('services.offer', { services: [...this.#services.keys()] });
  }

  /** Withdraws the offer; channels already open go on. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#client.off('event', this.#onEvent);
    if (!this.#client.closed)
      await this.#client.request('services.offer', { services: [] }).catch(() => undefined);
  }

  #onChannelOpen(event: EventOf<'channel.open'>): void {
    const target = event.target;
    // Session channels belong to a HostSession on its own connection, never to a listener.
    if (!target || target.kind === 'session') return;
    const o = this.#o;
    // The relay routes by name; this end checks the channel was really aimed at it.
    if (
      target.user !== o.user ||
      (target.kind === 'device' && target.fingerprint !== o.fingerprint)
    ) {
      void this.#client.closeChannel(event.channel, 'not aimed at this device');
      return;
    }
    acceptChannel(this.#client, event, targetKey(target), {
      key: o.key,
      server: o.server,
      knownPeers: o.knownPeers,
      owner: o.user,
      services: this.#services,
      access: (peer): AccessDecision => (peer.user === o.user ? 'rw' : 'ask'),
      stopped: () => this.#stopped,
      notice: (text) => this.emit('notice', text),
    });
  }
}

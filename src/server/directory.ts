// In-memory state of the relay: who is online, which remote sessions are live, and channel routes.
import { ErrorCode, SessionError } from '../protocol/errors.js';
import { MAX_QUEUED_BYTES } from '../protocol/limits.js';
import type { PeerInfo } from '../protocol/messages.js';
import type { DeviceRow, RemoteSessionRow } from '../store/repositories.js';
import type { Connection, Route } from './connection.js';
import { KeyedGate } from './keyed-gate.js';

export interface LiveSession {
  row: RemoteSessionRow;
  instance: string;
  host: Connection;
  /** The services its host serves (`session.register`'s `services`): what channels may ask for. */
  services: ReadonlySet<string>;
  /** Routes on the host's connection, one per open channel into the session. */
  controllers: Set<Route>;
}

/** How a device is described to peers: user, raw public key, fingerprint, device name. */
export function devicePeerInfo(user: string, device: DeviceRow): PeerInfo {
  return {
    user,
    publicKey: device.publicKey,
    fingerprint: device.fingerprint,
    deviceName: device.name,
  };
}

export function peerInfoOf(conn: Connection): PeerInfo {
  const auth = conn.auth;
  if (!auth) throw new SessionError(ErrorCode.AUTH_REQUIRED, 'log in first');
  return devicePeerInfo(auth.user.name, auth.device);
}

export class Directory {
  readonly #online = new Map<number, Set<Connection>>();
  readonly #sessions = new Map<string, LiveSession>();
  /** Channel payload bytes forwarded since start (read by /metrics). */
  bytesRelayed = 0;
  /** session.register runs one at a time per account (a few may wait), see handlers.ts. */
  readonly registrations = new KeyedGate(1, 16);
  /** Registrations between their first check and their end, across all accounts. */
  pendingRegistrations = 0;

  // --- presence -------------------------------------------------------------------------------

  addOnline(conn: Connection): void {
    const userId = conn.auth?.user.id;
    if (userId === undefined) return;
    let set = this.#online.get(userId);
    if (!set) this.#online.set(userId, (set = new Set()));
    set.add(conn);
  }

  removeOnline(conn: Connection): void {
    const userId = conn.auth?.user.id;
    if (userId === undefined) return;
    const set = this.#online.get(userId);
    set?.delete(conn);
    if (set && set.size === 0) this.#online.delete(userId);
  }

  /** The live connections of a user. */
  connectionsOf(userId: number): Connection[] {
    return [...(this.#online.get(userId) ?? [])];
  }

  /** How many live connections the user holds. */
  connectionCountOf(userId: number): number {
    return this.#online.get(userId)?.size ?? 0;
  }

  isOnline(userId: number): boolean {
    return this.#online.has(userId);
  }

  /** The ids of the users holding at least one connection, in no particular order. */
  onlineUserIds(): number[] {
    return [...this.#online.keys()];
  }

  get onlineCount(): number {
    return this.#online.size;
  }

  // --- live sessions --------------------------------------------------------------------------

  get liveCount(): number {
    return this.#sessions.size;
  }

  /** How many live sessions the user hosts. */
  liveCountOf(ownerId: number): number {
    let n = 0;
    for (const live of this.#sessions.values()) if (live.row.ownerId === ownerId) n += 1;
    return n;
  }

  live(sessionId: string): LiveSession | undefined {
    return this.#sessions.get(sessionId);
  }

  setLive(session: LiveSession): void {
    this.#sessions.set(session.row.id, session);
  }

  /** Removes a live session and closes every channel into it. Returns the removed entry. */
  removeLive(sessionId: string, code: string, reason: string): LiveSession | undefined {
    const live = this.#sessions.get(sessionId);
    if (!live) return undefined;
    this.#sessions.delete(sessionId);
    for (const route of [...live.controllers]) this.closeRoute(route, code, reason, true);
    return live;
  }

  // --- channels -------------------------------------------------------------------------------

  /** Opens a channel to a service at the session's host; returns the opener's end. */
  openChannel(controller: Connection, live: LiveSession, service: string, now: number): Route {
    const cId = controller.allocateChannel();
    const hId = live.host.allocateChannel();
    if (cId === undefined || hId === undefined) {
      throw new SessionError(
        ErrorCode.TOO_MANY_CHANNELS,
        'too many open channels on one connection; detach something first',
      );
    }
    const cEnd: Route = {
      owner: controller,
      channel: cId,
      peer: live.host,
      peerChannel: hId,
      sessionId: live.row.id,
      service,
      role: 'controller',
      bytesIn: 0,
      openedAt: now,
    };
    const hEnd: Route = {
      owner: live.host,
      channel: hId,
      peer: controller,
      peerChannel: cId,
      sessionId: live.row.id,
      service,
      role: 'host',
      bytesIn: 0,
      openedAt: now,
    };
    controller.channels.set(cId, cEnd);
    live.host.channels.set(hId, hEnd);
    live.controllers.add(hEnd);
    return cEnd;
  }

  /**
   * Forwards one data frame along its route. A destination that is not draining its socket
   * gets the channel closed with SLOW_PEER instead of growing the relay's memory.
   */
  forward(route: Route, payload: Uint8Array): void {
    route.bytesIn += payload.length;
    if (route.peer.bufferedBytes > MAX_QUEUED_BYTES) {
      this.closeRoute(
        route,
        ErrorCode.SLOW_PEER,
        'the other side is not reading fast enough',
        true,
      );
      route.peer.markSlow();
      return;
    }
    this.bytesRelayed += payload.length;
    route.peer.sendData(route.peerChannel, payload);
  }

  /**
   * Closes both ends of a channel. The other side is always told; `notifyOwner` also tells the
   * owner of `route` (when the relay, not that side, decided).
   */
  closeRoute(route: Route, code: string, reason: string, notifyOwner: boolean): void {
    const other = route.peer.channels.get(route.peerChannel);
    route.owner.channels.delete(route.channel);
    route.peer.channels.delete(route.peerChannel);
    const hostEnd = route.role === 'host' ? route : other;
    if (hostEnd) this.#sessions.get(route.sessionId)?.controllers.delete(hostEnd);
    route.peer.sendEvent({ type: 'channel.closed', channel: route.peerChannel, code, reason });
    if (notifyOwner)
      route.owner.sendEvent({ type: 'channel.closed', channel: route.channel, code, reason });
  }

  /** Everything a dropped connection held: its channels, its presence, the sessions it hosted. */
  dropConnection(conn: Connection): LiveSession[] {
    for (const route of [...conn.channels.values()]) {
      this.closeRoute(route, ErrorCode.PEER_GONE, 'the other side disconnected', false);
    }
    this.removeOnline(conn);
    const gone: LiveSession[] = [];
    for (const live of [...this.#sessions.values()]) {
      if (live.host === conn) {
        this.#sessions.delete(live.row.id);
        gone.push(live);
      }
    }
    return gone;
  }
}

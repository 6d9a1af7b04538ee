// In-memory state of the relay: who is online, which remote sessions are live, and channel routes.
import { ErrorCode, SessionError } from '../protocol/errors.js';
import { MAX_QUEUED_BYTES } from '../protocol/limits.js';
import type { PeerInfo, RelayEvent } from '../protocol/messages.js';
import type { DeviceRow, RemoteSessionRow } from '../store/repositories.js';
import { CloseCode, type Connection, type Route } from './connection.js';
import { KeyedGate } from './keyed-gate.js';
import type {
  ConnectionBus,
  ConnectionFilter,
  Presence,
  RelayState,
  SessionDirectory,
} from './relay-state.js';

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

/**
 * The in-process relay state: presence, live sessions and connections of this process (the
 * `RelayState` interfaces), and the channel routes between its connections (the data plane,
 * per process by nature).
 */
export class Directory implements Presence, ConnectionBus, SessionDirectory {
  readonly #online = new Map<number, Set<Connection>>();
  readonly #sessions = new Map<string, LiveSession>();
  /** Channel payload bytes forwarded since start (read by /metrics). */
  bytesRelayed = 0;
  /** session.register runs one at a time per account (a few may wait), see handlers.ts. */
  readonly registrations = new KeyedGate(1, 16);
  /** Registrations between their first check and their end, across all accounts. */
  pendingRegistrations = 0;

  /** This directory as the handlers see it. */
  get state(): RelayState {
    return { presence: this, connections: this, sessions: this };
  }

  // --- presence -------------------------------------------------------------------------------

  // Each method does its work before its first await, so check-and-add is atomic in-process.
  async tryJoin(userId: number, conn: Connection, limit: number): Promise<boolean> {
    const set = this.#online.get(userId);
    if (set?.has(conn)) return true;
    if ((set?.size ?? 0) >= limit) return false;
    if (set) set.add(conn);
    else this.#online.set(userId, new Set([conn]));
    return true;
  }

  async leave(userId: number, conn: Connection): Promise<void> {
    const set = this.#online.get(userId);
    set?.delete(conn);
    if (set && set.size === 0) this.#online.delete(userId);
  }

  async onlineAmong(userIds: readonly number[]): Promise<Set<number>> {
    return new Set(userIds.filter((id) => this.#online.has(id)));
  }

  async someOnline(limit: number): Promise<number[]> {
    const out: number[] = [];
    // A loop, not a spread: there may be very many.
    for (const id of this.#online.keys()) {
      if (out.length >= limit) break;
      out.push(id);
    }
    return out;
  }

  async onlineDevices(userId: number): Promise<Set<number>> {
    const ids = new Set<number>();
    for (const conn of this.#online.get(userId) ?? []) if (conn.auth) ids.add(conn.auth.device.id);
    return ids;
  }

  async notifyDevice(userId: number, deviceId: number, event: RelayEvent): Promise<number> {
    let sent = 0;
    for (const conn of this.#online.get(userId) ?? [])
      if (conn.auth?.device.id === deviceId && !conn.closed) {
        conn.sendEvent(event);
        sent += 1;
      }
    return sent;
  }

  async notifyAll(event: RelayEvent): Promise<number> {
    let users = 0;
    for (const conns of this.#online.values()) {
      let reached = false;
      for (const conn of conns)
        if (conn.auth && !conn.closed) {
          conn.sendEvent(event);
          reached = true;
        }
      if (reached) users += 1;
    }
    return users;
  }

  async closeConnections(
    userId: number,
    filter: ConnectionFilter,
    reason: string,
  ): Promise<number> {
    let closed = 0;
    for (const conn of [...(this.#online.get(userId) ?? [])]) {
      const token = conn.auth?.tokenId;
      if (filter.exceptConnection === conn.id) continue;
      if (filter.token !== undefined && token !== filter.token) continue;
      if (filter.exceptToken !== undefined && token === filter.exceptToken) continue;
      if (filter.device !== undefined && conn.auth?.device.id !== filter.device) continue;
      conn.close(CloseCode.POLICY, reason);
      closed += 1;
    }
    return closed;
  }

  /** Takes a connection out of presence, whoever it was logged in as. */
  #removeOnline(conn: Connection): void {
    const userId = conn.auth?.user.id;
    if (userId === undefined) return;
    const set = this.#online.get(userId);
    set?.delete(conn);
    if (set && set.size === 0) this.#online.delete(userId);
  }

  get onlineCount(): number {
    return this.#online.size;
  }

  /**
   * The user's connection that offers `service` (on one device, if given): the newest, when
   * several do. Local connections only, like `locate`.
   */
  async offering(
    userId: number,
    service: string,
    deviceId?: number,
  ): Promise<Connection | undefined> {
    let best: Connection | undefined;
    for (const conn of this.#online.get(userId) ?? []) {
      if (!conn.offered.has(service) || conn.closed) continue;
      if (deviceId !== undefined && conn.auth?.device.id !== deviceId) continue;
      if (!best || conn.id > best.id) best = conn;
    }
    return best;
  }

  // --- live sessions --------------------------------------------------------------------------

  get liveCount(): number {
    return this.#sessions.size;
  }

  /** How many live sessions the user hosts. */
  async countLiveOf(ownerId: number): Promise<number> {
    let n = 0;
    for (const live of this.#sessions.values()) if (live.row.ownerId === ownerId) n += 1;
    return n;
  }

  async locate(sessionId: string): Promise<LiveSession | undefined> {
    return this.#sessions.get(sessionId);
  }

  async countLive(): Promise<number> {
    return this.#sessions.size;
  }

  async claim(session: LiveSession): Promise<void> {
    this.#sessions.set(session.row.id, session);
  }

  async release(sessionId: string, code: string, reason: string): Promise<LiveSession | undefined> {
    return this.#removeLive(sessionId, code, reason);
  }

  /** Removes a live session and closes every channel into it. Returns the removed entry. */
  #removeLive(sessionId: string, code: string, reason: string): LiveSession | undefined {
    const live = this.#sessions.get(sessionId);
    if (!live) return undefined;
    this.#sessions.delete(sessionId);
    for (const route of [...live.controllers]) this.closeRoute(route, code, reason, true);
    return live;
  }

  // --- channels -------------------------------------------------------------------------------

  /**
   * Opens a channel to a service at a connection that serves it (a session's host, or a user's
   * connection that offered it); returns the opener's end. `target` is the key routes and logs
   * carry (`targetKey`); `live` is the session, whose channels end with it.
   */
  openChannel(
    controller: Connection,
    to: { host: Connection; target: string; live?: LiveSession },
    service: string,
    now: number,
  ): Route {
    const host = to.host;
    const cId = controller.allocateChannel();
    const hId = host.allocateChannel();
    if (cId === undefined || hId === undefined) {
      throw new SessionError(
        ErrorCode.TOO_MANY_CHANNELS,
        'too many open channels on one connection; detach something first',
      );
    }
    const cEnd: Route = {
      owner: controller,
      channel: cId,
      peer: host,
      peerChannel: hId,
      target: to.target,
      service,
      role: 'controller',
      bytesIn: 0,
      openedAt: now,
    };
    const hEnd: Route = {
      owner: host,
      channel: hId,
      peer: controller,
      peerChannel: cId,
      target: to.target,
      service,
      role: 'host',
      bytesIn: 0,
      openedAt: now,
    };
    controller.channels.set(cId, cEnd);
    host.channels.set(hId, hEnd);
    to.live?.controllers.add(hEnd);
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
    if (hostEnd) this.#sessions.get(route.target)?.controllers.delete(hostEnd);
    route.peer.sendEvent({ type: 'channel.closed', channel: route.peerChannel, code, reason });
    if (notifyOwner)
      route.owner.sendEvent({ type: 'channel.closed', channel: route.channel, code, reason });
  }

  /** Everything a dropped connection held: its channels, its presence, the sessions it hosted. */
  dropConnection(conn: Connection): LiveSession[] {
    for (const route of [...conn.channels.values()]) {
      this.closeRoute(route, ErrorCode.PEER_GONE, 'the other side disconnected', false);
    }
    this.#removeOnline(conn);
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

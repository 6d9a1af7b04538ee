// Relay state that several relays will share: presence, live sessions, reaching connections.
//
// Handlers reach this state only through these async interfaces. Today one implementation
// holds it in this process (`Directory`); a Redis implementation (presence and counts in
// Redis, connection commands over pub/sub, channels forwarded between relays) replaces it
// without touching a handler. What stays per process by nature: the channel routes and the
// bytes they forward (`Directory.openChannel`, `forward`), the per-connection token bucket, the
// hash queue. Login throttles and sign-up rates are behind `LimiterStore`; session ownership
// across restarts is the lease in the store (`session-leases.ts`).
import type { RelayEvent } from '../protocol/messages.js';
import type { Connection } from './connection.js';
import type { LiveSession } from './directory.js';

/** Who is online. */
export interface Presence {
  /**
   * Counts the connection as the user's if the user holds fewer than `limit` connections,
   * atomically (two logins racing for the last place cannot both win). False: at the limit.
   */
  tryJoin(userId: number, conn: Connection, limit: number): Promise<boolean>;
  /** The connection no longer counts as the user's (it closed, or logged out). */
  leave(userId: number, conn: Connection): Promise<void>;
  /** Which of `userIds` hold at least one connection. */
  onlineAmong(userIds: readonly number[]): Promise<Set<number>>;
  /** Up to `limit` users holding a connection, in no particular order. */
  someOnline(limit: number): Promise<number[]>;
}

/** Which connections a command reaches, by what their login is (serialisable, for a bus). */
export interface ConnectionFilter {
  /** Only connections logged in with this token. */
  token?: number;
  /** Not connections logged in with this token. */
  exceptToken?: number;
  /** Not this connection (`Connection.id`; with a relay id once there are several). */
  exceptConnection?: number;
  /** Only connections of this device (`devices.id`). */
  device?: number;
}

/** Reaching a user's connections wherever they are held. */
export interface ConnectionBus {
  /** Closes the user's connections that `filter` selects (policy close); returns how many. */
  closeConnections(userId: number, filter: ConnectionFilter, reason: string): Promise<number>;
  /** The ids of the user's devices with a live connection. */
  onlineDevices(userId: number): Promise<Set<number>>;
  /** Sends `event` to every live connection of that device of the user; returns how many. */
  notifyDevice(userId: number, deviceId: number, event: RelayEvent): Promise<number>;
  /** Sends `event` to every logged-in connection; returns how many users it reached. */
  notifyAll(event: RelayEvent): Promise<number>;
  /**
   * The user's connection that offers `service` (on that device, if `deviceId`): the newest when
   * several do. Where a connection on another relay will appear once channels are forwarded.
   */
  offering(userId: number, service: string, deviceId?: number): Promise<Connection | undefined>;
}

/** Live remote sessions: which are hosted, by whom, how many. */
export interface SessionDirectory {
  /** The live session, or undefined if no host holds it now. */
  locate(sessionId: string): Promise<LiveSession | undefined>;
  /** Live sessions in all, and those one account hosts (the caps). */
  countLive(): Promise<number>;
  countLiveOf(ownerId: number): Promise<number>;
  /** The connection now hosts the session. */
  claim(session: LiveSession): Promise<void>;
  /** The session is no longer live; every channel into it is closed with `code`. */
  release(sessionId: string, code: string, reason: string): Promise<LiveSession | undefined>;
}

/** Everything handlers know about relay state beyond the store. */
export interface RelayState {
  presence: Presence;
  connections: ConnectionBus;
  sessions: SessionDirectory;
}

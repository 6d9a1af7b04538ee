// Direct peer-to-peer connections between two clients already linked through the relay.
//
// Each side listens on an ephemeral TCP port and sends the other, inside the end-to-end channel
// through the relay (so the relay never sees them), its candidates: the addresses of its
// interfaces and the address the relay observed, with that port, and a random token. Both sides
// dial every candidate of the other at once (magic-wormhole's transit); on each TCP connection
// the dialer sends the token, then the E2E handshake runs with the dialer as controller, bound
// by its prologue to the relayed channel's handshake hash, and each side must prove the device
// key already proven on the relayed channel. A relay that swaps addresses reaches nobody: a
// stranger at an address cannot complete that handshake. The leader (who opened the relayed
// channel) takes the first connection that completes, tells the other side `use` on it, and
// closes the rest.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { randomBytes } from 'node:crypto';
import { acceptE2E, connectE2E, type SecureDuplex } from '../channel/e2e.js';
import { SocketTransport } from '../channel/socket-transport.js';
import type { ChannelHandlers } from '../channel/transport.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { toBase64 } from '../crypto/bytes.js';
import type { PeerInfo } from '../protocol/messages.js';

/** How long the direct attempt may take before messages go through the relay. */
export const DIRECT_BUDGET_MS = 2_000; // ms
/** Most candidates taken from a peer (more are ignored). */
export const MAX_CANDIDATES = 16;
/** Bytes of the token a dialer sends first, so the listener knows which link it is for. */
const TOKEN_BYTES = 16;
/** Connections at once that have not yet sent a token (a scanner's, a stranger's). */
export const MAX_UNPROVEN_CONNECTIONS = 32;
/** A connection whose token does not come within this is dropped. */
const TOKEN_WAIT_MS = 2_000; // ms

export interface Candidate {
  host: string;
  port: number;
}

/** What each side sends the other through the relayed channel. */
export interface DirectOffer {
  token: string;
  candidates: Candidate[];
}

/** A peer's offer from untrusted JSON: well-formed candidates only, at most MAX_CANDIDATES. */
export function parseOffer(value: unknown): DirectOffer | undefined {
  const o = value as { token?: unknown; candidates?: unknown };
  if (typeof o?.token !== 'string' || !Array.isArray(o.candidates)) return undefined;
  const candidates = o.candidates
    .filter(
      (c): c is Candidate =>
        typeof (c as Candidate)?.host === 'string' &&
        (c as Candidate).host.length <= 64 &&
        Number.isInteger((c as Candidate).port) &&
        (c as Candidate).port > 0 &&
        (c as Candidate).port < 65536,
    )
    .slice(0, MAX_CANDIDATES);
  return { token: o.token, candidates };
}

/** `::ffff:1.2.3.4` → `1.2.3.4`: how the relay may report an IPv4 peer. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * One link's registration with the listener: the token the peer sends first, and the
 * connections that arrived with it (kept until the attempt takes them: the peer may dial
 * before this side has its offer).
 */
export class Expectation {
  readonly token: string;
  readonly #queued: SocketTransport[] = [];
  #handler: ((transport: SocketTransport) => void) | undefined;
  readonly #done: () => void;

  constructor(token: string, done: () => void) {
    this.token = token;
    this.#done = done;
  }

  /** Hands every connection that came, and each one that comes, to `handler`. */
  take(handler: (transport: SocketTransport) => void): void {
    this.#handler = handler;
    for (const t of this.#queued.splice(0)) handler(t);
  }

  arrived(transport: SocketTransport): void {
    if (this.#handler) this.#handler(transport);
    else if (this.#queued.length < MAX_CANDIDATES) this.#queued.push(transport);
    else transport.socket.destroy();
  }

  /** Stops expecting connections for this token; those queued and not taken are closed. */
  done(): void {
    this.#done();
    for (const t of this.#queued.splice(0)) t.socket.destroy();
  }
}

/**
 * This client's TCP listener for direct connections: one per messaging client, on an ephemeral
 * port. Connections are handed to the link whose token they send first; others are dropped.
 */
export class DirectListener {
  readonly #server: Server;
  readonly #host: string;
  readonly #expect = new Map<string, Expectation>();
  readonly #sockets = new Set<Socket>();
  #unproven = 0;

  private constructor(server: Server, host: string) {
    this.#server = server;
    this.#host = host;
  }

  /** Listens on `host` (default every interface; tests pass 127.0.0.1), port chosen by the OS. */
  static open(host = '0.0.0.0'): Promise<DirectListener> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      const listener = new DirectListener(server, host);
      server.on('connection', (socket) => listener.#onConnection(socket));
      server.once('error', reject);
      server.listen({ host, port: 0 }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        resolve(listener);
      });
    });
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /**
   * Where a peer may reach this listener: the interfaces' addresses it listens on, and the
   * address the relay saw this client come from (a NAT's public side; useful where a port is
   * forwarded), each with the listener's port.
   */
  candidates(observed?: string): Candidate[] {
    const port = this.port;
    const hosts = new Set<string>();
    const any = this.#host === '0.0.0.0' || this.#host === '::';
    if (!any) hosts.add(this.#host);
    else
      for (const list of Object.values(networkInterfaces()))
        for (const i of list ?? [])
          if (i.family === 'IPv4' || this.#host === '::')
            hosts.add(i.family === 'IPv6' && i.scopeid ? `${i.address}%${i.scopeid}` : i.address);
    if (observed && any) hosts.add(plainAddress(observed));
    return [...hosts].slice(0, MAX_CANDIDATES).map((host) => ({ host, port }));
  }

  /** A fresh token for one link: connections that send it first are kept for that link. */
  expect(): Expectation {
    const token = toBase64(randomBytes(TOKEN_BYTES));
    const expectation = new Expectation(token, () => this.#expect.delete(token));
    this.#expect.set(token, expectation);
    return expectation;
  }

  close(): void {
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
  }

  #onConnection(socket: Socket): void {
    // Connections that have not sent a known token yet are few and short-lived; more are refused.
    if (this.#unproven >= MAX_UNPROVEN_CONNECTIONS) {
      socket.destroy();
      return;
    }
    this.#unproven += 1;
    let counted = true;
    const proven = (): void => {
      if (counted) this.#unproven -= 1;
      counted = false;
    };
    socket.once('close', proven);
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const transport = new SocketTransport(socket);
    const timer = setTimeout(() => socket.destroy(), TOKEN_WAIT_MS);
    timer.unref();
    transport.setHandlers({
      onMessage: (payload) => {
        clearTimeout(timer);
        proven();
        // What follows the token (the handshake) waits for the attempt that takes it.
        transport.hold();
        const expectation = this.#expect.get(toBase64(payload));
        if (!expectation) {
          socket.destroy();
          return;
        }
        expectation.arrived(transport);
      },
      onClose: () => clearTimeout(timer),
    });
  }
}

export interface DirectAttempt {
  /** This side's registration with its listener (its token went to the peer). */
  mine: Expectation;
  theirs: DirectOffer;
  key: DeviceKeyPair;
  /** The relayed channel's handshake hash: binds the direct handshake to this link. */
  linkHash: string;
  /** The peer as the relayed channel proved it: the direct handshake must prove the same key. */
  peer: PeerInfo;
  /** The leader picks the connection; the other side waits for its `use`. */
  leader: boolean;
  budgetMs?: number;
  /** Where the chosen connection's messages go: set the moment it is chosen, so none is missed. */
  handlers(duplex: SecureDuplex): ChannelHandlers;
}

const USE = '{"t":"use"}';

/**
 * Dials every candidate of the peer and accepts on the listener at once; resolves with the
 * chosen direct duplex (its handlers are the caller's to set), or undefined when none completes
 * within the budget. Every other connection is closed.
 */
export function connectDirect(
  a: DirectAttempt,
): Promise<{ duplex: SecureDuplex; socket: Socket } | undefined> {
  const budget = a.budgetMs ?? DIRECT_BUDGET_MS;
  const e2e = {
    key: a.key,
    prologue: new TextEncoder().encode(`switchboard-direct-v1\0${a.linkHash}`),
    expected: a.peer,
    // The key is the one the relayed channel proved and the pins accepted.
    verifyPin: () => undefined,
    timeoutMs: budget,
  };
  const sockets = new Set<Socket>();
  return new Promise<{ duplex: SecureDuplex; socket: Socket } | undefined>((resolve) => {
    let over = false;
    const finish = (duplex: SecureDuplex | undefined, socket?: Socket): void => {
      over = true;
      clearTimeout(timer);
      a.mine.done();
      for (const s of sockets) if (s !== socket) s.destroy();
      if (duplex) duplex.setHandlers(a.handlers(duplex));
      resolve(duplex && socket ? { duplex, socket } : undefined);
    };
    const timer = setTimeout(() => finish(undefined), budget);
    timer.unref();
    const completed = (duplex: SecureDuplex, socket: Socket): void => {
      if (over) {
        socket.destroy();
        return;
      }
      if (a.leader) {
        duplex.send(new TextEncoder().encode(USE));
        finish(duplex, socket);
        return;
      }
      // The follower waits for the leader's `use` on this connection.
      duplex.setHandlers({
        onMessage: (payload) => {
          if (!over && Buffer.from(payload).toString('utf8') === USE) finish(duplex, socket);
        },
        onClose: () => undefined,
      });
    };
    a.mine.take((transport) => {
      if (over) {
        transport.socket.destroy();
        return;
      }
      sockets.add(transport.socket);
      acceptE2E(transport, e2e).then(
        (duplex) => completed(duplex, transport.socket),
        () => transport.socket.destroy(),
      );
    });
    const token = Buffer.from(a.theirs.token, 'base64');
    for (const c of a.theirs.candidates) {
      const socket = connect({ host: c.host, port: c.port });
      sockets.add(socket);
      socket.once('error', () => socket.destroy());
      socket.once('connect', () => {
        if (over) {
          socket.destroy();
          return;
        }
        const transport = new SocketTransport(socket);
        transport.send(token);
        connectE2E(transport, e2e).then(
          (duplex) => completed(duplex, socket),
          () => socket.destroy(),
        );
      });
    }
  });
}

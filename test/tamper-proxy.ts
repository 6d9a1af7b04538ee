// A hostile relay for tests: terminates TLS with its own certificate and forwards to the real relay, tampering on request.
import { mkdtempSync } from 'node:fs';
import { after, before, beforeEach } from 'node:test';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { loadOrCreateCertificate, tlsServerOptions } from '../src/server/certificate.js';
import { Harness } from './terminal-harness.js';

export interface Tamper {
  /** Rewrites a JSON message from the relay to the client (return it changed or as is, or several to send in its place, in order). */
  toClientJson?(msg: Record<string, unknown>): Record<string, unknown> | Record<string, unknown>[];
  /** Rewrites binary data from the relay to the client; return undefined to drop it. */
  toClientBinary?(frame: Buffer, reply: (frame: Buffer) => void): Buffer | undefined;
  /** Rewrites a JSON message from the client to the relay (return it changed or as is). */
  toRelayJson?(msg: Record<string, unknown>): Record<string, unknown>;
  /** Rewrites binary data from the client to the relay; `reply` sends a frame back to the client instead. */
  toRelayBinary?(frame: Buffer, reply: (frame: Buffer) => void): Buffer | undefined;
}

export class TamperProxy {
  server!: Server;
  fingerprint = '';
  port = 0;
  tamper: Tamper = {};
  readonly #relayPort: number;
  readonly #sockets = new Set<WebSocket>();

  constructor(relayPort: number) {
    this.#relayPort = relayPort;
  }

  async start(): Promise<this> {
    const cert = await loadOrCreateCertificate({
      dataDir: mkdtempSync(join(tmpdir(), 'sb-proxy-')),
    });
    this.fingerprint = cert.fingerprint;
    this.server = createServer(tlsServerOptions(cert));
    const wss = new WebSocketServer({ server: this.server, path: '/v1/ws' });
    wss.on('connection', (client) => this.#bridge(client));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  #bridge(client: WebSocket): void {
    const upstream = new WebSocket(`wss://127.0.0.1:${this.#relayPort}/v1/ws`, {
      rejectUnauthorized: false,
    });
    this.#sockets.add(client).add(upstream);
    const queue: Array<[RawData, boolean]> = [];
    const toClient = (frame: Buffer) =>
      client.readyState === client.OPEN && client.send(frame, { binary: true });
    const toRelay = (data: RawData, isBinary: boolean) => {
      let out = data as Buffer;
      if (isBinary && this.tamper.toRelayBinary) {
        const changed = this.tamper.toRelayBinary(out, toClient);
        if (!changed) return;
        out = changed;
      }
      if (!isBinary && this.tamper.toRelayJson) {
        const msg = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
        upstream.send(JSON.stringify(this.tamper.toRelayJson(msg)));
        return;
      }
      upstream.send(out, { binary: isBinary });
    };
    upstream.on('open', () => {
      for (const [d, b] of queue.splice(0)) toRelay(d, b);
    });
    client.on('message', (data, isBinary) => {
      if (upstream.readyState === upstream.OPEN) toRelay(data, isBinary);
      else queue.push([data, isBinary]);
    });
    upstream.on('message', (data, isBinary) => {
      let out = data as Buffer;
      if (isBinary) {
        if (this.tamper.toClientBinary) {
          const changed = this.tamper.toClientBinary(out, (f) =>
            upstream.send(f, { binary: true }),
          );
          if (!changed) return;
          out = changed;
        }
        client.send(out, { binary: true });
        return;
      }
      const msg = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
      const out2 = this.tamper.toClientJson ? this.tamper.toClientJson(msg) : msg;
      for (const m of Array.isArray(out2) ? out2 : [out2]) client.send(JSON.stringify(m));
    });
    const closeBoth = () => {
      client.terminate();
      upstream.terminate();
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * A test relay with a TamperProxy in front, started before the suite and closed after it; the
 * proxy tampers with nothing until a test sets `proxy().tamper` (reset before each test).
 */
export function proxiedHarness(): { h: Harness; proxy: () => TamperProxy } {
  const h = new Harness();
  let proxy: TamperProxy | undefined;
  before(async () => {
    await h.start();
    proxy = await new TamperProxy(h.port).start();
  });
  beforeEach(() => {
    if (proxy) proxy.tamper = {};
  });
  after(async () => {
    await proxy?.close();
    await h.close();
  });
  return {
    h,
    proxy: () => {
      if (!proxy) throw new Error('the proxy starts in before()');
      return proxy;
    },
  };
}

/**
 * Sets `proxy` to flip one byte near the end of the first large binary frame toward the relay
 * (the signed request, the first large record after the handshake); returns how many it flipped.
 */
export function flipFirstLargeRecord(proxy: TamperProxy): () => number {
  let flipped = 0;
  proxy.tamper = {
    toRelayBinary: (frame) => {
      if (frame.length > 300 && flipped === 0) {
        flipped += 1;
        frame[frame.length - 20]! ^= 0x01;
      }
      return frame;
    },
  };
  return () => flipped;
}

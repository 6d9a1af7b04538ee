// Test harness for remote terminals: a real relay on loopback, real users, real PTY hosts and controllers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttachSession, type AttachOptions } from '../src/client/attach-session.js';
import { KnownPeers } from '../src/client/known-peers.js';
import { KnownServers } from '../src/client/known-servers.js';
import { openService } from '../src/client/open-channel.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey, type DeviceKeyPair } from '../src/crypto/device-key.js';
import { HostSession, type HostSessionOptions } from '../src/host/host-session.js';
import { spawnPty } from '../src/host/pty.js';
import { TerminalStream } from '../src/host/terminal-stream.js';
import {
  TERMINAL_PROTOCOL_VERSION,
  decodeTerminal,
  encodeTerminal,
  type Hello,
  type TerminalMessage,
  type Welcome,
} from '../src/protocol/terminal.js';
import { startRelay, type Relay, type RelayOptions } from '../src/server/relay.js';
import { runCli, type CliResult } from './helpers.js';

/** Cheap Argon2 for tests only: hundreds of logins would otherwise dominate the run time. */
export const FAST_ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
/**
 * The terminal tests sign up dozens of users from 127.0.0.1, past the per-address sign-up burst
 * of 10; sign-up limits are tested in abuse-accounts.test.ts, not here.
 */
const ROOMY_SIGNUPS = { perMinute: 6_000, burst: 1_000 };

export interface TestUser {
  name: string;
  key: DeviceKeyPair;
  token: string;
  dir: string;
  knownPeers: KnownPeers;
  connect(): Promise<RelayClient>;
}

/** A bash with no rc files and a fixed prompt, so output is predictable. */
export function testShell(cols: number, rows: number, term = 'xterm-256color') {
  return spawnPty({
    file: '/bin/bash',
    args: ['--norc', '--noprofile', '-i'],
    cwd: tmpdir(),
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: tmpdir(),
      TERM: term,
      PS1: '$ ',
      LANG: 'C.UTF-8',
    },
    cols,
    rows,
  });
}

export class Harness {
  relay!: Relay;
  readonly dir = mkdtempSync(join(tmpdir(), 'sb-term-'));
  readonly dataDir = join(this.dir, 'relay');
  port = 0;
  readonly #closers: Array<() => Promise<void> | void> = [];
  readonly #relayOptions: Partial<RelayOptions>;

  constructor(relayOptions: Partial<RelayOptions> = {}) {
    this.#relayOptions = relayOptions;
  }

  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.relay = await startRelay({
      host: '127.0.0.1',
      port: this.port,
      dataDir: this.dataDir,
      auth: {
        argon2: FAST_ARGON2,
        signupRate: { perAddress: ROOMY_SIGNUPS, relay: ROOMY_SIGNUPS },
      },
      ...this.#relayOptions,
    });
    this.port = this.relay.port;
    return this;
  }

  /** Stops the relay and starts it again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.relay.close('restart');
    await this.start();
  }

  defer(fn: () => Promise<void> | void): void {
    this.#closers.push(fn);
  }

  /** Signs `name` up (if new) and logs in a new device of theirs, named `deviceName`. */
  async user(
    name: string,
    server = this.server,
    fingerprint = this.relay.certificate.fingerprint,
    deviceName = 'test',
  ): Promise<TestUser> {
    const dir = mkdtempSync(join(this.dir, `${name}-`));
    const key = generateDeviceKey();
    const trust = { knownServers: new KnownServers(join(dir, 'known_servers.json')), fingerprint };
    const c = await RelayClient.connect({ server, trust });
    await c
      .request('auth.signup', { user: name, password: `${name}-password` })
      .catch(() => undefined);
    const login = await c.request('auth.login', {
      user: name,
      password: `${name}-password`,
      device: { publicKey: key.publicKey.toString('base64'), name: deviceName },
    });
    c.close();
    const token = login.token;
    return {
      name,
      key,
      token,
      dir,
      knownPeers: new KnownPeers(join(dir, 'known_peers.json')),
      connect: async () => {
        const client = await RelayClient.connect({ server, trust });
        await client.request('auth.token', { token });
        return client;
      },
    };
  }

  /** Options every test host shares: the owner's identity and pins, a fixed host name. */
  #hostBase(
    owner: TestUser,
    kind: 'share' | 'agent',
    sessionId: string,
    policy: { allow?: string[]; viewers?: string[] },
  ) {
    return {
      kind,
      sessionId,
      hostName: 'test-host',
      policy: { owner: owner.name, kind, allow: policy.allow ?? [], viewers: policy.viewers ?? [] },
      key: owner.key,
      server: this.server,
      knownPeers: owner.knownPeers,
      connect: owner.connect,
    };
  }

  async agent(
    owner: TestUser,
    sessionId: string,
    policy: { allow?: string[]; viewers?: string[] } = {},
    extra: Partial<HostSessionOptions> = {},
  ): Promise<HostSession> {
    const host = new HostSession({
      ...this.#hostBase(owner, 'agent', sessionId, policy),
      spawnShell: testShell,
      ...extra,
    });
    await host.start();
    this.defer(() => host.stop());
    return host;
  }

  async share(
    owner: TestUser,
    sessionId: string,
    policy: { allow?: string[]; viewers?: string[] } = {},
    extra: Partial<HostSessionOptions> = {},
  ): Promise<{ host: HostSession; stream: TerminalStream }> {
    const stream = new TerminalStream({
      pty: testShell(80, 24),
      cols: 80,
      rows: 24,
      lossless: false,
    });
    const host = new HostSession({
      ...this.#hostBase(owner, 'share', sessionId, policy),
      stream,
      ...extra,
    });
    await host.start();
    this.defer(async () => {
      await host.stop();
      stream.close();
    });
    return { host, stream };
  }

  controller(user: TestUser, sessionId: string, options: Partial<AttachOptions> = {}): Controller {
    const session = new AttachSession({
      sessionId,
      readOnly: false,
      user: user.name,
      key: user.key,
      server: this.server,
      knownPeers: user.knownPeers,
      connect: user.connect,
      cols: 80,
      rows: 24,
      ...options,
    });
    const ctl = new Controller(session);
    this.defer(() => ctl.close());
    return ctl;
  }

  /**
   * A new connection of `user` (closed at the end, or earlier by the caller) and an end-to-end
   * channel on it to `service` on `sessionId`, through `server` (this relay by default).
   */
  async openService(user: TestUser, service: string, sessionId: string, server = this.server) {
    const client = await user.connect();
    this.defer(() => client.close());
    const { channel, opened } = await openService(client, {
      service,
      target: { kind: 'session', sessionId },
      user: user.name,
      key: user.key,
      server,
      knownPeers: user.knownPeers,
    });
    return { client, channel, opened };
  }

  /**
   * `switchboard signup` or `login` of `name` through the real CLI into `home`, against this
   * relay (pinned with --fingerprint); the password on stdin, `${name}-password` unless given.
   */
  cliAccount(
    how: 'signup' | 'login',
    name: string,
    home: string,
    password = `${name}-password`,
  ): Promise<CliResult> {
    const args = [how, '--user', name, '--password-stdin'];
    args.push('--server', this.server, '--fingerprint', this.relay.certificate.fingerprint);
    return runCli(args, { home, stdin: `${password}\n` });
  }

  /**
   * A controller built from the protocol primitives (relay client, handshake, sealed records) with
   * none of AttachSession's own rules: it sends whatever the test tells it to, whatever the
   * welcome said. For testing the host's checks, not the client's.
   */
  async rawController(
    user: TestUser,
    sessionId: string,
    hello: Partial<Hello> = {},
  ): Promise<RawController> {
    const { channel } = await this.openService(user, 'terminal', sessionId);
    const received: TerminalMessage[] = [];
    let resolveWelcome!: (w: Welcome) => void;
    let resolveClosed!: (c: { code: string; reason: string }) => void;
    const welcome = new Promise<Welcome>((r) => (resolveWelcome = r));
    const closed = new Promise<{ code: string; reason: string }>((r) => (resolveClosed = r));
    const send = (msg: TerminalMessage) => channel.send(encodeTerminal(msg));
    channel.setHandlers({
      onMessage: (payload) => {
        const msg = decodeTerminal(payload);
        received.push(msg);
        if (msg.type === 'welcome') resolveWelcome(msg.welcome);
      },
      onClose: (code, reason) => resolveClosed({ code, reason }),
    });
    send({
      type: 'hello',
      hello: { v: TERMINAL_PROTOCOL_VERSION, cols: 80, rows: 24, readOnly: false, ...hello },
    });
    return { welcome, closed, received, send };
  }

  async close(): Promise<void> {
    for (const fn of this.#closers.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    await this.relay?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What {@link Harness.rawController} gives a test: the welcome, the channel's close, raw sends. */
export interface RawController {
  welcome: Promise<Welcome>;
  /** Resolves when the channel closes (e.g. after a `bye`: the host answers with "detached"). */
  closed: Promise<{ code: string; reason: string }>;
  received: TerminalMessage[];
  send(msg: TerminalMessage): void;
}

/** A controller that records everything it receives and lets a test wait for text in it. */
export class Controller {
  readonly session: AttachSession;
  /** Output exactly as received (snapshots included), as latin1 to keep bytes 1:1. */
  text = '';
  /** Only the 'output' bytes, for byte-exact comparisons. */
  readonly outputChunks: Buffer[] = [];
  ended:
    | { exit?: { code: number }; error?: { code: string; message: string }; detached?: boolean }
    | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(session: AttachSession) {
    this.session = session;
    session.on('output', (d: Buffer) => {
      this.outputChunks.push(Buffer.from(d));
      this.#add(d);
    });
    session.on('snapshot', (d: Buffer) => this.#add(d));
    session.on('end', (end: Controller['ended']) => {
      this.ended = end;
      this.#wake();
    });
  }

  #add(d: Buffer): void {
    this.text += d.toString('latin1');
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  start() {
    return this.session.start();
  }

  type(text: string): void {
    this.session.input(Buffer.from(text));
  }

  /** Resolves once `predicate` holds over the received text (checked on every arrival). */
  waitFor(predicate: (text: string) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate(this.text)) {
          cleanup();
          resolve();
        } else if (this.ended) {
          cleanup();
          reject(
            new Error(`session ended (${JSON.stringify(this.ended)}) while waiting for ${what}`),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out waiting for ${what}; last output: ${JSON.stringify(this.text.slice(-300))}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  waitForText(needle: string | RegExp, timeoutMs?: number): Promise<void> {
    return this.waitFor(
      (t) => (typeof needle === 'string' ? t.includes(needle) : needle.test(t)),
      String(needle),
      timeoutMs,
    );
  }

  waitEnd(timeoutMs = 20_000): Promise<NonNullable<Controller['ended']>> {
    return this.waitFor(() => this.ended !== undefined, 'the session to end', timeoutMs).then(
      () => this.ended!,
    );
  }

  async close(): Promise<void> {
    if (!this.ended) await this.session.detach().catch(() => undefined);
  }
}

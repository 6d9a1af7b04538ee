// Shared integration-test helpers: a real relay on port 0, the real CLI binary, raw sockets for abuse.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { SwitchboardError } from '../src/protocol/errors.js';
import { KnownServers } from '../src/client/known-servers.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { WS_PATH } from '../src/protocol/limits.js';
import type { Params } from '../src/protocol/messages.js';
import { startRelay, type Relay, type RelayOptions } from '../src/server/relay.js';

/** The project root (holds bin/switchboard), found from this file whether compiled or not. */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
/** The CLI entry point the tests run, exactly as a user would. */
export const CLI = join(ROOT, 'bin', 'switchboard');

function findRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'bin', 'switchboard'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no bin/switchboard above ${from}`);
    dir = up;
  }
  return dir;
}

/**
 * Argon2id settings that make a login take a few milliseconds instead of tens. Production keeps
 * its defaults; a test passes these through `startTestRelay({ auth: { argon2: FAST_ARGON2 } })`
 * only where it logs in many times and the hash cost is not what it is testing.
 */
export const FAST_ARGON2 = Object.freeze({ memoryCost: 4096, timeCost: 1, parallelism: 1 });

// --- temporary directories ----------------------------------------------------------------------

const tempDirs = new Set<string>();

/** A fresh directory under the OS temp dir; removed by {@link removeTempDirs}. */
export function makeTempDir(prefix = 'switchboard-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes every directory made by {@link makeTempDir}; call it from an `after()` hook. */
export function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// --- relay --------------------------------------------------------------------------------------

export interface TestRelay {
  /** The running relay (a new object after `restart()`). */
  readonly relay: Relay;
  /** "127.0.0.1:PORT": what clients pass as --server. */
  readonly server: string;
  readonly port: number;
  /** The certificate fingerprint of the running relay (changes only if the cert does). */
  readonly fingerprint: string;
  readonly dataDir: string;
  /** Closes the relay (if still open) and starts it again on the same port and data dir. */
  restart(overrides?: Partial<RelayOptions>): Promise<void>;
  /** Closes the relay and deletes its data dir (unless the caller supplied the dir). */
  close(): Promise<void>;
}

/**
 * Starts a real relay on 127.0.0.1, port 0, with a fresh SQLite file and certificate in a temp dir.
 *
 * @example const r = await startTestRelay(); after(() => r.close()); // r.server, r.fingerprint
 */
export async function startTestRelay(opts: Partial<RelayOptions> = {}): Promise<TestRelay> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'switchboard-relay-'));
  let relay = await startRelay({ host: '127.0.0.1', port: 0, ...opts, dataDir });
  const port = relay.port;
  return {
    get relay() {
      return relay;
    },
    server: `127.0.0.1:${port}`,
    port,
    get fingerprint() {
      return relay.certificate.fingerprint;
    },
    dataDir,
    async restart(overrides = {}) {
      await relay.close();
      relay = await startRelay({ host: '127.0.0.1', ...opts, ...overrides, port, dataDir });
    },
    async close() {
      await relay.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The relays and clients one test file opens, so that its after() hook can close them all even
 * when a test failed half-way.
 *
 * @example const opened = new Opened(); after(() => opened.close()); const r = await opened.relay();
 */
export class Opened {
  readonly #relays = new Set<TestRelay>();
  readonly #clients = new Set<RelayClient>();
  readonly #defaults: Partial<RelayOptions>;

  /** `defaults` go to every relay this file starts (a test's own options override them). */
  constructor(defaults: Partial<RelayOptions> = {}) {
    this.#defaults = defaults;
  }

  async relay(opts: Partial<RelayOptions> = {}): Promise<TestRelay> {
    const r = await startTestRelay({ ...this.#defaults, ...opts });
    this.#relays.add(r);
    return r;
  }

  /** A connected client (hello done, not logged in), pinning `target`'s certificate in `home`. */
  async client(
    target: RelayAddress,
    home = makeTempDir('switchboard-home-'),
  ): Promise<RelayClient> {
    return this.track(await connectClient(target.server, target.fingerprint, home));
  }

  /** Closes `c` with the others in close(). */
  track(c: RelayClient): RelayClient {
    this.#clients.add(c);
    return c;
  }

  /** Terminates every client, closes every relay and removes the temporary directories. */
  async close(): Promise<void> {
    for (const c of this.#clients) c.terminate();
    await Promise.all([...this.#relays].map((r) => r.close()));
    removeTempDirs();
  }
}

// --- CLI ----------------------------------------------------------------------------------------

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunCliOptions {
  /** SWITCHBOARD_HOME for this run. */
  home: string;
  /** Written to the child's standard input, which is then closed (there is never a TTY). */
  stdin?: string;
  /** Extra environment; SWITCHBOARD_* from the test's own environment are dropped first. */
  env?: NodeJS.ProcessEnv;
  /** The child is killed and the promise rejects after this long. Default 30 s. */
  timeoutMs?: number;
}

/** Runs `bin/switchboard ARGS` as a child process with pipes (no TTY). */
export function runCli(args: string[], opts: RunCliOptions): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  // Direct connections between clients are accepted on loopback only, as every test server.
  env['SWITCHBOARD_DIRECT_HOST'] = '127.0.0.1';
  Object.assign(env, opts.env, { SWITCHBOARD_HOME: opts.home });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => undefined); // the CLI may exit without reading its input
    child.stdin.end(opts.stdin ?? '');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `switchboard ${args.join(' ')} did not finish within ${timeoutMs} ms\n` +
            `stdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What the CLI helpers need to reach a relay. */
export interface RelayAddress {
  server: string;
  fingerprint: string;
}

/**
 * Signs up `name` and logs in through the CLI in a fresh home (pinning with --fingerprint).
 * Returns the home directory, which then holds login.json and the device key.
 */
export async function makeUser(
  target: RelayAddress,
  name: string,
  password: string,
  home = makeTempDir('switchboard-home-'),
): Promise<string> {
  const args = ['signup', '--user', name, '--password-stdin'];
  args.push('--server', target.server, '--fingerprint', target.fingerprint);
  const result = await runCli(args, { home, stdin: `${password}\n` });
  if (result.code !== 0)
    throw new Error(`signup of ${name} failed (exit ${result.code}): ${result.stderr}`);
  return home;
}

/** Logs an existing user in through the CLI in `home` (a fresh one by default). */
export async function loginUser(
  target: RelayAddress,
  name: string,
  password: string,
  home = makeTempDir('switchboard-home-'),
): Promise<string> {
  const args = ['login', '--user', name, '--password-stdin'];
  args.push('--server', target.server, '--fingerprint', target.fingerprint);
  const result = await runCli(args, { home, stdin: `${password}\n` });
  if (result.code !== 0)
    throw new Error(`login of ${name} failed (exit ${result.code}): ${result.stderr}`);
  return home;
}

/** The login the CLI saved in `home`. */
export function savedLogin(home: string): { server: string; user: string; token: string } {
  return JSON.parse(readFileSync(join(home, 'login.json'), 'utf8')) as {
    server: string;
    user: string;
    token: string;
  };
}

/** A `switchboard serve` child process, as an operator runs it. */
export interface ServeProcess {
  child: ChildProcess;
  port: number;
  /** "127.0.0.1:PORT" */
  server: string;
  /** The fingerprint the relay printed at start. */
  fingerprint: string;
  /** Everything written so far (stderr carries the JSON logs). */
  output(): { stdout: string; stderr: string };
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `bin/switchboard serve --host 127.0.0.1 --port 0 --data-dir DIR ...extra` and resolves
 * once it has printed its port and fingerprint. Rejects (and kills it) after `timeoutMs`.
 */
export function startServeProcess(
  dataDir: string,
  extra: string[] = [],
  timeoutMs = 30_000,
): Promise<ServeProcess> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, ...extra];
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = /listening on \S+:(\d+) [^\n]*\n[^\n]*fingerprint:\n\s+([0-9A-Fa-f:]{95})/.exec(
        stdout,
      );
      if (!m) return;
      clearTimeout(timer);
      const port = Number(m[1]);
      resolve({
        child,
        port,
        server: `127.0.0.1:${port}`,
        fingerprint: m[2]!,
        output: () => ({ stdout, stderr }),
        exited,
      });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited early (${code ?? signal})\n${stdout}\n${stderr}`));
    });
  });
}

// --- clients ------------------------------------------------------------------------------------

/** A RelayClient (hello done, not logged in) trusting `fingerprint`, pinning into `home`. */
export function connectClient(
  server: string,
  fingerprint: string,
  home: string,
): Promise<RelayClient> {
  return RelayClient.connect({
    server,
    trust: { knownServers: new KnownServers(join(home, 'known_servers.json')), fingerprint },
  });
}

/** A `session.register` for an agent with a fresh instance, nobody allowed but its owner. */
export function registration(
  sessionId: string,
  hostName = 'test-host',
): Params<'session.register'> {
  return {
    sessionId,
    kind: 'agent',
    instance: randomBytes(16).toString('hex'),
    hostName,
    allow: [],
    viewers: [],
  };
}

/** A fresh device identity in the shape `auth.login` takes. */
export function newDevice(name = 'test-device'): { publicKey: string; name: string } {
  return { publicKey: generateDeviceKey().publicKey.toString('base64'), name };
}

/** A TLS socket to the relay that trusts anything: for byte-level tests. */
export function openRawTls(port: number, host = '127.0.0.1'): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** A message the relay sent on a raw WebSocket, parsed from JSON. */
export type RawMessage = Record<string, unknown>;

/**
 * A WebSocket to `wss://127.0.0.1:PORT/v1/ws` that trusts any certificate and speaks no
 * protocol on its own: the test sends what it likes and reads replies in order.
 */
export class RawWs {
  readonly ws: WebSocket;
  /** Resolves when the socket closes, with the close code and reason the relay gave. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #queue: RawMessage[] = [];
  #waiter: (() => void) | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.#queue.push(JSON.parse(String(data)) as RawMessage);
      this.#waiter?.();
    });
    ws.on('error', () => undefined); // 'close' carries the outcome
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#waiter?.();
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawWs> {
    const ws = new WebSocket(`wss://${host}:${port}${WS_PATH}`, {
      rejectUnauthorized: false,
      perMessageDeflate: false,
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new RawWs(ws));
      });
      ws.once('error', reject);
    });
  }

  send(data: string | Buffer | object): void {
    this.ws.send(typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data));
  }

  /** The next JSON message from the relay; rejects on timeout or if the socket closes first. */
  async next(timeoutMs = 5_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('the relay closed the socket');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message from the relay within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    return this.#queue.shift()!;
  }

  /** Sends a message and returns the relay's next message. */
  async exchange(data: string | Buffer | object, timeoutMs?: number): Promise<RawMessage> {
    this.send(data);
    return this.next(timeoutMs);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** GET over HTTPS without verifying the certificate; resolves with status and body text. */
export function httpsGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return getText(httpsRequest, port, path, headers);
}

/** GET over plain HTTP (a relay's --plain-port); resolves with status and body text. */
export function httpGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return getText(httpRequest, port, path, headers);
}

function getText(
  request: typeof httpsRequest | typeof httpRequest,
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'GET',
        headers,
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// --- waiting ------------------------------------------------------------------------------------

/**
 * Polls `predicate` until it returns true; rejects after `timeoutMs` with `what` in the message.
 * For conditions with no event to wait on (presence in users.list, a file appearing).
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Settles to the SwitchboardError code it rejects with, or 'OK'. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (err instanceof SwitchboardError) return err.code;
    throw err;
  }
}

/** The SwitchboardError `p` rejects with; fails the test if it resolves or rejects otherwise. */
export async function refusal(p: Promise<unknown>): Promise<SwitchboardError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SwitchboardError, `a SwitchboardError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

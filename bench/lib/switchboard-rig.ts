// Switchboard on loopback for the terminal benchmark: relay and agent as child processes, controllers here.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AttachSession } from '../../src/client/attach-session.js';
import { KnownPeers } from '../../src/client/known-peers.js';
import { KnownServers } from '../../src/client/known-servers.js';
import { RelayClient } from '../../src/client/relay-client.js';
import { FILES, Home } from '../../src/cli/home.js';
import { OutputWatch } from './output-watch.js';
import { Child, settlesWithin } from '../../src/bench/child.js';
import { ptyTerminal, type RemoteTerminal } from './remote-terminal.js';

const HOST_USER = 'benchhost';
const CONTROLLER_USER = 'benchctl';
const SESSION_ID = 'bench-terminal';
/** Time for the relay and the agent to come up, and for a signup (default Argon2 cost). */
const START_TIMEOUT_MS = 30_000; // ms

/**
 * The Switchboard processes of a rig: `bin/switchboard` children (a relay, agents) stopped by
 * `stop()`, the relay's address, and CLI logins. Timeouts are `startTimeoutMs` each.
 */
export class SwitchboardProcesses {
  readonly children: Child[] = [];
  server = '';
  fingerprint = '';
  relayPid: number | undefined;
  readonly #root: string;
  readonly #startTimeoutMs: number;

  constructor(root: string, startTimeoutMs: number) {
    this.#root = root;
    this.#startTimeoutMs = startTimeoutMs;
  }

  get bin(): string {
    return join(this.#root, 'bin', 'switchboard');
  }

  /** `node [nodeArgs] bin/switchboard args…` as a long-running child. */
  spawn(name: string, nodeArgs: string[], args: string[], env: NodeJS.ProcessEnv = {}): Child {
    const child = new Child(name, process.execPath, [...nodeArgs, this.bin, ...args], {
      ...process.env,
      ...env,
    });
    this.children.push(child);
    return child;
  }

  /** `switchboard serve` on 127.0.0.1 (defaults otherwise), once it prints port and fingerprint. */
  async startRelay(dataDir: string, nodeArgs: string[]): Promise<void> {
    const relay = this.spawn('relay', nodeArgs, [
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
    ]);
    const m = await relay.waitForStdout(
      /listening on 127\.0\.0\.1:(\d+) [^\n]*\n[^\n]*fingerprint:\n\s+([0-9A-Fa-f:]{95})/,
      this.#startTimeoutMs,
    );
    this.server = `127.0.0.1:${m[1]}`;
    this.fingerprint = m[2]!;
    this.relayPid = relay.pid;
  }

  /** `switchboard signup` or `login` through the CLI into `home`, the password on stdin. */
  account(how: 'signup' | 'login', home: string, user: string): Promise<void> {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const args = [this.bin, how, '--user', user, '--password-stdin'];
    args.push('--server', this.server, '--fingerprint', this.fingerprint);
    return new Promise((resolve, reject) => {
      const child = execFile(
        process.execPath,
        args,
        { env: { ...process.env, SWITCHBOARD_HOME: home }, timeout: this.#startTimeoutMs },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`${how} ${user} failed: ${err.message}\n${stdout}${stderr}`))
            : resolve(),
      );
      child.stdin!.end(`${user}-bench-password\n`);
    });
  }

  /** `switchboard agent` from `home` serving `session` to `allow`, once it prints the session id. */
  async startAgent(o: {
    name: string;
    nodeArgs: string[];
    home: string;
    session: string;
    allow: string;
    shell: string;
    extraArgs?: string[];
  }): Promise<Child> {
    const agent = this.spawn(
      o.name,
      o.nodeArgs,
      [
        'agent',
        '--session',
        o.session,
        '--allow',
        o.allow,
        '--shell',
        o.shell,
        ...(o.extraArgs ?? []),
      ],
      { SWITCHBOARD_HOME: o.home },
    );
    await agent.waitForStdout(new RegExp(`^${o.session}$`, 'm'), this.#startTimeoutMs);
    return agent;
  }
}

export interface SwitchboardRigOptions {
  /** Repository root (holds bin/switchboard). */
  root: string;
  /** Scratch directory, removed by the caller. */
  dir: string;
  /** The shell the agent runs for each attach (as `SHELL -l`). */
  shell: string;
  /** The controller's terminal size. */
  cols: number;
  rows: number;
  /** Extra Node.js options for the relay, the agent and `switchboard attach` (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export class SwitchboardRig extends SwitchboardProcesses {
  readonly #o: SwitchboardRigOptions;
  agentPid: number | undefined;
  #controllerHome = '';

  constructor(options: SwitchboardRigOptions) {
    super(options.root, START_TIMEOUT_MS);
    this.#o = options;
  }

  get #nodeArgs(): string[] {
    return this.#o.nodeArgs ?? [];
  }

  /** Relay, two accounts signed up through the CLI, and an agent serving SESSION_ID. */
  async start(): Promise<void> {
    const { dir } = this.#o;
    await this.startRelay(join(dir, 'relay'), this.#nodeArgs);

    const hostHome = join(dir, 'home-host');
    this.#controllerHome = join(dir, 'home-controller');
    await this.account('signup', hostHome, HOST_USER);
    await this.account('signup', this.#controllerHome, CONTROLLER_USER);

    const agent = await this.startAgent({
      name: 'agent',
      nodeArgs: this.#nodeArgs,
      home: hostHome,
      session: SESSION_ID,
      allow: CONTROLLER_USER,
      shell: this.#o.shell,
    });
    this.agentPid = agent.pid;
  }

  /** The controller in this process: AttachSession over a fresh logged-in relay connection. */
  openInProcess(): RemoteTerminal & { attachedAt: Promise<number> } {
    const home = new Home(this.#controllerHome);
    const login = home.login();
    if (!login) throw new Error(`no login in ${this.#controllerHome}`);
    const trust = {
      knownServers: new KnownServers(home.path(FILES.knownServers)),
      fingerprint: this.fingerprint,
    };
    const session = new AttachSession({
      sessionId: SESSION_ID,
      readOnly: false,
      user: login.user,
      key: home.deviceKey(),
      server: login.server,
      knownPeers: new KnownPeers(home.path(FILES.knownPeers)),
      connect: async () => {
        const client = await RelayClient.connect({ server: login.server, trust });
        try {
          await client.request('auth.token', { token: login.token });
          return client;
        } catch (err) {
          client.close();
          throw err;
        }
      },
      cols: this.#o.cols,
      rows: this.#o.rows,
      term: 'xterm-256color',
    });
    const output = new OutputWatch();
    session.on('output', (data: Buffer) => output.push(data));
    session.on('snapshot', (data: Buffer) => output.push(data));
    const ended = new Promise<void>((resolve) =>
      session.once('end', (end: { exit?: { code: number }; error?: Error }) => {
        output.end(
          end.exit
            ? `the remote shell exited (${end.exit.code})`
            : `the session ended (${end.error?.message ?? 'detached'})`,
        );
        resolve();
      }),
    );
    const attachedAt = new Promise<number>((resolve, reject) => {
      session.once('attached', () => resolve(performance.now()));
      session.start().catch(reject);
    });
    attachedAt.catch(() => undefined); // reported through `ended` and the output waits
    return {
      output,
      write: (data) => void session.input(Buffer.from(data)),
      ended,
      attachedAt,
      close: async () => {
        await session.detach();
        await settlesWithin(ended, 3_000);
      },
    };
  }

  /** `switchboard attach` as a person runs it: a new node process on a PTY. */
  openCli(): RemoteTerminal {
    return ptyTerminal('switchboard attach', {
      file: process.execPath,
      args: [...this.#nodeArgs, this.bin, 'attach', SESSION_ID],
      cwd: this.#o.dir,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: process.env['HOME'] ?? this.#o.dir,
        TERM: 'xterm-256color',
        LANG: 'C.UTF-8',
        SWITCHBOARD_HOME: this.#controllerHome,
      },
      cols: this.#o.cols,
      rows: this.#o.rows,
    });
  }

  /** The TLS version and cipher the relay negotiates with a Node client. */
  async tlsInfo(): Promise<string> {
    const [host, port] = this.server.split(':');
    return new Promise((resolve) => {
      const socket = tlsConnect({ host, port: Number(port), rejectUnauthorized: false }, () => {
        const info = `${socket.getProtocol()} ${socket.getCipher().standardName}`;
        socket.destroy();
        resolve(info);
      });
      socket.setTimeout(5_000, () => {
        socket.destroy();
        resolve('unknown');
      });
      socket.once('error', () => resolve('unknown'));
    });
  }

  /** Stops the agent (ending its shells), then the relay. */
  async stop(): Promise<void> {
    for (const child of [...this.children].reverse()) await child.stop();
  }
}

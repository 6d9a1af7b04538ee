// The two fleets of the exec benchmark on loopback: a relay with agent processes, and one sshd for pssh.
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './child.js';
import type { OpenSshTools } from './openssh-rig.js';

/** Time for the relay or one agent to come up, and for one signup or login (default Argon2). */
const START_TIMEOUT_MS = 60_000; // ms
/** apt-get update + install, generously. */
const INSTALL_TIMEOUT_MS = 300_000; // ms
/** Debian's hook that stops package scripts from starting services; 101 = "not allowed". */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
/** sshd's privilege-separation directory on Debian; it refuses to start as root without it. */
const PRIVSEP_DIR = '/run/sshd';

// ---------------------------------------------------------------------------------------------
// /proc readings (Linux)

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticks = Number(r.stdout?.trim());
    if (!Number.isFinite(ticks) || ticks <= 0) ticks = 100; // the usual Linux value
  }
  return ticks;
}

/** CPU seconds of a process itself and of its children it has waited for (utime+stime, cutime+cstime). */
export interface ProcCpu {
  self: number;
  children: number;
}

/** CPU seconds from /proc/PID/stat (`self` for this process); undefined once it has gone. */
export function procCpu(pid: number | 'self' | undefined): ProcCpu | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are 14 to 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const t = clockTicks();
    return {
      self: (Number(f[11]) + Number(f[12])) / t,
      children: (Number(f[13]) + Number(f[14])) / t,
    };
  } catch {
    return undefined;
  }
}

/** Resident and proportional set size in KiB (PSS splits pages shared between processes). */
export function procMemory(
  pid: number | undefined,
): { rssKiB: number; pssKiB: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1]);
    return { rssKiB: field('Rss'), pssKiB: field('Pss') };
  } catch {
    return undefined;
  }
}

/** CPU seconds the whole machine has spent busy (every process, kernel included), from /proc/stat. */
export function machineCpuSeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  // cpu user nice system idle iowait irq softirq steal (guest time is already in user).
  const [user, nice, system, , , irq, softirq, steal] = fields.slice(1, 9).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / clockTicks();
}

/** MemAvailable from /proc/meminfo, in KiB. */
export function memAvailableKiB(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m?.[1] ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Switchboard: a relay, a controller account, and agent processes owned by two host accounts

/** Runs `fn` over `items`, at most `limit` at once; rejects with the first failure. */
export async function inPool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface FleetOptions {
  /** Repository root (holds bin/switchboard). */
  root: string;
  /** Scratch directory, removed by the caller. */
  dir: string;
  /** Agents to start. */
  agents: number;
  /** The tags of agent `i` (0-based), as KEY=VALUE. */
  tags: (i: number) => string[];
  /** Extra Node.js options for the relay and the first agent (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Called once the first agent is up and idle; throws to stop before starting the rest. */
  afterFirst?: (pid: number) => Promise<void>;
}

const CONTROLLER_USER = 'benchctl';
/** Agents are dealt alternately to these accounts: 50 each at most, the relay's default limits. */
const HOST_USERS = ['benchfleeta', 'benchfleetb'];
/** Logins and agent starts at once: each is a Node.js start-up on 2 cores. */
const START_CONCURRENCY = 6;

export function agentSessionId(i: number): string {
  return `bench-${String(i).padStart(3, '0')}`;
}

export class SwitchboardFleet {
  readonly #o: FleetOptions;
  readonly #children: Child[] = [];
  server = '';
  fingerprint = '';
  relayPid: number | undefined;
  readonly agentPids: number[] = [];
  readonly controllerHome: string;

  constructor(options: FleetOptions) {
    this.#o = options;
    this.controllerHome = join(options.dir, 'home-controller');
  }

  get bin(): string {
    return join(this.#o.root, 'bin', 'switchboard');
  }

  /** The relay (defaults, but for loopback), the accounts, then every agent, waiting for each. */
  async start(): Promise<void> {
    const { dir } = this.#o;
    const relay = this.#spawn('relay', this.#o.nodeArgs ?? [], [
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      join(dir, 'relay'),
      '--log-level',
      'warn',
    ]);
    const m = await relay.waitForStdout(
      /listening on 127\.0\.0\.1:(\d+) [^\n]*\n[^\n]*fingerprint:\n\s+([0-9A-Fa-f:]{95})/,
      START_TIMEOUT_MS,
    );
    this.server = `127.0.0.1:${m[1]}`;
    this.fingerprint = m[2]!;
    this.relayPid = relay.pid;

    await this.#account('signup', this.controllerHome, CONTROLLER_USER);
    const hosts = Array.from({ length: this.#o.agents }, (_, i) => i);
    // Each agent has its own home and device key, as on its own machine; the first of each
    // account signs it up, the others log in to it.
    const homes = hosts.map((i) => join(dir, 'agents', agentSessionId(i)));
    const userOf = (i: number) => HOST_USERS[i % HOST_USERS.length]!;
    for (const i of hosts.slice(0, HOST_USERS.length))
      await this.#account('signup', homes[i]!, userOf(i));
    await inPool(hosts.slice(HOST_USERS.length), START_CONCURRENCY, (i) =>
      this.#account('login', homes[i]!, userOf(i)),
    );
    await this.#agent(0, homes[0]!, this.#o.nodeArgs ?? []);
    await this.#o.afterFirst?.(this.agentPids[0]!);
    await inPool(hosts.slice(1), START_CONCURRENCY, (i) => this.#agent(i, homes[i]!, []));
  }

  async #agent(i: number, home: string, nodeArgs: string[]): Promise<void> {
    const id = agentSessionId(i);
    const tags = this.#o.tags(i).flatMap((t) => ['--tag', t]);
    const agent = this.#spawn(
      `agent ${id}`,
      nodeArgs,
      ['agent', '--session', id, '--allow', CONTROLLER_USER, '--shell', '/bin/sh', ...tags],
      { SWITCHBOARD_HOME: home },
    );
    await agent.waitForStdout(new RegExp(`^${id}$`, 'm'), START_TIMEOUT_MS);
    this.agentPids[i] = agent.pid!;
  }

  #spawn(name: string, nodeArgs: string[], args: string[], env: NodeJS.ProcessEnv = {}): Child {
    const child = new Child(name, process.execPath, [...nodeArgs, this.bin, ...args], {
      ...process.env,
      ...env,
    });
    this.#children.push(child);
    return child;
  }

  #account(how: 'signup' | 'login', home: string, user: string): Promise<void> {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const args = [this.bin, how, '--user', user, '--password-stdin'];
    args.push('--server', this.server, '--fingerprint', this.fingerprint);
    return new Promise((resolve, reject) => {
      const child = execFile(
        process.execPath,
        args,
        { env: { ...process.env, SWITCHBOARD_HOME: home }, timeout: START_TIMEOUT_MS },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`${how} ${user} failed: ${err.message}\n${stdout}${stderr}`))
            : resolve(),
      );
      child.stdin!.end(`${user}-bench-password\n`);
    });
  }

  /** Stops every agent at once (each gets SIGTERM, then SIGKILL after a grace), then the relay. */
  async stop(): Promise<void> {
    const [relay, ...agents] = this.#children;
    await Promise.all(agents.map((c) => c.stop()));
    await relay?.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// OpenSSH: pssh from Debian, and one private sshd that takes 100 connections at once

function which(names: string[]): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/bin'];
  for (const name of names)
    for (const d of dirs) {
      const p = join(d, name);
      if (p.startsWith('/') && existsSync(p)) return p;
    }
  return undefined;
}

/** pssh's program (Debian names it parallel-ssh) and its version line. */
export interface PsshTool {
  path: string;
  version: string;
}

function findPssh(): PsshTool | undefined {
  const path = which(['parallel-ssh', 'pssh']);
  if (!path) return undefined;
  const v = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return { path, version: `${path.split('/').pop()} ${`${v.stdout}${v.stderr}`.trim()}` };
}

/**
 * Finds parallel-ssh (or pssh); as root with apt-get, installs Debian's `pssh` when missing.
 * Returns the reason as a string when it cannot be had.
 */
export function ensurePssh(log: (text: string) => void): PsshTool | string {
  const found = findPssh();
  if (found) return found;
  if (process.getuid?.() !== 0)
    return 'pssh (parallel-ssh) is not installed and this is not root: sudo apt-get install pssh';
  if (!which(['apt-get'])) return 'pssh is not installed and there is no apt-get to install it';
  log('installing pssh with apt-get (once; not timed)…');
  const ownPolicy = !existsSync(POLICY_RC_D);
  if (ownPolicy) writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'pssh']]) {
      const r = spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS });
      if (r.status !== 0)
        return (
          `apt-get ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n` +
          `${(r.stdout ?? '').slice(-1500)}${(r.stderr ?? '').slice(-1500)}`
        );
    }
  } finally {
    if (ownPolicy) unlinkSync(POLICY_RC_D);
  }
  return findPssh() ?? 'apt-get installed pssh, but neither parallel-ssh nor pssh is found';
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface SshFleetOptions {
  tools: OpenSshTools;
  /** Scratch directory, removed by the caller. */
  dir: string;
  /** Host aliases to write (sbh-000 …), each a separate host to pssh. */
  hosts: number;
}

/**
 * One sshd on 127.0.0.1 (fresh host key, one authorized client key), reached under `hosts`
 * distinct Host aliases so pssh runs one connection per alias; MaxStartups raised so 100
 * simultaneous handshakes are not dropped by sshd's default (10:30:100).
 */
export class SshFleet {
  readonly #o: SshFleetOptions;
  #sshd: Child | undefined;
  #madePrivsep = false;
  port = 0;
  readonly config: string;
  readonly knownHosts: string;

  constructor(options: SshFleetOptions) {
    this.#o = options;
    this.config = join(options.dir, 'ssh_config');
    this.knownHosts = join(options.dir, 'known_hosts');
  }

  get sshdPid(): number | undefined {
    return this.#sshd?.pid;
  }

  alias(i: number): string {
    return `sbh-${String(i).padStart(3, '0')}`;
  }

  /** A pssh hosts file naming the first `n` aliases. */
  hostsFile(n: number): string {
    const file = join(this.#o.dir, `hosts.${n}`);
    if (!existsSync(file))
      writeFileSync(file, Array.from({ length: n }, (_, i) => `${this.alias(i)}\n`).join(''));
    return file;
  }

  async start(): Promise<void> {
    const { dir, tools } = this.#o;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const hostKey = join(dir, 'host_ed25519');
    const clientKey = join(dir, 'client_ed25519');
    for (const key of [hostKey, clientKey]) {
      const r = spawnSync(tools.sshKeygen, [
        '-q',
        '-t',
        'ed25519',
        '-N',
        '',
        '-C',
        'bench',
        '-f',
        key,
      ]);
      if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr?.toString()}`);
    }
    const authorized = join(dir, 'authorized_keys');
    writeFileSync(authorized, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    chmodSync(authorized, 0o600);
    if (process.getuid?.() === 0 && !existsSync(PRIVSEP_DIR)) {
      mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
      this.#madePrivsep = true;
    }
    const user = process.env['USER'] ?? (process.getuid?.() === 0 ? 'root' : 'nobody');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const sshdConfig = join(dir, 'sshd_config');
      writeFileSync(
        sshdConfig,
        [
          `Port ${port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${hostKey}`,
          `PidFile ${join(dir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${authorized}`,
          'PermitRootLogin yes',
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'PrintMotd no',
          'PrintLastLog no',
          'UseDNS no',
          'X11Forwarding no',
          // Unauthenticated connections at once before sshd starts dropping them: pssh -p 100.
          'MaxStartups 300:30:600',
          // sshd runs each command through the user's login shell; Debian's bash, started by sshd
          // with a socket as stdin, sources ~/.bashrc unless SHLVL says it is nested. A heavy
          // .bashrc (here root's pyenv init, ~170 ms) would be measured as ssh's cost.
          'SetEnv SHLVL=1',
          'LogLevel ERROR',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      const sshd = new Child('sshd', tools.sshd, ['-D', '-e', '-f', sshdConfig], process.env);
      this.#sshd = sshd;
      let exited = false;
      void sshd.exited.then(() => (exited = true));
      const deadline = Date.now() + 10_000;
      while (!exited && Date.now() < deadline) {
        if (await canConnect(port)) {
          this.port = port;
          break;
        }
        await sleep(50);
      }
      if (this.port) break;
      await sshd.stop();
      if (attempt >= 3)
        throw new Error(`sshd did not start on 127.0.0.1:${port}\n${sshd.describe()}`);
    }
    writeFileSync(
      this.config,
      [
        'Host sbh-*',
        '  HostName 127.0.0.1',
        `  Port ${this.port}`,
        `  User ${user}`,
        `  IdentityFile ${clientKey}`,
        '  IdentitiesOnly yes',
        '  StrictHostKeyChecking no',
        `  UserKnownHostsFile ${this.knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  BatchMode yes',
        '  LogLevel ERROR',
        '  ControlMaster no',
        '  ControlPath none',
        '  Compression no',
        '  ForwardAgent no',
        '  UpdateHostKeys no',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  }

  /** Key exchange and cipher ssh and this sshd agree on (from one `ssh -v`). */
  negotiated(): string {
    const r = spawnSync(this.#o.tools.ssh, ['-F', this.config, '-v', this.alias(0), 'true'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    const kex = /kex: algorithm: (\S+)/.exec(r.stderr ?? '')?.[1] ?? 'unknown kex';
    const cipher =
      /kex: server->client cipher: (\S+)/.exec(r.stderr ?? '')?.[1] ?? 'unknown cipher';
    return `${cipher}, ${kex}`;
  }

  async stop(): Promise<void> {
    await this.#sshd?.stop();
    if (this.#madePrivsep) {
      try {
        rmdirSync(PRIVSEP_DIR);
      } catch {
        // Something else uses it now; leave it.
      }
    }
  }
}

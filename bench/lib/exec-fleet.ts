// The two fleets of the exec benchmark on loopback: a relay with agent processes, and one sshd for pssh.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Child } from '../../src/bench/child.js';
import { clockTicks } from '../../src/bench/proc.js';
import {
  PrivsepDir,
  makeSshKeys,
  negotiatedCrypto,
  startSshd,
  which,
  writeSshConfig,
  type OpenSshTools,
} from '../../src/bench/openssh.js';
import { aptGetInstall } from './openssh-rig.js';
import { SwitchboardProcesses } from './switchboard-rig.js';

/** Time for the relay or one agent to come up, and for one signup or login (default Argon2). */
const START_TIMEOUT_MS = 60_000; // ms

// ---------------------------------------------------------------------------------------------
// /proc readings (Linux)

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

export class SwitchboardFleet extends SwitchboardProcesses {
  readonly #o: FleetOptions;
  readonly agentPids: number[] = [];
  readonly controllerHome: string;

  constructor(options: FleetOptions) {
    super(options.root, START_TIMEOUT_MS);
    this.#o = options;
    this.controllerHome = join(options.dir, 'home-controller');
  }

  /** The relay (defaults, but for loopback), the accounts, then every agent, waiting for each. */
  async start(): Promise<void> {
    const { dir } = this.#o;
    await this.startRelay(join(dir, 'relay'), this.#o.nodeArgs ?? []);

    await this.account('signup', this.controllerHome, CONTROLLER_USER);
    const hosts = Array.from({ length: this.#o.agents }, (_, i) => i);
    // Each agent has its own home and device key, as on its own machine; the first of each
    // account signs it up, the others log in to it.
    const homes = hosts.map((i) => join(dir, 'agents', agentSessionId(i)));
    const userOf = (i: number) => HOST_USERS[i % HOST_USERS.length]!;
    for (const i of hosts.slice(0, HOST_USERS.length))
      await this.account('signup', homes[i]!, userOf(i));
    await inPool(hosts.slice(HOST_USERS.length), START_CONCURRENCY, (i) =>
      this.account('login', homes[i]!, userOf(i)),
    );
    await this.#agent(0, homes[0]!, this.#o.nodeArgs ?? []);
    await this.#o.afterFirst?.(this.agentPids[0]!);
    await inPool(hosts.slice(1), START_CONCURRENCY, (i) => this.#agent(i, homes[i]!, []));
  }

  async #agent(i: number, home: string, nodeArgs: string[]): Promise<void> {
    const id = agentSessionId(i);
    const agent = await this.startAgent({
      name: `agent ${id}`,
      nodeArgs,
      home,
      session: id,
      allow: CONTROLLER_USER,
      shell: '/bin/sh',
      extraArgs: this.#o.tags(i).flatMap((t) => ['--tag', t]),
    });
    this.agentPids[i] = agent.pid!;
  }

  /** Stops every agent at once (each gets SIGTERM, then SIGKILL after a grace), then the relay. */
  async stop(): Promise<void> {
    const [relay, ...agents] = this.children;
    await Promise.all(agents.map((c) => c.stop()));
    await relay?.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// OpenSSH: pssh from Debian, and one private sshd that takes 100 connections at once

/** pssh's program (Debian names it parallel-ssh) and its version line. */
export interface PsshTool {
  path: string;
  version: string;
}

function findPssh(): PsshTool | undefined {
  const path = which('parallel-ssh', 'pssh');
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
  if (!which('apt-get')) return 'pssh is not installed and there is no apt-get to install it';
  log('installing pssh with apt-get (once; not timed)…');
  const failed = aptGetInstall(['pssh']);
  if (failed) return failed;
  return findPssh() ?? 'apt-get installed pssh, but neither parallel-ssh nor pssh is found';
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
  #privsep: PrivsepDir | undefined;
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
    const keys = makeSshKeys(tools, dir);
    this.#privsep = new PrivsepDir();
    const user = process.env['USER'] ?? (process.getuid?.() === 0 ? 'root' : 'nobody');
    const { sshd, port } = await startSshd({
      tools,
      dir,
      name: 'fleet',
      keys,
      extraConfig: [
        // Unauthenticated connections at once before sshd starts dropping them: pssh -p 100.
        'MaxStartups 300:30:600',
        // sshd runs each command through the user's login shell; Debian's bash, started by sshd
        // with a socket as stdin, sources ~/.bashrc unless SHLVL says it is nested. A heavy
        // .bashrc (here root's pyenv init, ~170 ms) would be measured as ssh's cost.
        'SetEnv SHLVL=1',
      ],
    });
    this.#sshd = sshd;
    this.port = port;
    writeSshConfig(
      this.config,
      ['Host sbh-*', '  HostName 127.0.0.1', `  Port ${this.port}`, `  User ${user}`],
      { clientKey: keys.clientKey, knownHosts: this.knownHosts },
    );
  }

  /** Key exchange and cipher ssh and this sshd agree on (from one `ssh -v`). */
  negotiated(): string {
    return negotiatedCrypto(this.#o.tools.ssh, ['-F', this.config, this.alias(0), 'true']);
  }

  async stop(): Promise<void> {
    await this.#sshd?.stop();
    this.#privsep?.remove();
  }
}

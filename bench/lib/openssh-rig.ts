// OpenSSH on loopback for comparison: private sshds as jump host and target, ssh -J on a PTY.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './child.js';
import { pipeTerminal, ptyTerminal, type RemoteTerminal } from './remote-terminal.js';

/** Debian's hook that stops package scripts from starting services; 101 = "not allowed". */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
/** sshd's privilege-separation directory on Debian; it refuses to start as root without it. */
const PRIVSEP_DIR = '/run/sshd';
/** apt-get update + install, generously. */
const INSTALL_TIMEOUT_MS = 300_000; // ms
const START_TIMEOUT_MS = 10_000; // ms

export interface OpenSshTools {
  ssh: string;
  sshd: string;
  sshKeygen: string;
  version: string;
}

/** The first of `names` found on PATH or in the usual system directories. */
export function which(...names: string[]): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin'];
  for (const name of names) {
    const found = dirs.map((d) => join(d, name)).find((p) => p.startsWith('/') && existsSync(p));
    if (found) return found;
  }
  return undefined;
}

function findTools(): OpenSshTools | undefined {
  const ssh = which('ssh');
  const sshd = which('sshd');
  const sshKeygen = which('ssh-keygen');
  if (!ssh || !sshd || !sshKeygen) return undefined;
  const v = spawnSync(ssh, ['-V'], { encoding: 'utf8' });
  return { ssh, sshd, sshKeygen, version: `${v.stderr}${v.stdout}`.trim() };
}

/**
 * `apt-get update` and `apt-get install` of `packages`, without letting a package's postinst
 * start a service (e.g. sshd on 0.0.0.0:22) meanwhile. Returns the failure, if any, as a string.
 */
export function aptGetInstall(packages: string[]): string | undefined {
  const ownPolicy = !existsSync(POLICY_RC_D);
  if (ownPolicy) writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...packages]]) {
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
  return undefined;
}

/**
 * Finds ssh, sshd and ssh-keygen; as root on Debian/Ubuntu installs openssh-server and
 * openssh-client with apt-get when missing, without letting the package start a system sshd.
 * Returns the reason as a string when OpenSSH cannot be had.
 */
export function ensureOpenSsh(log: (text: string) => void): OpenSshTools | string {
  const found = findTools();
  if (found) return found;
  const wanted = 'openssh-server and openssh-client';
  if (process.getuid?.() !== 0)
    return (
      `OpenSSH (ssh, sshd, ssh-keygen) is not installed and this is not root, so it cannot be ` +
      `installed here. Install ${wanted} (sudo apt-get install openssh-server openssh-client) or ` +
      'run the benchmark as root.'
    );
  if (!which('apt-get'))
    return `OpenSSH is not installed and there is no apt-get to install it; install ${wanted} by hand.`;
  log(`installing ${wanted} with apt-get (once; not timed)…`);
  const failed = aptGetInstall(['openssh-server', 'openssh-client']);
  if (failed) return failed;
  return findTools() ?? `apt-get installed ${wanted}, but ssh/sshd/ssh-keygen are still not found`;
}

/** A free TCP port on loopback (the tiny race with other programs is retried by the caller). */
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

/** A fresh host key and client key in `dir`, the client's public key as the only authorized one. */
export interface SshKeys {
  hostKey: string;
  clientKey: string;
  authorized: string;
}

export function makeSshKeys(tools: OpenSshTools, dir: string): SshKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const key of [hostKey, clientKey])
    execFileSync(tools.sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key]);
  const authorized = join(dir, 'authorized_keys');
  execFileSync('cp', [`${clientKey}.pub`, authorized]);
  chmodSync(authorized, 0o600);
  return { hostKey, clientKey, authorized };
}

/**
 * sshd's privilege-separation directory, made when running as root without it; `remove()`
 * takes away only what this made.
 */
export class PrivsepDir {
  #made = false;

  constructor() {
    if (process.getuid?.() === 0 && !existsSync(PRIVSEP_DIR)) {
      mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
      this.#made = true;
    }
  }

  remove(): void {
    if (!this.#made) return;
    try {
      rmdirSync(PRIVSEP_DIR);
    } catch {
      // Something else uses it now; leave it.
    }
  }
}

/**
 * A private sshd on a free port of 127.0.0.1 that takes only the client key (up to three tries
 * for the port); `extraConfig` adds sshd_config lines.
 */
export async function startSshd(o: {
  tools: OpenSshTools;
  dir: string;
  name: string;
  keys: SshKeys;
  extraConfig: string[];
}): Promise<{ sshd: Child; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const sshdConfig = join(o.dir, `sshd_config.${o.name}`);
    writeFileSync(
      sshdConfig,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${o.keys.hostKey}`,
        `PidFile ${join(o.dir, `sshd.${o.name}.pid`)}`,
        `AuthorizedKeysFile ${o.keys.authorized}`,
        'PermitRootLogin yes',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The scratch directory lives under /tmp, which StrictModes would reject.
        'StrictModes no',
        'PrintMotd no',
        'PrintLastLog no',
        'X11Forwarding no',
        'UseDNS no',
        ...o.extraConfig,
        'LogLevel ERROR',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const sshd = new Child(
      `sshd (${o.name})`,
      o.tools.sshd,
      ['-D', '-e', '-f', sshdConfig],
      process.env,
    );
    const deadline = Date.now() + START_TIMEOUT_MS;
    let exited = false;
    void sshd.exited.then(() => (exited = true));
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) return { sshd, port };
      await sleep(50);
    }
    await sshd.stop();
    if (attempt >= 3)
      throw new Error(`sshd (${o.name}) did not start on 127.0.0.1:${port}\n${sshd.describe()}`);
  }
}

/** An ssh_config: `hostLines` (Host, and what else names the target), then fixed client options. */
export function writeSshConfig(
  file: string,
  hostLines: string[],
  o: { clientKey: string; knownHosts: string },
): void {
  writeFileSync(
    file,
    [
      ...hostLines,
      `  IdentityFile ${o.clientKey}`,
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking no',
      `  UserKnownHostsFile ${o.knownHosts}`,
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

/** Key exchange and cipher ssh and sshd agree on, from one `ssh -v` run with `args`. */
export function negotiatedCrypto(ssh: string, args: string[]): string {
  const r = spawnSync(ssh, ['-v', ...args], { encoding: 'utf8', timeout: START_TIMEOUT_MS });
  const kex = /kex: algorithm: (\S+)/.exec(r.stderr ?? '')?.[1] ?? 'unknown kex';
  const cipher = /kex: server->client cipher: (\S+)/.exec(r.stderr ?? '')?.[1] ?? 'unknown cipher';
  return `${cipher}, ${kex}`;
}

export interface OpenSshRigOptions {
  tools: OpenSshTools;
  /** Scratch directory, removed by the caller. */
  dir: string;
  /** The remote shell, run as `SHELL -l` like the switchboard agent runs it. */
  shell: string;
  cols: number;
  rows: number;
}

export class OpenSshRig {
  readonly #o: OpenSshRigOptions;
  readonly #user = userInfo().username;
  readonly #sshds: Child[] = [];
  #privsep: PrivsepDir | undefined;
  /** The jump host's port and the target's: two sshd processes, as ssh refuses a jump to itself. */
  jumpPort = 0;
  targetPort = 0;
  readonly #config: string;

  constructor(options: OpenSshRigOptions) {
    this.#o = options;
    this.#config = join(options.dir, 'ssh_config');
  }

  /** Keys, configs and two private sshds on 127.0.0.1 that accept only the fresh client key. */
  async start(): Promise<void> {
    const { dir, tools } = this.#o;
    const keys = makeSshKeys(tools, dir);
    this.#privsep = new PrivsepDir();
    this.jumpPort = await this.#startSshd('jump', keys);
    this.targetPort = await this.#startSshd('target', keys);
    // -o options do not reach the ProxyJump ssh; a config file given with -F does.
    writeSshConfig(this.#config, ['Host *', `  User ${this.#user}`], {
      clientKey: keys.clientKey,
      knownHosts: '/dev/null',
    });
  }

  async #startSshd(name: string, keys: SshKeys): Promise<number> {
    const { dir, tools } = this.#o;
    const { sshd, port } = await startSshd({
      tools,
      dir,
      name,
      keys,
      extraConfig: ['AllowTcpForwarding yes'],
    });
    this.#sshds.push(sshd);
    return port;
  }

  /** The ssh command line (without the program path) that reaches the shell through the jump. */
  get args(): string[] {
    const hop = `${this.#user}@127.0.0.1`;
    return [
      '-F',
      this.#config,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-tt',
      '-J',
      `${hop}:${this.jumpPort}`,
      '-p',
      String(this.targetPort),
      hop,
      `exec ${this.#o.shell} -l`,
    ];
  }

  /**
   * `ssh -J`, started on a PTY as a person would run it, or on pipes (`-tt` still gives the
   * remote shell its PTY) to leave out the local terminal, as the in-process controller does.
   */
  open(local: 'pty' | 'pipes'): RemoteTerminal {
    const options = {
      file: this.#o.tools.ssh,
      args: this.args,
      cwd: this.#o.dir,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        // Nothing from the user's own ~/.ssh (config, agent, known_hosts) takes part.
        HOME: this.#o.dir,
        TERM: 'xterm-256color',
        LANG: 'C.UTF-8',
      },
    };
    return local === 'pty'
      ? ptyTerminal('ssh', { ...options, cols: this.#o.cols, rows: this.#o.rows })
      : pipeTerminal('ssh', options);
  }

  /** Key exchange and cipher this ssh and sshd agree on (from one `ssh -v` login). */
  negotiated(): string {
    return negotiatedCrypto(this.#o.tools.ssh, [
      '-F',
      this.#config,
      '-p',
      String(this.targetPort),
      `${this.#user}@127.0.0.1`,
      'true',
    ]);
  }

  async stop(): Promise<void> {
    for (const sshd of this.#sshds) await sshd.stop();
    this.#privsep?.remove();
  }
}

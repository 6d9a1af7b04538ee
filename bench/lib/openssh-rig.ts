// OpenSSH on loopback for comparison: private sshds as jump host and target, ssh -J on a PTY.
import { spawnSync } from 'node:child_process';
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import type { Child } from '../../src/bench/child.js';
import {
  PrivsepDir,
  findOpenSsh,
  makeSshKeys,
  negotiatedCrypto,
  startSshd,
  which,
  writeSshConfig,
  type OpenSshTools,
  type SshKeys,
} from '../../src/bench/openssh.js';
import { pipeTerminal, ptyTerminal, type RemoteTerminal } from './remote-terminal.js';

/** Debian's hook that stops package scripts from starting services; 101 = "not allowed". */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
/** apt-get update + install, generously. */
const INSTALL_TIMEOUT_MS = 300_000; // ms

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
  const found = findOpenSsh();
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
  return (
    findOpenSsh() ?? `apt-get installed ${wanted}, but ssh/sshd/ssh-keygen are still not found`
  );
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

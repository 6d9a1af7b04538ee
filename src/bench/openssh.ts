// OpenSSH on loopback, for comparisons: the tools, fresh keys, private sshds that take only those
// keys, and an ssh_config. Used by `switchboard bench --compare-ssh` and the bench/ scripts.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './child.js';

/** sshd's privilege-separation directory on Debian; it refuses to start as root without it. */
const PRIVSEP_DIR = '/run/sshd';
const START_TIMEOUT_MS = 10_000; // ms
/** Between attempts to connect to an sshd that is starting. */
const CONNECT_POLL_MS = 50; // ms

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

export function findOpenSsh(): OpenSshTools | undefined {
  const ssh = which('ssh');
  const sshd = which('sshd');
  const sshKeygen = which('ssh-keygen');
  if (!ssh || !sshd || !sshKeygen) return undefined;
  const v = spawnSync(ssh, ['-V'], { encoding: 'utf8' });
  return { ssh, sshd, sshKeygen, version: `${v.stderr}${v.stdout}`.trim() };
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
      await sleep(CONNECT_POLL_MS);
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

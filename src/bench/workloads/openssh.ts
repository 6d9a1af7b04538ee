// `--compare-ssh`: the same terminal and exec operations through OpenSSH, as users reach a host
// behind a bastion today — `ssh -J` through a private jump sshd to a private target sshd, both on
// 127.0.0.1 with fresh keys. echo and stream run in `ssh -tt` sessions like the attached
// terminals; exec runs `echo ok` on a master connection each client keeps (ControlMaster), as
// our exec reuses the client's relay connection, so each operation is one new channel (plus the
// start of the `ssh` client process, which is part of using it).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { PrivsepDir, findOpenSsh, makeSshKeys, startSshd, writeSshConfig } from '../openssh.js';
import { echoClient, sshShell, streamClient } from '../terminal-client.js';
import type { BenchClient, Workload } from '../workload.js';

/** Time an ssh command (a master's login, one exec) may take. */
const SSH_TIMEOUT_MS = 30_000; // ms
/** Unauthenticated connections and sessions each sshd takes at once (defaults 10 and 10). */
const SSHD_LIMITS = ['MaxStartups 200', 'MaxSessions 200', 'AllowTcpForwarding yes'];

/** What the OpenSSH clients need: the ssh binary, its arguments to the target, its environment. */
export interface SshFixture {
  ssh: string;
  version: string;
  /** -F config and -J jump, then the target: append a command, or nothing for a shell. */
  args: string[];
  /** Without -J: for commands that go through a master connection. */
  direct: string[];
  dir: string;
  env: Record<string, string>;
}

/** Keys, two private sshds (the jump host and the target) and an ssh_config in `dir`. */
export async function prepareOpenSsh(
  dir: string,
  onCleanup: (stop: () => Promise<unknown>) => void,
): Promise<SshFixture> {
  const tools = findOpenSsh();
  if (!tools)
    throw new Error(
      '--compare-ssh needs OpenSSH (ssh, sshd, ssh-keygen): apt-get install openssh-client openssh-server',
    );
  const keys = makeSshKeys(tools, dir);
  const privsep = new PrivsepDir();
  onCleanup(async () => privsep.remove());
  const ports: number[] = [];
  for (const name of ['jump', 'target']) {
    const { sshd, port } = await startSshd({ tools, dir, name, keys, extraConfig: SSHD_LIMITS });
    onCleanup(() => sshd.stop());
    ports.push(port);
  }
  const user = userInfo().username;
  const config = join(dir, 'ssh_config');
  // -o options do not reach the ProxyJump ssh; a config file given with -F does.
  writeSshConfig(config, ['Host *', `  User ${user}`], {
    clientKey: keys.clientKey,
    knownHosts: '/dev/null',
  });
  const target = ['-p', String(ports[1]), `${user}@127.0.0.1`];
  return {
    ssh: tools.ssh,
    version: tools.version,
    args: ['-F', config, '-J', `${user}@127.0.0.1:${ports[0]}`, ...target],
    direct: ['-F', config, ...target],
    dir,
    // Nothing from the user's own ~/.ssh (config, agent, known_hosts) takes part.
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8' },
  };
}

/**
 * Runs `ssh ARGS…` to its end; resolves with its stdout, rejects on a non-zero exit. A master
 * that goes to the background (`-f`) keeps inherited pipes open: it gets none (`background`).
 */
function ssh(f: SshFixture, args: string[], background = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(f.ssh, args, {
      env: f.env,
      stdio: background ? 'ignore' : ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-500)));
    const timer = setTimeout(() => child.kill('SIGKILL'), SSH_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once(background ? 'exit' : 'close', (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`ssh exited (${code ?? signal}): ${err.trim() || out.trim()}`));
    });
  });
}

const sshWorkload = (
  name: string,
  describe: string,
  open: (f: SshFixture, index: number) => Promise<BenchClient>,
): Workload => ({
  name,
  describe,
  prepare: () => Promise.reject(new Error('OpenSSH rows use prepareOpenSsh')),
  open: (ctx) => open(ctx.data as SshFixture, ctx.index),
});

/** The OpenSSH counterparts, by the name of the workload they compare with. */
export const OPENSSH_WORKLOADS: Readonly<Record<string, Workload>> = {
  echo: sshWorkload('echo', '`ssh -tt -J`: a keystroke echoed by cat', async (f) =>
    echoClient(await sshShell(f.ssh, f.args, f.env)),
  ),
  stream: sshWorkload('stream', '`ssh -tt -J`: 1 MiB printed by yes | head', async (f) =>
    streamClient(await sshShell(f.ssh, f.args, f.env)),
  ),
  exec: sshWorkload(
    'exec',
    '`ssh -S master host echo ok` on a ControlMaster connection made through -J',
    async (f, index) => {
      const socket = join(
        f.dir,
        `master-${index}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      );
      // -f: ssh goes to the background once logged in, so its exit says the master is ready.
      await ssh(f, ['-f', '-N', '-M', '-S', socket, '-o', 'ControlPersist=no', ...f.args], true);
      return {
        async op() {
          const out = await ssh(f, [
            '-S',
            socket,
            '-o',
            'ControlMaster=no',
            ...f.direct,
            'echo ok',
          ]);
          if (out !== 'ok\n')
            throw new Error(`echo ok printed ${JSON.stringify(out.slice(0, 80))}`);
          return 0;
        },
        async close() {
          await ssh(f, ['-S', socket, '-O', 'exit', ...f.direct]).catch(() => undefined);
        },
      };
    },
  ),
};

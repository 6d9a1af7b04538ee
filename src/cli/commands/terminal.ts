// Remote terminal commands: share (interactive host), agent (unattended host), attach, sessions.
import { accessSync, constants as fsConstants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { constants as osConstants, hostname, userInfo } from 'node:os';
import { AttachSession, type ReconnectInfo } from '../../client/attach-session.js';
import { Backoff } from '../../client/backoff.js';
import { KnownPeers } from '../../client/known-peers.js';
import { PLAIN_SCHEME } from '../../client/tls-connect.js';
import { KnownServers } from '../../client/known-servers.js';
import { keyFingerprint } from '../../crypto/device-key.js';
import { APPROVAL_TIMEOUT_MS } from '../../host/timeouts.js';
import { ErrorCode, SwitchboardError, isTransient } from '../../protocol/errors.js';
import { SESSION_ID_RE, USERNAME_RE, type PeerInfo } from '../../protocol/messages.js';
import { authedConnector, withSession } from '../client-context.js';
import {
  CLIENT_OPTIONS,
  JSON_OPTION,
  bool,
  list,
  numberOption,
  str,
  type Command,
  type Invocation,
} from '../command.js';
import { EscapeScanner } from '../escape.js';
import { Exit, UsageError, exitCodeFor } from '../exit-codes.js';
import { writeFileAtomic } from '../../client/atomic-file.js';
import { FILES, type Home } from '../home.js';
import { ago, json, table } from '../output.js';
import { TAG_OPTION, tagsOption } from '../tags.js';
import type { ExecRecord } from '../../host/services/exec.js';
import type { PushRecord } from '../../host/services/push.js';
import { LocalTerminal } from '../terminal-io.js';

const RESUME_FILE = 'attachments.json';
/**
 * share: how long, after the shell exits, controllers get to receive the exit before the host
 * stops anyway. A deliberate bound, not synchronisation: a controller whose output window is full
 * and that acknowledges nothing would otherwise keep the sharer's terminal from returning.
 */
const SHARE_EXIT_DELIVERY_TIMEOUT_MS = 2_000; // ms

/**
 * The host side (PTY, headless emulator, host session), loaded only by share and agent: attach
 * starts faster without the emulator (measured in docs/performance.md).
 */
async function hostModules() {
  const [{ HostSession, DEFAULT_SERVICES }, { spawnPty }, { TerminalStream }] = await Promise.all([
    import('../../host/host-session.js'),
    import('../../host/pty.js'),
    import('../../host/terminal-stream.js'),
  ]);
  return { HostSession, DEFAULT_SERVICES, spawnPty, TerminalStream };
}

/** `agent --policy FILE`, checked at start: an invalid file is a usage error naming the line. */
async function policyOption(inv: Invocation) {
  const file = str(inv, 'policy');
  if (file === undefined) return undefined;
  const { loadPolicy, PolicyError } = await import('../../host/policy-file.js');
  const path = resolvePath(file);
  try {
    return { path, policy: loadPolicy(path), load: () => loadPolicy(path), PolicyError };
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`--policy: ${err.message}`);
    throw err;
  }
}

/**
 * What a newcomer needs to join a share: the whole command, relay address and certificate
 * fingerprint included (the relay's pin, as this client trusts it), and how to get an account.
 */
function joinInstructions(home: Home, server: string, id: string): string {
  const pin = new KnownServers(home.path(FILES.knownServers)).get(server);
  const trust = pin && pin.via !== 'ca' ? ` --fingerprint ${pin.fingerprint}` : '';
  const page = server.startsWith(PLAIN_SCHEME)
    ? `http://${server.slice(PLAIN_SCHEME.length)}`
    : `https://${server}`;
  return (
    `others attach with: switchboard attach ${id} --server ${server}${trust}\n` +
    `or in a browser: ${page}/#attach=${id}\n` +
    `no account on this relay yet? switchboard signup --server ${server}${trust} --user NAME`
  );
}

function usersOption(inv: Invocation, name: string): string[] {
  const users = list(inv, name);
  for (const u of users)
    if (!USERNAME_RE.test(u)) throw new UsageError(`--${name}: "${u}" is not a user name`);
  return users;
}

function sessionOption(value: string | undefined): string | undefined {
  if (value !== undefined && !SESSION_ID_RE.test(value))
    throw new UsageError(`session IDs are 3-64 letters, digits and dashes; "${value}" is not`);
  return value;
}

function shellOf(inv: Invocation): string {
  const shell = str(inv, 'shell') ?? inv.io.env['SHELL'] ?? userInfo().shell ?? '/bin/sh';
  if (!existsSync(shell)) throw new UsageError(`shell ${shell} does not exist; pass --shell PATH`);
  return shell;
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

/** What share and agent hosts have in common: identity, policy, pins and the relay connector. */
function hostBase(inv: Invocation, conn: Connector, kind: 'share' | 'agent') {
  return {
    hostName: hostname(),
    policy: {
      owner: conn.me.user,
      kind,
      allow: usersOption(inv, 'allow'),
      viewers: usersOption(inv, 'viewers'),
    },
    key: conn.home.deviceKey(),
    server: conn.login.server,
    knownPeers: new KnownPeers(conn.home.path(FILES.knownPeers)),
    ...(bool(inv, 'strict-keys') ? { newDevice: 'refuse' as const } : {}),
    connect: conn.connect,
  };
}

type Connector = Awaited<ReturnType<typeof authedConnector>>;

/**
 * `--allow` and `--viewers` must name accounts that exist: a typo would otherwise let in whoever
 * later signs up under it. Refused with the list of unknown names unless `--allow-unknown`
 * (then a warning). Checked once at start, through the relay's key directory.
 */
async function checkNamedUsers(inv: Invocation, conn: Connector, warn: (text: string) => void) {
  const named = [...new Set([...usersOption(inv, 'allow'), ...usersOption(inv, 'viewers')])];
  const unknown: string[] = [];
  for (const user of named) {
    try {
      await conn.client.request('keys.get', { user });
    } catch (err) {
      if (err instanceof SwitchboardError && err.code === ErrorCode.UNKNOWN_USER)
        unknown.push(user);
      else throw err;
    }
  }
  if (unknown.length === 0) return;
  const list = unknown.join(', ');
  if (bool(inv, 'allow-unknown')) {
    warn(`warning: no account is named ${list} yet; whoever signs up under that name gets in`);
    return;
  }
  throw new UsageError(
    `--allow/--viewers: no account on ${conn.login.server} is named ${list}; check the spelling, ` +
      'or pass --allow-unknown to let them in once they sign up',
  );
}

/** `--record DIR` (made 0700 if missing, and it must be writable) and `--record-input`. */
function recordOption(inv: Invocation): { dir: string; input: boolean } | undefined {
  const dir = str(inv, 'record');
  if (dir === undefined) {
    if (bool(inv, 'record-input')) throw new UsageError('--record-input needs --record DIR');
    return undefined;
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, fsConstants.W_OK);
  } catch (err) {
    throw new UsageError(
      `--record ${dir}: cannot write there (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  return { dir: resolvePath(dir), input: bool(inv, 'record-input') };
}

const HOST_OPTIONS = {
  allow: {
    type: 'string',
    multiple: true,
    value: 'USERS',
    description: 'users who may attach and type (comma-separated or repeated)',
  },
  viewers: {
    type: 'string',
    multiple: true,
    value: 'USERS',
    description: 'users who may attach read-only',
  },
  'allow-unknown': {
    type: 'boolean',
    description: 'accept --allow/--viewers names that have no account yet (with a warning)',
  },
  'strict-keys': {
    type: 'boolean',
    description:
      'refuse devices of a user you have pinned that are not pinned yet (default: share asks, agent pins and logs)',
  },
  shell: { type: 'string', value: 'PATH', description: 'shell to run (default $SHELL)' },
} as const;

export const share: Command = {
  name: 'share',
  summary:
    'Share this terminal: others attach to it, end-to-end encrypted, and you see everything.',
  usage: '[--session ID] [--allow USERS] [--viewers USERS]',
  details:
    'Your own devices and --allow users may type; --viewers only watch. Anyone else who attaches is\n' +
    'shown to you with their key fingerprint and waits for your ~y or ~n (no answer in 60 s = no).\n' +
    'Escapes (after Enter): ~y/~n admit/refuse who asks, ~l list controllers, ~1..~9 drop one,\n' +
    '~d drop all, ~. stop sharing, ~? help.',
  positionals: [0, 0],
  options: {
    session: {
      type: 'string',
      value: 'ID',
      description: 'session ID (3-64 letters, digits, dashes; default: generated)',
    },
    ...HOST_OPTIONS,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const sessionId = sessionOption(str(inv, 'session'));
    const term = new LocalTerminal(inv.io);
    if (!term.isTty)
      throw new UsageError(
        'share needs a terminal to share; for unattended hosts use `switchboard agent`',
      );
    const conn = await authedConnector(inv);
    try {
      await checkNamedUsers(inv, conn, (text) => inv.io.stderr.write(`${text}\n`));
    } finally {
      conn.client.close();
    }
    const { HostSession, spawnPty, TerminalStream } = await hostModules();
    const { cols, rows } = term.size();
    const pty = spawnPty({
      file: shellOf(inv),
      args: [],
      cwd: process.cwd(),
      env: { ...stringEnv(inv.io.env), SWITCHBOARD_SHARE: '1' },
      cols,
      rows,
    });
    const stream = new TerminalStream({ pty, cols, rows, lossless: false });
    stream.setHostSize(cols, rows);
    const scanner = new EscapeScanner('?ld.123456789yn');
    // Join requests, answered with ~y / ~n: the question never takes the host's ordinary typing.
    const approvals: Array<{
      peer: PeerInfo;
      newDevice: boolean;
      resolve: (ok: boolean) => void;
    }> = [];
    const ask = () => {
      const next = approvals[0];
      if (!next) return;
      const { user, fingerprint, deviceName } = next.peer;
      term.notice(
        (next.newDevice
          ? `${user} asks to attach from a device new to you: "${deviceName}" ${fingerprint} ` +
            `(check it with ${user}): ~y admits and pins it, ~n refuses `
          : `${user} (${fingerprint}) asks to attach: ~y admits read-write, ~n refuses `) +
          `(${APPROVAL_TIMEOUT_MS / 1000} s)`,
        true, // over a full-screen program it stays until answered
      );
      // The question is a fresh start: ~y works at once, even in the middle of a typed line.
      scanner.atLineStart();
    };
    const answer = (ok: boolean) => {
      const pending = approvals.shift();
      if (!pending) return term.notice('no one is asking to attach');
      // The host session itself reports "attached" or "denied".
      pending.resolve(ok);
      ask();
    };
    const host = new HostSession({
      kind: 'share',
      ...(sessionId ? { sessionId } : {}),
      ...hostBase(inv, conn, 'share'),
      stream,
      approve: (peer, withdrawn, why) =>
        new Promise<boolean>((resolve) => {
          const entry = { peer, newDevice: why?.newDevice === true, resolve };
          approvals.push(entry);
          if (approvals.length === 1) ask();
          // Withdrawn (the requester left, or no answer in time; the host session says which):
          // the question goes, and the next one is asked.
          withdrawn.addEventListener(
            'abort',
            () => {
              const i = approvals.indexOf(entry);
              if (i < 0) return;
              approvals.splice(i, 1);
              resolve(false);
              if (i === 0) ask();
            },
            { once: true },
          );
        }),
    });
    host.on('notice', (text: string) => term.notice(text));
    host.on('state', (state: string) => {
      if (state === 'reconnecting')
        term.notice('lost the relay; reconnecting (your shell keeps running)…');
    });
    const id = await host.start().catch((err: unknown) => {
      stream.close();
      throw err;
    });
    host.on('registered', () => term.notice(`session ${id} is back online`));
    term.notice(
      `sharing this terminal as session ${id}\n${joinInstructions(conn.home, conn.login.server, id)}\n` +
        `your key: ${keyFingerprint(conn.home.deviceKey().publicKey)}   (~? for commands, ~. to stop)`,
    );
    term.enterRaw();
    let stopping = false;
    return new Promise<number>((resolve) => {
      const finish = async (code: number) => {
        if (stopping) return;
        stopping = true;
        term.restore();
        await host.stop();
        stream.close();
        resolve(code);
      };
      host.on('fatal', (err: SwitchboardError) => {
        term.notice(`cannot go on: ${err.message}`);
        void finish(exitCodeFor(err));
      });
      // A notice drawn over a full-screen program goes by a repaint from the share's own
      // emulator; output that arrives meanwhile is held and written after it (the snapshot is
      // of the screen as of the request, see TerminalStream.screenSnapshot).
      let held: Buffer[] | undefined;
      stream.on('output', (data: Buffer) => (held ? held.push(data) : term.write(data)));
      term.onRepaintNeeded = () => {
        if (held) return;
        held = [];
        void stream.screenSnapshot().then((snap) => {
          const after = held ?? [];
          held = undefined;
          if (snap) term.write(snap.data);
          for (const data of after) term.write(data);
        });
      };
      stream.on('exit', (exit: { code: number }) => {
        term.notice(`your shell exited with ${exit.code}; session ${id} has ended`);
        // Stop once every connected controller has been sent the tail of the output and the exit
        // (host.stop() then unregisters behind it, in order), or after a bound if one stalls.
        void stream.whenExitDelivered(SHARE_EXIT_DELIVERY_TIMEOUT_MS).then(() => finish(exit.code));
      });
      term.onResize((c, r) => stream.setHostSize(c, r));
      inv.io.stdin.on('data', (chunk: Buffer) => {
        for (const part of scanner.feed(chunk)) {
          if (part.type === 'data') {
            stream.localInput(part.data);
            continue;
          }
          switch (part.key) {
            case 'y':
              answer(true);
              break;
            case 'n':
              answer(false);
              break;
            case 'l': {
              const rows = host.controllers();
              term.notice(
                rows.length === 0
                  ? 'no controllers'
                  : rows
                      .map(
                        (c, i) =>
                          `${i + 1}. ${c.user} ${c.fingerprint} ${c.readOnly ? 'read-only' : 'read-write'} ${c.connected ? 'connected' : 'away'}`,
                      )
                      .join('\n') + '\n~N drops controller N, ~d drops all',
              );
              break;
            }
            case 'd':
              for (const c of host.controllers()) host.drop(c.attachment);
              term.notice('dropped all controllers');
              break;
            case '1':
            case '2':
            case '3':
            case '4':
            case '5':
            case '6':
            case '7':
            case '8':
            case '9': {
              const c = host.controllers()[Number(part.key) - 1];
              if (!c) term.notice(`no controller ${part.key}; ~l lists them`);
              else {
                host.drop(c.attachment);
                term.notice(`dropped ${c.user} (${c.fingerprint})`);
              }
              break;
            }
            case '.':
              term.notice('stopped sharing');
              void finish(Exit.OK);
              break;
            default:
              term.notice(
                '~y / ~n admit / refuse who asks · ~l list controllers · ~1..~9 drop one · ~d drop all · ~. stop sharing · ~~ type a ~',
              );
          }
        }
      });
      inv.io.stdin.resume();
    });
  },
};

/** How long `agent` keeps trying to reach the relay when it starts (--start-timeout). */
export const AGENT_START_TIMEOUT_S = 60; // s

export const agent: Command = {
  name: 'agent',
  summary: 'Unattended host: each attach gets its own fresh login shell; runs until stopped.',
  usage: '--session ID [--allow USERS] [--viewers USERS]',
  details:
    'Only your own devices, --allow and --viewers users get in; everyone else is refused at once.\n' +
    'A controller that detaches or loses its connection can resume its shell for 10 minutes.\n' +
    'It re-registers by itself after the relay restarts, never prompts, and stops on SIGINT/SIGTERM.',
  positionals: [0, 0],
  options: {
    session: { type: 'string', value: 'ID', description: 'session ID (required)' },
    ...TAG_OPTION,
    record: {
      type: 'string',
      value: 'DIR',
      description:
        'record each shell as an asciicast v2 file (mode 0600) in DIR, for asciinema play',
    },
    'record-input': {
      type: 'boolean',
      description: 'with --record, keystrokes too (they include whatever is typed, passwords too)',
    },
    'audit-log': {
      type: 'string',
      value: 'FILE',
      description:
        'where the signed, hash-chained audit log goes (default $SWITCHBOARD_HOME/audit/SESSION.log)',
    },
    policy: {
      type: 'string',
      value: 'FILE',
      description:
        'what other users may exec and push here (JSON or YAML; reloaded on SIGHUP; `switchboard policy check FILE`)',
    },
    'start-timeout': {
      type: 'string',
      value: 'S',
      description: `give up if the relay cannot be reached at start within S seconds (default ${AGENT_START_TIMEOUT_S}; 0: keep trying)`,
    },
    ...HOST_OPTIONS,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const sessionId = sessionOption(str(inv, 'session'));
    if (!sessionId) throw new UsageError('agent needs --session ID');
    const tags = tagsOption(inv);
    const record = recordOption(inv);
    const shell = shellOf(inv);
    const policyFile = await policyOption(inv);
    let policy = policyFile?.policy;
    const me = userInfo();
    const log = (text: string) => inv.io.stderr.write(`${new Date().toISOString()} ${text}\n`);
    // A relay that is down (or restarting) at start is waited for, within --start-timeout: a
    // wrong address fails visibly; 0 waits for ever (a service started before the network).
    const startTimeout =
      numberOption(str(inv, 'start-timeout'), 'start-timeout', 0, 365 * 86_400) ??
      AGENT_START_TIMEOUT_S;
    const deadline =
      startTimeout > 0
        ? { at: Date.now() + startTimeout * 1000, seconds: startTimeout }
        : undefined;
    // The device key, not the login token: the agent outlives the token's 30 days, and stops
    // when the device is revoked (`switchboard devices revoke`).
    const conn = await untilReachable(() => authedConnector(inv, 'device'), log, deadline);
    try {
      await checkNamedUsers(inv, conn, log);
    } finally {
      conn.client.close();
    }
    const { HostSession, DEFAULT_SERVICES, spawnPty } = await hostModules();
    const { execService } = await import('../../host/services/exec.js');
    const { pushService } = await import('../../host/services/push.js');
    const { NonceCache } = await import('../../host/services/signed-request.js');
    // One replay cache for every signed request this agent takes: exec and push.
    const nonces = new NonceCache();
    // Like sshd: a clean environment, not the agent's own.
    const cleanEnv = (term?: string): Record<string, string> => ({
      HOME: me.homedir,
      USER: me.username,
      LOGNAME: me.username,
      SHELL: shell,
      PATH: inv.io.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      ...(term ? { TERM: term } : {}),
      LANG: inv.io.env['LANG'] ?? 'C.UTF-8',
      SWITCHBOARD_SESSION: sessionId,
    });
    const host = new HostSession({
      kind: 'agent',
      sessionId,
      tags,
      operators: policy ? [...policy.users.keys()] : [],
      services: [
        ...DEFAULT_SERVICES,
        execService({
          policy: () => policy,
          env: (user) => ({ ...cleanEnv(), SWITCHBOARD_USER: user }),
          cwd: me.homedir,
          nonces,
        }),
        pushService({ policy: () => policy, nonces }),
      ],
      ...(record ? { record } : {}),
      ...hostBase(inv, conn, 'agent'),
      spawnShell: (cols, rows, term) =>
        spawnPty({
          file: shell,
          args: ['-l'],
          cwd: me.homedir,
          env: cleanEnv(term),
          cols,
          rows,
        }),
    });
    host.on('notice', log);
    // Every attach, exec, push and refusal: signed, chained, fsynced, and shipped to the relay.
    const auditFile = str(inv, 'audit-log') ?? conn.home.path(join('audit', `${sessionId}.log`));
    mkdirSync(dirname(auditFile), { recursive: true, mode: 0o700 });
    const { AuditLog, auditHostSession } = await import('../../host/audit-log.js');
    const { agentLogName } = await import('../../protocol/audit.js');
    const key = conn.home.deviceKey();
    const audit = new AuditLog(
      auditFile,
      agentLogName(sessionId, keyFingerprint(key.publicKey)),
      key,
    );
    auditHostSession(host, audit, (err) =>
      log(`audit: could not append to ${auditFile}: ${err.message}`),
    );
    host.on('exec', (r: ExecRecord) => {
      const how = r.exit
        ? r.exit.code !== null
          ? `exit ${r.exit.code}`
          : `signal ${r.exit.signal ?? '?'}`
        : `${r.code ?? 'refused'}`;
      log(
        `exec by ${r.user} (${r.fingerprint}): ${r.decision} by ${r.rule}; ${how}` +
          (r.exit
            ? ` in ${r.exit.durationMs} ms, ${r.exit.stdout.bytes}+${r.exit.stderr.bytes} bytes out`
            : ''),
      );
    });
    host.on('push', (r: PushRecord) => {
      const written = r.files.filter((f) => f.result === 'written').length;
      log(
        `push by ${r.user} (${r.fingerprint}) to ${r.dir}: ${r.decision} by ${r.rule}; ` +
          (r.decision === 'refused'
            ? (r.code ?? 'refused')
            : `${written} of ${r.files.length} file(s) written${r.code ? `, ${r.code}` : ''}`),
      );
    });
    // SIGHUP reloads --policy; an invalid file keeps the policy in force and says why.
    const onHup = (): void => {
      if (!policyFile) {
        log('SIGHUP: no --policy to reload');
        return;
      }
      try {
        policy = policyFile.load();
      } catch (err) {
        log(
          `SIGHUP: kept the policy in force; ${policyFile.path} is invalid: ${(err as Error).message}`,
        );
        return;
      }
      log(`SIGHUP: reloaded ${policyFile.path} (${policy.users.size} users)`);
      void host
        .setOperators([...policy.users.keys()])
        .catch((err: unknown) =>
          log(`the relay did not take the new policy's users yet: ${(err as Error).message}`),
        );
    };
    process.on('SIGHUP', onHup);
    host.on('state', (s: string) =>
      log(s === 'reconnecting' ? 'lost the relay; reconnecting' : 'connected to the relay'),
    );
    const id = await untilReachable(() => host.start(), log, deadline);
    log(
      `agent serving session ${id} as ${conn.me.user} (key ${keyFingerprint(conn.home.deviceKey().publicKey)})`,
    );
    inv.io.stdout.write(`${id}\n`);
    return new Promise<number>((resolve) => {
      const stop = (signal: string) => {
        process.removeListener('SIGHUP', onHup);
        log(`stopping (${signal})`);
        void host.stop().then(() => {
          audit.close();
          resolve(Exit.OK);
        });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      host.on('fatal', (err: SwitchboardError) => {
        log(`cannot go on: ${err.message}`);
        void host.stop().then(() => resolve(exitCodeFor(err)));
      });
    });
  },
};

/**
 * Retries `fn` with backoff while the relay is unreachable, until `deadline` (a Date.now() time;
 * undefined: forever), then throws CONNECT_FAILED saying for how long; any other failure is thrown.
 */
async function untilReachable<T>(
  fn: () => Promise<T>,
  log: (text: string) => void,
  deadline: { at: number; seconds: number } | undefined,
): Promise<T> {
  const backoff = new Backoff(1_000, 30_000);
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err)) throw err;
      const left = deadline ? deadline.at - Date.now() : Infinity;
      if (left <= 0)
        throw new SwitchboardError(
          ErrorCode.CONNECT_FAILED,
          `gave up after ${deadline!.seconds} s: ${err.message}. Check --server and the network; ` +
            '--start-timeout 0 keeps trying at start (once running, the agent always reconnects)',
        );
      const delay = Math.min(backoff.nextDelay(), left);
      log(`relay unreachable (${err.message}); retrying in ${Math.ceil(delay / 1000)} s`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

type ResumeMap = Record<string, { attachment: string; offset: number }>;

function readResume(home: Home): ResumeMap {
  try {
    return JSON.parse(readFileSync(home.path(RESUME_FILE), 'utf8')) as ResumeMap;
  } catch {
    return {};
  }
}

function saveResume(
  home: Home,
  key: string,
  value: { attachment: string; offset: number } | undefined,
): void {
  const map = readResume(home);
  if (value) map[key] = value;
  else delete map[key];
  writeFileAtomic(home.path(RESUME_FILE), `${JSON.stringify(map, null, 2)}\n`, 0o600);
}

export const attach: Command = {
  name: 'attach',
  summary: "Open a remote terminal: the session's real shell, end-to-end encrypted, resumable.",
  usage: 'SESSION [--read-only | --watch]',
  details:
    'Escapes (after Enter): ~. detach (the remote shell keeps running), ~i connection info,\n' +
    '~? help, ~~ a literal ~. A dropped connection is resumed by itself; nothing is lost.\n' +
    "Exits with the remote shell's exit code when it ends. SIGTERM or SIGHUP detaches (exit 143 or 129).\n" +
    'Every way out restores the local terminal (main screen, mouse and keypad modes off, cursor shown).\n' +
    'Read-only on an agent watches a shell someone has open there (the latest attached), as its\n' +
    'viewers always do; with no shell open it says so and exits 5.',
  positionals: [1, 1],
  options: {
    'read-only': { type: 'boolean', description: 'watch only: your keystrokes are not sent' },
    watch: {
      type: 'boolean',
      description: 'on an agent: watch the shell someone has open there (same as --read-only)',
    },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const sessionId = sessionOption(inv.positionals[0])!;
    const readOnly = bool(inv, 'read-only') || bool(inv, 'watch');
    const term = new LocalTerminal(inv.io);
    const conn = await authedConnector(inv);
    conn.client.close();
    const resumeKey = `${conn.login.server} ${sessionId}`;
    const resume = readResume(conn.home)[resumeKey];
    const { cols, rows } = term.size();
    const session = new AttachSession({
      sessionId,
      readOnly,
      user: conn.me.user,
      key: conn.home.deviceKey(),
      server: conn.login.server,
      knownPeers: new KnownPeers(conn.home.path(FILES.knownPeers)),
      connect: conn.connect,
      cols,
      rows,
      term: inv.io.env['TERM'] ?? 'xterm-256color',
      ...(resume ? { resume } : {}),
      // The status line drew over a full-screen program: get its screen back, not a replay.
      repaintOnResume: () => term.altScreen,
    });
    session.on('output', (data: Uint8Array) => term.write(data));
    let snapshotSeen = false;
    session.on('snapshot', (data: Uint8Array) => {
      snapshotSeen = true;
      term.write(data);
    });
    session.on('notice', (text: string) => term.notice(text));
    // A notice drawn over a full-screen program goes by a repaint the host sends.
    term.onRepaintNeeded = () => session.requestRepaint();
    // One status line while reconnecting, updated in place, not a notice per attempt.
    let lostAt: number | undefined;
    session.on('reconnecting', (r: ReconnectInfo) => {
      lostAt ??= Date.now() - r.lostForMs;
      // What changes first: the line is cut to the terminal's width.
      term.status(
        `reconnecting… attempt ${r.attempt}, ${Math.round(r.lostForMs / 1000)} s (~. gives up); ` +
          `connection lost: ${r.reason}`,
      );
    });
    session.on('state', (state: string) => {
      if (state !== 'attached') return;
      const away = lostAt === undefined ? 0 : Math.round((Date.now() - lostAt) / 1000);
      lostAt = undefined;
      // A full-screen program is repainted (repaintOnResume), which draws over this line.
      term.status(`reconnected after ${away} s`, true);
    });
    const info = await session.start();
    const mode = !info.welcome.readOnly
      ? 'read-write'
      : info.welcome.watching !== undefined
        ? `watching ${info.welcome.watching}'s shell, read-only`
        : readOnly
          ? 'read-only'
          : 'read-only: the host does not take your keystrokes';
    // What matters most first: over a full-screen program it is cut to one line.
    const banner =
      `attached to ${sessionId}, ${mode}${info.welcome.resumed ? ', resumed' : ''} · ~. detaches · ` +
      `on ${info.hostName} (${info.host.user}, ${info.host.fingerprint})`;
    // A fresh attach, and a new process resuming (it asks for a repaint), start with a repaint
    // that clears the screen: show the banner after it, or it would be wiped at once.
    const repaintComing = !info.welcome.resumed || resume !== undefined;
    if (snapshotSeen || !repaintComing) term.notice(banner);
    else session.once('snapshot', () => setImmediate(() => term.notice(banner)));
    term.enterRaw();
    const scanner = new EscapeScanner('.?i');
    // SIGTERM and SIGHUP detach (the remote shell keeps running) and restore the local terminal,
    // then exit with 128 + the signal's number, as a program killed by it would report.
    let signalled: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      signalled ??= signal;
      void session.detach();
    };
    const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP'];
    for (const signal of signals) process.on(signal, onSignal);
    return new Promise<number>((resolve) => {
      session.once(
        'end',
        (end: { exit?: { code: number }; error?: SwitchboardError; detached?: boolean }) => {
          for (const signal of signals) process.off(signal, onSignal);
          term.restore();
          if (end.detached) {
            saveResume(conn.home, resumeKey, session.position);
            inv.io.stderr.write(
              `\r\ndetached from ${sessionId}; \`switchboard attach ${sessionId}\` returns to it\r\n`,
            );
            return resolve(signalled ? 128 + osConstants.signals[signalled] : Exit.OK);
          }
          saveResume(conn.home, resumeKey, undefined);
          if (end.exit) {
            inv.io.stderr.write(
              `\r\n[switchboard] the remote shell exited with ${end.exit.code}\r\n`,
            );
            return resolve(end.exit.code);
          }
          const err =
            end.error ?? new SwitchboardError(ErrorCode.CHANNEL_CLOSED, 'the session ended');
          inv.io.stderr.write(`\r\nswitchboard attach: ${err.message} [${err.code}]\r\n`);
          resolve(err.code === ErrorCode.CHANNEL_CLOSED ? Exit.OK : exitCodeFor(err));
        },
      );
      term.onResize((c, r) => session.resize(c, r));
      session.on('drain', () => inv.io.stdin.resume());
      inv.io.stdin.on('data', (chunk: Buffer) => {
        for (const part of scanner.feed(chunk)) {
          if (part.type === 'data') {
            if (!session.input(Buffer.from(part.data))) inv.io.stdin.pause();
            continue;
          }
          if (part.key === '.') void session.detach();
          else if (part.key === 'i') {
            term.notice(
              `session ${sessionId} on ${info.hostName}; host ${info.host.user} ${info.host.fingerprint}; you ${keyFingerprint(conn.home.deviceKey().publicKey)}; E2E handshake ${info.handshakeHash.slice(0, 16)}`,
            );
          } else term.notice('~. detach · ~i info · ~~ type a ~');
        }
      });
      inv.io.stdin.on('end', () => void session.detach());
      inv.io.stdin.resume();
    });
  },
};

export const sessions: Command = {
  name: 'sessions',
  summary: 'List the remote sessions you may attach to.',
  usage: '[--tag KEY=VALUE]... [--json]',
  details: "With --tag, only sessions carrying every tag given (an agent's --tag).",
  positionals: [0, 0],
  options: {
    tag: {
      ...TAG_OPTION.tag,
      description: 'only sessions with this tag (repeatable: all must match)',
    },
    ...JSON_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const tags = tagsOption(inv);
    const filtered = Object.keys(tags).length > 0;
    return withSession(inv, async ({ client }) => {
      // The relay filters, before it caps the reply.
      const { sessions, truncated } = await client.request(
        'sessions.list',
        filtered ? { tags } : {},
      );
      if (truncated)
        inv.io.stderr.write(
          `switchboard sessions: the relay lists only the first ${sessions.length} sessions you may attach to\n`,
        );
      if (bool(inv, 'json')) json(inv.io.stdout, sessions);
      else
        table(
          inv.io.stdout,
          ['SESSION', 'OWNER', 'KIND', 'HOST', 'TAGS', 'SINCE', 'CONTROLLERS', 'STATUS'],
          sessions.map((s) => [
            s.sessionId,
            s.owner,
            s.kind,
            s.hostName,
            Object.entries(s.tags ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(',') || '-',
            ago(s.since),
            String(s.controllers),
            s.live ? 'live' : 'offline',
          ]),
          filtered
            ? '(no sessions you may attach to with those tags)'
            : '(no sessions you may attach to)',
        );
      return Exit.OK;
    });
  },
};

// The `switchboard` command: finds the subcommand, runs it, maps failures to exit codes.
import { SwitchboardError } from '../protocol/errors.js';
import { helpText, parseInvocation, type Command, type Io } from './command.js';
import { Exit, UsageError, exitCodeFor } from './exit-codes.js';
import { closest } from './suggest.js';

export const VERSION = '0.1.0';

/**
 * Every command, loaded only when it runs (or its help is asked for): `serve` alone pulls in the
 * relay, the store and their drivers, which would otherwise slow every other command's start.
 * The summary is here for the top help; a test checks it equals the command's own.
 */
export interface LazyCommand {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

const account = () => import('./commands/account.js');
const terminal = () => import('./commands/terminal.js');
const keys = () => import('./commands/keys.js');

export const COMMANDS: readonly LazyCommand[] = [
  {
    name: 'serve',
    summary: 'Run the relay: one TLS port for the CLI, hosts, browsers and the REST API.',
    load: async () => (await import('./commands/serve.js')).serve,
  },
  {
    name: 'signup',
    summary: 'Create an account on the relay, then log in with it.',
    load: async () => (await account()).signup,
  },
  {
    name: 'login',
    summary: "Log in; registers this device's key with the account and remembers the relay.",
    load: async () => (await account()).login,
  },
  {
    name: 'logout',
    summary: 'End this login (--all: every login of the account, on every device).',
    load: async () => (await account()).logout,
  },
  {
    name: 'whoami',
    summary: 'Show who you are logged in as, where, and with which device key.',
    load: async () => (await account()).whoami,
  },
  {
    name: 'users',
    summary: 'List the people you deal with and who is online (--all: every user).',
    load: async () => (await account()).users,
  },
  {
    name: 'passwd',
    summary: "Change your account's password (--logout-others: end your other logins).",
    load: async () => (await account()).passwd,
  },
  {
    name: 'account',
    summary: 'Delete your account (`account delete`): its sessions, devices and logins go with it.',
    load: async () => (await account()).account,
  },
  {
    name: 'devices',
    summary: "List your account's devices (name, fingerprint, last seen, online); revoke one.",
    load: async () => (await import('./commands/devices.js')).devices,
  },
  {
    name: 'policy',
    summary: "Check an agent's exec policy file (`policy check FILE`): what each user may run.",
    load: async () => (await import('./commands/policy.js')).policy,
  },
  {
    name: 'invite',
    summary:
      'Admins: make an invite code for `signup --invite` (create), or list open ones (list).',
    load: async () => (await import('./commands/invite.js')).invite,
  },
  {
    name: 'share',
    summary:
      'Share this terminal: others attach to it, end-to-end encrypted, and you see everything.',
    load: async () => (await terminal()).share,
  },
  {
    name: 'agent',
    summary: 'Unattended host: each attach gets its own fresh login shell; runs until stopped.',
    load: async () => (await terminal()).agent,
  },
  {
    name: 'attach',
    summary: "Open a remote terminal: the session's real shell, end-to-end encrypted, resumable.",
    load: async () => (await terminal()).attach,
  },
  {
    name: 'sessions',
    summary: 'List the remote sessions you may attach to.',
    load: async () => (await terminal()).sessions,
  },
  {
    name: 'exec',
    summary:
      'Run a command on agents: one like `ssh host cmd`, many with live output and a summary.',
    load: async () => (await import('./commands/exec.js')).exec,
  },
  {
    name: 'push',
    summary: 'Copy files to agents: verified by SHA-256, written under a temporary name, renamed.',
    load: async () => (await import('./commands/push.js')).push,
  },
  {
    name: 'audit',
    summary: 'List the signed audit log of your agents; --verify checks it was not tampered with.',
    load: async () => (await import('./commands/audit.js')).audit,
  },
  {
    name: 'chat',
    summary: 'Chat with USER, end to end encrypted: live, direct when possible, with history.',
    load: async () => (await import('./commands/chat.js')).chat,
  },
  {
    name: 'send',
    summary: 'Send USER an end-to-end encrypted message (- reads it from standard input).',
    load: async () => (await import('./commands/messages.js')).send,
  },
  {
    name: 'inbox',
    summary:
      'Print messages not yet shown on this device, and mark them read (--all: the history).',
    load: async () => (await import('./commands/messages.js')).inbox,
  },
  {
    name: 'contacts',
    summary: 'Your contacts and requests; accept, block, or verify one (safety number).',
    load: async () => (await import('./commands/messages.js')).contacts,
  },
  {
    name: 'broadcast',
    summary:
      'Send a signed message to every user: those online now and those who come online soon.',
    load: async () => (await import('./commands/messages.js')).broadcast,
  },
  {
    name: 'pay',
    summary:
      'Pay USER AMOUNT from your balance: a transfer signed by this device (--out: a cheque).',
    load: async () => (await import('./commands/ledger.js')).pay,
  },
  {
    name: 'deposit',
    summary: 'Deposit a cheque (a signed transfer from `pay --out`) made out to you.',
    load: async () => (await import('./commands/ledger.js')).deposit,
  },
  {
    name: 'balance',
    summary: 'Your balance on this relay’s ledger.',
    load: async () => (await import('./commands/ledger.js')).balance,
  },
  {
    name: 'history',
    summary: 'Your transfers: time, counterparty, amount, memo, running balance.',
    load: async () => (await import('./commands/ledger.js')).history,
  },
  {
    name: 'ledger',
    summary: 'Verify the relay’s whole ledger (signatures, chain, balances), or mint as an admin.',
    load: async () => (await import('./commands/ledger.js')).ledger,
  },
  {
    name: 'ping',
    summary: "Round trips to a session's host through the end-to-end channel, like ping.",
    load: async () => (await import('./commands/ping.js')).ping,
  },
  {
    name: 'bench',
    summary: 'Measure a relay: response time and throughput at 1–20 clients, TLS and plaintext.',
    load: async () => (await import('./commands/bench.js')).bench,
  },
  {
    name: 'keys',
    summary:
      "Show this device's key fingerprint; with USER, that user's keys and which you have pinned.",
    load: async () => (await keys()).keys,
  },
  {
    name: 'trust',
    summary:
      'Re-verify a peer: pin the device keys the relay lists for USER, replacing the old pins.',
    load: async () => (await keys()).trust,
  },
];

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return (
    'Usage: switchboard COMMAND [OPTIONS]\n\n' +
    'Reach terminals and people behind NAT through one TLS relay, end-to-end encrypted.\n\n' +
    'Commands:\n' +
    COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n') +
    "\n\nRun `switchboard COMMAND --help` for a command's options.\n" +
    'Client state lives in $SWITCHBOARD_HOME (default ~/.config/switchboard).\n' +
    'Exit codes: 0 ok, 1 failure, 2 usage, 3 login needed or refused, 4 relay unreachable or\n' +
    "untrusted, 5 refused by the relay or host; attach exits with the remote shell's code.\n"
  );
}

export async function run(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.stdout.write(target ? helpText(await target.load()) : topHelp());
    return name === undefined ? Exit.USAGE : Exit.OK;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`switchboard ${VERSION}\n`);
    return Exit.OK;
  }
  const lazy = COMMANDS.find((c) => c.name === name);
  if (!lazy) {
    const guess = closest(
      name,
      COMMANDS.map((c) => c.name),
    );
    io.stderr.write(
      `switchboard: unknown command "${name}"${guess ? `; did you mean \`switchboard ${guess}\`?` : ''} ` +
        `(\`switchboard --help\` lists them)\n`,
    );
    return Exit.USAGE;
  }
  const cmd = await lazy.load();
  try {
    const inv = parseInvocation(cmd, rest, io);
    if (inv === 'help') {
      io.stdout.write(helpText(cmd));
      return Exit.OK;
    }
    return await cmd.run(inv);
  } catch (err) {
    if ((err as { interrupted?: boolean }).interrupted) return Exit.INTERRUPTED;
    const code = exitCodeFor(err);
    if (err instanceof UsageError) {
      io.stderr.write(
        `switchboard ${cmd.name}: ${err.message}\nRun \`switchboard ${cmd.name} --help\` for usage.\n`,
      );
    } else if (err instanceof SwitchboardError) {
      const wait =
        err.retryAfterMs === undefined
          ? ''
          : ` (try again in ${Math.max(1, Math.ceil(err.retryAfterMs / 1000))} s)`;
      io.stderr.write(`switchboard ${cmd.name}: ${err.message} [${err.code}]${wait}\n`);
    } else {
      io.stderr.write(`switchboard ${cmd.name}: ${(err as Error)?.message ?? String(err)}\n`);
    }
    return code;
  }
}

/** Entry point used by bin/switchboard. */
export async function main(argv: string[]): Promise<void> {
  const io: Io = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  };
  const code = await run(argv, io);
  process.exitCode = code;
  // Let stdout drain, then leave even if a stray handle (a socket closing) is still open.
  setImmediate(() => process.exit(code)).unref();
  if (process.stdout.writableLength > 0) await new Promise((r) => process.stdout.once('drain', r));
  process.exit(code);
}

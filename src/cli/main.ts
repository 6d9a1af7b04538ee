// The `switchboard` command: finds the subcommand, runs it, maps failures to exit codes.
import { SwitchboardError } from '../protocol/errors.js';
import { helpText, parseInvocation, type Command, type Io } from './command.js';
import { account, login, logout, passwd, signup, users, whoami } from './commands/account.js';
import { invite } from './commands/invite.js';
import { keys, trust } from './commands/keys.js';
import { ping } from './commands/ping.js';
import { serve } from './commands/serve.js';
import { agent, attach, sessions, share } from './commands/terminal.js';
import { Exit, UsageError, exitCodeFor } from './exit-codes.js';

export const VERSION = '0.1.0';

const COMMANDS: Command[] = [
  serve,
  signup,
  login,
  logout,
  whoami,
  users,
  passwd,
  account,
  invite,
  share,
  agent,
  attach,
  sessions,
  ping,
  keys,
  trust,
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
    io.stdout.write(target ? helpText(target) : topHelp());
    return name === undefined ? Exit.USAGE : Exit.OK;
  }
  if (name === '--version' || name === '-V') {
    io.stdout.write(`switchboard ${VERSION}\n`);
    return Exit.OK;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.stderr.write(
      `switchboard: unknown command "${name}"; run \`switchboard --help\` for the list\n`,
    );
    return Exit.USAGE;
  }
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

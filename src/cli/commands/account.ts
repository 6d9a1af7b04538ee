// Account commands: signup, login, logout, whoami, users.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { keyFingerprint } from '../../crypto/device-key.js';
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import { USERNAME_RE } from '../../protocol/messages.js';
import { connect, connectAuthed, homeOf, serverOf, withSession } from '../client-context.js';
import {
  CLIENT_OPTIONS,
  JSON_OPTION,
  bool,
  str,
  type Command,
  type Invocation,
} from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';
import { ago, json, table } from '../output.js';
import { interactive, readLine, readStdinSecret } from '../prompt.js';

const PASSWORD_OPTIONS = {
  user: {
    type: 'string',
    value: 'NAME',
    description: 'account name (2-32 chars: a-z, 0-9, _ and -)',
  },
  'password-stdin': {
    type: 'boolean',
    description: 'read the password from standard input (for scripts)',
  },
} as const;

function userOf(inv: Invocation): string {
  const user = str(inv, 'user') ?? inv.positionals[0];
  if (!user) throw new UsageError('which account? pass --user NAME');
  if (!USERNAME_RE.test(user))
    throw new UsageError(
      `"${user}" is not a valid user name: 2-32 chars of a-z, 0-9, _ and -, starting with a letter`,
    );
  return user;
}

async function passwordOf(inv: Invocation, confirmIt: boolean): Promise<string> {
  if (bool(inv, 'password-stdin')) {
    const password = await readStdinSecret(inv.io);
    if (!password) throw new UsageError('standard input was empty; pipe the password in');
    return password;
  }
  if (!interactive(inv.io))
    throw new UsageError('no terminal to ask for the password on; use --password-stdin');
  const password = await readLine(inv.io, 'Password: ', false);
  if (confirmIt) {
    const again = await readLine(inv.io, 'Password again: ', false);
    if (again !== password) throw new UsageError('the passwords did not match');
  }
  return password;
}

async function doLogin(inv: Invocation, user: string, password: string): Promise<number> {
  const home = homeOf(inv);
  const server = serverOf(inv, home);
  const key = home.deviceKey();
  const client = await connect(inv, home, server);
  try {
    const result = await client.request('auth.login', {
      user,
      password,
      device: {
        publicKey: key.publicKey.toString('base64'),
        name: hostname().slice(0, 64) || 'device',
      },
    });
    home.saveLogin({ server, user: result.user, token: result.token, expiresAt: result.expiresAt });
    const ca = str(inv, 'ca');
    home.saveConfig(ca ? { server, caFile: resolve(ca) } : { server });
    inv.io.stdout.write(
      `Logged in as ${result.user} on ${server}\nThis device's key: ${keyFingerprint(key.publicKey)}\n`,
    );
    return Exit.OK;
  } finally {
    client.close();
  }
}

export const signup: Command = {
  name: 'signup',
  summary: 'Create an account on the relay, then log in with it.',
  usage: '--user NAME [--password-stdin] [--server HOST:PORT]',
  details:
    'Passwords need at least 8 characters. They are sent only over the TLS connection and stored\nonly as an Argon2id hash.',
  positionals: [0, 0],
  options: { ...PASSWORD_OPTIONS, ...CLIENT_OPTIONS },
  async run(inv) {
    const user = userOf(inv);
    const password = await passwordOf(inv, true);
    const home = homeOf(inv);
    const client = await connect(inv, home);
    try {
      await client.request('auth.signup', { user, password });
    } finally {
      client.close();
    }
    inv.io.stdout.write(`Created account ${user}\n`);
    return doLogin(inv, user, password);
  },
};

export const login: Command = {
  name: 'login',
  summary: "Log in; registers this device's key with the account and remembers the relay.",
  usage: '--user NAME [--password-stdin] [--server HOST:PORT] [--fingerprint HEX | --ca FILE]',
  details: 'Repeated failures slow further attempts from the same address and on the same account.',
  positionals: [0, 0],
  options: { ...PASSWORD_OPTIONS, ...CLIENT_OPTIONS },
  async run(inv) {
    const user = userOf(inv);
    return doLogin(inv, user, await passwordOf(inv, false));
  },
};

export const logout: Command = {
  name: 'logout',
  summary: 'End this login (--all: every login of the account, on every device).',
  usage: '[--all]',
  positionals: [0, 0],
  options: {
    all: { type: 'boolean', description: 'revoke the logins of all your devices' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const home = homeOf(inv);
    if (!home.login()) {
      inv.io.stdout.write('Not logged in.\n');
      return Exit.OK;
    }
    try {
      const { client } = await connectAuthed(inv);
      try {
        const { revoked } = await client.request('auth.logout', { all: bool(inv, 'all') });
        inv.io.stdout.write(
          bool(inv, 'all')
            ? `Logged out everywhere (${revoked} login(s) revoked).\n`
            : 'Logged out.\n',
        );
      } finally {
        client.close();
      }
    } catch (err) {
      // An expired or revoked token is already logged out on the relay; forget it here too.
      if (
        !(err instanceof SwitchboardError) ||
        ![ErrorCode.TOKEN_EXPIRED, ErrorCode.TOKEN_REVOKED, ErrorCode.TOKEN_INVALID].includes(
          err.code as never,
        )
      )
        throw err;
      inv.io.stdout.write('Logged out (the relay had already ended this login).\n');
    }
    home.clearLogin();
    return Exit.OK;
  },
};

export const whoami: Command = {
  name: 'whoami',
  summary: 'Show who you are logged in as, where, and with which device key.',
  usage: '[--json]',
  positionals: [0, 0],
  options: { ...JSON_OPTION, ...CLIENT_OPTIONS },
  async run(inv) {
    return withSession(inv, async ({ client, login }) => {
      const me = await client.request('whoami', {});
      if (bool(inv, 'json')) {
        json(inv.io.stdout, { ...me, server: login.server });
      } else {
        inv.io.stdout.write(
          `${me.user} on ${login.server}\n` +
            `device:  ${me.device.fingerprint} (${me.device.deviceName})\n` +
            `member since ${me.since.slice(0, 10)}; this login expires ${me.expiresAt}\n`,
        );
      }
      return Exit.OK;
    });
  },
};

export const users: Command = {
  name: 'users',
  summary: 'List the users of the relay and who is online.',
  usage: '[--json]',
  details:
    'A user is online while any of their clients (share, agent, attach, ...) holds a connection.',
  positionals: [0, 0],
  options: { ...JSON_OPTION, ...CLIENT_OPTIONS },
  async run(inv) {
    return withSession(inv, async ({ client }) => {
      const { users } = await client.request('users.list', {});
      if (bool(inv, 'json')) json(inv.io.stdout, users);
      else
        table(
          inv.io.stdout,
          ['USER', 'STATUS', 'LAST SEEN'],
          users.map((u) => [
            u.user,
            u.online ? 'online' : 'offline',
            u.online ? 'now' : ago(u.lastSeen),
          ]),
          '(no users)',
        );
      return Exit.OK;
    });
  },
};

// Account commands: signup, login, logout, whoami, users, passwd, account delete.
import { passwordProblem } from '../../protocol/password-rules.js';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { keyFingerprint } from '../../crypto/device-key.js';
import { signLoginProof } from '../../crypto/login-proof.js';
import { AuthError, ErrorCode, SwitchboardError, isTransient } from '../../protocol/errors.js';
import { USERS_PAGE_DEFAULT, USERS_PAGE_MAX } from '../../protocol/limits.js';
import { USERNAME_RE, type Results } from '../../protocol/messages.js';
import { connect, connectAuthed, homeOf, serverOf, withSession } from '../client-context.js';
import { FILES, type Home } from '../home.js';
import type { RelayClient } from '../../client/relay-client.js';
import {
  CLIENT_OPTIONS,
  JSON_OPTION,
  bool,
  str,
  type Command,
  type Invocation,
} from '../command.js';
import { Exit, UsageError, exitCodeFor } from '../exit-codes.js';
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

async function passwordOf(inv: Invocation): Promise<string> {
  if (bool(inv, 'password-stdin')) {
    const password = await readStdinSecret(inv.io);
    if (!password) throw new UsageError('standard input was empty; pipe the password in');
    return password;
  }
  if (!interactive(inv.io))
    throw new UsageError('no terminal to ask for the password on; use --password-stdin');
  return readLine(inv.io, 'Password: ', false);
}

/** Tries at a new password before giving up, as passwd(1) gives. */
const NEW_PASSWORD_TRIES = 3;

/**
 * Asks for a new password on the terminal: checked against the relay's rules (length, not the
 * user name) before it is asked for again, and asked again from the start after a mismatch.
 */
async function newPasswordOf(
  inv: Invocation,
  user: string | undefined,
  minLength: number | undefined,
  label = 'Password',
): Promise<string> {
  for (let tries = 1; ; tries++) {
    const password = await readLine(inv.io, `${label}: `, false);
    const weak = passwordProblem(user, password, minLength);
    const problem =
      weak ??
      ((await readLine(inv.io, `${label} again: `, false)) === password
        ? undefined
        : 'the passwords did not match');
    if (problem === undefined) return password;
    if (tries >= NEW_PASSWORD_TRIES) {
      if (weak) throw new AuthError(ErrorCode.WEAK_PASSWORD, weak);
      throw new UsageError(problem);
    }
    inv.io.stderr.write(`${problem}; try again\n`);
  }
}

/** Publishes this device's prekey bundle on the logged-in connection (after `auth.login`). */
async function publishMessagingKeys(client: RelayClient, home: Home): Promise<void> {
  const [{ MessagingKeys }, { keysFileStore }] = await Promise.all([
    import('../../client/messaging-keys.js'),
    import('../../client/file-stores.js'),
  ]);
  const store = keysFileStore(home.path(FILES.messagingKeys));
  await new MessagingKeys(store, home.deviceKey()).publish(client);
}

/**
 * Logs in. Connects before asking for the password, as ssh does, so that trusting the relay
 * comes first; a connection the relay closed while the user typed (it gives 60 s to log in) is
 * opened again.
 */
async function doLogin(
  inv: Invocation,
  user: string,
  askPassword: () => Promise<string>,
): Promise<number> {
  const home = homeOf(inv);
  const server = serverOf(inv, home);
  const key = home.deviceKey();
  let client = await connect(inv, home, server);
  try {
    const password = await askPassword();
    if (client.closed) client = await connect(inv, home, server);
    // The device proof lets a key already registered to the account log in even while
    // guessing elsewhere has the account throttled.
    const challenge = client.challenge;
    const result = await client.request('auth.login', {
      user,
      password,
      device: {
        publicKey: key.publicKey.toString('base64'),
        name: hostname().slice(0, 64) || 'device',
      },
      ...(challenge ? { deviceProof: signLoginProof(key, challenge, user) } : {}),
    });
    home.saveLogin({ server, user: result.user, token: result.token, expiresAt: result.expiresAt });
    const ca = str(inv, 'ca');
    home.saveConfig(ca ? { server, caFile: resolve(ca) } : { server });
    inv.io.stdout.write(
      `Logged in as ${result.user} on ${server}\nThis device's key: ${keyFingerprint(key.publicKey)}\n`,
    );
    // Others can send this device messages while it is offline once its prekeys are published.
    await publishMessagingKeys(client, home).catch((err: unknown) =>
      inv.io.stderr.write(
        `switchboard login: could not publish this device's messaging keys yet (${(err as Error).message}); \`switchboard inbox\` tries again\n`,
      ),
    );
    return Exit.OK;
  } finally {
    client.close();
  }
}

export const signup: Command = {
  name: 'signup',
  summary: 'Create an account on the relay, then log in with it.',
  usage: '--user NAME [--invite CODE] [--password-stdin] [--server HOST:PORT]',
  details:
    'Passwords need at least 8 characters. They are sent only over the TLS connection and stored\nonly as an Argon2id hash. A relay run with `serve --signup invite` needs an invite code from\none of its admins (`switchboard invite create`); one run with `--signup closed` takes no one.',
  positionals: [0, 0],
  options: {
    ...PASSWORD_OPTIONS,
    invite: {
      type: 'string',
      value: 'CODE',
      description: 'invite code (sbi_...) from an admin of the relay',
    },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const user = userOf(inv);
    const invite = str(inv, 'invite');
    const home = homeOf(inv);
    // Connect first, like ssh: the relay's identity is settled, and a relay that takes no
    // sign-ups (or only invited ones) says so, before anyone types a password.
    let client = await connect(inv, home);
    try {
      if (client.signupMode === 'closed')
        throw new AuthError(
          ErrorCode.SIGNUP_CLOSED,
          'this relay takes no new accounts; ask its operator for one',
        );
      if (client.signupMode === 'invite' && !invite)
        throw new AuthError(
          ErrorCode.INVITE_REQUIRED,
          'this relay takes new accounts by invitation only: pass --invite CODE (an admin makes one with `switchboard invite create`)',
        );
      const password =
        bool(inv, 'password-stdin') || !interactive(inv.io)
          ? await passwordOf(inv)
          : await newPasswordOf(inv, user, client.minPasswordLength);
      if (client.closed) client = await connect(inv, home); // the relay gives 60 s to log in
      await client.request('auth.signup', { user, password, ...(invite ? { invite } : {}) });
      inv.io.stdout.write(`Created account ${user}\n`);
      return await doLogin(inv, user, () => Promise.resolve(password));
    } finally {
      client.close();
    }
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
    return doLogin(inv, user, () => passwordOf(inv));
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
    const login = home.login();
    if (!login) {
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
      if (isTransient(err)) {
        // The relay cannot be told: forget the login here anyway, and say what that leaves.
        home.clearLogin();
        inv.io.stderr.write(
          `switchboard logout: cannot reach the relay (${(err as Error).message}).\n` +
            `Forgot this device's login; the relay still accepts its token until ${login.expiresAt}.\n` +
            (bool(inv, 'all')
              ? 'Your other logins were NOT revoked: run `switchboard logout --all` again once the relay is up.\n'
              : 'To revoke it, run `switchboard logout --all` from a logged-in device.\n'),
        );
        return bool(inv, 'all') ? exitCodeFor(err as SwitchboardError) : Exit.OK;
      }
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

/** Pages `users --all` fetches at most (USERS_PAGE_MAX each): a bound, not a real-world limit. */
const MAX_USER_PAGES = 10_000;

export const users: Command = {
  name: 'users',
  summary: 'List the people you deal with and who is online (--all: every user).',
  usage: '[--all] [--json]',
  details:
    'Without --all: you, the owners of sessions you may attach to, the users named in your own\n' +
    `sessions' --allow and --viewers, and who is online; at most ${USERS_PAGE_DEFAULT}. With --all: every user,\n` +
    'fetched page by page. A user is online while any of their clients (share, agent, attach, ...)\n' +
    'holds a connection.',
  positionals: [0, 0],
  options: {
    all: { type: 'boolean', description: 'list every user of the relay, page by page' },
    ...JSON_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    return withSession(inv, async ({ client }) => {
      let users: Results['users.list']['users'];
      if (bool(inv, 'all')) {
        users = [];
        let after: string | undefined;
        for (let page = 0; page < MAX_USER_PAGES; page++) {
          const reply = await client.request('users.list', {
            all: true,
            limit: USERS_PAGE_MAX,
            ...(after ? { after } : {}),
          });
          users.push(...reply.users);
          if (reply.next === undefined) break;
          after = reply.next;
        }
      } else {
        users = (await client.request('users.list', {})).users;
        if (users.length >= USERS_PAGE_DEFAULT && !bool(inv, 'json'))
          inv.io.stderr.write(
            `(the first ${users.length}; \`switchboard users --all\` lists everyone)\n`,
          );
      }
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

/** `--password-stdin` for passwd: two lines, the current password then the new one. */
async function twoPasswordsFromStdin(inv: Invocation): Promise<[string, string]> {
  const lines = (await readStdinSecret(inv.io)).split(/\r?\n/);
  const [current, next] = lines;
  if (lines.length !== 2 || !current || !next)
    throw new UsageError(
      'with --password-stdin, pipe two lines: the current password, then the new one',
    );
  return [current, next];
}

export const passwd: Command = {
  name: 'passwd',
  summary: "Change your account's password (--logout-others: end your other logins).",
  usage: '[--logout-others] [--password-stdin]',
  details:
    'Asks for the current password, then the new one twice. With --password-stdin, reads two\n' +
    'lines instead: the current password, then the new one. Your other logins keep working\n' +
    'unless you pass --logout-others, which revokes them and disconnects them at once.',
  positionals: [0, 0],
  options: {
    'logout-others': {
      type: 'boolean',
      description: 'revoke every other login of the account (other devices, other homes)',
    },
    'password-stdin': {
      type: 'boolean',
      description: 'read the current and the new password from standard input, one per line',
    },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    let password: string;
    let newPassword: string;
    if (bool(inv, 'password-stdin')) {
      [password, newPassword] = await twoPasswordsFromStdin(inv);
    } else {
      if (!interactive(inv.io))
        throw new UsageError('no terminal to ask for the passwords on; use --password-stdin');
      password = await readLine(inv.io, 'Current password: ', false);
      // The relay checks the length (its rule is not known before connecting).
      newPassword = await newPasswordOf(inv, homeOf(inv).login()?.user, undefined, 'New password');
    }
    const revokeOthers = bool(inv, 'logout-others');
    return withSession(inv, async ({ client }) => {
      const { revoked } = await client.request('auth.passwd', {
        password,
        newPassword,
        ...(revokeOthers ? { revokeOthers } : {}),
      });
      inv.io.stdout.write(
        revokeOthers
          ? `Password changed; ${revoked} other login(s) revoked.\n`
          : 'Password changed. Your other logins still work (--logout-others ends them).\n',
      );
      return Exit.OK;
    });
  },
};

export const account: Command = {
  name: 'account',
  summary: 'Delete your account (`account delete`): its sessions, devices and logins go with it.',
  usage: 'delete [--password-stdin] [--yes]',
  details:
    'Asks for the password and, on a terminal, for the user name typed out as confirmation\n' +
    '(--yes skips that; without a terminal --yes is required). Every session, device key and\n' +
    "login of the account is removed and its connections are closed; the name becomes free.\nThis home's login is forgotten.",
  positionals: [1, 1],
  options: {
    'password-stdin': {
      type: 'boolean',
      description: 'read the password from standard input (for scripts)',
    },
    yes: { type: 'boolean', description: 'do not ask for the typed confirmation' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const action = inv.positionals[0];
    if (action !== 'delete')
      throw new UsageError(`unknown action "${action}"; the only one is \`account delete\``);
    const home = homeOf(inv);
    const login = home.login();
    if (!login)
      throw new SwitchboardError(
        ErrorCode.NOT_LOGGED_IN,
        'not logged in; log in as the account to delete first',
      );
    if (!bool(inv, 'yes')) {
      if (!interactive(inv.io))
        throw new UsageError('no terminal to confirm on; pass --yes to delete without asking');
      inv.io.stderr.write(
        `This deletes the account ${login.user} on ${login.server} with its sessions, devices and logins.\n`,
      );
      const typed = await readLine(inv.io, `Type the user name (${login.user}) to confirm: `, true);
      if (typed.trim() !== login.user) throw new UsageError('not confirmed; nothing was deleted');
    }
    const password = await passwordOf(inv);
    const deleted = await withSession(inv, async ({ client }) =>
      client.request('account.delete', { password }),
    );
    home.clearLogin();
    inv.io.stdout.write(`Deleted the account ${deleted.user} on ${login.server}.\n`);
    return Exit.OK;
  },
};

// Operators and users managing accounts through the real CLI: sign-up modes and invites,
// `passwd`, `account delete`.
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/server/logger.js';
import {
  FAST_ARGON2,
  loginUser,
  makeTempDir,
  makeUser,
  Opened,
  runCli,
  savedLogin,
  type TestRelay,
} from './helpers.js';

const opened = new Opened({ auth: { argon2: FAST_ARGON2 } });
after(() => opened.close());

/** A live connection logged in with the token saved in `home`, and a promise of its close. */
async function liveConnection(r: TestRelay, home: string) {
  const c = await opened.client(r, home);
  await c.request('auth.token', { token: savedLogin(home).token });
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  return { c, closed };
}

/** Resolves as `promise` does, or rejects after `ms` naming `what`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function signupArgs(r: TestRelay, user: string, ...extra: string[]) {
  return [
    'signup',
    '--user',
    user,
    '--password-stdin',
    '--server',
    r.server,
    '--fingerprint',
    r.fingerprint,
    ...extra,
  ];
}

describe('sign-up modes and invites', () => {
  let r: TestRelay;
  let root: string;
  let member: string;

  before(async () => {
    // The operator makes the admin's account while sign-up is open, then restarts invite-only.
    r = await opened.relay();
    root = await makeUser(r, 'root', 'root-password-1');
    member = await makeUser(r, 'member', 'member-password-1');
    await r.restart({ signup: 'invite', admins: ['root'] });
  });

  it('refuses a sign-up without a code (exit 3, INVITE_REQUIRED), or with an unknown one', async () => {
    const bare = await runCli(signupArgs(r, 'newbie'), {
      home: makeTempDir(),
      stdin: 'newbie-password-1',
    });
    assert.equal(bare.code, 3, bare.stderr);
    assert.match(bare.stderr, /\[INVITE_REQUIRED\]/);
    // Refused before any password is read: with no password on stdin the answer is the same.
    const early = await runCli(signupArgs(r, 'newbie'), { home: makeTempDir() });
    assert.equal(early.code, 3, early.stderr);
    assert.match(early.stderr, /\[INVITE_REQUIRED\]/);
    assert.match(bare.stderr, /--invite CODE/);
    const forged = await runCli(
      signupArgs(r, 'newbie', '--invite', 'sbi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
      { home: makeTempDir(), stdin: 'newbie-password-1' },
    );
    assert.equal(forged.code, 3, forged.stderr);
    assert.match(forged.stderr, /\[INVITE_INVALID\]/);
  });

  it('lets only an admin create invites (others exit 5, NOT_ALLOWED)', async () => {
    const denied = await runCli(['invite', 'create'], { home: member });
    assert.equal(denied.code, 5, denied.stderr);
    assert.match(denied.stderr, /\[NOT_ALLOWED\]/);
    const listDenied = await runCli(['invite', 'list'], { home: member });
    assert.equal(listDenied.code, 5, listDenied.stderr);
  });

  it('an admin invites two people; the code is spent after --uses', async () => {
    const made = await runCli(['invite', 'create', '--uses', '2', '--expires', '1h'], {
      home: root,
    });
    assert.equal(made.code, 0, made.stderr);
    const code = /\b(sbi_[A-Za-z0-9_-]+)/.exec(made.stdout)?.[1];
    assert.ok(code, made.stdout);
    // The exact command to hand over, with the relay and its fingerprint.
    assert.ok(
      made.stdout.includes(
        `switchboard signup --server ${r.server} --fingerprint ${r.fingerprint} --invite ${code} --user NAME`,
      ),
      made.stdout,
    );

    const listed = await runCli(['invite', 'list', '--json'], { home: root });
    assert.equal(listed.code, 0, listed.stderr);
    const invites = JSON.parse(listed.stdout) as Array<{ createdBy: string; usesLeft: number }>;
    assert.deepEqual(
      invites.map((i) => [i.createdBy, i.usesLeft]),
      [['root', 2]],
    );
    assert.equal(listed.stdout.includes(code), false, 'the list never shows a code');

    for (const name of ['ivy', 'ian']) {
      const home = makeTempDir();
      const ok = await runCli(signupArgs(r, name, '--invite', code), {
        home,
        stdin: `${name}-password-1`,
      });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, new RegExp(`Created account ${name}\\nLogged in as ${name}`));
    }
    const third = await runCli(signupArgs(r, 'ida', '--invite', code), {
      home: makeTempDir(),
      stdin: 'ida-password-1',
    });
    assert.equal(third.code, 3, third.stderr);
    assert.match(third.stderr, /\[INVITE_INVALID\]/);
    const after = await runCli(['invite', 'list', '--json'], { home: root });
    assert.deepEqual(JSON.parse(after.stdout), []);
  });

  it('rejects a bad --expires or --uses with exit 2', async () => {
    for (const args of [
      ['--expires', '3 weeks'],
      ['--expires', '10s'],
      ['--uses', '0'],
    ]) {
      const bad = await runCli(['invite', 'create', ...args], { home: root });
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    }
  });

  it('refuses every sign-up when closed (SIGNUP_CLOSED), invite or not', async () => {
    const made = await runCli(['invite', 'create'], { home: root });
    const code = /\b(sbi_[A-Za-z0-9_-]+)/.exec(made.stdout)?.[1];
    assert.ok(code);
    await r.restart({ signup: 'closed', admins: ['root'] });
    const refused = await runCli(signupArgs(r, 'late', '--invite', code), {
      home: makeTempDir(),
      stdin: 'late-password-1',
    });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /\[SIGNUP_CLOSED\]/);
    // Existing accounts still log in.
    await loginUser(r, 'member', 'member-password-1');
  });

  it('serve refuses an unknown --signup mode with exit 2', async () => {
    const bad = await runCli(['serve', '--signup', 'maybe', '--port', '0'], {
      home: makeTempDir(),
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--signup must be one of open, invite, closed/);
  });
});

describe('switchboard passwd', () => {
  it('changes the password; --logout-others revokes the other homes and closes their connections', async () => {
    const r = await opened.relay();
    const here = await makeUser(r, 'pat', 'pat-password-old');
    const there = await loginUser(r, 'pat', 'pat-password-old');

    // Without --logout-others the other home keeps working.
    const first = await runCli(['passwd', '--password-stdin'], {
      home: here,
      stdin: 'pat-password-old\npat-password-mid\n',
    });
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await runCli(['whoami'], { home: there })).code, 0);

    // A wrong current password changes nothing.
    const wrong = await runCli(['passwd', '--password-stdin'], {
      home: here,
      stdin: 'not-the-password\npat-password-new\n',
    });
    assert.equal(wrong.code, 3, wrong.stderr);
    assert.match(wrong.stderr, /\[BAD_CREDENTIALS\]/);
    // One line is a usage error.
    const oneLine = await runCli(['passwd', '--password-stdin'], {
      home: here,
      stdin: 'pat-password-mid\n',
    });
    assert.equal(oneLine.code, 2, oneLine.stderr);

    const live = await liveConnection(r, there);
    const second = await runCli(['passwd', '--password-stdin', '--logout-others'], {
      home: here,
      stdin: 'pat-password-mid\npat-password-new\n',
    });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /1 other login\(s\) revoked/);
    // Closed by the relay now, not at its next reconnect.
    await within(live.closed, 5_000, "the other home's connection closing");

    const revoked = await runCli(['whoami'], { home: there });
    assert.equal(revoked.code, 3, revoked.stderr);
    assert.match(revoked.stderr, /\[TOKEN_REVOKED\]/);
    assert.equal((await runCli(['whoami'], { home: here })).code, 0, 'this home stays logged in');

    for (const old of ['pat-password-old', 'pat-password-mid']) {
      const refused = await runCli(['login', '--user', 'pat', '--password-stdin'], {
        home: here,
        stdin: old,
      });
      assert.equal(refused.code, 3, refused.stderr);
    }
    await loginUser(r, 'pat', 'pat-password-new');
  });
});

describe('switchboard account delete', () => {
  it('removes the account with its sessions, devices and logins, and closes its connections', async () => {
    const r = await opened.relay();
    const here = await makeUser(r, 'dora', 'dora-password-1');
    const there = await loginUser(r, 'dora', 'dora-password-1');
    const friend = await makeUser(r, 'fred', 'fred-password-1');

    // Another home of hers hosts a live session that fred may attach to.
    const host = await liveConnection(r, there);
    await host.c.request('session.register', {
      sessionId: 'dora-box',
      kind: 'agent',
      instance: 'instance-0123456789abcdef',
      hostName: 'box',
      allow: ['fred'],
      viewers: [],
    });
    const before = await runCli(['sessions', '--json'], { home: friend });
    assert.match(before.stdout, /dora-box/);

    // Without a terminal it wants --yes; a wrong password deletes nothing.
    const unconfirmed = await runCli(['account', 'delete', '--password-stdin'], {
      home: here,
      stdin: 'dora-password-1',
    });
    assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
    const wrong = await runCli(['account', 'delete', '--password-stdin', '--yes'], {
      home: here,
      stdin: 'wrong-password',
    });
    assert.equal(wrong.code, 3, wrong.stderr);
    assert.equal((await runCli(['whoami'], { home: there })).code, 0);

    const deleted = await runCli(['account', 'delete', '--password-stdin', '--yes'], {
      home: here,
      stdin: 'dora-password-1',
    });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /Deleted the account dora/);
    assert.equal(existsSync(join(here, 'login.json')), false, 'the local login is cleared');
    await within(host.closed, 5_000, "the other home's connection closing");

    const login = await runCli(['login', '--user', 'dora', '--password-stdin'], {
      home: here,
      stdin: 'dora-password-1',
    });
    assert.equal(login.code, 3, login.stderr);
    assert.match(login.stderr, /\[BAD_CREDENTIALS\]/);
    const otherHome = await runCli(['whoami'], { home: there });
    assert.equal(otherHome.code, 3, otherHome.stderr);
    assert.match(otherHome.stderr, /\[TOKEN_INVALID\]/);
    const after = await runCli(['sessions', '--json'], { home: friend });
    assert.equal(after.code, 0, after.stderr);
    assert.doesNotMatch(after.stdout, /dora-box/);
    const attach = await runCli(['attach', 'dora-box'], { home: friend });
    assert.equal(attach.code, 5, attach.stderr);
    assert.match(attach.stderr, /SESSION_NOT_FOUND/);
    const listed = await runCli(['users', '--all', '--json'], { home: friend });
    assert.doesNotMatch(listed.stdout, /"dora"/);
    // The name and her old device key are free again.
    const again = await runCli(signupArgs(r, 'dora'), { home: there, stdin: 'dora-password-2' });
    assert.equal(again.code, 0, again.stderr);
  });
});

describe('no secrets in the logs', () => {
  it('never writes an invite code or a password, even at trace level', async () => {
    const file = join(makeTempDir('switchboard-log-'), 'relay.log');
    const fd = openSync(file, 'w');
    try {
      const r = await opened.relay({ logger: createLogger('trace', fd) });
      const root = await makeUser(r, 'root', 'root-password-1');
      await r.restart({ signup: 'invite', admins: ['root'] });
      const made = await runCli(['invite', 'create'], { home: root });
      const code = /\b(sbi_[A-Za-z0-9_-]+)/.exec(made.stdout)?.[1];
      assert.ok(code, made.stderr);
      const home = makeTempDir();
      const joined = await runCli(signupArgs(r, 'quinn', '--invite', code), {
        home,
        stdin: 'quinn-password-1',
      });
      assert.equal(joined.code, 0, joined.stderr);
      const changed = await runCli(['passwd', '--password-stdin', '--logout-others'], {
        home,
        stdin: 'quinn-password-1\nquinn-password-2\n',
      });
      assert.equal(changed.code, 0, changed.stderr);
      const deleted = await runCli(['account', 'delete', '--password-stdin', '--yes'], {
        home,
        stdin: 'quinn-password-2',
      });
      assert.equal(deleted.code, 0, deleted.stderr);
      await r.close();
      const log = readFileSync(file, 'utf8');
      for (const msg of [
        'invite created',
        'account created',
        'password changed',
        'account deleted',
      ])
        assert.match(log, new RegExp(`"msg":"${msg}"`));
      for (const secret of [code, code.slice(4), 'quinn-password-1', 'quinn-password-2'])
        assert.ok(!log.includes(secret), `the log contains a secret: ${secret.slice(0, 6)}…`);
    } finally {
      closeSync(fd);
    }
  });
});

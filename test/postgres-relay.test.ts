// The relay on a real PostgreSQL (started by this file): accounts and sessions through RelayClient, and `serve --database`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import {
  FAST_ARGON2,
  makeTempDir,
  makeUser,
  newDevice,
  Opened,
  startServeProcess,
  type ServeProcess,
} from './helpers.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

let pgServer: TestPostgres | undefined;
const opened = new Opened({ auth: { argon2: FAST_ARGON2 } });
let serve: ServeProcess | undefined;

before(async () => {
  pgServer = await startTestPostgres();
});

after(async () => {
  await opened.close();
  if (serve && serve.child.exitCode === null) {
    serve.child.kill('SIGKILL');
    await serve.exited;
  }
  await pgServer?.stop();
});

/** Runs one query on its own connection. */
async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('the relay on PostgreSQL', () => {
  it('signs up, logs in, answers whoami and registers a session, all stored in PostgreSQL', async () => {
    const url = await pgServer!.createDatabase();
    const r = await opened.relay({ database: url });
    const c = await opened.client(r);

    await c.request('auth.signup', { user: 'alice', password: 'alice-correct-horse' });
    await assert.rejects(
      c.request('auth.signup', { user: 'alice', password: 'another-password' }),
      (err: unknown) => err instanceof SwitchboardError && err.code === ErrorCode.USER_EXISTS,
    );
    await c.request('auth.login', {
      user: 'alice',
      password: 'alice-correct-horse',
      device: newDevice(),
    });
    assert.equal((await c.request('whoami', {})).user, 'alice');
    const { sessionId } = await c.request('session.register', {
      kind: 'agent',
      instance: randomBytes(16).toString('hex'),
      hostName: 'box',
      allow: [],
      viewers: [],
    });
    const { sessions } = await c.request('sessions.list', {});
    assert.deepEqual(
      sessions.map((s) => s.sessionId),
      [sessionId],
    );

    assert.equal(existsSync(join(r.dataDir, 'switchboard.db')), false, 'no SQLite file made');
    assert.deepEqual(await query(url, 'select name from users'), [{ name: 'alice' }]);
    assert.deepEqual(await query(url, 'select count(*)::int as n from devices'), [{ n: 1 }]);
    assert.deepEqual(await query(url, 'select id, status from remote_sessions'), [
      { id: sessionId, status: 'live' },
    ]);

    c.terminate();
    await r.restart();
    const again = await opened.client(r);
    await again.request('auth.login', {
      user: 'alice',
      password: 'alice-correct-horse',
      device: newDevice(),
    });
    assert.equal((await again.request('whoami', {})).user, 'alice', 'the account survived');
  });

  it('`serve --database URL` runs on it and shows the URL without its password', async () => {
    const url = await pgServer!.createDatabase();
    // The test server trusts local connections, so any password passes; it must never show.
    const secret = `pw-${randomBytes(6).toString('hex')}`;
    const withPassword = url.replace('postgresql://relay@', `postgresql://relay:${secret}@`);
    assert.notEqual(withPassword, url);
    const dataDir = makeTempDir('switchboard-data-');
    serve = await startServeProcess(dataDir, ['--database', withPassword]);
    assert.match(serve.output().stdout, /, database postgresql:\/\/relay:\*\*\*@\//);

    await makeUser(serve, 'carol', 'carol-tr0ub4dor&3');
    assert.deepEqual(await query(url, 'select name from users'), [{ name: 'carol' }]);
    assert.equal(existsSync(join(dataDir, 'switchboard.db')), false, 'no SQLite file made');

    serve.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const { code } = await Promise.race([
      serve.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('serve did not stop within 10 s')), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(code, 0);
    const { stdout, stderr } = serve.output();
    assert.match(stderr, /"msg":"database open"/);
    assert.match(stderr, /"dialect":"postgres"/);
    assert.ok(!stdout.includes(secret) && !stderr.includes(secret), 'the password was shown');
  });
});

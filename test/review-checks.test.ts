// Checks added in review that no other test would miss: each `it` fails if its check is removed.
// A forged log of your own agent, audit pages bounded in bytes, NUL in an exec argv, --out-dir
// left with no stale output, and throttled logins kept out of the relay's audit.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { KnownServers } from '../src/client/known-servers.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey, keyFingerprint } from '../src/crypto/device-key.js';
import { DEFAULT_SERVICES, type HostSession } from '../src/host/host-session.js';
import { execService } from '../src/host/services/exec.js';
import { agentLogName, bodyHash, signEntry, type EntryHead } from '../src/protocol/audit.js';
import { ErrorCode } from '../src/protocol/errors.js';
import {
  EXEC_SERVICE,
  ExecType,
  decodeJson,
  encodeSignedRequest,
  type ExecRefused,
} from '../src/protocol/exec.js';
import { AUDIT_LIST_MAX, AUDIT_LIST_MAX_BYTES } from '../src/protocol/limits.js';
import type { Results } from '../src/protocol/messages.js';
import { codeOf, runCli, waitFor } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir(), LANG: 'C.UTF-8' };

describe('checks added in review', () => {
  const h = new Harness();
  let owner: TestUser;
  let home: string;
  let db: Database.Database;
  let ownerId: number;

  /** An agent of `owner` serving exec (no policy: only its owner runs commands). */
  const execAgent = (sessionId: string): Promise<HostSession> =>
    h.agent(
      owner,
      sessionId,
      {},
      {
        services: [
          ...DEFAULT_SERVICES,
          execService({ policy: () => undefined, env: () => ENV, cwd: tmpdir() }),
        ],
      },
    );

  /** Rows straight into the relay's audit table, as a tampered database would hold them. */
  const insertRows = (
    rows: Array<{
      log: string;
      seq: number;
      session: string;
      body: string;
      sig: string;
      signer: string;
    }>,
  ) => {
    const insert = db.prepare(
      `insert into audit_entries (log, seq, owner_id, session, actor, type, time, body, sig, signer)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    db.transaction(() => {
      for (const r of rows)
        insert.run(
          r.log,
          r.seq,
          ownerId,
          r.session,
          owner.name,
          'exec',
          Date.now(),
          r.body,
          r.sig,
          r.signer,
        );
    })();
  };

  before(async () => {
    await h.start();
    home = mkdtempSync(join(h.dir, 'cli-rcowner-'));
    const signup = await h.cliAccount('signup', 'rcowner', home);
    assert.equal(signup.code, 0, signup.stderr);
    owner = await h.user('rcowner'); // another device of the same account, for the agents
    await execAgent('rc-box');
    db = new Database(join(h.dataDir, 'switchboard.db'));
    ownerId = (db.prepare('select id from users where name = ?').get('rcowner') as { id: number })
      .id;
  });
  after(async () => {
    db?.close();
    await h.close();
  });

  it('audit --verify fails a log of your own session signed by a key that is none of your devices', async () => {
    const stranger = generateDeviceKey();
    const log = agentLogName('rc-box', keyFingerprint(stranger.publicKey));
    let prev = '';
    const rows = [1, 2].map((seq) => {
      const head: EntryHead = {
        v: 1,
        log,
        seq,
        prev,
        time: new Date().toISOString(),
        type: 'exec',
        user: 'rcowner',
        command: `echo forged-${seq}`,
        decision: 'allowed',
      };
      const entry = signEntry(stranger, head);
      prev = bodyHash(entry.body);
      return {
        log,
        seq,
        session: 'rc-box',
        ...entry,
        signer: stranger.publicKey.toString('base64'),
      };
    });
    insertRows(rows);
    const r = await runCli(['audit', '--verify', '--host', 'rc-box'], { home });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const line = r.stdout.split('\n').find((l) => l.includes(log)) ?? '';
    assert.match(line, /^FAILED /, r.stdout);
    assert.match(line, /not one of your devices \(forged\)/);
    assert.match(r.stdout, /log\(s\) FAILED verification/);
  });

  it('audit.list pages stop at AUDIT_LIST_MAX_BYTES, and paging returns every row once', async () => {
    const key = generateDeviceKey();
    const log = agentLogName('rc-big', keyFingerprint(key.publicKey));
    const COUNT = 80; // ~1.2 MB in all: a page of AUDIT_LIST_MAX would not fit 512 KiB, nor 1 MiB
    const pad = 'x'.repeat(15 * 1024);
    const rows = Array.from({ length: COUNT }, (_, i) => {
      const entry = signEntry(key, {
        v: 1,
        log,
        seq: i + 1,
        prev: '',
        time: new Date().toISOString(),
        type: 'exec',
        user: 'rcowner',
        pad,
      });
      return {
        log,
        seq: i + 1,
        session: 'rc-big',
        ...entry,
        signer: key.publicKey.toString('base64'),
      };
    });
    assert.ok(COUNT * pad.length > AUDIT_LIST_MAX_BYTES * 2);
    insertRows(rows);
    const client = await owner.connect();
    h.defer(() => client.close());
    const first = await client.request('audit.list', { limit: AUDIT_LIST_MAX });
    const mine = (entries: typeof first.entries) => entries.filter((e) => e.log === log);
    assert.ok(first.entries.length > 0);
    assert.ok(mine(first.entries).length < COUNT, `${first.entries.length} entries in one page`);
    assert.ok(first.next, 'a next page is announced');
    const size = Buffer.byteLength(JSON.stringify(first));
    assert.ok(size < 1024 * 1024, `the first page is ${size} bytes`);
    // Every row once, in order, by following `next`.
    const seen: number[] = mine(first.entries).map((e) => e.seq);
    let next: { log: string; seq: number } | undefined = first.next;
    for (let pages = 1; next && pages < 100; pages++) {
      const page: Results['audit.list'] = await client.request('audit.list', {
        limit: AUDIT_LIST_MAX,
        after: next,
      });
      assert.ok(Buffer.byteLength(JSON.stringify(page)) < 1024 * 1024);
      seen.push(...mine(page.entries).map((e) => e.seq));
      next = page.next;
    }
    assert.equal(next, undefined, 'paging ends');
    assert.deepEqual(
      seen,
      rows.map((r) => r.seq),
    );
  });

  it('an exec request whose argv contains NUL is refused as INVALID_MESSAGE and runs nothing', async () => {
    const marker = join(tmpdir(), `sb-review-nul-${randomBytes(4).toString('hex')}`);
    const { channel, opened } = await h.openService(owner, EXEC_SERVICE, 'rc-box');
    const answer = new Promise<ExecRefused | { closed: string }>((resolve) =>
      channel.setHandlers({
        onMessage: (m) => {
          if (m[0] === ExecType.REFUSED) resolve(decodeJson<ExecRefused>(m));
          else resolve({ closed: `message ${m[0]}` });
        },
        onClose: (code) => resolve({ closed: code }),
      }),
    );
    channel.send(
      encodeSignedRequest(owner.key, {
        v: 1,
        op: 'exec',
        user: 'rcowner',
        agent: { session: 'rc-box', fingerprint: opened.host.fingerprint },
        channel: channel.handshakeHash,
        nonce: randomBytes(16).toString('base64'),
        issuedAt: Date.now(),
        command: { kind: 'argv', argv: ['sh', '-c', `touch ${marker}`, 'a\0b'] },
        stdin: false,
      }),
    );
    const got = await answer;
    const code = 'closed' in got ? got.closed : got.code;
    assert.equal(code, ErrorCode.INVALID_MESSAGE, JSON.stringify(got));
    if (!('closed' in got)) assert.match(got.message, /NUL/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(existsSync(marker), false, 'nothing ran');
  });

  it('exec --out-dir into a used directory keeps only the latest run in HOST.stdout', async () => {
    const host = await execAgent('rc-out');
    const outDir = join(h.dir, 'out');
    const exec = (...argv: string[]) =>
      runCli(['exec', 'rc-out', '--out-dir', outDir, '--', ...argv], { home, timeoutMs: 60_000 });
    const stdoutFile = join(outDir, 'rc-out.stdout');
    const one = await exec('echo', 'first-run-output');
    assert.equal(one.code, 0, one.stderr);
    assert.equal(readFileSync(stdoutFile, 'utf8'), 'first-run-output\n');
    const two = await exec('echo', 'second');
    assert.equal(two.code, 0, two.stderr);
    assert.equal(readFileSync(stdoutFile, 'utf8'), 'second\n');
    // Offline now (registered, not connected): the next run never reaches it, and must not leave
    // the previous run's output looking like its own.
    await host.stop();
    const c = await owner.connect();
    await c.request('session.register', {
      sessionId: 'rc-out',
      kind: 'agent',
      instance: randomBytes(12).toString('hex'),
      hostName: 'test-host',
      allow: [],
      viewers: [],
      services: ['terminal', EXEC_SERVICE],
    });
    c.close();
    await waitFor(
      async () => {
        const l = await owner.connect();
        const { sessions } = await l.request('sessions.list', {});
        l.close();
        return sessions.some((s) => s.sessionId === 'rc-out' && !s.live);
      },
      5_000,
      'rc-out to be offline',
    );
    const three = await exec('echo', 'third');
    assert.equal(three.code, 7, three.stdout + three.stderr);
    assert.match(three.stderr, /rc-out\s+unreachable/);
    const left = existsSync(stdoutFile) ? readFileSync(stdoutFile, 'utf8') : '';
    assert.equal(left, '', `stale output left in ${stdoutFile}`);
  });

  it('the relay audits failed logins but not throttled ones', async () => {
    await h.user('rcvictim');
    const trust = {
      knownServers: new KnownServers(join(h.dir, 'rc-known_servers.json')),
      fingerprint: h.relay.certificate.fingerprint,
    };
    const codes: string[] = [];
    for (let i = 0; i < 12 && codes.filter((c) => c === ErrorCode.THROTTLED).length < 3; i++) {
      const c = await RelayClient.connect({ server: h.server, trust });
      codes.push(
        await codeOf(
          c.request('auth.login', {
            user: 'rcvictim',
            password: `wrong-guess-${i}`,
            device: { publicKey: generateDeviceKey().publicKey.toString('base64'), name: 'g' },
          }),
        ),
      );
      c.close();
    }
    const bad = codes.filter((c) => c === ErrorCode.BAD_CREDENTIALS).length;
    assert.ok(bad > 0, codes.join());
    assert.equal(codes.filter((c) => c === ErrorCode.THROTTLED).length, 3, codes.join());
    // A later login is queued after every failure's entry: once it is stored, they all are.
    await h.user('rcmarker');
    const rows = () =>
      (
        db
          .prepare("select body from audit_entries where log like 'relay:%' order by seq")
          .all() as { body: string }[]
      ).map((r) => JSON.parse(r.body) as EntryHead);
    await waitFor(
      () => rows().some((e) => e.type === 'login' && e['user'] === 'rcmarker'),
      5_000,
      'the marker login in the relay audit',
    );
    const failed = rows().filter((e) => e.type === 'login-failed' && e['user'] === 'rcvictim');
    assert.equal(failed.length, bad, JSON.stringify(failed.map((e) => e['code'])));
    assert.ok(failed.every((e) => e['code'] === ErrorCode.BAD_CREDENTIALS));
    assert.ok(!failed.some((e) => e['code'] === ErrorCode.THROTTLED));
  });
});

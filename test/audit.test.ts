// The audit log end to end: agents sign and chain entries, ship them to the relay (also after an
// outage), and `switchboard audit --verify` detects an edited, a deleted and a reordered entry.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { keyFingerprint } from '../src/crypto/device-key.js';
import { AuditLog, auditHostSession, readLogFile } from '../src/host/audit-log.js';
import { DEFAULT_SERVICES, type HostSession } from '../src/host/host-session.js';
import { parsePolicy } from '../src/host/policy-file.js';
import { execService } from '../src/host/services/exec.js';
import {
  AUDIT_MAX_BODY_BYTES,
  agentLogName,
  signEntry,
  verifyChain,
  type EntryHead,
} from '../src/protocol/audit.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { codeOf, runCli, waitFor } from './helpers.js';
import { run } from './exec-client.js';
import { Harness, type TestUser } from './terminal-harness.js';

const ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

describe('the audit log', () => {
  const h = new Harness();
  let owner: TestUser;
  let carol: TestUser;
  let host: HostSession;
  let audit: AuditLog;
  let cliHome: string;
  const logFile = () => audit.file;

  before(async () => {
    await h.start();
    owner = await h.user('auowner');
    carol = await h.user('aucarol');
    const policy = parsePolicy('{"users": {"aucarol": {"commands": [["echo", "..."]]}}}', 'p.json');
    host = await h.agent(
      owner,
      'au-box',
      {},
      {
        operators: ['aucarol'],
        services: [
          ...DEFAULT_SERVICES,
          execService({ policy: () => policy, env: () => ENV, cwd: tmpdir() }),
        ],
      },
    );
    audit = new AuditLog(
      join(mkdtempSync(join(h.dir, 'audit-')), 'au-box.log'),
      agentLogName('au-box', keyFingerprint(owner.key.publicKey)),
      owner.key,
    );
    auditHostSession(host, audit, (err) => assert.fail(err));
    // The log starts after the host connected: hand it the connection the way a reconnect does.
    host.emit('client', await owner.connect());
    // The owner on the CLI, for `switchboard audit`: another device of the same account.
    cliHome = mkdtempSync(join(h.dir, 'cli-auowner-'));
    const signup = await h.cliAccount('login', 'auowner', cliHome);
    assert.equal(signup.code, 0, signup.stderr);
  });
  after(() => {
    audit.close();
    return h.close();
  });

  async function exec(user: TestUser, argv: string[]): Promise<void> {
    await run(h, user, 'au-box', argv);
  }

  const relayEntries = async () => {
    const client = await owner.connect();
    try {
      const { entries } = await client.request('audit.list', { host: 'au-box' });
      // The relay's own entries about this session (channels routed to it) are another log.
      return entries.filter((e) => e.log === audit.log);
    } finally {
      client.close();
    }
  };

  it('records each exec and refusal, signed and chained, locally and at the relay', async () => {
    await exec(owner, ['echo', 'one']);
    await exec(carol, ['uname', '-a']); // refused by the policy
    await exec(carol, ['echo', 'two']);
    const local = readLogFile(logFile());
    assert.equal(local.length, 3);
    const heads = local.map((e) => JSON.parse(e.body) as EntryHead);
    assert.deepEqual(
      heads.map((e) => [e.seq, e.type, e['user'], e['decision']]),
      [
        [1, 'exec', 'auowner', 'allowed'],
        [2, 'exec', 'aucarol', 'refused'],
        [3, 'exec', 'aucarol', 'allowed'],
      ],
    );
    // The output itself is never in the log: only its size and hash.
    assert.ok(!readFileSync(logFile(), 'utf8').includes('one\\n'));
    assert.equal((heads[0]!['exit'] as { stdout: { bytes: number } }).stdout.bytes, 4);
    assert.equal(verifyChain(audit.log, local, owner.key.publicKey), undefined);
    await waitFor(async () => (await relayEntries()).length === 3, 5_000, 'the relay to hold 3');
    const atRelay = await relayEntries();
    assert.deepEqual(
      atRelay.map((e) => e.body),
      local.map((e) => e.body),
    );
    // carol sees her own entries only, not the owner's.
    const c = await carol.connect();
    h.defer(() => c.close());
    const hers = (await c.request('audit.list', {})).entries;
    assert.ok(hers.every((e) => (JSON.parse(e.body) as EntryHead)['user'] === 'aucarol'));
    // Of the agent's log, her two requests; the rest are the relay's (her login, her channels).
    assert.equal(hers.filter((e) => e.log === audit.log).length, 2);
  });

  it('after an outage, the agent sends the relay what it missed', async () => {
    host.emit('client', undefined);
    audit.append('test', { note: 'while away 1' });
    audit.append('test', { note: 'while away 2' });
    assert.equal((await relayEntries()).length, 3);
    host.emit('client', await owner.connect());
    await waitFor(async () => (await relayEntries()).length === 5, 5_000, 'the relay to catch up');
    assert.equal(verifyChain(audit.log, await relayEntries(), owner.key.publicKey), undefined);
  });

  it('the relay refuses entries that are not the chain it holds, or not the agent own', async () => {
    const client = await owner.connect();
    h.defer(() => client.close());
    const head = await client.request('audit.head', { log: audit.log });
    const body = (seq: number, prev: string): EntryHead => ({
      v: 1,
      log: audit.log,
      seq,
      prev,
      time: new Date().toISOString(),
      type: 'test',
    });
    // A gap: seq head+2.
    assert.equal(
      await codeOf(
        client.request('audit.append', {
          log: audit.log,
          entries: [signEntry(owner.key, body(head.seq + 2, head.hash))],
        }),
      ),
      ErrorCode.CONFLICT,
    );
    // Signed by another key (carol's).
    assert.equal(
      await codeOf(
        client.request('audit.append', {
          log: audit.log,
          entries: [signEntry(carol.key, body(head.seq + 1, head.hash))],
        }),
      ),
      ErrorCode.CONFLICT,
    );
    // Another device's log: carol may not write the owner's.
    const c = await carol.connect();
    h.defer(() => c.close());
    assert.equal(
      await codeOf(
        c.request('audit.append', { log: audit.log, entries: [signEntry(carol.key, body(1, ''))] }),
      ),
      ErrorCode.NOT_ALLOWED,
    );
    // The owner's other device may not write this device's log either (the name's fingerprint).
    const other = await h.user('auowner', h.server, h.relay.certificate.fingerprint, 'other');
    const o = await other.connect();
    h.defer(() => o.close());
    assert.equal(
      await codeOf(
        o.request('audit.append', { log: audit.log, entries: [signEntry(other.key, body(1, ''))] }),
      ),
      ErrorCode.NOT_ALLOWED,
    );
    // carol's own device, but on a session she does not own.
    const carolLog = agentLogName('au-box', keyFingerprint(carol.key.publicKey));
    assert.equal(
      await codeOf(
        c.request('audit.append', {
          log: carolLog,
          entries: [signEntry(carol.key, { ...body(1, ''), log: carolLog })],
        }),
      ),
      ErrorCode.NOT_ALLOWED,
    );
    assert.equal((await client.request('audit.head', { log: audit.log })).seq, head.seq);
  });

  it('audit --verify passes, then names an edited, a deleted and a reordered entry', async () => {
    const verify = () => runCli(['audit', '--verify', '--host', 'au-box'], { home: cliHome });
    const ok = await verify();
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /au-box.*: 5 entries, signatures and chain verified/);
    const db = new Database(join(h.dataDir, 'switchboard.db'));
    h.defer(() => void db.close());
    const bodyOf = (seq: number) =>
      (
        db
          .prepare('select body from audit_entries where log = ? and seq = ?')
          .get(audit.log, seq) as { body: string }
      ).body;
    const setBody = (seq: number, body: string) =>
      db
        .prepare('update audit_entries set body = ? where log = ? and seq = ?')
        .run(body, audit.log, seq);
    // Edited: carol's refusal turned into an allowance.
    const original2 = bodyOf(2);
    setBody(2, original2.replace('"refused"', '"allowed"'));
    const edited = await verify();
    assert.equal(edited.code, 1);
    assert.match(edited.stdout, /FAILED .*entry 2: the signature does not match/);
    setBody(2, original2);
    // Reordered: entries 2 and 3 swapped.
    const original3 = bodyOf(3);
    setBody(2, original3);
    setBody(3, original2);
    const reordered = await verify();
    assert.equal(reordered.code, 1);
    assert.match(reordered.stdout, /entry 3 appears where 2 belongs \(reordered/);
    setBody(2, original2);
    setBody(3, original3);
    // Deleted: entry 4 removed.
    const row4 = db.prepare('select * from audit_entries where log = ? and seq = 4').get(audit.log);
    db.prepare('delete from audit_entries where log = ? and seq = 4').run(audit.log);
    const deleted = await verify();
    assert.equal(deleted.code, 1);
    assert.match(deleted.stdout, /entry 4 is missing \(deleted\)/);
    const cols = Object.keys(row4 as object);
    db.prepare(
      `insert into audit_entries (${cols.join(',')}) values (${cols.map(() => '?').join(',')})`,
    ).run(...Object.values(row4 as object));
    assert.equal((await verify()).code, 0);
  });

  it('the relay keeps its own signed chain: logins, failed logins, routed channels, revocations', async () => {
    const failed = await h.cliAccount(
      'login',
      'auowner',
      mkdtempSync(join(h.dir, 'cli-wrong-')),
      'not-the-password',
    );
    assert.equal(failed.code, 3);
    const doomed = await h.user('auowner', h.server, h.relay.certificate.fingerprint, 'doomed');
    const c = await owner.connect();
    h.defer(() => c.close());
    await c.request('devices.revoke', { fingerprint: keyFingerprint(doomed.key.publicKey) });
    const db = new Database(join(h.dataDir, 'switchboard.db'), { readonly: true });
    h.defer(() => void db.close());
    const rows = () =>
      db
        .prepare(
          "select body, sig, signer from audit_entries where log like 'relay:%' order by seq",
        )
        .all() as { body: string; sig: string; signer: string }[];
    await waitFor(
      () => rows().some((r) => r.body.includes('"device-revoked"')),
      5_000,
      'the revocation entry',
    );
    const all = rows();
    const heads = all.map((r) => JSON.parse(r.body) as EntryHead);
    const log = heads[0]!.log;
    assert.equal(
      verifyChain(log, all, Buffer.from(all[0]!.signer, 'base64')),
      undefined,
      'the whole relay chain verifies',
    );
    const seen = (type: string, user: string, extra: (h: EntryHead) => boolean = () => true) =>
      heads.some((x) => x.type === type && x['user'] === user && extra(x));
    assert.ok(seen('login', 'auowner'));
    assert.ok(seen('login-failed', 'auowner', (x) => x['code'] === ErrorCode.BAD_CREDENTIALS));
    assert.ok(
      seen('channel', 'aucarol', (x) => x['service'] === 'exec' && x['target'] === 'au-box'),
    );
    assert.ok(seen('device-revoked', 'auowner'));
    // Only its hash and signature are stored: no password, ever.
    assert.ok(
      !all.some((r) => r.body.includes('not-the-password') || r.body.includes('auowner-password')),
    );
    // The owner sees, through the relay, the exec routed into their agent by carol.
    const mine = (await c.request('audit.list', {})).entries.map(
      (e) => JSON.parse(e.body) as EntryHead,
    );
    assert.ok(mine.some((x) => x.type === 'channel' && x['user'] === 'aucarol'));
  });

  it('an entry too big for the relay is bounded, so shipping never stops', async () => {
    const files = Array.from({ length: 1000 }, (_, i) => ({
      name: `file-${i}.bin`,
      size: i,
      sha256: 'ab'.repeat(32),
      result: 'written',
    }));
    const before = (await relayEntries()).length;
    const entry = audit.append('push', { user: 'auowner', dir: '/srv', files });
    assert.ok(Buffer.byteLength(entry.body) <= AUDIT_MAX_BODY_BYTES);
    const head = JSON.parse(entry.body) as EntryHead;
    assert.equal(head['truncated'], true);
    assert.deepEqual((head['files'] as { count: number }).count, 1000);
    audit.append('test', { note: 'after the big one' });
    await waitFor(async () => (await relayEntries()).length === before + 2, 5_000, 'both shipped');
  });

  it('refills the relay from the file after it lost entries, and survives a torn last line', async () => {
    // The relay loses its newest two entries (a restored backup).
    const db = new Database(join(h.dataDir, 'switchboard.db'));
    h.defer(() => void db.close());
    const top = (await relayEntries()).length;
    db.prepare('delete from audit_entries where log = ? and seq > ?').run(audit.log, top - 2);
    host.emit('client', await owner.connect());
    await waitFor(async () => (await relayEntries()).length === top, 5_000, 'the refill');
    assert.equal(verifyChain(audit.log, await relayEntries(), owner.key.publicKey), undefined);
    // A crash mid-write leaves half a line: a new log on that file cuts it and goes on.
    const copy = join(h.dir, 'torn.log');
    writeFileSync(copy, `${readFileSync(logFile(), 'utf8')}{"body":"{\\"v\\":1,`);
    const reopened = new AuditLog(copy, audit.log, owner.key);
    reopened.append('test', { note: 'after the tear' });
    reopened.close();
    const entries = readLogFile(copy);
    assert.equal(entries.length, top + 1);
    assert.equal(verifyChain(audit.log, entries, owner.key.publicKey), undefined);
  });

  it('audit --verify --file checks the local log and names an edited line', async () => {
    // The agent's own home: its device key is the one that signed.
    const agentHome = mkdtempSync(join(h.dir, 'agent-home-'));
    writeFileSync(join(agentHome, 'device_ed25519'), owner.key.toPrivatePem(), { mode: 0o600 });
    const ok = await runCli(['audit', '--verify', '--file', logFile()], { home: agentHome });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const lines = readFileSync(logFile(), 'utf8').split('\n');
    const copy = join(h.dir, 'edited.log');
    writeFileSync(
      copy,
      lines.map((l, i) => (i === 0 ? l.replace('echo one', 'echo 1') : l)).join('\n'),
    );
    const bad = await runCli(['audit', '--verify', '--file', copy], { home: agentHome });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /entry 1: the signature does not match/);
  });
});

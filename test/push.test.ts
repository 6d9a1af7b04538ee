// push end to end: real relay, real agents (HostSession + the push service), real files on disk.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readLocalFiles } from '../src/cli/commands/push.js';
import { PushCall, type LocalFile, type PushOutcome } from '../src/client/services/push.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { DEFAULT_SERVICES, type HostSession } from '../src/host/host-session.js';
import { parsePolicy } from '../src/host/policy-file.js';
import { execService } from '../src/host/services/exec.js';
import { pushService, type PushRecord } from '../src/host/services/push.js';
import { NonceCache } from '../src/host/services/signed-request.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { EXEC_SERVICE, encodeSignedRequest, type ExecRequest } from '../src/protocol/exec.js';
import {
  PUSH_CHUNK_BYTES,
  PUSH_SERVICE,
  PushType,
  encodePushRequest,
  type PushAccepted,
  type PushDone,
  type PushFileResult,
  type PushRefused,
  type PushRequest,
} from '../src/protocol/push.js';
import { decodeJson, encodeData } from '../src/protocol/service-message.js';
import { makeUser, registration, runCli, waitFor } from './helpers.js';
import { flipFirstLargeRecord, proxiedHarness } from './tamper-proxy.js';
import { Harness, type TestUser } from './terminal-harness.js';

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** An agent serving push (and exec, sharing one replay cache) under `policy`, as `agent` does. */
async function pushAgent(
  h: Harness,
  owner: TestUser,
  sessionId: string,
  policy?: object,
  extra: { allow?: string[]; tags?: Record<string, string> } = {},
): Promise<HostSession> {
  const parsed = policy ? parsePolicy(JSON.stringify(policy), 'policy.json') : undefined;
  const nonces = new NonceCache();
  return h.agent(
    owner,
    sessionId,
    { allow: extra.allow ?? [] },
    {
      operators: parsed ? [...parsed.users.keys()] : [],
      ...(extra.tags ? { tags: extra.tags } : {}),
      services: [
        ...DEFAULT_SERVICES,
        execService({ policy: () => parsed, env: () => ({}), cwd: h.dir, nonces }),
        pushService({ policy: () => parsed, nonces }),
      ],
    },
  );
}

/** Local files with these names and contents in a new directory, read as `push` reads them. */
async function localFiles(
  h: Harness,
  files: Record<string, { data: Buffer | string; mode?: number }>,
): Promise<LocalFile[]> {
  const dir = mkdtempSync(join(h.dir, 'src-'));
  const paths = Object.entries(files).map(([name, f]) => {
    const path = join(dir, name);
    writeFileSync(path, f.data);
    chmodSync(path, f.mode ?? 0o644);
    return path;
  });
  return readLocalFiles(paths);
}

/** Pushes `files` into `dir` on `sessionId` as `user`, through the library. */
async function push(
  h: Harness,
  user: TestUser,
  sessionId: string,
  dir: string,
  files: readonly LocalFile[],
  o: { mkdir?: boolean; server?: string } = {},
): Promise<PushOutcome> {
  const { client, channel, opened } = await h.openService(user, PUSH_SERVICE, sessionId, o.server);
  const call = new PushCall({
    channel,
    user: user.name,
    key: user.key,
    session: sessionId,
    agentFingerprint: opened.host.fingerprint,
    dir,
    mkdir: o.mkdir ?? false,
    files,
  });
  const outcome = await call.result;
  client.close();
  return outcome;
}

function doneOf(outcome: PushOutcome): Extract<PushOutcome, { kind: 'done' }> {
  assert.equal(outcome.kind, 'done', JSON.stringify(outcome));
  return outcome as Extract<PushOutcome, { kind: 'done' }>;
}

function refusalOf(outcome: PushOutcome): PushRefused {
  assert.equal(outcome.kind, 'refused', JSON.stringify(outcome));
  return (outcome as Extract<PushOutcome, { kind: 'refused' }>).refused;
}

/** Names in `dir` that a push left behind as temporary files. */
function temporaries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('.switchboard-push-')) : [];
}

/** What an agent answered a raw push channel: everything until it closed. */
interface RawAnswer {
  refused?: PushRefused;
  accepted?: PushAccepted;
  files: PushFileResult[];
  done?: PushDone;
  closed: string;
}

interface RawContext {
  handshakeHash: string;
  fingerprint: string;
}

/**
 * Opens a push channel as `user` and sends what `messages` makes (after the ACCEPTED, if `data`
 * gives more); resolves with everything the agent said until the channel closed.
 */
async function sendRaw(
  h: Harness,
  user: TestUser,
  sessionId: string,
  messages: (ctx: RawContext) => Uint8Array[],
  data: Uint8Array[] = [],
): Promise<RawAnswer> {
  const { channel, opened } = await h.openService(user, PUSH_SERVICE, sessionId);
  const answer: RawAnswer = { files: [], closed: '' };
  const closed = new Promise<RawAnswer>((resolve) =>
    channel.setHandlers({
      onMessage: (m) => {
        if (m[0] === PushType.REFUSED) answer.refused = decodeJson(m);
        if (m[0] === PushType.FILE) answer.files.push(decodeJson(m));
        if (m[0] === PushType.DONE) answer.done = decodeJson(m);
        if (m[0] === PushType.ACCEPTED) {
          answer.accepted = decodeJson(m);
          for (const d of data) channel.send(d);
        }
      },
      onClose: (code) => resolve({ ...answer, closed: code }),
    }),
  );
  for (const m of messages({
    handshakeHash: channel.handshakeHash,
    fingerprint: opened.host.fingerprint,
  }))
    channel.send(m);
  return closed;
}

function pushRequest(
  user: TestUser,
  sessionId: string,
  ctx: RawContext,
  o: Partial<PushRequest> = {},
): PushRequest {
  return {
    v: 1,
    op: 'push',
    user: user.name,
    agent: { session: sessionId, fingerprint: ctx.fingerprint },
    channel: ctx.handshakeHash,
    nonce: randomBytes(16).toString('base64'),
    issuedAt: Date.now(),
    dir: '/nonexistent',
    mkdir: false,
    files: [{ name: 'f', size: 1, mode: 0o644, sha256: sha256('x') }],
    ...o,
  };
}

/** Data messages for `data`, in chunks as the controller sends them. */
function chunks(data: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += PUSH_CHUNK_BYTES)
    out.push(encodeData(PushType.DATA, data.subarray(at, at + PUSH_CHUNK_BYTES)));
  return out;
}

describe('push to agents', () => {
  const h = new Harness();
  let owner: TestUser;
  let carol: TestUser;
  let dan: TestUser;
  let box: HostSession;
  let granted: string;
  let outside: string;
  const records: PushRecord[] = [];

  before(async () => {
    await h.start();
    owner = await h.user('powner');
    carol = await h.user('pcarol');
    dan = await h.user('pdan');
    granted = join(h.dir, 'granted');
    outside = join(h.dir, 'outside');
    mkdirSync(granted);
    mkdirSync(outside);
    box = await pushAgent(h, owner, 'push-box', {
      users: { pcarol: { push: [granted] }, pdan: { push: [granted], mkdir: true } },
    });
    box.on('push', (r: PushRecord) => records.push(r));
  });
  after(() => h.close());

  it('pushes to 20 agents: every file on disk with its SHA-256 and mode, no temporary left', async () => {
    const files = await localFiles(h, {
      'run.sh': { data: '#!/bin/sh\necho hi\n', mode: 0o755 },
      'big.bin': { data: randomBytes(3 * 1024 * 1024 + 5), mode: 0o640 },
      empty: { data: '', mode: 0o600 },
    });
    const ids = Array.from({ length: 20 }, (_, i) => `fleet-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id) => pushAgent(h, owner, id)));
    const dirs = ids.map((id) => join(h.dir, `to-${id}`));
    for (const d of dirs) mkdirSync(d);
    const outcomes = await Promise.all(ids.map((id, i) => push(h, owner, id, dirs[i]!, files)));
    outcomes.forEach((outcome, i) => {
      const done = doneOf(outcome);
      assert.equal(done.done.written, 3, ids[i]);
      assert.equal(done.done.failed, 0, ids[i]);
      for (const f of files) {
        const path = join(dirs[i]!, f.name);
        assert.equal(sha256(readFileSync(path)), f.sha256, `${ids[i]}: ${f.name}`);
        assert.equal(statSync(path).mode & 0o777, f.mode, `${ids[i]}: mode of ${f.name}`);
      }
      assert.deepEqual(temporaries(dirs[i]!), []);
    });
    assert.equal(files.find((f) => f.name === 'run.sh')!.mode, 0o755);
  });

  it('sends a request larger than one record in parts (400 files)', async () => {
    const many: Record<string, { data: string }> = {};
    for (let i = 0; i < 400; i++) many[`${'n'.repeat(150)}-${i}`] = { data: `file ${i}\n` };
    const files = await localFiles(h, many);
    const dir = join(h.dir, 'many');
    mkdirSync(dir);
    assert.equal(doneOf(await push(h, owner, 'push-box', dir, files)).done.written, 400);
    assert.equal(readFileSync(join(dir, `${'n'.repeat(150)}-399`), 'utf8'), 'file 399\n');
  });

  it('a policy user may push only under their directories: refused elsewhere with the rule named', async () => {
    const files = await localFiles(h, { 'a.txt': { data: 'carol was here\n' } });
    const refused = refusalOf(await push(h, carol, 'push-box', outside, files));
    assert.equal(refused.code, ErrorCode.NOT_ALLOWED);
    assert.match(refused.message, /pcarol may not push into/);
    // The policy's own reason (the symlink check after it would refuse too, in other words).
    assert.match(refused.message, /it is not under any directory in users\.pcarol\.push/);
    assert.equal(existsSync(join(outside, 'a.txt')), false);
    assert.equal(records.at(-1)?.decision, 'refused');
    // Inside the granted directory (and under it), it is written.
    const sub = join(granted, 'sub');
    mkdirSync(sub);
    const done = doneOf(await push(h, carol, 'push-box', sub, files));
    assert.match(done.accepted.rule, /users\.pcarol\.push\[0\]/);
    assert.equal(readFileSync(join(sub, 'a.txt'), 'utf8'), 'carol was here\n');
    await waitFor(() => records.at(-1)?.decision === 'allowed', 2_000, 'the push record');
    assert.deepEqual(
      records.at(-1)?.files.map((f) => [f.name, f.result]),
      [['a.txt', 'written']],
    );
  });

  it('a granted directory that is a symlink leading outside is refused', async () => {
    const link = join(granted, 'escape');
    symlinkSync(outside, link);
    const files = await localFiles(h, { 'b.txt': { data: 'b' } });
    const refused = refusalOf(await push(h, carol, 'push-box', link, files));
    assert.equal(refused.code, ErrorCode.NOT_ALLOWED);
    assert.match(refused.message, /leads to/);
    assert.equal(existsSync(join(outside, 'b.txt')), false);
  });

  it('a missing directory is created only with --mkdir and the grant of it', async () => {
    const files = await localFiles(h, { 'c.txt': { data: 'c' } });
    const fresh = join(granted, 'fresh', 'deeper');
    const noGrant = refusalOf(await push(h, carol, 'push-box', fresh, files, { mkdir: true }));
    assert.equal(noGrant.code, ErrorCode.NOT_ALLOWED);
    assert.match(noGrant.message, /users\.pcarol\.mkdir is not true/);
    assert.equal(existsSync(join(granted, 'fresh')), false);
    const notAsked = refusalOf(await push(h, dan, 'push-box', fresh, files));
    assert.match(notAsked.message, /does not exist/);
    assert.equal(existsSync(join(granted, 'fresh')), false);
    const made = doneOf(await push(h, dan, 'push-box', fresh, files, { mkdir: true }));
    assert.equal(made.accepted.created, true);
    assert.equal(statSync(fresh).mode & 0o777, 0o755);
    assert.equal(readFileSync(join(fresh, 'c.txt'), 'utf8'), 'c');
  });

  it('a file whose bytes are not the signed SHA-256 is not written, and the others are', async () => {
    const files = await localFiles(h, { good: { data: 'good' }, bad: { data: 'what was sent' } });
    const lying = files.map((f) =>
      f.name === 'bad' ? { ...f, sha256: sha256('what was signed') } : f,
    );
    const dir = join(h.dir, 'hash');
    mkdirSync(dir);
    const done = doneOf(await push(h, owner, 'push-box', dir, lying));
    const bad = done.files.find((f) => f.name === 'bad')!;
    assert.equal(bad.result, 'failed');
    assert.match(bad.error ?? '', /SHA-256/);
    assert.equal(done.done.written, 1);
    assert.deepEqual(readdirSync(dir), ['good']);
  });

  it('a local file that changed after it was hashed is skipped and reported failed', async () => {
    const files = await localFiles(h, { moved: { data: 'v1' }, kept: { data: 'kept' } });
    writeFileSync(files[0]!.path, 'version two, longer');
    const dir = join(h.dir, 'changed');
    mkdirSync(dir);
    const done = doneOf(await push(h, owner, 'push-box', dir, files));
    assert.deepEqual(
      done.files.map((f) => [f.name, f.result]),
      [
        ['moved', 'failed'],
        ['kept', 'written'],
      ],
    );
    assert.match(done.files[0]!.error ?? '', /changed after it was hashed/);
    assert.deepEqual(readdirSync(dir), ['kept']);
  });

  it("a name with '/' or '..' in the signed request is refused, and nothing is written", async () => {
    const dir = join(h.dir, 'names');
    mkdirSync(dir);
    for (const name of ['../escaped', '..', 'a/b', '.', '']) {
      const answer = await sendRaw(h, owner, 'push-box', (ctx) =>
        encodePushRequest(
          owner.key,
          pushRequest(owner, 'push-box', ctx, {
            dir,
            files: [{ name, size: 1, mode: 0o644, sha256: sha256('x') }],
          }),
        ),
      );
      assert.equal(answer.refused?.code, ErrorCode.INVALID_MESSAGE, JSON.stringify(name));
      assert.equal(answer.refused?.rule, 'request');
    }
    assert.deepEqual(readdirSync(dir), []);
    assert.equal(existsSync(join(h.dir, 'escaped')), false);
  });

  it('a controller that disappears mid-file leaves neither the file nor a temporary', async () => {
    const dir = join(h.dir, 'vanish');
    mkdirSync(dir);
    const data = randomBytes(2 * 1024 * 1024);
    const { client, channel, opened } = await h.openService(owner, PUSH_SERVICE, 'push-box');
    const ctx = { handshakeHash: channel.handshakeHash, fingerprint: opened.host.fingerprint };
    const before = records.length;
    channel.setHandlers({
      // Half the file (within the window), then gone.
      onMessage: (m) => {
        if (m[0] === PushType.ACCEPTED)
          for (const c of chunks(data.subarray(0, 512 * 1024))) channel.send(c);
      },
      onClose: () => undefined,
    });
    for (const m of encodePushRequest(
      owner.key,
      pushRequest(owner, 'push-box', ctx, {
        dir,
        files: [{ name: 'half', size: data.length, mode: 0o644, sha256: sha256(data) }],
      }),
    ))
      channel.send(m);
    await waitFor(() => temporaries(dir).length === 1, 5_000, 'the temporary file');
    client.close();
    await waitFor(() => records.length > before, 5_000, 'the push record');
    const record = records.at(-1)!;
    assert.equal(record.files[0]?.result, 'failed');
    assert.match(record.files[0]?.error ?? '', /the sender went away/);
    assert.equal(record.code, ErrorCode.CHANNEL_CLOSED);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('push through a relay that tampers', () => {
  const { h, proxy } = proxiedHarness();
  let owner: TestUser;
  let dir: string;
  before(async () => {
    owner = await h.user('ptowner');
    await pushAgent(h, owner, 'pt-box');
    dir = join(h.dir, 'tamper');
    mkdirSync(dir);
  });

  const request = (ctx: RawContext, o: Partial<PushRequest> = {}) =>
    pushRequest(owner, 'pt-box', ctx, {
      dir,
      files: [{ name: 'x', size: 1, mode: 0o644, sha256: sha256('x') }],
      ...o,
    });

  it('a request rewritten in transit fails to open: nothing is written', async () => {
    const viaProxy = await h.user('ptowner', proxy().address, proxy().fingerprint, 'via-proxy');
    const flipped = flipFirstLargeRecord(proxy());
    const files = await localFiles(h, { x: { data: 'x' } });
    const outcome = await push(h, viaProxy, 'pt-box', dir, files, { server: proxy().address });
    assert.equal(flipped(), 1);
    assert.equal(outcome.kind, 'lost', JSON.stringify(outcome));
    assert.equal((outcome as { code: string }).code, ErrorCode.DECRYPT_FAILED);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('an unsigned or forged request is refused', async () => {
    const unsigned = await sendRaw(h, owner, 'pt-box', (ctx) => [
      Buffer.concat([
        Buffer.from([PushType.REQUEST]),
        Buffer.alloc(64),
        Buffer.from(JSON.stringify(request(ctx))),
      ]),
    ]);
    assert.equal(unsigned.refused?.code, ErrorCode.SIGNATURE_INVALID);
    const forged = await sendRaw(h, owner, 'pt-box', (ctx) =>
      encodePushRequest(generateDeviceKey(), request(ctx)),
    );
    assert.equal(forged.refused?.code, ErrorCode.SIGNATURE_INVALID);
    const otherAgent = await sendRaw(h, owner, 'pt-box', (ctx) =>
      encodePushRequest(
        owner.key,
        request(ctx, { agent: { session: 'pt-other', fingerprint: ctx.fingerprint } }),
      ),
    );
    assert.equal(otherAgent.refused?.code, ErrorCode.SIGNATURE_INVALID);
    // An exec request's signature is not a push's: the contexts differ.
    const asExec = await sendRaw(h, owner, 'pt-box', (ctx) => {
      const exec = encodeSignedRequest(owner.key, {
        ...request(ctx),
        op: 'exec',
      } as unknown as ExecRequest);
      return [exec];
    });
    assert.equal(asExec.refused?.code, ErrorCode.SIGNATURE_INVALID);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a replayed request is refused, a nonce exec took included', async () => {
    let captured: Uint8Array[] = [];
    const first = await sendRaw(
      h,
      owner,
      'pt-box',
      (ctx) => (captured = encodePushRequest(owner.key, request(ctx))),
      [encodeData(PushType.DATA, Buffer.from('x'))],
    );
    assert.equal(first.done?.written, 1);
    const replay = await sendRaw(h, owner, 'pt-box', () => captured);
    assert.equal(replay.refused?.code, ErrorCode.REQUEST_REPLAYED);
    // The agent's one replay cache: a nonce seen by exec is refused to push.
    const nonce = randomBytes(16).toString('base64');
    const exec = await h.openService(owner, EXEC_SERVICE, 'pt-box');
    const execClosed = new Promise<void>((resolve) =>
      exec.channel.setHandlers({ onMessage: () => undefined, onClose: () => resolve() }),
    );
    exec.channel.send(
      encodeSignedRequest(owner.key, {
        v: 1,
        op: 'exec',
        user: owner.name,
        agent: { session: 'pt-box', fingerprint: exec.opened.host.fingerprint },
        channel: exec.channel.handshakeHash,
        nonce,
        issuedAt: Date.now(),
        command: { kind: 'argv', argv: ['true'] },
        stdin: false,
      }),
    );
    await execClosed;
    const reused = await sendRaw(h, owner, 'pt-box', (ctx) =>
      encodePushRequest(owner.key, request(ctx, { nonce })),
    );
    assert.equal(reused.refused?.code, ErrorCode.REQUEST_REPLAYED);
  });

  it('a request outside the time window is refused as stale', async () => {
    const stale = await sendRaw(h, owner, 'pt-box', (ctx) =>
      encodePushRequest(owner.key, request(ctx, { issuedAt: Date.now() - 3_600_000 })),
    );
    assert.equal(stale.refused?.code, ErrorCode.REQUEST_STALE);
  });

  it('data past the window closes the channel and keeps nothing', async () => {
    const big = randomBytes(4 * 1024 * 1024);
    const flood = await sendRaw(
      h,
      owner,
      'pt-box',
      (ctx) =>
        encodePushRequest(
          owner.key,
          request(ctx, {
            files: [{ name: 'flood', size: big.length, mode: 0o644, sha256: sha256(big) }],
          }),
        ),
      chunks(big),
    );
    assert.equal(flood.closed, ErrorCode.INVALID_MESSAGE);
    await waitFor(() => temporaries(dir).length === 0, 5_000, 'the temporary file to go');
    assert.equal(existsSync(join(dir, 'flood')), false);
  });
});

describe('switchboard push (the CLI)', () => {
  const h = new Harness();
  let owner: TestUser;
  let home: string;
  let src: string;
  let a: string;
  let b: string;
  const cli = (args: string[]) => runCli(['push', ...args], { home });

  before(async () => {
    await h.start();
    owner = await h.user('pcowner');
    home = await makeUser(
      { server: h.server, fingerprint: h.relay.certificate.fingerprint },
      'pcops',
      'pcops-cli-password',
      mkdtempSync(join(h.dir, 'home-')),
    );
    await pushAgent(h, owner, 'pc-web-1', undefined, { allow: ['pcops'], tags: { role: 'web' } });
    await pushAgent(h, owner, 'pc-web-2', undefined, { allow: ['pcops'], tags: { role: 'web' } });
    src = mkdtempSync(join(h.dir, 'cli-src-'));
    a = join(src, 'a.conf');
    b = join(src, 'b.sh');
    writeFileSync(a, 'key = value\n');
    writeFileSync(b, '#!/bin/sh\n');
    chmodSync(b, 0o750);
  });
  after(() => h.close());

  it('pushes FILE... to TARGET:DIR on every agent a glob selects, with a summary; exit 0', async () => {
    const dir = join(h.dir, 'cli-dest');
    const r = await cli([a, b, `pc-web-*:${dir}`, '--mkdir']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pc-web-1\s+succeeded\s+2\/2/);
    assert.match(r.stderr, /pc-web-2\s+succeeded\s+2\/2/);
    assert.match(r.stderr, /2 succeeded, 0 failed, 0 unreachable/);
    assert.equal(readFileSync(join(dir, 'a.conf'), 'utf8'), 'key = value\n');
    assert.equal(statSync(join(dir, 'b.sh')).mode & 0o777, 0o750);
  });

  it('--tag with :DIR, --json: start, file and done per host, then the summary', async () => {
    const dir = join(h.dir, 'cli-json');
    mkdirSync(dir);
    const r = await cli([a, `:${dir}`, '--tag', 'role=web', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const host of ['pc-web-1', 'pc-web-2']) {
      const mine = events.filter((e) => e['host'] === host).map((e) => e['event']);
      assert.deepEqual(mine, ['start', 'file', 'done'], host);
    }
    assert.deepEqual(events.at(-1), {
      event: 'summary',
      hosts: 2,
      succeeded: 2,
      failed: 0,
      unreachable: 0,
      cancelled: 0,
      files: 1,
      bytes: 12,
    });
  });

  it('a missing DIR without --mkdir fails on every host: exit 6, the reason shown', async () => {
    const r = await cli([a, `pc-web-1,pc-web-2:${join(h.dir, 'nowhere')}`]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /does not exist/);
    assert.match(r.stderr, /0 succeeded, 2 failed, 0 unreachable/);
  });

  it('an agent that is offline is unreachable, reported at once: exit 7', async () => {
    // Registered, then its connection dropped (not a clean stop): listed, and offline.
    const gone = await owner.connect();
    await gone.request('session.register', {
      ...registration('pc-gone'),
      allow: ['pcops'],
      services: [PUSH_SERVICE],
    });
    gone.terminate();
    const dir = join(h.dir, 'cli-gone');
    mkdirSync(dir);
    const r = await cli([a, `pc-web-1,pc-gone:${dir}`]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /1 succeeded, 0 failed, 1 unreachable/);
  });

  it('bad arguments are usage errors that name the problem (exit 2), before any agent is contacted', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[a, 'pc-web-1'], /TARGET:DIR/],
      [[a, 'pc-web-1:relative/dir'], /absolute/],
      [[a, ':/tmp'], /name a TARGET/],
      [[join(src, 'missing'), 'pc-web-1:/tmp'], /missing: cannot read it \(ENOENT\)/],
      [[src, 'pc-web-1:/tmp'], /is a directory/],
      [['pc-web-1:/tmp'], /no FILE/],
      [[a, join(mkdtempSync(join(h.dir, 'dup-')), 'a.conf'), 'pc-web-1:/tmp'], /both be a\.conf/],
    ];
    for (const [args, message] of cases) {
      if (args[1]?.endsWith('a.conf') && !existsSync(args[1])) writeFileSync(args[1], 'dup');
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  it('selecting nothing is an error that says what exists', async () => {
    const r = await cli([a, 'db-*:/tmp']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"db-\*" matches no agent; agents you may reach: .*pc-web-1/);
  });
});

// `switchboard send` and `inbox` through the real binary: sealed on one device, opened on the
// other devices, once; history kept at home (0600); a copy for the sender's other device.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, runCli, startServeProcess } from './helpers.js';
import { Harness } from './terminal-harness.js';

describe('switchboard send and inbox', () => {
  const h = new Harness();
  const homes: Record<string, string> = {};
  before(async () => {
    await h.start();
    for (const [name, how, user] of [
      ['amy', 'signup', 'msgamy'],
      ['bo', 'signup', 'msgbo'],
      ['amy2', 'login', 'msgamy'],
    ] as const) {
      homes[name] = mkdtempSync(join(h.dir, `cli-${name}-`));
      const r = await h.cliAccount(how, user, homes[name]!);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => h.close());

  const cli = (who: string, args: string[], stdin?: string) =>
    runCli(args, { home: homes[who]!, ...(stdin ? { stdin } : {}) });

  it('delivers to an offline user once, keeps the history at home, and copies it to my other device', async () => {
    const sent = await cli('amy', ['send', 'msgbo', 'hello from amy', '--json']);
    assert.equal(sent.code, 0, sent.stderr);
    const receipt = JSON.parse(sent.stdout) as { id: string; path: string; status: string };
    assert.deepEqual([receipt.path, receipt.status], ['relay', 'stored']);
    assert.match(receipt.id, /^[A-Za-z0-9+/]{22}==$/);
    assert.equal((await cli('amy', ['send', 'msgbo', '-'], 'line from stdin\n')).code, 0);
    // amy is a stranger to bo: a request, her messages held.
    const first = await cli('bo', ['inbox']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /^msgamy \(SHA256:\S+\) wants to message you: `switchboard contacts accept msgamy`/,
    );
    assert.doesNotMatch(first.stdout, /hello from amy/);
    assert.equal((await cli('bo', ['inbox', '--all'])).stdout, '', 'held, not shown');
    const accepted = await cli('bo', ['contacts', 'accept', 'msgamy']);
    assert.match(
      accepted.stdout,
      /accepted msgamy; 2 held message\(s\):\n.*msgamy → you: hello from amy\n.*msgamy → you: line from stdin\n$/s,
    );
    assert.equal((await cli('bo', ['inbox'])).stdout, '', 'shown once');
    const all = await cli('bo', ['inbox', '--all', '--json']);
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string });
    assert.deepEqual(
      lines.map((l) => l.text),
      ['hello from amy', 'line from stdin'],
    );
    assert.equal(statSync(join(homes['bo']!, 'messages.jsonl')).mode & 0o777, 0o600);
    // amy's other device gets her sent messages too.
    const copy = await cli('amy2', ['inbox']);
    assert.match(copy.stdout, /you → msgbo: hello from amy/);
  });

  it('a blocked sender is dropped; safety numbers match on both sides and change with a key', async () => {
    const carol = mkdtempSync(join(h.dir, 'cli-carol-'));
    homes['carol'] = carol;
    assert.equal((await h.cliAccount('signup', 'msgcarol', carol)).code, 0);
    assert.equal((await cli('bo', ['contacts', 'block', 'msgcarol'])).code, 0);
    assert.equal((await cli('carol', ['send', 'msgbo', 'let me in'])).code, 0);
    assert.equal((await cli('bo', ['inbox'])).stdout, '', 'nothing, not even a request');
    const list = JSON.parse((await cli('bo', ['contacts', '--json'])).stdout) as Array<{
      user: string;
      state: string;
    }>;
    assert.deepEqual(
      list.map((c) => [c.user, c.state]),
      [
        ['msgamy', 'accepted'],
        ['msgcarol', 'blocked'],
      ],
    );
    const number = async (who: string, of: string) =>
      (
        JSON.parse((await cli(who, ['contacts', 'verify', of, '--json'])).stdout) as {
          safetyNumber: string;
        }
      ).safetyNumber;
    const fromAmy = await number('amy', 'msgbo');
    assert.match(fromAmy, /^\d{60}$/);
    assert.equal(await number('bo', 'msgamy'), fromAmy);
    // amy logs in on a third device: bo's view of her keys changes once he meets it.
    const amy3 = mkdtempSync(join(h.dir, 'cli-amy3-'));
    assert.equal((await h.cliAccount('login', 'msgamy', amy3)).code, 0);
    assert.notEqual(await number('amy', 'msgbo'), fromAmy);
    const human = await cli('bo', ['contacts', 'verify', 'msgamy']);
    // amy's second and third devices never wrote to bo: their keys are new to him, and he is told.
    assert.match(
      human.stdout,
      /Safety number of you and msgamy \(some of msgamy's device keys are new to you\):\n\n(\d{5} ){3}\d{5}\n/,
    );
  });

  it("a broadcast reaches everyone once, shown with its sender; a blocked sender's is not", async () => {
    const sent = await cli('amy', ['broadcast', 'hello, everyone', '--json']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.match((JSON.parse(sent.stdout) as { expiresAt: string }).expiresAt, /^\d{4}-/);
    assert.equal((await cli('carol', ['broadcast', 'carol here'])).code, 0);
    const got = await cli('bo', ['inbox']);
    assert.match(got.stdout, /\[broadcast\] msgamy: hello, everyone\n/);
    assert.doesNotMatch(got.stdout, /carol here/);
    assert.doesNotMatch((await cli('bo', ['inbox'])).stdout, /hello, everyone/, 'once');
  });

  it('refuses an unknown user and an empty message', async () => {
    const unknown = await cli('amy', ['send', 'nobody', 'hi']);
    assert.equal(unknown.code, 5);
    assert.match(unknown.stderr, /UNKNOWN_USER/);
    assert.equal((await cli('amy', ['send', 'msgbo', ''])).code, 2);
  });
});

describe('messages survive a relay killed with SIGKILL', () => {
  it('stored before "sent", delivered after the restart in order and once', async () => {
    const dataDir = makeTempDir();
    let relay = await startServeProcess(dataDir);
    try {
      const home = (name: string) => mkdtempSync(join(dataDir, `cli-${name}-`));
      const amy = home('amy');
      const bo = home('bo');
      for (const [user, h] of [
        ['killamy', amy],
        ['killbo', bo],
      ] as const) {
        const r = await runCli(
          [
            'signup',
            '--user',
            user,
            '--password-stdin',
            '--server',
            relay.server,
            '--fingerprint',
            relay.fingerprint,
          ],
          { home: h, stdin: `${user}-password\n` },
        );
        assert.equal(r.code, 0, r.stderr);
      }
      assert.equal((await runCli(['contacts', 'accept', 'killamy'], { home: bo })).code, 0);
      for (const n of [1, 2, 3]) {
        const r = await runCli(['send', 'killbo', `message ${n}`], { home: amy });
        assert.equal(r.code, 0, r.stderr);
      }
      relay.child.kill('SIGKILL');
      assert.equal((await relay.exited).signal, 'SIGKILL');
      relay = await startServeProcess(dataDir, ['--port', String(relay.port)]);
      const inbox = await runCli(['inbox'], { home: bo });
      assert.equal(inbox.code, 0, inbox.stderr);
      assert.deepEqual(
        inbox.stdout
          .trim()
          .split('\n')
          .map((l) => l.replace(/^\S+\s+/, '')),
        ['killamy → you: message 1', 'killamy → you: message 2', 'killamy → you: message 3'],
      );
      assert.equal((await runCli(['inbox'], { home: bo })).stdout, '');
    } finally {
      relay.child.kill('SIGKILL');
      await relay.exited;
    }
  });
});

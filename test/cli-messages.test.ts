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
    const first = await cli('bo', ['inbox']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /msgamy → you: hello from amy\n.*msgamy → you: line from stdin\n$/s);
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

// `switchboard chat` in real PTYs against a real relay: approval, live messages both ways, marks,
// the direct path, safety numbers, a key change that blocks sending until `trust`, and pipes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { runCli } from './helpers.js';
import { PtyProcess, started } from './pty-process.js';
import { Harness } from './terminal-harness.js';

/** The 60 digits of the safety number in `out` (12 groups of 5). */
function safetyDigits(out: string): string {
  const m = /((?:\d{5}[ \r\n]+){11}\d{5})/.exec(out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')); // eslint-disable-line no-control-regex
  assert.ok(m, `no safety number in ${JSON.stringify(out.slice(-600))}`);
  return m[1]!.replace(/\D/g, '');
}

describe('switchboard chat', () => {
  const h = new Harness();
  const homes: Record<string, string> = {};
  const env = (who: string) => ({
    SWITCHBOARD_HOME: homes[who]!,
    SWITCHBOARD_DIRECT_HOST: '127.0.0.1',
  });
  const chat = (who: string, peer: string) => new PtyProcess(['chat', peer], env(who), 120, 40);

  before(async () => {
    await h.start();
    for (const name of ['amy', 'ben', 'cat']) {
      homes[name] = mkdtempSync(join(h.dir, `chat-${name}-`));
      const r = await h.cliAccount('signup', `ch${name}`, homes[name]!);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  afterEach(() => {
    for (const p of started) p.kill();
    started.clear();
  });
  after(() => h.close());

  it(
    'two users chat live: a request accepted, marks, direct path, the same safety number, /quit',
    { timeout: 60_000 },
    async () => {
      const amy = chat('amy', 'chben');
      await amy.waitText('Chat with chben');
      const ben = chat('ben', 'chamy');
      await ben.waitText('Chat with chamy');
      // amy writes first: ben has not accepted her, so it waits for him (no direct link).
      amy.write('hello ben\r');
      await amy.waitText('chben has not accepted you yet');
      await ben.waitText('chamy (SHA256:');
      assert.ok(!ben.out.includes('hello ben'), 'held until accepted');
      ben.write('/accept\r');
      await ben.waitText('chamy: hello ben');
      await amy.waitText('✓✓ read: "hello ben"');
      // Accepted both ways now: the two clients connect directly.
      await ben.waitText('[chamy ● direct]');
      await amy.waitText('[chben ● direct]');
      ben.write('hi amy\r');
      await amy.waitText('chben: hi amy');
      await ben.waitFor((o) => /you: hi amy {2}✓✓ (delivered|read)/.test(o), 'a delivered mark');
      // The safety number is the same on both sides.
      amy.write('/verify\r');
      ben.write('/verify\r');
      await amy.waitText('they run `switchboard contacts verify chamy`');
      await ben.waitText('they run `switchboard contacts verify chben`');
      assert.equal(safetyDigits(amy.out), safetyDigits(ben.out));
      amy.write('/quit\r');
      assert.equal(await amy.waitExit(), 0);
      // ben sees amy leave (no link), and what he writes now is stored for her.
      await ben.waitFor((o) => /\[chamy (○ offline|● online)/.test(o), 'amy gone from the prompt');
      ben.write('are you there?\r');
      await ben.waitText('you: are you there?  ✓');
      ben.write('\x04');
      assert.equal(await ben.waitExit(), 0);
      // amy comes back to what she missed.
      const inbox = await runCli(['inbox'], { home: homes['amy']! });
      assert.match(inbox.stdout, /chben → you: are you there\?/);
      // Both histories at home hold the conversation in order, once.
      const texts = readFileSync(join(homes['ben']!, 'messages.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"text"'))
        .map((l) => (JSON.parse(l) as { text: string }).text);
      assert.deepEqual(texts, ['hello ben', 'hi amy', 'are you there?']);
    },
  );

  it(
    'a one-shot send to a contact online in chat goes directly and is acknowledged by their device',
    { timeout: 60_000 },
    async () => {
      const ben = chat('ben', 'chamy');
      await ben.waitText('[chamy ');
      const r = await runCli(['send', 'chben', 'one-shot', '--json'], { home: homes['amy']! });
      assert.equal(r.code, 0, r.stderr);
      const sent = JSON.parse(r.stdout) as { path: string; status: string };
      assert.deepEqual([sent.path, sent.status], ['direct', 'delivered']);
      await ben.waitText('chamy: one-shot');
      const relayed = await runCli(
        ['send', 'chben', 'kept on the relay', '--json', '--no-direct'],
        {
          home: homes['amy']!,
        },
      );
      assert.equal((JSON.parse(relayed.stdout) as { path: string }).path, 'relay');
      await ben.waitText('chamy: kept on the relay');
      ben.write('/quit\r');
      assert.equal(await ben.waitExit(), 0);
    },
  );

  it(
    'a relay that restarts mid-chat: what was typed meanwhile is sent once after the reconnect',
    { timeout: 60_000 },
    async () => {
      const amy = chat('amy', 'chben');
      const ben = chat('ben', 'chamy');
      await amy.waitText('[chben ● direct]');
      await ben.waitText('[chamy ● direct]');
      await h.relay.close('restart');
      await amy.waitText('lost the relay; reconnecting');
      amy.write('typed while the relay was down\r');
      await amy.waitText('(sent when the relay is back)');
      await h.start();
      await ben.waitText('chamy: typed while the relay was down');
      await amy.waitFor((o) => /you: typed while the relay was down {2}✓/.test(o), 'its mark');
      amy.write('/quit\r');
      ben.write('/quit\r');
      assert.equal(await amy.waitExit(), 0);
      assert.equal(await ben.waitExit(), 0);
      assert.equal(ben.out.split('chamy: typed while the relay was down').length, 2, 'shown once');
    },
  );

  it(
    'lines piped in are sent in order and the chat ends at end of input',
    { timeout: 60_000 },
    async () => {
      const r = await runCli(['chat', 'chben'], {
        home: homes['amy']!,
        stdin: 'one\ntwo\nthree\n',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /you: one .*\n.*you: two .*\n.*you: three /);
      const inbox = await runCli(['inbox', '--json'], { home: homes['ben']! });
      const texts = inbox.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { text: string }).text);
      assert.deepEqual(texts, ['one', 'two', 'three']);
    },
  );

  it(
    "warns loudly when the peer's key changed and sends nothing until `trust`",
    { timeout: 60_000 },
    async () => {
      // cat talks to amy once (pins her key), then amy's key changes: a new device, the old revoked.
      assert.equal((await runCli(['send', 'chamy', 'hi'], { home: homes['cat']! })).code, 0);
      const newHome = mkdtempSync(join(h.dir, 'chat-amy2-'));
      assert.equal((await h.cliAccount('login', 'chamy', newHome)).code, 0);
      const old = JSON.parse(
        (await runCli(['whoami', '--json'], { home: homes['amy']! })).stdout,
      ) as { device: { fingerprint: string } };
      const revoked = await runCli(['devices', 'revoke', old.device.fingerprint], {
        home: newHome,
      });
      assert.equal(revoked.code, 0, revoked.stderr);
      const cat = chat('cat', 'chamy');
      await cat.waitText("chamy's device key CHANGED");
      cat.write('secret for amy\r');
      await cat.waitFor((o) => o.split('device key CHANGED').length > 2, 'a second warning');
      cat.write('/quit\r');
      assert.equal(await cat.waitExit(), 0);
      const stored = await runCli(['inbox'], { home: newHome });
      assert.doesNotMatch(stored.stdout, /secret for amy/);
      // Checked with amy another way: trusted, and it goes.
      assert.equal((await runCli(['trust', 'chamy', '--yes'], { home: homes['cat']! })).code, 0);
      const sent = await runCli(['send', 'chamy', 'now it goes', '--json'], {
        home: homes['cat']!,
      });
      assert.equal(sent.code, 0, sent.stderr);
    },
  );
});

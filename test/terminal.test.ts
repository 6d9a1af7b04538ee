// Remote terminal end to end: real relay over TLS on loopback, real PTYs, in-process hosts and controllers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { channelPrologue } from '../src/channel/e2e.js';
import { generateDeviceKey, keyFingerprint } from '../src/crypto/device-key.js';
import { HostHandshake } from '../src/crypto/handshake.js';
import { ErrorCode } from '../src/protocol/errors.js';
import type { PeerInfo } from '../src/protocol/messages.js';
import { createLogger } from '../src/server/logger.js';
import { openSync, closeSync } from 'node:fs';
import type { RelayClient } from '../src/client/relay-client.js';
import { Harness, testShell, type TestUser } from './terminal-harness.js';
import { TamperProxy } from './tamper-proxy.js';
import type { Terminal as XtermHeadless } from '@xterm/headless';
import type * as NodePty from 'node-pty';

const require = createRequire(import.meta.url);
const { Terminal: HeadlessTerminal } = require('@xterm/headless') as {
  Terminal: typeof XtermHeadless;
};
const { spawn: spawnPty } = require('node-pty') as typeof NodePty;

const unhandled: unknown[] = [];
process.on('unhandledRejection', (err) => unhandled.push(err));

/** A per-test marker, so a match can only come from this test's own command. */
function marker(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

describe('remote terminal', () => {
  const h = new Harness();
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;

  before(async () => {
    await h.start();
    [alice, bob, carol] = await Promise.all([h.user('alice'), h.user('bob'), h.user('carol')]);
  });
  after(async () => {
    await h.close();
    assert.deepEqual(unhandled, [], 'no unhandled rejections');
  });

  it("carries a command's output to the controller, and the shell's exit code back; the host then forgets the shell", async () => {
    const host = await h.agent(alice, 'out-1', { allow: ['bob'] });
    const ctl = h.controller(bob, 'out-1');
    const info = await ctl.start();
    assert.equal(info.host.user, 'alice');
    assert.equal(info.welcome.readOnly, false);
    ctl.type('echo "answer=$((6*7))"\r');
    await ctl.waitForText('answer=42');
    ctl.type('exit 7\r');
    const end = await ctl.waitEnd();
    assert.deepEqual(end.exit, { code: 7 });
    // Forgotten as the exit was sent, so before the controller could have seen it.
    assert.deepEqual(host.controllers(), []);
  });

  it('passes a resize through to the remote (tput cols)', async () => {
    await h.agent(alice, 'resize-1', { allow: ['bob'] });
    const ctl = h.controller(bob, 'resize-1', { cols: 90, rows: 20 });
    await ctl.start();
    ctl.type('echo "C=$(tput cols) R=$(tput lines)"\r');
    await ctl.waitForText('C=90 R=20');
    ctl.session.resize(123, 37);
    ctl.type('echo "C=$(tput cols) R=$(tput lines)"\r');
    await ctl.waitForText('C=123 R=37');
  });

  it('delivers Ctrl-C to the remote program', async () => {
    await h.agent(alice, 'ctrlc-1', { allow: ['bob'] });
    const ctl = h.controller(bob, 'ctrlc-1');
    await ctl.start();
    // The program sets its SIGINT trap before it says it is ready, so a ^C after "ready" must hit it.
    // Markers are computed by the shell, so the echoed command line cannot match them.
    ctl.type(
      `sh -c 'trap "echo got-$((100+30)); exit 130" INT; echo ready-$((6*7)); while :; do sleep 0.1; done'\r`,
    );
    await ctl.waitForText('ready-42');
    ctl.type('\x03');
    await ctl.waitForText('got-130');
    await ctl.waitFor((t) => /got-130[\s\S]*\$ $/.test(t), 'the prompt after the program ended');
    ctl.type('echo "status=$?"\r');
    await ctl.waitForText('status=130');
  });

  it('refuses a user who is not allowed on an agent at once', async () => {
    await h.agent(alice, 'deny-1', { allow: ['bob'] });
    const ctl = h.controller(carol, 'deny-1');
    const started = Date.now();
    await assert.rejects(
      ctl.start(),
      (err: { code: string }) => err.code === ErrorCode.NOT_ALLOWED,
    );
    assert.ok(Date.now() - started < 5_000, 'refused without waiting for anything');
  });

  it('enforces its policy at the host even when the relay lets someone in', async () => {
    // A compromised relay: the host registers allow=[bob], the relay is told bob and carol.
    const notices: string[] = [];
    const host = await h.agent(
      alice,
      'lying-relay',
      { allow: ['bob'] },
      {
        connect: async () => {
          const client = await alice.connect();
          const request = client.request.bind(client);
          client.request = ((type: string, params: Record<string, unknown>) =>
            request(
              type as never,
              (type === 'session.register'
                ? { ...params, allow: ['bob', 'carol'] }
                : params) as never,
            )) as typeof client.request;
          return client;
        },
      },
    );
    host.on('notice', (t: string) => notices.push(t));
    const ctl = h.controller(carol, 'lying-relay');
    await assert.rejects(
      ctl.start(),
      (err: { code: string }) => err.code === ErrorCode.NOT_ALLOWED,
    );
    assert.ok(
      notices.some((n) => n.includes('refused carol')),
      notices.join('\n'),
    );
  });

  it('share: asks the host, who approves one user and denies another', async () => {
    const asked: PeerInfo[] = [];
    await h.share(
      alice,
      'share-approve',
      {},
      {
        approve: async (peer) => {
          asked.push(peer);
          return peer.user === 'bob';
        },
      },
    );
    const bobCtl = h.controller(bob, 'share-approve');
    await bobCtl.start();
    bobCtl.type('echo approved-$((1+1))\r');
    await bobCtl.waitForText('approved-2');
    const carolCtl = h.controller(carol, 'share-approve');
    await assert.rejects(
      carolCtl.start(),
      (err: { code: string }) => err.code === ErrorCode.DENIED,
    );
    assert.deepEqual(
      asked.map((p) => p.user),
      ['bob', 'carol'],
    );
    assert.match(asked[0]!.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it("ignores a read-only controller's keystrokes and sizes, even from a controller that sends them anyway", async () => {
    await h.share(alice, 'share-ro', { allow: ['bob'], viewers: ['carol'] });
    const rw = h.controller(bob, 'share-ro');
    await rw.start();
    // AttachSession drops a viewer's input itself; this controller ignores the welcome, so only
    // the host's own checks stand between it and the shell.
    const viewer = await h.rawController(carol, 'share-ro', { cols: 123, rows: 37 });
    assert.equal((await viewer.welcome).readOnly, true);
    const roMark = marker('from-viewer');
    viewer.send({ type: 'input', offset: 0, data: Buffer.from(`echo ${roMark}\r`) });
    viewer.send({ type: 'resize', cols: 111, rows: 33 });
    viewer.send({ type: 'bye', reason: 'detached' });
    // The host answers the bye after handling everything sent before it, in order.
    assert.equal((await viewer.closed).reason, 'detached');
    assert.deepEqual(
      viewer.received.filter((m) => m.type === 'ack'),
      [],
      'the host acknowledged input from a viewer',
    );
    // Anything the viewer's input wrote to the shell came before this, so it would show first.
    const rwMark = marker('from-writer');
    rw.type(`echo "${rwMark} C=$(tput cols) R=$(tput lines)"\r`);
    await rw.waitForText(new RegExp(`${rwMark} C=\\d+ R=\\d+\r\n`));
    assert.ok(!rw.text.includes(roMark), 'viewer input reached the shell');
    assert.ok(rw.text.includes(`${rwMark} C=80 R=24\r\n`), 'a viewer resized the terminal');
  });

  it('shows a late joiner the current screen, not a blank one', async () => {
    await h.share(alice, 'share-late', { allow: ['bob', 'carol'] });
    const first = h.controller(bob, 'share-late');
    await first.start();
    const m = marker('before-you-came');
    first.type(`echo ${m}\r`);
    await first.waitForText(`${m}\r\n`);
    const late = h.controller(carol, 'share-late');
    await late.start();
    await late.waitForText(m);
  });

  it('resumes after the connection is cut mid-stream with output byte-for-byte complete', async () => {
    await h.agent(alice, 'cut-1', { allow: ['bob'] });
    const ctl = h.controller(bob, 'cut-1');
    await ctl.start();
    const m = marker('END');
    // The shell computes the end marker, so it cannot match the echoed command line.
    const end = `${m}-42`;
    // ~2.3 MB: more than the 1 MiB window, so much of it is produced while the controller is away.
    const count = 350_000;
    const states: string[] = [];
    ctl.session.on('state', (st: string) => states.push(st));
    ctl.type(`seq 1 ${count}; echo ${m}-$((40+2))\r`);
    const before = ctl.outputChunks.length;
    // Cut once the numbers are flowing.
    await ctl.waitForText('\r\n50000\r\n', 30_000);
    ctl.session.simulateDrop();
    assert.ok(!ctl.text.includes(end), 'the cut happened before the end of the output');
    await ctl.waitForText(`${end}\r\n`, 60_000);
    const text = Buffer.concat(ctl.outputChunks.slice(before)).toString('latin1');
    const numbers = text
      .slice(text.indexOf('1\r\n2\r\n'), text.indexOf(end))
      .split('\r\n')
      .filter(Boolean);
    assert.deepEqual(
      states,
      ['reconnecting', 'attached'],
      'the controller reconnected and resumed',
    );
    assert.equal(numbers.length, count, 'every line exactly once');
    for (let i = 0; i < count; i++)
      if (numbers[i] !== String(i + 1)) assert.fail(`line ${i + 1} is ${numbers[i]}`);
  });

  it('brings a controller that falls behind back to the current screen, while the others get every byte without waiting for it', async () => {
    await h.share(alice, 'slow-1', { allow: ['bob', 'carol'] });
    const fast = h.controller(bob, 'slow-1');
    const slow = h.controller(carol, 'slow-1');
    await fast.start();
    await slow.start();
    let fastRepaints = 0;
    fast.session.on('snapshot', () => fastRepaints++);
    const resume = slow.session.simulateStall();
    const m = marker('FLOOD');
    const count = 1_000_000;
    // ~6.9 MB of output: past the 4 MiB replay buffer while the slow controller reads nothing.
    const before = fast.outputChunks.length;
    fast.type(`seq 1 ${count}; echo ${m}-$((40+2))\r`);
    await fast.waitForText(`${m}-42`, 60_000);
    assert.ok(
      !slow.text.includes(`${m}-42`),
      'the fast controller got to the end while the stalled one had not',
    );
    const text = Buffer.concat(fast.outputChunks.slice(before)).toString('latin1');
    const numbers = text
      .slice(text.indexOf('1\r\n2\r\n'), text.indexOf(`${m}-42`))
      .split('\r\n')
      .filter(Boolean);
    assert.equal(fastRepaints, 0, 'the fast controller was repainted, not streamed');
    assert.equal(numbers.length, count, 'the fast controller got every line exactly once');
    for (let i = 0; i < count; i++)
      if (numbers[i] !== String(i + 1)) assert.fail(`line ${i + 1} is ${numbers[i]}`);
    resume();
    await slow.waitForText(`${m}-42`, 30_000);
    const bytes = (c: typeof fast) => c.outputChunks.reduce((n, b) => n + b.length, 0);
    assert.ok(
      bytes(slow) < bytes(fast) / 2,
      `repainted, not replayed: ${bytes(slow)} vs ${bytes(fast)} bytes`,
    );
  });

  it('drops a controller that acknowledges nothing, with a reason', async () => {
    const notices: string[] = [];
    const { host } = await h.share(
      alice,
      'slow-2',
      { allow: ['bob', 'carol'] },
      { slowControllerTimeoutMs: 1_000 },
    );
    host.on('notice', (t: string) => notices.push(t));
    const fast = h.controller(bob, 'slow-2');
    const slow = h.controller(carol, 'slow-2');
    await fast.start();
    await slow.start();
    const resume = slow.session.simulateStall();
    fast.type(`seq 1 200000; echo done-$((40+2))\r`);
    await fast.waitForText('done-42', 60_000);
    await new Promise<void>((resolve) => {
      const check = (t: string) => t.startsWith('dropped carol') && resolve();
      notices.forEach(check);
      host.on('notice', check);
    });
    resume();
    const end = await slow.waitEnd();
    assert.equal(end.error?.code, ErrorCode.SLOW_PEER);
    assert.match(end.error?.message ?? '', /did not keep up/);
  });

  it('carries on after the relay restarts under a live session', async () => {
    const host = await h.agent(alice, 'restart-1', { allow: ['bob'] });
    const ctl = h.controller(bob, 'restart-1');
    await ctl.start();
    ctl.type('export KEEP=kept-$((40+2))\r');
    ctl.type('echo ready-$KEEP\r');
    await ctl.waitForText('ready-kept-42');
    const registered = new Promise((r) => host.once('registered', r));
    await h.restart();
    await registered;
    await new Promise<void>((resolve) =>
      ctl.session.once('state', (s: string) => s === 'attached' && resolve()),
    );
    ctl.type('echo "after=$KEEP"\r');
    await ctl.waitForText('after=kept-42');
  });

  it('runs 20 sessions at once', async () => {
    const owners = await Promise.all(Array.from({ length: 20 }, (_, i) => h.user(`owner${i}`)));
    await Promise.all(owners.map((o, i) => h.agent(o, `many-${i}`, { allow: ['bob'] })));
    const ctls = owners.map((_, i) => h.controller(bob, `many-${i}`));
    await Promise.all(ctls.map((c) => c.start()));
    ctls.forEach((c, i) => c.type(`echo session-$((${i}*1000+7))\r`));
    await Promise.all(ctls.map((c, i) => c.waitForText(`session-${i * 1000 + 7}\r\n`)));
  });

  it('caps live sessions with --max-remotes', async () => {
    const small = new Harness({ maxRemotes: 2 });
    await small.start();
    try {
      const dora = await small.user('dora');
      await small.agent(dora, 'cap-1');
      await small.agent(dora, 'cap-2');
      await assert.rejects(
        small.agent(dora, 'cap-3'),
        (err: { code: string; message: string }) =>
          err.code === ErrorCode.SESSION_LIMIT && /limit of 2/.test(err.message),
      );
    } finally {
      await small.close();
    }
  });

  it('ends a live agent when its owner logs out everywhere', async () => {
    const erin = await h.user('erin');
    const host = await h.agent(erin, 'logout-1');
    const fatal = new Promise<{ code: string }>((resolve) => host.once('fatal', resolve));
    const other = await erin.connect();
    await other.request('auth.logout', { all: true });
    other.close();
    assert.equal((await fatal).code, ErrorCode.TOKEN_REVOKED);
  });

  it("gives a controller that resumes the rest of an agent shell's output and its exit code when the shell ended while it was away", async () => {
    let shells = 0;
    let secondShell!: () => void;
    const spawnedAgain = new Promise<void>((r) => (secondShell = r));
    const host = await h.agent(
      alice,
      'exit-away',
      { allow: ['bob'] },
      {
        spawnShell: (cols, rows, term) => {
          if (++shells > 1) secondShell();
          return testShell(cols, rows, term);
        },
      },
    );
    // The controller's reconnects wait until the test lets them through.
    let reconnect!: () => void;
    const mayReconnect = new Promise<void>((r) => (reconnect = r));
    let first = true;
    const ctl = h.controller(bob, 'exit-away', {
      connect: async () => {
        if (!first) await mayReconnect;
        first = false;
        return bob.connect();
      },
    });
    const info = await ctl.start();
    const gate = join(h.dir, 'exit-away-gate');
    ctl.type(`until [ -e ${gate} ]; do sleep 0.02; done; echo "tail-$((40+2))"; exit 3\r`);
    await ctl.waitForText('exit 3');
    const stream = host.placed(info.welcome.attachment)!.stream;
    const exited = once(stream, 'exit');
    // The shell ends only once the host knows the controller is gone (else the exit would be
    // sent to the dead connection: see the closing note on that race).
    const dropped = new Promise<void>((resolve) =>
      host.on('notice', (t: string) => t.startsWith("bob's connection dropped") && resolve()),
    );
    ctl.session.simulateDrop();
    await dropped;
    closeSync(openSync(gate, 'w'));
    await exited;
    reconnect();
    const end = await Promise.race([
      ctl.waitEnd(),
      spawnedAgain.then(() => assert.fail('the resume got a fresh shell')),
    ]);
    assert.deepEqual(end.exit, { code: 3 });
    assert.match(ctl.text, /tail-42/);
    assert.deepEqual(host.controllers(), []);
  });

  it('tells a controller why the host could not start its shell, and carries on', async () => {
    let failNext = true;
    await h.agent(
      alice,
      'spawn-fails',
      { allow: ['bob'] },
      {
        spawnShell: (cols, rows, term) => {
          if (failNext) {
            failNext = false;
            throw new Error('forkpty(3) failed.');
          }
          return testShell(cols, rows, term);
        },
      },
    );
    const unhandledBefore = unhandled.length;
    await assert.rejects(
      h.controller(bob, 'spawn-fails').start(),
      (err: { code: string; message: string }) =>
        err.code === ErrorCode.SERVICE_UNAVAILABLE &&
        err.message === 'the host could not start a shell: forkpty(3) failed.',
    );
    const ctl = h.controller(bob, 'spawn-fails');
    await ctl.start();
    ctl.type('echo "second-$((20+22))"\r');
    await ctl.waitForText('second-42');
    assert.equal(unhandled.length, unhandledBefore, 'the failure was an unhandled rejection');
  });

  it('tells the host what became of each controller: detached, dropped and resumable, its shell exited', async () => {
    const notices: string[] = [];
    const host = await h.agent(alice, 'notices-1', { allow: ['bob'] });
    host.on('notice', (t: string) => notices.push(t));
    const next = () => new Promise<string>((r) => host.once('notice', r));
    let ctl = h.controller(bob, 'notices-1');
    await ctl.start();
    let said = next();
    await ctl.session.detach();
    assert.equal(await said, 'bob detached; their shell keeps running, for `attach` within 10 min');
    ctl = h.controller(bob, 'notices-1');
    await ctl.start();
    said = next();
    ctl.session.simulateDrop();
    assert.equal(await said, "bob's connection dropped; they can resume within 10 min");
    await ctl.close();
    ctl = h.controller(bob, 'notices-1');
    await ctl.start();
    said = next();
    ctl.type('exit 4\r');
    await ctl.waitEnd();
    assert.equal(await said, "bob's shell exited with 4");
  });

  it('pins each device of a user: an agent lets in a new device the directory lists, says so, and refuses a key it cannot place with a line for the joiner', async () => {
    const notices: string[] = [];
    const host = await h.agent(alice, 'devices-1', { allow: ['dave'] });
    host.on('notice', (t: string) => notices.push(t));
    const dave = await h.user('dave');
    const first = h.controller(dave, 'devices-1');
    await first.start();
    await first.close();
    // A second home on the same machine: the same device name, another key.
    const second = await h.user('dave');
    const ctl = h.controller(second, 'devices-1');
    await ctl.start();
    await ctl.close();
    assert.ok(
      notices.some((n) =>
        /^dave connects from a new device "test" \(SHA256:[A-Za-z0-9+/]{43}\): pinned/.test(n),
      ),
      notices.join('\n'),
    );
    // The first device was not dropped for the second.
    const again = h.controller(dave, 'devices-1');
    await again.start();
    await again.close();
    assert.equal(alice.knownPeers.list(h.server, 'dave').length, 2);
    // A user whose pinned keys the relay no longer lists (say, a reinstall): the key is refused.
    const gone = generateDeviceKey().publicKey.toString('base64');
    alice.knownPeers.replace(h.server, 'hal', [{ publicKey: gone, deviceName: 'old' }]);
    const host2 = await h.agent(alice, 'devices-2', { allow: ['hal'] });
    host2.on('notice', (t: string) => notices.push(t));
    const hal = await h.user('hal');
    await assert.rejects(
      h.controller(hal, 'devices-2').start(),
      (err: { code: string; message: string }) =>
        err.code === ErrorCode.PEER_KEY_CHANGED &&
        /^the other end has other keys pinned for hal, and yours \(SHA256:.{43}\) is not one of their devices it knows: have them check it and run: switchboard trust hal --fingerprint-of-peer SHA256:/.test(
          err.message,
        ),
    );
    assert.ok(notices.some((n) => n.includes('THE DEVICE KEY OF hal HAS CHANGED')));
  });

  it('tells a controller when the host is a device of its user new to it, and pins it next to the others', async () => {
    const box1 = await h.user('gina', h.server, h.relay.certificate.fingerprint, 'box1');
    const box2 = await h.user('gina', h.server, h.relay.certificate.fingerprint, 'box2');
    await h.agent(box1, 'gina-box1', { allow: ['bob'] });
    await h.agent(box2, 'gina-box2', { allow: ['bob'] });
    const notices: string[] = [];
    for (const id of ['gina-box1', 'gina-box2', 'gina-box1']) {
      const ctl = h.controller(bob, id);
      ctl.session.on('notice', (t: string) => notices.push(`${id}: ${t}`));
      await ctl.start();
      await ctl.close();
    }
    assert.equal(notices.length, 1, notices.join('\n'));
    assert.match(
      notices[0]!,
      /^gina-box2: gina's device "box2" \(SHA256:[A-Za-z0-9+/]{43}\) is new to you: pinned it/,
    );
    assert.deepEqual(
      bob.knownPeers.list(h.server, 'gina').map((p) => p.deviceName),
      ['box1', 'box2'],
    );
  });

  it('refuses a new device of a pinned user with --strict-keys, telling the joiner the command that admits it', async () => {
    await h.agent(alice, 'devices-strict', { allow: ['erin'] }, { newDevice: 'refuse' });
    const erin = await h.user('erin');
    await h.controller(erin, 'devices-strict').start();
    const phone = await h.user('erin', h.server, h.relay.certificate.fingerprint, 'phone');
    await assert.rejects(
      h.controller(phone, 'devices-strict').start(),
      (err: { code: string; message: string }) =>
        err.code === ErrorCode.PEER_KEY_CHANGED &&
        /does not accept new devices of erin \(--strict-keys\).*switchboard trust erin --fingerprint-of-peer SHA256:/.test(
          err.message,
        ),
    );
    assert.equal(alice.knownPeers.list(h.server, 'erin').length, 1);
  });

  it('share: asks its host about a new device of an allowed user, and pins it once let in', async () => {
    const asked: Array<{ user: string; deviceName: string; newDevice: boolean }> = [];
    await h.share(
      alice,
      'devices-share',
      { allow: ['fred'] },
      {
        approve: async (peer, _signal, why) => {
          asked.push({ user: peer.user, deviceName: peer.deviceName, newDevice: !!why?.newDevice });
          return peer.deviceName !== 'watch';
        },
      },
    );
    const fred = await h.user('fred');
    await h.controller(fred, 'devices-share').start();
    assert.deepEqual(asked, [], 'an allowed user on first contact is let in without asking');
    const tablet = await h.user('fred', h.server, h.relay.certificate.fingerprint, 'tablet');
    await h.controller(tablet, 'devices-share').start();
    assert.deepEqual(asked, [{ user: 'fred', deviceName: 'tablet', newDevice: true }]);
    assert.deepEqual(
      alice.knownPeers.list(h.server, 'fred').map((p) => [p.deviceName, p.via]),
      [
        ['test', 'directory'],
        ['tablet', 'new-device'],
      ],
    );
    // Pinned now: not asked again.
    await h.controller(tablet, 'devices-share').start();
    assert.equal(asked.length, 1);
    // A device the host refuses is not pinned.
    const watch = await h.user('fred', h.server, h.relay.certificate.fingerprint, 'watch');
    await assert.rejects(
      h.controller(watch, 'devices-share').start(),
      (err: { code: string }) => err.code === ErrorCode.DENIED,
    );
    assert.equal(alice.knownPeers.list(h.server, 'fred').length, 2);
  });

  it('agent: a viewer watches a shell someone has open, never types into it, and is told plainly when there is none', async () => {
    const host = await h.agent(alice, 'watch-1', { allow: ['bob'], viewers: ['carol'] });
    await assert.rejects(
      h.controller(carol, 'watch-1').start(),
      (err: { code: string; message: string }) =>
        err.code === ErrorCode.SERVICE_UNAVAILABLE && /^nothing to watch: /.test(err.message),
    );
    let shells = 0;
    const owner = h.controller(bob, 'watch-1');
    await owner.start();
    shells = host.controllers().length;
    const before = marker('before');
    owner.type(`echo ${before.slice(0, 6)}"${before.slice(6)}"\r`);
    await owner.waitForText(`${before}\r\n`);
    const viewer = h.controller(carol, 'watch-1', { readOnly: true });
    const info = await viewer.start();
    assert.equal(info.welcome.readOnly, true);
    assert.equal(info.welcome.watching, 'bob');
    // The current screen first, then what the shell prints from then on.
    await viewer.waitForText(before);
    const after = marker('after');
    owner.type(`echo ${after.slice(0, 5)}"${after.slice(5)}"\r`);
    await viewer.waitForText(`${after}\r\n`);
    // A viewer's keystrokes are not the shell's (AttachSession drops them; the host would too).
    viewer.type('echo from-viewer\r');
    const check = marker('check');
    owner.type(`echo ${check.slice(0, 5)}"${check.slice(5)}"\r`);
    await owner.waitForText(`${check}\r\n`);
    assert.equal(owner.text.includes('from-viewer'), false);
    // Leaving does not end the shell it watched; the shell's end reaches the viewer too.
    await viewer.close();
    const second = h.controller(carol, 'watch-1', { readOnly: true });
    await second.start();
    // A watcher that stops reading does not hold the shell back (~2.3 MB, past the 1 MiB window).
    const resume = second.session.simulateStall();
    const flood = marker('flood');
    owner.type(`seq 1 400000; echo ${flood.slice(0, 5)}"${flood.slice(5)}"\r`);
    // Bounded well below the ~30 s after which the relay gives up on the stalled reader (and a
    // paused shell would go on): the flood takes ~1.5 s here.
    await owner.waitForText(`${flood}\r\n`, 20_000);
    resume();
    await second.waitForText(flood, 30_000);
    owner.type('exit 6\r');
    assert.deepEqual((await owner.waitEnd()).exit, { code: 6 });
    assert.deepEqual((await second.waitEnd()).exit, { code: 6 });
    assert.equal(shells, 1);
    assert.deepEqual(host.controllers(), []);
  });

  it('records an agent shell as an asciicast v2 file (0600) that replays to the same screen, and asciinema reads', async () => {
    const dir = mkdtempSync(join(h.dir, 'recordings-'));
    const host = await h.agent(
      alice,
      'rec-1',
      { allow: ['bob'] },
      { record: { dir, input: true } },
    );
    const recorded = once(host, 'recorded') as Promise<[string]>;
    const ctl = h.controller(bob, 'rec-1', { cols: 80, rows: 24 });
    await ctl.start();
    ctl.type('printf \'plain \\033[1mbold\\033[0m \\303\\251t\\303\\251 %s\\n\' "$(stty size)"\r');
    await ctl.waitForText('24 80');
    const beforeResize = ctl.text.length;
    ctl.session.resize(100, 30);
    ctl.type(
      'until [ "$(stty size)" = "30 100" ]; do sleep 0.02; done; echo "wide=$(tput cols)"\r',
    );
    await ctl.waitForText('wide=100');
    ctl.type('exit 2\r');
    assert.deepEqual((await ctl.waitEnd()).exit, { code: 2 });
    const [path] = await recorded;
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const [header, ...events] = readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(
      { ...(header as Record<string, unknown>), timestamp: 0 },
      {
        version: 2,
        width: 80,
        height: 24,
        timestamp: 0,
        title: 'rec-1: bob',
        env: { TERM: 'xterm-256color' },
      },
    );
    const typed = events
      .filter((e) => (e as [number, string])[1] === 'i')
      .map((e) => (e as string[])[2])
      .join('');
    assert.match(typed, /exit 2/);
    assert.ok(events.some((e) => (e as unknown[])[1] === 'r' && (e as unknown[])[2] === '100x30'));
    // Replayed on a terminal of the recorded size, it ends on the screen the controller saw.
    const replay = new HeadlessTerminal({ cols: 80, rows: 24, allowProposedApi: true });
    for (const [, type, text] of events as Array<[number, string, string]>) {
      if (type === 'o') await new Promise<void>((r) => replay.write(text, r));
      if (type === 'r') {
        const [cols, rows] = text.split('x').map(Number);
        replay.resize(cols!, rows!);
      }
    }
    const seen = new HeadlessTerminal({ cols: 80, rows: 24, allowProposedApi: true });
    const bytes = Buffer.from(ctl.text, 'latin1');
    await new Promise<void>((r) => seen.write(bytes.subarray(0, beforeResize), r));
    seen.resize(100, 30);
    await new Promise<void>((r) => seen.write(bytes.subarray(beforeResize), r));
    const screen = (t: typeof seen) =>
      Array.from({ length: t.rows }, (_, y) =>
        t.buffer.active.getLine(t.buffer.active.viewportY + y)?.translateToString(true),
      ).join('\n');
    assert.match(screen(replay), /plain bold été 24 80/);
    assert.match(screen(replay), /wide=100/);
    assert.equal(screen(replay), screen(seen));
    replay.dispose();
    seen.dispose();
    // asciinema (the player users have) reads it: `asciinema cat` (on a terminal) prints it.
    const cat = await new Promise<{ code: number; out: string }>((resolve) => {
      const p = spawnPty('asciinema', ['cat', path], { cols: 100, rows: 30 });
      let out = '';
      p.onData((d) => (out += d));
      p.onExit(({ exitCode }) => resolve({ code: exitCode, out }));
    });
    assert.equal(cat.code, 0, cat.out);
    assert.match(cat.out, /wide=100/);
  });

  it('records no keystrokes without --record-input', async () => {
    const dir = mkdtempSync(join(h.dir, 'recordings-'));
    const host = await h.agent(
      alice,
      'rec-2',
      { allow: ['bob'] },
      { record: { dir, input: false } },
    );
    const recorded = once(host, 'recorded') as Promise<[string]>;
    const ctl = h.controller(bob, 'rec-2');
    await ctl.start();
    ctl.type('echo "shown-$((2+2))"\r');
    await ctl.waitForText('shown-4');
    ctl.type('exit\r');
    await ctl.waitEnd();
    const [path] = await recorded;
    const types = readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => (JSON.parse(l) as [number, string, string])[1]);
    assert.ok(types.includes('o'));
    assert.equal(types.includes('i'), false, 'keystrokes were recorded');
  });

  it('stays stopped when stop() comes while it is reconnecting', async () => {
    let connecting!: () => void;
    const isConnecting = new Promise<void>((r) => (connecting = r));
    let proceed!: () => void;
    const gate = new Promise<void>((r) => (proceed = r));
    let connected!: (c: RelayClient) => void;
    const lateClient = new Promise<RelayClient>((r) => (connected = r));
    let gated = false;
    const host = await h.agent(
      alice,
      'stop-reconnect',
      {},
      {
        connect: async () => {
          if (!gated) return alice.connect();
          connecting();
          await gate;
          const late = await alice.connect();
          connected(late);
          return late;
        },
      },
    );
    gated = true;
    await h.restart();
    await isConnecting;
    await host.stop();
    const registered = new Promise((r) => host.once('registered', r));
    proceed();
    // The reconnect gets its connection after stop(): it must end it, not register again.
    await Promise.race([registered, lateClient.then((c) => once(c, 'close'))]);
    const client = await alice.connect();
    try {
      const { sessions } = await client.request('sessions.list', {});
      assert.deepEqual(
        sessions.filter((s) => s.sessionId === 'stop-reconnect'),
        [],
      );
    } finally {
      client.close();
    }
  });

  it('refuses a session ID that is live for another owner', async () => {
    await h.agent(alice, 'taken-1');
    await assert.rejects(
      h.agent(bob, 'taken-1'),
      (err: { code: string }) => err.code === ErrorCode.SESSION_TAKEN,
    );
  });
});

describe('a relay that tampers with keys', () => {
  const h = new Harness();
  let proxy: TamperProxy;
  let alice: TestUser;
  let bobViaProxy: TestUser;

  before(async () => {
    await h.start();
    proxy = await new TamperProxy(h.port).start();
    alice = await h.user('alice');
    bobViaProxy = await h.user('bob', proxy.address, proxy.fingerprint);
    await h.agent(alice, 'pinned', { allow: ['bob'] });
    // First contact through the proxy while it is honest: bob pins alice's real key.
    const ctl = h.controller(bobViaProxy, 'pinned');
    await ctl.start();
    await ctl.close();
  });
  after(async () => {
    await proxy.close();
    await h.close();
  });

  it('is caught when it announces a different host key than the host proves', async () => {
    const fake = generateDeviceKey().publicKey.toString('base64');
    proxy.tamper = {
      toClientJson: (m) => {
        const result = m['result'] as { host?: { publicKey: string } } | undefined;
        if (m['type'] === 'reply' && result?.host) result.host.publicKey = fake;
        return m;
      },
    };
    const ctl = h.controller(bobViaProxy, 'pinned');
    await assert.rejects(
      ctl.start(),
      (err: { code: string }) => err.code === ErrorCode.HANDSHAKE_FAILED,
    );
  });

  it('is caught when it impersonates the host with its own key (pinned key changed)', async () => {
    const mallory = generateDeviceKey();
    proxy.tamper = {
      toClientJson: (m) => {
        // A consistent lie: mallory's key under its own fingerprint (a mismatched label is
        // refused before the pins are even asked: e2e.test.ts).
        const result = m['result'] as
          { host?: { publicKey: string; fingerprint: string } } | undefined;
        if (m['type'] === 'reply' && result?.host) {
          result.host.publicKey = mallory.publicKey.toString('base64');
          result.host.fingerprint = keyFingerprint(mallory.publicKey);
        }
        return m;
      },
      // Answer the controller's handshake itself instead of forwarding it to the host.
      toRelayBinary: (frame, reply) => {
        const payload = frame.subarray(4);
        if (payload[0] === 0x01 && payload.length === 33) {
          const hs = new HostHandshake({
            key: mallory,
            prologue: channelPrologue('terminal', 'pinned', 'alice', 'bob'),
          });
          const msg2 = hs.respond(payload);
          reply(Buffer.concat([frame.subarray(0, 4), msg2]));
          return undefined;
        }
        return frame;
      },
    };
    const ctl = h.controller(bobViaProxy, 'pinned');
    await assert.rejects(
      ctl.start(),
      (err: { code: string; message: string }) =>
        err.code === ErrorCode.PEER_KEY_CHANGED && /HAS CHANGED/.test(err.message),
    );
  });

  it('is caught when it corrupts the handshake', async () => {
    proxy.tamper = {
      toClientBinary: (frame) => {
        const copy = Buffer.from(frame);
        if (copy[4] === 0x02) copy[copy.length - 1]! ^= 0x01;
        return copy;
      },
    };
    const ctl = h.controller(bobViaProxy, 'pinned');
    await assert.rejects(
      ctl.start(),
      (err: { code: string }) => err.code === ErrorCode.HANDSHAKE_FAILED,
    );
  });

  it("is caught by the host when it substitutes the controller's key", async () => {
    const notices: string[] = [];
    const aliceViaProxy = await h.user('alice', proxy.address, proxy.fingerprint);
    const other = generateDeviceKey().publicKey.toString('base64');
    proxy.tamper = {
      toClientJson: (m) => {
        if (m['type'] === 'channel.open') (m['peer'] as { publicKey: string }).publicKey = other;
        return m;
      },
    };
    const host = await h.agent(aliceViaProxy, 'host-side', { allow: ['bob'] });
    host.on('notice', (t: string) => notices.push(t));
    const bobDirect = await h.user('bob');
    const ctl = h.controller(bobDirect, 'host-side');
    await assert.rejects(
      ctl.start(),
      (err: { code: string }) => err.code === ErrorCode.HANDSHAKE_FAILED,
    );
    assert.ok(
      notices.some((n) => /refused bob/.test(n)),
      notices.join('\n'),
    );
  });
});

describe('what the relay keeps', () => {
  it('never logs or stores what is typed in the terminal', async () => {
    const logFile = join(
      process.env['TMPDIR'] ?? '/tmp',
      `sb-trace-${process.pid}-${Date.now()}.log`,
    );
    const fd = openSync(logFile, 'w');
    const h = new Harness({ logger: createLogger('trace', fd) });
    await h.start();
    try {
      const [alice, bob] = await Promise.all([h.user('alice'), h.user('bob')]);
      await h.agent(alice, 'marker-1', { allow: ['bob'] });
      const ctl = h.controller(bob, 'marker-1');
      await ctl.start();
      const secret = marker('TOP-SECRET-MARKER');
      ctl.type(`echo ${secret} | tr A-Z a-z\r`);
      await ctl.waitForText(secret.toLowerCase());
      await ctl.close();
    } finally {
      await h.close().catch(() => undefined);
      closeSync(fd);
    }
    const log = readFileSync(logFile, 'utf8');
    assert.ok(log.includes('"msg":"channel open"'), 'the trace log did record the session');
    assert.ok(!/TOP-SECRET-MARKER/i.test(log), 'marker found in the relay log');
    // The data dir is removed by close(); the database is checked in its own test below.
  });

  it('keeps no terminal content in its database files', async () => {
    const h = new Harness();
    await h.start();
    const secret = marker('DB-SECRET-MARKER');
    try {
      const [alice, bob] = await Promise.all([h.user('alice'), h.user('bob')]);
      await h.agent(alice, 'marker-2', { allow: ['bob'] });
      const ctl = h.controller(bob, 'marker-2');
      await ctl.start();
      ctl.type(`echo ${secret}\r`);
      // Twice: once in the echoed command line, once as the command's output.
      await ctl.waitFor((t) => t.split(secret).length >= 3, 'the echoed marker');
      await ctl.close();
      await h.relay.close();
      const files = readdirSync(h.dataDir).filter((f) => f.startsWith('switchboard.db'));
      assert.ok(files.includes('switchboard.db'));
      for (const f of files)
        assert.ok(!readFileSync(join(h.dataDir, f)).includes(secret), `marker in ${f}`);
    } finally {
      await h.close().catch(() => undefined);
    }
  });
});

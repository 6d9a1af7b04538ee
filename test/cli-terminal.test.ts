// The real `switchboard` binary in real PTYs: attach to an agent, resize, detach, re-attach; share with approval.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Harness, type TestUser } from './terminal-harness.js';
import { BIN, PtyProcess, started } from './pty-process.js';

const require = createRequire(import.meta.url);
/** The user's terminal, to read what the CLI's output leaves it showing and in which modes. */
const { Terminal: HeadlessTerminal } = require('@xterm/headless') as {
  Terminal: new (options: object) => {
    write(data: string, callback: () => void): void;
    buffer: {
      active: {
        type: string;
        length: number;
        getLine(y: number): { translateToString(trim: boolean): string } | undefined;
      };
    };
    modes: {
      mouseTrackingMode: string;
      applicationCursorKeysMode: boolean;
      applicationKeypadMode: boolean;
    };
    dispose(): void;
  };
};

/** Signs a user up (or, `login`, logs them in again: another device) in a fresh SWITCHBOARD_HOME. */
async function cliUser(
  h: Harness,
  name: string,
  how: 'signup' | 'login' = 'signup',
): Promise<string> {
  const home = mkdtempSync(join(h.dir, `cli-${name}-`));
  const code = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      [
        BIN,
        how,
        '--user',
        name,
        '--password-stdin',
        '--server',
        h.server,
        '--fingerprint',
        h.relay.certificate.fingerprint,
      ],
      {
        env: { ...process.env, SWITCHBOARD_HOME: home },
        stdio: ['pipe', 'ignore', 'inherit'],
      },
    );
    child.stdin.end(`${name}-cli-password\n`);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  assert.equal(code, 0, `${how} ${name}`);
  return home;
}

describe('the CLI in a real terminal', () => {
  const h = new Harness();
  let alice: TestUser;
  let bobHome: string;
  let carolHome: string;

  before(async () => {
    await h.start();
    alice = await h.user('alice');
    bobHome = await cliUser(h, 'bob');
    carolHome = await cliUser(h, 'carol');
    await h.agent(alice, 'cli-box', { allow: ['bob'] });
  });
  after(() => {
    for (const p of started) p.kill();
    return h.close();
  });

  it('attach: real terminal size, resize, detach with ~., re-attach to the same shell, exit code', async () => {
    const p = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome }, 101, 31);
    await p.waitText('$ ');
    p.write('export SAME=shell-$((20+22)); echo "size=$(tput cols)x$(tput lines)"\r');
    await p.waitText('size=101x31');
    // The remote PTY's CRLF arrives as is: the local terminal adds no second CR (OPOST off).
    p.write("printf 'crlf-one\\ncrlf-two\\n'\r");
    await p.waitFor((o) => /crlf-one\r+\ncrlf-two/.test(o), 'the printf output');
    assert.ok(p.out.includes('crlf-one\r\ncrlf-two'), JSON.stringify(p.out.slice(-200)));
    p.proc.resize(77, 19);
    // The resize reaches attach as a signal, maybe after the keys typed next: the shell waits
    // (at most 5 s) for it before it reports (seen in CI: 101x19, the two tputs either side of it).
    p.write(
      'for i in $(seq 100); do [ "$(stty size)" = "19 77" ] && break; sleep 0.05; done; ' +
        'echo "size=$(tput cols)x$(tput lines)"\r',
    );
    await p.waitText('size=77x19');
    p.write('\r~.');
    assert.equal(await p.waitExit(), 0);
    assert.match(p.out, /detached from cli-box/);

    const again = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome });
    await again.waitText('resumed');
    again.write('echo "again=$SAME"\r');
    await again.waitText('again=shell-42');
    again.write('exit 3\r');
    assert.equal(await again.waitExit(), 3);
  });

  it('attach: leaves the local terminal as it found it, on ~. and on SIGTERM, and keeps its scrollback', async () => {
    for (const how of ['~.', 'SIGTERM'] as const) {
      const p = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome });
      await p.waitText('$ ');
      // What a full-screen program switches on: the alternate screen, mouse reporting, application
      // cursor keys and keypad, a hidden cursor. (Typed, the escapes echo as text, not as ESC.)
      p.write("printf '\\033[?1049h\\033[?1000h\\033[?1006h\\033[?1h\\033=\\033[?25lFULL'\r");
      await p.waitText('\x1b[?25lFULL');
      if (how === '~.') {
        p.write('\r~.');
        assert.equal(await p.waitExit(), 0, how);
      } else {
        p.proc.kill('SIGTERM');
        assert.equal(await p.waitExit(), 143, how);
      }
      assert.match(p.out, /detached from cli-box/, how);
      const local = new HeadlessTerminal({ cols: 100, rows: 30, allowProposedApi: true });
      await new Promise<void>((resolve) => local.write(p.out, resolve));
      assert.equal(local.buffer.active.type, 'normal', `${how}: back on the main screen`);
      assert.equal(local.modes.mouseTrackingMode, 'none', `${how}: mouse reporting off`);
      assert.equal(local.modes.applicationCursorKeysMode, false, `${how}: cursor keys`);
      assert.equal(local.modes.applicationKeypadMode, false, `${how}: keypad`);
      // What is printed on leaving goes below the shell's lines, not over the top of the screen.
      const b = local.buffer.active;
      const rows = Array.from({ length: b.length }, (_, y) =>
        b.getLine(y)?.translateToString(true),
      );
      const typed = rows.findIndex((r) => r?.includes('printf'));
      const left = rows.findIndex((r) => r?.includes('detached from cli-box'));
      assert.ok(typed >= 0 && left > typed, `${how}: left at row ${left}, typed at row ${typed}`);
      local.dispose();
      assert.ok(
        p.out.lastIndexOf('\x1b[?25h') > p.out.lastIndexOf('\x1b[?25l'),
        `${how}: cursor shown`,
      );
      // The repaint on attaching clears the screen, not the user's scrollback.
      assert.equal(p.out.includes('\x1b[3J'), false, `${how}: scrollback erased`);
    }
  });

  it('attach: re-attaching from a new process to a full-screen program shows its screen at once', async () => {
    const first = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome });
    await first.waitText('$ ');
    // A full-screen program that draws once and then waits, as vim does.
    first.write("printf '\\033[?1049h\\033[2J\\033[5;3HDRAWN-%s' ON-ALT-SCREEN; exec cat\r");
    await first.waitText('DRAWN-ON-ALT-SCREEN');
    first.write('\r~.');
    assert.equal(await first.waitExit(), 0);

    const again = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome });
    await again.waitText('resumed');
    await again.waitText('DRAWN-ON-ALT-SCREEN');
    const local = new HeadlessTerminal({ cols: 100, rows: 30, allowProposedApi: true });
    await new Promise<void>((resolve) => local.write(again.out, resolve));
    assert.equal(local.buffer.active.type, 'alternate', 'the program is on its alternate screen');
    const row5 = local.buffer.active.getLine(4)?.translateToString(true) ?? '';
    assert.match(row5, /^ {2}DRAWN-ON-ALT-SCREEN/, 'drawn where the program put it');
    local.dispose();
    again.write('\x03'); // ends cat, which is the shell
    await again.waitExit();
  });

  it('agent and share: --allow/--viewers names without an account are refused at start, unless --allow-unknown', async () => {
    const refused = new PtyProcess(
      ['agent', '--session', 'typo-box', '--allow', 'bob,bbo', '--viewers', 'zed'],
      { SWITCHBOARD_HOME: bobHome },
    );
    const share = new PtyProcess(['share', '--session', 'typo-share', '--viewers', 'zed'], {
      SWITCHBOARD_HOME: bobHome,
    });
    try {
      assert.equal(await refused.waitExit(), 2);
      assert.match(refused.out, /no account on [^ ]+ is named bbo, zed/);
      assert.match(refused.out, /--allow-unknown/);
      assert.equal(await share.waitExit(), 2);
      assert.match(share.out, /is named zed/);
    } finally {
      refused.kill();
      share.kill();
    }
    // Accepted on purpose: a warning, and the agent serves.
    const accepted = new PtyProcess(
      ['agent', '--session', 'typo-box', '--allow', 'bbo', '--allow-unknown'],
      { SWITCHBOARD_HOME: bobHome },
    );
    try {
      await accepted.waitText('agent serving session typo-box');
      assert.match(accepted.out, /warning: no account is named bbo yet/);
    } finally {
      accepted.kill();
    }
  });

  it("attach: a new agent shell gets the controller's TERM (a plain name only)", async () => {
    const ginaHome = await cliUser(h, 'gina');
    await h.agent(alice, 'term-box', { allow: ['gina'] });
    for (const [term, expected] of [
      ['screen-256color', 'screen-256color'],
      ['bad;name', 'xterm-256color'],
    ]) {
      const p = new PtyProcess(['attach', 'term-box'], { SWITCHBOARD_HOME: ginaHome, TERM: term! });
      await p.waitText('$ ');
      p.write('echo "term=[$TERM]"\r');
      await p.waitText(`term=[${expected}]`);
      p.write('exit\r');
      await p.waitExit();
    }
  });

  it('attach: a viewer who asked for read-write is told so in a banner the first repaint does not wipe', async () => {
    const hankHome = await cliUser(h, 'hank');
    const host = new PtyProcess(['share', '--session', 'cli-view', '--viewers', 'carol'], {
      SWITCHBOARD_HOME: hankHome,
    });
    await host.waitText('sharing this terminal as session cli-view');
    host.write('echo "hosted-$((6*7))"\r');
    await host.waitText('hosted-42');
    const viewer = new PtyProcess(['attach', 'cli-view'], { SWITCHBOARD_HOME: carolHome });
    await viewer.waitText('the host does not take your keystrokes');
    await viewer.waitText('hosted-42');
    const local = new HeadlessTerminal({ cols: 100, rows: 30, allowProposedApi: true });
    await new Promise<void>((resolve) => local.write(viewer.out, resolve));
    const b = local.buffer.active;
    const text = Array.from({ length: b.length }, (_, y) =>
      b.getLine(y)?.translateToString(true),
    ).join('\n');
    local.dispose();
    assert.match(text, /read-only: the host does not take your keystrokes/, 'still on the screen');
    assert.match(text, /hosted-42/, 'after the repaint');
    viewer.write('\r~.');
    await viewer.waitExit();
    host.write('exit\r');
    await host.waitExit();
  });

  it('attach: a user who is not allowed gets exit code 5 and a clear message', async () => {
    const p = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: carolHome });
    assert.equal(await p.waitExit(), 5);
    assert.match(p.out, /not allowed on session "cli-box"/);
  });

  it("share: the host sees who asks, approves, both type into the same shell, and the guest gets the shell's exit code", async () => {
    const shareHome = await cliUser(h, 'dana');
    const host = new PtyProcess(['share', '--session', 'cli-share', '--shell', '/bin/bash'], {
      SWITCHBOARD_HOME: shareHome,
      PS1: '$ ',
    });
    await host.waitText('no account on this relay yet?');
    // The web page's link to the share, on this relay.
    assert.match(host.out, new RegExp(`or in a browser: https://${h.server}/#attach=cli-share`));
    // The join line is complete and copyable: the guest runs exactly what it says.
    const line = /others attach with: switchboard (attach [^\r\n]+)/.exec(host.out)?.[1] ?? '';
    assert.equal(
      line,
      `attach cli-share --server ${h.server} --fingerprint ${h.relay.certificate.fingerprint}`,
    );
    assert.match(
      host.out,
      new RegExp(`signup --server ${h.server} --fingerprint ${h.relay.certificate.fingerprint}`),
    );
    // The host is in the middle of typing a line when the request comes.
    host.write('echo "partial-');
    const guest = new PtyProcess(line.split(' '), { SWITCHBOARD_HOME: carolHome });
    await guest.waitText('waiting for the host to approve');
    await host.waitFor(
      (o) => /carol \(SHA256:[A-Za-z0-9+/]{43}\) asks to attach: ~y admits/.test(o),
      'the approval prompt',
    );
    // ~y answers right after the question, even mid-line, and the line typed so far is intact.
    host.write('~y');
    await guest.waitText('read-write');
    host.write('$((40+2))"\r');
    await host.waitText('partial-42');
    // A second requester: the host types on (the keys go to the shell, whole, and admit no one),
    // then the requester gives up and the question is withdrawn with a notice.
    const frankHome = await cliUser(h, 'frank');
    const quitter = new PtyProcess(['attach', 'cli-share'], { SWITCHBOARD_HOME: frankHome });
    await host.waitText('frank (SHA256:');
    host.write('echo "typed-while-asked-$((1+1))"\r');
    await host.waitText('typed-while-asked-2');
    assert.equal(quitter.out.includes('read-write'), false, 'not admitted by ordinary typing');
    quitter.kill();
    await host.waitText('frank stopped asking to attach');
    host.write('\r~n'); // escapes follow Enter (or a question)
    await host.waitText('no one is asking to attach');
    guest.write('echo "from-guest-$((2*21))"\r');
    await host.waitText('from-guest-42');
    host.write('echo "from-host-$((3*7))"\r');
    await guest.waitText('from-host-21');
    host.write('exit 7\r');
    assert.equal(await host.waitExit(), 7);
    assert.match(host.out, /your shell exited with 7; session cli-share has ended/);
    assert.equal(await guest.waitExit(), 7);
    assert.match(guest.out, /the remote shell exited with 7/);
  });

  it('signup on a terminal: a short password is refused before it is asked twice, a mismatch asks again', async () => {
    const home = mkdtempSync(join(h.dir, 'cli-signup-'));
    const signup = () =>
      new PtyProcess(
        [
          'signup',
          '--user',
          'ginalonger',
          '--server',
          h.server,
          '--fingerprint',
          h.relay.certificate.fingerprint,
        ],
        { SWITCHBOARD_HOME: home },
      );
    const p = signup();
    const prompts = () => p.out.split('Password: ').length - 1;
    await p.waitText('Password: ');
    p.write('short\r');
    await p.waitText('passwords need at least 8 characters; try again');
    assert.equal(p.out.includes('Password again'), false, 'asked twice for a password too short');
    await p.waitFor(() => prompts() === 2, 'the second prompt');
    p.write('GinaLonger\r');
    await p.waitText('must differ from the user name; try again');
    await p.waitFor(() => prompts() === 3, 'the third prompt');
    p.write('long-enough-1\r');
    await p.waitText('Password again: ');
    p.write('long-enough-2\r');
    // Three tries, as passwd(1) gives: the third mismatch ends it.
    await p.waitText('the passwords did not match');
    assert.equal(await p.waitExit(), 2);
    assert.doesNotMatch(p.out, /Created account/);

    const again = signup();
    await again.waitText('Password: ');
    again.write('long-enough-1\r');
    await again.waitText('Password again: ');
    again.write('long-enough-2\r');
    await again.waitText('the passwords did not match; try again');
    await again.waitFor((o) => o.split('Password: ').length === 3, 'the prompt again');
    again.write('long-enough-3\r');
    await again.waitFor((o) => o.split('Password again: ').length === 3, 'the confirmation again');
    again.write('long-enough-3\r');
    await again.waitText('Created account ginalonger');
    assert.equal(await again.waitExit(), 0);
  });

  it("attach --watch: an agent's viewer watches the shell someone has open, and is told when there is none", async () => {
    await h.agent(alice, 'cli-watch', { allow: ['bob'], viewers: ['carol'] });
    const early = new PtyProcess(['attach', 'cli-watch', '--watch'], {
      SWITCHBOARD_HOME: carolHome,
    });
    assert.equal(await early.waitExit(), 5);
    assert.match(early.out, /nothing to watch: no one has a shell open on this agent/);
    const owner = new PtyProcess(['attach', 'cli-watch'], { SWITCHBOARD_HOME: bobHome });
    await owner.waitText('$ ');
    owner.write('echo "owned-$((6*7))"\r');
    await owner.waitText('owned-42');
    const viewer = new PtyProcess(['attach', 'cli-watch', '--watch'], {
      SWITCHBOARD_HOME: carolHome,
    });
    await viewer.waitText("watching bob's shell, read-only");
    await viewer.waitText('owned-42');
    owner.write('echo "later-$((2*3))"\r');
    await viewer.waitText('later-6');
    viewer.write('\r~.');
    assert.equal(await viewer.waitExit(), 0);
    owner.write('exit 4\r');
    assert.equal(await owner.waitExit(), 4);
  });

  it('attach: a notice over a full-screen program is drawn on its bottom line, then repainted away', async () => {
    await h.agent(alice, 'cli-overlay-box', { allow: ['bob'] });
    const p = new PtyProcess(['attach', 'cli-overlay-box'], { SWITCHBOARD_HOME: bobHome });
    await p.waitText('$ ');
    p.write(FULL_SCREEN);
    await p.waitFor((o) => /ROW-29\r+\nLAST/.test(o), 'the full-screen program');
    p.write('~i'); // a local notice (the escape follows the Enter that ran the program)
    await noticeOverFullScreen(p, /\[switchboard\] session cli-overlay-box on/);
    p.write('\r');
    p.write('\r~.');
    assert.equal(await p.waitExit(), 0);
  });

  it("share: the host's notices over its full-screen program are drawn on the bottom line, then repainted away", async () => {
    const hostHome = await cliUser(h, 'ivan');
    const host = new PtyProcess(
      ['share', '--session', 'cli-overlay', '--shell', '/bin/bash', '--allow', 'carol'],
      { SWITCHBOARD_HOME: hostHome, PS1: '$ ' },
    );
    await host.waitText('no account on this relay yet?');
    host.write(FULL_SCREEN);
    await host.waitFor((o) => /ROW-29\r+\nLAST/.test(o), 'the full-screen program');
    const guest = new PtyProcess(['attach', 'cli-overlay'], { SWITCHBOARD_HOME: carolHome });
    await noticeOverFullScreen(host, /\[switchboard\] carol \(SHA256:.*attached read-write/);
    guest.write('\r~.');
    await guest.waitExit();
    host.write('\rexit\r');
    await host.waitExit();
  });

  it('share: a second device of an allowed user is shown to the host as a new device, and admitted with ~y', async () => {
    const hostHome = await cliUser(h, 'judy');
    const host = new PtyProcess(
      ['share', '--session', 'cli-devices', '--shell', '/bin/bash', '--allow', 'carol'],
      { SWITCHBOARD_HOME: hostHome, PS1: '$ ' },
    );
    await host.waitText('no account on this relay yet?');
    const first = new PtyProcess(['attach', 'cli-devices'], { SWITCHBOARD_HOME: carolHome });
    await first.waitText('read-write');
    first.write('\r~.');
    await first.waitExit();
    // carol again, from another home on this machine: the same device name, another key.
    const carolAgain = await cliUser(h, 'carol', 'login');
    const second = new PtyProcess(['attach', 'cli-devices'], { SWITCHBOARD_HOME: carolAgain });
    await second.waitText('waiting for the host to approve this device');
    await host.waitFor(
      (o) => /carol asks to attach from a device new to you: ".+" SHA256:[A-Za-z0-9+/]{43}/.test(o),
      'the new-device question',
    );
    host.write('~y');
    await second.waitText('read-write');
    second.write('echo "second-$((5*5))"\r');
    await host.waitText('second-25');
    // Both devices are pinned now: the first comes back without a question.
    second.write('\r~.');
    await second.waitExit();
    const back = new PtyProcess(['attach', 'cli-devices'], { SWITCHBOARD_HOME: carolHome });
    await back.waitText('read-write');
    back.write('\r~.');
    await back.waitExit();
    host.write('exit\r');
    await host.waitExit();
  });

  it('sessions: shows the tags agents carry and selects by them; a malformed --tag is a usage error', async () => {
    await h.agent(alice, 'tag-web-1', { allow: ['bob'] }, { tags: { env: 'prod', role: 'web' } });
    await h.agent(
      alice,
      'tag-web-2',
      { allow: ['bob'] },
      { tags: { env: 'staging', role: 'web' } },
    );
    await h.agent(alice, 'tag-db-1', { allow: ['bob'] }, { tags: { env: 'prod', role: 'db' } });
    const prod = await runCli(['sessions', '--tag', 'env=prod', '--json'], bobHome);
    assert.equal(prod.code, 0, prod.err);
    const rows = JSON.parse(prod.out) as Array<{ sessionId: string; tags: Record<string, string> }>;
    assert.deepEqual(rows.map((r) => r.sessionId).sort(), ['tag-db-1', 'tag-web-1']);
    assert.deepEqual(rows.find((r) => r.sessionId === 'tag-web-1')?.tags, {
      env: 'prod',
      role: 'web',
    });
    const both = await runCli(['sessions', '--tag', 'env=prod', '--tag', 'role=web'], bobHome);
    assert.match(both.out, /tag-web-1 .* env=prod,role=web /);
    assert.doesNotMatch(both.out, /tag-db-1|tag-web-2/);
    const none = await runCli(['sessions', '--tag', 'env=qa'], bobHome);
    assert.match(none.out, /no sessions you may attach to with those tags/);
    const bad = await runCli(['sessions', '--tag', 'env prod'], bobHome);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--tag env prod: write KEY=VALUE/);
  });

  it('attach: told plainly when the agent stops, and by the host on the way out', async () => {
    const host = await h.agent(alice, 'cli-stop', { allow: ['bob'] });
    const notices: string[] = [];
    host.on('notice', (t: string) => notices.push(t));
    const p = new PtyProcess(['attach', 'cli-stop'], { SWITCHBOARD_HOME: bobHome });
    await p.waitText('$ ');
    await host.stop();
    assert.equal(await p.waitExit(), 0);
    assert.match(p.out, /switchboard attach: the agent on test-host stopped/);
    assert.deepEqual(
      notices.filter((n) => !n.includes('attached read-write')),
      [],
      'the host said something about its own stop',
    );
  });

  it("share: the shell takes the smallest of the host's and the read-write controllers' sizes, and grows back when one leaves", async () => {
    const hostHome = await cliUser(h, 'erin');
    const host = new PtyProcess(
      ['share', '--session', 'cli-size', '--shell', '/bin/bash', '--allow', 'carol'],
      { SWITCHBOARD_HOME: hostHome, PS1: '$ ' },
      100,
      30,
    );
    await host.waitText('sharing this terminal as session cli-size');
    const guest = new PtyProcess(['attach', 'cli-size'], { SWITCHBOARD_HOME: carolHome }, 120, 40);
    try {
      await sizes(host, guest);
    } finally {
      guest.kill();
      host.kill();
    }
  });

  it('attach: one updating status line while reconnecting, and a full-screen program repainted after', async () => {
    const p = new PtyProcess(['attach', 'cli-box'], { SWITCHBOARD_HOME: bobHome });
    await p.waitText('$ ');
    const outage = async (attempts: number) => {
      const from = p.out.length;
      await h.relay.close('restart');
      await p.waitFor((o) => o.includes(`attempt ${attempts}`, from), `attempt ${attempts}`);
      await h.start();
      await p.waitFor((o) => o.includes('reconnected after', from), 'reconnected');
    };
    const screen = async () => {
      const local = new HeadlessTerminal({ cols: 100, rows: 30, allowProposedApi: true });
      await new Promise<void>((resolve) => local.write(p.out, resolve));
      const b = local.buffer.active;
      const lines = Array.from(
        { length: b.length },
        (_, y) => b.getLine(y)?.translateToString(true) ?? '',
      );
      local.dispose();
      return { type: b.type, lines };
    };
    // A shell: the replay goes on under one status line, however many attempts it took.
    await outage(3);
    p.write('echo "after-$((1+1))"\r');
    await p.waitText('after-2');
    const shell = await screen();
    // The status line was rewritten in place, ending as the one line saying it is back.
    const status = shell.lines.filter((l) => /reconnect|connection lost/.test(l));
    assert.equal(status.length, 1, `one status line: ${JSON.stringify(status)}`);
    assert.match(status[0]!, /reconnected after \d+ s/);
    // A full-screen program: the status line drew over it, so it is repainted once back.
    p.write("printf '\\033[?1049h\\033[2J\\033[5;3HDRAWN-%s' AGAIN; exec cat\r");
    await p.waitText('DRAWN-AGAIN');
    const drawnBefore = p.out.split('DRAWN-AGAIN').length;
    await outage(2);
    await p.waitFor((o) => o.split('DRAWN-AGAIN').length > drawnBefore, 'the repaint');
    const full = await screen();
    assert.equal(full.type, 'alternate');
    assert.match(full.lines[4] ?? '', /^ {2}DRAWN-AGAIN/);
    assert.equal(
      full.lines.some((l) => /connection lost|reconnect/.test(l)),
      false,
      "no status line left on the program's screen",
    );
    p.write('\x03');
    await p.waitExit();
  });
});

/** The share's size checks (test above): the guest's size, then the host's once the guest left. */
/** The screen `out` draws on a terminal of this size: each row's text, and which buffer. */
async function screenOf(
  out: string,
  cols = 100,
  rows = 30,
): Promise<{ lines: string[]; alternate: boolean }> {
  const local = new HeadlessTerminal({ cols, rows, allowProposedApi: true });
  await new Promise<void>((resolve) => local.write(out, resolve));
  const b = local.buffer.active;
  const lines = Array.from(
    { length: rows },
    // The screen is the buffer's last `rows` lines (the rest is scrollback).
    (_, y) => b.getLine(Math.max(0, b.length - rows) + y)?.translateToString(true) ?? '',
  );
  const alternate = b.type === 'alternate';
  local.dispose();
  return { lines, alternate };
}

/** Typed into a shell: a full-screen program's screen (rows 1-29 ROW-nn, row 30 LAST) that waits. */
const FULL_SCREEN =
  "printf '\\033[?1049h\\033[H'; for i in $(seq -w 1 29); do printf 'ROW-%s\\r\\n' $i; done; " +
  "printf 'LA''ST'; read -r _\r";

/** A notice drawn over FULL_SCREEN: the program's rows kept, then the notice repainted away. */
async function noticeOverFullScreen(p: PtyProcess, notice: RegExp): Promise<void> {
  await p.waitFor((o) => /ROW-29\r+\nLAST/.test(o), 'the full-screen program');
  const drawnAt = p.out.length;
  await p.waitFor((o) => notice.test(o.slice(drawnAt)), String(notice));
  const shown = await screenOf(p.out);
  assert.equal(shown.alternate, true);
  assert.equal(shown.lines[0], 'ROW-01', 'the notice scrolled the program away');
  assert.equal(shown.lines[28], 'ROW-29');
  assert.match(shown.lines[29]!, notice, 'the notice is on the bottom line');
  // Then the screen is repainted: the bottom line is the program's again.
  await p.waitFor((o) => o.slice(drawnAt).includes('ROW-29'), 'the repaint', 15_000);
  const after = await screenOf(p.out);
  assert.equal(after.lines[0], 'ROW-01');
  assert.equal(after.lines[29], 'LAST');
}

async function sizes(host: PtyProcess, guest: PtyProcess): Promise<void> {
  await guest.waitText('read-write');
  // The size as the shell sees it (mostly asked from the guest, whose resize and keys travel in
  // order on one channel once `attach` has handled the signal).
  const size = async (p: PtyProcess, n: number, expected: string) => {
    // A local resize reaches `attach` as a signal, which may be handled after the keys typed
    // next: the shell waits (at most 5 s) for the expected size, then reports what it has.
    const want = expected.replace('x', ' ');
    p.write(
      `for i in $(seq 100); do [ "$(stty size)" = "${want}" ] && break; sleep 0.05; done; ` +
        `echo "sz${n}=$(stty size | tr ' ' x)"\r`,
    );
    await p.waitFor((o) => new RegExp(`sz${n}=\\d+x\\d+\\r`).test(o), `size ${n}`);
    assert.match(p.out, new RegExp(`sz${n}=${expected}\\r`), `size ${n}`);
  };
  await size(guest, 1, '30x100'); // the host's terminal is the smaller
  guest.proc.resize(90, 25);
  await size(guest, 2, '25x90'); // now the guest's is
  guest.proc.resize(200, 50);
  await size(guest, 3, '30x100');
  guest.proc.resize(90, 25);
  await size(guest, 4, '25x90');
  guest.write('\r~.');
  assert.equal(await guest.waitExit(), 0);
  await host.waitText('carol detached');
  await size(host, 5, '30x100'); // back to the host's own size once the guest left
  host.write('exit\r');
  await host.waitExit();
}

describe('an agent that outlives its login token', () => {
  let clock = Date.now();
  const h = new Harness({ now: () => clock });
  before(() => h.start());
  after(() => {
    for (const p of started) p.kill();
    return h.close();
  });

  it('authenticates with its device key past the token expiry, is listed by `devices`, and stops when revoked', async () => {
    const aliceHome = await cliUser(h, 'alma');
    await cliUser(h, 'boris');
    const agent = new PtyProcess(
      ['agent', '--session', 'long-box', '--allow', 'boris', '--tag', 'env=lab'],
      {
        SWITCHBOARD_HOME: aliceHome,
      },
    );
    await agent.waitText('agent serving session long-box');
    // 31 days on, past every token's 30-day life; the relay restarts, the agent comes back.
    clock += 31 * 86_400_000;
    const back = agent.out.length;
    await h.restart();
    await agent.waitFor((o) => o.slice(back).includes('connected to the relay'), 'the reconnect');
    // boris's login expired too: he logs in again on a new home, and gets a shell.
    const borisAgain = await cliUser(h, 'boris', 'login');
    const tagged = await runCli(['sessions', '--tag', 'env=lab'], borisAgain);
    assert.match(tagged.out, /long-box .* env=lab /);
    const ctl = new PtyProcess(['attach', 'long-box'], { SWITCHBOARD_HOME: borisAgain });
    await ctl.waitText('read-write');
    ctl.write('echo "still-$((6*7))"\r');
    await ctl.waitText('still-42');
    ctl.write('\r~.');
    await ctl.waitExit();
    // And runs a command there (exec is signed by boris's device and checked by the agent).
    const ran = await runCli(['exec', 'long-box', '--', 'echo', 'exec-after-expiry'], borisAgain);
    assert.equal(ran.code, 0, ran.err);
    assert.equal(ran.out, 'exec-after-expiry\n');
    // The owner, logged in again elsewhere, sees the agent's device online, and revokes it.
    const almaAgain = await cliUser(h, 'alma', 'login');
    const listed = await runCli(['devices', '--json'], almaAgain);
    assert.equal(listed.code, 0, listed.err);
    const rows = JSON.parse(listed.out) as Array<{
      fingerprint: string;
      online: boolean;
      current: boolean;
    }>;
    assert.equal(rows.length, 2);
    const agentDevice = rows.find((d) => !d.current)!;
    assert.equal(agentDevice.online, true);
    const revoked = await runCli(['devices', 'revoke', agentDevice.fingerprint], almaAgain);
    assert.equal(revoked.code, 0, revoked.err);
    assert.match(revoked.out, /Revoked SHA256:.*; 1 live connection\(s\) of it closed/);
    assert.equal(await agent.waitExit(), 3);
    assert.match(agent.out, /this device was revoked/);
    const after = await runCli(['exec', 'long-box', '--', 'true'], borisAgain);
    assert.equal(after.code, 5, after.err);
    assert.match(after.err, /SESSION_OFFLINE/);
  });
});

/** Runs the CLI to the end without a terminal. */
function runCli(args: string[], home: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, SWITCHBOARD_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

// The real CLI when the network is not what it expects: logout with the relay down, serve on a busy port.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FILES, Home } from '../src/cli/home.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard', import.meta.url));

function run(args: string[], home: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SWITCHBOARD_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // A command that hangs is killed, so that it fails its test instead of holding the file open.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, err });
    });
  });
}

/** A home logged in to a relay address where nothing listens (port 1 on loopback). */
function offlineHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-offline-'));
  new Home(dir).saveLogin({
    server: '127.0.0.1:1',
    user: 'ivy',
    token: 'not-a-real-token',
    expiresAt: '2030-01-01T00:00:00.000Z',
  });
  return dir;
}

describe('logout with the relay down', () => {
  it('forgets the local login, exits 0 and says the token is still valid on the relay', async () => {
    const home = offlineHome();
    const r = await run(['logout'], home);
    assert.equal(r.code, 0, r.err);
    assert.equal(existsSync(join(home, FILES.login)), false, 'the login is gone');
    assert.match(r.err, /cannot reach the relay/);
    assert.match(r.err, /still accepts its token until 2030-01-01/);
  });

  it('with --all, forgets the local login but fails, as the other logins were not revoked', async () => {
    const home = offlineHome();
    const r = await run(['logout', '--all'], home);
    assert.notEqual(r.code, 0);
    assert.equal(existsSync(join(home, FILES.login)), false);
    assert.match(r.err, /NOT revoked/);
  });
});

describe('serve on a busy port', () => {
  it('is a usage error naming the port, and creates no data directory', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as AddressInfo;
    try {
      const dataDir = join(mkdtempSync(join(tmpdir(), 'sb-busy-')), 'data');
      const r = await run(
        ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir],
        mkdtempSync(join(tmpdir(), 'sb-busy-home-')),
      );
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(`port ${port} on 127.0.0.1 is in use`));
      assert.doesNotMatch(r.err, /INTERNAL/);
      assert.equal(existsSync(dataDir), false, 'no data directory');
    } finally {
      busy.close();
    }
  });
});

describe('agent with the relay unreachable at start', () => {
  it(
    'keeps trying for --start-timeout seconds, then gives up with exit 4 and what to check',
    { timeout: 30_000 },
    async () => {
      const started = Date.now();
      const r = await run(['agent', '--session', 'far-box', '--start-timeout', '2'], offlineHome());
      assert.equal(r.code, 4, r.err);
      assert.ok(Date.now() - started >= 2_000, 'gave up before its timeout');
      assert.match(r.err, /relay unreachable \(.*\); retrying in \d+ s/);
      assert.match(r.err, /gave up after 2 s: .*Check --server and the network/);
    },
  );

  it('refuses a --start-timeout that is not a number of seconds (exit 2)', async () => {
    const r = await run(
      ['agent', '--session', 'far-box', '--start-timeout', 'soon'],
      offlineHome(),
    );
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--start-timeout must be a number from 0 to \d+, not "soon"/);
  });
});

describe('usage errors', () => {
  it('exit 2 and suggest the command or option that was probably meant', async () => {
    const home = mkdtempSync(join(tmpdir(), 'sb-usage-'));
    const command = await run(['attahc', 'box'], home);
    assert.equal(command.code, 2);
    assert.match(command.err, /unknown command "attahc"; did you mean `switchboard attach`\?/);
    const option = await run(['agent', '--sesion', 'box'], home);
    assert.equal(option.code, 2);
    assert.match(option.err, /Unknown option '--sesion'; did you mean --session\?/);
    const far = await run(['agent', '--banana'], home);
    assert.equal(far.code, 2);
    assert.doesNotMatch(far.err, /did you mean/);
  });
});

describe('agent --record', () => {
  it('refuses --record-input without --record, and a directory it cannot write, before connecting (exit 2)', async () => {
    const alone = await run(['agent', '--session', 'rec-box', '--record-input'], offlineHome());
    assert.equal(alone.code, 2);
    assert.match(alone.err, /--record-input needs --record DIR/);
    const file = join(mkdtempSync(join(tmpdir(), 'sb-rec-')), 'a-file');
    writeFileSync(file, '');
    const bad = await run(
      ['agent', '--session', 'rec-box', '--record', join(file, 'sub')],
      offlineHome(),
    );
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--record .*: cannot write there \(ENOTDIR\)/);
  });
});

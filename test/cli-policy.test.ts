// The real CLI's `policy check`: a policy file judged offline, with no relay and no login.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/switchboard', import.meta.url));
const DIR = mkdtempSync(join(tmpdir(), 'sb-policy-cli-'));

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      // A home with no login and no relay: the command must need neither.
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SWITCHBOARD_HOME: join(DIR, 'home') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, err });
    });
  });
}

function file(name: string, text: string): string {
  const path = join(DIR, name);
  writeFileSync(path, text);
  return path;
}

const VALID = file(
  'policy.json',
  JSON.stringify(
    {
      defaults: { maxRunTime: '10m', maxOutput: '64MiB' },
      users: {
        carol: {
          commands: [
            ['echo', '...'],
            ['uname', '-s'],
            ['systemctl', 'restart', '*'],
          ],
          push: ['/srv/app'],
          maxRunTime: '30s',
        },
        erin: { shell: true },
      },
    },
    null,
    2,
  ),
);

describe('switchboard policy check', () => {
  it('prints what each user may run and exits 0 for a valid file', async () => {
    const r = await run(['policy', 'check', VALID]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.match(r.out, /: 2 users; defaults: each command at most 10m and 64\.0 MiB of output/);
    assert.match(
      r.out,
      /carol may run:\n {2}echo \.\.\.\n {2}uname -s\n {2}systemctl restart \*\n/,
    );
    assert.match(r.out, /push into: \/srv\/app\n/);
    assert.match(r.out, /erin may run:\n {2}\(no commands\)\n/);
    assert.match(r.out, /run shell lines \(--shell\): yes/);
  });

  it('with --user, prints only that user, or says the policy has no entry for them', async () => {
    const erin = await run(['policy', 'check', VALID, '--user', 'erin']);
    assert.equal(erin.code, 0, erin.err);
    assert.match(erin.out, /erin may run:/);
    assert.doesNotMatch(erin.out, /carol/);
    const dave = await run(['policy', 'check', VALID, '--user', 'dave']);
    assert.equal(dave.code, 0, dave.err);
    assert.match(dave.out, /has no entry for dave: dave may run nothing/);
  });

  it('with --json, prints the parsed policy with limits in ms and bytes', async () => {
    const r = await run(['policy', 'check', VALID, '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), {
      file: VALID,
      defaults: { maxRunMs: 600_000, maxOutputBytes: 64 * 2 ** 20 },
      users: {
        carol: {
          commands: [
            ['echo', '...'],
            ['uname', '-s'],
            ['systemctl', 'restart', '*'],
          ],
          shell: false,
          script: false,
          push: ['/srv/app'],
          mkdir: false,
          maxRunMs: 30_000,
          maxOutputBytes: 64 * 2 ** 20,
        },
        erin: {
          commands: [],
          shell: true,
          script: false,
          push: [],
          mkdir: false,
          maxRunMs: 600_000,
          maxOutputBytes: 64 * 2 ** 20,
        },
      },
    });
    const one = await run(['policy', 'check', VALID, '--json', '--user', 'carol']);
    assert.deepEqual(Object.keys(JSON.parse(one.out).users), ['carol']);
  });

  it('prints every problem of an invalid file with its line and exits 2', async () => {
    const bad = file(
      'bad.yaml',
      ['users:', '  carol:', '    commands:', '      - [rm, ..., /tmp]', '    shel: true', ''].join(
        '\n',
      ),
    );
    const r = await run(['policy', 'check', bad]);
    assert.equal(r.code, 2, r.err);
    assert.equal(r.out, '');
    assert.match(
      r.err,
      new RegExp(
        `^${bad}:4:14: users\\.carol\\.commands\\[0\\]\\[1\\]: "\\.\\.\\." may only end a pattern\n`,
      ),
    );
    assert.match(r.err, new RegExp(`\n${bad}:5:5: users\\.carol\\.shel: unknown key`));
    assert.match(r.err, /is not a valid policy \(2 problems\)/);
  });

  it('names a missing file and the reason, and exits 2', async () => {
    const missing = join(DIR, 'nope.json');
    const r = await run(['policy', 'check', missing]);
    assert.equal(r.code, 2, r.err);
    assert.match(
      r.err,
      new RegExp(`^${missing}: cannot read the policy: no such file or directory`),
    );
  });

  it('is a usage error without "check FILE"', async () => {
    const r = await run(['policy', 'lint', VALID]);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown action "lint"/);
    const none = await run(['policy', 'check']);
    assert.equal(none.code, 2);
    assert.match(none.err, /which file\?/);
  });
});

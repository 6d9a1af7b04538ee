// The real `switchboard exec` binary against a real relay and 50 agents (in this process, through
// the library): one target like ssh, a fan-out with one host offline and one failing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_SERVICES } from '../src/host/host-session.js';
import { execService } from '../src/host/services/exec.js';
import { CLI, runCli, waitFor } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

const AGENTS = 50;
const name = (i: number) => `fleet-${String(i).padStart(2, '0')}`;

describe('switchboard exec', () => {
  const h = new Harness({ perAccount: { liveSessions: AGENTS + 10, connections: AGENTS + 30 } });
  let home: string;
  let owner: TestUser;
  const exec = (args: string[], stdin?: string) =>
    runCli(['exec', ...args], { home, timeoutMs: 60_000, ...(stdin ? { stdin } : {}) });

  before(async () => {
    await h.start();
    home = mkdtempSync(join(h.dir, 'cli-fleet-'));
    const signup = await h.cliAccount('signup', 'fleet', home);
    assert.equal(signup.code, 0, signup.stderr);
    owner = await h.user('fleet'); // another device of the same account, for the agents
    await Promise.all(
      Array.from({ length: AGENTS }, (_, i) =>
        h.agent(
          owner,
          name(i),
          {},
          {
            tags: { role: i % 5 === 0 ? 'db' : 'web' },
            services: [
              ...DEFAULT_SERVICES,
              execService({
                policy: () => undefined,
                env: () => ({
                  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
                  SWITCHBOARD_SESSION: name(i),
                }),
                cwd: tmpdir(),
              }),
            ],
          },
        ),
      ),
    );
    // One more agent, registered and then gone: listed, offline.
    const gone = await owner.connect();
    await gone.request('session.register', {
      sessionId: name(AGENTS),
      kind: 'agent',
      instance: 'gone-instance-0000000000',
      hostName: 'gone',
      allow: [],
      viewers: [],
      services: ['terminal', 'exec'],
    });
    gone.close();
  });
  after(() => h.close());

  // Fails on fleet-13 only; prints its session name everywhere.
  const SCRIPT = 'echo "ok-$SWITCHBOARD_SESSION"; test "$SWITCHBOARD_SESSION" != fleet-13';

  it('fans out to 51 agents: live prefixed lines, a summary, --out-dir, exit 7 for the offline one', async () => {
    const outDir = join(h.dir, 'out');
    const r = await exec(['fleet-*', '--out-dir', outDir, '--', 'sh', '-c', SCRIPT]);
    assert.equal(r.code, 7, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, AGENTS, r.stdout);
    for (let i = 0; i < AGENTS; i++) assert.ok(lines.includes(`${name(i)} | ok-${name(i)}`));
    assert.match(r.stderr, /49 succeeded, 1 failed, 1 unreachable/);
    assert.match(r.stderr, /fleet-13\s+failed\s+exit 1/);
    assert.match(r.stderr, /fleet-50\s+unreachable\s+unreachable: the agent is offline/);
    const list = (f: string) => readFileSync(join(outDir, f), 'utf8').trim().split('\n').sort();
    assert.equal(list('hosts.succeeded').length, 49);
    assert.deepEqual(list('hosts.failed'), ['fleet-13', 'fleet-50']);
    assert.equal(readFileSync(join(outDir, 'fleet-07.stdout'), 'utf8'), 'ok-fleet-07\n');
  });

  it('--json streams NDJSON: per host start, stdout, exit or unreachable, then the summary', async () => {
    const r = await exec(['--tag', 'role=db', '--json', '--', 'sh', '-c', SCRIPT]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = events.at(-1)!;
    assert.deepEqual(
      [summary['event'], summary['succeeded'], summary['failed'], summary['unreachable']],
      ['summary', 10, 0, 0],
    );
    const exits = events.filter((e) => e['event'] === 'exit');
    assert.equal(exits.length, 10);
    assert.ok(exits.every((e) => e['code'] === 0 && e['state'] === 'succeeded'));
    assert.ok(
      events.some(
        (e) => e['event'] === 'stdout' && e['host'] === 'fleet-05' && e['data'] === 'ok-fleet-05\n',
      ),
    );
  });

  it('fails with 6 when a host fails and none is unreachable', async () => {
    const r = await exec(['fleet-1*', '--', 'sh', '-c', SCRIPT]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /9 succeeded, 1 failed, 0 unreachable/);
  });

  it('one target behaves like ssh host cmd: stdin, raw stdout and stderr apart, the exit code', async () => {
    const r = await exec(
      ['fleet-01', '--', 'sh', '-c', 'cat; echo oops >&2; exit 3'],
      'from stdin\n',
    );
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'from stdin\n');
    assert.equal(r.stderr, 'oops\n');
    const literal = await exec(['fleet-01', '--', 'echo', 'a;b|c', '$HOME', '*']);
    assert.equal(literal.code, 0, literal.stderr);
    assert.equal(literal.stdout, 'a;b|c $HOME *\n');
  });

  it('`exec box -- yes | head -1`: the reader goes, the remote command stops, exit 141', async () => {
    const child = spawn(process.execPath, [CLI, 'exec', 'fleet-03', '--', 'yes'], {
      env: { ...process.env, SWITCHBOARD_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.stdout.once('data', () => child.stdout.destroy());
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 141, stderr);
    assert.equal(stderr, '');
  });

  it('--timeout stops the command and exits 124', async () => {
    const r = await exec(['fleet-02', '--timeout', '300ms', '--', 'sleep', '30']);
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /time limit/);
  });

  it('first contact with agents on several devices of one user: every handshake pins, none is refused', async () => {
    for (let i = 0; i < 6; i++) {
      const device = await h.user('fleet', h.server, h.relay.certificate.fingerprint, `box-${i}`);
      await h.agent(
        device,
        `multi-${i}`,
        {},
        {
          services: [
            ...DEFAULT_SERVICES,
            execService({
              policy: () => undefined,
              env: () => ({ PATH: '/usr/bin:/bin' }),
              cwd: tmpdir(),
            }),
          ],
        },
      );
    }
    // A new home: nothing pinned yet, and all six handshakes run at once.
    const fresh = mkdtempSync(join(h.dir, 'cli-fresh-'));
    const login = await h.cliAccount('login', 'fleet', fresh);
    assert.equal(login.code, 0, login.stderr);
    const r = await runCli(['exec', 'multi-*', '--', 'true'], { home: fresh, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /6 succeeded, 0 failed, 0 unreachable/);
  });

  it('agent --policy: checked at start, reloaded on SIGHUP, an invalid file keeps the old one', async () => {
    const policy = join(h.dir, 'policy.json');
    writeFileSync(policy, '{"users": {"fleetops": {"commands": [["echo", "..."]]}}}');
    const opsHome = mkdtempSync(join(h.dir, 'cli-ops-'));
    const opsSignup = await h.cliAccount('signup', 'fleetops', opsHome);
    assert.equal(opsSignup.code, 0, opsSignup.stderr);
    const newHome = mkdtempSync(join(h.dir, 'cli-new-'));
    const newSignup = await h.cliAccount('signup', 'fleetnew', newHome);
    assert.equal(newSignup.code, 0, newSignup.stderr);
    const asNew = () => runCli(['exec', 'hup-box', '--', 'echo', 'new'], { home: newHome });
    // A broken file: the agent does not start, and says where.
    writeFileSync(join(h.dir, 'broken.json'), '{"users": {"fleetops": {"comands": []}}}');
    const broken = await runCli(
      ['agent', '--session', 'hup-box', '--policy', join(h.dir, 'broken.json')],
      { home },
    );
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /broken\.json:1:\d+: users\.fleetops\.comands: unknown key/);
    const agent = spawn(
      process.execPath,
      [CLI, 'agent', '--session', 'hup-box', '--policy', policy],
      {
        env: { ...process.env, SWITCHBOARD_HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let log = '';
    agent.stderr.setEncoding('utf8').on('data', (t: string) => (log += t));
    h.defer(async () => {
      agent.kill('SIGTERM');
      if (agent.exitCode === null) await once(agent, 'exit');
    });
    await waitFor(() => log.includes('agent serving session hup-box'), 20_000, 'the agent');
    const asOps = (argv: string[]) => runCli(['exec', 'hup-box', '--', ...argv], { home: opsHome });
    assert.equal((await asOps(['echo', 'hi'])).code, 0);
    assert.equal((await asOps(['uname', '-s'])).code, 5);
    const before = await asNew();
    assert.equal(before.code, 2, before.stderr); // the relay does not even list hup-box for them
    // Reloaded: uname -s is granted now, and fleetnew is named (the relay routes them from now on).
    writeFileSync(
      policy,
      '{"users": {"fleetops": {"commands": [["echo", "..."], ["uname", "-s"]]}, "fleetnew": {"commands": [["echo", "..."]]}}}',
    );
    agent.kill('SIGHUP');
    await waitFor(() => log.includes('SIGHUP: reloaded'), 5_000, 'the reload');
    const granted = await asOps(['uname', '-s']);
    assert.equal(granted.code, 0, granted.stderr);
    const after = await asNew();
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.stdout, 'new\n');
    // An invalid file: the policy in force stays, and the agent says why.
    writeFileSync(policy, '{"users": {"fleetops": {"commands": [["...", "x"]]}}}');
    agent.kill('SIGHUP');
    await waitFor(() => log.includes('kept the policy in force'), 5_000, 'the refusal to reload');
    assert.equal((await asOps(['uname', '-s'])).code, 0);
  });

  it('a selection that matches nothing is a usage error that says what exists', async () => {
    const r = await exec(['web-*', '--', 'true']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"web-\*" matches no agent; agents you may reach: fleet-00, fleet-01/);
    const tag = await exec(['--tag', 'role=nothing', '--', 'true']);
    assert.equal(tag.code, 2);
    assert.match(tag.stderr, /no agent you may reach has those tags/);
  });
});

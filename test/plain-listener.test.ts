// The plaintext listener (`serve --plain-port`): the same API without TLS, loopback unless told
// otherwise; plain:// clients refused off loopback without --insecure; device proofs bound to it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect as netConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KnownServers } from '../src/client/known-servers.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { signDeviceAuth } from '../src/crypto/login-proof.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { PROTOCOL_VERSION } from '../src/protocol/limits.js';
import {
  FAST_ARGON2,
  Opened,
  RawWs,
  connectClient,
  httpGet,
  makeTempDir,
  openRawTls,
  refusal,
  runCli,
  savedLogin,
  startServeProcess,
  waitFor,
  type ServeProcess,
} from './helpers.js';

const PASSWORD = 'correct horse battery';

/** A raw TCP socket to 127.0.0.1:PORT, once connected. */
function openRawTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Resolves when `s` closes; rejects after `ms` (a bound on the wait, not a sleep). */
function closedWithin(s: Socket, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The TCP ports process `pid` listens on (Linux: its socket inodes in /proc/net/tcp*). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed while we looked
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXADDR:HEXPORT; st 0A is LISTEN; the inode is the tenth field.
      if (f[3] === '0A' && inodes.has(f[9] ?? '')) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** Stops a serve process and waits for it to exit and for its output to end. */
async function stop(p: ServeProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
  for (const stream of [p.child.stdout, p.child.stderr])
    if (stream && !stream.closed) await once(stream, 'close');
}

describe('the plaintext listener', async () => {
  const opened = new Opened({ auth: { argon2: FAST_ARGON2 } });
  after(() => opened.close());
  const r = await opened.relay({ plainPort: 0 });
  const plainPort = r.relay.plainPort!;
  const plainServer = `plain://127.0.0.1:${plainPort}`;
  const trust = () => ({ knownServers: new KnownServers(join(makeTempDir(), 'known.json')) });
  const plainClient = async () =>
    opened.track(await RelayClient.connect({ server: plainServer, trust: trust() }));

  it('listens on loopback, on a port of its own, and serves the HTTP API there', async () => {
    assert.equal(r.relay.plainHost, '127.0.0.1');
    assert.ok(plainPort > 0 && plainPort !== r.port);
    assert.deepEqual(await httpGet(plainPort, '/healthz'), {
      status: 200,
      body: '{"status":"ok"}',
    });
    const info = JSON.parse((await httpGet(plainPort, '/v1/info')).body) as {
      fingerprint: string;
    };
    assert.equal(info.fingerprint, r.fingerprint);
  });

  const home = makeTempDir('switchboard-home-');
  it('signs up, logs in and runs whoami over plain://, saved apart from the TLS address', async () => {
    const signup = await runCli(
      ['signup', '--user', 'plainamy', '--password-stdin', '--server', plainServer],
      { home, stdin: `${PASSWORD}\n` },
    );
    assert.equal(signup.code, 0, signup.stderr);
    assert.match(signup.stdout, new RegExp(`Logged in as plainamy on ${plainServer}\n`));
    assert.equal(savedLogin(home).server, plainServer);
    assert.ok(!existsSync(join(home, 'known_servers.json')), 'no certificate, so nothing pinned');
    const whoami = await runCli(['whoami'], { home });
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.match(whoami.stdout, new RegExp(`^plainamy on ${plainServer}\n`));
    // The relay's TLS address is not the login's: the two are never confused.
    const tls = await runCli(['whoami', '--server', r.server, '--fingerprint', r.fingerprint], {
      home,
    });
    assert.equal(tls.code, 3, tls.stderr);
    assert.match(tls.stderr, /you are logged in to plain:\/\/127\.0\.0\.1:\d+, not 127\.0\.0\.1:/);
  });

  it('says that --fingerprint does not apply to plain://', async () => {
    const r2 = await runCli(['whoami', '--fingerprint', r.fingerprint], { home });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(
      r2.stderr,
      /--fingerprint does not apply to plain:\/\/127\.0\.0\.1:\d+: without TLS/,
    );
  });

  it('says which listener a hello came in on, and states the fingerprint only over plaintext', async () => {
    const c = await plainClient();
    assert.equal(c.transport, 'plain');
    assert.equal(c.relayFingerprint, r.fingerprint);
    const ws = await RawWs.open(r.port);
    after(() => ws.close());
    const hello = await ws.exchange({
      type: 'hello',
      id: 1,
      version: PROTOCOL_VERSION,
      client: 'x',
    });
    const result = hello['result'] as Record<string, unknown>;
    assert.equal(result['transport'], 'tls');
    assert.ok(!('fingerprint' in result), 'over TLS the client binds the certificate it checked');
  });

  it('takes device proofs bound to plaintext over plaintext, and refuses them across transports', async () => {
    const key = generateDeviceKey();
    const publicKey = key.publicKey.toString('base64');
    const first = await plainClient();
    await first.request('auth.signup', { user: 'plainbo', password: PASSWORD });
    await first.request('auth.login', {
      user: 'plainbo',
      password: PASSWORD,
      device: { publicKey, name: 'box' },
    });
    const ok = await plainClient();
    assert.equal((await ok.authenticateDevice('plainbo', key)).user, 'plainbo');
    // Bound as a TLS proof (the bare fingerprint): refused on a plaintext connection.
    const plain = await plainClient();
    const asTls = signDeviceAuth(key, plain.challenge!, 'plainbo', r.fingerprint);
    let err = await refusal(
      plain.request('auth.device', { user: 'plainbo', publicKey, proof: asTls }),
    );
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
    // Bound as a plaintext proof: refused on a TLS connection.
    const tls = opened.track(await connectClient(r.server, r.fingerprint, makeTempDir()));
    const asPlain = signDeviceAuth(key, tls.challenge!, 'plainbo', `plain:${r.fingerprint}`);
    err = await refusal(tls.request('auth.device', { user: 'plainbo', publicKey, proof: asPlain }));
    assert.equal(err.code, ErrorCode.BAD_CREDENTIALS);
  });

  it(
    'refuses a non-loopback plain:// address before contacting it; insecure lets it try',
    {
      timeout: 30_000,
    },
    async () => {
      const err = await refusal(
        RelayClient.connect({ server: 'plain://192.0.2.1:9', trust: trust() }),
      );
      assert.equal(err.code, ErrorCode.TRUST_REQUIRED);
      assert.match(err.message, /not loopback.*pass --insecure/);
      // With insecure it connects (nothing listens there, or nothing answers in 10 s).
      const tried = await refusal(
        RelayClient.connect({ server: 'plain://192.0.2.1:9', trust: trust(), insecure: true }),
      );
      assert.equal(tried.code, ErrorCode.CONNECT_FAILED);
    },
  );

  it(
    'the CLI refuses plain://192.0.2.1:9 without --insecure with the fix and exit 4',
    {
      timeout: 60_000,
    },
    async () => {
      const home = makeTempDir('switchboard-home-');
      const args = [
        'login',
        '--user',
        'nobody',
        '--password-stdin',
        '--server',
        'plain://192.0.2.1:9',
      ];
      const refused = await runCli(args, { home, stdin: `${PASSWORD}\n` });
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(
        refused.stderr,
        /plain:\/\/192\.0\.2\.1:9 is not loopback: plaintext exposes your password and tokens; use HOST:PORT \(TLS\), or pass --insecure if a TLS-terminating proxy or a trusted network protects it \[TRUST_REQUIRED\]/,
      );
      const tried = await runCli([...args, '--insecure'], {
        home,
        stdin: `${PASSWORD}\n`,
        timeoutMs: 25_000,
      });
      assert.equal(tried.code, 4, tried.stderr);
      assert.match(tried.stderr, /\[CONNECT_FAILED\]/);
      assert.doesNotMatch(tried.stderr, /not loopback/);
    },
  );

  it('cuts a plaintext connection that sends no request within the handshake timeout', async () => {
    const quick = await opened.relay({ plainPort: 0, handshakeTimeoutMs: 300 });
    const idle = await openRawTcp(quick.relay.plainPort!);
    await closedWithin(idle, 5_000, 'a silent plaintext connection');
  });

  it('counts both listeners against one per-address cap', async () => {
    const capped = await opened.relay({ plainPort: 0, maxConnectionsPerAddress: 2 });
    const tls = await openRawTls(capped.port);
    after(() => tls.destroy());
    const held = await openRawTcp(capped.relay.plainPort!);
    after(() => held.destroy());
    await waitFor(() => capped.relay.stats().sockets === 2, 5_000, 'two sockets accepted');
    const third = await openRawTcp(capped.relay.plainPort!);
    await closedWithin(third, 5_000, 'a third connection from a full address');
    assert.equal(capped.relay.stats().sockets, 2);
  });

  it('closes the plaintext listener with the relay', async () => {
    const short = await opened.relay({ plainPort: 0 });
    const port = short.relay.plainPort!;
    await short.relay.close();
    const err = await openRawTcp(port).then(
      (s) => {
        s.destroy();
        return undefined;
      },
      (e: NodeJS.ErrnoException) => e.code,
    );
    assert.equal(err, 'ECONNREFUSED');
  });

  it('has no plaintext listener unless asked', async () => {
    const tlsOnly = await opened.relay();
    assert.equal(tlsOnly.relay.plainPort, undefined);
    assert.equal(tlsOnly.relay.plainHost, undefined);
  });
});

describe('switchboard serve --plain-port', () => {
  it(
    'on 0.0.0.0: prints the plaintext address and a loud warning, and serves it',
    {
      timeout: 60_000,
    },
    async () => {
      const p = await startServeProcess(makeTempDir(), [
        '--plain-port',
        '0',
        '--plain-host',
        '0.0.0.0',
      ]);
      after(() => stop(p));
      await waitFor(
        () => /WARNING: the plaintext listener/.test(p.output().stderr),
        10_000,
        'the warning',
      );
      const { stdout, stderr } = p.output();
      const port = Number(/^plaintext listener on 0\.0\.0\.0:(\d+) \(no TLS\)$/m.exec(stdout)?.[1]);
      assert.ok(port > 0, stdout);
      assert.match(
        stdout,
        /^Switchboard relay listening on 127\.0\.0\.1:\d+ /,
        'the TLS line as before',
      );
      assert.match(stderr, /Passwords, login tokens and metadata .* cross it in\nclear/);
      assert.match(stderr, /only behind a\nTLS-terminating proxy or on a network you trust/);
      assert.equal((await httpGet(port, '/healthz')).status, 200);
      if (existsSync('/proc/net/tcp'))
        assert.deepEqual(
          listeningPorts(p.child.pid!),
          [p.port, port].sort((a, b) => a - b),
        );
    },
  );

  it(
    'on loopback by default, without a warning; without --plain-port, no plaintext port',
    {
      timeout: 60_000,
    },
    async () => {
      const loop = await startServeProcess(makeTempDir(), ['--plain-port', '0']);
      after(() => stop(loop));
      await waitFor(() => /plaintext listener on/.test(loop.output().stdout), 10_000, 'the line');
      await stop(loop); // all its output is in
      assert.match(loop.output().stdout, /^plaintext listener on 127\.0\.0\.1:\d+ \(no TLS\)$/m);
      assert.doesNotMatch(loop.output().stderr, /WARNING|reachable from other machines/);
      const plainless = await startServeProcess(makeTempDir());
      after(() => stop(plainless));
      if (existsSync('/proc/net/tcp'))
        assert.deepEqual(listeningPorts(plainless.child.pid!), [plainless.port]);
      await stop(plainless);
      assert.doesNotMatch(plainless.output().stdout, /plaintext/);
    },
  );

  it('refuses --plain-host without --plain-port (exit 2)', async () => {
    const args = ['serve', '--port', '0', '--plain-host', '0.0.0.0', '--data-dir', makeTempDir()];
    const r = await runCli(args, { home: makeTempDir(), timeoutMs: 10_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--plain-host needs --plain-port/);
  });

  it('refuses --plain-port equal to --port (exit 2), before listening on either', async () => {
    // A port free a moment ago: serve probes --port before this check, so it must not be busy.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = String((probe.address() as AddressInfo).port);
    await new Promise((resolve) => probe.close(resolve));
    const dataDir = makeTempDir();
    const args = ['serve', '--port', port, '--plain-port', port, '--data-dir', dataDir];
    const r = await runCli(args, { home: makeTempDir(), timeoutMs: 10_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--plain-port must differ from --port/);
    assert.doesNotMatch(r.stdout, /listening on/);
  });
});

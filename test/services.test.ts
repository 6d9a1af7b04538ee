// Services over channels: ping as the second service, the relay's service routing, fan-out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openService } from '../src/client/open-channel.js';
import type { RelayClient } from '../src/client/relay-client.js';
import { Pinger, PingType } from '../src/client/services/ping.js';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import { targetKey, type ChannelTarget } from '../src/protocol/messages.js';
import { keyFingerprint } from '../src/crypto/device-key.js';
import { ServiceListener } from '../src/host/service-listener.js';
import { pingService } from '../src/host/services/ping.js';
import type { HostService } from '../src/host/services/service.js';
import { FANOUT_MAX_TARGETS } from '../src/protocol/limits.js';
import { terminalService } from '../src/host/services/terminal.js';
import { Harness, type TestUser } from './terminal-harness.js';
import { proxiedHarness } from './tamper-proxy.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI, codeOf, makeUser, removeTempDirs, runCli } from './helpers.js';

function openPing(h: Harness, user: TestUser, to: string | ChannelTarget) {
  return user.connect().then((client) => {
    h.defer(() => client.close());
    return openService(client, {
      service: 'ping',
      target: typeof to === 'string' ? { kind: 'session', sessionId: to } : to,
      user: user.name,
      key: user.key,
      server: h.server,
      knownPeers: user.knownPeers,
    });
  });
}

describe('ping: a second service, end to end', () => {
  const h = new Harness();
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;

  before(async () => {
    await h.start();
    alice = await h.user('alice');
    bob = await h.user('bob');
    carol = await h.user('carol');
    await h.agent(alice, 'ping-agent', { allow: ['bob', 'dave'] });
    await h.share(alice, 'ping-share', { viewers: ['bob'] });
    await h.agent(
      alice,
      'terminal-only',
      { allow: ['bob', 'dave'] },
      { services: [terminalService] },
    );
  });
  after(async () => {
    await h.close();
    removeTempDirs();
  });

  it('answers every ping with its own bytes, through the sealed channel', async () => {
    const { channel, opened } = await openPing(h, bob, 'ping-agent');
    assert.equal(opened.service, 'ping');
    assert.equal(opened.host.user, 'alice');
    const pinger = new Pinger(channel);
    for (const size of [0, 56, 4096, 60_000]) {
      const reply = await pinger.ping(size, 5_000);
      assert.ok(reply.rttMs !== undefined && reply.rttMs >= 0, `size ${size}: ${reply.rttMs}`);
      assert.equal(reply.bytes, 5 + size);
    }
    await pinger.close();
  });

  it('lets a viewer ping a share, and refuses someone the host would have to ask', async () => {
    const { channel } = await openPing(h, bob, 'ping-share');
    const reply = await new Pinger(channel).ping(8, 5_000);
    assert.ok(reply.rttMs !== undefined);
    // carol may knock on a share (the relay routes her), but ping is not worth asking about.
    const { channel: hers } = await openPing(h, carol, 'ping-share');
    const pinger = new Pinger(hers);
    const none = await pinger.ping(8, 5_000);
    assert.equal(none.rttMs, undefined);
    assert.equal(pinger.closed?.code, ErrorCode.NOT_ALLOWED);
  });

  it('refuses a service the host does not list: SERVICE_UNAVAILABLE from the relay', async () => {
    assert.equal(await codeOf(openPing(h, bob, 'terminal-only')), ErrorCode.SERVICE_UNAVAILABLE);
    // The terminal on the same host still opens.
    const ctl = h.controller(bob, 'terminal-only');
    await ctl.start();
  });

  it('closes a channel that sends something that is not a ping', async () => {
    const { channel } = await openPing(h, bob, 'ping-agent');
    const closed = new Promise<string>((resolve) =>
      channel.setHandlers({
        onMessage: () => resolve('answered'),
        onClose: (code) => resolve(code),
      }),
    );
    channel.send(new Uint8Array([PingType.PONG, 0, 0, 0, 1]));
    assert.equal(await closed, ErrorCode.INVALID_MESSAGE);
  });

  it('`switchboard ping -c 3 --json` prints the round trips and exits 0', async () => {
    // dave signs up and logs in through the CLI; alice's agent pins his key on first contact.
    const home = await makeUser(
      { server: h.server, fingerprint: h.relay.certificate.fingerprint },
      'dave',
      'dave-long-password',
    );
    const env = { home };
    const res = await runCli(['ping', 'ping-agent', '-c', '3', '-i', '0.05', '--json'], env);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as {
      transmitted: number;
      received: number;
      lossPercent: number;
      rttMs: { min: number; avg: number; max: number; mdev: number };
      replies: Array<{ seq: number; rttMs: number }>;
    };
    assert.equal(out.transmitted, 3);
    assert.equal(out.received, 3);
    assert.equal(out.lossPercent, 0);
    assert.deepEqual(
      out.replies.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.ok(out.rttMs.min <= out.rttMs.avg && out.rttMs.avg <= out.rttMs.max);
    const text = await runCli(['ping', 'ping-agent', '-c', '2', '-i', '0.05'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^PING ping-agent \(alice on test-host, SHA256:/);
    assert.match(text.stdout, /bytes from ping-agent: seq=2 time=[\d.]+ ms/);
    assert.match(text.stdout, /2 pings transmitted, 2 received, 0% loss/);
    assert.match(text.stdout, /rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/);
    // A session that does not serve ping: the relay's refusal, exit 5 (refused).
    const refused = await runCli(['ping', 'terminal-only', '-c', '1'], env);
    assert.equal(refused.code, 5);
    assert.match(refused.stderr, /does not serve "ping".*\[SERVICE_UNAVAILABLE\]/);
    const usage = await runCli(['ping', 'ping-agent', '-c', '0'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--count must be a whole number from 1 to 1000000, not "0"/);
    // The share's host answers only its owner, --allow and --viewers: a refusal, not a loss.
    const share = await runCli(['ping', 'ping-share', '-c', '3'], env);
    assert.equal(share.code, 5, share.stdout + share.stderr);
    assert.equal(share.stdout, '');
    assert.match(share.stderr, /ping is for the owner.*\[NOT_ALLOWED\]/);
    // `ping … | head -1`: the reader leaves; ping stops quietly (no EPIPE trace), like ping.
    const child = spawn(process.execPath, [CLI, 'ping', 'ping-agent', '-i', '0.01'], {
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
});

describe('a relay that tampers', () => {
  const { h, proxy } = proxiedHarness();

  it('is caught by the handshake: the service is in the prologue', async () => {
    const annViaProxy = await h.user('ann', proxy().address, proxy().fingerprint);
    const bob = await h.user('bob');
    const notices: string[] = [];
    const host = await h.agent(annViaProxy, 'swapped', { allow: ['bob'] });
    host.on('notice', (t: string) => notices.push(t));
    // Control: honest, the ping gets through.
    const honest = await openPing(h, bob, 'swapped');
    assert.ok((await new Pinger(honest.channel).ping(8, 5_000)).rttMs !== undefined);
    proxy().tamper = {
      toClientJson: (m) => {
        if (m['type'] === 'channel.open' && m['service'] === 'ping') m['service'] = 'terminal';
        return m;
      },
    };
    assert.equal(await codeOf(openPing(h, bob, 'swapped')), ErrorCode.HANDSHAKE_FAILED);
  });

  it('is refused by the host before any service runs', async () => {
    const beaViaProxy = await h.user('bea', proxy().address, proxy().fingerprint);
    const mallory = await h.user('mallory');
    // The relay is told mallory is allowed; the host's own policy does not name her.
    proxy().tamper = {
      toRelayJson: (m) => (m['type'] === 'session.register' ? { ...m, allow: ['mallory'] } : m),
    };
    let served = 0;
    const careless: HostService = {
      name: 'careless',
      serve: ({ channel }) => {
        served += 1;
        void channel.close('served', ErrorCode.CHANNEL_CLOSED);
      },
    };
    const host = await h.agent(beaViaProxy, 'strict-host', {}, { services: [careless] });
    const notices: string[] = [];
    host.on('notice', (t: string) => notices.push(t));
    const client = await mallory.connect();
    h.defer(() => client.close());
    const code = await codeOf(
      openService(client, {
        service: 'careless',
        target: { kind: 'session', sessionId: 'strict-host' },
        user: 'mallory',
        key: mallory.key,
        server: h.server,
        knownPeers: mallory.knownPeers,
      }).then(
        ({ channel }) =>
          new Promise((resolve, reject) =>
            channel.setHandlers({
              onMessage: () => resolve('message'),
              onClose: (c, r) => reject(new SwitchboardError(c as ErrorCode, r)),
            }),
          ),
      ),
    );
    assert.equal(code, ErrorCode.NOT_ALLOWED);
    assert.equal(served, 0);
    assert.ok(
      notices.some((n) => /refused mallory/.test(n)),
      notices.join('\n'),
    );
  });

  it('sends an event type the client does not know: dropped and counted, not an error', async () => {
    const alice = await h.user('cyd');
    const viaProxy = await h.user('cyd', proxy().address, proxy().fingerprint);
    const host = await viaProxy.connect();
    h.defer(() => host.close());
    await host.request('session.register', {
      sessionId: 'future-host',
      kind: 'agent',
      instance: 'future-host-instance-1',
      hostName: 'test-host',
      allow: [],
      viewers: [],
    });
    const errors: unknown[] = [];
    host.on('protocolError', (e) => errors.push(e));
    proxy().tamper = {
      toClientJson: (m) => (m['type'] === 'channel.open' ? { ...m, type: 'channel.future' } : m),
    };
    const opener = await alice.connect();
    h.defer(() => opener.close());
    await opener.request('channel.open', {
      service: 'terminal',
      target: { kind: 'session', sessionId: 'future-host' },
    });
    // The host's next request is answered after the relay sent the event: it has been read.
    await host.request('whoami', {});
    assert.equal(host.ignoredEvents, 1);
    assert.deepEqual(errors, []);
  });

  it('still reaches the opener: the close that came first is kept for the channel', async () => {
    const alice = await h.user('dot');
    await h.agent(alice, 'gone-at-once');
    const viaProxy = await h.user('dot', proxy().address, proxy().fingerprint);
    // The relay's channel.closed overtakes the reply that names the channel (as it can when
    // both arrive in one read and the opener binds the channel only after the reply).
    proxy().tamper = {
      toClientJson: (m) => {
        const result = m['result'] as { channel?: number; service?: string } | undefined;
        if (m['type'] !== 'reply' || result?.service !== 'ping') return m;
        const closed = {
          type: 'channel.closed',
          channel: result.channel,
          code: 'PEER_GONE',
          reason: 'gone',
        };
        return [closed, m];
      },
    };
    const started = Date.now();
    assert.equal(await codeOf(openPing(h, viaProxy, 'gone-at-once')), ErrorCode.PEER_GONE);
    // Not the handshake's 30 s timeout.
    assert.ok(Date.now() - started < 10_000);
  });
});

describe('channels aimed at a user or one of their devices', () => {
  const h = new Harness();
  let laptop: TestUser;
  let phone: TestUser;
  let bob: TestUser;
  let listener: ServiceListener;
  let listening: RelayClient;
  const fp = (u: TestUser) => keyFingerprint(u.key.publicKey);

  before(async () => {
    await h.start();
    // Two devices of alice's: each login from a new key registers a device.
    laptop = await h.user('alice');
    phone = await h.user('alice');
    bob = await h.user('bob');
    const client = await laptop.connect();
    listening = client;
    h.defer(() => client.close());
    listener = new ServiceListener(client, {
      user: 'alice',
      key: laptop.key,
      fingerprint: fp(laptop),
      server: h.server,
      knownPeers: laptop.knownPeers,
      services: [pingService],
    });
    await listener.start();
  });
  after(() => h.close());

  it('reaches a device by its fingerprint, and a user by name, end to end', async () => {
    const device = await openPing(h, phone, {
      kind: 'device',
      user: 'alice',
      fingerprint: fp(laptop),
    });
    assert.equal(device.opened.host.fingerprint, fp(laptop));
    assert.ok((await new Pinger(device.channel).ping(32, 5_000)).rttMs !== undefined);
    const user = await openPing(h, phone, { kind: 'user', user: 'alice' });
    assert.equal(user.opened.host.fingerprint, fp(laptop));
    assert.ok((await new Pinger(user.channel).ping(32, 5_000)).rttMs !== undefined);
  });

  it("lets the service decide about other users: ping answers only the account's own devices", async () => {
    const { channel } = await openPing(h, bob, { kind: 'user', user: 'alice' });
    const pinger = new Pinger(channel);
    assert.equal((await pinger.ping(8, 5_000)).rttMs, undefined);
    assert.equal(pinger.closed?.code, ErrorCode.NOT_ALLOWED);
  });

  it('says why a user or device cannot be reached', async () => {
    assert.equal(
      await codeOf(openPing(h, phone, { kind: 'user', user: 'nobody' })),
      ErrorCode.UNKNOWN_USER,
    );
    assert.equal(
      await codeOf(openPing(h, phone, { kind: 'device', user: 'bob', fingerprint: fp(laptop) })),
      ErrorCode.UNKNOWN_USER,
    );
    // bob is online but offers nothing; alice's phone offers nothing either.
    assert.equal(
      await codeOf(openPing(h, alice(), { kind: 'user', user: 'bob' })),
      ErrorCode.SERVICE_UNAVAILABLE,
    );
    assert.equal(
      await codeOf(openPing(h, bob, { kind: 'device', user: 'alice', fingerprint: fp(phone) })),
      ErrorCode.SERVICE_UNAVAILABLE,
    );
  });

  it('refuses a channel from a connection to itself', async () => {
    const open = listening.request('channel.open', {
      service: 'ping',
      target: { kind: 'user', user: 'alice' },
    });
    assert.equal(await codeOf(open), ErrorCode.NOT_ALLOWED);
  });

  it('stops reaching a device once it withdraws its offer', async () => {
    await listener.stop();
    assert.equal(
      await codeOf(openPing(h, phone, { kind: 'user', user: 'alice' })),
      ErrorCode.SERVICE_UNAVAILABLE,
    );
  });

  function alice(): TestUser {
    return phone;
  }
});

describe('channel.fanout: one request, many channels', () => {
  // A low channel cap, so a fan-out can run past it with a handful of sessions.
  const h = new Harness({ maxChannelsPerConnection: 3 });
  let alice: TestUser;
  let bob: TestUser;
  const target = (sessionId: string) => ({ kind: 'session' as const, sessionId });

  before(async () => {
    await h.start();
    alice = await h.user('alice');
    bob = await h.user('bob');
    for (const id of ['fleet-1', 'fleet-2']) await h.agent(alice, id, { allow: ['bob'] });
    await h.agent(alice, 'fleet-private');
    await h.agent(alice, 'fleet-noping', { allow: ['bob'] }, { services: [terminalService] });
    await h.share(alice, 'fleet-share');
    for (const id of ['cap-1', 'cap-2', 'cap-3', 'cap-4']) await h.agent(alice, id);
  });
  after(() => h.close());

  it('answers each target apart: opened, or the reason it could not open', async () => {
    const client = await bob.connect();
    h.defer(() => client.close());
    const { results } = await client.request('channel.fanout', {
      service: 'ping',
      targets: ['fleet-1', 'fleet-private', 'no-such', 'fleet-noping', 'fleet-2'].map(target),
    });
    const summary = results.map((r) => ('error' in r ? r.error.code : targetKey(r.target)));
    assert.deepEqual(summary, [
      'fleet-1',
      ErrorCode.NOT_ALLOWED,
      ErrorCode.SESSION_NOT_FOUND,
      ErrorCode.SERVICE_UNAVAILABLE,
      'fleet-2',
    ]);
  });

  it('reaches only sessions the caller may enter without asking, each once', async () => {
    const client = await bob.connect();
    h.defer(() => client.close());
    // bob may knock on alice's share with channel.open (the host asks), not in a fan-out.
    const { results } = await client.request('channel.fanout', {
      service: 'terminal',
      targets: [
        target('fleet-share'),
        target('fleet-1'),
        target('fleet-1'),
        { kind: 'user', user: 'alice' },
      ],
    });
    const summary = results.map((r) => ('error' in r ? r.error.code : targetKey(r.target)));
    assert.deepEqual(summary, [
      ErrorCode.NOT_ALLOWED,
      'fleet-1',
      ErrorCode.INVALID_MESSAGE,
      ErrorCode.NOT_ALLOWED,
    ]);
  });

  it('opens channels up to the connection cap; the rest get TOO_MANY_CHANNELS', async () => {
    const client = await alice.connect();
    h.defer(() => client.close());
    const { results } = await client.request('channel.fanout', {
      service: 'ping',
      targets: ['cap-1', 'cap-2', 'cap-3', 'cap-4'].map(target),
    });
    const summary = results.map((r) => ('error' in r ? r.error.code : targetKey(r.target)));
    assert.deepEqual(summary, ['cap-1', 'cap-2', 'cap-3', ErrorCode.TOO_MANY_CHANNELS]);
  });
});

describe('channel.fanout on a relay whose clock stands still', () => {
  // The token bucket never refills, so the count below does not depend on how fast this runs.
  const frozen = Date.now();
  const h = new Harness({ now: () => frozen });
  let alice: TestUser;

  before(async () => {
    await h.start();
    alice = await h.user('alice');
  });
  after(() => h.close());

  it('costs control-rate tokens by its size: a burst of large fan-outs is RATE_LIMITED', async () => {
    const client = await alice.connect();
    h.defer(() => client.close());
    // Targets that never open cost the same: the price is paid before any is tried.
    const targets = Array.from({ length: FANOUT_MAX_TARGETS }, () => ({
      kind: 'session' as const,
      sessionId: 'no-such',
    }));
    const codes: string[] = [];
    for (let i = 0; i < 8; i++)
      codes.push(await codeOf(client.request('channel.fanout', { service: 'ping', targets })));
    // 200 tokens of burst, 33 per request: six pass, the seventh does not (no refill here).
    assert.deepEqual(codes.slice(0, 6), ['OK', 'OK', 'OK', 'OK', 'OK', 'OK']);
    assert.ok(codes.slice(6).includes(ErrorCode.RATE_LIMITED), codes.join(' '));
  });
});

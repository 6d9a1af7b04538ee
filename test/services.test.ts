// Services over channels: ping as the second service, the relay's service routing, fan-out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openService } from '../src/client/open-channel.js';
import { Pinger, PingType } from '../src/client/services/ping.js';
import { ErrorCode, SwitchboardError } from '../src/protocol/errors.js';
import { targetKey, type ChannelTarget } from '../src/protocol/messages.js';
import { keyFingerprint } from '../src/crypto/device-key.js';
import { ServiceListener } from '../src/host/service-listener.js';
import { pingService } from '../src/host/services/ping.js';
import { FANOUT_MAX_TARGETS, MAX_CHANNELS_PER_CONNECTION } from '../src/protocol/limits.js';
import { terminalService } from '../src/host/services/terminal.js';
import { Harness, type TestUser } from './terminal-harness.js';
import { TamperProxy } from './tamper-proxy.js';
import { makeUser, removeTempDirs, runCli } from './helpers.js';

/** Settles to the error code, or 'OK'. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (err instanceof SwitchboardError) return err.code;
    throw err;
  }
}

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
    assert.match(usage.stderr, /--count must be a number from 1/);
  });
});

describe('a relay that swaps the service', () => {
  const h = new Harness();
  let proxy: TamperProxy;

  before(async () => {
    await h.start();
    proxy = await new TamperProxy(h.port).start();
  });
  after(async () => {
    await proxy.close();
    await h.close();
  });

  it('is caught by the handshake: the service is in the prologue', async () => {
    const aliceViaProxy = await h.user('alice', proxy.address, proxy.fingerprint);
    const bob = await h.user('bob');
    const notices: string[] = [];
    const host = await h.agent(aliceViaProxy, 'swapped', { allow: ['bob'] });
    host.on('notice', (t: string) => notices.push(t));
    // Control: honest, the ping gets through.
    const honest = await openPing(h, bob, 'swapped');
    assert.ok((await new Pinger(honest.channel).ping(8, 5_000)).rttMs !== undefined);
    proxy.tamper = {
      toClientJson: (m) => {
        if (m['type'] === 'channel.open' && m['service'] === 'ping') m['service'] = 'terminal';
        return m;
      },
    };
    assert.equal(await codeOf(openPing(h, bob, 'swapped')), ErrorCode.HANDSHAKE_FAILED);
  });
});

describe('a relay newer than its client', () => {
  const h = new Harness();
  let proxy: TamperProxy;

  before(async () => {
    await h.start();
    proxy = await new TamperProxy(h.port).start();
  });
  after(async () => {
    await proxy.close();
    await h.close();
  });

  it('sends an event type the client does not know: dropped and counted, not an error', async () => {
    const alice = await h.user('alice');
    const viaProxy = await h.user('alice', proxy.address, proxy.fingerprint);
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
    proxy.tamper = {
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
});

describe('channels aimed at a user or one of their devices', () => {
  const h = new Harness();
  let laptop: TestUser;
  let phone: TestUser;
  let bob: TestUser;
  let listener: ServiceListener;
  const fp = (u: TestUser) => keyFingerprint(u.key.publicKey);

  before(async () => {
    await h.start();
    // Two devices of alice's: each login from a new key registers a device.
    laptop = await h.user('alice');
    phone = await h.user('alice');
    bob = await h.user('bob');
    const client = await laptop.connect();
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
  const h = new Harness();
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    await h.start();
    alice = await h.user('alice');
    bob = await h.user('bob');
    for (const id of ['fleet-1', 'fleet-2']) await h.agent(alice, id, { allow: ['bob'] });
    await h.agent(alice, 'fleet-private');
    await h.agent(alice, 'fleet-noping', { allow: ['bob'] }, { services: [terminalService] });
    await h.agent(alice, 'fleet-cap');
  });
  after(() => h.close());

  it('answers each target apart: opened, or the reason it could not open', async () => {
    const client = await bob.connect();
    h.defer(() => client.close());
    const target = (sessionId: string) => ({ kind: 'session' as const, sessionId });
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

  it(`holds up to ${MAX_CHANNELS_PER_CONNECTION} channels; the rest get TOO_MANY_CHANNELS`, async () => {
    const client = await alice.connect();
    h.defer(() => client.close());
    const targets = Array.from({ length: FANOUT_MAX_TARGETS }, () => ({
      kind: 'session' as const,
      sessionId: 'fleet-cap',
    }));
    let opened = 0;
    const refused: string[] = [];
    for (let i = 0; i * FANOUT_MAX_TARGETS <= MAX_CHANNELS_PER_CONNECTION; i++) {
      const { results } = await client.request('channel.fanout', { service: 'ping', targets });
      for (const r of results) {
        if ('error' in r) refused.push(r.error.code);
        else opened += 1;
      }
    }
    assert.equal(opened, MAX_CHANNELS_PER_CONNECTION);
    assert.ok(refused.length > 0 && refused.every((c) => c === ErrorCode.TOO_MANY_CHANNELS));
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

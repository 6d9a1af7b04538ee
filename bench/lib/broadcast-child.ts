// One process of the broadcast fleet (forked by broadcast-fleet.ts): signs its users up and logs
// each in on its own connection; on request reconnects them all with their tokens (to a restarted
// relay); records when each got a `broadcast` event.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KnownServers } from '../../src/client/known-servers.js';
import type { RelayClient } from '../../src/client/relay-client.js';
import { generateDeviceKey } from '../../src/crypto/device-key.js';
import { openBroadcast } from '../../src/protocol/broadcast.js';
import type { BroadcastView, RelayEvent } from '../../src/protocol/messages.js';
import type { FleetChildConfig, FleetReport, FleetRequest, SetupTimes } from './broadcast-fleet.js';
import { connectTo, passwordOf, type RelayAddress } from './messaging-users.js';

/** Time the old connections have to close before the reconnect goes ahead anyway. */
const CLOSE_WAIT_MS = 10_000; // ms

/** Resolves once every client has closed, or after `ms` (this process stays free of node-pty). */
function allClosed(clients: readonly RelayClient[], ms: number): Promise<void> {
  const closes = clients
    .filter((c) => !c.closed)
    .map((c) => new Promise<void>((r) => c.once('close', () => r())));
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    Promise.all(closes).then(() => undefined),
    new Promise<void>((r) => (timer = setTimeout(r, ms))),
  ]).finally(() => clearTimeout(timer));
}

interface Member {
  name: string;
  token: string;
  client: RelayClient;
  /** Epoch ms at which the broadcast arrived. */
  at?: number;
  event?: BroadcastView;
}

const config = JSON.parse(process.argv[2] ?? '{}') as FleetChildConfig;
const knownServers = new KnownServers(join(config.dir, `known_servers-${config.first}.json`));
let members: Member[] = [];
const epochNow = (): number => performance.timeOrigin + performance.now();
const send = (r: FleetReport): void => void process.send!(r);
/** Members online without the broadcast yet. */
let waiting = 0;
/** Set by `collect`: called whenever `waiting` drops. */
let onArrival: (() => void) | undefined;

/** `member` is online on `client`: its broadcast and its close are watched. */
function hold(member: Member, client: RelayClient): void {
  member.client = client;
  waiting += 1;
  client.on('event', (e: RelayEvent) => {
    if (e.type !== 'broadcast' || member.at !== undefined || member.client !== client) return;
    member.at = epochNow();
    member.event = e;
    waiting -= 1;
    onArrival?.();
  });
  client.once('close', () => {
    if (member.at !== undefined || member.client !== client) return;
    waiting -= 1;
    onArrival?.();
  });
}

/**
 * Runs `one(i)` for i in 0..count-1, `config.concurrency` at a time, starting none after
 * `deadline`; the number of indexes it never started.
 */
async function pool(
  count: number,
  deadline: number,
  one: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(config.concurrency, count) }, async () => {
      while (next < count && Date.now() < deadline) await one(next++);
    }),
  );
  return count - next;
}

/** Sign-up and password login of every user, each on the connection it then keeps. */
async function createAccounts(): Promise<void> {
  const relay = { server: config.server, fingerprint: config.fingerprint };
  const times: SetupTimes = { connect: [], signup: [], login: [] };
  let failed = 0;
  let firstError: string | undefined;
  const created: Member[] = [];
  const skipped = await pool(config.count, config.deadline, async (i) => {
    const name = `${config.prefix}${config.first + i}`;
    const key = generateDeviceKey();
    let client: RelayClient | undefined;
    try {
      const t0 = performance.now();
      client = await connectTo(relay, knownServers);
      const t1 = performance.now();
      await client.request('auth.signup', { user: name, password: passwordOf(name) });
      const t2 = performance.now();
      // The login authenticates this connection: it stays online as this user.
      const login = await client.request('auth.login', {
        user: name,
        password: passwordOf(name),
        device: { publicKey: key.publicKey.toString('base64'), name: 'bench' },
      });
      times['connect']!.push(t1 - t0);
      times['signup']!.push(t2 - t1);
      times['login']!.push(performance.now() - t2);
      const member: Member = { name, token: login.token, client };
      hold(member, client);
      created.push(member);
    } catch (err) {
      client?.close();
      failed += 1;
      firstError ??= `${name}: ${err instanceof Error ? err.message : String(err)}`;
    }
  });
  members = created;
  send({
    type: 'ready',
    connected: created.length,
    failed: failed + skipped,
    firstError,
    times,
    rss: process.memoryUsage().rss,
  });
}

/** Closes every connection, then logs every user in again with its token on `relay`. */
async function reconnect(relay: RelayAddress, deadline: number): Promise<void> {
  for (const m of members) m.client.close();
  await allClosed(
    members.map((m) => m.client),
    CLOSE_WAIT_MS,
  );
  waiting = 0;
  const times: SetupTimes = { connect: [], token: [] };
  let failed = 0;
  let firstError: string | undefined;
  const online: Member[] = [];
  const skipped = await pool(members.length, deadline, async (i) => {
    const member = members[i]!;
    let client: RelayClient | undefined;
    try {
      const t0 = performance.now();
      client = await connectTo(relay, knownServers);
      const t1 = performance.now();
      await client.request('auth.token', { token: member.token });
      times['connect']!.push(t1 - t0);
      times['token']!.push(performance.now() - t1);
      hold(member, client);
      online.push(member);
    } catch (err) {
      client?.close();
      failed += 1;
      firstError ??= `${member.name}: ${err instanceof Error ? err.message : String(err)}`;
    }
  });
  members = online;
  send({
    type: 'ready',
    connected: online.length,
    failed: failed + skipped,
    firstError,
    times,
    rss: process.memoryUsage().rss,
  });
}

/** Waits until every member still online has the broadcast, or `timeoutMs`; reports the times. */
async function collect(timeoutMs: number): Promise<void> {
  if (waiting > 0)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      onArrival = () => {
        if (waiting > 0) return;
        clearTimeout(timer);
        resolve();
      };
    });
  onArrival = undefined;
  const got = members.filter((m) => m.at !== undefined);
  send({
    type: 'arrivals',
    times: got.map((m) => m.at!),
    missing: waiting,
    closed: members.filter((m) => m.at === undefined && m.client.closed).length,
    rss: process.memoryUsage().rss,
  });
}

function verify(): void {
  let ok = 0;
  let bad = 0;
  for (const m of members) {
    if (!m.event) continue;
    const e = m.event;
    const body = openBroadcast(Buffer.from(e.key, 'base64'), e.body, e.sig);
    if (body && body.from === e.from) ok += 1;
    else bad += 1;
  }
  send({ type: 'verified', ok, bad });
}

async function closeAll(): Promise<void> {
  for (const m of members) m.client.close();
  // close() waits (boundedly) for the relay's close frame; exit once every socket is gone.
  await allClosed(
    members.map((m) => m.client),
    CLOSE_WAIT_MS,
  );
  process.exit(0);
}

process.on('message', (m: FleetRequest) => {
  if (m.type === 'reconnect') void reconnect(m.relay, m.deadline);
  else if (m.type === 'collect') void collect(m.timeoutMs);
  else if (m.type === 'verify') verify();
  else void closeAll();
});
// The benchmark went away: nothing of ours stays connected.
process.once('disconnect', () => process.exit(0));
createAccounts().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

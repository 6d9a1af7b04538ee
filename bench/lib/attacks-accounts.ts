// Attacks on accounts (issue 6, findings 3, 4 and 5): a sign-up flood, guessing from many addresses, session squatting.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { RelayClient } from '../../src/client/relay-client.js';
import { ErrorCode, SwitchboardError } from '../../src/protocol/errors.js';
import {
  CLI,
  ROOT,
  connectClient,
  makeTempDir,
  makeUser,
  newDevice,
  runCli,
  savedLogin,
  type CliResult,
} from '../../test/helpers.js';
import {
  bump,
  cliLogin,
  countsText,
  describeLogin,
  fmtBytes,
  fmtMs,
  registration,
  tokenClient,
  withRelay,
  type AttackOptions,
  type AttackResult,
  type CliLogin,
} from './attack-common.js';
import {
  SourceClient,
  loopback,
  metric,
  scrapeMetrics,
  settlesWithin,
  since,
  sleep,
  type Outcome,
} from './attack-rig.js';
import { percentile, round } from '../../src/bench/stats.js';

// --- 3. a sign-up flood ---------------------------------------------------------------------------

const FLOODERS = 10;
/** Sign-ups per second per connection: just under the control rate (50/s), as in the issue. */
const FLOOD_RATE = 45;
/** Time the relay has to settle after the flood (bounded wait). */
const IDLE_WAIT_MS = 120_000; // ms

export async function attackSignupFlood(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, {}, async (relay) => {
    const password = 'alice-correct-horse';
    const home = await makeUser(relay, 'alice', password);
    const baseline: CliLogin[] = [];
    for (let i = 0; i < 3; i++) baseline.push(await cliLogin(home, 'alice', password));
    opts.say(`  baseline CLI logins: ${baseline.map(describeLogin).join(', ')}`);

    const flooders = await Promise.all(
      Array.from({ length: FLOODERS }, (_, i) => SourceClient.open(relay.port, loopback(11 + i))),
    );
    const outcomes: Array<Promise<Outcome>> = [];
    let hashPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await scrapeMetrics(relay.port).catch(() => undefined);
        if (m) hashPeak = Math.max(hashPeak, metric(m, 'switchboard_password_hashes_pending'));
        await sleep(100);
      }
    })();
    const floodStart = performance.now();
    const perConnection = Math.floor((opts.floodMs / 1000) * FLOOD_RATE);
    const floods = flooders.map(async (c, i) => {
      for (let n = 0; n < perConnection && performance.now() - floodStart < opts.floodMs; n++) {
        outcomes.push(
          c.request(
            'auth.signup',
            { user: `f${i}x${n}`, password: 'flood-password-123' },
            IDLE_WAIT_MS,
          ),
        );
        await sleep(floodStart + ((n + 1) * 1000) / FLOOD_RATE - performance.now());
      }
    });
    // The real user logs in through the CLI once a second while the flood runs.
    const logins: CliLogin[] = [];
    // Halfway, a new person signs up through the CLI from the real user's address.
    let newcomer: CliResult | undefined;
    let newcomerMs = 0;
    const loginLoop = (async () => {
      for (let k = 1; k <= opts.floodMs / 1000; k++) {
        const wait = floodStart + k * 1000 - performance.now();
        if (wait > 0) await sleep(wait);
        if (performance.now() - floodStart >= opts.floodMs) break;
        if (newcomer === undefined && k >= Math.floor(opts.floodMs / 2000)) {
          const t = performance.now();
          newcomer = await runCli(
            ['signup', '--user', 'newcomer', '--password-stdin'].concat([
              '--server',
              relay.server,
              '--fingerprint',
              relay.fingerprint,
            ]),
            { home: makeTempDir('sb-bench-home-'), stdin: 'newcomer-password-1\n' },
          ).catch((err: Error) => ({
            code: null,
            stdout: '',
            stderr: err.message.split('\n')[0]!,
          }));
          newcomerMs = since(t);
        }
        logins.push(await cliLogin(home, 'alice', password));
        k = Math.max(k, Math.floor((performance.now() - floodStart) / 1000));
      }
    })();
    await Promise.all(floods);
    const floodEnd = performance.now();
    await loginLoop;
    // Idle: every sign-up answered and nothing left in the hash queue.
    const settled = await Promise.all(outcomes);
    let idleMs: number | undefined;
    while (performance.now() - floodEnd < IDLE_WAIT_MS) {
      const m = await scrapeMetrics(relay.port);
      if (metric(m, 'switchboard_password_hashes_pending') === 0) {
        idleMs = since(floodEnd);
        break;
      }
      await sleep(100);
    }
    sampling = false;
    await sampler;
    for (const c of flooders) c.terminate();

    const codes: Record<string, number> = {};
    for (const o of settled) bump(codes, o.code);
    const throttled = settled.filter((o) => o.code === ErrorCode.THROTTLED);
    const withRetry = throttled.filter((o) => (o.retryAfterMs ?? 0) > 0).length;
    const retries = throttled.map((o) => o.retryAfterMs ?? 0).sort((x, y) => x - y);
    const accepted = codes['OK'] ?? 0;
    const ms = logins.map((l) => l.ms).sort((x, y) => x - y);
    const failedLogins = logins.filter((l) => l.code !== 'OK');

    // `users`: the default reply and every page, with however many accounts now exist.
    const usersDefault = await runCli(['users', '--json'], { home, timeoutMs: 30_000 });
    const usersAll = await runCli(['users', '--all', '--json'], { home, timeoutMs: 60_000 });
    const client = await tokenClient(relay, savedLogin(home).token);
    const replyDefault = JSON.stringify(await client.request('users.list', {})).length;
    let pages = 0;
    let biggestPage = 0;
    let listed = 0;
    let after: string | undefined;
    do {
      const page = await client.request('users.list', {
        all: true,
        limit: 200,
        ...(after ? { after } : {}),
      });
      pages++;
      listed += page.users.length;
      biggestPage = Math.max(biggestPage, JSON.stringify(page).length);
      after = page.next;
    } while (after !== undefined && pages < 1_000);
    client.close();
    const defaultCount = (JSON.parse(usersDefault.stdout || '[]') as unknown[]).length;
    const allCount = (JSON.parse(usersAll.stdout || '[]') as unknown[]).length;

    const stillHurts: string[] = [];
    if (failedLogins.length > 0)
      stillHurts.push(`${failedLogins.length} of ${logins.length} logins failed during the flood`);
    if ((ms.at(-1) ?? 0) > 5_000) stillHurts.push(`slowest login ${fmtMs(ms.at(-1)!)}`);
    if (idleMs === undefined || idleMs > 10_000)
      stillHurts.push(`relay busy ${idleMs === undefined ? '>120 s' : fmtMs(idleMs)} after`);
    if (usersDefault.code !== 0 || usersAll.code !== 0) stillHurts.push('`users` failed');
    if (newcomer?.code !== 0)
      stillHurts.push(
        "a real newcomer's sign-up is refused while the flood lasts: in open mode the flood spends " +
          'the relay-wide sign-up budget (1/s) that newcomers share (by design; `--signup invite` is the answer)',
      );
    return {
      n: 3,
      title: `Sign-up flood: ${FLOODERS} connections (127.0.0.11-20) × ${FLOOD_RATE}/s for ${opts.floodMs / 1000} s, real Argon2`,
      figures: [
        {
          figure: 'real user CLI login during the flood: p50 / max (n)',
          before: 'timed out at 30 s, 4 of 4',
          after:
            `${fmtMs(percentile(ms, 0.5))} / ${fmtMs(ms.at(-1) ?? NaN)} (${logins.length}, ` +
            `${failedLogins.length} failed; baseline ${fmtMs(baseline[1]?.ms ?? NaN)})`,
        },
        {
          figure: 'sign-ups sent / accepted / refused',
          before: 'all queued (17,442 hashes)',
          after:
            `${settled.length} / ${accepted} / ${throttled.length} THROTTLED ` +
            `(${withRetry} with retryAfterMs, ${fmtMs(retries[0] ?? NaN)}-${fmtMs(retries.at(-1) ?? NaN)})` +
            (Object.keys(codes).length > 2 ? `; all: ${countsText(codes)}` : ''),
        },
        {
          figure: "a new person's CLI sign-up during the flood",
          before: '-',
          after:
            newcomer === undefined
              ? 'not tried'
              : newcomer.code === 0
                ? `ok in ${fmtMs(newcomerMs)}`
                : `${/\[([A-Z_]+)\]/.exec(newcomer.stderr)?.[1] ?? `exit ${newcomer.code}`} in ${fmtMs(newcomerMs)}` +
                  ` (${newcomer.stderr.trim().replace(/^switchboard signup: /, '')})`,
        },
        {
          figure: 'password-hash queue peak (/metrics, 100 ms polls)',
          before: '17,442',
          after: String(hashPeak),
        },
        {
          figure: 'relay idle after the flood stops',
          before: '167 s',
          after: idleMs === undefined ? '> 120 s' : fmtMs(idleMs),
        },
        {
          figure: `\`users\` reply, ${listed} accounts: default / --all`,
          before: '1.6 MB, fails past ~11k accounts',
          after:
            `${fmtBytes(replyDefault)} (${defaultCount} users, exit ${usersDefault.code}) / ` +
            `${pages} page(s) ≤ ${fmtBytes(biggestPage)} (${allCount} users, exit ${usersAll.code})`,
        },
      ],
      stillHurts,
      data: {
        baseline,
        logins,
        codes,
        accepted,
        throttled: throttled.length,
        withRetry,
        hashPeak,
        idleMs,
        newcomer: newcomer && {
          code: newcomer.code,
          stderr: newcomer.stderr.trim(),
          ms: newcomerMs,
        },
        users: { accounts: listed, replyDefault, pages, biggestPage, defaultCount, allCount },
      },
    };
  });
}

// --- 4. guessing from many addresses --------------------------------------------------------------

const GUESS_ADDRESSES = 30;
/** Each guessing address waits this long between guesses (each on a new connection). */
const GUESS_PAUSE_MS = 500; // ms
/** The owner's logins during the guessing, evenly spread. */
const OWNER_LOGINS = 6;

export async function attackGuessing(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, {}, async (relay) => {
    const password = 'olive-correct-horse';
    const owner = await makeUser(relay, 'olive', password);
    const codes: Record<string, number> = {};
    let stop = false;
    const t0 = performance.now();
    const maxPerAddress = Math.ceil(opts.guessMs / GUESS_PAUSE_MS);
    const guessers = Array.from({ length: GUESS_ADDRESSES }, async (_, i) => {
      for (let n = 0; !stop && n < maxPerAddress; n++) {
        let c: SourceClient | undefined;
        try {
          c = await SourceClient.open(relay.port, loopback(101 + i));
          const o = await c.request('auth.login', {
            user: 'olive',
            password: `guess-${i}-${n}`,
            device: newDevice('guesser'),
          });
          bump(codes, o.code);
        } catch {
          bump(codes, 'CONNECT_FAILED');
        } finally {
          c?.terminate();
        }
        await sleep(GUESS_PAUSE_MS);
      }
    });
    const during: CliLogin[] = [];
    let stranger: CliLogin | undefined;
    for (let k = 1; k <= OWNER_LOGINS; k++) {
      await sleep(t0 + (k * opts.guessMs) / (OWNER_LOGINS + 1) - performance.now());
      during.push(await cliLogin(owner, 'olive', password));
      if (k === Math.ceil(OWNER_LOGINS / 2))
        stranger = await cliLogin(makeTempDir('sb-bench-home-'), 'olive', password, [
          '--server',
          relay.server,
          '--fingerprint',
          relay.fingerprint,
        ]);
    }
    await sleep(t0 + opts.guessMs - performance.now());
    stop = true;
    await Promise.all(guessers);
    const guessMs = since(t0);
    const afterLogin = await cliLogin(owner, 'olive', password);
    const m = await scrapeMetrics(relay.port);
    const guesses = Object.values(codes).reduce((s, n) => s + n, 0);
    const ok = during.filter((l) => l.code === 'OK').length;
    const dms = during.map((l) => l.ms).sort((x, y) => x - y);
    const stillHurts: string[] = [];
    if (ok < during.length)
      stillHurts.push(`owner refused ${during.length - ok} of ${during.length}`);
    return {
      n: 4,
      title: `Guessing from ${GUESS_ADDRESSES} addresses (127.0.0.101-130) for ${round(guessMs / 1000)} s; the owner on her registered device from 127.0.0.1`,
      figures: [
        {
          figure: "owner's logins during the guessing: ok / THROTTLED",
          before: '0 / 6',
          after: `${ok} / ${during.filter((l) => l.code === 'THROTTLED').length} of ${during.length}${ok < during.length ? ` (${during.map((l) => l.code).join(',')})` : ''}`,
        },
        {
          figure: "owner's login time: p50 / max (CLI wall time)",
          before: '-',
          after: `${fmtMs(percentile(dms, 0.5))} / ${fmtMs(dms.at(-1) ?? NaN)}; after the guessing ${describeLogin(afterLogin)}`,
        },
        {
          figure: 'guesses made / password checks run',
          before: '? / 11',
          after: `${guesses} / ${codes[ErrorCode.BAD_CREDENTIALS] ?? 0} (${countsText(codes)})`,
        },
        {
          figure: 'right password from an unregistered device, during',
          before: '-',
          after: stranger ? describeLogin(stranger) : '-',
        },
      ],
      stillHurts,
      data: {
        guessMs,
        codes,
        during,
        stranger,
        afterLogin,
        logins: {
          ok: metric(m, 'switchboard_logins_total', { result: 'ok' }),
          badCredentials: metric(m, 'switchboard_logins_total', { result: 'bad_credentials' }),
          throttled: metric(m, 'switchboard_logins_total', { result: 'throttled' }),
        },
      },
    };
  });
}

// --- 5. session squatting -------------------------------------------------------------------------

/** Bounds of the squatter's loops: sessions tried, connections tried. */
const SQUAT_MAX_SESSIONS = 1_000;
const SQUAT_MAX_CONNECTIONS = 150;
const AGENT_START_TIMEOUT_MS = 20_000; // ms

/** Registers new session IDs one after another until refused; the count and the refusal. */
async function registerUntilRefused(
  c: RelayClient,
  prefix: string,
  from: number,
): Promise<{ registered: number; ms: number; refusal?: SwitchboardError }> {
  const t0 = performance.now();
  let registered = 0;
  for (let i = from; i < from + SQUAT_MAX_SESSIONS; i++) {
    try {
      await c.request('session.register', registration(`${prefix}-${i}`));
      registered++;
    } catch (err) {
      if (err instanceof SwitchboardError) return { registered, ms: since(t0), refusal: err };
      throw err;
    }
  }
  return { registered, ms: since(t0) };
}

/** Times the squatter reconnects to register more IDs (each time its sessions go offline). */
const SQUAT_MAX_ROUNDS = 5;

/** `switchboard agent --session ID` in `home`: true once it prints the ID (it registered). */
async function agentStarts(
  home: string,
  sessionId: string,
): Promise<{ ok: boolean; ms: number; output: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  env['SWITCHBOARD_HOME'] = home;
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [CLI, 'agent', '--session', sessionId, '--shell', '/bin/sh'],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const ready = new Promise<boolean>((resolve) => {
    const check = (s: string) => {
      output += s;
      if (new RegExp(`^${sessionId}$`, 'm').test(output)) resolve(true);
    };
    child.stdout.setEncoding('utf8').on('data', check);
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.once('exit', () => resolve(false));
  });
  const ok = (await settlesWithin(ready, AGENT_START_TIMEOUT_MS)) && (await ready);
  const ms = since(t0);
  const exited = new Promise((r) => child.once('exit', r));
  if (child.exitCode === null) child.kill('SIGTERM');
  if (!(await settlesWithin(exited, 5_000))) child.kill('SIGKILL');
  return { ok, ms, output: output.trim().slice(-500) };
}

export async function attackSquatting(opts: AttackOptions): Promise<AttackResult> {
  return withRelay(opts, {}, async (relay) => {
    const held: RelayClient[] = [];
    try {
      const mallory = await connectClient(
        relay.server,
        relay.fingerprint,
        makeTempDir('sb-bench-home-'),
      );
      held.push(mallory);
      await mallory.request('auth.signup', { user: 'mallory', password: 'mallory-password-1' });
      const { token } = await mallory.request('auth.login', {
        user: 'mallory',
        password: 'mallory-password-1',
        device: newDevice('mallory'),
      });
      const live = await registerUntilRefused(mallory, 'build-box', 0);
      opts.say(`  live: ${live.registered} in ${live.ms} ms, then ${live.refusal?.code}`);
      // The squatter leaves (its sessions go offline, their IDs stay reserved to it) and comes
      // back for more, until the relay refuses it new IDs even with no session live.
      let idsHeld = live.registered;
      let idRefusal: SwitchboardError | undefined;
      let again = mallory;
      for (let round = 0; round < SQUAT_MAX_ROUNDS; round++) {
        again.close();
        await sleep(500);
        again = await tokenClient(relay, token);
        held.push(again);
        const more = await registerUntilRefused(again, 'build-box', idsHeld);
        idsHeld += more.registered;
        idRefusal = more.refusal;
        opts.say(`  reconnected: ${more.registered} more IDs, then ${more.refusal?.code}`);
        if (more.registered === 0) break;
      }
      // Connections: as many logged-in connections as the account may hold, and one more.
      let connections = 1; // `again`
      let connRefusal: SwitchboardError | undefined;
      for (let i = 0; i < SQUAT_MAX_CONNECTIONS && !connRefusal; i++) {
        const c = await connectClient(
          relay.server,
          relay.fingerprint,
          makeTempDir('sb-bench-home-'),
        );
        held.push(c);
        await c.request('auth.token', { token }).then(
          () => connections++,
          (err: unknown) => {
            if (err instanceof SwitchboardError) connRefusal = err;
            else throw err;
          },
        );
      }
      opts.say(`  connections: ${connections}, then ${connRefusal?.code}`);
      // A real user's agent, while the squatter holds everything it may.
      const alice = await makeUser(relay, 'alice', 'alice-password-1');
      const agent = await agentStarts(alice, 'alice-box');
      const stillHurts: string[] = [];
      if (!agent.ok) stillHurts.push(`the real user's agent did not start: ${agent.output}`);
      if (!live.refusal) stillHurts.push(`no refusal after ${live.registered} live sessions`);
      return {
        n: 5,
        title: 'Session squatting: one account registers sessions as fast as it can',
        figures: [
          {
            figure: 'live sessions before refusal (time)',
            before: "1,000 in 23.5 s (the relay's limit)",
            after: `${live.registered} in ${fmtMs(live.ms)}: ${live.refusal?.code} "${live.refusal?.message}"`,
          },
          {
            figure: 'session IDs held (reconnecting, sessions offline)',
            before: '1,000, reserved 7 days',
            after: `${idsHeld}: ${idRefusal?.code} "${idRefusal?.message}"`,
          },
          {
            figure: 'connections of one account',
            before: 'no cap',
            after: `${connections}: ${connRefusal?.code} "${connRefusal?.message}"`,
          },
          {
            figure: "second user's `agent` registration",
            before: 'failed (SESSION_LIMIT)',
            after: agent.ok ? `ok in ${fmtMs(agent.ms)}` : `FAILED: ${agent.output}`,
          },
        ],
        stillHurts,
        data: {
          live: { ...live, refusal: live.refusal?.message },
          idsHeld,
          idRefusal: idRefusal?.message,
          connections,
          connRefusal: connRefusal?.message,
          agent,
        },
      };
    } finally {
      for (const c of held) c.terminate();
    }
  });
}

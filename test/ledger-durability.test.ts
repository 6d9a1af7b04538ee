// The ledger survives kill -9 (issue 12, "What it must show"): 20 clients pay each other in loops
// while a real `switchboard serve` process is killed with SIGKILL and restarted on the same data
// directory. A client whose connection drops reconnects and submits the same signed transfer again
// (its id is the idempotency key). Afterwards: every transfer a client saw acknowledged is in the
// ledger exactly once, no transfer id twice, nothing in it that nobody signed, `verifyLedger`
// passes, balances sum to the mints, none is negative, and each equals the replay of the entries.
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { setMaxListeners } from 'node:events';
import { after, describe, it } from 'node:test';
import { Backoff } from '../src/client/backoff.js';
import { KnownServers } from '../src/client/known-servers.js';
import { verifyLedger } from '../src/client/ledger-verify.js';
import { RelayClient } from '../src/client/relay-client.js';
import { generateDeviceKey, type DeviceKeyPair } from '../src/crypto/device-key.js';
import { signTransfer } from '../src/crypto/ledger-signing.js';
import { ErrorCode, RemoteError, SwitchboardError } from '../src/protocol/errors.js';
import type { SignedTransfer, TransferBody } from '../src/protocol/ledger.js';
import type { LedgerEntryView } from '../src/protocol/messages.js';
import {
  FAST_ARGON2,
  makeTempDir,
  removeTempDirs,
  startServeProcess,
  startTestRelay,
  type ServeProcess,
} from './helpers.js';

const USERS = 20;
/** The relay's default sign-up credit: what each account starts with. */
const CREDIT = 100;
/** SIGKILLs of the relay while the clients pay. */
const KILLS = 4;
/** Acknowledged transfers between two kills (and after the last one, before stopping). */
const ACKS_PER_ROUND = 150;
/** The loops stop once this many transfers were acknowledged... */
const TARGET_ACKS = (KILLS + 1) * ACKS_PER_ROUND;
/** ...and the test fails if that takes longer than this. */
const RUN_MS = 60_000; // ms
/** After the loops are told to stop: time for the transfers in flight to reach an outcome. */
const SETTLE_MS = 30_000; // ms
/** One reconnect (relay down, then back) gives up after this long or this many attempts. */
const RECONNECT_MS = 30_000; // ms
const RECONNECT_ATTEMPTS = 300;
/** Per request: a relay that neither answers nor drops the connection fails the test. */
const REQUEST_TIMEOUT_MS = 15_000; // ms
/** Sign-ups in this test come from one address, past the relay's per-address burst. */
const ROOMY_SIGNUPS = { perMinute: 6_000, burst: 1_000 };
/** Errors that mean "the relay went away": the transfer's outcome is unknown, resubmit it. */
const TRANSIENT = new Set<string>([
  ErrorCode.CONNECT_FAILED,
  ErrorCode.CONNECTION_CLOSED,
  ErrorCode.TIMEOUT,
]);

interface Account {
  name: string;
  key: DeviceKeyPair;
  token: string;
  knownServers: string;
}

/** One signed transfer and what its payer learnt of it. */
interface Sent {
  id: string;
  from: string;
  to: string;
  amount: number;
  transfer: SignedTransfer;
  /** Submissions (1 + resubmissions after a dropped connection). */
  attempts: number;
  outcome: 'pending' | 'acked' | 'refused' | 'error';
  /** acked: the seq and `duplicate` of the reply. */
  seq?: number;
  duplicate?: boolean;
  /** refused / error: the relay's code (or the client's, if it gave up). */
  code?: string;
}

const isTransient = (err: unknown): boolean =>
  err instanceof SwitchboardError && !(err instanceof RemoteError) && TRANSIENT.has(err.code);

describe('the ledger under kill -9', () => {
  after(() => removeTempDirs());

  it(
    '20 clients paying each other while the relay is SIGKILLed and restarted: acknowledged transfers are there exactly once, balances sum to mints, verify passes',
    {
      timeout: 180_000,
    },
    async (t) => {
      const dataDir = makeTempDir('switchboard-ledger-kill-');
      const accounts: Account[] = [];

      // Accounts first, through a relay in this process on the same data directory: 20 sign-ups
      // from 127.0.0.1 are past `serve`'s per-address burst (abuse-accounts.test.ts tests that).
      // Each is credited CREDIT by a mint signed with the ledger key kept in the data directory.
      {
        const seed = await startTestRelay({
          dataDir,
          auth: {
            argon2: FAST_ARGON2,
            signupRate: { perAddress: ROOMY_SIGNUPS, relay: ROOMY_SIGNUPS },
          },
        });
        try {
          for (let i = 0; i < USERS; i++) {
            const name = `kpay${String(i).padStart(2, '0')}`;
            const key = generateDeviceKey();
            const knownServers = join(makeTempDir('switchboard-home-'), 'known_servers.json');
            const c = await RelayClient.connect({
              server: seed.server,
              trust: {
                knownServers: new KnownServers(knownServers),
                fingerprint: seed.fingerprint,
              },
            });
            try {
              await c.request('auth.signup', { user: name, password: `${name}-password` });
              const login = await c.request('auth.login', {
                user: name,
                password: `${name}-password`,
                device: { publicKey: key.publicKey.toString('base64'), name: 'payer' },
              });
              accounts.push({ name, key, token: login.token, knownServers });
            } finally {
              c.close();
            }
          }
        } finally {
          await seed.close();
        }
      }
      const keyOf = new Map(accounts.map((a) => [a.name, a.key.publicKey.toString('base64')]));

      let relay: ServeProcess = await startServeProcess(dataDir);
      /** Where the relay is now: the loops read it on every reconnect (the port may change). */
      let server = relay.server;
      const fingerprint = relay.fingerprint;

      const sent = new Map<string, Sent>();
      const stats = { acked: 0, duplicates: 0, refused: 0, resubmits: 0, reconnects: 0 };
      const killedWithInFlight: number[] = [];
      let inFlight = 0;
      let stopping = false;
      const abort = new AbortController();
      setMaxListeners(4 * USERS, abort.signal); // every payer may be waiting to reconnect
      const hardDeadline = Date.now() + RUN_MS + SETTLE_MS;
      const clients = new Set<RelayClient>();
      /** The id of the relay's ledger, which every transfer names (read before the loops start). */
      let ledgerId = '';

      // The controller waits for the loops' progress without polling: each ack checks the waiters.
      const waiters: Array<{ acks: number; resolve: () => void }> = [];
      const noteAck = () => {
        stats.acked++;
        for (const w of [...waiters])
          if (stats.acked >= w.acks) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
      };
      const acksReach = (acks: number, deadline: number) =>
        new Promise<void>((resolve, reject) => {
          if (stats.acked >= acks) return resolve();
          const timer = setTimeout(
            () =>
              reject(
                new Error(
                  `only ${stats.acked} transfers acknowledged, waiting for ${acks}, in time`,
                ),
              ),
            Math.max(0, deadline - Date.now()),
          );
          waiters.push({
            acks,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
          });
        });

      /** A logged-in client for `a`, retrying (bounded) while the relay is down. */
      const connect = async (a: Account): Promise<RelayClient> => {
        const backoff = new Backoff(25, 500);
        const giveUp = Math.min(Date.now() + RECONNECT_MS, hardDeadline);
        for (let attempt = 1; ; attempt++) {
          if (abort.signal.aborted) throw new Error('aborted');
          let c: RelayClient | undefined;
          try {
            c = await RelayClient.connect({
              server,
              trust: { knownServers: new KnownServers(a.knownServers), fingerprint },
              requestTimeoutMs: REQUEST_TIMEOUT_MS,
            });
            clients.add(c);
            await c.request('auth.token', { token: a.token });
            return c;
          } catch (err) {
            c?.terminate();
            if (c) clients.delete(c);
            if (!isTransient(err)) throw err;
            if (attempt >= RECONNECT_ATTEMPTS || Date.now() >= giveUp)
              throw new Error(
                `${a.name} could not reconnect in ${attempt} attempts: ${String(err)}`,
              );
            await backoff.wait(abort.signal);
          }
        }
      };

      /** Submits `s` until its outcome is known: an answer, or a refusal. */
      const settle = async (a: Account, s: Sent, current: { c?: RelayClient }) => {
        for (;;) {
          if (abort.signal.aborted) return;
          if (Date.now() >= hardDeadline) {
            s.outcome = 'error';
            s.code = 'GAVE_UP';
            return;
          }
          if (!current.c || current.c.closed) {
            if (current.c) {
              clients.delete(current.c);
              stats.reconnects++;
            }
            current.c = await connect(a);
          }
          s.attempts++;
          if (s.attempts > 1) stats.resubmits++;
          inFlight++;
          try {
            const r = await current.c.request('ledger.pay', { transfer: s.transfer });
            s.outcome = 'acked';
            s.seq = r.seq;
            s.duplicate = r.duplicate;
            if (r.duplicate) stats.duplicates++;
            noteAck();
            return;
          } catch (err) {
            if (err instanceof RemoteError && err.code === ErrorCode.INSUFFICIENT_FUNDS) {
              s.outcome = 'refused';
              s.code = err.code;
              stats.refused++;
              return;
            }
            if (!isTransient(err)) {
              s.outcome = 'error';
              s.code = err instanceof SwitchboardError ? err.code : String(err);
              return;
            }
            // The relay went away with the transfer in flight: settled or not, we cannot tell.
            // Reconnect and submit the very same signed transfer again.
            current.c.terminate();
          } finally {
            inFlight--;
          }
        }
      };

      const payLoop = async (a: Account) => {
        const current: { c?: RelayClient } = {};
        try {
          while (!stopping && !abort.signal.aborted) {
            let to = a.name;
            while (to === a.name) to = accounts[randomInt(accounts.length)]!.name;
            const body: TransferBody = {
              v: 1,
              kind: 'transfer',
              ledger: ledgerId,
              id: randomBytes(16).toString('base64'),
              from: a.name,
              to,
              amount: randomInt(1, 21),
              memo: 'durability',
              at: new Date().toISOString(),
            };
            const s: Sent = {
              id: body.id,
              from: a.name,
              to,
              amount: body.amount,
              transfer: signTransfer(a.key, body),
              attempts: 0,
              outcome: 'pending',
            };
            sent.set(s.id, s);
            await settle(a, s, current);
          }
        } finally {
          current.c?.terminate();
        }
      };

      let loops: Promise<unknown> | undefined;
      try {
        // Each account starts with its sign-up credit, as served by the relay process.
        const first = await connect(accounts[0]!);
        ledgerId = (await first.request('ledger.info', {})).ledger;
        first.terminate();

        loops = Promise.all(accounts.map((a) => payLoop(a)));
        const runDeadline = Date.now() + RUN_MS;
        const progress = (acks: number) =>
          Promise.race([
            acksReach(acks, runDeadline),
            loops!.then(() => {
              throw new Error('the payers stopped on their own');
            }),
          ]);
        for (let k = 1; k <= KILLS; k++) {
          await progress(k * ACKS_PER_ROUND);
          killedWithInFlight.push(inFlight);
          relay.child.kill('SIGKILL');
          assert.equal((await relay.exited).signal, 'SIGKILL');
          const port = relay.port;
          try {
            relay = await startServeProcess(dataDir, ['--port', String(port)]);
          } catch (err) {
            // The port was taken meanwhile: anywhere else will do, the clients follow `server`.
            t.diagnostic(`restart on port ${port} failed, using another: ${String(err)}`);
            relay = await startServeProcess(dataDir);
          }
          assert.equal(relay.fingerprint, fingerprint);
          server = relay.server;
        }
        await progress(TARGET_ACKS);
        stopping = true;
        await loops;
        t.diagnostic(
          `${sent.size} transfers signed; ${JSON.stringify(stats)}; ` +
            `in flight at each kill: ${killedWithInFlight.join(', ')}`,
        );

        // Every signed transfer reached an outcome the client knows: the relay never refused a
        // resubmission (a TRANSFER_CONFLICT or a storage error would mean the idempotency broke).
        const unresolved = [...sent.values()].filter(
          (s) => s.outcome !== 'acked' && s.outcome !== 'refused',
        );
        assert.deepEqual(
          unresolved.map((s) => `${s.id}: ${s.outcome} ${s.code ?? ''} after ${s.attempts}`),
          [],
          'transfers without an answer or a refusal',
        );
        assert.equal(killedWithInFlight.length, KILLS);
        assert.ok(stats.resubmits > 0, 'no kill caught a transfer in flight: nothing was tested');
        // A fresh id cannot be a duplicate on its first submission.
        for (const s of sent.values())
          if (s.duplicate) assert.ok(s.attempts > 1, `${s.id} was a "duplicate" on first sight`);

        // Every acknowledged transfer submitted once more, to the relay after the last restart:
        // its id was kept, so it is a duplicate at the seq first told, and nothing moves (the
        // balances below would show it).
        await Promise.all(
          accounts.map(async (a) => {
            const c = await connect(a);
            try {
              for (const s of sent.values()) {
                if (s.from !== a.name || s.outcome !== 'acked') continue;
                const r = await c.request('ledger.pay', { transfer: s.transfer });
                assert.deepEqual(
                  [r.seq, r.duplicate],
                  [s.seq, true],
                  `transfer ${s.id} submitted again after the restarts`,
                );
              }
            } finally {
              c.terminate();
            }
          }),
        );

        // The ledger as the final relay serves it.
        const auditor = await connect(accounts[0]!);
        const info = await auditor.request('ledger.info', {});
        assert.equal(info.ledger, ledgerId);
        const entries: LedgerEntryView[] = [];
        for (let page = 0, afterSeq = 0; ; page++) {
          assert.ok(page < 1000, 'ledger.entries does not end');
          const r = await auditor.request('ledger.entries', { after: afterSeq, limit: 200 });
          entries.push(...r.entries);
          if (!r.more) break;
          assert.ok(r.entries.length > 0, 'an empty page that says there is more');
          afterSeq = r.entries.at(-1)!.seq;
        }

        // (1) and (2): every entry is a sign-up mint or a transfer a client signed (byte for byte),
        // no transfer id twice; every acknowledged transfer there once, at the seq it was told;
        // every refused one absent.
        const seqOf = new Map<string, number>();
        const mintedTo = new Map<string, number>();
        let mints = 0;
        for (const e of entries) {
          const body = JSON.parse(e.body) as TransferBody;
          assert.ok(!seqOf.has(body.id), `transfer id ${body.id} is in the ledger twice`);
          seqOf.set(body.id, e.seq);
          if (body.kind === 'mint') {
            assert.equal(body.by, '@relay', `entry ${e.seq}: a mint nobody here made`);
            assert.equal(body.amount, CREDIT, `entry ${e.seq}: a sign-up credit of ${body.amount}`);
            assert.ok(keyOf.has(body.to), `entry ${e.seq}: a mint to a stranger`);
            mintedTo.set(body.to, (mintedTo.get(body.to) ?? 0) + 1);
            mints += body.amount;
            continue;
          }
          const s = sent.get(body.id);
          assert.ok(s, `entry ${e.seq}: transfer ${body.id} that no client signed`);
          assert.equal(e.body, s.transfer.body, `entry ${e.seq}: not the body its payer signed`);
          assert.equal(e.sig, s.transfer.sig, `entry ${e.seq}: not its payer's signature`);
        }
        assert.deepEqual(
          [...mintedTo.entries()].sort(),
          accounts.map((a) => [a.name, 1]),
          'one sign-up credit per account',
        );
        let acked = 0;
        for (const s of sent.values()) {
          if (s.outcome === 'acked') {
            acked++;
            assert.equal(
              seqOf.get(s.id),
              s.seq,
              `transfer ${s.id} acknowledged at seq ${s.seq}${s.duplicate ? ' (duplicate)' : ''} ` +
                `after ${s.attempts} submission(s), ledger has it at ${seqOf.get(s.id)}`,
            );
          } else assert.equal(seqOf.get(s.id), undefined, `transfer ${s.id} refused, yet settled`);
        }
        assert.ok(acked >= TARGET_ACKS);

        // (3) The ledger verifies: signatures, signers, chain, ids, no overdraft, checkpoint.
        const verified = verifyLedger(entries, {
          ledgerId,
          ledgerKey: Buffer.from(info.key, 'base64'),
          signerKnown: (user, key) => keyOf.get(user) === key,
          checkpoint: info.checkpoint,
        });
        assert.equal(verified.ok, true, verified.problem?.message);
        assert.equal(verified.entries, entries.length);
        assert.equal(info.checkpoint.count, entries.length);

        // (4) and (5): each balance the relay reports is the replay of the entries, never
        // negative, and together they are the mints.
        const replay = new Map(accounts.map((a) => [a.name, 0]));
        for (const e of entries) {
          const body = JSON.parse(e.body) as TransferBody;
          if (body.kind === 'transfer')
            replay.set(body.from!, replay.get(body.from!)! - body.amount);
          replay.set(body.to, replay.get(body.to)! + body.amount);
        }
        let total = 0;
        for (const a of accounts) {
          const c = await connect(a);
          const { balance } = await c.request('ledger.balance', {});
          c.terminate();
          assert.ok(balance >= 0, `${a.name} has ${balance}`);
          assert.equal(balance, replay.get(a.name), `${a.name}'s balance against the replay`);
          assert.equal(balance, verified.balances.get(a.name) ?? 0);
          total += balance;
        }
        assert.equal(mints, USERS * CREDIT);
        assert.equal(verified.mints, mints);
        assert.equal(total, mints, 'balances sum to the mints');
        auditor.terminate();
      } finally {
        stopping = true;
        abort.abort();
        for (const c of clients) c.terminate();
        await loops?.catch(() => undefined);
        relay.child.kill('SIGKILL');
        await relay.exited;
      }
    },
  );
});

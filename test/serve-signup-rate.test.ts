// `switchboard serve --signup-rate N`: how many accounts one source address may create.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RelayClient } from '../src/client/relay-client.js';
import { ErrorCode } from '../src/protocol/errors.js';
import {
  Opened,
  codeOf,
  makeTempDir,
  runCli,
  startServeProcess,
  type ServeProcess,
} from './helpers.js';

const PASSWORD = 'correct horse battery';

/** Signs up `count` accounts one after another on `c`; the refusal codes ('OK' for a success). */
async function signUps(c: RelayClient, prefix: string, count: number): Promise<string[]> {
  const codes: string[] = [];
  for (let i = 1; i <= count; i++)
    codes.push(
      await codeOf(c.request('auth.signup', { user: `${prefix}${i}`, password: PASSWORD })),
    );
  return codes;
}

describe('switchboard serve --signup-rate', () => {
  const opened = new Opened();
  const serves: ServeProcess[] = [];
  after(async () => {
    await opened.close();
    for (const p of serves) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await p.exited;
    }
  });
  const serve = async (extra: string[] = []) => {
    const p = await startServeProcess(makeTempDir('switchboard-serve-'), extra);
    serves.push(p);
    return p;
  };

  it('with --signup-rate 30, one address creates 15 accounts in a row', async () => {
    const relay = await serve(['--signup-rate', '30']);
    const c = await opened.client(relay);
    assert.deepEqual(await signUps(c, 'many', 15), Array<string>(15).fill('OK'));
  });

  it('without it, the 11th sign-up in a row from one address is THROTTLED', async () => {
    const relay = await serve();
    const c = await opened.client(relay);
    assert.deepEqual(await signUps(c, 'few', 11), [
      ...Array<string>(10).fill('OK'),
      ErrorCode.THROTTLED,
    ]);
  });

  for (const value of ['0', 'x'])
    it(`refuses --signup-rate ${value} with exit 2, naming the range`, async () => {
      const args = ['serve', '--port', '0', '--data-dir', makeTempDir(), '--signup-rate', value];
      const r = await runCli(args, { home: makeTempDir(), timeoutMs: 10_000 });
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`--signup-rate must be a whole number from 1 to 100000, not "${value}"`),
      );
    });
});

// Two relays sharing one database: starting or stopping one leaves the other's live sessions live.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openStore } from '../src/store/open-store.js';
import { FAST_ARGON2, Opened, makeTempDir, newDevice, registration, waitFor } from './helpers.js';

const opened = new Opened({ auth: { argon2: FAST_ARGON2 } });
after(() => opened.close());

describe('session leases across relays', () => {
  it('keeps a session live while another relay on the same database starts and stops', async () => {
    const database = join(makeTempDir('switchboard-shared-'), 'shared.db');
    /** The session as any relay reads it now. */
    const read = async (id = 'box') => {
      const store = await openStore({ database });
      try {
        const row = await store.remoteSessions.find(id, Date.now());
        return [row?.status, row?.relayId];
      } finally {
        await store.close();
      }
    };

    const a = await opened.relay({ database, sessionLeases: { relayId: 'relay-a' } });
    const [host, leaving] = [await opened.client(a), await opened.client(a)];
    await host.request('auth.signup', { user: 'alice', password: 'correct horse battery' });
    for (const c of [host, leaving])
      await c.request('auth.login', {
        user: 'alice',
        password: 'correct horse battery',
        device: newDevice(),
      });
    await host.request('session.register', registration('box'));
    await leaving.request('session.register', registration('gone'));
    assert.deepEqual(await read(), ['live', 'relay-a']);
    leaving.close();
    await waitFor(
      async () => (await read('gone'))[0] === 'offline',
      5_000,
      "the lease of a disconnected host's session to be released",
    );

    const b = await opened.relay({ database, sessionLeases: { relayId: 'relay-b' } });
    assert.deepEqual(await read(), ['live', 'relay-a'], 'a relay starting leaves it live');
    await b.close();
    assert.deepEqual(await read(), ['live', 'relay-a'], 'another relay stopping leaves it live');

    await a.close();
    assert.deepEqual(await read(), ['offline', null], 'its own relay releases it on stop');
  });
});

// `chat`: message latency between two users — each client is a pair of accepted contacts online
// at once, and one message, sealed end to end, goes from the first to the second through the
// relay (direct connections off: this measures the relay), timed until the recipient shows it.
import { join } from 'node:path';
import { Contacts } from '../../client/contacts.js';
import { contactsFileStore, fileStores } from '../../client/file-stores.js';
import type { HistoryLine } from '../../client/message-history.js';
import { Messenger } from '../../client/messenger.js';
import { FILES, Home } from '../../cli/home.js';
import { connectAs, type AccountPair, type AccountRef } from '../accounts.js';
import type { Transport, Workload } from '../workload.js';

/** Time a message has to reach the recipient. */
const MESSAGE_TIMEOUT_MS = 15_000; // ms

async function online(account: AccountRef, transport: Transport) {
  const client = await connectAs(account, transport);
  const home = new Home(account.home);
  const key = home.deviceKey();
  const messenger = new Messenger({
    client,
    user: account.user,
    key,
    server: transport.server,
    stores: fileStores(home.messengerFiles(), key),
    direct: false,
  });
  try {
    await messenger.start({ live: true });
    await messenger.catchUp();
  } catch (err) {
    client.close();
    throw err;
  }
  return {
    messenger,
    stop: async () => {
      await messenger.stop();
      client.close();
    },
  };
}

export const chat: Workload = {
  name: 'chat',
  describe:
    'one end-to-end sealed message from a user to an accepted contact, through the relay, until the recipient shows it (one in flight per pair)',
  async prepare(ctx) {
    const pairs = await ctx.accounts.pairs(ctx.maxClients, ctx.transport);
    for (const { a, b } of pairs) {
      new Contacts(contactsFileStore(join(a.home, FILES.contacts))).set(b.user, 'accepted');
      new Contacts(contactsFileStore(join(b.home, FILES.contacts))).set(a.user, 'accepted');
    }
    return pairs;
  },
  async open(ctx) {
    const pair = (ctx.data as AccountPair[])[ctx.index]!;
    const receiver = await online(pair.b, ctx.transport);
    const sender = await online(pair.a, ctx.transport).catch(async (err: unknown) => {
      await receiver.stop();
      throw err;
    });
    let waiting: { text: string; resolve: () => void } | undefined;
    receiver.messenger.on('message', (line: HistoryLine) => {
      if (waiting && line.text === waiting.text) waiting.resolve();
    });
    let n = 0;
    return {
      async op() {
        const text = `bench ${ctx.index} ${n++}`;
        let timer: NodeJS.Timeout | undefined;
        const shown = new Promise<void>((resolve, reject) => {
          waiting = { text, resolve };
          timer = setTimeout(
            () => reject(new Error(`the message did not arrive within ${MESSAGE_TIMEOUT_MS} ms`)),
            MESSAGE_TIMEOUT_MS,
          );
        });
        try {
          await Promise.all([sender.messenger.send(pair.b.user, text), shown]);
        } finally {
          clearTimeout(timer);
          waiting = undefined;
        }
        return 0;
      },
      async close() {
        await Promise.all([sender.stop(), receiver.stop()]);
      },
    };
  },
};

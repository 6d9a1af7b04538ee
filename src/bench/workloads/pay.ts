// `pay`: a signed transfer settled by the relay's ledger — the payer's device signs it, the relay
// checks the signature and the balance and commits it (synchronously to disk) before it answers.
// Each client's account pays the next one in a ring, 1 unit at a time, so balances hold.
import { randomBytes } from 'node:crypto';
import { Home } from '../../cli/home.js';
import { signTransfer } from '../../crypto/ledger-signing.js';
import type { TransferBody } from '../../protocol/ledger.js';
import { connectAs, type AccountRef } from '../accounts.js';
import type { Workload } from '../workload.js';

interface Payers {
  accounts: AccountRef[];
}

export const pay: Workload = {
  name: 'pay',
  describe:
    'one signed transfer of 1 unit to another account, from ledger.pay to the relay’s answer after it is committed',
  async prepare(ctx) {
    // At least two accounts, so one client has someone to pay.
    const accounts = await ctx.accounts.devices('pay', Math.max(2, ctx.maxClients), ctx.transport);
    return { accounts } satisfies Payers;
  },
  async open(ctx) {
    const { accounts } = ctx.data as Payers;
    const me = accounts[ctx.index]!;
    const to = accounts[(ctx.index + 1) % accounts.length]!;
    const key = new Home(me.home).deviceKey();
    const client = await connectAs(me, ctx.transport);
    const { ledger } = await client.request('ledger.info', {});
    return {
      async op() {
        const body: TransferBody = {
          v: 1,
          kind: 'transfer',
          ledger,
          id: randomBytes(16).toString('base64'),
          from: me.user,
          to: to.user,
          amount: 1,
          memo: 'bench',
          at: new Date().toISOString(),
        };
        await client.request('ledger.pay', { transfer: signTransfer(key, body) });
        return 0;
      },
      async close() {
        client.close();
      },
    };
  },
};

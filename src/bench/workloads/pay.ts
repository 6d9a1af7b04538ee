// `pay`: a signed transfer settled by the relay's ledger — the payer's device signs it, the relay
// checks the signature and the balance and commits it (synchronously to disk) before it answers.
// Each client holds the two accounts of its pair (the chat workload's) and pays 1 unit back and
// forth between them, so no balance runs down, whatever credit the relay gives an account.
import { randomBytes } from 'node:crypto';
import type { RelayClient } from '../../client/relay-client.js';
import { Home } from '../../cli/home.js';
import type { DeviceKeyPair } from '../../crypto/device-key.js';
import { signTransfer } from '../../crypto/ledger-signing.js';
import type { TransferBody } from '../../protocol/ledger.js';
import { connectAs, type AccountPair, type AccountRef } from '../accounts.js';
import type { Workload } from '../workload.js';

export const pay: Workload = {
  name: 'pay',
  describe:
    'one signed transfer of 1 unit to another account, from ledger.pay to the relay’s answer after it is committed',
  async prepare(ctx) {
    return ctx.accounts.pairs(ctx.maxClients, ctx.transport);
  },
  async open(ctx) {
    const pair = (ctx.data as AccountPair[])[ctx.index]!;
    const sides: Array<{ account: AccountRef; key: DeviceKeyPair; client: RelayClient }> = [];
    let ledger: string;
    try {
      for (const account of [pair.a, pair.b]) {
        const key = new Home(account.home).deviceKey();
        sides.push({ account, key, client: await connectAs(account, ctx.transport) });
      }
      ledger = (await sides[0]!.client.request('ledger.info', {})).ledger;
    } catch (err) {
      for (const side of sides) side.client.close();
      throw err;
    }
    let n = 0;
    return {
      async op() {
        const [from, to] = n++ % 2 === 0 ? [sides[0]!, sides[1]!] : [sides[1]!, sides[0]!];
        const body: TransferBody = {
          v: 1,
          kind: 'transfer',
          ledger,
          id: randomBytes(16).toString('base64'),
          from: from.account.user,
          to: to.account.user,
          amount: 1,
          memo: 'bench',
          at: new Date().toISOString(),
        };
        await from.client.request('ledger.pay', { transfer: signTransfer(from.key, body) });
        return 0;
      },
      async close() {
        for (const side of sides) side.client.close();
      },
    };
  },
};

// `login`: what every CLI command does first — TCP connect, TLS handshake (on the TLS
// transport), WebSocket upgrade, hello, and device authentication — then the connection closes.
import type { AccountRef } from '../accounts.js';
import { connectAs } from '../accounts.js';
import type { Workload } from '../workload.js';

export const login: Workload = {
  name: 'login',
  describe:
    'connect, TLS handshake (when on), WebSocket upgrade, hello and device authentication, then close',
  async prepare(ctx) {
    return ctx.accounts.device('ops', ctx.transport);
  },
  async open(ctx) {
    const account = ctx.data as AccountRef;
    return {
      async op() {
        const client = await connectAs(account, ctx.transport);
        client.close();
        return 0;
      },
      async close() {},
    };
  },
};

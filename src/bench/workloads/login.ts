// `login`: what every CLI command does first — TCP connect, TLS handshake (on the TLS
// transport), WebSocket upgrade, hello, and device authentication — then the connection closes.
import { Home } from '../../cli/home.js';
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
    // Read once: the device key file is the CLI's to read, not part of a login's time.
    const key = new Home(account.home).deviceKey();
    return {
      async op() {
        const client = await connectAs(account, ctx.transport, key);
        client.close();
        return 0;
      },
      async close() {},
    };
  },
};

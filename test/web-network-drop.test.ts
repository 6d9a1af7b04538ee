// A network that drops silently under a terminal open in the web page: a TCP proxy between
// Chromium and the relay stops passing bytes without closing anything (as a laptop's sleep or a
// Wi-Fi change does). A page cannot see WebSocket pings, so it watches the relay itself: after
// two of the relay's heartbeat intervals of silence it gives the connection up, and the terminal
// reconnects (through the proxy, which passes new connections) and resumes; what was typed into
// the silent connection is sent again and runs once.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, relayPage, waitForScreenText, signUpInPage } from './chromium.js';
import { Harness, type TestUser } from './terminal-harness.js';

/** Time for a step through the relay, a shell or the browser. */
const STEP_MS = 20_000; // ms
/** The relay's heartbeat here: the page gives a silent connection up after two of them. */
const HEARTBEAT_MS = 1_500; // ms

/** Passes TCP both ways to `port`; `freeze()` stops the connections it has (not new ones). */
class FreezingProxy {
  readonly #server: Server;
  readonly #pairs: Array<[Socket, Socket]> = [];
  port = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      const upstream = connect(target, '127.0.0.1');
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop);
      upstream.on('error', drop);
      this.#pairs.push([client, upstream]);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  /** Every connection so far goes silent both ways; nothing is closed. */
  freeze(): void {
    for (const [client, upstream] of this.#pairs.splice(0)) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      // Ended only when the test is over (as a dead network's sockets linger).
      this.#frozen.push(client, upstream);
    }
  }

  readonly #frozen: Socket[] = [];

  async close(): Promise<void> {
    for (const s of [...this.#frozen, ...this.#pairs.flat()]) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe(
  'a network that drops silently under a terminal open in the page',
  { timeout: 120_000 },
  () => {
    let h: Harness;
    let proxy: FreezingProxy;
    let browser: Browser;
    let page: Page;
    let host: TestUser;
    const consoleErrors: string[] = [];

    const showsOnScreen = (needle: string, what: string): Promise<string> =>
      waitForScreenText(page, needle, what, STEP_MS);

    before(async () => {
      h = await new Harness({ heartbeatMs: HEARTBEAT_MS }).start();
      host = await h.user('drophost');
      await h.agent(host, 'drop-box', { allow: ['webdrop'] });
      proxy = new FreezingProxy(h.port);
      await proxy.listen();
      browser = await launchChromium();
      page = await relayPage(browser, consoleErrors);
      page.setDefaultTimeout(STEP_MS);
      await page.goto(`https://127.0.0.1:${proxy.port}/`);
      await signUpInPage(page, 'webdrop', 'web drop password');
      await page.waitForSelector('#sessions');
    });
    after(async () => {
      await browser?.close();
      await proxy?.close();
      await h?.close();
    });

    it('gives the silent connection up, reconnects and resumes; typed input runs once', async () => {
      await page.click('tr[data-session="drop-box"] button:text-is("Open")');
      await page.waitForSelector('#term-status[data-state="attached"]');
      await page.click('#term-screen');
      await page.keyboard.type('echo before-the-$((0+1))-drop');
      await page.keyboard.press('Enter');
      await showsOnScreen('before-the-1-drop', 'the output before the drop');
      proxy.freeze();
      // Typed into a connection that no longer carries anything: kept, sent again after resuming.
      await page.keyboard.type('echo typed-into-the-$((2+2))-silence');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#term-status[data-reconnects]').catch(async () => {
        const d = await page.evaluate(() => {
          const doc = (
            globalThis as unknown as {
              document: { querySelector(s: string): { outerHTML: string } | null };
            }
          ).document;
          return ['#term-status', '#term-info', '#unreachable']
            .map((q) => doc.querySelector(q)?.outerHTML)
            .join('\n');
        });
        assert.fail(`no reconnect:\n${d}\n${consoleErrors.join('\n')}`);
      });
      await page.waitForSelector('#term-status[data-state="attached"]');
      const text = await showsOnScreen(
        'typed-into-the-4-silence',
        'the input typed during the drop',
      );
      assert.equal(
        text.split('typed-into-the-4-silence').length - 1,
        1,
        'it ran once (the command line itself shows the $((2+2)) form)',
      );
      await page.keyboard.type('echo after-the-$((1+2))-drop');
      await page.keyboard.press('Enter');
      await showsOnScreen('after-the-3-drop', 'the output after the drop');
      assert.ok(!/could not resume/.test((await page.textContent('#term-info'))!));
      assert.deepEqual(
        consoleErrors.filter((e) => !/^WebSocket connection to .* failed/.test(e)),
        [],
      );
    });
  },
);

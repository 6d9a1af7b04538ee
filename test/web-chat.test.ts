// Chat in the web page, in a real Chromium against a real relay, with CLI users at the other
// end: a CLI user's first message arrives as a request the page accepts; the page answers and
// `switchboard inbox` prints it; the page's marks move sent → pending → read as a CLI user who
// had not accepted the browser user does; a broadcast shows while the page is open; the page's
// safety number is the CLI's; the history survives a reload; the view fits a phone; a marker
// typed in the page never reaches the relay's database or its log; and a lost connection ends the
// chat view (its document listener gone) while Reconnect draws a working one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createLogger } from '../src/server/logger.js';
import { launchChromium, relayPage, signUpInPage } from './chromium.js';
import { runCli, waitFor } from './helpers.js';
import { Harness } from './terminal-harness.js';

/** Time for a step the page takes through the relay (a sign-up hashes a password). */
const STEP_MS = 20_000; // ms
const PASSWORD = 'correct horse battery';
const logFile = join(process.env['TMPDIR'] ?? '/tmp', `sb-web-chat-${process.pid}.log`);

describe('chat in the web page, end to end with CLI users', { timeout: 240_000 }, () => {
  const fd = openSync(logFile, 'w');
  const h = new Harness({ logger: createLogger('trace', fd) });
  let browser: Browser;
  let page: Page;
  let origin: string;
  let clara: string;
  let dave: string;
  const consoleErrors: string[] = [];

  async function cli(home: string, ...args: string[]): Promise<string> {
    const r = await runCli(args, { home });
    assert.equal(r.code, 0, `switchboard ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** The mark's text the page shows on my message whose text is `text`. */
  function markTextOf(text: string): Promise<string | null> {
    return page
      .locator('#chat-messages li.msg[data-dir=out]', { hasText: text })
      .locator('.msg-mark')
      .textContent();
  }

  async function waitMark(text: string, mark: string): Promise<void> {
    await page.waitForSelector(
      `#chat-messages li.msg[data-dir=out]:has(.msg-text:text-is("${text}")) .msg-mark[data-mark=${mark}]`,
    );
  }

  async function openChatTab(): Promise<void> {
    await page.click('#tab-chat');
    await page.waitForSelector('#chat-view[data-ready=true]');
  }

  async function openConversation(user: string): Promise<void> {
    await page.click(`#chat-contacts li[data-user="${user}"] button`);
    await page.waitForSelector(`#chat-peer:text-is("${user}")`);
  }

  async function typeMessage(text: string): Promise<void> {
    await page.fill('#chat-text', text);
    await page.press('#chat-text', 'Enter');
  }

  /** Whether clara's history (messages.jsonl) marks her message whose text is `text` read. */
  function readAtClara(text: string): boolean {
    const entries = readFileSync(join(clara, 'messages.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { id: string; text?: string; mark?: string });
    const sent = entries.find((e) => e.text === text);
    return sent !== undefined && entries.some((e) => e.id === sent.id && e.mark === 'read');
  }

  /** The browser user's history entries as this browser keeps them (IndexedDB, read in the page). */
  const SAVED_ENTRIES = `new Promise((resolve, reject) => {
    const r = indexedDB.open('switchboard');
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const all = r.result.transaction('history').objectStore('history').getAll();
      all.onsuccess = () => {
        r.result.close();
        resolve(all.result.filter((row) => row.user === 'webby').map((row) => row.entry));
      };
      all.onerror = () => reject(all.error);
    };
  })`;

  function savedEntries(): Promise<Array<Record<string, unknown>>> {
    return page.evaluate(SAVED_ENTRIES) as Promise<Array<Record<string, unknown>>>;
  }

  before(async () => {
    await h.start();
    origin = `https://${h.server}`;
    clara = mkdtempSync(join(h.dir, 'clara-'));
    dave = mkdtempSync(join(h.dir, 'dave-'));
    assert.equal((await h.cliAccount('signup', 'clara', clara)).code, 0);
    assert.equal((await h.cliAccount('signup', 'dave', dave)).code, 0);
    browser = await launchChromium();
    page = await relayPage(browser, consoleErrors);
    page.setDefaultTimeout(STEP_MS);
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.goto(`${origin}/`);
    await signUpInPage(page, 'webby', PASSWORD);
    // Chat starts with the login, its tab not opened: this browser's keys are published then.
    await page.waitForSelector('#chat-view[data-ready="true"]', { state: 'attached' });
    assert.equal(await page.isVisible('#chat-view'), false);
  });
  after(async () => {
    await browser?.close();
    await h.close();
    closeSync(fd);
  });

  it("shows a CLI user's first message as a request, and their message once accepted", async () => {
    // Before the page's Chat tab was ever opened: the browser can be written to from its login.
    assert.match(
      await cli(clara, 'send', 'webby', 'hello from the CLI'),
      /sent to webby \(stored at the relay for 1 device/,
    );
    await openChatTab();
    // Pushed to the open page: a request, its message held.
    await page.waitForSelector(
      '#chat-contacts li[data-user=clara] .chat-badge[data-state=pending]',
    );
    await openConversation('clara');
    await page.waitForSelector('#chat-request:visible');
    assert.match((await page.textContent('#chat-request'))!, /1 message held/);
    assert.equal(await page.locator('#chat-messages li.msg').count(), 0, 'held, not shown');
    await page.click('#chat-accept');
    await page.waitForSelector('#chat-messages li.msg[data-dir=in] >> text=hello from the CLI');
    assert.equal(await page.isVisible('#chat-request'), false);
    // Shown in the page: clara's device is told it was read. The page sends the receipt behind
    // the screen, so clara's inbox is asked until it has come (or the step's time is up).
    await waitFor(
      async () => {
        await cli(clara, 'inbox');
        return readAtClara('hello from the CLI');
      },
      STEP_MS,
      "clara's history to hold the page's read receipt (switchboard inbox, asked again and again)",
    );
  });

  it('sends from the page; switchboard inbox prints it, and the mark goes from sent to read', async () => {
    await typeMessage('reply from the page');
    await waitMark('reply from the page', 'sent');
    // Stored at the relay, no more: the mark reads as the CLI's for that state.
    assert.equal(await markTextOf('reply from the page'), '✓');
    const inbox = await cli(clara, 'inbox');
    assert.match(inbox, /webby → you: reply from the page/);
    await waitMark('reply from the page', 'read');
  });

  it('a CLI user who has not accepted the page: pending, then read once they accept', async () => {
    await page.fill('#chat-new', 'dave');
    await page.press('#chat-new', 'Enter');
    await page.waitForSelector('#chat-peer:text-is("dave")');
    await typeMessage('are you there, dave?');
    await waitMark('are you there, dave?', 'sent');
    const inbox = await cli(dave, 'inbox');
    assert.match(inbox, /webby \(SHA256:[^)]+\) wants to message you/);
    assert.doesNotMatch(inbox, /are you there/, 'held at dave until he accepts');
    await waitMark('are you there, dave?', 'pending');
    assert.match(
      (await page.textContent('#chat-messages li.msg[data-dir=out] .msg-mark'))!,
      /waiting for their approval/,
    );
    const accepted = await cli(dave, 'contacts', 'accept', 'webby');
    assert.match(accepted, /webby → you: are you there, dave\?/);
    await waitMark('are you there, dave?', 'read');
  });

  it('shows a broadcast as it arrives', async () => {
    await cli(clara, 'broadcast', 'the relay restarts at noon');
    await page.waitForSelector('#chat-contacts li[data-user="*"] .chat-unread');
    assert.match((await page.textContent('#chat-notice'))!, /A broadcast from clara/);
    await page.click('#chat-contacts li[data-user="*"] button');
    await page.waitForSelector('#chat-peer:text-is("Broadcasts")');
    await page.waitForSelector('#chat-messages li.msg >> text=the relay restarts at noon');
    assert.match((await page.textContent('#chat-messages'))!, /clara/);
  });

  it('computes the safety number the CLI computes', async () => {
    await openConversation('clara');
    await page.click('#chat-verify');
    await page.waitForSelector('#chat-safety-number');
    const digits = await page.getAttribute('#chat-safety-number', 'data-digits');
    assert.match(digits ?? '', /^\d{60}$/);
    const theirs = JSON.parse(await cli(clara, 'contacts', 'verify', 'webby', '--json')) as {
      safetyNumber: string;
    };
    assert.equal(digits, theirs.safetyNumber);
  });

  it('keeps the history in the browser: a reload shows the conversation and its marks', async () => {
    // Everything shown is saved (writes go behind the screen): the last mark first.
    const readId = await page
      .locator('#chat-messages li.msg[data-dir=out]', { hasText: 'reply from the page' })
      .getAttribute('data-id');
    await page.waitForFunction(
      `${SAVED_ENTRIES}.then((entries) => entries.some((e) => e.mark === 'read' && e.id === ${JSON.stringify(readId)}))`,
      undefined,
      { polling: 100 },
    );
    await page.reload();
    await page.waitForSelector('#fingerprint');
    await openChatTab();
    await openConversation('clara');
    await page.waitForSelector('#chat-messages li.msg[data-dir=in] >> text=hello from the CLI');
    await waitMark('reply from the page', 'read');
    const saved = await savedEntries();
    assert.ok(saved.some((e) => e['text'] === 'hello from the CLI'));
    // `SWITCHBOARD_SCREENSHOTS=docs npm test` refreshes the README's picture of this conversation.
    const shots = process.env['SWITCHBOARD_SCREENSHOTS'];
    if (shots) await page.screenshot({ path: join(process.cwd(), shots, 'web-chat.png') });
  });

  it('fits a phone: the list, then one conversation with a way back', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = (await page.evaluate(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    )) as number;
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
    assert.equal(await page.isVisible('#chat-back'), true);
    assert.equal(await page.isVisible('#chat-contacts'), false, 'the conversation takes the width');
    await page.click('#chat-back');
    assert.equal(await page.isVisible('#chat-contacts'), true);
    await openConversation('clara');
    assert.equal(await page.isVisible('#chat-text'), true);
    await page.setViewportSize({ width: 1200, height: 800 });
  });

  it("never lets a marker typed in the page reach the relay's database or its log", async () => {
    const secret = `WEB-MARKER-${randomBytes(6).toString('hex')}`;
    await typeMessage(`the marker is ${secret}`);
    await waitMark(`the marker is ${secret}`, 'sent');
    // Stored at the relay now, sealed: look while it is there.
    const check = (): void => {
      const files = readdirSync(h.dataDir).filter((f) => f.startsWith('switchboard.db'));
      assert.ok(files.length >= 1);
      for (const f of files)
        assert.ok(!readFileSync(join(h.dataDir, f)).includes(secret), `marker in ${f}`);
      assert.ok(!readFileSync(logFile, 'utf8').includes(secret), 'marker in the relay log');
    };
    check();
    assert.match(await cli(clara, 'inbox'), new RegExp(`webby → you: the marker is ${secret}`));
    check();
    assert.deepEqual(consoleErrors, []);
  });

  // Last: the relay restarts under the page (its lost connection logs errors in the console).
  it('ends the chat view with its connection, and the page reconnects by itself to a working one', async () => {
    // The document's `visibilitychange` listeners, as DevTools lists them.
    const cdp = await page.context().newCDPSession(page);
    const listening = async (): Promise<number> => {
      const { result } = await cdp.send('Runtime.evaluate', { expression: 'document' });
      assert.ok(result.objectId);
      const { listeners } = await cdp.send('DOMDebugger.getEventListeners', {
        objectId: result.objectId,
      });
      return listeners.filter((l) => l.type === 'visibilitychange').length;
    };
    assert.equal(await listening(), 1, 'the open chat view listens');
    const oldView = await page.$('#chat-view');
    await h.restart();
    // The page tries the relay again by itself and redraws once it answers (no terminal open).
    await page.waitForFunction((el) => !el?.isConnected, oldView, { timeout: STEP_MS });
    await openChatTab();
    assert.equal(await listening(), 1, 'only the new chat view listens (the old one stopped)');
    // The new view is live on the new connection: clara's message arrives, is shown and read.
    await openConversation('clara');
    await cli(clara, 'send', 'webby', 'after the reconnect');
    await page.waitForSelector('#chat-messages li.msg[data-dir=in] >> text=after the reconnect');
    await waitFor(
      async () => {
        await cli(clara, 'inbox');
        return readAtClara('after the reconnect');
      },
      STEP_MS,
      "clara's history to hold the new view's read receipt",
    );
    await cdp.detach();
  });
});

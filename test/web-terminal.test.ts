// Terminals in the web page, in a real Chromium against a real relay and real PTYs: the page
// opens a session it may reach in xterm.js, end to end encrypted with this browser's own key
// (the host proves its key, the browser proves its WebCrypto key), and the screen's text can be
// read from the page (the DOM renderer). Typing runs commands; resizing the window resizes the
// remote PTY; a relay restart under the open terminal is resumed without losing output; a host
// that does not let the browser's device in is obeyed; nothing typed reaches the relay's logs or
// database.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { PeerInfo } from '../src/protocol/messages.js';
import { createLogger } from '../src/server/logger.js';
import { launchChromium, relayPage, signUpInPage } from './chromium.js';
import { waitFor } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

/** Time for a step through the relay and a shell. */
const STEP_MS = 20_000; // ms
const PASSWORD = 'correct horse battery';

/** A string no shell prints by itself. */
const marker = (label: string): string => `${label}-${randomBytes(6).toString('hex')}`;

/** What to wait for on the screen: text, a pattern, or a size below one (`stty size`). */
type ScreenWait =
  | { kind: 'text'; value: string }
  | { kind: 're'; value: string }
  | { kind: 'smaller'; rows: number; cols: number };

/** The screen's text (xterm.js's DOM rows), in the page; `wait` given: whether it holds. */
function readScreen(wait?: ScreenWait): string | boolean {
  // Page code (the page's CSP refuses string evaluation): no closures, no Node types.
  const doc = (globalThis as unknown as { document: { querySelector(s: string): unknown } })
    .document;
  const rows = doc.querySelector('#term-screen .xterm-rows') as { innerText: string } | null;
  const s = (rows?.innerText ?? '').replace(/\u00a0/g, ' ');
  if (!wait) return s;
  if (wait.kind === 'text') return s.includes(wait.value);
  if (wait.kind === 're') return new RegExp(wait.value).test(s);
  const m = /(\d+) (\d+)/.exec(s);
  return m !== null && Number(m[1]) < wait.rows && Number(m[2]) < wait.cols;
}

function screenText(page: Page): Promise<string> {
  return page.evaluate(readScreen, undefined) as Promise<string>;
}

/** Waits until the screen shows what `wait` says; fails with what it shows. */
async function waitForScreen(
  page: Page,
  needle: string | RegExp | ScreenWait,
  what: string,
): Promise<string> {
  const wait: ScreenWait =
    typeof needle === 'string'
      ? { kind: 'text', value: needle }
      : needle instanceof RegExp
        ? { kind: 're', value: needle.source }
        : needle;
  try {
    await page.waitForFunction(readScreen, wait, { timeout: STEP_MS });
  } catch {
    assert.fail(`${what}: the screen shows\n${await screenText(page)}`);
  }
  return screenText(page);
}

async function type(page: Page, line: string): Promise<void> {
  await page.click('#term-screen');
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

describe('terminals in the web page', { timeout: 180_000 }, () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let host: TestUser;
  let logFile: string;
  let logFd: number;
  const consoleErrors: string[] = [];
  const approvals: PeerInfo[] = [];

  /** Opens `sessionId` from the list (refreshed), to type in or to watch. */
  async function openSession(sessionId: string, how: 'Open' | 'Watch' = 'Open'): Promise<void> {
    await page.click('#tab-sessions');
    await back();
    await page.click('#sessions-view >> text=Refresh');
    await page.click(`tr[data-session="${sessionId}"] button:text("${how}")`);
  }

  /** Leaves the terminal shown, if any, and waits for the list. */
  async function back(): Promise<void> {
    if (await page.isVisible('#term-back')) await page.click('#term-back');
    await page.waitForSelector('form.by-id');
  }

  /** Waits for the terminal to attach; fails with what the page says instead. */
  async function attached(): Promise<void> {
    try {
      await page.waitForSelector('#term-status[data-state="attached"]');
    } catch {
      const said = await page.innerText('#sessions-view');
      const status = await page.evaluate(
        () =>
          (
            globalThis as unknown as {
              document: { querySelector(s: string): { outerHTML: string } | null };
            }
          ).document.querySelector('#term-status')?.outerHTML,
      );
      assert.fail(`not attached (${status}); the page says: ${said.slice(0, 2000)}`);
    }
  }

  /** Opens `sessionId` by its ID, as one given a share's ID (or link) would. */
  async function openById(sessionId: string): Promise<void> {
    await page.click('#tab-sessions');
    await back();
    await page.fill('#session-id', sessionId);
    await page.click('form.by-id button[type=submit]');
  }

  // Every test ends with a clean console: a refused inline style (the CSP), an exception…; only
  // the browser's own report of a WebSocket the relay's restart cut is expected.
  afterEach(() => {
    const unexpected = consoleErrors.filter((e) => !/^WebSocket connection to .* failed/.test(e));
    consoleErrors.length = 0;
    assert.deepEqual(unexpected, []);
  });

  before(async () => {
    logFile = join(
      process.env['TMPDIR'] ?? '/tmp',
      `sb-web-trace-${process.pid}-${Date.now()}.log`,
    );
    logFd = openSync(logFile, 'w');
    h = await new Harness({ logger: createLogger('trace', logFd) }).start();
    host = await h.user('webhost');
    browser = await launchChromium();
    page = await relayPage(browser, consoleErrors);
    page.setDefaultTimeout(STEP_MS);
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.goto(`https://${h.server}/`);
    await signUpInPage(page, 'webbob', PASSWORD);
  });
  after(async () => {
    await browser?.close();
    await h?.close();
    closeSync(logFd);
  });

  it('opens a session, runs what is typed, and shows its output, end to end', async () => {
    await h.agent(host, 'web-term-1', { allow: ['webbob'] });
    await openSession('web-term-1');
    await attached();
    // The facts line names the host's key as the relay announced and the handshake proved it.
    const info = (await page.textContent('#term-info'))!;
    assert.match(info, /host webhost SHA256:[A-Za-z0-9+/]{43}; you SHA256:/);
    assert.ok(info.includes((await page.textContent('#fingerprint'))!), info);
    await type(page, 'echo $((6*7))-answer');
    await waitForScreen(page, '42-answer', 'the command output');
    assert.deepEqual(consoleErrors, []);
  });

  it('draws 24-bit colours under the page’s CSP (no inline style refused)', async () => {
    await type(page, "printf '\\033[38;2;255;0;0mTRUE%sRED\\033[0m\\n' -COLOUR-");
    await waitForScreen(page, 'TRUE-COLOUR-RED', 'the coloured line');
    const colour = await page.evaluate(() => {
      const doc = (
        globalThis as unknown as {
          document: { querySelectorAll(s: string): Iterable<{ textContent: string | null }> };
          getComputedStyle(e: unknown): { color: string };
        }
      ).document;
      const g = globalThis as unknown as { getComputedStyle(e: unknown): { color: string } };
      const span = [...doc.querySelectorAll('#term-screen .xterm-rows span')].find((e) =>
        e.textContent?.includes('TRUE-COLOUR-RED'),
      );
      return span ? g.getComputedStyle(span).color : 'no such span';
    });
    assert.equal(colour, 'rgb(255, 0, 0)');
  });

  it('resizes the remote terminal with the window', async () => {
    await type(page, 'stty size');
    const before = await waitForScreen(page, /\n\d+ \d+\s*\n/, 'stty size');
    const [rows1, cols1] = /\n(\d+) (\d+)\s*\n/.exec(before)!.slice(1).map(Number);
    await page.setViewportSize({ width: 800, height: 600 });
    // The terminal has taken its new size (and sent it) before the command asks the PTY.
    await page.waitForSelector(`#term-screen:not([data-cols="${cols1}"])`);
    await type(page, 'clear; stty size');
    await waitForScreen(page, { kind: 'smaller', rows: rows1!, cols: cols1! }, 'a smaller size');
    await page.setViewportSize({ width: 1200, height: 800 });
    await page.waitForSelector(`#term-screen[data-cols="${cols1}"]`);
    await type(page, 'clear; stty size');
    await waitForScreen(page, `${rows1} ${cols1}`, 'the size back to what it was');
  });

  it('carries on when the relay is killed and restarted under the open terminal', async () => {
    await type(page, 'clear; echo before-$((0+1))-restart');
    await waitForScreen(page, 'before-1-restart', 'output before the restart');
    // Output the shell prints while the relay is down (or just after) must arrive all the same.
    await type(page, '(sleep 0.3; echo during-$((3+4))-outage) &');
    await h.restart();
    await page.waitForSelector('#term-status[data-reconnects]'); // it did notice the drop
    await attached();
    // What the shell printed while the relay was down arrives too: the attachment resumed.
    await type(page, 'echo after-$((1+1))-restart');
    await waitForScreen(page, 'after-2-restart', 'output after the restart');
    await waitForScreen(page, 'during-7-outage', 'output from the outage');
    const screen = await screenText(page);
    assert.ok(screen.includes('before-1-restart'), 'the screen kept what came before');
    assert.ok(!/could not resume/.test((await page.textContent('#term-info'))!));
    await back();
  });

  it('shows the host the browser’s fingerprint to approve, and a refusal as such', async () => {
    let answer = true;
    // Not allowed in advance: the host is asked (and the share is not listed to webbob).
    await h.share(
      host,
      'web-share-1',
      {},
      {
        approve: (peer) => {
          approvals.push(peer);
          return Promise.resolve(answer);
        },
      },
    );
    await page.reload();
    await page.waitForSelector('#fingerprint');
    const mine = (await page.textContent('#fingerprint'))!;
    await openById('web-share-1');
    await attached();
    assert.equal(approvals.length, 1);
    assert.equal(approvals[0]!.user, 'webbob');
    assert.equal(approvals[0]!.fingerprint, mine, 'the host is asked about this browser’s key');
    assert.equal(approvals[0]!.deviceName, 'Chromium on Linux (web)');
    await back();

    answer = false;
    await openById('web-share-1');
    await page.waitForSelector('#term-status[data-state="ended"]');
    assert.match((await page.textContent('#term-info'))!, /\(DENIED\)$/);
    assert.equal(approvals.length, 2);
  });

  it('is refused by an agent that has not allowed this user, opened by its ID', async () => {
    await h.agent(host, 'web-term-closed', { allow: ['someone-else'] });
    await openById('web-term-closed');
    await page.waitForSelector('#term-status[data-state="ended"]');
    assert.match((await page.textContent('#term-info'))!, /\(NOT_ALLOWED\)$/);
    assert.ok(!(await screenText(page)).includes('$ '), 'no shell was opened');
    await back();
  });

  it('watches read-only: the host takes no keystrokes from the page', async () => {
    const secret = marker('viewer-typed');
    await h.agent(host, 'web-term-ro', { allow: ['webbob'] });
    // A viewer watches the shell someone has open: the owner's.
    const owner = h.controller(host, 'web-term-ro');
    await owner.start();
    await openSession('web-term-ro', 'Watch');
    await attached();
    assert.match((await page.textContent('#term-info'))!, /read-only/);
    await type(page, `echo ${secret}`);
    // The owner types after the viewer: their line shows, the viewer's never did.
    owner.type('echo owner-$((2+3))\r');
    await waitForScreen(page, 'owner-5', 'the owner’s command, watched from the page');
    assert.ok(!(await screenText(page)).includes(secret), 'the viewer’s keystrokes were not taken');
    await back();
  });

  it('opens the session a link names (#attach=ID), also one pasted into the open tab', async () => {
    await page.goto(`https://${h.server}/#attach=web-term-1`);
    // A link asks first: it alone attaches no one to the host it names.
    await page.waitForSelector('#link-prompt >> text=web-term-1');
    assert.equal(await page.isVisible('#term-screen'), false);
    assert.equal(new URL(page.url()).hash, '', 'the link is used once: a reload shows the list');
    await page.click('#link-prompt button:text-is("Open")');
    await attached();
    await type(page, 'echo link-$((1+1))');
    await waitForScreen(page, 'link-2', 'the linked session’s shell');
    const withOne = h.relay.stats().connections;
    // Another link, pasted into this tab: the first terminal is detached, not left running.
    await page.evaluate(() => {
      (globalThis as unknown as { location: { hash: string } }).location.hash =
        '#attach=web-term-ro';
    });
    await page.click('#link-prompt button:text-is("Open")');
    await page.waitForSelector('.term-title >> text=web-term-ro');
    await attached();
    await waitFor(
      () => h.relay.stats().connections === withOne,
      STEP_MS,
      'the first terminal’s connection closed',
    );
    await back();
  });

  it('refuses a host whose key changed, loudly, as ssh does', async () => {
    const pinned = await h.user('webhost2');
    await h.agent(pinned, 'web-term-pin', { allow: ['webbob'] });
    await openSession('web-term-pin'); // first contact: pinned
    await attached();
    await back();
    // The host presents another key than the one this browser pinned (as after a relay swapped
    // it): rewrite the pin in IndexedDB to a key webhost2 never had.
    const other = Buffer.alloc(32, 7).toString('base64');
    const changed = await page.evaluate(async (fake) => {
      const idb = (globalThis as unknown as { indexedDB: IDBFactoryLike }).indexedDB;
      type Req<T> = { result: T; onsuccess: (() => void) | null; onerror: (() => void) | null };
      type IDBFactoryLike = { open(name: string): Req<Db> };
      type Db = {
        transaction(
          store: string,
          mode?: string,
        ): {
          objectStore(s: string): {
            get(k: string): Req<unknown>;
            put(v: unknown, k: string): Req<unknown>;
          };
        };
        close(): void;
      };
      const wait = <T>(r: Req<T>): Promise<T> =>
        new Promise((resolve, reject) => {
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(new Error('IndexedDB'));
        });
      const db = await wait(idb.open('switchboard'));
      const pins = (await wait(
        db.transaction('state').objectStore('state').get('known-peers'),
      )) as Record<string, Array<{ publicKey: string }>>;
      const key = Object.keys(pins).find((k) => k.startsWith('webhost2@'))!;
      for (const p of pins[key]!) p.publicKey = fake;
      await wait(
        db.transaction('state', 'readwrite').objectStore('state').put(pins, 'known-peers'),
      );
      db.close();
      return key;
    }, other);
    assert.match(changed, /^webhost2@127\.0\.0\.1:\d+$/);
    await page.reload(); // the page loads its pins once
    await page.waitForSelector('#fingerprint');
    await openSession('web-term-pin');
    await page.waitForSelector('#term-status[data-state="ended"]');
    assert.equal(await page.isVisible('#term-warning'), true);
    assert.match(
      (await page.textContent('#term-warning'))!,
      /THE DEVICE KEY OF webhost2 HAS CHANGED/,
    );
    assert.match((await page.textContent('#term-info'))!, /\(PEER_KEY_CHANGED\)$/);
    assert.equal(
      await screenText(page).then((t) => t.includes('$ ')),
      false,
      'no shell was opened',
    );
    await back();
  });

  it('detaches an open terminal when the page logs out, and logs back in', async () => {
    await openSession('web-term-1');
    await attached();
    const open = h.relay.stats().connections;
    await page.click('text=Log out');
    await page.waitForSelector('form.login');
    // The page's connection and the terminal's both closed: none left behind in the page.
    await waitFor(
      () => h.relay.stats().connections === open - 2,
      STEP_MS,
      'both connections closed',
    );
    await page.fill('#user', 'webbob');
    await page.fill('#password', PASSWORD);
    await page.click('form.login button[type=submit]');
    await page.waitForSelector('#fingerprint');
  });

  it('never lets what is typed in the page reach the relay’s log or database', async () => {
    const secret = marker('WEB-SECRET-MARKER');
    await h.agent(host, 'web-term-marker', { allow: ['webbob'] });
    await openSession('web-term-marker');
    await attached();
    await type(page, `echo ${secret} | tr A-Z a-z`);
    await waitForScreen(page, secret.toLowerCase(), 'the marker echoed');
    await back();
    await h.relay.close('checking its files');
    const log = readFileSync(logFile, 'utf8');
    assert.ok(log.includes('"msg":"channel open"'), 'the trace log did record the terminal');
    assert.ok(!log.toLowerCase().includes(secret.toLowerCase()), 'marker in the relay log');
    const files = readdirSync(h.dataDir).filter((f) => f.startsWith('switchboard.db'));
    assert.ok(files.includes('switchboard.db'));
    for (const f of files) {
      const bytes = readFileSync(join(h.dataDir, f));
      assert.ok(!bytes.includes(secret) && !bytes.includes(secret.toLowerCase()), `marker in ${f}`);
    }
    await h.start(); // for after()'s close
  });
});

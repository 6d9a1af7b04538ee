// Logging in from the web page, in a real Chromium against a real relay: sign-up makes this
// browser a device of the account with a key made in the browser (WebCrypto Ed25519, not
// extractable, in IndexedDB) that `switchboard devices` lists under the fingerprint the page
// shows; a reload resumes; log out keeps the key; "forget this browser" revokes and deletes it;
// a wrong password is refused with its code; a relay that is gone gets a clear state.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, relayPage } from './chromium.js';
import type { DeviceSummary } from '../src/protocol/messages.js';
import { runCli } from './helpers.js';
import { Harness } from './terminal-harness.js';

/** Time for a step the page takes through the relay (a sign-up hashes a password). */
const STEP_MS = 20_000; // ms
const PASSWORD = 'correct horse battery';

describe('logging in from the web page', { timeout: 120_000 }, () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let origin: string;
  let home: string;
  const consoleErrors: string[] = [];

  /** The account's devices, as the CLI (logged in with the password) lists them. */
  async function devices(): Promise<DeviceSummary[]> {
    const r = await runCli(['devices', '--json'], { home });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as DeviceSummary[];
  }

  async function fill(user: string, password: string): Promise<void> {
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('form.login button[type=submit]');
  }

  before(async () => {
    h = await new Harness().start();
    origin = `https://${h.server}`;
    home = mkdtempSync(join(h.dir, 'cli-'));
    browser = await launchChromium();
    page = await relayPage(browser, consoleErrors);
    page.setDefaultTimeout(STEP_MS);
  });
  after(async () => {
    await browser?.close();
    await h?.close();
  });

  it('signs up with the standard fields, and the browser becomes a device the CLI lists', async () => {
    await page.goto(`${origin}/`);
    // Password managers key on these.
    assert.equal(await page.getAttribute('#user', 'autocomplete'), 'username');
    assert.equal(await page.getAttribute('#password', 'autocomplete'), 'current-password');
    await page.click('text=Create an account instead');
    assert.equal(await page.getAttribute('#password', 'autocomplete'), 'new-password');
    // This relay's sign-up is open: no invite field.
    assert.equal(await page.isVisible('#invite'), false);
    await fill('webann', PASSWORD);
    await page.waitForSelector('#fingerprint');
    assert.equal(await page.textContent('#me'), 'webann');
    const shown = (await page.textContent('#fingerprint'))!;
    assert.match(shown, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.match((await page.textContent('header.account'))!, /WebCrypto, not extractable/);

    assert.equal((await h.cliAccount('login', 'webann', home, PASSWORD)).code, 0);
    const browserDevice = (await devices()).find((d) => d.fingerprint === shown);
    assert.ok(browserDevice, `the CLI lists ${shown}`);
    assert.equal(browserDevice.name, 'Chromium on Linux (web)');
    assert.equal(browserDevice.revokedAt, null);
    assert.equal(browserDevice.online, true, 'the page is connected as that device');
    assert.deepEqual(consoleErrors, []);
  });

  it('lists the sessions the account may reach: owner, host, tags, live', async () => {
    assert.match((await page.textContent('#no-sessions'))!, /None yet/);
    const host = await h.user('webhost');
    await h.agent(host, 'web-box-1', { allow: ['webann'] }, { tags: { env: 'test' } });
    await h.agent(host, 'web-box-2'); // not for webann
    await page.click('text=Refresh');
    await page.waitForSelector('#sessions');
    const rows = await page.$$eval('#sessions tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    );
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const [id, owner, , kind, tags, , live] = rows[0]!;
    assert.deepEqual(
      [id, owner, kind, tags, live],
      ['web-box-1', 'webhost', 'agent', 'env=test', '● live'],
    );
  });

  it('keeps the key out of reach of the page: IndexedDB holds a non-extractable CryptoKey', async () => {
    // Run in the page (its DOM types are not this test's): the stored key, and an export attempt.
    const stored = await page.evaluate(`(async () => {
      const db = await new Promise((resolve, reject) => {
        const r = indexedDB.open('switchboard');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      const key = await new Promise((resolve, reject) => {
        const r = db.transaction('state').objectStore('state').get('device-key');
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
      db.close();
      const exported = await crypto.subtle
        .exportKey('pkcs8', key.privateKey)
        .then(() => 'exported', (e) => e.name);
      return { kind: key.kind, extractable: key.privateKey.extractable, exported };
    })()`);
    assert.deepEqual(stored, {
      kind: 'webcrypto',
      extractable: false,
      exported: 'InvalidAccessError',
    });
  });

  it('resumes after a reload; log out keeps the key for the next login', async () => {
    const before = (await page.textContent('#fingerprint'))!;
    await page.reload();
    await page.waitForSelector('#fingerprint');
    assert.equal(await page.textContent('#me'), 'webann');
    await page.click('text=Log out');
    await page.waitForSelector('form.login');
    assert.match((await page.textContent('.notice'))!, /logged out/);
    await page.reload();
    await page.waitForSelector('form.login'); // the token is gone: no resume
    await fill('webann', 'not the password');
    await page.waitForSelector('.error:not(:empty)');
    assert.match((await page.textContent('.error'))!, /\(BAD_CREDENTIALS\)$/);
    await fill('webann', PASSWORD);
    await page.waitForSelector('#fingerprint');
    assert.equal(await page.textContent('#fingerprint'), before, 'the same key');
  });

  it('forgets this browser: the key is revoked at the relay and deleted here', async () => {
    const forgotten = (await page.textContent('#fingerprint'))!;
    await page.click('text=Forget this browser');
    await page.waitForSelector('form.login');
    const revoked = (await devices()).find((d) => d.fingerprint === forgotten);
    assert.ok(revoked?.revokedAt, 'revoked');
    await fill('webann', PASSWORD);
    await page.waitForSelector('#fingerprint');
    assert.notEqual(await page.textContent('#fingerprint'), forgotten, 'a new key');
  });

  it('uses @noble where the browser has no WebCrypto Ed25519, and still logs in', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const other = await context.newPage();
      other.setDefaultTimeout(STEP_MS);
      // A browser without Ed25519 in WebCrypto (older Safari and Firefox).
      await other.addInitScript(`{
        const generate = crypto.subtle.generateKey.bind(crypto.subtle);
        crypto.subtle.generateKey = (alg, ...rest) =>
          (alg === 'Ed25519' || alg?.name === 'Ed25519')
            ? Promise.reject(new DOMException('not supported', 'NotSupportedError'))
            : generate(alg, ...rest);
      }`);
      const loaded: string[] = [];
      other.on('request', (r) => loaded.push(new URL(r.url()).pathname));
      await other.goto(`${origin}/`);
      await other.fill('#user', 'webann');
      await other.fill('#password', PASSWORD);
      await other.click('form.login button[type=submit]');
      await other.waitForSelector('#fingerprint');
      assert.match((await other.textContent('header.account'))!, /@noble, stored in this browser/);
      // The fallback's code is fetched only here, as a chunk of its own.
      assert.ok(
        loaded.some((p) => /^\/assets\/ed25519-[A-Z0-9]+\.js$/.test(p)),
        loaded.join(' '),
      );
      const shown = await other.textContent('#fingerprint');
      const listed = (await devices()).find((d) => d.fingerprint === shown);
      assert.ok(listed, 'the CLI lists the @noble key too');
    } finally {
      await context.close();
    }
  });

  it('says so when the relay cannot be reached, and tries again', async () => {
    await h.relay.close();
    await page.waitForSelector('#unreachable');
    assert.match((await page.textContent('#unreachable'))!, /The relay cannot be reached/);
  });
});

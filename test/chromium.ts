// Debian's Chromium for the browser tests (playwright-core): .ci/run installs it, and a missing
// browser is a failure, never a skip.
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** Time Chromium has to start. */
const LAUNCH_TIMEOUT = 15_000; // ms

/** Chromium as CI runs it: as root, where it refuses to start with its sandbox. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox'],
    timeout: LAUNCH_TIMEOUT,
  });
}

/**
 * A page of a fresh context that accepts the loopback test relay's self-signed certificate,
 * with its console errors and uncaught exceptions collected into `errors`.
 */
export async function relayPage(browser: Browser, errors: string[]): Promise<Page> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return page;
}

/**
 * The web terminal's screen text (xterm.js's DOM rows, spaces normalised), or whether it shows
 * `needle`. Page code, for `page.evaluate`/`waitForFunction` (the page's CSP refuses string
 * evaluation): no closures, no Node types.
 */
export function terminalScreen(needle?: string): string | boolean {
  const doc = (globalThis as unknown as { document: { querySelector(s: string): unknown } })
    .document;
  const rows = doc.querySelector('#term-screen .xterm-rows') as { innerText: string } | null;
  const text = (rows?.innerText ?? '').replace(/\u00a0/g, ' ');
  return needle === undefined ? text : text.includes(needle);
}

/** Waits until the page's terminal shows `needle`; fails with `what` and the screen. Returns it. */
export async function waitForScreenText(
  page: Page,
  needle: string,
  what: string,
  timeoutMs: number,
): Promise<string> {
  try {
    await page.waitForFunction(terminalScreen, needle, { timeout: timeoutMs });
  } catch {
    throw new Error(
      `${what}: the screen shows\n${String(await page.evaluate(terminalScreen, undefined))}`,
    );
  }
  return String(await page.evaluate(terminalScreen, undefined));
}

/** Signs `user` up from the page's form (the page is at the relay's `/`), and waits for the signed-in view. */
export async function signUpInPage(page: Page, user: string, password: string): Promise<void> {
  await page.click('text=Create an account instead');
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('#fingerprint');
}

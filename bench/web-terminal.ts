// Time to an interactive terminal in the web page: from navigating to `https://RELAY/#attach=ID`
// (a browser already signed in, as after `share` hands out the link) to the remote shell's
// prompt on screen, and then a keystroke's echo — in Debian's Chromium against a relay and an
// agent on this machine.
//
//   npm run bench:web-terminal -- [--rounds N]
//
// Rounds alternate a cold HTTP cache (every asset fetched, as on a first visit) and a warm one;
// each is timed in three steps: logged in (the saved token accepted, the link's question shown:
// answered at once), attached (E2E handshake with the host done, welcome received), prompt (the
// shell's `$ ` drawn by xterm.js). Medians
// and 90th percentiles are printed, then the bytes the page fetched on a cold load (compressed,
// as sent), then one JSON line.
import { launchChromium, signUpInPage } from '../test/chromium.js';
import { Harness } from '../test/terminal-harness.js';

const args = process.argv.slice(2);
const at = args.indexOf('--rounds');
const rounds = Math.min(100, Math.max(2, Number(at >= 0 ? args[at + 1] : 20)));
/** Longest a step may take before the run is called failed. */
const STEP_MS = 30_000; // ms

const h = await new Harness().start();
const browser = await launchChromium();
try {
  const host = await h.user('benchhost');
  await h.agent(host, 'bench-web-1', { allow: ['benchweb'] });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const origin = `https://${h.server}`;
  {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`${origin}/`);
    await signUpInPage(page, 'benchweb', 'bench web password');
    await page.close();
  }

  const steps = ['logged in', 'attached', 'prompt', 'keystroke echo'] as const;
  const times: Record<'cold' | 'warm', Record<(typeof steps)[number], number[]>> = {
    cold: { 'logged in': [], attached: [], prompt: [], 'keystroke echo': [] },
    warm: { 'logged in': [], attached: [], prompt: [], 'keystroke echo': [] },
  };
  let coldBytes = 0;
  let coldFiles: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const cache = r % 2 === 0 ? 'cold' : 'warm';
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: cache === 'cold' });
    const fetched: string[] = [];
    let bytes = 0;
    cdp.on('Network.responseReceived', (e: { response: { url: string } }) =>
      fetched.push(new URL(e.response.url).pathname),
    );
    cdp.on('Network.loadingFinished', (e: { encodedDataLength: number }) => {
      bytes += e.encodedDataLength;
    });
    const started = performance.now();
    const mark = (step: (typeof steps)[number]): void => {
      times[cache][step].push(performance.now() - started);
    };
    await page.goto(`${origin}/#attach=bench-web-1`);
    await page.waitForSelector('#link-prompt');
    mark('logged in');
    // The page asks before it follows a link; the answer is given at once.
    await page.click('#link-prompt button:text-is("Open")');
    await page.waitForSelector('#term-status[data-state="attached"]');
    mark('attached');
    await page.waitForFunction(() =>
      (
        globalThis as unknown as { document: { querySelector(s: string): { innerText: string } } }
      ).document
        .querySelector('#term-screen .xterm-rows')
        ?.innerText.includes('$'),
    );
    mark('prompt');
    const typedAt = performance.now();
    await page.keyboard.type('x');
    await page.waitForFunction(() =>
      (
        globalThis as unknown as { document: { querySelector(s: string): { innerText: string } } }
      ).document
        .querySelector('#term-screen .xterm-rows')
        ?.innerText.includes('$ x'),
    );
    times[cache]['keystroke echo'].push(performance.now() - typedAt);
    if (cache === 'cold' && coldBytes === 0) {
      coldBytes = bytes;
      coldFiles = fetched.filter((p) => p === '/' || p.startsWith('/assets/'));
    }
    // Leave the shell as it was: rub out the x, then detach (the agent keeps one shell per attach).
    await page.keyboard.press('Backspace');
    await page.click('#term-back');
    await page.close();
  }

  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const pick = (xs: number[], q: number) =>
    sorted(xs)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
  const result: Record<string, { median: number; p90: number; n: number }> = {};
  console.log(
    `time to an interactive terminal in the page, ${rounds} rounds (ms from navigation; the echo from the keystroke):`,
  );
  for (const cache of ['cold', 'warm'] as const) {
    for (const step of steps) {
      const xs = times[cache][step];
      const row = { median: pick(xs, 0.5), p90: pick(xs, 0.9), n: xs.length };
      result[`${cache} cache: ${step}`] = row;
      console.log(
        `  ${`${cache} cache, ${step}:`.padEnd(30)} median ${row.median.toFixed(0).padStart(5)}  p90 ${row.p90.toFixed(0).padStart(5)}  (n=${row.n})`,
      );
    }
  }
  console.log(
    `cold load: ${coldBytes} bytes over the wire for ${coldFiles.length} files: ${coldFiles.join(' ')}`,
  );
  console.log(JSON.stringify({ rounds, result, coldBytes, coldFiles }));
} finally {
  await browser.close();
  await h.close();
}

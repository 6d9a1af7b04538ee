// The relay killed with SIGKILL under a terminal open in the web page, then started again on the
// same port and data: real processes everywhere (`switchboard serve`, `switchboard agent`) and
// Debian's Chromium. The page's terminal reconnects on its own, resumes its attachment (the same
// shell: a variable set before the kill is still set), and what the shell printed while the relay
// was down reaches the screen.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, relayPage, waitForScreenText, signUpInPage } from './chromium.js';
import {
  CLI,
  makeTempDir,
  runCli,
  startServeProcess,
  waitFor,
  type ServeProcess,
} from './helpers.js';

/** Time for a step through the relay, a shell or the browser. */
const STEP_MS = 30_000; // ms

describe(
  'a relay killed with SIGKILL under a terminal open in the page',
  { timeout: 180_000 },
  () => {
    const dataDir = makeTempDir();
    let relay: ServeProcess;
    let agent: ChildProcess;
    let agentLog = '';
    let browser: Browser;
    let page: Page;
    const consoleErrors: string[] = [];

    const showsOnScreen = (needle: string, what: string): Promise<string> =>
      waitForScreenText(page, needle, what, STEP_MS);

    before(async () => {
      relay = await startServeProcess(dataDir);
      const home = mkdtempSync(join(dataDir, 'host-'));
      const signup = await runCli(
        [
          'signup',
          '--user',
          'killhost',
          '--password-stdin',
          '--server',
          relay.server,
          '--fingerprint',
          relay.fingerprint,
        ],
        { home, stdin: 'killhost-password\n' },
      );
      assert.equal(signup.code, 0, signup.stderr);
      agent = spawn(
        process.execPath,
        [CLI, 'agent', '--session', 'kill-box', '--allow', 'webkill', '--allow-unknown'],
        {
          env: { ...process.env, SWITCHBOARD_HOME: home, PS1: '$ ' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      agent.stderr!.setEncoding('utf8').on('data', (t: string) => (agentLog += t));
      agent.stdout!.setEncoding('utf8').on('data', (t: string) => (agentLog += t));
      await waitFor(
        () => agentLog.includes('agent serving session kill-box'),
        STEP_MS,
        'the agent',
      );
      browser = await launchChromium();
      page = await relayPage(browser, consoleErrors);
      page.setDefaultTimeout(STEP_MS);
      await page.goto(`https://${relay.server}/`);
      await signUpInPage(page, 'webkill', 'web kill password');
      await page.waitForSelector('#sessions');
    });
    after(async () => {
      await browser?.close();
      agent?.kill('SIGTERM');
      if (agent && agent.exitCode === null && agent.signalCode === null) await once(agent, 'exit');
      relay?.child.kill('SIGKILL');
      await relay?.exited;
    });

    it('reconnects, resumes the same shell, and shows what it printed meanwhile', async () => {
      await page.click('tr[data-session="kill-box"] button:text-is("Open")');
      await page.waitForSelector('#term-status[data-state="attached"]');
      await page.click('#term-screen');
      await page.keyboard.type('MARK=kept-$((40+2)); echo before-kill');
      await page.keyboard.press('Enter');
      await showsOnScreen('before-kill\n', 'the output before the kill');
      // Printed by the shell while no relay runs: it waits in the host's replay buffer.
      await page.keyboard.type('(sleep 2; echo during-the-$((1+1))-outage) &');
      await page.keyboard.press('Enter');
      await showsOnScreen('(sleep 2; echo', 'the background command typed');
      relay.child.kill('SIGKILL');
      assert.equal((await relay.exited).signal, 'SIGKILL');
      await page.waitForSelector('#term-status[data-state="reconnecting"]');
      relay = await startServeProcess(dataDir, ['--port', String(relay.port)]);
      await page.waitForSelector('#term-status[data-state="attached"]');
      await showsOnScreen('during-the-2-outage', 'what the shell printed while the relay was down');
      // The same shell: what was set before the kill is still set.
      await page.keyboard.type('echo "$MARK after"');
      await page.keyboard.press('Enter');
      await showsOnScreen('kept-42 after', 'the variable set before the kill');
      assert.ok(!/could not resume/.test((await page.textContent('#term-info'))!));
      // Only the browser's own reports of the sockets the kill cut.
      assert.deepEqual(
        consoleErrors.filter((e) => !/^WebSocket connection to .* failed/.test(e)),
        [],
      );
    });
  },
);

// The lifecycle both journeys share: before the first step, a fresh output folder, a gateway
// (`serve --demo`) and Chromium with a laptop-sized page; after the last, the browser closed
// and the gateway stopped with SIGTERM, which must exit cleanly.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before } from 'node:test';

import { BrowserProblems, LAPTOP, freshOutput, journey, launchBrowser } from './browser.mjs';
import { REPO_ROOT, startGateway } from './gateway.mjs';

export const OUT = join(REPO_ROOT, 'test-output', 'browser');

/**
 * Registers the hooks and returns what the steps use: `problems` (console and CSP errors),
 * `step` (see `journey` in browser.mjs) and `live` — `live.gateway`, `live.browser` and
 * `live.page`, set once the hooks ran, when `onReady(live)` is called.
 */
export function setUpJourney(prefix, onReady = () => {}) {
  const problems = new BrowserProblems();
  const live = { gateway: null, browser: null, page: null };
  before(async () => {
    freshOutput(OUT, prefix);
    live.gateway = await startGateway(OUT, prefix);
    live.browser = await launchBrowser();
    const context = await problems.newContext(live.browser, LAPTOP, live.gateway.url);
    live.page = await context.newPage();
    onReady(live);
  });
  after(async () => {
    await live.browser?.close();
    if (live.gateway) {
      const code = await live.gateway.stop();
      assert.equal(code, 0, `the gateway did not exit cleanly on SIGTERM (code ${code})\n${live.gateway.logs()}`);
    }
  });
  const step = journey({
    problems, out: OUT, prefix, page: () => live.page, logs: () => live.gateway?.logs(2000),
  });
  return { problems, step, live };
}

// The browser side of the portal tests: Debian's Chromium driven by playwright-core (never a
// downloaded browser), a watch on every page for console errors, script errors and CSP
// violations, the steps of a journey, and small readers for what the pages show (tables,
// amounts, CSV).
//
// Journeys may run side by side (node --test runs test files in parallel), so each one writes
// only files named with its own prefix (`portal-`, `billing-`) into test-output/browser/.

import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps trying to reach Google services, which
// on a machine without internet access makes it slow and noisy.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const LAPTOP = { name: 'laptop', viewport: { width: 1366, height: 850 }, isMobile: false };
export const PHONE = { name: 'phone', viewport: { width: 390, height: 844 }, isMobile: true };

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Collects what a user's browser would complain about: console errors (which include CSP
 * violations and failed subresources), uncaught script errors, and CSP violation events.
 * A failed load of the *document itself* is not a problem: error pages (404, 422) are meant to
 * be served with their status.
 */
export class BrowserProblems {
  constructor() {
    this.list = [];
  }

  async newContext(browser, device, baseURL) {
    const context = await browser.newContext({
      baseURL,
      viewport: device.viewport,
      isMobile: device.isMobile,
      hasTouch: device.isMobile,
      deviceScaleFactor: 1,
      acceptDownloads: true,
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    // Injected by the browser driver, so the page's own CSP does not block it.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`);
      });
    });
    // Fail fast: nothing on these pages should take seconds.
    context.setDefaultTimeout(10_000);
    context.on('page', (page) => this.watch(page));
    return context;
  }

  watch(page) {
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const text = message.text();
      const where = message.location()?.url || '';
      const documentStatus = /^Failed to load resource: the server responded with a status of 4\d\d/;
      if (documentStatus.test(text) && where === page.url()) return;
      this.list.push(`console error on ${page.url()}: ${text} (${where})`);
    });
    page.on('pageerror', (error) => this.list.push(`script error on ${page.url()}: ${error.message}`));
  }

  /** Fails with every problem seen since the last call, and forgets them. */
  assertNone() {
    const seen = this.list.splice(0);
    assert.deepEqual(seen, [], `the browser reported problems:\n${seen.join('\n')}`);
  }
}

/** Makes `dir` and removes what an earlier run of this journey (files named `prefix…`) left there. */
export function freshOutput(dir, prefix) {
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) {
    if (name.startsWith(prefix)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * The steps of one journey. Each step is one test; the steps share one browser session and run
 * in order, and after a failed step the rest are skipped (they would only fail for the same
 * reason). A step fails on any browser complaint; a failed step leaves a screenshot of the page
 * it was on, and its message names the page and ends with the gateway's logs. A step's body gets
 * the test context (for `t.skip`).
 *
 * `page()` and `logs()` are asked when a step fails: the page the journey is on, the gateway's logs.
 */
export function journey({ problems, out, prefix, page, logs }) {
  let failedStep = null;
  return function step(name, body) {
    it(name, async (t) => {
      if (failedStep) {
        t.skip(`the step "${failedStep}" failed`);
        return;
      }
      try {
        await body(t);
        problems.assertNone();
      } catch (error) {
        failedStep = name;
        const current = page();
        const shot = join(out, `${prefix}failed-${name.replace(/\W+/g, '-').slice(0, 60)}.png`);
        await current?.screenshot({ path: shot, fullPage: true }).catch(() => {});
        const where = `\n  page: ${current?.url()}\n  screenshot: ${shot}\n${logs() ?? ''}`;
        error.message += where;
        // The reporter prints the stack, which was written with the message as it was.
        if (typeof error.stack === 'string') error.stack += where;
        throw error;
      }
    });
  };
}

/** Clicks something that submits a form or follows a link, and waits for the next page to load. */
export async function clickAndLoad(page, locator) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (frame) => frame === page.mainFrame() });
  navigated.catch(() => {}); // awaited below; a failed click must not leave it unhandled
  await locator.click();
  await navigated;
  await page.waitForLoadState('load');
}

/** A table as rows of { header text: cell text }, from its thead and tbody. */
export async function readTable(page, selector) {
  return page.locator(selector).evaluate((table) => {
    const clean = (cell) => cell.textContent.replace(/\s+/g, ' ').trim();
    const headers = [...table.querySelectorAll('thead th')].map(clean);
    return [...table.querySelectorAll('tbody tr')].map((row) => {
      const cells = [...row.querySelectorAll('td')].map(clean);
      const record = Object.fromEntries(headers.map((h, i) => [h, cells[i] ?? '']));
      if (row.title) record.title = row.title;
      if (row.dataset.keyId) record.keyId = row.dataset.keyId;
      return record;
    });
  });
}

/** A `<dl>` of facts as { term: description }, whitespace collapsed. */
export async function readFacts(page, selector) {
  return page.locator(selector).first().evaluate((list) => {
    const clean = (el) => el.textContent.replace(/\s+/g, ' ').trim();
    return Object.fromEntries([...list.querySelectorAll('dt')].map((dt) => [clean(dt), clean(dt.nextElementSibling)]));
  });
}

/** An amount as the portal shows it (`1,234.50`, `0.000016`, `0.000016 est.`) in micro-units. */
export function micros(text) {
  const match = /(-?)([\d,]+)(?:\.(\d{1,6}))?/.exec(text);
  assert.ok(match, `not an amount: ${JSON.stringify(text)}`);
  const whole = BigInt(match[2].replaceAll(',', ''));
  const fraction = BigInt((match[3] || '').padEnd(6, '0'));
  const value = Number(whole * 1_000_000n + fraction);
  return match[1] ? -value : value;
}

/** A count as the portal shows it (`1,234`). */
export function count(text) {
  const digits = text.replaceAll(',', '').trim();
  assert.match(digits, /^\d+$/, `not a count: ${JSON.stringify(text)}`);
  return Number(digits);
}

/** RFC 4180 CSV as rows of fields. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Saves a full-page screenshot as `<dir>/<prefix><device>-<name>.png`. */
export async function screenshot(page, dir, device, name, prefix = '') {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${prefix}${device.name}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What a user would have to scroll sideways to see, or sees sticking out of its box: the page
 * itself, a table, the navigation, or anything reaching past the edge of its card. (Code snippets
 * may scroll sideways: their lines must not be rewrapped.)
 */
export async function hiddenSideways(page) {
  return page.evaluate(() => {
    const found = [];
    if (document.documentElement.scrollWidth > window.innerWidth + 1) found.push('the page');
    for (const el of document.querySelectorAll('.table-wrap, .nav')) {
      if (el.scrollWidth > el.clientWidth + 1) found.push(`${el.querySelector('table')?.id || el.className} scrolls`);
    }
    for (const card of document.querySelectorAll('.card, .stat')) {
      const edge = card.getBoundingClientRect();
      for (const el of card.querySelectorAll('*')) {
        if (el.closest('pre, .table-wrap') && !el.matches('pre, .table-wrap')) continue;
        const box = el.getBoundingClientRect();
        if (box.width > 0 && (box.right > edge.right + 1 || box.left < edge.left - 1)) {
          const title = card.querySelector('h1, h2, .stat-label')?.textContent.trim() || card.className;
          found.push(`<${el.localName}> "${el.textContent.trim().slice(0, 40)}" sticks out of "${title}"`);
        }
      }
    }
    return found;
  });
}

/**
 * `hiddenSideways`, measured against the device's own width as well. On a phone (`isMobile`)
 * Chromium widens the layout viewport to fit content that is too wide, so `innerWidth` grows
 * with the overflow and the page never looks wider than the window; the screen does not grow.
 */
export async function hiddenSidewaysOn(page, device) {
  const found = await hiddenSideways(page);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > device.viewport.width + 1 && !found.includes('the page')) {
    found.push(`the page is ${width}px wide on a ${device.viewport.width}px screen`);
  }
  return found;
}

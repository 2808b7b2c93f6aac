// An agent (reseller) in a real browser (Debian's Chromium through playwright-core), against its
// own spawned `modelrouter serve --demo`: an operator (made with the command line) creates an
// agent in the console; a prospective tenant opens the agent's referral link, signs up and calls
// a model; the agent signs in, finds the tenant (by name, never by email) with its spend once the
// calls settle, and the commission at the agent's rate on the dashboard, the commission page,
// the month's statement and its CSV. A second agent sees none of it; each kind of session opens
// only its own site. The operator sees the agent's tenant and commission. Then every agent page
// and the console's agent pages are photographed at laptop and phone width into
// test-output/browser/agents-*.png.
//
// Each step is one test (see `journey` in browser.mjs). Nothing waits a fixed time: settlement
// is asynchronous, so the pages are reloaded until it shows, with a deadline.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from 'node:test';
import { setTimeout as pause } from 'node:timers/promises';

import {
  LAPTOP, PHONE, clickAndLoad, count, hiddenSidewaysOn, micros, parseCsv, readFacts, readTable, screenshot,
} from './browser.mjs';
import { callModel } from './gateway.mjs';
import { OUT, setUpJourney } from './journey.mjs';

const PREFIX = 'agents-'; // every file this journey writes into OUT
const SETTLE_DEADLINE_MS = 10_000;
const POLL_INTERVAL_MS = 100;
const RATE_BPS = 1000; // the agent's commission: 10 %
const CALLS = 3;

const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const operator = { email: `ops-${run}@example.com`, password: null };
const agent = {
  name: 'Northwind Partners',
  email: `agent-${run}@example.com`,
  password: null, // the one-time password, read from the "agent created" page
  ownPassword: 'Amber-river-6203', // chosen at the first sign-in, as a one-time password requires
  newPassword: 'Cedar-harbor-9912', // changed to later on the account page
  code: null,
  link: null,
  id: null,
};
const other = { name: 'Quiet Reseller', email: `agent2-${run}@example.com`, password: null };
const tenant = {
  name: 'Fjord Logistics',
  email: `tenant-${run}@example.com`,
  password: 'Steady-fjord-4418',
  key: null,
};
const month = new Date().toISOString().slice(0, 7); // the statement's month, UTC
/** What the tenant's usage page totals for its calls, in micro-units. */
let spend = 0;

// The journey's hooks set these before the first step runs; the other people's browser
// contexts are made by the steps (each has its own cookies, as separate browsers would).
let gateway;
let browser;
let page; // the operator's
let tenantPage;
let agentPage;
const { problems, step } = setUpJourney(PREFIX, (live) => {
  ({ gateway, browser, page } = live);
});

const text = async (selector, on = page) => (await on.locator(selector).first().textContent()).replace(/\s+/g, ' ').trim();
const path = (on) => new URL(on.url()).pathname;

async function newTab(device = LAPTOP) {
  const context = await problems.newContext(browser, device, gateway.url);
  return context.newPage();
}

async function signIn(on, site, email, password) {
  await on.goto(`/${site}/login`);
  await on.fill('#email', email);
  await on.fill('#password', password);
  await clickAndLoad(on, on.getByRole('button', { name: 'Sign in' }));
}

/** Signed in with a one-time password: the site's account page asks for one's own first. */
async function chooseOwnPassword(on, site, who, own) {
  assert.equal(path(on), `/${site}/account`, 'a one-time password opens only the password form');
  assert.match(await text('#notice', on), /one-time password/);
  await on.goto(`/${site}`);
  assert.equal(path(on), `/${site}/account`, 'nothing else opens before');
  await on.fill('#current_password', who.password);
  await on.fill('#new_password', own);
  await clickAndLoad(on, on.getByRole('button', { name: 'Change password' }));
  who.password = own;
}

async function createAgent(on, who) {
  await on.goto('/admin/agents');
  await on.fill('#name', who.name);
  await on.fill('#email', who.email);
  await on.fill('#commission', String(RATE_BPS / 100));
  await clickAndLoad(on, on.getByRole('button', { name: 'Create agent' }));
  assert.equal(await text('h1', on), 'Agent created');
  who.password = await text('#agent-password', on);
  who.code = await text('#agent-code', on);
  who.link = await text('#agent-link', on);
}

/** Reloads `url` until `ready()` holds, failing with `explain()` after the deadline. */
async function reloadUntil(on, url, ready, explain) {
  const deadline = Date.now() + SETTLE_DEADLINE_MS;
  for (;;) {
    await on.goto(url);
    if (await ready()) return;
    assert.ok(Date.now() < deadline, `${url} after ${SETTLE_DEADLINE_MS} ms: ${await explain()}`);
    await pause(POLL_INTERVAL_MS);
  }
}

/** Commission is worked out per settlement and rounded down: at most one micro-unit per call below the exact share. */
function assertCommission(shown, what) {
  const exact = Math.floor((spend * RATE_BPS) / 10_000);
  assert.ok(shown <= exact && shown >= exact - CALLS,
    `${what}: ${shown} micro-units is not 10 % of the spend ${spend} (${exact}, less at most ${CALLS} for rounding)`);
  assert.ok(shown > 0, `${what}: some commission`);
}

describe('an agent refers a tenant and earns commission', () => {
  step('an operator creates an agent; the one-time password, code and link are shown once', async () => {
    const created = await gateway.cli('admin', 'create', '--email', operator.email);
    const match = /operator (\S+) created; one-time password: (\S+)/.exec(created);
    assert.ok(match, `the CLI names the password: ${created}`);
    assert.equal(match[1], operator.email);
    operator.password = match[2];

    await signIn(page, 'admin', operator.email, operator.password);
    await chooseOwnPassword(page, 'admin', operator, 'Signal-tower-5108');
    await page.goto('/admin/agents');
    assert.match(await text('.empty'), /^No agents yet/);

    // A rate that is not a percentage is explained, and the form keeps what was typed.
    await page.fill('#name', agent.name);
    await page.fill('#email', agent.email);
    await page.fill('#commission', 'ten');
    await clickAndLoad(page, page.getByRole('button', { name: 'Create agent' }));
    assert.equal(await text('#form-error'), 'Give the commission as a percentage, like 10 or 12.5.');
    assert.equal(await page.inputValue('#email'), agent.email);

    await createAgent(page, agent);
    assert.match(await text('.alert-warn'), /shown only once/);
    const facts = await readFacts(page, 'dl.facts');
    assert.equal(facts.Agent, agent.name);
    assert.equal(facts.Email, agent.email);
    assert.ok(agent.password.length >= 16, `a long one-time password: ${agent.password}`);
    assert.match(agent.code, /^NORTHWINDP-[A-Z2-9]{4}$/, 'the code is made from the name');
    assert.equal(agent.link, `${gateway.url}/r/${agent.code}`);

    await clickAndLoad(page, page.getByRole('link', { name: 'Open the agent' }));
    agent.id = path(page).split('/').pop();
    assert.equal(await text('h1'), agent.name);
    assert.equal(await text('#agent-rate'), '10%');
    assert.equal(await page.locator('#tenants-table').count(), 0);
    assert.ok(await page.getByText('No tenants signed up through this agent yet.').isVisible());
    assert.ok(!(await page.content()).includes(agent.password), 'the password is not shown again');
  });

  step('a visitor opens the referral link, signs up referred by the agent, and calls a model', async () => {
    tenantPage = await newTab();
    await tenantPage.goto(agent.link);
    assert.equal(path(tenantPage), '/portal/signup');
    assert.equal(await text('#referred-by', tenantPage), `Referred by ${agent.name}.`);
    assert.equal(await tenantPage.inputValue('#referral_code'), agent.code);

    for (const [id, value] of Object.entries({
      name: tenant.name, email: tenant.email, password: tenant.password, password_confirm: tenant.password,
    })) await tenantPage.fill(`#${id}`, value);
    await clickAndLoad(tenantPage, tenantPage.getByRole('button', { name: 'Create account' }));
    assert.equal(path(tenantPage), '/portal');
    assert.equal(await text('#stat-balance .stat-value', tenantPage), '0.00 USD', 'the credit waits for the email');
    await clickAndLoad(tenantPage, tenantPage.locator('#verify-link'));
    await clickAndLoad(tenantPage, tenantPage.getByRole('link', { name: 'Go to your dashboard' }));
    assert.equal(await text('#stat-balance .stat-value', tenantPage), '5.00 USD', 'the sign-up credit');

    await tenantPage.goto('/portal/keys');
    await tenantPage.fill('#name', 'Referral test');
    await tenantPage.check('input[name=scope][value=auto]');
    await clickAndLoad(tenantPage, tenantPage.getByRole('button', { name: 'Create key' }));
    tenant.key = (await text('#new-key-value', tenantPage)).trim();

    const ids = [];
    for (let i = 0; i < CALLS; i += 1) {
      const call = await callModel(gateway.url, tenant.key, 'demo-gpt');
      assert.equal(call.status, 200, call.raw);
      ids.push(call.requestId);
    }
    // The tenant's own usage page is the measure of what it spent.
    await reloadUntil(tenantPage, '/portal/usage',
      async () => {
        if (!(await tenantPage.locator('#calls-table').count())) return false;
        const listed = (await readTable(tenantPage, '#calls-table')).map((r) => r.title);
        return ids.every((id) => listed.includes(id));
      },
      async () => `the calls ${ids} are not all listed`);
    spend = micros(await text('#total-cost', tenantPage));
    assert.ok(spend > 0, 'the calls cost something');
  });

  step('the agent signs in with the one-time password, chooses its own, and sees the tenant, its spend and 10 % of it', async () => {
    agentPage = await newTab();
    await signIn(agentPage, 'agent', agent.email, agent.password);
    await chooseOwnPassword(agentPage, 'agent', agent, agent.ownPassword);
    assert.equal(path(agentPage), '/agent');
    assert.equal(await text('.alert-info', agentPage), 'Your password was changed.');
    assert.equal(await text('h1', agentPage), `Hello, ${agent.name}`);
    assert.equal(await text('#referral-link', agentPage), agent.link);
    assert.equal(await text('#referral-code', agentPage), agent.code);
    assert.equal(count(await text('#stat-tenants .stat-value', agentPage)), 1);

    // Settlement is asynchronous: reload the tenants page until the tenant's spend is all there.
    let row;
    await reloadUntil(agentPage, '/agent/tenants',
      async () => {
        if (!(await agentPage.locator('#tenants-table').count())) return false;
        row = (await readTable(agentPage, '#tenants-table')).find((r) => r.Tenant === tenant.name);
        return row && micros(row['Spend this month']) === spend;
      },
      async () => `the tenant's row is ${JSON.stringify(row)}, its spend on the usage page ${spend}`);
    const rows = await readTable(agentPage, '#tenants-table');
    assert.equal(rows.length, 1);
    assert.equal(micros(row['Spend, all time']), spend);
    assertCommission(micros(row['Commission, all time']), 'the tenants page');
    const commission = micros(row['Commission, all time']);
    assert.ok(!(await agentPage.content()).includes(tenant.email), 'an agent never sees its tenants\' emails');

    await agentPage.goto('/agent');
    assert.equal(micros(await text('#stat-month .stat-value', agentPage)), commission, 'the dashboard\'s month');
    assert.equal(micros(await text('#stat-unpaid .stat-value', agentPage)), commission, 'nothing is paid yet');
    const newest = await readTable(agentPage, '#tenants-table');
    assert.deepEqual(newest.map((r) => r.Tenant), [tenant.name]);
    assert.ok(!(await agentPage.content()).includes(tenant.email));

    await agentPage.goto('/agent/commission');
    const months = await readTable(agentPage, '#months-table');
    const current = months.find((m) => m.Month === month);
    assert.ok(current, `a line for ${month}: ${JSON.stringify(months)}`);
    assert.equal(count(current.Tenants), 1);
    assert.equal(count(current.Calls), CALLS);
    assert.equal(micros(current.Usage), spend);
    assert.equal(micros(current.Commission), commission);
    assert.equal(current.Paid, 'not yet');

    await clickAndLoad(agentPage, agentPage.locator('#months-table tr', { hasText: month }).getByRole('link', { name: 'Statement' }));
    assert.equal(path(agentPage), `/agent/commission/${month}`);
    assert.equal(await text('h1', agentPage), `Commission statement, ${month}`);
    const facts = await readFacts(agentPage, 'dl.facts');
    assert.equal(facts.Agent, agent.name);
    assert.equal(micros(facts.Usage), spend);
    assert.equal(micros(facts.Commission), commission);
    assert.equal(facts.Paid, 'not yet');
    const lines = await readTable(agentPage, '#statement-table');
    assert.deepEqual(lines.map((l) => [l.Tenant, count(l.Calls), micros(l.Usage), micros(l.Commission)]),
      [[tenant.name, CALLS, spend, commission]]);

    const [download] = await Promise.all([
      agentPage.waitForEvent('download'),
      agentPage.getByRole('link', { name: 'Download CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `commission-${month}.csv`);
    const csvPath = join(OUT, `${PREFIX}statement-${month}.csv`);
    await download.saveAs(csvPath);
    const [header, ...records] = parseCsv(readFileSync(csvPath, 'utf8'));
    assert.deepEqual(header, ['month', 'tenant', 'calls', 'spend', 'commission', 'spend_micros', 'commission_micros']);
    assert.deepEqual(records, [[month, tenant.name, String(CALLS), records[0]?.[3], records[0]?.[4], String(spend), String(commission)]]);
    assert.equal(micros(records[0][3]), spend);
    assert.equal(micros(records[0][4]), commission);
    assert.ok(!readFileSync(csvPath, 'utf8').includes(tenant.email));
  });

  step('a second agent sees no tenants; each session opens only its own site', async () => {
    await createAgent(page, other);
    const second = await newTab();
    await signIn(second, 'agent', other.email, other.password);
    await chooseOwnPassword(second, 'agent', other, 'Linden-quay-3307');
    assert.equal(path(second), '/agent');
    assert.equal(count(await text('#stat-tenants .stat-value', second)), 0);
    assert.equal(micros(await text('#stat-month .stat-value', second)), 0);
    await second.goto('/agent/tenants');
    assert.equal(await text('.empty', second), 'No tenants yet.');
    await second.goto('/agent/commission');
    assert.ok(!(await second.content()).includes(tenant.name), 'nothing of the first agent\'s tenant');
    await second.goto(`/agent/commission/${month}`);
    assert.equal(await text('.empty', second), 'No settled usage by your tenants in this month.');
    await second.context().close();

    // The agent's session is no operator's and no tenant's.
    await agentPage.goto('/admin');
    assert.equal(path(agentPage), '/admin/login');
    await agentPage.goto('/admin/agents');
    assert.equal(path(agentPage), '/admin/login');
    await agentPage.goto('/portal');
    assert.equal(path(agentPage), '/portal/login');
    // Nor is the tenant's an agent's (or an operator's).
    await tenantPage.goto('/agent');
    assert.equal(path(tenantPage), '/agent/login');
    await tenantPage.goto('/agent/tenants');
    assert.equal(path(tenantPage), '/agent/login');
    await tenantPage.goto('/admin');
    assert.equal(path(tenantPage), '/admin/login');
    // And each is still signed in to its own.
    await agentPage.goto('/agent');
    assert.equal(path(agentPage), '/agent');
    await tenantPage.goto('/portal');
    assert.equal(path(tenantPage), '/portal');
  });

  step('the operator sees the agent with 1 tenant and its commission, and the tenant with its email', async () => {
    await page.goto('/admin/agents');
    const rows = await readTable(page, '#agents-table');
    assert.deepEqual(rows.map((r) => r.Agent).sort(), [agent.name, other.name].sort());
    const row = rows.find((r) => r.Agent === agent.name);
    assert.equal(row.Email, agent.email);
    assert.equal(row.Code, agent.code);
    assert.equal(row.Rate, '10%');
    assert.equal(count(row.Tenants), 1);
    assertCommission(micros(row['This month']), 'the console\'s list');
    assert.equal(micros(row.Unpaid), micros(row['This month']));
    assert.equal(row.Status, 'active');
    const second = rows.find((r) => r.Agent === other.name);
    assert.equal(count(second.Tenants), 0);
    assert.equal(micros(second['This month']), 0);

    await clickAndLoad(page, page.getByRole('link', { name: agent.name }));
    assert.equal(path(page), `/admin/agents/${agent.id}`);
    const tenants = await readTable(page, '#tenants-table');
    assert.equal(tenants.length, 1);
    assert.equal(tenants[0].Tenant, tenant.name);
    assert.equal(tenants[0].Email, tenant.email, 'operators see the tenant\'s email');
    assert.equal(micros(tenants[0]['Spend this month']), spend);
    assert.equal(micros(tenants[0].Commission), micros(row['This month']));
    const months = await readTable(page, '#months-table');
    assert.deepEqual(months.map((m) => [m['Month (UTC)'], micros(m.Usage), micros(m.Commission), m.Paid]),
      [[month, spend, micros(row['This month']), 'accruing']]);
  });

  step('the agent changes its password on the account page and signs in with the new one', async () => {
    await agentPage.goto('/agent/account');
    assert.equal((await readFacts(agentPage, 'dl.facts')).Email, agent.email);
    await agentPage.fill('#current_password', 'Not-the-password-1');
    await agentPage.fill('#new_password', agent.newPassword);
    await clickAndLoad(agentPage, agentPage.getByRole('button', { name: 'Change password' }));
    assert.equal(await text('#form-error', agentPage), 'Your current password is incorrect.');

    const previous = agent.password;
    await agentPage.fill('#current_password', agent.password);
    await agentPage.fill('#new_password', agent.newPassword);
    await clickAndLoad(agentPage, agentPage.getByRole('button', { name: 'Change password' }));
    assert.equal(path(agentPage), '/agent');
    assert.equal(await text('.alert-info', agentPage), 'Your password was changed.');

    await clickAndLoad(agentPage, agentPage.getByRole('button', { name: 'Sign out' }));
    assert.equal(path(agentPage), '/agent/login');
    assert.equal(await text('.alert-info', agentPage), 'You are signed out.');
    await signIn(agentPage, 'agent', agent.email, previous);
    assert.equal(path(agentPage), '/agent/login', 'the previous password no longer works');
    assert.ok(await agentPage.isVisible('#form-error'));
    await signIn(agentPage, 'agent', agent.email, agent.newPassword);
    assert.equal(path(agentPage), '/agent');
    assert.equal(await text('h1', agentPage), `Hello, ${agent.name}`);
  });

  for (const device of [LAPTOP, PHONE]) {
    step(`every agent page reads well at ${device.name} width (${device.viewport.width}px); screenshots saved`, async () => {
      const tab = await newTab(device);
      const sideways = [];
      const shoot = async (name) => {
        await tab.waitForLoadState('load');
        for (const what of await hiddenSidewaysOn(tab, device)) sideways.push(`${name}: ${what}`);
        await screenshot(tab, OUT, device, name, PREFIX);
      };
      try {
        // The agent portal (its session and the operator's live side by side in one browser).
        await tab.goto('/agent/login');
        await shoot('01-agent-login');
        await signIn(tab, 'agent', agent.email, agent.newPassword);
        assert.equal(path(tab), '/agent');
        await shoot('02-agent-dashboard');
        await tab.goto('/agent/tenants');
        await shoot('03-agent-tenants');
        await tab.goto('/agent/commission');
        await shoot('04-agent-commission');
        await tab.goto(`/agent/commission/${month}`);
        await shoot('05-agent-statement');
        await tab.goto('/agent/account');
        await shoot('06-agent-account');

        // The console's agent pages.
        await signIn(tab, 'admin', operator.email, operator.password);
        await tab.goto('/admin/agents');
        await shoot('07-console-agents');
        await createAgent(tab, { name: `Screenshot agent ${device.name}`, email: `agent-${device.name}-${run}@example.com` });
        await shoot('08-console-agent-created');
        await tab.goto(`/admin/agents/${agent.id}`);
        await shoot('09-console-agent');
        await tab.fill('#commission', 'lots');
        await clickAndLoad(tab, tab.getByRole('button', { name: 'Change rate' }));
        assert.equal(await text('#form-error', tab), 'Give the commission as a percentage, like 10 or 12.5.');
        await shoot('10-console-agent-error');
      } finally {
        await tab.context().close();
      }
      assert.deepEqual(sideways, [], 'content that only scrolling sideways shows');
    });
  }
});

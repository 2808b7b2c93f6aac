// An operator's journey through the operations console in a real browser (Debian's Chromium
// through playwright-core), against a spawned `modelrouter serve --demo`: sign in with the
// one-time password the CLI printed, add a provider pointing at the demo's mock upstream and test
// its connection, publish a model with a display name and prices, bind its route — and a tenant,
// in a browser of its own, finds the model by its display name, calls it by its public name and
// is charged the published price. Then a rollout sends about its share of API keys (sticky per
// key) to a candidate binding, which is promoted; the tenant is found, suspended (its calls get
// 403) and reactivated; orders, vouchers, the audit trail and the health page show what happened.
// Finally every console page is photographed at laptop and phone width into
// test-output/browser/console-*.png for a person to look at.
//
// Each step is one test (see `journey` in browser.mjs). Nothing waits a fixed time: what is
// asynchronous (metering, the audit trail, health figures) is polled with a deadline.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe } from 'node:test';
import { setTimeout as pause } from 'node:timers/promises';

import {
  LAPTOP, PHONE, clickAndLoad, count, hiddenSideways, micros, readFacts, readTable, screenshot,
} from './browser.mjs';
import { callModel } from './gateway.mjs';
import { OUT, setUpJourney } from './journey.mjs';

const PREFIX = 'console-'; // every file this journey writes into OUT
const DEADLINE_MS = 10_000;
const POLL_INTERVAL_MS = 100;

const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const operator = { email: `ops-${run}@example.com`, password: null };
const tenant = {
  name: 'Acme Robotics',
  email: `acme-${run}@example.com`,
  password: 'Copper-kettle-4821',
};
const provider = {
  name: 'acme-openai',
  region: 'eu-west',
  credential: `sk-acme-upstream-${randomBytes(12).toString('hex')}`,
  baseUrl: null, // the mock upstream's, read from the demo's provider
};
const model = {
  name: 'acme-chat',
  displayName: 'Acme Chat',
  input: '1.50', // per 1M tokens
  output: '6.00',
  upstream: 'acme-base',
  candidate: 'acme-next',
};
const ROLLOUT_PERCENT = 30;
const ROLLOUT_KEYS = 40;

// The journey's hooks set these before the first step runs.
let gateway;
let browser;
let page; // the operator's
let tenantPage; // the tenant's, in a browser context of its own
let tenantKey; // { id, secret }
const { problems, step } = setUpJourney(PREFIX, (live) => {
  ({ gateway, browser, page } = live);
  // Promote and roll back ask before they act; the operator says yes.
  page.on('dialog', (dialog) => dialog.accept());
});

const text = async (selector, on = page) => (await on.locator(selector).first().textContent()).replace(/\s+/g, ' ').trim();
const path = (target = page) => new URL(target.url()).pathname;

/** Polls `probe` until it returns something truthy, and returns that; fails after the deadline. */
async function eventually(what, probe, deadlineMs = DEADLINE_MS) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${deadlineMs} ms`);
    await pause(POLL_INTERVAL_MS);
  }
}

async function signInOperator(target) {
  await target.goto('/admin/login');
  await target.fill('#email', operator.email);
  await target.fill('#password', operator.password);
  await clickAndLoad(target, target.getByRole('button', { name: 'Sign in' }));
  assert.equal(path(target), '/admin');
}

async function signInTenant(target) {
  await target.goto('/portal/login');
  await target.fill('#email', tenant.email);
  await target.fill('#password', tenant.password);
  await clickAndLoad(target, target.getByRole('button', { name: 'Sign in' }));
  assert.equal(path(target), '/portal');
}

/** Creates a key through the portal's JSON API, as a script on the tenant's page would. */
async function createKey(name) {
  return tenantPage.evaluate(async (keyName) => {
    const session = await (await fetch('/api/portal/session')).json();
    const response = await fetch('/api/portal/keys', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ name: keyName }),
    });
    if (response.status !== 201) throw new Error(`key "${keyName}": ${response.status} ${await response.text()}`);
    const created = await response.json();
    return { id: created.id, secret: created.key };
  }, name);
}

/** The metered calls of the audit trail (newest first, every page), as the operator reads them. */
async function auditedCalls() {
  const calls = [];
  let before = null;
  for (;;) {
    const query = new URLSearchParams({ aggregate_type: 'InferenceCall', calls: 'on' });
    if (before !== null) query.set('before', String(before));
    const response = await page.request.get(`/api/admin/audit?${query}`);
    assert.equal(response.status(), 200, await response.text());
    const body = await response.json();
    for (const event of body.events) {
      const record = event.payload.Completed ?? event.payload;
      calls.push({ requestId: event.request_id, ...record });
    }
    if (body.next_before === null || body.next_before === undefined) return calls;
    before = body.next_before;
  }
}

/** The audited call of each request id, once all of them are in the trail. */
async function audited(requestIds) {
  return eventually(`calls ${requestIds.length} in the audit trail`, async () => {
    const byId = new Map((await auditedCalls()).map((c) => [c.requestId, c]));
    return requestIds.every((id) => byId.has(id)) ? requestIds.map((id) => byId.get(id)) : null;
  });
}

/** The upstream model a call ended on, from its attempts. */
const upstreamOf = (call) => call.attempts.at(-1).upstream_model;

describe('an operator in the console', () => {
  step('signs in with the one-time password the CLI printed, must choose its own, then the overview shows', async () => {
    const printed = await gateway.cli('admin', 'create', '--email', operator.email);
    const match = /operator (\S+) created; one-time password: (\S+)/.exec(printed);
    assert.ok(match, `the CLI names the operator and a password: ${printed}`);
    assert.equal(match[1], operator.email);
    operator.password = match[2];

    await page.goto('/admin');
    assert.equal(path(), '/admin/login', 'the console asks who you are');
    await page.fill('#email', operator.email);
    await page.fill('#password', 'not-the-password');
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
    assert.ok(await page.isVisible('#form-error'), 'a wrong password is refused');

    // A one-time password opens only the account page, until the operator chooses its own.
    await page.fill('#email', operator.email);
    await page.fill('#password', operator.password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
    assert.equal(path(), '/admin/account');
    assert.match(await text('#notice'), /^You signed in with a one-time password\./);
    await page.goto('/admin/providers');
    assert.equal(path(), '/admin/account', 'nothing else opens before');
    await page.fill('#current_password', operator.password);
    await page.fill('#new_password', operator.password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Change password' }));
    assert.equal(await text('#form-error'), 'Choose a password different from the current one.');
    await page.fill('#current_password', operator.password);
    await page.fill('#new_password', 'Signal-tower-5108');
    await clickAndLoad(page, page.getByRole('button', { name: 'Change password' }));
    assert.equal(await text('#notice'), 'Your password was changed. Other sessions were signed out.');
    operator.password = 'Signal-tower-5108';

    await page.goto('/admin');
    assert.equal(await text('h1'), 'Overview');
    assert.equal(await text('header .who'), operator.email);
    const stats = Object.fromEntries(await page.locator('.stat').evaluateAll((cards) => cards.map((card) => [
      card.querySelector('.stat-label').textContent.trim(), card.querySelector('.stat-value').textContent.trim(),
    ])));
    assert.equal(stats.Providers, '4 / 4', 'the demo\'s four providers, all enabled');
    assert.equal(stats.Models, '5 / 5', 'the demo\'s five models, all callable');
  });

  step('adds a provider at the mock upstream; its credential is never shown; the connection test shows a latency', async () => {
    await page.goto('/admin/providers');
    const demo = (await readTable(page, '#providers-table')).find((r) => r.Name === 'demo-openai');
    assert.ok(demo, 'the demo\'s OpenAI provider is listed');
    provider.baseUrl = demo['Base URL'];
    assert.match(provider.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);

    await page.fill('#name', provider.name);
    await page.selectOption('#protocol', 'openai');
    await page.fill('#region', provider.region);
    await page.fill('#base_url', provider.baseUrl);
    await page.fill('#credential', provider.credential);
    await clickAndLoad(page, page.getByRole('button', { name: 'Add provider' }));
    assert.equal(path(), `/admin/providers/${provider.name}`);
    assert.equal(await text('.alert-info'), 'The provider was added.');
    const facts = await readFacts(page, '#provider-facts');
    assert.equal(facts.Protocol, 'OpenAI-compatible');
    assert.equal(facts.Region, provider.region);
    assert.equal(facts['Base URL'], provider.baseUrl);
    assert.equal(facts.Status, 'enabled');
    assert.match(facts.Credential, /^Set · [0-9a-f]{8}…/, 'a fingerprint, not the credential');
    assert.equal(facts['Last test'], 'Never tested');
    assert.ok(!(await page.content()).includes(provider.credential), 'the credential is not on its page');

    await page.fill('#upstream_model', model.upstream);
    await clickAndLoad(page, page.getByRole('button', { name: 'Test connection' }));
    assert.equal(await text('.alert-info'), 'The connection test ran; its result is below.');
    const lastTest = await text('#last-test');
    assert.match(lastTest, /^ok OK in \d+ ms \(/, `the test succeeded with a latency: ${lastTest}`);
    assert.ok(lastTest.includes(model.upstream), `the test names the model asked: ${lastTest}`);

    await page.goto('/admin/providers');
    const row = (await readTable(page, '#providers-table')).find((r) => r.Name === provider.name);
    assert.equal(row.Protocol, 'OpenAI-compatible');
    assert.equal(row.Status, 'enabled');
    assert.equal(row.Credential, facts.Credential);
    assert.match(row['Last connection test'], /^ok /);
    assert.ok(!(await page.content()).includes(provider.credential), 'nor on the list');
  });

  step('publishes a model with a display name and prices, and binds its route to the new provider', async () => {
    await page.goto('/admin/models');
    await page.fill('#name', model.name);
    await page.fill('#display_name', model.displayName);
    await page.fill('#description', 'Acme\'s house model, served by the mock upstream');
    await page.fill('#context_window', '64000');
    await page.fill('#input', model.input);
    await page.fill('#output', model.output);
    await clickAndLoad(page, page.getByRole('button', { name: 'Publish model' }));
    assert.equal(path(), `/admin/models/${model.name}`, 'publishing opens the model\'s page');
    assert.ok(await page.isVisible('.alert-info'), 'a notice says the model was published');
    assert.equal(await text('h1'), `${model.displayName} ${model.name}`);
    assert.equal(await text('#model-state'), 'unrouted');
    await page.goto('/admin/models');
    let row = (await readTable(page, '#models-table')).find((r) => r['Public name'] === model.name);
    assert.ok(row, `${model.name} is listed after publishing (on ${page.url()})`);
    assert.equal(row['Display name'], model.displayName);
    assert.equal(row.State, 'unrouted', 'published, but nobody can call it yet');
    assert.ok(row['Price per 1M tokens (USD)'].includes(model.input) && row['Price per 1M tokens (USD)'].includes(model.output),
      `the prices: ${row['Price per 1M tokens (USD)']}`);

    await page.goto(`/admin/routes/${model.name}`);
    assert.match(await text('#binding'), /not bound/);
    const form = page.locator('#deployments form');
    await form.locator('select[name=provider]').first().selectOption(provider.name);
    await form.locator('input[name=upstream_model]').first().fill(model.upstream);
    await form.locator('input[name=weight]').first().fill('100');
    await form.locator('input[name=priority]').first().fill('0');
    await clickAndLoad(page, form.getByRole('button', { name: 'Save binding' }));
    assert.equal(path(), `/admin/routes/${model.name}`);
    assert.ok(await page.isVisible('.alert-info'), 'a notice says the binding was saved');
    const binding = await text('#binding');
    assert.ok(binding.includes(provider.name) && binding.includes(model.upstream), `the binding: ${binding}`);

    await page.goto('/admin/models');
    row = (await readTable(page, '#models-table')).find((r) => r['Public name'] === model.name);
    assert.equal(row.State, 'offered', 'bound, so tenants can call it');
  });

  step('a tenant sees the display name, calls the model by its public name and is charged the published price', async () => {
    const context = await problems.newContext(browser, LAPTOP, gateway.url);
    tenantPage = await context.newPage();
    await tenantPage.goto('/portal/signup');
    await tenantPage.fill('#name', tenant.name);
    await tenantPage.fill('#email', tenant.email);
    await tenantPage.fill('#password', tenant.password);
    await tenantPage.fill('#password_confirm', tenant.password);
    await clickAndLoad(tenantPage, tenantPage.getByRole('button', { name: 'Create account' }));
    assert.equal(path(tenantPage), '/portal');
    // The trial credit the calls are paid from comes with the verified email (the demo's link).
    await clickAndLoad(tenantPage, tenantPage.locator('#verify-link'));
    assert.equal(await text('h1', tenantPage), 'Email verified');

    await tenantPage.goto('/portal/models');
    const listed = (await readTable(tenantPage, '#models-table')).find((r) => r['model name'] === model.name);
    assert.ok(listed, `the tenant finds ${model.name} on its models page`);
    const names = await tenantPage.locator('#models-table tbody td:first-child strong').allTextContents();
    assert.ok(names.includes(model.displayName), `listed as ${model.displayName} (got ${names.join(', ')})`);
    assert.deepEqual([listed.Input, listed.Output], [model.input, model.output], 'at the published prices');

    tenantKey = await createKey('Acme backend');
    const call = await callModel(gateway.url, tenantKey.secret, model.name);
    assert.equal(call.status, 200, call.raw);
    assert.ok(call.json.choices[0].message.content.length > 0, 'the model answers');
    assert.equal(call.json.model, model.name, 'the answer names the public model, not the upstream one');

    const expected = Math.ceil((call.input * micros(model.input) + call.output * micros(model.output)) / 1_000_000);
    const row = await eventually('the call on the usage page', async () => {
      await tenantPage.goto('/portal/usage');
      if (!(await tenantPage.locator('#calls-table').count())) return null;
      return (await readTable(tenantPage, '#calls-table')).find((r) => r.title === call.requestId);
    });
    assert.equal(row.Model, model.name);
    assert.equal(count(row.Input), call.input);
    assert.equal(count(row.Output), call.output);
    assert.equal(micros(row.Cost), expected, `${call.input} in + ${call.output} out at ${model.input} / ${model.output} per 1M`);
  });

  step(`a rollout sends about ${ROLLOUT_PERCENT} % of keys to the candidate, each key always to the same side; promoting moves all`, async (t) => {
    await page.goto(`/admin/routes/${model.name}`);
    const form = page.locator('#rollout form');
    assert.equal(await form.locator('select[name=provider]').first().inputValue(), provider.name, 'the candidate starts as the binding');
    assert.equal(await form.locator('input[name=upstream_model]').first().inputValue(), model.upstream);
    await form.locator('input[name=upstream_model]').first().fill(model.candidate);
    await form.locator('#percent').fill(String(ROLLOUT_PERCENT));
    await clickAndLoad(page, form.getByRole('button', { name: 'Start rollout' }));
    assert.equal(await text('#rollout-percent'), `${ROLLOUT_PERCENT} %`);
    assert.ok((await text('#candidate')).includes(model.candidate), await text('#candidate'));
    assert.ok((await text('#binding')).includes(model.upstream), 'the binding is unchanged');
    await page.goto('/admin/routes');
    const listed = (await readTable(page, '#routes-table')).find((r) => r.Model.includes(model.name));
    assert.match(listed.Rollout, new RegExp(`${ROLLOUT_PERCENT}`), `the routes list shows the rollout: ${listed.Rollout}`);

    const keys = [];
    for (let i = 1; i <= ROLLOUT_KEYS; i += 1) keys.push(await createKey(`Rollout key ${i}`));
    const first = await Promise.all(keys.map((key) => callModel(gateway.url, key.secret, model.name)));
    for (const call of first) assert.equal(call.status, 200, call.raw);
    const calls = await audited(first.map((c) => c.requestId));
    const side = new Map();
    for (const [i, call] of calls.entries()) {
      assert.equal(call.key_id, keys[i].id);
      assert.ok(call.rollout, `a call during the rollout records its side: ${JSON.stringify(call)}`);
      assert.equal(upstreamOf(call), call.rollout.candidate ? model.candidate : model.upstream,
        'the side recorded is the deployment that served it');
      side.set(call.key_id, call.rollout.candidate);
    }
    // Keys are drawn by a hash of the rollout and key ids, so the count is binomial (40, 0.3): it
    // falls outside 3..24 (7.5 to 60 %) about once in 8,000 runs, while a share that is ignored
    // (no key, or every key) or misread fails every time.
    const candidates = [...side.values()].filter(Boolean).length;
    const share = (100 * candidates) / ROLLOUT_KEYS;
    assert.ok(candidates >= 3 && candidates <= 24,
      `${candidates} of ${ROLLOUT_KEYS} keys on the candidate (${share} %) for a ${ROLLOUT_PERCENT} % rollout`);
    t.diagnostic(`${candidates} of ${ROLLOUT_KEYS} keys on the candidate (${share} %)`);

    // Every key again: each lands where it landed before.
    const second = await Promise.all(keys.map((key) => callModel(gateway.url, key.secret, model.name)));
    for (const call of await audited(second.map((c) => c.requestId))) {
      assert.equal(call.rollout.candidate, side.get(call.key_id), `key ${call.key_id} stays on its side`);
    }

    await page.goto(`/admin/routes/${model.name}`);
    await clickAndLoad(page, page.getByRole('button', { name: 'Promote candidate' }));
    assert.ok(await page.isVisible('.alert-info'), 'a notice says the candidate was promoted');
    const binding = await text('#binding');
    assert.ok(binding.includes(model.candidate) && !binding.includes(model.upstream), `the binding is the candidate: ${binding}`);
    assert.equal(await page.locator('#rollout-percent').count(), 0, 'no rollout in progress');
    const after = await Promise.all(keys.slice(0, 10).map((key) => callModel(gateway.url, key.secret, model.name)));
    for (const call of await audited(after.map((c) => c.requestId))) {
      assert.equal(upstreamOf(call), model.candidate, 'after promotion every key uses the candidate');
      assert.equal(call.rollout, undefined, 'and no rollout is recorded');
    }
  });

  step('finds the tenant, sees its balance, keys and usage; a suspended tenant\'s calls get 403 until it is reactivated', async () => {
    await page.goto('/admin/tenants');
    await page.fill('#q', `acme-${run}`);
    await clickAndLoad(page, page.getByRole('button', { name: 'Search' }));
    assert.equal(await text('#matching'), '1 matching');
    const [row] = await readTable(page, '#tenants-table');
    assert.equal(row.Email, tenant.email);
    assert.equal(row.Name, tenant.name);
    assert.equal(row.Status, 'active');
    await clickAndLoad(page, page.getByRole('link', { name: tenant.email }));
    tenant.id = path().split('/').pop();
    assert.equal(await text('h1'), tenant.name);

    // Charges reach the balances and usage read models asynchronously: once every call is
    // counted, the operator sees the balance the tenant sees.
    const calledSoFar = 1 + 2 * ROLLOUT_KEYS + 10;
    const balance = await eventually('the tenant page counts every call, with the portal\'s balance', async () => {
      await tenantPage.goto('/portal');
      const seen = await text('#stat-balance .stat-value', tenantPage);
      await page.goto(`/admin/tenants/${tenant.id}`);
      if (!(await page.locator('#usage-table').count())) return null;
      const usage = (await readTable(page, '#usage-table')).find((u) => u.Model === model.name);
      const counted = usage && count(usage.Requests) === calledSoFar;
      return counted && (await text('#balance')) === seen.replace(/ USD$/, '') ? seen : null;
    });
    assert.ok(micros(balance) < 5_000_000, 'the calls were charged to the sign-up credit');
    const keys = await readTable(page, '#keys-table');
    assert.equal(keys.length, ROLLOUT_KEYS + 1, 'every key of the tenant');
    assert.ok(keys.some((k) => k.Name === 'Acme backend' && k.Status === 'active'));
    assert.ok(!(await page.content()).includes(tenantKey.secret), 'no key is shown whole');

    await page.fill('#suspend-reason', 'Unpaid invoice (browser test)');
    await clickAndLoad(page, page.getByRole('button', { name: 'Suspend' }));
    assert.equal(await text('#tenant-status'), 'suspended');
    assert.ok(await page.isVisible('#notice'));
    const refused = await callModel(gateway.url, tenantKey.secret, model.name);
    assert.equal(refused.status, 403, `a suspended tenant's call is refused at once: ${refused.raw}`);

    await clickAndLoad(page, page.getByRole('button', { name: 'Reactivate' }));
    assert.equal(await text('#tenant-status'), 'active');
    const again = await callModel(gateway.url, tenantKey.secret, model.name);
    assert.equal(again.status, 200, `a reactivated tenant's call works: ${again.raw}`);
  });

  step('lists the tenant\'s paid order and issues a batch of vouchers, shown once', async () => {
    // Suspending ended the tenant's portal sessions: it signs in again and tops up.
    await signInTenant(tenantPage);
    await tenantPage.goto('/portal/recharge');
    await tenantPage.fill('#amount', '20');
    await tenantPage.check('input[name=method][value=sandbox]');
    await clickAndLoad(tenantPage, tenantPage.getByRole('button', { name: 'Continue to payment' }));
    const orderId = /^\/portal\/recharge\/sandbox\/(.+)$/.exec(path(tenantPage))?.[1];
    assert.ok(orderId, `a sandbox pay page, not ${tenantPage.url()}`);
    await clickAndLoad(tenantPage, tenantPage.locator('#sandbox-pay'));
    assert.equal(await text('#order-state', tenantPage), 'paid');
    tenant.orderId = orderId;

    await page.goto('/admin/orders');
    await page.fill('#tenant', tenant.email);
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    const [order] = await readTable(page, '#orders-table');
    assert.equal(order.Order, orderId);
    assert.equal(order.Tenant, tenant.email);
    assert.equal(order['Amount (USD)'], '20.00');
    assert.equal(order.State, 'paid');
    await clickAndLoad(page, page.getByRole('link', { name: orderId }));
    assert.equal(await text('#order-state'), 'paid');
    assert.ok(await page.isVisible('#refund'), 'a paid order can be refunded');

    await page.goto('/admin/vouchers');
    await page.fill('#amount', '2.50');
    await page.fill('#count', '3');
    await page.fill('#note', `browser test ${run}`);
    await clickAndLoad(page, page.getByRole('button', { name: 'Issue' }));
    assert.equal(await text('h1'), '3 codes issued');
    assert.match(await text('.alert-warn'), /shown only once/);
    const codes = (await page.locator('#issued-codes code').allTextContents()).map((c) => c.trim());
    assert.equal(codes.length, 3);
    assert.equal(new Set(codes).size, 3, 'three different codes');

    await clickAndLoad(page, page.getByRole('link', { name: 'Done' }));
    assert.equal(path(), '/admin/vouchers');
    const listed = (await readTable(page, '#codes-table')).filter((c) => c.Note === `browser test ${run}`);
    assert.equal(listed.length, 3, 'the batch is listed');
    for (const line of listed) {
      assert.equal(line['Value (USD)'], '2.50');
      assert.equal(line.State, 'issued');
      assert.ok(codes.some((code) => code.startsWith(line.Code.replace(/…$/, ''))), `${line.Code} is the start of an issued code`);
    }
    const content = await page.content();
    assert.ok(codes.every((code) => !content.includes(code)), 'the list never shows a whole code');
  });

  step('the audit trail lists the operator\'s changes with the operator as actor; health shows the provider\'s calls', async () => {
    await page.goto('/admin/audit');
    await page.fill('input[name=actor]', operator.email);
    await clickAndLoad(page, page.getByRole('button', { name: 'Search' }));
    const events = await readTable(page, '#audit-table');
    const who = `operator (${operator.email})`;
    assert.ok(events.length > 0 && events.every((e) => e.Who.startsWith(who)), `only the operator's events: ${JSON.stringify(events.map((e) => e.Who))}`);
    const seen = (aggregate, event) => events.some((e) => e.Aggregate === aggregate && e.Event.startsWith(event));
    assert.ok(seen(`Provider ${provider.name}`, 'Registered'), 'the provider was added');
    assert.ok(seen(`Provider ${provider.name}`, 'ConnectionTested'), 'its connection was tested');
    assert.ok(seen(`CatalogModel ${model.name}`, 'Published'), 'the model was published');
    assert.ok(seen(`Route ${model.name}`, 'BindingChanged'), 'its route was bound');
    assert.ok(seen(`Route ${model.name}`, 'RolloutStarted'), 'a rollout started');
    assert.ok(seen(`Route ${model.name}`, 'RolloutPromoted'), 'and was promoted');
    assert.ok(seen(`Tenant ${tenant.id}`, 'Suspended'), 'the tenant was suspended');
    assert.ok(!(await page.content()).includes(provider.credential), 'the credential is not in the trail');

    // The provider served every call of the model.
    const served = 1 + 2 * ROLLOUT_KEYS + 10 + 1;
    const line = await eventually('the provider\'s calls on the health page', async () => {
      await page.goto('/admin/health');
      const found = (await readTable(page, '#health-table')).find((r) => r.Provider === provider.name);
      return found && count(found['Attempts 15 min']) === served ? found : null;
    });
    assert.equal(count(line['Attempts 24 h']), served);
    assert.match(line['Errors 15 min'], /^0(\.0)? ?%$|^0$/, `no errors: ${line['Errors 15 min']}`);
    assert.match(line['Avg 15 min'], /\d+ ms/);
  });

  for (const device of [LAPTOP, PHONE]) {
    step(`every console page reads well at ${device.name} width (${device.viewport.width}px); screenshots saved`, async () => {
      const context = await problems.newContext(browser, device, gateway.url);
      const tab = await context.newPage();
      const sideways = [];
      // A phone widens its layout viewport to fit a page that is too wide, which hides that page
      // from hiddenSideways: the viewport itself must keep the screen's width.
      const look = async (name) => {
        for (const what of await hiddenSideways(tab)) sideways.push(`${name}: ${what}`);
        const width = await tab.evaluate(() => window.innerWidth);
        if (width !== device.viewport.width) sideways.push(`${name}: the page is ${width}px wide`);
        await screenshot(tab, OUT, device, name, PREFIX);
      };
      const shoot = async (name, where) => {
        const response = await tab.goto(where);
        assert.equal(response.status(), 200, `${where} answers`);
        await look(name);
      };
      try {
        await tab.goto('/admin/login');
        await look('00-login');
        await signInOperator(tab);
        await shoot('01-overview', '/admin');
        await shoot('02-providers', '/admin/providers');
        await shoot('03-provider', `/admin/providers/${provider.name}`);
        await shoot('04-models', '/admin/models');
        await shoot('05-model', `/admin/models/${model.name}`);
        await shoot('06-routes', '/admin/routes');
        await shoot('07-route', `/admin/routes/${model.name}`);
        // A route with a rollout in progress shows its share and the promote/roll back actions.
        await tab.goto('/admin/routes/demo-mini');
        await tab.locator('#rollout form input[name=upstream_model]').first().fill('mock-demo-mini-next');
        await clickAndLoad(tab, tab.getByRole('button', { name: 'Start rollout' }));
        assert.ok(await tab.isVisible('#rollout-percent'), `the rollout started: ${await tab.locator('main').innerText()}`);
        await look('07-route-rollout');
        tab.once('dialog', (dialog) => dialog.accept());
        await clickAndLoad(tab, tab.getByRole('button', { name: 'Roll back' }));
        assert.equal(await tab.locator('#rollout-percent').count(), 0, 'and was rolled back');
        await shoot('08-tenants', '/admin/tenants');
        await shoot('09-tenant', `/admin/tenants/${tenant.id}`);
        await shoot('10-orders', '/admin/orders');
        await shoot('11-order', `/admin/orders/${tenant.orderId}`);
        await shoot('12-vouchers', '/admin/vouchers');
        await tab.fill('#amount', '1');
        await tab.fill('#count', '2');
        await clickAndLoad(tab, tab.getByRole('button', { name: 'Issue' }));
        assert.equal(await text('h1', tab), '2 codes issued');
        await look('12-vouchers-issued');
        await shoot('13-agents', '/admin/agents');
        await shoot('14-audit', `/admin/audit?actor=${encodeURIComponent(operator.email)}`);
        await shoot('15-health', '/admin/health');
      } finally {
        await context.close();
      }
      assert.deepEqual(sideways, [], 'content that only scrolling sideways shows');
    });
  }
});

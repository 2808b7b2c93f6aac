// A tenant's journey through the portal in a real browser (Debian's Chromium through
// playwright-core), against a spawned `modelrouter serve --demo`: sign up, verify the email
// through the demo's outbox (the trial credit appears only then), sign in, create keys
// with each model scope, call the gateway with them, find the calls on the usage page and in the
// CSV export, see the dashboard move, revoke a key, change the password. Then every page is
// photographed at laptop and phone width into test-output/browser/portal-*.png for a person to
// look at. (Money in the portal — top-ups, receipts, codes, statements — is billing.test.mjs.)
//
// Each step is one test (see `journey` in browser.mjs). Nothing waits a fixed time: what is
// asynchronous (metering, key revocation) is polled with a deadline.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe } from 'node:test';
import { setTimeout as pause } from 'node:timers/promises';

import {
  LAPTOP, PHONE, clickAndLoad, count, hiddenSidewaysOn, micros, parseCsv, readTable, screenshot,
} from './browser.mjs';
import { callModel } from './gateway.mjs';
import { OUT, setUpJourney } from './journey.mjs';

const PREFIX = 'portal-'; // every file this journey writes into OUT
const METERING_DEADLINE_MS = 10_000;
const REVOCATION_DEADLINE_MS = 5_000;
const POLL_INTERVAL_MS = 100;
const SIGNUP_CREDIT = 5_000_000; // micro-units: `serve --demo` gives every new sign-up 5.00

const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const user = {
  name: 'Harbor Analytics',
  email: `portal-${run}@example.com`,
  password: 'Blue-harbor-7391',
  newPassword: 'Green-lantern-2840',
};

// The three scopes a key can have, created through the form in this order.
const keys = {
  auto: { name: 'Backend (all models)', scope: 'auto', shown: 'All models' },
  set: { name: 'Chat app', scope: 'models', models: ['demo-gpt', 'demo-claude'], shown: 'demo-gpt, demo-claude' },
  fixed: { name: 'Qwen batch job', scope: 'fixed', model: 'demo-qwen', shown: 'Only demo-qwen' },
};

/** Every gateway call made: { key, model, protocol, status, requestId, input, output }. */
const calls = [];
/** Prices per million tokens as the models page lists them, in micro-units. */
const prices = {};

// The journey's hooks set these before the first step runs.
let gateway;
let browser;
let page;
const { problems, step } = setUpJourney(PREFIX, (live) => {
  ({ gateway, browser, page } = live);
});

const text = async (selector, on = page) => (await on.locator(selector).first().textContent()).replace(/\s+/g, ' ').trim();

/** A chat call with one of the journey's keys, remembered in `calls`. */
async function callGateway(key, model, protocol = 'openai') {
  const call = { key, model, protocol, ...(await callModel(gateway.url, key.secret, model, protocol)) };
  calls.push(call);
  return call;
}

/** The charge the price list promises: per-million prices, rounded up to a micro-unit. */
function expectedCost(call) {
  const price = prices[call.model];
  return Math.ceil((call.input * price.input + call.output * price.output) / 1_000_000);
}

async function signIn(target, email, password) {
  await target.goto('/portal/login');
  await target.fill('#email', email);
  await target.fill('#password', password);
  await clickAndLoad(target, target.getByRole('button', { name: 'Sign in' }));
}

async function signOut(target) {
  await clickAndLoad(target, target.getByRole('button', { name: 'Sign out' }));
}

async function fillSignup(target, fields) {
  await target.goto('/portal/signup');
  for (const [id, value] of Object.entries(fields)) await target.fill(`#${id}`, value);
  await clickAndLoad(target, target.getByRole('button', { name: 'Create account' }));
}

async function fillKeyForm(target, key) {
  await target.fill('#name', key.name);
  if (key.expiresOn) await target.fill('#expires_on', key.expiresOn);
  await target.check(`input[name=scope][value=${key.scope}]`);
  for (const model of key.models ?? []) await target.check(`input[name=models][value="${model}"]`);
  if (key.model) await target.selectOption('select[name=fixed_model]', key.model);
  await clickAndLoad(target, target.getByRole('button', { name: 'Create key' }));
}

async function usageRows() {
  return (await page.locator('#calls-table').count()) ? readTable(page, '#calls-table') : [];
}

describe('a tenant in the portal', () => {
  step('signs up: a weak password and a taken email are explained; the 5.00 credit waits for the email', async () => {
    await fillSignup(page, {
      name: user.name, email: user.email, password: 'short1', password_confirm: 'short1',
    });
    assert.equal(await text('#form-error'), 'Use at least 10 characters for your password.');
    assert.equal(await page.inputValue('#email'), user.email, 'the email stays filled in');
    assert.equal(await page.inputValue('#name'), user.name, 'the name stays filled in');
    assert.equal(await page.inputValue('#password'), '', 'the password is not sent back');
    assert.equal(await page.getAttribute('#password', 'aria-invalid'), 'true', 'the password field is marked');

    await page.fill('#password', user.password);
    await page.fill('#password_confirm', `${user.password}x`);
    await clickAndLoad(page, page.getByRole('button', { name: 'Create account' }));
    assert.equal(await text('#form-error'), 'The two passwords do not match.');

    await page.fill('#password', user.password);
    await page.fill('#password_confirm', user.password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Create account' }));
    assert.equal(new URL(page.url()).pathname, '/portal');
    assert.equal(await text('h1'), `Hello, ${user.name}`);
    assert.match(await text('.alert-info'), /^Welcome!/);
    assert.equal(await text('#stat-balance .stat-value'), '0.00 USD', 'no credit before the email is verified');
    assert.match(await text('#verify-email'),
      new RegExp(`^Confirm your email\\. Your trial credit of 5\\.00 USD is added once you open the link we sent to ${user.email.replace(/[.]/g, '\\.')}\\.`));
    assert.equal(await text('header .who'), user.email);

    // Someone else, not signed in, tries the same address in other letter case.
    const stranger = await problems.newContext(browser, LAPTOP, gateway.url);
    const other = await stranger.newPage();
    await fillSignup(other, {
      name: 'Someone', email: user.email.toUpperCase(), password: 'Other-pass-5521', password_confirm: 'Other-pass-5521',
    });
    assert.equal(await text('#form-error', other), 'An account with this email already exists. Sign in instead.');
    assert.equal(new URL(other.url()).pathname, '/portal/signup');
    await stranger.close();
  });

  step('verifies the email with one click from the demo\'s outbox; the 5.00 credit appears, once', async () => {
    // Without a mail server the demo shows the mail it would have sent, link included.
    await clickAndLoad(page, page.getByRole('link', { name: 'mail', exact: true }));
    assert.equal(new URL(page.url()).pathname, '/portal/mail');
    assert.equal(await text('section.mail h2'), 'Confirm your email for Model Router');
    const link = await page.getAttribute('section.mail a.button', 'href');
    assert.ok((await text('section.mail pre')).includes(link), 'the mail\'s text carries the same link');
    await page.goto('/portal');

    await clickAndLoad(page, page.locator('#verify-link'));
    assert.equal(new URL(page.url()).pathname, '/portal/verify-email');
    assert.equal(await text('h1'), 'Email verified');
    assert.equal(await text('#verified'),
      `Thank you: ${user.email} is verified. Your trial credit of 5.00 USD is on your balance.`);
    await clickAndLoad(page, page.getByRole('link', { name: 'Go to your dashboard' }));
    assert.equal(await text('#stat-balance .stat-value'), '5.00 USD');
    assert.equal(await page.locator('#verify-email').count(), 0, 'the reminder is gone');

    // The same link again: it says so, and credits nothing more.
    await page.goto(link);
    assert.equal(await text('h1'), 'Email already verified');
    await page.goto('/portal');
    assert.equal(await text('#stat-balance .stat-value'), '5.00 USD');
  });

  step('signs out and back in; a wrong password gets the generic message', async () => {
    await signOut(page);
    assert.equal(new URL(page.url()).pathname, '/portal/login');
    assert.equal(await text('.alert-info'), 'You are signed out.');
    await page.goto('/portal/keys');
    assert.equal(new URL(page.url()).pathname, '/portal/login', 'signed-out pages send you to sign in');

    await page.fill('#email', user.email);
    await page.fill('#password', 'Wrong-password-123');
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
    assert.equal(await text('#form-error'), 'The email or password is incorrect.');
    assert.equal(await page.inputValue('#email'), user.email);

    await page.fill('#password', user.password);
    await clickAndLoad(page, page.getByRole('button', { name: 'Sign in' }));
    assert.equal(new URL(page.url()).pathname, '/portal/keys', 'signing in returns to the page asked for');
    assert.equal(await text('header .who'), user.email);
  });

  step('creates keys for all models, selected models and one fixed model; each is shown once', async () => {
    await page.goto('/portal/keys');
    assert.match(await text('.empty'), /no keys yet/);
    const nextYear = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 5, 30));
    keys.set.expiresOn = nextYear.toISOString().slice(0, 10);

    for (const key of Object.values(keys)) {
      await page.goto('/portal/keys');
      await fillKeyForm(page, key);
      assert.equal(await text('h1'), 'Your new key');
      assert.match(await text('.alert-warn'), /shown only once/);
      assert.equal(await text('.card p strong'), key.name);
      key.secret = (await text('#new-key-value')).trim();
      assert.match(key.secret, /^sk-mr-\S{20,}$/);
      assert.equal(await page.isVisible('button[data-copy="new-key-value"]'), true, 'a Copy button');

      await clickAndLoad(page, page.getByRole('link', { name: 'Done' }));
      assert.equal(new URL(page.url()).pathname, '/portal/keys');
      assert.ok(!(await page.content()).includes(key.secret), 'the list never shows the whole key again');
      const row = (await readTable(page, '#keys-table')).find((r) => r.Name === key.name);
      assert.ok(row, `the new key "${key.name}" is listed`);
      key.id = row.keyId;
      key.prefix = row.Key.replace(/…$/, '');
      assert.ok(key.prefix.length >= 8 && key.secret.startsWith(key.prefix), `prefix ${row.Key} of ${key.secret}`);
      assert.ok(key.prefix.length < key.secret.length - 16, 'only a short prefix is listed');
      assert.deepEqual(row.Models.split(', ').sort(), key.shown.split(', ').sort(), 'the models the key may use');
      assert.equal(row.Status, 'active');
      assert.equal(row.Requests, '0');
      assert.equal(row['Last used (UTC)'], 'Never');
      if (key.expiresOn) {
        assert.equal(row.Expires, `Through ${key.expiresOn}`, 'the key is valid through the date chosen');
      } else {
        assert.equal(row.Expires, 'Never');
      }
    }
    assert.equal((await readTable(page, '#keys-table')).length, 3);
  });

  step('the models page lists names and prices, and snippets with this gateway\'s address', async () => {
    await page.goto('/portal/models');
    const rows = await readTable(page, '#models-table');
    const names = await page.locator('#models-table tbody td:first-child strong').allTextContents();
    for (const name of ['Demo GPT', 'Demo Mini', 'Demo Claude', 'Demo Qwen', 'Demo MiniMax']) {
      assert.ok(names.includes(name), `${name} is listed (got ${names.join(', ')})`);
    }
    for (const row of rows) {
      const id = row['model name'];
      prices[id] = { input: micros(row.Input), output: micros(row.Output) };
      assert.ok(prices[id].input > 0 && prices[id].output > 0, `${id} has prices: ${row.Input} / ${row.Output}`);
    }
    const gpt = rows.find((r) => r['model name'] === 'demo-gpt');
    assert.deepEqual([gpt.Input, gpt.Output], ['2.00', '8.00'], 'Demo GPT costs 2.00 in, 8.00 out per 1M tokens');

    // Snippets for the highlighted model; the Code link of any other model shows its own.
    const first = rows[0]['model name'];
    assert.equal(await text('#snippets h2'), `Call ${first}`);
    assert.equal(await text('#models-table tr.selected code'), first, 'the model of the snippets is highlighted');
    await clickAndLoad(page, page.locator('#models-table tr', { hasText: 'demo-gpt' }).getByRole('link', { name: 'Code' }));
    assert.equal(await text('#snippets h2'), 'Call demo-gpt');
    assert.equal(await text('#models-table tr.selected code'), 'demo-gpt');
    assert.ok((await text('#snippets p.muted')).includes(`Endpoint: ${gateway.url}`));
    const curl = await page.textContent('#snippet-curl');
    assert.ok(curl.startsWith(`curl ${gateway.url}/v1/chat/completions`), curl);
    assert.ok(curl.includes('"model": "demo-gpt"'), curl);
    assert.ok((await page.textContent('#snippet-openai')).includes(`OpenAI(base_url="${gateway.url}/v1"`));
    assert.ok((await page.textContent('#snippet-anthropic')).includes(`Anthropic(base_url="${gateway.url}"`));
    assert.ok((await page.textContent('#snippet-anthropic')).includes('model="demo-gpt"'));
    assert.ok((await page.textContent('#snippet-dashscope')).includes(`base_http_api_url = "${gateway.url}/api/v1"`));
  });

  step('each key calls the gateway within its scope, in the OpenAI and Anthropic protocols', async () => {
    const expectOk = (call) => {
      assert.equal(call.status, 200, `${call.key.name} → ${call.model}: ${call.raw}`);
      assert.ok(call.requestId, 'the response names its request id');
      assert.ok(call.input > 0 && call.output > 0, `usage reported: ${call.raw}`);
    };
    const expectRefused = (call) => {
      assert.equal(call.status, 403, `${call.key.name} → ${call.model} is outside the key's scope: ${call.raw}`);
      assert.match(JSON.stringify(call.json), new RegExp(call.model), 'the refusal names the model');
    };

    const mini = await callGateway(keys.auto, 'demo-mini');
    expectOk(mini);
    assert.ok(mini.json.choices[0].message.content.length > 0);
    const messages = await callGateway(keys.auto, 'demo-gpt', 'anthropic');
    expectOk(messages);
    assert.equal(messages.json.type, 'message');
    assert.ok(messages.json.content[0].text.length > 0);

    expectOk(await callGateway(keys.set, 'demo-claude'));
    expectRefused(await callGateway(keys.set, 'demo-mini'));
    expectOk(await callGateway(keys.fixed, 'demo-qwen'));
    expectRefused(await callGateway(keys.fixed, 'demo-gpt'));
  });

  step('the usage page shows the calls with key, model, tokens and the listed price; filters and CSV agree', async () => {
    const charged = calls.filter((c) => c.status === 200);
    const refused = calls.filter((c) => c.status !== 200);
    let rows = [];
    const deadline = Date.now() + METERING_DEADLINE_MS;
    for (;;) {
      await page.goto('/portal/usage');
      rows = await usageRows();
      const ids = new Set(rows.map((r) => r.title));
      if (charged.every((c) => ids.has(c.requestId))) break;
      assert.ok(Date.now() < deadline, `calls not on the usage page within ${METERING_DEADLINE_MS} ms: ` +
        `want ${charged.map((c) => c.requestId)}, see ${[...ids]}`);
      await pause(POLL_INTERVAL_MS);
    }

    for (const call of charged) {
      const row = rows.find((r) => r.title === call.requestId);
      assert.equal(row.Model, call.model);
      assert.equal(row.Key, `${call.key.name} (${call.key.prefix}…)`);
      assert.equal(row.Status, '200');
      assert.equal(count(row.Input), call.input, 'input tokens as the API reported them');
      assert.equal(count(row.Output), call.output, 'output tokens as the API reported them');
      assert.ok(!row.Cost.includes('est.'), 'the cost is measured, not estimated');
      assert.equal(micros(row.Cost), expectedCost(call), `${call.model}: ${call.input} in + ${call.output} out at the listed prices`);
      assert.match(row.Latency, /^[\d,]+ ms$/);
    }
    // Calls refused for the key's scope cost nothing: they are not listed, or listed free.
    for (const call of refused) {
      const row = rows.find((r) => r.title === call.requestId);
      if (row) assert.equal(micros(row.Cost), 0, `refused call ${call.model} is not charged`);
    }
    const listedRefusals = refused.filter((c) => rows.some((r) => r.title === c.requestId)).length;
    assert.equal(rows.length, charged.length + listedRefusals);
    assert.equal(await text('#matching'), `${rows.length} matching`);

    const sum = (list) => list.reduce((total, r) => total + micros(r.Cost), 0);
    const totals = await readTable(page, '#totals-table');
    for (const model of new Set(charged.map((c) => c.model))) {
      const total = totals.find((t) => t.Model === model);
      assert.ok(total, `a total for ${model}`);
      assert.equal(micros(total['Cost (USD)']), sum(rows.filter((r) => r.Model === model)));
    }
    assert.equal(micros(await text('#total-cost')), sum(rows));
    assert.ok(micros(await text('#total-cost')) > 0);

    // Filter by key: only that key's calls remain, and the totals follow.
    const keyOption = page.locator('#key option', { hasText: keys.auto.name });
    assert.equal(await keyOption.getAttribute('value'), keys.auto.id);
    await page.selectOption('#key', keys.auto.id);
    await clickAndLoad(page, page.getByRole('button', { name: 'Apply' }));
    assert.equal(new URL(page.url()).searchParams.get('key'), keys.auto.id);
    const autoRows = await usageRows();
    const autoCalls = charged.filter((c) => c.key === keys.auto);
    assert.deepEqual(autoRows.map((r) => r.title).sort(), autoCalls.map((c) => c.requestId).sort());
    assert.equal(micros(await text('#total-cost')), sum(autoRows));
    assert.deepEqual((await readTable(page, '#totals-table')).map((t) => t.Model).sort(), ['demo-gpt', 'demo-mini']);
    assert.equal(await page.inputValue('#key'), keys.auto.id, 'the filter stays chosen');

    // The export is exactly the filtered view.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    assert.match(download.suggestedFilename(), /^usage-\d{8}-\d{6}\.csv$/);
    const csvPath = join(OUT, `${PREFIX}usage-export.csv`);
    await download.saveAs(csvPath);
    const [header, ...records] = parseCsv(readFileSync(csvPath, 'utf8'));
    assert.deepEqual(header, [
      'time', 'request_id', 'key_name', 'key_prefix', 'model', 'protocol', 'stream', 'status',
      'input_tokens', 'cached_tokens', 'cache_write_tokens', 'output_tokens', 'reasoning_tokens',
      'estimated', 'cost', 'cost_micros', 'latency_ms', 'ttft_ms',
    ]);
    assert.equal(records.length, autoRows.length);
    for (const record of records) {
      const field = Object.fromEntries(header.map((h, i) => [h, record[i]]));
      const call = autoCalls.find((c) => c.requestId === field.request_id);
      assert.ok(call, `CSV row ${field.request_id} is one of the filtered calls`);
      const row = autoRows.find((r) => r.title === field.request_id);
      assert.equal(field.key_name, keys.auto.name);
      assert.equal(field.key_prefix, keys.auto.prefix);
      assert.equal(field.model, call.model);
      assert.equal(field.protocol, call.protocol);
      assert.equal(field.status, '200');
      assert.equal(Number(field.input_tokens), call.input);
      assert.equal(Number(field.output_tokens), call.output);
      assert.equal(Number(field.cost_micros), micros(row.Cost));
    }

    // Filter by model instead.
    await page.selectOption('#key', '');
    await page.selectOption('#model', 'demo-claude');
    await clickAndLoad(page, page.getByRole('button', { name: 'Apply' }));
    const claudeRows = await usageRows();
    assert.ok(claudeRows.length >= 1);
    assert.ok(claudeRows.every((r) => r.Model === 'demo-claude'), JSON.stringify(claudeRows));
    assert.deepEqual(
      claudeRows.filter((r) => r.Status === '200').map((r) => r.title),
      charged.filter((c) => c.model === 'demo-claude').map((c) => c.requestId),
    );
    assert.deepEqual((await readTable(page, '#totals-table')).map((t) => t.Model), ['demo-claude']);
    assert.equal(micros(await text('#total-cost')), sum(claudeRows));

    await clickAndLoad(page, page.getByRole('link', { name: 'Clear' }));
    assert.equal((await usageRows()).length, rows.length);
  });

  step('the dashboard shows this month\'s requests and spend, the balance that is left, and the chart', async () => {
    await page.goto('/portal/usage');
    const rows = await usageRows();
    const spend = micros(await text('#total-cost'));
    const requests = count(await page.locator('#totals-table tfoot th').nth(1).textContent());
    assert.equal(requests, rows.length);

    // The charge is taken from the balance asynchronously too: poll until it is.
    const deadline = Date.now() + METERING_DEADLINE_MS;
    for (;;) {
      await page.goto('/portal');
      if (micros(await text('#stat-balance .stat-value')) === SIGNUP_CREDIT - spend) break;
      assert.ok(Date.now() < deadline, `balance ${await text('#stat-balance .stat-value')} is not 5.00 minus ${spend} micro-units`);
      await pause(POLL_INTERVAL_MS);
    }
    assert.equal(count(await text('#stat-requests .stat-value')), requests);
    assert.equal(micros(await text('#stat-spend .stat-value')), spend);
    assert.match(await text('#stat-requests .muted'), /^3 active keys · 5 models$/);

    const bars = page.locator('svg.chart rect.bar');
    assert.equal(await bars.count(), 30, 'one bar per day for 30 days');
    const drawn = await bars.evaluateAll((rects) => rects
      .filter((r) => Number(r.getAttribute('height')) > 0)
      .map((r) => r.querySelector('title').textContent));
    const day = rows[0]['Time (UTC)'].slice(0, 10);
    assert.deepEqual(drawn, [`${day}: ${await text('#stat-spend .stat-value')}, ${requests} requests`],
      'one bar, on the day of the calls, with their spend and count on hover');
    const box = await page.locator('svg.chart').boundingBox();
    assert.ok(box.width > 600 && box.height > 100, `the chart is big enough to read: ${JSON.stringify(box)}`);
    const [, , w, h] = (await page.getAttribute('svg.chart', 'viewBox')).split(' ').map(Number);
    assert.ok(Math.abs((box.width / box.height) / (w / h) - 1) < 0.02,
      `the chart keeps its proportions, so its labels are not stretched: ${box.width}×${box.height} for ${w}×${h}`);

    const recent = await readTable(page, 'section.card table');
    assert.equal(recent.length, Math.min(5, rows.length));
    assert.deepEqual(recent.map((r) => r.Model), rows.slice(0, 5).map((r) => r.Model), 'newest calls first, as on the usage page');

    await clickAndLoad(page, page.getByRole('link', { name: 'Recharge →' }));
    assert.equal(micros(await text('#stat-balance .stat-value')), SIGNUP_CREDIT - spend);
    // `serve --demo` offers the sandbox payment method (billing.test.mjs pays with it).
    assert.ok(await page.isVisible('input[name=method][value=sandbox]'), 'the sandbox method is offered');
  });

  step('revokes a key from its edit page after confirming; the gateway refuses it within seconds', async () => {
    await page.goto('/portal/keys');
    const row = page.locator(`#keys-table tr[data-key-id="${keys.auto.id}"]`);
    assert.equal(await row.locator('td').nth(7).textContent(), '2', 'the key list counts the key\'s requests');
    await clickAndLoad(page, row.getByRole('link', { name: 'Edit' }));
    assert.equal(new URL(page.url()).pathname, `/portal/keys/${keys.auto.id}`);
    assert.equal(await text('h1'), `Key “${keys.auto.name}”`);
    assert.ok(!(await page.content()).includes(keys.auto.secret));
    await clickAndLoad(page, page.getByRole('link', { name: 'This key\'s usage →' }));
    assert.equal(await page.inputValue('#key'), keys.auto.id);
    assert.equal((await usageRows()).length, 2, 'the key\'s usage page lists its two calls');
    await page.goBack();

    let asked = null;
    page.once('dialog', (dialog) => {
      asked = dialog.message();
      dialog.accept();
    });
    await clickAndLoad(page, page.getByRole('button', { name: 'Revoke key' }));
    assert.equal(asked, 'Revoke this key? Requests using it will fail.');
    assert.equal(new URL(page.url()).pathname, '/portal/keys');
    assert.equal(await text('.alert-info'), 'The key was revoked. Requests with it are refused from now on.');
    const listed = (await readTable(page, '#keys-table')).find((r) => r.keyId === keys.auto.id);
    assert.equal(listed.Status, 'revoked');
    assert.equal(listed[''], 'View', 'a revoked key can be viewed, not edited');

    const deadline = Date.now() + REVOCATION_DEADLINE_MS;
    for (;;) {
      const call = await callGateway(keys.auto, 'demo-mini');
      if (call.status === 401) break;
      assert.equal(call.status, 200, call.raw);
      assert.ok(Date.now() < deadline, `the revoked key still works after ${REVOCATION_DEADLINE_MS} ms`);
      await pause(POLL_INTERVAL_MS);
    }
    assert.equal((await callGateway(keys.set, 'demo-claude')).status, 200, 'the other keys still work');

    // Dismissing the question leaves a key alone.
    await page.goto(`/portal/keys/${keys.fixed.id}`);
    page.once('dialog', (dialog) => dialog.dismiss());
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await page.goto('/portal/keys');
    assert.equal((await readTable(page, '#keys-table')).find((r) => r.keyId === keys.fixed.id).Status, 'active');
  });

  step('changes the password on the account page and signs in with the new one', async () => {
    await page.goto('/portal/account');
    assert.ok((await text('dl.facts')).includes(user.email));
    await page.fill('#current_password', user.password);
    await page.fill('#new_password', user.newPassword);
    await page.fill('#new_password_confirm', user.newPassword);
    await clickAndLoad(page, page.getByRole('button', { name: 'Change password' }));
    assert.match(await text('.alert-info'), /^Your password was changed\./);

    await signOut(page);
    await signIn(page, user.email, user.password);
    assert.equal(await text('#form-error'), 'The email or password is incorrect.', 'the old password no longer works');
    await signIn(page, user.email, user.newPassword);
    assert.equal(new URL(page.url()).pathname, '/portal');
    assert.equal(await text('h1'), `Hello, ${user.name}`);
  });

  step('an unknown address or a key that is not yours shows a friendly not-found page', async () => {
    const unknown = await page.goto('/portal/nope');
    assert.equal(unknown.status(), 404);
    assert.equal(await page.title(), 'Not found · Model Router');
    assert.equal(await text('main h1'), 'Not found');
    assert.match(await text('main'), /does not exist/);
    assert.equal(await page.locator('main .actions a.button').count(), 1, 'a way back');

    const missing = await page.goto('/portal/keys/not-a-key-of-yours');
    assert.equal(missing.status(), 404);
    assert.match(await text('main'), /does not exist, or it belongs to another account/);
    await clickAndLoad(page, page.getByRole('link', { name: 'Back to the dashboard' }));
    assert.equal(new URL(page.url()).pathname, '/portal');
  });

  for (const device of [LAPTOP, PHONE]) {
    step(`every page reads well at ${device.name} width (${device.viewport.width}px); screenshots saved`, async () => {
      const context = await problems.newContext(browser, device, gateway.url);
      const tab = await context.newPage();
      const sideways = [];
      const shoot = async (name) => {
        await tab.waitForLoadState('load');
        for (const what of await hiddenSidewaysOn(tab, device)) sideways.push(`${name}: ${what}`);
        await screenshot(tab, OUT, device, name, PREFIX);
      };
      try {
        await fillSignup(tab, { name: user.name, email: `new-${run}@example.com`, password: 'abcdefghijk', password_confirm: 'abcdefghijk' });
        assert.ok(await tab.isVisible('#form-error'));
        await shoot('01-signup-error');
        await tab.goto('/portal/login');
        await shoot('02-login');
        await signIn(tab, user.email, user.newPassword);
        await shoot('03-dashboard');
        await tab.goto('/portal/keys');
        await shoot('04-keys');
        await fillKeyForm(tab, { name: `Screenshot key (${device.name})`, scope: 'fixed', model: 'demo-minimax' });
        assert.ok(await tab.isVisible('#new-key-value'));
        await shoot('05-key-created');
        await tab.goto(`/portal/keys/${keys.set.id}`);
        await shoot('06-key-edit');
        await tab.goto('/portal/models');
        await shoot('07-models');
        await tab.goto('/portal/usage');
        await shoot('08-usage');
        await tab.goto('/portal/account');
        await shoot('09-account');
        await tab.goto('/portal/recharge');
        await shoot('10-recharge');
        await tab.goto('/portal/mail');
        await shoot('11-mail');
        await tab.goto('/portal/nope');
        await shoot('12-not-found');
      } finally {
        await context.close();
      }
      assert.deepEqual(sideways, [], 'content that only scrolling sideways shows');
    });
  }
});

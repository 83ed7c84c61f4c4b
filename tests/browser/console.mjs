// The web console in a real browser: headless Chromium, driven by
// playwright-core, against a running `kith serve`.
//
//   KITH_REST         the REST gateway's base URL, e.g. http://127.0.0.1:1234
//   KITH_KEY          an API key of the workspace to use
//   KITH_CHROMIUM     the Chromium binary (default /usr/bin/chromium)
//   KITH_SCREENSHOTS  a directory for full-page screenshots (optional)
//
// Records are made and changed through the contract's own REST routes
// (/kith/v1/…), as any client would; the console only reads them. Prints
// one line per step; exits non-zero, saying what failed, at the first
// failed check.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const REST = (process.env.KITH_REST || '').replace(/\/+$/, '');
const KEY = process.env.KITH_KEY || '';
const SCREENSHOTS = process.env.KITH_SCREENSHOTS || '';

const ADA = { name: 'Ada Lovelace', email: 'ada@example.com', externalId: 'ada-1' };
const ADA_RENAMED = 'Ada King, Countess of Lovelace';
const XSS_NAME = '<script>alert(1)</script>';

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

function step(text) {
  console.log(`ok - ${text}`);
}

/** A call to the contract's REST binding, with the key. */
async function api(method, path, body) {
  const response = await fetch(`${REST}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${KEY}`,
      'content-type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { unparsed: text };
  }
  return { status: response.status, json };
}

function expectStatus(result, wanted, what) {
  check(
    wanted.includes(result.status),
    `${what}: expected HTTP ${wanted.join(' or ')}, got ${result.status}: ${JSON.stringify(result.json)}`,
  );
}

/** Creates a customer, or finds the one a previous run left under its external id. */
async function customer(fields) {
  const created = await api('POST', '/kith/v1/customers', fields);
  if (created.status === 409 && fields.externalId) {
    // Run again on the same database: the customer is back to its name.
    const path = `/kith/v1/customers/external/${encodeURIComponent(fields.externalId)}`;
    const found = await api('PATCH', `${path}?update_mask=name`, { name: fields.name });
    expectStatus(found, [200], `reset customer ${fields.externalId}`);
    return found.json.customer;
  }
  expectStatus(created, [200], `create customer ${fields.name}`);
  return created.json.customer;
}

async function seed() {
  const ada = await customer(ADA);
  check(ada && ada.id, 'the created customer has no id');
  step(`created customer "${ADA.name}" (${ada.id}) through REST`);

  const xss = await customer({ name: XSS_NAME, email: 'xss@example.com', externalId: 'xss-1' });
  check(xss && xss.id, 'the second customer has no id');
  step('created a customer named <script>alert(1)</script> through REST');

  const types = await api('POST', '/kith/v1/entityTypes:batchUpsert', {
    types: [{ id: 'workspace', displayName: 'Workspace' }],
  });
  expectStatus(types, [200], 'upsert entity type');
  const entities = await api('POST', `/kith/v1/customers/external/${ADA.externalId}/entities:batchUpsert`, {
    entities: [{ id: 'engine-1', typeId: 'workspace', displayName: 'Analytical Engine' }],
  });
  expectStatus(entities, [200], 'upsert entity');
  step('gave Ada an entity of type "workspace"');

  const user = await api('POST', '/kith/v1/users:upsert', {
    keys: { email: 'charles@example.com' },
    name: 'Charles Babbage',
  });
  expectStatus(user, [200], 'upsert user');
  const member = await api('POST', `/kith/v1/customers/${ada.id}/members`, {
    userId: user.json.user.id,
    role: 'MEMBER_ROLE_OWNER',
  });
  expectStatus(member, [200], 'add member');
  step('made Charles Babbage an owner of Ada');
  return { ada, xss };
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  step(`screenshot ${path}`);
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()) || '';
}

async function run() {
  check(REST, 'KITH_REST is not set');
  check(KEY, 'KITH_KEY is not set');
  const { ada, xss } = await seed();

  const browser = await chromium.launch({
    executablePath: process.env.KITH_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    let dialogs = 0;
    page.on('dialog', (dialog) => {
      dialogs += 1;
      dialog.dismiss().catch(() => {});
    });

    // Signed out, every page leads to the sign-in form.
    await page.goto(`${REST}/console/customers`);
    check(pathOf(page) === '/console/sign-in', `signed out, /console/customers went to ${page.url()}`);
    step('signed out, /console/customers redirects to the sign-in page');
    await screenshot(page, 'sign-in');

    await page.fill('#key', 'kith_00000000000000000000000000000000_wrong');
    const refused = await Promise.all([page.waitForEvent('response', (r) => r.request().method() === 'POST'), page.click('form.sign-in button')]);
    await page.waitForLoadState();
    check(refused[0].status() === 401, `a wrong key answered ${refused[0].status()}, not 401`);
    check((await text(page, 'main')).includes('That key was not accepted'), 'a wrong key did not say it was not accepted');
    step('a wrong key is refused with "That key was not accepted"');

    await page.fill('#key', KEY);
    await Promise.all([page.waitForURL(/\/console\/customers$/), page.click('form.sign-in button')]);
    const workspace = (await text(page, '.workspace')).trim();
    check(workspace.length > 0, 'the top bar shows no workspace');
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'kith_console');
    check(session && session.httpOnly && session.sameSite === 'Strict', `the session cookie is not HttpOnly and SameSite=Strict: ${JSON.stringify(session)}`);
    check(!page.url().includes(KEY), 'the key is in a URL');
    step(`signed in through the form; workspace "${workspace}"`);

    // Times are turned into local time by console.js, which the content
    // security policy must let run.
    const firstTime = page.locator('time[datetime]').first();
    await firstTime.waitFor();
    await page.waitForFunction(() => document.querySelector('time[datetime]')?.title.endsWith('UTC'));
    step('console.js ran and showed times in local time');

    await page.fill('input[name=q]', 'lovelace');
    await Promise.all([page.waitForURL(/q=lovelace/), page.click('form.filters button')]);
    const names = await page.locator('tbody td:first-child a').allTextContents();
    check(names.includes(ADA.name), `searching "lovelace" did not list ${ADA.name}: ${JSON.stringify(names)}`);
    check(!names.includes(XSS_NAME), `searching "lovelace" listed ${XSS_NAME}`);
    step(`searching "lovelace" lists ${ADA.name} only`);
    await screenshot(page, 'customers');

    const [opened] = await Promise.all([
      page.waitForResponse((response) => new URL(response.url()).pathname === `/console/customers/${ada.id}`),
      page.getByRole('link', { name: ADA.name, exact: true }).click(),
    ]);
    await page.waitForLoadState();
    check(pathOf(page) === `/console/customers/${ada.id}`, `opening Ada went to ${page.url()}`);
    const headers = opened.headers();
    const csp = headers['content-security-policy'] || '';
    check(csp.includes("default-src 'self'") && csp.includes("frame-ancestors 'none'"), `no strict content security policy: "${csp}"`);
    check(headers['x-content-type-options'] === 'nosniff', 'no X-Content-Type-Options: nosniff');
    check((headers['cache-control'] || '').includes('no-store'), 'the page may be cached');
    step('opened Ada; the page has its security headers');

    const members = await text(page, '#members');
    check(members.includes('Charles Babbage') && members.includes('owner'), `the members section lacks Charles Babbage as owner: ${members}`);
    const entities = await text(page, '#entities');
    check(entities.includes('engine-1') && entities.includes('Analytical Engine') && entities.includes('workspace'), `the entities section lacks engine-1: ${entities}`);
    check((await text(page, '#history')).includes('created'), 'the history does not show the creation');
    step('Ada shows her member, her entity by type, and her creation in History');

    const renamed = await api('PATCH', `/kith/v1/customers/${ada.id}?update_mask=name`, { name: ADA_RENAMED });
    expectStatus(renamed, [200], 'update customer');
    step(`renamed Ada to "${ADA_RENAMED}" through REST`);

    await page.reload();
    check((await text(page, 'h1')).trim() === ADA_RENAMED, `after reload the heading is "${await text(page, 'h1')}"`);
    const history = await text(page, '#history');
    check(history.includes('updated') && history.includes('Changed: name'), `the history does not show the rename: ${history}`);
    check(history.includes(ADA_RENAMED), 'the history does not hold the renamed record');
    step('after a reload, History shows the rename');
    await screenshot(page, 'customer');

    await page.goto(`${REST}/console/customers/${xss.id}`);
    const heading = (await text(page, 'h1')).trim();
    check(heading === XSS_NAME, `the customer's name shows as "${heading}", not as text`);
    const scripts = await page.evaluate(() => document.querySelectorAll('script').length);
    check(scripts === 1, `the page has ${scripts} script elements; only console.js belongs`);
    await page.goto(`${REST}/console/customers`);
    check((await page.getByRole('link', { name: XSS_NAME, exact: true }).count()) === 1, 'the list does not show the name as text');
    await page.waitForTimeout(300);
    check(dialogs === 0, `${dialogs} dialog(s) opened: the name ran as script`);
    step('a customer named <script>alert(1)</script> shows as text, and no dialog fired');

    const forged = await page.request.post(`${REST}/console/keys`, { form: { csrf: 'forged' }, maxRedirects: 0 });
    check(forged.status() === 403, `a form with a forged token answered ${forged.status()}, not 403`);
    const forgedPage = await forged.text();
    check(forgedPage.includes('This form expired') || forgedPage.includes('another site'), 'a forged form was not told why it was refused');
    step('a form with a forged token is refused (403)');

    await page.goto(`${REST}/console/people`);
    check((await text(page, 'h1')).trim() === 'People', 'the people page has no heading');
    step('the people page renders');
    await screenshot(page, 'people');

    await Promise.all([page.waitForURL(/\/console\/sign-in$/), page.click('form.sign-out button')]);
    step('signed out through the top bar');
    await page.goto(`${REST}/console/customers`);
    check(pathOf(page) === '/console/sign-in', `after signing out /console/customers went to ${page.url()}`);
    step('after signing out, /console/customers redirects to the sign-in page');
  } finally {
    await browser.close();
  }
}

try {
  await run();
  console.log('console browser test passed');
} catch (error) {
  const message = error instanceof CheckFailed ? error.message : (error && error.stack) || String(error);
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

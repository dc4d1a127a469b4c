// Browser tests of the kvmesh web UI (nginx/html) against a live stack: Debian's headless Chromium driven by
// playwright-core, run by node's built-in test runner. KVMESH_E2E_HTTP is nginx's base URL; scripts/ui-tests.sh
// starts a throwaway stack and sets it. Screenshots go to ui-tests/artifacts/ (UPDATE_DOCS_SCREENSHOT=1 also
// refreshes docs/img/ui.png).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(HERE, '..', 'artifacts');
const DOCS_IMG = path.resolve(HERE, '..', '..', 'docs', 'img', 'ui.png');
const BASE = (process.env.KVMESH_E2E_HTTP || '').replace(/\/$/, '');
const CHROMIUM = process.env.KVMESH_CHROMIUM || '/usr/bin/chromium';
// A stack with auth on (scripts/e2e.sh's): the page gets the admin token as a user would paste it, and so do the
// writes made from outside the page.
const TOKEN = (process.env.KVMESH_E2E_TOKEN || '').trim();
const auth = () => (TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {});
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
const run = randomUUID().slice(0, 8);
const key = (name) => `ui-${run}/${name}`;

/** A write from outside the page, straight to the REST API (as curl would). */
async function httpPut(k, value, extra = {}) {
  const res = await fetch(`${BASE}/api`, { method: 'PUT', headers: { 'Content-Type': 'application/json', ...auth() },
    body: JSON.stringify({ key: k, value, ...extra }) });
  const body = await res.text();
  assert.equal(res.status, 200, `PUT ${k}: ${res.status} ${body}`);
  return JSON.parse(body);
}

async function httpDelete(k) {
  const res = await fetch(`${BASE}/kv?key=${encodeURIComponent(k)}&mode=SYNC`, { method: 'DELETE', headers: auth() });
  assert.equal(res.status, 200);
}

/** Polls fn until it stops throwing (an assertion that becomes true), or rethrows its last failure. */
async function eventually(fn, { timeout = 10000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    try { return await fn(); } catch (e) { if (Date.now() > end) throw e; }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const text = (page, sel) => page.locator(sel).innerText();

/** A fresh page (own context) for one test; screenshot afterwards, pass or fail; page errors fail the test. */
async function withPage(t, name, fn, viewport = { width: 1280, height: 900 }, { token = TOKEN } = {}) {
  const context = await browser.newContext({ viewport });
  if (token) await context.addInitScript((t) => localStorage.setItem('kvmesh.token', t), token);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // Failed requests the test causes on purpose (404, 409, 400) are logged by Chromium; anything else is a problem.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (400|401|403|404|409)/.test(m.text())) {
      problems.push('console: ' + m.text());
    }
  });
  let ok = false;
  try {
    await page.goto(BASE + '/');
    await fn(page, context);
    ok = true;
  } finally {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}${ok ? '' : '-FAILED'}.png`), fullPage: true }).catch(() => {});
    await context.close();
  }
  assert.deepEqual(problems, [], 'no errors in the page');
}

describe('kvmesh web UI', { skip: !BASE && 'KVMESH_E2E_HTTP is not set (run scripts/ui-tests.sh)' }, () => {
  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => { await browser?.close(); });

  test('loads with local assets only, a label on every field, and a healthy service', (t) => withPage(t, '01-loaded', async (page) => {
    const foreign = [];
    page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:')) foreign.push(r.url()); });
    await page.reload();
    assert.equal(await page.title(), 'kvmesh');
    await eventually(async () => assert.equal(await text(page, '#health-text'), 'service healthy'));
    const unlabelled = await page.$$eval('input, textarea, select', (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
    assert.deepEqual(unlabelled, []);
    const unnamedButtons = await page.$$eval('button', (els) => els.filter((b) => !b.textContent.trim()).length);
    assert.equal(unnamedButtons, 0);
    assert.deepEqual(foreign, [], 'every request goes to the same origin (no CDN)');
  }));

  test('put with SYNC, then get shows value, version, source and timestamps', (t) => withPage(t, '02-put-get', async (page) => {
    const k = key('hello');
    await page.fill('#put-key', k);
    await page.fill('#put-value', 'hello from the browser');
    await page.check('#put-sync');
    await page.click('#put-form button[type=submit]');
    await eventually(async () => {
      const out = await text(page, '#put-out');
      assert.match(out, /Applied/);
      assert.match(out, /version\s+1/);
      assert.match(out, /operation\s+[0-9a-f-]{36}/);
    });

    await page.fill('#get-key', k);
    await page.press('#get-key', 'Enter');
    await eventually(async () => {
      const out = await text(page, '#get-out');
      assert.match(out, /value\s+hello from the browser/);
      assert.match(out, /version\s+1/);
      assert.match(out, /source\s+(redis|postgres)/);
      assert.match(out, /created\s+.*\(\d{4}-\d\d-\d\dT/);
      assert.match(out, /updated\s+.*\(\d{4}-\d\d-\d\dT/);
      assert.match(out, /expires\s+never/);
    });
  }));

  test('TTL and expected-version options; a version conflict and bad input read as messages', (t) => withPage(t, '03-options-errors', async (page) => {
    const k = key('ttl');
    await page.fill('#put-key', k);
    await page.fill('#put-value', 'short-lived');
    await page.fill('#put-ttl', '1h');
    await page.fill('#put-expect', '0');
    await page.check('#put-sync');
    await page.click('#put-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#put-out'), /Applied[\s\S]*version\s+1/));

    await page.fill('#get-key', k);
    await page.click('#get-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#get-out'), /expires\s+.*\(\d{4}-\d\d-\d\dT/));

    // Same condition again: the key exists now, so the SYNC put is rejected with 409 / ABORTED.
    await page.click('#put-form button[type=submit]');
    await eventually(async () => {
      const err = await text(page, '#put-out [role=alert]');
      assert.match(err, /^Conflict \(HTTP 409, ABORTED\): version conflict: expected version 0, current version 1/);
      assert.match(err, /current version 1/);
    });

    await page.fill('#put-ttl', 'soon');
    await page.click('#put-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#put-out [role=alert]'), /Invalid input: TTL "soon" is not a duration/));

    await page.fill('#get-key', key('never-written'));
    await page.click('#get-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#get-out [role=alert]'),
      /^Not found \(HTTP 404, NOT_FOUND\): key not found: /));
  }));

  test('delete removes the key', (t) => withPage(t, '04-delete', async (page) => {
    const k = key('doomed');
    await httpPut(k, 'bye', { mode: 'SYNC' });
    await page.fill('#del-key', k);
    await page.check('#del-sync');
    await page.click('#del-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#del-out'), /Deleted[\s\S]*status\s+applied[\s\S]*version\s+2/));
    await page.fill('#get-key', k);
    await page.click('#get-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#get-out'), /Not found/));

    // a SYNC delete of a key that is not there applies and changes nothing: not a green "Deleted"
    await page.fill('#del-key', key('never-there'));
    await page.click('#del-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#del-out'), /^Nothing deleted: key did not exist/));
    assert.doesNotMatch(await text(page, '#del-out'), /Deleted/);
    assert.equal(await page.$eval('#del-out .result', (e) => e.classList.contains('noop')), true);
  }));

  test('list pages through the keys under a prefix', (t) => withPage(t, '05-list', async (page) => {
    const prefix = key('list/');
    for (let i = 0; i < 5; i++) await httpPut(prefix + i, 'value ' + i, { mode: 'SYNC' });
    await page.fill('#ls-prefix', prefix);
    await page.fill('#ls-size', '2');
    await page.click('#ls-form button[type=submit]');
    const keys = () => page.$$eval('#ls-out tbody tr td:first-child', (tds) => tds.map((td) => td.innerText));
    await eventually(async () => assert.deepEqual(await keys(), [prefix + 0, prefix + 1]));
    assert.equal(await text(page, '#ls-page'), 'Page 1 · 2 entries');
    assert.equal(await page.isDisabled('#ls-prev'), true);
    await page.click('#ls-next');
    await eventually(async () => assert.deepEqual(await keys(), [prefix + 2, prefix + 3]));
    await page.click('#ls-next');
    await eventually(async () => assert.deepEqual(await keys(), [prefix + 4]));
    assert.equal(await page.isDisabled('#ls-next'), true);
    await page.click('#ls-prev');
    await eventually(async () => assert.deepEqual(await keys(), [prefix + 2, prefix + 3]));
    // A key in the list opens it in Get.
    await page.click(`#ls-out button:text-is("${prefix}3")`);
    await eventually(async () => assert.match(await text(page, '#get-out'), /value\s+value 3/));

    await page.fill('#ls-size', '5000');
    await page.click('#ls-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#ls-out [role=alert]'), /page size must be between 1 and 1000/));
  }));

  test('operation status: an async put becomes APPLIED; an unknown id is not found', (t) => withPage(t, '06-operation', async (page) => {
    await page.fill('#put-key', key('op'));
    await page.fill('#put-value', 'v');
    await page.click('#put-form button[type=submit]');
    await eventually(async () => assert.match(await text(page, '#put-out'), /Queued/));
    const id = (await text(page, '#put-out button.linklike')).trim();
    await eventually(async () => {
      await page.click('#put-out button.linklike');        // looks the operation up
      const out = await text(page, '#op-out');
      assert.match(out, /state\s+APPLIED/);
      assert.match(out, new RegExp('operation\\s+' + id));
      assert.match(out, /kind\s+PUT/);
    }, { interval: 300 });
    assert.equal(await page.inputValue('#op-id'), id);

    await page.fill('#op-id', randomUUID());
    await page.press('#op-id', 'Enter');
    await eventually(async () => assert.match(await text(page, '#op-out [role=alert]'), /^Not found \(HTTP 404, NOT_FOUND\)/));
  }));

  test('live feed shows changes written from outside the page, with pause and clear', (t) => withPage(t, '07-live-feed', async (page) => {
    const prefix = key('feed/');
    await page.fill('#feed-prefix', prefix);
    await page.click('#feed-toggle');
    assert.equal(await text(page, '#feed-toggle'), 'Stop watching');
    // The watch subscribes on the server shortly after the request: write until the first event shows.
    let n = 0;
    await eventually(async () => {
      await httpPut(prefix + 'a', 'outside-' + n++);
      await page.waitForSelector('#feed li', { timeout: 700 });
    }, { timeout: 15000, interval: 0 });
    assert.match(await text(page, '#feed li:first-child'), new RegExp(`PUT v\\d+\\s+${prefix}a = outside-\\d+`));
    assert.match(await text(page, '#feed-status'), /Watching keys under ".*" · \d+ events? received/);

    // Other prefixes are not shown.
    await httpPut(key('elsewhere'), 'x');

    await page.click('#feed-pause');
    assert.equal(await page.getAttribute('#feed-pause', 'aria-pressed'), 'true');
    await httpPut(prefix + 'b', 'while-paused', { mode: 'SYNC' });
    await eventually(async () => assert.match(await text(page, '#feed-status'), /Paused · 1 new event held back/));
    assert.doesNotMatch(await text(page, '#feed'), /while-paused/);
    await page.click('#feed-pause');
    await eventually(async () => assert.match(await text(page, '#feed li:first-child'), /while-paused/));

    await httpDelete(prefix + 'b');
    await eventually(async () => assert.match(await text(page, '#feed li:first-child'), new RegExp(`DELETE v2\\s+${prefix}b`)));
    assert.doesNotMatch(await text(page, '#feed'), /elsewhere/);
    await page.screenshot({ path: path.join(ARTIFACTS, '07-live-feed-events.png'), fullPage: true });

    await page.click('#feed-clear');
    assert.equal(await page.locator('#feed li').count(), 0);
    await httpPut(prefix + 'c', 'after-clear');
    await eventually(async () => assert.match(await text(page, '#feed li:first-child'), /after-clear/));
    assert.equal(await page.locator('#feed li').count(), 1);

    await page.click('#feed-toggle');
    assert.equal(await text(page, '#feed-status'), 'Stopped.');
  }));

  test('keyboard only: tab to the put form, fill it and submit', (t) => withPage(t, '08-keyboard', async (page) => {
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement.id)) !== 'put-key'; i++) {
      await page.keyboard.press('Tab');
    }
    assert.equal(await page.evaluate(() => document.activeElement.id), 'put-key');
    await page.keyboard.type(key('keyboard'));
    await page.keyboard.press('Tab');
    await page.keyboard.type('typed');
    await page.keyboard.press('Tab');   // TTL
    await page.keyboard.press('Tab');   // expected version
    await page.keyboard.press('Tab');   // SYNC
    await page.keyboard.press('Space');
    assert.equal(await page.isChecked('#put-sync'), true);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Put');
    await page.keyboard.press('Enter');
    await eventually(async () => assert.match(await text(page, '#put-out'), /Applied[\s\S]*version\s+1/));
    const outline = await page.evaluate(() => { const b = document.querySelector('#put-form button'); b.focus(); return getComputedStyle(b).outlineStyle; });
    assert.notEqual(outline, 'none', 'focus is visible');
  }));

  test('usable at phone width (375 px): no horizontal scrolling', (t) => withPage(t, '09-phone', async (page) => {
    const prefix = key('phone/');
    await httpPut(prefix + 'a-rather-long-key-name-that-should-wrap-nicely', 'x'.repeat(200), { mode: 'SYNC' });
    await page.fill('#ls-prefix', prefix);
    await page.click('#ls-form button[type=submit]');
    await page.waitForSelector('#ls-out tbody tr');
    await page.fill('#get-key', prefix + 'a-rather-long-key-name-that-should-wrap-nicely');
    await page.click('#get-form button[type=submit]');
    await page.waitForSelector('#get-out .result');
    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    assert.ok(widths.scroll <= widths.client, `page is ${widths.scroll}px wide in a ${widths.client}px viewport`);
    const small = await page.$$eval('button:not(.linklike), input:not([type=checkbox])', (els) =>
      els.filter((e) => e.getBoundingClientRect().height < 36).map((e) => e.id || e.textContent));
    assert.deepEqual(small, [], 'controls are big enough to tap');
  }, { width: 375, height: 812 }));

  test('auth on: without a token a request says so; a pasted token is kept and sent', { skip: !TOKEN && 'the stack has auth off' },
    (t) => withPage(t, '11-token', async (page) => {
      const k = key('token');
      await httpPut(k, 'secret', { mode: 'SYNC' });
      assert.match(await text(page, '#token-status'), /No token set/);
      await page.fill('#get-key', k);
      await page.press('#get-key', 'Enter');
      await eventually(async () => {
        const out = await text(page, '#get-out');
        assert.match(out, /Token needed \(HTTP 401, UNAUTHENTICATED\)/);
        assert.match(out, /paste one under "API token"/);
      });
      await page.fill('#token-input', 'Bearer ' + TOKEN);
      await page.click('#token-form button[type=submit]');
      assert.match(await text(page, '#token-status'), /A token is set/);
      assert.equal(await page.inputValue('#token-input'), '', 'the field is cleared, the token is not shown');
      await page.press('#get-key', 'Enter');
      await eventually(async () => assert.match(await text(page, '#get-out'), /value\s+secret/));
      await page.reload();
      assert.match(await text(page, '#token-status'), /A token is set/);
      await page.click('#token-forget');
      assert.match(await text(page, '#token-status'), /No token set/);
    }, undefined, { token: '' }));

  test('screenshot for the README', (t) => withPage(t, '10-overview', async (page) => {
    const prefix = key('demo/');
    for (const [k, v] of [['config/color', 'blue'], ['config/size', 'large'], ['users/42', '{"name":"Ada"}']]) {
      await httpPut(prefix + k, v, { mode: 'SYNC' });
    }
    await page.fill('#put-key', prefix + 'config/color');
    await page.fill('#put-value', 'green');
    await page.check('#put-sync');
    await page.fill('#feed-prefix', prefix);
    await page.click('#feed-toggle');
    let n = 0;
    await eventually(async () => {
      await httpPut(prefix + 'config/size', ['small', 'medium', 'large'][n++ % 3]);
      await page.waitForSelector('#feed li', { timeout: 700 });
    }, { timeout: 15000, interval: 0 });
    await page.click('#put-form button[type=submit]');
    await page.waitForSelector('#put-out .result');
    await page.fill('#get-key', prefix + 'config/color');
    await page.click('#get-form button[type=submit]');
    await page.waitForSelector('#get-out .result');
    await page.fill('#ls-prefix', prefix);
    await page.click('#ls-form button[type=submit]');
    await page.waitForSelector('#ls-out tbody tr');
    await page.click('#put-out button.linklike');
    await page.waitForSelector('#op-out .result');
    await eventually(async () => assert.ok(await page.locator('#feed li').count() >= 2));
    await page.screenshot({ path: path.join(ARTIFACTS, 'ui-desktop.png'), fullPage: true });
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1') {
      mkdirSync(path.dirname(DOCS_IMG), { recursive: true });
      await page.screenshot({ path: DOCS_IMG, fullPage: true });
    }
  }));
});

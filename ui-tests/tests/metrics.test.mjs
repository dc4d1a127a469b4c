// The metrics page (nginx/html/metrics.html) against a live stack, in headless Chromium. With Prometheus running
// (KVMESH_PROMETHEUS=1 ./start.sh) it shows live numbers that move with the load this test sends; without it (the
// default test stack) it says plainly that Prometheus is off and how to turn it on. UPDATE_DOCS_SCREENSHOT=1 with
// Prometheus running also refreshes docs/img/metrics.png.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(HERE, '..', 'artifacts');
const DOCS_IMG = path.resolve(HERE, '..', '..', 'docs', 'img', 'metrics.png');
const BASE = (process.env.KVMESH_E2E_HTTP || '').replace(/\/$/, '');
const CHROMIUM = process.env.KVMESH_CHROMIUM || '/usr/bin/chromium';
const run = randomUUID().slice(0, 8);

async function eventually(fn, { timeout = 20000, interval = 250 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    try { return await fn(); } catch (e) { if (Date.now() > end) throw e; }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Some reads and writes through nginx, so the page has traffic to show (bounded: n requests of each kind). */
async function traffic(n) {
  const puts = [];
  for (let i = 0; i < n; i++) {
    const key = `ui-metrics-${run}/${i % 20}`;
    puts.push(fetch(`${BASE}/api`, { method: 'PUT', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key, value: 'v'.repeat(64) }) }).then((r) => r.text()));
    puts.push(fetch(`${BASE}/api?key=${encodeURIComponent(key)}`).then((r) => r.text()));
  }
  await Promise.all(puts);
}

describe('metrics page', { skip: !BASE && 'KVMESH_E2E_HTTP is not set (run scripts/ui-tests.sh)' }, () => {
  let browser;
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  });
  after(async () => { await browser?.close(); });

  test('shows live numbers with Prometheus, or says clearly that Prometheus is not running', async () => {
    const prometheus = (await fetch(`${BASE}/prometheus/api/v1/query?query=up`)).status === 200;
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      // without Prometheus each poll's 502 is logged by Chromium: that is the state under test, not a problem
      if (m.type() === 'error' && !(!prometheus && /status of 502/.test(m.text()))) problems.push('console: ' + m.text());
    });
    let ok = false;
    try {
      await page.goto(BASE + '/');
      await page.click('a[href="/metrics.html"]');
      assert.equal(await page.title(), 'kvmesh · metrics');
      if (!prometheus) {
        await eventually(async () => {
          assert.equal(await page.locator('body').getAttribute('data-state'), 'off');
          assert.match(await page.locator('#metrics-message').innerText(), /Prometheus is not running[\s\S]*KVMESH_PROMETHEUS=1 \.\/start\.sh/);
          assert.equal(await page.locator('#prom-text').innerText(), 'Prometheus is not running');
          assert.equal(await page.locator('#tiles').isVisible(), false);
        });
      } else {
        const load = (async () => { for (let i = 0; i < 12; i++) await traffic(40); })();
        await eventually(async () => {
          assert.equal(await page.locator('body').getAttribute('data-state'), 'live');
          assert.equal(await page.locator('#metrics-message').isVisible(), false);
          const throughput = await page.locator('#t-throughput .v').innerText();
          assert.ok(parseFloat(throughput.replace(/,/g, '')) > 0, `throughput ${throughput}`);
          assert.match(await page.locator('#t-latency .v').innerText(), /^[\d.,]+\s*m?s$/);
          assert.match(await page.locator('#t-cache .v').innerText(), /^[\d.]+\s*%$/);
          assert.match(await page.locator('#t-lag .v').innerText(), /^[\d.,]+\s*m?s$/);
          assert.match(await page.locator('#methods tbody').innerText(), /Get[\s\S]*Put/);
          assert.match(await page.locator('#targets tbody').innerText(), /kv-service[\s\S]*up/);
        }, { timeout: 60000 });
        await load;
        // the sparklines have a few points by now
        await eventually(async () => assert.equal(await page.locator('#t-throughput .spark polyline').count(), 1,
          'a sparkline once two polls have answered'), { timeout: 60000 });
        if (process.env.UPDATE_DOCS_SCREENSHOT === '1') {
          // a minute of the load that runs alongside (see README, "Metrics"), so every sparkline has a history
          await page.waitForTimeout(60000);
          mkdirSync(path.dirname(DOCS_IMG), { recursive: true });
          await page.screenshot({ path: DOCS_IMG, fullPage: true });
        }
      }
      ok = true;
    } finally {
      await page.screenshot({ path: path.join(ARTIFACTS, `metrics${ok ? '' : '-FAILED'}.png`), fullPage: true }).catch(() => {});
      await page.close();
    }
    assert.deepEqual(problems, [], 'no errors in the page');
  });

  test('usable at phone width (375 px): no horizontal scrolling', async () => {
    const page = await browser.newPage({ viewport: { width: 375, height: 812 } });
    try {
      await page.goto(BASE + '/metrics.html');
      await eventually(async () => assert.notEqual(await page.locator('body').getAttribute('data-state'), 'loading'));
      const w = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
      assert.ok(w.scroll <= w.client, `page ${w.scroll} px wide in a ${w.client} px window`);
      await page.screenshot({ path: path.join(ARTIFACTS, 'metrics-phone.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  test('the data path answers GET only, and no other Prometheus path', async () => {
    assert.equal((await fetch(`${BASE}/prometheus/api/v1/query?query=up`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${BASE}/prometheus/api/v1/admin/tsdb/snapshot`, { method: 'GET' })).status, 404);
    assert.equal((await fetch(`${BASE}/prometheus/-/quit`)).status, 404);
  });
});

/**
 * Browser tests of the operations dashboard: the real platform (all modules of src/modules.ts,
 * demo city on, in-memory store) and Debian's headless Chromium driven by playwright-core.
 * Skipped, with the reason printed, when /usr/bin/chromium is absent.
 * Screenshots of each main view go to test-output/screenshots/ (path printed at the end).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { testPlatform } from '../helpers/server.ts';
import { modules } from '../../src/modules.ts';
import { syntheticCity } from './support/city.ts';
import { CHROMIUM, CHROMIUM_ARGS, chromiumMissing, ensureWebBuild, screenshotsDir } from './support/browser.ts';

const skip = chromiumMissing();
if (skip) console.log(`# dashboard e2e: ${skip}`);

type Server = Awaited<ReturnType<typeof testPlatform>>;
let s: Server;
let browser: Browser;
let page: Page;
let shots = '';
const consoleErrors: string[] = [];
const hasModule = (name: string) => modules.some((m) => m.name === name);

async function locatedEntityCount(): Promise<number> {
  const r = await fetch(`${s.url}/ngsi-ld/v1/entities?type=ParkingSpot,WasteContainer,AirQualityObserved,Device&limit=1&count=true`);
  return Number(r.headers.get('ngsild-results-count') ?? 0);
}

before(async () => {
  if (skip) return;
  ensureWebBuild();
  s = await testPlatform({ modules, listen: true, config: { demo: true } });
  // the demo city (devices module) fills the broker; without it, seed a synthetic Santander
  const deadline = Date.now() + (hasModule('devices') ? 15_000 : 0);
  while ((await locatedEntityCount()) < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  if ((await locatedEntityCount()) < 20) {
    const r = await s.platform.broker.upsertEntities('', syntheticCity(400));
    assert.equal(r.errors.length, 0, JSON.stringify(r.errors[0]));
  }
  shots = screenshotsDir();
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  // bypassCSP: only for the test's own page.evaluate strings; the app itself runs under the platform's CSP
  page = await browser.newPage({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  await browser?.close();
  await s?.close();
  if (shots) console.log(`# dashboard screenshots: ${shots}`);
});

const opts = { skip: skip ?? false, timeout: 60_000 };

async function renderedEntityFeatures(): Promise<number> {
  // browser-side code is passed as strings: the root tsconfig has no DOM lib
  return page.evaluate(`(() => {
    const map = window.__urbis.map;
    if (!map) return 0;
    const layers = map.getStyle().layers.map((l) => l.id).filter((id) => id.startsWith('ent-'));
    return layers.length ? map.queryRenderedFeatures({ layers }).length : 0;
  })()`);
}

test('the map shows the demo entities', opts, async () => {
  await page.goto(s.url + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.waitForFunction(`performance.getEntriesByName('urbis:map-ready').length > 0`, undefined, { timeout: 30_000 });
  await page.screenshot({ path: join(shots, '01-map.png') });
  assert.ok((await renderedEntityFeatures()) > 0, 'entity points or clusters rendered');
  const layers = await page.locator('.layers .layer').count();
  assert.ok(layers >= 1, 'layer toggles listed');
  await page.screenshot({ path: join(shots, '01-map.png') });
});

let airId = '';
test('search opens an entity, its attributes and history chart', opts, async () => {
  const list = (await (await fetch(`${s.url}/ngsi-ld/v1/entities?type=AirQualityObserved&limit=1&options=keyValues`)).json()) as { id: string }[];
  airId = list[0]?.id ?? '';
  assert.ok(airId, 'an AirQualityObserved entity exists');
  await page.fill('#map-search', airId);
  await page.waitForSelector('#search-results [role="option"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.inspector table.attrs tbody tr');
  assert.equal(await page.locator('.inspector .entity-id code').textContent(), airId);
  await page.waitForSelector('.inspector .history .uplot', { timeout: 15_000 });
  await page.click('.inspector .segmented button[data-range="7d"]');
  await page.waitForSelector('.inspector .history .uplot');
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(shots, '02-entity-chart.png') });
});

test('a change on the bus reaches the page live', opts, async () => {
  await page.waitForFunction(`window.__urbis.live.state === 'open'`);
  await s.platform.broker.updateAttrs('', airId, { no2: { type: 'Property', value: 321 } });
  await page.waitForFunction(
    `document.querySelector('.inspector tr[data-attr="no2"] td')?.textContent?.startsWith('321')`,
    undefined,
    { timeout: 10_000 },
  );
  const received = (await page.evaluate('window.__urbis.live.received')) as number;
  assert.ok(received >= 1);
  const stored = await page.evaluate(`window.__urbis.store.get(${JSON.stringify(airId)}).props.no2`);
  assert.equal(stored, 321);
});

test('the alarm list shows active alarms and one can be acknowledged', opts, async (t) => {
  const alarmId = await raiseAlarm();
  await page.click('a[data-route="alarms"]');
  await page.waitForSelector(`tr.alarm[data-id="${alarmId}"]`, { timeout: 15_000 });
  await page.screenshot({ path: join(shots, '03-alarms.png') });
  if (!hasModule('rules')) {
    t.skip('rules module not registered in src/modules.ts: acknowledge (POST /rules/v1/alarms/{id}/ack) not exercised');
    return;
  }
  await page.click(`tr.alarm[data-id="${alarmId}"] button[data-action="ack"]`);
  await page.waitForSelector(`tr.alarm.status-acknowledged[data-id="${alarmId}"]`, { timeout: 10_000 });
  const a = (await (await fetch(`${s.url}/ngsi-ld/v1/entities/${encodeURIComponent(alarmId)}?options=keyValues`)).json()) as Record<string, unknown>;
  assert.equal(a.alarmStatus, 'acknowledged');
  await page.screenshot({ path: join(shots, '03b-alarm-acknowledged.png') });
  // jump from the alarm to its entity on the map
  await page.click(`tr.alarm[data-id="${alarmId}"] button[data-action="jump"]`);
  await page.waitForSelector('body[data-view="map"] .inspector .entity-id code');
});

test('the KPI scorecard and the device fleet render', opts, async () => {
  await page.goto(s.url + '/#/kpi');
  await page.waitForSelector('.kpi-view .kpi-card, .kpi-view .kpi-grid p');
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shots, '04-kpi.png'), fullPage: true });
  // drill down into one KPI: value history, target, provenance
  const card = page.locator('.kpi-card[data-dimension]').first();
  if ((await card.count()) > 0) {
    await card.locator('summary').click();
    const scored = card.locator('li:has(.dot:not(.band-none)) button[data-kpi]').first();
    const first = (await scored.count()) > 0 ? scored : card.locator('button[data-kpi]').first();
    if ((await first.count()) > 0) {
      await first.click();
      await page.waitForSelector('#kpi-detail-h');
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(shots, '04b-kpi-drilldown.png'), fullPage: true });
    }
  }
  await page.click('a[data-route="devices"]');
  await page.waitForSelector('.devices-view table.devices tbody tr');
  const online = Number(await page.locator('.fleet-count[data-state="online"] .n').textContent());
  assert.ok(online > 0, 'online devices counted');
  await page.screenshot({ path: join(shots, '05-devices.png') });
});

test('tablet layout and keyboard access', opts, async () => {
  await page.setViewportSize({ width: 1024, height: 768 });
  await page.goto(s.url + '/#/map');
  await page.waitForSelector('body[data-ready="true"]');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate('document.activeElement?.id'), 'skip-link');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(`document.activeElement?.getAttribute('data-route')`), 'map');
  // every form control has an accessible name
  const unnamed = await page.evaluate(`[...document.querySelectorAll('input, select, button')].filter((e) => {
      if (e.offsetParent === null) return false;
      return !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector('label[for="' + e.id + '"]')) || e.getAttribute('title'));
    }).map((e) => e.outerHTML.slice(0, 120))`);
  assert.deepEqual(unnamed, []);
  await page.screenshot({ path: join(shots, '06-tablet-map.png') });
  // failed requests (modules not installed: 404) are handled by the app; only script errors count
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource|net::/.test(e)), []);
});

/** raise an alarm: through a rule when the rules module runs, else as a plain Alert entity */
async function raiseAlarm(): Promise<string> {
  if (hasModule('rules')) {
    const rule = {
      id: 'e2e-no2-high', name: 'NO2 high (e2e)', select: { type: 'AirQualityObserved' },
      trigger: { kind: 'condition', q: 'no2>300' }, alarm: { severity: 'high', category: 'environment' },
    };
    const r = await fetch(`${s.url}/rules/v1/rules`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule) });
    assert.ok(r.status < 300, `create rule: ${r.status} ${await r.text()}`);
    await s.platform.broker.updateAttrs('', airId, { no2: { type: 'Property', value: 350 } });
    for (let i = 0; i < 100; i++) {
      const list = (await (await fetch(`${s.url}/ngsi-ld/v1/entities?type=Alert&options=keyValues&limit=100`)).json()) as { id: string; alertSource?: string }[];
      const a = list.find((x) => x.alertSource === airId);
      if (a) return a.id;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.fail('the rule raised no Alert');
  }
  const id = 'urn:ngsi-ld:Alert:e2e-1';
  await s.platform.broker.upsertEntities('', [{
    id, type: 'Alert', category: { type: 'Property', value: 'environment' }, subCategory: { type: 'Property', value: 'airPollution' },
    severity: { type: 'Property', value: 'high' }, alarmStatus: { type: 'Property', value: 'active' },
    description: { type: 'Property', value: 'NO2 above 300 µg/m³' }, alertSource: { type: 'Relationship', object: airId },
    dateIssued: { type: 'Property', value: new Date().toISOString() },
  }, {
    id: 'urn:ngsi-ld:Alert:e2e-2', type: 'Alert', category: { type: 'Property', value: 'traffic' },
    severity: { type: 'Property', value: 'medium' }, alarmStatus: { type: 'Property', value: 'active' },
    description: { type: 'Property', value: 'Parking sensor silent' }, alertSource: { type: 'Relationship', object: 'urn:ngsi-ld:ParkingSpot:santander:3' },
    dateIssued: { type: 'Property', value: new Date(Date.now() - 3600e3).toISOString() },
  }]);
  return id;
}

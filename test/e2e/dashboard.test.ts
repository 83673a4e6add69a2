/**
 * Browser tests of the operations dashboard: the real platform (all modules of src/modules.ts,
 * demo city on, in-memory store) WITH AUTHENTICATION ON (the default of `npm start`), and Debian's
 * headless Chromium driven by playwright-core. The first admin gets its password from
 * URBIS_ADMIN_PASSWORD (the trust module's documented way); the test's own API calls use that
 * admin's session cookie, and the browser signs in as an operator created with a one-time
 * password, which the dashboard makes it change first.
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

const ADMIN_PASSWORD = 'e2e admin password (not a real one)';
const OPERATOR = 'operator-e2e';
const OPERATOR_NEW_PASSWORD = 'operator e2e chosen password';
let operatorOneTime = '';
let adminCookie = '';

/** the test's own API calls, as the admin (session cookie) */
function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (adminCookie) headers.set('cookie', adminCookie);
  return fetch(s.url + path, { ...init, headers });
}
async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const r = await api(path, init);
  assert.ok(r.ok, `${init.method ?? 'GET'} ${path}: ${r.status} ${await r.clone().text()}`);
  return (await r.json()) as T;
}

async function locatedEntityCount(): Promise<number> {
  const r = await api(`/ngsi-ld/v1/entities?type=ParkingSpot,WasteContainer,AirQualityObserved,Device&limit=1&count=true`);
  return Number(r.headers.get('ngsild-results-count') ?? 0);
}

/** resolves when cond() holds (polls the server-side state; no fixed sleeps elsewhere) */
async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  if (skip) return;
  ensureWebBuild();
  process.env.URBIS_ADMIN_PASSWORD = ADMIN_PASSWORD; // read by the trust module when it starts
  s = await testPlatform({ modules, listen: true, config: { demo: true, auth: true } });
  if (hasModule('trust')) {
    const login = await fetch(`${s.url}/auth/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) });
    assert.equal(login.status, 200, await login.clone().text());
    adminCookie = String(login.headers.get('set-cookie')).split(';')[0];
    // an operations-centre user with a one-time password, as an admin creates it
    const u = await apiJson<{ oneTimePassword: string; mustChangePassword: boolean }>('/auth/v1/users', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: OPERATOR, roles: [{ role: 'operator', tenant: '*' }] }),
    });
    assert.equal(u.mustChangePassword, true);
    operatorOneTime = u.oneTimePassword;
  }
  // the demo city (devices module) fills the broker; without it, seed a synthetic Santander
  await until(async () => (await locatedEntityCount()) >= 20, hasModule('devices') ? 15_000 : 0);
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

test('sign-in with a one-time password asks for a new password, then the app loads', opts, async (t) => {
  await page.goto(s.url + '/');
  if (!hasModule('trust')) {
    t.skip('trust module not registered: no sign-in');
    return;
  }
  await page.waitForSelector('dialog.login[open][data-step="login"]');
  await page.fill('#login-user', OPERATOR);
  await page.fill('#login-pass', 'wrong password!');
  await page.click('dialog.login button[type="submit"]');
  await page.waitForSelector('#login-error:not([hidden])');
  await page.fill('#login-pass', operatorOneTime);
  await page.click('dialog.login button[type="submit"]');
  await page.waitForSelector('dialog.login[open][data-step="password"]');
  await page.screenshot({ path: join(shots, '00-change-password.png') });
  await page.fill('#pw-new', OPERATOR_NEW_PASSWORD);
  await page.fill('#pw-again', OPERATOR_NEW_PASSWORD);
  await page.click('dialog.login button[type="submit"]');
  await page.waitForSelector('dialog.login', { state: 'detached' });
  await page.waitForFunction(`document.getElementById('user-name')?.textContent === ${JSON.stringify(OPERATOR)}`);
  const users = await apiJson<{ name: string; mustChangePassword: boolean }[]>('/auth/v1/users');
  assert.equal(users.find((u) => u.name === OPERATOR)?.mustChangePassword, false);
});

test('the map shows the demo entities', opts, async () => {
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
  await page.waitForFunction(`performance.getEntriesByName('urbis:map-ready').length > 0`, undefined, { timeout: 30_000 });
  await page.screenshot({ path: join(shots, '01-map.png') });
  assert.ok((await renderedEntityFeatures()) > 0, 'entity points or clusters rendered');
  const layers = await page.locator('.layers .layer').count();
  assert.ok(layers >= 1, 'layer toggles listed');
});

let airId = '';
test('search opens an entity, its attributes and history chart', opts, async () => {
  const list = await apiJson<{ id: string }[]>(`/ngsi-ld/v1/entities?type=AirQualityObserved&limit=1&options=keyValues`);
  airId = list[0]?.id ?? '';
  assert.ok(airId, 'an AirQualityObserved entity exists');
  // a week of hourly NO2 readings, as a sensor that has been running for a while has (the demo
  // city starts with none): added through the temporal API
  const entity = await apiJson<Record<string, unknown>>(`/ngsi-ld/v1/entities/${encodeURIComponent(airId)}?options=keyValues`);
  const attr = Object.keys(entity).find((k) => /^no2$/i.test(k)) ?? 'no2'; // the demo city says NO2 (SDM), the synthetic one no2
  if (hasModule('temporal')) {
    await until(async () => (await api(`/ngsi-ld/v1/temporal/entities/${encodeURIComponent(airId)}?lastN=1`)).ok, 10_000);
    const now = Date.now();
    const no2 = Array.from({ length: 7 * 24 }, (_, i) => {
      const at = now - (7 * 24 - i) * 3600e3;
      const hour = new Date(at).getUTCHours();
      return { type: 'Property', value: Math.round(25 + 20 * Math.sin(((hour - 8) / 24) * 2 * Math.PI) + (i % 5)), observedAt: new Date(at).toISOString() };
    });
    const r = await api(`/ngsi-ld/v1/temporal/entities/${encodeURIComponent(airId)}/attrs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ [attr]: no2 }) });
    assert.equal(r.status, 204, await r.text());
  }
  await page.fill('#map-search', airId);
  await page.waitForSelector('#search-results [role="option"]');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.inspector table.attrs tbody tr');
  assert.equal(await page.locator('.inspector .entity-id code').textContent(), airId);
  await page.selectOption('#history-attr', attr);
  // 24 h of hourly averages: a curve, not a dot
  await page.waitForFunction(`(() => { const h = document.querySelector('.inspector .history'); return h?.dataset.mode === 'avg' && Number(h.dataset.points) >= 20 && h.querySelector('.uplot'); })()`, undefined, { timeout: 15_000 });
  await page.click('.inspector .segmented button[data-range="7d"]');
  await page.waitForFunction(`(() => { const h = document.querySelector('.inspector .history'); return h?.dataset.mode === 'avg' && Number(h.dataset.points) >= 25 && h.querySelector('.plot[aria-label*="7 days"]'); })()`, undefined, { timeout: 15_000 });
  await page.locator('.inspector .history').scrollIntoViewIfNeeded();
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
  const a = await apiJson<Record<string, unknown>>(`/ngsi-ld/v1/entities/${encodeURIComponent(alarmId)}?options=keyValues`);
  assert.equal(a.alarmStatus, 'acknowledged');
  await page.screenshot({ path: join(shots, '03b-alarm-acknowledged.png') });
  // jump from the alarm to its entity on the map
  await page.click(`tr.alarm[data-id="${alarmId}"] button[data-action="jump"]`);
  await page.waitForSelector('body[data-view="map"] .inspector .entity-id code');
});

test('the KPI scorecard and the device fleet render', opts, async () => {
  await page.goto(s.url + '/#/kpi');
  await page.waitForSelector('.kpi-view .kpi-card, .kpi-view .kpi-grid p');
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
      await page.screenshot({ path: join(shots, '04b-kpi-drilldown.png'), fullPage: true });
    }
  }
  // a payload from a device nobody provisioned: refused and counted by the devices module
  if (hasModule('devices')) {
    const r = await fetch(`${s.url}/iot/json?k=no-such-key&i=ghost-e2e`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"t":1}' });
    assert.ok(r.status >= 400, `unknown device refused (${r.status})`);
  }
  await page.click('a[data-route="devices"]');
  await page.waitForSelector('.devices-view table.devices tbody tr');
  const online = Number(await page.locator('.fleet-count[data-state="online"] .n').textContent());
  assert.ok(online > 0, 'online devices counted');
  if (hasModule('devices')) {
    await page.waitForSelector('.rejected-counters [data-kind="unknown"]');
    assert.ok(Number(await page.locator('.rejected-counters [data-kind="unknown"]').getAttribute('data-count')) >= 1, 'rejected payload counted');
  }
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
  // failed requests (modules not installed: 404, the wrong password: 401) are handled by the app; only script errors count
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource|net::/.test(e)), []);
});

test('sign-out ends the session; the new password signs in again', opts, async (t) => {
  if (!hasModule('trust')) {
    t.skip('trust module not registered: no sign-in');
    return;
  }
  await page.click('#sign-out');
  await page.waitForSelector('dialog.login[open][data-step="login"]');
  const me = (await page.evaluate(`fetch('/auth/v1/me').then((r) => r.status)`)) as number;
  assert.equal(me, 401);
  await page.fill('#login-user', OPERATOR);
  await page.fill('#login-pass', OPERATOR_NEW_PASSWORD);
  await page.click('dialog.login button[type="submit"]');
  await page.waitForSelector('dialog.login', { state: 'detached' });
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForFunction(`document.getElementById('user-name')?.textContent === ${JSON.stringify(OPERATOR)}`);
});

/** raise an alarm: through a rule when the rules module runs, else as a plain Alert entity */
async function raiseAlarm(): Promise<string> {
  if (hasModule('rules')) {
    const rule = {
      id: 'e2e-no2-high', name: 'NO2 high (e2e)', select: { type: 'AirQualityObserved' },
      trigger: { kind: 'condition', q: 'no2>300' }, alarm: { severity: 'high', category: 'environment' },
    };
    const r = await api('/rules/v1/rules', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule) });
    assert.ok(r.status < 300, `create rule: ${r.status} ${await r.text()}`);
    await s.platform.broker.updateAttrs('', airId, { no2: { type: 'Property', value: 350 } });
    let id = '';
    await until(async () => {
      const list = await apiJson<{ id: string; alertSource?: string }[]>('/ngsi-ld/v1/entities?type=Alert&options=keyValues&limit=100');
      id = list.find((x) => x.alertSource === airId)?.id ?? '';
      return id !== '';
    }, 10_000);
    assert.ok(id, 'the rule raised an Alert');
    return id;
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

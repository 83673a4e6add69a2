/**
 * Dashboard server side without a browser: the live feed (SSE from the change bus, type filter,
 * tenant isolation, the canSee authorization hook), static serving of web/dist and the config.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPlatform } from '../helpers/server.ts';
import { SseParser } from '../../web/src/sse.ts';

// a tiny fake build so the static handler is tested without running Vite
const dist = mkdtempSync(join(tmpdir(), 'urbis-web-'));
mkdirSync(join(dist, 'assets'));
writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Urbis</title>');
writeFileSync(join(dist, 'assets', 'app-123.js'), 'console.log(1)');
process.env.URBIS_WEB_DIR = dist;
const { dashboardModule, toLiveChange, makeCompactor } = await import('../../src/dashboard/module.ts');

type Server = Awaited<ReturnType<typeof testPlatform>>;
let s: Server;
before(async () => {
  s = await testPlatform({ modules: [dashboardModule], listen: true });
});
after(async () => {
  await s?.close();
});

/** open /live and collect `change` items until `until` says stop */
async function collect(path: string, act: () => Promise<void>, until: (items: Record<string, unknown>[]) => boolean, headers: Record<string, string> = {}) {
  const ctrl = new AbortController();
  const res = await fetch(s.url + path, { headers: { accept: 'text/event-stream', ...headers }, signal: ctrl.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  const items: Record<string, unknown>[] = [];
  let hello = false;
  const deadline = setTimeout(() => ctrl.abort(), 3000);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const m of parser.push(value)) {
        if (m.event === 'hello' && !hello) {
          hello = true;
          await act();
        }
        if (m.event === 'change') items.push(...(JSON.parse(m.data) as Record<string, unknown>[]));
      }
      if (until(items)) break;
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  } finally {
    clearTimeout(deadline);
    ctrl.abort();
  }
  return items;
}

const spot = (id: string, status: string) => ({
  id, type: 'ParkingSpot', parkingStatus: { type: 'Property', value: status },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.81, 43.46] } },
});

test('GET /live pushes compact keyValues changes from the bus', async () => {
  const items = await collect('/live', async () => {
    await s.platform.broker.createEntity('', spot('urn:ngsi-ld:ParkingSpot:l1', 'free'));
    await s.platform.broker.updateAttrs('', 'urn:ngsi-ld:ParkingSpot:l1', { parkingStatus: { type: 'Property', value: 'occupied' } });
  }, (it) => it.length >= 2);
  assert.equal(items.length, 2);
  assert.deepEqual(items[0].type, 'ParkingSpot');
  assert.equal(items[0].kind, 'create');
  assert.deepEqual((items[0].values as Record<string, unknown>).location, { type: 'Point', coordinates: [-3.81, 43.46] });
  assert.equal(items[1].kind, 'update');
  assert.deepEqual(items[1].attrs, ['parkingStatus']);
  assert.deepEqual(items[1].values, { parkingStatus: 'occupied' });
});

test('?type= filters entity types; other tenants are not seen', async () => {
  const items = await collect('/live?type=ParkingSpot', async () => {
    await s.platform.broker.createEntity('', { id: 'urn:ngsi-ld:WasteContainer:w1', type: 'WasteContainer', fillingLevel: { type: 'Property', value: 0.5 } });
    await s.platform.broker.createEntity('other', spot('urn:ngsi-ld:ParkingSpot:t1', 'free'));
    await s.platform.broker.createEntity('', spot('urn:ngsi-ld:ParkingSpot:l2', 'free'));
  }, (it) => it.length >= 1);
  assert.deepEqual(items.map((i) => i.id), ['urn:ngsi-ld:ParkingSpot:l2']);
});

test('the authorization hook (auth service canRead) decides what a client sees', async () => {
  s.platform.services.set('auth', {
    authenticate: (req: { headers: Record<string, string | undefined> }) => (req.headers.authorization === 'Bearer ok' ? { sub: 'op' } : null),
    canRead: (_p: unknown, t: { entityId: string }) => !t.entityId.endsWith(':secret'),
  });
  try {
    const denied = await fetch(s.url + '/live');
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const items = await collect('/live', async () => {
      await s.platform.broker.createEntity('', spot('urn:ngsi-ld:ParkingSpot:secret', 'free'));
      await s.platform.broker.createEntity('', spot('urn:ngsi-ld:ParkingSpot:l3', 'free'));
    }, (it) => it.length >= 1, { authorization: 'Bearer ok' });
    assert.deepEqual(items.map((i) => i.id), ['urn:ngsi-ld:ParkingSpot:l3']);
  } finally {
    s.platform.services.delete('auth');
  }
});

test('toLiveChange: deletes carry no values, deleted attributes are null', () => {
  const compact = makeCompactor();
  const base = { tenant: '', entityId: 'urn:x:1', types: ['https://uri.etsi.org/ngsi-ld/default-context/ParkingSpot'], at: '2026-01-01T00:00:00Z' };
  assert.deepEqual(toLiveChange({ ...base, kind: 'delete', changedAttrs: [] }, compact), { id: 'urn:x:1', type: 'ParkingSpot', kind: 'delete', attrs: [], at: base.at });
  const after = { id: 'urn:x:1', type: base.types, createdAt: base.at, modifiedAt: base.at, attrs: {} };
  const c = toLiveChange({ ...base, kind: 'update', after, changedAttrs: ['https://uri.etsi.org/ngsi-ld/default-context/status'], deletedAttrs: ['https://uri.etsi.org/ngsi-ld/default-context/status'] }, compact);
  assert.deepEqual(c.values, { status: null });
});

test('serves the built app at / with caching headers, and its config', async () => {
  const idx = await fetch(s.url + '/');
  assert.equal(idx.status, 200);
  assert.match(idx.headers.get('content-type') ?? '', /text\/html/);
  assert.equal(idx.headers.get('cache-control'), 'no-cache');
  assert.match(await idx.text(), /<title>Urbis/);
  const js = await fetch(s.url + '/assets/app-123.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('cache-control') ?? '', /immutable/);
  const etag = js.headers.get('etag')!;
  await js.text();
  const again = await fetch(s.url + '/assets/app-123.js', { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const escape = await fetch(s.url + '/assets/..%2f..%2fpackage.json');
  assert.equal(escape.status, 404);
  await escape.text();
  const cfg = (await (await fetch(s.url + '/dashboard-config.json')).json()) as Record<string, unknown>;
  assert.equal(cfg.auth, false);
  assert.equal(cfg.tileUrl, '');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';
import { kpiModule } from '../../src/kpi/module.ts';
import { FakeClock } from '../../src/common/clock.ts';
import type { KpiService } from '../../src/kpi/service.ts';

let s: Awaited<ReturnType<typeof testPlatform>>;
const clock = new FakeClock(Date.parse('2026-01-10T00:00:00Z'));
const json = (method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  s.inject({ method: method as 'GET', url, payload: payload as string, headers: { 'content-type': 'application/json', ...headers } });

before(async () => {
  s = await testPlatform({ modules: [kpiModule], clock });
});
after(async () => {
  await s.close();
});

test('catalogue: 91 definitions over REST and as KeyPerformanceIndicator entities', async () => {
  const r = await s.inject({ url: '/kpi/v1/definitions' });
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().length, 91);
  const one = await s.inject({ url: `/kpi/v1/definitions/${encodeURIComponent('EN: EN: AQ: 1C')}` });
  assert.equal(one.json().calculator.reads[0].entityType, 'AirQualityObserved');
  assert.equal((await s.inject({ url: '/kpi/v1/definitions/EC-ICT-WS-1C' })).json().code, 'EC: ICT: WS: 1C');
  const nf = await s.inject({ url: '/kpi/v1/definitions/NOPE' });
  assert.equal(nf.statusCode, 404);
  assert.match(nf.json().type, /ResourceNotFound/);
  const e = await s.inject({ url: '/ngsi-ld/v1/entities?type=KeyPerformanceIndicator&limit=100&count=true' });
  assert.equal(e.statusCode, 200);
  assert.equal(e.json().length, 91);
  assert.equal(e.headers['ngsild-results-count'], '91');
});

test('automatic KPIs from live data, with inputs, published as kpiValue', async () => {
  const svc = s.platform.services.get('kpi') as KpiService;
  assert.equal((await json('PUT', '/kpi/v1/profiles/2025', { values: { population: 1000, waterMetersTotal: 4 } })).statusCode, 200);
  const b = s.platform.broker;
  await b.createEntity('', { id: 'urn:ngsi-ld:AirQualityObserved:a1', type: 'AirQualityObserved', pm10: { type: 'Property', value: 10, observedAt: '2025-03-01T10:00:00Z' } });
  await b.updateAttrs('', 'urn:ngsi-ld:AirQualityObserved:a1', { pm10: { type: 'Property', value: 30, observedAt: '2025-03-02T10:00:00Z' } });
  await b.createEntity('', { id: 'urn:ngsi-ld:WaterMeter:w1', type: 'WaterMeter', cumulativeWaterConsumption: { type: 'Property', value: 100, observedAt: '2024-12-31T00:00:00Z' } });
  await b.updateAttrs('', 'urn:ngsi-ld:WaterMeter:w1', { cumulativeWaterConsumption: { type: 'Property', value: 465, observedAt: '2025-12-31T00:00:00Z' } });
  for (const i of [1, 2]) await b.createEntity('', { id: `urn:ngsi-ld:WifiPointOfInterest:h${i}`, type: 'WifiPointOfInterest' });
  await svc.flush();

  const r = await s.inject({ method: 'POST', url: '/kpi/v1/recompute?period=2025' });
  assert.equal(r.statusCode, 200, r.body);
  const vals = (await s.inject({ url: '/kpi/v1/values?period=2025' })).json() as { code: string; dataPoint: string; value: number | null; inputs: { entities: { type: string; count: number }[] } }[];
  const get = (code: string, dp = '') => vals.find((v) => v.code === code && v.dataPoint === dp);
  assert.equal(get('EC: ICT: ICT: 5C')!.value, 2);
  assert.equal(get('EN: EN: AQ: 1C', 'pm10')!.value, 20); // days: 10 and 30
  assert.equal(get('EC: ICT: WS: 1C')!.value, 25); // 1 smart meter of 4
  // 365 m3 over 365 days for 1000 inhabitants = 1 L per capita per day
  assert.equal(get('EN: EN: WS: 2C')!.value, 1);
  assert.equal(get('EN: EN: AQ: 1C', 'pm10')!.inputs.entities[0].count, 1);

  const ent = await s.inject({ url: `/ngsi-ld/v1/entities/${encodeURIComponent('urn:ngsi-ld:KeyPerformanceIndicator:U4SSC-EC-ICT-ICT-5C')}` });
  const kv = ent.json().kpiValue;
  assert.equal(kv.value, 2);
  assert.equal(kv.observedAt, '2026-01-01T00:00:00.000Z');
  const aq = (await s.inject({ url: `/ngsi-ld/v1/entities/${encodeURIComponent('urn:ngsi-ld:KeyPerformanceIndicator:U4SSC-EN-EN-AQ-1C')}` })).json().kpiValue;
  const pm10 = (Array.isArray(aq) ? aq : [aq]).find((x: { datasetId?: string }) => x.datasetId === 'urn:ngsi-ld:dataset:pm10');
  assert.equal(pm10.value, 20);
  // the KPI values are reachable with an NGSI-LD query
  const q = await s.inject({ url: '/ngsi-ld/v1/entities?type=KeyPerformanceIndicator&q=kpiValue>1&limit=100' });
  assert.ok(q.json().length >= 1);
});

test('manual values, corrections history, CSV import, automatic never overwrites manual', async () => {
  const post = await json('POST', '/kpi/v1/values', { code: 'EC: ICT: ICT: 2C', period: '2025', value: 30, source: 'operator', quality: 'official', enteredBy: 'ana' });
  assert.equal(post.statusCode, 201, post.body);
  await json('POST', '/kpi/v1/values', { code: 'EC: ICT: ICT: 2C', period: '2025', value: 32, enteredBy: 'bob', verifiedBy: 'carla', reason: 'typo' });
  const h = (await s.inject({ url: `/kpi/v1/values/history?code=${encodeURIComponent('EC: ICT: ICT: 2C')}` })).json();
  assert.equal(h.length, 1);
  assert.deepEqual([h[0].value, h[0].enteredBy, h[0].replacedBy], [30, 'ana', 'bob']);
  const bad = await json('POST', '/kpi/v1/values', { code: 'EC: ICT: ICT: 2C', period: '2025', value: 'many' });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().type, /BadRequestData/);

  const csv = 'code,period,value,source,quality\n"EC: ICT: ICT: 1C",2025,91,census,official\nEC: ICT: ICT: 5C,2025,12,manual count,verified\nXX,2025,1,,\n';
  const imp = await s.inject({ method: 'POST', url: '/kpi/v1/import', payload: csv, headers: { 'content-type': 'text/csv' } });
  assert.equal(imp.statusCode, 200, imp.body);
  assert.equal(imp.json().imported, 2);
  assert.equal(imp.json().errors[0].line, 4);
  // recompute: the manual Wi-Fi count stays
  await s.inject({ method: 'POST', url: '/kpi/v1/recompute?period=2025' });
  const wifi = (await s.inject({ url: `/kpi/v1/values?period=2025&code=${encodeURIComponent('EC: ICT: ICT: 5C')}` })).json();
  assert.deepEqual([wifi[0].value, wifi[0].method], [12, 'manual']);
});

test('targets, scores, frameworks, reports (json/csv/html), compare', async () => {
  const t = await json('PUT', '/kpi/v1/targets', [{ code: 'EC: ICT: ICT: 2C', target: 60 }, { code: 'EN: EN: AQ: 1C', dataPoint: 'pm10', target: 15 }]);
  assert.equal(t.statusCode, 200, t.body);
  const sc = (await s.inject({ url: '/kpi/v1/scores?period=2025' })).json();
  const item = sc.items.find((i: { code: string }) => i.code === 'EC: ICT: ICT: 2C');
  assert.equal(item.points, 2); // 32 / 60 = 53.3 % of target
  assert.equal(sc.items.find((i: { code: string; dataPoint: string }) => i.code === 'EN: EN: AQ: 1C' && i.dataPoint === 'pm10').points, 3); // 15 / 20 = 75 %
  assert.equal(sc.overall.earned, 5);
  assert.equal(sc.overall.possible, 8);

  const fws = (await s.inject({ url: '/kpi/v1/frameworks' })).json();
  assert.ok(fws.some((f: { id: string }) => f.id === 'gbt33356-style'));
  const own = await json('PUT', '/kpi/v1/frameworks/mini', {
    name: 'Mini', normalisation: 'target',
    groups: [{ id: 'g', name: 'G', weight: 1, indicators: [{ id: 'bb', name: 'Broadband', weight: 1, kind: 'objective', source: { kpi: 'EC: ICT: ICT: 2C' }, polarity: 'higher-better', target: 64 }] }],
  });
  assert.equal(own.statusCode, 200, own.body);
  const ev = (await s.inject({ url: '/kpi/v1/frameworks/mini/evaluation?period=2025' })).json();
  assert.equal(ev.score, 50); // 32 / 64
  assert.equal((await json('PUT', '/kpi/v1/frameworks/bad', { name: 'x', normalisation: 'z', groups: [] })).statusCode, 400);

  const rj = await s.inject({ url: '/kpi/v1/reports?period=2025&format=json' });
  assert.equal(rj.json().summary.kpis, 91);
  const rc = await s.inject({ url: '/kpi/v1/reports?period=2025&format=csv' });
  assert.match(rc.headers['content-type'] as string, /text\/csv/);
  assert.match(rc.body, /EC: ICT: ICT: 2C/);
  const rh = await s.inject({ url: '/kpi/v1/reports?period=2025&format=html' });
  assert.match(rh.headers['content-type'] as string, /text\/html/);
  assert.match(rh.body, /U4SSC KPI report/);
  assert.equal((await s.inject({ url: '/kpi/v1/reports?format=pdf' })).statusCode, 400);

  await json('POST', '/kpi/v1/values', { code: 'EC: ICT: ICT: 2C', period: '2024', value: 20 });
  const cmp = (await s.inject({ url: '/kpi/v1/compare?period=2024&with=2025' })).json();
  const row = cmp.kpis.find((k: { code: string }) => k.code === 'EC: ICT: ICT: 2C');
  assert.deepEqual([row.a, row.b, row.change], [20, 32, 'improving']);
  // another city (tenant)
  await json('POST', '/kpi/v1/values', { code: 'EC: ICT: ICT: 2C', period: '2025', value: 50 }, { 'NGSILD-Tenant': 'city2' });
  const c2 = (await s.inject({ url: '/kpi/v1/compare?period=2025&tenant=city2' })).json();
  assert.equal(c2.kpis.find((k: { code: string }) => k.code === 'EC: ICT: ICT: 2C').b, 50);
  const e2 = await s.inject({ url: '/ngsi-ld/v1/entities?type=KeyPerformanceIndicator&limit=1&count=true', headers: { 'NGSILD-Tenant': 'city2' } });
  assert.equal(e2.headers['ngsild-results-count'], '91');

  const oa = (await s.inject({ url: '/kpi/v1/openapi.json' })).json();
  assert.equal(oa.openapi, '3.1.0');
  assert.ok(oa.paths['/kpi/v1/reports']);
});

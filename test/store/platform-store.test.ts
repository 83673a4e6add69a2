import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testStore, storeKind } from '../helpers/store.ts';
import { startPlatform, type Running } from '../../src/server/start.ts';

// Every module's migrations and main SQL paths on the selected store (PGlite, or PostgreSQL in test:pg).
let s: Running;
let cleanup: () => Promise<void>;

before(async () => {
  const st = await testStore();
  cleanup = st.cleanup;
  await st.db.close();
  s = await startPlatform({
    memory: !st.databaseUrl,
    noListen: true,
    config: { databaseUrl: st.databaseUrl, port: 0, host: '127.0.0.1', auth: false, demo: false, mqttPort: 0, logLevel: 'silent' },
  });
});
after(async () => {
  await s?.close();
  await cleanup?.();
});

const H = { 'content-type': 'application/json' };

test(`${storeKind()}: all modules start and the core write/read/history paths work`, async () => {
  const id = 'urn:ngsi-ld:AirQualityObserved:pg-1';
  let r = await s.app.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: JSON.stringify({ id, type: 'AirQualityObserved', pm10: { type: 'Property', value: 12, observedAt: '2026-03-01T10:00:00Z' } }) });
  assert.equal(r.statusCode, 201, r.body);
  r = await s.app.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${id}/attrs`, headers: H, payload: JSON.stringify({ pm10: { type: 'Property', value: 30, observedAt: '2026-03-01T11:00:00Z' } }) });
  assert.equal(r.statusCode, 204, r.body);
  r = await s.app.inject({ method: 'GET', url: `/ngsi-ld/v1/temporal/entities/${id}?timerel=after&timeAt=2026-01-01T00:00:00Z` });
  assert.equal(r.statusCode, 200, r.body);
  const pm10 = r.json().pm10;
  assert.equal(Array.isArray(pm10) ? pm10.length : 1, 2);
  r = await s.app.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: H, payload: JSON.stringify({ type: 'Subscription', entities: [{ type: 'AirQualityObserved' }], notification: { endpoint: { uri: 'http://127.0.0.1:9/none' } } }) });
  assert.equal(r.statusCode, 201, r.body);
  r = await s.app.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=AirQualityObserved&q=pm10>20' });
  assert.equal(r.json().length, 1);
});

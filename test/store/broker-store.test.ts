import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testStore, storeKind } from '../helpers/store.ts';
import { Broker } from '../../src/ngsi-ld/broker.ts';
import { LocalChangeBus, type ChangeEvent } from '../../src/bus/change-bus.ts';
import { ContextLoader } from '../../src/ngsi-ld/jsonld/index.ts';
import type { Db } from '../../src/store/db.ts';

// Runs the broker's storage paths on the selected store (PGlite by default, PostgreSQL in test:pg).
let db: Db;
let cleanup: () => Promise<void>;
let broker: Broker;
const events: ChangeEvent[] = [];

before(async () => {
  const s = await testStore();
  db = s.db;
  cleanup = s.cleanup;
  const bus = new LocalChangeBus();
  bus.subscribe((evs) => void events.push(...evs));
  broker = new Broker(db, bus, new ContextLoader());
});
after(async () => cleanup());

const sensor = (i: number) => ({
  id: `urn:ngsi-ld:AirQualityObserved:${i}`,
  type: 'AirQualityObserved',
  pm25: { type: 'Property', value: i % 50, observedAt: '2026-03-01T10:00:00Z' },
  status: { type: 'Property', value: i % 2 ? 'ok' : 'warn' },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.8 + i * 0.001, 43.46] } },
});

test(`${storeKind()}: batch upsert of 2,000 entities is one statement and emits events`, async () => {
  const r = await broker.upsertEntities('', Array.from({ length: 2000 }, (_, i) => sensor(i)));
  assert.equal(r.errors.length, 0);
  assert.equal(r.success.length, 2000);
  assert.equal(events.filter((e) => e.kind === 'create').length, 2000);
  const n = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM entities');
  assert.equal(Number(n[0].n), 2000);
});

test(`${storeKind()}: q, type, geo and count agree with expectations`, async () => {
  const r = await broker.query('', { type: 'AirQualityObserved', q: 'pm25>45;status=="ok"', count: true, limit: 1000 });
  // i % 50 in 46..49 and i odd: i%50 in {47,49} -> 2 per 50 -> 80 of 2000
  assert.equal(r.count, 80);
  const g = await broker.query('', {
    type: 'AirQualityObserved',
    geoQ: { georel: 'near;maxDistance==100', geometry: 'Point', coordinates: '[-3.8,43.46]' },
    limit: 1000,
  });
  // points every 0.001 deg of longitude (~80.7 m at 43.46N): i = 0 and 1 are within 100 m
  assert.deepEqual(g.entities.map((e) => e.id), ['urn:ngsi-ld:AirQualityObserved:0', 'urn:ngsi-ld:AirQualityObserved:1']);
});

test(`${storeKind()}: update mode merges attributes; a failed item does not stop the others`, async () => {
  const r = await broker.batchUpdate('', [{ id: 'urn:ngsi-ld:AirQualityObserved:1', pm25: { type: 'Property', value: 500 } }, { id: 'urn:ngsi-ld:AirQualityObserved:nope', pm25: { type: 'Property', value: 1 } }], undefined, false);
  assert.deepEqual(r.success, ['urn:ngsi-ld:AirQualityObserved:1']);
  assert.equal(r.errors.length, 1);
  const e = await broker.getEntity('', 'urn:ngsi-ld:AirQualityObserved:1', { format: 'keyValues' });
  assert.equal(e?.pm25, 500);
  assert.equal(e?.status, 'ok');
});

test(`${storeKind()}: writes from a stale entity cache never lose another writer's change`, async () => {
  // `other` writes the same store behind `broker`'s back (another node, or a write racing the
  // cache update): broker's cached version no longer matches the row, so its fast path must fall
  // back to the locked path and apply each change on top of the stored entity.
  const other = new Broker(db, new LocalChangeBus(), new ContextLoader());
  const id = 'urn:ngsi-ld:AirQualityObserved:7';
  await broker.getEntity('', id); // cached in broker
  await other.updateAttrs('', id, { pm25: { type: 'Property', value: 111 } });
  await broker.updateAttrs('', id, { status: { type: 'Property', value: 'changed-by-patch' } });
  let e = await other.repo.get('', id);
  assert.equal(e?.attrs['https://uri.etsi.org/ngsi-ld/default-context/pm25'][0].value, 111);
  assert.equal(e?.attrs['https://uri.etsi.org/ngsi-ld/status'][0].value, 'changed-by-patch');

  await other.updateAttrs('', id, { pm25: { type: 'Property', value: 222 } });
  const u = await broker.batchUpdate('', [{ id, status: { type: 'Property', value: 'changed-by-batch' } }], undefined, false);
  assert.deepEqual(u.success, [id]);
  e = await other.repo.get('', id);
  assert.equal(e?.attrs['https://uri.etsi.org/ngsi-ld/default-context/pm25'][0].value, 222);

  await other.updateAttrs('', id, { pm25: { type: 'Property', value: 333 } });
  const before = events.length;
  await broker.upsertEntities('', [{ id, type: 'AirQualityObserved', status: { type: 'Property', value: 'changed-by-upsert' } }], { mode: 'update' });
  e = await other.repo.get('', id);
  assert.equal(e?.attrs['https://uri.etsi.org/ngsi-ld/default-context/pm25'][0].value, 333);
  assert.equal(e?.attrs['https://uri.etsi.org/ngsi-ld/status'][0].value, 'changed-by-upsert');
  // the change event's before-image is the row that was really replaced, not the stale cache
  const ev = events.slice(before).find((x) => x.entityId === id)!;
  assert.equal(ev.before?.attrs['https://uri.etsi.org/ngsi-ld/default-context/pm25'][0].value, 333);

  // many concurrent single-entity changes on one entity: none is lost
  await Promise.all(Array.from({ length: 40 }, (_, k) => broker.updateAttrs('', id, { [`a${k}`]: { type: 'Property', value: k } })));
  e = await other.repo.get('', id);
  for (let k = 0; k < 40; k++) assert.equal(e?.attrs[`https://uri.etsi.org/ngsi-ld/default-context/a${k}`]?.[0].value, k);
});

test(`${storeKind()}: purge by type deletes everything of that type`, async () => {
  const n = await broker.purge('', { type: 'AirQualityObserved' });
  assert.equal(n, 2000);
  const geo = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM entity_geo');
  assert.equal(Number(geo[0].n), 0);
});

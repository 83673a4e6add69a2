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

test(`${storeKind()}: attributes stored in the compact form keep their own timestamps across partial writes`, async () => {
  // A write ships only attributes whose stored JSON changes; implied instance timestamps must still
  // read back right after the row's modifiedAt moves on, and rows in the older full form too.
  const id = 'urn:ngsi-ld:AirQualityObserved:compact';
  const repo = new Broker(db, new LocalChangeBus(), new ContextLoader()).repo; // no cache: reads the row
  await broker.upsertEntities('', [sensor(0)].map((e) => ({ ...e, id })));
  const first = (await repo.get('', id))!;
  const pm = 'https://uri.etsi.org/ngsi-ld/default-context/pm25';
  const st = 'https://uri.etsi.org/ngsi-ld/status';
  assert.equal(first.attrs[st][0].modifiedAt, first.modifiedAt);
  assert.equal(first.attrs[st][0].type, 'Property');
  await new Promise((r) => setTimeout(r, 5)); // a later modifiedAt
  await broker.updateAttrs('', id, { pm25: { type: 'Property', value: 7 } });
  const second = (await repo.get('', id))!;
  assert.notEqual(second.modifiedAt, first.modifiedAt);
  assert.equal(second.attrs[pm][0].value, 7);
  assert.equal(second.attrs[pm][0].modifiedAt, second.modifiedAt);
  assert.equal(second.attrs[pm][0].createdAt, first.attrs[pm][0].createdAt);
  // untouched: its timestamps are the first write's, though the row's modifiedAt changed
  assert.equal(second.attrs[st][0].modifiedAt, first.modifiedAt);
  assert.equal(second.attrs[st][0].createdAt, first.modifiedAt);
  // replace by upsert with the same status value: new instances, stored JSON unchanged, now implied
  await new Promise((r) => setTimeout(r, 5));
  await broker.upsertEntities('', [{ id, type: 'AirQualityObserved', status: { type: 'Property', value: 'warn' }, pm25: { type: 'Property', value: 12345 } }]);
  const third = (await repo.get('', id))!;
  assert.equal(third.attrs[st][0].createdAt, third.modifiedAt);
  assert.equal(third.attrs[pm][0].value, 12345);
  assert.equal(third.attrs['https://uri.etsi.org/ngsi-ld/location'], undefined);
  const stored = await db.query<{ a: Record<string, unknown[]> }>('SELECT attrs AS a FROM entities WHERE tenant = $1 AND id = $2', ['', id]);
  assert.deepEqual(stored[0].a[st], [{ value: 'warn' }]);

  // a row written in the full form (before the compact one) reads back as it is, and is rewritten whole
  const legacy = 'urn:ngsi-ld:AirQualityObserved:legacy';
  const t0 = '2026-01-01T00:00:00.000Z';
  await db.query(
    `INSERT INTO entities (tenant, id, types, created_at, modified_at, attrs, attr_names) VALUES ('', $1, $2, $3, $3, $4::jsonb, $5)`,
    [legacy, ['https://uri.etsi.org/ngsi-ld/default-context/AirQualityObserved'], t0, JSON.stringify({ [st]: [{ type: 'Property', value: 'ok', createdAt: t0, modifiedAt: t0 }], [pm]: [{ type: 'Property', value: 1, createdAt: t0, modifiedAt: t0 }] }), [st, pm]],
  );
  await broker.updateAttrs('', legacy, { pm25: { type: 'Property', value: 2 } });
  const l = (await repo.get('', legacy))!;
  assert.equal(l.attrs[pm][0].value, 2);
  assert.equal(l.attrs[pm][0].createdAt, t0);
  assert.notEqual(l.attrs[pm][0].modifiedAt, t0);
  assert.equal(l.attrs[st][0].modifiedAt, t0);
  assert.equal(l.attrs[st][0].createdAt, t0);
  // q on an instance timestamp sees implied and explicit ones alike
  const q = await broker.query('', { type: 'AirQualityObserved', q: `status.modifiedAt<"2026-02-01T00:00:00Z"`, limit: 10 });
  assert.deepEqual(q.entities.map((e) => e.id), [legacy]);
  const q2 = await broker.query('', { type: 'AirQualityObserved', q: `pm25.createdAt>"2026-02-01T00:00:00Z";status=="warn";pm25==12345`, limit: 10 });
  assert.deepEqual(q2.entities.map((e) => e.id), [id]);
  await broker.deleteEntity('', id);
  await broker.deleteEntity('', legacy);
});

test(`${storeKind()}: with PostGIS, the geom column follows location on every write path`, async (t) => {
  if (!db.hasPostgis) return t.skip('no PostGIS');
  const id = 'urn:ngsi-ld:AirQualityObserved:gis';
  const geom = async () => (await db.query<{ g: string | null }>('SELECT ST_AsText(geom) AS g FROM entities WHERE tenant = $1 AND id = $2', ['', id]))[0]?.g ?? null;
  await broker.upsertEntities('', [{ ...sensor(0), id }]); // insert
  assert.equal(await geom(), 'POINT(-3.8 43.46)');
  await broker.updateAttrs('', id, { pm25: { type: 'Property', value: 3 } }); // fast path, location untouched
  assert.equal(await geom(), 'POINT(-3.8 43.46)');
  await broker.updateAttrs('', id, { location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [1, 2] } } }); // fast path, moved
  assert.equal(await geom(), 'POINT(1 2)');
  await broker.upsertEntities('', [{ id, type: 'AirQualityObserved', pm25: { type: 'Property', value: 4 } }]); // replace without location
  assert.equal(await geom(), null);
  const other = new Broker(db, new LocalChangeBus(), new ContextLoader());
  await other.updateAttrs('', id, { pm25: { type: 'Property', value: 5 } });
  await broker.upsertEntities('', [{ ...sensor(1), id }]); // stale cache: locked path
  assert.equal(await geom(), 'POINT(-3.799 43.46)');
  await broker.deleteEntity('', id);
});

test(`${storeKind()}: purge by type deletes everything of that type`, async () => {
  const n = await broker.purge('', { type: 'AirQualityObserved' });
  assert.equal(n, 2000);
  const geo = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM entity_geo');
  assert.equal(Number(geo[0].n), 0);
});

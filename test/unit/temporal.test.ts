import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';
import type { StoredEntity, TermResolver } from '../../src/ngsi-ld/model/types.ts';
import { openPglite } from '../../src/store/pglite.ts';
import type { Db } from '../../src/store/db.ts';
import { HistoryStore } from '../../src/temporal/store.ts';
import { iso, parseAggregation, parseDuration, parseTemporalQuery } from '../../src/temporal/params.ts';
import { aggregatedValues, capInstances, normalizedTemporal, stringifyWithRaw, temporalValues } from '../../src/temporal/representation.ts';

const V = 'https://example.org/vocab#';
const ctx: TermResolver = {
  expandTerm: (t) => (t.includes(':') ? t : V + t),
  compactIri: (i) => (i.startsWith(V) ? i.slice(V.length) : i),
};
const T = (s: string) => Date.parse(s);

async function store(kind: Db['kind'] = 'pglite') {
  const db = await openPglite();
  // the PostgreSQL DDL path (partitioning, BRIN) runs on PGlite too: it is PostgreSQL
  const h = new HistoryStore(kind === 'postgres' ? { ...db, kind: 'postgres' } : db);
  await h.migrate();
  return { db, h };
}

/** The ETSI fixture 2020-08-vehicle-temporal-representation as history rows. */
async function loadVehicle(h: HistoryStore, id = 'urn:ngsi-ld:Vehicle:1') {
  const at = T('2020-08-01T15:00:00Z');
  const row = (attr: string, value: number, observedAt: string) => ({
    tenant: '',
    entityId: id,
    at,
    attr: V + attr,
    instance: { type: 'Property' as const, value, observedAt },
  });
  await h.write(
    [{ tenant: '', id, types: [V + 'Vehicle'], createdAt: at, modifiedAt: at }],
    [
      row('speed', 120, '2020-08-01T12:03:00Z'),
      row('speed', 80, '2020-08-01T12:05:00Z'),
      row('speed', 100, '2020-08-01T12:07:00Z'),
      row('fuelLevel', 67, '2020-08-01T12:03:00Z'),
      row('fuelLevel', 53, '2020-08-01T13:05:00Z'),
      row('fuelLevel', 40, '2020-08-01T14:07:00Z'),
    ],
  );
}

test('parameters: timerel, timeproperty, lastN, durations, aggregation methods', () => {
  assert.deepEqual(parseTemporalQuery({}), { timeproperty: 'observedAt' });
  const q = parseTemporalQuery({ timerel: 'between', timeAt: '2020-01-01T00:00:00Z', endTimeAt: '2020-01-02T00:00:00Z', lastN: '3' });
  assert.equal(q.endTimeAt! - q.timeAt!, 86_400_000);
  assert.equal(q.lastN, 3);
  assert.throws(() => parseTemporalQuery({ timerel: 'around', timeAt: '2020-01-01T00:00:00Z' }), /timerel/);
  assert.throws(() => parseTemporalQuery({ timerel: 'before' }), /timeAt/);
  assert.throws(() => parseTemporalQuery({ timerel: 'between', timeAt: '2020-01-01T00:00:00Z' }), /endTimeAt/);
  assert.throws(() => parseTemporalQuery({ timeproperty: 'foo' }), /timeproperty/);
  assert.throws(() => parseTemporalQuery({ lastN: '0' }), /lastN/);
  assert.throws(() => parseTemporalQuery({ lastN: '1.5' }), /lastN/);
  assert.equal(parseDuration('PT1H'), 3_600_000);
  assert.equal(parseDuration('P1DT30M'), 88_200_000);
  assert.throws(() => parseDuration('1H'), /duration/);
  assert.throws(() => parseAggregation('avg,median', 'PT1H'), /median/);
  assert.throws(() => parseAggregation('', 'PT1H'), /mandatory/);
  assert.throws(() => parseAggregation('avg', 'PTXH'), /duration/);
  assert.deepEqual(parseAggregation(['avg', 'max'], 'P1D'), { methods: ['avg', 'max'], periodMs: 86_400_000, periodIso: 'P1D' });
  assert.equal(iso(T('2020-08-01T12:03:00Z')), '2020-08-01T12:03:00Z');
  assert.equal(iso(T('2020-08-01T12:03:00.250Z')), '2020-08-01T12:03:00.250Z');
});

test('history from change events: every change recorded per instance, tombstones for deletions', async () => {
  const { db, h } = await store();
  const e = (attrs: Record<string, unknown>, mod: string): StoredEntity => ({
    id: 'urn:ngsi-ld:Sensor:1',
    type: [V + 'Sensor'],
    createdAt: '2026-01-01T00:00:00.000Z',
    modifiedAt: mod,
    attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [V + k, [v]])) as StoredEntity['attrs'],
  });
  const p = (value: unknown, observedAt?: string, extra: Record<string, unknown> = {}) => ({ type: 'Property', value, ...(observedAt ? { observedAt } : {}), ...extra });
  const e1 = e({ temp: p(20, '2026-01-01T00:00:00Z'), status: p('ok') }, '2026-01-01T00:00:00.000Z');
  const e2 = e({ temp: p(21, '2026-01-01T00:01:00Z'), status: p('ok') }, '2026-01-01T00:01:00.000Z');
  const e3 = e({ temp: p(22, '2026-01-01T00:02:00Z') }, '2026-01-01T00:02:00.000Z');
  const ev = (kind: ChangeEvent['kind'], before: StoredEntity | undefined, after: StoredEntity | undefined, changed: string[], at: string, deleted?: string[]): ChangeEvent => ({
    tenant: 't1', entityId: 'urn:ngsi-ld:Sensor:1', types: [V + 'Sensor'], kind, before, after, changedAttrs: changed, deletedAttrs: deleted, at,
  });
  await h.recordEvents([
    ev('create', undefined, e1, [V + 'temp', V + 'status'], '2026-01-01T00:00:00.000Z'),
    ev('update', e1, e2, [V + 'temp'], '2026-01-01T00:01:00.000Z'),
    ev('update', e2, e3, [V + 'temp', V + 'status'], '2026-01-01T00:02:00.000Z', [V + 'status']),
  ]);
  const all = await h.queryInstances({ tenant: 't1', entityIds: ['urn:ngsi-ld:Sensor:1'], q: parseTemporalQuery({}) });
  assert.deepEqual(all.filter((r) => r.attr === V + 'temp').map((r) => r.instance?.value), [20, 21, 22]);
  assert.deepEqual(all.filter((r) => r.attr === V + 'status').map((r) => r.instance?.value), ['ok']);
  const del = await h.queryInstances({ tenant: 't1', entityIds: ['urn:ngsi-ld:Sensor:1'], q: parseTemporalQuery({ timeproperty: 'deletedAt' }) });
  assert.deepEqual(del.map((r) => [r.attr, iso(r.t)]), [[V + 'status', '2026-01-01T00:02:00Z']]);
  // time filters and lastN
  const after = await h.queryInstances({ tenant: 't1', entityIds: ['urn:ngsi-ld:Sensor:1'], attrs: [V + 'temp'], q: parseTemporalQuery({ timerel: 'after', timeAt: '2026-01-01T00:01:00Z' }) });
  assert.deepEqual(after.map((r) => r.instance?.value), [21, 22]);
  const before = await h.queryInstances({ tenant: 't1', entityIds: ['urn:ngsi-ld:Sensor:1'], attrs: [V + 'temp'], q: parseTemporalQuery({ timerel: 'before', timeAt: '2026-01-01T00:01:00Z' }) });
  assert.deepEqual(before.map((r) => r.instance?.value), [20]);
  const last = await h.queryInstances({ tenant: 't1', entityIds: ['urn:ngsi-ld:Sensor:1'], attrs: [V + 'temp'], q: parseTemporalQuery({ lastN: 2 }) });
  assert.deepEqual(last.map((r) => r.instance?.value), [22, 21]);
  // entity selection
  const found = await h.queryEntities({ tenant: 't1', typeGroups: [[V + 'Sensor']], limit: 10, offset: 0, count: true });
  assert.equal(found.count, 1);
  assert.equal((await h.queryEntities({ tenant: 't1', typeGroups: [[V + 'Car']], limit: 10, offset: 0 })).entities.length, 0);
  assert.equal((await h.queryEntities({ tenant: 't2', limit: 10, offset: 0 })).entities.length, 0);
  await db.close();
});

test('aggregation matches hand-computed values (ETSI 020_11 fixture)', async () => {
  const { db, h } = await store();
  await loadVehicle(h);
  const q = parseTemporalQuery({});
  const agg = await h.aggregate({ tenant: '', entityIds: ['urn:ngsi-ld:Vehicle:1'], q, spec: parseAggregation('avg,max,min,totalCount,sum,sumsq,stddev,distinctCount', 'PT1H') });
  const ent = (await h.getEntity('', 'urn:ngsi-ld:Vehicle:1'))!;
  const out = aggregatedValues(ent, agg, ['avg', 'max'], ctx);
  assert.deepEqual(out.fuelLevel, {
    type: 'Property',
    avg: [[67, '2020-08-01T12:03:00Z', '2020-08-01T13:03:00Z'], [53, '2020-08-01T13:03:00Z', '2020-08-01T14:03:00Z'], [40, '2020-08-01T14:03:00Z', '2020-08-01T15:03:00Z']],
    max: [[67, '2020-08-01T12:03:00Z', '2020-08-01T13:03:00Z'], [53, '2020-08-01T13:03:00Z', '2020-08-01T14:03:00Z'], [40, '2020-08-01T14:03:00Z', '2020-08-01T15:03:00Z']],
  });
  const speed = agg.find((s) => s.attr === V + 'speed')!;
  assert.equal(speed.buckets.length, 1);
  const v = speed.buckets[0].values;
  // 120, 80, 100: sum 300, avg 100, sumsq 14400+6400+10000 = 30800, population stddev sqrt(30800/3 - 100^2) = sqrt(800/3)
  assert.equal(v.totalCount, 3);
  assert.equal(v.distinctCount, 3);
  assert.equal(v.sum, 300);
  assert.equal(v.avg, 100);
  assert.equal(v.min, 80);
  assert.equal(v.max, 120);
  assert.equal(v.sumsq, 30800);
  assert.ok(Math.abs(v.stddev! - Math.sqrt(800 / 3)) < 1e-9);
  const day = await h.aggregate({ tenant: '', entityIds: ['urn:ngsi-ld:Vehicle:1'], q, spec: parseAggregation('min,max', 'P1D') });
  assert.deepEqual(aggregatedValues(ent, day, ['min', 'max'], ctx).fuelLevel, {
    type: 'Property',
    min: [[40, '2020-08-01T12:03:00Z', '2020-08-02T12:03:00Z']],
    max: [[67, '2020-08-01T12:03:00Z', '2020-08-02T12:03:00Z']],
  });
  await db.close();
});

test('aggregation: hourly rollup path equals the raw path, and stays right after instance changes', async () => {
  const { db, h } = await store('postgres');
  const at = T('2026-03-01T00:00:00Z');
  const rows = [];
  for (let i = 0; i < 6 * 60; i += 7) {
    rows.push({ tenant: '', entityId: 'urn:s:1', at, attr: V + 'v', instance: { type: 'Property' as const, value: (i * 37) % 101, observedAt: new Date(at + i * 60_000).toISOString() } });
  }
  await h.write([{ tenant: '', id: 'urn:s:1', types: [V + 'S'], createdAt: at, modifiedAt: at }], rows);
  const q = parseTemporalQuery({ timerel: 'between', timeAt: '2026-03-01T00:00:00Z', endTimeAt: '2026-03-01T06:00:00Z' });
  const methods = 'totalCount,sum,avg,min,max,stddev,sumsq';
  const viaRollup = await h.aggregate({ tenant: '', entityIds: ['urn:s:1'], q, spec: parseAggregation(methods, 'PT2H') });
  // distinctCount forces the raw path
  const viaRaw = await h.aggregate({ tenant: '', entityIds: ['urn:s:1'], q, spec: parseAggregation(methods + ',distinctCount', 'PT2H') });
  assert.equal(viaRollup[0].buckets.length, 3);
  for (let b = 0; b < 3; b++) {
    for (const m of methods.split(',') as (keyof (typeof viaRaw)[0]['buckets'][0]['values'])[]) {
      assert.ok(Math.abs(viaRollup[0].buckets[b].values[m]! - viaRaw[0].buckets[b].values[m]!) < 1e-6, `${m} bucket ${b}`);
    }
  }
  // hand check of the first bucket (minutes 0..119, step 7)
  const vals = rows.filter((r) => T(r.instance.observedAt) < at + 2 * 3_600_000).map((r) => r.instance.value);
  assert.equal(viaRollup[0].buckets[0].values.totalCount, vals.length);
  assert.equal(viaRollup[0].buckets[0].values.sum, vals.reduce((a, b) => a + b, 0));
  // modify and delete instances: the rollup follows
  const inst = await h.queryInstances({ tenant: '', entityIds: ['urn:s:1'], q: parseTemporalQuery({ lastN: 1 }) });
  assert.ok(await h.modifyInstance('', 'urn:s:1', V + 'v', inst[0].instanceId, { type: 'Property', value: 1000 }, at));
  const first = await h.queryInstances({ tenant: '', entityIds: ['urn:s:1'], q: parseTemporalQuery({ timerel: 'before', timeAt: '2026-03-01T00:01:00Z' }) });
  assert.ok(await h.deleteInstance('', 'urn:s:1', V + 'v', first[0].instanceId));
  const a2 = await h.aggregate({ tenant: '', entityIds: ['urn:s:1'], q, spec: parseAggregation('max,totalCount', 'PT2H') });
  const r2 = await h.aggregate({ tenant: '', entityIds: ['urn:s:1'], q, spec: parseAggregation('max,totalCount,distinctCount', 'PT2H') });
  assert.equal(a2[0].buckets[2].values.max, 1000);
  assert.equal(a2[0].buckets[0].values.totalCount, vals.length - 1);
  assert.deepEqual(a2[0].buckets.map((b) => b.values.totalCount), r2[0].buckets.map((b) => b.values.totalCount));
  // partitions were created for the month
  const parts = await db.query<{ relname: string }>(`SELECT relname FROM pg_class WHERE relname LIKE 'attr_history_2026_%' AND relkind = 'r'`);
  assert.deepEqual(parts.map((p) => p.relname), ['attr_history_2026_03']);
  await db.close();
});

test('aggregation: PT1H served by the rollup rows directly equals the raw path and hand-computed values', async () => {
  const { db, h } = await store();
  const at = T('2026-03-01T00:00:00Z');
  const H = 3_600_000;
  const inst = (value: unknown, ms: number, datasetId?: string) => ({ type: 'Property' as const, value, observedAt: new Date(ms).toISOString(), ...(datasetId ? { datasetId } : {}) });
  type Row = { tenant: string; entityId: string; at: number; attr: string; instance: ReturnType<typeof inst> };
  const rows: Row[] = [];
  const add = (id: string, value: unknown, ms: number, datasetId?: string) => rows.push({ tenant: '', entityId: id, at, attr: V + 'v', instance: inst(value, ms, datasetId) });
  // s:1 every 7 minutes over 6 hours, nothing in hour 3 (a gap in the grid)
  for (let i = 0; i < 6 * 60; i += 7) if (Math.floor(i / 60) !== 3) add('urn:s:1', (i * 37) % 101, at + i * 60_000);
  // s:2 two datasetIds in the same hours: several rollup rows per hour, merged like the raw path does
  for (let i = 0; i < 2 * 60; i += 10) {
    add('urn:s:2', i, at + i * 60_000);
    add('urn:s:2', 1000 + i, at + i * 60_000 + 1000, 'urn:ds:b');
  }
  // s:3 starts in hour 2; s:4 has only non-numeric values in hour 0 (numeric methods null)
  for (let i = 120; i < 240; i += 30) add('urn:s:3', i / 10, at + i * 60_000);
  add('urn:s:4', 'on', at + 5 * 60_000);
  add('urn:s:4', 'off', at + 50 * 60_000);
  add('urn:s:4', 4, at + 65 * 60_000);
  const ids = ['urn:s:1', 'urn:s:2', 'urn:s:3', 'urn:s:4'];
  await h.write(ids.map((id) => ({ tenant: '', id, types: [V + 'S'], createdAt: at, modifiedAt: at })), rows);
  const q = parseTemporalQuery({ timerel: 'between', timeAt: '2026-03-01T00:00:00Z', endTimeAt: '2026-03-01T06:00:00Z' });
  const methods = 'totalCount,sum,avg,min,max,stddev,sumsq';
  const direct = await h.aggregate({ tenant: '', entityIds: [...ids].reverse(), q, spec: parseAggregation(methods, 'PT1H') });
  const raw = await h.aggregate({ tenant: '', entityIds: ids, q, spec: parseAggregation(methods + ',distinctCount', 'PT1H') });
  assert.deepEqual(direct.map((s) => s.entityId), ids, 'ordered by entity id');
  for (const [k, s] of direct.entries()) {
    const r = raw[k];
    assert.deepEqual(s.starts, r.starts, `${s.entityId} bucket starts`);
    for (const m of methods.split(',') as (keyof (typeof s.buckets)[0]['values'])[]) {
      s.buckets.forEach((b, j) => {
        const want = r.buckets[j].values[m];
        if (want === null) assert.equal(b.values[m], null, `${s.entityId} ${m} bucket ${j}`);
        else assert.ok(Math.abs(b.values[m]! - want!) < 1e-9, `${s.entityId} ${m} bucket ${j}: ${b.values[m]} vs ${want}`);
      });
    }
  }
  const byId = Object.fromEntries(direct.map((s) => [s.entityId, s]));
  // hand checks
  assert.deepEqual(byId['urn:s:1'].starts, [0, 1, 2, 4, 5].map((x) => at + x * H));
  const hour0 = rows.filter((r) => r.entityId === 'urn:s:1' && T(r.instance.observedAt) < at + H).map((r) => r.instance.value as number);
  assert.equal(byId['urn:s:1'].buckets[0].values.totalCount, hour0.length);
  assert.equal(byId['urn:s:1'].buckets[0].values.sum, hour0.reduce((a, b) => a + b, 0));
  assert.equal(byId['urn:s:1'].buckets[0].values.max, Math.max(...hour0));
  // s:2 hour 0: 0,10..50 and 1000..1050: 12 instances, avg (150 + 6150) / 12 = 525
  assert.deepEqual(byId['urn:s:2'].buckets.map((b) => [b.values.totalCount, b.values.avg]), [[12, 525], [12, 585]]);
  assert.deepEqual(byId['urn:s:3'].starts, [at + 2 * H, at + 3 * H]);
  assert.deepEqual(byId['urn:s:3'].buckets.map((b) => b.values.sum), [12 + 15, 18 + 21]);
  assert.deepEqual(byId['urn:s:4'].buckets.map((b) => [b.values.totalCount, b.values.avg, b.values.stddev]), [[2, null, null], [1, 4, 0]]);
  // the response text (RawJson lists) equals the plain representation
  const ent = (await h.getEntity('', 'urn:s:1'))!;
  for (const s of direct) {
    const plain = aggregatedValues(ent, [s], ['avg', 'totalCount', 'stddev'], ctx);
    const text = stringifyWithRaw(aggregatedValues(ent, [s], ['avg', 'totalCount', 'stddev'], ctx, { raw: true }));
    assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(plain)), s.entityId);
  }
  assert.deepEqual((aggregatedValues(ent, [byId['urn:s:4']], ['avg'], ctx).v as { avg: unknown }).avg, [
    [null, '2026-03-01T00:00:00Z', '2026-03-01T01:00:00Z'],
    [4, '2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z'],
  ]);
  // attrs= restricts, and the rollup is read through its covering key (index-only when vacuumed)
  assert.equal((await h.aggregate({ tenant: '', entityIds: ids, attrs: [V + 'other'], q, spec: parseAggregation('avg', 'PT1H') })).length, 0);
  await h.maintain();
  const again = await h.aggregate({ tenant: '', entityIds: ids, q, spec: parseAggregation('avg', 'PT1H') });
  assert.deepEqual(again.map((s) => s.text.avg), direct.map((s) => s.values.avg!.join(',')));
  // entity selection by window: whole-hour windows are tested on the rollup, others on raw history
  const inWindow = async (timeAt: string, endTimeAt: string, extra: { attrs?: string[]; datasetIds?: string[] } = {}) =>
    (await h.queryEntities({ tenant: '', attrs: extra.attrs, limit: 10, offset: 0, window: { q: parseTemporalQuery({ timerel: 'between', timeAt, endTimeAt }), datasetIds: extra.datasetIds } })).entities.map((e) => e.id);
  assert.deepEqual(await inWindow('2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z'), ['urn:s:1', 'urn:s:2', 'urn:s:4']);
  // one millisecond more reaches s:3's first instance at 02:00:00.000
  assert.deepEqual(await inWindow('2026-03-01T01:00:00Z', '2026-03-01T02:00:00.001Z'), ['urn:s:1', 'urn:s:2', 'urn:s:3', 'urn:s:4']);
  assert.deepEqual(await inWindow('2026-03-01T03:00:00Z', '2026-03-01T04:00:00Z'), ['urn:s:3']);
  assert.deepEqual(await inWindow('2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z', { datasetIds: ['urn:ds:b'] }), ['urn:s:2']);
  assert.deepEqual(await inWindow('2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z', { attrs: [V + 'other'] }), []);
  // a deleted instance no longer puts its entity in the window, on either path
  const s4 = await h.queryInstances({ tenant: '', entityIds: ['urn:s:4'], q: parseTemporalQuery({ timerel: 'after', timeAt: '2026-03-01T01:00:00Z' }) });
  assert.ok(await h.deleteInstance('', 'urn:s:4', V + 'v', s4[0].instanceId));
  assert.deepEqual(await inWindow('2026-03-01T01:00:00Z', '2026-03-01T02:00:00Z'), ['urn:s:1', 'urn:s:2']);
  assert.deepEqual(await inWindow('2026-03-01T00:59:59.999Z', '2026-03-01T02:00:00Z'), ['urn:s:1', 'urn:s:2']);
  await db.close();
});

test('retention per tenant and entity type', async () => {
  const { db, h } = await store();
  const now = T('2026-03-31T00:00:00Z');
  const mk = async (tenant: string, id: string, type: string) => {
    await h.write(
      [{ tenant, id, types: [V + type], createdAt: now, modifiedAt: now }],
      [10, 40].map((daysAgo) => ({ tenant, entityId: id, at: now, attr: V + 'v', instance: { type: 'Property' as const, value: daysAgo, observedAt: new Date(now - daysAgo * 86_400_000).toISOString() } })),
    );
  };
  await mk('a', 'urn:1', 'Car');
  await mk('a', 'urn:2', 'Bus');
  await mk('b', 'urn:3', 'Car');
  await h.setRetention('a', '', 30);
  await h.setRetention('a', V + 'Car', 5);
  assert.equal(await h.applyRetention(now), 3); // urn:1 both, urn:2 the 40-day-old one, tenant b untouched
  const left = async (tenant: string, id: string) =>
    (await h.queryInstances({ tenant, entityIds: [id], q: parseTemporalQuery({}) })).map((r) => r.instance?.value);
  assert.deepEqual(await left('a', 'urn:1'), []);
  assert.deepEqual(await left('a', 'urn:2'), [10]);
  assert.deepEqual(await left('b', 'urn:3'), [40, 10]);
  assert.equal((await h.listRetention()).length, 2);
  await db.close();
});

test('representations: normalized with instanceId, temporalValues, 206 instance cap with Content-Range', async () => {
  const { db, h } = await store();
  await loadVehicle(h);
  const ent = (await h.getEntity('', 'urn:ngsi-ld:Vehicle:1'))!;
  const rows = await h.queryInstances({ tenant: '', entityIds: [ent.id], q: parseTemporalQuery({}) });
  const norm = normalizedTemporal(ent, rows, ctx);
  assert.equal(norm.type, 'Vehicle');
  const speed = norm.speed as Record<string, unknown>[];
  assert.equal(speed.length, 3);
  assert.equal(speed[0].value, 120);
  assert.equal(speed[0].observedAt, '2020-08-01T12:03:00Z');
  assert.match(String(speed[0].instanceId), /^urn:ngsi-ld:attribute:instance:/);
  const tv = temporalValues(ent, rows, ctx);
  assert.deepEqual(tv.fuelLevel, { type: 'Property', values: [[67, '2020-08-01T12:03:00Z'], [53, '2020-08-01T13:05:00Z'], [40, '2020-08-01T14:07:00Z']] });

  // 6 instances, cap 4: the 4 oldest, range from the least to the most recent kept
  const c = capInstances(rows, 4, {});
  assert.equal(c.rows.length, 4);
  assert.equal(c.contentRange, 'date-time 2020-08-01T12:03:00Z-2020-08-01T12:07:00Z/*');
  // lastN: newest first, size = lastN
  const ln = await h.queryInstances({ tenant: '', entityIds: [ent.id], q: parseTemporalQuery({ lastN: 3 }) });
  const c2 = capInstances(ln, 4, { lastN: 3 });
  assert.equal(c2.contentRange, 'date-time 2020-08-01T14:07:00Z-2020-08-01T12:05:00Z/3');
  const c3 = capInstances(rows, 4, { timerel: 'after', timeAt: T('2020-01-01T00:00:00Z') });
  assert.match(c3.contentRange!, /^date-time 2020-01-01T00:00:00Z-/);
  assert.equal(capInstances(rows, 100, {}).contentRange, undefined);
  await db.close();
});

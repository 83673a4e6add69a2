import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';
import { temporalModule } from '../../src/temporal/module.ts';

const JSON_CT = { 'content-type': 'application/json' };
const T = '/ngsi-ld/v1/temporal';

test('temporal API: history of broker writes, create/append/modify/delete, representations, aggregation, 206 paging', async () => {
  process.env.URBIS_TEMPORAL_MAX_INSTANCES = '5';
  const s = await testPlatform({ modules: [temporalModule] });
  delete process.env.URBIS_TEMPORAL_MAX_INSTANCES;
  try {
    // 1. every broker change is history, durable by the time the write is acknowledged
    const b = s.platform.broker;
    await b.createEntity('', { id: 'urn:ngsi-ld:Sensor:h1', type: 'Sensor', t: { type: 'Property', value: 1, observedAt: '2026-01-01T00:00:00Z' } });
    await b.updateAttrs('', 'urn:ngsi-ld:Sensor:h1', { t: { type: 'Property', value: 2, observedAt: '2026-01-01T00:01:00Z' } });
    let r = await s.inject({ method: 'GET', url: `${T}/entities/urn:ngsi-ld:Sensor:h1?options=temporalValues` });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().t.values, [
      [1, '2026-01-01T00:00:00Z'],
      [2, '2026-01-01T00:01:00Z'],
    ]);

    // 2. create a temporal entity (hand-computable series), then it exists: 204 on the next upsert
    const speed = [120, 80, 100, 60].map((v, i) => ({ type: 'Property', value: v, observedAt: `2020-08-01T12:0${i * 2}:00Z` }));
    const veh = { id: 'urn:ngsi-ld:Vehicle:t1', type: 'Vehicle', speed };
    r = await s.inject({ method: 'POST', url: `${T}/entities`, payload: veh, headers: JSON_CT });
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.headers.location, `${T}/entities/urn%3Angsi-ld%3AVehicle%3At1`);
    r = await s.inject({ method: 'POST', url: `${T}/entities`, payload: { id: veh.id, type: 'Vehicle', fuel: [{ type: 'Property', value: 10, observedAt: '2020-08-01T13:00:00Z' }] }, headers: JSON_CT });
    assert.equal(r.statusCode, 204);
    r = await s.inject({ method: 'POST', url: `${T}/entities`, payload: { type: 'Vehicle' }, headers: JSON_CT });
    assert.equal(r.statusCode, 400);

    // 3. timerel between (lower bound inclusive, upper exclusive), lastN
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}?attrs=speed&timerel=between&timeAt=2020-08-01T12:02:00Z&endTimeAt=2020-08-01T12:06:00Z` });
    assert.deepEqual(r.json().speed.map((i: { value: number }) => i.value), [80, 100]);
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}?attrs=speed&lastN=2&options=temporalValues` });
    assert.deepEqual(r.json().speed.values.map((v: unknown[]) => v[0]).sort(), [100, 60].sort());
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}?timerel=around&timeAt=2020-08-01T12:02:00Z` });
    assert.equal(r.statusCode, 400);
    assert.match(r.json().type, /BadRequestData/);

    // 4. aggregation against hand-computed values: speed 120, 80, 100, 60 in PT4M periods from 12:00
    r = await s.inject({
      method: 'GET',
      url: `${T}/entities/${veh.id}?attrs=speed&options=aggregatedValues&aggrMethods=totalCount,sum,avg,min,max,stddev,sumsq,distinctCount&aggrPeriodDuration=PT4M&timerel=after&timeAt=2020-08-01T12:00:00Z`,
    });
    assert.equal(r.statusCode, 200, r.body);
    const a = r.json().speed;
    assert.deepEqual(a.totalCount, [[2, '2020-08-01T12:00:00Z', '2020-08-01T12:04:00Z'], [2, '2020-08-01T12:04:00Z', '2020-08-01T12:08:00Z']]);
    assert.deepEqual(a.sum.map((x: unknown[]) => x[0]), [200, 160]);
    assert.deepEqual(a.avg.map((x: unknown[]) => x[0]), [100, 80]);
    assert.deepEqual(a.min.map((x: unknown[]) => x[0]), [80, 60]);
    assert.deepEqual(a.max.map((x: unknown[]) => x[0]), [120, 100]);
    assert.deepEqual(a.stddev.map((x: unknown[]) => x[0]), [20, 20]); // population stddev
    assert.deepEqual(a.sumsq.map((x: unknown[]) => x[0]), [120 ** 2 + 80 ** 2, 100 ** 2 + 60 ** 2]);
    assert.deepEqual(a.distinctCount.map((x: unknown[]) => x[0]), [2, 2]);

    // 5. query: type + window; entities without an instance in the window are left out
    r = await s.inject({ method: 'GET', url: `${T}/entities?type=Vehicle&timerel=before&timeAt=2020-08-01T12:03:00Z&attrs=speed` });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().map((e: { id: string }) => e.id), [veh.id]);
    r = await s.inject({ method: 'GET', url: `${T}/entities?type=Vehicle&timerel=before&timeAt=2019-01-01T00:00:00Z` });
    assert.deepEqual(r.json(), []);
    r = await s.inject({ method: 'GET', url: `${T}/entities?type=Vehicle&q=speed>110&timerel=after&timeAt=2020-08-01T12:01:00Z` });
    assert.deepEqual(r.json(), [], '120 lies outside the window');
    r = await s.inject({ method: 'GET', url: `${T}/entities?id=${veh.id}` });
    assert.equal(r.statusCode, 400, 'ids alone do not bound a query');
    r = await s.inject({ method: 'POST', url: `${T}/entityOperations/query`, payload: { type: 'Query', entities: [{ type: 'Vehicle' }], attrs: ['speed'], temporalQ: { lastN: 1 } }, headers: JSON_CT });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json()[0].speed.length, 1);

    // 6. 206 Partial Content beyond the instance cap (5 here): 4 speed + 1 fuel + ... add 2 more
    await s.inject({ method: 'POST', url: `${T}/entities/${veh.id}/attrs`, payload: { fuel: [{ type: 'Property', value: 9, observedAt: '2020-08-01T14:00:00Z' }, { type: 'Property', value: 8, observedAt: '2020-08-01T15:00:00Z' }] }, headers: JSON_CT });
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}` });
    assert.equal(r.statusCode, 206);
    assert.equal(r.headers['content-range'], 'date-time 2020-08-01T12:00:00Z-2020-08-01T13:00:00Z/*');
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}?timerel=after&timeAt=2020-08-01T13:00:00Z` });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json().fuel.map((i: { value: number }) => i.value), [10, 9, 8]);

    // 7. modify and delete one instance, delete an attribute, delete the entity
    const inst = r.json().fuel[0].instanceId as string;
    r = await s.inject({ method: 'PATCH', url: `${T}/entities/${veh.id}/attrs/fuel/${inst}`, payload: { type: 'Property', value: 11, observedAt: '2020-08-01T13:00:00Z' }, headers: JSON_CT });
    assert.equal(r.statusCode, 204, r.body);
    r = await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}?attrs=fuel&timerel=after&timeAt=2020-08-01T13:00:00Z` });
    assert.equal(r.json().fuel[0].value, 11);
    assert.equal((await s.inject({ method: 'DELETE', url: `${T}/entities/${veh.id}/attrs/fuel/${inst}` })).statusCode, 204);
    assert.equal((await s.inject({ method: 'DELETE', url: `${T}/entities/${veh.id}/attrs/fuel/${inst}` })).statusCode, 404);
    assert.equal((await s.inject({ method: 'DELETE', url: `${T}/entities/${veh.id}/attrs/fuel` })).statusCode, 204);
    assert.equal((await s.inject({ method: 'DELETE', url: `${T}/entities/${veh.id}` })).statusCode, 204);
    assert.equal((await s.inject({ method: 'GET', url: `${T}/entities/${veh.id}` })).statusCode, 404);

    // 8. retention per tenant / entity type
    assert.equal((await s.inject({ method: 'PUT', url: '/temporal/v1/retention', payload: { entityType: 'Sensor', days: 30 }, headers: JSON_CT })).statusCode, 204);
    r = await s.inject({ method: 'POST', url: '/temporal/v1/retention/sweep' });
    assert.ok(r.json().removed >= 2, 'the 2026-01-01 sensor history is older than 30 days by now');
  } finally {
    await s.close();
  }
});

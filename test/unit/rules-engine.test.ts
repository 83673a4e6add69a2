import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alertEntity, planActions, ruleEntity } from '../../src/rules/domain/actions.ts';
import type { EvalState } from '../../src/rules/domain/engine.ts';
import { builtinQEngine } from '../../src/rules/domain/engines.ts';
import { Harness, MIN, rule } from '../../src/rules/testkit.ts';

const AQ = 'AirQualityObserved';
const S1 = 'urn:ngsi-ld:AirQualityObserved:s1';
const S2 = 'urn:ngsi-ld:AirQualityObserved:s2';

const pm25 = (extra: Record<string, unknown> = {}) =>
  rule({ select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>50', for: '30m' }, alarm: { severity: 'high', category: 'environment', subCategory: 'airPollution' }, ...extra });

test('condition held for a duration: fires only after 30 min above, a dip restarts the hold', () => {
  const h = new Harness([pm25()]);
  h.write(S1, AQ, { pm25: 60 });
  h.advance(20 * MIN);
  h.write(S1, AQ, { pm25: 45 }); // dip: hold restarts
  h.advance(5 * MIN);
  h.write(S1, AQ, { pm25: 70 });
  h.advance(29 * MIN);
  assert.deepEqual(h.events(), []);
  h.advance(1 * MIN); // 30 min above, no new event needed: the timer fires
  assert.deepEqual(h.events(), [`raise:${S1}`]);
  const [a] = h.alarms();
  assert.equal(a.status, 'active');
  assert.equal(a.severity, 'high');
  assert.deepEqual(a.value, { pm25: 70 });
  assert.match(a.description, /pm25>50 for 30m/);
  h.write(S1, AQ, { pm25: 40 });
  assert.deepEqual(h.events(), [`raise:${S1}`, `clear:${S1}`]);
  assert.equal(h.alarms()[0].status, 'cleared');
  assert.equal(h.alarms()[0].clearedBy, 'auto');
});

test('condition without hold, per entity; unrelated attribute changes are not evaluated', () => {
  const h = new Harness([rule({ select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>50' } })]);
  h.write(S1, AQ, { pm25: 60, pm10: 1 });
  h.write(S2, AQ, { pm25: 10 });
  assert.deepEqual(h.events(), [`raise:${S1}`]);
  const n = h.engine.evaluations;
  h.write(S1, AQ, { pm10: 2 });
  assert.equal(h.engine.evaluations, n, 'pm10 change does not re-evaluate pm25>50');
  h.write(S2, AQ, { pm25: 55 });
  assert.deepEqual(h.events(), [`raise:${S1}`, `raise:${S2}`]);
  assert.equal(h.alarms().length, 2);
});

test('dedup: a flapping sensor makes one alarm (reopened, counted), not thousands', () => {
  const r = pm25({
    trigger: { kind: 'condition', q: 'pm25>50' },
    alarm: { severity: 'high', category: 'environment', reopenWithin: '15m' },
    actions: [{ type: 'webhook', url: 'http://ops.example/hook' }],
  });
  const h = new Harness([r]);
  for (let i = 0; i < 1000; i++) {
    h.write(S1, AQ, { pm25: i % 2 === 0 ? 80 : 20 });
    h.advance(1000);
  }
  const alarms = h.alarms();
  assert.equal(alarms.length, 1);
  assert.equal(alarms[0].count, 500);
  const raises = h.transitions.filter((t) => t.event === 'raise');
  assert.equal(raises.length, 1);
  // notifications: one raise and one clear, reopenings and later clears are silent
  assert.deepEqual(h.plans.map((p) => p.event), ['raise', 'clear']);
  // after the reopen window a new alarm is made
  h.advance(20 * MIN);
  h.write(S1, AQ, { pm25: 90 });
  assert.equal(h.alarms().filter((a) => a.status === 'active').length, 1);
  assert.equal(h.transitions.filter((t) => t.event === 'raise').length, 2);
});

test('hysteresis: clearAfter keeps the alarm through short dips', () => {
  const h = new Harness([pm25({ trigger: { kind: 'condition', q: 'pm25>50' }, alarm: { clearAfter: '10m' } })]);
  h.write(S1, AQ, { pm25: 80 });
  h.advance(MIN);
  h.write(S1, AQ, { pm25: 30 });
  h.advance(5 * MIN);
  h.write(S1, AQ, { pm25: 70 });
  h.advance(MIN);
  h.write(S1, AQ, { pm25: 30 });
  h.advance(9 * MIN);
  assert.deepEqual(h.events(), [`raise:${S1}`]);
  h.advance(MIN); // 10 min below: the timer clears it
  assert.deepEqual(h.events(), [`raise:${S1}`, `clear:${S1}`]);
  assert.equal(h.alarms()[0].count, 1);
});

test('lifecycle: active -> acknowledged -> cleared by an operator; acknowledged stays until the condition ends', () => {
  const h = new Harness([pm25({ trigger: { kind: 'condition', q: 'pm25>50' }, actions: [{ type: 'email', to: 'ops@city.example', on: ['raise', 'acknowledge', 'clear'] }] })]);
  h.write(S1, AQ, { pm25: 80 });
  const id = h.alarms()[0].id;
  h.advance(MIN);
  const acked = h.engine.acknowledge(id, 'alice', h.clock.now(), 'crew informed');
  h.driver.flush();
  assert.equal(acked.status, 'acknowledged');
  assert.equal(acked.acknowledgedBy, 'alice');
  assert.throws(() => h.engine.acknowledge('urn:ngsi-ld:Alert:nope', 'x', 0), /no alarm/);
  h.write(S1, AQ, { pm25: 85 });
  assert.equal(h.alarms()[0].status, 'acknowledged');
  h.write(S1, AQ, { pm25: 20 });
  assert.equal(h.alarms()[0].status, 'cleared');
  assert.deepEqual(h.plans.map((p) => p.event), ['raise', 'acknowledge', 'clear']);
  assert.throws(() => h.engine.acknowledge(id, 'bob', h.clock.now()), /is cleared/);
});

test('manual clear while the condition holds: no re-raise until it ends and comes back', () => {
  const h = new Harness([pm25({ trigger: { kind: 'condition', q: 'pm25>50' }, alarm: { autoClear: false, reopenWithin: '0s' } })]);
  h.write(S1, AQ, { pm25: 80 });
  h.write(S1, AQ, { pm25: 20 });
  assert.equal(h.alarms()[0].status, 'active', 'autoClear false: stays active');
  h.write(S1, AQ, { pm25: 90 });
  assert.equal(h.alarms()[0].count, 2, 're-firing counts on the same alarm');
  h.engine.clearAlarm(h.alarms()[0].id, 'bob', h.clock.now());
  h.driver.flush();
  h.advance(MIN);
  h.write(S1, AQ, { pm25: 95 });
  assert.equal(h.alarms()[0].status, 'cleared');
  h.write(S1, AQ, { pm25: 10 });
  h.advance(MIN);
  h.write(S1, AQ, { pm25: 99 });
  const active = h.alarms().filter((a) => a.status === 'active');
  assert.equal(active.length, 1);
  assert.equal(h.transitions.filter((t) => t.event === 'raise').length, 2);
});

test('rate of change: a river rising faster than 0.5 m/h', () => {
  const R = 'urn:ngsi-ld:WaterObserved:river';
  const h = new Harness([rule({ select: { type: 'WaterObserved' }, trigger: { kind: 'rateOfChange', attribute: 'height', per: '1h', window: '1h', riseAbove: 0.5 } })]);
  const t0 = h.clock.now();
  const obs = (min: number, v: number) => {
    h.clock.advance(t0 + min * MIN - h.clock.now());
    h.write(R, 'WaterObserved', { height: v }, { observedAt: new Date(t0 + min * MIN).toISOString() });
  };
  obs(0, 2.0);
  obs(15, 2.05);
  obs(30, 2.1); // 0.2 m/h
  assert.deepEqual(h.events(), []);
  obs(45, 2.4);
  obs(60, 2.7); // 0.7 m over the last hour
  assert.deepEqual(h.events(), [`raise:${R}`]);
  assert.equal((h.alarms()[0].value as Record<string, unknown>).rate, 0.7);
  obs(75, 2.72);
  obs(90, 2.73);
  obs(105, 2.74);
  obs(120, 2.75);
  assert.deepEqual(h.events(), [`raise:${R}`, `clear:${R}`]);
  // falls
  const h2 = new Harness([rule({ select: { type: 'WaterObserved' }, trigger: { kind: 'rateOfChange', attribute: 'height', per: '1h', fallAbove: 1 } })]);
  h2.write(R, 'WaterObserved', { height: 5 });
  h2.advance(30 * MIN);
  h2.write(R, 'WaterObserved', { height: 4 });
  assert.deepEqual(h2.events(), [`raise:${R}`]);
});

test('absence: no update for 15 min raises; an update clears; timers without events', () => {
  const D = 'urn:ngsi-ld:Device:d1';
  const h = new Harness([rule({ select: { type: 'Device' }, trigger: { kind: 'absence', after: '15m' }, alarm: { severity: 'medium', category: 'security' } })]);
  h.write(D, 'Device', { batteryLevel: 0.9 });
  h.advance(10 * MIN);
  h.write(D, 'Device', { batteryLevel: 0.89 });
  h.advance(14 * MIN);
  assert.deepEqual(h.events(), []);
  h.advance(MIN);
  assert.deepEqual(h.events(), [`raise:${D}`]);
  assert.match(h.alarms()[0].description, /no update from .* for 15m/);
  h.advance(60 * MIN);
  assert.equal(h.alarms()[0].count, 1, 'silence does not re-raise');
  h.write(D, 'Device', { batteryLevel: 0.88 });
  assert.deepEqual(h.events(), [`raise:${D}`, `clear:${D}`]);
  h.advance(15 * MIN);
  assert.deepEqual(h.events(), [`raise:${D}`, `clear:${D}`, `reopen:${D}`]);
});

test('absence of one attribute only, and seeding entities that already exist', () => {
  const D = 'urn:ngsi-ld:Device:d2';
  const h = new Harness([rule({ select: { type: 'Device' }, trigger: { kind: 'absence', after: '10m', attribute: 'value' } })]);
  h.write(D, 'Device', { value: 1, rssi: -70 });
  h.advance(6 * MIN);
  h.write(D, 'Device', { rssi: -71 }); // not the watched attribute
  h.advance(4 * MIN);
  assert.deepEqual(h.events(), [`raise:${D}`]);
  h.engine.observe('', 'r1', 'urn:ngsi-ld:Device:old', h.clock.now() - 9 * MIN, h.clock.now());
  h.driver.flush();
  h.advance(MIN);
  assert.deepEqual(h.events(), [`raise:${D}`, 'raise:urn:ngsi-ld:Device:old']);
});

test('geofence enter / leave fire on crossings; inside fires while inside', () => {
  const zone = { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]] };
  const V = 'urn:ngsi-ld:Vehicle:v1';
  const pt = (x: number, y: number) => ({ type: 'Point', coordinates: [x, y] });
  const h = new Harness([rule({ select: { type: 'Vehicle' }, trigger: { kind: 'geofence', event: 'enter', geometry: zone } })]);
  h.write(V, 'Vehicle', { location: pt(0.5, 0.5) }); // first sighting inside: not an entrance
  h.write(V, 'Vehicle', { location: pt(2, 2) });
  assert.deepEqual(h.events(), []);
  h.write(V, 'Vehicle', { location: pt(0.2, 0.3) });
  assert.deepEqual(h.events(), [`raise:${V}`]);
  h.write(V, 'Vehicle', { location: pt(0.3, 0.3) });
  h.write(V, 'Vehicle', { location: pt(5, 5) });
  assert.deepEqual(h.events(), [`raise:${V}`, `clear:${V}`]);
  assert.deepEqual(h.alarms()[0].location, pt(0.3, 0.3));

  const leave = new Harness([rule({ select: { type: 'Vehicle' }, trigger: { kind: 'geofence', event: 'leave', geometry: zone } })]);
  leave.write(V, 'Vehicle', { location: pt(0.5, 0.5) });
  leave.write(V, 'Vehicle', { location: pt(3, 0.5) });
  assert.deepEqual(leave.events(), [`raise:${V}`]);
  const inside = new Harness([rule({ select: { type: 'Vehicle' }, trigger: { kind: 'geofence', event: 'inside', geometry: zone } })]);
  inside.write(V, 'Vehicle', { location: pt(0.5, 0.5) });
  assert.deepEqual(inside.events(), [`raise:${V}`]);
});

test('anomaly (rolling mean / sd): a bridge vibrating oddly', () => {
  const B = 'urn:ngsi-ld:Bridge:b1';
  const h = new Harness([rule({ select: { type: 'Bridge' }, trigger: { kind: 'anomaly', attribute: 'vibration', window: 20, sensitivity: 4, minSamples: 10 }, alarm: { category: 'security', severity: 'critical' } })]);
  const normal = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.0, 1.1, 0.9, 1.0, 1.05];
  for (const v of normal) {
    h.write(B, 'Bridge', { vibration: v });
    h.advance(MIN);
  }
  assert.deepEqual(h.events(), []);
  h.write(B, 'Bridge', { vibration: 3.5 });
  assert.deepEqual(h.events(), [`raise:${B}`]);
  const v = h.alarms()[0].value as Record<string, number>;
  assert.ok(v.z > 4 && v.mean > 0.9 && v.mean < 1.1);
  h.advance(MIN);
  h.write(B, 'Bridge', { vibration: 1.0 });
  assert.deepEqual(h.events(), [`raise:${B}`, `clear:${B}`]);
});

test('anomaly (EWMA) with a sensitivity', () => {
  const B = 'urn:ngsi-ld:Bridge:b2';
  const mk = (sensitivity: number) => new Harness([rule({ select: { type: 'Bridge' }, trigger: { kind: 'anomaly', attribute: 'vibration', method: 'ewma', alpha: 0.2, sensitivity, minSamples: 8 } })]);
  const series = [10, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10, 11.5];
  const low = mk(2);
  const high = mk(8); // z is about 6.7
  for (const v of series) {
    low.write(B, 'Bridge', { vibration: v });
    high.write(B, 'Bridge', { vibration: v });
  }
  assert.deepEqual(low.events(), [`raise:${B}`]);
  assert.deepEqual(high.events(), []);
  assert.equal(low.engine.getState('', 'r1', B)!.n, series.length);
});

test('selection: idPattern, q pre-filter and geoQ area; leaving the selection clears', () => {
  const area = { georel: 'within', geometry: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]] };
  const h = new Harness([rule({
    select: { type: 'WasteContainer', idPattern: '^urn:ngsi-ld:WasteContainer:centre-', geoQ: area, q: 'status!="maintenance"' },
    trigger: { kind: 'condition', q: 'fillingLevel>0.8' },
  })]);
  const inA = { type: 'Point', coordinates: [0.5, 0.5] };
  h.write('urn:ngsi-ld:WasteContainer:centre-1', 'WasteContainer', { fillingLevel: 0.9, location: inA, status: 'ok' });
  h.write('urn:ngsi-ld:WasteContainer:north-1', 'WasteContainer', { fillingLevel: 0.9, location: inA, status: 'ok' });
  h.write('urn:ngsi-ld:WasteContainer:centre-2', 'WasteContainer', { fillingLevel: 0.9, location: { type: 'Point', coordinates: [5, 5] }, status: 'ok' });
  assert.deepEqual(h.events(), ['raise:urn:ngsi-ld:WasteContainer:centre-1']);
  h.write('urn:ngsi-ld:WasteContainer:centre-1', 'WasteContainer', { status: 'maintenance' });
  assert.deepEqual(h.events(), ['raise:urn:ngsi-ld:WasteContainer:centre-1', 'clear:urn:ngsi-ld:WasteContainer:centre-1']);
});

test('entity deleted: state dropped, alarm cleared', () => {
  const h = new Harness([rule({ select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>50' } })]);
  h.write(S1, AQ, { pm25: 99 });
  h.remove(S1);
  assert.deepEqual(h.events(), [`raise:${S1}`, `clear:${S1}`]);
  assert.equal(h.alarms()[0].clearedBy, 'entity deleted');
  assert.equal(h.engine.stateCount, 0);
});

test('rule changes: a new trigger resets states and clears alarms; severity-only edits keep them', () => {
  const r = rule({ select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>50' } });
  const h = new Harness([r]);
  h.write(S1, AQ, { pm25: 99 });
  h.engine.setRule({ ...r, alarm: { ...r.alarm, severity: 'critical' } });
  h.driver.flush();
  assert.equal(h.alarms()[0].status, 'active');
  h.write(S1, AQ, { pm25: 98 });
  h.engine.setRule({ ...r, trigger: { kind: 'condition', q: 'pm25>100' } });
  h.driver.flush();
  assert.equal(h.alarms()[0].status, 'cleared');
  assert.equal(h.alarms()[0].clearedBy, 'rule changed');
  h.engine.removeRule('', 'r1');
  h.write(S1, AQ, { pm25: 500 });
  assert.equal(h.alarms().filter((a) => a.status === 'active').length, 0);
});

test('restart: states and active alarms survive; pending timers catch up', () => {
  const rules = [
    rule({ id: 'silent', select: { type: 'Device' }, trigger: { kind: 'absence', after: '15m' } }),
    pm25({ id: 'pm' }),
  ];
  const h = new Harness(rules);
  h.write('urn:ngsi-ld:Device:d1', 'Device', { v: 1 });
  h.write(S1, AQ, { pm25: 80 });
  h.advance(30 * MIN); // d1 silent -> alarm; pm25 held -> alarm
  h.write('urn:ngsi-ld:Device:d2', 'Device', { v: 1 });
  h.write(S2, AQ, { pm25: 90 }); // hold pending
  assert.equal(h.alarms().length, 2);
  // "persist": JSON round trip of states and alarms
  const states = JSON.parse(JSON.stringify([...h.states])) as [string, EvalState][];
  const alarms = JSON.parse(JSON.stringify(h.engine.alarms.all()));
  h.driver.stop();

  h.advance(30 * MIN); // down for 30 min: the old engine is gone, nothing happens
  assert.equal(h.events().length, 2);

  const h2 = new Harness(rules, undefined, h.clock);
  h2.engine.loadStates(states);
  h2.engine.loadAlarms(alarms);
  h2.driver.tick(); // catch up with what fell due while down
  const events = h2.events();
  assert.ok(events.includes('raise:urn:ngsi-ld:Device:d2'), 'd2 silent while down');
  assert.ok(events.includes(`raise:${S2}`), 'S2 held for 30 min across the restart');
  assert.equal(h2.engine.alarms.list({ status: ['active'] }).length, 4);
  // an alarm raised before the restart clears after it
  h2.write(S1, AQ, { pm25: 10 });
  assert.ok(h2.events().includes(`clear:${S1}`));
  assert.equal(h2.engine.alarms.list({ status: ['cleared'] })[0].id, alarms.find((a: { entityId: string }) => a.entityId === S1).id);
});

test('action plans: webhook / mqtt / email / service request, Alert entity (Smart Data Models)', () => {
  const r = pm25({
    trigger: { kind: 'condition', q: 'pm25>50' },
    actions: [
      { type: 'webhook', url: 'http://ops.example/hook', headers: { 'x-key': 'k' } },
      { type: 'mqtt', topic: 'urbis/alarms', on: ['raise'] },
      { type: 'email', to: ['ops@city.example'], subject: 'ignored' },
      { type: 'serviceRequest', serviceCode: 'air-001', serviceName: 'Check air sensor', agency: 'Environment dept' },
    ],
  });
  const h = new Harness([r]);
  h.write(S1, AQ, { pm25: 77, location: { type: 'Point', coordinates: [-3.7, 40.4] } });
  const raise = h.plans.filter((p) => p.event === 'raise');
  assert.deepEqual(raise.map((p) => p.action.type), ['webhook', 'mqtt', 'email', 'serviceRequest']);
  const wh = raise[0];
  assert.equal((wh.payload.alarm as Record<string, unknown>).entityId, S1);
  assert.equal(wh.payload.event, 'raise');
  assert.match(raise[2].subject, /^\[HIGH\] Alarm raised: test rule/);
  assert.match(raise[2].text, /pm25/);
  const sr = raise[3].entity!;
  assert.equal(sr.type, 'ServiceRequest');
  assert.deepEqual(sr.service_code, { type: 'Property', value: 'air-001' });
  assert.deepEqual(sr.request_status, { type: 'Property', value: 'open' });
  assert.deepEqual(sr.location, { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.7, 40.4] } });
  const a = h.engine.alarms.list()[0];
  assert.equal(a.serviceRequestId, sr.id);

  const alert = alertEntity(a, r);
  assert.equal(alert.type, 'Alert');
  assert.equal(alert.id, a.id);
  assert.match(alert.id as string, /^urn:ngsi-ld:Alert:/);
  assert.deepEqual(alert.category, { type: 'Property', value: 'environment' });
  assert.deepEqual(alert.subCategory, { type: 'Property', value: 'airPollution' });
  assert.deepEqual(alert.severity, { type: 'Property', value: 'high' });
  assert.deepEqual(alert.alertSource, { type: 'Relationship', object: S1 });
  assert.ok((alert.dateIssued as { value: { '@type': string } }).value['@type'] === 'DateTime');
  assert.deepEqual(alert.alarmStatus, { type: 'Property', value: 'active' });
  assert.equal((alert.count as { value: number }).value, 1);

  h.write(S1, AQ, { pm25: 5 });
  const clear = h.plans.filter((p) => p.event === 'clear');
  assert.deepEqual(clear.map((p) => p.action.type), ['webhook', 'email', 'serviceRequest']);
  assert.deepEqual(clear[2].entity!.request_status, { type: 'Property', value: 'closed' });
  assert.ok(alertEntity(h.engine.alarms.list()[0], r).validTo);
  assert.equal(planActions(r, { event: 'update', alarm: a }).length, 0);
  const re = ruleEntity(r);
  assert.equal(re.id, 'urn:ngsi-ld:Rule:r1');
  assert.deepEqual((re.trigger as { json: unknown }).json, { kind: 'condition', q: 'pm25>50' });
});

test('engine works with any q engine (here: a counting wrapper); description templates', () => {
  let calls = 0;
  const q = { compile: (t: string, x: (s: string) => string) => {
    const c = builtinQEngine.compile(t, x);
    return { test: (e: never) => (calls++, c.test(e)), attributes: c.attributes };
  } };
  const r = rule({ select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>50' }, alarm: { description: 'PM2.5 at {entityId} is {pm25} ({rule})' } }, q);
  const h = new Harness([r], q);
  const e = h.engine;
  h.write(S1, AQ, { pm25: 66 });
  assert.equal(calls, 1);
  assert.equal(e.alarms.list()[0].description, `PM2.5 at ${S1} is 66 (test rule)`);
});

test('a rule whose evaluation throws is counted and does not stop the others', () => {
  const boom = { compile: () => ({ test: () => { throw new Error('boom'); }, attributes: ['pm25'] }) };
  const bad = rule({ id: 'bad', select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>1' } }, boom);
  const good = rule({ id: 'good', select: { type: AQ }, trigger: { kind: 'condition', q: 'pm25>1' } });
  const h = new Harness([good]);
  // the engine compiles with its own q engine: swap in the throwing one for the bad rule only
  (h.engine as unknown as { opts: { q: unknown } }).opts.q = boom;
  h.engine.setRule(bad);
  h.write(S1, AQ, { pm25: 5 });
  assert.deepEqual(h.events(), [`raise:${S1}`]);
  assert.equal(h.engine.failures.get('bad')?.count, 1);
  assert.match(h.engine.failures.get('bad')!.last, /boom/);
});

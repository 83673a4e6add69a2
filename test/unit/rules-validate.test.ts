import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemError } from '../../src/common/problem.ts';
import { formatDuration, parseDuration } from '../../src/rules/domain/duration.ts';
import { builtinQEngine } from '../../src/rules/domain/engines.ts';
import { compileMiniQ, parseMiniQ, qAttributes } from '../../src/rules/domain/mini-q.ts';
import { ruleToInput, validateRule } from '../../src/rules/domain/validate.ts';
import { ctx, entity, X } from '../../src/rules/testkit.ts';

const base = {
  id: 'pm25-high',
  name: 'PM2.5 high',
  select: { type: 'AirQualityObserved' },
  trigger: { kind: 'condition', q: 'pm25>50', for: 'PT30M' },
  alarm: { severity: 'high', category: 'environment', subCategory: 'airPollution' },
};

function rejects(input: unknown, ...fragments: string[]) {
  try {
    validateRule(input, ctx());
  } catch (e) {
    assert.ok(e instanceof ProblemError, 'a ProblemError');
    assert.equal(e.status, 400);
    assert.equal(e.kind, 'BadRequestData');
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should mention "${f}"`);
    return e;
  }
  assert.fail('expected the rule to be rejected');
}

test('durations: ISO 8601, short forms, ms; errors explain the format', () => {
  assert.deepEqual(parseDuration('PT30M'), { ms: 30 * 60_000 });
  assert.deepEqual(parseDuration('P1DT2H'), { ms: 26 * 3_600_000 });
  assert.deepEqual(parseDuration('1h30m'), { ms: 90 * 60_000 });
  assert.deepEqual(parseDuration('45s'), { ms: 45_000 });
  assert.deepEqual(parseDuration(1500), { ms: 1500 });
  assert.ok('error' in parseDuration('soon'));
  assert.ok('error' in parseDuration('PT'));
  assert.ok('error' in parseDuration(-5));
  assert.equal(formatDuration(90 * 60_000), '1h30m');
});

test('a valid rule is normalised with defaults', () => {
  const r = validateRule(base, ctx());
  assert.equal(r.id, 'pm25-high');
  assert.equal(r.tenant, '');
  assert.equal(r.enabled, true);
  assert.deepEqual(r.trigger, { kind: 'condition', q: 'pm25>50', forMs: 30 * 60_000 });
  assert.equal(r.alarm.autoClear, true);
  assert.equal(r.alarm.clearAfterMs, 0);
  assert.equal(r.alarm.reopenWithinMs, 15 * 60_000);
  assert.deepEqual(r.actions, []);
  // URN ids are accepted; round trip through the operator form
  assert.equal(validateRule({ ...base, id: 'urn:ngsi-ld:Rule:x1' }, ctx()).id, 'x1');
  assert.deepEqual(validateRule(ruleToInput(r), ctx()), r);
});

test('invalid q is rejected with the parser message and the field path', () => {
  rejects({ ...base, trigger: { kind: 'condition', q: 'pm25>>' } }, 'trigger.q');
  rejects({ ...base, trigger: { kind: 'condition', q: '(pm25>50' } }, 'trigger.q');
  rejects({ ...base, trigger: { kind: 'condition', q: '' } }, 'trigger.q');
  rejects({ ...base, select: { type: 'AirQualityObserved', q: 'a==' } }, 'select.q');
});

test('unknown attributes are rejected when the type is known', () => {
  const known = (t: string) => (t === X('AirQualityObserved') ? new Set([X('pm25'), X('pm10'), X('NO2')]) : undefined);
  assert.throws(
    () => validateRule({ ...base, trigger: { kind: 'condition', q: 'pm2_5>50' } }, ctx({ knownAttributes: known })),
    (e: ProblemError) => e.message.includes('unknown attribute "pm2_5"') && e.message.includes('NO2, pm10, pm25'),
  );
  assert.throws(
    () => validateRule({ ...base, trigger: { kind: 'anomaly', attribute: 'vibration' } }, ctx({ knownAttributes: known })),
    /trigger.attribute: unknown attribute "vibration"/,
  );
  // known ones and core ones pass; unknown types are not checked
  validateRule({ ...base, trigger: { kind: 'condition', q: 'pm25>50;pm10>20' } }, ctx({ knownAttributes: known }));
  validateRule({ ...base, trigger: { kind: 'geofence', event: 'enter', geometry: square } }, ctx({ knownAttributes: known }));
  validateRule({ ...base, select: { type: 'Other' }, trigger: { kind: 'condition', q: 'x>1' } }, ctx({ knownAttributes: known }));
});

const square = { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]] };

test('impossible durations are rejected', () => {
  rejects({ ...base, trigger: { kind: 'condition', q: 'pm25>50', for: 'P400D' } }, 'trigger.for', 'impossible duration');
  rejects({ ...base, trigger: { kind: 'condition', q: 'pm25>50', for: '-5m' } }, 'trigger.for');
  rejects({ ...base, trigger: { kind: 'absence', after: '0s' } }, 'trigger.after', 'at least');
  rejects({ ...base, trigger: { kind: 'absence' } }, 'trigger.after', 'required');
  rejects({ ...base, trigger: { kind: 'rateOfChange', attribute: 'level', per: 'often', riseAbove: 1 } }, 'trigger.per');
  rejects({ ...base, alarm: { clearAfter: 'yesterday' } }, 'alarm.clearAfter');
});

test('every problem is listed, with paths', () => {
  const e = rejects(
    { id: 'bad id!', select: {}, trigger: { kind: 'sometimes' }, alarm: { severity: 'apocalyptic' }, actions: [{ type: 'pigeon' }], colour: 'red' },
    'colour: unknown member', 'id:', 'name:', 'select:', 'trigger.kind: unknown kind "sometimes"', 'alarm.severity', 'actions[0].type',
  );
  assert.ok(Array.isArray(e.extra?.errors) && (e.extra!.errors as string[]).length >= 7);
});

test('each trigger kind validates its own members', () => {
  rejects({ ...base, trigger: { kind: 'rateOfChange', attribute: 'level' } }, 'riseAbove and/or fallAbove');
  rejects({ ...base, trigger: { kind: 'geofence', event: 'enter', geometry: { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1]]] } } }, 'trigger.geometry', '4 positions');
  rejects({ ...base, trigger: { kind: 'geofence', event: 'hover', geometry: square } }, 'trigger.event');
  rejects({ ...base, trigger: { kind: 'anomaly', attribute: 'v', window: 5, minSamples: 10 } }, 'trigger.minSamples', 'cannot exceed window');
  rejects({ ...base, trigger: { kind: 'anomaly', attribute: 'v', sensitivity: 0 } }, 'trigger.sensitivity');
  rejects({ ...base, trigger: { kind: 'anomaly', attribute: 'v', method: 'magic' } }, 'trigger.method');
  rejects({ ...base, trigger: { kind: 'condition', q: 'a>1', after: '5m' } }, 'trigger.after: unknown member for kind "condition"');
  rejects({ ...base, select: { type: 'A', idPattern: '([' } }, 'select.idPattern', 'regular expression');
  rejects({ ...base, select: { type: 'A', geoQ: { georel: 'near;maxDistance==100', geometry: 'Point', coordinates: [200, 0] } } }, 'select.geoQ');
  const r = validateRule({ ...base, trigger: { kind: 'anomaly', attribute: 'vibration' } }, ctx());
  assert.deepEqual(r.trigger, { kind: 'anomaly', attribute: 'vibration', method: 'zscore', window: 30, sensitivity: 3, minSamples: 10, alpha: 0.3 });
});

test('actions are validated', () => {
  rejects({ ...base, actions: [{ type: 'webhook', url: 'ftp://x' }] }, 'actions[0].url');
  rejects({ ...base, actions: [{ type: 'mqtt', topic: 'city/#' }] }, 'actions[0].topic');
  rejects({ ...base, actions: [{ type: 'email', to: 'not-an-address' }] }, 'actions[0].to');
  rejects({ ...base, actions: [{ type: 'serviceRequest' }] }, 'actions[0].serviceCode');
  rejects({ ...base, actions: [{ type: 'webhook', url: 'http://x', on: ['explode'] }] }, 'actions[0].on');
  const r = validateRule({ ...base, actions: [{ type: 'email', to: 'ops@city.example' }, { type: 'mqtt', topic: 'alarms', on: ['raise'] }] }, ctx());
  assert.deepEqual(r.actions[0], { type: 'email', to: ['ops@city.example'], on: ['raise', 'clear'] });
  assert.deepEqual(r.actions[1], { type: 'mqtt', topic: 'alarms', on: ['raise'] });
});

test('built-in q: operators, and/or precedence, ranges, lists, regex, existence, sub-attributes', () => {
  const e = entity('urn:ngsi-ld:X:1', 'X', {
    pm25: 60, status: 'ok', name: 'Main street', tags: ['a', 'b'],
    temperature: { type: 'Property', value: 3, observedAt: '2026-01-01T00:00:00Z' },
    address: { streetAddress: 'Calle Mayor', postalCode: '28001' },
  }, '2026-01-01T00:00:00Z');
  const t = (q: string) => compileMiniQ(parseMiniQ(q), X)(e);
  assert.equal(t('pm25>50'), true);
  assert.equal(t('pm25>=60;pm25<=60'), true);
  assert.equal(t('pm25<50|status=="ok"'), true);
  assert.equal(t('pm25<50|status=="ok";pm25>100'), false);
  assert.equal(t('(pm25<50|status=="ok");pm25>59'), true);
  assert.equal(t('pm25==50..70'), true);
  assert.equal(t('pm25!=50..70'), false);
  assert.equal(t('status=="ok","warn"'), true);
  assert.equal(t('name~="(?i)main.*"'), true);
  assert.equal(t('name!~="Main"'), false);
  assert.equal(t('tags=="b"'), true);
  assert.equal(t('pm10'), false);
  assert.equal(t('!pm10'), true);
  assert.equal(t('temperature.observedAt>=2025-12-31T00:00:00Z'), true);
  assert.equal(t('address[postalCode]=="28001"'), true);
  assert.equal(t('pm25>"abc"'), false);
  assert.deepEqual(qAttributes(parseMiniQ('pm25>50|(pm10>20;NO2<3)')), ['pm25', 'pm10', 'NO2']);
  assert.throws(() => builtinQEngine.compile('pm25>', X), /missing value/);
  assert.throws(() => builtinQEngine.compile('pm25 50', X), /unexpected/);
});

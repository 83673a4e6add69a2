/** Pure modules of the dashboard (no browser): state colouring, geometry, SSE parsing, KPI bands. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { airState, deviceState, parkingState, wasteState, stateOf, isActiveAlert, severityRank, shortName } from '../../web/src/entity-state.ts';
import { pointInRing, representativePoint } from '../../web/src/geo.ts';
import { SseParser } from '../../web/src/sse.ts';
import { bandOf, periodStart } from '../../web/src/kpi-bands.ts';

test('entity states: parking, air quality (EAQI worst pollutant), waste, devices, alerts', () => {
  assert.equal(parkingState({ status: 'free' }), 'free');
  assert.equal(parkingState({ status: 'occupied' }), 'occupied');
  assert.equal(parkingState({ availableSpotNumber: 0 }), 'occupied');
  assert.equal(parkingState({}), 'unknown');
  assert.equal(airState({ no2: 30, pm10: 10 }), 'good');
  assert.equal(airState({ no2: 30, pm25: 30 }), 'poor');
  assert.equal(airState({ airQualityLevel: 'moderate' }), 'moderate');
  assert.equal(airState({}), 'unknown');
  assert.equal(wasteState({ fillingLevel: 0.95 }), 'full');
  assert.equal(wasteState({ fillingLevel: 50 }), 'medium');
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.equal(deviceState({ deviceState: 'online', dateLastValueReported: '2026-01-01T11:55:00Z' }, now), 'online');
  assert.equal(deviceState({ dateLastValueReported: '2026-01-01T09:00:00Z' }, now), 'silent');
  assert.equal(deviceState({ deviceState: 'faulty' }, now), 'faulty');
  assert.equal(deviceState({ deviceState: 'online', healthIssues: ['frozen:temperature'], dateLastValueReported: '2026-01-01T11:59:00Z' }, now), 'faulty');
  assert.equal(stateOf('https://smartdatamodels.org/dataModel.Parking/ParkingSpot', { status: 'free' }), 'free');
  assert.equal(isActiveAlert({ status: 'acknowledged' }), true);
  assert.equal(isActiveAlert({ status: 'cleared' }), false);
  assert.ok(severityRank('critical') < severityRank('low'));
  assert.equal(shortName('https://uri.etsi.org/ngsi-ld/default-context/Device'), 'Device');
});

test('geometry: point in polygon, representative points', () => {
  const sq: [number, number][] = [[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]];
  assert.equal(pointInRing([1, 1], sq), true);
  assert.equal(pointInRing([3, 1], sq), false);
  assert.deepEqual(representativePoint({ type: 'Polygon', coordinates: [sq] }), [1, 1]);
  assert.deepEqual(representativePoint({ type: 'Point', coordinates: [5, 6] }), [5, 6]);
  assert.equal(representativePoint(null), null);
});

test('SSE parser: split chunks, comments, multi-line data, CRLF', () => {
  const p = new SseParser();
  assert.deepEqual(p.push(': ping\n\nevent: change\nda'), []);
  assert.deepEqual(p.push('ta: [1,\ndata: 2]\nid: 7\n\n'), [{ event: 'change', data: '[1,\n2]', id: '7' }]);
  assert.deepEqual(p.push('data: x\r\n\r'), []);
  assert.deepEqual(p.push('\n'), [{ event: 'message', data: 'x', id: '7' }]);
});

test('U4SSC bands and KPI periods', () => {
  assert.equal(bandOf(96), 4);
  assert.equal(bandOf(70), 3);
  assert.equal(bandOf(40), 2);
  assert.equal(bandOf(10), 1);
  assert.equal(bandOf(null), null);
  assert.equal(periodStart('2025-Q2'), Date.UTC(2025, 3, 1));
  assert.equal(periodStart('2025'), Date.UTC(2025, 0, 1));
  assert.equal(periodStart('2025-03'), Date.UTC(2025, 2, 1));
});

test('temporal API shapes: aggregated avg per period and raw temporalValues; keyValues pages as features', async () => {
  const { parseAggregated, parseTemporalValues, featuresOf } = await import('../../web/src/api.ts');
  // GET /temporal/entities/{id}?options=aggregatedValues&aggrMethods=avg (src/temporal/representation.ts)
  const agg = parseAggregated({ id: 'x', type: 'T', NO2: { type: 'Property', avg: [[24, '2026-01-01T01:00:00Z', '2026-01-01T02:00:00Z'], [null, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z']] } }, 'NO2');
  assert.deepEqual(agg, { t: [Date.parse('2026-01-01T00:00:00Z') / 1000, Date.parse('2026-01-01T01:00:00Z') / 1000], v: [null, 24] });
  const raw = parseTemporalValues({ id: 'x', type: 'T', no2: { type: 'Property', values: [[26, '2026-01-01T02:00:00Z'], [25, '2026-01-01T01:00:00Z']] } }, 'no2');
  assert.deepEqual(raw.v, [25, 26]);
  const f = featuresOf([{ id: 'urn:a', type: 'ParkingSpot', 'https://example.org/x#spotStatus': 'free', location: { type: 'Point', coordinates: [1, 2] } }, { id: 'urn:b', type: 'ParkingSpot' }]);
  assert.equal(f.length, 2);
  assert.deepEqual(f[0].geometry, { type: 'Point', coordinates: [1, 2] });
  assert.equal(f[0].properties.spotStatus, 'free');
  assert.equal(f[1].geometry, null);
});

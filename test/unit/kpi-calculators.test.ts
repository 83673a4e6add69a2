/**
 * Every automatic calculator on a controlled data set; expected values are worked out by hand in
 * the comments and written as the arithmetic they come from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALCULATORS, counterDelta, interruptions, lden, lineLengthKm, meanOfDailyMeans, polygonAreaM2 } from '../../src/kpi/domain/calculators/index.ts';
import { parsePeriod } from '../../src/kpi/domain/period.ts';
import type { CalcInput, CalcResult, KvEntity, SeriesMap } from '../../src/kpi/domain/types.ts';

const calc = (code: string) => {
  const c = CALCULATORS.get(code);
  assert.ok(c, `calculator for ${code}`);
  return c;
};
const ent = (type: string, id: string, attrs: Record<string, unknown> = {}): KvEntity => ({ id: `urn:ngsi-ld:${type}:${id}`, type, ...attrs });
const byType = (...es: KvEntity[]) => {
  const out: Record<string, KvEntity[]> = {};
  for (const e of es) (out[e.type as string] ??= []).push(e);
  return out;
};
function run(code: string, o: { period?: string; entities?: KvEntity[]; series?: SeriesMap; profile?: Record<string, number>; params?: Record<string, unknown> }): CalcResult {
  const input: CalcInput = {
    period: parsePeriod(o.period ?? '2025'),
    profile: o.profile ? { period: '2025', values: o.profile } : null,
    entities: byType(...(o.entities ?? [])),
    series: o.series ?? {},
    params: o.params,
  };
  return calc(code).compute(input);
}
const near = (a: number | null | undefined, b: number, tol = 1e-3) => {
  assert.ok(a !== null && a !== undefined && Math.abs(a - b) <= tol, `expected ${b} ± ${tol}, got ${a}`);
};
// 0.01 degree of longitude along the equator, in km (haversine on the mean Earth radius)
const K = (2 * Math.PI * 6371.0088 * 0.01) / 360;
const eqLine = { type: 'LineString', coordinates: [[0, 0], [0.005, 0], [0.01, 0]] };

test('helpers: line length, polygon area, daily means, counter deltas, Lden', () => {
  near(lineLengthKm(eqLine), K, 1e-9);
  near(lineLengthKm({ type: 'MultiLineString', coordinates: [eqLine.coordinates, eqLine.coordinates] }), 2 * K, 1e-9);
  assert.equal(lineLengthKm({ type: 'Point', coordinates: [0, 0] }), null);
  // 0.01 x 0.01 degree square on the equator: about K x K km2
  const sq = { type: 'Polygon', coordinates: [[[0, 0], [0.01, 0], [0.01, 0.01], [0, 0.01], [0, 0]]] };
  near(polygonAreaM2(sq)! / 1e6, K * K, K * K * 0.005);
  // days 1: (10+20)/2 = 15, day 2: 30 -> (15+30)/2 = 22.5
  assert.equal(meanOfDailyMeans([{ t: '2025-01-01T01:00:00Z', v: 10 }, { t: '2025-01-01T02:00:00Z', v: 20 }, { t: '2025-01-02T00:00:00Z', v: 30 }]).mean, 22.5);
  // baseline 100 at/before start, then +30, reset to 5 (counts 5), +20 -> 55
  assert.deepEqual(
    counterDelta([{ t: '2025-01-01T00:00:00Z', v: 100 }, { t: '2025-01-10T00:00:00Z', v: 130 }, { t: '2025-01-20T00:00:00Z', v: 5 }, { t: '2025-01-30T00:00:00Z', v: 25 }, { t: '2025-02-03T00:00:00Z', v: 900 }], '2025-01-01T00:00:00.000Z', '2025-02-01T00:00:00.000Z'),
    { delta: 55, readings: 4, resets: 1 },
  );
  // Ld = 60, Le + 5 = 60, Ln + 10 = 60 -> Lden = 10 lg((12+4+8) 10^6 / 24) = 60
  const s = [
    { t: '2025-01-01T10:00:00Z', v: 60 },
    { t: '2025-01-01T20:00:00Z', v: 55 },
    { t: '2025-01-01T02:00:00Z', v: 50 },
  ];
  near(lden(s).lden, 60, 1e-9);
  // local time UTC+2 moves 10:00Z to 12:00 (day), 20:00Z to 22:00 (evening), 02:00Z to 04:00 (night): unchanged
  near(lden(s, 2).lden, 60, 1e-9);
  assert.equal(lden([{ t: '2025-01-01T10:00:00Z', v: 60 }]).lden, null);
});

test('EC: ICT: ICT: 5C Wi-Fi hotspots: active WifiPointOfInterest + wifi POIs', () => {
  const r = run('EC: ICT: ICT: 5C', {
    entities: [
      ent('WifiPointOfInterest', 'a'),
      ent('WifiPointOfInterest', 'b', { status: 'active' }),
      ent('WifiPointOfInterest', 'c', { status: 'outOfService' }),
      ent('PointOfInterest', 'p', { category: ['wifi'] }),
      ent('PointOfInterest', 'q', { category: ['museum'] }),
    ],
  });
  assert.equal(r.value, 3); // a, b, p
  assert.equal(r.inputs.entities.find((e) => e.type === 'WifiPointOfInterest')!.count, 3);
});

test('EC: ICT: WS: 1C smart water meters: distinct meters / waterMetersTotal', () => {
  const entities = [
    ent('WaterConsumptionObserved', 'w1', { refDevice: 'urn:d1' }),
    ent('WaterConsumptionObserved', 'w2', { refDevice: 'urn:d1' }), // same meter
    ent('WaterConsumptionObserved', 'w3'),
    { id: 'urn:d1', type: 'Device', category: ['meter'], controlledProperty: ['waterConsumption'] },
    { id: 'urn:d2', type: 'Device', category: ['meter'], controlledProperty: ['waterConsumption'] },
    { id: 'urn:d3', type: 'Device', category: ['sensor'], controlledProperty: ['waterConsumption'] },
  ] as KvEntity[];
  const r = run('EC: ICT: WS: 1C', { entities, profile: { waterMetersTotal: 12 } });
  // meters {d1, w3, d2} = 3 of 12 = 25 %
  assert.equal(r.value, 25);
  assert.equal(r.inputs.figures.smartMeters, 3);
  assert.deepEqual(r.inputs.profile, { waterMetersTotal: 12 });
  const none = run('EC: ICT: WS: 1C', { entities });
  assert.equal(none.value, null);
  assert.match(none.inputs.notes.join(), /waterMetersTotal/);
});

test('EC: ICT: ES: 1C smart electricity meters', () => {
  const r = run('EC: ICT: ES: 1C', {
    entities: [ent('ThreePhaseAcMeasurement', 'e1', { refDevice: ['urn:m1', 'urn:m2'] }), ent('ACMeasurement', 'a1')],
    profile: { electricityMetersTotal: 4 },
  });
  assert.equal(r.value, 75); // m1, m2, a1 = 3 of 4
});

test('EC: ICT: WS: 2A / EC: ICT: D: 1A / EC: ICT: ES: 2A network monitoring shares', () => {
  const entities = [
    ent('Pipe', 'p1', { length: 2000, refDevice: 'urn:s1' }),
    ent('Pipe', 'p2', { length: 3000 }),
    ent('Pipe', 'p3', { location: eqLine, monitored: true, length: 99999 }), // geometry wins: K km
    ent('Pipe', 'p4', { length: 1000, networkType: 'drainage', refDevice: ['urn:s2'] }),
    ent('Pipe', 'p5', { length: 3000, networkType: 'stormWater' }),
    ent('PowerLine', 'l1', { length: 4000, refDevice: 'urn:scada' }),
    ent('PowerLine', 'l2', { length: 4000 }),
  ];
  // water: monitored 2 + K km of 5 + K km
  near(run('EC: ICT: WS: 2A', { entities }).value, ((2 + K) / (5 + K)) * 100, 1e-3);
  // the profile's network length is the denominator when given
  near(run('EC: ICT: WS: 2A', { entities, profile: { waterNetworkKm: 10 } }).value, ((2 + K) / 10) * 100, 1e-3);
  // drainage: 1 of 1 + 3 km
  assert.equal(run('EC: ICT: D: 1A', { entities }).value, 25);
  // electricity: 4 km monitored of 16 km in the profile
  assert.equal(run('EC: ICT: ES: 2A', { entities, profile: { electricityNetworkKm: 16 } }).value, 25);
  assert.equal(run('EC: ICT: ES: 2A', { entities: [] }).value, null);
});

test('EC: ICT: T: 1C dynamic public transport information', () => {
  const r = run('EC: ICT: T: 1C', {
    entities: [
      ent('GtfsStop', 's1', { locationType: 0, realTimePassengerInformation: true }),
      ent('GtfsStop', 's2', { locationType: 1, realTimePassengerInformation: false }),
      ent('GtfsStop', 's3', { locationType: 2, realTimePassengerInformation: true }), // entrance: not a stop
      ent('GtfsStop', 's4', { realTimePassengerInformation: true }),
      ent('PublicTransportStop', 'p1'),
    ],
  });
  assert.equal(r.value, 50); // s1, s4 of s1, s2, s4, p1
  assert.equal(run('EC: ICT: T: 1C', { entities: [ent('GtfsStop', 's1', { realTimePassengerInformation: true })], profile: { publicTransportStops: 8 } }).value, 12.5);
});

test('EC: ICT: T: 2C traffic monitoring on major streets', () => {
  const r = run('EC: ICT: T: 2C', {
    entities: [
      ent('RoadSegment', 'r1', { length: 4, roadClass: 'primary' }),
      ent('RoadSegment', 'r2', { length: 6, roadClass: 'trunk' }),
      ent('RoadSegment', 'r3', { length: 10, roadClass: 'residential' }), // not a major street
      ent('RoadSegment', 'r4', { startKilometer: 2, endKilometer: 7, refDevice: 'urn:cam' }), // 5 km, camera
      ent('TrafficFlowObserved', 'f1', { refRoadSegment: 'urn:ngsi-ld:RoadSegment:r1' }),
    ],
  });
  assert.equal(r.value, 60); // (4 + 5) / (4 + 6 + 5)
  assert.equal(r.inputs.figures.monitoredKm, 9);
});

test('EC: ICT: T: 3A adaptive intersections', () => {
  const r = run('EC: ICT: T: 3A', {
    entities: [
      ent('TrafficSignal', 't1', { refIntersection: 'X1', controlMode: 'adaptive' }),
      ent('TrafficSignal', 't2', { refIntersection: 'X1', controlMode: 'fixedTime' }),
      ent('TrafficSignal', 't3', { refIntersection: 'X2', controlMode: 'fixedTime' }),
      ent('TrafficSignal', 't4', { controlMode: 'priority' }),
      ent('TrafficSignal', 't5', { refIntersection: 'X3', controlMode: 'actuated' }),
    ],
  });
  assert.equal(r.value, 50); // X1 and t4 of X1, X2, t4, X3
});

test('EC: ICT: PS: 1A open data: share and number', () => {
  const entities = [
    ent('Dataset', 'd1', { accessRights: 'public' }),
    ent('Dataset', 'd2', { accessRights: 'non-public' }),
    ent('Dataset', 'd3', { license: 'CC-BY-4.0' }),
    ent('Dataset', 'd4'),
  ];
  const r = run('EC: ICT: PS: 1A', { entities });
  assert.equal(r.value, 50);
  assert.deepEqual(r.dataPoints, { percentage: 50, number: 2 });
  assert.deepEqual(run('EC: ICT: PS: 1A', { entities, profile: { datasetsInventoried: 10 } }).dataPoints, { percentage: 20, number: 2 });
});

test('EN: EN: AQ: 1C air pollution: mean of daily means per station, then over stations', () => {
  const s1 = 'urn:ngsi-ld:AirQualityObserved:s1';
  const s2 = 'urn:ngsi-ld:AirQualityObserved:s2';
  const series: SeriesMap = {
    [s1]: {
      pm10: [
        { t: '2024-12-31T12:00:00Z', v: 1000 }, // outside the year
        { t: '2025-01-01T01:00:00Z', v: 10 },
        { t: '2025-01-01T13:00:00Z', v: 20 },
        { t: '2025-01-02T08:00:00Z', v: 30 },
      ],
      pm25: [{ t: '2025-05-01T01:00:00Z', v: 5 }, { t: '2025-05-01T02:00:00Z', v: 7 }],
    },
    [s2]: { pm10: [{ t: '2025-03-01T00:00:00Z', v: 40 }] },
  };
  const entities = [ent('AirQualityObserved', 's1'), ent('AirQualityObserved', 's2')];
  const r = run('EN: EN: AQ: 1C', { entities, series });
  // s1: ((10+20)/2 + 30)/2 = 22.5 ; s2: 40 ; city: (22.5 + 40)/2 = 31.25
  assert.equal(r.dataPoints!.pm10, 31.25);
  assert.equal(r.dataPoints!.pm25, 6);
  assert.equal(r.dataPoints!.no2, null);
  assert.equal(r.inputs.figures['pm10:stations'], 2);
  // with minDays = 2, s2 (one day) is left out
  assert.equal(run('EN: EN: AQ: 1C', { entities, series, params: { minDays: 2 } }).dataPoints!.pm10, 22.5);
});

test('EN: EN: EQ: 2A noise exposure: Lden per station, population above 55 dB', () => {
  const hourly = (id: string, level: number) => ({
    [id]: { LAeq: Array.from({ length: 24 }, (_, h) => ({ t: `2025-01-01T${String(h).padStart(2, '0')}:00:00Z`, v: level })) },
  });
  const ids = ['n1', 'n2', 'n3'].map((x) => `urn:ngsi-ld:NoiseLevelObserved:${x}`);
  const series = { ...hourly(ids[0], 60), ...hourly(ids[1], 45), ...hourly(ids[2], 50) };
  // constant L: Lden = L + 10 lg((12 + 4 x 10^0.5 + 8 x 10) / 24) = L + 6.3946
  const plus = 10 * Math.log10((12 + 4 * 10 ** 0.5 + 80) / 24);
  const entities = [
    ent('NoiseLevelObserved', 'n1', { population: 10000 }), // 66.39 dB: exposed
    ent('NoiseLevelObserved', 'n2', { population: 20000 }), // 51.39 dB
    ent('NoiseLevelObserved', 'n3', { population: 5000 }), // 56.39 dB: exposed
  ];
  const r = run('EN: EN: EQ: 2A', { entities, series, profile: { population: 100000 } });
  assert.equal(r.value, 15); // (10000 + 5000) / 100000
  near(r.inputs.figures[`Lden@${ids[0]}`] as number, 60 + plus, 0.01);
  // without station populations: share of stations above the threshold (2 of 3)
  const proxy = run('EN: EN: EQ: 2A', { entities: entities.map(({ population, ...e }) => e as KvEntity), series, profile: { population: 100000 } });
  near(proxy.value, (2 / 3) * 100, 1e-3);
  assert.match(proxy.inputs.notes.join(), /proxy/);
  // a higher threshold (60 dB): only n1
  assert.equal(run('EN: EN: EQ: 2A', { entities, series, profile: { population: 100000 }, params: { thresholdDb: 60 } }).value, 10);
});

test('EN: EN: WS: 2C water consumption per capita per day', () => {
  const m = (x: string) => `urn:ngsi-ld:WaterConsumptionObserved:${x}`;
  const series: SeriesMap = {
    [m('m1')]: { waterConsumption: [{ t: '2024-12-31T23:00:00Z', v: 100 }, { t: '2025-01-15T00:00:00Z', v: 130 }, { t: '2025-01-31T12:00:00Z', v: 162 }] },
    [m('m2')]: {
      waterConsumption: [{ t: '2025-01-01T00:00:00Z', v: 50 }, { t: '2025-01-10T00:00:00Z', v: 80 }, { t: '2025-01-20T00:00:00Z', v: 5 }, { t: '2025-01-30T00:00:00Z', v: 25 }],
    },
    [m('m3')]: { waterConsumption: [{ t: '2025-01-05T00:00:00Z', v: 7 }] }, // one reading: no consumption known
  };
  const entities = ['m1', 'm2', 'm3'].map((x) => ent('WaterConsumptionObserved', x));
  const r = run('EN: EN: WS: 2C', { period: '2025-01', entities, series, profile: { population: 1000 } });
  // m1: 162 - 100 = 62 ; m2: 30 + 5 (reset) + 20 = 55 ; 117 m3 = 117 000 L / 1000 inhabitants / 31 days
  assert.equal(r.value, Math.round((117000 / 1000 / 31) * 1000) / 1000);
  assert.equal(r.inputs.figures.totalM3, 117);
  assert.equal(r.inputs.figures.metersWithData, 2);
  assert.equal(run('EN: EN: WS: 2C', { period: '2025-01', entities, series }).value, null);
});

test('EN: E: E: 2C electricity consumption per capita per year', () => {
  const series: SeriesMap = {
    'urn:ngsi-ld:ThreePhaseAcMeasurement:e1': {
      totalActiveEnergyImport: [{ t: '2024-12-31T00:00:00Z', v: 1000 }, { t: '2025-06-30T00:00:00Z', v: 3000 }, { t: '2025-12-31T00:00:00Z', v: 5500 }],
    },
    'urn:ngsi-ld:ACMeasurement:a1': { totalActiveEnergyImport: [{ t: '2025-01-05T00:00:00Z', v: 0 }, { t: '2025-12-01T00:00:00Z', v: 500 }] },
  };
  const entities = [ent('ThreePhaseAcMeasurement', 'e1'), ent('ACMeasurement', 'a1')];
  // (4500 + 500) kWh / 2 inhabitants
  assert.equal(run('EN: E: E: 2C', { entities, series, profile: { population: 2 } }).value, 2500);
  // a quarter is annualised: 90 kWh in Q1 (90 days) for one inhabitant -> 90 x 365 / 90 kWh per year
  const q = run('EN: E: E: 2C', {
    period: '2025-Q1',
    entities,
    series: { 'urn:ngsi-ld:ACMeasurement:a1': { totalActiveEnergyImport: [{ t: '2025-01-01T00:00:00Z', v: 0 }, { t: '2025-03-31T00:00:00Z', v: 90 }] } },
    profile: { population: 1 },
  });
  assert.equal(q.value, Math.round(90 * (365 / 90) * 1000) / 1000); // Q1 2025 has 90 days
});

test('EC: I: ES: 1C / 2C outage frequency (SAIFI) and duration (CAIDI)', () => {
  const sp1 = 'urn:ngsi-ld:ElectricitySupplyPoint:sp1';
  const sp2 = 'urn:ngsi-ld:ElectricitySupplyPoint:sp2';
  const series: SeriesMap = {
    [sp1]: {
      powerSupply: [
        { t: '2025-01-01T00:00:00Z', v: 1 },
        { t: '2025-01-05T10:00:00Z', v: 0 },
        { t: '2025-01-05T10:30:00Z', v: 1 }, // 30 min
        { t: '2025-01-10T00:00:00Z', v: 0 },
        { t: '2025-01-10T00:02:00Z', v: 1 }, // 2 min: momentary, not counted
      ],
    },
    [sp2]: {
      powerSupply: [
        { t: '2024-12-31T23:00:00Z', v: 0 }, // down before the window: counted from 1 Jan 00:00
        { t: '2025-01-01T01:00:00Z', v: 1 }, // 60 min
        { t: '2025-01-31T23:00:00Z', v: 0 }, // ongoing until 1 Feb 00:00: 60 min
      ],
    },
  };
  const entities = [ent('ElectricitySupplyPoint', 'sp1', { customersServed: 100 }), ent('ElectricitySupplyPoint', 'sp2', { customersServed: 300 })];
  // customer interruptions: 100 + 300 + 300 = 700 ; customer minutes: 30x100 + 60x300 + 60x300 = 39 000
  assert.equal(run('EC: I: ES: 1C', { period: '2025-01', entities, series, profile: { electricityCustomers: 1000 } }).value, 0.7);
  assert.equal(run('EC: I: ES: 1C', { period: '2025-01', entities, series }).value, 1.75); // 700 / (100 + 300)
  const caidi = run('EC: I: ES: 2C', { period: '2025-01', entities, series });
  assert.equal(caidi.value, Math.round((39000 / 700) * 1000) / 1000);
  assert.match(caidi.inputs.notes.join(), /ongoing/);
  assert.equal(interruptions(sp1, series[sp1].powerSupply, '2025-01-01T00:00:00Z', '2025-02-01T00:00:00Z', 100, 1).length, 2);
  // no interruption at all: CAIDI 0, SAIFI 0
  const calm = { [sp1]: { powerSupply: [{ t: '2025-01-02T00:00:00Z', v: 1 }] } };
  assert.equal(run('EC: I: ES: 2C', { period: '2025-01', entities, series: calm }).value, 0);
  assert.equal(run('EC: I: ES: 1C', { period: '2025-01', entities, series: calm }).value, 0);
  assert.equal(run('EC: I: ES: 1C', { period: '2025-01', entities, series: {} }).value, null);
});

test('EC: I: T: 5A travel time index: weekday peak vs night free flow', () => {
  const f1 = 'urn:ngsi-ld:TrafficFlowObserved:f1';
  const f2 = 'urn:ngsi-ld:TrafficFlowObserved:f2';
  const series: SeriesMap = {
    // 6 Jan 2025 is a Monday
    [f1]: {
      averageVehicleSpeed: [
        { t: '2025-01-06T08:00:00Z', v: 30 }, // peak
        { t: '2025-01-06T17:00:00Z', v: 20 }, // peak
        { t: '2025-01-11T08:00:00Z', v: 10 }, // Saturday: not peak
        { t: '2025-01-06T12:00:00Z', v: 50 }, // neither
        { t: '2025-01-06T23:00:00Z', v: 60 }, // free flow
        { t: '2025-01-07T03:00:00Z', v: 40 }, // free flow
      ],
    },
    [f2]: { averageVehicleSpeed: [{ t: '2025-01-07T07:30:00Z', v: 50 }, { t: '2025-01-08T22:00:00Z', v: 80 }] },
  };
  const entities = [
    ent('TrafficFlowObserved', 'f1', { refRoadSegment: 'urn:ngsi-ld:RoadSegment:r1' }),
    ent('TrafficFlowObserved', 'f2'),
    ent('RoadSegment', 'r1', { length: 2 }),
  ];
  // f1 (2 km): peak 2 x (1/30 + 1/20)/2 h, free 2 x (1/60 + 1/40)/2 h ; f2 (1 km): peak 1/50, free 1/80
  const peak = 2 * ((1 / 30 + 1 / 20) / 2) + 1 / 50;
  const free = 2 * ((1 / 60 + 1 / 40) / 2) + 1 / 80;
  const r = run('EC: I: T: 5A', { period: '2025-01', entities, series });
  assert.equal(r.value, Math.round((peak / free) * 10000) / 10000);
  assert.equal(r.inputs.figures.locations, 2);
  assert.equal(run('EC: I: T: 5A', { period: '2025-02', entities, series }).value, null);
});

test('EN: EN: PSN: 1C green areas per 100 000 inhabitants', () => {
  const sq = { type: 'Polygon', coordinates: [[[0, 0], [0.01, 0], [0.01, 0.01], [0, 0.01], [0, 0]]] };
  const r = run('EN: EN: PSN: 1C', {
    entities: [ent('Park', 'p', { location: sq }), ent('Garden', 'g', { area: 50000 })],
    profile: { population: 200000 },
  });
  // park about K x K km2 = K^2 x 100 ha, garden 5 ha ; per 100 000 of 200 000 inhabitants: / 2
  near(r.value, (K * K * 100 + 5) / 2, 0.5);
});

test('SC: EH: C: 2A cultural infrastructure per 100 000 inhabitants', () => {
  const r = run('SC: EH: C: 2A', {
    entities: [
      ent('Museum', 'm1'),
      ent('Museum', 'm2', { status: 'closed' }),
      ent('PointOfInterest', 'lib', { category: ['library'] }),
      ent('PointOfInterest', 'park', { category: ['park'] }),
    ],
    profile: { population: 50000 },
  });
  assert.equal(r.value, 4); // 2 / (50 000 / 100 000)
});

test('every calculator copes with an empty data set (value null or 0, never throws)', () => {
  for (const c of CALCULATORS.values()) {
    const r = c.compute({ period: parsePeriod('2025'), profile: null, entities: {}, series: {} });
    assert.ok(r.value === null || r.value === 0, `${c.code}: ${r.value}`);
    assert.ok(r.inputs.window.from.startsWith('2025-01-01'));
  }
});

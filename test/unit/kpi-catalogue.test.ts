import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOGUE, findKpi, hierarchy, kpiEntityId, normaliseCode, slugOf, toKpiEntity } from '../../src/kpi/domain/catalogue.ts';
import { CALCULATORS, CALCULATOR_LIST, dataRequirements } from '../../src/kpi/domain/calculators/index.ts';
import { parsePeriod, periodOf, previousPeriod } from '../../src/kpi/domain/period.ts';
import { profileFor, validateProfile } from '../../src/kpi/domain/profile.ts';

// The 91 reference codes (U4SSC, /work/shared/reference/u4ssc-kpis.json), in catalogue order.
const REFERENCE_CODES = ["EC: ICT: ICT: 1C","EC: ICT: ICT: 2C","EC: ICT: ICT: 3C","EC: ICT: ICT: 4C","EC: ICT: ICT: 5C","EC: ICT: WS: 1C","EC: ICT: WS: 2A","EC: ICT: D: 1A","EC: ICT: ES: 1C","EC: ICT: ES: 2A","EC: ICT: ES: 3A","EC: ICT: T: 1C","EC: ICT: T: 2C","EC: ICT: T: 3A","EC: ICT: PS: 1A","EC: ICT: PS: 2A","EC: ICT: PS: 3A","EC: P: IN: 1C","EC: P: IN: 2C","EC: P: IN: 3A","EC: P: EM: 1C","EC: P: EM: 2C","EC: P: EM: 3A","EC: P: EM: 4A","EC: I: WS: 1C","EC: I: WS: 2C","EC: I: WS: 3C","EC: I: WS: 4C","EC: I: WS: 5C","EC: I: WA: 1C","EC: I: ES: 1C","EC: I: ES: 2C","EC: I: ES: 3C","EC: I: T: 1C","EC: I: T: 2A","EC: I: T: 3C","EC: I: T: 4A","EC: I: T: 5A","EC: I: T: 6A","EC: I: T: 7A","EC: I: T: 8A","EC: I: B: 1A","EC: I: B: 2A","EC: I: UP: 1A","EC: I: UP: 2A","EN: EN: AQ: 1C","EN: EN: AQ: 2C","EN: EN: WS: 1C","EN: EN: WS: 2C","EN: EN: WS: 3C","EN: EN: WS: 4C","EN: EN: WA: 1C","EN: EN: EQ: 1C","EN: EN: EQ: 2A","EN: EN: PSN: 1C","EN: EN: PSN: 2A","EN: EN: PSN: 3A","EN: EN: PSN: 4A","EN: E: E: 1C","EN: E: E: 2C","EN: E: E: 3C","EN: E: E: 4A","SC: EH: ED: 1C","SC: EH: ED: 2C","SC: EH: ED: 3C","SC: EH: ED: 4C","SC: EH: ED: 5A","SC: EH: H: 1C","SC: EH: H: 2C","SC: EH: H: 3C","SC: EH: H: 4A","SC: EH: H: 5A","SC: EH: C: 1C","SC: EH: C: 2A","SC: SH: HO: 1C","SC: SH: HO: 2A","SC: SH: SI: 1C","SC: SH: SI: 2C","SC: SH: SI: 3C","SC: SH: SI: 4C","SC: SH: SI: 5A","SC: SH: SA: 1C","SC: SH: SA: 2C","SC: SH: SA: 3A","SC: SH: SA: 4A","SC: SH: SA: 5A","SC: SH: SA: 6C","SC: SH: SA: 7C","SC: SH: SA: 8C","SC: SH: SA: 9C","SC: SH: FS: 1A"];

test('catalogue: all 91 definitions, codes exactly as the reference, in order', () => {
  assert.equal(CATALOGUE.length, 91);
  assert.deepEqual(CATALOGUE.map((d) => d.code), REFERENCE_CODES);
  assert.equal(new Set(CATALOGUE.map((d) => d.slug)).size, 91);
});

test('catalogue: structure 3 dimensions / 7 sub-dimensions, 55 core + 36 advanced', () => {
  const count = (f: (d: (typeof CATALOGUE)[number]) => boolean) => CATALOGUE.filter(f).length;
  assert.equal(count((d) => d.dimension === 'Economy'), 45);
  assert.equal(count((d) => d.dimension === 'Environment'), 17);
  assert.equal(count((d) => d.dimension === 'Society and Culture'), 29);
  assert.equal(count((d) => d.kind === 'core'), 55);
  assert.equal(count((d) => d.kind === 'advanced'), 36);
  const h = hierarchy();
  assert.equal(h.length, 3);
  assert.equal(h.flatMap((x) => x.subDimensions).length, 7);
  assert.equal(h.flatMap((x) => x.subDimensions.flatMap((s) => s.categories)).length, 27); // 22 distinct names, some recur under several sub-dimensions
  // every KPI has the suffix matching its kind
  for (const d of CATALOGUE) assert.equal(d.code.endsWith('C'), d.kind === 'core', d.code);
});

test('catalogue: fields from the reference (unit, formula, polarity, SDG, method)', () => {
  const d = findKpi('EC: ICT: ICT: 2C')!;
  assert.equal(d.name, 'Fixed Broadband Subscriptions');
  assert.equal(d.unit, '%');
  assert.equal(d.polarity, 'higher-better');
  assert.deepEqual(d.sdg, ['17.6.2', '17.8.1']);
  assert.equal(d.calculationMethod, 'manual');
  assert.match(d.formula!, /households/);
  assert.equal(findKpi('SC: SH: SI: 1C')!.polarity, 'target');
  assert.equal(findKpi('EC: P: EM: 3A')!.polarity, null);
  assert.equal(findKpi('EN: EN: AQ: 1C')!.calculationMethod, 'automatic');
  assert.equal(findKpi('EC: ICT: WS: 1C')!.calculationMethod, 'semiautomatic');
  assert.equal(findKpi('EC: I: B: 2A')!.calculationMethod, 'semiautomatic'); // sensor-derivable, no calculator yet
  assert.deepEqual(findKpi('EN: EN: AQ: 1C')!.dataPoints, ['pm10', 'pm25', 'no2', 'so2', 'o3']);
  // methods are one of three values
  for (const k of CATALOGUE) assert.ok(['automatic', 'semiautomatic', 'manual'].includes(k.calculationMethod));
});

test('catalogue: lookup by code, slug, entity id and tolerant code', () => {
  assert.equal(slugOf('SC: EH: ED: 1C'), 'SC-EH-ED-1C');
  assert.equal(findKpi('SC-EH-ED-1C')!.code, 'SC: EH: ED: 1C');
  assert.equal(findKpi(kpiEntityId('EN: EN: PSN: 4A'))!.code, 'EN: EN: PSN: 4A');
  assert.equal(normaliseCode('sc:eh:ed:1c'), 'SC: EH: ED: 1C');
  assert.equal(findKpi('sc:eh:ed:1c')!.code, 'SC: EH: ED: 1C');
  assert.equal(findKpi('XX: 1'), undefined);
});

test('catalogue: KeyPerformanceIndicator entity (Smart Data Models attributes)', () => {
  const e = toKpiEntity(findKpi('EN: EN: AQ: 1C')!, { organization: 'Demo City' }) as Record<string, { value?: unknown }>;
  assert.equal((e as Record<string, unknown>).id, 'urn:ngsi-ld:KeyPerformanceIndicator:U4SSC-EN-EN-AQ-1C');
  assert.equal((e as Record<string, unknown>).type, 'KeyPerformanceIndicator');
  assert.equal(e.kpiCode.value, 'EN: EN: AQ: 1C');
  assert.equal(e.calculationMethod.value, 'automatic');
  assert.equal(e.organization.value, 'Demo City');
  assert.deepEqual(e.category.value, ['quantitative']);
  assert.deepEqual(e.aggregatedData.value, [{ entityType: 'AirQualityObserved', attrs: ['pm10', 'pm25', 'no2', 'so2', 'o3'] }]);
  assert.equal(e.dimension.value, 'Environment');
  // a Yes/No KPI is qualitative
  const q = toKpiEntity(findKpi('EC: I: UP: 2A')!) as Record<string, { value?: unknown }>;
  assert.deepEqual(q.category.value, ['qualitative']);
  // every entity is valid JSON with Property wrappers
  for (const d of CATALOGUE) {
    const x = toKpiEntity(d);
    for (const [k, v] of Object.entries(x)) if (k !== 'id' && k !== 'type') assert.equal((v as { type: string }).type, 'Property', `${d.code}.${k}`);
  }
});

test('calculators: each is registered for a catalogue code and declares what it reads', () => {
  assert.ok(CALCULATOR_LIST.length >= 19);
  for (const c of CALCULATOR_LIST) {
    assert.ok(findKpi(c.code), c.code);
    assert.ok(c.reads.length > 0 && c.reads.every((r) => r.entityType && r.attrs.length), c.code);
    assert.ok(c.description.length > 20);
  }
  assert.equal(CALCULATORS.size, CALCULATOR_LIST.length);
  const req = dataRequirements();
  assert.ok(req.get('AirQualityObserved')!.history.has('pm25'));
  assert.ok(req.get('WaterConsumptionObserved')!.history.has('waterConsumption'));
});

test('periods: parse, previous, periodOf', () => {
  assert.deepEqual(parsePeriod('2025'), { id: '2025', granularity: 'year', start: '2025-01-01T00:00:00.000Z', end: '2026-01-01T00:00:00.000Z' });
  assert.equal(parsePeriod('2025-q2').start, '2025-04-01T00:00:00.000Z');
  assert.equal(parsePeriod('2025-Q4').end, '2026-01-01T00:00:00.000Z');
  assert.equal(parsePeriod('2024-02').end, '2024-03-01T00:00:00.000Z');
  assert.equal(parsePeriod('2024-02-29').granularity, 'day');
  assert.throws(() => parsePeriod('2023-02-29'), /invalid period/);
  assert.throws(() => parsePeriod('2025-13'), /invalid period/);
  assert.equal(previousPeriod('2025').id, '2024');
  assert.equal(previousPeriod('2025-Q1').id, '2024-Q4');
  assert.equal(previousPeriod('2025-03-01').id, '2025-02-28');
  assert.equal(periodOf('2025-08-15T10:00:00Z', 'quarter').id, '2025-Q3');
  assert.equal(periodOf(Date.parse('2025-08-15T10:00:00Z'), 'month').id, '2025-08');
});

test('profile: validation and choice of the year', () => {
  const p = validateProfile({ period: '2024', values: { population: 100000, households: 40000 } });
  assert.equal(p.values.population, 100000);
  assert.throws(() => validateProfile({ period: '24', values: {} }), /year/);
  assert.throws(() => validateProfile({ period: '2024', values: { population: -1 } }), /non-negative/);
  const a = validateProfile({ period: '2023', values: { population: 1 } });
  const b = validateProfile({ period: '2025', values: { population: 2 } });
  assert.equal(profileFor([a, b], '2024')!.period, '2023');
  assert.equal(profileFor([a, b], '2026')!.period, '2025');
  assert.equal(profileFor([b], '2020')!.period, '2025'); // nothing earlier: the oldest
  assert.equal(profileFor([], '2020'), null);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { band, scoreKpi, scorecard, shareOfTarget, trend } from '../../src/kpi/domain/scoring.ts';
import { CATALOGUE, findKpi } from '../../src/kpi/domain/catalogue.ts';
import type { KpiDefinition, KpiTarget, KpiValue } from '../../src/kpi/domain/types.ts';

const v = (code: string, value: number | null, dataPoint = ''): KpiValue => ({ code, period: '2025', dataPoint, value, method: 'manual' });
const t = (code: string, target: number, extra: Partial<KpiTarget> = {}): KpiTarget => ({ code, dataPoint: '', target, ...extra });

test('bands: < 33 % -> 1, 33-66 % -> 2, 66-95 % -> 3, >= 95 % -> 4 (boundaries inclusive upwards)', () => {
  assert.equal(band(0), 1);
  assert.equal(band(0.3299), 1);
  assert.equal(band(0.33), 2);
  assert.equal(band(0.6599), 2);
  assert.equal(band(0.66), 3);
  assert.equal(band(0.9499), 3);
  assert.equal(band(0.95), 4);
  assert.equal(band(3), 4);
  // Mashhad factsheet: fixed broadband against a 60 % reference: 57 / 39.6 / 19.8 are the band edges
  assert.equal(band(shareOfTarget(57, 60, 'higher-better')!), 4);
  assert.equal(band(shareOfTarget(56.9, 60, 'higher-better')!), 3);
  assert.equal(band(shareOfTarget(39.6, 60, 'higher-better')!), 3);
  assert.equal(band(shareOfTarget(39.5, 60, 'higher-better')!), 2);
  assert.equal(band(shareOfTarget(19.8, 60, 'higher-better')!), 2);
  assert.equal(band(shareOfTarget(19.7, 60, 'higher-better')!), 1);
});

test('share of target respects polarity', () => {
  assert.equal(shareOfTarget(30, 60, 'higher-better'), 0.5);
  assert.equal(shareOfTarget(120, 60, 'higher-better'), 2);
  assert.equal(shareOfTarget(-5, 60, 'higher-better'), 0); // clamped
  // lower is better: target / value
  assert.equal(shareOfTarget(20, 10, 'lower-better'), 0.5); // PM10 20 against 10: half way
  assert.equal(shareOfTarget(5, 10, 'lower-better'), 2);
  assert.equal(shareOfTarget(40, 10, 'lower-better'), 0.25);
  assert.equal(shareOfTarget(0, 10, 'lower-better'), 10); // better than any share: capped
  // closeness to a target (gender income equity 1.0)
  assert.equal(shareOfTarget(0.8, 1, 'target'), 0.8);
  assert.equal(shareOfTarget(1.2, 1, 'target'), 0.8);
  assert.equal(shareOfTarget(3, 1, 'target'), 0); // clamped
  assert.equal(shareOfTarget(5, 10, null), null);
});

test('targets of zero', () => {
  // higher-better with 0 target: reached by any value >= 0
  assert.equal(shareOfTarget(0, 0, 'higher-better'), 1);
  assert.equal(shareOfTarget(7, 0, 'higher-better'), 1);
  // lower-better with 0 target: met only at 0
  assert.equal(shareOfTarget(0, 0, 'lower-better'), 1);
  assert.equal(shareOfTarget(3, 0, 'lower-better'), 0);
  // ... unless a baseline gives progress: baseline 50, value 10 -> (50 - 10) / 50 = 80 %
  assert.equal(shareOfTarget(10, 0, 'lower-better', 50), 0.8);
  assert.equal(shareOfTarget(60, 0, 'lower-better', 50), 0); // worse than baseline: clamped
  // target polarity with 0 target
  assert.equal(shareOfTarget(0, 0, 'target'), 1);
  assert.equal(shareOfTarget(2, 0, 'target'), 0);
  assert.equal(shareOfTarget(2, 0, 'target', 8), 0.75);
});

test('scoreKpi: exclusions (not reported, no target, no polarity), data points, polarity override', () => {
  const fb = findKpi('EC: ICT: ICT: 2C')!;
  assert.equal(scoreKpi(fb, [], [t(fb.code, 60)])[0].excluded, 'not reported');
  assert.equal(scoreKpi(fb, [v(fb.code, 30)], [])[0].excluded, 'no target');
  const ok = scoreKpi(fb, [v(fb.code, 30)], [t(fb.code, 60)])[0];
  assert.equal(ok.points, 2);
  assert.equal(ok.share, 0.5);
  // Tourism Industry Employment has no polarity in the catalogue
  const tour = findKpi('EC: P: EM: 3A')!;
  assert.equal(scoreKpi(tour, [v(tour.code, 5)], [t(tour.code, 10)])[0].excluded, 'no polarity');
  assert.equal(scoreKpi(tour, [v(tour.code, 5)], [t(tour.code, 10, { polarity: 'higher-better' })])[0].points, 2);
  // air pollution: five data points scored separately, lower is better
  const aq = findKpi('EN: EN: AQ: 1C')!;
  const items = scoreKpi(
    aq,
    [v(aq.code, 20, 'pm10'), v(aq.code, 5, 'pm25'), v(aq.code, 40, 'no2')],
    [
      { code: aq.code, dataPoint: 'pm10', target: 15 },
      { code: aq.code, dataPoint: 'pm25', target: 5 },
      { code: aq.code, dataPoint: 'no2', target: 10 },
    ],
  );
  assert.deepEqual(items.map((i) => [i.dataPoint, i.points, i.excluded ?? null]), [
    ['pm10', 3, null], // 15/20 = 75 %
    ['pm25', 4, null], // 100 %
    ['no2', 1, null], // 25 %
    ['so2', null, 'not reported'],
    ['o3', null, 'not reported'],
  ]);
  // a target without data point applies to every data point
  const all = scoreKpi(aq, [v(aq.code, 10, 'so2')], [t(aq.code, 20)]);
  assert.equal(all.find((i) => i.dataPoint === 'so2')!.points, 4);
});

// a small synthetic catalogue to check aggregation by hand
const def = (code: string, dimension: string, subDimension: string, category: string, polarity: KpiDefinition['polarity'] = 'higher-better'): KpiDefinition => ({
  code, slug: code, dimension, subDimension, category, name: code, kind: 'core', type: null, unit: '%', formula: null, definition: '', sdg: [],
  polarity, calculationMethod: 'manual', sensorDerivable: false, dataPoints: [], verification: '', unverifiedFields: [], source: null,
});

test('aggregation: U4SSC worked example (Education 1+3+4+1 = 9/16 = 56.25 %; 3 reported 3+4+2 = 9/12 = 75 %)', () => {
  const defs = ['E1', 'E2', 'E3', 'E4'].map((c) => def(c, 'Society', 'EH', 'Education'));
  const targets = defs.map((d) => t(d.code, 100));
  const sc = scorecard(defs, [v('E1', 10), v('E2', 70), v('E3', 100), v('E4', 20)], targets);
  const cat = sc.dimensions[0].subDimensions[0].categories[0];
  assert.deepEqual([cat.earned, cat.possible, cat.percent, cat.band], [9, 16, 56.25, 2]);
  const sc3 = scorecard(defs, [v('E1', 70), v('E2', 100), v('E3', 50)], targets);
  const cat3 = sc3.dimensions[0].subDimensions[0].categories[0];
  assert.deepEqual([cat3.earned, cat3.possible, cat3.percent, cat3.band, cat3.reported, cat3.total], [9, 12, 75, 3, 3, 4]);
});

test('aggregation: categories inside sub-dimensions and dimensions, unreported and unbenchmarked excluded', () => {
  const defs = [
    def('A1', 'D1', 'S1', 'C1'),
    def('A2', 'D1', 'S1', 'C1', 'lower-better'),
    def('A3', 'D1', 'S2', 'C1'), // same category name under another sub-dimension: separate group
    def('A4', 'D2', 'S3', 'C2'),
  ];
  const values = [v('A1', 100), v('A2', 20), v('A3', 10), v('A4', 50)];
  const targets = [t('A1', 100), t('A2', 10), t('A3', 100)]; // A4 has no target
  const sc = scorecard(defs, values, targets);
  // A1: 4 ; A2: 10/20 = 50 % -> 2 ; A3: 10 % -> 1
  const d1 = sc.dimensions.find((d) => d.name === 'D1')!;
  assert.deepEqual([d1.earned, d1.possible, d1.percent], [7, 12, 58.33]);
  assert.deepEqual(d1.subDimensions.map((s) => [s.name, s.earned, s.possible]), [['S1', 6, 8], ['S2', 1, 4]]);
  const d2 = sc.dimensions.find((d) => d.name === 'D2')!;
  assert.deepEqual([d2.percent, d2.band, d2.scored, d2.reported], [null, null, 0, 1]);
  assert.deepEqual([sc.overall.earned, sc.overall.possible], [7, 12]);
  assert.equal(sc.items.find((i) => i.code === 'A4')!.excluded, 'no target');
});

test('scorecard over the real catalogue: nothing reported -> nothing scored', () => {
  const sc = scorecard(CATALOGUE, [], []);
  assert.equal(sc.overall.percent, null);
  assert.equal(sc.dimensions.length, 3);
  assert.ok(sc.items.length > 91); // data points add items
  assert.ok(sc.items.every((i) => i.excluded === 'not reported'));
});

test('trend respects polarity', () => {
  assert.equal(trend(60, 50, 'higher-better'), 'improving');
  assert.equal(trend(60, 50, 'lower-better'), 'worsening');
  assert.equal(trend(50, 50.1, 'lower-better'), 'stable');
  assert.equal(trend(0.9, 0.8, 'target', 1), 'improving');
  assert.equal(trend(1.3, 1.1, 'target', 1), 'worsening');
  assert.equal(trend(null, 1, 'higher-better'), 'n/a');
  assert.equal(trend(5, 1, null), 'n/a');
});

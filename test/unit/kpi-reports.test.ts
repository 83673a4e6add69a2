import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_FRAMEWORKS, evaluateFramework, normalise, validateFramework, type FrameworkConfig } from '../../src/kpi/domain/frameworks.ts';
import { buildReport, compareReports, comparisonToCsv, comparisonToHtml, reportToCsv, reportToHtml } from '../../src/kpi/domain/report.ts';
import { parseCsv, parseValuesCsv, validateManualValue, validateTarget } from '../../src/kpi/domain/values.ts';
import { CATALOGUE } from '../../src/kpi/domain/catalogue.ts';
import type { KpiValue } from '../../src/kpi/domain/types.ts';

const fw: FrameworkConfig = {
  id: 'test-index',
  name: 'Test index',
  normalisation: 'minmax',
  groups: [
    {
      id: 'g1', name: 'Objective', weight: 3, indicators: [
        { id: 'a', name: 'A', weight: 1, kind: 'objective', source: { kpi: 'EC: ICT: WS: 1C' }, polarity: 'higher-better', min: 0, max: 100 },
        { id: 'b', name: 'B', weight: 3, kind: 'objective', source: { kpi: 'EN: EN: AQ: 1C', dataPoint: 'pm10' }, polarity: 'lower-better', min: 0, max: 40 },
        { id: 'c', name: 'C', weight: 1, kind: 'objective', source: { profile: 'missing' }, polarity: 'higher-better', min: 0, max: 1 },
      ],
    },
    {
      id: 'g2', name: 'Survey', weight: 1, indicators: [
        { id: 's', name: 'S', weight: 1, kind: 'subjective', source: { survey: 'satisfaction' }, polarity: 'higher-better', normalisation: 'target', target: 80 },
      ],
    },
  ],
};

test('frameworks: normalisation min-max and to target, with polarity', () => {
  const ind = fw.groups[0].indicators;
  assert.equal(normalise(25, ind[0], 'minmax'), 0.25);
  assert.equal(normalise(10, ind[1], 'minmax'), 0.75); // (40 - 10) / 40
  assert.equal(normalise(50, ind[1], 'minmax'), 0); // clamped
  assert.equal(normalise(60, fw.groups[1].indicators[0], 'minmax'), 0.75); // 60 / 80
  assert.equal(normalise(100, fw.groups[1].indicators[0], 'minmax'), 1); // capped
});

test('frameworks: weighted evaluation, missing indicators excluded, coverage, objective/subjective', () => {
  const r = evaluateFramework(validateFramework(fw), { kpi: { 'EC: ICT: WS: 1C': 50, 'EN: EN: AQ: 1C#pm10': 10 }, survey: { satisfaction: 60 }, profile: {} });
  // g1: (1 x 0.5 + 3 x 0.75) / 4 = 0.6875 -> 68.75 ; indicator c missing (weight 1 of 5)
  assert.equal(r.groups[0].score, 68.75);
  assert.equal(r.groups[0].coverage, 0.8);
  assert.equal(r.groups[1].score, 75);
  // overall: (3 x 68.75 + 1 x 75) / 4 = 70.3125 ; coverage (3 x 0.8 + 1 x 1) / 4 = 0.85
  assert.equal(r.score, 70.3125);
  assert.equal(r.coverage, 0.85);
  assert.equal(r.subjectiveScore, 75);
  assert.equal(r.objectiveScore, 68.75);
  const empty = evaluateFramework(fw, { kpi: {}, survey: {}, profile: {} });
  assert.equal(empty.score, null);
  assert.equal(empty.coverage, 0);
});

test('frameworks: validation and the built-in configurations', () => {
  assert.throws(() => validateFramework({ ...fw, id: 'u4ssc' }), /reserved/);
  assert.throws(() => validateFramework({ ...fw, normalisation: 'z' }), /normalisation/);
  const bad = structuredClone(fw);
  delete (bad.groups[0].indicators[0] as { max?: number }).max;
  assert.throws(() => validateFramework(bad), /min and max/);
  const dup = structuredClone(fw);
  dup.groups[1].indicators[0].id = 'a';
  assert.throws(() => validateFramework(dup), /duplicate/);
  assert.deepEqual(BUILTIN_FRAMEWORKS.map((f) => f.id), ['gbt33356-style', 'iq-cities-style']);
  const codes = new Set(CATALOGUE.map((d) => d.code));
  for (const f of BUILTIN_FRAMEWORKS)
    for (const g of f.groups)
      for (const i of g.indicators) {
        const s = i.source as { kpi?: string; dataPoint?: string };
        if (s.kpi) assert.ok(codes.has(s.kpi), `${f.id}/${i.id}: ${s.kpi}`);
        if (s.dataPoint) assert.ok(CATALOGUE.find((d) => d.code === s.kpi)!.dataPoints.includes(s.dataPoint), `${f.id}/${i.id}`);
      }
  const gbt = BUILTIN_FRAMEWORKS[0];
  assert.equal(gbt.groups.reduce((a, g) => a + g.weight, 0), 100);
  assert.ok(gbt.groups.some((g) => g.indicators.some((i) => i.kind === 'subjective')));
});

const val = (code: string, value: number | null, extra: Partial<KpiValue> = {}): KpiValue => ({ code, period: '2025', dataPoint: '', value, method: 'manual', ...extra });

test('report: JSON rows, CSV, printable HTML, trend and provenance', () => {
  const values = [
    val('EC: ICT: ICT: 2C', 30, { source: 'national statistics', quality: 'official', enteredBy: 'ana', verifiedBy: 'bob' }),
    val('EN: EN: AQ: 1C', 20, { dataPoint: 'pm10', method: 'automatic', inputs: { window: { from: '2025-01-01', to: '2026-01-01' }, entities: [{ type: 'AirQualityObserved', count: 4, ids: [] }], attributes: [], profile: {}, figures: {}, notes: [] } }),
    val('EC: ICT: ICT: 1C', 80, { note: 'has "quotes", commas; <b>tags</b>' }),
  ];
  const previous = [val('EC: ICT: ICT: 2C', 25, { period: '2024' }), val('EN: EN: AQ: 1C', 25, { dataPoint: 'pm10', period: '2024' })];
  const targets = [
    { code: 'EC: ICT: ICT: 2C', dataPoint: '', target: 60 },
    { code: 'EN: EN: AQ: 1C', dataPoint: 'pm10', target: 15 },
  ];
  const r = buildReport({ tenant: 'city1', city: 'Demo <City>', period: '2025', generatedAt: '2026-01-01T00:00:00.000Z', defs: CATALOGUE, values, previous, targets });
  assert.equal(r.summary.kpis, 91);
  assert.equal(r.summary.reported, 3);
  assert.equal(r.summary.scored, 2);
  const fb = r.kpis.find((k) => k.code === 'EC: ICT: ICT: 2C')!;
  assert.deepEqual([fb.value, fb.target, fb.shareOfTarget, fb.points, fb.band, fb.trend], [30, 60, 50, 2, '33-66 %', 'improving']);
  assert.equal(fb.provenance!.verifiedBy, 'bob');
  const pm10 = r.kpis.find((k) => k.code === 'EN: EN: AQ: 1C' && k.dataPoint === 'pm10')!;
  assert.deepEqual([pm10.points, pm10.trend], [3, 'improving']); // 15/20 = 75 %; 25 -> 20 is better
  assert.match(pm10.provenance!.inputs!, /4 AirQualityObserved/);
  // overall: 2 + 3 = 5 of 8
  assert.equal(r.summary.overall.percent, 62.5);
  const econ = r.dimensions.find((d) => d.name === 'Economy')!;
  assert.equal(econ.percent, 50);

  const csv = reportToCsv(r);
  const rows = parseCsv(csv);
  assert.equal(rows[0][0], 'tenant');
  assert.equal(rows.length, 1 + r.kpis.length);
  const noteRow = rows.find((x) => x[2] === 'EC: ICT: ICT: 1C')!;
  assert.ok(noteRow.includes('has "quotes", commas; <b>tags</b>'));

  const html = reportToHtml(r);
  assert.match(html, /^<!doctype html>/);
  assert.match(html, /Demo &lt;City&gt;/);
  assert.ok(!html.includes('<b>tags</b>'));
  assert.match(html, /62\.5 %/);
  assert.match(html, /@media print/);
});

test('compare two reports (periods or cities)', () => {
  const mk = (tenant: string, period: string, v: number) =>
    buildReport({ tenant, period, generatedAt: 'x', defs: CATALOGUE, values: [val('EC: ICT: ICT: 2C', v, { period })], targets: [{ code: 'EC: ICT: ICT: 2C', dataPoint: '', target: 60 }] });
  const c = compareReports(mk('a', '2024', 30), mk('b', '2025', 45));
  const row = c.kpis.find((k) => k.code === 'EC: ICT: ICT: 2C')!;
  assert.deepEqual([row.a, row.b, row.delta, row.aPoints, row.bPoints, row.change], [30, 45, 15, 2, 3, 'improving']);
  assert.deepEqual(c.overall, { a: 50, b: 75, delta: 25 });
  assert.match(comparisonToCsv(c), /EC: ICT: ICT: 2C,Fixed Broadband Subscriptions,,%,30,45,15,2,3,improving/);
  assert.match(comparisonToHtml(c), /a 2024 → b 2025/);
});

test('manual values: validation, yes/no, data points, CSV import with line errors', () => {
  const m = validateManualValue({ code: 'ec: ict: ict: 2c', period: '2025', value: '45,5', source: 'operator report', quality: 'official' }, 'alice');
  assert.deepEqual([m.code, m.value, m.method, m.enteredBy, m.quality], ['EC: ICT: ICT: 2C', 45.5, 'manual', 'alice', 'official']);
  assert.equal(validateManualValue({ code: 'SC: SH: SA: 3A', period: '2025', value: 'yes' }).value, 1);
  assert.throws(() => validateManualValue({ code: 'EN: EN: AQ: 1C', period: '2025', value: 1, dataPoint: 'co' }), /no data point "co"/);
  assert.throws(() => validateManualValue({ code: 'XX', period: '2025', value: 1 }), /unknown KPI/);
  assert.throws(() => validateManualValue({ code: 'EC: ICT: ICT: 2C', period: '2025', value: 'abc' }), /not a number/);
  assert.throws(() => validateManualValue({ code: 'EC: ICT: ICT: 2C', period: '2025', value: 1, quality: 'great' }), /quality/);

  const csv = 'Code;Period;Data point;Value;Source;Quality;Entered by\r\n' +
    '"EC: ICT: ICT: 1C";2025;;92.5;census;official;bob\r\n' +
    'EN: EN: AQ: 1C;2025;pm25;7;lab;verified;\r\n' +
    'EN: EN: AQ: 1C;2025;pm99;7;lab;verified;\r\n' +
    'EC: P: EM: 1C;20x5;;5;;;\r\n';
  const r = parseValuesCsv(csv, 'importer');
  assert.equal(r.values.length, 2);
  assert.deepEqual(r.values.map((x) => [x.code, x.dataPoint, x.value, x.enteredBy]), [['EC: ICT: ICT: 1C', '', 92.5, 'bob'], ['EN: EN: AQ: 1C', 'pm25', 7, 'importer']]);
  assert.deepEqual(r.errors.map((e) => e.line), [4, 5]);
  assert.throws(() => parseValuesCsv('code,value\nx,1'), /period/);
});

test('targets: validation (polarity needed when the catalogue has none)', () => {
  assert.deepEqual(validateTarget({ code: 'EC: ICT: ICT: 2C', target: 60, baseline: '20' }), { code: 'EC: ICT: ICT: 2C', dataPoint: '', target: 60, baseline: 20, polarity: null, source: null });
  assert.throws(() => validateTarget({ code: 'EC: P: EM: 3A', target: 5 }), /no polarity/);
  assert.equal(validateTarget({ code: 'EC: P: EM: 3A', target: 5, polarity: 'higher-better' }).polarity, 'higher-better');
  assert.throws(() => validateTarget({ code: 'EC: ICT: ICT: 2C' }), /not a number|required/);
});

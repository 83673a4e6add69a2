/**
 * KPI reports per period: JSON structure, CSV and printable HTML renderings, and comparison of two
 * reports (two periods of one city, or two cities).
 */
import { BAND_LABELS, scorecard, trend, type DimensionScore, type GroupScore, type Points, type Trend } from './scoring.ts';
import type { KpiDefinition, KpiTarget, KpiValue, Polarity } from './types.ts';
import { toCsv } from './values.ts';

export interface ReportInput {
  tenant: string;
  city?: string;
  period: string;
  generatedAt: string;
  defs: readonly KpiDefinition[];
  values: KpiValue[];
  /** values of the previous period, for trends */
  previous?: KpiValue[];
  targets: KpiTarget[];
}

export interface ReportRow {
  code: string;
  name: string;
  dimension: string;
  subDimension: string;
  category: string;
  kind: string;
  unit: string | null;
  polarity: Polarity | null;
  calculationMethod: string;
  dataPoint: string;
  value: number | null;
  target: number | null;
  baseline: number | null;
  /** share of target in % (rounded) */
  shareOfTarget: number | null;
  points: Points | null;
  band: string | null;
  excluded: string | null;
  previousValue: number | null;
  trend: Trend;
  provenance: {
    method: string;
    source: string | null;
    quality: string | null;
    enteredBy: string | null;
    verifiedBy: string | null;
    computedAt: string | null;
    note: string | null;
    inputs: string | null;
  } | null;
}

export interface Report {
  tenant: string;
  city: string | null;
  period: string;
  generatedAt: string;
  framework: 'U4SSC';
  summary: { kpis: number; items: number; reported: number; scored: number; overall: GroupScore };
  dimensions: DimensionScore[];
  kpis: ReportRow[];
}

/** one-line explanation of automatic inputs */
export function summariseInputs(v: KpiValue): string | null {
  const i = v.inputs;
  if (!i) return null;
  const ents = i.entities.map((e) => `${e.count} ${e.type}`).join(', ');
  const prof = Object.entries(i.profile)
    .map(([k, x]) => `${k}=${x}`)
    .join(', ');
  return [`window ${i.window.from} .. ${i.window.to}`, ents && `entities: ${ents}`, prof && `profile: ${prof}`, ...i.notes].filter(Boolean).join('; ');
}

export function buildReport(inp: ReportInput): Report {
  const sc = scorecard(inp.defs, inp.values, inp.targets);
  const vkey = (v: { code: string; dataPoint?: string }) => `${v.code}\u0000${v.dataPoint ?? ''}`;
  const cur = new Map(inp.values.map((v) => [vkey(v), v]));
  const prev = new Map((inp.previous ?? []).map((v) => [vkey(v), v]));
  const defs = new Map(inp.defs.map((d) => [d.code, d]));
  const rows: ReportRow[] = sc.items.map((it) => {
    const d = defs.get(it.code)!;
    const v = cur.get(vkey(it));
    const p = prev.get(vkey(it));
    return {
      code: d.code,
      name: d.name,
      dimension: d.dimension,
      subDimension: d.subDimension,
      category: d.category,
      kind: d.kind,
      unit: v?.unit ?? d.unit,
      polarity: it.polarity,
      calculationMethod: d.calculationMethod,
      dataPoint: it.dataPoint,
      value: it.value,
      target: it.target,
      baseline: it.baseline,
      shareOfTarget: it.share === null ? null : Math.round(it.share * 1000) / 10,
      points: it.points,
      band: it.points ? BAND_LABELS[it.points] : null,
      excluded: it.excluded ?? null,
      previousValue: p?.value ?? null,
      trend: trend(it.value, p?.value ?? null, it.polarity, it.target),
      provenance: v
        ? {
            method: v.method,
            source: v.source ?? null,
            quality: v.quality ?? null,
            enteredBy: v.enteredBy ?? null,
            verifiedBy: v.verifiedBy ?? null,
            computedAt: v.computedAt ?? null,
            note: v.note ?? null,
            inputs: summariseInputs(v),
          }
        : null,
    };
  });
  return {
    tenant: inp.tenant,
    city: inp.city ?? null,
    period: inp.period,
    generatedAt: inp.generatedAt,
    framework: 'U4SSC',
    summary: {
      kpis: inp.defs.length,
      items: rows.length,
      reported: new Set(rows.filter((r) => r.value !== null).map((r) => r.code)).size,
      scored: rows.filter((r) => r.points !== null).length,
      overall: sc.overall,
    },
    dimensions: sc.dimensions,
    kpis: rows,
  };
}

const CSV_COLUMNS: (keyof ReportRow)[] = [
  'code', 'name', 'dimension', 'subDimension', 'category', 'kind', 'dataPoint', 'unit', 'polarity', 'calculationMethod',
  'value', 'target', 'baseline', 'shareOfTarget', 'points', 'band', 'excluded', 'previousValue', 'trend',
];
const PROV_COLUMNS = ['method', 'source', 'quality', 'enteredBy', 'verifiedBy', 'computedAt', 'note', 'inputs'] as const;

export function reportToCsv(r: Report): string {
  const head = ['tenant', 'period', ...CSV_COLUMNS, ...PROV_COLUMNS.map((c) => `provenance.${c}`)];
  return toCsv([head, ...r.kpis.map((k) => [r.tenant, r.period, ...CSV_COLUMNS.map((c) => k[c]), ...PROV_COLUMNS.map((c) => k.provenance?.[c] ?? null)])]);
}

export const escapeHtml = (s: unknown) =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const fmt = (n: number | null | undefined) => (n === null || n === undefined ? '–' : Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) < 10 ? 3 : 2).replace(/0+$/, '').replace(/\.$/, ''));
const ARROW: Record<Trend, string> = { improving: '▲ improving', worsening: '▼ worsening', stable: '► stable', 'n/a': '' };

function scoreCell(g: GroupScore) {
  return g.percent === null ? '<td class="na">not scored</td>' : `<td class="b${g.band}">${fmt(g.percent)} % (${g.earned}/${g.possible}) · ${escapeHtml(g.bandLabel)}</td>`;
}

export function reportToHtml(r: Report): string {
  const title = `U4SSC KPI report – ${r.city ?? r.tenant ?? 'city'} – ${r.period}`;
  const dimRows = r.dimensions
    .map(
      (d) =>
        `<tr class="dim"><th>${escapeHtml(d.name)}</th>${scoreCell(d)}<td>${d.reported}/${d.total}</td></tr>` +
        d.subDimensions
          .map(
            (s) =>
              `<tr class="sub"><th>${escapeHtml(s.name)}</th>${scoreCell(s)}<td>${s.reported}/${s.total}</td></tr>` +
              s.categories.map((c) => `<tr class="cat"><th>${escapeHtml(c.name)}</th>${scoreCell(c)}<td>${c.reported}/${c.total}</td></tr>`).join(''),
          )
          .join(''),
    )
    .join('');
  const kpiRows = r.kpis
    .map(
      (k) => `<tr>
<td class="code">${escapeHtml(k.code)}</td><td>${escapeHtml(k.name)}${k.dataPoint ? ` <span class="dp">${escapeHtml(k.dataPoint)}</span>` : ''}<div class="unit">${escapeHtml(k.unit ?? '')} · ${escapeHtml(k.kind)} · ${escapeHtml(k.calculationMethod)}</div></td>
<td class="num">${fmt(k.value)}</td><td class="num">${fmt(k.target)}</td><td class="num">${fmt(k.shareOfTarget)}${k.shareOfTarget === null ? '' : ' %'}</td>
<td class="${k.points ? `b${k.points}` : 'na'}">${k.points ? `${k.points} · ${escapeHtml(k.band)}` : escapeHtml(k.excluded ?? '')}</td>
<td>${escapeHtml(ARROW[k.trend])}${k.previousValue !== null ? ` <span class="unit">(was ${fmt(k.previousValue)})</span>` : ''}</td>
<td class="prov">${k.provenance ? escapeHtml([k.provenance.method, k.provenance.quality, k.provenance.source, k.provenance.enteredBy && `by ${k.provenance.enteredBy}`, k.provenance.verifiedBy && `verified by ${k.provenance.verifiedBy}`, k.provenance.inputs].filter(Boolean).join(' · ')) : ''}</td>
</tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}.meta{color:#666;margin-bottom:16px}
table{border-collapse:collapse;width:100%;margin-bottom:24px}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}.num{text-align:right;white-space:nowrap}.code{white-space:nowrap;font-family:monospace}
.unit,.dp{color:#666;font-size:11px}.prov{font-size:11px;color:#444;max-width:360px}
tr.dim th{font-size:14px}tr.sub th{padding-left:18px}tr.cat th{padding-left:36px;font-weight:normal}
.b1{background:#f8d7da}.b2{background:#fde2c4}.b3{background:#fff3bf}.b4{background:#d3f0d8}.na{color:#999}
@media print{body{margin:0}tr{page-break-inside:avoid}}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<div class="meta">Generated ${escapeHtml(r.generatedAt)} · ${r.summary.reported} of ${r.summary.kpis} KPIs reported · ${r.summary.scored} data points scored · overall ${
    r.summary.overall.percent === null ? 'not scored' : `${fmt(r.summary.overall.percent)} % of target (${escapeHtml(r.summary.overall.bandLabel)})`
  }</div>
<h2>Dimension scores</h2>
<table><thead><tr><th>Dimension / sub-dimension / category</th><th>Score (points earned / possible)</th><th>Reported</th></tr></thead><tbody>${dimRows}</tbody></table>
<h2>Indicators</h2>
<table><thead><tr><th>Code</th><th>KPI</th><th>Value</th><th>Target</th><th>Share of target</th><th>Band</th><th>Trend</th><th>Provenance</th></tr></thead><tbody>
${kpiRows}
</tbody></table>
<p class="meta">Bands: 0-33 % of target = 1 point, 33-66 % = 2, 66-95 % = 3, 95 %+ = 4; group scores are points earned / points possible, unreported or unbenchmarked KPIs excluded (U4SSC).</p>
</body></html>`;
}

export interface Comparison {
  a: { tenant: string; city: string | null; period: string };
  b: { tenant: string; city: string | null; period: string };
  overall: { a: number | null; b: number | null; delta: number | null };
  dimensions: { name: string; a: number | null; b: number | null; delta: number | null }[];
  kpis: {
    code: string;
    name: string;
    dataPoint: string;
    unit: string | null;
    a: number | null;
    b: number | null;
    delta: number | null;
    aPoints: number | null;
    bPoints: number | null;
    /** judged by polarity: is b better than a */
    change: Trend;
  }[];
}

const d = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.round((b - a) * 10_000) / 10_000);

/** Compare report b against report a (e.g. a = previous period or another city). */
export function compareReports(a: Report, b: Report): Comparison {
  const bk = new Map(b.kpis.map((k) => [`${k.code}\u0000${k.dataPoint}`, k]));
  return {
    a: { tenant: a.tenant, city: a.city, period: a.period },
    b: { tenant: b.tenant, city: b.city, period: b.period },
    overall: { a: a.summary.overall.percent, b: b.summary.overall.percent, delta: d(a.summary.overall.percent, b.summary.overall.percent) },
    dimensions: a.dimensions.map((x) => {
      const y = b.dimensions.find((z) => z.name === x.name);
      return { name: x.name, a: x.percent, b: y?.percent ?? null, delta: d(x.percent, y?.percent ?? null) };
    }),
    kpis: a.kpis.map((x) => {
      const y = bk.get(`${x.code}\u0000${x.dataPoint}`);
      return {
        code: x.code,
        name: x.name,
        dataPoint: x.dataPoint,
        unit: x.unit,
        a: x.value,
        b: y?.value ?? null,
        delta: d(x.value, y?.value ?? null),
        aPoints: x.points,
        bPoints: y?.points ?? null,
        change: trend(y?.value ?? null, x.value, x.polarity, x.target),
      };
    }),
  };
}

export function comparisonToCsv(c: Comparison): string {
  const la = `${c.a.tenant || 'default'} ${c.a.period}`;
  const lb = `${c.b.tenant || 'default'} ${c.b.period}`;
  return toCsv([
    ['code', 'name', 'dataPoint', 'unit', `value ${la}`, `value ${lb}`, 'delta', `points ${la}`, `points ${lb}`, 'change'],
    ...c.kpis.map((k) => [k.code, k.name, k.dataPoint, k.unit, k.a, k.b, k.delta, k.aPoints, k.bPoints, k.change]),
  ]);
}

export function comparisonToHtml(c: Comparison): string {
  const la = escapeHtml(`${c.a.city ?? c.a.tenant} ${c.a.period}`);
  const lb = escapeHtml(`${c.b.city ?? c.b.tenant} ${c.b.period}`);
  const rows = c.kpis
    .filter((k) => k.a !== null || k.b !== null)
    .map(
      (k) =>
        `<tr><td class="code">${escapeHtml(k.code)}</td><td>${escapeHtml(k.name)} ${escapeHtml(k.dataPoint)}</td><td class="num">${fmt(k.a)}</td><td class="num">${fmt(k.b)}</td><td class="num">${fmt(k.delta)}</td><td>${escapeHtml(ARROW[k.change])}</td></tr>`,
    )
    .join('\n');
  const dims = c.dimensions.map((x) => `<tr><th>${escapeHtml(x.name)}</th><td class="num">${fmt(x.a)}</td><td class="num">${fmt(x.b)}</td><td class="num">${fmt(x.delta)}</td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>KPI comparison ${la} / ${lb}</title>
<style>body{font:13px/1.4 system-ui,sans-serif;margin:24px}table{border-collapse:collapse;width:100%;margin-bottom:20px}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left}.num{text-align:right}.code{font-family:monospace;white-space:nowrap}</style>
</head><body><h1>KPI comparison: ${la} → ${lb}</h1>
<table><thead><tr><th>Score (% of target)</th><th>${la}</th><th>${lb}</th><th>Δ</th></tr></thead><tbody>
<tr><th>Overall</th><td class="num">${fmt(c.overall.a)}</td><td class="num">${fmt(c.overall.b)}</td><td class="num">${fmt(c.overall.delta)}</td></tr>${dims}</tbody></table>
<table><thead><tr><th>Code</th><th>KPI</th><th>${la}</th><th>${lb}</th><th>Δ</th><th>Change</th></tr></thead><tbody>${rows}</tbody></table></body></html>`;
}

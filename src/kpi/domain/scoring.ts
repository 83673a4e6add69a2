/**
 * U4SSC benchmarking: share of target per KPI / data point (respecting polarity), performance bands
 * (< 33 % -> 1, 33-66 % -> 2, 66-95 % -> 3, >= 95 % -> 4 points), and category / sub-dimension /
 * dimension scores as points earned / points possible, unreported or unbenchmarked items excluded.
 */
import type { KpiDefinition, KpiTarget, KpiValue, Polarity } from './types.ts';

export type Points = 1 | 2 | 3 | 4;
export const BAND_LABELS: Record<Points, string> = { 1: '0-33 %', 2: '33-66 %', 3: '66-95 %', 4: '95 %+' };
const EPS = 1e-9;
/** shares above this are displayed capped (a lower-better KPI at 0 against a positive target) */
export const MAX_SHARE = 10;

/**
 * Share of target reached (1 = target met). Higher-better: value / target. Lower-better: target /
 * value (capped at MAX_SHARE). Target polarity (closeness): 1 - |value - target| / |target|.
 * Targets of zero: higher-better -> any value >= 0 meets it; lower-better -> met at 0, otherwise the
 * progress from the baseline ((baseline - value) / baseline) when a positive baseline is known, else 0;
 * target polarity -> met at 0, otherwise 1 - |value| / |baseline| when known, else 0.
 * Returns null when the item cannot be scored (no polarity).
 */
export function shareOfTarget(value: number, target: number, polarity: Polarity | null, baseline?: number | null): number | null {
  if (!Number.isFinite(value) || !Number.isFinite(target) || !polarity) return null;
  let r: number;
  switch (polarity) {
    case 'higher-better':
      if (target > 0) r = value / target;
      else if (target === 0) r = value >= 0 ? 1 : 0;
      else r = value >= target ? 1 : target / value; // negative targets: closer to zero is better
      break;
    case 'lower-better':
      if (target > 0) r = value > 0 ? target / value : MAX_SHARE;
      else if (value <= target) r = 1;
      else if (baseline !== null && baseline !== undefined && baseline > target) r = (baseline - value) / (baseline - target);
      else r = 0;
      break;
    case 'target':
      if (target !== 0) r = 1 - Math.abs(value - target) / Math.abs(target);
      else if (value === 0) r = 1;
      else if (baseline) r = 1 - Math.abs(value) / Math.abs(baseline);
      else r = 0;
      break;
  }
  if (!Number.isFinite(r)) r = MAX_SHARE;
  return Math.min(MAX_SHARE, Math.max(0, r));
}

/** U4SSC band of a share of target (0..1+). */
export function band(share: number): Points {
  if (share >= 0.95 - EPS) return 4;
  if (share >= 0.66 - EPS) return 3;
  if (share >= 0.33 - EPS) return 2;
  return 1;
}

export interface ScoreItem {
  code: string;
  dataPoint: string;
  value: number | null;
  target: number | null;
  baseline: number | null;
  polarity: Polarity | null;
  /** share of target (0..MAX_SHARE) */
  share: number | null;
  points: Points | null;
  /** why the item is not scored */
  excluded?: 'not reported' | 'no target' | 'no polarity';
}

const key = (code: string, dp: string) => `${code}\u0000${dp}`;

/**
 * Score items of one KPI: one per data point for multi-point KPIs (the headline value is then not
 * scored), else the headline value.
 */
export function scoreKpi(def: KpiDefinition, values: KpiValue[], targets: KpiTarget[]): ScoreItem[] {
  const vals = new Map(values.filter((v) => v.code === def.code).map((v) => [v.dataPoint ?? '', v]));
  const tgts = new Map(targets.filter((t) => t.code === def.code).map((t) => [t.dataPoint ?? '', t]));
  const points = def.dataPoints.length ? def.dataPoints : [''];
  return points.map((dp) => {
    const v = vals.get(dp)?.value ?? null;
    // a target without data point applies to every data point of the KPI
    const t = tgts.get(dp) ?? tgts.get('') ?? null;
    const polarity = t?.polarity ?? def.polarity;
    const item: ScoreItem = {
      code: def.code,
      dataPoint: dp,
      value: v,
      target: t ? t.target : null,
      baseline: t?.baseline ?? null,
      polarity,
      share: null,
      points: null,
    };
    if (v === null || v === undefined) item.excluded = 'not reported';
    else if (!t) item.excluded = 'no target';
    else if (!polarity) item.excluded = 'no polarity';
    else {
      item.share = shareOfTarget(v, t.target, polarity, t.baseline);
      item.points = item.share === null ? null : band(item.share);
      if (item.points === null) item.excluded = 'no polarity';
    }
    return item;
  });
}

export interface GroupScore {
  name: string;
  earned: number;
  possible: number;
  /** earned / possible x 100, null when nothing is scored */
  percent: number | null;
  band: Points | null;
  bandLabel: string | null;
  scored: number;
  reported: number;
  total: number;
}

export interface CategoryScore extends GroupScore {
  codes: string[];
}
export interface SubDimensionScore extends GroupScore {
  categories: CategoryScore[];
}
export interface DimensionScore extends GroupScore {
  subDimensions: SubDimensionScore[];
}

export interface Scorecard {
  overall: GroupScore;
  dimensions: DimensionScore[];
  items: ScoreItem[];
}

function group(name: string, items: ScoreItem[]): GroupScore {
  const scored = items.filter((i) => i.points !== null);
  const earned = scored.reduce((a, i) => a + (i.points ?? 0), 0);
  const possible = scored.length * 4;
  const percent = possible ? Math.round((earned / possible) * 10_000) / 100 : null;
  const b = percent === null ? null : band(percent / 100);
  return {
    name,
    earned,
    possible,
    percent,
    band: b,
    bandLabel: b ? BAND_LABELS[b] : null,
    scored: scored.length,
    reported: items.filter((i) => i.value !== null).length,
    total: items.length,
  };
}

/** Score every KPI and aggregate per category (within its sub-dimension), sub-dimension, dimension. */
export function scorecard(defs: readonly KpiDefinition[], values: KpiValue[], targets: KpiTarget[]): Scorecard {
  const byCode = new Map<string, KpiValue[]>();
  for (const v of values) {
    let a = byCode.get(v.code);
    if (!a) byCode.set(v.code, (a = []));
    a.push(v);
  }
  const tByCode = new Map<string, KpiTarget[]>();
  for (const t of targets) {
    let a = tByCode.get(t.code);
    if (!a) tByCode.set(t.code, (a = []));
    a.push(t);
  }
  const itemsOf = new Map<string, ScoreItem[]>();
  const all: ScoreItem[] = [];
  for (const d of defs) {
    const items = scoreKpi(d, byCode.get(d.code) ?? [], tByCode.get(d.code) ?? []);
    itemsOf.set(d.code, items);
    all.push(...items);
  }
  const dims: DimensionScore[] = [];
  const dimNames = [...new Set(defs.map((d) => d.dimension))];
  for (const dn of dimNames) {
    const dDefs = defs.filter((d) => d.dimension === dn);
    const subs: SubDimensionScore[] = [];
    for (const sn of [...new Set(dDefs.map((d) => d.subDimension))]) {
      const sDefs = dDefs.filter((d) => d.subDimension === sn);
      const cats: CategoryScore[] = [];
      for (const cn of [...new Set(sDefs.map((d) => d.category))]) {
        const cDefs = sDefs.filter((d) => d.category === cn);
        cats.push({ ...group(cn, cDefs.flatMap((d) => itemsOf.get(d.code)!)), codes: cDefs.map((d) => d.code) });
      }
      subs.push({ ...group(sn, sDefs.flatMap((d) => itemsOf.get(d.code)!)), categories: cats });
    }
    dims.push({ ...group(dn, dDefs.flatMap((d) => itemsOf.get(d.code)!)), subDimensions: subs });
  }
  return { overall: group('Overall', all), dimensions: dims, items: all };
}

export type Trend = 'improving' | 'worsening' | 'stable' | 'n/a';

/** Direction of change between two values of a KPI, judged by polarity (relative tolerance 0.5 %). */
export function trend(current: number | null, previous: number | null, polarity: Polarity | null, target?: number | null): Trend {
  if (current === null || previous === null || current === undefined || previous === undefined) return 'n/a';
  const tol = Math.max(Math.abs(previous), Math.abs(current)) * 0.005;
  if (Math.abs(current - previous) <= tol) return 'stable';
  if (!polarity) return 'n/a';
  if (polarity === 'target') {
    if (target === null || target === undefined) return 'n/a';
    return Math.abs(current - target) < Math.abs(previous - target) ? 'improving' : 'worsening';
  }
  const up = current > previous;
  return up === (polarity === 'higher-better') ? 'improving' : 'worsening';
}

export { key as itemKey };

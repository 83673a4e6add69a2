/**
 * Assessment frameworks as data: a smartness index is a JSON document of weighted groups of
 * indicators. Objective indicators read KPI values (U4SSC code + data point) or profile figures;
 * subjective indicators read survey results. Each raw value is normalised to 0..1 (min-max or
 * to target, respecting polarity), then combined by weighted means (missing indicators are
 * excluded and the remaining weights renormalised; coverage says how much weight had data).
 */
import { badRequest } from '../../common/problem.ts';
import { shareOfTarget } from './scoring.ts';
import type { Polarity } from './types.ts';

export type Normalisation = 'minmax' | 'target';

export interface FrameworkIndicator {
  id: string;
  name: string;
  weight: number;
  kind: 'objective' | 'subjective';
  /** where the raw value comes from */
  source: { kpi: string; dataPoint?: string } | { survey: string } | { profile: string };
  polarity: Polarity;
  normalisation?: Normalisation;
  min?: number;
  max?: number;
  target?: number;
}

export interface FrameworkGroup {
  id: string;
  name: string;
  weight: number;
  indicators: FrameworkIndicator[];
}

export interface FrameworkConfig {
  id: string;
  name: string;
  description?: string;
  reference?: string;
  /** default normalisation of the indicators */
  normalisation: Normalisation;
  /** final score scale (default 100) */
  scale?: number;
  groups: FrameworkGroup[];
}

export interface FrameworkData {
  /** KPI values keyed by "code" (headline) or "code#dataPoint" */
  kpi: Record<string, number | null>;
  survey: Record<string, number | null>;
  profile: Record<string, number | null>;
}

export interface IndicatorResult {
  id: string;
  name: string;
  kind: 'objective' | 'subjective';
  weight: number;
  raw: number | null;
  normalised: number | null;
}
export interface GroupResult {
  id: string;
  name: string;
  weight: number;
  score: number | null;
  coverage: number;
  indicators: IndicatorResult[];
}
export interface FrameworkResult {
  framework: string;
  name: string;
  scale: number;
  score: number | null;
  /** share of the total weight that had data (0..1) */
  coverage: number;
  objectiveScore: number | null;
  subjectiveScore: number | null;
  groups: GroupResult[];
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

export function validateFramework(input: unknown): FrameworkConfig {
  const fail = (m: string) => {
    throw badRequest(`framework: ${m}`);
  };
  if (!input || typeof input !== 'object') fail('must be an object');
  const f = input as FrameworkConfig;
  if (typeof f.id !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/i.test(f.id)) fail('id must match [A-Za-z0-9._-]{1,64}');
  if (f.id.toLowerCase() === 'u4ssc') fail('"u4ssc" is reserved for the U4SSC scoring');
  if (typeof f.name !== 'string' || !f.name) fail('name is required');
  if (f.normalisation !== 'minmax' && f.normalisation !== 'target') fail('normalisation must be "minmax" or "target"');
  if (f.scale !== undefined && (!isNum(f.scale) || f.scale <= 0)) fail('scale must be a positive number');
  if (!Array.isArray(f.groups) || !f.groups.length) fail('groups must be a non-empty array');
  const ids = new Set<string>();
  for (const g of f.groups) {
    if (!g || typeof g.id !== 'string' || typeof g.name !== 'string') fail('every group needs id and name');
    if (!isNum(g.weight) || g.weight < 0) fail(`group ${g.id}: weight must be >= 0`);
    if (!Array.isArray(g.indicators) || !g.indicators.length) fail(`group ${g.id}: indicators must be a non-empty array`);
    for (const i of g.indicators) {
      const where = `indicator ${g.id}/${i?.id}`;
      if (!i || typeof i.id !== 'string' || typeof i.name !== 'string') fail(`${where}: id and name are required`);
      if (ids.has(i.id)) fail(`${where}: duplicate id`);
      ids.add(i.id);
      if (!isNum(i.weight) || i.weight < 0) fail(`${where}: weight must be >= 0`);
      if (i.kind !== 'objective' && i.kind !== 'subjective') fail(`${where}: kind must be objective or subjective`);
      if (!['higher-better', 'lower-better', 'target'].includes(i.polarity)) fail(`${where}: polarity must be higher-better, lower-better or target`);
      const s = i.source as Record<string, unknown>;
      if (!s || typeof s !== 'object' || ![s.kpi, s.survey, s.profile].some((x) => typeof x === 'string')) fail(`${where}: source needs kpi, survey or profile`);
      const norm = i.normalisation ?? f.normalisation;
      if (norm !== 'minmax' && norm !== 'target') fail(`${where}: normalisation must be minmax or target`);
      if (norm === 'minmax' && (!isNum(i.min) || !isNum(i.max) || i.max === i.min)) fail(`${where}: minmax needs min and max (different)`);
      if ((norm === 'target' || i.polarity === 'target') && !isNum(i.target)) fail(`${where}: a target is required`);
    }
  }
  return f;
}

/** normalise one raw value to 0..1 */
export function normalise(raw: number, ind: FrameworkIndicator, dflt: Normalisation): number {
  const norm = ind.normalisation ?? dflt;
  let x: number;
  if (norm === 'minmax') {
    const min = ind.min!;
    const max = ind.max!;
    if (ind.polarity === 'target') x = 1 - Math.abs(raw - ind.target!) / Math.abs(max - min);
    else x = ind.polarity === 'lower-better' ? (max - raw) / (max - min) : (raw - min) / (max - min);
  } else x = shareOfTarget(raw, ind.target!, ind.polarity) ?? 0;
  return Math.min(1, Math.max(0, x));
}

function rawOf(ind: FrameworkIndicator, data: FrameworkData): number | null {
  const s = ind.source as Record<string, string>;
  let v: number | null | undefined;
  if (s.kpi) v = data.kpi[s.dataPoint ? `${s.kpi}#${s.dataPoint}` : s.kpi];
  else if (s.survey) v = data.survey[s.survey];
  else v = data.profile[s.profile];
  return isNum(v) ? v : null;
}

const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

function weighted(parts: { w: number; s: number | null }[]): { score: number | null; coverage: number } {
  const total = parts.reduce((a, p) => a + p.w, 0);
  const avail = parts.filter((p) => p.s !== null);
  const wa = avail.reduce((a, p) => a + p.w, 0);
  if (!avail.length || wa === 0) return { score: null, coverage: 0 };
  return { score: avail.reduce((a, p) => a + p.w * p.s!, 0) / wa, coverage: total ? wa / total : 0 };
}

export function evaluateFramework(f: FrameworkConfig, data: FrameworkData): FrameworkResult {
  const scale = f.scale ?? 100;
  const groups: GroupResult[] = f.groups.map((g) => {
    const indicators: IndicatorResult[] = g.indicators.map((i) => {
      const raw = rawOf(i, data);
      return { id: i.id, name: i.name, kind: i.kind, weight: i.weight, raw, normalised: raw === null ? null : r4(normalise(raw, i, f.normalisation)) };
    });
    const w = weighted(indicators.map((i) => ({ w: i.weight, s: i.normalised })));
    return { id: g.id, name: g.name, weight: g.weight, score: w.score === null ? null : r4(w.score * scale), coverage: r4(w.coverage), indicators };
  });
  // overall: weighted mean of group scores; coverage counts indicator weight actually available
  const overall = weighted(groups.map((g) => ({ w: g.weight, s: g.score })));
  const totalW = groups.reduce((a, g) => a + g.weight, 0);
  const coverage = totalW ? groups.reduce((a, g) => a + g.weight * g.coverage, 0) / totalW : 0;
  const byKind = (k: 'objective' | 'subjective') => {
    const parts = f.groups.flatMap((g, gi) => {
      const gw = g.indicators.reduce((a, i) => a + i.weight, 0) || 1;
      return groups[gi].indicators.filter((i) => i.kind === k).map((i) => ({ w: (g.weight * i.weight) / gw, s: i.normalised }));
    });
    const w = weighted(parts);
    return w.score === null ? null : r4(w.score * scale);
  };
  return {
    framework: f.id,
    name: f.name,
    scale,
    score: overall.score === null ? null : r4(overall.score),
    coverage: r4(coverage),
    objectiveScore: byKind('objective'),
    subjectiveScore: byKind('subjective'),
    groups,
  };
}

import gbt from '../frameworks/gbt33356-style.json' with { type: 'json' };
import iq from '../frameworks/iq-cities-style.json' with { type: 'json' };

/** Frameworks shipped with Urbis (configuration files in src/kpi/frameworks/). */
export const BUILTIN_FRAMEWORKS: readonly FrameworkConfig[] = [
  validateFramework(gbt as unknown as FrameworkConfig),
  validateFramework(iq as unknown as FrameworkConfig),
];

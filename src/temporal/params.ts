import { ProblemError } from '../common/problem.ts';

/** Temporal query parameters (NGSI-LD v1.9.1 clause 5.7.3/5.7.4, 4.5.19, 6.3.x). Pure parsing. */
export type TimeRel = 'before' | 'after' | 'between';
export type TimeProperty = 'observedAt' | 'createdAt' | 'modifiedAt' | 'deletedAt';
export const AGGR_METHODS = ['totalCount', 'distinctCount', 'sum', 'avg', 'min', 'max', 'stddev', 'sumsq'] as const;
export type AggrMethod = (typeof AGGR_METHODS)[number];

export interface TemporalQuery {
  timerel?: TimeRel;
  /** epoch ms */
  timeAt?: number;
  endTimeAt?: number;
  timeproperty: TimeProperty;
  lastN?: number;
}

export interface AggregationSpec {
  methods: AggrMethod[];
  /** ms; undefined = the whole requested interval as one period */
  periodMs?: number;
  periodIso?: string;
}

const bad = (d: string) => new ProblemError('BadRequestData', d);

function parseTime(v: string, name: string): number {
  const t = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v) || Number.isNaN(t)) throw bad(`${name} must be a DateTime (e.g. 2026-01-31T12:00:00Z)`);
  return t;
}

/** Parses timerel/timeAt/endTimeAt/timeproperty/lastN from query-string-like values. */
export function parseTemporalQuery(p: {
  timerel?: string;
  timeAt?: string;
  endTimeAt?: string;
  timeproperty?: string;
  lastN?: string | number;
}): TemporalQuery {
  const q: TemporalQuery = { timeproperty: 'observedAt' };
  if (p.timeproperty !== undefined && p.timeproperty !== '') {
    if (!['observedAt', 'createdAt', 'modifiedAt', 'deletedAt'].includes(p.timeproperty)) {
      throw bad('timeproperty must be observedAt, createdAt, modifiedAt or deletedAt');
    }
    q.timeproperty = p.timeproperty as TimeProperty;
  }
  if (p.timerel !== undefined && p.timerel !== '') {
    if (p.timerel !== 'before' && p.timerel !== 'after' && p.timerel !== 'between') {
      throw bad('timerel must be before, after or between');
    }
    q.timerel = p.timerel;
    if (!p.timeAt) throw bad('timeAt is mandatory with timerel');
    q.timeAt = parseTime(p.timeAt, 'timeAt');
    if (p.timerel === 'between') {
      if (!p.endTimeAt) throw bad('endTimeAt is mandatory with timerel=between');
      q.endTimeAt = parseTime(p.endTimeAt, 'endTimeAt');
      if (q.endTimeAt <= q.timeAt) throw bad('endTimeAt must be after timeAt');
    }
  } else if (p.timeAt) {
    throw bad('timeAt requires timerel');
  }
  if (p.lastN !== undefined && p.lastN !== '') {
    const n = Number(p.lastN);
    if (!Number.isInteger(n) || n < 1) throw bad('lastN must be a positive integer');
    q.lastN = n;
  }
  return q;
}

/** ISO 8601 duration to ms (months as 30 days, years as 365 days). */
export function parseDuration(d: string): number {
  const m = /^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
    d,
  );
  if (!m || d === 'P' || d.endsWith('T')) throw bad(`aggrPeriodDuration "${d}" is not an ISO 8601 duration`);
  const [, y, mo, w, dd, h, mi, s] = m.map((x) => (x === undefined ? 0 : Number(x)));
  const ms = ((((y * 365 + mo * 30 + w * 7 + dd) * 24 + h) * 60 + mi) * 60 + s) * 1000;
  return ms;
}

export function parseAggregation(methods: string | string[] | undefined, period: string | undefined): AggregationSpec {
  const list = (Array.isArray(methods) ? methods : (methods ?? '').split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw bad('aggrMethods is mandatory with options=aggregatedValues');
  for (const m of list) if (!AGGR_METHODS.includes(m as AggrMethod)) throw bad(`aggrMethods "${m}" is not one of ${AGGR_METHODS.join(', ')}`);
  const spec: AggregationSpec = { methods: [...new Set(list)] as AggrMethod[] };
  if (period !== undefined && period !== '') {
    const ms = parseDuration(period);
    if (ms > 0) {
      spec.periodMs = ms;
      spec.periodIso = period;
    }
  }
  return spec;
}

/** ISO time, without ".000" when the milliseconds are zero (as the ETSI fixtures write them). */
export function iso(ms: number): string {
  const s = new Date(ms).toISOString();
  return s.endsWith('.000Z') ? s.slice(0, -5) + 'Z' : s;
}

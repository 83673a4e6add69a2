/** Calendar periods (UTC): "2025", "2025-Q2", "2025-03", "2025-03-14". */
import { badRequest } from '../../common/problem.ts';
import type { Period } from './types.ts';

const iso = (y: number, m: number, d: number) => new Date(Date.UTC(y, m, d)).toISOString();

export function parsePeriod(id: string): Period {
  const s = String(id ?? '').trim();
  let m: RegExpMatchArray | null;
  if ((m = s.match(/^(\d{4})$/))) {
    const y = +m[1];
    return { id: s, granularity: 'year', start: iso(y, 0, 1), end: iso(y + 1, 0, 1) };
  }
  if ((m = s.match(/^(\d{4})-Q([1-4])$/i))) {
    const y = +m[1];
    const q = +m[2];
    return { id: `${y}-Q${q}`, granularity: 'quarter', start: iso(y, (q - 1) * 3, 1), end: iso(y, q * 3, 1) };
  }
  if ((m = s.match(/^(\d{4})-(\d{2})$/))) {
    const y = +m[1];
    const mo = +m[2];
    if (mo >= 1 && mo <= 12) return { id: s, granularity: 'month', start: iso(y, mo - 1, 1), end: iso(y, mo, 1) };
  }
  if ((m = s.match(/^(\d{4})-(\d{2})-(\d{2})$/))) {
    const y = +m[1];
    const mo = +m[2];
    const d = +m[3];
    const start = iso(y, mo - 1, d);
    if (start.slice(0, 10) === s) return { id: s, granularity: 'day', start, end: iso(y, mo - 1, d + 1) };
  }
  throw badRequest(`invalid period "${s}": expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD`);
}

export function isPeriod(id: string): boolean {
  try {
    parsePeriod(id);
    return true;
  } catch {
    return false;
  }
}

/** the period of the same granularity that contains the instant */
export function periodOf(at: number | string, granularity: Period['granularity']): Period {
  const d = new Date(at);
  const y = d.getUTCFullYear();
  const mo = d.getUTCMonth();
  switch (granularity) {
    case 'year':
      return parsePeriod(String(y));
    case 'quarter':
      return parsePeriod(`${y}-Q${Math.floor(mo / 3) + 1}`);
    case 'month':
      return parsePeriod(`${y}-${String(mo + 1).padStart(2, '0')}`);
    case 'day':
      return parsePeriod(d.toISOString().slice(0, 10));
  }
}

/** the period just before (same granularity) */
export function previousPeriod(p: Period | string): Period {
  const per = typeof p === 'string' ? parsePeriod(p) : p;
  return periodOf(Date.parse(per.start) - 1, per.granularity);
}

/** the year a period belongs to (profiles are per year) */
export function yearOf(p: Period | string): string {
  return (typeof p === 'string' ? p : p.id).slice(0, 4);
}

export const periodDays = (p: Period) => (Date.parse(p.end) - Date.parse(p.start)) / 86_400_000;

/** clip a period to "now" (for the current, still running period) */
export function effectiveEnd(p: Period, now: number): string {
  return Date.parse(p.end) > now ? new Date(now).toISOString() : p.end;
}

/** Pure: U4SSC performance bands and KPI period parsing (no DOM; unit-tested). */
import type { StringKey } from './strings.ts';

/** U4SSC performance bands (points 1..4: < 33 %, 33-66 %, 66-95 %, ≥ 95 % of target) */
export const BANDS: Record<number, { label: StringKey; cls: string; range: string }> = {
  4: { label: 'bandAchieved', cls: 'band-4', range: '≥ 95 %' },
  3: { label: 'bandClose', cls: 'band-3', range: '66–95 %' },
  2: { label: 'bandProgress', cls: 'band-2', range: '33–66 %' },
  1: { label: 'bandFar', cls: 'band-1', range: '< 33 %' },
};

export function bandOf(percent: number | null | undefined): number | null {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) return null;
  return percent >= 95 ? 4 : percent >= 66 ? 3 : percent >= 33 ? 2 : 1;
}

/** start of a U4SSC period string: "2025", "2025-Q2", "2025-03", "2025-03-14" */
export function periodStart(p: string): number {
  const q = /^(\d{4})-Q([1-4])$/.exec(p);
  if (q) return Date.UTC(Number(q[1]), (Number(q[2]) - 1) * 3, 1);
  if (/^\d{4}$/.test(p)) return Date.UTC(Number(p), 0, 1);
  if (/^\d{4}-\d{2}$/.test(p)) return Date.parse(`${p}-01T00:00:00Z`);
  const t = Date.parse(p);
  return Number.isFinite(t) ? t : 0;
}

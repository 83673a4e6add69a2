/** Helpers shared by the calculators (pure). */
import type { CalcInput, InputsUsed, KvEntity, Sample } from '../types.ts';

export function newInputs(input: CalcInput): InputsUsed {
  return {
    window: { from: input.period.start, to: input.period.end },
    entities: [],
    attributes: [],
    profile: {},
    figures: {},
    notes: [],
  };
}

/** record which entities were read (ids truncated to keep explanations small) */
export function used(inp: InputsUsed, type: string, list: KvEntity[], attrs: string[]): void {
  const ids = list.map((e) => e.id);
  const existing = inp.entities.find((x) => x.type === type);
  if (existing) {
    existing.count += list.length;
    existing.ids = [...existing.ids, ...ids].slice(0, 50);
  } else inp.entities.push({ type, count: list.length, ids: ids.slice(0, 50) });
  for (const a of attrs) {
    const name = `${type}.${a}`;
    if (!inp.attributes.includes(name)) inp.attributes.push(name);
  }
}

export const ofType = (input: CalcInput, type: string): KvEntity[] => input.entities[type] ?? [];

/** a keyValues attribute value; unwraps {value} objects defensively */
export function val(e: Record<string, unknown>, attr: string): unknown {
  const v = e[attr];
  if (v && typeof v === 'object' && !Array.isArray(v) && 'value' in (v as object)) return (v as { value: unknown }).value;
  if (v && typeof v === 'object' && !Array.isArray(v) && 'object' in (v as object)) return (v as { object: unknown }).object;
  return v;
}

export function num(e: Record<string, unknown>, attr: string): number | null {
  const v = val(e, attr);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

export function list(e: Record<string, unknown>, attr: string): string[] {
  const v = val(e, attr);
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => String(x));
}

export function truthy(e: Record<string, unknown>, attr: string): boolean {
  const v = val(e, attr);
  return v === true || v === 'true' || v === 1 || v === 'yes';
}

/** profile value or null (recording it in the explanation) */
export function profileValue(input: CalcInput, inp: InputsUsed, key: string): number | null {
  const v = input.profile?.values[key];
  if (typeof v === 'number' && Number.isFinite(v)) {
    inp.profile[key] = v;
    return v;
  }
  return null;
}

export const round = (x: number, digits = 4) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export const pct = (num: number, den: number) => (den > 0 ? round((num / den) * 100) : null);

export function series(input: CalcInput, id: string, attr: string): Sample[] {
  const s = input.series[id]?.[attr] ?? [];
  return [...s].filter((x) => Number.isFinite(x.v) && !Number.isNaN(Date.parse(x.t))).sort((a, b) => Date.parse(a.t) - Date.parse(b.t));
}

export function inWindow(s: Sample[], from: string, to: string): Sample[] {
  const a = Date.parse(from);
  const b = Date.parse(to);
  return s.filter((x) => {
    const t = Date.parse(x.t);
    return t >= a && t < b;
  });
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** mean of daily means (UTC days), so that uneven sampling does not bias the period mean */
export function meanOfDailyMeans(s: Sample[]): { mean: number | null; days: number; samples: number } {
  const byDay = new Map<string, number[]>();
  for (const x of s) {
    const d = new Date(x.t).toISOString().slice(0, 10);
    let arr = byDay.get(d);
    if (!arr) byDay.set(d, (arr = []));
    arr.push(x.v);
  }
  const daily = [...byDay.values()].map((a) => mean(a)!);
  return { mean: mean(daily), days: daily.length, samples: s.length };
}

/**
 * Consumption of a cumulative counter (meter reading) over [from, to): the sum of increments between
 * consecutive readings, starting from the last reading at or before `from` when there is one. A
 * decreasing reading is taken as a meter reset/replacement: the new reading counts from zero.
 */
export function counterDelta(s: Sample[], from: string, to: string): { delta: number; readings: number; resets: number } {
  const a = Date.parse(from);
  const b = Date.parse(to);
  const before = s.filter((x) => Date.parse(x.t) <= a);
  const inside = s.filter((x) => Date.parse(x.t) > a && Date.parse(x.t) < b);
  const seq = before.length ? [before[before.length - 1], ...inside] : inside;
  let delta = 0;
  let resets = 0;
  for (let i = 1; i < seq.length; i++) {
    const d = seq[i].v - seq[i - 1].v;
    if (d >= 0) delta += d;
    else {
      resets++;
      delta += seq[i].v;
    }
  }
  return { delta, readings: seq.length, resets };
}

/** Energetic (logarithmic) mean of sound levels in dB. */
export function energeticMean(levels: number[]): number | null {
  if (!levels.length) return null;
  return 10 * Math.log10(levels.reduce((acc, l) => acc + 10 ** (l / 10), 0) / levels.length);
}

/**
 * Day-evening-night level (EU Environmental Noise Directive 2002/49/EC, Annex I) from LAeq samples:
 * day 07-19 h, evening 19-23 h (+5 dB), night 23-07 h (+10 dB), local time = UTC + offsetHours.
 * Each part is the energetic mean of its samples; a part without samples makes Lden undefined.
 */
export function lden(s: Sample[], offsetHours = 0): { lden: number | null; ld: number | null; le: number | null; ln: number | null } {
  const d: number[] = [];
  const e: number[] = [];
  const n: number[] = [];
  for (const x of s) {
    const h = (((new Date(x.t).getUTCHours() + offsetHours) % 24) + 24) % 24;
    if (h >= 7 && h < 19) d.push(x.v);
    else if (h >= 19 && h < 23) e.push(x.v);
    else n.push(x.v);
  }
  const ld = energeticMean(d);
  const le = energeticMean(e);
  const ln = energeticMean(n);
  if (ld === null || le === null || ln === null) return { lden: null, ld, le, ln };
  const v = 10 * Math.log10((12 * 10 ** (ld / 10) + 4 * 10 ** ((le + 5) / 10) + 8 * 10 ** ((ln + 10) / 10)) / 24);
  return { lden: v, ld, le, ln };
}

const R = 6371.0088; // mean Earth radius, km

export function haversineKm(a: number[], b: number[]): number {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLon = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** length in km of a GeoJSON LineString / MultiLineString; null for other geometries */
export function lineLengthKm(geom: unknown): number | null {
  const g = geom as { type?: string; coordinates?: unknown } | null;
  if (!g || typeof g !== 'object') return null;
  const line = (cs: number[][]) => cs.slice(1).reduce((acc, c, i) => acc + haversineKm(cs[i], c), 0);
  if (g.type === 'LineString') return line(g.coordinates as number[][]);
  if (g.type === 'MultiLineString') return (g.coordinates as number[][][]).reduce((a, l) => a + line(l), 0);
  return null;
}

/** area in m2 of a GeoJSON Polygon / MultiPolygon (spherical excess approximation, holes subtracted) */
export function polygonAreaM2(geom: unknown): number | null {
  const g = geom as { type?: string; coordinates?: unknown } | null;
  if (!g || typeof g !== 'object') return null;
  const rad = Math.PI / 180;
  const ring = (cs: number[][]) => {
    let s = 0;
    for (let i = 0; i < cs.length - 1; i++) {
      const [x1, y1] = cs[i];
      const [x2, y2] = cs[i + 1];
      s += (x2 - x1) * rad * (2 + Math.sin(y1 * rad) + Math.sin(y2 * rad));
    }
    return Math.abs((s * (R * 1000) ** 2) / 2);
  };
  const poly = (rings: number[][][]) => rings.reduce((acc, r, i) => acc + (i === 0 ? ring(r) : -ring(r)), 0);
  if (g.type === 'Polygon') return poly(g.coordinates as number[][][]);
  if (g.type === 'MultiPolygon') return (g.coordinates as number[][][][]).reduce((a, p) => a + poly(p), 0);
  return null;
}

/** Local hour and ISO weekday (1=Mon..7=Sun) of an instant at UTC + offsetHours. */
export function localTime(t: string, offsetHours = 0): { hour: number; weekday: number } {
  const d = new Date(Date.parse(t) + offsetHours * 3_600_000);
  const wd = d.getUTCDay();
  return { hour: d.getUTCHours(), weekday: wd === 0 ? 7 : wd };
}

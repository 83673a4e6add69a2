/**
 * Durations as operators write them: ISO 8601 (`PT30M`, `P1D`, `PT1H30M`), short form (`30m`, `1h30m`,
 * `45s`, `2d`, `500ms`), or a number of milliseconds. Returns ms, or an error text.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseDuration(v: unknown): { ms: number } | { error: string } {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) return { error: `duration must be a non-negative number of milliseconds, got ${v}` };
    return { ms: Math.round(v) };
  }
  if (typeof v !== 'string' || v.trim() === '') return { error: `duration must be a string like "PT30M" or "30m" or a number of ms` };
  const s = v.trim();
  const iso = /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(s);
  if (iso && s.length > 1 && !/T$/i.test(s)) {
    const [, w, d, h, m, sec] = iso;
    const ms =
      Number(w ?? 0) * UNIT_MS.w + Number(d ?? 0) * UNIT_MS.d + Number(h ?? 0) * UNIT_MS.h +
      Number(m ?? 0) * UNIT_MS.m + Number(sec ?? 0) * UNIT_MS.s;
    return { ms: Math.round(ms) };
  }
  if (/^(\d+(\.\d+)?(ms|s|m|h|d|w)\s*)+$/i.test(s)) {
    let ms = 0;
    for (const part of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gi)) ms += Number(part[1]) * UNIT_MS[part[2].toLowerCase()];
    return { ms: Math.round(ms) };
  }
  return { error: `"${s}" is not a duration (use ISO 8601 like "PT30M", or "30m", "1h30m", "45s", "2d")` };
}

/** Compact human form, e.g. 1h30m, for messages. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [u, n] of [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s]] as const) {
    if (rest >= n) {
      parts.push(`${Math.floor(rest / n)}${u}`);
      rest %= n;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}

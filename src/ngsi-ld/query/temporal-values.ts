/**
 * Recognition of Date / DateTime / Time strings shared by the JS evaluator and the SQL translator.
 *
 * The patterns are deliberately strict (calendar-valid days, leap years, explicit UTC offset on
 * DateTimes, at most 6 fraction digits) so that every string they accept is also accepted by a
 * PostgreSQL `::timestamptz` cast: the SQL side guards its casts with the very same patterns, and
 * a looser pattern would turn one odd stored value into a 500 for every query.
 * They use only `[0-9]`, `[.]` and `(?:` so they mean the same in JS RegExp and PostgreSQL ARE.
 */

const YEAR = '(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})';
const LEAP_YEAR = '(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)';
const DATE =
  `(?:${YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)` +
  `|${LEAP_YEAR}-02-29)`;
const CLOCK = '(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.][0-9]{1,6})?)?';
const OFFSET = '(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])';

/** Source text of the patterns (anchored), usable verbatim as a PostgreSQL regex literal. */
export const DATETIME_PATTERN = `^${DATE}T${CLOCK}${OFFSET}$`;
export const DATE_PATTERN = `^${DATE}$`;
export const TIME_PATTERN = `^${CLOCK}Z?$`;

const DATETIME_RE = new RegExp(DATETIME_PATTERN);
const DATE_RE = new RegExp(DATE_PATTERN);
const TIME_RE = new RegExp(TIME_PATTERN);

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); Date.UTC maps years 0-99 to 19xx. */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Milliseconds of "HH:MM[:SS[.f]]" starting at `at`, fraction truncated (as SQL floor does). */
function clockMs(s: string, at: number): number {
  let ms = (+s.slice(at, at + 2)) * 3_600_000 + (+s.slice(at + 3, at + 5)) * 60_000;
  if (s.charCodeAt(at + 5) === 58 /* : */) {
    ms += (+s.slice(at + 6, at + 8)) * 1000;
    if (s.charCodeAt(at + 8) === 46 /* . */) {
      let j = at + 9;
      while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
      ms += +s.slice(at + 9, Math.min(j, at + 12)).padEnd(3, '0');
    }
  }
  return ms;
}

// Values are re-parsed for every candidate of every evaluation; a small cache keeps the
// subscription hot path from re-running the regexes on the same few timestamps.
const cache = new Map<string, number | null>();
const CACHE_MAX = 2048;

/** Epoch milliseconds of a Date ("YYYY-MM-DD", as midnight UTC) or DateTime string, else null. */
export function instantMs(s: string): number | null {
  if (s.length < 10 || s.length > 40) return null;
  const hit = cache.get(s);
  if (hit !== undefined) return hit;
  let r: number | null = null;
  const days = () => daysFromCivil(+s.slice(0, 4), +s.slice(5, 7), +s.slice(8, 10)) * 86_400_000;
  if (s.length === 10) {
    if (DATE_RE.test(s)) r = days();
  } else if (DATETIME_RE.test(s)) {
    let ms = days() + clockMs(s, 11);
    const last = s.charCodeAt(s.length - 1);
    if (last !== 90 /* Z */) {
      const o = s.slice(s.length - 6);
      const off = (+o.slice(1, 3)) * 3_600_000 + (+o.slice(4, 6)) * 60_000;
      ms += o[0] === '+' ? -off : off;
    }
    r = ms;
  }
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(s, r);
  return r;
}

/** Milliseconds since midnight of a Time string ("HH:MM[:SS[.f]][Z]"), else null. */
export function timeMs(s: string): number | null {
  if (s.length < 5 || s.length > 16 || !TIME_RE.test(s)) return null;
  return clockMs(s, 0);
}

/** SQL numeric expression: epoch ms of the text expression `s`, NULL when it is not a Date/DateTime. */
export function sqlInstantMs(s: string): string {
  return (
    `(CASE WHEN ${s} ~ '${DATETIME_PATTERN}' THEN floor(extract(epoch FROM (${s})::timestamptz) * 1000)` +
    ` WHEN ${s} ~ '${DATE_PATTERN}' THEN floor(extract(epoch FROM ((${s}) || 'T00:00:00Z')::timestamptz) * 1000) END)`
  );
}

/** SQL numeric expression: ms since midnight of the text expression `s`, NULL when it is not a Time. */
export function sqlTimeMs(s: string): string {
  return (
    `(CASE WHEN ${s} ~ '${TIME_PATTERN}' THEN substr(${s}, 1, 2)::int * 3600000 + substr(${s}, 4, 2)::int * 60000` +
    ` + COALESCE(NULLIF(substr(${s}, 7, 2), '')::int, 0) * 1000` +
    ` + COALESCE(floor(('0' || substring(${s} FROM '[.][0-9]+'))::numeric * 1000), 0) END)`
  );
}

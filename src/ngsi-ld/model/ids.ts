import { ProblemError } from '../../common/problem.ts';

/**
 * URI checks for entity ids, datasetIds and relationship objects. NGSI-LD requires absolute URIs;
 * a scheme followed by ':' and at least one character, with no whitespace or characters that
 * the spec forbids in identifiers (clause 4.6.2: control chars, <, >, ", ', =, ;, (, )).
 */
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"'=;()\\]+$/;

export function isUri(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 2048 && URI_RE.test(s) && !hasInvisible(s);
}

/**
 * Characters that make two ids look identical to a person (format controls such as right-to-left
 * override or zero-width space, variation selectors, fillers, noncharacters): refused so that an id
 * cannot spoof another (clause 4.6.2 and Unicode TR 36).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Z}\u115F\u1160\u3164\uFFA0\u2800\uFE00-\uFE0F\u{E0100}-\u{E01EF}\uFDD0-\uFDEF]/u;
function hasInvisible(s: string): boolean {
  if (/^[\x21-\x7e]*$/.test(s)) return false; // plain ASCII fast path
  if (INVISIBLE.test(s)) return true;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if ((cp & 0xfffe) === 0xfffe) return true; // U+xFFFE / U+xFFFF noncharacters in every plane
  }
  return false;
}

export function checkEntityId(id: unknown, what = 'entity id'): string {
  if (typeof id !== 'string' || id.length === 0)
    throw new ProblemError('BadRequestData', `The ${what} is missing or not a string.`);
  if (!isUri(id))
    throw new ProblemError(
      'BadRequestData',
      `The ${what} "${truncate(id)}" is not a valid URI: use an absolute URI such as "urn:ngsi-ld:Building:b1" (no spaces or < > " ' = ; ( )).`,
    );
  return id;
}

/** Forbidden characters in attribute and type names (clause 4.6.2). */
const NAME_BAD = /[\s<>"'=;()\\\u0000-\u001f]/;

export function checkName(name: string, what: string): void {
  if (name.length === 0 || NAME_BAD.test(name))
    throw new ProblemError(
      'BadRequestData',
      `The ${what} "${truncate(name)}" contains characters not allowed in NGSI-LD names (whitespace, < > " ' = ; ( )).`,
    );
}

const ISO_DT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

// the entities of one batch mostly share their observedAt: the last answer is kept
let lastDateIn: unknown = Symbol('none'); // never equal to a JSON value
let lastDateOut = '';

/** Validates an ISO 8601 DateTime and returns it normalised to UTC with milliseconds. */
export function checkDateTime(v: unknown, what: string): string {
  if (v === lastDateIn) return lastDateOut;
  if (typeof v !== 'string' || !ISO_DT.test(v) || Number.isNaN(Date.parse(v)))
    throw new ProblemError('BadRequestData', `${what} must be an ISO 8601 DateTime like "2026-01-31T12:00:00Z", got ${truncate(JSON.stringify(v))}.`);
  lastDateOut = new Date(v).toISOString();
  lastDateIn = v;
  return lastDateOut;
}

export function truncate(s: string, n = 120): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

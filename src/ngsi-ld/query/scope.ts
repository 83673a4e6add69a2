/**
 * NGSI-LD Scope Query Language (ETSI GS CIM 009 v1.9.1 clause 4.19).
 *
 * Stored scopes are compared verbatim and are expected in their normalised form with a leading
 * '/' (the model layer normalises `Madrid/Gardens` to `/Madrid/Gardens`).
 */
import { ProblemError } from '../../common/problem.ts';

export interface ScopePattern {
  type: 'scope';
  /** levels after the leading '/', '+' matching exactly one level; empty with subtree: `/#` */
  levels: string[];
  /** trailing `/#`: the scope itself and everything below it */
  subtree: boolean;
}
export type ScopeExpr = ScopePattern | { type: 'and'; items: ScopeExpr[] } | { type: 'or'; items: ScopeExpr[] };

export const SCOPEQ_LIMITS = { maxLength: 4096, maxDepth: 16, maxTerms: 128 } as const;

const LEVEL_RE = /^[\p{L}\p{N}_]+$/u;

/**
 * Parses a scopeQ. `,` and `|` are OR, `;` is AND (binding tighter, also accepted without the
 * parentheses the ABNF asks for, as the conformance suite uses `/a;/b`), parentheses group.
 */
export function parseScopeQ(text: string): ScopeExpr {
  if (typeof text !== 'string' || text.trim() === '') throw new ProblemError('BadRequestData', 'scopeQ must not be empty');
  if (text.length > SCOPEQ_LIMITS.maxLength) {
    throw new ProblemError('TooComplexQuery', `scopeQ is longer than ${SCOPEQ_LIMITS.maxLength} characters`);
  }
  let pos = 0;
  let terms = 0;
  const fail = (msg: string, at = pos): never => {
    throw new ProblemError('BadRequestData', `Invalid scopeQ at position ${at + 1}: ${msg}`);
  };
  const or = (depth: number): ScopeExpr => {
    const items = [and(depth)];
    while (text[pos] === '|' || text[pos] === ',') { pos++; items.push(and(depth)); }
    return items.length === 1 ? items[0] : { type: 'or', items: items.flatMap((i) => (i.type === 'or' ? i.items : [i])) };
  };
  const and = (depth: number): ScopeExpr => {
    const items = [unit(depth)];
    while (text[pos] === ';') { pos++; items.push(unit(depth)); }
    return items.length === 1 ? items[0] : { type: 'and', items: items.flatMap((i) => (i.type === 'and' ? i.items : [i])) };
  };
  const unit = (depth: number): ScopeExpr => {
    if (text[pos] === '(') {
      if (depth >= SCOPEQ_LIMITS.maxDepth) throw new ProblemError('TooComplexQuery', `scopeQ nests deeper than ${SCOPEQ_LIMITS.maxDepth} levels`);
      const open = pos++;
      const e = or(depth + 1);
      if (text[pos] !== ')') fail(pos >= text.length ? `missing ')' for '(' at position ${open + 1}` : "expected ';', '|', ',' or ')'");
      pos++;
      return e;
    }
    if (++terms > SCOPEQ_LIMITS.maxTerms) throw new ProblemError('TooComplexQuery', `scopeQ has more than ${SCOPEQ_LIMITS.maxTerms} scopes`);
    const start = pos;
    while (pos < text.length && !'(),;|'.includes(text[pos])) pos++;
    const raw = text.slice(start, pos);
    if (raw === '') fail(pos >= text.length ? 'expected a scope' : `expected a scope, found '${text[pos]}'`);
    return pattern(raw, start, fail);
  };
  const e = or(0);
  if (pos < text.length) fail(text[pos] === ')' ? "unbalanced ')'" : `unexpected '${text[pos]}'`);
  return e;
}

function pattern(raw: string, at: number, fail: (msg: string, at?: number) => never): ScopePattern {
  if (raw === '/#') return { type: 'scope', levels: [], subtree: true };
  if (raw[0] !== '/') fail(`scope '${raw}' must start with '/'`, at);
  const levels = raw.slice(1).split('/');
  let subtree = false;
  if (levels[levels.length - 1] === '#') { subtree = true; levels.pop(); }
  if (levels.length === 0) fail(`scope '${raw}' has no level`, at);
  for (const l of levels) {
    if (l !== '+' && !LEVEL_RE.test(l)) {
      fail(l === '#' ? `'#' is only allowed as the last level of '${raw}'` : `invalid scope level '${l}' in '${raw}'`, at);
    }
  }
  return { type: 'scope', levels, subtree };
}

function patternMatches(p: ScopePattern, s: string): boolean {
  if (p.levels.length === 0) return true;
  let i = 0;
  if (s.charCodeAt(0) !== 47 /* / */) return false;
  i = 1;
  for (let k = 0; k < p.levels.length; k++) {
    const end = s.indexOf('/', i);
    const stop = end < 0 ? s.length : end;
    if (stop === i) return false;
    const lvl = p.levels[k];
    if (lvl !== '+' && (stop - i !== lvl.length || !s.startsWith(lvl, i))) return false;
    if (k === p.levels.length - 1) return end < 0 || (p.subtree && end + 1 < s.length && s.charCodeAt(end + 1) !== 47);
    if (end < 0) return false;
    i = end + 1;
  }
  return false;
}

/** Whether an entity with these scopes is selected; entities without scopes match nothing. */
export function evaluateScopeQ(q: ScopeExpr, scopes: string[] | undefined): boolean {
  if (q.type === 'and') { for (const i of q.items) if (!evaluateScopeQ(i, scopes)) return false; return true; }
  if (q.type === 'or') { for (const i of q.items) if (evaluateScopeQ(i, scopes)) return true; return false; }
  if (!scopes) return false;
  for (let i = 0; i < scopes.length; i++) if (patternMatches(q, scopes[i])) return true;
  return false;
}

/**
 * SQL boolean over a `text[]` column (never NULL, so it composes under NOT). Exact scopes use
 * `@>` so a GIN index on the column applies.
 */
export function scopeQToSql(q: ScopeExpr, params: unknown[], column = 'scopes'): string {
  const bind = (v: unknown) => { params.push(v); return `$${params.length}`; };
  const walk = (e: ScopeExpr): string => {
    if (e.type !== 'scope') return '(' + e.items.map(walk).join(e.type === 'and' ? ' AND ' : ' OR ') + ')';
    if (e.levels.length === 0) return `(COALESCE(cardinality(${column}), 0) > 0)`;
    const exact = '/' + e.levels.join('/');
    if (!e.levels.includes('+')) {
      const eq = `(${column} IS NOT NULL AND ${column} @> ARRAY[${bind(exact)}::text])`;
      if (!e.subtree) return eq;
      const next = bind(exact.length + 2);
      return `(${eq} OR EXISTS (SELECT 1 FROM unnest(${column}) AS _s(s) WHERE starts_with(_s.s, ${bind(exact + '/')}) AND substr(_s.s, ${next}::int, 1) NOT IN ('', '/')))`;
    }
    // Levels are [\p{L}\p{N}_]+ or '+', so the pattern needs no escaping.
    const re = '^/' + e.levels.map((l) => (l === '+' ? '[^/]+' : l)).join('/') + (e.subtree ? '(/[^/].*)?$' : '$');
    return `EXISTS (SELECT 1 FROM unnest(${column}) AS _s(s) WHERE _s.s ~ ${bind(re)})`;
  };
  return walk(q);
}

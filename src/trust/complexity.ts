/**
 * Query complexity limits (pure): bounded q / scopeQ / idPattern / attrs / geometry so that one
 * request cannot make the broker do unbounded work (ReDoS through idPattern, huge boolean trees,
 * geometry with millions of points).
 */
import { ProblemError } from '../common/problem.ts';

export interface ComplexityLimits {
  maxQueryLength: number;
  maxQTerms: number;
  maxQDepth: number;
  maxIdPatternLength: number;
  maxListItems: number;
  maxCoordinates: number;
}

export const DEFAULT_COMPLEXITY: ComplexityLimits = {
  maxQueryLength: 8192,
  maxQTerms: 64,
  maxQDepth: 8,
  maxIdPatternLength: 256,
  maxListItems: 200,
  maxCoordinates: 10_000,
};

const tooComplex = (m: string) => new ProblemError('TooComplexQuery', m);

/** nested quantifiers like (a+)+, (a*)*, (a|aa)+ make backtracking regexes exponential */
const NESTED_QUANTIFIER = /\([^)]*[+*}][^)]*\)\s*[+*{]|\([^)]*\|[^)]*\)\s*[+*{]/;

export function checkExpression(name: string, v: string, l: ComplexityLimits): void {
  if (v.length > l.maxQueryLength) throw tooComplex(`${name} is longer than ${l.maxQueryLength} characters.`);
  const terms = v.split(/[;|]/).length;
  if (terms > l.maxQTerms) throw tooComplex(`${name} has ${terms} terms; at most ${l.maxQTerms} are allowed.`);
  let depth = 0;
  let max = 0;
  for (const ch of v) {
    if (ch === '(') max = Math.max(max, ++depth);
    else if (ch === ')') depth--;
  }
  if (max > l.maxQDepth) throw tooComplex(`${name} nests parentheses ${max} deep; at most ${l.maxQDepth} are allowed.`);
}

export function checkIdPattern(v: string, l: ComplexityLimits): void {
  if (v.length > l.maxIdPatternLength) throw tooComplex(`idPattern is longer than ${l.maxIdPatternLength} characters.`);
  if (NESTED_QUANTIFIER.test(v)) throw tooComplex('idPattern has a nested quantifier (e.g. (a+)+), which can take exponential time.');
}

function countCoordinates(v: unknown, budget: { n: number }): void {
  if (Array.isArray(v)) for (const x of v) countCoordinates(x, budget);
  else if (typeof v === 'number') budget.n++;
}

/** checks a parsed query (query string, or the body of entityOperations/query) */
export function checkQuery(q: Record<string, unknown>, l: ComplexityLimits = DEFAULT_COMPLEXITY): void {
  for (const k of ['q', 'scopeQ', 'csf']) {
    const v = q[k];
    if (typeof v === 'string') checkExpression(k, v, l);
  }
  if (typeof q.idPattern === 'string') checkIdPattern(q.idPattern, l);
  const ents = q.entities;
  if (Array.isArray(ents)) {
    if (ents.length > l.maxListItems) throw tooComplex(`at most ${l.maxListItems} entity selectors are allowed.`);
    for (const e of ents) if (e && typeof e === 'object' && typeof (e as Record<string, unknown>).idPattern === 'string') checkIdPattern((e as Record<string, string>).idPattern, l);
  }
  for (const k of ['attrs', 'pick', 'omit', 'id', 'type']) {
    const v = q[k];
    const n = typeof v === 'string' ? v.split(',').length : Array.isArray(v) ? v.length : 0;
    if (n > l.maxListItems) throw tooComplex(`${k} lists ${n} items; at most ${l.maxListItems} are allowed.`);
  }
  let coords: unknown = q.coordinates;
  if (q.geoQ && typeof q.geoQ === 'object') coords = (q.geoQ as Record<string, unknown>).coordinates;
  if (typeof coords === 'string') {
    if (coords.length > l.maxCoordinates * 24) throw tooComplex('the geometry has too many coordinates.');
    try {
      coords = JSON.parse(coords);
    } catch {
      return; // the broker reports the syntax error
    }
  }
  const budget = { n: 0 };
  countCoordinates(coords, budget);
  if (budget.n > l.maxCoordinates) throw tooComplex(`the geometry has ${budget.n} numbers; at most ${l.maxCoordinates} are allowed.`);
}

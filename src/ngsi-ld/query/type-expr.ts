/**
 * NGSI-LD Entity Type Selection Language (ETSI GS CIM 009 v1.9.1 clause 4.17), the `type` parameter.
 */
import { ProblemError } from '../../common/problem.ts';

export type TypeExpr = { type: 'name'; name: string } | { type: 'and'; items: TypeExpr[] } | { type: 'or'; items: TypeExpr[] };

export const TYPE_EXPR_LIMITS = { maxLength: 4096, maxDepth: 16, maxNames: 256 } as const;

/**
 * Parses `A,B` / `A|B` (any of), `A;B` (all of, binding tighter; the ABNF wants it parenthesised,
 * accepted bare as well) and parentheses. Names are terms or IRIs without `,;|()`.
 */
export function parseTypeExpr(text: string): TypeExpr {
  if (typeof text !== 'string' || text.trim() === '') throw new ProblemError('BadRequestData', 'type must not be empty');
  if (text.length > TYPE_EXPR_LIMITS.maxLength) {
    throw new ProblemError('TooComplexQuery', `type is longer than ${TYPE_EXPR_LIMITS.maxLength} characters`);
  }
  let pos = 0;
  let names = 0;
  const fail = (msg: string, at = pos): never => {
    throw new ProblemError('BadRequestData', `Invalid type expression at position ${at + 1}: ${msg}`);
  };
  const or = (depth: number): TypeExpr => {
    const items = [and(depth)];
    while (text[pos] === '|' || text[pos] === ',') { pos++; items.push(and(depth)); }
    return items.length === 1 ? items[0] : { type: 'or', items: items.flatMap((i) => (i.type === 'or' ? i.items : [i])) };
  };
  const and = (depth: number): TypeExpr => {
    const items = [unit(depth)];
    while (text[pos] === ';') { pos++; items.push(unit(depth)); }
    return items.length === 1 ? items[0] : { type: 'and', items: items.flatMap((i) => (i.type === 'and' ? i.items : [i])) };
  };
  const unit = (depth: number): TypeExpr => {
    if (text[pos] === '(') {
      if (depth >= TYPE_EXPR_LIMITS.maxDepth) throw new ProblemError('TooComplexQuery', `type expression nests deeper than ${TYPE_EXPR_LIMITS.maxDepth} levels`);
      const open = pos++;
      const e = or(depth + 1);
      if (text[pos] !== ')') fail(pos >= text.length ? `missing ')' for '(' at position ${open + 1}` : "expected ';', '|', ',' or ')'");
      pos++;
      return e;
    }
    if (++names > TYPE_EXPR_LIMITS.maxNames) throw new ProblemError('TooComplexQuery', `type expression has more than ${TYPE_EXPR_LIMITS.maxNames} types`);
    const start = pos;
    while (pos < text.length && !'(),;|'.includes(text[pos])) pos++;
    const name = text.slice(start, pos);
    if (name === '') fail(pos >= text.length ? 'expected an entity type' : `expected an entity type, found '${text[pos]}'`);
    if (/\s/.test(name)) fail(`entity type '${name}' contains whitespace`, start);
    return { type: 'name', name };
  };
  const e = or(0);
  if (pos < text.length) fail(text[pos] === ')' ? "unbalanced ')'" : `unexpected '${text[pos]}'`);
  return e;
}

export function resolveTypeExpr(expr: TypeExpr, expandType: (term: string) => string): TypeExpr {
  if (expr.type === 'name') return { type: 'name', name: expandType(expr.name) };
  return { type: expr.type, items: expr.items.map((i) => resolveTypeExpr(i, expandType)) };
}

export function evaluateTypeExpr(expr: TypeExpr, types: string[]): boolean {
  if (expr.type === 'name') return types.includes(expr.name);
  if (expr.type === 'and') { for (const i of expr.items) if (!evaluateTypeExpr(i, types)) return false; return true; }
  for (const i of expr.items) if (evaluateTypeExpr(i, types)) return true;
  return false;
}

/** The type names when the expression is a plain any-of list (`A`, `A,B`, `A|B`), else null. */
export function simpleTypeList(expr: TypeExpr): string[] | null {
  if (expr.type === 'name') return [expr.name];
  if (expr.type === 'or' && expr.items.every((i) => i.type === 'name')) return expr.items.map((i) => (i as { name: string }).name);
  return null;
}

/**
 * SQL boolean over a `text[]` column using `&&` (any of) and `@>` (all of), both served by a
 * GIN index on the array; runs of plain names are bound as one array parameter each.
 */
export function typeExprToSql(expr: TypeExpr, params: unknown[], column = 'types'): string {
  const bind = (v: unknown) => { params.push(v); return `$${params.length}`; };
  const walk = (e: TypeExpr): string => {
    if (e.type === 'name') return `${column} @> ARRAY[${bind(e.name)}::text]`;
    const names = e.items.filter((i): i is { type: 'name'; name: string } => i.type === 'name').map((i) => i.name);
    const parts: string[] = [];
    if (names.length > 1) parts.push(`${column} ${e.type === 'or' ? '&&' : '@>'} ${bind(names)}::text[]`);
    else if (names.length === 1) parts.push(`${column} @> ARRAY[${bind(names[0])}::text]`);
    for (const i of e.items) if (i.type !== 'name') parts.push(walk(i));
    return parts.length === 1 ? parts[0] : '(' + parts.join(e.type === 'and' ? ' AND ' : ' OR ') + ')';
  };
  return walk(expr);
}

import { ProblemError } from '../common/problem.ts';
import type { QueryParams } from './broker-api.ts';
import type { StoredEntity, TermResolver } from './model/types.ts';
import { parseQ, resolveQ, evaluateQ, qToSql, parseScopeQ, evaluateScopeQ, scopeQToSql, parseTypeExpr, resolveTypeExpr, typeExprToSql, evaluateTypeExpr } from './query/index.ts';
import { parseGeoQ, resolveGeoQ, matchesGeoQ, prefilterBox, distanceMeters, type GeoQuery } from './geo/index.ts';
import type { Geometry } from './geo/index.ts';

/**
 * Query parameters -> one SQL WHERE clause (+ bind values) and, for geometry, an exact in-memory
 * post-filter applied to the bbox-prefiltered candidates. Placeholders start at $2 ($1 is the tenant).
 */
export interface CompiledQuery {
  where: string;
  params: unknown[];
  post?: (e: StoredEntity) => boolean;
  sort?: (a: StoredEntity, b: StoredEntity) => number;
  pick?: Set<string>;
  omit?: Set<string>;
  keepId: boolean;
  keepType: boolean;
  /** in-memory matcher equivalent to where+post (subscriptions, live feed) */
  matches: (e: StoredEntity) => boolean;
}

export function buildQuery(p: QueryParams, ctx: TermResolver): CompiledQuery {
  const params: unknown[] = [null]; // slot of $1 (tenant)
  const clauses: string[] = [];
  const checks: ((e: StoredEntity) => boolean)[] = [];
  const expand = (t: string) => ctx.expandTerm(t);

  if (p.id && p.id.length) {
    params.push(p.id);
    clauses.push(`e.id = ANY($${params.length}::text[])`);
    const ids = new Set(p.id);
    checks.push((e) => ids.has(e.id));
  }
  if (p.idPattern) {
    let re: RegExp;
    try {
      re = new RegExp(p.idPattern);
    } catch {
      throw new ProblemError('BadRequestData', `idPattern "${p.idPattern}" is not a valid regular expression.`);
    }
    params.push(p.idPattern);
    clauses.push(`e.id ~ $${params.length}`);
    checks.push((e) => re.test(e.id));
  }
  if (p.type) {
    const te = resolveTypeExpr(parseTypeExpr(p.type), expand);
    clauses.push(typeExprToSql(te, params, 'e.types'));
    checks.push((e) => evaluateTypeExpr(te, e.type));
  }
  const attrIris = p.attrs?.map(expand);
  if (attrIris && attrIris.length) {
    params.push(attrIris);
    clauses.push(`e.attrs ?| $${params.length}::text[]`);
    checks.push((e) => attrIris.some((a) => a in e.attrs));
  }
  if (p.q) {
    const q = resolveQ(parseQ(p.q), expand);
    clauses.push(qToSql(q, params, 'e.attrs'));
    const lang = p.lang;
    checks.push((e) => evaluateQ(q, e, lang ? { lang } : undefined));
  }
  if (p.scopeQ) {
    const s = parseScopeQ(p.scopeQ);
    clauses.push(scopeQToSql(s, params, 'e.scopes'));
    checks.push((e) => evaluateScopeQ(s, e.scope));
  }
  let post: CompiledQuery['post'];
  let sort: CompiledQuery['sort'];
  if (p.geoQ) {
    const g: GeoQuery = resolveGeoQ(parseGeoQ(p.geoQ as never), expand);
    const attr = g.geoproperty;
    const box = prefilterBox(g);
    if (box) {
      params.push(attr, box[0], box[1], box[2], box[3]);
      const n = params.length;
      clauses.push(
        `EXISTS (SELECT 1 FROM entity_geo g WHERE g.tenant = e.tenant AND g.entity_id = e.id AND g.attr = $${n - 4} AND g.bbox && box(point($${n - 3}, $${n - 2}), point($${n - 1}, $${n})))`,
      );
    } else {
      params.push([attr]);
      clauses.push(`e.attrs ?| $${params.length}::text[]`);
    }
    const geomOf = (e: StoredEntity): Geometry[] =>
      (e.attrs[attr] ?? []).filter((i) => i.type === 'GeoProperty' && typeof i.value === 'object').map((i) => i.value as Geometry);
    post = (e) => geomOf(e).some((gm) => matchesGeoQ(g, gm));
    checks.push(post);
    if (g.georel === 'near') {
      const d = new Map<string, number>();
      const dist = (e: StoredEntity) => {
        let v = d.get(e.id);
        if (v === undefined) {
          v = Math.min(...geomOf(e).map((gm) => distanceMeters(g, gm)));
          d.set(e.id, v);
        }
        return v;
      };
      sort = (a, b) => dist(a) - dist(b) || (a.id < b.id ? -1 : 1);
    }
  }
  if (!p.id && !p.idPattern && !p.type && !(attrIris && attrIris.length) && !p.q && !p.geoQ && !p.scopeQ && p.requireFilter !== false) {
    throw new ProblemError('BadRequestData', 'A query needs at least one of type, id, idPattern, attrs, q, geoQ or scopeQ (or use the entity map).');
  }

  // projection: attrs / pick / omit (id and type are members that can be picked or omitted too)
  let pick: Set<string> | undefined;
  let keepId = true;
  let keepType = true;
  const projection = p.pick ?? p.attrs;
  if (projection && projection.length) {
    pick = new Set();
    if (p.pick) { keepId = false; keepType = false; }
    for (const a of projection) {
      if (a === 'id') keepId = true;
      else if (a === 'type') keepType = true;
      else pick.add(a === 'scope' ? 'scope' : expand(a));
    }
  }
  let omit: Set<string> | undefined;
  if (p.omit && p.omit.length) {
    omit = new Set();
    for (const a of p.omit) {
      if (a === 'id') keepId = false;
      else if (a === 'type') keepType = false;
      else omit.add(expand(a));
    }
  }
  return {
    where: clauses.join(' AND '),
    params: params.slice(1),
    post,
    sort,
    pick,
    omit,
    keepId,
    keepType,
    matches: (e) => checks.every((c) => c(e)),
  };
}

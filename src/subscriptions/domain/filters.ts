import { parseGeoQ, matchesGeoQ, type Geometry, type GeoQuery } from '../../ngsi-ld/geo/index.ts';
import { evaluateQ, evaluateScopeQ, parseQ, parseScopeQ, qLinkedDepth, resolveQ } from '../../ngsi-ld/query/index.ts';
import type { StoredEntity } from '../../ngsi-ld/model/types.ts';
import type { CompiledFilters, ExpandTerm, GeoQ, Subscription } from './types.ts';
import type { ValidationDeps } from './validate.ts';

/**
 * Adapter to the broker's query and geo modules: syntax validators for subscription payloads and
 * per-subscription compiled predicates for trigger matching (compiled once, evaluated per event).
 */
export function validators(): Pick<ValidationDeps, 'validateQ' | 'validateScopeQ' | 'validateGeoQ'> {
  return {
    validateQ: (q) => void parseQ(decodeQ(q)),
    validateScopeQ: (q) => void parseScopeQ(q),
    validateGeoQ: (g) => void toGeoQuery(g),
  };
}

function toGeoQuery(g: GeoQ): GeoQuery {
  const q = parseGeoQ({ georel: g.georel, geometry: g.geometry, coordinates: g.coordinates, geoproperty: 'location' });
  return { ...q, geoproperty: g.geoproperty };
}

/**
 * A subscription's q as the query language text. q travels percent-encoded in URLs (6.3.x query
 * parameters), and clients commonly copy that form into subscription payloads
 * (`name=="Eiffel%20Tower"`): percent escapes are decoded like a query parameter's would be. A q
 * that is not valid percent-encoding (a literal "%") is taken as it is.
 */
export function decodeQ(q: string): string {
  if (!/%[0-9A-Fa-f]{2}/.test(q)) return q;
  try {
    return decodeURIComponent(q);
  } catch {
    return q;
  }
}

export function compileFilters(sub: Subscription, expandTerm: ExpandTerm): CompiledFilters {
  const f: CompiledFilters = {};
  if (sub.q) {
    const rq = resolveQ(parseQ(decodeQ(sub.q)), expandTerm);
    const lang = sub.lang;
    const depth = qLinkedDepth(rq);
    if (depth > 0) f.linkedQ = { depth, test: (e, getEntity) => evaluateQ(rq, e, { lang, getEntity }) };
    else f.q = (e: StoredEntity) => evaluateQ(rq, e, lang ? { lang } : undefined);
  }
  if (sub.geoQ) {
    const gq = toGeoQuery(sub.geoQ);
    f.geo = (e: StoredEntity) => {
      const insts = e.attrs[gq.geoproperty];
      if (!insts) return false;
      return insts.some((i) => {
        const v = i.value as Geometry | undefined;
        if (!v || typeof v !== 'object') return false;
        try {
          return matchesGeoQ(gq, v);
        } catch {
          return false;
        }
      });
    };
  }
  if (sub.scopeQ) {
    const sq = parseScopeQ(sub.scopeQ);
    f.scope = (e: StoredEntity) => evaluateScopeQ(sq, e.scope);
  }
  return f;
}

/**
 * The two evaluators the rule engine needs from the broker, behind small interfaces so the engine is
 * pure and testable: q (NGSI-LD query language) and geo (geoQ matching). `src/rules/adapters.ts`
 * binds them to src/ngsi-ld/query and src/ngsi-ld/geo; `builtinQEngine` / `builtinGeoEngine` are the
 * small local implementations used until (or where) those are not available.
 */
import type { StoredEntity } from '../../ngsi-ld/model/types.ts';
import type { GeoQ } from './types.ts';
import { compileMiniQ, parseMiniQ, qAttributes } from './mini-q.ts';
import { geometryMatches, validatePolygon } from './geometry.ts';

export interface CompiledQ {
  test(entity: StoredEntity): boolean;
  /** attribute terms read by the expression (as written), when known */
  attributes?: string[];
}

export interface QEngine {
  /** throws an Error whose message explains what is wrong */
  compile(text: string, expandTerm: (term: string) => string): CompiledQ;
}

export interface GeoEngine {
  /** throws an Error whose message explains what is wrong */
  compile(geoQ: GeoQ, expandTerm: (term: string) => string): (entity: StoredEntity) => boolean;
}

export const builtinQEngine: QEngine = {
  compile(text, expandTerm) {
    const node = parseMiniQ(text);
    return { test: compileMiniQ(node, expandTerm), attributes: qAttributes(node) };
  },
};

export const builtinGeoEngine: GeoEngine = {
  compile(geoQ, expandTerm) {
    const georel = String(geoQ.georel ?? '');
    const rel = georel.split(';')[0];
    if (!['near', 'within', 'contains', 'intersects', 'disjoint', 'equals', 'overlaps'].includes(rel))
      throw new Error(`unknown georel "${georel}"`);
    let coords = geoQ.coordinates;
    if (typeof coords === 'string') {
      try {
        coords = JSON.parse(coords);
      } catch {
        throw new Error(`geoQ coordinates are not valid JSON: ${coords}`);
      }
    }
    const geom = { type: geoQ.geometry, coordinates: coords };
    if (geom.type === 'Polygon' || geom.type === 'MultiPolygon') {
      const err = validatePolygon(geom);
      if (err) throw new Error(err);
    } else if (geom.type !== 'Point') {
      throw new Error(`geoQ geometry "${geoQ.geometry}" is not supported here (Point, Polygon, MultiPolygon)`);
    }
    let maxDistance: number | undefined;
    let minDistance: number | undefined;
    if (rel === 'near') {
      const m = /^near;(max|min)Distance==(\d+(\.\d+)?)$/.exec(georel);
      if (!m) throw new Error(`georel "${georel}" must be near;maxDistance==<m> or near;minDistance==<m>`);
      if (m[1] === 'max') maxDistance = Number(m[2]);
      else minDistance = Number(m[2]);
    }
    const prop = expandTerm(geoQ.geoproperty ?? 'location');
    return (e) => {
      const v = e.attrs[prop]?.[0]?.value;
      if (!v || typeof v !== 'object') return false;
      return geometryMatches(rel, v as { type: string; coordinates: unknown }, geom, { maxDistance, minDistance });
    };
  },
};

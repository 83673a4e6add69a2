/**
 * Binds the rule engine's q / geo / term-expansion interfaces (src/rules/domain/engines.ts) to the
 * broker's own implementations: src/ngsi-ld/query (q), src/ngsi-ld/geo (geoQ), src/ngsi-ld/jsonld
 * (core active context). The engine's small built-in q (domain/mini-q.ts) only lists attribute terms
 * for messages and stays available as `builtinQEngine` for pure tests.
 */
import type { StoredEntity } from '../ngsi-ld/model/types.ts';
import { coreActiveContext } from '../ngsi-ld/jsonld/index.ts';
import { matchesGeoQ, parseGeoQ, resolveGeoQ, type Geometry } from '../ngsi-ld/geo/index.ts';
import { builtinQEngine, type GeoEngine, type QEngine } from './domain/engines.ts';
import { parseMiniQ, qAttributes } from './domain/mini-q.ts';
import { evaluateQ, parseQ, qAttributes as brokerQAttributes, resolveQ, type ResolvedQ } from '../ngsi-ld/query/index.ts';

/** Expansion with the core context only (+ default vocabulary), as for a request without @context. */
export function coreExpandTerm(term: string): string {
  return coreActiveContext().expandTerm(term);
}

export const brokerGeoEngine: GeoEngine = {
  compile(geoQ, expandTerm) {
    let g;
    try {
      g = resolveGeoQ(parseGeoQ(geoQ as never), expandTerm);
    } catch (e) {
      throw new Error((e as Error).message);
    }
    const attr = g.geoproperty;
    return (e: StoredEntity) =>
      (e.attrs[attr] ?? []).some((i) => i.type === 'GeoProperty' && i.value !== null && typeof i.value === 'object' && matchesGeoQ(g, i.value as Geometry));
  },
};

/** q engine over src/ngsi-ld/query (the broker's own parser and evaluator). */
export const brokerQEngine: QEngine = {
  compile(text, expandTerm) {
    let resolved: ResolvedQ;
    try {
      resolved = resolveQ(parseQ(text), expandTerm);
    } catch (e) {
      throw new Error((e as Error).message);
    }
    // terms as written (for messages) from the small parser when it reads the text, else IRIs
    let terms: string[] | undefined;
    try {
      terms = qAttributes(parseMiniQ(text));
    } catch {
      terms = undefined;
    }
    const iris = [...brokerQAttributes(resolved)];
    return {
      test: (e: StoredEntity) => evaluateQ(resolved, e),
      attributes: terms && terms.every((t) => iris.includes(expandTerm(t)) || t === 'id' || t === 'type') ? terms : iris,
    };
  },
};

/** The q engine rules use at run time. */
export async function loadQEngine(): Promise<QEngine> {
  return brokerQEngine;
}

export { builtinQEngine };

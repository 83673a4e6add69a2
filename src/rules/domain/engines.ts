/**
 * The two evaluators the rule engine needs from the broker, behind small interfaces so the engine is
 * pure and testable: q (NGSI-LD query language) and geo (geoQ matching). `src/rules/adapters.ts`
 * binds them to src/ngsi-ld/query and src/ngsi-ld/geo; `builtinQEngine` is a small local q
 * implementation for pure tests.
 */
import type { StoredEntity } from '../../ngsi-ld/model/types.ts';
import type { GeoQ } from './types.ts';
import { compileMiniQ, parseMiniQ, qAttributes } from './mini-q.ts';

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

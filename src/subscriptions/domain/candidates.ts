import type { Subscription } from './types.ts';

/**
 * Which subscriptions can match a change event, without trying every subscription on every event
 * (1,000 subscriptions × a batch of 100 entities would be 100,000 match attempts per write).
 * A superset: `matchEvent` still decides. Keys are the caller's (tenant + id).
 *  - a selector with an id: under that id;
 *  - a selector with a type expression: under the first type of each AND-group (a group matches
 *    only if all its types are present, the first one included);
 *  - no entity selector (watchedAttributes only), or an empty type expression: tried on every event.
 * Periodic subscriptions (timeInterval) never fire on changes and are left out.
 */
export class CandidateIndex {
  private byId = new Map<string, Set<string>>();
  private byType = new Map<string, Set<string>>();
  private any = new Map<string, Set<string>>();
  /** where each key was put, to remove it again */
  private placed = new Map<string, [Map<string, Set<string>>, string][]>();

  add(key: string, sub: Subscription): void {
    this.delete(key);
    if (sub.timeInterval !== undefined) return;
    const at: [Map<string, Set<string>>, string][] = [];
    const put = (m: Map<string, Set<string>>, k: string) => {
      let s = m.get(k);
      if (!s) m.set(k, (s = new Set()));
      if (!s.has(key)) {
        s.add(key);
        at.push([m, k]);
      }
    };
    const t = sub.tenant + '\u0000';
    if (!sub.entities || sub.entities.length === 0) put(this.any, sub.tenant);
    else {
      for (const sel of sub.entities) {
        if (sel.id !== undefined) put(this.byId, t + sel.id);
        else if (sel.typeExpr.length === 0 || sel.typeExpr.some((g) => g.length === 0)) put(this.any, sub.tenant);
        else for (const g of sel.typeExpr) put(this.byType, t + g[0]);
      }
    }
    this.placed.set(key, at);
  }

  delete(key: string): void {
    for (const [m, k] of this.placed.get(key) ?? []) {
      const s = m.get(k);
      if (!s) continue;
      s.delete(key);
      if (s.size === 0) m.delete(k);
    }
    this.placed.delete(key);
  }

  /** Keys of the subscriptions that may match a change of this entity (each once). */
  candidates(tenant: string, entityId: string, types: readonly string[]): Iterable<string> {
    const t = tenant + '\u0000';
    const sets: Set<string>[] = [];
    const a = this.any.get(tenant);
    if (a) sets.push(a);
    const i = this.byId.get(t + entityId);
    if (i) sets.push(i);
    for (const ty of types) {
      const s = this.byType.get(t + ty);
      if (s) sets.push(s);
    }
    if (sets.length === 0) return [];
    if (sets.length === 1) return sets[0];
    const out = new Set<string>();
    for (const s of sets) for (const k of s) out.add(k);
    return out;
  }
}

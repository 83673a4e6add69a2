import type { StoredEntity } from '../model/types.ts';

interface Slot {
  e: StoredEntity;
  /** read or written since the eviction scan last passed it (second chance) */
  used: boolean;
}

/**
 * Read-through cache of stored entities, kept exact by the broker's own change events (the cache is
 * updated after each committed write). Valid while this process is the only writer of the store,
 * which is the embedded default and single-node PostgreSQL; set URBIS_ENTITY_CACHE=0 when several
 * nodes write one database. Entities in the cache are shared: never mutate them.
 *
 * Eviction is CLOCK (second chance) rather than strict LRU: a hit only sets a flag, where moving the
 * entry to the end of a Map (delete + set) cost ~6 % of the broker's time in a write storm. One Map
 * per tenant, so lookups hash the entity id itself instead of a concatenated key.
 */
export class EntityCache {
  private tenants = new Map<string, Map<string, Slot>>();
  private size = 0;
  constructor(private capacity: number) {}

  get enabled(): boolean {
    return this.capacity > 0;
  }

  get(tenant: string, id: string): StoredEntity | undefined {
    if (this.capacity === 0) return undefined;
    const s = this.tenants.get(tenant)?.get(id);
    if (!s) return undefined;
    s.used = true;
    return s.e;
  }

  set(tenant: string, e: StoredEntity): void {
    if (this.capacity === 0) return;
    let m = this.tenants.get(tenant);
    if (!m) this.tenants.set(tenant, (m = new Map()));
    const s = m.get(e.id);
    if (s) {
      s.e = e;
      s.used = true;
      return;
    }
    m.set(e.id, { e, used: false });
    if (++this.size > this.capacity) this.evictOne(m);
  }

  /** Evicts the oldest entry not used since the last pass, preferring the tenant just written. */
  private evictOne(preferred: Map<string, Slot>): void {
    let m = preferred;
    if (m.size <= 1) for (const other of this.tenants.values()) if (other.size > 1) { m = other; break; }
    for (;;) {
      const first = m.entries().next();
      if (first.done) return;
      const [id, s] = first.value;
      m.delete(id);
      if (s.used && m.size > 0) {
        s.used = false;
        m.set(id, s);
        continue;
      }
      this.size--;
      return;
    }
  }

  /**
   * For reads: a concurrent write may already have put a newer version here (its change event runs
   * after its commit), so a value read from the store never replaces an entry.
   */
  setIfAbsent(tenant: string, e: StoredEntity): void {
    if (this.capacity === 0 || this.tenants.get(tenant)?.has(e.id)) return;
    this.set(tenant, e);
  }

  delete(tenant: string, id: string): void {
    const m = this.tenants.get(tenant);
    if (m?.delete(id)) this.size--;
  }

  clear(): void {
    this.tenants.clear();
    this.size = 0;
  }
}

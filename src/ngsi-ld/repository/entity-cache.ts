import type { StoredEntity } from '../model/types.ts';

/**
 * Read-through cache of stored entities, kept exact by the broker's own change events (the cache is
 * updated after each committed write). Valid while this process is the only writer of the store,
 * which is the embedded default and single-node PostgreSQL; set URBIS_ENTITY_CACHE=0 when several
 * nodes write one database. Entities in the cache are shared: never mutate them.
 */
export class EntityCache {
  private map = new Map<string, StoredEntity>();
  constructor(private capacity: number) {}

  get enabled(): boolean {
    return this.capacity > 0;
  }

  private key(tenant: string, id: string) {
    return tenant + '\u0000' + id;
  }

  get(tenant: string, id: string): StoredEntity | undefined {
    if (this.capacity === 0) return undefined;
    const k = this.key(tenant, id);
    const e = this.map.get(k);
    if (e) {
      // refresh recency (Map keeps insertion order)
      this.map.delete(k);
      this.map.set(k, e);
    }
    return e;
  }

  set(tenant: string, e: StoredEntity): void {
    if (this.capacity === 0) return;
    const k = this.key(tenant, e.id);
    this.map.delete(k);
    this.map.set(k, e);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }

  /**
   * For reads: a concurrent write may already have put a newer version here (its change event runs
   * after its commit), so a value read from the store never replaces an entry.
   */
  setIfAbsent(tenant: string, e: StoredEntity): void {
    if (this.capacity === 0 || this.map.has(this.key(tenant, e.id))) return;
    this.set(tenant, e);
  }

  delete(tenant: string, id: string): void {
    this.map.delete(this.key(tenant, id));
  }

  clear(): void {
    this.map.clear();
  }
}

/**
 * In-memory picture of the city: entity features by type, loaded from the NGSI-LD API as GeoJSON
 * (keyValues) and kept current by the live feed. Views subscribe to per-type change notices,
 * coalesced to one per animation frame.
 */
import { entitiesGeoJson, listTypes, type Feature } from './api.ts';
import { representativePoint, type Pos } from './geo.ts';
import type { LiveChange } from './live.ts';
import { shortName, mapAttrs } from './entity-state.ts';

export interface Entity {
  id: string;
  type: string;
  /** representative point (lon, lat), null when the entity has no location */
  pos: Pos | null;
  props: Record<string, unknown>;
}

type TypeListener = (types: Set<string>) => void;

/** types the dashboard never draws on the map (they are listed elsewhere) */
const NON_MAP_TYPES = new Set(['KeyPerformanceIndicator', 'KPI', 'KpiValue']);

export class CityStore {
  readonly byType = new Map<string, Map<string, Entity>>();
  readonly byId = new Map<string, Entity>();
  types: string[] = [];
  private listeners = new Set<TypeListener>();
  private dirty = new Set<string>();
  private scheduled = false;
  loaded = false;

  onTypesChanged(l: TypeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** load every entity type; resolves after the first type arrives so the map can paint early */
  async load(onType?: (type: string) => void): Promise<void> {
    const types = (await listTypes()).map(shortName).filter((t) => !NON_MAP_TYPES.has(t));
    this.types = [...new Set(types)].sort();
    await Promise.all(
      this.types.map(async (type) => {
        const features = await entitiesGeoJson(type, mapAttrs(type)).catch(() => entitiesGeoJson(type)).catch(() => [] as Feature[]);
        this.setType(type, features);
        onType?.(type);
      }),
    );
    this.loaded = true;
  }

  async reloadType(type: string): Promise<void> {
    this.setType(type, await entitiesGeoJson(type, mapAttrs(type)));
  }

  private setType(type: string, features: Feature[]): void {
    const old = this.byType.get(type);
    if (old) for (const id of old.keys()) this.byId.delete(id);
    const m = new Map<string, Entity>();
    for (const f of features) {
      const id = String(f.id ?? f.properties?.id ?? '');
      if (!id) continue;
      const props = { ...(f.properties ?? {}) };
      const e: Entity = { id, type, pos: representativePoint(f.geometry), props };
      m.set(id, e);
      this.byId.set(id, e);
    }
    this.byType.set(type, m);
    if (!this.types.includes(type)) this.types = [...this.types, type].sort();
    this.markDirty(type);
  }

  get(id: string): Entity | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** apply live changes (keyValues of the changed attributes) */
  apply(changes: LiveChange[]): void {
    for (const c of changes) {
      const type = shortName(c.type);
      if (NON_MAP_TYPES.has(type)) continue;
      if (c.kind === 'delete') {
        const e = this.byId.get(c.id);
        if (e) {
          this.byType.get(e.type)?.delete(c.id);
          this.byId.delete(c.id);
          this.markDirty(e.type);
        }
        continue;
      }
      let e = this.byId.get(c.id);
      if (!e) {
        e = { id: c.id, type, pos: null, props: { type } };
        if (!this.byType.has(type)) {
          this.byType.set(type, new Map());
          this.types = [...this.types, type].sort();
        }
        this.byType.get(type)!.set(c.id, e);
        this.byId.set(c.id, e);
      }
      if (c.kind === 'replace') e.props = { type };
      for (const [k, v] of Object.entries(c.values ?? {})) {
        if (v === null) delete e.props[k];
        else e.props[k] = v;
        if (k === 'location') e.pos = representativePoint(v as { type: string; coordinates?: unknown });
      }
      this.markDirty(e.type);
    }
  }

  search(q: string, max = 12): Entity[] {
    const s = q.trim().toLowerCase();
    if (!s) return [];
    const out: Entity[] = [];
    for (const e of this.byId.values()) {
      const name = typeof e.props.name === 'string' ? e.props.name.toLowerCase() : '';
      if (e.id.toLowerCase().includes(s) || name.includes(s)) {
        out.push(e);
        if (out.length >= max) break;
      }
    }
    return out;
  }

  private markDirty(type: string): void {
    this.dirty.add(type);
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      const d = this.dirty;
      this.dirty = new Set();
      for (const l of this.listeners) l(d);
    };
    if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') requestAnimationFrame(flush);
    else setTimeout(flush, 50);
  }
}

export const store = new CityStore();

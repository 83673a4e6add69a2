import type { StoredEntity, TermResolver } from './model/types.ts';
import { renderEntity, type RenderOptions } from './model/render.ts';
import type { Projection } from './query-plan.ts';

/**
 * Linked entity retrieval (clause 4.5.23): join=inline puts the target of each (kept) top-level
 * Relationship in an `entity` member (keyValues: in place of the object id); join=flat lists the
 * targets after the entities, each once. joinLevel bounds the number of hops; pick/omit `rel{...}`
 * project the linked entities.
 */
export const MAX_JOIN_LEVEL = 10;

const FULL: Projection = { keepId: true, keepType: true };

export type Loader = (ids: string[]) => Promise<Map<string, StoredEntity>>;

const kept = (p: Projection, iri: string) => (!p.pick || p.pick.has(iri)) && !p.omit?.has(iri);

function targets(e: StoredEntity, p: Projection): [string, string][] {
  const out: [string, string][] = [];
  for (const iri in e.attrs) {
    if (!kept(p, iri)) continue;
    for (const i of e.attrs[iri]) {
      if (i.type === 'Relationship' && i.object !== undefined) for (const id of Array.isArray(i.object) ? i.object : [i.object]) out.push([iri, id]);
      else if (i.type === 'ListRelationship') for (const id of i.objectList ?? []) out.push([iri, id]);
    }
  }
  return out;
}

/** Loads every entity reachable within `level` hops (through kept relationships) into `known`. */
export async function loadLinked(roots: StoredEntity[], proj: Projection, level: number, load: Loader, known = new Map<string, StoredEntity>()) {
  for (const e of roots) known.set(e.id, e);
  let frontier: { e: StoredEntity; p: Projection }[] = roots.map((e) => ({ e, p: proj }));
  const missing = new Set<string>();
  for (let d = 0; d < level && frontier.length; d++) {
    const next: { id: string; p: Projection }[] = [];
    for (const { e, p } of frontier) for (const [attr, id] of targets(e, p)) next.push({ id, p: p.links?.get(attr) ?? FULL });
    const toLoad = [...new Set(next.map((n) => n.id))].filter((id) => !known.has(id) && !missing.has(id));
    if (toLoad.length) {
      const got = await load(toLoad);
      for (const id of toLoad) {
        const t = got.get(id);
        if (t) known.set(id, t);
        else missing.add(id);
      }
    }
    frontier = next.filter((n) => known.has(n.id)).map((n) => ({ e: known.get(n.id)!, p: n.p }));
  }
  return known;
}

function withProjection(ro: RenderOptions, p: Projection): RenderOptions {
  return { ...ro, pick: p.pick, omit: p.omit, keepId: p.keepId, keepType: p.keepType, inline: undefined };
}

/** Renders the entities with their linked entities (inline: one object per entity; flat: entities then targets). */
export async function renderJoined(
  roots: StoredEntity[],
  ctx: TermResolver,
  ro: RenderOptions,
  proj: Projection,
  join: 'inline' | 'flat',
  level: number,
  load: Loader,
): Promise<Record<string, unknown>[]> {
  const known = await loadLinked(roots, proj, level, load);
  if (join === 'inline') {
    const at = (e: StoredEntity, p: Projection, depth: number): Record<string, unknown> =>
      renderEntity(e, ctx, {
        ...withProjection(ro, p),
        inline: depth < level
          ? (attr, id) => {
              const t = known.get(id);
              return t ? at(t, p.links?.get(attr) ?? FULL, depth + 1) : undefined;
            }
          : undefined,
      });
    return roots.map((e) => at(e, proj, 0));
  }
  const out = roots.map((e) => renderEntity(e, ctx, withProjection(ro, proj)));
  const seen = new Set(roots.map((e) => e.id));
  let frontier: { e: StoredEntity; p: Projection }[] = roots.map((e) => ({ e, p: proj }));
  for (let d = 0; d < level && frontier.length; d++) {
    const next: { e: StoredEntity; p: Projection }[] = [];
    for (const { e, p } of frontier) {
      for (const [attr, id] of targets(e, p)) {
        const t = known.get(id);
        if (!t || seen.has(id)) continue;
        seen.add(id);
        const tp = p.links?.get(attr) ?? FULL;
        out.push(renderEntity(t, ctx, withProjection(ro, tp)));
        next.push({ e: t, p: tp });
      }
    }
    frontier = next;
  }
  return out;
}

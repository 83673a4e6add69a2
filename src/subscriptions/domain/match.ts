import type { ChangeEvent } from '../../bus/change-bus.ts';
import type { AttrInstance, StoredEntity } from '../../ngsi-ld/model/types.ts';
import { subscriptionStatus } from './validate.ts';
import type { CompiledFilters, EntitySelector, Subscription, Trigger } from './types.ts';

/**
 * Trigger matching (NGSI-LD v1.9.1 clauses 5.8.1, 5.11): decides whether one change event fires a
 * subscription, and for which notificationTrigger. Pure.
 */
export interface MatchResult {
  trigger: Trigger;
  /** expanded names of the attributes created / updated / deleted by the event */
  created: string[];
  updated: string[];
  deleted: string[];
}

const idPatternCache = new Map<string, RegExp>();
function idRegex(p: string): RegExp {
  let r = idPatternCache.get(p);
  if (!r) {
    r = new RegExp(p);
    if (idPatternCache.size > 10_000) idPatternCache.clear();
    idPatternCache.set(p, r);
  }
  return r;
}

export function typeMatches(typeExpr: string[][], types: readonly string[]): boolean {
  return typeExpr.some((group) => group.every((t) => types.includes(t)));
}

export function selectorMatches(sel: EntitySelector, id: string, types: readonly string[]): boolean {
  if (sel.id !== undefined && sel.id !== id) return false;
  if (sel.id === undefined && sel.idPattern !== undefined && !idRegex(sel.idPattern).test(id)) return false;
  return typeMatches(sel.typeExpr, types);
}

/** Whether the entity is in the subscription's entity scope (entities, or every entity if only watchedAttributes). */
export function entityInScope(sub: Subscription, id: string, types: readonly string[]): boolean {
  if (!sub.entities || sub.entities.length === 0) return true;
  return sub.entities.some((s) => selectorMatches(s, id, types));
}

/** classifyChanges per event: an event is matched against many subscriptions, the split is the same */
const classified = new WeakMap<ChangeEvent, { created: string[]; updated: string[]; deleted: string[] }>();

/** Splits an event's changed attributes into created / updated / deleted (do not modify the result). */
export function classifyChanges(ev: ChangeEvent): { created: string[]; updated: string[]; deleted: string[] } {
  let c = classified.get(ev);
  if (!c) classified.set(ev, (c = classify(ev)));
  return c;
}

function classify(ev: ChangeEvent): { created: string[]; updated: string[]; deleted: string[] } {
  const before = ev.before?.attrs ?? {};
  const after = ev.after?.attrs ?? {};
  if (ev.kind === 'create') return { created: Object.keys(after), updated: [], deleted: [] };
  if (ev.kind === 'delete') return { created: [], updated: [], deleted: Object.keys(before) };
  const created: string[] = [];
  const updated: string[] = [];
  const deleted = new Set(ev.deletedAttrs ?? []);
  for (const a of ev.changedAttrs) {
    if (deleted.has(a)) continue;
    if (!(a in after)) {
      if (a in before) deleted.add(a);
      continue;
    }
    if (a in before) {
      updated.push(a);
      // an instance (datasetId) that is gone counts as an attribute deletion too
      const ds = new Set(after[a].map((i) => i.datasetId ?? ''));
      if (before[a].some((i) => !ds.has(i.datasetId ?? ''))) deleted.add(a);
    } else created.push(a);
  }
  return { created, updated, deleted: [...deleted] };
}

/** Whether an attribute that lost an instance also had a remaining instance changed. */
function sameInstancesChanged(ev: ChangeEvent, a: string): boolean {
  const b = ev.before?.attrs[a] ?? [];
  const n = ev.after?.attrs[a] ?? [];
  return n.some((i) => {
    const p = b.find((x) => (x.datasetId ?? '') === (i.datasetId ?? ''));
    return !p || JSON.stringify({ ...p, modifiedAt: 0 }) !== JSON.stringify({ ...i, modifiedAt: 0 });
  });
}

/** Priority when one event satisfies several triggers of the same subscription. */
const PRIORITY: Trigger[] = [
  'entityDeleted',
  'entityCreated',
  'attributeDeleted',
  'attributeCreated',
  'attributeUpdated',
  'entityUpdated',
];

export function isLive(sub: Subscription, now: number): boolean {
  return subscriptionStatus(sub, now) === 'active';
}

/**
 * Returns the trigger under which `ev` fires `sub`, or null. Subscriptions with timeInterval are
 * periodic and never fire on changes. Filters (q, geoQ, scopeQ) run against the entity after the
 * change (before it, for a deletion).
 */
export function matchEvent(sub: Subscription, ev: ChangeEvent, filters: CompiledFilters, now: number): MatchResult | null {
  if (sub.tenant !== ev.tenant) return null;
  if (sub.timeInterval !== undefined) return null;
  if (!isLive(sub, now)) return null;
  const types = ev.after?.type ?? ev.before?.type ?? ev.types;
  if (!entityInScope(sub, ev.entityId, types)) return null;

  const ch = classifyChanges(ev);
  const watched = sub.watchedAttributes;
  // (no closures here: this runs for every candidate subscription of every change)
  const created = watched ? onlyWatched(ch.created, watched) : ch.created;
  const updated = watched ? onlyWatched(ch.updated, watched) : ch.updated;
  const deleted = watched ? onlyWatched(ch.deleted, watched) : ch.deleted;
  let trigger: Trigger | undefined;
  for (const t of PRIORITY) {
    if (sub.notificationTrigger.includes(t) && fires(t, ev, created, updated, deleted)) {
      trigger = t;
      break;
    }
  }
  if (!trigger) return null;

  const target = ev.kind === 'delete' ? ev.before : ev.after;
  if (!target) return null;
  if (filters.q && !filters.q(target)) return null;
  if (filters.geo && !filters.geo(target)) return null;
  if (filters.scope && !filters.scope(target)) return null;
  return { trigger, created, updated, deleted };
}

function onlyWatched(names: string[], watched: string[]): string[] {
  return names.filter((n) => watched.includes(n));
}

function fires(t: Trigger, ev: ChangeEvent, created: string[], updated: string[], deleted: string[]): boolean {
  switch (t) {
    case 'entityCreated':
      return ev.kind === 'create';
    case 'entityDeleted':
      return ev.kind === 'delete';
    case 'entityUpdated':
      return (ev.kind === 'update' || ev.kind === 'replace') && created.length + updated.length + deleted.length > 0;
    case 'attributeCreated':
      return ev.kind !== 'delete' && created.length > 0;
    case 'attributeUpdated':
      if (ev.kind === 'delete' || ev.kind === 'create') return false;
      for (const a of updated) if (!deleted.includes(a) || sameInstancesChanged(ev, a)) return true;
      return false;
    case 'attributeDeleted':
      // deleting the entity deletes its (watched) attributes as well
      return ev.kind !== 'create' && deleted.length > 0;
  }
  return false;
}

/**
 * Throttling decision (5.2.12 throttling): a notification may go now, or must wait until
 * `lastSent + throttling`. Deferred notifications are coalesced by the caller (latest state wins).
 */
export function throttleDecision(
  throttlingS: number | undefined,
  lastSentMs: number | undefined,
  now: number,
): { send: true } | { send: false; at: number } {
  if (!throttlingS || lastSentMs === undefined) return { send: true };
  const at = lastSentMs + throttlingS * 1000;
  return now >= at ? { send: true } : { send: false, at };
}

/** For the periodic notifier: when the next notification is due. */
export function nextPeriodic(timeIntervalS: number, lastMs: number | undefined, now: number): number {
  if (lastMs === undefined) return now;
  return Math.max(now, lastMs + timeIntervalS * 1000);
}

export type { AttrInstance, StoredEntity };

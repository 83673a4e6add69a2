import type { AttrInstance } from '../model/types.ts';

/**
 * The `attrs` column holds attribute instances without the members the row already implies:
 * `"type": "Property"` (the common case), `modifiedAt` when it equals the entity's modified_at,
 * and `createdAt` when it equals the instance's own modifiedAt. A batch write of unchanged
 * shapes then ships, and PostgreSQL parses, about half the JSON (jsonb input parsing is the
 * largest part of a write's cost on the server, serialisation a large part in the broker).
 * A member that is absent from the instance itself is stored as null, so "absent" and "implied"
 * never mix. Rows written in the full form read back unchanged: explicit members win.
 * SQL that reads instance members directly (q on `attr.modifiedAt`, attribute type listings)
 * applies the same defaults.
 */

const TYPE = 'type';
const CREATED = 'createdAt';
const MODIFIED = 'modifiedAt';
const PROPERTY = 'Property';

/** Stored form of one entity's attributes; `modifiedAt` is the entity's. Instances are not modified. */
export function toStoredAttrs(attrs: Record<string, AttrInstance[]>, modifiedAt: string): Record<string, Record<string, unknown>[]> {
  const out: Record<string, Record<string, unknown>[]> = {};
  for (const name in attrs) out[name] = toStoredInstances(attrs[name], modifiedAt);
  return out;
}

function toStoredInstance(i: AttrInstance, entityModifiedAt: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const mod = i.modifiedAt;
  for (const k in i) {
    const v = i[k];
    if (v === undefined) continue;
    if (k === TYPE) {
      if (v === PROPERTY) continue;
    } else if (k === MODIFIED) {
      if (v === entityModifiedAt) continue;
    } else if (k === CREATED) {
      if (v === mod) continue;
    }
    o[k] = v;
  }
  if (i.type === undefined) o.type = null;
  if (mod === undefined) o.modifiedAt = null;
  if (i.createdAt === undefined) o.createdAt = null;
  return o;
}

/**
 * Attributes as read from the `attrs` column (either form), completed in place; `modifiedAt` is the
 * row's. `canonical` is false when some instance was not stored as toStoredAttrs would store it (a
 * row written before the compact form): such a row must be rewritten whole, never patched per
 * attribute, since its explicit members would not follow the row's new modifiedAt.
 */
export function fromStoredAttrs(attrs: Record<string, Record<string, unknown>[]>, modifiedAt: string): { attrs: Record<string, AttrInstance[]>; canonical: boolean } {
  let canonical = true;
  for (const name in attrs) {
    const list = attrs[name];
    for (let n = 0; n < list.length; n++) {
      const o = list[n];
      if (typeof o.type === 'string' && typeof o.modifiedAt === 'string' && typeof o.createdAt === 'string') {
        // nothing implied: canonical unless something could have been
        if (o.type === PROPERTY || o.modifiedAt === modifiedAt || o.createdAt === o.modifiedAt) canonical = false;
        continue;
      }
      list[n] = fromStoredInstance(o, modifiedAt);
    }
  }
  return { attrs: attrs as Record<string, AttrInstance[]>, canonical };
}

/** Stored form of one attribute's instances (see toStoredAttrs). */
export function toStoredInstances(list: AttrInstance[], modifiedAt: string): Record<string, unknown>[] {
  const stored = new Array<Record<string, unknown>>(list.length);
  for (let n = 0; n < list.length; n++) stored[n] = toStoredInstance(list[n], modifiedAt);
  return stored;
}

/**
 * True when attribute instances `a` (of an entity last modified at `ma`) and `b` (at `mb`) are
 * stored as the same JSON: a write may then leave that attribute's stored JSON as it is in the
 * row. Compares without building the stored forms (this runs for every attribute of every write).
 */
export function storedAlike(a: AttrInstance[], ma: string, b: AttrInstance[], mb: string): boolean {
  if (a.length !== b.length) return false;
  for (let n = 0; n < a.length; n++) if (!instanceStoredAlike(a[n], ma, b[n], mb)) return false;
  return true;
}

/** What toStoredInstance keeps of a member the row may imply (undefined: left out). */
function impliedMember(i: AttrInstance, k: string, entityModifiedAt: string): unknown {
  const v = i[k];
  if (v === undefined) return null;
  if (k === TYPE) return v === PROPERTY ? undefined : v;
  if (k === MODIFIED) return v === entityModifiedAt ? undefined : v;
  return v === i.modifiedAt ? undefined : v; // createdAt
}

function instanceStoredAlike(a: AttrInstance, ma: string, b: AttrInstance, mb: string): boolean {
  if (impliedMember(a, TYPE, ma) !== impliedMember(b, TYPE, mb)) return false;
  if (impliedMember(a, MODIFIED, ma) !== impliedMember(b, MODIFIED, mb)) return false;
  if (impliedMember(a, CREATED, ma) !== impliedMember(b, CREATED, mb)) return false;
  let n = 0;
  for (const k in a) {
    if (k === TYPE || k === MODIFIED || k === CREATED) continue;
    const v = a[k];
    if (v === undefined) continue;
    n++;
    if (!jsonEqual(v, b[k])) return false;
  }
  for (const k in b) if (k !== TYPE && k !== MODIFIED && k !== CREATED && b[k] !== undefined) n--;
  return n === 0;
}

/** Structural equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let nx = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    nx++;
    if (!jsonEqual(x[k], y[k])) return false;
  }
  let ny = 0;
  for (const k in y) if (y[k] !== undefined) ny++;
  return nx === ny;
}

function fromStoredInstance(o: Record<string, unknown>, entityModifiedAt: string): AttrInstance {
  const type = o.type;
  const mod = o.modifiedAt;
  const created = o.createdAt;
  // `type` first, as everywhere else instances are built
  const i: Record<string, unknown> = { type: type === undefined ? PROPERTY : type };
  for (const k in o) if (k !== TYPE) i[k] = o[k];
  if (mod === undefined) i.modifiedAt = entityModifiedAt;
  if (created === undefined) i.createdAt = mod === undefined ? entityModifiedAt : mod;
  if (type === null) delete i.type;
  if (mod === null) delete i.modifiedAt;
  if (created === null) delete i.createdAt;
  return i as AttrInstance;
}

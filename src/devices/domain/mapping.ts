/**
 * Measures -> NGSI-LD attribute updates, following the iotagent-node-lib semantics:
 * object_id -> name/type mappings, explicitAttrs, computed attributes (expressions evaluated in
 * `attributes` order, each result visible to the next), skipValue, multi-entity (entity_name on a
 * mapping), unitCode metadata, and `observedAt` from the device timestamp or else reception time.
 * Output is NGSI-LD normalized JSON with terms compacted against the core context.
 */
import { compileExpression, ExpressionError } from './expression.ts';
import { parseDeviceTime } from './payloads.ts';
import { toEntityUri, type EffectiveDevice } from './provisioning.ts';
import type { AttrMapping, MeasureGroup } from './types.ts';

export type NgsiAttr = Record<string, unknown> & { type: 'Property' | 'Relationship' | 'GeoProperty' };

export interface EntityUpdate {
  id: string;
  type: string;
  attrs: Record<string, NgsiAttr>;
}

export interface AttrError {
  attr: string;
  message: string;
}

export interface MappingResult {
  /** one entry per (group, target entity), in payload order */
  updates: EntityUpdate[];
  /** values that could not be converted (counted as malformed, the rest of the group still goes in) */
  errors: AttrError[];
  /** names (entity attribute names) of the device-entity attributes that were written, with values */
  values: Record<string, unknown>;
}

export interface MapOptions {
  /** ISO reception time, used when the device gave none */
  receivedAt: string;
  /** values came as text (Ultralight): unmapped numeric-looking values become numbers */
  textValues?: boolean;
  now?: () => number;
}

const NUMBER_TYPES = new Set(['number', 'float', 'integer', 'double', 'int', 'decimal', 'percentage']);
const BOOL_TYPES = new Set(['boolean', 'bool']);
const GEO_TYPES = new Set(['geo:point', 'geo:json', 'geoproperty', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geo:line', 'geo:polygon']);
const DATE_TYPES = new Set(['datetime', 'date', 'time', 'iso8601']);
const TEXT_TYPES = new Set(['text', 'string']);
const RESERVED = new Set(['id', 'type', '@context', 'TimeInstant']);
const NUMERIC_RE = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

class ConvertError extends Error {}

/** Convert a raw measure to the attribute's declared type. */
export function convertValue(raw: unknown, type: string | undefined, textValues = false): unknown {
  const t = (type ?? '').toLowerCase();
  if (NUMBER_TYPES.has(t)) {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && NUMERIC_RE.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isFinite(n)) throw new ConvertError(`"${short(raw)}" is not a number`);
    if ((t === 'integer' || t === 'int') && !Number.isInteger(n)) return Math.round(n);
    return n;
  }
  if (BOOL_TYPES.has(t)) {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === '1' || raw === 1) return true;
    if (raw === 'false' || raw === '0' || raw === 0) return false;
    throw new ConvertError(`"${short(raw)}" is not a boolean`);
  }
  if (GEO_TYPES.has(t)) return toGeometry(raw);
  if (DATE_TYPES.has(t)) {
    const d = parseDeviceTime(raw);
    if (!d) throw new ConvertError(`"${short(raw)}" is not a date-time`);
    return d;
  }
  if (t === 'relationship') {
    if (typeof raw !== 'string' || !/^[A-Za-z][A-Za-z0-9+.\-]*:\S+$/.test(raw)) throw new ConvertError(`"${short(raw)}" is not a URI`);
    return raw;
  }
  if (TEXT_TYPES.has(t)) return raw !== null && typeof raw === 'object' ? raw : String(raw);
  if (t === 'structuredvalue' || t === 'object' || t === 'array' || t === 'json') {
    if (typeof raw === 'string') {
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
    }
    return raw;
  }
  // unknown / unmapped types: Ultralight text that looks like a number becomes a number
  if (textValues && typeof raw === 'string' && NUMERIC_RE.test(raw.trim())) return Number(raw.trim());
  return raw;
}

/** "lat, lon" text, [lon, lat] array or a GeoJSON geometry -> GeoJSON geometry. */
export function toGeometry(raw: unknown): Record<string, unknown> {
  if (typeof raw === 'string') {
    const s = raw.trim();
    if (s.startsWith('{')) {
      try {
        return toGeometry(JSON.parse(s));
      } catch {
        throw new ConvertError('invalid GeoJSON');
      }
    }
    const parts = s.split(/[,/]/).map((x) => Number(x.trim()));
    if (parts.length === 2 && parts.every(Number.isFinite)) return point(parts[1], parts[0]);
    throw new ConvertError(`"${short(raw)}" is not a "lat, lon" position`);
  }
  if (Array.isArray(raw) && raw.length >= 2 && raw.every((x) => typeof x === 'number')) return point(raw[0], raw[1]);
  if (raw && typeof raw === 'object' && typeof (raw as { type?: unknown }).type === 'string' && Array.isArray((raw as { coordinates?: unknown }).coordinates))
    return raw as Record<string, unknown>;
  throw new ConvertError('not a geometry');
}

function point(lon: number, lat: number): Record<string, unknown> {
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) throw new ConvertError('coordinates out of range');
  return { type: 'Point', coordinates: [lon, lat] };
}

function short(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}

/** NGSI-LD attribute for a value of a declared FIWARE type (with unitCode / metadata). */
export function toNgsiAttr(name: string, value: unknown, type: string | undefined, metadata?: Record<string, unknown>, observedAt?: string): NgsiAttr {
  const t = (type ?? '').toLowerCase();
  let a: NgsiAttr;
  if (t === 'relationship') a = { type: 'Relationship', object: value };
  else if (GEO_TYPES.has(t) || (name === 'location' && isGeometry(value))) a = { type: 'GeoProperty', value };
  else a = { type: 'Property', value };
  if (observedAt) a.observedAt = observedAt;
  if (metadata) {
    for (const [k, m] of Object.entries(metadata)) {
      const mv = m && typeof m === 'object' && 'value' in (m as object) ? (m as { value: unknown }).value : m;
      if (k === 'unitCode' && typeof mv === 'string') a.unitCode = mv;
      else if (k === 'TimeInstant' || k === 'observedAt') continue;
      else if (!['type', 'value', 'object', 'observedAt', 'unitCode', 'datasetId', 'createdAt', 'modifiedAt'].includes(k) && mv !== undefined && mv !== null)
        a[k] = { type: 'Property', value: mv };
    }
  }
  return a;
}

function isGeometry(v: unknown): boolean {
  return !!v && typeof v === 'object' && typeof (v as { type?: unknown }).type === 'string' && Array.isArray((v as { coordinates?: unknown }).coordinates);
}

/** Context available to every expression (FIWARE: id, entity_name, type, service, subservice, staticAttributes). */
export function baseContext(eff: EffectiveDevice): Record<string, unknown> {
  const ctx: Record<string, unknown> = {
    id: eff.device.device_id,
    entity_name: eff.device.entity_name,
    type: eff.device.entity_type,
    service: eff.device.service,
    subservice: eff.device.service_path,
    staticAttributes: eff.static_attributes.map((s) => ({ name: s.name, type: s.type, value: s.value })),
  };
  for (const s of eff.static_attributes) if (!(s.name in ctx)) ctx[s.name] = s.value;
  return ctx;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** Which attribute names pass the explicitAttrs filter (undefined = everything passes). */
function explicitFilter(eff: EffectiveDevice, ctx: Record<string, unknown>, opts: MapOptions): { names?: Set<string>; objectIds?: Set<string>; mappedOnly: boolean } {
  const ea = eff.explicitAttrs;
  if (ea === undefined || ea === false) return { mappedOnly: false };
  if (ea === true) return { mappedOnly: true };
  let r: unknown;
  try {
    r = compileExpression(ea).evaluate(ctx, { now: opts.now });
  } catch {
    r = false;
  }
  if (r === true) return { mappedOnly: false };
  if (Array.isArray(r)) {
    const names = new Set<string>();
    const objectIds = new Set<string>();
    for (const x of r) {
      if (typeof x === 'string') names.add(x);
      else if (x && typeof x === 'object' && typeof (x as { object_id?: unknown }).object_id === 'string') objectIds.add((x as { object_id: string }).object_id);
    }
    return { names, objectIds, mappedOnly: true };
  }
  return { mappedOnly: true };
}

/** Map the measure groups of one message of one device to entity updates. */
export function mapMeasures(eff: EffectiveDevice, groups: MeasureGroup[], opts: MapOptions): MappingResult {
  const updates: EntityUpdate[] = [];
  const errors: AttrError[] = [];
  const values: Record<string, unknown> = {};
  const mainId = eff.device.entity_name;
  const mainType = eff.device.entity_type;
  const byObjectId = new Map<string, AttrMapping[]>();
  for (const m of eff.attributes) {
    const k = m.object_id ?? m.name;
    const l = byObjectId.get(k);
    if (l) l.push(m);
    else byObjectId.set(k, [m]);
  }
  const commandNames = new Set(eff.commands.map((c) => c.name));
  const base = baseContext(eff);

  for (const g of groups) {
    const observedAt = g.observedAt ?? (eff.timestamp === false ? undefined : opts.receivedAt) ?? opts.receivedAt;
    const perEntity = new Map<string, EntityUpdate>();
    const target = (m?: AttrMapping): EntityUpdate => {
      const type = m?.entity_type ?? mainType;
      const id = m?.entity_name ? toEntityUri(m.entity_name, type) : mainId;
      let u = perEntity.get(id);
      if (!u) {
        u = { id, type: m?.entity_name ? type : mainType, attrs: {} };
        perEntity.set(id, u);
      }
      return u;
    };
    // 1. typed measure values, by object_id and by attribute name, for expressions
    const ctx: Record<string, unknown> = { ...base };
    const present = new Set<string>();
    const converted = new Map<AttrMapping, unknown>();
    for (const [k, raw] of Object.entries(g.values)) {
      present.add(k);
      const maps = byObjectId.get(k);
      if (maps) {
        for (const m of maps) {
          try {
            const v = convertValue(raw, m.type, opts.textValues);
            converted.set(m, v);
          } catch (e) {
            if (!(e instanceof ConvertError)) throw e;
            if (!m.expression) errors.push({ attr: m.name, message: e.message });
          }
        }
        const first = maps.find((m) => converted.has(m));
        ctx[k] = first ? converted.get(first) : convertValue(raw, undefined, opts.textValues);
      } else ctx[k] = convertValue(raw, undefined, opts.textValues);
    }
    const filter = explicitFilter(eff, ctx, opts);
    const allowed = (m: AttrMapping | undefined, name: string, objectId: string) => {
      if (!filter.mappedOnly) return true;
      if (!m) return false;
      if (!filter.names && !filter.objectIds) return true;
      return !!(filter.names?.has(name) || filter.objectIds?.has(objectId));
    };
    const put = (m: AttrMapping | undefined, name: string, value: unknown) => {
      if (RESERVED.has(name) || commandNames.has(name)) return;
      const u = target(m);
      u.attrs[name] = toNgsiAttr(name, value, m?.type, m?.metadata as Record<string, unknown> | undefined, observedAt);
      if (u.id === mainId) values[name] = value;
    };
    // 2. mapped attributes, in provisioning order (expressions see earlier results)
    for (const m of eff.attributes) {
      const oid = m.object_id ?? m.name;
      let value: unknown;
      let has = false;
      if (m.expression) {
        let expr;
        try {
          expr = compileExpression(m.expression);
        } catch (e) {
          if (e instanceof ExpressionError) {
            errors.push({ attr: m.name, message: `invalid expression: ${e.message}` });
            continue;
          }
          throw e;
        }
        const vars = expr.variables;
        const evaluable = vars.length > 0 ? vars.every((v) => v in ctx) && vars.some((v) => present.has(v) || !(v in base)) : present.has(oid);
        if (evaluable) {
          try {
            value = expr.evaluate(ctx, { now: opts.now });
          } catch (e) {
            if (!(e instanceof ExpressionError)) throw e;
            errors.push({ attr: m.name, message: e.message });
            continue;
          }
          const skip = m.skipValue === undefined ? null : m.skipValue;
          if (value === undefined || (typeof value === 'number' && Number.isNaN(value)) || (skip === null ? value === null : sameValue(value, skip))) {
            continue;
          }
          try {
            value = convertValue(value, m.type, false);
          } catch (e) {
            if (!(e instanceof ConvertError)) throw e;
            errors.push({ attr: m.name, message: e.message });
            continue;
          }
          has = true;
        } else if (converted.has(m)) {
          value = converted.get(m);
          has = true;
        }
      } else if (converted.has(m)) {
        value = converted.get(m);
        has = true;
      }
      if (!has) continue;
      ctx[m.name] = value;
      if (allowed(m, m.name, oid)) put(m, m.name, value);
    }
    // 3. unmapped measures keep their name (unless explicitAttrs)
    for (const k of present) {
      if (byObjectId.has(k)) continue;
      if (eff.attributes.some((m) => m.name === k && m.expression)) continue;
      if (!allowed(undefined, k, k)) continue;
      const v = ctx[k];
      if (v === undefined || v === null) continue;
      put(undefined, k, v);
    }
    for (const u of perEntity.values()) if (Object.keys(u.attrs).length > 0) updates.push(u);
  }
  return { updates, errors, values };
}

import { ProblemError } from '../../common/problem.ts';
import { checkDateTime, checkEntityId, checkName, isUri, truncate } from './ids.ts';
import type { AttrInstance, AttrType, StoredEntity, TermResolver } from './types.ts';
import { INSTANCE_CORE_KEYS } from './types.ts';
import { validateGeometry } from '../geo/index.ts';

/**
 * Input (normalized or concise NGSI-LD JSON with compact terms) -> stored form (expanded terms).
 * Throws BadRequestData with a message naming the offending member; never partially applies.
 */

export const NGSI_NULL = 'urn:ngsi-ld:null';

const ATTR_TYPES = new Set<AttrType>([
  'Property', 'Relationship', 'GeoProperty', 'LanguageProperty', 'VocabProperty', 'JsonProperty', 'ListProperty', 'ListRelationship',
]);

/** Entity-level members that are not attributes. */
const ENTITY_KEYS = new Set(['id', '@id', 'type', '@type', 'scope', '@context', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt']);

const NGSI_NS = 'https://uri.etsi.org/ngsi-ld/';
/** Output-only or proof members that a client may not send as attributes (clause 4.5, 4.23). */
const FORBIDDEN_MEMBERS = new Set(['entityIdSealed', 'entityTypeSealed', 'previousValue', 'previousObject', 'previousLanguageMap', 'previousVocab', 'previousJson', 'previousValueList', 'previousObjectList']);

/** Attribute names reserved by the core context that may not be used as user attributes. */
const RESERVED_ATTR_NAMES = new Set([
  'id', 'type', 'datasetId', 'instanceId', 'observedAt', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt', 'unitCode', 'scope', '@context',
]);
/** Expanded IRIs of the reserved member names (a client may also send them as full IRIs). */
const RESERVED_IRIS = new Set(['observedAt', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt', 'unitCode', 'datasetId', 'instanceId', 'scope'].map((t) => 'https://uri.etsi.org/ngsi-ld/' + t));

export interface NormalizeOptions {
  /** ISO time stamped on createdAt/modifiedAt */
  now: string;
  /** allow NGSI-LD Null values (merge / update operations) */
  allowNull?: boolean;
  /** JSON merge-patch semantics: JSON null inside values deletes keys (merge operations only) */
  mergePatch?: boolean;
  /** entity type is optional (attribute fragments for PATCH) */
  typeOptional?: boolean;
  /** id is optional (fragment bodies) */
  idOptional?: boolean;
}

export function normalizeEntity(input: unknown, ctx: TermResolver, opts: NormalizeOptions): StoredEntity {
  if (!isObject(input)) throw new ProblemError('BadRequestData', 'An entity must be a JSON object.');
  const rawId = input.id ?? input['@id'];
  const id = rawId === undefined && opts.idOptional ? '' : checkEntityId(rawId);
  if (id === NGSI_NULL) throw new ProblemError('BadRequestData', `"${NGSI_NULL}" is NGSI-LD Null and cannot be an entity id.`);
  const rawType = input.type ?? input['@type'];
  let type: string[] = [];
  if (rawType === undefined) {
    if (!opts.typeOptional) throw new ProblemError('BadRequestData', `Entity "${id}" has no "type": every entity needs at least one type.`);
  } else {
    type = normalizeTypes(rawType, ctx, `entity "${id}"`);
  }
  const ent: StoredEntity = { id, type, createdAt: opts.now, modifiedAt: opts.now, attrs: {} };
  if (input.scope !== undefined) ent.scope = normalizeScope(input.scope);
  if (input.expiresAt === NGSI_NULL && opts.allowNull) ent.expiresAt = NGSI_NULL; // makes the entity durable again
  else if (input.expiresAt !== undefined) {
    checkDateTime(input.expiresAt, `expiresAt of entity "${id}"`);
    ent.expiresAt = input.expiresAt as string;
  }
  // for-in, not Object.keys: no array per object on the hot path (JSON.parse objects own all their keys)
  for (const key in input) {
    if (ENTITY_KEYS.has(key)) continue;
    const iri = expandAttrName(key, ctx);
    ent.attrs[iri] = normalizeAttr(key, input[key], ctx, opts);
  }
  return ent;
}

/** Attribute fragment (e.g. PATCH /attrs body, with or without id/type) -> expanded attribute map. */
export function normalizeAttrs(input: unknown, ctx: TermResolver, opts: NormalizeOptions): Record<string, AttrInstance[]> {
  return normalizeEntity(input, ctx, { ...opts, idOptional: true, typeOptional: true }).attrs;
}

export function normalizeTypes(raw: unknown, ctx: TermResolver, where: string): string[] {
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw new ProblemError('BadRequestData', `The type of ${where} is an empty list.`);
  const out: string[] = [];
  for (const t of list) {
    if (typeof t !== 'string' || t.length === 0)
      throw new ProblemError('BadRequestData', `The type of ${where} must be a non-empty string or a list of strings.`);
    checkName(t, 'entity type');
    if (/^[0-9]/.test(t)) throw new ProblemError('BadRequestData', `Entity type "${truncate(t)}" starts with a digit: type names must start with a letter (or be full IRIs).`);
    const e = ctx.expandTerm(t);
    if (e.startsWith('@') || !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(e))
      throw new ProblemError('BadRequestData', `"${truncate(t)}" cannot be used as an entity type: it expands to "${e}", a JSON-LD keyword or a relative IRI.`);
    if (!out.includes(e)) out.push(e);
  }
  return out;
}

export function normalizeScope(raw: unknown): string[] {
  const list = Array.isArray(raw) ? raw : [raw];
  for (const s of list) {
    if (typeof s !== 'string' || !/^\/([^/\s#+]+(\/[^/\s#+]+)*)?$/.test(s))
      throw new ProblemError('BadRequestData', `Invalid scope ${truncate(JSON.stringify(s))}: a scope is a path like "/Madrid/Gardens".`);
  }
  return list as string[];
}

export function expandAttrName(key: string, ctx: TermResolver): string {
  checkName(key, 'attribute name');
  if (key.startsWith('@')) throw new ProblemError('BadRequestData', `"${truncate(key)}" is not a valid attribute name: names starting with "@" are JSON-LD keywords.`);
  if (RESERVED_ATTR_NAMES.has(key) || FORBIDDEN_MEMBERS.has(key)) throw new ProblemError('BadRequestData', `"${key}" is a reserved NGSI-LD member name and cannot be used as an attribute name.`);
  const iri = ctx.expandTerm(key);
  if (iri.startsWith('@') || RESERVED_IRIS.has(iri) || (iri.startsWith(NGSI_NS + 'hasPrevious')))
    throw new ProblemError('BadRequestData', `"${key}" is a reserved NGSI-LD term (${iri}) and cannot be used as an attribute name.`);
  return iri;
}

function normalizeAttr(name: string, raw: unknown, ctx: TermResolver, opts: NormalizeOptions): AttrInstance[] {
  if (Array.isArray(raw) && raw.length > 0 && raw.every(isInstanceLike)) {
    const out: AttrInstance[] = [];
    const seen = new Set<string>();
    for (const r of raw) {
      const inst = normalizeInstance(name, r, ctx, opts, true);
      const ds = inst.datasetId ?? '';
      if (seen.has(ds))
        throw new ProblemError('BadRequestData', `Attribute "${name}" has two instances with the same datasetId${ds ? ` "${ds}"` : ' (default instance)'}.`);
      seen.add(ds);
      out.push(inst);
    }
    return out;
  }
  return [normalizeInstance(name, raw, ctx, opts, true)];
}

/** Array elements count as instances only when they are typed attribute objects (concise arrays are values). */
function isInstanceLike(x: unknown): boolean {
  return isObject(x) && (typeof x.type === 'string' && ATTR_TYPES.has(x.type as AttrType) || 'value' in x || 'object' in x || 'languageMap' in x || 'vocab' in x || 'json' in x || 'valueList' in x || 'objectList' in x);
}

const GEO_NAMES = new Set(['location', 'observationSpace', 'operationSpace']);

/** Which value member each attribute type carries, and which optional core members it may have. */
const VALUE_MEMBER: Record<AttrType, string> = {
  Property: 'value', GeoProperty: 'value', Relationship: 'object', ListRelationship: 'objectList',
  LanguageProperty: 'languageMap', VocabProperty: 'vocab', JsonProperty: 'json', ListProperty: 'valueList',
};
const VALUE_MEMBERS = new Set(Object.values(VALUE_MEMBER));
const NO_UNIT = new Set<AttrType>(['Relationship', 'ListRelationship', 'JsonProperty', 'LanguageProperty', 'VocabProperty', 'GeoProperty']);

export function normalizeInstance(name: string, raw: unknown, ctx: TermResolver, opts: NormalizeOptions, topLevel: boolean): AttrInstance {
  if (raw === null) throw new ProblemError('BadRequestData', `Attribute "${name}" is null: NGSI-LD has no null values (use "${NGSI_NULL}" to delete in a merge).`);
  if (raw === NGSI_NULL) {
    if (!opts.allowNull) throw new ProblemError('BadRequestData', `Attribute "${name}" is NGSI-LD Null, which is only allowed in update and merge operations.`);
    return { type: 'Property', value: NGSI_NULL };
  }
  const geoName = GEO_NAMES.has(name);
  if (!isObject(raw) || (isObject(raw) && looksLikeGeometry(raw)) || !(typeof raw.type === 'string' || hasValueMember(raw))) {
    // concise form: a bare value, or a GeoJSON geometry
    if (isObject(raw) && looksLikeGeometry(raw)) return stampTop({ type: 'GeoProperty', value: geometry(name, raw) }, topLevel, opts);
    if (isObject(raw) && 'type' in raw && typeof raw.type !== 'string')
      throw new ProblemError('BadRequestData', `Attribute "${name}" has a non-string "type".`);
    if (isObject(raw) && '@context' in raw) throw new ProblemError('BadRequestData', `Attribute "${name}" embeds an "@context": contexts belong at entity level.`);
    if (geoName) throw new ProblemError('BadRequestData', `"${name}" must be a GeoProperty (a GeoJSON geometry), got a Property value.`);
    checkNoNull(raw, name, opts);
    return stampTop({ type: 'Property', value: raw }, topLevel, opts);
  }
  let type = raw.type as AttrType | undefined;
  if (type === undefined) type = inferType(raw, name);
  if (!ATTR_TYPES.has(type))
    throw new ProblemError('BadRequestData', `Attribute "${name}" has unknown type "${truncate(String(type))}": use Property, Relationship, GeoProperty, LanguageProperty, VocabProperty, JsonProperty, ListProperty or ListRelationship.`);
  if (geoName && type !== 'GeoProperty') throw new ProblemError('BadRequestData', `"${name}" must be a GeoProperty, got a ${type}.`);
  const own = VALUE_MEMBER[type];
  for (const k in raw) {
    if (k === '@context') throw new ProblemError('BadRequestData', `Attribute "${name}" embeds an "@context": contexts belong at entity level.`);
    if (VALUE_MEMBERS.has(k) && k !== own && !(k === 'value' && type === 'GeoProperty'))
      throw new ProblemError('BadRequestData', `${type} "${name}" cannot have a "${k}" member (a ${type} carries "${own}").`);
    if (k === 'objectType' && type !== 'Relationship' && type !== 'ListRelationship')
      throw new ProblemError('BadRequestData', `${type} "${name}" cannot have "objectType".`);
    if (FORBIDDEN_MEMBERS.has(k)) throw new ProblemError('BadRequestData', `"${k}" of "${name}" is an output-only or proof member that clients cannot set.`);
  }
  if (raw.unitCode !== undefined && NO_UNIT.has(type)) throw new ProblemError('BadRequestData', `${type} "${name}" cannot have a unitCode.`);
  const inst: AttrInstance = { type };
  switch (type) {
    case 'Property':
      if (!('value' in raw)) throw missing(name, type, 'value');
      if (raw.value === null) throw new ProblemError('BadRequestData', `Attribute "${name}" has a null value.`);
      if (raw.value === NGSI_NULL && !opts.allowNull) throw new ProblemError('BadRequestData', `Attribute "${name}" has NGSI-LD Null as value outside an update.`);
      checkNoNull(raw.value, name, opts);
      inst.value = raw.value;
      break;
    case 'GeoProperty': {
      if (!('value' in raw)) throw missing(name, type, 'value');
      let v = raw.value;
      if (typeof v === 'string' && v !== NGSI_NULL) {
        // clause 4.7.1 allows a geometry serialised as a JSON string
        try { v = JSON.parse(v); } catch { throw new ProblemError('BadRequestData', `GeoProperty "${name}" has a string value that is not a GeoJSON geometry.`); }
      }
      if (isObject(v) && v.type === 'GeometryCollection') throw new ProblemError('BadRequestData', `GeoProperty "${name}": GeometryCollection is not supported by NGSI-LD; use a Multi* geometry.`);
      inst.value = v === NGSI_NULL && opts.allowNull ? NGSI_NULL : geometry(name, v);
      break;
    }
    case 'Relationship': {
      if (!('object' in raw)) throw missing(name, type, 'object');
      const o = raw.object;
      if (o === NGSI_NULL) {
        if (!opts.allowNull) throw new ProblemError('BadRequestData', `Relationship "${name}" has NGSI-LD Null as object outside an update.`);
        inst.object = NGSI_NULL;
      } else if (Array.isArray(o) ? o.length === 0 || !o.every(isUri) : !isUri(o))
        throw new ProblemError('BadRequestData', `Relationship "${name}" must have "object" set to a URI (or list of URIs), got ${truncate(JSON.stringify(o))}.`);
      else inst.object = o as string | string[];
      if (raw.objectType !== undefined) inst.objectType = expandTypeRef(raw.objectType, ctx, name);
      break;
    }
    case 'LanguageProperty': {
      const m = raw.languageMap;
      if (raw.valueType !== undefined && raw.valueType !== 'langString' && raw.valueType !== 'rdf:langString')
        throw new ProblemError('BadRequestData', `LanguageProperty "${name}" has valueType "${String(raw.valueType)}": it can only be langString.`);
      if (m === NGSI_NULL && opts.allowNull) { inst.languageMap = NGSI_NULL as never; break; }
      if (!isObject(m)) throw missing(name, type, 'languageMap');
      if (Object.keys(m).length === 0) throw new ProblemError('BadRequestData', `LanguageProperty "${name}" has an empty languageMap.`);
      for (const [k, v] of Object.entries(m)) {
        if (k === '') throw new ProblemError('BadRequestData', `LanguageProperty "${name}" has an empty language tag.`);
        if (k !== '@none' && !/^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$/.test(k)) throw new ProblemError('BadRequestData', `LanguageProperty "${name}" has an invalid language tag "${truncate(k)}" (BCP 47, e.g. "en" or "es-ES").`);
        if (v === NGSI_NULL && !opts.allowNull) throw new ProblemError('BadRequestData', `LanguageProperty "${name}" uses NGSI-LD Null outside an update.`);
        if (!(typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string'))))
          throw new ProblemError('BadRequestData', `LanguageProperty "${name}" has a non-string value for language "${k}".`);
      }
      inst.languageMap = m as Record<string, string>;
      break;
    }
    case 'VocabProperty': {
      const v = raw.vocab;
      if (v === NGSI_NULL && opts.allowNull) { inst.vocab = NGSI_NULL; break; }
      if (typeof v === 'string' && v) inst.vocab = ctx.expandTerm(v);
      else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x)) inst.vocab = v.map((x) => ctx.expandTerm(x as string));
      else throw missing(name, type, 'vocab');
      break;
    }
    case 'JsonProperty':
      if (!('json' in raw)) throw missing(name, type, 'json');
      if (raw.json === NGSI_NULL && opts.allowNull) { inst.json = NGSI_NULL; break; }
      if (typeof raw.json !== 'object' || raw.json === null) throw new ProblemError('BadRequestData', `JsonProperty "${name}" must carry a JSON object or array in "json".`);
      inst.json = raw.json;
      break;
    case 'ListProperty':
      if (raw.valueList === NGSI_NULL && opts.allowNull) { inst.valueList = NGSI_NULL as never; break; }
      if (!Array.isArray(raw.valueList)) throw missing(name, type, 'valueList');
      checkNoNull(raw.valueList, name, opts);
      inst.valueList = raw.valueList;
      break;
    case 'ListRelationship': {
      const l = raw.objectList;
      if (l === NGSI_NULL && opts.allowNull) { inst.objectList = NGSI_NULL as never; break; }
      if (!Array.isArray(l)) throw missing(name, type, 'objectList');
      const ids = l.map((x) => (isObject(x) ? x.object : x));
      if (!ids.every(isUri)) throw new ProblemError('BadRequestData', `ListRelationship "${name}" must list URIs in "objectList".`);
      inst.objectList = ids as string[];
      if (raw.objectType !== undefined) inst.objectType = expandTypeRef(raw.objectType, ctx, name);
      break;
    }
  }
  if (raw.datasetId !== undefined && raw.datasetId !== '@none') {
    if (!topLevel) throw new ProblemError('BadRequestData', `Sub-attribute "${name}" cannot have a datasetId.`);
    if (!isUri(raw.datasetId)) throw new ProblemError('BadRequestData', `datasetId of "${name}" must be a URI, got ${truncate(JSON.stringify(raw.datasetId))}.`);
    inst.datasetId = raw.datasetId;
  }
  if (raw.observedAt !== undefined) {
    checkDateTime(raw.observedAt, `observedAt of "${name}"`);
    if (!/Z$/.test(raw.observedAt as string)) throw new ProblemError('BadRequestData', `observedAt of "${name}" must be in UTC with a trailing "Z" (e.g. "2026-01-31T12:00:00Z").`);
    inst.observedAt = raw.observedAt as string;
  }
  if (raw.expiresAt === NGSI_NULL && opts.allowNull) inst.expiresAt = NGSI_NULL;
  else if (raw.expiresAt !== undefined) {
    checkDateTime(raw.expiresAt, `expiresAt of "${name}"`);
    inst.expiresAt = raw.expiresAt as string;
  }
  if (raw.unitCode !== undefined) {
    if (typeof raw.unitCode !== 'string' || !raw.unitCode) throw new ProblemError('BadRequestData', `unitCode of "${name}" must be a string (UN/CEFACT code such as "CEL").`);
    inst.unitCode = raw.unitCode;
  }
  if (raw.lang !== undefined && type === 'Property') (inst as Record<string, unknown>).lang = raw.lang;
  for (const key in raw) {
    if (INSTANCE_CORE_KEYS.has(key) || key === '@context') continue;
    const sub = expandAttrName(key, ctx);
    (inst as Record<string, unknown>)[sub] = normalizeInstance(key, raw[key], ctx, opts, false);
  }
  return stampTop(inst, topLevel, opts);
}

function stampTop(inst: AttrInstance, topLevel: boolean, opts: NormalizeOptions): AttrInstance {
  if (topLevel) {
    inst.createdAt = opts.now;
    inst.modifiedAt = opts.now;
  }
  return inst;
}

/** JSON null has no meaning inside NGSI-LD values (merge uses it to delete keys: allowed there). */
function checkNoNull(v: unknown, name: string, opts: NormalizeOptions, depth = 0): void {
  if (opts.mergePatch || depth > 64) return;
  if (v === null) throw new ProblemError('BadRequestData', `The value of "${name}" contains a JSON null: remove the member instead.`);
  if (v === NGSI_NULL && depth > 0) throw new ProblemError('BadRequestData', `The value of "${name}" contains NGSI-LD Null inside a structured value, which only a merge may use.`);
  if (typeof v !== 'object') return;
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) checkNoNull(v[i], name, opts, depth + 1);
  else for (const k in v) checkNoNull((v as Record<string, unknown>)[k], name, opts, depth + 1);
}

function hasValueMember(o: Record<string, unknown>): boolean {
  return 'value' in o || 'object' in o || 'languageMap' in o || 'vocab' in o || 'json' in o || 'valueList' in o || 'objectList' in o;
}

function inferType(raw: Record<string, unknown>, name: string): AttrType {
  if ('object' in raw) return 'Relationship';
  if ('languageMap' in raw) return 'LanguageProperty';
  if ('vocab' in raw) return 'VocabProperty';
  if ('json' in raw) return 'JsonProperty';
  if ('valueList' in raw) return 'ListProperty';
  if ('objectList' in raw) return 'ListRelationship';
  if (isObject(raw.value) && looksLikeGeometry(raw.value) && (GEO_NAMES.has(name) || true)) return 'GeoProperty';
  return 'Property';
}

const GEO_TYPES = new Set(['Point', 'MultiPoint', 'LineString', 'MultiLineString', 'Polygon', 'MultiPolygon', 'GeometryCollection']);
function looksLikeGeometry(o: Record<string, unknown>): boolean {
  return typeof o.type === 'string' && GEO_TYPES.has(o.type) && ('coordinates' in o || 'geometries' in o);
}

function geometry(name: string, v: unknown): unknown {
  try {
    return validateGeometry(v);
  } catch (e) {
    if (e instanceof ProblemError) throw new ProblemError('BadRequestData', `GeoProperty "${name}": ${e.message}`);
    throw e;
  }
}

function expandTypeRef(raw: unknown, ctx: TermResolver, name: string): string | string[] {
  if (typeof raw === 'string') return ctx.expandTerm(raw);
  if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw.map((x) => ctx.expandTerm(x as string));
  throw new ProblemError('BadRequestData', `objectType of "${name}" must be a type name or a list of type names.`);
}

function missing(name: string, type: string, member: string) {
  return new ProblemError('BadRequestData', `${type} "${name}" needs a "${member}" member.`);
}

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

import type { ChangeEvent } from '../../bus/change-bus.ts';
import type { AttrInstance, StoredEntity } from '../../ngsi-ld/model/types.ts';
import type { MatchResult } from './match.ts';
import type { Accept, Subscription } from './types.ts';

/**
 * Notification body shaping inputs (NGSI-LD v1.9.1 clauses 5.2.14 showChanges, 5.3.1 Notification,
 * 10.5.7 null markers). Produces stored-form entities annotated for rendering; the broker's
 * representation renderer turns them into normalized / keyValues / concise JSON.
 */
export const NULL_MARKER = 'urn:ngsi-ld:null';

export interface NotifiedEntity extends StoredEntity {
  /** set when the entity was deleted (entityDeleted) */
  deletedAt?: string;
}

/** key holding the value of an instance per attribute type, and its showChanges "previous" key */
const VALUE_KEY: Record<string, [string, string]> = {
  Property: ['value', 'previousValue'],
  GeoProperty: ['value', 'previousValue'],
  Relationship: ['object', 'previousObject'],
  LanguageProperty: ['languageMap', 'previousLanguageMap'],
  VocabProperty: ['vocab', 'previousVocab'],
  JsonProperty: ['json', 'previousJson'],
  ListProperty: ['valueList', 'previousValueList'],
  ListRelationship: ['objectList', 'previousObjectList'],
};

export const PREVIOUS_KEYS = new Set(Object.values(VALUE_KEY).map(([, p]) => p));

function valueKeys(inst: AttrInstance): [string, string] {
  return VALUE_KEY[inst.type] ?? ['value', 'previousValue'];
}

function nullValue(inst: AttrInstance): unknown {
  return inst.type === 'LanguageProperty' ? { '@none': NULL_MARKER } : NULL_MARKER;
}

/** A copy of the instance with its value replaced by the null marker (and previous value if asked). */
function nulled(inst: AttrInstance, withPrevious: boolean, deletedAt: string, whole = false): AttrInstance {
  const [k, pk] = valueKeys(inst);
  const out: AttrInstance = { type: inst.type };
  if (inst.datasetId !== undefined && !whole) out.datasetId = inst.datasetId;
  out[k] = nullValue(inst);
  if (withPrevious) out[pk] = inst[k];
  if (inst.createdAt) out.createdAt = inst.createdAt;
  out.modifiedAt = inst.modifiedAt ?? deletedAt;
  out.deletedAt = deletedAt;
  return out;
}

const sameDataset = (a: AttrInstance, b: AttrInstance) => (a.datasetId ?? '') === (b.datasetId ?? '');

function keepDataset(sub: Subscription, inst: AttrInstance): boolean {
  if (!sub.datasetId) return true;
  return sub.datasetId.includes(inst.datasetId ?? '@none');
}

/**
 * Builds the entity to notify for a matched event: the state after the change, with deleted
 * attributes as null markers, `previous*` members when showChanges, filtered by
 * notification.attributes and the subscription's datasetId.
 */
export function shapeEntity(sub: Subscription, ev: ChangeEvent, m: MatchResult): NotifiedEntity {
  const show = sub.notification.showChanges;
  const src = (ev.kind === 'delete' ? ev.before : ev.after)!;
  const out: NotifiedEntity = {
    id: src.id,
    type: src.type,
    createdAt: src.createdAt,
    modifiedAt: ev.kind === 'delete' ? ev.at : src.modifiedAt,
    attrs: {},
  };
  if (src.scope) out.scope = src.scope;
  if (ev.kind === 'delete') {
    out.deletedAt = ev.at;
    // entityDeleted: the entity's identity only; attributeDeleted: the (watched) attributes as null markers
    if (m.trigger === 'attributeDeleted') for (const name of m.deleted) if (src.attrs[name]) out.attrs[name] = [nulled(src.attrs[name][0], show, ev.at, true)];
    // with showChanges the deleted entity's attributes come as null markers carrying their previous values
    if (m.trigger === 'entityDeleted' && show) for (const [name, insts] of Object.entries(src.attrs)) out.attrs[name] = insts.map((i) => nulled(i, true, ev.at));
  } else {
    const before = ev.before?.attrs ?? {};
    for (const [name, insts] of Object.entries(src.attrs)) {
      const prev = before[name];
      out.attrs[name] = insts.map((i) => {
        if (!show || !prev || !m.updated.includes(name)) return i;
        const p = prev.find((x) => sameDataset(x, i));
        if (!p) return i;
        const [k, pk] = valueKeys(p);
        return { ...i, [pk]: p[k] };
      });
    }
    for (const name of m.deleted) {
      const prev = before[name];
      if (!prev) continue;
      const now = src.attrs[name];
      if (!now) out.attrs[name] = [nulled(prev.find((i) => i.datasetId === undefined) ?? prev[0], show, ev.at, true)];
      else for (const p of prev) if (!now.some((i) => sameDataset(i, p))) out.attrs[name].push(nulled(p, show, ev.at));
    }
  }
  const only = sub.notification.attributes;
  for (const name of Object.keys(out.attrs)) {
    if (only && !only.includes(name)) {
      delete out.attrs[name];
      continue;
    }
    if (sub.datasetId) {
      const kept = out.attrs[name].filter((i) => keepDataset(sub, i));
      if (kept.length) out.attrs[name] = kept;
      else delete out.attrs[name];
    }
  }
  return out;
}

/** Applies pick / omit (entity members) to a rendered entity. */
export function pickOmit(entity: Record<string, unknown>, pick?: string[], omit?: string[]): Record<string, unknown> {
  let out = entity;
  if (pick) out = Object.fromEntries(Object.entries(out).filter(([k]) => pick.includes(k) || k === '@context'));
  if (omit) out = Object.fromEntries(Object.entries(out).filter(([k]) => !omit.includes(k)));
  return out;
}

export interface NotificationBody {
  id: string;
  type: 'Notification';
  subscriptionId: string;
  notifiedAt: string;
  data: unknown[];
  '@context'?: unknown;
  [extra: string]: unknown;
}

/** The Notification data type (5.3.1). With accept application/ld+json the @context goes in the body. */
export function notificationBody(opts: {
  id: string;
  subscriptionId: string;
  notifiedAt: string;
  data: Record<string, unknown>[];
  accept: Accept;
  context?: unknown;
  triggerReason?: string;
}): NotificationBody {
  const body: NotificationBody = {
    id: opts.id,
    type: 'Notification',
    subscriptionId: opts.subscriptionId,
    notifiedAt: opts.notifiedAt,
    data: notificationData(opts.data, opts.accept, opts.context),
  };
  if (opts.accept === 'application/ld+json' && opts.context !== undefined) body['@context'] = opts.context;
  return body;
}

/** The `data` member of a notification for an accept: GeoJSON FeatureCollection, or entities with @context for ld+json. */
export function notificationData(data: Record<string, unknown>[], accept: Accept, context?: unknown): unknown[] {
  if (accept === 'application/geo+json') return [{ type: 'FeatureCollection', features: data.map((e) => toFeature(e)) }];
  if (accept === 'application/ld+json' && context !== undefined) return data.map((e) => ({ ...e, '@context': context }));
  return data;
}

/**
 * The serialized notification after its head (id, type, subscriptionId, notifiedAt), from an
 * already serialized `data` member (`JSON.stringify(notificationData(...))`): `,"data":...` and the
 * body @context for ld+json, with the closing brace. Head + tail is the JSON of notificationBody;
 * the data of one change is serialized once for all subscriptions that render it alike.
 */
export function notificationTail(dataJson: string, accept: Accept, context?: unknown): string {
  const ctx = accept === 'application/ld+json' && context !== undefined ? `,"@context":${JSON.stringify(context)}` : '';
  return `,"data":${dataJson}${ctx}}`;
}

/** A rendered entity as a GeoJSON Feature (6.3.15), geometry from `location` (or null). */
export function toFeature(e: Record<string, unknown>, geoproperty = 'location'): Record<string, unknown> {
  const g = e[geoproperty] as Record<string, unknown> | undefined;
  let geometry: unknown = null;
  if (g && typeof g === 'object') geometry = 'value' in g ? g.value : g.type && g.coordinates ? g : null;
  const properties: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (k !== 'id' && k !== '@context') properties[k] = v;
  return { id: e.id, type: 'Feature', geometry, properties };
}

/**
 * HTTP headers of a notification (5.3.1 / 6.3.13 / 7.2): Content-Type per accept, Link to the
 * @context for application/json, and the endpoint's receiverInfo as extra headers.
 */
export function notificationHeaders(sub: Subscription, contextUrl: string | undefined): Record<string, string> {
  const accept = sub.notification.endpoint.accept;
  // canonical spelling: some receivers (and test mocks) compare header names case-sensitively
  const h: Record<string, string> = { 'Content-Type': accept === 'application/ld+json' ? 'application/ld+json' : accept };
  if (accept !== 'application/ld+json' && contextUrl) {
    h.Link = `<${contextUrl}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`;
  }
  if (sub.tenant) h['NGSILD-Tenant'] = sub.tenant;
  for (const p of sub.notification.endpoint.receiverInfo ?? []) {
    for (const k of Object.keys(h)) if (k.toLowerCase() === p.key.toLowerCase()) delete h[k];
    h[p.key] = p.value;
  }
  return h;
}

/** The MQTT notification shape (7.3.x): {metadata: headers, body: notification}. */
export function mqttPayload(headers: Record<string, string>, body: NotificationBody): { metadata: Record<string, string>; body: NotificationBody } {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) metadata[canonicalHeader(k)] = v;
  return { metadata, body };
}

/**
 * The broker's own metadata names in their canonical spelling; anything else (receiverInfo keys)
 * is passed on exactly as the subscriber wrote it (7.3: MQTT metadata carries receiverInfo as given).
 */
const CANONICAL_HEADERS: Record<string, string> = { 'content-type': 'Content-Type', link: 'Link', 'ngsild-tenant': 'NGSILD-Tenant' };

function canonicalHeader(k: string): string {
  return CANONICAL_HEADERS[k.toLowerCase()] ?? k;
}

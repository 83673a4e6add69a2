import { ProblemError } from '../../common/problem.ts';
import type { ContextRef } from '../../ngsi-ld/broker-api.ts';
import {
  ACCEPTS,
  DEFAULT_TRIGGERS,
  TRIGGERS,
  type Accept,
  type Endpoint,
  type EntitySelector,
  type ExpandTerm,
  type GeoQ,
  type KeyValuePair,
  type NotificationFormat,
  type NotificationParams,
  type Subscription,
  type SubscriptionStatus,
  type Trigger,
} from './types.ts';

/**
 * Validation and normalisation of Subscription payloads (NGSI-LD v1.9.1 clauses 5.2.12, 5.2.14,
 * 5.2.15, 5.2.22, 5.8.1, 5.8.2). Pure: terms are expanded with the injected `expandTerm`, q /
 * scopeQ / geoQ syntax is checked by optional injected validators that throw.
 */
export interface ValidationDeps {
  expandTerm: ExpandTerm;
  /** epoch ms */
  now: number;
  validateQ?: (q: string) => void;
  validateScopeQ?: (q: string) => void;
  validateGeoQ?: (g: GeoQ) => void;
}

const LOCATION = 'https://uri.etsi.org/ngsi-ld/location';
const NULL = 'urn:ngsi-ld:null';
/** members a client may not set (computed by the broker); silently ignored on input */
const READ_ONLY = new Set(['status', 'createdAt', 'modifiedAt', '@context']);
const KNOWN = new Set([
  'id', 'type', 'subscriptionName', 'description', 'entities', 'watchedAttributes', 'notificationTrigger',
  'timeInterval', 'q', 'geoQ', 'csf', 'isActive', 'notification', 'expiresAt', 'throttling', 'temporalQ',
  'scopeQ', 'lang', 'jsonldContext', 'datasetId', ...READ_ONLY,
]);
/** entity members that pick/omit may name without expansion */
const ENTITY_KEYWORDS = new Set(['id', 'type', 'scope', 'createdAt', 'modifiedAt', 'deletedAt', '@context']);

const bad = (detail: string) => new ProblemError('BadRequestData', detail);

export function isUri(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/.test(s) && s.length > 0;
}

export function isDateTime(s: unknown): s is string {
  return (
    typeof s === 'string' &&
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(s) &&
    !Number.isNaN(Date.parse(s))
  );
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function strArray(v: unknown, name: string, opts: { nonEmpty?: boolean } = {}): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === '')) {
    throw bad(`${name} must be an array of non-empty strings`);
  }
  if (opts.nonEmpty && v.length === 0) throw bad(`${name} must not be an empty array`);
  return v as string[];
}

function positiveNumber(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(`${name} must be a number greater than 0`);
  return v;
}

/** Parses a type selection (4.17: ',' or '|' = OR, ';' = AND, parentheses for grouping) into DNF. */
export function parseTypeSelection(expr: string, expand: ExpandTerm): string[][] {
  let i = 0;
  const s = expr.replace(/\s+/g, '');
  const parseOr = (): string[][] => {
    let acc = parseAnd();
    while (s[i] === ',' || s[i] === '|') {
      i++;
      acc = acc.concat(parseAnd());
    }
    return acc;
  };
  const parseAnd = (): string[][] => {
    let acc = parseAtom();
    while (s[i] === ';') {
      i++;
      const rhs = parseAtom();
      const next: string[][] = [];
      for (const a of acc) for (const b of rhs) next.push([...new Set([...a, ...b])]);
      acc = next;
    }
    return acc;
  };
  const parseAtom = (): string[][] => {
    if (s[i] === '(') {
      i++;
      const r = parseOr();
      if (s[i] !== ')') throw bad(`invalid type selection "${expr}": missing ')'`);
      i++;
      return r;
    }
    const m = /^[^,|;()]+/.exec(s.slice(i));
    if (!m) throw bad(`invalid type selection "${expr}"`);
    i += m[0].length;
    return [[expand(m[0])]];
  };
  const r = parseOr();
  if (i !== s.length) throw bad(`invalid type selection "${expr}"`);
  return r;
}

function parseEntities(v: unknown, expand: ExpandTerm): EntitySelector[] {
  if (!Array.isArray(v) || v.length === 0) throw bad('entities must be a non-empty array of EntitySelector');
  return v.map((e, n) => {
    if (!isObj(e)) throw bad(`entities[${n}] must be an object`);
    if (typeof e.type !== 'string' || e.type === '') throw bad(`entities[${n}].type is mandatory and must be a string`);
    const sel: EntitySelector = { type: e.type, typeExpr: parseTypeSelection(e.type, expand) };
    if (e.id !== undefined) {
      if (!isUri(e.id)) throw bad(`entities[${n}].id must be a URI`);
      sel.id = e.id;
    }
    if (e.idPattern !== undefined) {
      if (typeof e.idPattern !== 'string') throw bad(`entities[${n}].idPattern must be a string`);
      try {
        new RegExp(e.idPattern);
      } catch {
        throw bad(`entities[${n}].idPattern is not a valid regular expression`);
      }
      sel.idPattern = e.idPattern;
    }
    return sel;
  });
}

function parseKeyValues(v: unknown, name: string): KeyValuePair[] {
  if (!Array.isArray(v)) throw bad(`${name} must be an array of {key, value}`);
  return v.map((p, n) => {
    if (!isObj(p) || typeof p.key !== 'string' || p.key === '' || typeof p.value !== 'string') {
      throw bad(`${name}[${n}] must be a KeyValuePair with string key and string value`);
    }
    return { key: p.key, value: p.value };
  });
}

const SCHEMES = new Set(['http:', 'https:', 'mqtt:', 'mqtts:']);

export function parseEndpoint(v: unknown): Endpoint {
  if (!isObj(v)) throw bad('notification.endpoint is mandatory and must be an object');
  if (typeof v.uri !== 'string' || !isUri(v.uri)) throw bad('notification.endpoint.uri is mandatory and must be a URI');
  let url: URL;
  try {
    url = new URL(v.uri);
  } catch {
    throw bad(`notification.endpoint.uri "${v.uri}" is not a valid URI`);
  }
  if (!SCHEMES.has(url.protocol)) {
    throw bad(`notification.endpoint.uri scheme "${url.protocol}" is not supported (http, https, mqtt, mqtts)`);
  }
  if (!url.hostname) throw bad('notification.endpoint.uri must name a host');
  const ep: Endpoint = { uri: v.uri, accept: 'application/json' };
  if (v.accept !== undefined) {
    if (!ACCEPTS.includes(v.accept as Accept)) {
      throw bad(`notification.endpoint.accept must be one of ${ACCEPTS.join(', ')}`);
    }
    ep.accept = v.accept as Accept;
  }
  if (v.timeout !== undefined) ep.timeout = positiveNumber(v.timeout, 'notification.endpoint.timeout');
  if (v.cooldown !== undefined) ep.cooldown = positiveNumber(v.cooldown, 'notification.endpoint.cooldown');
  if (v.receiverInfo !== undefined) ep.receiverInfo = parseKeyValues(v.receiverInfo, 'notification.endpoint.receiverInfo');
  if (v.notifierInfo !== undefined) {
    ep.notifierInfo = parseKeyValues(v.notifierInfo, 'notification.endpoint.notifierInfo');
    for (const p of ep.notifierInfo) {
      if (p.key === 'MQTT-QoS' && !['0', '1', '2'].includes(p.value)) throw bad('notifierInfo MQTT-QoS must be 0, 1 or 2');
      if (p.key === 'MQTT-Version' && !['mqtt3.1.1', 'mqtt5.0'].includes(p.value)) {
        throw bad('notifierInfo MQTT-Version must be mqtt3.1.1 or mqtt5.0');
      }
    }
  }
  return ep;
}

function expandMembers(list: string[], expand: ExpandTerm): string[] {
  return list.map((m) => (ENTITY_KEYWORDS.has(m) ? m : expand(m)));
}

export function parseNotification(v: unknown, expand: ExpandTerm): NotificationParams {
  if (!isObj(v)) throw bad('notification is mandatory and must be an object');
  let format: NotificationFormat = 'normalized';
  if (v.format !== undefined) {
    if (v.format === 'normalized' || v.format === 'keyValues' || v.format === 'concise') format = v.format;
    else if (v.format === 'simplified') format = 'keyValues';
    else throw bad('notification.format must be normalized, keyValues (simplified) or concise');
  }
  const n: NotificationParams = { format, showChanges: false, sysAttrs: false, endpoint: parseEndpoint(v.endpoint) };
  if (v.attributes !== undefined) n.attributes = strArray(v.attributes, 'notification.attributes', { nonEmpty: true }).map(expand);
  if (v.pick !== undefined) n.pick = expandMembers(strArray(v.pick, 'notification.pick', { nonEmpty: true }), expand);
  if (v.omit !== undefined) n.omit = expandMembers(strArray(v.omit, 'notification.omit', { nonEmpty: true }), expand);
  if (n.attributes && (n.pick || n.omit)) throw bad('notification.attributes cannot be combined with pick or omit');
  if (n.pick && n.omit) {
    const both = n.pick.filter((m) => n.omit!.includes(m));
    if (both.length) throw bad(`notification.pick and notification.omit both name ${both.join(', ')}`);
  }
  if (v.showChanges !== undefined) {
    if (typeof v.showChanges !== 'boolean') throw bad('notification.showChanges must be a boolean');
    n.showChanges = v.showChanges;
  }
  if (n.showChanges && format === 'keyValues') throw bad('notification.showChanges cannot be true with format keyValues');
  if (v.sysAttrs !== undefined) {
    if (typeof v.sysAttrs !== 'boolean') throw bad('notification.sysAttrs must be a boolean');
    n.sysAttrs = v.sysAttrs;
  }
  if (v.join !== undefined) {
    if (v.join !== 'flat' && v.join !== 'inline' && v.join !== '@none') throw bad('notification.join must be flat, inline or @none');
    n.join = v.join;
  }
  if (v.joinLevel !== undefined) {
    if (!Number.isInteger(v.joinLevel) || (v.joinLevel as number) < 1) throw bad('notification.joinLevel must be a positive integer');
    n.joinLevel = v.joinLevel as number;
  }
  return n;
}

function parseGeoQ(v: unknown, expand: ExpandTerm): GeoQ {
  if (!isObj(v)) throw bad('geoQ must be an object');
  if (typeof v.geometry !== 'string') throw bad('geoQ.geometry is mandatory');
  if (v.coordinates === undefined || v.coordinates === null) throw bad('geoQ.coordinates is mandatory');
  if (typeof v.georel !== 'string') throw bad('geoQ.georel is mandatory');
  let coordinates = v.coordinates;
  if (typeof coordinates === 'string') {
    try {
      coordinates = JSON.parse(coordinates);
    } catch {
      throw bad('geoQ.coordinates is not a valid JSON array');
    }
  }
  if (!Array.isArray(coordinates)) throw bad('geoQ.coordinates must be an array');
  const geometries = ['Point', 'MultiPoint', 'LineString', 'MultiLineString', 'Polygon', 'MultiPolygon'];
  if (!geometries.includes(v.geometry)) throw bad(`geoQ.geometry "${v.geometry}" is not supported`);
  if (!/^(near;(maxDistance|minDistance)==\d+(\.\d+)?|within|contains|intersects|equals|disjoint|overlaps)$/.test(v.georel)) {
    throw bad(`geoQ.georel "${v.georel}" is not valid`);
  }
  let geoproperty = LOCATION;
  if (v.geoproperty !== undefined) {
    if (typeof v.geoproperty !== 'string' || v.geoproperty === '') throw bad('geoQ.geoproperty must be a string');
    geoproperty = expand(v.geoproperty);
  }
  return { geometry: v.geometry, coordinates, georel: v.georel, geoproperty };
}

function parseTriggers(v: unknown): Trigger[] {
  const list = strArray(v, 'notificationTrigger', { nonEmpty: true });
  for (const t of list) if (!TRIGGERS.includes(t as Trigger)) throw bad(`notificationTrigger "${t}" is not one of ${TRIGGERS.join(', ')}`);
  return [...new Set(list)] as Trigger[];
}

/** Applies one member of a payload/fragment onto a subscription under construction. */
function applyMember(sub: Partial<Subscription>, key: string, v: unknown, deps: ValidationDeps, creating: boolean): void {
  const expand = deps.expandTerm;
  switch (key) {
    case 'subscriptionName':
    case 'description':
    case 'lang':
    case 'csf':
      if (typeof v !== 'string') throw bad(`${key} must be a string`);
      sub[key] = v;
      return;
    case 'entities':
      sub.entities = parseEntities(v, expand);
      return;
    case 'watchedAttributes':
      sub.watchedAttributes = strArray(v, 'watchedAttributes', { nonEmpty: true }).map(expand);
      return;
    case 'notificationTrigger':
      sub.notificationTrigger = parseTriggers(v);
      return;
    case 'timeInterval':
      sub.timeInterval = positiveNumber(v, 'timeInterval');
      return;
    case 'throttling':
      sub.throttling = positiveNumber(v, 'throttling');
      return;
    case 'q':
      if (typeof v !== 'string' || v === '') throw bad('q must be a non-empty string');
      deps.validateQ?.(v);
      sub.q = v;
      return;
    case 'scopeQ':
      if (typeof v !== 'string' || v === '') throw bad('scopeQ must be a non-empty string');
      deps.validateScopeQ?.(v);
      sub.scopeQ = v;
      return;
    case 'geoQ': {
      const g = parseGeoQ(v, expand);
      deps.validateGeoQ?.(g);
      sub.geoQ = g;
      return;
    }
    case 'isActive':
      if (typeof v !== 'boolean') throw bad('isActive must be a boolean');
      sub.isActive = v;
      sub.isActiveGiven = true;
      return;
    case 'expiresAt':
      if (!isDateTime(v)) throw bad('expiresAt must be a DateTime');
      if (Date.parse(v) <= deps.now) throw bad('expiresAt must be in the future');
      sub.expiresAt = v;
      return;
    case 'notification':
      sub.notification = parseNotification(v, expand);
      return;
    case 'jsonldContext':
      if (!isUri(v)) throw bad('jsonldContext must be a URI');
      sub.jsonldContext = v;
      return;
    case 'datasetId':
      sub.datasetId = strArray(typeof v === 'string' ? [v] : v, 'datasetId', { nonEmpty: true });
      for (const d of sub.datasetId) if (!isUri(d)) throw bad('datasetId must contain URIs');
      return;
    case 'temporalQ':
      if (!isObj(v)) throw bad('temporalQ must be an object');
      return; // accepted, not used for current-state notifications
    default:
      if (!creating) return;
  }
}

function checkConsistency(sub: Partial<Subscription>): void {
  if (!sub.entities && !sub.watchedAttributes) throw bad('at least one of entities or watchedAttributes must be present');
  if (sub.timeInterval !== undefined && sub.watchedAttributes) {
    throw bad('timeInterval and watchedAttributes cannot both be present');
  }
  if (sub.timeInterval !== undefined && sub.throttling !== undefined) {
    throw bad('timeInterval and throttling cannot both be present');
  }
  if (!sub.notification) throw bad('notification is mandatory');
}

/** Validates a create payload (its @context already taken out and resolved to `expandTerm`). */
export function parseSubscription(
  payload: unknown,
  deps: ValidationDeps,
  opts: { tenant: string; context?: ContextRef; newId: () => string },
): Subscription {
  if (!isObj(payload)) throw bad('a Subscription must be a JSON object');
  if (payload.type !== 'Subscription') throw bad('type must be "Subscription"');
  let id: string;
  if (payload.id === undefined) id = opts.newId();
  else if (!isUri(payload.id)) throw bad('id must be a URI');
  else id = payload.id;
  const now = new Date(deps.now).toISOString();
  const sub: Partial<Subscription> = {
    id,
    tenant: opts.tenant,
    isActive: true,
    notificationTrigger: [...DEFAULT_TRIGGERS],
    createdAt: now,
    modifiedAt: now,
  };
  if (opts.context !== undefined) sub.context = opts.context;
  for (const [k, v] of Object.entries(payload)) {
    if (k === 'id' || k === 'type' || READ_ONLY.has(k)) continue;
    if (v === null) throw bad(`${k} must not be null`);
    applyMember(sub, k, v, deps, true);
  }
  checkConsistency(sub);
  return sub as Subscription;
}

/** Members whose removal (null) is refused because they are mandatory or would leave it invalid. */
const MANDATORY = new Set(['notification', 'type', 'id']);

/**
 * Applies an update fragment (5.8.2): members replace, null (or "urn:ngsi-ld:null") removes optional
 * members, `notification` members merge into the existing NotificationParams. Returns the new form.
 */
export function applySubscriptionUpdate(existing: Subscription, fragment: unknown, deps: ValidationDeps): Subscription {
  if (!isObj(fragment)) throw bad('a Subscription fragment must be a JSON object');
  if (fragment.type !== undefined && fragment.type !== 'Subscription') throw bad('type must be "Subscription"');
  if (fragment.id !== undefined && fragment.id !== existing.id) throw bad('id of a Subscription cannot be changed');
  const next: Partial<Subscription> = structuredClone(existing);
  let touched = 0;
  for (const [k, raw] of Object.entries(fragment)) {
    if (k === 'id' || k === 'type' || READ_ONLY.has(k)) continue;
    if (!KNOWN.has(k)) continue;
    touched++;
    if (raw === null || raw === NULL) {
      if (MANDATORY.has(k)) throw bad(`${k} is mandatory and cannot be removed`);
      if (k === 'isActive') {
        next.isActive = true;
        delete next.isActiveGiven;
      }
      else if (k === 'notificationTrigger') next.notificationTrigger = [...DEFAULT_TRIGGERS];
      else delete (next as Record<string, unknown>)[k];
      continue;
    }
    if (k === 'notification') {
      if (!isObj(raw)) throw bad('notification must be an object');
      // 5.8.2: a member of the fragment replaces the existing one: NotificationParams as a whole
      if (raw.endpoint === undefined) throw bad('notification in an update replaces the whole NotificationParams: its endpoint is mandatory');
      next.notification = parseNotification(raw, (t) => (t.includes(':') ? t : deps.expandTerm(t)));
      continue;
    }
    applyMember(next, k, raw, deps, false);
  }
  if (touched === 0 && Object.keys(fragment).filter((k) => k !== 'id' && k !== 'type' && k !== '@context').length > 0) {
    throw bad('the fragment contains no Subscription member');
  }
  checkConsistency(next);
  next.modifiedAt = new Date(deps.now).toISOString();
  return next as Subscription;
}

/** Current status (5.2.12): expired wins over paused. */
export function subscriptionStatus(sub: Subscription, now: number): SubscriptionStatus {
  if (sub.expiresAt && Date.parse(sub.expiresAt) <= now) return 'expired';
  return sub.isActive ? 'active' : 'paused';
}

/** NotificationParams back to payload form, compacting attribute names with `compact`. */
export function notificationToPayload(n: NotificationParams, compact: (iri: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (n.attributes) out.attributes = n.attributes.map(compact);
  if (n.pick) out.pick = n.pick.map((m) => (ENTITY_KEYWORDS.has(m) ? m : compact(m)));
  if (n.omit) out.omit = n.omit.map((m) => (ENTITY_KEYWORDS.has(m) ? m : compact(m)));
  out.format = n.format;
  if (n.showChanges) out.showChanges = true;
  if (n.sysAttrs) out.sysAttrs = true;
  const ep: Record<string, unknown> = { uri: n.endpoint.uri, accept: n.endpoint.accept };
  if (n.endpoint.timeout !== undefined) ep.timeout = n.endpoint.timeout;
  if (n.endpoint.cooldown !== undefined) ep.cooldown = n.endpoint.cooldown;
  if (n.endpoint.receiverInfo) ep.receiverInfo = n.endpoint.receiverInfo;
  if (n.endpoint.notifierInfo) ep.notifierInfo = n.endpoint.notifierInfo;
  out.endpoint = ep;
  if (n.join) out.join = n.join;
  if (n.joinLevel !== undefined) out.joinLevel = n.joinLevel;
  return out;
}

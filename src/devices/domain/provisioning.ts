/**
 * Validation and normalisation of the FIWARE IoT Agent provisioning payloads
 * (POST/PUT /iot/services, POST/PUT /iot/devices) and of the fiware-service / fiware-servicepath
 * headers. Lenient where the FIWARE agents are lenient (unknown fields are kept, legacy `type`
 * for `entity_type`, `cbroker`/`cbHost`), strict where a wrong value would break ingestion
 * (identifiers used in MQTT topics, expressions that do not parse, wrong JSON types).
 */
import { ProblemError } from '../../common/problem.ts';
import { compileExpression, ExpressionError } from './expression.ts';
import type { AttrMapping, Device, HealthSpec, ServiceGroup } from './types.ts';

/** FIWARE-style error (`{name, message}` body) carried as a ProblemError. */
export function iotError(status: 400 | 404 | 409, name: string, message: string): ProblemError {
  const kind = status === 404 ? 'ResourceNotFound' : status === 409 ? 'AlreadyExists' : 'BadRequestData';
  return new ProblemError(kind, message, { name, message });
}
const wrong = (msg: string) => iotError(400, 'WRONG_SYNTAX', msg);

export interface Scope {
  /** Urbis tenant ('' = default tenant) */
  tenant: string;
  /** fiware-service as given (lower-cased) */
  service: string;
  /** fiware-servicepath ('/' default); '/*' or '/#' only when `allowWildcard` */
  servicePath: string;
}

const SERVICE_RE = /^[a-z0-9_]{0,50}$/;
const SERVICE_PATH_RE = /^\/[A-Za-z0-9_]{0,50}(\/[A-Za-z0-9_]{1,50}){0,9}$/;

/** Map fiware-service / fiware-servicepath headers to an Urbis scope. */
export function scopeFromHeaders(headers: Record<string, unknown>, allowWildcard = false): Scope {
  const raw = headers['fiware-service'];
  const service = (typeof raw === 'string' ? raw : '').trim().toLowerCase();
  if (!SERVICE_RE.test(service)) throw iotError(400, 'BAD_REQUEST', `invalid fiware-service "${service}"`);
  const rawPath = headers['fiware-servicepath'];
  const servicePath = (typeof rawPath === 'string' && rawPath.trim() !== '' ? rawPath.trim() : '/').replace(/\/$/, '') || '/';
  if (!(allowWildcard && (servicePath === '/*' || servicePath === '/#')) && !SERVICE_PATH_RE.test(servicePath))
    throw iotError(400, 'BAD_REQUEST', `invalid fiware-servicepath "${servicePath}"`);
  return { tenant: service, service, servicePath };
}

export function servicePathMatches(filter: string, path: string): boolean {
  if (filter === '/*' || filter === '/#') return true;
  return filter === path;
}

/** identifiers that appear in MQTT topics and URLs */
const ID_RE = /^[A-Za-z0-9_.:@\-]{1,256}$/;
const ATTR_NAME_RE = /^[^\s#+/"'<>=;()]{1,256}$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function optStr(o: Record<string, unknown>, k: string, where: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw wrong(`${where}: "${k}" must be a string`);
  return v;
}
function optBool(o: Record<string, unknown>, k: string, where: string): boolean | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw wrong(`${where}: "${k}" must be a boolean`);
}

function checkExpression(src: unknown, where: string): string {
  if (typeof src !== 'string') throw wrong(`${where}: expression must be a string`);
  try {
    compileExpression(src);
  } catch (e) {
    if (e instanceof ExpressionError) throw wrong(`${where}: invalid expression "${src}": ${e.message}`);
    throw e;
  }
  return src;
}

function normaliseAttrs(v: unknown, kind: 'attributes' | 'lazy' | 'commands' | 'static_attributes', where: string): AttrMapping[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw wrong(`${where}: "${kind}" must be an array`);
  return v.map((a, i) => {
    const w = `${where}.${kind}[${i}]`;
    if (!isObj(a)) throw wrong(`${w} must be an object`);
    const name = a.name;
    if (typeof name !== 'string' || !ATTR_NAME_RE.test(name)) throw wrong(`${w}: "name" must be a valid attribute name`);
    const out: AttrMapping = { ...a, name, type: typeof a.type === 'string' && a.type ? a.type : kind === 'commands' ? 'command' : 'Text' };
    if (a.type !== undefined && typeof a.type !== 'string') throw wrong(`${w}: "type" must be a string`);
    if (a.object_id !== undefined) {
      if (typeof a.object_id !== 'string' || a.object_id === '') throw wrong(`${w}: "object_id" must be a non-empty string`);
    }
    if (a.metadata !== undefined && !isObj(a.metadata)) throw wrong(`${w}: "metadata" must be an object`);
    if (a.expression !== undefined && a.expression !== null) out.expression = checkExpression(a.expression, w);
    else delete out.expression;
    for (const k of ['entity_name', 'entity_type', 'payloadType', 'contentType'] as const)
      if (a[k] !== undefined && typeof a[k] !== 'string') throw wrong(`${w}: "${k}" must be a string`);
    if (a.mqtt !== undefined) {
      if (!isObj(a.mqtt)) throw wrong(`${w}: "mqtt" must be an object`);
      const q = a.mqtt.qos;
      if (q !== undefined && q !== 0 && q !== 1 && q !== 2) throw wrong(`${w}: mqtt.qos must be 0, 1 or 2`);
    }
    return out;
  });
}

function normaliseExplicitAttrs(v: unknown, where: string): boolean | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (v === 'true' || v === 'false') return v === 'true';
    return checkExpression(v, `${where}.explicitAttrs`);
  }
  throw wrong(`${where}: "explicitAttrs" must be a boolean or an expression string`);
}

function normaliseHealth(v: unknown, where: string): HealthSpec | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw wrong(`${where}: "health" must be an object`);
  const num = (k: string) => {
    const x = v[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) throw wrong(`${where}: health.${k} must be a non-negative number`);
    return x;
  };
  const out: HealthSpec = {};
  const ei = num('expectedInterval');
  if (ei !== undefined) out.expectedInterval = ei;
  const fa = num('frozenAfter');
  if (fa !== undefined) out.frozenAfter = fa;
  const bl = num('batteryLow');
  if (bl !== undefined) out.batteryLow = bl;
  if (v.batteryAttr !== undefined) {
    if (typeof v.batteryAttr !== 'string') throw wrong(`${where}: health.batteryAttr must be a string`);
    out.batteryAttr = v.batteryAttr;
  }
  if (v.ranges !== undefined) {
    if (!isObj(v.ranges)) throw wrong(`${where}: health.ranges must be an object`);
    out.ranges = {};
    for (const [k, r] of Object.entries(v.ranges)) {
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'number' || typeof r[1] !== 'number' || r[0] > r[1])
        throw wrong(`${where}: health.ranges.${k} must be [min, max]`);
      out.ranges[k] = [r[0], r[1]];
    }
  }
  return out;
}

/** Normalise one config group of a POST /iot/services body (scope from headers wins). */
export function normaliseGroup(raw: unknown, scope: Scope, where = 'services[0]'): ServiceGroup {
  if (!isObj(raw)) throw wrong(`${where} must be an object`);
  const apikey = raw.apikey;
  if (typeof apikey !== 'string' || !/^[A-Za-z0-9_.\-]{0,256}$/.test(apikey))
    throw wrong(`${where}: "apikey" is mandatory and may only contain letters, digits, "_", "-" and "."`);
  const resource = optStr(raw, 'resource', where) ?? '';
  const entityType = optStr(raw, 'entity_type', where) ?? optStr(raw, 'type', where);
  if (raw.entityNameExp !== undefined && raw.entityNameExp !== null) checkExpression(raw.entityNameExp, `${where}.entityNameExp`);
  const g: ServiceGroup = {
    ...raw,
    service: scope.service,
    subservice: scope.servicePath,
    apikey,
    resource,
    attributes: normaliseAttrs(raw.attributes, 'attributes', where),
    lazy: normaliseAttrs(raw.lazy, 'lazy', where),
    commands: normaliseAttrs(raw.commands, 'commands', where),
    static_attributes: normaliseAttrs(raw.static_attributes, 'static_attributes', where),
    autoprovision: optBool(raw, 'autoprovision', where) ?? true,
  };
  delete (g as Record<string, unknown>).type;
  delete (g as Record<string, unknown>).service_path;
  if (entityType) g.entity_type = entityType;
  const ts = optBool(raw, 'timestamp', where);
  if (ts !== undefined) g.timestamp = ts;
  const ea = normaliseExplicitAttrs(raw.explicitAttrs, where);
  if (ea !== undefined) g.explicitAttrs = ea;
  else delete g.explicitAttrs;
  for (const k of ['trust', 'cbHost', 'cbroker', 'ngsiVersion', 'defaultEntityNameConjunction', 'payloadType', 'transport', 'endpoint', 'protocol', 'description', 'expressionLanguage'])
    optStr(raw, k, where);
  const h = normaliseHealth(raw.health, where);
  if (h) g.health = h;
  else delete g.health;
  return g;
}

/** Body of POST /iot/services: `{"services": [...]}` */
export function parseGroupsBody(body: unknown, scope: Scope): ServiceGroup[] {
  if (!isObj(body) || !Array.isArray(body.services)) throw wrong('body must be an object with a "services" array');
  if (body.services.length === 0) throw wrong('"services" must not be empty');
  const groups = body.services.map((s, i) => normaliseGroup(s, scope, `services[${i}]`));
  const seen = new Set<string>();
  for (const g of groups) {
    const k = `${g.resource}\u0000${g.apikey}`;
    if (seen.has(k)) throw iotError(409, 'DUPLICATE_GROUP', `duplicate group for resource "${g.resource}" and apikey "${g.apikey}"`);
    seen.add(k);
  }
  return groups;
}

/** PUT /iot/services?resource=&apikey=: partial update of a stored group. */
export function mergeGroupUpdate(existing: ServiceGroup, patch: unknown): ServiceGroup {
  if (!isObj(patch)) throw wrong('body must be an object');
  const merged = { ...existing, ...patch, apikey: patch.apikey ?? existing.apikey, resource: patch.resource ?? existing.resource };
  return normaliseGroup(merged, { tenant: existing.service, service: existing.service, servicePath: existing.subservice }, 'service');
}

/** Default entity id of a device: entity_name if given (made a URI when it is not), else urn:ngsi-ld:<type>:<device_id>. */
export function defaultEntityName(deviceId: string, entityType: string, conj?: string): string {
  return conj && conj !== ':' ? `urn:ngsi-ld:${entityType}${conj}${deviceId}` : `urn:ngsi-ld:${entityType}:${deviceId}`;
}

/** NGSI-LD ids must be absolute URIs: "Room1" becomes urn:ngsi-ld:<type>:Room1, "WasteContainer:WC45" is kept. */
export function toEntityUri(name: string, entityType: string): string {
  return /^[A-Za-z][A-Za-z0-9+.\-]*:\S+$/.test(name) ? name : `urn:ngsi-ld:${entityType}:${name}`;
}

export function normaliseDevEui(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const hex = v.replace(/[-:\s]/g, '').toUpperCase();
  return /^[0-9A-F]{16}$/.test(hex) ? hex : undefined;
}

/** Normalise one device of a POST /iot/devices body. `group` (if any) supplies defaults. */
export function normaliseDevice(raw: unknown, scope: Scope, group?: ServiceGroup, where = 'devices[0]'): Device {
  if (!isObj(raw)) throw wrong(`${where} must be an object`);
  const id = raw.device_id;
  if (typeof id !== 'string' || !ID_RE.test(id))
    throw wrong(`${where}: "device_id" is mandatory and may only contain letters, digits and "_ . : @ -"`);
  const entityType = optStr(raw, 'entity_type', where) ?? group?.entity_type ?? 'Thing';
  if (!/^[A-Za-z0-9_:\-./#]{1,256}$/.test(entityType)) throw wrong(`${where}: invalid "entity_type"`);
  const name = optStr(raw, 'entity_name', where);
  const entityName = name ? toEntityUri(name, entityType) : defaultEntityName(id, entityType, group?.defaultEntityNameConjunction);
  const transport = optStr(raw, 'transport', where);
  if (transport !== undefined && !/^(MQTT|HTTP|AMQP|LORAWAN|COAP)$/i.test(transport))
    throw wrong(`${where}: "transport" must be one of MQTT, HTTP, AMQP, LORAWAN`);
  const apikey = optStr(raw, 'apikey', where);
  if (apikey !== undefined && !/^[A-Za-z0-9_.\-]{0,256}$/.test(apikey)) throw wrong(`${where}: invalid "apikey"`);
  const d: Device = {
    ...raw,
    device_id: id,
    service: scope.service,
    service_path: scope.servicePath,
    entity_name: entityName,
    entity_type: entityType,
    attributes: normaliseAttrs(raw.attributes, 'attributes', where),
    lazy: normaliseAttrs(raw.lazy, 'lazy', where),
    commands: normaliseAttrs(raw.commands, 'commands', where),
    static_attributes: normaliseAttrs(raw.static_attributes, 'static_attributes', where),
  };
  delete (d as Record<string, unknown>).autoprovision;
  if (transport) d.transport = transport.toUpperCase();
  const ts = optBool(raw, 'timestamp', where);
  if (ts !== undefined) d.timestamp = ts;
  const polling = optBool(raw, 'polling', where);
  if (polling !== undefined) d.polling = polling;
  const ea = normaliseExplicitAttrs(raw.explicitAttrs, where);
  if (ea !== undefined) d.explicitAttrs = ea;
  else delete d.explicitAttrs;
  for (const k of ['timezone', 'endpoint', 'protocol', 'ngsiVersion', 'payloadType']) optStr(raw, k, where);
  // LoRaWAN DevEUI: FIWARE IoTagent-LoRaWAN puts it in internal_attributes.lorawan.dev_eui
  const ia = raw.internal_attributes;
  const lw = isObj(ia) && isObj(ia.lorawan) ? ia.lorawan : isObj(raw.lorawan) ? raw.lorawan : undefined;
  const euiRaw = lw?.dev_eui ?? lw?.devEui ?? raw.dev_eui;
  if (euiRaw !== undefined) {
    const eui = normaliseDevEui(euiRaw);
    if (!eui) throw wrong(`${where}: dev_eui must be 16 hexadecimal digits`);
    d.dev_eui = eui;
  }
  const h = normaliseHealth(raw.health, where);
  if (h) d.health = h;
  else delete d.health;
  return d;
}

export function parseDevicesBody(body: unknown, scope: Scope, groupFor: (apikey?: string, entityType?: string) => ServiceGroup | undefined): Device[] {
  if (!isObj(body) || !Array.isArray(body.devices)) throw wrong('body must be an object with a "devices" array');
  if (body.devices.length === 0) throw wrong('"devices" must not be empty');
  const out = body.devices.map((d, i) => {
    const apikey = isObj(d) && typeof d.apikey === 'string' ? d.apikey : undefined;
    const type = isObj(d) && typeof d.entity_type === 'string' ? d.entity_type : undefined;
    return normaliseDevice(d, scope, groupFor(apikey, type), `devices[${i}]`);
  });
  const seen = new Set<string>();
  for (const d of out) {
    if (seen.has(d.device_id)) throw iotError(409, 'DUPLICATE_DEVICE_ID', `duplicate device_id "${d.device_id}"`);
    seen.add(d.device_id);
  }
  return out;
}

/** PUT /iot/devices/:id: device_id, entity_name and entity_type cannot change (FIWARE), the rest merges. */
export function mergeDeviceUpdate(existing: Device, patch: unknown, group?: ServiceGroup): Device {
  if (!isObj(patch)) throw wrong('body must be an object');
  const p = { ...patch };
  // FIWARE allows entity_name changes in recent versions; keep id/type stable for the NGSI-LD link
  delete p.device_id;
  delete p.service;
  delete p.service_path;
  const merged = { ...existing, ...p };
  if (p.entity_type === undefined) merged.entity_type = existing.entity_type;
  return normaliseDevice(merged, { tenant: existing.service, service: existing.service, servicePath: existing.service_path }, group, 'device');
}

/**
 * Effective configuration of a device: device fields override group fields; attribute lists are
 * concatenated (device first, so a device mapping wins over a group mapping with the same object_id).
 */
export interface EffectiveDevice {
  device: Device;
  group?: ServiceGroup;
  apikey: string;
  attributes: AttrMapping[];
  commands: AttrMapping[];
  static_attributes: AttrMapping[];
  lazy: AttrMapping[];
  explicitAttrs?: boolean | string;
  timestamp?: boolean;
  transport: string;
  health: HealthSpec;
}

export function effectiveDevice(device: Device, group?: ServiceGroup): EffectiveDevice {
  const dedupe = (a: AttrMapping[], b: AttrMapping[]) => {
    const seen = new Set(a.map((x) => `${x.object_id ?? x.name}\u0000${x.entity_name ?? ''}`));
    return [...a, ...b.filter((x) => !seen.has(`${x.object_id ?? x.name}\u0000${x.entity_name ?? ''}`))];
  };
  const byName = (a: AttrMapping[], b: AttrMapping[]) => {
    const seen = new Set(a.map((x) => x.name));
    return [...a, ...b.filter((x) => !seen.has(x.name))];
  };
  return {
    device,
    group,
    apikey: device.apikey ?? group?.apikey ?? '',
    attributes: dedupe(device.attributes, group?.attributes ?? []),
    commands: byName(device.commands, group?.commands ?? []),
    static_attributes: byName(device.static_attributes, group?.static_attributes ?? []),
    lazy: byName(device.lazy, group?.lazy ?? []),
    explicitAttrs: device.explicitAttrs ?? group?.explicitAttrs,
    timestamp: device.timestamp ?? group?.timestamp,
    transport: (device.transport ?? group?.transport ?? 'MQTT').toUpperCase(),
    health: { ...(group?.health ?? {}), ...(device.health ?? {}) },
  };
}

/** Autoprovisioned device for a group (FIWARE: entity name <type><conj><id>, as NGSI-LD URN). */
export function autoprovisionDevice(deviceId: string, group: ServiceGroup, transport: string): Device {
  if (!ID_RE.test(deviceId)) throw wrong(`invalid device id "${deviceId}"`);
  const scope: Scope = { tenant: group.service, service: group.service, servicePath: group.subservice };
  return normaliseDevice({ device_id: deviceId, apikey: group.apikey, transport, autoprovisioned: true }, scope, group);
}

/** FIWARE representation of a stored device (GET /iot/devices). */
export function deviceToApi(d: Device): Record<string, unknown> {
  const out: Record<string, unknown> = {
    device_id: d.device_id,
    service: d.service,
    service_path: d.service_path,
    entity_name: d.entity_name,
    entity_type: d.entity_type,
    attributes: d.attributes,
    lazy: d.lazy,
    commands: d.commands,
    static_attributes: d.static_attributes,
    internal_attributes: d.internal_attributes ?? [],
  };
  for (const [k, v] of Object.entries(d)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}

export function groupToApi(g: ServiceGroup): Record<string, unknown> {
  const out: Record<string, unknown> = { ...g };
  return out;
}

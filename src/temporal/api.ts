import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../common/problem.ts';
import type { Platform } from '../platform.ts';
import type { ContextRef, QueryParams } from '../ngsi-ld/broker-api.ts';
import type { AttrInstance, StoredEntity, TermResolver } from '../ngsi-ld/model/types.ts';
import { checkDateTime, checkEntityId, checkName } from '../ngsi-ld/model/ids.ts';
import { expandAttrName, isObject, normalizeInstance, normalizeScope, normalizeTypes } from '../ngsi-ld/model/normalize.ts';
import { bodyContext, boolParam, checkCsf, contextForResponse, intParam, linkContext, listParam, mediaType, negotiate, tenantOf } from '../ngsi-ld/api/http.ts';
import { buildQuery } from '../ngsi-ld/query-plan.ts';
import { evaluateTypeExpr, parseTypeExpr, resolveTypeExpr } from '../ngsi-ld/query/index.ts';
import { parseAggregation, parseTemporalQuery, type AggregationSpec, type TemporalQuery } from './params.ts';
import { aggregatedValues, capInstances, normalizedTemporal, stringifyWithRaw, temporalValues } from './representation.ts';
import { SCOPE_ATTR, scopeInstance, type AggSeries, type HistoryInstance, type HistoryRow, type HistoryStore, type TemporalEntityRow } from './store.ts';
import type { AuthService } from '../trust/api.ts';

/**
 * Temporal API (NGSI-LD v1.9.1 clauses 5.6.11-5.6.16, 5.7.3, 5.7.4; 6.18-6.24):
 * /ngsi-ld/v1/temporal/entities[/{id}[/attrs[/{attr}[/{instanceId}]]]] and
 * /ngsi-ld/v1/temporal/entityOperations/query, over the HistoryStore.
 */
export interface TemporalApiOptions {
  /** instances per response before 206 Partial Content (URBIS_TEMPORAL_MAX_INSTANCES) */
  maxInstances: number;
}

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;
const BASE = '/ngsi-ld/v1/temporal';
const ENTITY_KEYS = new Set(['id', '@id', 'type', '@type', 'scope', '@context', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt']);
const bad = (d: string): never => {
  throw new ProblemError('BadRequestData', d);
};

type Rep = 'normalized' | 'temporalValues' | 'aggregatedValues';

/** the caller's trust context for one temporal read (see readable() / withheld()) */
interface Trust {
  auth: AuthService;
  req: FastifyRequest;
  /** per readable entity id: the infoClass attribute that classified it */
  cls: Map<string, StoredEntity['attrs']>;
}

interface Selection {
  ids?: string[];
  idPattern?: string;
  type?: string;
  attrs?: string[];
  q?: string;
  scopeQ?: string;
  geoQ?: QueryParams['geoQ'];
  lang?: string;
  datasetId?: string[];
  pick?: string[];
  omit?: string[];
  local?: boolean;
  orderBy?: string;
}

interface Shape {
  rep: Rep;
  sysAttrs: boolean;
  tq: TemporalQuery;
  aggr?: AggregationSpec;
}

const JSON_BODY = new Set(['application/json', 'application/ld+json']);
function requireJson(req: FastifyRequest) {
  const mt = mediaType(req);
  if (!JSON_BODY.has(mt) && !(req.method === 'PATCH' && mt === 'application/merge-patch+json'))
    throw new ProblemError('UnsupportedMediaType', `Content-Type must be application/json or application/ld+json, got "${mt || 'none'}".`);
}

function objectBody(req: FastifyRequest): Record<string, unknown> {
  if (!isObject(req.body) || Object.keys(req.body).length === 0)
    throw new ProblemError('InvalidRequest', `The body must be a non-empty JSON object.`);
  return req.body;
}

/** options / format -> representation (format wins over options, 6.3.7) */
function parseShape(qs: Record<string, string | undefined>, extra: { aggrMethods?: string | string[]; aggrPeriodDuration?: string; tq?: Record<string, unknown> } = {}): Shape {
  const opts = new Set((qs.options ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  const known = new Set(['temporalValues', 'aggregatedValues', 'sysAttrs', 'normalized', 'keyValues', 'simplified', 'concise']);
  for (const o of opts) if (!known.has(o)) throw new ProblemError('InvalidRequest', `Unknown option "${o}" in options= (temporalValues, aggregatedValues, sysAttrs).`);
  let rep: Rep = 'normalized';
  if (opts.has('temporalValues') || opts.has('keyValues') || opts.has('simplified') || opts.has('concise')) rep = 'temporalValues';
  if (opts.has('aggregatedValues')) rep = 'aggregatedValues';
  if (opts.has('temporalValues') && opts.has('aggregatedValues')) bad('options=temporalValues and options=aggregatedValues cannot be combined.');
  if (qs.format !== undefined) {
    const f = qs.format;
    if (f === 'normalized') rep = 'normalized';
    else if (f === 'temporalValues' || f === 'simplified' || f === 'keyValues' || f === 'concise') rep = 'temporalValues';
    else if (f === 'aggregatedValues') rep = 'aggregatedValues';
    else throw new ProblemError('InvalidRequest', `format "${f}" is not one of normalized, temporalValues, aggregatedValues.`);
  }
  const src = extra.tq ?? qs;
  const s = (k: string) => {
    const v = (src as Record<string, unknown>)[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number') return String(v);
    if (typeof v !== 'string') bad(`${k} must be a string.`);
    return v as string;
  };
  const tq = parseTemporalQuery({ timerel: s('timerel'), timeAt: s('timeAt'), endTimeAt: s('endTimeAt'), timeproperty: s('timeproperty'), lastN: s('lastN') });
  if (extra.tq && (extra.tq as Record<string, unknown>).lastN !== undefined && typeof (extra.tq as Record<string, unknown>).lastN !== 'number') bad('lastN must be a positive integer.');
  const shape: Shape = { rep, sysAttrs: opts.has('sysAttrs'), tq };
  const methods = extra.aggrMethods ?? qs.aggrMethods;
  const period = extra.aggrPeriodDuration ?? qs.aggrPeriodDuration;
  // aggregation parameters in a Query body ask for the aggregated representation themselves
  if (extra.aggrMethods !== undefined && qs.format === undefined && !opts.has('temporalValues')) rep = 'aggregatedValues';
  shape.rep = rep;
  if (rep === 'aggregatedValues') shape.aggr = parseAggregation(methods, period);
  else if (period !== undefined && period !== '') parseAggregation('avg', period);
  else if (methods !== undefined || period !== undefined) {
    // validate anyway: a bogus method is a bad request even without aggregatedValues
    if (methods !== undefined) parseAggregation(methods, period);
  }
  return shape;
}

function selectionFromQs(qs: Record<string, string | undefined>): Selection {
  const sel: Selection = {
    ids: listParam(qs.id),
    idPattern: qs.idPattern,
    type: qs.type,
    attrs: listParam(qs.attrs),
    q: qs.q,
    scopeQ: qs.scopeQ,
    lang: qs.lang,
    datasetId: listParam(qs.datasetId),
    pick: listParam(qs.pick),
    omit: listParam(qs.omit),
    local: boolParam(qs.local, 'local'),
  };
  if (sel.ids) for (const id of sel.ids) checkEntityId(id, 'id in id=');
  if (qs.georel !== undefined || qs.geometry !== undefined || qs.coordinates !== undefined)
    sel.geoQ = { georel: qs.georel as string, geometry: qs.geometry as string, coordinates: qs.coordinates as string, geoproperty: qs.geoproperty };
  if (qs.csf !== undefined) checkCsf(qs.csf);
  if (qs.type === '') bad('type= is empty.');
  if (qs.orderBy !== undefined) sel.orderBy = qs.orderBy;
  return sel;
}

function checkPickOmit(sel: Selection) {
  if (sel.pick && sel.omit) bad('pick and omit cannot be used together.');
  for (const m of [...(sel.pick ?? []), ...(sel.omit ?? [])])
    if (/[{}]/.test(m)) bad(`"${m}": linked entity projections (attr{...}) are not available on the temporal API.`);
  if ((sel.pick || sel.omit) && sel.attrs) bad('attrs cannot be combined with pick or omit.');
}

const RETRIEVE_PARAMS = [
  'attrs', 'pick', 'omit', 'options', 'format', 'lang', 'datasetId', 'timerel', 'timeAt', 'endTimeAt', 'timeproperty', 'lastN',
  'aggrMethods', 'aggrPeriodDuration', 'type', 'local', 'geometryProperty', 'csf', 'join', 'joinLevel', 'entityMap', 'expandValues',
];
const QUERY_PARAMS = [
  ...RETRIEVE_PARAMS, 'id', 'idPattern', 'q', 'georel', 'geometry', 'coordinates', 'geoproperty', 'scopeQ', 'limit', 'offset', 'count',
  'orderBy', 'collation',
];

function checkParams(req: FastifyRequest, allowed: readonly string[]) {
  const q = req.query as Record<string, unknown> | undefined;
  if (!q) return;
  const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new ProblemError('InvalidRequest', `Unsupported query parameter(s) ${unknown.map((k) => `"${k}"`).join(', ')}.`);
}

/** orderBy on the temporal API (5.7.4.4): only "id", ascending or descending. */
function orderDesc(orderBy: string | undefined): boolean {
  if (orderBy === undefined) return false;
  const m = /^id(?:;(asc|desc))?$/.exec(orderBy.trim());
  if (!m) bad(`orderBy "${orderBy}": the temporal API orders by "id" only (id, id;asc, id;desc).`);
  return m![1] === 'desc';
}

const SYSTEM_MEMBERS = new Set(['id', 'type', 'scope', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt', 'observedAt']);

export function temporalRoutes(app: FastifyInstance, p: Platform, store: HistoryStore, opts: TemporalApiOptions) {
  const contexts = p.broker.contexts;
  const resolve = (ref: ContextRef, tenant: string) => contexts.resolve(ref, { tenant });

  // ----- trust (src/trust, docs/security.md): per-entity information class, personal-data redaction, audit
  /** the trust service when it runs with auth on, else undefined (everything readable, nothing redacted) */
  const authOf = (): AuthService | undefined => {
    const a = p.services.get('auth') as AuthService | undefined;
    return a?.enabled && typeof a.filterStored === 'function' ? a : undefined;
  };
  /**
   * The entities of `ents` the caller may read through the temporal API. History outlives class
   * changes, so an entity counts with the most restrictive class it has had: every recorded
   * infoClass instance, its current infoClass, and its type default where it had none. Each such
   * variant goes through auth.filterStored (area temporal); the entity is readable only when all
   * pass. `cls` keeps, per readable id, the infoClass attribute that classified it (for redaction).
   */
  async function readable(req: FastifyRequest, tenant: string, ents: TemporalEntityRow[]): Promise<{ ents: TemporalEntityRow[]; trust?: Trust }> {
    const auth = authOf();
    if (!auth || ents.length === 0) return { ents, trust: auth && { auth, req, cls: new Map() } };
    const variants = await classVariants(tenant, ents);
    const all: StoredEntity[] = [];
    for (const e of ents) for (const attrs of variants.get(e.id)!) all.push({ ...synthetic(e, []), attrs });
    const passed = new Map<string, number>();
    for (const x of auth.filterStored(req, tenant, all)) passed.set(x.id, (passed.get(x.id) ?? 0) + 1);
    const cls = new Map<string, StoredEntity['attrs']>();
    const out = ents.filter((e) => passed.get(e.id) === variants.get(e.id)!.length);
    for (const e of out) cls.set(e.id, { ...variants.get(e.id)![0] });
    return { ents: out, trust: { auth, req, cls } };
  }
  /** per entity: the infoClass attributes it has had (recorded, current; {} = its type default) */
  async function classVariants(tenant: string, ents: TemporalEntityRow[]): Promise<Map<string, StoredEntity['attrs'][]>> {
    const ids = ents.map((e) => e.id);
    const hist = await p.db.query<{ entity_id: string; attr: string; instance: AttrInstance | null; deleted_at: unknown }>(
      `SELECT entity_id, attr, instance, deleted_at FROM attr_history WHERE tenant = $1 AND entity_id = ANY($2) AND (attr = 'infoClass' OR attr ~ '[/#:]infoClass$')`,
      [tenant, ids],
    );
    const current = await p.broker.loadMany(tenant, ids);
    const variants = new Map<string, StoredEntity['attrs'][]>();
    const add = (id: string, attrs: StoredEntity['attrs']) => (variants.get(id) ?? variants.set(id, []).get(id)!).push(attrs);
    for (const h of hist) add(h.entity_id, h.instance && h.deleted_at == null ? { [h.attr]: [h.instance] } : {});
    for (const [id, e] of current) add(id, Object.fromEntries(Object.entries(e.attrs).filter(([a]) => /(^|[/#:])infoClass$/.test(a))));
    for (const e of ents) if (!variants.has(e.id)) variants.set(e.id, [{}]);
    return variants;
  }
  /**
   * Before a temporal write to an existing history (upsert, append, modify or delete instances,
   * delete): the caller must be allowed to write every class the entity has had. The trust hook
   * only sees the broker's current entity, which a temporal-only or deleted entity does not have.
   * 404 when the caller may not even read it (existence not revealed), else 403.
   */
  async function writable(req: FastifyRequest, tenant: string, e: TemporalEntityRow | null): Promise<void> {
    const auth = authOf();
    if (!auth || !e) return;
    if ((await readable(req, tenant, [e])).ents.length === 0) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${e.id}".`);
    const pr = auth.principalOf(req);
    for (const attrs of (await classVariants(tenant, [e])).get(e.id)!) {
      const infoClass = auth.classOf(tenant, { ...synthetic(e, []), attrs });
      const d = auth.authorize(pr, { operation: 'write', tenant, area: 'temporal', entityType: e.types, infoClass });
      if (!d.allowed) {
        await auth.audit({ actor: `${pr.kind}:${pr.id}`, action: 'temporal.write', outcome: 'denied', tenant, target: e.id, detail: { infoClass } });
        throw new ProblemError('Forbidden', d.reason ?? 'Not allowed.');
      }
    }
  }
  /**
   * Attributes to withhold per entity (personal attributes the caller is not cleared for), for
   * entities already known readable. Cleared reads of personal data are audited (once per entity
   * and response) unless `audit` is false (used for q filtering, which returns nothing itself).
   */
  function withheld(t: Trust, tenant: string, ents: TemporalEntityRow[], rows: { entityId: string; attr: string; instance?: AttrInstance | null }[], audit = true): Map<string, Set<string>> {
    const attrsOf = new Map<string, StoredEntity['attrs']>();
    for (const r of rows) {
      if (r.attr === SCOPE_ATTR) continue;
      const a = attrsOf.get(r.entityId) ?? attrsOf.set(r.entityId, {}).get(r.entityId)!;
      (a[r.attr] ??= []).push(...(r.instance ? [r.instance] : []));
    }
    const full = ents.filter((e) => attrsOf.has(e.id)).map((e) => ({ ...synthetic(e, []), attrs: { ...t.cls.get(e.id), ...attrsOf.get(e.id) } }));
    const shown = audit ? t.auth.filterStored(t.req, tenant, full) : full.map((e) => t.auth.redact(t.auth.principalOf(t.req), tenant, e, { audit: false }));
    const kept = new Map(shown.map((e) => [e.id, e]));
    const out = new Map<string, Set<string>>();
    for (const e of full) {
      const k = kept.get(e.id);
      const gone = Object.keys(e.attrs).filter((a) => !k || !(a in k.attrs));
      if (gone.length) out.set(e.id, new Set(gone));
    }
    return out;
  }

  /** Body attributes of a temporal entity / fragment -> history rows (each array element one instance). */
  function bodyRows(body: Record<string, unknown>, ctx: TermResolver, now: string): { attr: string; instance: AttrInstance }[] {
    const rows: { attr: string; instance: AttrInstance }[] = [];
    for (const key of Object.keys(body)) {
      if (ENTITY_KEYS.has(key)) continue;
      const iri = expandAttrName(key, ctx);
      const raw = body[key];
      const list = Array.isArray(raw) && raw.length > 0 && raw.every((x) => isObject(x)) ? raw : [raw];
      for (const r of list) rows.push({ attr: iri, instance: normalizeInstance(key, r, ctx, { now, allowNull: true }, true) });
    }
    return rows;
  }

  /**
   * The scope member of a temporal entity (4.18, 4.5.6): a scope / list of scopes (one instance at
   * the time of the request), or Property instances {type?, value, observedAt?} of the scope.
   * Returns the history rows and the latest scope value.
   */
  function scopeRows(raw: unknown, now: number): { rows: { attr: string; instance: AttrInstance }[]; latest?: string[] } {
    const rows: { attr: string; instance: AttrInstance }[] = [];
    let latest: string[] | undefined;
    let latestAt = -Infinity;
    const list = Array.isArray(raw) && raw.length > 0 && raw.every((x) => isObject(x)) ? raw : isObject(raw) ? [raw] : undefined;
    if (!list) {
      const scopes = normalizeScope(raw);
      if (scopes.length) rows.push({ attr: SCOPE_ATTR, instance: scopeInstance(scopes) });
      return { rows, latest: scopes.length ? scopes : undefined };
    }
    for (const x of list as Record<string, unknown>[]) {
      if (x.type !== undefined && x.type !== 'Property') bad('A scope instance is a Property ({"type": "Property", "value": "/a/b"}).');
      if (x.value === undefined) bad('A scope instance needs a "value".');
      const scopes = normalizeScope(x.value);
      if (x.observedAt !== undefined) checkDateTime(x.observedAt, 'observedAt of the scope');
      const at = typeof x.observedAt === 'string' ? Date.parse(x.observedAt) : now;
      if (scopes.length === 0) continue;
      rows.push({ attr: SCOPE_ATTR, instance: scopeInstance(scopes, x.observedAt as string | undefined) });
      if (at >= latestAt) {
        latestAt = at;
        latest = scopes;
      }
    }
    return { rows, latest };
  }

  async function write(tenant: string, ent: TemporalEntityRow, rows: { attr: string; instance: AttrInstance }[], at: number, replaceObserved = false) {
    const hist: (HistoryRow & { tenant: string; entityId: string; at: number })[] = rows.map((r) => ({ ...r, tenant, entityId: ent.id, at }));
    await store.write([{ ...ent, tenant }], hist, undefined, { replaceObserved });
  }

  // ----- provision -----
  app.post(`${BASE}/entities`, async (req: Req, reply) => {
    requireJson(req);
    const body = objectBody(req);
    const tenant = tenantOf(req);
    const ref = bodyContext(req, body);
    const ctx = await resolve(ref, tenant);
    const id = checkEntityId(body.id ?? body['@id']);
    const rawType = body.type ?? body['@type'];
    if (rawType === undefined) bad(`Entity "${id}" has no "type".`);
    const types = normalizeTypes(rawType, ctx, `entity "${id}"`);
    for (const k of ['createdAt', 'modifiedAt', 'deletedAt', 'expiresAt'] as const)
      if (body[k] !== undefined) checkDateTime(body[k], `${k} of entity "${id}"`);
    const now = p.clock.now();
    const nowIso = new Date(now).toISOString();
    const rows = bodyRows(body, ctx, nowIso);
    const prev = await store.getEntity(tenant, id);
    await writable(req, tenant, prev); // trust: every class of the existing history
    const exists = !!prev && prev.deletedAt === undefined;
    let scopes = prev?.scopes;
    if (body.scope !== undefined) {
      const sc = scopeRows(body.scope, now);
      rows.push(...sc.rows);
      if (sc.latest) scopes = sc.latest;
    }
    await write(tenant, { id, types: exists ? [...new Set([...prev!.types, ...types])] : types, scopes, createdAt: exists ? prev!.createdAt : now, modifiedAt: now }, rows, now, exists);
    if (exists) return reply.code(204).send();
    reply.code(201).header('Location', `${BASE}/entities/${encodeURIComponent(id)}`).send();
  });

  const notAllowed = (allow: string, detail: string) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.code(405).header('Allow', allow).header('content-type', 'application/json')
      .send(JSON.stringify({ type: 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest', title: 'Method Not Allowed', status: 405, detail }));
  app.delete(`${BASE}/entities`, notAllowed('GET, POST', 'Name the entity: /temporal/entities/{entityId}.'));
  app.patch(`${BASE}/entities`, notAllowed('GET, POST', 'Name the entity: /temporal/entities/{entityId}.'));
  app.patch(`${BASE}/entities/:id/attrs/:attr`, notAllowed('DELETE', 'Name the instance: /temporal/entities/{entityId}/attrs/{attrId}/{instanceId}.'));

  app.delete(`${BASE}/entities/:id`, async (req: Req, reply) => {
    const id = checkEntityId(req.params.id);
    await writable(req, tenantOf(req), await store.getEntity(tenantOf(req), id)); // trust
    const ok = await store.deleteEntity(tenantOf(req), id);
    if (!ok) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    reply.code(204).send();
  });

  app.post(`${BASE}/entities/:id/attrs`, async (req: Req, reply) => {
    requireJson(req);
    const id = checkEntityId(req.params.id);
    const body = objectBody(req);
    const tenant = tenantOf(req);
    const ctx = await resolve(bodyContext(req, body), tenant);
    const now = p.clock.now();
    const rows = bodyRows(body, ctx, new Date(now).toISOString());
    if (rows.length === 0) bad('The body has no attributes.');
    const prev = await store.getEntity(tenant, id);
    await writable(req, tenant, prev); // trust
    if (!prev || prev.deletedAt !== undefined) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    await write(tenant, { ...prev, modifiedAt: now }, rows, now);
    reply.code(204).send();
  });

  const attrIri = (name: string, ctx: TermResolver) => {
    let d = name;
    for (let i = 0; i < 3 && /%[0-9a-f]{2}/i.test(d); i++) {
      try {
        d = decodeURIComponent(d);
      } catch {
        break;
      }
    }
    if (name === '' || d === '.' || d === '..' || d.includes('/')) bad(`"${name}" is not a valid attribute name.`);
    checkName(name, 'attribute name');
    return ctx.expandTerm(name);
  };

  app.delete(`${BASE}/entities/:id/attrs/:attr`, async (req: Req, reply) => {
    const id = checkEntityId(req.params.id);
    const tenant = tenantOf(req);
    const ctx = await resolve(linkContext(req), tenant);
    const attr = attrIri(req.params.attr, ctx);
    const qs = req.query;
    const deleteAll = boolParam(qs.deleteAll, 'deleteAll');
    if (!(await store.getEntity(tenant, id))) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    await writable(req, tenant, await store.getEntity(tenant, id)); // trust
    const n = await store.deleteAttr(tenant, id, attr, { datasetId: qs.datasetId, deleteAll });
    if (n === 0) throw new ProblemError('ResourceNotFound', `Entity "${id}" has no attribute "${req.params.attr}"${qs.datasetId ? ` with datasetId "${qs.datasetId}"` : ''}.`);
    reply.code(204).send();
  });

  app.patch(`${BASE}/entities/:id/attrs/:attr/:instanceId`, async (req: Req, reply) => {
    requireJson(req);
    if (req.params.attr === '' || req.params.instanceId === '')
      return notAllowed('DELETE', 'Name the attribute and the instance: /temporal/entities/{entityId}/attrs/{attrId}/{instanceId}.')(req, reply);
    const id = checkEntityId(req.params.id);
    const tenant = tenantOf(req);
    const body = objectBody(req);
    const ctx = await resolve(bodyContext(req, body), tenant);
    const attr = attrIri(req.params.attr, ctx);
    const instanceId = checkEntityId(req.params.instanceId, 'instanceId');
    // body: the instance itself, or a fragment { <attr>: instance }
    let raw: unknown = body;
    const keys = Object.keys(body).filter((k) => k !== '@context');
    if (typeof body.type !== 'string' && keys.length === 1 && isObject(body[keys[0]])) {
      if (ctx.expandTerm(keys[0]) !== attr) bad(`The fragment names attribute "${keys[0]}", the path "${req.params.attr}".`);
      raw = body[keys[0]];
    }
    if (isObject(raw)) delete raw['@context'];
    const now = p.clock.now();
    const inst = normalizeInstance(req.params.attr, raw, ctx, { now: new Date(now).toISOString(), allowNull: true }, true);
    if (!(await store.getEntity(tenant, id))) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    await writable(req, tenant, await store.getEntity(tenant, id)); // trust
    const ok = await store.modifyInstance(tenant, id, attr, instanceId, inst, now);
    if (!ok) throw new ProblemError('ResourceNotFound', `No instance "${instanceId}" of attribute "${req.params.attr}" in entity "${id}".`);
    reply.code(204).send();
  });

  app.delete(`${BASE}/entities/:id/attrs/:attr/:instanceId`, async (req: Req, reply) => {
    const id = checkEntityId(req.params.id);
    const tenant = tenantOf(req);
    const ctx = await resolve(linkContext(req), tenant);
    const attr = attrIri(req.params.attr, ctx);
    const instanceId = checkEntityId(req.params.instanceId, 'instanceId');
    if (!(await store.getEntity(tenant, id))) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    await writable(req, tenant, await store.getEntity(tenant, id)); // trust
    const ok = await store.deleteInstance(tenant, id, attr, instanceId);
    if (!ok) throw new ProblemError('ResourceNotFound', `No instance "${instanceId}" of attribute "${req.params.attr}" in entity "${id}".`);
    reply.code(204).send();
  });

  // ----- consumption -----
  /** Renders entities with their instances; returns bodies and the Content-Range of a truncated answer. */
  async function build(
    tenant: string,
    ents: TemporalEntityRow[],
    sel: Selection,
    shape: Shape,
    ctx: TermResolver,
    preloaded?: Map<string, HistoryInstance[]>,
    trust?: Trust,
  ): Promise<{ bodies: Record<string, unknown>[]; contentRange?: string }> {
    const attrs = sel.attrs?.map((a) => ctx.expandTerm(a));
    const datasetIds = sel.datasetId;
    const ids = ents.map((e) => e.id);
    const bodies: Record<string, unknown>[] = [];
    let contentRange: string | undefined;
    const pickSet = sel.pick ? new Set(sel.pick.map((x) => (x === 'id' || x === 'type' || x === 'scope' ? x : ctx.expandTerm(x)))) : undefined;
    const omitSet = sel.omit ? new Set(sel.omit.map((x) => (x === 'id' || x === 'type' || x === 'scope' ? x : ctx.expandTerm(x)))) : undefined;
    const keepAttr = (attr: string) => {
      const a = attr === SCOPE_ATTR ? 'scope' : attr;
      return (!pickSet || pickSet.has(a)) && !omitSet?.has(a);
    };
    const project = (b: Record<string, unknown>) => {
      if (pickSet) for (const k of ['id', 'type', 'scope']) if (!pickSet.has(k)) delete b[k];
      if (omitSet) for (const k of ['id', 'type', 'scope']) if (omitSet.has(k)) delete b[k];
      return b;
    };
    if (shape.rep === 'aggregatedValues') {
      let series = await store.aggregate({ tenant, entityIds: ids, attrs, datasetIds, q: shape.tq, spec: shape.aggr! });
      if (trust) {
        const hide = withheld(trust, tenant, ents, series); // trust: personal attributes of uncleared callers
        series = series.filter((x) => !hide.get(x.entityId)?.has(x.attr));
      }
      const byEntity = new Map<string, AggSeries[]>();
      for (const x of series) if (keepAttr(x.attr)) (byEntity.get(x.entityId) ?? byEntity.set(x.entityId, []).get(x.entityId)!).push(x);
      for (const e of ents) {
        const s = byEntity.get(e.id) ?? [];
        bodies.push(project(aggregatedValues(e, s, shape.aggr!.methods, ctx, { sysAttrs: shape.sysAttrs, emptyAttrs: attrs, raw: true })));
      }
      return { bodies };
    }
    let rows = preloaded ? ents.flatMap((e) => preloaded.get(e.id) ?? []) : await store.queryInstances({ tenant, entityIds: ids, attrs, datasetIds, q: shape.tq });
    rows = rows.filter((r) => keepAttr(r.attr));
    if (trust) {
      const hide = withheld(trust, tenant, ents, rows); // trust: personal attributes (and their history) of uncleared callers
      rows = rows.filter((r) => !hide.get(r.entityId)?.has(r.attr));
    }
    const cap = capInstances(rows, opts.maxInstances, shape.tq);
    // attributes cut away entirely by the cap stay visible as empty lists (the client pages on)
    const keptRows = new Set(cap.rows);
    const cut = cap.contentRange ? new Set(rows.filter((r) => !keptRows.has(r)).map((r) => `${r.entityId}\u0000${r.attr}`)) : undefined;
    rows = cap.rows;
    contentRange = cap.contentRange;
    const by = new Map<string, HistoryInstance[]>();
    for (const r of rows) (by.get(r.entityId) ?? by.set(r.entityId, []).get(r.entityId)!).push(r);
    for (const e of ents) {
      const rs = by.get(e.id) ?? [];
      const b =
        shape.rep === 'temporalValues'
          ? temporalValues(e, rs, ctx, { timeproperty: shape.tq.timeproperty, sysAttrs: shape.sysAttrs })
          : normalizedTemporal(e, rs, ctx, { sysAttrs: shape.sysAttrs, lang: sel.lang });
      if (cut) for (const k of cut) {
        const [eid, attr] = k.split('\u0000');
        const name = attr === SCOPE_ATTR ? 'scope' : ctx.compactIri(attr);
        if (eid === e.id && b[name] === undefined) b[name] = shape.rep === 'temporalValues' ? { type: 'Property', values: [] } : [];
      }
      bodies.push(project(b));
    }
    return { bodies, contentRange };
  }

  function send(reply: FastifyReply, req: FastifyRequest, ctxRef: ContextRef, payload: Record<string, unknown> | Record<string, unknown>[], contentRange?: string) {
    const rep = negotiate(req, false);
    const embed = contextForResponse(rep, ctxRef, reply);
    reply.header('content-type', rep);
    if (contentRange) reply.code(206).header('Content-Range', contentRange);
    const withCtx = (o: Record<string, unknown>) => (embed === undefined ? o : { ...o, '@context': embed });
    return reply.send(stringifyWithRaw(Array.isArray(payload) ? payload.map(withCtx) : withCtx(payload)));
  }

  app.get(`${BASE}/entities/:id`, async (req: Req, reply) => {
    checkParams(req, RETRIEVE_PARAMS);
    negotiate(req, false);
    const id = checkEntityId(req.params.id);
    const tenant = tenantOf(req);
    const ref = linkContext(req);
    const ctx = await resolve(ref, tenant);
    const qs = req.query;
    const sel = selectionFromQs({ ...qs, id: undefined });
    checkPickOmit(sel);
    const shape = parseShape(qs);
    const e = await store.getEntity(tenant, id);
    if (!e) throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    if (qs.type !== undefined && qs.type !== '*') {
      const te = resolveTypeExpr(parseTypeExpr(qs.type), (t) => ctx.expandTerm(t));
      if (!evaluateTypeExpr(te, e.types)) throw new ProblemError('ResourceNotFound', `Entity "${id}" is not of type ${qs.type}.`);
    }
    const { trust, ents: seen } = await readable(req, tenant, [e]); // trust: hidden entities answer 404
    if (seen.length === 0) {
      const pr = trust!.auth.principalOf(req);
      await trust!.auth.audit({ actor: `${pr.kind}:${pr.id}`, action: 'temporal.read', outcome: 'denied', tenant, target: id });
      throw new ProblemError('ResourceNotFound', `No temporal representation of entity "${id}".`);
    }
    const { bodies, contentRange } = await build(tenant, [e], sel, shape, ctx, undefined, trust);
    const b = bodies[0];
    if (sel.attrs && !sel.attrs.some((a) => b[ctx.compactIri(ctx.expandTerm(a))] !== undefined))
      throw new ProblemError('ResourceNotFound', `Entity "${id}" has none of the attributes ${sel.attrs.join(', ')}.`);
    if ((sel.pick || sel.omit) && Object.keys(b).length === 0) throw new ProblemError('ResourceNotFound', `Nothing of entity "${id}" is left after pick/omit.`);
    return send(reply, req, ref, b, contentRange);
  });

  /** Query Temporal Evolution of Entities (GET and POST entityOperations/query share this). */
  async function query(req: Req, reply: FastifyReply, sel: Selection, shape: Shape, ref: ContextRef, qs: Record<string, string | undefined>) {
    const tenant = tenantOf(req);
    const ctx = await resolve(ref, tenant);
    checkPickOmit(sel);
    const attrsBound = sel.attrs?.some((a) => !SYSTEM_MEMBERS.has(a));
    if (!sel.type && !attrsBound && !sel.q && !sel.geoQ && !sel.scopeQ && sel.local !== true)
      bad('The query is too wide: give at least one of type, attrs, q, geoQ or scopeQ (ids alone do not bound it), or local=true.');
    const desc = orderDesc(sel.orderBy);
    const limit = intParam(qs.limit, 'limit') ?? p.config.defaultLimit;
    const offset = intParam(qs.offset, 'offset') ?? 0;
    const count = boolParam(qs.count, 'count') ?? false;
    if (limit > p.config.maxLimit) throw new ProblemError('BadRequestData', `limit ${limit} exceeds the maximum of ${p.config.maxLimit}.`);
    if (limit === 0 && !count) bad('limit=0 is only allowed with count=true.');
    const expand = (t: string) => ctx.expandTerm(t);
    let typeGroups: string[][] | undefined;
    let typeCheck: ((types: string[]) => boolean) | undefined;
    if (sel.type && sel.type !== '*') {
      const te = resolveTypeExpr(parseTypeExpr(sel.type), expand);
      if (!/[();|]/.test(sel.type)) typeGroups = sel.type.split(',').map((t) => [expand(t.trim())]);
      else typeCheck = (types) => evaluateTypeExpr(te, types);
    }
    const attrs = sel.attrs?.map(expand);
    const filter = sel.q || sel.geoQ ? buildQuery({ q: sel.q, geoQ: sel.geoQ, lang: sel.lang }, ctx) : undefined;
    const scopeFilter = sel.scopeQ ? buildQuery({ scopeQ: sel.scopeQ }, ctx) : undefined;
    // entities without an instance in the window (of the selected attributes / datasets) are not part of the answer
    const base = { tenant, ids: sel.ids, idPattern: sel.idPattern, typeGroups, attrs, desc, window: { q: shape.tq, datasetIds: sel.datasetId } };
    let page: TemporalEntityRow[];
    let total: number | undefined;
    let preloaded: Map<string, HistoryInstance[]> | undefined;
    let trust: Trust | undefined;
    if (!filter && !scopeFilter && !typeCheck) {
      const r = await store.queryEntities({ ...base, limit, offset, count });
      ({ ents: page, trust } = await readable(req, tenant, r.entities)); // trust: drop unreadable entities
      total = r.count === undefined ? undefined : r.count - (r.entities.length - page.length);
    } else {
      // in-memory filtering over every candidate: q/geoQ/scopeQ run against the windowed instances
      let all = (await store.queryEntities({ ...base, limit: 1_000_000, offset: 0 })).entities.filter((e) => !typeCheck || typeCheck(e.types));
      ({ ents: all, trust } = await readable(req, tenant, all)); // trust: drop unreadable entities before paging
      let kept = all;
      if (filter || scopeFilter) {
        let rows = await store.queryInstances({ tenant, entityIds: all.map((e) => e.id), datasetIds: sel.datasetId, q: { ...shape.tq, lastN: undefined } });
        if (trust) {
          // trust: q cannot test personal attributes the caller may not see (no oracle)
          const hide = withheld(trust, tenant, all, rows, false);
          rows = rows.filter((r) => !hide.get(r.entityId)?.has(r.attr));
        }
        const by = new Map<string, HistoryInstance[]>();
        for (const r of rows) (by.get(r.entityId) ?? by.set(r.entityId, []).get(r.entityId)!).push(r);
        kept = [];
        const selected = new Map<string, HistoryInstance[]>();
        for (const e of all) {
          let rs = by.get(e.id) ?? [];
          if (scopeFilter) {
            // 4.18 / 5.7.4.4: the entity qualifies while a matching scope is valid within the window,
            // and only the instances of those validity intervals are part of the answer (C.5.16)
            const matching = rs.filter((r) => r.attr === SCOPE_ATTR && r.instance && scopeFilter.matches(scopeEntity(e, r.instance)));
            if (matching.length === 0) continue;
            const iv = matching.map((r) => [r.observedAt ?? r.modifiedAt, r.validUntil ?? Infinity] as const);
            rs = rs.filter((r) => (r.attr === SCOPE_ATTR ? matching.includes(r) : iv.some(([a, b]) => r.t >= a && r.t < b)));
          }
          if (filter && !filter.matches(synthetic(e, rs))) continue;
          kept.push(e);
          selected.set(e.id, rs);
        }
        if (shape.rep !== 'aggregatedValues') {
          preloaded = new Map();
          for (const [k, v] of selected) {
            const rs = attrs ? v.filter((r) => r.attr === SCOPE_ATTR || attrs.includes(r.attr)) : v;
            preloaded.set(k, shape.tq.lastN === undefined ? rs : lastNPerAttr(rs, shape.tq.lastN));
          }
        }
      }
      total = kept.length;
      page = kept.slice(offset, offset + limit);
    }
    if (count) reply.header('NGSILD-Results-Count', String(total ?? 0));
    const { bodies, contentRange } = await build(tenant, page, sel, shape, ctx, preloaded, trust);
    return send(reply, req, ref, bodies, contentRange);
  }

  app.get(`${BASE}/entities`, async (req: Req, reply) => {
    checkParams(req, QUERY_PARAMS);
    negotiate(req, false);
    const qs = req.query;
    const ref = linkContext(req);
    const sel = selectionFromQs(qs);
    const shape = parseShape(qs);
    return query(req, reply, sel, shape, ref, qs);
  });

  app.post(`${BASE}/entityOperations/query`, async (req: Req, reply) => {
    requireJson(req);
    negotiate(req, false);
    const body = objectBody(req);
    const ref = mediaType(req) === 'application/ld+json' ? (body['@context'] as ContextRef) : linkContext(req);
    if (body.type !== 'Query') bad('The body must be a Query object ("type": "Query").');
    const qs = req.query;
    const sel = selectionFromQs({ ...qs });
    const str = (v: unknown, name: string): string => (typeof v === 'string' && v !== '' ? v : bad(`"${name}" must be a non-empty string.`));
    const strList = (v: unknown, name: string): string[] => {
      if (typeof v === 'string') return v.split(',');
      if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string' || x === '')) bad(`"${name}" must be a non-empty array of strings.`);
      return v as string[];
    };
    if (body.entities !== undefined) {
      if (!Array.isArray(body.entities) || body.entities.length === 0) bad('"entities" must be a non-empty array of entity selectors.');
      const sels = (body.entities as unknown[]).map((x) => {
        if (!isObject(x)) return bad('Each member of "entities" must be an EntitySelector object.');
        const ids = x.id === undefined ? undefined : strList(x.id, 'entities[].id');
        ids?.forEach((i) => checkEntityId(i, 'entities[].id'));
        return { type: x.type === undefined ? undefined : str(x.type, 'entities[].type'), ids, idPattern: x.idPattern === undefined ? undefined : str(x.idPattern, 'entities[].idPattern') };
      });
      const types = sels.map((x) => x.type).filter((t): t is string => !!t);
      if (types.length) sel.type = types.length === 1 ? types[0] : types.map((t) => (/[;|()]/.test(t) ? `(${t})` : t)).join(/[;|()]/.test(types.join('')) ? '|' : ',');
      const ids = sels.flatMap((x) => x.ids ?? []);
      if (ids.length) sel.ids = ids;
      const pat = sels.find((x) => x.idPattern)?.idPattern;
      if (pat) sel.idPattern = pat;
    }
    if (body.attrs !== undefined) sel.attrs = strList(body.attrs, 'attrs');
    if (body.pick !== undefined) sel.pick = strList(body.pick, 'pick');
    if (body.omit !== undefined) sel.omit = strList(body.omit, 'omit');
    if (body.q !== undefined) sel.q = str(body.q, 'q');
    if (body.scopeQ !== undefined) sel.scopeQ = str(body.scopeQ, 'scopeQ');
    if (body.lang !== undefined) sel.lang = str(body.lang, 'lang');
    if (body.datasetId !== undefined) sel.datasetId = strList(body.datasetId, 'datasetId');
    if (body.local !== undefined) sel.local = body.local === true;
    if (body.csf !== undefined) checkCsf(str(body.csf, 'csf'));
    if (body.geoQ !== undefined) {
      if (!isObject(body.geoQ)) bad('"geoQ" must be an object.');
      const g = body.geoQ as Record<string, unknown>;
      sel.geoQ = { georel: g.georel as string, geometry: g.geometry as string, coordinates: g.coordinates as never, geoproperty: g.geoproperty as string | undefined };
    }
    let tq: Record<string, unknown> | undefined;
    if (body.temporalQ !== undefined) {
      if (!isObject(body.temporalQ)) bad('"temporalQ" must be an object.');
      tq = body.temporalQ as Record<string, unknown>;
    }
    checkParams(req, QUERY_PARAMS);
    const ap = isObject(body.aggrParams) ? (body.aggrParams as Record<string, unknown>) : undefined;
    if (body.aggrParams !== undefined && !ap) bad('"aggrParams" must be an object.');
    const aggrMethods = (ap?.aggrMethods ?? tq?.aggrMethods ?? body.aggrMethods) as string | string[] | undefined;
    if (aggrMethods !== undefined && typeof aggrMethods !== 'string' && !Array.isArray(aggrMethods)) bad('"aggrMethods" must be a string or an array of strings.');
    const aggrPeriodDuration = (ap?.aggrPeriodDuration ?? tq?.aggrPeriodDuration ?? body.aggrPeriodDuration) as string | undefined;
    if (aggrPeriodDuration !== undefined && typeof aggrPeriodDuration !== 'string') bad('"aggrPeriodDuration" must be a string.');
    const shape = parseShape(qs, { tq: tq ?? {}, aggrMethods, aggrPeriodDuration });
    return query(req, reply, sel, shape, ref, qs);
  });
}

/** The entity with one scope instance's value as its scope (for a scopeQ test). */
function scopeEntity(e: TemporalEntityRow, inst: AttrInstance): StoredEntity {
  const v = inst.value;
  return { ...synthetic(e, []), scope: Array.isArray(v) ? (v as string[]) : [String(v)] };
}

/** lastN over in-memory rows (ascending per attribute): the newest N per entity and attribute, newest first. */
function lastNPerAttr(rows: HistoryInstance[], n: number): HistoryInstance[] {
  const by = new Map<string, HistoryInstance[]>();
  for (const r of rows) {
    const k = `${r.entityId}\u0000${r.attr}`;
    (by.get(k) ?? by.set(k, []).get(k)!).push(r);
  }
  const out: HistoryInstance[] = [];
  for (const g of by.values()) out.push(...[...g].sort((a, b) => b.t - a.t || a.instanceId.localeCompare(b.instanceId)).slice(0, n));
  return out;
}

/** An entity whose attributes are all its windowed instances: q / geoQ / scopeQ hold if some instance satisfies each term. */
function synthetic(e: TemporalEntityRow, rows: HistoryInstance[]): StoredEntity {
  const attrs: Record<string, AttrInstance[]> = {};
  for (const r of rows) {
    if (!r.instance) continue;
    (attrs[r.attr] ??= []).push(r.instance);
  }
  return { id: e.id, type: e.types, scope: e.scopes, createdAt: new Date(e.createdAt).toISOString(), modifiedAt: new Date(e.modifiedAt).toISOString(), attrs };
}

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../../common/problem.ts';
import type { ContextRef, QueryParams, Format } from '../broker-api.ts';
import { CORE_CONTEXT_URL } from '../jsonld/index.ts';
import { parseQ, type QExpr } from '../query/index.ts';
import { checkEntityId } from '../model/ids.ts';

/** Request-level plumbing shared by the NGSI-LD routes: tenant, @context, content negotiation, query params. */

export const JSONLD_REL = 'http://www.w3.org/ns/json-ld#context';

export function tenantOf(req: FastifyRequest): string {
  const t = req.headers['ngsild-tenant'];
  const v = Array.isArray(t) ? t[0] : t;
  if (v === undefined || v === '') return '';
  if (!/^[A-Za-z0-9_\-.:/]{1,128}$/.test(v))
    throw new ProblemError('BadRequestData', `NGSILD-Tenant "${v}" is not a valid tenant name (letters, digits, _ - . : / up to 128 characters).`);
  return v;
}

/** The JSON-LD context link from a Link header, if any. */
export function linkContext(req: FastifyRequest): string | undefined {
  const h = req.headers.link;
  if (!h) return undefined;
  const s = Array.isArray(h) ? h.join(',') : h;
  for (const part of splitLinks(s)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m) continue;
    if (/rel\s*=\s*"?http:\/\/www\.w3\.org\/ns\/json-ld#context"?/.test(m[2])) {
      const url = resolveAgainstRequest(req, m[1].trim());
      if (!/^https?:\/\//.test(url)) throw new ProblemError('BadRequestData', `The Link header's @context URL "${url}" is not an http(s) URL.`);
      return url;
    }
  }
  throw new ProblemError('BadRequestData', 'The Link header has no rel="http://www.w3.org/ns/json-ld#context" link.');
}

/**
 * A path-absolute @context reference ("/ngsi-ld/v1/jsonldContexts/{id}", e.g. the Location of a
 * hosted @context) is resolved against the request URL, the base IRI of the request's document
 * (JSON-LD 1.1 context processing; RFC 8288 for Link targets). Anything else is left as is.
 */
export function resolveAgainstRequest(req: FastifyRequest, ref: string): string {
  if (!ref.startsWith('/') || ref.startsWith('//')) return ref;
  try {
    return new URL(ref, `${req.protocol}://${req.host}`).href;
  } catch {
    return ref;
  }
}

function splitLinks(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '<') depth++;
    if (c === '>') depth--;
    if (c === ',' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += c;
  }
  if (cur.trim()) out.push(cur);
  return out;
}

export function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * @context of a request with a body: application/ld+json carries it in the body (and must not
 * also send a Link), application/json takes it from the Link header.
 */
export function bodyContext(req: FastifyRequest, body: unknown): ContextRef {
  const mt = mediaType(req);
  if (mt === 'application/ld+json') {
    if (req.headers.link && /json-ld#context/.test(String(req.headers.link)))
      throw new ProblemError('BadRequestData', 'With Content-Type application/ld+json the @context goes in the body; do not also send a JSON-LD Link header.');
    const items = Array.isArray(body) ? body : [body];
    const first = items.find((x) => x && typeof x === 'object') as Record<string, unknown> | undefined;
    if (!first || first['@context'] === undefined)
      throw new ProblemError('BadRequestData', 'A body sent as application/ld+json must contain an "@context" member.');
    const ctx = first['@context'];
    if (typeof ctx === 'string') return resolveAgainstRequest(req, ctx);
    if (Array.isArray(ctx)) return ctx.map((c) => (typeof c === 'string' ? resolveAgainstRequest(req, c) : c)) as ContextRef;
    return ctx as ContextRef;
  }
  if (body && typeof body === 'object' && !Array.isArray(body) && '@context' in body)
    throw new ProblemError('BadRequestData', 'A body sent as application/json must not contain "@context": send it as application/ld+json or use a Link header.');
  return linkContext(req);
}

export type Representation = 'application/json' | 'application/ld+json' | 'application/geo+json';

/** The representations of 6.3.4 in their list order: on equal weights the first one wins. */
const OFFERED: readonly Representation[] = ['application/json', 'application/ld+json', 'application/geo+json'];

interface MediaRange { type: string; sub: string; q: number }

/** Parses an Accept header into media ranges (RFC 9110 12.5.1); an unparseable q keeps the default weight 1. */
export function parseAccept(h: string): MediaRange[] {
  const out: MediaRange[] = [];
  for (const part of h.split(',')) {
    const [range, ...params] = part.split(';');
    const m = /^\s*([^\s/]+)\/([^\s/]+)\s*$/.exec(range);
    if (!m) continue;
    let q = 1;
    for (const p of params) {
      const pm = /^\s*q\s*=\s*(\S+)\s*$/i.exec(p);
      if (!pm) continue;
      if (/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(pm[1])) q = Number(pm[1]);
      break;
    }
    out.push({ type: m[1].toLowerCase(), sub: m[2].toLowerCase(), q });
  }
  return out;
}

/** Weight of `mediaType` under `ranges`: the most specific matching range decides (RFC 9110 12.5.1); -1 = no range matches. */
function weightOf(mediaType: string, ranges: MediaRange[]): number {
  const [type, sub] = mediaType.split('/');
  let best = -1;
  let spec = -1;
  for (const r of ranges) {
    const s = r.type === type && r.sub === sub ? 2 : r.type === type && r.sub === '*' ? 1 : r.type === '*' && r.sub === '*' ? 0 : -1;
    if (s > spec) { spec = s; best = r.q; }
  }
  return spec < 0 ? -1 : best;
}

/**
 * Accept negotiation (6.3.4): among the representations the operation offers, the highest weight
 * wins and ties go to the first of json, ld+json, geo+json. No Accept = application/json; nothing
 * acceptable = 406.
 */
export function negotiate(req: FastifyRequest, allowGeo = true): Representation {
  const a = req.headers.accept;
  if (a === undefined || a.trim() === '') return 'application/json';
  const ranges = parseAccept(a);
  let chosen: Representation | undefined;
  let bestQ = 0;
  for (const rep of OFFERED) {
    if (rep === 'application/geo+json' && !allowGeo) continue;
    const q = weightOf(rep, ranges);
    if (q > bestQ) { bestQ = q; chosen = rep; }
  }
  if (chosen) return chosen;
  throw new ProblemError('NotAcceptable', `None of the accepted media types (${a}) can be produced: use application/json, application/ld+json${allowGeo ? ' or application/geo+json' : ''}.`);
}

/**
 * Sets Link (for application/json) or returns the @context to embed (for ld+json). GeoJSON
 * (6.3.15) embeds it too, unless the request says "Prefer: body=json": then it goes in a Link.
 */
export function contextForResponse(rep: Representation, ctxRef: ContextRef, reply: FastifyReply): ContextRef | undefined {
  const url = typeof ctxRef === 'string' ? ctxRef : CORE_CONTEXT_URL;
  if (rep === 'application/ld+json') return ctxRef ?? CORE_CONTEXT_URL;
  if (rep === 'application/geo+json' && !preferBodyJson(reply.request)) return ctxRef ?? CORE_CONTEXT_URL;
  addLink(reply, `<${url}>; rel="${JSONLD_REL}"; type="application/ld+json"`);
  return undefined;
}

/** "Prefer: body=json" (6.3.15): the client wants the @context in a Link header, not in the body. */
export function preferBodyJson(req: FastifyRequest): boolean {
  const h = req.headers.prefer;
  const v = Array.isArray(h) ? h.join(',') : h;
  return !!v && /(^|[,;\s])body\s*=\s*"?json"?\s*($|[,;])/i.test(v);
}

/** Appends a Link header value (pagination and @context links coexist). */
export function addLink(reply: FastifyReply, value: string) {
  const prev = reply.getHeader('Link');
  if (prev === undefined) reply.header('Link', value);
  else reply.header('Link', [...(Array.isArray(prev) ? prev.map(String) : [String(prev)]), value]);
}

type Q = Record<string, string | undefined>;

export function listParam(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new ProblemError('BadRequestData', 'An empty list was given as parameter value.');
  return parts;
}

export function intParam(v: string | undefined, name: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min)
    throw new ProblemError('BadRequestData', `${name} must be an integer ≥ ${min}, got "${v}".`);
  return Number(v);
}

export interface Options {
  format?: Format;
  sysAttrs: boolean;
  noOverwrite: boolean;
  update: boolean;
  replace: boolean;
  set: Set<string>;
}

export function parseOptions(q: Q): Options {
  const set = new Set<string>();
  for (const key of ['options'] as const) {
    const v = q[key];
    if (v !== undefined) for (const o of v.split(',')) if (o.trim()) set.add(o.trim());
  }
  const known = new Set(['keyValues', 'concise', 'normalized', 'sysAttrs', 'noOverwrite', 'update', 'replace', 'temporalValues', 'aggregatedValues', 'simplified', 'entityMap', 'splitEntities']);
  for (const o of set) if (!known.has(o)) throw new ProblemError('InvalidRequest', `Unknown option "${o}" in options= (known: ${[...known].join(', ')}).`);
  let format: Format | undefined;
  const fmtParam = q.format;
  if (fmtParam !== undefined) {
    if (!['keyValues', 'concise', 'normalized', 'simplified'].includes(fmtParam)) throw new ProblemError('InvalidRequest', `Unknown format "${fmtParam}": use normalized, concise or keyValues.`);
    format = fmtParam === 'simplified' ? 'keyValues' : (fmtParam as Format);
  } else if (set.has('keyValues') || set.has('simplified')) format = 'keyValues';
  else if (set.has('concise')) format = 'concise';
  else if (set.has('normalized')) format = 'normalized';
  if ((set.has('keyValues') || set.has('simplified')) && set.has('concise') && fmtParam === undefined)
    throw new ProblemError('BadRequestData', 'options=keyValues and options=concise cannot be combined.');
  return { format, sysAttrs: set.has('sysAttrs'), noOverwrite: set.has('noOverwrite'), update: set.has('update'), replace: set.has('replace'), set };
}

/** join / joinLevel (clause 4.5.23) */
export function joinParams(q: Q): { join?: 'inline' | 'flat' | '@none'; joinLevel?: number } {
  const join = q.join;
  if (join !== undefined && join !== 'inline' && join !== 'flat' && join !== '@none')
    throw new ProblemError('BadRequestData', `join must be "inline", "flat" or "@none", got "${join}".`);
  const joinLevel = intParam(q.joinLevel, 'joinLevel', 1);
  if (joinLevel !== undefined && joinLevel > 10) throw new ProblemError('BadRequestData', `joinLevel ${joinLevel} exceeds the maximum of 10.`);
  return { join: join as 'inline' | 'flat' | '@none' | undefined, joinLevel };
}

const SYSTEM_MEMBERS = new Set(['id', 'type', 'scope', 'createdAt', 'modifiedAt', 'deletedAt', 'expiresAt']);

/**
 * A query must be bounded (clause 5.7.2.4): type, attrs, q, geoQ or csf (attrs / q naming only
 * system members do not count), unless local=true.
 */
export function checkSufficient(p: QueryParams, local: boolean | undefined, csf: string | undefined) {
  if (p.type || p.geoQ || p.scopeQ || csf || local === true) return;
  if (p.attrs && p.attrs.some((a) => !SYSTEM_MEMBERS.has(a))) return;
  if (p.q && qNamesAttribute(p.q)) return;
  throw new ProblemError('BadRequestData', 'The query is too wide: give at least one of type, attrs, q, geoQ or csf (ids alone, or only system attributes, do not bound it), or local=true.');
}

function qNamesAttribute(q: string): boolean {
  const walk = (n: QExpr): boolean => (n.type === 'term' ? !SYSTEM_MEMBERS.has(n.path.attr) : n.items.some(walk));
  return walk(parseQ(q));
}

/** GET /entities query string -> QueryParams (also used by POST entityOperations/query for its body). */
export function queryParamsFromQs(q: Q, ctx: ContextRef, opts2: { sufficient?: boolean } = {}): QueryParams {
  const opts = parseOptions(q);
  const ids = listParam(q.id);
  if (ids) for (const id of ids) checkEntityId(id, 'id in id=');
  const p: QueryParams = {
    id: ids,
    idPattern: q.idPattern,
    type: q.type,
    attrs: listParam(q.attrs),
    pick: q.pick === undefined ? undefined : [q.pick],
    omit: q.omit === undefined ? undefined : [q.omit],
    q: q.q,
    scopeQ: q.scopeQ,
    lang: q.lang,
    datasetId: listParam(q.datasetId),
    format: opts.format,
    sysAttrs: opts.sysAttrs,
    limit: intParam(q.limit, 'limit'),
    offset: intParam(q.offset, 'offset'),
    count: boolParam(q.count, 'count'),
    expandValues: listParam(q.expandValues),
    orderBy: q.orderBy,
    orderFrom: q.orderFrom,
    collation: q.collation,
    ...joinParams(q),
    context: ctx,
  };
  const local = boolParam(q.local, 'local');
  if (q.type === '*') {
    // "*" selects every entity type (clause 5.7.2.4), local only
    if (local === false) throw new ProblemError('BadRequestData', 'type=* (all entity types) cannot be combined with local=false.');
    p.type = undefined;
    p.requireFilter = false;
  }
  if (p.pick && p.omit) throw new ProblemError('BadRequestData', 'pick and omit cannot be used together.');
  if (q.type === '') throw new ProblemError('BadRequestData', 'type= is empty.');
  if (q.georel !== undefined || q.geometry !== undefined || q.coordinates !== undefined) {
    p.geoQ = { georel: q.georel as string, geometry: q.geometry as string, coordinates: q.coordinates as string, geoproperty: q.geoproperty };
  }
  if (q.csf !== undefined) checkCsf(q.csf);
  if (q.type !== '*' && opts2.sufficient !== false) checkSufficient(p, local, q.csf);
  if (local === true) p.requireFilter = false;
  return p;
}

/** Context source filter (clause 4.9 syntax over registration properties): syntax check only. */
export function checkCsf(csf: string) {
  try {
    parseQ(csf);
  } catch {
    throw new ProblemError('BadRequestData', `csf "${csf}" is not a valid context source filter.`);
  }
}

export function boolParam(v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ProblemError('BadRequestData', `${name} must be true or false, got "${v}".`);
}

// ----- supported query parameters (6.3.20: an unsupported one is a 400 InvalidRequest) -----

const ENTITY_QUERY = [
  'id', 'type', 'idPattern', 'attrs', 'pick', 'omit', 'q', 'csf', 'georel', 'geometry', 'coordinates', 'geoproperty',
  'geometryProperty', 'lang', 'scopeQ', 'options', 'format', 'limit', 'offset', 'count', 'local', 'datasetId',
  'containedBy', 'join', 'joinLevel', 'entityMap', 'expandValues', 'jsonKeys', 'collectValues', 'orderBy', 'orderFrom', 'collation',
];
const ENTITY_RETRIEVE = [
  'type', 'attrs', 'pick', 'omit', 'geometryProperty', 'lang', 'options', 'format', 'local', 'datasetId',
  'containedBy', 'join', 'joinLevel', 'entityMap', 'expandValues', 'jsonKeys', 'csf',
];
const PURGE = ['id', 'type', 'idPattern', 'attrs', 'pick', 'omit', 'q', 'scopeQ', 'csf', 'georel', 'geometry', 'coordinates', 'geoproperty', 'lang', 'datasetId', 'keep', 'drop', 'local'];
const WRITE = ['options', 'local', 'type'];
const TEMPORAL = ['timerel', 'timeAt', 'endTimeAt', 'timeproperty', 'lastN', 'aggrMethods', 'aggrPeriodDuration'];
const V1 = '/ngsi-ld/v1';

/**
 * Query parameters each route of the core API understands, keyed by "METHOD route-url". Routes
 * not listed (modules' own) are not checked here; a module may call checkQueryParams itself.
 */
export const SUPPORTED_PARAMS: Readonly<Record<string, readonly string[]>> = {
  [`GET ${V1}/entities`]: ENTITY_QUERY,
  [`POST ${V1}/entities`]: ['local'],
  [`DELETE ${V1}/entities`]: PURGE,
  [`GET ${V1}/entities/:id`]: ENTITY_RETRIEVE,
  [`PUT ${V1}/entities/:id`]: WRITE,
  [`PATCH ${V1}/entities/:id`]: [...WRITE, 'format'],
  [`DELETE ${V1}/entities/:id`]: ['type', 'local'],
  [`POST ${V1}/entities/:id/attrs`]: WRITE,
  [`PATCH ${V1}/entities/:id/attrs`]: WRITE,
  [`PATCH ${V1}/entities/:id/attrs/:attr`]: [...WRITE, 'datasetId'],
  [`PUT ${V1}/entities/:id/attrs/:attr`]: [...WRITE, 'datasetId'],
  [`DELETE ${V1}/entities/:id/attrs/:attr`]: ['datasetId', 'deleteAll', 'lang', 'local', 'type'],
  [`POST ${V1}/entityOperations/create`]: ['options', 'local'],
  [`POST ${V1}/entityOperations/upsert`]: ['options', 'local'],
  [`POST ${V1}/entityOperations/update`]: ['options', 'local'],
  [`POST ${V1}/entityOperations/merge`]: ['options', 'local'],
  [`POST ${V1}/entityOperations/delete`]: ['options', 'local'],
  [`POST ${V1}/entityOperations/query`]: ENTITY_QUERY,
  [`GET ${V1}/types`]: ['details', 'local', 'count'],
  [`GET ${V1}/types/:type`]: ['local'],
  [`GET ${V1}/attributes`]: ['details', 'local', 'count'],
  [`GET ${V1}/attributes/:attr`]: ['local'],
  [`GET ${V1}/jsonldContexts`]: ['details', 'kind'],
  [`POST ${V1}/jsonldContexts`]: [],
  [`GET ${V1}/jsonldContexts/:id`]: ['details'],
  [`DELETE ${V1}/jsonldContexts/:id`]: ['reload'],
  [`GET ${V1}/info/sourceIdentity`]: [],
  // subscriptions module (5.8)
  [`POST ${V1}/subscriptions`]: ['local'],
  [`GET ${V1}/subscriptions`]: ['limit', 'offset', 'count', 'options', 'format', 'local'],
  [`GET ${V1}/subscriptions/:id`]: ['options', 'format', 'local'],
  [`PATCH ${V1}/subscriptions/:id`]: ['local'],
  [`DELETE ${V1}/subscriptions/:id`]: ['local'],
  // temporal module (5.6.11 ff., 5.7.3, 5.7.4)
  [`POST ${V1}/temporal/entities`]: ['local'],
  [`GET ${V1}/temporal/entities`]: [...ENTITY_QUERY, ...TEMPORAL],
  [`GET ${V1}/temporal/entities/:id`]: [...ENTITY_RETRIEVE, ...TEMPORAL],
  [`POST ${V1}/temporal/entityOperations/query`]: [...ENTITY_QUERY, ...TEMPORAL],
};

/** Throws InvalidRequest for a query parameter `allowed` does not name. */
export function checkQueryParams(req: FastifyRequest, allowed: readonly string[]): void {
  const q = req.query;
  if (!q || typeof q !== 'object') return;
  const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
  if (unknown.length)
    throw new ProblemError('InvalidRequest', `Unsupported query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}${allowed.length ? `; this operation accepts ${allowed.join(', ')}` : '; this operation takes none'}.`);
}

/** checkQueryParams against SUPPORTED_PARAMS for the matched route (no-op for routes not listed). */
export function checkRouteQueryParams(req: FastifyRequest): void {
  const url = req.routeOptions?.url;
  if (!url) return;
  const allowed = SUPPORTED_PARAMS[`${req.method} ${url}`];
  if (allowed) checkQueryParams(req, allowed);
}

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../../common/problem.ts';
import type { ContextRef, QueryParams, Format } from '../broker-api.ts';
import { CORE_CONTEXT_URL } from '../jsonld/index.ts';

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
      const url = m[1].trim();
      if (!/^https?:\/\//.test(url)) throw new ProblemError('BadRequestData', `The Link header's @context URL "${url}" is not an http(s) URL.`);
      return url;
    }
  }
  throw new ProblemError('BadRequestData', 'The Link header has no rel="http://www.w3.org/ns/json-ld#context" link.');
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
    return first['@context'] as ContextRef;
  }
  if (body && typeof body === 'object' && !Array.isArray(body) && '@context' in body)
    throw new ProblemError('BadRequestData', 'A body sent as application/json must not contain "@context": send it as application/ld+json or use a Link header.');
  return linkContext(req);
}

export type Representation = 'application/json' | 'application/ld+json' | 'application/geo+json';

/** Accept negotiation (406 when nothing acceptable). */
export function negotiate(req: FastifyRequest, allowGeo = true): Representation {
  const a = req.headers.accept;
  if (!a) return 'application/json';
  const ranges = a.split(',').map((r) => {
    const [t, ...ps] = r.trim().split(';');
    const q = ps.map((x) => x.trim()).find((x) => x.startsWith('q='));
    return { t: t.trim().toLowerCase(), q: q ? Number(q.slice(2)) : 1 };
  }).filter((r) => r.q > 0).sort((x, y) => y.q - x.q);
  for (const r of ranges) {
    if (r.t === 'application/json' || r.t === 'application/*' || r.t === '*/*') return 'application/json';
    if (r.t === 'application/ld+json') return 'application/ld+json';
    if (r.t === 'application/geo+json' && allowGeo) return 'application/geo+json';
  }
  throw new ProblemError('NotAcceptable', `None of the accepted media types (${a}) can be produced: use application/json, application/ld+json${allowGeo ? ' or application/geo+json' : ''}.`);
}

/** Sets Link (for application/json) or returns the @context to embed (for ld+json). */
export function contextForResponse(rep: Representation, ctxRef: ContextRef, reply: FastifyReply): ContextRef | undefined {
  const url = typeof ctxRef === 'string' ? ctxRef : CORE_CONTEXT_URL;
  if (rep === 'application/ld+json') return ctxRef ?? CORE_CONTEXT_URL;
  addLink(reply, `<${url}>; rel="${JSONLD_REL}"; type="application/ld+json"`);
  return undefined;
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
  for (const o of set) if (!known.has(o)) throw new ProblemError('BadRequestData', `Unknown option "${o}" in options=.`);
  let format: Format | undefined;
  const fmtParam = q.format;
  if (fmtParam !== undefined) {
    if (!['keyValues', 'concise', 'normalized', 'simplified'].includes(fmtParam)) throw new ProblemError('BadRequestData', `Unknown format "${fmtParam}".`);
    format = fmtParam === 'simplified' ? 'keyValues' : (fmtParam as Format);
  } else if (set.has('keyValues') || set.has('simplified')) format = 'keyValues';
  else if (set.has('concise')) format = 'concise';
  else if (set.has('normalized')) format = 'normalized';
  if ((set.has('keyValues') || set.has('simplified')) && set.has('concise') && fmtParam === undefined)
    throw new ProblemError('BadRequestData', 'options=keyValues and options=concise cannot be combined.');
  return { format, sysAttrs: set.has('sysAttrs'), noOverwrite: set.has('noOverwrite'), update: set.has('update'), replace: set.has('replace'), set };
}

/** GET /entities query string -> QueryParams (also used by POST entityOperations/query for its body). */
export function queryParamsFromQs(q: Q, ctx: ContextRef, maxLimit: number): QueryParams {
  const opts = parseOptions(q);
  const p: QueryParams = {
    id: listParam(q.id),
    idPattern: q.idPattern,
    type: q.type,
    attrs: listParam(q.attrs),
    pick: listParam(q.pick),
    omit: listParam(q.omit),
    q: q.q,
    scopeQ: q.scopeQ,
    lang: q.lang,
    datasetId: listParam(q.datasetId),
    format: opts.format,
    sysAttrs: opts.sysAttrs,
    limit: intParam(q.limit, 'limit'),
    offset: intParam(q.offset, 'offset'),
    count: boolParam(q.count, 'count'),
    context: ctx,
  };
  if (p.pick && p.omit) throw new ProblemError('BadRequestData', 'pick and omit cannot be used together.');
  if (p.pick && p.attrs) throw new ProblemError('BadRequestData', 'pick and attrs cannot be used together.');
  if (q.type === '') throw new ProblemError('BadRequestData', 'type= is empty.');
  if (q.georel !== undefined || q.geometry !== undefined || q.coordinates !== undefined) {
    p.geoQ = { georel: q.georel as string, geometry: q.geometry as string, coordinates: q.coordinates as string, geoproperty: q.geoproperty };
  }
  void maxLimit;
  return p;
}

export function boolParam(v: string | undefined, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ProblemError('BadRequestData', `${name} must be true or false, got "${v}".`);
}

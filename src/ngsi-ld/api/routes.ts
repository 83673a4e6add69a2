import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../../common/problem.ts';
import type { Platform } from '../../platform.ts';
import type { ContextRef, QueryParams } from '../broker-api.ts';
import type { StoredEntity, TermResolver } from '../model/types.ts';
import { IRI } from '../model/types.ts';
import { checkEntityId } from '../model/ids.ts';
import { isObject } from '../model/normalize.ts';
import type { RenderOptions } from '../model/render.ts';
import {
  tenantOf, linkContext, addLink, checkSufficient, bodyContext, negotiate, contextForResponse, parseOptions, queryParamsFromQs, listParam, boolParam, mediaType,
  joinParams, checkCsf,
  type Representation,
} from './http.ts';
import { typesAndAttributesRoutes } from './catalog.ts';
import { renderJoined } from '../join.ts';
import { parseTypeExpr, resolveTypeExpr, evaluateTypeExpr } from '../query/index.ts';
import { contextRoutes } from './contexts.ts';
import { guardQuery, guardStored } from '../../trust/api.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

const JSON_BODY = new Set(['application/json', 'application/ld+json', 'application/merge-patch+json']);

function requireJsonBody(req: FastifyRequest, allowMergePatch = false) {
  const mt = mediaType(req);
  // 6.3.4: every PATCH also accepts application/merge-patch+json
  if (!JSON_BODY.has(mt) || (mt === 'application/merge-patch+json' && !allowMergePatch && req.method !== 'PATCH'))
    throw new ProblemError('UnsupportedMediaType', `Content-Type must be application/json or application/ld+json${allowMergePatch ? ' (or application/merge-patch+json)' : ''}, got "${mt || 'none'}".`);
}

function objectBody(req: FastifyRequest): Record<string, unknown> {
  if (!isObject(req.body)) throw new ProblemError('InvalidRequest', `The body must be a JSON object, got ${req.body === undefined ? 'nothing' : Array.isArray(req.body) ? 'an array' : typeof req.body}.`);
  return req.body;
}

/** Sends entity JSON in the negotiated representation (JSON with Link, JSON-LD with @context, GeoJSON). */
export function sendEntities(
  reply: FastifyReply,
  rep: Representation,
  ctxRef: ContextRef,
  payload: Record<string, unknown> | Record<string, unknown>[],
  geo?: { stored: StoredEntity[]; ctx: TermResolver; geometryProperty?: string; ro: RenderOptions },
) {
  if (rep === 'application/geo+json' && geo) {
    const toFeature = (ent: Record<string, unknown>, e: StoredEntity) => {
      const gp = geo.geometryProperty ? geo.ctx.expandTerm(geo.geometryProperty) : IRI.location;
      const inst = e.attrs[gp]?.find((i) => i.datasetId === undefined) ?? e.attrs[gp]?.[0];
      const props: Record<string, unknown> = { ...ent };
      delete props.id;
      return { id: e.id, type: 'Feature', geometry: inst && inst.type === 'GeoProperty' ? inst.value : null, properties: props };
    };
    reply.header('content-type', 'application/geo+json');
    const geoCtx = contextForResponse(rep, ctxRef, reply); // embedded, or a Link with Prefer: body=json
    const withCtx = <T extends object>(o: T) => (geoCtx === undefined ? o : { ...o, '@context': geoCtx });
    if (Array.isArray(payload)) {
      const fc: Record<string, unknown> = { type: 'FeatureCollection', features: payload.map((p, i) => toFeature(p, geo.stored[i])) };
      return reply.send(JSON.stringify(withCtx(fc)));
    }
    return reply.send(JSON.stringify(withCtx(toFeature(payload, geo.stored[0]))));
  }
  const embed = contextForResponse(rep, ctxRef, reply);
  reply.header('content-type', rep === 'application/ld+json' ? 'application/ld+json' : 'application/json');
  if (embed !== undefined) {
    if (Array.isArray(payload)) return reply.send(JSON.stringify(payload.map((p) => ({ ...p, '@context': embed }))));
    return reply.send(JSON.stringify({ ...payload, '@context': embed }));
  }
  return reply.send(JSON.stringify(payload));
}

/** geometryProperty only has a meaning for GeoJSON (clause 5.7.1.4 / 5.7.2.4). */
function checkGeometryProperty(qs: Record<string, string>, rep: Representation) {
  if (qs.geometryProperty !== undefined && rep !== 'application/geo+json')
    throw new ProblemError('BadRequestData', 'geometryProperty is only allowed with Accept: application/geo+json.');
}

export async function ngsiLdRoutes(app: FastifyInstance, p: Platform) {
  const b = p.broker;

  // NGSI-LD clients compare Content-Type exactly (application/json, application/ld+json): no charset suffix
  // synchronous hook: an async one races handlers that call reply.send() without returning it
  app.addHook('onSend', (_req, reply, payload, done) => {
    const ct = reply.getHeader('content-type');
    if (typeof ct === 'string' && ct.endsWith('; charset=utf-8') && ct.includes('json')) reply.header('content-type', ct.slice(0, -15));
    done(null, payload);
  });

  // ----- entities -----
  app.post('/entities', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    const ctx = bodyContext(req, body);
    await b.createEntity(tenantOf(req), body, ctx);
    reply.code(201).header('Location', `/ngsi-ld/v1/entities/${encodeURIComponent(String(body.id ?? body['@id']))}`).send();
  });

  app.get('/entities', async (req: Req, reply) => {
    const rep = negotiate(req);
    const ctx = linkContext(req);
    const qs = req.query;
    const params = queryParamsFromQs(qs, ctx);
    checkGeometryProperty(qs, rep);
    if (rep === 'application/geo+json' && !params.format) params.format = 'normalized';
    const r = await b.query(tenantOf(req), params);
    await guardQuery(p.services, req, tenantOf(req), r); // trust: drop unreadable entities, redact personal data
    if (params.count) reply.header('NGSILD-Results-Count', String(r.count ?? 0));
    paging(req, reply, params, r.stored.length, r.count, rep);
    return sendEntities(reply, rep, ctx, r.entities, {
      stored: r.stored,
      ctx: r.ctx,
      geometryProperty: qs.geometryProperty,
      ro: { format: params.format ?? 'normalized' },
    });
  });

  // purge (clause 5.6.21): delete every match, or with drop/keep only remove attributes from the matches
  app.delete('/entities', async (req: Req, reply) => {
    const ctx = linkContext(req);
    const qs = req.query;
    const { keep, drop, local, ...rest } = qs;
    if (keep !== undefined && drop !== undefined) throw new ProblemError('BadRequestData', 'keep and drop cannot be used together.');
    const params = queryParamsFromQs(rest, ctx, { sufficient: false });
    checkSufficient(params, boolParam(local, 'local'), undefined);
    params.requireFilter = false;
    await b.purge(tenantOf(req), params, { keep: listParam(keep), drop: listParam(drop) });
    reply.code(204).send();
  });

  app.get('/entities/:id', async (req: Req, reply) => {
    const rep = negotiate(req);
    const ctx = linkContext(req);
    const tenant = tenantOf(req);
    const qs = req.query;
    const opts = parseOptions(qs);
    checkGeometryProperty(qs, rep);
    const id = checkEntityId(req.params.id);
    const params: QueryParams = {
      id: [id], attrs: listParam(qs.attrs), pick: qs.pick === undefined ? undefined : [qs.pick], omit: qs.omit === undefined ? undefined : [qs.omit],
      ...joinParams(qs), expandValues: listParam(qs.expandValues), context: ctx,
    };
    if (params.pick && params.omit) throw new ProblemError('BadRequestData', 'pick and omit cannot be used together.');
    const { plan, ctx: tctx } = await b.compile(params, tenantOf(req));
    const e = await guardStored(p.services, req, tenant, await b.getStored(tenant, id)); // trust
    if (qs.type !== undefined && qs.type !== '*') {
      // type selector (clause 5.7.1.4): the entity must be of a matching type
      const te = resolveTypeExpr(parseTypeExpr(qs.type), (t) => tctx.expandTerm(t));
      if (!evaluateTypeExpr(te, e.type)) throw new ProblemError('ResourceNotFound', `Entity "${id}" is not of type ${qs.type}.`);
    }
    const ro: RenderOptions = {
      format: opts.format ?? 'normalized', sysAttrs: opts.sysAttrs, pick: plan.pick, omit: plan.omit,
      keepId: plan.keepId, keepType: plan.keepType, lang: qs.lang, datasetId: qs.datasetId ? new Set(listParam(qs.datasetId)) : undefined,
    };
    if (params.attrs && !params.attrs.some((a) => tctx.expandTerm(a) in e.attrs))
      throw new ProblemError('ResourceNotFound', `Entity "${id}" has none of the attributes ${params.attrs.join(', ')}.`);
    const join = params.join && params.join !== '@none' ? params.join : undefined;
    const all = join
      ? await renderJoined([e], tctx, ro, plan, join, params.joinLevel ?? 1, (ids) => b.loadMany(tenant, ids))
      : [b.render(e, tctx, ro)];
    const out = all[0];
    if (Object.keys(out).length === 0)
      throw new ProblemError('ResourceNotFound', `Nothing of entity "${id}" is left after pick/omit.`);
    if (join === 'flat' && all.length > 1) return sendEntities(reply, rep, ctx, all, { stored: [e], ctx: tctx, geometryProperty: qs.geometryProperty, ro });
    return sendEntities(reply, rep, ctx, out, { stored: [e], ctx: tctx, geometryProperty: qs.geometryProperty, ro });
  });

  app.put('/entities/:id', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    await b.replaceEntity(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.patch('/entities/:id', async (req: Req, reply) => {
    requireJsonBody(req, true);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    await b.mergeEntity(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.delete('/entities/:id', async (req: Req, reply) => {
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, linkContext(req));
    await b.deleteEntity(tenantOf(req), checkEntityId(req.params.id));
    reply.code(204).send();
  });

  // ----- attributes of an entity -----
  app.post('/entities/:id/attrs', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    const opts = parseOptions(req.query);
    const r = await b.appendAttrs(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body), opts.noOverwrite);
    if (r.notUpdated.length) return reply.code(207).header('content-type', 'application/json').send(r);
    reply.code(204).send();
  });

  app.patch('/entities/:id/attrs', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    const r = await b.updateAttrsDetailed(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    if (r.notUpdated.length) return reply.code(207).header('content-type', 'application/json').send(r);
    reply.code(204).send();
  });

  app.patch('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    await b.partialAttrUpdate(tenantOf(req), checkEntityId(req.params.id), req.params.attr, body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.put('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.checkTypeSelector(tenantOf(req), req.params.id, req.query.type, bodyContext(req, body));
    await b.replaceAttr(tenantOf(req), checkEntityId(req.params.id), req.params.attr, body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.delete('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    const ctx = linkContext(req);
    const qs = req.query;
    await b.checkTypeSelector(tenantOf(req), req.params.id, qs.type, ctx);
    await b.deleteAttr(tenantOf(req), checkEntityId(req.params.id), req.params.attr, ctx, {
      datasetId: qs.datasetId,
      deleteAll: boolParam(qs.deleteAll, 'deleteAll'),
    });
    reply.code(204).send();
  });

  // a missing id or attribute name in the path is a client error, not an unknown route
  const noId = async () => { throw new ProblemError('BadRequestData', 'The entity id is missing in the path: use /entities/{entityId}.'); };
  app.put('/entities', noId);
  app.patch('/entities', noId);
  app.route({ method: ['DELETE', 'PUT'], url: '/entities/:id/attrs', handler: async (_req, reply) => {
    reply.code(405).header('Allow', 'POST, PATCH').header('content-type', 'application/json')
      .send(JSON.stringify({ type: 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest', title: 'Method Not Allowed', status: 405, detail: 'Name the attribute: /entities/{entityId}/attrs/{attrId}.' }));
  } });

  // ----- batch operations -----
  const batchReply = (reply: FastifyReply, r: { success: string[]; errors: unknown[] }, okStatus: number, okBody: unknown) => {
    if (r.errors.length) return reply.code(207).header('content-type', 'application/json').send(r);
    if (okBody === undefined) return reply.code(okStatus).send();
    return reply.code(okStatus).header('content-type', 'application/json').send(okBody);
  };
  const batchBody = (req: FastifyRequest): { body: unknown[]; ctx: ContextRef; perItem: boolean } => {
    requireJsonBody(req);
    if (!Array.isArray(req.body)) throw new ProblemError('BadRequestData', 'A batch operation body must be a JSON array.');
    if (req.body.length === 0) throw new ProblemError('BadRequestData', 'The batch is empty.');
    const ld = mediaType(req) === 'application/ld+json';
    if (ld) {
      if (req.headers.link && /json-ld#context/.test(String(req.headers.link)))
        throw new ProblemError('BadRequestData', 'With Content-Type application/ld+json the @context goes in each entity; do not also send a JSON-LD Link header.');
      return { body: req.body, ctx: undefined, perItem: true };
    }
    // items are checked one by one (an item with an @context fails alone)
    return { body: req.body, ctx: linkContext(req), perItem: false };
  };

  app.post('/entityOperations/create', async (req: Req, reply) => {
    const { body, ctx, perItem } = batchBody(req);
    const r = await b.batchCreate(tenantOf(req), body, ctx, perItem);
    return batchReply(reply, r, 201, r.success);
  });
  app.post('/entityOperations/upsert', async (req: Req, reply) => {
    const { body, ctx, perItem } = batchBody(req);
    const opts = parseOptions(req.query);
    if (opts.update && opts.replace) throw new ProblemError('BadRequestData', 'options=update and options=replace cannot be combined.');
    const r = await b.batchUpsert(tenantOf(req), body, ctx, opts.update ? 'update' : 'replace', perItem);
    if (r.errors.length) return reply.code(207).header('content-type', 'application/json').send({ success: r.success, errors: r.errors });
    if (r.created.length) return reply.code(201).header('content-type', 'application/json').send(r.created);
    return reply.code(204).send();
  });
  app.post('/entityOperations/update', async (req: Req, reply) => {
    const { body, ctx, perItem } = batchBody(req);
    const opts = parseOptions(req.query);
    const r = await b.batchUpdate(tenantOf(req), body, ctx, opts.noOverwrite, perItem);
    return batchReply(reply, r, 204, undefined);
  });
  app.post('/entityOperations/merge', async (req: Req, reply) => {
    const { body, ctx, perItem } = batchBody(req);
    const r = await b.batchMerge(tenantOf(req), body, ctx, perItem);
    return batchReply(reply, r, 204, undefined);
  });
  app.post('/entityOperations/delete', async (req: Req, reply) => {
    requireJsonBody(req);
    if (Array.isArray(req.body) && req.body.length === 0) throw new ProblemError('BadRequestData', 'The batch is empty.');
    const r = await b.batchDelete(tenantOf(req), req.body);
    return batchReply(reply, r, 204, undefined);
  });
  app.post('/entityOperations/query', async (req: Req, reply) => {
    requireJsonBody(req);
    const rep = negotiate(req);
    const body = objectBody(req);
    const ctx = mediaType(req) === 'application/ld+json' ? (body['@context'] as ContextRef) : linkContext(req);
    if (body.type !== 'Query') throw new ProblemError('BadRequestData', 'The body of entityOperations/query must be a Query object ("type": "Query").');
    const qs = req.query;
    const params = queryParamsFromQs(qs, ctx, { sufficient: false });
    // Query data type (clause 5.2.23)
    const bad = (msg: string): never => { throw new ProblemError('BadRequestData', msg); };
    const strList = (v: unknown, name: string): string[] => {
      if (typeof v === 'string') return [v];
      if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string' || x === '')) bad(`"${name}" must be a non-empty array of strings.`);
      return v as string[];
    };
    const str = (v: unknown, name: string): string => (typeof v === 'string' && v !== '' ? v : bad(`"${name}" must be a non-empty string.`));
    if (body.temporalQ !== undefined) bad('"temporalQ" is only for the Query Temporal Evolution of Entities operation.');
    const ents = body.entities as unknown;
    if (ents !== undefined) {
      if (!Array.isArray(ents) || ents.length === 0) bad('"entities" must be a non-empty array of entity selectors.');
      const sels = (ents as unknown[]).map((x) => {
        if (!isObject(x)) return bad('Each member of "entities" must be an EntitySelector object.');
        const type = str(x.type, 'entities[].type');
        let ids: string[] | undefined;
        if (x.id !== undefined) {
          ids = strList(x.id, 'entities[].id');
          for (const id of ids) checkEntityId(id, 'entities[].id');
        }
        const idPattern = x.idPattern === undefined ? undefined : str(x.idPattern, 'entities[].idPattern');
        return { type, ids, idPattern };
      });
      // several selectors: their types are OR-ed; id / idPattern apply when one selector carries them
      params.type = sels.length === 1 ? sels[0].type : sels.map((x) => `(${x.type})`).join('|');
      const withIds = sels.filter((x) => x.ids || x.idPattern);
      if (withIds.length === 1 && sels.length === 1) {
        // id takes precedence over idPattern (clause 5.2.33)
        if (withIds[0].ids) params.id = withIds[0].ids;
        else params.idPattern = withIds[0].idPattern;
      } else if (withIds.length) {
        params.id = withIds.flatMap((x) => x.ids ?? []);
        if (withIds.some((x) => !x.ids)) bad('Several entity selectors with idPattern are not supported: send one query per selector.');
      }
    }
    if (body.attrs !== undefined) params.attrs = strList(body.attrs, 'attrs');
    if (body.pick !== undefined) params.pick = strList(body.pick, 'pick');
    if (body.omit !== undefined) params.omit = strList(body.omit, 'omit');
    if (params.pick && params.omit) bad('pick and omit cannot be used together.');
    if (body.q !== undefined) params.q = str(body.q, 'q');
    if (body.scopeQ !== undefined) params.scopeQ = str(body.scopeQ, 'scopeQ');
    if (body.csf !== undefined) checkCsf(str(body.csf, 'csf'));
    if (body.lang !== undefined) params.lang = str(body.lang, 'lang');
    if (body.expandValues !== undefined) params.expandValues = strList(body.expandValues, 'expandValues');
    if (body.datasetId !== undefined) params.datasetId = strList(body.datasetId, 'datasetId');
    if (body.join !== undefined || body.joinLevel !== undefined) {
      if (body.joinLevel !== undefined && (!Number.isInteger(body.joinLevel) || (body.joinLevel as number) < 1)) bad('"joinLevel" must be a positive integer.');
      Object.assign(params, joinParams({ join: body.join === undefined ? undefined : str(body.join, 'join'), joinLevel: body.joinLevel === undefined ? undefined : String(body.joinLevel) }));
    }
    if (body.geoQ !== undefined) {
      if (!isObject(body.geoQ)) bad('"geoQ" must be an object.');
      const g = body.geoQ as Record<string, unknown>;
      params.geoQ = { georel: g.georel as string, geometry: g.geometry as string, coordinates: g.coordinates as never, geoproperty: g.geoproperty as string | undefined };
    }
    if (body.ordering !== undefined) {
      if (!isObject(body.ordering)) bad('"ordering" must be an object.');
      const o = body.ordering as Record<string, unknown>;
      if (o.orderBy !== undefined) params.orderBy = strList(o.orderBy, 'ordering.orderBy').join(',');
      if (o.geometry !== undefined && typeof o.geometry !== 'string') bad('"ordering.geometry" must be a string.');
      if (o.coordinates !== undefined) {
        if (!Array.isArray(o.coordinates)) bad('"ordering.coordinates" must be an array of coordinates.');
        params.orderFrom = o.coordinates as number[];
      }
      if (o.collation !== undefined) params.collation = str(o.collation, 'ordering.collation');
    }
    if (body.orderBy !== undefined) params.orderBy = strList(body.orderBy, 'orderBy').join(',');
    if (body.collation !== undefined) params.collation = str(body.collation, 'collation');
    const r = await b.query(tenantOf(req), params);
    await guardQuery(p.services, req, tenantOf(req), r); // trust: drop unreadable entities, redact personal data
    if (params.count) reply.header('NGSILD-Results-Count', String(r.count ?? 0));
    return sendEntities(reply, rep, ctx, r.entities, { stored: r.stored, ctx: r.ctx, ro: { format: params.format ?? 'normalized' } });
  });

  typesAndAttributesRoutes(app, p);
  contextRoutes(app, p);
}

/** Link next/prev headers for paged queries (query keys in order, values left readable where RFC 3986 allows). */
function paging(req: Req, reply: FastifyReply, params: QueryParams, got: number, total?: number, rep: string = 'application/json') {
  const limit = params.limit ?? 20;
  const offset = params.offset ?? 0;
  const [rawPath, qs] = req.url.split('?');
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const base = new URLSearchParams(qs ?? '');
  const links: string[] = [];
  const enc = (v: string) => encodeURIComponent(v).replace(/%(3A|2A|2C|2F|40|3B|21|24|27|28|29)/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  const mk = (off: number) => {
    base.set('offset', String(off));
    base.set('limit', String(limit));
    const keys = [...new Set(base.keys())].sort();
    return `<${path}?${keys.flatMap((k) => base.getAll(k).map((v) => `${enc(k)}=${enc(v)}`)).join('&')}>`;
  };
  const type = rep === 'application/geo+json' ? 'application/geo+json' : rep;
  if (limit > 0 && offset > 0) links.push(`${mk(Math.max(0, offset - limit))}; rel="prev"; type="${type}"`);
  const more = total !== undefined ? offset + got < total : got === limit && limit > 0;
  if (limit > 0 && more) links.push(`${mk(offset + limit)}; rel="next"; type="${type}"`);
  for (const l of links) addLink(reply, l);
}

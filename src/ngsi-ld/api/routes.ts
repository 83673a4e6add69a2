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
  tenantOf, linkContext, addLink, bodyContext, negotiate, contextForResponse, parseOptions, queryParamsFromQs, listParam, boolParam, mediaType,
  type Representation,
} from './http.ts';
import { typesAndAttributesRoutes } from './catalog.ts';
import { contextRoutes } from './contexts.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

const JSON_BODY = new Set(['application/json', 'application/ld+json', 'application/merge-patch+json']);

function requireJsonBody(req: FastifyRequest, allowMergePatch = false) {
  const mt = mediaType(req);
  if (!JSON_BODY.has(mt) || (mt === 'application/merge-patch+json' && !allowMergePatch))
    throw new ProblemError('UnsupportedMediaType', `Content-Type must be application/json or application/ld+json${allowMergePatch ? ' (or application/merge-patch+json)' : ''}, got "${mt || 'none'}".`);
}

function objectBody(req: FastifyRequest): Record<string, unknown> {
  if (!isObject(req.body)) throw new ProblemError('BadRequestData', 'The body must be a JSON object.');
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
    const url = typeof ctxRef === 'string' ? ctxRef : undefined;
    const toFeature = (ent: Record<string, unknown>, e: StoredEntity) => {
      const gp = geo.geometryProperty ? geo.ctx.expandTerm(geo.geometryProperty) : IRI.location;
      const inst = e.attrs[gp]?.[0];
      const props: Record<string, unknown> = { ...ent };
      delete props.id;
      return { id: e.id, type: 'Feature', geometry: inst && inst.type === 'GeoProperty' ? inst.value : null, properties: props };
    };
    reply.header('content-type', 'application/geo+json');
    if (url) addLink(reply, `<${url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`);
    if (Array.isArray(payload)) {
      const fc: Record<string, unknown> = { type: 'FeatureCollection', features: payload.map((p, i) => toFeature(p, geo.stored[i])) };
      return reply.send(JSON.stringify(fc));
    }
    return reply.send(JSON.stringify(toFeature(payload, geo.stored[0])));
  }
  const embed = contextForResponse(rep, ctxRef, reply);
  reply.header('content-type', rep === 'application/ld+json' ? 'application/ld+json' : 'application/json');
  if (embed !== undefined) {
    if (Array.isArray(payload)) return reply.send(JSON.stringify(payload.map((p) => ({ ...p, '@context': embed }))));
    return reply.send(JSON.stringify({ ...payload, '@context': embed }));
  }
  return reply.send(JSON.stringify(payload));
}

export async function ngsiLdRoutes(app: FastifyInstance, p: Platform) {
  const b = p.broker;
  const maxLimit = p.config.maxLimit;

  // NGSI-LD clients compare Content-Type exactly (application/json, application/ld+json): no charset suffix
  app.addHook('onSend', async (_req, reply, payload) => {
    const ct = reply.getHeader('content-type');
    if (typeof ct === 'string' && ct.endsWith('; charset=utf-8') && ct.includes('json')) reply.header('content-type', ct.slice(0, -15));
    return payload;
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
    const params = queryParamsFromQs(qs, ctx, maxLimit);
    if (rep === 'application/geo+json' && !params.format) params.format = 'normalized';
    const r = await b.query(tenantOf(req), params);
    if (params.count) reply.header('NGSILD-Results-Count', String(r.count ?? 0));
    paging(req, reply, params, r.entities.length, r.count);
    return sendEntities(reply, rep, ctx, r.entities, {
      stored: r.stored,
      ctx: r.ctx,
      geometryProperty: qs.geometryProperty,
      ro: { format: params.format ?? 'normalized' },
    });
  });

  app.delete('/entities', async (req: Req, reply) => {
    const ctx = linkContext(req);
    const params = queryParamsFromQs(req.query, ctx, maxLimit);
    await b.purge(tenantOf(req), params);
    reply.code(204).send();
  });

  app.get('/entities/:id', async (req: Req, reply) => {
    const rep = negotiate(req);
    const ctx = linkContext(req);
    const tenant = tenantOf(req);
    const qs = req.query;
    const opts = parseOptions(qs);
    const e = await b.getStored(tenant, checkEntityId(req.params.id));
    const tctx = await b.contexts.resolve(ctx);
    const params: QueryParams = { id: [e.id], attrs: listParam(qs.attrs), pick: listParam(qs.pick), omit: listParam(qs.omit), context: ctx };
    const { plan } = await b.compile(params);
    const ro: RenderOptions = {
      format: opts.format ?? 'normalized', sysAttrs: opts.sysAttrs, pick: plan.pick, omit: plan.omit,
      keepId: plan.keepId, keepType: plan.keepType, lang: qs.lang, datasetId: qs.datasetId ? new Set(listParam(qs.datasetId)) : undefined,
    };
    const out = b.render(e, tctx, ro);
    return sendEntities(reply, rep, ctx, out, { stored: [e], ctx: tctx, geometryProperty: qs.geometryProperty, ro });
  });

  app.put('/entities/:id', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.replaceEntity(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.patch('/entities/:id', async (req: Req, reply) => {
    requireJsonBody(req, true);
    const body = objectBody(req);
    await b.mergeEntity(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.delete('/entities/:id', async (req: Req, reply) => {
    await b.deleteEntity(tenantOf(req), checkEntityId(req.params.id));
    reply.code(204).send();
  });

  // ----- attributes of an entity -----
  app.post('/entities/:id/attrs', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    const opts = parseOptions(req.query);
    const r = await b.appendAttrs(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body), opts.noOverwrite);
    if (r.notUpdated.length) return reply.code(207).header('content-type', 'application/json').send(r);
    reply.code(204).send();
  });

  app.patch('/entities/:id/attrs', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    const r = await b.updateAttrsDetailed(tenantOf(req), checkEntityId(req.params.id), body, bodyContext(req, body));
    if (r.notUpdated.length) return reply.code(207).header('content-type', 'application/json').send(r);
    reply.code(204).send();
  });

  app.patch('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.partialAttrUpdate(tenantOf(req), checkEntityId(req.params.id), req.params.attr, body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.put('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    requireJsonBody(req);
    const body = objectBody(req);
    await b.replaceAttr(tenantOf(req), checkEntityId(req.params.id), req.params.attr, body, bodyContext(req, body));
    reply.code(204).send();
  });

  app.delete('/entities/:id/attrs/:attr', async (req: Req, reply) => {
    const ctx = linkContext(req);
    const qs = req.query;
    await b.deleteAttr(tenantOf(req), checkEntityId(req.params.id), req.params.attr, ctx, {
      datasetId: qs.datasetId,
      deleteAll: boolParam(qs.deleteAll, 'deleteAll'),
    });
    reply.code(204).send();
  });

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
      for (const it of req.body) if (isObject(it) && it['@context'] === undefined) throw new ProblemError('BadRequestData', 'Every entity sent as application/ld+json needs an "@context".');
      return { body: req.body, ctx: undefined, perItem: true };
    }
    for (const it of req.body) if (isObject(it) && '@context' in it) throw new ProblemError('BadRequestData', 'Entities sent as application/json must not contain "@context".');
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
    const params = queryParamsFromQs(qs, ctx, maxLimit);
    const ents = body.entities as unknown;
    if (ents !== undefined) {
      if (!Array.isArray(ents)) throw new ProblemError('BadRequestData', '"entities" must be a list of entity selectors.');
      // several selectors: each is {id?, idPattern?, type}; we support the common single-selector case exactly
      const sel = ents[0] as Record<string, string>;
      if (sel) {
        if (sel.id) params.id = [sel.id];
        if (sel.idPattern) params.idPattern = sel.idPattern;
        if (sel.type) params.type = ents.map((x) => (x as Record<string, string>).type).filter(Boolean).join(',');
      }
    }
    if (body.attrs !== undefined) params.attrs = body.attrs as string[];
    if (body.pick !== undefined) params.pick = body.pick as string[];
    if (body.omit !== undefined) params.omit = body.omit as string[];
    if (body.q !== undefined) params.q = String(body.q);
    if (body.scopeQ !== undefined) params.scopeQ = String(body.scopeQ);
    if (body.lang !== undefined) params.lang = String(body.lang);
    if (isObject(body.geoQ)) {
      const g = body.geoQ as Record<string, unknown>;
      params.geoQ = { georel: g.georel as string, geometry: g.geometry as string, coordinates: g.coordinates as never, geoproperty: g.geoproperty as string | undefined };
    }
    const r = await b.query(tenantOf(req), params);
    if (params.count) reply.header('NGSILD-Results-Count', String(r.count ?? 0));
    return sendEntities(reply, rep, ctx, r.entities, { stored: r.stored, ctx: r.ctx, ro: { format: params.format ?? 'normalized' } });
  });

  typesAndAttributesRoutes(app, p);
  contextRoutes(app, p);
}

/** Link next/prev headers for paged queries. */
function paging(req: Req, reply: FastifyReply, params: QueryParams, got: number, total?: number) {
  const limit = params.limit ?? 20;
  const offset = params.offset ?? 0;
  const [path, qs] = req.url.split('?');
  const base = new URLSearchParams(qs ?? '');
  const links: string[] = [];
  const mk = (off: number) => {
    base.set('offset', String(off));
    base.set('limit', String(limit));
    return `<${path}?${base.toString()}>`;
  };
  if (offset > 0) links.push(`${mk(Math.max(0, offset - limit))}; rel="prev"; type="application/ld+json"`);
  const more = total !== undefined ? offset + got < total : got === limit && limit > 0;
  if (more) links.push(`${mk(offset + limit)}; rel="next"; type="application/ld+json"`);
  for (const l of links) addLink(reply, l);
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { ProblemError } from '../../common/problem.ts';
import type { Platform } from '../../platform.ts';
import { tenantOf, linkContext, negotiate, boolParam } from './http.ts';
import { sendEntities } from './routes.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/** /types and /attributes: what kinds of entities and attributes the tenant holds (clause 5.7.5-5.7.10). */
export function typesAndAttributesRoutes(app: FastifyInstance, p: Platform) {
  const db = p.db;
  const b = p.broker;
  /** what every discovery request needs: representation, @context, term map, an existing tenant */
  const prelude = async (req: Req) => {
    const rep = negotiate(req, false);
    const ctxRef = linkContext(req);
    const tenant = tenantOf(req);
    const ctx = await b.contexts.resolve(ctxRef, { tenant });
    await b.assertTenant(tenant);
    return { rep, ctxRef, ctx, tenant };
  };

  app.get('/types', async (req: Req, reply) => {
    const { rep, ctxRef, ctx, tenant } = await prelude(req);
    const details = boolParam(req.query.details, 'details');
    if (!details) {
      const rows = await db.query<{ t: string }>('SELECT DISTINCT t FROM entities e, unnest(e.types) t WHERE e.tenant = $1 ORDER BY t', [tenant]);
      return sendEntities(reply, rep, ctxRef, { id: `urn:ngsi-ld:EntityTypeList:${randomUUID()}`, type: 'EntityTypeList', typeList: rows.map((r) => ctx.compactIri(r.t)) });
    }
    const rows = await db.query<{ t: string; attrs: string[] }>(
      `SELECT t, array_remove(array_agg(DISTINCT k), NULL) AS attrs FROM entities e CROSS JOIN LATERAL unnest(e.types) t
       LEFT JOIN LATERAL jsonb_object_keys(e.attrs) k ON true WHERE e.tenant = $1 GROUP BY t ORDER BY t`, [tenant]);
    return sendEntities(reply, rep, ctxRef, rows.map((r) => ({ id: r.t, type: 'EntityType', typeName: ctx.compactIri(r.t), attributeNames: r.attrs.map((a) => ctx.compactIri(a)) })));
  });

  app.get('/types/:type', async (req: Req, reply) => {
    const { rep, ctxRef, ctx, tenant } = await prelude(req);
    const iri = ctx.expandTerm(req.params.type);
    const n = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM entities WHERE tenant = $1 AND types @> ARRAY[$2]::text[]', [tenant, iri]);
    if (!Number(n[0].n)) throw new ProblemError('ResourceNotFound', `No entity of type "${req.params.type}" exists.`);
    const rows = await db.query<{ k: string; types: string[] }>(
      `SELECT a.k, array_agg(DISTINCT COALESCE(i->>'type', 'Property')) AS types FROM entities e, jsonb_each(e.attrs) AS a(k, v), jsonb_array_elements(a.v) i
       WHERE e.tenant = $1 AND e.types @> ARRAY[$2]::text[] GROUP BY a.k ORDER BY a.k`, [tenant, iri]);
    return sendEntities(reply, rep, ctxRef, {
      id: iri, type: 'EntityTypeInfo', typeName: ctx.compactIri(iri), entityCount: Number(n[0].n),
      attributeDetails: rows.map((r) => ({ id: r.k, type: 'Attribute', attributeName: ctx.compactIri(r.k), attributeTypes: r.types })),
    });
  });

  app.get('/attributes', async (req: Req, reply) => {
    const { rep, ctxRef, ctx, tenant } = await prelude(req);
    const details = boolParam(req.query.details, 'details');
    if (!details) {
      const rows = await db.query<{ k: string }>('SELECT DISTINCT k FROM entities e, jsonb_object_keys(e.attrs) k WHERE e.tenant = $1 ORDER BY k', [tenant]);
      return sendEntities(reply, rep, ctxRef, { id: `urn:ngsi-ld:AttributeList:${randomUUID()}`, type: 'AttributeList', attributeList: rows.map((r) => ctx.compactIri(r.k)) });
    }
    const rows = await db.query<{ k: string; types: string[] }>(
      `SELECT k, array_agg(DISTINCT t) AS types FROM entities e, jsonb_object_keys(e.attrs) k, unnest(e.types) t WHERE e.tenant = $1 GROUP BY k ORDER BY k`, [tenant]);
    return sendEntities(reply, rep, ctxRef, rows.map((r) => ({ id: r.k, type: 'Attribute', attributeName: ctx.compactIri(r.k), typeNames: r.types.map((t) => ctx.compactIri(t)) })));
  });

  app.get('/attributes/:attr', async (req: Req, reply) => {
    const { rep, ctxRef, ctx, tenant } = await prelude(req);
    const iri = ctx.expandTerm(req.params.attr);
    const rows = await db.query<{ n: number; types: string[]; atypes: string[] }>(
      `SELECT count(DISTINCT e.id)::int AS n, array_agg(DISTINCT t) AS types, array_agg(DISTINCT COALESCE(i->>'type', 'Property')) AS atypes
       FROM entities e CROSS JOIN LATERAL unnest(e.types) t CROSS JOIN LATERAL jsonb_array_elements(e.attrs->$2) i
       WHERE e.tenant = $1 AND e.attrs ? $2`, [tenant, iri]);
    if (!rows.length || !Number(rows[0].n)) throw new ProblemError('ResourceNotFound', `No entity has attribute "${req.params.attr}".`);
    const r = rows[0];
    return sendEntities(reply, rep, ctxRef, {
      id: iri, type: 'Attribute', attributeName: ctx.compactIri(iri), attributeCount: Number(r.n), attributeTypes: r.atypes, typeNames: r.types.map((t) => ctx.compactIri(t)),
    });
  });
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Platform } from '../../platform.ts';
import type { ContextRegistry } from '../jsonld/index.ts';
import { tenantOf } from './http.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

/** /jsonldContexts (clause 5.13): list, add hosted, serve, delete. The registry holds the semantics. */
export function contextRoutes(app: FastifyInstance, p: Platform) {
  const reg = () => p.services.get('jsonld.registry') as ContextRegistry;

  app.get('/jsonldContexts', async (req: Req, reply) => {
    const r = reg().list({ tenant: tenantOf(req), details: req.query.details, kind: req.query.kind });
    reply.header('content-type', 'application/json').send(r);
  });
  app.post('/jsonldContexts', async (req: Req, reply) => {
    const r = await reg().add(req.body, { tenant: tenantOf(req) });
    // a relative reference (RFC 9110 10.2.2), as for entities; the listing gives the absolute URL
    reply.code(201).header('Location', reg().pathOf(r.id)).send();
  });
  app.get('/jsonldContexts/:id', async (req: Req, reply) => {
    const r = reg().get(req.params.id, { tenant: tenantOf(req), details: req.query.details });
    // 5.13.4: the @context document (or its ContextDetails) is served as application/json
    reply.header('content-type', 'application/json').send(JSON.stringify(r));
  });
  app.delete('/jsonldContexts/:id', async (req: Req, reply) => {
    await reg().delete(req.params.id, { tenant: tenantOf(req), reload: req.query.reload });
    reply.code(204).send();
  });
}

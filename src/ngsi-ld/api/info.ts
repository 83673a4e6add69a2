import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Platform } from '../../platform.ts';
import { CORE_CONTEXT_URL } from '../jsonld/index.ts';
import { negotiate, tenantOf } from './http.ts';

const started = Date.now();

/** ISO 8601 duration of `ms`, e.g. P1DT2H3M4.5S. */
export function isoDuration(ms: number): string {
  let s = Math.max(0, ms) / 1000;
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const sec = Math.round(s * 1000) / 1000;
  return `P${d ? `${d}D` : ''}T${h ? `${h}H` : ''}${m ? `${m}M` : ''}${sec}S`;
}

/**
 * The identity of this broker as a Context Source (5.15.1, 5.2.40). The alias is derived from
 * the broker's public base URL (URBIS_BASE_URL, unique per deployment) so it is stable across
 * restarts and replicas, and it names the Tenant (4.14): each Tenant is a distinct source.
 */
export function sourceIdentity(baseUrl: string, tenant: string, now = Date.now()) {
  const broker = createHash('sha256').update(baseUrl).digest('hex').slice(0, 16);
  const alias = `urn:ngsi-ld:ContextSource:${broker}${tenant ? `:${encodeURIComponent(tenant)}` : ''}`;
  return {
    id: alias,
    type: 'ContextSourceIdentity',
    contextSourceAlias: alias,
    contextSourceUptime: isoDuration(now - started),
    contextSourceTimeAt: new Date(now).toISOString(),
    contextSourceExtras: { product: 'Urbis', baseUrl },
  };
}

/** GET /info/sourceIdentity (5.15.1). */
export function infoRoutes(app: FastifyInstance, p: Platform) {
  app.get('/info/sourceIdentity', async (req: FastifyRequest, reply) => {
    const rep = negotiate(req, false);
    const body: Record<string, unknown> = sourceIdentity(p.config.baseUrl, tenantOf(req));
    if (rep === 'application/ld+json') body['@context'] = CORE_CONTEXT_URL;
    else reply.header('Link', `<${CORE_CONTEXT_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"`);
    reply.header('content-type', rep).send(JSON.stringify(body));
  });
}

import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import { ProblemError } from '../common/problem.ts';
import type { Platform, UrbisModule } from '../platform.ts';
import { ngsiLdRoutes } from '../ngsi-ld/api/routes.ts';
import { httpsServerFactory } from '../trust/tls.ts';
import { infoRoutes } from '../ngsi-ld/api/info.ts';
import { checkRouteQueryParams, negotiate } from '../ngsi-ld/api/http.ts';

const NGSI_LD = '/ngsi-ld/';
/** the only operations that offer application/geo+json (6.3.15): Retrieve Entity and Query Entities */
const GEOJSON_ROUTES = new Set(['/ngsi-ld/v1/entities', '/ngsi-ld/v1/entities/:id']);

const JSON_TYPES = ['application/json', 'application/ld+json', 'application/merge-patch+json', 'application/geo+json'];

/** Builds the HTTP application: body parsing, RFC 7807 errors, health, the broker API and every module's routes. */
export async function buildApp(p: Platform, modules: UrbisModule[]): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    serverFactory: httpsServerFactory(), // trust: HTTPS when URBIS_TLS_CERT/URBIS_TLS_KEY are set
    bodyLimit: p.config.bodyLimit,
    // slow-loris safety: a request must arrive whole within these limits
    connectionTimeout: 60_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 72_000,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    const s = body as string;
    if (s.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(s));
    } catch (e) {
      done(new ProblemError('InvalidRequest', `The body is not valid JSON: ${(e as Error).message}.`), undefined);
    }
  });
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, _body, done) => {
    done(new ProblemError('UnsupportedMediaType', `Content-Type "${req.headers['content-type']}" is not supported: send application/json or application/ld+json.`), undefined);
  });

  app.setErrorHandler((err: FastifyError | ProblemError, req, reply) => {
    let pe: ProblemError;
    if (err instanceof ProblemError) pe = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') pe = new ProblemError('PayloadTooLarge', `The body exceeds the limit of ${p.config.bodyLimit} bytes.`);
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') pe = new ProblemError('UnsupportedMediaType', `Content-Type "${req.headers['content-type']}" is not supported.`);
    else if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') pe = new ProblemError('InvalidRequest', 'The body is empty.');
    else if (err.validation) pe = new ProblemError('BadRequestData', err.message);
    else if (err.statusCode && err.statusCode < 500) pe = new ProblemError('BadRequestData', err.message, undefined, err.statusCode);
    else {
      p.log.error('unhandled error', { url: req.url, err });
      pe = new ProblemError('InternalError', 'An internal error occurred; it has been logged.');
    }
    reply.code(pe.status).header('content-type', 'application/json').send(JSON.stringify(pe.toProblem()));
  });
  app.setNotFoundHandler((req, reply) => {
    const pe = new ProblemError('ResourceNotFound', `No resource at ${req.method} ${req.url.split('?')[0]}.`);
    reply.code(404).header('content-type', 'application/json').send(JSON.stringify(pe.toProblem()));
  });

  // NGSI-LD request preconditions (6.3.4), decided before anything else (tenant, body, route)
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith(NGSI_LD)) return;
    if ((req.method === 'POST' || req.method === 'PATCH' || req.method === 'PUT') && req.headers['content-length'] === undefined) {
      // "Content-Length" absent (e.g. chunked): just 411, without a payload body
      return reply.code(411).send();
    }
    checkRouteQueryParams(req);
    // an Accept that expands to none of json, ld+json, geo+json is a 406 whatever the resource (6.3.4);
    // each route still picks among the representations it offers
    if (req.method === 'GET' && req.routeOptions?.url) negotiate(req, GEOJSON_ROUTES.has(req.routeOptions.url));
  });
  // NGSI-LD clients compare Content-Type exactly: no charset suffix on JSON; NGSILD-Tenant is echoed (6.3.14)
  app.addHook('onSend', async (req, reply, payload) => {
    const ct = reply.getHeader('content-type');
    if (typeof ct === 'string' && ct.includes('json') && /;\s*charset=utf-8$/i.test(ct)) reply.header('content-type', ct.replace(/;\s*charset=utf-8$/i, ''));
    if (req.url.startsWith(NGSI_LD)) {
      const t = req.headers['ngsild-tenant'];
      if (typeof t === 'string' && t !== '' && reply.getHeader('NGSILD-Tenant') === undefined) reply.header('NGSILD-Tenant', t);
    }
    return payload;
  });

  for (const m of modules) if (m.hooks) await m.hooks(app, p);

  app.get('/health', async () => ({
    status: 'ok',
    store: p.db.kind,
    storeVersion: await p.db.version(),
    version: '0.1.0',
    auth: p.config.auth ? 'on' : 'off',
  }));

  await app.register(async (scope) => ngsiLdRoutes(scope, p), { prefix: '/ngsi-ld/v1' });
  await app.register(async (scope) => infoRoutes(scope, p), { prefix: '/ngsi-ld/v1' });
  for (const m of modules) {
    if (m.routes) await app.register(async (scope) => m.routes!(scope, p));
  }
  return app;
}

/**
 * The trust layer (layer 5) as an Urbis module: identities (local users, API keys, OIDC), policy
 * based authorization on every route, personal-data redaction and access log, hash-chained audit,
 * rate and complexity limits, security headers, CORS. Registers `p.services.get('auth')`
 * (AuthService, src/trust/api.ts). Listed FIRST in src/modules.ts so its hooks cover every API.
 */
import type { FastifyInstance } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import { TrustService } from './service.ts';
import { trustHooks, trustRoutes, type RouteRecord } from './http.ts';
import { loadTrustOptions, type TrustOverrides } from './options.ts';

export interface TrustModule extends UrbisModule {
  service(): TrustService | undefined;
  /** every route registered after the hooks, with its class (for the coverage test) */
  routes_: RouteRecord[];
}

export function createTrustModule(over: TrustOverrides = {}, env: NodeJS.ProcessEnv = process.env): TrustModule {
  let svc: TrustService | undefined;
  const routes: RouteRecord[] = [];
  return {
    name: 'trust',
    routes_: routes,
    service: () => svc,
    async start(p: Platform) {
      svc = new TrustService(p, loadTrustOptions(env, over));
      await svc.start();
      p.services.set('auth', svc);
    },
    hooks(app: FastifyInstance, p: Platform) {
      if (!svc) throw new Error('trust module not started');
      routes.length = 0;
      trustHooks(app, p, svc, routes);
    },
    routes(app: FastifyInstance, p: Platform) {
      trustRoutes(app, p, svc!);
    },
    async stop() {
      svc?.p.services.delete('auth');
    },
  };
}

export const trustModule: TrustModule = createTrustModule();
export default trustModule;

import type { FastifyInstance } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import { ProblemError } from '../common/problem.ts';
import { isObject } from '../ngsi-ld/model/normalize.ts';
import { linkContext, tenantOf } from '../ngsi-ld/api/http.ts';
import { HistoryStore } from './store.ts';
import { temporalRoutes } from './api.ts';

/**
 * Temporal module: every change event becomes history rows (written before the write is
 * acknowledged: the bus handler returns the insert's promise), the temporal API under
 * /ngsi-ld/v1/temporal, and a retention sweep per tenant / entity type.
 *
 * Settings (environment):
 * - URBIS_TEMPORAL_MAX_INSTANCES (default 10000): attribute instances per response; beyond it the
 *   answer is 206 Partial Content with a Content-Range.
 * - URBIS_TEMPORAL_RETENTION_EVERY_MS (default 3600000): how often the retention sweep (and, on
 *   PGlite, the rollup's VACUUM ANALYZE) runs.
 * Retention rules: PUT /temporal/v1/retention {"entityType"?: term or IRI, "days": n | null}
 * (tenant from NGSILD-Tenant), GET /temporal/v1/retention lists them.
 */
function envInt(name: string, dflt: number, min = 1): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

export class TemporalService {
  readonly store: HistoryStore;
  private cancel?: () => void;
  private unsubscribe?: () => void;
  readonly maxInstances = envInt('URBIS_TEMPORAL_MAX_INSTANCES', 10_000);
  readonly retentionEveryMs = envInt('URBIS_TEMPORAL_RETENTION_EVERY_MS', 3_600_000);
  constructor(private p: Platform) {
    this.store = new HistoryStore(p.db);
  }

  async start() {
    await this.store.migrate();
    // durable on ack: the broker awaits this promise before answering 2xx
    this.unsubscribe = this.p.bus.subscribe((evs) => this.store.recordEvents(evs));
    this.schedule();
  }

  private schedule() {
    this.cancel = this.p.clock.setTimer(this.retentionEveryMs, () => {
      this.sweep()
        .catch((e) => this.p.log.error('temporal retention sweep failed', { error: e }))
        .finally(() => {
          if (this.cancel) this.schedule();
        });
    });
  }

  /** Applies the retention rules now, then the store's upkeep; returns the number of history rows removed. */
  async sweep(): Promise<number> {
    const n = await this.store.applyRetention(this.p.clock.now());
    if (n) this.p.log.info('temporal retention removed history rows', { count: n });
    await this.store.maintain();
    return n;
  }

  stop() {
    this.cancel?.();
    this.cancel = undefined;
    this.unsubscribe?.();
  }
}

let svc: TemporalService | undefined;

export const temporalModule: UrbisModule = {
  name: 'temporal',
  async start(p) {
    svc = new TemporalService(p);
    p.services.set('temporal', svc);
    await svc.start();
  },
  routes(app: FastifyInstance, p: Platform) {
    const s = svc!;
    temporalRoutes(app, p, s.store, { maxInstances: s.maxInstances });
    app.get('/temporal/v1/retention', async (req) => {
      const t = tenantOf(req);
      return (await s.store.listRetention()).filter((r) => r.tenant === t).map((r) => ({ entityType: r.entityType || undefined, days: r.days }));
    });
    app.put('/temporal/v1/retention', async (req, reply) => {
      const body = req.body;
      if (!isObject(body)) throw new ProblemError('BadRequestData', 'The body must be {"entityType"?: string, "days": integer | null}.');
      const days = body.days;
      if (days !== null && (!Number.isInteger(days) || (days as number) < 1)) throw new ProblemError('BadRequestData', '"days" must be a positive integer, or null to remove the rule.');
      let type = '';
      if (body.entityType !== undefined) {
        if (typeof body.entityType !== 'string' || body.entityType === '') throw new ProblemError('BadRequestData', '"entityType" must be a non-empty string.');
        const ctx = await p.broker.contexts.resolve(linkContext(req), { tenant: tenantOf(req) });
        type = ctx.expandTerm(body.entityType);
      }
      await s.store.setRetention(tenantOf(req), type, days as number | null);
      reply.code(204).send();
    });
    app.post('/temporal/v1/retention/sweep', async () => ({ removed: await s.sweep() }));
  },
  async stop() {
    svc?.stop();
    svc = undefined;
  },
};

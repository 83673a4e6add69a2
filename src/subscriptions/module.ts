import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import type { ContextRef } from '../ngsi-ld/broker-api.ts';
import type { TermResolver } from '../ngsi-ld/model/types.ts';
import { renderEntity } from '../ngsi-ld/model/render.ts';
import { bodyContext, linkContext, tenantOf } from '../ngsi-ld/api/http.ts';
import { migrateModule } from '../store/schema.ts';
import { applySubscriptionUpdate, parseSubscription } from './domain/validate.ts';
import { compileFilters, validators } from './domain/filters.ts';
import { matchEvent } from './domain/match.ts';
import { notificationBody, notificationHeaders, pickOmit, PREVIOUS_KEYS, shapeEntity } from './domain/shape.ts';
import { subscriptionToPayload } from './domain/render.ts';
import type { CompiledFilters, DeliveryStatus, Subscription } from './domain/types.ts';
import { Outbox, type OutboxItem } from './delivery/outbox.ts';
import { Dispatcher, type DeliveryResult } from './delivery/dispatcher.ts';
import { HttpNotifier } from './delivery/http-notifier.ts';
import { MqttNotifier } from './delivery/mqtt-notifier.ts';
import { SchemeRouter } from './delivery/notifier.ts';
import { guardNotification } from '../trust/api.ts';

/**
 * Subscriptions module: CRUD under /ngsi-ld/v1/subscriptions, change events -> matching ->
 * rendered notifications in the durable outbox -> HTTP/MQTT delivery with retries.
 * Phase-2 state: change-triggered notifications; periodic (timeInterval) and throttling delay are
 * validated and stored but not yet scheduled (see docs/subscriptions.md).
 */
interface Live {
  sub: Subscription;
  filters: CompiledFilters;
  ctx: TermResolver;
}

const CORE_CONTEXT_URL = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld';

class SubscriptionService {
  live = new Map<string, Live>();
  outbox: Outbox;
  dispatcher: Dispatcher;
  private notifier: SchemeRouter;
  readonly db: Platform["db"];
  constructor(private p: Platform) {
    this.db = p.db;
    this.outbox = new Outbox(p.db);
    const http = new HttpNotifier();
    const mqtt = new MqttNotifier();
    this.notifier = new SchemeRouter({ http, https: http, mqtt, mqtts: mqtt });
    this.dispatcher = new Dispatcher(this.outbox, this.notifier, p.clock, {
      onResults: (r) => this.recordResults(r),
      log: p.log.child('notify'),
    });
  }

  private resolver() {
    return (this.p.broker as unknown as { contexts: { resolve(ref: ContextRef, o?: { tenant?: string }): Promise<TermResolver> } }).contexts;
  }

  async start() {
    await migrateModule(this.p.db, 'subscriptions', [
      {
        version: 1,
        sql: `CREATE TABLE IF NOT EXISTS subscriptions (
          tenant text NOT NULL, id text NOT NULL, record jsonb NOT NULL,
          times_sent bigint NOT NULL DEFAULT 0, times_failed bigint NOT NULL DEFAULT 0, dead_letters bigint NOT NULL DEFAULT 0,
          notif_status text, last_notification text, last_success text, last_failure text,
          PRIMARY KEY (tenant, id))`,
      },
    ]);
    await this.outbox.migrate();
    for (const r of await this.p.db.query<{ record: Subscription }>('SELECT record FROM subscriptions')) await this.activate(r.record);
    await this.dispatcher.start();
    this.p.bus.subscribe((evs) => this.onEvents(evs));
  }

  async activate(sub: Subscription) {
    const ctx = await this.resolver().resolve(sub.jsonldContext ?? sub.context, { tenant: sub.tenant });
    this.live.set(`${sub.tenant}\u0000${sub.id}`, { sub, filters: compileFilters(sub, (t) => ctx.expandTerm(t)), ctx });
  }

  async onEvents(evs: ChangeEvent[]) {
    const now = this.p.clock.now();
    const items: OutboxItem[] = [];
    for (const ev of evs) {
      for (const l of this.live.values()) {
        const vev = guardNotification(this.p.services, l.sub.tenant, l.sub.id, ev); // trust: the owner's rights, personal data redacted
        if (!vev) continue;
        const m = matchEvent(l.sub, vev, l.filters, now);
        if (!m) continue;
        const shaped = shapeEntity(l.sub, vev, m);
        items.push(this.toItem(l, [this.render(l, shaped)], now));
      }
    }
    if (items.length) {
      await this.outbox.enqueue(items, now);
      this.dispatcher.kick();
    }
  }

  private render(l: Live, e: ReturnType<typeof shapeEntity>): Record<string, unknown> {
    // previous* members are not sub-attributes: strip before rendering, add back after
    const prev = new Map<string, Record<string, unknown>[]>();
    const clean = { ...e, attrs: {} as typeof e.attrs };
    for (const [k, insts] of Object.entries(e.attrs)) {
      clean.attrs[k] = insts.map((i) => {
        const c = { ...i };
        const pv: Record<string, unknown> = {};
        for (const pk of PREVIOUS_KEYS) if (pk in c) { pv[pk] = c[pk]; delete c[pk]; }
        (prev.get(k) ?? prev.set(k, []).get(k)!).push(pv);
        return c;
      });
    }
    const n = l.sub.notification;
    const out = renderEntity(clean, l.ctx, { format: n.format, sysAttrs: n.sysAttrs, lang: l.sub.lang });
    for (const [k, pvs] of prev) {
      const name = l.ctx.compactIri(k);
      const v = out[name];
      if (Array.isArray(v)) v.forEach((x, i) => Object.assign(x as object, pvs[i]));
      else if (v && typeof v === 'object') Object.assign(v, pvs[0]);
    }
    if (e.deletedAt) out.deletedAt = e.deletedAt;
    return pickOmit(out, n.pick?.map((m) => (m.includes(':') ? l.ctx.compactIri(m) : m)), n.omit?.map((m) => (m.includes(':') ? l.ctx.compactIri(m) : m)));
  }

  private toItem(l: Live, data: Record<string, unknown>[], now: number): OutboxItem {
    const sub = l.sub;
    const ctxRef = sub.jsonldContext ?? sub.context ?? CORE_CONTEXT_URL;
    const ctxUrl = typeof ctxRef === 'string' ? ctxRef : Array.isArray(ctxRef) && typeof ctxRef[0] === 'string' && ctxRef.length === 1 ? ctxRef[0] : CORE_CONTEXT_URL;
    const body = notificationBody({
      id: `urn:ngsi-ld:Notification:${randomUUID()}`,
      subscriptionId: sub.id,
      notifiedAt: new Date(now).toISOString(),
      data,
      accept: sub.notification.endpoint.accept,
      context: ctxRef,
    });
    return {
      tenant: sub.tenant,
      subscriptionId: sub.id,
      endpoint: sub.notification.endpoint.uri,
      headers: notificationHeaders(sub, ctxUrl),
      body: JSON.stringify(body),
      notifierInfo: sub.notification.endpoint.notifierInfo,
      timeoutMs: sub.notification.endpoint.timeout,
    };
  }

  async recordResults(rs: DeliveryResult[]) {
    const agg = new Map<string, Record<string, unknown>>();
    for (const r of rs) {
      const k = `${r.tenant}\u0000${r.subscriptionId}`;
      const a = agg.get(k) ?? { tenant: r.tenant, id: r.subscriptionId, sent: 0, failed: 0, dead: 0 };
      const at = new Date(r.at).toISOString();
      (a.sent as number)++;
      a.last_notification = at;
      if (r.ok) { a.last_success = at; a.status = 'ok'; } else { (a.failed as number)++; a.last_failure = at; a.status = 'failed'; }
      if (r.dead) (a.dead as number)++;
      agg.set(k, a);
    }
    await this.p.db.query(
      `UPDATE subscriptions s SET times_sent = times_sent + v.sent, times_failed = times_failed + v.failed, dead_letters = dead_letters + v.dead,
         notif_status = v.status, last_notification = v.last_notification,
         last_success = COALESCE(v.last_success, s.last_success), last_failure = COALESCE(v.last_failure, s.last_failure)
       FROM jsonb_to_recordset($1::jsonb) AS v(tenant text, id text, sent int, failed int, dead int, status text, last_notification text,
            last_success text, last_failure text)
       WHERE s.tenant = v.tenant AND s.id = v.id`,
      [JSON.stringify([...agg.values()])],
    );
  }

  async ctxOf(req: FastifyRequest, body?: unknown): Promise<{ ref: ContextRef; ctx: TermResolver }> {
    const ref = body !== undefined ? bodyContext(req, body) : linkContext(req);
    return { ref, ctx: await this.resolver().resolve(ref, { tenant: tenantOf(req) }) };
  }

  deps(ctx: TermResolver) {
    return { expandTerm: (t: string) => ctx.expandTerm(t), now: this.p.clock.now(), ...validators() };
  }

  async load(tenant: string, id: string) {
    const r = await this.p.db.query<Record<string, unknown>>('SELECT * FROM subscriptions WHERE tenant = $1 AND id = $2', [tenant, id]);
    if (!r[0]) throw new ProblemError('ResourceNotFound', `Subscription ${id} not found`);
    return r[0];
  }

  payload(row: Record<string, unknown>, ctx: TermResolver, sysAttrs = false) {
    const d: DeliveryStatus = {
      timesSent: Number(row.times_sent),
      timesFailed: Number(row.times_failed),
      status: (row.notif_status as 'ok' | 'failed' | null) ?? undefined,
      lastNotification: (row.last_notification as string) ?? undefined,
      lastSuccess: (row.last_success as string) ?? undefined,
      lastFailure: (row.last_failure as string) ?? undefined,
      deadLetters: Number(row.dead_letters) || undefined,
    };
    return subscriptionToPayload(row.record as Subscription, d, (i) => ctx.compactIri(i), this.p.clock.now(), { sysAttrs });
  }
}

let svc: SubscriptionService | undefined;

export const subscriptionsModule: UrbisModule = {
  name: 'subscriptions',
  async start(p) {
    svc = new SubscriptionService(p);
    p.services.set('subscriptions', svc);
    await svc.start();
  },
  routes(app: FastifyInstance) {
    const base = '/ngsi-ld/v1/subscriptions';
    const uriId = (id: string) => {
      if (!/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(id)) throw new ProblemError('BadRequestData', `"${id}" is not a valid URI`);
      return id;
    };
    app.post(base, async (req, reply) => {
      const s = svc!;
      const body = req.body as Record<string, unknown>;
      const { ref, ctx } = await s.ctxOf(req, body);
      const tenant = tenantOf(req);
      const sub = parseSubscription(body, s.deps(ctx), { tenant, context: ref, newId: () => `urn:ngsi-ld:Subscription:${randomUUID()}` });
      const r = await s.db.query('INSERT INTO subscriptions (tenant, id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id', [tenant, sub.id, JSON.stringify(sub)]);
      if (r.length === 0) throw new ProblemError('AlreadyExists', `Subscription ${sub.id} already exists`);
      await s.activate(sub);
      reply.code(201).header('location', `${base}/${encodeURIComponent(sub.id)}`).send();
    });
    app.get(base, async (req) => {
      const s = svc!;
      const { ctx } = await s.ctxOf(req);
      const q = req.query as Record<string, string>;
      const limit = Math.min(Number(q.limit ?? 20), 1000);
      const offset = Number(q.offset ?? 0);
      const rows = await s.db.query<Record<string, unknown>>('SELECT * FROM subscriptions WHERE tenant = $1 ORDER BY id LIMIT $2 OFFSET $3', [tenantOf(req), limit, offset]);
      return rows.map((r) => s.payload(r, ctx));
    });
    app.get(`${base}/:id`, async (req) => {
      const s = svc!;
      const { ctx } = await s.ctxOf(req);
      const id = uriId((req.params as { id: string }).id);
      return s.payload(await s.load(tenantOf(req), id), ctx);
    });
    app.patch(`${base}/:id`, async (req, reply) => {
      const s = svc!;
      const id = uriId((req.params as { id: string }).id);
      const tenant = tenantOf(req);
      const body = req.body;
      const { ctx } = await s.ctxOf(req, body);
      const row = await s.load(tenant, id);
      const next = applySubscriptionUpdate(row.record as Subscription, body, s.deps(ctx));
      await s.db.query('UPDATE subscriptions SET record = $3 WHERE tenant = $1 AND id = $2', [tenant, id, JSON.stringify(next)]);
      await s.activate(next);
      reply.code(204).send();
    });
    app.delete(`${base}/:id`, async (req, reply) => {
      const s = svc!;
      const id = uriId((req.params as { id: string }).id);
      const tenant = tenantOf(req);
      const r = await s.db.query('DELETE FROM subscriptions WHERE tenant = $1 AND id = $2 RETURNING id', [tenant, id]);
      if (r.length === 0) throw new ProblemError('ResourceNotFound', `Subscription ${id} not found`);
      s.live.delete(`${tenant}\u0000${id}`);
      await s.outbox.purge(tenant, id);
      reply.code(204).send();
    });
  },
  async stop() {
    await svc?.dispatcher.stop();
    svc = undefined;
  },
};

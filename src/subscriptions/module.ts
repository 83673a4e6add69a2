import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import type { ContextRef } from '../ngsi-ld/broker-api.ts';
import type { StoredEntity, TermResolver } from '../ngsi-ld/model/types.ts';
import { renderEntity } from '../ngsi-ld/model/render.ts';
import { addLink, bodyContext, boolParam, checkCsf, intParam, linkContext, tenantOf } from '../ngsi-ld/api/http.ts';
import { migrateModule } from '../store/schema.ts';
import { applySubscriptionUpdate, parseSubscription } from './domain/validate.ts';
import { compileFilters, validators } from './domain/filters.ts';
import { entityInScope, isLive, matchEvent, nextPeriodic, throttleDecision } from './domain/match.ts';
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
 * Change-triggered notifications (durable before the write is acknowledged), throttling as a delay
 * (outbox next_at), periodic notifications (timeInterval) on p.clock. See docs/subscriptions.md.
 */
interface Live {
  sub: Subscription;
  filters: CompiledFilters;
  ctx: TermResolver;
}

const CORE_CONTEXT_URL = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld';

class SubscriptionService {
  live = new Map<string, Live>();
  /** throttled subscriptions: time slot of the last queued notification */
  private lastSlot = new Map<string, number>();
  /** periodic subscriptions: cancel functions of the armed timers, time of the last tick */
  private timers = new Map<string, () => void>();
  private lastPeriodic = new Map<string, number>();
  outbox: Outbox;
  dispatcher: Dispatcher;
  private notifier: SchemeRouter;
  readonly db: Platform["db"];
  readonly defaultLimit: number;
  constructor(private p: Platform) {
    this.db = p.db;
    this.defaultLimit = p.config.defaultLimit;
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
    // throttled subscriptions: the next slot continues after what is already queued (restart)
    for (const r of await this.p.db.query<{ tenant: string; subscription_id: string; t: string }>(
      `SELECT tenant, subscription_id, max(next_at) AS t FROM notification_outbox WHERE state <> 'dead' GROUP BY 1, 2`,
    ))
      this.lastSlot.set(`${r.tenant}\u0000${r.subscription_id}`, Number(r.t));
    for (const r of await this.p.db.query<{ record: Subscription }>('SELECT record FROM subscriptions')) await this.activate(r.record);
    await this.dispatcher.start();
    // durable on ack: the returned promise (outbox insert) is awaited by the broker before 2xx
    this.p.bus.subscribe((evs) => this.onEvents(evs));
  }

  async activate(sub: Subscription) {
    const ctx = await this.resolver().resolve(sub.jsonldContext ?? sub.context, { tenant: sub.tenant });
    const k = `${sub.tenant}\u0000${sub.id}`;
    const l: Live = { sub, filters: compileFilters(sub, (t) => ctx.expandTerm(t)), ctx };
    this.live.set(k, l);
    this.armPeriodic(k, l);
  }

  stopTimers() {
    for (const c of this.timers.values()) c();
    this.timers.clear();
  }

  deactivate(tenant: string, id: string) {
    const k = `${tenant}\u0000${id}`;
    this.live.delete(k);
    this.timers.get(k)?.();
    this.timers.delete(k);
    this.lastSlot.delete(k);
    this.lastPeriodic.delete(k);
  }

  /**
   * Matches the events against every live subscription (synchronously) and returns the outbox
   * insert's promise, or nothing when no notification is due (writes are not slowed down then).
   */
  onEvents(evs: ChangeEvent[]): Promise<void> | undefined {
    const now = this.p.clock.now();
    const items: OutboxItem[] = [];
    for (const ev of evs) {
      for (const [k, l] of this.live) {
        const vev = guardNotification(this.p.services, l.sub.tenant, l.sub.id, ev); // trust: the owner's rights, personal data redacted
        if (!vev) continue;
        const m = matchEvent(l.sub, vev, l.filters, now);
        if (!m) continue;
        const shaped = shapeEntity(l.sub, vev, m);
        const it = this.toItem(l, [this.render(l, shaped)], now);
        if (l.sub.throttling) it.nextAt = this.throttleSlot(k, l.sub.throttling, now);
        items.push(it);
      }
    }
    if (items.length === 0) return undefined;
    return this.outbox.enqueue(items, now).then(() => this.dispatcher.kick());
  }

  /**
   * Throttling (5.2.12): notifications of a subscription are at least `throttling` seconds apart.
   * Nothing is dropped: a notification inside the window is queued for the next free slot (the
   * outbox row's next_at), and per-subscription order holds because slots only move forward.
   */
  throttleSlot(k: string, throttlingS: number, now: number): number {
    const last = this.lastSlot.get(k);
    const d = throttleDecision(throttlingS, last, now);
    const at = d.send ? now : d.at;
    this.lastSlot.set(k, at);
    return at;
  }

  /** Periodic notifications (timeInterval): a timer per subscription on p.clock. */
  private armPeriodic(k: string, l: Live) {
    this.timers.get(k)?.();
    this.timers.delete(k);
    const ti = l.sub.timeInterval;
    if (!ti) return;
    const now = this.p.clock.now();
    const at = nextPeriodic(ti, this.lastPeriodic.get(k), now);
    this.timers.set(
      k,
      this.p.clock.setTimer(at - now, () => {
        this.timers.delete(k);
        if (this.live.get(k) !== l) return; // replaced or deleted meanwhile
        const t = this.p.clock.now();
        this.lastPeriodic.set(k, t);
        this.firePeriodic(l, t)
          .catch((e) => this.p.log.error('periodic notification failed', { error: e, subscription: l.sub.id }))
          .finally(() => {
            if (this.live.get(k) === l && !(l.sub.expiresAt && Date.parse(l.sub.expiresAt) <= this.p.clock.now())) this.armPeriodic(k, l);
          });
      }),
    );
  }

  /** One periodic notification: the current state of every entity in the subscription's scope. */
  async firePeriodic(l: Live, now: number): Promise<void> {
    const sub = l.sub;
    if (!isLive(sub, now)) return;
    const found = new Map<string, StoredEntity>();
    const sels = sub.entities && sub.entities.length ? sub.entities : [undefined];
    for (const sel of sels) {
      const r = await this.p.broker.query(sub.tenant, {
        type: sel?.type,
        id: sel?.id ? [sel.id] : undefined,
        idPattern: sel?.id ? undefined : sel?.idPattern,
        context: sub.jsonldContext ?? sub.context,
        requireFilter: false,
        limit: this.p.config.maxLimit,
      });
      for (const e of r.stored) found.set(e.id, e);
    }
    const data: Record<string, unknown>[] = [];
    const at = new Date(now).toISOString();
    for (const e of found.values()) {
      if (!entityInScope(sub, e.id, e.type)) continue;
      if (l.filters.q && !l.filters.q(e)) continue;
      if (l.filters.geo && !l.filters.geo(e)) continue;
      if (l.filters.scope && !l.filters.scope(e)) continue;
      const ev: ChangeEvent = { tenant: sub.tenant, entityId: e.id, types: e.type, kind: 'update', before: e, after: e, changedAttrs: [], at };
      const vev = guardNotification(this.p.services, sub.tenant, sub.id, ev);
      if (!vev) continue;
      data.push(this.render(l, shapeEntity(sub, vev, { trigger: 'attributeUpdated', created: [], updated: [], deleted: [] })));
    }
    if (data.length === 0) return;
    await this.outbox.enqueue([this.toItem(l, data, now)], now);
    this.dispatcher.kick();
  }

  private render(l: Live, e: ReturnType<typeof shapeEntity>): Record<string, unknown> {
    // previous* members are not sub-attributes: strip before rendering, add back after
    const prev = new Map<string, Record<string, unknown>[]>();
    const clean = { ...e, attrs: {} as typeof e.attrs };
    for (const [k, insts] of Object.entries(e.attrs)) {
      clean.attrs[k] = insts.map((i) => {
        const c = { ...i };
        const pv: Record<string, unknown> = {};
        for (const pk of PREVIOUS_KEYS) if (pk in c) { pv[pk] = pk === 'previousVocab' ? compactVocab(c[pk], l.ctx) : c[pk]; delete c[pk]; }
        if ('deletedAt' in c) {
          if (l.sub.notification.sysAttrs) pv.deletedAt = c.deletedAt;
          delete c.deletedAt;
        }
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

function compactVocab(v: unknown, ctx: TermResolver): unknown {
  if (typeof v === 'string') return ctx.compactIri(v);
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? ctx.compactIri(x) : x));
  return v;
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
      if (body && typeof body.csf === 'string') checkCsf(body.csf);
      const sub = parseSubscription(body, s.deps(ctx), { tenant, context: ref, newId: () => `urn:ngsi-ld:Subscription:${randomUUID()}` });
      const r = await s.db.query('INSERT INTO subscriptions (tenant, id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id', [tenant, sub.id, JSON.stringify(sub)]);
      if (r.length === 0) throw new ProblemError('AlreadyExists', `Subscription ${sub.id} already exists`);
      await s.activate(sub);
      reply.code(201).header('location', `${base}/${encodeURIComponent(sub.id).replace(/%3A/gi, ':')}`).send();
    });
    app.get(base, async (req, reply) => {
      const s = svc!;
      const { ctx } = await s.ctxOf(req);
      const q = req.query as Record<string, string>;
      const limit = Math.min(intParam(q.limit, 'limit') ?? s.defaultLimit, 1000);
      const offset = intParam(q.offset, 'offset') ?? 0;
      const tenant = tenantOf(req);
      const rows = await s.db.query<Record<string, unknown>>('SELECT * FROM subscriptions WHERE tenant = $1 ORDER BY id LIMIT $2 OFFSET $3', [tenant, limit, offset]);
      const total = Number((await s.db.query<{ n: string }>('SELECT count(*) AS n FROM subscriptions WHERE tenant = $1', [tenant]))[0].n);
      if (boolParam(q.count, 'count')) reply.header('NGSILD-Results-Count', String(total));
      const type = (req.headers.accept ?? '').includes('application/ld+json') ? 'application/ld+json' : 'application/json';
      const links: string[] = [];
      if (offset > 0 && limit > 0) links.push(`<${base}?limit=${limit}&offset=${Math.max(0, offset - limit)}>;rel="prev";type="${type}"`);
      if (limit > 0 && offset + rows.length < total) links.push(`<${base}?limit=${limit}&offset=${offset + limit}>;rel="next";type="${type}"`);
      for (const l of links) addLink(reply, l);
      return rows.map((r) => s.payload(r, ctx));
    });
    const noId = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply.code(405).header('Allow', 'GET, POST').header('content-type', 'application/json')
        .send(JSON.stringify({ type: 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest', title: 'Method Not Allowed', status: 405, detail: 'Name the subscription: /subscriptions/{subscriptionId}.' }));
    app.delete(base, noId);
    app.patch(base, noId);
    app.put(base, noId);
    app.get(`${base}/:id`, async (req, reply) => {
      const s = svc!;
      const { ctx } = await s.ctxOf(req);
      const id = uriId((req.params as { id: string }).id);
      const row = await s.load(tenantOf(req), id);
      const out = s.payload(row, ctx);
      if ((req.headers.accept ?? '').includes('application/ld+json')) {
        const sub = row.record as Subscription;
        reply.header('content-type', 'application/ld+json');
        return { ...out, '@context': sub.jsonldContext ?? sub.context ?? CORE_CONTEXT_URL };
      }
      return out;
    });
    app.patch(`${base}/:id`, async (req, reply) => {
      const s = svc!;
      const id = uriId((req.params as { id: string }).id);
      const tenant = tenantOf(req);
      const body = req.body;
      const { ctx } = await s.ctxOf(req, body);
      if (body && typeof body === 'object' && typeof (body as Record<string, unknown>).csf === 'string') checkCsf((body as Record<string, string>).csf);
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
      s.deactivate(tenant, id);
      await s.outbox.purge(tenant, id);
      reply.code(204).send();
    });
  },
  async stop() {
    svc?.stopTimers();
    await svc?.dispatcher.stop();
    svc = undefined;
  },
};

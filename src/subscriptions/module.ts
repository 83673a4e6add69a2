import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import type { ContextRef } from '../ngsi-ld/broker-api.ts';
import type { StoredEntity, TermResolver } from '../ngsi-ld/model/types.ts';
import { renderEntity, type RenderOptions } from '../ngsi-ld/model/render.ts';
import { loadLinked, MAX_JOIN_LEVEL } from '../ngsi-ld/join.ts';
import { addLink, bodyContext, boolParam, checkCsf, contextForResponse, intParam, linkContext, negotiate, tenantOf } from '../ngsi-ld/api/http.ts';
import { migrateModule } from '../store/schema.ts';
import { applySubscriptionUpdate, parseSubscription } from './domain/validate.ts';
import { compileFilters, validators } from './domain/filters.ts';
import { entityInScope, isLive, matchEvent, nextPeriodic, throttleDecision } from './domain/match.ts';
import { notificationData, notificationHeaders, notificationTail, pickOmit, PREVIOUS_KEYS, shapeEntity, type NotifiedEntity } from './domain/shape.ts';
import { CandidateIndex } from './domain/candidates.ts';
import { subscriptionToPayload } from './domain/render.ts';
import type { CompiledFilters, DeliveryStatus, Subscription } from './domain/types.ts';
import { Outbox, type OutboxItem, type SharedBody } from './delivery/outbox.ts';
import { Dispatcher, type DeliveryResult } from './delivery/dispatcher.ts';
import { HttpNotifier } from './delivery/http-notifier.ts';
import { MqttNotifier } from './delivery/mqtt-notifier.ts';
import { InflightCounter, SchemeRouter } from './delivery/notifier.ts';
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
  /** @context of the notifications (body for ld+json) and the URL for the Link header */
  ctxRef: ContextRef;
  headers: Record<string, string>;
  /**
   * Subscriptions with the same renderKey render a change alike (same shaping, format, @context,
   * accept): the serialized data is computed once per change for all of them.
   */
  renderKey: string;
}

/** identity numbers of term resolvers, for render keys */
const ctxIds = new WeakMap<object, number>();
let nextCtxId = 0;
function ctxId(ctx: TermResolver): number {
  let n = ctxIds.get(ctx);
  if (n === undefined) ctxIds.set(ctx, (n = ++nextCtxId));
  return n;
}

const CORE_CONTEXT_URL = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld';

class SubscriptionService {
  live = new Map<string, Live>();
  /** live subscriptions by entity id / type, so an event is matched only against those that may fire */
  private index = new CandidateIndex();
  /** throttled subscriptions: time slot of the last queued notification */
  private lastSlot = new Map<string, number>();
  /** periodic subscriptions: cancel functions of the armed timers, time of the last tick */
  private timers = new Map<string, () => void>();
  private lastPeriodic = new Map<string, number>();
  outbox: Outbox;
  dispatcher: Dispatcher;
  private notifier: InflightCounter;
  /** delivery outcomes not yet written to the counters (a retrieval right after a notification sees them) */
  private unflushed = new Map<string, DeliveryResult[]>();
  readonly db: Platform["db"];
  readonly defaultLimit: number;
  constructor(private p: Platform) {
    this.db = p.db;
    this.defaultLimit = p.config.defaultLimit;
    this.outbox = new Outbox(p.db);
    const http = new HttpNotifier({ connections: p.config.notifyConnections, pipelining: p.config.notifyPipelining });
    const mqtt = new MqttNotifier();
    this.notifier = new InflightCounter(new SchemeRouter({ http, https: http, mqtt, mqtts: mqtt }), () => p.clock.now());
    this.dispatcher = new Dispatcher(this.outbox, this.notifier, p.clock, {
      onResults: (r) => this.recordResults(r),
      coalesceResults: true,
      onResult: (r) => {
        const k = `${r.tenant}\u0000${r.subscriptionId}`;
        (this.unflushed.get(k) ?? this.unflushed.set(k, []).get(k)!).push(r);
      },
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
    for (const r of await this.p.db.query<{ record: Subscription }>('SELECT record FROM subscriptions')) {
      // one subscription whose @context cannot be loaded now must not keep the others (or the platform) down
      await this.activate(r.record).catch((e) =>
        this.p.log.error('subscription not activated', { error: e, subscription: r.record.id, tenant: r.record.tenant }));
    }
    await this.dispatcher.start();
    // durable on ack: the returned promise (outbox insert) is awaited by the broker before 2xx
    this.p.bus.subscribe((evs) => this.onEvents(evs));
  }

  async activate(sub: Subscription) {
    this.install(await this.prepare(sub));
  }

  /**
   * Resolves a subscription's @contexts and compiles its filters; throws (e.g. LdContextNotAvailable
   * for an unreachable jsonldContext) before anything is stored.
   */
  async prepare(sub: Subscription): Promise<Live> {
    // terms of the subscription (q, scopeQ, ...) are in the request's @context; notifications compact with jsonldContext
    const reqCtx = await this.resolver().resolve(sub.context, { tenant: sub.tenant });
    const ctx = sub.jsonldContext === undefined || sub.jsonldContext === sub.context ? reqCtx : await this.resolver().resolve(sub.jsonldContext, { tenant: sub.tenant });
    const ctxRef = sub.jsonldContext ?? sub.context ?? CORE_CONTEXT_URL;
    const ctxUrl = typeof ctxRef === 'string' ? ctxRef : Array.isArray(ctxRef) && typeof ctxRef[0] === 'string' && ctxRef.length === 1 ? ctxRef[0] : CORE_CONTEXT_URL;
    const n = sub.notification;
    const renderKey = JSON.stringify([
      ctxId(ctx), n.format, n.sysAttrs, n.showChanges, n.attributes, n.pick, n.omit, n.endpoint.accept, sub.datasetId, sub.lang,
      n.endpoint.accept === 'application/ld+json' ? ctxRef : null,
    ]);
    return { sub, filters: compileFilters(sub, (t) => reqCtx.expandTerm(t)), ctx, ctxRef, headers: notificationHeaders(sub, ctxUrl), renderKey };
  }

  install(l: Live) {
    const k = `${l.sub.tenant}\u0000${l.sub.id}`;
    this.live.set(k, l);
    this.index.add(k, l.sub);
    this.armPeriodic(k, l);
  }

  stopTimers() {
    for (const c of this.timers.values()) c();
    this.timers.clear();
  }

  deactivate(tenant: string, id: string) {
    const k = `${tenant}\u0000${id}`;
    this.live.delete(k);
    this.index.delete(k);
    this.dispatcher.forget(tenant, id);
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
    const items: (OutboxItem | Promise<OutboxItem | undefined>)[] = [];
    let pending = false;
    for (const ev of evs) {
      const types = ev.after?.type ?? ev.before?.type ?? ev.types;
      /**
       * serialized data (as a shared body tail) per renderKey and match, for this event (compared
       * field by field: a key string per candidate was a good part of the fan-out's garbage)
       */
      let rendered: Map<string, Rendered[]> | undefined;
      for (const k of this.index.candidates(ev.tenant, ev.entityId, types)) {
        const l = this.live.get(k);
        if (!l) continue;
        const vev = guardNotification(this.p.services, l.sub.tenant, l.sub.id, ev); // trust: the owner's rights, personal data redacted
        if (!vev) continue;
        const m = matchEvent(l.sub, vev, l.filters, now);
        if (!m) continue;
        const lq = l.filters.linkedQ;
        if (lq) {
          // q over linked entities (4.9): the targets are loaded first, then q decides
          const shaped = shapeEntity(l.sub, vev, m);
          const target = (vev.kind === 'delete' ? vev.before : vev.after)!;
          pending = true;
          items.push(
            loadLinked([target], FULL, lq.depth, this.linkedLoader(l.sub)).then(async (known) =>
              lq.test(target, (id) => known.get(id)) ? this.throttled(k, l, this.toItem(l, await this.renderWithLinks(l, [shaped])), now) : undefined,
            ),
          );
        } else if (joinOf(l.sub)) {
          pending = true;
          items.push(this.renderWithLinks(l, [shapeEntity(l.sub, vev, m)]).then((data) => this.throttled(k, l, this.toItem(l, data), now)));
        } else if (vev === ev) {
          // not redacted: subscriptions that render alike share one serialization of this change
          let alike = (rendered ??= new Map()).get(l.renderKey);
          if (!alike) rendered.set(l.renderKey, (alike = []));
          let shared: SharedBody | undefined;
          for (const r of alike) {
            if (r.trigger === m.trigger && sameList(r.updated, m.updated) && sameList(r.deleted, m.deleted)) {
              shared = r.shared;
              break;
            }
          }
          if (shared === undefined) {
            shared = this.tailOf(l, [this.render(l, shapeEntity(l.sub, vev, m))]);
            alike.push({ trigger: m.trigger, updated: m.updated, deleted: m.deleted, shared });
          }
          items.push(this.throttled(k, l, this.itemOf(l, shared), now));
        } else items.push(this.throttled(k, l, this.toItem(l, [this.render(l, shapeEntity(l.sub, vev, m))]), now));
      }
    }
    if (items.length === 0) return undefined;
    // durable before the write is acknowledged; delivery goes on from memory (dispatcher fast path)
    const write = (its: OutboxItem[]) => (its.length ? this.dispatcher.submit(its, now) : undefined);
    return pending
      ? Promise.all(items).then((its) => write(its.filter((x): x is OutboxItem => x !== undefined)))
      : write(items as OutboxItem[]);
  }

  /** A throttled subscription's item waits for its next slot (outbox next_at). */
  private throttled(k: string, l: Live, it: OutboxItem, now: number): OutboxItem {
    if (l.sub.throttling) it.nextAt = this.throttleSlot(k, l.sub.throttling, now);
    return it;
  }

  /** Loads entities for a subscription's linked-entity work, as its owner may see them (trust guard). */
  private linkedLoader(sub: Subscription) {
    return async (ids: string[]) => {
      const got = await this.p.broker.loadMany(sub.tenant, ids);
      const out = new Map<string, StoredEntity>();
      for (const [id, e] of got) {
        const ev: ChangeEvent = { tenant: sub.tenant, entityId: e.id, types: e.type, kind: 'update', before: e, after: e, changedAttrs: [], at: e.modifiedAt ?? e.createdAt };
        const vev = guardNotification(this.p.services, sub.tenant, sub.id, ev);
        if (vev?.after) out.set(id, vev.after);
      }
      return out;
    };
  }

  /**
   * Linked entity retrieval in notifications (4.5.23, notification.join / joinLevel): the targets
   * of the notified entities' Relationships, loaded up to joinLevel hops (through the owner's
   * trust view), inlined (`entity` / keyValues value) or appended after the entities (flat).
   */
  async renderWithLinks(l: Live, roots: NotifiedEntity[]): Promise<Record<string, unknown>[]> {
    const sub = l.sub;
    const join = joinOf(sub);
    if (!join) return roots.map((e) => this.render(l, e));
    const level = Math.min(sub.notification.joinLevel ?? 1, MAX_JOIN_LEVEL);
    // roots are already reduced to notification.attributes: only their relationships are followed
    const known = await loadLinked(roots, FULL, level, this.linkedLoader(sub));
    const n = sub.notification;
    const ro: RenderOptions = { format: n.format, sysAttrs: n.sysAttrs, lang: sub.lang };
    if (join === 'inline') {
      const at = (e: StoredEntity, depth: number): Record<string, unknown> =>
        renderEntity(e, l.ctx, { ...ro, inline: depth < level ? (_attr, id) => { const t = known.get(id); return t ? at(t, depth + 1) : undefined; } : undefined });
      return roots.map((e) => this.render(l, e, level > 0 ? (_attr, id) => { const t = known.get(id); return t ? at(t, 1) : undefined; } : undefined));
    }
    const out = roots.map((e) => this.render(l, e));
    const seen = new Set(roots.map((e) => e.id));
    let frontier: StoredEntity[] = roots;
    for (let d = 0; d < level && frontier.length; d++) {
      const next: StoredEntity[] = [];
      for (const e of frontier) {
        for (const id of relationshipTargets(e)) {
          const t = known.get(id);
          if (!t || seen.has(id)) continue;
          seen.add(id);
          out.push(renderEntity(t, l.ctx, ro));
          next.push(t);
        }
      }
      frontier = next;
    }
    return out;
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
        context: sub.context,
        requireFilter: false,
        limit: this.p.config.maxLimit,
      });
      for (const e of r.stored) found.set(e.id, e);
    }
    const roots: NotifiedEntity[] = [];
    const at = new Date(now).toISOString();
    for (const e of found.values()) {
      if (!entityInScope(sub, e.id, e.type)) continue;
      if (l.filters.q && !l.filters.q(e)) continue;
      if (l.filters.linkedQ) {
        const known = await loadLinked([e], FULL, l.filters.linkedQ.depth, this.linkedLoader(sub));
        if (!l.filters.linkedQ.test(e, (id) => known.get(id))) continue;
      }
      if (l.filters.geo && !l.filters.geo(e)) continue;
      if (l.filters.scope && !l.filters.scope(e)) continue;
      const ev: ChangeEvent = { tenant: sub.tenant, entityId: e.id, types: e.type, kind: 'update', before: e, after: e, changedAttrs: [], at };
      const vev = guardNotification(this.p.services, sub.tenant, sub.id, ev);
      if (!vev) continue;
      roots.push(shapeEntity(sub, vev, { trigger: 'attributeUpdated', created: [], updated: [], deleted: [] }));
    }
    if (roots.length === 0) return;
    const data = await this.renderWithLinks(l, roots);
    await this.dispatcher.submit([this.toItem(l, data)], now);
  }

  private render(l: Live, e: ReturnType<typeof shapeEntity>, inline?: RenderOptions['inline']): Record<string, unknown> {
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
    const out = renderEntity(clean, l.ctx, { format: n.format, sysAttrs: n.sysAttrs, lang: l.sub.lang, inline });
    for (const [k, pvs] of prev) {
      const name = l.ctx.compactIri(k);
      const v = out[name];
      if (Array.isArray(v)) v.forEach((x, i) => Object.assign(x as object, pvs[i]));
      else if (v && typeof v === 'object') Object.assign(v, pvs[0]);
    }
    if (e.deletedAt) out.deletedAt = e.deletedAt;
    return pickOmit(out, n.pick?.map((m) => (m.includes(':') ? l.ctx.compactIri(m) : m)), n.omit?.map((m) => (m.includes(':') ? l.ctx.compactIri(m) : m)));
  }

  private toItem(l: Live, data: Record<string, unknown>[]): OutboxItem {
    return this.itemOf(l, this.tailOf(l, data));
  }

  /**
   * The notification body after its head, for these entities: serialized once per change for all
   * subscriptions that render it alike, and stored once (the outbox composes id, subscriptionId and
   * notifiedAt per row).
   */
  private tailOf(l: Live, data: Record<string, unknown>[]): SharedBody {
    const accept = l.sub.notification.endpoint.accept;
    return { tail: notificationTail(JSON.stringify(notificationData(data, accept, l.ctxRef)), accept, l.ctxRef) };
  }

  private itemOf(l: Live, shared: SharedBody): OutboxItem {
    const sub = l.sub;
    return {
      tenant: sub.tenant,
      subscriptionId: sub.id,
      endpoint: sub.notification.endpoint.uri,
      headers: l.headers,
      shared,
      notifierInfo: sub.notification.endpoint.notifierInfo,
      timeoutMs: sub.notification.endpoint.timeout,
    };
  }

  async recordResults(rs: DeliveryResult[]) {
    try {
      await this.writeResults(rs);
    } finally {
      const done = new Set(rs);
      const keys = new Set<string>();
      for (const r of rs) keys.add(`${r.tenant}\u0000${r.subscriptionId}`);
      for (const k of keys) {
        const left = this.unflushed.get(k)?.filter((x) => !done.has(x));
        if (left?.length) this.unflushed.set(k, left);
        else this.unflushed.delete(k);
      }
    }
  }

  private async writeResults(rs: DeliveryResult[]) {
    const agg = new Map<string, Record<string, unknown>>();
    for (const r of rs) {
      const k = `${r.tenant}\u0000${r.subscriptionId}`;
      const a = agg.get(k) ?? { tenant: r.tenant, id: r.subscriptionId, sent: 0, failed: 0, dead: 0 };
      const at = new Date(r.at).toISOString();
      (a.sent as number) += r.count ?? 1;
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

  /** One URL for a @context (a single URL as is, the core for none, else an ImplicitlyCreated hosted context). */
  async contextUrl(ref: ContextRef | undefined, tenant: string): Promise<string> {
    const reg = this.p.services.get('jsonld.registry') as { urlFor(c: unknown, o: { tenant?: string }): Promise<string> } | undefined;
    if (reg) return reg.urlFor(ref, { tenant });
    if (ref === undefined) return CORE_CONTEXT_URL;
    if (typeof ref === 'string') return ref;
    if (Array.isArray(ref) && ref.length === 1 && typeof ref[0] === 'string') return ref[0];
    throw new ProblemError('InternalError', 'no @context registry to host the subscription\'s @context');
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
    const rec = row.record as Subscription;
    for (const r of this.unflushed.get(`${rec.tenant}\u0000${rec.id}`) ?? []) {
      const at = new Date(r.at).toISOString();
      d.timesSent += r.count ?? 1;
      d.lastNotification = at;
      if (r.ok) { d.lastSuccess = at; d.status = 'ok'; } else { d.timesFailed++; d.lastFailure = at; d.status = 'failed'; }
    }
    const inflight = this.notifier.inflight(rec.tenant, rec.id);
    if (inflight) {
      d.timesSent += inflight.n;
      const at = new Date(inflight.at).toISOString();
      if (!d.lastNotification || at > d.lastNotification) d.lastNotification = at;
    }
    return subscriptionToPayload(row.record as Subscription, d, (i) => ctx.compactIri(i), this.p.clock.now(), { sysAttrs });
  }
}

const FULL = { keepId: true, keepType: true };

/** one rendering of a change: the match it was rendered for, and its serialized tail */
interface Rendered {
  trigger: string;
  updated: string[];
  deleted: string[];
  shared: SharedBody;
}

function sameList(a: string[], b: string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The API version this broker implements (preferences for later versions are not applied). */
const API_VERSION = [1, 9, 1];

/**
 * The version preference of a request (6.3.6, "Prefer: ngsi-ld=1.x"), parsed per RFC 7240: a
 * comma-separated list of preferences, names case-insensitive, a token or quoted-string value,
 * own parameters after ";". Returns the version when this broker can honour it.
 */
export function versionPreference(req: FastifyRequest): string | undefined {
  const h = req.headers.prefer;
  const v = Array.isArray(h) ? h.join(',') : h;
  if (!v) return undefined;
  for (const pref of v.split(',')) {
    const m = /^\s*([^=;\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;\s]*))?/.exec(pref);
    if (!m || m[1].toLowerCase() !== 'ngsi-ld' || m[2] === undefined) continue;
    const ver = m[2].startsWith('"') ? m[2].slice(1, -1).replace(/\\(.)/g, '$1') : m[2];
    if (!/^\d+\.\d+(\.\d+)?$/.test(ver)) return undefined;
    const parts = ver.split('.').map(Number);
    for (let i = 0; i < 3; i++) {
      const a = parts[i] ?? 0;
      if (a !== API_VERSION[i]) return a < API_VERSION[i] ? ver : undefined;
    }
    return ver;
  }
  return undefined;
}

/** join of a subscription's notifications, if linked entities are to be added */
function joinOf(sub: Subscription): 'inline' | 'flat' | undefined {
  const j = sub.notification.join;
  return j === 'inline' || j === 'flat' ? j : undefined;
}

/** ids the top-level Relationships / ListRelationships of an entity point to, in attribute order */
function relationshipTargets(e: StoredEntity): string[] {
  const out: string[] = [];
  for (const iri in e.attrs) {
    for (const i of e.attrs[iri]) {
      if (i.type === 'Relationship' && i.object !== undefined) out.push(...(Array.isArray(i.object) ? i.object : [i.object]));
      else if (i.type === 'ListRelationship') out.push(...(i.objectList ?? []));
    }
  }
  return out;
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
      // 5.2.12: jsonldContext is the URL of the request's @context (an ImplicitlyCreated one for an inline/compound context)
      if (sub.jsonldContext === undefined) sub.jsonldContext = await s.contextUrl(ref, tenant);
      const live = await s.prepare(sub);
      const r = await s.db.query('INSERT INTO subscriptions (tenant, id, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id', [tenant, sub.id, JSON.stringify(sub)]);
      if (r.length === 0) throw new ProblemError('AlreadyExists', `Subscription ${sub.id} already exists`);
      s.install(live);
      reply.code(201).header('location', `${base}/${encodeURIComponent(sub.id).replace(/%3A/gi, ':')}`).send();
    });
    app.get(base, async (req, reply) => {
      const s = svc!;
      const rep = negotiate(req, false);
      const { ref, ctx } = await s.ctxOf(req);
      const q = req.query as Record<string, string>;
      const limit = Math.min(intParam(q.limit, 'limit') ?? s.defaultLimit, 1000);
      const offset = intParam(q.offset, 'offset') ?? 0;
      const tenant = tenantOf(req);
      const rows = await s.db.query<Record<string, unknown>>('SELECT * FROM subscriptions WHERE tenant = $1 ORDER BY id LIMIT $2 OFFSET $3', [tenant, limit, offset]);
      const total = Number((await s.db.query<{ n: string }>('SELECT count(*) AS n FROM subscriptions WHERE tenant = $1', [tenant]))[0].n);
      if (boolParam(q.count, 'count')) reply.header('NGSILD-Results-Count', String(total));
      const type = rep;
      const links: string[] = [];
      if (offset > 0 && limit > 0) links.push(`<${base}?limit=${limit}&offset=${Math.max(0, offset - limit)}>;rel="prev";type="${type}"`);
      if (limit > 0 && offset + rows.length < total) links.push(`<${base}?limit=${limit}&offset=${offset + limit}>;rel="next";type="${type}"`);
      for (const l of links) addLink(reply, l);
      const embed = contextForResponse(rep, ref ?? CORE_CONTEXT_URL, reply);
      reply.header('content-type', rep);
      const items = rows.map((r) => s.payload(r, ctx));
      return embed === undefined ? items : items.map((x) => ({ ...x, '@context': embed }));
    });
    const noId = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply.code(405).header('Allow', 'GET, POST').header('content-type', 'application/json')
        .send(JSON.stringify({ type: 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest', title: 'Method Not Allowed', status: 405, detail: 'Name the subscription: /subscriptions/{subscriptionId}.' }));
    app.delete(base, noId);
    app.patch(base, noId);
    app.put(base, noId);
    app.get(`${base}/:id`, async (req, reply) => {
      const s = svc!;
      const rep = negotiate(req, false);
      const { ref, ctx } = await s.ctxOf(req);
      const id = uriId((req.params as { id: string }).id);
      const row = await s.load(tenantOf(req), id);
      const out = s.payload(row, ctx);
      // a Subscription has no backwards-compatibility fallbacks (4.3.6.8 covers Entity data): an earlier version is served as is
      const ver = versionPreference(req);
      if (ver) reply.header('Preference-Applied', `ngsi-ld=${ver}`);
      // 6.3.4 / 6.3.5: no Accept = application/json with the @context in a Link header; ld+json embeds it
      const embed = contextForResponse(rep, ref ?? CORE_CONTEXT_URL, reply);
      reply.header('content-type', rep);
      return embed === undefined ? out : { ...out, '@context': embed };
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
      if (next.jsonldContext === undefined) next.jsonldContext = await s.contextUrl(next.context, tenant);
      const live = await s.prepare(next);
      await s.db.query('UPDATE subscriptions SET record = $3 WHERE tenant = $1 AND id = $2', [tenant, id, JSON.stringify(next)]);
      s.install(live);
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

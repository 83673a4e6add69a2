/**
 * The rules service: wires the pure engine to the platform. Change events from the bus are
 * evaluated incrementally (only rules indexed by the entity's types), deadlines run on `p.clock`,
 * and every output batch is persisted asynchronously and in order: evaluation states and alarms
 * (SQL, one statement per batch), Alert entities (NGSI-LD, through the broker, one batch per tenant),
 * action deliveries (webhook / MQTT / e-mail / service request). Rules are mirrored as NGSI-LD
 * `Rule` entities.
 */
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import type { StoredEntity } from '../ngsi-ld/model/types.ts';
import type { Platform } from '../platform.ts';
import { brokerGeoEngine, coreExpandTerm, loadQEngine } from './adapters.ts';
import { alertEntity, ruleEntity } from './domain/actions.ts';
import { ALERT_ID_PREFIX, type AlarmRecord } from './domain/alarms.ts';
import { EngineDriver } from './domain/driver.ts';
import { RuleEngine, type EngineOutput, type EvalState } from './domain/engine.ts';
import type { QEngine } from './domain/engines.ts';
import type { Rule } from './domain/types.ts';
import { RULE_ID_PREFIX, validateRule } from './domain/validate.ts';
import { SERVICE_REQUEST_ID_PREFIX } from './domain/actions.ts';
import { Deliverer, smtpFromEnv, type SmtpSettings } from './delivery.ts';
import { DEMO_RULES } from './demo.ts';
import { RulesStore, type DeliveryRecord } from './store.ts';

export interface RulesOptions {
  smtp?: SmtpSettings;
  /** default MQTT broker URL for MQTT actions without url */
  mqttUrl?: string;
  retryDelaysMs?: number[];
  webhookTimeoutMs?: number;
  /** rewrite an Alert entity for a still-firing alarm at most this often (ms) */
  alertRefreshMs?: number;
  /**
   * evaluation states are checkpointed to SQL at most this often (ms, default 2000); alarms are
   * written at once. A crash loses at most this much state progress (e.g. part of a hold), never an alarm.
   */
  stateCheckpointMs?: number;
}

const OWN_PREFIXES = [ALERT_ID_PREFIX, RULE_ID_PREFIX, SERVICE_REQUEST_ID_PREFIX];
const RULE_TYPE_IRI = coreExpandTerm('Rule');

/** the operator form of a rule from its NGSI-LD entity (JsonProperty or Property members) */
function ruleInputFromEntity(e: StoredEntity, id: string): Record<string, unknown> {
  const get = (term: string): unknown => {
    const inst = e.attrs[coreExpandTerm(term)]?.[0];
    if (!inst) return undefined;
    return inst.json !== undefined ? inst.json : inst.value;
  };
  const out: Record<string, unknown> = { id };
  for (const k of ['name', 'description', 'enabled', 'select', 'trigger', 'alarm', 'actions']) {
    const v = get(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function sameRule(a: Rule, b: Rule): boolean {
  const strip = (r: Rule) => JSON.stringify({ ...r, createdAt: undefined, modifiedAt: undefined });
  return strip(a) === strip(b);
}
const DAY = 86_400_000;

export class RulesService {
  readonly store: RulesStore;
  engine!: RuleEngine;
  driver!: EngineDriver;
  private q!: QEngine;
  private deliverer: Deliverer;
  private unsubscribe?: () => void;
  private pendingStates = new Map<string, EvalState | null>();
  private pendingAlarms = new Set<string>();
  private pendingAlerts = new Set<string>();
  private pendingDeliveries: DeliveryRecord[] = [];
  private alertWritten = new Map<string, { count: number; lastSeen: number; status: string }>();
  private flushing?: Promise<void>;
  private stopped = false;
  private lastCheckpoint = 0;
  private lastPrune = Date.now();
  private checkpointTimer?: ReturnType<typeof setTimeout>;
  private forceStates = false;

  constructor(private p: Platform, private opts: RulesOptions = {}) {
    this.store = new RulesStore(p.db);
    this.deliverer = new Deliverer(
      {
        smtp: opts.smtp ?? smtpFromEnv(),
        mqttUrl: () => opts.mqttUrl ?? p.config.mqttUrl ?? mqttServiceUrl(p) ?? (p.config.mqttPort ? `mqtt://127.0.0.1:${p.config.mqttPort}` : undefined),
        retryDelaysMs: opts.retryDelaysMs ?? [1000, 5000, 30_000],
        webhookTimeoutMs: opts.webhookTimeoutMs ?? 10_000,
      },
      p.clock,
      p.broker,
      p.log.child('rules'),
      (d) => {
        this.pendingDeliveries.push(d);
        this.kick();
      },
    );
  }

  async start(): Promise<void> {
    const p = this.p;
    await this.store.migrate();
    this.q = await loadQEngine();
    this.engine = new RuleEngine({ q: this.q, geo: brokerGeoEngine, expandTerm: coreExpandTerm });
    const now = p.clock.now();
    for (const r of await this.store.loadRules()) {
      try {
        this.engine.setRule(r, now);
      } catch (e) {
        p.log.error(`rule ${r.id} cannot be compiled; skipped`, { err: e });
      }
    }
    this.engine.loadStates(await this.store.loadStates());
    this.engine.loadAlarms(await this.store.loadLiveAlarms(now - DAY));
    this.engine.drain();
    this.driver = new EngineDriver(this.engine, p.clock, (o) => this.onOutput(o));
    this.unsubscribe = p.bus.subscribe((events) => this.onEvents(events));
    if (p.config.demo) await this.installDemoRules();
    for (const r of this.engine.listRules()) if (r.enabled && r.trigger.kind === 'absence') await this.seedAbsence(r);
    this.driver.tick(); // deadlines that fell due while the platform was down
    p.services.set('rules', this);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.driver?.stop();
    await this.flushing?.catch(() => {});
    await this.deliverer.stop();
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer);
    this.forceStates = true;
    await this.flush().catch(() => {});
  }

  /** resolves once everything produced so far is persisted and delivered (tests, shutdown) */
  async idle(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      await this.ruleQueue;
      await this.flushing;
      await this.deliverer.idle();
      await this.flushing;
      if (this.pendingStates.size > 0 || this.hasPending()) {
        this.forceStates = true;
        this.kick();
        continue;
      }
      if (!this.flushing && this.ruleJobs === 0) return;
    }
  }

  /** resolves once alarms produced so far are in SQL (states are checkpointed, see stateCheckpointMs) */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  // ------------------------------------------------------------------ events in

  private onEvents(events: ChangeEvent[]): void {
    if (this.stopped) return;
    const mine = events.filter((e) => !OWN_PREFIXES.some((pre) => e.entityId.startsWith(pre)));
    if (mine.length) this.driver.process(mine);
    for (const e of events) if (e.entityId.startsWith(RULE_ID_PREFIX) && e.types.includes(RULE_TYPE_IRI)) this.ruleEntityChanged(e);
  }

  // ------------------------------------------------------------------ rules as NGSI-LD entities

  private ruleQueue: Promise<void> = Promise.resolve();

  /**
   * A Rule entity written through NGSI-LD: create / replace / delete the rule it describes. Our own
   * mirror writes come back here and are recognised as no-ops; an invalid entity gets a `ruleError`
   * attribute with the validation message (and the rule keeps its previous definition).
   */
  private ruleEntityChanged(ev: ChangeEvent): void {
    const id = ev.entityId.slice(RULE_ID_PREFIX.length);
    const run = async () => {
      const cur = this.engine.getRule(ev.tenant, id);
      if (ev.kind === 'delete' || !ev.after) {
        if (cur) await this.deleteRule(ev.tenant, id).catch(() => {});
        return;
      }
      const input = ruleInputFromEntity(ev.after, id);
      let rule: Rule;
      try {
        rule = await this.validate(ev.tenant, input, id);
      } catch (e) {
        const msg = (e as Error).message;
        const prevErr = ev.after.attrs[coreExpandTerm('ruleError')]?.[0]?.value;
        if (prevErr !== msg) {
          await this.p.broker.mergeEntity(ev.tenant, ev.entityId, { ruleError: { type: 'Property', value: msg } }).catch(() => {});
        }
        return;
      }
      if (cur && sameRule(cur, rule)) {
        if (ev.after.attrs[coreExpandTerm('ruleError')]) await this.mirror(cur); // drop a stale ruleError
        return;
      }
      const now = this.p.clock.now();
      await this.store.saveRule(rule, now, false);
      await this.apply({ ...rule, createdAt: cur?.createdAt }, now);
    };
    this.ruleJobs++;
    this.ruleQueue = this.ruleQueue
      .then(run)
      .catch((e) => this.p.log.warn('rules: Rule entity not applied', { err: e }))
      .finally(() => this.ruleJobs--);
  }

  private ruleJobs = 0;

  // ------------------------------------------------------------------ output

  private onOutput(o: EngineOutput): void {
    for (const [k, s] of o.states) this.pendingStates.set(k, s);
    for (const t of o.transitions) {
      this.pendingAlarms.add(t.alarm.id);
      const prev = this.alertWritten.get(t.alarm.id);
      if (
        t.event !== 'update' || !prev || prev.count !== t.alarm.count || prev.status !== t.alarm.status ||
        t.alarm.lastSeen - prev.lastSeen >= (this.opts.alertRefreshMs ?? 60_000)
      )
        this.pendingAlerts.add(t.alarm.id);
    }
    for (const plan of o.plans) this.deliverer.deliver(plan);
    this.kick();
  }

  private hasPending(): boolean {
    return this.statesDue() || this.pendingAlarms.size > 0 || this.pendingAlerts.size > 0 || this.pendingDeliveries.length > 0;
  }

  private statesDue(): boolean {
    if (this.pendingStates.size === 0) return false;
    if (this.forceStates || Date.now() - this.lastCheckpoint >= (this.opts.stateCheckpointMs ?? 2000)) return true;
    if (!this.checkpointTimer && !this.stopped) {
      this.checkpointTimer = setTimeout(() => {
        this.checkpointTimer = undefined;
        this.kick();
      }, (this.opts.stateCheckpointMs ?? 2000) - (Date.now() - this.lastCheckpoint));
      this.checkpointTimer.unref?.();
    }
    return false;
  }

  private kick(): void {
    if (this.flushing || !this.hasPending()) {
      if (!this.flushing) this.forceStates = false;
      return;
    }
    this.flushing = (async () => {
      try {
        while (this.hasPending()) await this.flush();
      } finally {
        this.flushing = undefined;
        this.forceStates = false;
      }
    })();
    this.flushing.catch((e) => this.p.log.error('rules: persisting failed', { err: e }));
  }

  private async flush(): Promise<void> {
    let states: [string, EvalState | null][] = [];
    if (this.statesDue()) {
      states = [...this.pendingStates];
      this.pendingStates.clear();
      this.lastCheckpoint = Date.now();
    }
    const alarms = [...this.pendingAlarms].map((id) => this.engine.alarms.get(id)).filter((a): a is AlarmRecord => !!a);
    this.pendingAlarms.clear();
    const alerts = [...this.pendingAlerts].map((id) => this.engine.alarms.get(id)).filter((a): a is AlarmRecord => !!a);
    this.pendingAlerts.clear();
    const deliveries = this.pendingDeliveries;
    this.pendingDeliveries = [];
    try {
      const entities = new Map<string, { tenant: string; entityId: string }>();
      for (const [k] of states) {
        const [tenant, , entityId] = k.split('\u0000');
        entities.set(`${tenant}\u0000${entityId}`, { tenant, entityId });
      }
      await this.store.saveEntityStates(
        [...entities.values()].map((e) => ({ ...e, states: this.engine.statesOfEntity(e.tenant, e.entityId) })),
      );
      await this.store.saveAlarms(alarms.map((a) => ({ ...a })));
      await this.store.logDeliveries(deliveries);
    } catch (e) {
      this.p.log.error('rules: saving states / alarms failed', { err: e });
    }
    if (Date.now() - this.lastPrune > 3_600_000) {
      this.lastPrune = Date.now();
      this.engine.alarms.prune(this.p.clock.now() - DAY); // cleared alarms stay in SQL, not in memory
    }
    const byTenant = new Map<string, Record<string, unknown>[]>();
    for (const a of alerts) {
      const l = byTenant.get(a.tenant) ?? [];
      l.push(alertEntity(a, this.engine.getRule(a.tenant, a.ruleId)));
      byTenant.set(a.tenant, l);
      this.alertWritten.set(a.id, { count: a.count, lastSeen: a.lastSeen, status: a.status });
      if (a.status === 'cleared') this.alertWritten.delete(a.id);
    }
    for (const [tenant, entities] of byTenant) {
      try {
        const r = await this.p.broker.upsertEntities(tenant, entities, { mode: 'replace' });
        if (r.errors.length) this.p.log.warn('rules: Alert entities not written', { errors: r.errors.slice(0, 3) });
      } catch (e) {
        this.p.log.error('rules: Alert entities not written', { err: e });
      }
    }
  }

  // ------------------------------------------------------------------ rules

  /** validate (with the attributes known for the selected type) */
  async validate(tenant: string, body: unknown, id?: string): Promise<Rule> {
    const b = (body && typeof body === 'object' && !Array.isArray(body) ? { ...(body as Record<string, unknown>) } : body) as Record<string, unknown>;
    if (b && typeof b === 'object') {
      if (id !== undefined) {
        const bid = typeof b.id === 'string' ? b.id.replace(RULE_ID_PREFIX, '') : undefined;
        if (bid !== undefined && bid !== id) throw new ProblemError('BadRequestData', `id in the body (${bid}) differs from the URL (${id})`);
        b.id = id;
      }
      if (b.tenant !== undefined && b.tenant !== tenant) throw new ProblemError('BadRequestData', `tenant in the body differs from NGSILD-Tenant ("${tenant}")`);
      delete b.tenant;
    }
    const sel = b?.select as Record<string, unknown> | undefined;
    const known = new Map<string, Set<string> | undefined>();
    if (sel && typeof sel.type === 'string') {
      const iri = coreExpandTerm(sel.type);
      known.set(iri, await this.store.knownAttributes(tenant, iri));
    }
    return validateRule(b, {
      q: this.q, geo: brokerGeoEngine, expandTerm: coreExpandTerm, defaultTenant: tenant,
      knownAttributes: (iri) => known.get(iri),
      newId: () => `rule-${this.p.clock.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
    });
  }

  getRule(tenant: string, id: string): Rule | undefined {
    return this.engine.getRule(tenant, id);
  }

  listRules(tenant: string): Rule[] {
    return this.engine.listRules(tenant).sort((a, b) => a.id.localeCompare(b.id));
  }

  async createRule(tenant: string, body: unknown): Promise<Rule> {
    const rule = await this.validate(tenant, body);
    const now = this.p.clock.now();
    if (!(await this.store.saveRule(rule, now, true))) throw new ProblemError('AlreadyExists', `rule ${rule.id} already exists`);
    return this.apply(rule, now);
  }

  async replaceRule(tenant: string, id: string, body: unknown): Promise<Rule> {
    const existing = this.engine.getRule(tenant, id);
    if (!existing) throw new ProblemError('ResourceNotFound', `no rule ${id}`);
    const rule = await this.validate(tenant, body, id);
    const now = this.p.clock.now();
    await this.store.saveRule(rule, now, false);
    return this.apply({ ...rule, createdAt: existing.createdAt }, now);
  }

  private async apply(rule: Rule, now: number): Promise<Rule> {
    const iso = new Date(now).toISOString();
    const r: Rule = { ...rule, createdAt: rule.createdAt ?? iso, modifiedAt: iso };
    this.engine.setRule(r, now);
    this.driver.flush();
    await this.mirror(r);
    if (r.enabled && r.trigger.kind === 'absence') await this.seedAbsence(r);
    return r;
  }

  async deleteRule(tenant: string, id: string): Promise<void> {
    if (!this.engine.getRule(tenant, id)) throw new ProblemError('ResourceNotFound', `no rule ${id}`);
    await this.store.deleteRule(tenant, id);
    this.engine.removeRule(tenant, id, this.p.clock.now());
    this.driver.flush();
    try {
      await this.p.broker.deleteEntity(tenant, RULE_ID_PREFIX + id);
    } catch {
      // mirror already gone
    }
  }

  private async mirror(rule: Rule): Promise<void> {
    try {
      const r = await this.p.broker.upsertEntities(rule.tenant, [ruleEntity(rule)], { mode: 'replace' });
      if (r.errors.length) this.p.log.warn('rules: Rule entity not written', { errors: r.errors });
    } catch (e) {
      this.p.log.warn('rules: Rule entity not written', { err: e });
    }
  }

  /** absence rules: start the clock for matching entities that have no state yet (from their last update) */
  private async seedAbsence(rule: Rule): Promise<void> {
    if (rule.trigger.kind !== 'absence') return;
    const attrIri = rule.trigger.attribute ? coreExpandTerm(rule.trigger.attribute) : undefined;
    const limit = Math.min(1000, this.p.config.maxLimit || 1000);
    const now = this.p.clock.now();
    try {
      for (let offset = 0, page = 0; page < 100; page++, offset += limit) {
        const res = await this.p.broker.query(rule.tenant, {
          ...(rule.select.type ? { type: rule.select.type } : {}),
          ...(rule.select.idPattern ? { idPattern: rule.select.idPattern } : {}),
          ...(rule.select.ids ? { id: rule.select.ids } : {}),
          limit, offset,
        });
        for (const e of res.stored) {
          if (this.engine.getState(rule.tenant, rule.id, e.id)) continue;
          const t = lastUpdate(e, attrIri);
          if (t !== undefined) this.engine.observe(rule.tenant, rule.id, e.id, Math.min(t, now), now);
        }
        if (res.stored.length < limit) break;
      }
    } catch (e) {
      this.p.log.warn(`rules: could not seed absence rule ${rule.id}`, { err: e });
    }
    this.driver.flush();
  }

  private async installDemoRules(): Promise<void> {
    for (const input of DEMO_RULES) {
      const id = input.id as string;
      if (this.engine.getRule('', id) || (await this.store.getRule('', id))) continue;
      try {
        const rule = validateRule(input, { q: this.q, geo: brokerGeoEngine, expandTerm: coreExpandTerm, defaultTenant: '' });
        const now = this.p.clock.now();
        if (await this.store.saveRule(rule, now, true)) await this.apply(rule, now);
      } catch (e) {
        this.p.log.error(`rules: demo rule ${id} rejected`, { err: e });
      }
    }
  }

  // ------------------------------------------------------------------ alarms

  async acknowledge(tenant: string, id: string, by: string, note?: string): Promise<AlarmRecord> {
    this.ownAlarm(tenant, id);
    const a = this.engine.acknowledge(id, by, this.p.clock.now(), note);
    this.driver.flush();
    await this.settled();
    return a;
  }

  async clear(tenant: string, id: string, by: string, note?: string): Promise<AlarmRecord> {
    this.ownAlarm(tenant, id);
    const a = this.engine.clearAlarm(id, by, this.p.clock.now(), note);
    this.driver.flush();
    await this.settled();
    return a;
  }

  private ownAlarm(tenant: string, id: string) {
    const a = this.engine.alarms.get(id);
    if (!a || a.tenant !== tenant) throw new ProblemError('ResourceNotFound', `no open or recent alarm ${id}`);
  }

  stats(tenant: string) {
    const alarms = this.engine.alarms.list({ tenant });
    return {
      rules: this.engine.listRules(tenant).length,
      evaluations: this.engine.evaluations,
      failures: Object.fromEntries([...this.engine.failures].filter(([id]) => this.engine.getRule(tenant, id))),
      states: this.engine.stateCount,
      alarms: {
        active: alarms.filter((a) => a.status === 'active').length,
        acknowledged: alarms.filter((a) => a.status === 'acknowledged').length,
      },
    };
  }
}

function mqttServiceUrl(p: Platform): string | undefined {
  const s = p.services.get('mqtt') as { url?: string } | undefined;
  return typeof s?.url === 'string' ? s.url : undefined;
}

function lastUpdate(e: StoredEntity, attrIri?: string): number | undefined {
  if (attrIri) {
    const inst = e.attrs[attrIri]?.[0];
    if (!inst) return Date.parse(e.modifiedAt);
    const v = inst.value;
    const fromValue = v && typeof v === 'object' && '@value' in (v as object) ? Date.parse(String((v as { '@value': unknown })['@value'])) : typeof v === 'string' ? Date.parse(v) : NaN;
    const t = Date.parse(inst.observedAt ?? inst.modifiedAt ?? e.modifiedAt);
    return Number.isFinite(fromValue) ? Math.max(fromValue, Number.isFinite(t) ? t : 0) : Number.isFinite(t) ? t : undefined;
  }
  const t = Date.parse(e.modifiedAt);
  return Number.isFinite(t) ? t : undefined;
}

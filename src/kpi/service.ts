/**
 * KPI engine: loads the catalogue per tenant as KeyPerformanceIndicator entities, records the
 * attribute history the calculators need (from the change bus), recomputes automatic KPIs (on a
 * schedule and on demand) with their inputs, writes values as `kpiValue` (observedAt) on the KPI
 * entities, and builds scorecards, framework results and reports.
 */
import type { Platform } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import { CATALOGUE, kpiEntityId, toKpiEntity } from './domain/catalogue.ts';
import { CALCULATOR_LIST, dataRequirements } from './domain/calculators/index.ts';
import { parsePeriod, periodOf, previousPeriod, yearOf } from './domain/period.ts';
import { profileFor } from './domain/profile.ts';
import { scorecard } from './domain/scoring.ts';
import { buildReport, type Report } from './domain/report.ts';
import { BUILTIN_FRAMEWORKS, evaluateFramework, type FrameworkConfig } from './domain/frameworks.ts';
import type { KvEntity, KpiValue, Period } from './domain/types.ts';
import { KpiStore } from './store.ts';

export const CATALOGUE_VERSION = `u4ssc-91/${CALCULATOR_LIST.map((c) => c.code).join('|').length}-${CALCULATOR_LIST.length}`;
const REQ = dataRequirements();
/** local name of a term or IRI */
const local = (s: string) => s.replace(/^.*[/#]/, '');
const HISTORY_TYPES = new Map([...REQ].filter(([, r]) => r.history.size).map(([t, r]) => [t, r.history]));
const DAY = 86_400_000;

function numeric(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if (['on', 'ok', 'true', 'supplied', 'up'].includes(s)) return 1;
    if (['off', 'false', 'interrupted', 'down', 'outage'].includes(s)) return 0;
    const n = Number(v);
    return v.trim() !== '' && Number.isFinite(n) ? n : null;
  }
  return null;
}

export class KpiService {
  readonly store: KpiStore;
  private ensured = new Set<string>();
  private running: Promise<void> | null = null;
  private pending: Promise<void> = Promise.resolve();

  constructor(readonly p: Platform) {
    this.store = new KpiStore(p.db);
  }

  nowIso() {
    return new Date(this.p.clock.now()).toISOString();
  }

  /** Load (or refresh, when the catalogue changed) the 91 KPI entities of a tenant. Idempotent. */
  async ensureTenant(tenant: string): Promise<void> {
    if (this.ensured.has(tenant)) return;
    const st = await this.store.tenantState(tenant);
    if (!st || st.catalogue_version !== CATALOGUE_VERSION) {
      const res = await this.p.broker.upsertEntities(tenant, CATALOGUE.map((d) => toKpiEntity(d)), { mode: 'update' });
      if (res.errors.length) this.p.log.warn('kpi: catalogue entities rejected', { errors: res.errors.slice(0, 3) });
      await this.store.setTenant(tenant, CATALOGUE_VERSION, this.nowIso());
    }
    this.ensured.add(tenant);
  }

  /** Change events -> samples of the attributes whose history the calculators read. */
  onChanges(events: ChangeEvent[]): void {
    const rows: { tenant: string; entityId: string; attr: string; ts: number; v: number }[] = [];
    for (const ev of events) {
      if (!ev.after) continue;
      const attrsOf = ev.types.map((t) => HISTORY_TYPES.get(local(t))).find(Boolean);
      if (!attrsOf) continue;
      for (const iri of ev.changedAttrs) {
        const name = local(iri);
        if (!attrsOf.has(name)) continue;
        const inst = (ev.after.attrs[iri] ?? []).find((i) => !i.datasetId);
        if (!inst) continue;
        const v = numeric(inst.value);
        if (v === null) continue;
        const ts = Date.parse(inst.observedAt ?? ev.at);
        if (Number.isFinite(ts)) rows.push({ tenant: ev.tenant, entityId: ev.entityId, attr: name, ts, v });
      }
    }
    if (rows.length) this.pending = this.pending.then(() => this.store.addSamples(rows)).catch((e) => this.p.log.warn('kpi: sample write failed', { err: e }));
  }

  /** wait for queued sample writes (tests) */
  flush() {
    return this.pending;
  }

  private async entitiesOf(tenant: string, type: string): Promise<KvEntity[]> {
    const out: KvEntity[] = [];
    const limit = Math.min(1000, this.p.config.maxLimit || 1000);
    for (let offset = 0; offset < 50_000; offset += limit) {
      let page: Record<string, unknown>[];
      try {
        page = (await this.p.broker.queryEntities(tenant, { type, format: 'keyValues', limit, offset })).entities;
      } catch (e) {
        if (e instanceof ProblemError && e.kind === 'NonexistentTenant') return out;
        throw e;
      }
      for (const e of page) {
        const x: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(e)) x[k === 'id' || k === 'type' ? k : local(k)] = v;
        out.push(x as KvEntity);
      }
      if (page.length < limit) break;
    }
    return out;
  }

  /** Recompute every automatic KPI of a tenant for a period; returns the values written. */
  async recompute(tenant: string, periodId: string): Promise<KpiValue[]> {
    await this.ensureTenant(tenant);
    const period = parsePeriod(periodId);
    const now = this.p.clock.now();
    if (Date.parse(period.start) > now) throw new ProblemError('BadRequestData', `period ${period.id} has not started yet`);
    const eff: Period = { ...period, end: Date.parse(period.end) > now ? new Date(now).toISOString() : period.end };
    const entities: Record<string, KvEntity[]> = {};
    for (const type of REQ.keys()) entities[type] = await this.entitiesOf(tenant, type);
    const ids = [...HISTORY_TYPES.keys()].flatMap((t) => (entities[t] ?? []).map((e) => e.id));
    const attrs = [...new Set([...HISTORY_TYPES.values()].flatMap((s) => [...s]))];
    // 40 days before the start: last counter reading / supply state before the window
    const series = await this.store.samples(tenant, ids, attrs, Date.parse(eff.start) - 40 * DAY, Date.parse(eff.end));
    const profile = profileFor(await this.store.profiles(tenant), yearOf(period));
    const computedAt = new Date(now).toISOString();
    const written: KpiValue[] = [];
    for (const c of CALCULATOR_LIST) {
      let r;
      try {
        r = c.compute({ period: eff, profile, entities, series });
      } catch (e) {
        this.p.log.warn(`kpi: calculator ${c.code} failed`, { err: e });
        continue;
      }
      const base = { code: c.code, period: period.id, unit: r.unit, method: 'automatic' as const, source: 'Urbis calculator', quality: 'measured' as const, computedAt, inputs: r.inputs };
      const vals: KpiValue[] = [];
      if (!r.dataPoints || r.value !== null) vals.push({ ...base, dataPoint: '', value: r.value });
      for (const [dp, v] of Object.entries(r.dataPoints ?? {})) if (dp !== 'percentage' || r.value === null) vals.push({ ...base, dataPoint: dp, value: v });
      for (const v of vals) if (await this.store.putValue(tenant, v, { now: computedAt })) written.push(v);
      await this.publish(tenant, c.code, period, vals.filter((v) => v.value !== null), computedAt);
    }
    return written;
  }

  /** Write values as the kpiValue attribute (one instance per data point, datasetId) of the KPI entity. */
  async publish(tenant: string, code: string, period: Period, vals: KpiValue[], at: string): Promise<void> {
    if (!vals.length) return;
    const observedAt = Date.parse(period.end) > Date.parse(at) ? at : period.end;
    const inst = vals.map((v) => ({
      type: 'Property',
      value: v.value,
      observedAt,
      ...(v.dataPoint ? { datasetId: `urn:ngsi-ld:dataset:${v.dataPoint}` } : {}),
      calculationPeriod: { type: 'Property', value: { from: period.start.slice(0, 10), to: period.end.slice(0, 10), period: period.id } },
      calculationMethod: { type: 'Property', value: v.method },
    }));
    try {
      await this.p.broker.mergeEntity(tenant, kpiEntityId(code), { kpiValue: inst.length === 1 ? inst[0] : inst, dateModified: { type: 'Property', value: at } });
    } catch (e) {
      this.p.log.warn(`kpi: could not publish ${code}`, { err: e });
    }
  }

  /** recompute the live periods (current year and month) of every KPI tenant; joins a run in progress */
  tick(): Promise<void> {
    if (!this.running) this.running = this.runTick().finally(() => (this.running = null));
    return this.running;
  }

  private async runTick(): Promise<void> {
    try {
      const now = this.p.clock.now();
      for (const t of await this.store.tenants()) {
        for (const g of ['year', 'month'] as const) await this.recompute(t, periodOf(now, g).id);
      }
      await this.store.pruneSamples(now - 800 * DAY);
    } catch (e) {
      this.p.log.warn('kpi: scheduled recompute failed', { err: e });
    }
  }

  async scores(tenant: string, periodId: string) {
    await this.ensureTenant(tenant);
    const period = parsePeriod(periodId).id;
    const sc = scorecard(CATALOGUE, await this.store.values(tenant, { period }), await this.store.targets(tenant));
    return { tenant, period, ...sc };
  }

  async report(tenant: string, periodId: string): Promise<Report> {
    await this.ensureTenant(tenant);
    const period = parsePeriod(periodId);
    const prev = previousPeriod(period).id;
    const profile = profileFor(await this.store.profiles(tenant), yearOf(period));
    return buildReport({
      tenant,
      city: profile?.name,
      period: period.id,
      generatedAt: this.nowIso(),
      defs: CATALOGUE,
      values: await this.store.values(tenant, { period: period.id }),
      previous: await this.store.values(tenant, { period: prev }),
      targets: await this.store.targets(tenant),
    });
  }

  async frameworks(tenant: string): Promise<(FrameworkConfig & { builtin: boolean })[]> {
    const own = await this.store.frameworks(tenant);
    const ids = new Set(own.map((f) => f.id));
    return [...BUILTIN_FRAMEWORKS.filter((f) => !ids.has(f.id)).map((f) => ({ ...f, builtin: true })), ...own.map((f) => ({ ...f, builtin: false }))];
  }

  async evaluate(tenant: string, id: string, periodId: string) {
    const f = (await this.frameworks(tenant)).find((x) => x.id === id);
    if (!f) throw new ProblemError('ResourceNotFound', `framework "${id}" not found`);
    const period = parsePeriod(periodId);
    const kpi: Record<string, number | null> = {};
    for (const v of await this.store.values(tenant, { period: period.id })) kpi[v.dataPoint ? `${v.code}#${v.dataPoint}` : v.code] = v.value;
    const profile = profileFor(await this.store.profiles(tenant), yearOf(period));
    return { period: period.id, ...evaluateFramework(f, { kpi, survey: await this.store.survey(tenant, period.id), profile: profile?.values ?? {} }) };
  }
}

/**
 * The rule engine (pure, no I/O): incremental evaluation of rules on change events, one small
 * serialisable state machine per (tenant, rule, entity), deadlines instead of polling, alarms with
 * lifecycle + dedup, and action plans. The caller feeds it change events and the time, fires
 * `tick(now)` when `nextDeadline()` is reached, and drains its output (alarm transitions to persist
 * and mirror as Alert entities, action plans to deliver, state changes to persist).
 *
 * Per-kind semantics:
 * - condition: q holds -> firing (after `for` if given; a timer fires it without new events).
 * - rateOfChange: (newest - oldest sample in `window`) / elapsed, per `per`, above riseAbove / below -fallAbove.
 * - absence: no update (of `attribute`, if given) for `after` -> firing; any update clears it.
 * - geofence: enter / leave fire on the crossing and hold until the opposite crossing; inside / outside
 *   fire while the location is inside / outside.
 * - anomaly: zscore (rolling mean / standard deviation over `window` samples) or ewma (exponentially
 *   weighted mean / variance); |value - mean| > sensitivity * sd -> firing; next normal sample clears.
 * Hysteresis: `alarm.clearAfter` (must stop firing for that long). Dedup: see alarms.ts.
 */
import type { ChangeEvent } from '../../bus/change-bus.ts';
import type { AttrInstance, StoredEntity } from '../../ngsi-ld/model/types.ts';
import { AlarmBook, alarmKey, type AlarmRecord, type FireInfo } from './alarms.ts';
import { planActions } from './actions.ts';
import { formatDuration } from './duration.ts';
import type { CompiledQ, GeoEngine, QEngine } from './engines.ts';
import { pointInPolygon, positions } from './geometry.ts';
import { instanceValue } from './mini-q.ts';
import type { ActionPlan, AlarmTransition, Rule } from './types.ts';

/** Serialisable per-(rule, entity) state. */
export interface EvalState {
  firing: boolean;
  /** last judgement of the trigger (re-used when a timer fires) */
  raw?: boolean;
  /** trigger true since (hold) */
  since?: number;
  /** trigger false since while firing (clear hysteresis) */
  falseSince?: number;
  /** when the engine must look again */
  deadline?: number;
  /** absence: last update */
  lastSeen?: number;
  /** geofence: last known side */
  inside?: boolean;
  /** rateOfChange: [t, v]; anomaly/zscore: [t, v] history */
  samples?: [number, number][];
  /** anomaly/ewma */
  mean?: number;
  variance?: number;
  n?: number;
  entityType?: string;
  value?: unknown;
  location?: unknown;
}

export interface EngineOutput {
  transitions: AlarmTransition[];
  plans: ActionPlan[];
  /** states changed since the last drain: null = deleted */
  states: [key: string, state: EvalState | null][];
}

interface CompiledRule {
  rule: Rule;
  typeIri?: string;
  idRe?: RegExp;
  ids?: Set<string>;
  geo?: (e: StoredEntity) => boolean;
  pre?: CompiledQ;
  cond?: CompiledQ;
  /** expanded attributes read by the condition; undefined = unknown, always evaluate */
  condAttrs?: Set<string>;
  condTerms?: [term: string, iri: string][];
  attrIri?: string;
  geoIri?: string;
  forMs: number;
}

export interface EngineOptions {
  q: QEngine;
  geo: GeoEngine;
  expandTerm: (term: string) => string;
}

const ruleKey = (tenant: string, id: string) => `${tenant}\u0000${id}`;
const LOCATION = 'https://uri.etsi.org/ngsi-ld/location';

export class RuleEngine {
  readonly alarms = new AlarmBook();
  private rules = new Map<string, CompiledRule>();
  private byType = new Map<string, CompiledRule[]>();
  private untyped: CompiledRule[] = [];
  private states = new Map<string, EvalState>();
  private heap = new DeadlineHeap();
  private dirty = new Set<string>();
  private transitions: AlarmTransition[] = [];
  private plans: ActionPlan[] = [];
  /** number of (rule, entity) evaluations done */
  evaluations = 0;

  constructor(private opts: EngineOptions) {}

  // ---------------------------------------------------------------- rules

  getRule(tenant: string, id: string): Rule | undefined {
    return this.rules.get(ruleKey(tenant, id))?.rule;
  }

  listRules(tenant?: string): Rule[] {
    return [...this.rules.values()].map((c) => c.rule).filter((r) => tenant === undefined || r.tenant === tenant);
  }

  /** add or replace a rule; a changed selection or trigger resets its states and clears its alarms */
  setRule(rule: Rule, now = this.lastNow): void {
    this.lastNow = now;
    const k = ruleKey(rule.tenant, rule.id);
    const prev = this.rules.get(k);
    if (prev) {
      this.unindex(prev);
      const same =
        JSON.stringify(prev.rule.select) === JSON.stringify(rule.select) &&
        JSON.stringify(prev.rule.trigger) === JSON.stringify(rule.trigger) &&
        prev.rule.enabled === rule.enabled;
      if (!same) this.resetRule(prev.rule, 'rule changed');
      this.rules.delete(k);
    }
    const c = this.compile(rule);
    this.rules.set(k, c);
    if (rule.enabled) this.index(c);
  }

  removeRule(tenant: string, id: string, now = this.lastNow): void {
    this.lastNow = now;
    const k = ruleKey(tenant, id);
    const c = this.rules.get(k);
    if (!c) return;
    this.unindex(c);
    this.resetRule(c.rule, 'rule deleted');
    this.rules.delete(k);
  }

  private resetRule(rule: Rule, by: string) {
    const prefix = `${rule.tenant}\u0000${rule.id}\u0000`;
    for (const key of [...this.states.keys()]) if (key.startsWith(prefix)) this.dropState(key);
    for (const a of this.alarms.list({ tenant: rule.tenant, ruleId: rule.id, status: ['active', 'acknowledged'] })) {
      this.emit(rule, this.alarms.clear(a.id, by, this.lastNow));
    }
  }

  private compile(rule: Rule): CompiledRule {
    const { q, geo, expandTerm } = this.opts;
    const s = rule.select;
    const c: CompiledRule = { rule, forMs: 0 };
    if (s.type) c.typeIri = expandTerm(s.type);
    if (s.idPattern) c.idRe = new RegExp(s.idPattern);
    if (s.ids) c.ids = new Set(s.ids);
    if (s.geoQ) c.geo = geo.compile(s.geoQ, expandTerm);
    if (s.q) c.pre = q.compile(s.q, expandTerm);
    const t = rule.trigger;
    if (t.kind === 'condition') {
      c.cond = q.compile(t.q, expandTerm);
      if (c.cond.attributes) {
        c.condTerms = c.cond.attributes.filter((a) => a !== 'id' && a !== 'type').map((a) => [a, expandTerm(a)]);
        // id/type never change; any other attribute is watched
        c.condAttrs = new Set(c.condTerms.map(([, iri]) => iri));
      }
    }
    if ('attribute' in t && t.attribute) c.attrIri = expandTerm(t.attribute);
    if (t.kind === 'geofence') c.geoIri = expandTerm(t.geoproperty);
    if ('forMs' in t && t.forMs) c.forMs = t.forMs;
    return c;
  }

  private index(c: CompiledRule) {
    if (c.typeIri) {
      const l = this.byType.get(c.typeIri) ?? [];
      l.push(c);
      this.byType.set(c.typeIri, l);
    } else this.untyped.push(c);
  }

  private unindex(c: CompiledRule) {
    if (c.typeIri) {
      const l = this.byType.get(c.typeIri)?.filter((x) => x !== c) ?? [];
      if (l.length) this.byType.set(c.typeIri, l);
      else this.byType.delete(c.typeIri);
    } else this.untyped = this.untyped.filter((x) => x !== c);
  }

  // ---------------------------------------------------------------- state persistence

  loadStates(entries: Iterable<[string, EvalState]>): void {
    for (const [k, st] of entries) {
      this.states.set(k, st);
      if (st.deadline !== undefined) this.heap.push(st.deadline, k);
    }
  }

  loadAlarms(alarms: AlarmRecord[]): void {
    this.alarms.load(alarms);
  }

  getState(tenant: string, ruleId: string, entityId: string): EvalState | undefined {
    return this.states.get(alarmKey(tenant, ruleId, entityId));
  }

  /** states of every rule of a tenant for one entity, by rule id */
  statesOfEntity(tenant: string, entityId: string): Record<string, EvalState> {
    const out: Record<string, EvalState> = {};
    for (const c of this.rules.values()) {
      if (c.rule.tenant !== tenant) continue;
      const st = this.states.get(alarmKey(tenant, c.rule.id, entityId));
      if (st) out[c.rule.id] = st;
    }
    return out;
  }

  get stateCount(): number {
    return this.states.size;
  }

  /** everything produced since the last drain */
  drain(): EngineOutput {
    const states: [string, EvalState | null][] = [];
    for (const k of this.dirty) states.push([k, this.states.get(k) ?? null]);
    const out = { transitions: this.transitions, plans: this.plans, states };
    this.dirty = new Set();
    this.transitions = [];
    this.plans = [];
    return out;
  }

  // ---------------------------------------------------------------- events

  private lastNow = 0;

  /** Seed an absence rule with an entity that exists already (last update at lastSeen). */
  observe(tenant: string, ruleId: string, entityId: string, lastSeen: number, now: number): void {
    const c = this.rules.get(ruleKey(tenant, ruleId));
    if (!c || !c.rule.enabled || c.rule.trigger.kind !== 'absence') return;
    const key = alarmKey(tenant, ruleId, entityId);
    if (this.states.has(key)) return;
    const st: EvalState = { firing: false, lastSeen };
    this.lastNow = now;
    this.step(c, key, st, now - lastSeen >= c.rule.trigger.afterMs, now, entityId, {});
  }

  process(events: ChangeEvent[], now: number): void {
    this.lastNow = now;
    for (const ev of events) {
      for (const type of ev.types) {
        const l = this.byType.get(type);
        if (l) for (const c of l) this.safeHandle(c, ev, now);
      }
      for (const c of this.untyped) this.safeHandle(c, ev, now);
    }
  }

  /** evaluation failures (e.g. a q evaluator throwing on odd data), by rule id; one bad rule never stops the others */
  readonly failures = new Map<string, { count: number; last: string }>();

  private safeHandle(c: CompiledRule, ev: ChangeEvent, now: number) {
    try {
      this.handle(c, ev, now);
    } catch (e) {
      const f = this.failures.get(c.rule.id) ?? { count: 0, last: '' };
      f.count++;
      f.last = `${ev.entityId}: ${(e as Error).message}`;
      this.failures.set(c.rule.id, f);
    }
  }

  private handle(c: CompiledRule, ev: ChangeEvent, now: number) {
    const r = c.rule;
    if (r.tenant !== ev.tenant) return;
    if (c.ids && !c.ids.has(ev.entityId)) return;
    if (c.idRe && !c.idRe.test(ev.entityId)) return;
    const key = alarmKey(r.tenant, r.id, ev.entityId);
    const after = ev.kind === 'delete' ? undefined : ev.after;
    if (!after) {
      if (this.states.has(key) || this.alarms.current(r.tenant, r.id, ev.entityId)) this.deselect(c, key, ev.entityId, 'entity deleted', now);
      return;
    }
    if ((c.geo && !c.geo(after)) || (c.pre && !c.pre.test(after))) {
      if (this.states.has(key)) this.deselect(c, key, ev.entityId, 'entity left the rule selection', now);
      return;
    }
    let st = this.states.get(key);
    const isNew = !st;
    if (!st) st = { firing: false };
    const t = r.trigger;
    const info: Partial<FireInfo> = {};
    const loc = after.attrs[LOCATION]?.[0]?.value;
    if (loc !== undefined) st.location = info.location = loc;
    if (!st.entityType) st.entityType = shortName(ev.types.find((x) => x === c.typeIri) ?? ev.types[0] ?? '');
    info.entityType = st.entityType;

    switch (t.kind) {
      case 'condition': {
        if (!isNew && c.condAttrs && ev.kind === 'update' && !ev.changedAttrs.some((a) => c.condAttrs!.has(a))) return;
        this.evaluations++;
        const raw = c.cond!.test(after);
        if (c.condTerms?.length) {
          const v: Record<string, unknown> = {};
          for (const [term, iri] of c.condTerms) {
            const inst = pick(after.attrs[iri]);
            if (inst) v[term] = instanceValue(inst);
          }
          st.value = info.value = v;
        }
        return this.step(c, key, st, raw, now, ev.entityId, info);
      }
      case 'rateOfChange': {
        const s = sampleOf(c.attrIri!, ev, after, now);
        if (!s) return;
        this.evaluations++;
        const samples = (st.samples ??= []);
        samples.push(s);
        while (samples.length > 1 && samples[0][0] < s[0] - t.windowMs) samples.shift();
        if (samples.length > 1000) samples.splice(0, samples.length - 1000);
        let raw = false;
        if (samples.length >= 2) {
          const [t0, v0] = samples[0];
          const dt = s[0] - t0;
          if (dt > 0) {
            const rate = ((s[1] - v0) / dt) * t.perMs;
            raw = (t.riseAbove !== undefined && rate > t.riseAbove) || (t.fallAbove !== undefined && -rate > t.fallAbove);
            st.value = info.value = { [t.attribute]: s[1], rate: round(rate), per: formatDuration(t.perMs) };
          }
        }
        return this.step(c, key, st, raw, now, ev.entityId, info);
      }
      case 'absence': {
        if (!isNew && c.attrIri && !written(c.attrIri, ev, after)) return;
        this.evaluations++;
        st.lastSeen = now;
        info.value = { lastUpdate: new Date(now).toISOString() };
        return this.step(c, key, st, false, now, ev.entityId, info);
      }
      case 'geofence': {
        const g = pick(after.attrs[c.geoIri!])?.value as { type: string; coordinates: unknown } | undefined;
        if (!g || typeof g !== 'object') return;
        if (!isNew && ev.kind === 'update' && !ev.changedAttrs.includes(c.geoIri!)) return;
        this.evaluations++;
        const pts = positions(g);
        if (pts.length === 0) return;
        const inside = pts.some((p) => pointInPolygon(p, t.geometry));
        const prev = st.inside;
        st.inside = inside;
        st.value = info.value = { inside, position: g };
        let raw: boolean;
        switch (t.event) {
          case 'inside': raw = inside; break;
          case 'outside': raw = !inside; break;
          case 'enter': raw = inside && (st.firing || prev === false); break;
          case 'leave': raw = !inside && (st.firing || prev === true); break;
        }
        return this.step(c, key, st, raw, now, ev.entityId, info);
      }
      case 'anomaly': {
        const s = sampleOf(c.attrIri!, ev, after, now);
        if (!s) return;
        this.evaluations++;
        const v = s[1];
        let raw = false;
        if (t.method === 'zscore') {
          const hist = (st.samples ??= []);
          if (hist.length >= t.minSamples) {
            let sum = 0;
            for (const h of hist) sum += h[1];
            const mean = sum / hist.length;
            let ss = 0;
            for (const h of hist) ss += (h[1] - mean) ** 2;
            const sd = Math.sqrt(ss / (hist.length - 1));
            const z = Math.abs(v - mean) / Math.max(sd, 1e-9, Math.abs(mean) * 1e-6);
            raw = z > t.sensitivity;
            st.value = info.value = { [t.attribute]: v, mean: round(mean), sd: round(sd), z: round(z) };
          }
          hist.push(s);
          if (hist.length > t.window) hist.splice(0, hist.length - t.window);
        } else {
          const n = st.n ?? 0;
          if (n === 0) {
            st.mean = v;
            st.variance = 0;
          } else {
            const mean = st.mean!;
            const sd = Math.sqrt(st.variance!);
            if (n >= t.minSamples) {
              const z = Math.abs(v - mean) / Math.max(sd, 1e-9, Math.abs(mean) * 1e-6);
              raw = z > t.sensitivity;
              st.value = info.value = { [t.attribute]: v, mean: round(mean), sd: round(sd), z: round(z) };
            }
            const diff = v - mean;
            const incr = t.alpha * diff;
            st.mean = mean + incr;
            st.variance = (1 - t.alpha) * (st.variance! + diff * incr);
          }
          st.n = n + 1;
        }
        return this.step(c, key, st, raw, now, ev.entityId, info);
      }
    }
  }

  /** entity deleted or no longer selected: forget its state, clear its alarm */
  private deselect(c: CompiledRule, key: string, entityId: string, why: string, now: number) {
    this.dropState(key);
    if (c.rule.alarm.autoClear || why === 'entity deleted') {
      const tr = this.alarms.autoClear(c.rule.tenant, c.rule.id, entityId, why, now);
      if (tr) this.emit(c.rule, tr);
    }
  }

  private dropState(key: string) {
    if (this.states.delete(key)) this.dirty.add(key);
  }

  /** the generic hold / fire / hysteresis / clear state machine */
  private step(c: CompiledRule, key: string, st: EvalState, raw: boolean, now: number, entityId: string, info: Partial<FireInfo>) {
    const r = c.rule;
    st.raw = raw;
    let deadline: number | undefined;
    if (raw) {
      delete st.falseSince;
      if (!st.firing) {
        st.since ??= now;
        if (now - st.since >= c.forMs) {
          st.firing = true;
          this.emit(r, this.alarms.fire(r, entityId, { ...info, description: describe(c, st, entityId) }, now));
        } else deadline = st.since + c.forMs;
      } else {
        const tr = this.alarms.touch(r.tenant, r.id, entityId, info, now);
        if (tr) this.transitions.push(tr);
      }
    } else {
      delete st.since;
      if (st.firing) {
        st.falseSince ??= now;
        if (now - st.falseSince >= r.alarm.clearAfterMs) {
          st.firing = false;
          delete st.falseSince;
          if (r.alarm.autoClear) {
            const tr = this.alarms.autoClear(r.tenant, r.id, entityId, 'auto', now);
            if (tr) this.emit(r, tr);
          }
        } else deadline = st.falseSince + r.alarm.clearAfterMs;
      }
    }
    // keep persisted states small: value / location only matter while pending or firing
    if (!st.firing && st.since === undefined) {
      delete st.value;
      delete st.location;
    }
    if (r.trigger.kind === 'absence' && !st.firing && st.lastSeen !== undefined) {
      const d = st.lastSeen + r.trigger.afterMs;
      deadline = deadline === undefined ? d : Math.min(deadline, d);
    }
    if (deadline !== st.deadline) {
      if (deadline === undefined) delete st.deadline;
      else {
        st.deadline = deadline;
        this.heap.push(deadline, key);
      }
    }
    this.states.set(key, st);
    this.dirty.add(key);
  }

  private emit(rule: Rule, tr: AlarmTransition) {
    this.transitions.push(tr);
    for (const p of planActions(rule, tr)) {
      if (p.action.type === 'serviceRequest' && p.entity && (p.event === 'raise' || p.event === 'reopen')) {
        const a = this.alarms.get(tr.alarm.id);
        if (a) a.serviceRequestId = tr.alarm.serviceRequestId = p.entity.id as string;
      }
      this.plans.push(p);
    }
  }

  // ---------------------------------------------------------------- time

  nextDeadline(): number | undefined {
    for (;;) {
      const top = this.heap.peek();
      if (!top) return undefined;
      if (this.states.get(top.key)?.deadline === top.at) return top.at;
      this.heap.pop(); // stale
    }
  }

  /** run every deadline due at `now` */
  tick(now: number): void {
    this.lastNow = now;
    for (;;) {
      const top = this.heap.peek();
      if (!top || top.at > now) return;
      this.heap.pop();
      const st = this.states.get(top.key);
      if (!st || st.deadline !== top.at) continue;
      delete st.deadline;
      const [tenant, ruleId, entityId] = top.key.split('\u0000');
      const c = this.rules.get(ruleKey(tenant, ruleId));
      if (!c || !c.rule.enabled) {
        this.dropState(top.key);
        continue;
      }
      this.evaluations++;
      const t = c.rule.trigger;
      const raw = t.kind === 'absence' ? st.lastSeen !== undefined && now - st.lastSeen >= t.afterMs : st.raw ?? false;
      const info: Partial<FireInfo> = { entityType: st.entityType, value: st.value, location: st.location };
      if (t.kind === 'absence' && st.lastSeen !== undefined) info.value = st.value = { lastUpdate: new Date(st.lastSeen).toISOString() };
      this.step(c, top.key, st, raw, now, entityId, info);
    }
  }

  // ---------------------------------------------------------------- operator actions

  acknowledge(alarmId: string, by: string, now: number, note?: string): AlarmRecord {
    const tr = this.alarms.acknowledge(alarmId, by, now, note);
    this.emitFor(tr);
    return this.alarms.get(alarmId)!;
  }

  clearAlarm(alarmId: string, by: string, now: number, note?: string): AlarmRecord {
    const tr = this.alarms.clear(alarmId, by, now, note);
    this.emitFor(tr);
    return this.alarms.get(alarmId)!;
  }

  private emitFor(tr: AlarmTransition) {
    const rule = this.getRule(tr.alarm.tenant, tr.alarm.ruleId);
    if (rule) this.emit(rule, tr);
    else this.transitions.push(tr);
  }
}

// ------------------------------------------------------------------ helpers

function shortName(iri: string): string {
  const m = /[/#:]([^/#:]+)$/.exec(iri);
  return m ? m[1] : iri;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** default instance (no datasetId) first */
function pick(insts: AttrInstance[] | undefined): AttrInstance | undefined {
  if (!insts || insts.length === 0) return undefined;
  if (insts.length === 1) return insts[0];
  return insts.find((i) => i.datasetId === undefined) ?? insts[0];
}

function written(iri: string, ev: ChangeEvent, after: StoredEntity): boolean {
  if (ev.kind === 'create' || ev.kind === 'replace' || ev.changedAttrs.includes(iri)) return true;
  const a = pick(after.attrs[iri]);
  if (!a) return false;
  const b = pick(ev.before?.attrs[iri]);
  if (!b) return true;
  return a.value !== b.value || a.observedAt !== b.observedAt || a.modifiedAt !== b.modifiedAt;
}

/** a numeric sample [t, v] of an attribute written by this event */
function sampleOf(iri: string, ev: ChangeEvent, after: StoredEntity, now: number): [number, number] | undefined {
  const inst = pick(after.attrs[iri]);
  if (!inst || !written(iri, ev, after)) return undefined;
  const raw = inst.value;
  const v = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(v)) return undefined;
  const t = Date.parse(inst.observedAt ?? ev.at);
  return [Number.isFinite(t) ? t : now, v];
}

function describe(c: CompiledRule, st: EvalState, entityId: string): string {
  const r = c.rule;
  const t = r.trigger;
  const tpl = r.alarm.description;
  const value = st.value;
  if (tpl) {
    return tpl.replace(/\{(\w+)\}/g, (m, k: string) => {
      switch (k) {
        case 'entityId': return entityId;
        case 'entityType': return st.entityType ?? '';
        case 'rule': return r.name;
        case 'attribute': return 'attribute' in t ? t.attribute ?? '' : '';
        case 'value': return value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
        default:
          if (value && typeof value === 'object' && k in (value as object)) return String((value as Record<string, unknown>)[k]);
          return m;
      }
    });
  }
  const v = value && typeof value === 'object' ? ` (${Object.entries(value as object).map(([k, x]) => `${k}=${typeof x === 'object' ? JSON.stringify(x) : x}`).join(', ')})` : '';
  switch (t.kind) {
    case 'condition':
      return `${r.name}: ${t.q}${c.forMs ? ` for ${formatDuration(c.forMs)}` : ''} on ${entityId}${v}`;
    case 'rateOfChange':
      return `${r.name}: ${t.attribute} of ${entityId} changes too fast${v}`;
    case 'absence':
      return `${r.name}: no update from ${entityId} for ${formatDuration(t.afterMs)}${v}`;
    case 'geofence': {
      const what = t.event === 'enter' ? 'entered' : t.event === 'leave' ? 'left' : t.event === 'inside' ? 'is inside' : 'is outside';
      return `${r.name}: ${entityId} ${what} the area`;
    }
    case 'anomaly':
      return `${r.name}: anomalous ${t.attribute} on ${entityId}${v}`;
  }
}

/** binary min-heap of (at, key) with lazy deletion (stale entries are skipped by the engine) */
class DeadlineHeap {
  private a: { at: number; key: string }[] = [];
  push(at: number, key: string) {
    const a = this.a;
    a.push({ at, key });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].at <= a[i].at) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  peek() {
    return this.a[0];
  }
  pop() {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].at < a[m].at) m = l;
        if (r < a.length && a[r].at < a[m].at) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** Test and benchmark support for the rules layer (not used at run time): stored entities, change events, an engine on a FakeClock. */
import type { ChangeEvent } from '../bus/change-bus.ts';
import { FakeClock } from '../common/clock.ts';
import type { AttrInstance, StoredEntity } from '../ngsi-ld/model/types.ts';
import { brokerGeoEngine, brokerQEngine, coreExpandTerm } from './adapters.ts';
import { EngineDriver } from './domain/driver.ts';
import { RuleEngine, type EngineOutput } from './domain/engine.ts';
import type { QEngine } from './domain/engines.ts';
import type { ActionPlan, AlarmTransition, Rule } from './domain/types.ts';
import { validateRule, type ValidationContext } from './domain/validate.ts';

export const X = (term: string) => coreExpandTerm(term);

export function ctx(extra: Partial<ValidationContext> = {}, q: QEngine = brokerQEngine): ValidationContext {
  return { q, geo: brokerGeoEngine, expandTerm: coreExpandTerm, ...extra };
}

export function rule(input: Record<string, unknown>, q: QEngine = brokerQEngine): Rule {
  return validateRule({ id: 'r1', name: 'test rule', ...input }, ctx({}, q));
}

/** attrs given as term -> value (number/string/boolean/geometry) or an AttrInstance */
export function entity(id: string, type: string, attrs: Record<string, unknown>, at: string): StoredEntity {
  const out: Record<string, AttrInstance[]> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (v && typeof v === 'object' && 'type' in (v as object) && ['Property', 'GeoProperty', 'Relationship'].includes((v as { type: string }).type)) {
      out[X(k)] = [{ ...(v as AttrInstance), modifiedAt: at }];
    } else if (k === 'location') out[X(k)] = [{ type: 'GeoProperty', value: v, modifiedAt: at }];
    else out[X(k)] = [{ type: 'Property', value: v, modifiedAt: at }];
  }
  return { id, type: [X(type)], createdAt: at, modifiedAt: at, attrs: out };
}

export class Harness {
  engine: RuleEngine;
  driver: EngineDriver;
  transitions: AlarmTransition[] = [];
  plans: ActionPlan[] = [];
  states = new Map<string, unknown>();
  private last = new Map<string, StoredEntity>();

  constructor(rules: Rule[], q: QEngine = brokerQEngine, readonly clock = new FakeClock()) {
    this.engine = new RuleEngine({ q, geo: brokerGeoEngine, expandTerm: coreExpandTerm });
    this.driver = new EngineDriver(this.engine, this.clock, (o) => this.collect(o));
    for (const r of rules) this.engine.setRule(r, this.clock.now());
    this.driver.flush();
  }

  collect(o: EngineOutput) {
    this.transitions.push(...o.transitions);
    this.plans.push(...o.plans);
    for (const [k, s] of o.states) {
      if (s) this.states.set(k, structuredClone(s));
      else this.states.delete(k);
    }
  }

  /** write an entity (update if it exists) with attrs; returns the event */
  write(id: string, type: string, attrs: Record<string, unknown>, opts: { observedAt?: string } = {}): ChangeEvent {
    const at = new Date(this.clock.now()).toISOString();
    const before = this.last.get(id);
    const merged: Record<string, unknown> = {};
    if (before) for (const [k, v] of Object.entries(before.attrs)) merged[k] = v[0];
    const after = entity(id, type, {}, at);
    after.attrs = { ...(before?.attrs ?? {}) };
    const changed: string[] = [];
    for (const [k, v] of Object.entries(attrs)) {
      const e = entity(id, type, { [k]: v }, at);
      const inst = e.attrs[X(k)][0];
      if (opts.observedAt) inst.observedAt = opts.observedAt;
      if (JSON.stringify(before?.attrs[X(k)]?.[0]?.value) !== JSON.stringify(inst.value)) changed.push(X(k));
      after.attrs[X(k)] = [inst];
    }
    if (before) after.createdAt = before.createdAt;
    this.last.set(id, after);
    const ev: ChangeEvent = {
      tenant: '', entityId: id, types: after.type, kind: before ? 'update' : 'create',
      before, after, changedAttrs: before ? changed : Object.keys(after.attrs), at,
    };
    this.driver.process([ev]);
    return ev;
  }

  remove(id: string) {
    const before = this.last.get(id)!;
    this.last.delete(id);
    this.driver.process([{
      tenant: '', entityId: id, types: before.type, kind: 'delete', before, changedAttrs: [],
      at: new Date(this.clock.now()).toISOString(),
    }]);
  }

  advance(ms: number) {
    this.clock.advance(ms);
  }

  events(): string[] {
    return this.transitions.filter((t) => t.event !== 'update').map((t) => `${t.event}:${t.alarm.entityId}`);
  }

  alarms() {
    return this.engine.alarms.list();
  }
}

export const MIN = 60_000;

/**
 * Rule validation: turns what an operator sends (JSON) into a normalised `Rule`, or throws a
 * ProblemError (400 BadRequestData) listing every problem with the path of the offending field.
 */
import { ProblemError } from '../../common/problem.ts';
import { formatDuration, parseDuration } from './duration.ts';
import type { GeoEngine, QEngine } from './engines.ts';
import { validatePolygon } from './geometry.ts';
import {
  CATEGORIES, SEVERITIES, TRIGGER_KINDS,
  type Action, type ActionEvent, type AlarmSpec, type Rule, type Selector, type Trigger,
} from './types.ts';

export const RULE_ID_PREFIX = 'urn:ngsi-ld:Rule:';
/** longest hold / absence / window accepted */
export const MAX_DURATION_MS = 31 * 86_400_000;
const ACTION_EVENTS: ActionEvent[] = ['raise', 'reopen', 'acknowledge', 'clear'];
/** attributes every entity may have, never "unknown" */
const ALWAYS_KNOWN = new Set(['id', 'type', 'location', 'observationSpace', 'operationSpace', 'name', 'description',
  'createdAt', 'modifiedAt', 'observedAt', 'scope']);

export interface ValidationContext {
  q: QEngine;
  geo: GeoEngine;
  expandTerm: (term: string) => string;
  /** expanded attribute names seen on entities of an (expanded) type; undefined = unknown type, no check */
  knownAttributes?: (typeIri: string) => Set<string> | undefined;
  defaultTenant?: string;
  /** id for a rule sent without one */
  newId?: () => string;
}

export class RuleErrors {
  list: string[] = [];
  add(path: string, msg: string) {
    this.list.push(`${path}: ${msg}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function validateRule(input: unknown, ctx: ValidationContext): Rule {
  const errs = new RuleErrors();
  if (!isObj(input)) throw new ProblemError('BadRequestData', 'a rule must be a JSON object');
  const known = new Set(['id', 'type', 'tenant', 'name', 'description', 'enabled', 'select', 'trigger', 'alarm',
    'actions', 'createdAt', 'modifiedAt', '@context']);
  for (const k of Object.keys(input)) if (!known.has(k)) errs.add(k, `unknown member (expected one of ${[...known].join(', ')})`);

  let id = input.id;
  if (id === undefined) id = ctx.newId?.();
  if (typeof id === 'string' && id.startsWith(RULE_ID_PREFIX)) id = id.slice(RULE_ID_PREFIX.length);
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id))
    errs.add('id', `must be 1-64 letters, digits, "_" or "-" (optionally prefixed by ${RULE_ID_PREFIX})`);
  const name = input.name;
  if (typeof name !== 'string' || name.trim() === '') errs.add('name', 'required, a non-empty string');
  if (input.description !== undefined && typeof input.description !== 'string') errs.add('description', 'must be a string');
  if (input.enabled !== undefined && typeof input.enabled !== 'boolean') errs.add('enabled', 'must be true or false');
  const tenant = input.tenant ?? ctx.defaultTenant ?? '';
  if (typeof tenant !== 'string') errs.add('tenant', 'must be a string');

  const select = validateSelector(input.select, ctx, errs);
  const trigger = validateTrigger(input.trigger, ctx, errs);
  const alarm = validateAlarm(input.alarm, errs);
  const actions = validateActions(input.actions, errs);

  // unknown attributes: every attribute the rule reads must exist on entities of the selected type
  if (select?.type && ctx.knownAttributes) {
    const typeIri = ctx.expandTerm(select.type);
    const attrs = ctx.knownAttributes(typeIri);
    if (attrs) {
      const used: [string, string][] = [];
      if (select.q) for (const a of safeAttrs(ctx, select.q)) used.push(['select.q', a]);
      if (trigger) {
        if (trigger.kind === 'condition') for (const a of safeAttrs(ctx, trigger.q)) used.push(['trigger.q', a]);
        if ('attribute' in trigger && trigger.attribute) used.push(['trigger.attribute', trigger.attribute]);
        if (trigger.kind === 'geofence') used.push(['trigger.geoproperty', trigger.geoproperty]);
      }
      for (const [path, term] of used) {
        if (ALWAYS_KNOWN.has(term)) continue;
        if (!attrs.has(ctx.expandTerm(term)))
          errs.add(path, `unknown attribute "${term}" for type ${select.type} (known: ${[...attrs].map(shortName).sort().join(', ') || 'none'})`);
      }
    }
  }

  if (errs.list.length) {
    throw new ProblemError('BadRequestData', `invalid rule: ${errs.list.join('; ')}`, { errors: errs.list });
  }
  return {
    id: id as string,
    tenant: tenant as string,
    name: (name as string).trim(),
    ...(typeof input.description === 'string' ? { description: input.description } : {}),
    enabled: input.enabled !== false,
    select: select!,
    trigger: trigger!,
    alarm: alarm!,
    actions: actions!,
  };
}

function shortName(iri: string): string {
  const m = /[/#]([^/#]+)$/.exec(iri);
  return m ? m[1] : iri;
}

function safeAttrs(ctx: ValidationContext, q: string): string[] {
  try {
    return ctx.q.compile(q, ctx.expandTerm).attributes ?? [];
  } catch {
    return [];
  }
}

function checkQ(ctx: ValidationContext, path: string, q: unknown, errs: RuleErrors): string | undefined {
  if (typeof q !== 'string' || q.trim() === '') {
    errs.add(path, 'must be a non-empty NGSI-LD q expression, e.g. "pm25>50"');
    return undefined;
  }
  try {
    ctx.q.compile(q, ctx.expandTerm);
  } catch (e) {
    errs.add(path, (e as Error).message);
  }
  return q;
}

function duration(v: unknown, path: string, errs: RuleErrors, opts: { min?: number; optional?: boolean } = {}): number | undefined {
  if (v === undefined) {
    if (!opts.optional) errs.add(path, 'required duration (e.g. "PT30M" or "30m")');
    return undefined;
  }
  const d = parseDuration(v);
  if ('error' in d) {
    errs.add(path, d.error);
    return undefined;
  }
  if (d.ms < (opts.min ?? 0)) {
    errs.add(path, opts.min ? `must be at least ${opts.min} ms` : `must not be negative`);
    return undefined;
  }
  if (d.ms > MAX_DURATION_MS) {
    errs.add(path, `impossible duration (${v}): at most 31 days`);
    return undefined;
  }
  return d.ms;
}

function validateSelector(v: unknown, ctx: ValidationContext, errs: RuleErrors): Selector | undefined {
  if (!isObj(v)) {
    errs.add('select', 'required: { type?, idPattern?, ids?, geoQ?, q? } with at least type, idPattern or ids');
    return undefined;
  }
  const out: Selector = {};
  for (const k of Object.keys(v)) if (!['type', 'idPattern', 'ids', 'geoQ', 'q'].includes(k)) errs.add(`select.${k}`, 'unknown member');
  if (v.type !== undefined) {
    if (typeof v.type !== 'string' || !/^[^\s,;()|]+$/.test(v.type)) errs.add('select.type', 'must be one entity type name');
    else out.type = v.type;
  }
  if (v.idPattern !== undefined) {
    if (typeof v.idPattern !== 'string') errs.add('select.idPattern', 'must be a regular expression string');
    else {
      try {
        new RegExp(v.idPattern);
        out.idPattern = v.idPattern;
      } catch (e) {
        errs.add('select.idPattern', `bad regular expression: ${(e as Error).message}`);
      }
    }
  }
  if (v.ids !== undefined) {
    if (!Array.isArray(v.ids) || v.ids.length === 0 || !v.ids.every((x) => typeof x === 'string' && x.includes(':')))
      errs.add('select.ids', 'must be a non-empty array of entity ids (URIs)');
    else out.ids = v.ids as string[];
  }
  if (!out.type && !out.idPattern && !out.ids && v.type === undefined && v.idPattern === undefined && v.ids === undefined)
    errs.add('select', 'needs at least one of type, idPattern, ids');
  if (v.geoQ !== undefined) {
    if (!isObj(v.geoQ) || typeof v.geoQ.georel !== 'string' || typeof v.geoQ.geometry !== 'string' || v.geoQ.coordinates === undefined)
      errs.add('select.geoQ', 'must be { georel, geometry, coordinates, geoproperty? }');
    else {
      const g = v.geoQ as unknown as Selector['geoQ'] & object;
      try {
        ctx.geo.compile(g, ctx.expandTerm);
        out.geoQ = { georel: g.georel, geometry: g.geometry, coordinates: g.coordinates, ...(g.geoproperty ? { geoproperty: g.geoproperty } : {}) };
      } catch (e) {
        errs.add('select.geoQ', (e as Error).message);
      }
    }
  }
  if (v.q !== undefined) out.q = checkQ(ctx, 'select.q', v.q, errs);
  return out;
}

function num(v: unknown, path: string, errs: RuleErrors, opts: { min?: number; max?: number; int?: boolean; gt?: number } = {}): number | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    errs.add(path, 'must be a number');
    return undefined;
  }
  if (opts.int && !Number.isInteger(v)) errs.add(path, 'must be an integer');
  else if (opts.gt !== undefined && !(v > opts.gt)) errs.add(path, `must be greater than ${opts.gt}`);
  else if (opts.min !== undefined && v < opts.min) errs.add(path, `must be at least ${opts.min}`);
  else if (opts.max !== undefined && v > opts.max) errs.add(path, `must be at most ${opts.max}`);
  else return v;
  return undefined;
}

function attrName(v: unknown, path: string, errs: RuleErrors): string | undefined {
  if (typeof v !== 'string' || !/^[A-Za-z_][^\s;|()<>=!~"]*$/.test(v)) {
    errs.add(path, 'must be an attribute name');
    return undefined;
  }
  return v;
}

function validateTrigger(v: unknown, ctx: ValidationContext, errs: RuleErrors): Trigger | undefined {
  if (!isObj(v) || typeof v.kind !== 'string') {
    errs.add('trigger', `required: { kind: ${TRIGGER_KINDS.join(' | ')}, ... }`);
    return undefined;
  }
  const allow = (names: string[]) => {
    for (const k of Object.keys(v)) if (k !== 'kind' && !names.includes(k)) errs.add(`trigger.${k}`, `unknown member for kind "${v.kind}" (expected ${names.join(', ')})`);
  };
  const n = errs.list.length;
  switch (v.kind) {
    case 'condition': {
      allow(['q', 'for']);
      const q = checkQ(ctx, 'trigger.q', v.q, errs);
      const forMs = duration(v.for, 'trigger.for', errs, { optional: true });
      if (errs.list.length > n) return undefined;
      return { kind: 'condition', q: q!, ...(forMs ? { forMs } : {}) };
    }
    case 'rateOfChange': {
      allow(['attribute', 'per', 'window', 'riseAbove', 'fallAbove', 'for']);
      const attribute = attrName(v.attribute, 'trigger.attribute', errs);
      const perMs = v.per === undefined ? 3_600_000 : duration(v.per, 'trigger.per', errs, { min: 1 });
      const windowMs = v.window === undefined ? perMs : duration(v.window, 'trigger.window', errs, { min: 1 });
      const riseAbove = v.riseAbove === undefined ? undefined : num(v.riseAbove, 'trigger.riseAbove', errs, { min: 0 });
      const fallAbove = v.fallAbove === undefined ? undefined : num(v.fallAbove, 'trigger.fallAbove', errs, { min: 0 });
      if (v.riseAbove === undefined && v.fallAbove === undefined) errs.add('trigger', 'rateOfChange needs riseAbove and/or fallAbove (units per "per")');
      const forMs = duration(v.for, 'trigger.for', errs, { optional: true });
      if (errs.list.length > n) return undefined;
      return {
        kind: 'rateOfChange', attribute: attribute!, perMs: perMs!, windowMs: windowMs!,
        ...(riseAbove !== undefined ? { riseAbove } : {}), ...(fallAbove !== undefined ? { fallAbove } : {}),
        ...(forMs ? { forMs } : {}),
      };
    }
    case 'absence': {
      allow(['after', 'attribute']);
      const afterMs = duration(v.after, 'trigger.after', errs, { min: 1000 });
      const attribute = v.attribute === undefined ? undefined : attrName(v.attribute, 'trigger.attribute', errs);
      if (errs.list.length > n) return undefined;
      return { kind: 'absence', afterMs: afterMs!, ...(attribute ? { attribute } : {}) };
    }
    case 'geofence': {
      allow(['event', 'geometry', 'geoproperty']);
      const event = v.event;
      if (!['enter', 'leave', 'inside', 'outside'].includes(event as string)) errs.add('trigger.event', 'must be enter, leave, inside or outside');
      let geometry: { type: 'Polygon' | 'MultiPolygon'; coordinates: unknown } | undefined;
      if (!isObj(v.geometry) || typeof v.geometry.type !== 'string') errs.add('trigger.geometry', 'required: a GeoJSON Polygon or MultiPolygon');
      else {
        const err = validatePolygon(v.geometry as { type: string; coordinates: unknown });
        if (err) errs.add('trigger.geometry', err);
        else geometry = { type: v.geometry.type as 'Polygon' | 'MultiPolygon', coordinates: v.geometry.coordinates };
      }
      const geoproperty = v.geoproperty === undefined ? 'location' : attrName(v.geoproperty, 'trigger.geoproperty', errs);
      if (errs.list.length > n) return undefined;
      return { kind: 'geofence', event: event as 'enter', geometry: geometry!, geoproperty: geoproperty! };
    }
    case 'anomaly': {
      allow(['attribute', 'method', 'window', 'sensitivity', 'minSamples', 'alpha', 'for']);
      const attribute = attrName(v.attribute, 'trigger.attribute', errs);
      const method = v.method ?? 'zscore';
      if (method !== 'zscore' && method !== 'ewma') errs.add('trigger.method', 'must be zscore (rolling mean / standard deviation) or ewma');
      const window = v.window === undefined ? 30 : num(v.window, 'trigger.window', errs, { int: true, min: 3, max: 10_000 });
      const sensitivity = v.sensitivity === undefined ? 3 : num(v.sensitivity, 'trigger.sensitivity', errs, { gt: 0, max: 100 });
      const minSamples = v.minSamples === undefined ? Math.min(10, window ?? 10) : num(v.minSamples, 'trigger.minSamples', errs, { int: true, min: 2 });
      if (window !== undefined && minSamples !== undefined && method === 'zscore' && minSamples > window)
        errs.add('trigger.minSamples', `cannot exceed window (${window})`);
      const alpha = v.alpha === undefined ? 0.3 : num(v.alpha, 'trigger.alpha', errs, { gt: 0, max: 1 });
      const forMs = duration(v.for, 'trigger.for', errs, { optional: true });
      if (errs.list.length > n) return undefined;
      return {
        kind: 'anomaly', attribute: attribute!, method: method as 'zscore', window: window!, sensitivity: sensitivity!,
        minSamples: minSamples!, alpha: alpha!, ...(forMs ? { forMs } : {}),
      };
    }
    default:
      errs.add('trigger.kind', `unknown kind "${v.kind}" (expected ${TRIGGER_KINDS.join(', ')})`);
      return undefined;
  }
}

function validateAlarm(v: unknown, errs: RuleErrors): AlarmSpec | undefined {
  const a = v === undefined ? {} : v;
  if (!isObj(a)) {
    errs.add('alarm', 'must be an object { severity, category, subCategory?, description?, autoClear?, clearAfter?, reopenWithin? }');
    return undefined;
  }
  for (const k of Object.keys(a))
    if (!['severity', 'category', 'subCategory', 'description', 'autoClear', 'clearAfter', 'reopenWithin'].includes(k)) errs.add(`alarm.${k}`, 'unknown member');
  const n = errs.list.length;
  const severity = a.severity ?? 'medium';
  if (!SEVERITIES.includes(severity as never)) errs.add('alarm.severity', `must be one of ${SEVERITIES.join(', ')}`);
  const category = a.category ?? 'environment';
  if (!CATEGORIES.includes(category as never)) errs.add('alarm.category', `must be one of ${CATEGORIES.join(', ')}`);
  if (a.subCategory !== undefined && typeof a.subCategory !== 'string') errs.add('alarm.subCategory', 'must be a string');
  if (a.description !== undefined && typeof a.description !== 'string') errs.add('alarm.description', 'must be a string');
  if (a.autoClear !== undefined && typeof a.autoClear !== 'boolean') errs.add('alarm.autoClear', 'must be true or false');
  const clearAfterMs = duration(a.clearAfter, 'alarm.clearAfter', errs, { optional: true }) ?? 0;
  const reopenWithinMs = a.reopenWithin === undefined ? 15 * 60_000 : duration(a.reopenWithin, 'alarm.reopenWithin', errs, { optional: true }) ?? 0;
  if (errs.list.length > n) return undefined;
  return {
    severity: severity as AlarmSpec['severity'],
    category: category as AlarmSpec['category'],
    ...(typeof a.subCategory === 'string' ? { subCategory: a.subCategory } : {}),
    ...(typeof a.description === 'string' ? { description: a.description } : {}),
    autoClear: a.autoClear !== false,
    clearAfterMs,
    reopenWithinMs,
  };
}

function validateActions(v: unknown, errs: RuleErrors): Action[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    errs.add('actions', 'must be an array');
    return undefined;
  }
  const out: Action[] = [];
  v.forEach((a, i) => {
    const p = `actions[${i}]`;
    if (!isObj(a)) return errs.add(p, 'must be an object');
    let on: ActionEvent[] = ['raise', 'clear'];
    if (a.on !== undefined) {
      if (!Array.isArray(a.on) || a.on.length === 0 || !a.on.every((e) => ACTION_EVENTS.includes(e as ActionEvent)))
        errs.add(`${p}.on`, `must be a non-empty array of ${ACTION_EVENTS.join(', ')}`);
      else on = a.on as ActionEvent[];
    }
    switch (a.type) {
      case 'webhook': {
        let ok = typeof a.url === 'string';
        if (ok) {
          try {
            const u = new URL(a.url as string);
            ok = u.protocol === 'http:' || u.protocol === 'https:';
          } catch {
            ok = false;
          }
        }
        if (!ok) errs.add(`${p}.url`, 'must be an http(s) URL');
        if (a.headers !== undefined && (!isObj(a.headers) || !Object.values(a.headers).every((h) => typeof h === 'string')))
          errs.add(`${p}.headers`, 'must be an object of strings');
        out.push({ type: 'webhook', url: a.url as string, ...(a.headers ? { headers: a.headers as Record<string, string> } : {}), on });
        break;
      }
      case 'mqtt': {
        if (typeof a.topic !== 'string' || a.topic === '' || /[#+]/.test(a.topic)) errs.add(`${p}.topic`, 'must be a topic name without wildcards');
        if (a.url !== undefined && (typeof a.url !== 'string' || !/^(mqtts?|wss?|tcp):\/\//.test(a.url))) errs.add(`${p}.url`, 'must be an mqtt://, mqtts://, ws:// or wss:// URL');
        if (a.qos !== undefined && ![0, 1, 2].includes(a.qos as number)) errs.add(`${p}.qos`, 'must be 0, 1 or 2');
        out.push({ type: 'mqtt', topic: a.topic as string, ...(a.url ? { url: a.url as string } : {}), ...(a.qos !== undefined ? { qos: a.qos as 0 } : {}), on });
        break;
      }
      case 'email': {
        const to = typeof a.to === 'string' ? [a.to] : a.to;
        if (!Array.isArray(to) || to.length === 0 || !to.every((x) => typeof x === 'string' && /^[^@\s]+@[^@\s]+$/.test(x)))
          errs.add(`${p}.to`, 'must be an e-mail address or a non-empty array of them');
        if (a.subject !== undefined && typeof a.subject !== 'string') errs.add(`${p}.subject`, 'must be a string');
        out.push({ type: 'email', to: to as string[], ...(typeof a.subject === 'string' ? { subject: a.subject } : {}), on });
        break;
      }
      case 'serviceRequest': {
        if (typeof a.serviceCode !== 'string' || a.serviceCode === '') errs.add(`${p}.serviceCode`, 'required string (Open311 service_code)');
        if (a.serviceName !== undefined && typeof a.serviceName !== 'string') errs.add(`${p}.serviceName`, 'must be a string');
        if (a.agency !== undefined && typeof a.agency !== 'string') errs.add(`${p}.agency`, 'must be a string');
        out.push({
          type: 'serviceRequest', serviceCode: a.serviceCode as string,
          ...(typeof a.serviceName === 'string' ? { serviceName: a.serviceName } : {}),
          ...(typeof a.agency === 'string' ? { agency: a.agency } : {}),
          on: a.on === undefined ? ['raise', 'clear'] : on,
        });
        break;
      }
      default:
        errs.add(`${p}.type`, 'must be webhook, mqtt, email or serviceRequest');
    }
  });
  return out;
}

/** The rule as an operator writes it (durations back as "10m" etc.): validateRule(ruleToInput(r)) round-trips. */
export function ruleToInput(rule: Rule): Record<string, unknown> {
  const d = (ms: number | undefined) => (ms === undefined ? undefined : formatDuration(ms));
  const t = rule.trigger;
  let trigger: Record<string, unknown>;
  switch (t.kind) {
    case 'condition':
      trigger = { kind: t.kind, q: t.q, for: d(t.forMs) };
      break;
    case 'rateOfChange':
      trigger = { kind: t.kind, attribute: t.attribute, per: d(t.perMs), window: d(t.windowMs), riseAbove: t.riseAbove, fallAbove: t.fallAbove, for: d(t.forMs) };
      break;
    case 'absence':
      trigger = { kind: t.kind, after: d(t.afterMs), attribute: t.attribute };
      break;
    case 'geofence':
      trigger = { kind: t.kind, event: t.event, geometry: t.geometry, geoproperty: t.geoproperty };
      break;
    case 'anomaly':
      trigger = { kind: t.kind, attribute: t.attribute, method: t.method, window: t.window, sensitivity: t.sensitivity, minSamples: t.minSamples, alpha: t.alpha, for: d(t.forMs) };
      break;
  }
  for (const k of Object.keys(trigger)) if (trigger[k] === undefined) delete trigger[k];
  const a = rule.alarm;
  return {
    id: rule.id,
    tenant: rule.tenant,
    name: rule.name,
    ...(rule.description ? { description: rule.description } : {}),
    enabled: rule.enabled,
    select: rule.select,
    trigger,
    alarm: {
      severity: a.severity, category: a.category, ...(a.subCategory ? { subCategory: a.subCategory } : {}),
      ...(a.description ? { description: a.description } : {}), autoClear: a.autoClear,
      clearAfter: formatDuration(a.clearAfterMs), reopenWithin: formatDuration(a.reopenWithinMs),
    },
    actions: rule.actions,
    ...(rule.createdAt ? { createdAt: rule.createdAt } : {}),
    ...(rule.modifiedAt ? { modifiedAt: rule.modifiedAt } : {}),
  };
}

/**
 * Policies are data (pure module, no I/O): roles with grants (operation x area x information class x
 * entity type), per-type defaults (information class, personal attributes, data-subject attribute),
 * per-tenant overrides. Evaluated on every request, notification and live-feed event.
 */
import type { AttrInstance, StoredEntity } from '../ngsi-ld/model/types.ts';
import { AREAS, INFO_CLASSES, OPERATIONS, type Area, type AuthorizeRequest, type Decision, type InfoClass, type Operation, type Principal, type RoleBinding } from './api.ts';

export interface Grant {
  ops: (Operation | '*')[];
  /** absent or '*': every area */
  areas?: (Area | '*')[];
  /** absent or '*': every class */
  classes?: (InfoClass | '*')[];
  /** entity type short names or IRIs; absent or '*': every type */
  types?: string[];
}

export interface RoleDef {
  description?: string;
  grants: Grant[];
  /** cleared to see personal attributes */
  personalData?: boolean;
}

export interface TypePolicy {
  /** default information class of entities of this type without an infoClass Property */
  infoClass?: InfoClass;
  /** personal attributes (short names or IRIs) */
  personal?: string[];
  /** where the data subject's identifier is: '@id' (the entity id, default) or an attribute name */
  subject?: string;
}

export interface PolicyDoc {
  version: 1;
  /** anonymous callers get the `public` role (read of open data) */
  publicRead: boolean;
  roles: Record<string, RoleDef>;
  types: Record<string, TypePolicy>;
  tenants?: Record<string, { publicRead?: boolean; types?: Record<string, TypePolicy> }>;
}

const ALL_CLASSES: InfoClass[] = ['open', 'restricted', 'security'];
const OPS_DATA: Area[] = ['entities', 'temporal', 'subscriptions', 'live'];

/** The policy of a fresh install (replace with PUT /auth/v1/policies). */
export function defaultPolicy(publicRead = false): PolicyDoc {
  return {
    version: 1,
    publicRead,
    roles: {
      admin: { description: 'platform administration; everything', personalData: true, grants: [{ ops: ['*'] }] },
      'security-operator': {
        description: 'command and control centre: security-sensitive, operational and open data',
        personalData: true,
        grants: [
          { ops: ['read', 'write', 'subscribe'], areas: [...OPS_DATA, 'rules'], classes: ALL_CLASSES },
          { ops: ['read'], areas: ['kpi', 'iot'] },
        ],
      },
      operator: {
        description: 'city operations centre: operational and open data, rules and alarms',
        grants: [
          { ops: ['read', 'write', 'subscribe'], areas: [...OPS_DATA, 'rules'], classes: ['open', 'restricted'] },
          { ops: ['read'], areas: ['kpi', 'iot'] },
        ],
      },
      analyst: {
        description: 'reads operational and open data, manages KPIs',
        grants: [
          { ops: ['read', 'subscribe'], areas: OPS_DATA, classes: ['open', 'restricted'] },
          { ops: ['read', 'write'], areas: ['kpi'] },
          { ops: ['read'], areas: ['rules'] },
        ],
      },
      'data-publisher': {
        description: 'publishes data and provisions devices (open and operational classes)',
        grants: [
          { ops: ['read', 'write'], areas: ['entities', 'temporal'], classes: ['open', 'restricted'] },
          { ops: ['read', 'write'], areas: ['iot'] },
        ],
      },
      'service-developer': {
        description: 'builds services on open data: read and subscribe',
        grants: [
          { ops: ['read', 'subscribe'], areas: OPS_DATA, classes: ['open'] },
          { ops: ['read'], areas: ['kpi'] },
        ],
      },
      public: {
        description: 'anyone (with publicRead): open data, KPIs',
        grants: [
          { ops: ['read'], areas: ['entities', 'temporal', 'live'], classes: ['open'] },
          { ops: ['read'], areas: ['kpi'] },
        ],
      },
    },
    types: {
      // security-sensitive by default: handled by the command and control centre
      Camera: { infoClass: 'security' },
      SecurityIncident: { infoClass: 'security' },
      EmergencyIncident: { infoClass: 'security' },
      PoliceUnit: { infoClass: 'security' },
      // personal data
      Person: { infoClass: 'restricted', personal: ['name', 'givenName', 'familyName', 'email', 'telephone', 'address', 'location'], subject: '@id' },
      ServiceRequest: { personal: ['contactPoint', 'reporter', 'email', 'telephone'], subject: 'reporter' },
    },
  };
}

/** last segment of an IRI ('https://x/y#Camera' -> 'Camera', 'ex:Camera' -> 'Camera') */
export function shortName(t: string): string {
  const m = /[^/#:]+$/.exec(t);
  return m ? m[0] : t;
}

function nameMatches(list: string[] | undefined, name: string): boolean {
  if (!list || list.includes('*')) return true;
  const s = shortName(name);
  return list.some((x) => x === name || x === s || shortName(x) === s);
}

/** Throws an Error with a readable message when the document is not a valid policy. */
export function validatePolicy(doc: unknown): PolicyDoc {
  const fail = (m: string): never => {
    throw new Error(m);
  };
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail('the policy must be a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.version !== 1) fail('"version" must be 1');
  if (typeof d.publicRead !== 'boolean') fail('"publicRead" must be true or false');
  if (!d.roles || typeof d.roles !== 'object') fail('"roles" must be an object');
  const roles = d.roles as Record<string, unknown>;
  if (!roles.admin) fail('the "admin" role cannot be removed');
  for (const [name, r] of Object.entries(roles)) {
    if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) fail(`role name "${name}" must be lower-case letters, digits, - or _`);
    const rd = r as Record<string, unknown>;
    if (!rd || !Array.isArray(rd.grants)) fail(`role "${name}" needs "grants": []`);
    if (rd.personalData !== undefined && typeof rd.personalData !== 'boolean') fail(`role "${name}": "personalData" must be a boolean`);
    for (const g of rd.grants as unknown[]) {
      const gr = g as Record<string, unknown>;
      if (!gr || !Array.isArray(gr.ops) || gr.ops.length === 0) fail(`role "${name}": every grant needs "ops"`);
      for (const o of gr.ops as unknown[]) if (o !== '*' && !OPERATIONS.includes(o as Operation)) fail(`role "${name}": unknown operation "${String(o)}"`);
      if (gr.areas !== undefined) {
        if (!Array.isArray(gr.areas)) fail(`role "${name}": "areas" must be a list`);
        for (const a of gr.areas as unknown[]) if (a !== '*' && !AREAS.includes(a as Area)) fail(`role "${name}": unknown area "${String(a)}"`);
      }
      if (gr.classes !== undefined) {
        if (!Array.isArray(gr.classes)) fail(`role "${name}": "classes" must be a list`);
        for (const c of gr.classes as unknown[]) if (c !== '*' && !INFO_CLASSES.includes(c as InfoClass)) fail(`role "${name}": unknown information class "${String(c)}"`);
      }
      if (gr.types !== undefined && (!Array.isArray(gr.types) || gr.types.some((t) => typeof t !== 'string'))) fail(`role "${name}": "types" must be a list of names`);
    }
  }
  const checkTypes = (types: unknown, where: string) => {
    if (types === undefined) return;
    if (!types || typeof types !== 'object') fail(`${where}"types" must be an object`);
    for (const [t, tp] of Object.entries(types as Record<string, unknown>)) {
      const p = tp as Record<string, unknown>;
      if (!p || typeof p !== 'object') fail(`${where}type "${t}" must be an object`);
      if (p.infoClass !== undefined && !INFO_CLASSES.includes(p.infoClass as InfoClass)) fail(`${where}type "${t}": infoClass must be open, restricted or security`);
      if (p.personal !== undefined && (!Array.isArray(p.personal) || p.personal.some((x) => typeof x !== 'string'))) fail(`${where}type "${t}": "personal" must be a list of attribute names`);
      if (p.subject !== undefined && typeof p.subject !== 'string') fail(`${where}type "${t}": "subject" must be an attribute name or "@id"`);
    }
  };
  checkTypes(d.types ?? {}, '');
  if (d.tenants !== undefined) {
    if (!d.tenants || typeof d.tenants !== 'object') fail('"tenants" must be an object');
    for (const [tn, tv] of Object.entries(d.tenants as Record<string, unknown>)) {
      const t = tv as Record<string, unknown>;
      if (t.publicRead !== undefined && typeof t.publicRead !== 'boolean') fail(`tenant "${tn}": "publicRead" must be a boolean`);
      checkTypes(t.types, `tenant "${tn}": `);
    }
  }
  return { version: 1, publicRead: d.publicRead as boolean, roles: roles as Record<string, RoleDef>, types: (d.types ?? {}) as Record<string, TypePolicy>, tenants: d.tenants as PolicyDoc['tenants'] };
}

/** Compiled policy: fast lookups for the hot paths. */
export class Policy {
  constructor(readonly doc: PolicyDoc) {}

  publicRead(tenant: string): boolean {
    return this.doc.tenants?.[tenant]?.publicRead ?? this.doc.publicRead;
  }

  /** bindings of a principal that apply to this tenant */
  private rolesOn(roles: RoleBinding[], tenant: string): RoleDef[] {
    const out: RoleDef[] = [];
    for (const b of roles) if (b.tenant === '*' || b.tenant === tenant) {
      const r = this.doc.roles[b.role];
      if (r) out.push(r);
    }
    return out;
  }

  authorize(principal: Principal, r: AuthorizeRequest): Decision {
    if (principal.kind === 'development') return { allowed: true };
    if (principal.mustChangePassword) return { allowed: false, reason: 'the password must be changed first' };
    if (principal.ops && !principal.ops.includes(r.operation)) return { allowed: false, reason: `this API key is limited to ${principal.ops.join(', ')}` };
    const types = r.entityType === undefined ? undefined : Array.isArray(r.entityType) ? r.entityType : [r.entityType];
    for (const role of this.rolesOn(principal.roles, r.tenant)) {
      for (const g of role.grants) {
        if (!g.ops.includes('*') && !g.ops.includes(r.operation)) continue;
        if (r.area && g.areas && !g.areas.includes('*') && !g.areas.includes(r.area)) continue;
        if (r.infoClass && g.classes && !g.classes.includes('*') && !g.classes.includes(r.infoClass)) continue;
        if (types && g.types && !g.types.includes('*') && !types.some((t) => nameMatches(g.types, t))) continue;
        return { allowed: true };
      }
    }
    const what = [r.operation, r.area, r.infoClass && `class ${r.infoClass}`, types && `type ${types.map(shortName).join(',')}`].filter(Boolean).join(' ');
    return { allowed: false, reason: `not allowed: ${what} on tenant "${r.tenant}"` };
  }

  personalClearance(principal: Principal, tenant: string): boolean {
    if (principal.kind === 'development') return true;
    return this.rolesOn(principal.roles, tenant).some((r) => r.personalData === true);
  }

  private typePolicies(tenant: string, types: string[]): TypePolicy[] {
    const out: TypePolicy[] = [];
    const over = this.doc.tenants?.[tenant]?.types;
    for (const t of types) {
      const s = shortName(t);
      const p = over?.[t] ?? over?.[s] ?? this.doc.types[t] ?? this.doc.types[s];
      if (p) out.push(p);
    }
    return out;
  }

  /** default class of a set of types: the most restrictive default, else open */
  typeClass(tenant: string, types: string[]): InfoClass {
    let best: InfoClass = 'open';
    for (const p of this.typePolicies(tenant, types)) if (p.infoClass && rank(p.infoClass) > rank(best)) best = p.infoClass;
    return best;
  }

  classOf(tenant: string, e: StoredEntity): InfoClass {
    const own = infoClassValue(e);
    if (own !== undefined) return own;
    return this.typeClass(tenant, e.type);
  }

  /** expanded names of the entity's personal attributes present in it */
  personalAttrs(tenant: string, e: StoredEntity): string[] {
    const pols = this.typePolicies(tenant, e.type).filter((p) => p.personal?.length);
    if (!pols.length) return [];
    const names = pols.flatMap((p) => p.personal!);
    return Object.keys(e.attrs).filter((iri) => nameMatches(names, iri));
  }

  /** data-subject identifiers of an entity (for "who read data about me") */
  subjectsOf(tenant: string, e: StoredEntity): string[] {
    const out = new Set<string>();
    for (const p of this.typePolicies(tenant, e.type)) {
      if (!p.personal?.length) continue;
      const s = p.subject ?? '@id';
      if (s === '@id' || s === 'id') {
        out.add(e.id);
        continue;
      }
      for (const [iri, insts] of Object.entries(e.attrs)) {
        if (!nameMatches([s], iri)) continue;
        for (const i of insts) {
          const v = i.type === 'Relationship' ? i.object : i.value;
          for (const x of Array.isArray(v) ? v : [v]) if (typeof x === 'string' || typeof x === 'number') out.add(String(x));
        }
      }
    }
    return [...out];
  }
}

export function rank(c: InfoClass): number {
  return c === 'open' ? 0 : c === 'restricted' ? 1 : 2;
}

/**
 * The entity's own infoClass Property, if any. An unknown value counts as 'security' (fail closed).
 */
export function infoClassValue(e: StoredEntity): InfoClass | undefined {
  for (const [iri, insts] of Object.entries(e.attrs)) {
    if (shortName(iri) !== 'infoClass') continue;
    const inst = (insts as AttrInstance[]).find((i) => i.datasetId === undefined) ?? insts[0];
    if (!inst) continue;
    const v = inst.type === 'VocabProperty' ? (Array.isArray(inst.vocab) ? inst.vocab[0] : inst.vocab) : inst.value;
    const s = typeof v === 'string' ? shortName(v) : undefined;
    return s && INFO_CLASSES.includes(s as InfoClass) ? (s as InfoClass) : 'security';
  }
  return undefined;
}

/** a copy of the entity without the given attributes (the original is not modified) */
export function withoutAttrs(e: StoredEntity, drop: string[]): StoredEntity {
  if (!drop.length) return e;
  const attrs = { ...e.attrs };
  for (const a of drop) delete attrs[a];
  return { ...e, attrs };
}

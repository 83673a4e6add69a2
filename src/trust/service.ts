/**
 * The trust service (p.services.get('auth')): identities, policy decisions, redaction of personal
 * data, audit. HTTP wiring is in http.ts; the interface other modules use is api.ts.
 */
import type { FastifyRequest } from 'fastify';
import type { Platform } from '../platform.ts';
import type { StoredEntity } from '../ngsi-ld/model/types.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { ProblemError } from '../common/problem.ts';
import type { Area, AuditInput, AuthService, AuthorizeRequest, Decision, InfoClass, Principal, PrincipalRef, QueryResultLike } from './api.ts';
import { Policy, defaultPolicy, shortName, validatePolicy, withoutAttrs, type PolicyDoc } from './policy.ts';
import { TrustStore, migrateTrust, type ApiKeyRow } from './store.ts';
import { AuditLog } from './audit.ts';
import { OidcVerifier, TokenError } from './oidc.ts';
import { API_KEY_RE, dummyHash, hashPassword, oneTimePassword, safeEqual, sha256, verifyPassword } from './secrets.ts';
import { MqttLimits } from './mqtt-guard.ts';
import type { TrustOptions } from './options.ts';

export const DEV_PRINCIPAL: Principal = Object.freeze({ kind: 'development', id: 'development', name: 'development (URBIS_AUTH=off)', roles: [{ role: 'admin', tenant: '*' }], via: 'none' }) as Principal;

/** per-request state set by the trust hook */
export interface RequestState {
  principal: Principal;
  tenant: string;
  area?: Area;
}

const PERSONAL_STREAM_WINDOW_MS = 60_000;

export class TrustService implements AuthService {
  readonly store: TrustStore;
  readonly auditLog: AuditLog;
  readonly mqtt: MqttLimits;
  policy: Policy;
  private oidc?: OidcVerifier;
  private requests = new WeakMap<FastifyRequest, RequestState>();
  private keyCache = new Map<string, { row: ApiKeyRow | undefined; at: number }>();
  private streamAudit = new Map<string, number>();
  /** NGSI-LD subscription owners: tenant NUL id -> principal (refreshed every minute) */
  private owners = new Map<string, { ref: PrincipalRef; principal: Principal | null; at: number; refreshing?: boolean }>();
  readonly cookieName: string;
  readonly cookieSecure: boolean;

  constructor(
    readonly p: Platform,
    readonly o: TrustOptions,
  ) {
    this.store = new TrustStore(p.db);
    this.auditLog = new AuditLog(p.db, p.clock);
    this.mqtt = new MqttLimits(p.clock, o.mqtt, p.config.auth);
    this.policy = new Policy(defaultPolicy(o.publicRead));
    if (o.oidc) this.oidc = new OidcVerifier(o.oidc, p.clock);
    this.cookieSecure = o.cookieSecure === 'auto' ? Boolean(o.tls) || p.config.baseUrl.startsWith('https:') : o.cookieSecure;
    this.cookieName = this.cookieSecure ? '__Host-urbis_session' : 'urbis_session';
  }

  get enabled(): boolean {
    return this.p.config.auth;
  }

  private now(): string {
    return new Date(this.p.clock.now()).toISOString();
  }

  async start(): Promise<void> {
    await migrateTrust(this.p.db);
    const doc = await this.store.getPolicy();
    if (doc) this.policy = new Policy(validatePolicy(doc));
    if (!this.enabled) {
      this.p.log.warn(
        '\n' +
          '******************************************************************************\n' +
          '*  URBIS_AUTH=off: AUTHENTICATION AND AUTHORIZATION ARE DISABLED.             *\n' +
          '*  Every API (NGSI-LD, provisioning, KPIs, rules, live feed) is open to anyone *\n' +
          '*  who can reach this server. Use only for local development and conformance.  *\n' +
          '******************************************************************************',
      );
      return;
    }
    if ((await this.store.countUsers()) === 0) await this.createFirstAdmin();
    await this.store.purgeSessions(this.now());
    for (const o of await this.store.subscriptionOwners()) {
      this.owners.set(`${o.tenant}\u0000${o.sub_id}`, { ref: o.ref, principal: await this.resolvePrincipal(o.ref), at: this.p.clock.now() });
    }
  }

  // ------------------------------------------------------------------ subscriptions

  async recordSubscriptionOwner(tenant: string, id: string, principal: Principal): Promise<void> {
    const ref = this.refOf(principal);
    await this.store.setSubscriptionOwner(tenant, id, ref);
    this.owners.set(`${tenant}\u0000${id}`, { ref, principal, at: this.p.clock.now() });
  }

  async forgetSubscription(tenant: string, id: string): Promise<void> {
    this.owners.delete(`${tenant}\u0000${id}`);
    await this.store.deleteSubscriptionOwner(tenant, id);
  }

  /** the owner's id, undefined when unknown */
  subscriptionOwner(tenant: string, id: string): PrincipalRef | undefined {
    return this.owners.get(`${tenant}\u0000${id}`)?.ref;
  }

  guardNotification(tenant: string, subscriptionId: string, ev: ChangeEvent): ChangeEvent | null {
    if (!this.enabled) return ev;
    const o = this.owners.get(`${tenant}\u0000${subscriptionId}`);
    if (!o) return null; // no known owner (created before the trust layer or with auth off): fail closed
    if (!o.refreshing && this.p.clock.now() - o.at > 60_000) {
      o.refreshing = true;
      this.resolvePrincipal(o.ref)
        .then((pr) => Object.assign(o, { principal: pr, at: this.p.clock.now(), refreshing: false }))
        .catch(() => (o.refreshing = false));
    }
    return o.principal ? this.redactEvent(o.principal, ev, 'notification') : null;
  }

  private async createFirstAdmin(): Promise<void> {
    const given = this.o.adminPassword;
    const pw = given ?? oneTimePassword();
    const at = this.now();
    const created = await this.store.insertUser({
      name: 'admin', password_hash: await hashPassword(pw), roles: [{ role: 'admin', tenant: '*' }], subject: null,
      disabled: false, must_change: !given, created_at: at, updated_at: at,
    });
    if (!created) return; // another node did it
    await this.audit({ actor: 'system', action: 'user.create', outcome: 'ok', target: 'admin', detail: { firstRun: true, passwordFrom: given ? 'URBIS_ADMIN_PASSWORD' : 'one-time' } });
    if (!given) {
      // the only secret ever written to the log, once, on first run; it must be changed at first login
      this.p.log.warn(`first run: created user "admin" with the one-time password ${pw} (shown once; it must be changed at first login)`);
    } else this.p.log.info('first run: created user "admin" with the password from URBIS_ADMIN_PASSWORD');
  }

  setPolicy(doc: PolicyDoc): void {
    this.policy = new Policy(doc);
  }

  // ------------------------------------------------------------------ identities

  setState(req: FastifyRequest, s: RequestState): void {
    this.requests.set(req, s);
  }
  state(req: FastifyRequest): RequestState | undefined {
    return this.requests.get(req);
  }

  anonymous(req: FastifyRequest): Principal {
    return { kind: 'anonymous', id: `ip:${req.ip}`, name: 'anonymous', roles: [{ role: 'public', tenant: '*' }], via: 'none' };
  }

  principalOf(req: FastifyRequest): Principal {
    if (!this.enabled) return DEV_PRINCIPAL;
    return this.requests.get(req)?.principal ?? this.anonymous(req);
  }

  authenticate(req: FastifyRequest): Principal | null {
    const pr = this.principalOf(req);
    if (pr.kind === 'anonymous' && !this.policy.publicRead(this.requests.get(req)?.tenant ?? '')) return null;
    return pr;
  }

  /** the credentials of a request; throws 401 ProblemError on bad ones */
  async identify(req: FastifyRequest): Promise<Principal> {
    if (!this.enabled) return DEV_PRINCIPAL;
    const h = req.headers.authorization;
    if (typeof h === 'string' && h !== '') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
      if (!m) throw unauthorized('Use "Authorization: Bearer <token or API key>".', 'invalid_request');
      const tok = m[1];
      if (tok.startsWith('urbis_')) return this.apiKeyPrincipal(tok);
      if (!this.oidc) throw unauthorized('Bearer tokens from an identity provider are not configured (URBIS_OIDC_ISSUER).', 'invalid_token');
      try {
        return await this.oidc.verify(tok);
      } catch (e) {
        if (e instanceof TokenError) throw unauthorized(`The bearer token was refused: ${e.message}.`, 'invalid_token');
        this.p.log.warn('OIDC verification failed', { err: (e as Error).message });
        throw unauthorized('The bearer token could not be verified (identity provider keys unavailable).', 'invalid_token');
      }
    }
    const k = req.headers['x-api-key'];
    if (typeof k === 'string' && k !== '') return this.apiKeyPrincipal(k);
    const sid = cookie(req.headers.cookie, this.cookieName);
    if (sid) {
      const pr = await this.sessionPrincipal(sid);
      if (pr) return pr;
      throw unauthorized('The session has expired; sign in again.', 'invalid_token');
    }
    return this.anonymous(req);
  }

  private async apiKeyPrincipal(token: string): Promise<Principal> {
    const m = API_KEY_RE.exec(token);
    if (!m) throw unauthorized('The API key is malformed.', 'invalid_token');
    const [, id, secret] = m;
    const now = this.p.clock.now();
    let c = this.keyCache.get(id);
    if (!c || now - c.at > 30_000) {
      c = { row: await this.store.getKey(id), at: now };
      if (this.keyCache.size > 10_000) this.keyCache.clear();
      this.keyCache.set(id, c);
    }
    const row = c.row;
    if (!row || !safeEqual(sha256(secret), row.secret_hash)) throw unauthorized('The API key is not valid.', 'invalid_token');
    if (row.revoked) throw unauthorized('The API key has been revoked.', 'invalid_token');
    if (Date.parse(row.expires_at) <= now) throw unauthorized('The API key has expired.', 'invalid_token');
    return { kind: 'apikey', id: row.id, name: row.name, roles: row.roles, ops: row.ops ?? undefined, via: 'apikey' };
  }

  forgetKey(id: string): void {
    this.keyCache.delete(id);
  }

  async sessionPrincipal(token: string): Promise<Principal | null> {
    if (token.length > 128) return null;
    const s = await this.store.getSession(sha256(token));
    if (!s || Date.parse(s.expires_at) <= this.p.clock.now()) return null;
    const u = await this.store.getUser(s.user_name);
    if (!u || u.disabled) return null;
    return { kind: 'user', id: u.name, name: u.name, roles: u.roles, subject: u.subject ?? undefined, mustChangePassword: u.must_change || undefined, via: 'cookie' };
  }

  /** checks a user name + password; null when wrong (constant work whether or not the user exists) */
  async checkPassword(name: string, password: string): Promise<Principal | null> {
    const u = typeof name === 'string' && name.length <= 128 ? await this.store.getUser(name) : undefined;
    const ok = await verifyPassword(String(password ?? ''), u?.password_hash ?? (await dummyHash()));
    if (!u || !ok || u.disabled) return null;
    return { kind: 'user', id: u.name, name: u.name, roles: u.roles, subject: u.subject ?? undefined, mustChangePassword: u.must_change || undefined, via: 'cookie' };
  }

  refOf(p: Principal): PrincipalRef {
    return p.kind === 'user' || p.kind === 'apikey' ? { kind: p.kind, id: p.id } : { kind: p.kind, id: p.id, roles: p.roles, ops: p.ops };
  }

  async resolvePrincipal(ref: PrincipalRef): Promise<Principal | null> {
    if (!this.enabled) return DEV_PRINCIPAL;
    if (ref.kind === 'user') {
      const u = await this.store.getUser(ref.id);
      if (!u || u.disabled) return null;
      return { kind: 'user', id: u.name, name: u.name, roles: u.roles, subject: u.subject ?? undefined, mustChangePassword: u.must_change || undefined };
    }
    if (ref.kind === 'apikey') {
      const k = await this.store.getKey(ref.id);
      if (!k || k.revoked || Date.parse(k.expires_at) <= this.p.clock.now()) return null;
      return { kind: 'apikey', id: k.id, name: k.name, roles: k.roles, ops: k.ops ?? undefined };
    }
    if (ref.kind === 'development') return null;
    return { kind: ref.kind, id: ref.id, name: ref.id, roles: ref.roles ?? [], ops: ref.ops };
  }

  // ------------------------------------------------------------------ decisions

  authorize(principal: Principal, r: AuthorizeRequest): Decision {
    if (!this.enabled) return { allowed: true };
    if (principal.kind === 'anonymous' && !this.policy.publicRead(r.tenant)) return { allowed: false, reason: 'sign in first' };
    return this.policy.authorize(principal, r);
  }

  classOf(tenant: string, e: StoredEntity): InfoClass {
    return this.policy.classOf(tenant, e);
  }

  private asPrincipal(x: unknown): Principal | null {
    if (!this.enabled) return DEV_PRINCIPAL;
    if (!x || typeof x !== 'object') return null;
    const p = x as Principal;
    return typeof p.kind === 'string' && Array.isArray(p.roles) ? p : null;
  }

  /** area 'entities' unless given; the live feed form uses area 'live' */
  canReadIn(principal: Principal, tenant: string, area: Area, e: StoredEntity | undefined, types: string[]): boolean {
    if (!this.enabled) return true;
    const infoClass = e ? this.policy.classOf(tenant, e) : this.policy.typeClass(tenant, types);
    return this.authorize(principal, { operation: 'read', tenant, area, entityType: e?.type ?? types, infoClass }).allowed;
  }

  canRead(principal: unknown, tenantOrTarget: string | { tenant: string; entityId: string; types: string[]; entity?: StoredEntity }, entity?: StoredEntity): boolean {
    const pr = this.asPrincipal(principal);
    if (!pr) return false;
    if (typeof tenantOrTarget === 'string') return entity ? this.canReadIn(pr, tenantOrTarget, 'entities', entity, entity.type) : false;
    const t = tenantOrTarget;
    return this.canReadIn(pr, t.tenant, 'live', t.entity, t.types);
  }

  /** removes personal attributes the principal is not cleared for; audits cleared reads of personal data */
  redact(principal: unknown, tenant: string, e: StoredEntity, opts: { channel?: string; audit?: boolean } = {}): StoredEntity {
    const pr = this.asPrincipal(principal);
    if (!this.enabled) return e;
    const personal = this.policy.personalAttrs(tenant, e);
    if (!personal.length) return e;
    if (!pr || !this.policy.personalClearance(pr, tenant)) return withoutAttrs(e, personal);
    if (opts.audit !== false) {
      const entries = this.personalReadEntries(pr, tenant, e, personal, opts.channel ?? 'api');
      if (entries.length) this.audit(entries).catch((err) => this.p.log.error('audit write failed', { err }));
    }
    return e;
  }

  private personalReadEntries(pr: Principal, tenant: string, e: StoredEntity, personal: string[], channel: string): AuditInput[] {
    if (channel !== 'api') {
      // streams (notifications, live feed): at most one record per reader, entity and channel per minute
      const k = `${pr.kind}:${pr.id}|${tenant}|${e.id}|${channel}`;
      const now = this.p.clock.now();
      const last = this.streamAudit.get(k);
      if (last !== undefined && now - last < PERSONAL_STREAM_WINDOW_MS) return [];
      if (this.streamAudit.size > 50_000) this.streamAudit.clear();
      this.streamAudit.set(k, now);
    }
    const subjects = this.policy.subjectsOf(tenant, e);
    return (subjects.length ? subjects : [e.id]).map((subject) => ({
      actor: actorOf(pr), action: 'personal-data.read', outcome: 'ok' as const, tenant, target: e.id, subject,
      detail: { attrs: personal.map(shortName), channel },
    }));
  }

  redactEvent(principal: unknown, ev: ChangeEvent, channel = 'live'): ChangeEvent | null {
    if (!this.enabled) return ev;
    const pr = this.asPrincipal(principal);
    if (!pr) return null;
    const area: Area = channel === 'live' ? 'live' : 'entities';
    const cur = ev.after ?? ev.before;
    if (!this.canReadIn(pr, ev.tenant, area, cur, ev.types)) return null;
    const out: ChangeEvent = { ...ev };
    if (ev.before && ev.after && !this.canReadIn(pr, ev.tenant, area, ev.before, ev.before.type)) delete out.before;
    if (out.after) out.after = this.redact(pr, ev.tenant, out.after, { channel });
    if (out.before) out.before = this.redact(pr, ev.tenant, out.before, { channel, audit: false });
    const kept = out.after ?? out.before;
    if (kept && cur && kept !== cur) {
      const gone = new Set(Object.keys(cur.attrs).filter((a) => !(a in kept.attrs)));
      out.changedAttrs = ev.changedAttrs.filter((a) => !gone.has(a));
      if (ev.deletedAttrs) out.deletedAttrs = ev.deletedAttrs.filter((a) => !gone.has(a));
    }
    return out;
  }

  filterStored(req: FastifyRequest, tenant: string, entities: StoredEntity[]): StoredEntity[] {
    if (!this.enabled) return entities;
    const pr = this.principalOf(req);
    const area = this.requests.get(req)?.area === 'temporal' ? 'temporal' : 'entities';
    const out: StoredEntity[] = [];
    const audits: AuditInput[] = [];
    for (const e of entities) {
      if (!this.canReadIn(pr, tenant, area, e, e.type)) continue;
      out.push(this.redactCollect(pr, tenant, e, audits));
    }
    if (audits.length) this.audit(audits).catch((err) => this.p.log.error('audit write failed', { err }));
    return out;
  }

  private redactCollect(pr: Principal, tenant: string, e: StoredEntity, audits: AuditInput[]): StoredEntity {
    const personal = this.policy.personalAttrs(tenant, e);
    if (!personal.length) return e;
    if (!this.policy.personalClearance(pr, tenant)) return withoutAttrs(e, personal);
    audits.push(...this.personalReadEntries(pr, tenant, e, personal, 'api'));
    return e;
  }

  /** GET /entities and entityOperations/query: filter + redact in place, audit personal reads */
  async guardQuery(req: FastifyRequest, tenant: string, r: QueryResultLike): Promise<void> {
    if (!this.enabled) return;
    const pr = this.principalOf(req);
    const entities: Record<string, unknown>[] = [];
    const stored: StoredEntity[] = [];
    const audits: AuditInput[] = [];
    let dropped = 0;
    r.stored.forEach((e, i) => {
      if (!this.canReadIn(pr, tenant, 'entities', e, e.type)) {
        dropped++;
        return;
      }
      const red = this.redactCollect(pr, tenant, e, audits);
      const rendered = r.entities[i];
      if (red !== e && rendered && typeof rendered === 'object') {
        for (const iri of Object.keys(e.attrs)) if (!(iri in red.attrs)) {
          delete rendered[r.ctx.compactIri(iri)];
          delete rendered[iri];
        }
      }
      stored.push(red);
      entities.push(rendered);
    });
    r.stored.splice(0, r.stored.length, ...stored);
    r.entities.splice(0, r.entities.length, ...entities);
    if (r.count !== undefined) r.count = Math.max(0, r.count - dropped);
    if (audits.length) await this.audit(audits);
  }

  /** GET /entities/:id: the entity as the caller may see it, 404 when it may not read it */
  async guardStored(req: FastifyRequest, tenant: string, e: StoredEntity): Promise<StoredEntity> {
    if (!this.enabled) return e;
    const pr = this.principalOf(req);
    if (!this.canReadIn(pr, tenant, 'entities', e, e.type)) {
      await this.audit({ actor: actorOf(pr), action: 'entity.read', outcome: 'denied', tenant, target: e.id, detail: { infoClass: this.policy.classOf(tenant, e) } });
      throw new ProblemError('ResourceNotFound', `Entity ${e.id} was not found.`);
    }
    const audits: AuditInput[] = [];
    const red = this.redactCollect(pr, tenant, e, audits);
    if (audits.length) await this.audit(audits);
    return red;
  }

  // ------------------------------------------------------------------ audit

  async audit(entry: AuditInput | AuditInput[]): Promise<void> {
    await this.auditLog.append(Array.isArray(entry) ? entry : [entry]);
  }
}

export function actorOf(p: Principal): string {
  return `${p.kind}:${p.id}`;
}

/** 401 that also names the RFC 6750 error for the WWW-Authenticate header */
export class AuthError extends ProblemError {
  constructor(
    detail: string,
    readonly bearerError?: 'invalid_token' | 'invalid_request',
  ) {
    super('Unauthorized', detail);
  }
}

export function unauthorized(detail: string, error?: 'invalid_token' | 'invalid_request'): AuthError {
  return new AuthError(detail, error);
}

export function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

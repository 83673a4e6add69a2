/**
 * HTTP wiring of the trust layer.
 *  hooks (root instance, before any route, so they cover every API, present and later):
 *   onRoute     every route is classified (route-map.ts); unclassified ones are admin-only and logged
 *   onRequest   security headers, CORS, identity, rate limit (429 + Retry-After), area-level
 *               authorization (401 / 403), CSRF check for cookie sessions, query complexity
 *   preHandler  entity-level write authorization (type, information class, before and after)
 *   onSend      WWW-Authenticate on 401, no-store on /auth
 *  routes: /auth/v1 (login, logout, me, password, users, apikeys, policies, audit, personal-data-access)
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Platform } from '../platform.ts';
import { ProblemError, badRequest, notFound } from '../common/problem.ts';
import type { ContextRef } from '../ngsi-ld/broker-api.ts';
import type { StoredEntity } from '../ngsi-ld/model/types.ts';
import { linkContext } from '../ngsi-ld/api/http.ts';
import { INFO_CLASSES, OPERATIONS, type InfoClass, type Operation, type Principal, type RoleBinding } from './api.ts';
import { classifyRoute, UNCLASSIFIED, type RouteClass } from './route-map.ts';
import { RateLimiter } from './rate-limit.ts';
import { checkQuery, DEFAULT_COMPLEXITY } from './complexity.ts';
import { AuthError, DEV_PRINCIPAL, actorOf, cookie, type RequestState, type TrustService } from './service.ts';
import { shortName, validatePolicy } from './policy.ts';
import { hashPassword, newApiKey, oneTimePassword, randomToken, sha256, verifyPassword } from './secrets.ts';

type ApiClass = Extract<RouteClass, { kind: 'api' }>;
const TENANT_RE = /^[A-Za-z0-9_\-.:/]{1,128}$/;
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** what the routes test reads: every registered route and its class */
export interface RouteRecord {
  method: string;
  url: string;
  cls: RouteClass | null;
}

export function contentSecurityPolicy(extraConnect: string[]): string {
  const ext = extraConnect.join(' ');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data: blob: ${ext}`.trim(),
    `connect-src 'self' ${ext}`.trim(),
    "font-src 'self'",
    "worker-src 'self' blob:",
    'child-src blob:',
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
  ].join('; ');
}

export function trustHooks(app: FastifyInstance, p: Platform, svc: TrustService, routes: RouteRecord[]): void {
  const limiter = new RateLimiter(p.clock);
  const limits = { ...DEFAULT_COMPLEXITY, ...svc.o.complexity };
  const csp = contentSecurityPolicy(svc.o.cspConnect);
  const cors = new Set(svc.o.corsOrigins);
  const log = p.log.child('trust');

  // slow-loris: headers must arrive within 20 s (Fastify's requestTimeout bounds the whole request)
  app.server.headersTimeout = 20_000;
  app.server.maxHeadersCount = 200;

  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) {
      const cls = classifyRoute(String(m), r.url);
      routes.push({ method: String(m), url: r.url, cls });
      if (!cls) log.warn(`route ${m} ${r.url} is not classified in src/trust/route-map.ts: only admins may call it`);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('permissions-policy', 'camera=(), microphone=(), payment=(), usb=()');
    reply.header('content-security-policy', csp);
    if (svc.o.tls) reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');

    const origin = req.headers.origin;
    if (typeof origin === 'string' && (cors.has('*') || cors.has(origin))) {
      reply.header('access-control-allow-origin', cors.has('*') ? '*' : origin);
      reply.header('vary', 'Origin');
      reply.header('access-control-expose-headers', 'Link, Location, NGSILD-Results-Count, Retry-After, WWW-Authenticate');
      if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
        reply.header('access-control-allow-methods', 'GET, HEAD, POST, PUT, PATCH, DELETE');
        reply.header('access-control-allow-headers', 'Authorization, Content-Type, Accept, Link, NGSILD-Tenant, X-API-Key, Fiware-Service, Fiware-ServicePath');
        reply.header('access-control-max-age', '600');
        return reply.code(204).send();
      }
    }
    if (req.method === 'OPTIONS') return reply.code(204).header('allow', 'GET, HEAD, POST, PUT, PATCH, DELETE').send();

    const url = req.routeOptions.url;
    const rc: RouteClass = url === undefined ? { kind: 'public' } : (classifyRoute(req.method, url) ?? UNCLASSIFIED);

    if (!svc.enabled) {
      svc.setState(req, { principal: DEV_PRINCIPAL, tenant: '', area: rc.kind === 'api' ? rc.area : undefined });
      if (rc.kind === 'api' && rc.op === 'read' && (rc.area === 'entities' || rc.area === 'temporal')) checkQuery(req.query as Record<string, unknown>, limits);
      return;
    }

    // identity: device routes carry device credentials (checked by the device layer), public routes
    // ignore bad credentials, every other route refuses them
    let principal: Principal;
    if (url === undefined || rc.kind === 'device') principal = svc.anonymous(req);
    else if (rc.kind === 'public') principal = await svc.identify(req).catch(() => svc.anonymous(req));
    else {
      try {
        principal = await svc.identify(req);
      } catch (e) {
        bearerChallenge(reply, e);
        throw e;
      }
    }

    // rate limit
    const key = rc.kind === 'device' ? `device:${req.ip}` : principal.kind === 'anonymous' ? `ip:${req.ip}` : `${principal.kind}:${principal.id}`;
    const spec = rc.kind === 'device' ? svc.o.rate.device : principal.kind === 'anonymous' ? svc.o.rate.anonymous : svc.o.rate.principal;
    const wait = limiter.take(key, spec);
    if (wait > 0) {
      reply.header('retry-after', String(wait));
      throw new ProblemError('TooManyRequests', `Too many requests; retry in ${wait} s.`);
    }

    if (rc.kind !== 'api') {
      svc.setState(req, { principal, tenant: '' });
      if (rc.kind === 'session' && principal.kind === 'anonymous') {
        reply.header('www-authenticate', 'Bearer realm="urbis"');
        throw new ProblemError('Unauthorized', 'Sign in first.');
      }
      if (rc.kind === 'session' && principal.via === 'cookie' && UNSAFE.has(req.method)) csrfCheck(req);
      return;
    }

    const tenant = tenantFor(req, rc);
    svc.setState(req, { principal, tenant, area: rc.area });
    const d = svc.authorize(principal, { operation: rc.op, tenant, area: rc.area });
    if (!d.allowed) {
      if (principal.kind === 'anonymous') {
        reply.header('www-authenticate', 'Bearer realm="urbis"');
        throw new ProblemError('Unauthorized', 'Sign in (session cookie, API key or bearer token) to use this API.');
      }
      await svc.audit({ actor: actorOf(principal), action: `${rc.area}.${rc.op}`, outcome: 'denied', tenant, target: `${req.method} ${url}`, detail: { reason: d.reason } });
      throw new ProblemError('Forbidden', d.reason ?? 'Not allowed.');
    }
    if (principal.via === 'cookie' && UNSAFE.has(req.method)) csrfCheck(req);
    if (rc.op === 'read' && (rc.area === 'entities' || rc.area === 'temporal')) checkQuery(req.query as Record<string, unknown>, limits);
  });

  app.addHook('preHandler', async (req) => {
    const url = req.routeOptions.url;
    if (url === undefined) return;
    const rc = classifyRoute(req.method, url);
    if (rc?.kind !== 'api') return;
    if (rc.op === 'read' && /entityOperations\/query$/.test(url) && isObj(req.body)) checkQuery(req.body, limits);
    if (!svc.enabled) return;
    if (rc.area === 'subscriptions') {
      const id = (req.params as Record<string, string> | undefined)?.id;
      const st = svc.state(req);
      const owner = id && st ? svc.subscriptionOwner(st.tenant, id) : undefined;
      if (st && owner && !(owner.kind === st.principal.kind && owner.id === st.principal.id) && !svc.authorize(st.principal, { operation: 'administer', tenant: st.tenant, area: 'subscriptions' }).allowed) {
        await svc.audit({ actor: actorOf(st.principal), action: 'subscriptions.access', outcome: 'denied', tenant: st.tenant, target: id });
        throw new ProblemError('Forbidden', 'This subscription belongs to someone else.');
      }
      return;
    }
    if (!rc.write) return;
    const st = svc.state(req);
    if (!st) throw new ProblemError('Forbidden', 'No identity for this request.');
    await checkWrite(req, p, svc, st, rc);
  });

  // after the response: remember who created each subscription (notifications are filtered with
  // that principal's rights; until recorded, a new subscription notifies nothing: fail closed)
  app.addHook('onResponse', async (req, reply) => {
    const ru = req.routeOptions.url;
    if (!svc.enabled || ru === undefined || !/^\/ngsi-ld\/v1\/subscriptions(\/:id)?$/.test(ru)) return;
    const st = svc.state(req);
    const loc = reply.getHeader('location');
    try {
      if (st && req.method === 'POST' && reply.statusCode === 201 && typeof loc === 'string') {
        const id = decodeURIComponent(loc.slice(loc.lastIndexOf('/') + 1));
        await svc.recordSubscriptionOwner(st.tenant, id, st.principal);
        await svc.audit({ actor: actorOf(st.principal), action: 'subscription.create', outcome: 'ok', tenant: st.tenant, target: id });
      } else if (st && req.method === 'DELETE' && reply.statusCode === 204) {
        const id = (req.params as Record<string, string>).id;
        if (id) await svc.forgetSubscription(st.tenant, id);
      }
    } catch (e) {
      log.error('recording the subscription owner failed', { err: e });
    }
  });

  // synchronous on purpose: an async onSend hook delays the end of reply.send(), which breaks
  // handlers that call reply.send() without returning the reply
  app.addHook('onSend', (req, reply, payload, done) => {
    if (reply.statusCode === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer realm="urbis"');
    if (req.url.startsWith('/auth/')) reply.header('cache-control', 'no-store');
    done(null, ownSubscriptionsOnly(req, reply, payload));
  });

  /**
   * GET /subscriptions lists only the caller's own subscriptions unless it may administer them
   * (the ids of others' subscriptions and their endpoints are not for everyone to see).
   */
  function ownSubscriptionsOnly(req: FastifyRequest, reply: FastifyReply, payload: unknown): unknown {
    if (!svc.enabled || req.method !== 'GET' || req.routeOptions.url !== '/ngsi-ld/v1/subscriptions' || reply.statusCode !== 200) return payload;
    const st = svc.state(req);
    if (!st || svc.authorize(st.principal, { operation: 'administer', tenant: st.tenant, area: 'subscriptions' }).allowed) return payload;
    const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    if (text === undefined || !text.startsWith('[')) return payload;
    const list = JSON.parse(text) as { id?: string }[];
    const mine = list.filter((x) => {
      const o = x.id ? svc.subscriptionOwner(st.tenant, x.id) : undefined;
      return o !== undefined && o.kind === st.principal.kind && o.id === st.principal.id;
    });
    const count = reply.getHeader('ngsild-results-count');
    if (count !== undefined) reply.header('NGSILD-Results-Count', String(Math.max(0, Number(count) - (list.length - mine.length))));
    return JSON.stringify(mine);
  }
}

function bearerChallenge(reply: FastifyReply, e: unknown) {
  if (e instanceof AuthError && e.bearerError) reply.header('www-authenticate', `Bearer realm="urbis", error="${e.bearerError}"`);
  else reply.header('www-authenticate', 'Bearer realm="urbis"');
}

/** cookie-authenticated writes must come from our own origin (or an allowed CORS origin is not enough: cookies are same-origin only) */
function csrfCheck(req: FastifyRequest) {
  const origin = req.headers.origin;
  const site = req.headers['sec-fetch-site'];
  if (typeof origin === 'string') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== req.headers.host) throw new ProblemError('Forbidden', 'Cross-site request refused (session cookies work only from the dashboard origin).');
  } else if (site === 'cross-site') throw new ProblemError('Forbidden', 'Cross-site request refused.');
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** the tenant a request works on, as the API in question reads it */
export function tenantFor(req: FastifyRequest, rc: ApiClass): string {
  if (rc.area === 'auth') return '*'; // administration of identities and policies is platform-wide
  if (rc.tenantFrom === 'fiware') return (header(req, 'fiware-service') ?? '').trim().toLowerCase();
  const h = header(req, 'ngsild-tenant');
  const qv = rc.area === 'live' ? (req.query as Record<string, unknown> | undefined)?.tenant : undefined;
  const q = typeof qv === 'string' ? qv : undefined;
  if (h !== undefined && h !== '' && q !== undefined && q !== '' && h !== q) throw new ProblemError('BadRequestData', 'The NGSILD-Tenant header and the tenant parameter differ.');
  const v = h || q || '';
  if (v !== '' && !TENANT_RE.test(v)) throw new ProblemError('BadRequestData', `NGSILD-Tenant "${v}" is not a valid tenant name.`);
  return v;
}

// ---------------------------------------------------------------------------- write checks

function classValue(v: unknown): InfoClass | null | undefined {
  if (v === undefined) return undefined;
  if (v === null) return null; // deleted (merge-patch): back to the type default
  const raw = isObj(v) ? (v.value ?? v.vocab ?? (v as Record<string, unknown>)['@value']) : v;
  const s = typeof raw === 'string' ? shortName(raw) : undefined;
  if (!s || !INFO_CLASSES.includes(s as InfoClass)) throw badRequest('infoClass must be "open", "restricted" or "security".');
  return s as InfoClass;
}

function bodyClass(body: Record<string, unknown>): InfoClass | null | undefined {
  for (const k of Object.keys(body)) if (shortName(k) === 'infoClass') return classValue(body[k]);
  return undefined;
}

interface Target {
  id?: string;
  types: string[];
  cls: InfoClass;
}

async function checkWrite(req: FastifyRequest, p: Platform, svc: TrustService, st: RequestState, rc: ApiClass): Promise<void> {
  const { principal, tenant } = st;
  const pol = svc.policy;
  const body = req.body;
  const params = (req.params ?? {}) as Record<string, string>;
  const ld = String(req.headers['content-type'] ?? '').startsWith('application/ld+json');
  const stored = async (id: unknown): Promise<StoredEntity | undefined> => {
    if (typeof id !== 'string' || id === '') return undefined;
    try {
      return await p.broker.getStored(tenant, id);
    } catch {
      return undefined;
    }
  };
  const types = async (item: Record<string, unknown>): Promise<string[]> => {
    const raw = item.type ?? item['@type'];
    const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).filter((x): x is string => typeof x === 'string');
    if (!list.length) return [];
    let ref: ContextRef | undefined;
    try {
      ref = ld ? (item['@context'] as ContextRef) : linkContext(req);
      const ctx = await p.broker.contexts.resolve(ref);
      return list.map((t) => ctx.expandTerm(t));
    } catch {
      return list; // the route reports the bad context; decide on the names as given
    }
  };
  const targets: Target[] = [];
  const fromItem = async (item: unknown, old: StoredEntity | undefined, create: boolean) => {
    if (old) targets.push({ id: old.id, types: old.type, cls: pol.classOf(tenant, old) });
    if (!isObj(item)) return;
    const t = await types(item);
    const allTypes = [...new Set([...t, ...(old?.type ?? [])])];
    const c = bodyClass(item);
    if (c) targets.push({ types: allTypes, cls: c });
    else if ((create || !old) && allTypes.length) targets.push({ types: allTypes, cls: pol.typeClass(tenant, allTypes) });
  };

  switch (rc.write) {
    case 'create':
      await fromItem(body, undefined, true);
      break;
    case 'entity': {
      const id = params.id ?? params.entityId;
      const old = await stored(id);
      const attr = params.attr ?? params.attrId;
      if (attr !== undefined && shortName(attr) === 'infoClass') {
        if (old) targets.push({ id: old.id, types: old.type, cls: pol.classOf(tenant, old) });
        const c = req.method === 'DELETE' ? null : classValue(body);
        if (old) targets.push({ id: old.id, types: old.type, cls: c ?? pol.typeClass(tenant, old.type) });
      } else await fromItem(attr === undefined ? body : undefined, old, false);
      break;
    }
    case 'batch':
    case 'batch-ids': {
      if (!Array.isArray(body)) break;
      if (body.length > 10_000) throw new ProblemError('TooComplexQuery', 'At most 10000 entities per batch.');
      const olds = await Promise.all(body.map((it) => stored(isObj(it) ? (it.id ?? it['@id']) : it)));
      for (let i = 0; i < body.length; i++) await fromItem(rc.write === 'batch' ? body[i] : undefined, olds[i], false);
      break;
    }
    case 'purge': {
      // deleting by query may touch any entity of the types: needs write on every information class
      const q = (req.query ?? {}) as Record<string, string | undefined>;
      const names = (q.type ?? '').split(/[,;|()]/).map((s) => s.trim()).filter(Boolean);
      const t = names.length ? await types({ type: names }) : [];
      for (const cls of INFO_CLASSES) targets.push({ types: t, cls });
      break;
    }
  }
  for (const t of targets) {
    const d = svc.authorize(principal, { operation: 'write', tenant, area: rc.area, entityType: t.types.length ? t.types : undefined, infoClass: t.cls });
    if (!d.allowed) {
      await svc.audit({ actor: actorOf(principal), action: `${rc.area}.write`, outcome: 'denied', tenant, target: t.id ?? t.types.map(shortName).join(','), detail: { reason: d.reason, infoClass: t.cls } });
      throw new ProblemError('Forbidden', d.reason ?? 'Not allowed.');
    }
  }
}

// ---------------------------------------------------------------------------- /auth/v1

const NAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
const MIN_PASSWORD = 12;

function parseRoles(v: unknown, svc: TrustService): RoleBinding[] {
  if (!Array.isArray(v)) throw badRequest('"roles" must be a list of { "role", "tenant" } ("tenant": "*" for every tenant).');
  return v.map((b) => {
    if (!isObj(b) || typeof b.role !== 'string') throw badRequest('every role binding needs "role" (and "tenant").');
    if (!svc.policy.doc.roles[b.role]) throw badRequest(`unknown role "${b.role}" (roles: ${Object.keys(svc.policy.doc.roles).join(', ')}).`);
    const tenant = b.tenant === undefined ? '' : b.tenant;
    if (typeof tenant !== 'string' || (tenant !== '' && tenant !== '*' && !TENANT_RE.test(tenant))) throw badRequest(`"${String(tenant)}" is not a valid tenant.`);
    return { role: b.role, tenant };
  });
}

function userJson(u: { name: string; roles: RoleBinding[]; subject: string | null; disabled: boolean; must_change: boolean; created_at: string; updated_at: string }) {
  return { name: u.name, roles: u.roles, subject: u.subject ?? undefined, disabled: u.disabled, mustChangePassword: u.must_change, createdAt: u.created_at, updatedAt: u.updated_at };
}

function checkNewPassword(pw: unknown): string {
  if (typeof pw !== 'string' || pw.length < MIN_PASSWORD || pw.length > 1024) throw badRequest(`The password must have ${MIN_PASSWORD} to 1024 characters.`);
  return pw;
}

export function trustRoutes(app: FastifyInstance, p: Platform, svc: TrustService): void {
  const P = '/auth/v1';
  const loginLimiter = new RateLimiter(p.clock);
  const now = () => new Date(p.clock.now()).toISOString();
  const me = (req: FastifyRequest) => svc.principalOf(req);
  const body = (req: FastifyRequest) => {
    if (!isObj(req.body)) throw badRequest('A JSON object body is required.');
    return req.body;
  };
  const setCookie = (reply: FastifyReply, value: string, maxAgeS: number) => {
    const attrs = [`${svc.cookieName}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${maxAgeS}`];
    if (svc.cookieSecure) attrs.push('Secure');
    reply.header('set-cookie', attrs.join('; '));
  };
  const adminsLeft = async (exceptName: string, next?: { roles?: RoleBinding[]; disabled?: boolean }) => {
    const users = await svc.store.listUsers();
    return users.some((u) => {
      const roles = u.name === exceptName ? next?.roles : u.roles;
      const disabled = u.name === exceptName ? next?.disabled ?? u.disabled : u.disabled;
      return roles !== undefined && !disabled && roles.some((b) => b.role === 'admin' && b.tenant === '*');
    });
  };

  app.post(`${P}/login`, async (req, reply) => {
    if (!svc.enabled) throw new ProblemError('OperationNotSupported', 'Authentication is off (URBIS_AUTH=off): no sign-in needed.');
    const b = body(req);
    const name = typeof b.username === 'string' ? b.username : '';
    const w = Math.max(loginLimiter.take(`ip:${req.ip}`, svc.o.rate.login), loginLimiter.take(`user:${name.slice(0, 128)}`, svc.o.rate.login));
    if (w > 0) {
      reply.header('retry-after', String(w));
      throw new ProblemError('TooManyRequests', `Too many sign-in attempts; retry in ${w} s.`);
    }
    const pr = await svc.checkPassword(name, typeof b.password === 'string' ? b.password : '');
    if (!pr) {
      await svc.audit({ actor: `user:${name.slice(0, 128)}`, action: 'login', outcome: 'failed', detail: { ip: req.ip } });
      throw new ProblemError('Unauthorized', 'Wrong user name or password.');
    }
    const token = randomToken(32);
    await svc.store.insertSession(sha256(token), pr.id, now(), new Date(p.clock.now() + svc.o.sessionTtlMs).toISOString());
    setCookie(reply, token, Math.floor(svc.o.sessionTtlMs / 1000));
    await svc.audit({ actor: actorOf(pr), action: 'login', outcome: 'ok', detail: { ip: req.ip } });
    return { name: pr.name, roles: pr.roles, mustChangePassword: Boolean(pr.mustChangePassword) };
  });

  app.post(`${P}/logout`, async (req, reply) => {
    const sid = cookie(req.headers.cookie, svc.cookieName);
    if (sid) {
      const pr = await svc.sessionPrincipal(sid);
      await svc.store.deleteSession(sha256(sid));
      if (pr) await svc.audit({ actor: actorOf(pr), action: 'logout', outcome: 'ok' });
    }
    setCookie(reply, '', 0);
    return reply.code(204).send();
  });

  app.get(`${P}/me`, async (req) => {
    const pr = me(req);
    return { kind: pr.kind, id: pr.id, name: pr.name, roles: pr.roles, ops: pr.ops, subject: pr.subject, mustChangePassword: Boolean(pr.mustChangePassword), auth: svc.enabled };
  });

  app.post(`${P}/password`, async (req, reply) => {
    const pr = me(req);
    if (pr.kind !== 'user') throw new ProblemError('OperationNotSupported', 'Only local users have a password here.');
    const b = body(req);
    const u = await svc.store.getUser(pr.id);
    if (!u || !(await verifyPassword(String(b.currentPassword ?? ''), u.password_hash))) {
      await svc.audit({ actor: actorOf(pr), action: 'user.password', outcome: 'failed' });
      throw new ProblemError('Forbidden', 'The current password is wrong.');
    }
    const pw = checkNewPassword(b.newPassword);
    if (pw === b.currentPassword) throw badRequest('The new password must differ from the current one.');
    await svc.store.updateUser(pr.id, { password_hash: await hashPassword(pw), must_change: false }, now());
    const sid = cookie(req.headers.cookie, svc.cookieName);
    await svc.store.deleteSessionsOf(pr.id, sid ? sha256(sid) : undefined);
    await svc.audit({ actor: actorOf(pr), action: 'user.password', outcome: 'ok', target: pr.id });
    return reply.code(204).send();
  });

  // ----- users
  app.get(`${P}/users`, async () => (await svc.store.listUsers()).map(userJson));
  app.get(`${P}/users/:name`, async (req) => {
    const u = await svc.store.getUser((req.params as { name: string }).name);
    if (!u) throw notFound('No such user.');
    return userJson(u);
  });
  app.post(`${P}/users`, async (req, reply) => {
    const b = body(req);
    if (typeof b.name !== 'string' || !NAME_RE.test(b.name)) throw badRequest('"name" must be 1-64 letters, digits, _ . @ or -.');
    const roles = parseRoles(b.roles ?? [], svc);
    const given = b.password === undefined ? undefined : checkNewPassword(b.password);
    const pw = given ?? oneTimePassword();
    if (b.subject !== undefined && typeof b.subject !== 'string') throw badRequest('"subject" must be a string.');
    const at = now();
    const ok = await svc.store.insertUser({ name: b.name, password_hash: await hashPassword(pw), roles, subject: (b.subject as string | undefined) ?? null, disabled: false, must_change: true, created_at: at, updated_at: at });
    if (!ok) throw new ProblemError('AlreadyExists', `User "${b.name}" exists.`);
    await svc.audit({ actor: actorOf(me(req)), action: 'user.create', outcome: 'ok', target: b.name, detail: { roles } });
    reply.code(201).header('location', `${P}/users/${encodeURIComponent(b.name)}`);
    // the initial password is shown once; the user must change it at first sign-in
    return { name: b.name, roles, mustChangePassword: true, ...(given ? {} : { oneTimePassword: pw }) };
  });
  app.patch(`${P}/users/:name`, async (req) => {
    const name = (req.params as { name: string }).name;
    const b = body(req);
    const u = await svc.store.getUser(name);
    if (!u) throw notFound('No such user.');
    const roles = b.roles === undefined ? undefined : parseRoles(b.roles, svc);
    if (b.disabled !== undefined && typeof b.disabled !== 'boolean') throw badRequest('"disabled" must be a boolean.');
    if ((roles || b.disabled === true) && !(await adminsLeft(name, { roles: roles ?? u.roles, disabled: (b.disabled as boolean | undefined) ?? u.disabled })))
      throw new ProblemError('Conflict', 'This change would leave no enabled platform admin.');
    let reset: string | undefined;
    if (b.resetPassword === true) reset = oneTimePassword();
    await svc.store.updateUser(
      name,
      {
        roles, disabled: b.disabled as boolean | undefined, subject: b.subject === undefined ? undefined : b.subject === null ? null : String(b.subject),
        ...(reset ? { password_hash: await hashPassword(reset), must_change: true } : {}),
      },
      now(),
    );
    if (b.disabled === true || reset) await svc.store.deleteSessionsOf(name);
    await svc.audit({ actor: actorOf(me(req)), action: 'user.update', outcome: 'ok', target: name, detail: { roles, disabled: b.disabled, subject: b.subject !== undefined, resetPassword: Boolean(reset) } });
    return { ...userJson((await svc.store.getUser(name))!), ...(reset ? { oneTimePassword: reset } : {}) };
  });
  app.delete(`${P}/users/:name`, async (req, reply) => {
    const name = (req.params as { name: string }).name;
    if (!(await svc.store.getUser(name))) throw notFound('No such user.');
    if (!(await adminsLeft(name))) throw new ProblemError('Conflict', 'This would leave no enabled platform admin.');
    await svc.store.deleteUser(name);
    await svc.audit({ actor: actorOf(me(req)), action: 'user.delete', outcome: 'ok', target: name });
    return reply.code(204).send();
  });

  // ----- API keys
  const keyJson = (k: { id: string; name: string; roles: RoleBinding[]; ops: Operation[] | null; expires_at: string; created_by: string; created_at: string; revoked: boolean }) => ({
    id: k.id, name: k.name, roles: k.roles, ops: k.ops ?? undefined, expiresAt: k.expires_at, createdBy: k.created_by, createdAt: k.created_at, revoked: k.revoked,
  });
  app.get(`${P}/apikeys`, async () => (await svc.store.listKeys()).map(keyJson));
  app.post(`${P}/apikeys`, async (req, reply) => {
    const b = body(req);
    if (typeof b.name !== 'string' || b.name.length < 1 || b.name.length > 128) throw badRequest('"name" (1-128 characters) is required.');
    const roles = parseRoles(b.roles, svc);
    if (!roles.length) throw badRequest('An API key needs at least one role.');
    let ops: Operation[] | null = null;
    if (b.ops !== undefined) {
      if (!Array.isArray(b.ops) || b.ops.some((o) => !OPERATIONS.includes(o as Operation))) throw badRequest(`"ops" must list operations among ${OPERATIONS.join(', ')}.`);
      ops = b.ops as Operation[];
    }
    const nowMs = p.clock.now();
    const maxMs = nowMs + svc.o.apiKeyDays.max * 86_400_000;
    let exp = nowMs + svc.o.apiKeyDays.default * 86_400_000;
    if (b.expiresAt !== undefined) {
      exp = Date.parse(String(b.expiresAt));
      if (!Number.isFinite(exp) || exp <= nowMs) throw badRequest('"expiresAt" must be a future ISO date-time.');
    }
    if (exp > maxMs) throw badRequest(`API keys live at most ${svc.o.apiKeyDays.max} days.`);
    const k = newApiKey();
    const actor = actorOf(me(req));
    await svc.store.insertKey({ id: k.id, secret_hash: sha256(k.secret), name: b.name, roles, ops, expires_at: new Date(exp).toISOString(), created_by: actor, created_at: now(), revoked: false });
    await svc.audit({ actor, action: 'apikey.create', outcome: 'ok', target: k.id, detail: { name: b.name, roles, ops } });
    reply.code(201).header('location', `${P}/apikeys/${k.id}`);
    // the key is shown once; only its hash is stored
    return { id: k.id, key: k.token, name: b.name, roles, ops: ops ?? undefined, expiresAt: new Date(exp).toISOString() };
  });
  app.delete(`${P}/apikeys/:id`, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (!(await svc.store.revokeKey(id))) throw notFound('No such API key.');
    svc.forgetKey(id);
    await svc.audit({ actor: actorOf(me(req)), action: 'apikey.revoke', outcome: 'ok', target: id });
    return reply.code(204).send();
  });

  // ----- policies
  app.get(`${P}/policies`, async () => svc.policy.doc);
  app.put(`${P}/policies`, async (req) => {
    let doc;
    try {
      doc = validatePolicy(req.body);
    } catch (e) {
      throw badRequest(`Invalid policy: ${(e as Error).message}.`);
    }
    const actor = actorOf(me(req));
    await svc.store.putPolicy(doc, actor, now());
    svc.setPolicy(doc);
    await svc.audit({ actor, action: 'policy.update', outcome: 'ok', target: 'global', detail: { sha256: sha256(JSON.stringify(doc)) } });
    return doc;
  });

  // ----- audit
  app.get(`${P}/audit`, async (req) => {
    const q = (req.query ?? {}) as Record<string, string | undefined>;
    const int = (v: string | undefined) => (v === undefined ? undefined : Number.isInteger(Number(v)) ? Number(v) : (() => { throw badRequest(`"${v}" is not an integer.`); })());
    return svc.auditLog.list({ after: int(q.after), limit: int(q.limit), action: q.action, subject: q.subject, actor: q.actor });
  });
  app.get(`${P}/audit/verify`, async (req) => {
    const q = (req.query ?? {}) as Record<string, string | undefined>;
    const anchor = q.anchorSeq && q.anchorHash ? { seq: Number(q.anchorSeq), hash: q.anchorHash } : undefined;
    const r = await svc.auditLog.verify(anchor);
    await svc.audit({ actor: actorOf(me(req)), action: 'audit.verify', outcome: r.ok ? 'ok' : 'failed', detail: { records: r.records, broken: r.broken } });
    return r;
  });

  // ----- who read data about me
  app.get(`${P}/personal-data-access`, async (req) => {
    const pr = me(req);
    const subject = (req.query as Record<string, string | undefined>).subject;
    if (!subject) throw badRequest('Give ?subject=<data-subject identifier>.');
    const isAdmin = svc.authorize(pr, { operation: 'administer', tenant: '*', area: 'auth' }).allowed;
    if (!isAdmin && pr.subject !== subject) {
      await svc.audit({ actor: actorOf(pr), action: 'personal-data-access.query', outcome: 'denied', subject });
      throw new ProblemError('Forbidden', 'Only an administrator or the person themselves may see this.');
    }
    const out: { at: string; reader: string; tenant: string | null; entity: string | null; attrs: unknown; channel: unknown }[] = [];
    let after = 0;
    for (;;) {
      const page = await svc.auditLog.list({ action: 'personal-data.read', subject, after, limit: 1000 });
      for (const r of page) out.push({ at: r.at, reader: r.actor, tenant: r.tenant, entity: r.target, attrs: r.detail?.attrs, channel: r.detail?.channel });
      if (page.length < 1000 || out.length >= 10_000) break;
      after = page[page.length - 1].seq;
    }
    await svc.audit({ actor: actorOf(pr), action: 'personal-data-access.query', outcome: 'ok', subject, detail: { onBehalf: pr.subject !== subject } });
    return { subject, reads: out };
  });
}

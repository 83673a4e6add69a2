/**
 * Every HTTP route is classified here (pure): public, device-authenticated, any signed-in session,
 * or an API operation (area + operation, plus how to find the entities a write touches).
 * Classification uses the REGISTERED route pattern (e.g. '/ngsi-ld/v1/entities/:id'), never the raw
 * URL, so encodings and double slashes cannot change the outcome. A route that matches no rule is
 * "unclassified": at run time it needs the administer operation on area 'unclassified' (admins
 * only) and test/api/trust-routes.test.ts fails, so every later API gets classified on purpose.
 */
import type { Area, Operation } from './api.ts';

export type EntityWrite = 'create' | 'entity' | 'batch' | 'batch-ids' | 'purge';

export type RouteClass =
  | { kind: 'public' }
  /** southbound device traffic: the device layer authenticates the device itself */
  | { kind: 'device' }
  /** any authenticated principal, even one that must still change its password */
  | { kind: 'session' }
  | { kind: 'api'; area: Area; op: Operation; write?: EntityWrite; tenantFrom?: 'ngsild' | 'fiware' };

type Rule = [RegExp, (method: string) => RouteClass | null];

const isRead = (m: string) => m === 'GET' || m === 'HEAD';
const api = (area: Area, op: Operation, extra: Partial<Extract<RouteClass, { kind: 'api' }>> = {}): RouteClass => ({ kind: 'api', area, op, ...extra });
const PUBLIC: RouteClass = { kind: 'public' };

const NGSI = '^/ngsi-ld/v1';

const RULES: Rule[] = [
  [/^\/health$/, () => PUBLIC],
  // trust layer
  [/^\/auth\/v1\/(login|logout)$/, () => PUBLIC],
  [/^\/auth\/v1\/(me|password)$/, () => ({ kind: 'session' })],
  [/^\/auth\/v1\/personal-data-access$/, () => ({ kind: 'session' })], // the handler allows admins or the data subject
  [/^\/auth\/v1\//, () => api('auth', 'administer')],
  // dashboard web app (static, no data) and its live feed
  [/^\/(index\.html|favicon\.svg|dashboard-config\.json)?$/, (m) => (isRead(m) ? PUBLIC : null)],
  [/^\/(assets|data)\/\*$/, (m) => (isRead(m) ? PUBLIC : null)],
  [/^\/live$/, () => api('live', 'read')],
  // NGSI-LD
  [new RegExp(`${NGSI}/entityOperations/query$`), () => api('entities', 'read')],
  [new RegExp(`${NGSI}/entityOperations/delete$`), () => api('entities', 'write', { write: 'batch-ids' })],
  [new RegExp(`${NGSI}/entityOperations/`), () => api('entities', 'write', { write: 'batch' })],
  [new RegExp(`${NGSI}/entities$`), (m) => (isRead(m) ? api('entities', 'read') : m === 'POST' ? api('entities', 'write', { write: 'create' }) : api('entities', 'write', { write: 'purge' }))],
  [new RegExp(`${NGSI}/entities/`), (m) => (isRead(m) ? api('entities', 'read') : api('entities', 'write', { write: 'entity' }))],
  [new RegExp(`${NGSI}/(types|attributes)(/|$)`), (m) => (isRead(m) ? api('entities', 'read') : null)],
  [new RegExp(`${NGSI}/jsonldContexts(/|$)`), (m) => (isRead(m) ? api('entities', 'read') : api('entities', 'write'))],
  [new RegExp(`${NGSI}/temporal/entityOperations/query$`), () => api('temporal', 'read')],
  [new RegExp(`${NGSI}/temporal/entities$`), (m) => (isRead(m) ? api('temporal', 'read') : api('temporal', 'write', { write: 'create' }))],
  [new RegExp(`${NGSI}/temporal/entities/`), (m) => (isRead(m) ? api('temporal', 'read') : api('temporal', 'write', { write: 'entity' }))],
  [new RegExp(`${NGSI}/temporal/`), (m) => (isRead(m) ? api('temporal', 'read') : api('temporal', 'write'))],
  // temporal retention settings (Urbis extension): reading is read, changing or sweeping is administration
  [/^\/temporal\/v1\//, (m) => (isRead(m) ? api('temporal', 'read') : api('temporal', 'administer'))],
  [new RegExp(`${NGSI}/subscriptions(/|$)`), () => api('subscriptions', 'subscribe')],
  [new RegExp(`${NGSI}/(csourceRegistrations|csourceSubscriptions)(/|$)`), (m) => (isRead(m) ? api('entities', 'read') : api('entities', 'administer'))],
  [new RegExp(`${NGSI}/info/`), () => api('entities', 'read')],
  // IoT agent: southbound device traffic is authenticated by the device layer (device keys)
  [/^\/iot\/(json|d)(\/|$)/, () => ({ kind: 'device' })],
  [/^\/iot\/lorawan\//, () => ({ kind: 'device' })],
  [/^\/iot\/about$/, () => PUBLIC],
  [/^\/iot\//, (m) => (isRead(m) ? api('iot', 'read', { tenantFrom: 'fiware' }) : api('iot', 'write', { tenantFrom: 'fiware' }))],
  // KPIs
  [/^\/kpi\/v1\/openapi\.json$/, () => PUBLIC],
  [/^\/kpi\/v1\//, (m) => (isRead(m) ? api('kpi', 'read') : api('kpi', 'write'))],
  // rules and alarms
  [/^\/rules\/v1\/rules\/validate$/, () => api('rules', 'read')],
  [/^\/rules\/v1\//, (m) => (isRead(m) ? api('rules', 'read') : api('rules', 'write'))],
];

/** null: unclassified (the caller then requires administer on area 'unclassified') */
export function classifyRoute(method: string, routeUrl: string): RouteClass | null {
  const m = method.toUpperCase();
  if (m === 'OPTIONS') return PUBLIC; // CORS preflight, answered by the trust hook
  for (const [re, f] of RULES) if (re.test(routeUrl)) return f(m);
  return null;
}

export const UNCLASSIFIED: RouteClass = { kind: 'api', area: 'unclassified', op: 'administer' };

/**
 * The trust layer's service interface: what other modules get with `p.services.get('auth')`.
 * Documented in docs/security.md ("Service interface"). Keep this file free of imports from the
 * rest of src/trust so that any module can import it without pulling the implementation.
 *
 * When URBIS_AUTH=off the service is still registered (enabled = false): every call allows, every
 * principal is the development principal (admin on every tenant), nothing is redacted.
 */
import type { FastifyRequest } from 'fastify';
import type { StoredEntity } from '../ngsi-ld/model/types.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';

export type Operation = 'read' | 'write' | 'subscribe' | 'administer';
export type InfoClass = 'open' | 'restricted' | 'security';
/** API families; a role's grants name the areas they apply to */
export type Area = 'entities' | 'temporal' | 'subscriptions' | 'iot' | 'kpi' | 'rules' | 'live' | 'auth' | 'unclassified';

export const OPERATIONS: readonly Operation[] = ['read', 'write', 'subscribe', 'administer'];
export const INFO_CLASSES: readonly InfoClass[] = ['open', 'restricted', 'security'];
export const AREAS: readonly Area[] = ['entities', 'temporal', 'subscriptions', 'iot', 'kpi', 'rules', 'live', 'auth', 'unclassified'];

/** a role held on one tenant ('*' = every tenant) */
export interface RoleBinding {
  role: string;
  tenant: string;
}

export interface Principal {
  kind: 'user' | 'apikey' | 'oidc' | 'anonymous' | 'development';
  /** stable id: user name, API key id, `<iss>|<sub>`, `ip:<addr>` for anonymous */
  id: string;
  /** display name */
  name: string;
  roles: RoleBinding[];
  /** operations an API key is limited to (absent: whatever its roles allow) */
  ops?: Operation[];
  /** data-subject identifier of a person (e.g. urn:ngsi-ld:Person:42): lets them ask who read their data */
  subject?: string;
  /** a local user with a one-time password: only /auth/v1/me, /password and /logout until changed */
  mustChangePassword?: boolean;
  /** how the request authenticated */
  via?: 'cookie' | 'bearer' | 'apikey' | 'none';
}

/** Serialisable reference kept by long-lived consumers (a subscription remembers who created it). */
export interface PrincipalRef {
  kind: Principal['kind'];
  id: string;
  /** roles at the time (used for OIDC principals, which cannot be looked up later) */
  roles?: RoleBinding[];
  ops?: Operation[];
}

export interface AuthorizeRequest {
  operation: Operation;
  tenant: string;
  area?: Area;
  /** entity type(s): expanded IRIs or short names */
  entityType?: string | string[];
  infoClass?: InfoClass;
}

export interface Decision {
  allowed: boolean;
  reason?: string;
}

export interface AuthService {
  /** false only with URBIS_AUTH=off */
  readonly enabled: boolean;
  /** the caller of a request (set by the trust hook on every request); anonymous when none */
  principalOf(req: FastifyRequest): Principal;
  /** validates the request's credentials (cookie, Bearer JWT / API key, X-API-Key); throws ProblemError('Unauthorized') on bad ones */
  identify(req: FastifyRequest): Promise<Principal>;
  /** dashboard compatibility: the request's principal, or null when anonymous access is not allowed */
  authenticate(req: FastifyRequest): Principal | null;
  /** policy decision for one operation (area-level when no entityType/infoClass is given) */
  authorize(principal: Principal, r: AuthorizeRequest): Decision;
  /** information class of a stored entity (its infoClass Property, else the type default, else open) */
  classOf(tenant: string, entity: StoredEntity): InfoClass;
  /**
   * May the principal read this entity? Two call forms:
   * canRead(principal, tenant, entity) and the live feed's canRead(principal, { tenant, entityId, types, entity? }).
   */
  canRead(principal: unknown, tenantOrTarget: string | { tenant: string; entityId: string; types: string[]; entity?: StoredEntity }, entity?: StoredEntity): boolean;
  /**
   * The entity without the personal attributes the principal is not cleared for. When the principal
   * is cleared and the entity holds personal data, the read is audited (pass `channel` to name the
   * path: 'notification', 'live', 'temporal'; repeated stream reads are coalesced per minute).
   */
  redact(principal: unknown, tenant: string, entity: StoredEntity, opts?: { channel?: string; audit?: boolean }): StoredEntity;
  /** a change event as the principal may see it (entities redacted), or null when it may not see it */
  redactEvent(principal: unknown, event: ChangeEvent, channel?: string): ChangeEvent | null;
  /** filter + redact a list of stored entities for the request's caller (temporal and other read APIs) */
  filterStored(req: FastifyRequest, tenant: string, entities: StoredEntity[]): StoredEntity[];
  /**
   * For the subscriptions module, per (subscription, event) before matching: the event as the
   * subscription's owner may see it (redacted), or null when it must not be notified. The trust
   * layer records the owner itself when POST /ngsi-ld/v1/subscriptions succeeds.
   */
  guardNotification(tenant: string, subscriptionId: string, event: ChangeEvent): ChangeEvent | null;
  /** reference to keep with long-lived objects (subscriptions) */
  refOf(principal: Principal): PrincipalRef;
  /** current principal of a reference (null when the user or key is gone, disabled or expired) */
  resolvePrincipal(ref: PrincipalRef): Promise<Principal | null>;
  /** append to the tamper-evident audit log */
  audit(entry: AuditInput): Promise<void>;
  /** MQTT limits for the device layer (connections per IP, messages per client) */
  readonly mqtt: MqttGuard;
}

export interface AuditInput {
  actor: string;
  action: string;
  outcome: 'ok' | 'denied' | 'failed';
  tenant?: string;
  target?: string;
  /** data subject, for personal-data access records */
  subject?: string;
  detail?: Record<string, unknown>;
}

export interface MqttGuard {
  /** call on connect; false = refuse (too many connections from this address) */
  onConnect(clientId: string, ip: string | undefined): boolean;
  onDisconnect(clientId: string, ip: string | undefined): void;
  /** call for each PUBLISH; false = drop/refuse (rate or size exceeded) */
  onPublish(clientId: string, bytes: number): boolean;
}

/** the query result shape of Broker.query, filtered in place */
export interface QueryResultLike {
  entities: Record<string, unknown>[];
  stored: StoredEntity[];
  ctx: { compactIri(iri: string): string };
  count?: number;
}

interface Guard {
  guardNotification?(tenant: string, subscriptionId: string, event: ChangeEvent): ChangeEvent | null;
  guardQuery?(req: FastifyRequest, tenant: string, r: QueryResultLike): Promise<void>;
  guardStored?(req: FastifyRequest, tenant: string, e: StoredEntity): Promise<StoredEntity>;
}

/**
 * For the NGSI-LD routes: drops the entities the caller may not read and redacts personal
 * attributes, in place. No-op when the trust module is not installed.
 */
export async function guardQuery(services: Map<string, unknown>, req: FastifyRequest, tenant: string, r: QueryResultLike): Promise<void> {
  await (services.get('auth') as Guard | undefined)?.guardQuery?.(req, tenant, r);
}

/** For GET /entities/:id: the entity as the caller may see it; 404 when it may not read it. */
export async function guardStored(services: Map<string, unknown>, req: FastifyRequest, tenant: string, e: StoredEntity): Promise<StoredEntity> {
  const g = services.get('auth') as Guard | undefined;
  return g?.guardStored ? g.guardStored(req, tenant, e) : e;
}

/** For the subscriptions module: the event as the subscription's owner may see it, null = do not notify. */
export function guardNotification(services: Map<string, unknown>, tenant: string, subscriptionId: string, event: ChangeEvent): ChangeEvent | null {
  const g = services.get('auth') as Guard | undefined;
  return g?.guardNotification ? g.guardNotification(tenant, subscriptionId, event) : event;
}

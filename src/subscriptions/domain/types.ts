import type { ContextRef } from '../../ngsi-ld/broker-api.ts';
import type { StoredEntity } from '../../ngsi-ld/model/types.ts';

/** NotificationTrigger values (NGSI-LD v1.9.1 clause 5.2.12). */
export const TRIGGERS = [
  'entityCreated',
  'entityUpdated',
  'entityDeleted',
  'attributeCreated',
  'attributeUpdated',
  'attributeDeleted',
] as const;
export type Trigger = (typeof TRIGGERS)[number];
export const DEFAULT_TRIGGERS: Trigger[] = ['attributeCreated', 'attributeUpdated'];

export type NotificationFormat = 'normalized' | 'keyValues' | 'concise';
export const ACCEPTS = ['application/json', 'application/ld+json', 'application/geo+json'] as const;
export type Accept = (typeof ACCEPTS)[number];

export interface KeyValuePair {
  key: string;
  value: string;
}

/** Entity selector with the type expanded. `typeExpr` is a DNF: OR of AND-groups of expanded type IRIs. */
export interface EntitySelector {
  id?: string;
  idPattern?: string;
  /** the type as given (term or IRI), kept for rendering */
  type: string;
  /** expanded type expression: any group whose every type is present matches */
  typeExpr: string[][];
}

export interface GeoQ {
  geometry: string;
  coordinates: unknown;
  georel: string;
  /** expanded IRI of the GeoProperty (default ngsi-ld location) */
  geoproperty: string;
}

export interface Endpoint {
  uri: string;
  accept: Accept;
  timeout?: number;
  cooldown?: number;
  receiverInfo?: KeyValuePair[];
  notifierInfo?: KeyValuePair[];
}

export interface NotificationParams {
  /** expanded attribute names */
  attributes?: string[];
  /** entity members to pick/omit ("id", "type" kept as-is, others expanded) */
  pick?: string[];
  omit?: string[];
  format: NotificationFormat;
  showChanges: boolean;
  sysAttrs: boolean;
  endpoint: Endpoint;
  join?: 'flat' | 'inline' | '@none';
  joinLevel?: number;
}

export type SubscriptionStatus = 'active' | 'paused' | 'expired';

/**
 * A subscription in stored (expanded) form. `context` is the @context the subscription was created
 * with (or jsonldContext); notifications and retrieval compact against it.
 */
export interface Subscription {
  id: string;
  tenant: string;
  subscriptionName?: string;
  description?: string;
  entities?: EntitySelector[];
  /** expanded */
  watchedAttributes?: string[];
  notificationTrigger: Trigger[];
  timeInterval?: number;
  q?: string;
  geoQ?: GeoQ;
  scopeQ?: string;
  lang?: string;
  csf?: string;
  datasetId?: string[];
  isActive: boolean;
  /** isActive was given by the client (rendered back then; the default true is not echoed) */
  isActiveGiven?: boolean;
  expiresAt?: string;
  throttling?: number;
  notification: NotificationParams;
  jsonldContext?: string;
  context?: ContextRef;
  createdAt: string;
  modifiedAt: string;
}

/** Delivery counters kept beside the subscription (NotificationParams status members). */
export interface DeliveryStatus {
  status?: 'ok' | 'failed';
  timesSent: number;
  timesFailed: number;
  lastNotification?: string;
  lastSuccess?: string;
  lastFailure?: string;
  /** notifications given up on after the retry budget (dead letter) */
  deadLetters?: number;
}

/** Predicates compiled once per subscription for q / geoQ / scopeQ (see adapters). */
export interface CompiledFilters {
  q?: (e: StoredEntity) => boolean;
  /**
   * q with linked-entity terms (4.9, `rel{attr}`): needs the relationship targets up to `depth`
   * hops, so it is evaluated after matching, once they are loaded (q is then unset).
   */
  linkedQ?: { depth: number; test: (e: StoredEntity, getEntity: (id: string) => StoredEntity | undefined) => boolean };
  geo?: (e: StoredEntity) => boolean;
  scope?: (e: StoredEntity) => boolean;
}

/** Term expansion as used by validation (injected; the request's active context). */
export type ExpandTerm = (term: string) => string;

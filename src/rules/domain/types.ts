/**
 * Rules and alarms: the data model (pure, serialisable).
 *
 * A rule selects entities (type / id pattern / ids / geo area / q pre-filter), watches them with one
 * trigger kind, and raises an alarm per (rule, entity) when the trigger fires. Alarms follow the
 * lifecycle active -> acknowledged -> cleared and are mirrored as Smart Data Models `Alert` entities.
 */

/** Smart Data Models Alert severities (dataModel.Alert `severity`). */
export const SEVERITIES = ['informational', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Smart Data Models Alert categories (dataModel.Alert `category`). */
export const CATEGORIES = [
  'traffic', 'naturalDisaster', 'weather', 'environment', 'health', 'security', 'agriculture',
] as const;
export type Category = (typeof CATEGORIES)[number];

export const TRIGGER_KINDS = ['condition', 'rateOfChange', 'absence', 'geofence', 'anomaly'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

export interface GeoQ {
  georel: string;
  geometry: string;
  coordinates: unknown;
  geoproperty?: string;
}

/** Which entities a rule watches. At least `type`, `idPattern` or `ids` is required. */
export interface Selector {
  /** entity type (term, or full IRI) */
  type?: string;
  idPattern?: string;
  ids?: string[];
  /** only entities in this geo area (NGSI-LD geoQ) */
  geoQ?: GeoQ;
  /** pre-filter (NGSI-LD q): entities not matching it are not watched (their alarm clears) */
  q?: string;
}

/** `q` holds -> fire (optionally only once it has held for `forMs`). */
export interface ConditionTrigger {
  kind: 'condition';
  q: string;
  forMs?: number;
}

/** Numeric attribute changes faster than a limit, measured over `windowMs`, in units per `perMs`. */
export interface RateOfChangeTrigger {
  kind: 'rateOfChange';
  attribute: string;
  perMs: number;
  windowMs: number;
  /** fire when rate > riseAbove (units per `per`) */
  riseAbove?: number;
  /** fire when rate < -fallBelow... expressed as a positive number: fire when the value falls faster than this */
  fallAbove?: number;
  forMs?: number;
}

/** No update for `afterMs` (optionally: no update of `attribute`). */
export interface AbsenceTrigger {
  kind: 'absence';
  afterMs: number;
  attribute?: string;
}

/** Entity location enters / leaves / is inside / is outside a polygon. */
export interface GeofenceTrigger {
  kind: 'geofence';
  event: 'enter' | 'leave' | 'inside' | 'outside';
  /** GeoJSON Polygon or MultiPolygon */
  geometry: { type: 'Polygon' | 'MultiPolygon'; coordinates: unknown };
  geoproperty: string;
}

/** Value deviates from recent history by more than `sensitivity` standard deviations. */
export interface AnomalyTrigger {
  kind: 'anomaly';
  attribute: string;
  method: 'zscore' | 'ewma';
  /** rolling window size in samples (zscore) */
  window: number;
  /** number of standard deviations */
  sensitivity: number;
  /** samples of history needed before judging */
  minSamples: number;
  /** EWMA smoothing factor (0..1] */
  alpha: number;
  forMs?: number;
}

export type Trigger = ConditionTrigger | RateOfChangeTrigger | AbsenceTrigger | GeofenceTrigger | AnomalyTrigger;

export interface AlarmSpec {
  severity: Severity;
  category: Category;
  subCategory?: string;
  /** text with {placeholders}: {entityId} {entityType} {rule} {value} {attribute} */
  description?: string;
  /** clear the alarm automatically when the trigger stops firing (default true) */
  autoClear: boolean;
  /** the trigger must have stopped firing for this long before an auto-clear (hysteresis) */
  clearAfterMs: number;
  /** a new firing within this time after a clear reopens the same alarm (dedup of flapping) */
  reopenWithinMs: number;
}

export type ActionEvent = 'raise' | 'reopen' | 'acknowledge' | 'clear';

export interface WebhookAction {
  type: 'webhook';
  url: string;
  headers?: Record<string, string>;
  on: ActionEvent[];
}
export interface MqttAction {
  type: 'mqtt';
  /** broker URL; default: the platform's own broker */
  url?: string;
  topic: string;
  qos?: 0 | 1 | 2;
  on: ActionEvent[];
}
export interface EmailAction {
  type: 'email';
  to: string[];
  subject?: string;
  on: ActionEvent[];
}
export interface ServiceRequestAction {
  type: 'serviceRequest';
  serviceCode: string;
  serviceName?: string;
  agency?: string;
  on: ActionEvent[];
}
export type Action = WebhookAction | MqttAction | EmailAction | ServiceRequestAction;

/** A validated, normalised rule (durations in ms, defaults filled in). */
export interface Rule {
  /** short id: [A-Za-z0-9_-]{1,64} */
  id: string;
  tenant: string;
  name: string;
  description?: string;
  enabled: boolean;
  select: Selector;
  trigger: Trigger;
  alarm: AlarmSpec;
  actions: Action[];
  createdAt?: string;
  modifiedAt?: string;
}

export type AlarmStatus = 'active' | 'acknowledged' | 'cleared';

export interface Alarm {
  /** NGSI-LD id of the mirrored Alert entity */
  id: string;
  tenant: string;
  ruleId: string;
  entityId: string;
  entityType?: string;
  severity: Severity;
  category: Category;
  subCategory?: string;
  description: string;
  status: AlarmStatus;
  /** ms epoch */
  firstSeen: number;
  lastSeen: number;
  /** how many times the trigger fired for this alarm (1 + reopenings / re-firings) */
  count: number;
  acknowledgedAt?: number;
  acknowledgedBy?: string;
  clearedAt?: number;
  clearedBy?: string;
  note?: string;
  /** last value that made it fire (for messages) */
  value?: unknown;
  location?: unknown;
  /** service request entity created for this alarm, if any */
  serviceRequestId?: string;
}

/** What happened to an alarm (input of action planning and persistence). */
export interface AlarmTransition {
  event: ActionEvent | 'update';
  alarm: Alarm;
}

/** A message to deliver (action planning output). */
export interface ActionPlan {
  action: Action;
  event: ActionEvent;
  alarmId: string;
  ruleId: string;
  tenant: string;
  /** JSON body (webhook / MQTT payload) */
  payload: Record<string, unknown>;
  /** e-mail subject and text */
  subject: string;
  text: string;
  /** serviceRequest: the NGSI-LD entity to create */
  entity?: Record<string, unknown>;
}

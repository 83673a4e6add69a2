/**
 * Device-layer model, in the shapes of the FIWARE IoT Agent provisioning API (iotagent-node-lib:
 * config groups a.k.a. service groups, and devices), normalised. Field names are kept as in the
 * FIWARE API so that stored records can be returned as they were provisioned.
 */

/** One attribute mapping (active attribute, lazy attribute, command or static attribute). */
export interface AttrMapping {
  /** name of the measure as sent by the device (defaults to `name`) */
  object_id?: string;
  /** attribute name in the entity */
  name: string;
  /** FIWARE attribute type: Number, Integer, Float, Text, Boolean, DateTime, geo:point, geo:json, Relationship, command... */
  type: string;
  metadata?: Record<string, unknown>;
  /** computed attribute (safe expression language, JEXL subset) */
  expression?: string;
  skipValue?: unknown;
  /** multi-entity: the value goes to this entity instead of the device entity */
  entity_name?: string;
  entity_type?: string;
  /** static attributes */
  value?: unknown;
  /** static attribute linked-data option (NGSI-LD) */
  link?: { attributes?: string[]; name?: string; type?: string };
  /** commands: MQTT options, payload transformation */
  mqtt?: { qos?: number; retain?: boolean };
  payloadType?: string;
  contentType?: string;
  /** any other field sent by the client, kept and returned as is */
  [extra: string]: unknown;
}

/** Urbis extension (optional in both groups and devices): health expectations of the devices. */
export interface HealthSpec {
  /** expected reporting interval in seconds */
  expectedInterval?: number;
  /** a value unchanged for this many seconds is "frozen" (default: 12 x expectedInterval) */
  frozenAfter?: number;
  /** attribute carrying the battery level (default: batteryLevel) and the low threshold (default 0.15; values > 1 are read as %) */
  batteryAttr?: string;
  batteryLow?: number;
  /** valid ranges per attribute name: [min, max] */
  ranges?: Record<string, [number, number]>;
}

export interface ServiceGroup {
  /** Urbis tenant the group belongs to (mapped from fiware-service) */
  service: string;
  subservice: string;
  apikey: string;
  resource: string;
  entity_type?: string;
  timestamp?: boolean;
  trust?: string;
  cbHost?: string;
  cbroker?: string;
  attributes: AttrMapping[];
  lazy: AttrMapping[];
  commands: AttrMapping[];
  static_attributes: AttrMapping[];
  internal_attributes?: unknown;
  explicitAttrs?: boolean | string;
  entityNameExp?: string;
  ngsiVersion?: string;
  defaultEntityNameConjunction?: string;
  autoprovision: boolean;
  payloadType?: string;
  transport?: string;
  endpoint?: string;
  protocol?: string;
  description?: string;
  expressionLanguage?: string;
  health?: HealthSpec;
  [extra: string]: unknown;
}

export interface Device {
  device_id: string;
  service: string;
  service_path: string;
  entity_name: string;
  entity_type: string;
  timezone?: string;
  timestamp?: boolean;
  apikey?: string;
  endpoint?: string;
  protocol?: string;
  transport?: string;
  polling?: boolean;
  attributes: AttrMapping[];
  lazy: AttrMapping[];
  commands: AttrMapping[];
  static_attributes: AttrMapping[];
  internal_attributes?: unknown;
  explicitAttrs?: boolean | string;
  ngsiVersion?: string;
  payloadType?: string;
  /** LoRaWAN DevEUI (upper-case hex), from internal_attributes.lorawan.dev_eui or lorawan.dev_eui */
  dev_eui?: string;
  health?: HealthSpec;
  [extra: string]: unknown;
}

/** One group of measures with an optional device timestamp (UL "#" groups, JSON arrays). */
export interface MeasureGroup {
  /** measure name (object_id) -> raw value */
  values: Record<string, unknown>;
  /** ISO time given by the device for this group */
  observedAt?: string;
}

/** Where a measure came from (for counters and device metadata). */
export type Transport = 'mqtt' | 'http' | 'lorawan';
export type PayloadFormat = 'json' | 'ul';

/**
 * The broker's internal entity representation ("stored form").
 *
 * Every term that JSON-LD would expand is stored expanded (type names, attribute names,
 * sub-attribute names, objectType, VocabProperty values); values inside Property values are
 * kept verbatim. Each attribute is an array of instances (one per datasetId; the default
 * instance has no datasetId), so SQL and in-memory evaluation see one shape.
 * Sub-attributes are stored as extra keys of the instance, keyed by their expanded IRI: the
 * core keys below never contain ':' while expanded IRIs always do, so they cannot collide.
 */

export type AttrType =
  | 'Property'
  | 'Relationship'
  | 'GeoProperty'
  | 'LanguageProperty'
  | 'VocabProperty'
  | 'JsonProperty'
  | 'ListProperty'
  | 'ListRelationship';

export interface AttrInstance {
  type: AttrType;
  /** Property, GeoProperty (GeoJSON geometry object) */
  value?: unknown;
  /** Relationship: object URI (or array of URIs) */
  object?: string | string[];
  /** Relationship / ListRelationship: expanded type(s) of the target */
  objectType?: string | string[];
  /** LanguageProperty */
  languageMap?: Record<string, string | string[]>;
  /** VocabProperty: expanded IRI(s) */
  vocab?: string | string[];
  /** JsonProperty: raw JSON, never expanded */
  json?: unknown;
  /** ListProperty */
  valueList?: unknown[];
  /** ListRelationship: list of object URIs */
  objectList?: string[];
  datasetId?: string;
  observedAt?: string;
  unitCode?: string;
  /** transient instance: gone after this instant */
  expiresAt?: string;
  createdAt?: string;
  modifiedAt?: string;
  /** sub-attributes keyed by expanded IRI (value is a single AttrInstance) */
  [subAttrIri: string]: unknown;
}

export interface StoredEntity {
  id: string;
  /** expanded type IRIs, at least one */
  type: string[];
  scope?: string[];
  createdAt: string;
  modifiedAt: string;
  /** transient entity: gone after this instant (clause 4.22) */
  expiresAt?: string;
  /** attributes keyed by expanded IRI; each an array of instances (distinct datasetIds) */
  attrs: Record<string, AttrInstance[]>;
}

/** Core keys of an attribute instance that are not sub-attributes. */
export const INSTANCE_CORE_KEYS = new Set([
  'type', 'value', 'object', 'objectType', 'languageMap', 'vocab', 'json', 'valueList', 'objectList',
  'datasetId', 'observedAt', 'unitCode', 'createdAt', 'modifiedAt', 'deletedAt', 'instanceId', 'expiresAt', 'lang', 'valueType',
]);

export const NGSI_LD = 'https://uri.etsi.org/ngsi-ld/';
/** Expanded IRIs of the core attribute names that have special meaning. */
export const IRI = {
  location: 'https://uri.etsi.org/ngsi-ld/location',
  observationSpace: 'https://uri.etsi.org/ngsi-ld/observationSpace',
  operationSpace: 'https://uri.etsi.org/ngsi-ld/operationSpace',
  name: 'https://uri.etsi.org/ngsi-ld/name',
  description: 'https://uri.etsi.org/ngsi-ld/description',
  observedAt: 'https://uri.etsi.org/ngsi-ld/observedAt',
  createdAt: 'https://uri.etsi.org/ngsi-ld/createdAt',
  modifiedAt: 'https://uri.etsi.org/ngsi-ld/modifiedAt',
  unitCode: 'https://uri.etsi.org/ngsi-ld/unitCode',
  datasetId: 'https://uri.etsi.org/ngsi-ld/datasetId',
} as const;

/** Term expander/compactor used by pure modules that need to resolve attribute names. */
export interface TermResolver {
  /** expand a term used as property/attribute name or type name (vocab-relative) */
  expandTerm(term: string): string;
  /** compact an IRI back to the shortest term of the active context */
  compactIri(iri: string): string;
}

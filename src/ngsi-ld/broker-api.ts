/**
 * The in-process face of the NGSI-LD broker, used by the HTTP API and by other modules
 * (devices, KPIs, rules, dashboard feed). Entities go in and come out as NGSI-LD JSON whose terms
 * are compacted against `context` (a URL, an inline context object, an array, or undefined for the
 * core context only), exactly as over HTTP.
 */
export type ContextRef = string | Record<string, unknown> | (string | Record<string, unknown>)[] | undefined;

export type Format = 'normalized' | 'keyValues' | 'concise';

export interface QueryParams {
  id?: string[];
  idPattern?: string;
  /** type expression as in ?type= */
  type?: string;
  attrs?: string[];
  pick?: string[];
  omit?: string[];
  q?: string;
  scopeQ?: string;
  geoQ?: { georel: string; geometry: string; coordinates: string | unknown; geoproperty?: string };
  lang?: string;
  datasetId?: string[];
  format?: Format;
  sysAttrs?: boolean;
  limit?: number;
  offset?: number;
  count?: boolean;
  context?: ContextRef;
  /** linked entity retrieval (clause 4.5.23): inline the targets of relationships, or list them after the entities */
  join?: 'inline' | 'flat' | '@none';
  /** how many relationship hops join follows (default 1) */
  joinLevel?: number;
  /** ordering (clause 4.23): `path[;asc|desc|dist-asc|dist-desc]`, comma-separated */
  orderBy?: string;
  /** reference point of dist-asc / dist-desc: [lon, lat] (JSON text or array) */
  orderFrom?: string | number[];
  /** BCP 47 tag of the collation used to order strings (default: code point order) */
  collation?: string;
  /** attributes whose q values are expanded against the @context (VocabProperty values) */
  expandValues?: string[];
  /** false: allow a query without any filter (internal callers, entity listing for the dashboard) */
  requireFilter?: boolean;
}

export interface QueryResult {
  entities: Record<string, unknown>[];
  /** total matches when count was asked */
  count?: number;
}

export interface BatchResult {
  success: string[];
  errors: { entityId: string; error: { type: string; title: string; status: number; detail?: string } }[];
}

export interface BrokerApi {
  createEntity(tenant: string, entity: Record<string, unknown>, context?: ContextRef): Promise<void>;
  /** batch upsert: replace (default) or update existing entities; one SQL round trip per call */
  upsertEntities(
    tenant: string,
    entities: Record<string, unknown>[],
    opts?: { context?: ContextRef; mode?: 'replace' | 'update' },
  ): Promise<BatchResult>;
  /** PATCH /entities/{id}/attrs semantics (partial update of existing attributes) */
  updateAttrs(tenant: string, id: string, attrs: Record<string, unknown>, context?: ContextRef): Promise<void>;
  /** PATCH /entities/{id} (merge) semantics: create missing attributes, merge existing ones */
  mergeEntity(tenant: string, id: string, fragment: Record<string, unknown>, context?: ContextRef): Promise<void>;
  getEntity(
    tenant: string,
    id: string,
    opts?: { context?: ContextRef; attrs?: string[]; format?: Format; sysAttrs?: boolean },
  ): Promise<Record<string, unknown> | null>;
  queryEntities(tenant: string, params: QueryParams): Promise<QueryResult>;
  deleteEntity(tenant: string, id: string): Promise<void>;
}

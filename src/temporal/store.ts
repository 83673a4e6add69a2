import { randomUUID } from 'node:crypto';
import type { ChangeEvent } from '../bus/change-bus.ts';
import type { AttrInstance } from '../ngsi-ld/model/types.ts';
import type { Db } from '../store/db.ts';
import { migrateModule, type Migration } from '../store/schema.ts';
import type { AggrMethod, AggregationSpec, TemporalQuery } from './params.ts';

/**
 * Attribute history (temporal evolution). One row per attribute instance version: the stored-form
 * instance, its numeric value for aggregation, observedAt/createdAt/modifiedAt/deletedAt as epoch
 * ms. `ts` (observedAt, else modifiedAt) is the time key: on PostgreSQL the table is range
 * partitioned by it (one partition per month, created on demand, plus a default partition) with a
 * BRIN index; on PGlite it is a plain table. A btree (tenant, entity_id, attr, ts) serves per-entity
 * time ranges everywhere. An hourly rollup (count/sum/sumsq/min/max) makes long aggregations cheap.
 */
const HOUR = 3_600_000;

/**
 * The Entity Scope is kept as a temporal property (4.18 / 4.5.6): history rows under this
 * attribute name, each instance {type: Property, value: scope | scope[]}, valid from its time until
 * the next scope instance or tombstone of the entity.
 */
export const SCOPE_ATTR = 'https://uri.etsi.org/ngsi-ld/scope';

export function historyMigrations(kind: Db['kind']): Migration[] {
  const pg = kind === 'postgres';
  return [
    {
      version: 1,
      sql: `
CREATE TABLE IF NOT EXISTS temporal_entities (
  tenant text NOT NULL,
  id text NOT NULL,
  types text[] NOT NULL,
  scopes text[],
  created_at bigint NOT NULL,
  modified_at bigint NOT NULL,
  deleted_at bigint,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS temporal_entities_types ON temporal_entities USING gin (types);

CREATE TABLE IF NOT EXISTS attr_history (
  tenant text NOT NULL,
  entity_id text NOT NULL,
  attr text NOT NULL,
  dataset_id text NOT NULL DEFAULT '',
  instance_id text NOT NULL,
  attr_type text NOT NULL,
  instance jsonb,
  num double precision,
  vkey text,
  ts bigint NOT NULL,
  observed_at bigint,
  created_at bigint NOT NULL,
  modified_at bigint NOT NULL,
  deleted_at bigint
)${pg ? ' PARTITION BY RANGE (ts)' : ''};
${pg ? 'CREATE TABLE IF NOT EXISTS attr_history_default PARTITION OF attr_history DEFAULT;' : ''}
CREATE INDEX IF NOT EXISTS attr_history_entity_ts ON attr_history (tenant, entity_id, attr, ts);
CREATE INDEX IF NOT EXISTS attr_history_instance ON attr_history (tenant, entity_id, instance_id);
${pg ? 'CREATE INDEX IF NOT EXISTS attr_history_ts_brin ON attr_history USING brin (ts);' : ''}

CREATE TABLE IF NOT EXISTS attr_rollup_hour (
  tenant text NOT NULL,
  entity_id text NOT NULL,
  attr text NOT NULL,
  dataset_id text NOT NULL DEFAULT '',
  hour bigint NOT NULL,
  cnt bigint NOT NULL,
  nnum bigint NOT NULL,
  sum double precision,
  sumsq double precision,
  min double precision,
  max double precision,
  PRIMARY KEY (tenant, entity_id, attr, dataset_id, hour)
);

CREATE TABLE IF NOT EXISTS temporal_retention (
  tenant text NOT NULL,
  entity_type text NOT NULL DEFAULT '',
  days int NOT NULL,
  PRIMARY KEY (tenant, entity_type)
);
`,
    },
    {
      // scope history: seed one instance per entity from the scope kept so far (latest only)
      version: 2,
      sql: `
INSERT INTO attr_history (tenant, entity_id, attr, dataset_id, instance_id, attr_type, instance, ts, created_at, modified_at)
SELECT e.tenant, e.id, '${SCOPE_ATTR}', '', 'urn:ngsi-ld:attribute:instance:scope-' || md5(e.tenant || e.id), 'Property',
       jsonb_build_object('type', 'Property', 'value', CASE WHEN array_length(e.scopes, 1) = 1 THEN to_jsonb(e.scopes[1]) ELSE to_jsonb(e.scopes) END),
       e.modified_at, e.created_at, e.modified_at
FROM temporal_entities e
WHERE e.scopes IS NOT NULL AND array_length(e.scopes, 1) > 0
  AND NOT EXISTS (SELECT 1 FROM attr_history h WHERE h.tenant = e.tenant AND h.entity_id = e.id AND h.attr = '${SCOPE_ATTR}');
`,
    },
    {
      // hourly aggregations read the rollup per entity and hour: key in (entity, attr, hour) order
      // and the values INCLUDEd, so that a series is one index-only range scan (no heap page per
      // hour; needs the visibility map: autovacuum on PostgreSQL, maintain() on PGlite). Upserts
      // still find the row by the same key columns (ON CONFLICT infers the index by its columns).
      version: 3,
      sql: `
ALTER TABLE attr_rollup_hour DROP CONSTRAINT IF EXISTS attr_rollup_hour_pkey;
ALTER TABLE attr_rollup_hour ADD CONSTRAINT attr_rollup_hour_pkey PRIMARY KEY (tenant, entity_id, attr, hour, dataset_id)
  INCLUDE (cnt, nnum, sum, sumsq, min, max);
`,
    },
  ];
}

/** One history row to write. */
export interface HistoryRow {
  attr: string;
  instance?: AttrInstance;
  /** tombstone of a deleted attribute instance */
  deletedAt?: number;
  datasetId?: string;
}

export interface HistoryInstance {
  entityId: string;
  attr: string;
  datasetId?: string;
  instanceId: string;
  attrType: string;
  instance: AttrInstance | null;
  /** value of the requested time property (ms) */
  t: number;
  observedAt?: number;
  createdAt: number;
  modifiedAt: number;
  deletedAt?: number;
  /** scope instances: time (ts) at which the next scope instance / tombstone replaced it */
  validUntil?: number;
}

export interface TemporalEntityRow {
  tenant?: string;
  id: string;
  types: string[];
  scopes?: string[];
  createdAt: number;
  modifiedAt: number;
  deletedAt?: number;
}

export interface AggregateParams {
  tenant: string;
  entityIds: string[];
  attrs?: string[];
  datasetIds?: string[];
  q: TemporalQuery;
  spec: AggregationSpec;
}

export interface AggBucket {
  start: number;
  end: number;
  values: Partial<Record<AggrMethod, number | null>>;
}

/**
 * The buckets of one attribute, column-wise: bucket starts and, per method, the values as one text
 * of comma-separated JSON literals ("12.5,null,13"), as the database wrote them (string_agg): no
 * per-bucket objects or strings on the hot path. `values` splits them and `buckets` builds bucket
 * objects on demand. Series on the same period grid share one `starts` array.
 */
export class AggSeries {
  private split?: Partial<Record<AggrMethod, string[]>>;
  constructor(
    readonly entityId: string,
    readonly attr: string,
    readonly attrType: string,
    readonly starts: number[],
    readonly endOf: (start: number) => number,
    /** per method: one JSON literal per bucket, comma-separated */
    readonly text: Partial<Record<AggrMethod, string>>,
  ) {}

  /** per method: one JSON literal per bucket */
  get values(): Partial<Record<AggrMethod, string[]>> {
    if (!this.split) {
      this.split = {};
      for (const [m, t] of Object.entries(this.text) as [AggrMethod, string][]) this.split[m] = t === '' ? [] : t.split(',');
    }
    return this.split;
  }

  get buckets(): AggBucket[] {
    const vals = Object.entries(this.values) as [AggrMethod, string[]][];
    return this.starts.map((start, k) => {
      const values: Partial<Record<AggrMethod, number | null>> = {};
      for (const [m, v] of vals) values[m] = v[k] === 'null' ? null : Number(v[k]);
      return { start, end: this.endOf(start), values };
    });
  }
}

/**
 * PostgreSQL writes NaN / Infinity, which are not JSON numbers: null instead. `text` is a
 * comma-separated list of literals; the common case (no such value) is one regex test.
 */
function jsonLiterals(text: string | null | undefined): string {
  if (!text) return '';
  if (!/[NI]/.test(text)) return text;
  return text
    .split(',')
    .map((v) => (v === 'NaN' || v.endsWith('Infinity') ? 'null' : v))
    .join(',');
}

/** Shared `starts` arrays of contiguous grids and the matching canonical index texts ("0,1,...,n-1"). */
const gridCache = new Map<string, number[]>();
function gridStarts(first: number, period: number, n: number): number[] {
  const key = `${first}|${period}|${n}`;
  let g = gridCache.get(key);
  if (!g) {
    g = Array.from({ length: n }, (_, k) => first + k * period);
    if (gridCache.size > 64) gridCache.clear();
    gridCache.set(key, g);
  }
  return g;
}
const canonCache = new Map<number, string>();
function canonicalIndexes(n: number): string {
  let c = canonCache.get(n);
  if (c === undefined) {
    c = Array.from({ length: n }, (_, k) => k).join(',');
    if (canonCache.size > 64) canonCache.clear();
    canonCache.set(n, c);
  }
  return c;
}

const TIME_COL: Record<TemporalQuery['timeproperty'], string> = {
  observedAt: 'ts',
  createdAt: 'created_at',
  modifiedAt: 'modified_at',
  deletedAt: 'deleted_at',
};

const VALUE_KEY: Record<string, string> = {
  Property: 'value',
  GeoProperty: 'value',
  Relationship: 'object',
  LanguageProperty: 'languageMap',
  VocabProperty: 'vocab',
  JsonProperty: 'json',
  ListProperty: 'valueList',
  ListRelationship: 'objectList',
};

export function instanceValue(i: AttrInstance): unknown {
  return i[VALUE_KEY[i.type] ?? 'value'];
}

function numOf(i: AttrInstance): number | null {
  const v = instanceValue(i);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}

const ms = (s: string | undefined, dflt: number): number => {
  if (!s) return dflt;
  const t = Date.parse(s);
  return Number.isNaN(t) ? dflt : t;
};

const n = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

const isoMs = (t: number): string => {
  const x = new Date(t).toISOString();
  return x.endsWith('.000Z') ? x.slice(0, -5) + 'Z' : x;
};

/** A scope instance (value: the scope, or the list when there are several). */
export function scopeInstance(scopes: string[], observedAt?: string): AttrInstance {
  const i: AttrInstance = { type: 'Property', value: scopes.length === 1 ? scopes[0] : [...scopes] };
  if (observedAt) i.observedAt = observedAt;
  return i;
}

export function newInstanceId(): string {
  return `urn:ngsi-ld:attribute:instance:${randomUUID()}`;
}

export class HistoryStore {
  private partitions = new Set<number>();
  constructor(private db: Db) {}

  async migrate(): Promise<void> {
    await migrateModule(this.db, 'temporal', historyMigrations(this.db.kind));
  }

  /**
   * PostgreSQL: make sure the monthly partitions covering `times` exist (idempotent, cached).
   * Public for bulk loaders (bench/temporal.ts) that write attr_history with set-based SQL.
   */
  async ensurePartitions(times: number[], db: Db = this.db): Promise<void> {
    if (this.db.kind !== 'postgres') return;
    const months = new Set<number>();
    for (const t of times) {
      const d = new Date(t);
      months.add(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
    }
    for (const m of months) {
      if (this.partitions.has(m)) continue;
      const d = new Date(m);
      const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
      const name = `attr_history_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
      const exists = await db.query<{ x: number }>(`SELECT 1 AS x FROM pg_class WHERE relname = $1`, [name]);
      if (exists.length === 0) {
        try {
          // rows of that month may already sit in the default partition: move them while attaching
          await db.tx(async (t) => {
            await t.exec(`CREATE TABLE IF NOT EXISTS ${name} (LIKE attr_history INCLUDING DEFAULTS)`);
            await t.exec(`WITH moved AS (DELETE FROM attr_history_default WHERE ts >= ${m} AND ts < ${next} RETURNING *)
                          INSERT INTO ${name} SELECT * FROM moved`);
            await t.exec(`ALTER TABLE attr_history ATTACH PARTITION ${name} FOR VALUES FROM (${m}) TO (${next})`);
          });
        } catch {
          // another node attached it concurrently: fine (rows then go to that partition or the default one)
        }
      }
      this.partitions.add(m);
    }
  }

  /** Records the history implied by change events (one statement per table for the whole batch). */
  async recordEvents(events: ChangeEvent[]): Promise<void> {
    const ents: TemporalEntityRow[] = [];
    const rows: (HistoryRow & { tenant: string; entityId: string; at: number })[] = [];
    for (const ev of events) {
      const at = ms(ev.at, Date.now());
      const src = ev.after ?? ev.before;
      if (!src) continue;
      ents.push({
        tenant: ev.tenant,
        id: ev.entityId,
        types: src.type,
        scopes: src.scope,
        createdAt: ms(src.createdAt, at),
        modifiedAt: at,
        deletedAt: ev.kind === 'delete' ? at : undefined,
      });
      const before = ev.before?.attrs ?? {};
      const after = ev.after?.attrs ?? {};
      const push = (r: HistoryRow) => rows.push({ ...r, tenant: ev.tenant, entityId: ev.entityId, at });
      if (ev.kind === 'delete') {
        for (const [a, insts] of Object.entries(before)) for (const i of insts) push({ attr: a, datasetId: i.datasetId, deletedAt: at });
        if (ev.before?.scope?.length) push({ attr: SCOPE_ATTR, deletedAt: at });
        continue;
      }
      // scope changes become instances of the scope temporal property (observedAt = modifiedAt, 4.5.6)
      const sb = ev.before?.scope ?? [];
      const sa = ev.after?.scope ?? [];
      if (sb.length !== sa.length || sb.some((x, k) => x !== sa[k])) {
        if (sa.length) push({ attr: SCOPE_ATTR, instance: scopeInstance(sa, isoMs(at)) });
        else push({ attr: SCOPE_ATTR, deletedAt: at });
      }
      const changed = ev.kind === 'create' ? Object.keys(after) : ev.changedAttrs;
      const deleted = new Set(ev.deletedAttrs ?? []);
      if (ev.kind === 'replace') for (const a of Object.keys(before)) if (!(a in after)) deleted.add(a);
      for (const a of changed) {
        if (deleted.has(a)) continue;
        const now = after[a];
        if (!now) {
          deleted.add(a);
          continue;
        }
        const prev = before[a] ?? [];
        for (const i of now) {
          const p = prev.find((x) => (x.datasetId ?? '') === (i.datasetId ?? ''));
          if (p && JSON.stringify(p) === JSON.stringify(i)) continue;
          push({ attr: a, instance: i });
        }
        for (const p of prev) {
          if (!now.some((x) => (x.datasetId ?? '') === (p.datasetId ?? ''))) push({ attr: a, datasetId: p.datasetId, deletedAt: at });
        }
      }
      for (const a of deleted) for (const i of before[a] ?? []) push({ attr: a, datasetId: i.datasetId, deletedAt: at });
    }
    await this.write(ents, rows);
  }

  /** Writes entity rows (upsert) and history rows; also feeds the hourly rollup. */
  async write(
    ents: TemporalEntityRow[],
    rows: (HistoryRow & { tenant: string; entityId: string; at: number })[],
    tenantOfEnts?: string,
    opts: { replaceObserved?: boolean } = {},
  ): Promise<void> {
    if (ents.length === 0 && rows.length === 0) return;
    const hist = rows.map((r) => {
      const i = r.instance;
      const observed = i?.observedAt ? ms(i.observedAt, r.at) : undefined;
      const modified = r.deletedAt ?? ms(i?.modifiedAt, r.at);
      const created = ms(i?.createdAt, r.at);
      const ts = r.deletedAt ?? observed ?? modified;
      const inst = i ? { ...i } : null;
      if (inst) {
        delete inst.createdAt;
        delete inst.modifiedAt;
        delete inst.instanceId;
      }
      return {
        tenant: r.tenant,
        entity_id: r.entityId,
        attr: r.attr,
        dataset_id: (i?.datasetId ?? r.datasetId) || '',
        instance_id: (typeof i?.instanceId === 'string' && i.instanceId) || newInstanceId(),
        attr_type: i?.type ?? 'Property',
        instance: inst,
        num: i && !r.deletedAt ? numOf(i) : null,
        vkey: i ? JSON.stringify(instanceValue(i) ?? null) : null,
        ts,
        observed_at: observed ?? null,
        created_at: created,
        modified_at: modified,
        deleted_at: r.deletedAt ?? null,
      };
    });
    const entRows = ents.map((e) => ({
      tenant: e.tenant ?? tenantOfEnts ?? rows[0]?.tenant ?? '',
      id: e.id,
      types: e.types,
      scopes: e.scopes ?? null,
      created_at: e.createdAt,
      modified_at: e.modifiedAt,
      deleted_at: e.deletedAt ?? null,
    }));
    await this.ensurePartitions(hist.map((h) => h.ts), this.db);
    await this.db.tx(async (t) => {
      if (entRows.length) {
        await t.query(
          `INSERT INTO temporal_entities (tenant, id, types, scopes, created_at, modified_at, deleted_at)
           SELECT DISTINCT ON (j->>'tenant', j->>'id') j->>'tenant', j->>'id', ARRAY(SELECT jsonb_array_elements_text(j->'types')),
                  CASE WHEN jsonb_typeof(j->'scopes') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(j->'scopes')) END,
                  (j->>'created_at')::bigint, (j->>'modified_at')::bigint, (j->>'deleted_at')::bigint
           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(j, ord)
           ORDER BY j->>'tenant', j->>'id', a.ord DESC
           ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scopes = excluded.scopes,
             modified_at = GREATEST(temporal_entities.modified_at, excluded.modified_at), deleted_at = excluded.deleted_at,
             created_at = LEAST(temporal_entities.created_at, excluded.created_at)`,
          [JSON.stringify(entRows)],
        );
      }
      // upsert of a temporal entity (5.6.11): an instance observed at the same time as a stored one
      // of the same attribute and datasetId replaces it
      const replaced = new Map<string, [string, string, string]>();
      if (opts.replaceObserved) {
        const keyed = hist.filter((h) => h.observed_at !== null && h.deleted_at === null);
        if (keyed.length) {
          const r = await t.query<{ tenant: string; entity_id: string; attr: string }>(
            `DELETE FROM attr_history h USING jsonb_to_recordset($1::jsonb) AS x(tenant text, entity_id text, attr text, dataset_id text, observed_at bigint)
             WHERE h.tenant = x.tenant AND h.entity_id = x.entity_id AND h.attr = x.attr AND h.dataset_id = x.dataset_id
               AND h.observed_at = x.observed_at AND h.deleted_at IS NULL
             RETURNING h.tenant, h.entity_id, h.attr`,
            [JSON.stringify(keyed.map((h) => ({ tenant: h.tenant, entity_id: h.entity_id, attr: h.attr, dataset_id: h.dataset_id, observed_at: h.observed_at })))],
          );
          for (const x of r) replaced.set(`${x.tenant}\u0000${x.entity_id}\u0000${x.attr}`, [x.tenant, x.entity_id, x.attr]);
        }
      }
      const CHUNK = 5000;
      for (let k = 0; k < hist.length; k += CHUNK) {
        const part = JSON.stringify(hist.slice(k, k + CHUNK));
        await t.query(
          `INSERT INTO attr_history (tenant, entity_id, attr, dataset_id, instance_id, attr_type, instance, num, vkey, ts,
                                     observed_at, created_at, modified_at, deleted_at)
           SELECT tenant, entity_id, attr, dataset_id, instance_id, attr_type, instance, num, vkey, ts, observed_at, created_at,
                  modified_at, deleted_at
           FROM jsonb_to_recordset($1::jsonb) AS x(tenant text, entity_id text, attr text, dataset_id text, instance_id text,
                attr_type text, instance jsonb, num double precision, vkey text, ts bigint, observed_at bigint, created_at bigint,
                modified_at bigint, deleted_at bigint)`,
          [part],
        );
        await t.query(
          `INSERT INTO attr_rollup_hour AS r (tenant, entity_id, attr, dataset_id, hour, cnt, nnum, sum, sumsq, min, max)
           SELECT tenant, entity_id, attr, dataset_id, (ts - ((ts % ${HOUR}) + ${HOUR}) % ${HOUR}) AS hour, count(*), count(num), sum(num),
                  sum(num * num), min(num), max(num)
           FROM jsonb_to_recordset($1::jsonb) AS x(tenant text, entity_id text, attr text, dataset_id text, num double precision,
                ts bigint, deleted_at bigint)
           WHERE deleted_at IS NULL
           GROUP BY 1, 2, 3, 4, 5
           ON CONFLICT (tenant, entity_id, attr, dataset_id, hour) DO UPDATE SET cnt = r.cnt + excluded.cnt,
             nnum = r.nnum + excluded.nnum, sum = COALESCE(r.sum, 0) + COALESCE(excluded.sum, 0),
             sumsq = COALESCE(r.sumsq, 0) + COALESCE(excluded.sumsq, 0), min = LEAST(r.min, excluded.min),
             max = GREATEST(r.max, excluded.max)`,
          [part],
        );
      }
      for (const [tenant, id, attr] of replaced.values()) await this.refreshRollup(tenant, id, attr, t);
    });
  }

  /** Rebuilds the rollup of one entity (optionally one attribute) from raw history. */
  async refreshRollup(tenant: string, entityId: string, attr?: string, db: Db = this.db): Promise<void> {
    await db.query(
      `DELETE FROM attr_rollup_hour WHERE tenant = $1 AND entity_id = $2 AND ($3::text IS NULL OR attr = $3)`,
      [tenant, entityId, attr ?? null],
    );
    await db.query(
      `INSERT INTO attr_rollup_hour (tenant, entity_id, attr, dataset_id, hour, cnt, nnum, sum, sumsq, min, max)
       SELECT tenant, entity_id, attr, dataset_id, (ts - ((ts % ${HOUR}) + ${HOUR}) % ${HOUR}), count(*), count(num), sum(num), sum(num * num),
              min(num), max(num)
       FROM attr_history WHERE tenant = $1 AND entity_id = $2 AND ($3::text IS NULL OR attr = $3) AND deleted_at IS NULL
       GROUP BY 1, 2, 3, 4, 5`,
      [tenant, entityId, attr ?? null],
    );
  }

  async getEntity(tenant: string, id: string): Promise<TemporalEntityRow | null> {
    const r = await this.db.query<Record<string, unknown>>(`SELECT * FROM temporal_entities WHERE tenant = $1 AND id = $2`, [tenant, id]);
    return r[0] ? entRow(r[0]) : null;
  }

  /**
   * Entities with history matching ids / idPattern / type (DNF of expanded types) / attrs, by id.
   * Returns the page and, when asked, the total.
   */
  async queryEntities(p: {
    tenant: string;
    ids?: string[];
    idPattern?: string;
    typeGroups?: string[][];
    attrs?: string[];
    limit: number;
    offset: number;
    count?: boolean;
    /** only entities with at least one instance in this window (of `attrs` / `datasetIds` when given) */
    window?: { q: TemporalQuery; datasetIds?: string[] };
    desc?: boolean;
  }): Promise<{ entities: TemporalEntityRow[]; count?: number }> {
    const params: unknown[] = [
      p.tenant,
      p.ids ?? null,
      p.idPattern ?? null,
      p.typeGroups ? JSON.stringify(p.typeGroups) : null,
      p.attrs ?? null,
    ];
    let where = `tenant = $1 AND ($2::text[] IS NULL OR id = ANY($2)) AND ($3::text IS NULL OR id ~ $3)
      AND ($4::jsonb IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4::jsonb) g
            WHERE e.types @> ARRAY(SELECT jsonb_array_elements_text(g))))`;
    if (!p.window) where += ` AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM attr_history h WHERE h.tenant = e.tenant AND h.entity_id = e.id AND h.attr = ANY($5)))`;
    else {
      // (an instance of `attrs` in the window implies the plain attrs test above)
      const w = p.window;
      // observedAt windows on whole hours: the hourly rollup has a row per entity, attribute,
      // datasetId and hour with at least one live instance, so the test is one index-only probe of
      // its covering key instead of history index + heap pages (the cold cost of big queries)
      const hourly = w.q.timeproperty === 'observedAt' && [w.q.timeAt, w.q.endTimeAt].every((t) => t === undefined || t % HOUR === 0);
      const col = hourly ? 'h.hour' : 'h.' + TIME_COL[w.q.timeproperty];
      const c: string[] = ['h.tenant = e.tenant', 'h.entity_id = e.id', '($5::text[] IS NULL OR h.attr = ANY($5))'];
      if (!hourly) c.push(w.q.timeproperty === 'deletedAt' ? 'h.deleted_at IS NOT NULL' : 'h.deleted_at IS NULL');
      if (w.datasetIds) {
        params.push(w.datasetIds);
        c.push(`(CASE WHEN h.dataset_id = '' THEN '@none' ELSE h.dataset_id END) = ANY($${params.length}::text[])`);
      }
      const tr = timerelSql(w.q, col, params, '::bigint');
      if (tr) c.push(tr);
      where += ` AND EXISTS (SELECT 1 FROM ${hourly ? 'attr_rollup_hour' : 'attr_history'} h WHERE ${c.join(' AND ')})`;
    }
    const n0 = params.length;
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT * FROM temporal_entities e WHERE ${where} ORDER BY id ${p.desc ? 'DESC' : 'ASC'} LIMIT $${n0 + 1} OFFSET $${n0 + 2}`,
      [...params, p.limit, p.offset],
    );
    let count: number | undefined;
    if (p.count) {
      const c = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM temporal_entities e WHERE ${where}`, params);
      count = Number(c[0].n);
    }
    return { entities: rows.map(entRow), count };
  }

  /** Instances of the given entities' attributes matching the temporal query, per attribute in time order (newest first with lastN). */
  async queryInstances(p: {
    tenant: string;
    entityIds: string[];
    attrs?: string[];
    datasetIds?: string[];
    q: TemporalQuery;
    /** include the scope instances valid within the window even when attrs does not name them (default true) */
    withScope?: boolean;
  }): Promise<HistoryInstance[]> {
    if (p.entityIds.length === 0) return [];
    const col = TIME_COL[p.q.timeproperty];
    const cond: string[] = ['tenant = $1', 'entity_id = ANY($2)', '($3::text[] IS NULL OR attr = ANY($3))'];
    cond.push(`($4::text[] IS NULL OR (CASE WHEN dataset_id = '' THEN '@none' ELSE dataset_id END) = ANY($4))`);
    // scope instances are selected by validity (below), not by their own time
    const scopeByValidity = p.q.timeproperty !== 'deletedAt';
    if (scopeByValidity) cond.push(`attr <> '${SCOPE_ATTR}'`);
    if (p.q.timeproperty === 'deletedAt') cond.push('deleted_at IS NOT NULL');
    else cond.push('deleted_at IS NULL');
    const params: unknown[] = [p.tenant, p.entityIds, p.attrs ?? null, p.datasetIds ?? null];
    const tr = timerelSql(p.q, col, params);
    if (tr) cond.push(tr);
    const dir = p.q.lastN ? 'DESC' : 'ASC';
    let sql = `SELECT entity_id, attr, dataset_id, instance_id, attr_type, instance, ${col} AS t, observed_at, created_at, modified_at, deleted_at
               FROM attr_history WHERE ${cond.join(' AND ')}`;
    if (p.q.lastN) {
      params.push(p.q.lastN);
      sql = `SELECT * FROM (SELECT x.*, row_number() OVER (PARTITION BY entity_id, attr ORDER BY t DESC, instance_id) AS rn
             FROM (${sql}) x) y WHERE rn <= $${params.length}`;
    }
    sql += ` ORDER BY entity_id, attr, t ${dir}, instance_id`;
    const rows = await this.db.query<Record<string, unknown>>(sql, params);
    const out = rows.map(histRow);
    const wantScope = (p.withScope ?? true) || (p.attrs?.includes(SCOPE_ATTR) ?? false);
    if (scopeByValidity && wantScope && (!p.datasetIds || p.datasetIds.includes('@none'))) {
      for (const r of await this.scopeInstances(p.tenant, p.entityIds, p.q)) out.push(r);
    }
    return out;
  }

  /**
   * Scope instances valid at some time within the window (4.18: a scope is valid from the time it
   * is set until it is replaced or removed), with their validity end; newest last (lastN keeps the
   * last N, newest first).
   */
  async scopeInstances(tenant: string, entityIds: string[], q: TemporalQuery): Promise<HistoryInstance[]> {
    const col = TIME_COL[q.timeproperty];
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT entity_id, attr, dataset_id, instance_id, attr_type, instance, ts, ${col} AS t, observed_at, created_at, modified_at, deleted_at
       FROM attr_history WHERE tenant = $1 AND entity_id = ANY($2) AND attr = '${SCOPE_ATTR}' ORDER BY entity_id, ts, instance_id`,
      [tenant, entityIds],
    );
    const out: HistoryInstance[] = [];
    let group: HistoryInstance[] = [];
    const flush = () => {
      if (q.lastN !== undefined) group = group.slice(-q.lastN).reverse();
      for (const g of group) out.push(g);
      group = [];
    };
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k];
      if (k > 0 && rows[k - 1].entity_id !== r.entity_id) flush();
      if (r.deleted_at !== null && r.deleted_at !== undefined) continue;
      const from = Number(r.ts);
      const nx = rows[k + 1];
      const until = nx && nx.entity_id === r.entity_id ? Number(nx.ts) : undefined;
      const endsAfter = (x: number) => until === undefined || until > x;
      let ok = true;
      if (q.timerel === 'before') ok = from < q.timeAt!;
      else if (q.timerel === 'after') ok = endsAfter(q.timeAt!);
      else if (q.timerel === 'between') ok = from < q.endTimeAt! && endsAfter(q.timeAt!);
      if (!ok) continue;
      const h = histRow(r);
      h.validUntil = until;
      group.push(h);
    }
    flush();
    return out;
  }

  /**
   * Aggregation per attribute and period (4.5.19): buckets [start, start+period) anchored at timeAt
   * (timerel after/between) or at each attribute's first instance. Computed in SQL; served from
   * the hourly rollup when the request allows it (observedAt, hour-aligned anchor and period,
   * no distinctCount, no datasetId filter), from raw history otherwise. With PT1H the rollup rows
   * are the buckets (`hourly`); other periods regroup rollup rows or raw instances. Series come
   * back ordered by entity id, then attribute.
   */
  async aggregate(p: AggregateParams): Promise<AggSeries[]> {
    if (p.entityIds.length === 0) return [];
    const anchor = p.q.timerel === 'after' || p.q.timerel === 'between' ? p.q.timeAt! : undefined;
    const fromRollup =
      p.q.timeproperty === 'observedAt' &&
      !p.spec.methods.includes('distinctCount') &&
      !p.datasetIds &&
      anchor !== undefined &&
      anchor % HOUR === 0 &&
      p.spec.periodMs !== undefined &&
      p.spec.periodMs % HOUR === 0 &&
      (p.q.endTimeAt === undefined || p.q.endTimeAt % HOUR === 0);
    let out: AggSeries[];
    if (fromRollup && p.spec.periodMs === HOUR) {
      const { series, regroup } = await this.hourly(p, anchor!);
      out = series;
      // attributes with several datasetIds have several rollup rows per hour: those entities are
      // served by the regrouping path, which merges them (as the raw path does)
      if (regroup.size) out = out.filter((s) => !regroup.has(s.entityId)).concat(await this.grouped({ ...p, entityIds: [...regroup] }, true, anchor));
    } else out = await this.grouped(p, fromRollup, anchor);
    return out.sort((a, b) => (a.entityId < b.entityId ? -1 : a.entityId > b.entityId ? 1 : a.attr < b.attr ? -1 : a.attr > b.attr ? 1 : 0));
  }

  /**
   * Runs an analytic statement. PostgreSQL: without JIT — its compile time (~160 ms measured on
   * the 500-sensor aggregation) exceeds the whole execution of these index-driven plans, and row
   * estimates for `unnest($n)` are guesses that would trigger it.
   */
  private async analytic<T>(sql: string, params: unknown[]): Promise<T[]> {
    if (this.db.kind !== 'postgres') return this.db.query<T>(sql, params);
    return this.db.tx(async (t) => {
      await t.exec('SET LOCAL jit = off');
      return t.query<T>(sql, params);
    });
  }

  /**
   * PT1H from the hourly rollup, one rollup row per bucket: per entity (LATERAL over the id list)
   * an index-only range scan of the covering primary key (tenant, entity_id, attr, hour, ...)
   * INCLUDE (values), aggregated per attribute into one row with the bucket indexes
   * ((hour - anchor) / 1 h) and each method's values as comma-separated text. No ORDER BY inside
   * the aggregates (a sort per series and method): the indexes and values of a row come from the
   * same input sequence, so they stay aligned whatever the order; the common contiguous case is
   * recognised by comparing the index text with "0,1,...,n-1", anything else is parsed and sorted
   * here. Entities whose series repeat an hour (several datasetIds) are returned in `regroup`.
   */
  private async hourly(p: AggregateParams, anchor: number): Promise<{ series: AggSeries[]; regroup: Set<string> }> {
    const params: unknown[] = [p.tenant, p.entityIds];
    const cond = ['r.tenant = $1', 'r.entity_id = e.id'];
    // the scope is not aggregated; a named attribute list is an index condition (statement per shape)
    const attrs = p.attrs?.filter((a) => a !== SCOPE_ATTR);
    if (attrs?.length === 0) return { series: [], regroup: new Set() };
    if (attrs) {
      params.push(attrs);
      cond.push(`r.attr = ANY($${params.length}::text[])`);
    } else cond.push(`r.attr <> '${SCOPE_ATTR}'`);
    const tr = timerelSql(p.q, 'r.hour', params, '::bigint');
    if (tr) cond.push(tr);
    params.push(anchor);
    const ai = `$${params.length}::bigint`;
    const expr: Record<AggrMethod, string> = {
      totalCount: 'cnt',
      distinctCount: 'NULL::bigint',
      sum: 'CASE WHEN nnum > 0 THEN sum END',
      avg: 'sum / NULLIF(nnum, 0)',
      min: 'CASE WHEN nnum > 0 THEN min END',
      max: 'CASE WHEN nnum > 0 THEN max END',
      stddev: 'CASE WHEN nnum > 0 THEN sqrt(GREATEST(sumsq / nnum - power(sum / nnum, 2), 0)) END',
      sumsq: 'CASE WHEN nnum > 0 THEN sumsq END',
    };
    const cols = p.spec.methods.map((m, k) => `, string_agg(COALESCE((${expr[m]})::text, 'null'), ',') AS m${k}`).join('');
    const rows = await this.analytic<Record<string, string>>(
      `SELECT e.id AS entity_id, s.* FROM unnest($2::text[]) AS e(id)
       CROSS JOIN LATERAL (
         SELECT r.attr, count(*) AS n, string_agg(((r.hour - ${ai}) / ${HOUR})::text, ',') AS idx${cols}
         FROM attr_rollup_hour r WHERE ${cond.join(' AND ')} GROUP BY r.attr) s`,
      params,
    );
    const series: AggSeries[] = [];
    const regroup = new Set<string>();
    for (const r of rows) {
      const n = Number(r.n);
      const text: Partial<Record<AggrMethod, string>> = {};
      p.spec.methods.forEach((m, k) => (text[m] = jsonLiterals(r[`m${k}`])));
      let starts: number[];
      if (r.idx === canonicalIndexes(n)) starts = gridStarts(anchor, HOUR, n);
      else {
        const idx = r.idx.split(',').map(Number);
        const order = idx.map((_, k) => k).sort((a, b) => idx[a] - idx[b]);
        if (order.some((o, k) => k > 0 && idx[o] === idx[order[k - 1]])) {
          regroup.add(r.entity_id);
          continue;
        }
        starts = order.map((o) => anchor + idx[o] * HOUR);
        if (order.some((o, k) => o !== k)) {
          for (const m of p.spec.methods) {
            const v = text[m]!.split(',');
            text[m] = order.map((o) => v[o]).join(',');
          }
        }
      }
      series.push(new AggSeries(r.entity_id, r.attr, 'Property', starts, (st) => st + HOUR, text));
    }
    return { series, regroup };
  }

  /** Buckets regrouped in SQL, from the hourly rollup (`fromRollup`) or from raw history. */
  private async grouped(p: AggregateParams, fromRollup: boolean, anchor: number | undefined): Promise<AggSeries[]> {
    const col = fromRollup ? 'hour' : TIME_COL[p.q.timeproperty];
    const params: unknown[] = [p.tenant, p.entityIds, p.attrs ?? null];
    // the scope is not aggregated (it is presented with the entity instead)
    const cond = ['tenant = $1', 'entity_id = ANY($2)', '($3::text[] IS NULL OR attr = ANY($3))', `attr <> '${SCOPE_ATTR}'`];
    if (!fromRollup) {
      params.push(p.datasetIds ?? null);
      cond.push(`($${params.length}::text[] IS NULL OR (CASE WHEN dataset_id = '' THEN '@none' ELSE dataset_id END) = ANY($${params.length}))`);
      cond.push(p.q.timeproperty === 'deletedAt' ? 'deleted_at IS NOT NULL' : 'deleted_at IS NULL');
    }
    const tr = timerelSql(p.q, col, params);
    if (tr) cond.push(tr);
    // one bucket for the whole interval when no period is given
    const period = p.spec.periodMs ?? Math.floor(Number.MAX_SAFE_INTEGER / 4);
    params.push(period);
    const pi = `$${params.length}::bigint`;
    params.push(anchor ?? null);
    const ai = `$${params.length}::bigint`;
    // one row per series: the bucket starts and each method's values as comma-separated JSON
    // literals (string_agg), so that the client library does not parse one row per bucket
    const expr: Record<AggrMethod, string> = {
      totalCount: 'total_count',
      distinctCount: 'distinct_count',
      sum: 'CASE WHEN nnum > 0 THEN sum END',
      avg: 'CASE WHEN nnum > 0 THEN avg END',
      min: 'CASE WHEN nnum > 0 THEN min END',
      max: 'CASE WHEN nnum > 0 THEN max END',
      stddev: 'CASE WHEN nnum > 0 THEN stddev END',
      sumsq: 'CASE WHEN nnum > 0 THEN sumsq END',
    };
    const cols = p.spec.methods.map((m, k) => `string_agg(COALESCE((${expr[m]})::text, 'null'), ',' ORDER BY start) AS m${k}`).join(', ');
    let inner: string;
    if (fromRollup) {
      inner = `SELECT entity_id, attr, 'Property' AS attr_type, start, sum(cnt) AS total_count, NULL::bigint AS distinct_count,
               sum(sum) AS sum, sum(sum) / NULLIF(sum(nnum), 0) AS avg, min(min) AS min, max(max) AS max,
               sqrt(GREATEST(sum(sumsq) / NULLIF(sum(nnum), 0) - power(sum(sum) / NULLIF(sum(nnum), 0), 2), 0)) AS stddev,
               sum(sumsq) AS sumsq, sum(nnum) AS nnum
        FROM (SELECT entity_id, attr, ${ai} + ((hour - ${ai}) / ${pi}) * ${pi} AS start, cnt, nnum, sum, sumsq, min, max
              FROM attr_rollup_hour WHERE ${cond.join(' AND ')}) b
        GROUP BY entity_id, attr, start`;
    } else {
      inner = `SELECT entity_id, attr, min(attr_type) AS attr_type, start, count(*) AS total_count, count(DISTINCT vkey) AS distinct_count,
               sum(num) AS sum, avg(num) AS avg, min(num) AS min, max(num) AS max, stddev_pop(num) AS stddev, sum(num * num) AS sumsq,
               count(num) AS nnum
        FROM (SELECT entity_id, attr, attr_type, num, vkey, t0 + floor((t - t0)::float8 / ${pi})::bigint * ${pi} AS start
              FROM (SELECT entity_id, attr, attr_type, ${col} AS t, num, vkey,
                           COALESCE(${ai}, min(${col}) OVER (PARTITION BY entity_id, attr)) AS t0
                    FROM attr_history WHERE ${cond.join(' AND ')}) base) b
        GROUP BY entity_id, attr, start`;
    }
    const sql = `SELECT entity_id, attr, min(attr_type) AS attr_type, string_agg(start::text, ',' ORDER BY start) AS starts${cols ? ', ' + cols : ''}
      FROM (${inner}) x GROUP BY entity_id, attr`;
    const rows = await this.analytic<Record<string, string>>(sql, params);
    const whole = p.spec.periodMs === undefined;
    const wholeEnd = p.q.endTimeAt ?? (p.q.timerel === 'before' ? p.q.timeAt! : Date.now());
    return rows.map((r) => {
      const starts = r.starts.split(',').map(Number);
      const text: Partial<Record<AggrMethod, string>> = {};
      p.spec.methods.forEach((m, k) => (text[m] = jsonLiterals(r[`m${k}`])));
      return new AggSeries(r.entity_id, r.attr, r.attr_type, starts, whole ? () => wholeEnd : (s) => s + p.spec.periodMs!, text);
    });
  }

  async modifyInstance(tenant: string, entityId: string, attr: string, instanceId: string, inst: AttrInstance, now: number): Promise<boolean> {
    const observed = inst.observedAt ? ms(inst.observedAt, now) : null;
    const clean = { ...inst };
    delete clean.createdAt;
    delete clean.modifiedAt;
    delete clean.instanceId;
    return this.db.tx(async (t) => {
      const r = await t.query(
        `UPDATE attr_history SET instance = $5::jsonb, attr_type = $6, num = $7, vkey = $8, observed_at = COALESCE($9, observed_at),
                modified_at = $10
         WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND instance_id = $4 AND deleted_at IS NULL RETURNING 1 AS ok`,
        [tenant, entityId, attr, instanceId, JSON.stringify(clean), inst.type, numOf(inst), JSON.stringify(instanceValue(inst) ?? null), observed, now],
      );
      if (r.length === 0) return false;
      await this.refreshRollup(tenant, entityId, attr, t);
      return true;
    });
  }

  async deleteInstance(tenant: string, entityId: string, attr: string, instanceId: string): Promise<boolean> {
    return this.db.tx(async (t) => {
      const r = await t.query(
        `DELETE FROM attr_history WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND instance_id = $4 RETURNING 1 AS ok`,
        [tenant, entityId, attr, instanceId],
      );
      if (r.length === 0) return false;
      await this.refreshRollup(tenant, entityId, attr, t);
      return true;
    });
  }

  /** Removes the history of an attribute (one datasetId, the default instance, or all with deleteAll). */
  async deleteAttr(tenant: string, entityId: string, attr: string, opts: { datasetId?: string; deleteAll?: boolean }): Promise<number> {
    return this.db.tx(async (t) => {
      const r = await t.query(
        `DELETE FROM attr_history WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND ($4 OR dataset_id = $5) RETURNING 1 AS ok`,
        [tenant, entityId, attr, !!opts.deleteAll, opts.datasetId ?? ''],
      );
      await this.refreshRollup(tenant, entityId, attr, t);
      return r.length;
    });
  }

  async deleteEntity(tenant: string, entityId: string): Promise<boolean> {
    return this.db.tx(async (t) => {
      await t.query(`DELETE FROM attr_history WHERE tenant = $1 AND entity_id = $2`, [tenant, entityId]);
      await t.query(`DELETE FROM attr_rollup_hour WHERE tenant = $1 AND entity_id = $2`, [tenant, entityId]);
      const r = await t.query(`DELETE FROM temporal_entities WHERE tenant = $1 AND id = $2 RETURNING 1 AS ok`, [tenant, entityId]);
      return r.length > 0;
    });
  }

  /**
   * Periodic upkeep (run with the retention sweep). PGlite has no autovacuum: VACUUM (ANALYZE) of
   * the rollup sets its visibility map (hourly aggregations are index-only scans only on
   * all-visible pages) and its planner statistics. PostgreSQL's autovacuum does both.
   */
  async maintain(): Promise<void> {
    if (this.db.kind === 'pglite') await this.db.exec('VACUUM (ANALYZE) attr_rollup_hour');
  }

  /** Retention per tenant and entity type ('' = every type of the tenant); days null removes it. */
  async setRetention(tenant: string, entityType: string, days: number | null): Promise<void> {
    if (days === null) {
      await this.db.query(`DELETE FROM temporal_retention WHERE tenant = $1 AND entity_type = $2`, [tenant, entityType]);
      return;
    }
    await this.db.query(
      `INSERT INTO temporal_retention (tenant, entity_type, days) VALUES ($1, $2, $3)
       ON CONFLICT (tenant, entity_type) DO UPDATE SET days = excluded.days`,
      [tenant, entityType, days],
    );
  }

  async listRetention(): Promise<{ tenant: string; entityType: string; days: number }[]> {
    const r = await this.db.query<{ tenant: string; entity_type: string; days: number }>(
      `SELECT tenant, entity_type, days FROM temporal_retention ORDER BY tenant, entity_type`,
    );
    return r.map((x) => ({ tenant: x.tenant, entityType: x.entity_type, days: x.days }));
  }

  /**
   * Deletes history older than the retention of its tenant / entity type (the most specific rule
   * wins: a type rule over the tenant-wide one). Returns the number of rows removed.
   */
  async applyRetention(now: number): Promise<number> {
    const removed = await this.db.tx(async (t) => {
      const r = await t.query<{ tenant: string; entity_id: string }>(
        `WITH rules AS (
           SELECT e.tenant, e.id,
                  COALESCE((SELECT min(days) FROM temporal_retention r WHERE r.tenant = e.tenant AND r.entity_type <> '' AND r.entity_type = ANY(e.types)),
                           (SELECT days FROM temporal_retention r WHERE r.tenant = e.tenant AND r.entity_type = '')) AS days
           FROM temporal_entities e WHERE e.tenant IN (SELECT tenant FROM temporal_retention)
         ), del AS (
           DELETE FROM attr_history h USING rules WHERE rules.days IS NOT NULL AND h.tenant = rules.tenant AND h.entity_id = rules.id
             AND h.ts < $1 - rules.days::bigint * 86400000
           RETURNING h.tenant, h.entity_id
         )
         SELECT tenant, entity_id FROM del`,
        [now],
      );
      const touched = new Map<string, [string, string]>();
      for (const x of r) touched.set(`${x.tenant}\u0000${x.entity_id}`, [x.tenant, x.entity_id]);
      for (const [tenant, id] of touched.values()) await this.refreshRollup(tenant, id, undefined, t);
      return r.length;
    });
    return removed;
  }
}

function entRow(r: Record<string, unknown>): TemporalEntityRow {
  return {
    id: r.id as string,
    types: r.types as string[],
    scopes: (r.scopes as string[] | null) ?? undefined,
    createdAt: Number(r.created_at),
    modifiedAt: Number(r.modified_at),
    deletedAt: n(r.deleted_at),
  };
}

function histRow(r: Record<string, unknown>): HistoryInstance {
  return {
    entityId: r.entity_id as string,
    attr: r.attr as string,
    datasetId: (r.dataset_id as string) || undefined,
    instanceId: r.instance_id as string,
    attrType: r.attr_type as string,
    instance: (r.instance as AttrInstance | null) ?? null,
    t: Number(r.t),
    observedAt: n(r.observed_at),
    createdAt: Number(r.created_at),
    modifiedAt: Number(r.modified_at),
    deletedAt: n(r.deleted_at),
  };
}

/** SQL condition of a timerel (before / after / between) on `col`, appending its bind values; null without timerel. */
function timerelSql(q: { timerel?: string; timeAt?: unknown; endTimeAt?: unknown }, col: string, params: unknown[], cast = ''): string | null {
  if (q.timerel === 'before') {
    params.push(q.timeAt);
    return `${col} < $${params.length}${cast}`;
  }
  if (q.timerel === 'after') {
    params.push(q.timeAt);
    return `${col} >= $${params.length}${cast}`;
  }
  if (q.timerel === 'between') {
    params.push(q.timeAt, q.endTimeAt);
    return `${col} >= $${params.length - 1}${cast} AND ${col} < $${params.length}${cast}`;
  }
  return null;
}

import type { Db } from './db.ts';

/**
 * Versioned migrations per module: each layer owns its tables and calls `migrateModule` at start-up,
 * so modules evolve independently. Statements must be valid on PostgreSQL 15+ and PGlite.
 */
export interface Migration {
  version: number;
  sql: string;
  /** only on PostgreSQL with PostGIS (e.g. a geometry column for GIS tools) */
  postgisOnly?: boolean;
}

export async function migrateModule(db: Db, module: string, migrations: Migration[]): Promise<void> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    module text NOT NULL, version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version))`);
  const done = new Set(
    (await db.query<{ version: number }>('SELECT version FROM schema_migrations WHERE module = $1', [module])).map(
      (r) => r.version,
    ),
  );
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    if (m.postgisOnly && !db.hasPostgis) continue;
    await db.tx(async (t) => {
      await t.exec(m.sql);
      await t.query('INSERT INTO schema_migrations (module, version) VALUES ($1, $2)', [module, m.version]);
    });
  }
}

/** The broker core's tables. */
const CORE: Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS tenants (
  name text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (name) VALUES ('') ON CONFLICT DO NOTHING;

-- One row per entity. attrs holds StoredEntity.attrs (expanded IRIs -> instance arrays).
-- created_at/modified_at are ISO-8601 UTC text with milliseconds, so text order is time order.
CREATE TABLE IF NOT EXISTS entities (
  tenant text NOT NULL,
  id text NOT NULL,
  types text[] NOT NULL,
  scopes text[],
  created_at text NOT NULL,
  modified_at text NOT NULL,
  attrs jsonb NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS entities_types_gin ON entities USING gin (types);
CREATE INDEX IF NOT EXISTS entities_attrs_gin ON entities USING gin (attrs);

-- Bounding boxes of every GeoProperty instance, for a GiST prefilter that works without PostGIS;
-- exact geometry predicates run in the broker.
CREATE TABLE IF NOT EXISTS entity_geo (
  tenant text NOT NULL,
  entity_id text NOT NULL,
  attr text NOT NULL,
  dataset_id text NOT NULL DEFAULT '',
  bbox box NOT NULL,
  PRIMARY KEY (tenant, entity_id, attr, dataset_id)
);
CREATE INDEX IF NOT EXISTS entity_geo_bbox ON entity_geo USING gist (bbox);

CREATE TABLE IF NOT EXISTS jsonld_contexts (
  id text PRIMARY KEY,
  record jsonb NOT NULL
);
`,
  },
  {
    // GIS tools (QGIS) read entities as a layer: a real geometry column derived from `location`.
    version: 2,
    postgisOnly: true,
    sql: `
ALTER TABLE entities ADD COLUMN IF NOT EXISTS geom geometry(Geometry, 4326)
  GENERATED ALWAYS AS (ST_SetSRID(ST_GeomFromGeoJSON((attrs->'https://uri.etsi.org/ngsi-ld/location'->0->'value')::text), 4326)) STORED;
CREATE INDEX IF NOT EXISTS entities_geom_gist ON entities USING gist (geom);
CREATE OR REPLACE VIEW gis_entities AS
  SELECT tenant, id, types[1] AS type, modified_at, geom, attrs FROM entities WHERE geom IS NOT NULL;
`,
  },
  {
    // transient entities (clause 4.22): expiry instant, ISO text like created_at
    version: 3,
    sql: `ALTER TABLE entities ADD COLUMN IF NOT EXISTS expires_at text;
CREATE INDEX IF NOT EXISTS entities_expires_at ON entities (expires_at) WHERE expires_at IS NOT NULL;`,
  },
  {
    // A GIN over all of attrs (jsonb_ops) cost ~40 % of write throughput and served only attrs=
    // filters (q is evaluated with SQL/JSON path): index the attribute names instead.
    version: 4,
    sql: `ALTER TABLE entities ADD COLUMN IF NOT EXISTS attr_names text[];
UPDATE entities SET attr_names = ARRAY(SELECT jsonb_object_keys(attrs)) WHERE attr_names IS NULL;
CREATE INDEX IF NOT EXISTS entities_attr_names_gin ON entities USING gin (attr_names);
DROP INDEX IF EXISTS entities_attrs_gin;`,
  },
  {
    // `location` bounding box inline (union of its instances), written by the same statement as the
    // entity: the separate entity_geo insert was half the cost of a batch write. entity_geo keeps
    // the other GeoProperties (observationSpace, operationSpace, user-defined ones).
    version: 5,
    sql: `ALTER TABLE entities ADD COLUMN IF NOT EXISTS loc_bbox box;
CREATE INDEX IF NOT EXISTS entities_loc_bbox ON entities USING gist (loc_bbox);
UPDATE entities e SET loc_bbox = g.bbox FROM entity_geo g
  WHERE g.tenant = e.tenant AND g.entity_id = e.id AND g.attr = 'https://uri.etsi.org/ngsi-ld/location' AND g.dataset_id = '';
DELETE FROM entity_geo WHERE attr = 'https://uri.etsi.org/ngsi-ld/location';`,
  },
  {
    // Most writes change attribute values only, not the indexed columns (types, attribute names,
    // location box): with free space left in each page PostgreSQL updates the row in place
    // (a HOT update) and touches no index. Applies to pages written from now on.
    version: 6,
    sql: `ALTER TABLE entities SET (fillfactor = 70);`,
  },
  {
    // `geom` written by the broker's statements, and only when the location changes: as a
    // generated column PostgreSQL recomputed it from attrs on every update (~7 % of a write storm)
    version: 7,
    postgisOnly: true,
    sql: `ALTER TABLE entities ALTER COLUMN geom DROP EXPRESSION IF EXISTS;`,
  },
];

export async function migrate(db: Db): Promise<void> {
  await migrateModule(db, 'core', CORE);
}

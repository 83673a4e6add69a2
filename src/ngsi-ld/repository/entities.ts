import type { Db } from '../../store/db.ts';
import type { AttrInstance, StoredEntity } from '../model/types.ts';
import { bboxOf } from '../geo/index.ts';
import { fromStoredAttrs, jsonEqual, storedAlike, toStoredAttrs, toStoredInstances } from './stored-form.ts';

/**
 * SQL for entities. Every batch operation is one statement over a JSON array parameter
 * (jsonb_to_recordset), so 1 or 2,000 entities cost one round trip.
 */

interface Row {
  id: string;
  /** xmin of the row version read (see `VERSION`) */
  xv?: string;
  types: string[];
  scopes: string[] | null;
  created_at: string;
  modified_at: string;
  /** stored form (see stored-form.ts) */
  attrs: Record<string, Record<string, unknown>[]>;
  expires_at: string | null;
}

const COLS = 'id, types, scopes, created_at, modified_at, attrs, expires_at';
/** COLS plus the row version; `xmin` changes with every write of a row, whoever writes it */
const RCOLS = COLS + ', xmin::text AS xv';
/** RCOLS over the alias `e` of query statements */
const SELECT_E = COLS.split(', ').map((c) => 'e.' + c).join(', ') + ', e.xmin::text AS xv';

/**
 * Row version (PostgreSQL `xmin`, the id of the transaction that wrote it) of entity objects this
 * process read or wrote. A write locks its rows reading only (id, xmin) and takes the before-image
 * from the entity cache when the versions match, instead of transferring and parsing every row
 * (the larger part of a batch upsert's cost); any mismatch, e.g. another node's write, reads the row.
 * Kept on the object under a symbol, not enumerable, so copies (spread, clone, JSON) never carry
 * it: a WeakMap did the same, but its ephemerons cost the garbage collector ~5 % of a write storm.
 */
const VERSION = Symbol('rowVersion');
type Versioned = StoredEntity & { [VERSION]?: string };

const versionOf = (e: StoredEntity): string | undefined => (e as Versioned)[VERSION];
function setVersion(e: StoredEntity, xv: string): void {
  if (Object.prototype.hasOwnProperty.call(e, VERSION)) (e as Versioned)[VERSION] = xv;
  else Object.defineProperty(e, VERSION, { value: xv, writable: true, enumerable: false, configurable: true });
}

export function fromRow(r: Row): StoredEntity {
  const { attrs, canonical } = fromStoredAttrs(r.attrs, r.modified_at);
  const e: StoredEntity = { id: r.id, type: r.types, createdAt: r.created_at, modifiedAt: r.modified_at, attrs };
  if (r.scopes && r.scopes.length) e.scope = r.scopes;
  if (r.expires_at) e.expiresAt = r.expires_at;
  // a row in an older stored form gets no version: its next write rewrites it whole (locked path)
  if (r.xv && canonical) setVersion(e, r.xv);
  return e;
}

function toRecord(e: StoredEntity, postgis: boolean) {
  const r: Record<string, unknown> = { id: e.id, types: e.type, scopes: e.scope ?? null, created_at: e.createdAt, modified_at: e.modifiedAt, attrs: toStoredAttrs(e.attrs, e.modifiedAt), expires_at: e.expiresAt ?? null, attr_names: Object.keys(e.attrs), loc_bbox: locationBox(e) };
  if (postgis) r.geo = locationGeoJson(e);
  return r;
}

/** GeoJSON text of the first `location` instance's value (the PostGIS `geom` column), or null. */
function locationGeoJson(e: StoredEntity): string | null {
  const v = e.attrs[LOCATION_IRI]?.[0]?.value;
  return typeof v === 'object' && v !== null ? JSON.stringify(v) : null;
}


function sameStrings(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same member names (in any order): the attribute-name column need not be rewritten. */
function sameKeys(a: object, b: object): boolean {
  let n = 0;
  for (const k in a) {
    if (!(k in b)) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
}

/** Same geometries in the same instances (the location box is then unchanged, no need to compute it). */
function sameGeometries(a: AttrInstance[] | undefined, b: AttrInstance[] | undefined): boolean {
  if (!a || !b || a.length !== b.length) return a === b;
  for (let i = 0; i < a.length; i++) if (a[i].type !== b[i].type || !jsonEqual(a[i].value, b[i].value)) return false;
  return true;
}

/** Union bounding box of the `location` instances, as PostgreSQL box text (or null). */
function locationBox(e: StoredEntity): string | null {
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
  for (const i of e.attrs[LOCATION_IRI] ?? []) {
    if (i.type !== 'GeoProperty' || typeof i.value !== 'object' || i.value === null) continue;
    try {
      const b = bboxOf(i.value as never);
      x1 = Math.min(x1, b[0]); y1 = Math.min(y1, b[1]); x2 = Math.max(x2, b[2]); y2 = Math.max(y2, b[3]);
    } catch {
      /* invalid geometries are rejected on input */
    }
  }
  return x1 === Infinity ? null : `((${x1},${y1}),(${x2},${y2}))`;
}

const LOCATION_IRI = 'https://uri.etsi.org/ngsi-ld/location';
/** rows per statement above which an unlocked write is split across connections (PostgreSQL) */
const PARALLEL_CHUNK = 300;

/**
 * The write statements, in two flavours: with PostGIS, `entities.geom` (the first `location`
 * instance as a geometry, for GIS tools) is written by the statements themselves from the record's
 * `geo` (GeoJSON text), and only when the location changed; as a generated column it was
 * recomputed from `attrs` by every update (~7 % of PostgreSQL's time in a write storm).
 */
function writeStatements(postgis: boolean) {
  const recordset = (param: string) =>
    `jsonb_to_recordset(${param}::jsonb) AS x(id text, types text[], scopes text[], created_at text, modified_at text, attrs jsonb, expires_at text, attr_names text[], loc_bbox box, geo text)`;
  // columns written (COLS plus the attribute-name index column, which is never read back)
  const cols = `tenant, ${COLS}, attr_names, loc_bbox${postgis ? ', geom' : ''}`;
  const values = `$1, ${COLS}, attr_names, loc_bbox${postgis ? ', ST_SetSRID(ST_GeomFromGeoJSON(geo), 4326)' : ''}`;
  const insertNew = (param: string) => `INSERT INTO entities (${cols}) SELECT ${values} FROM ${recordset(param)} ON CONFLICT (tenant, id) DO NOTHING`;
  /*
   * Version-checked overwrite of existing rows (see writeUnlocked). A member left out of a record
   * keeps the row's value (types, createdAt, attribute names; location box and geometry: `loc`
   * "" clears them) or takes the batch's shared value ($3: modifiedAt); scopes and expiry are
   * always replaced. `attrs` replaces all attributes; without it, `set` replaces some and `del`
   * removes some, the others keep their stored JSON.
   */
  const updateSet = `UPDATE entities AS t SET types = COALESCE(x.types, t.types), scopes = x.scopes, created_at = COALESCE(x.created_at, t.created_at),
     modified_at = COALESCE(x.modified_at, $3), expires_at = x.expires_at,
     attrs = CASE WHEN x.attrs IS NOT NULL THEN x.attrs WHEN x.set IS NULL AND x.del IS NULL THEN t.attrs ELSE (t.attrs - COALESCE(x.del, '{}'::text[])) || COALESCE(x.set, '{}'::jsonb) END, attr_names = COALESCE(x.attr_names, t.attr_names),
     loc_bbox = CASE WHEN x.loc IS NULL THEN t.loc_bbox ELSE NULLIF(x.loc, '')::box END${
       postgis ? `,
     geom = CASE WHEN x.loc IS NULL THEN t.geom ELSE ST_SetSRID(ST_GeomFromGeoJSON(NULLIF(x.geo, '')), 4326) END` : ''}
   FROM jsonb_to_recordset($2::jsonb) AS x(n int, id text, xv text, types text[], scopes text[], created_at text, modified_at text, attrs jsonb, set jsonb, del text[], expires_at text, attr_names text[], loc text, geo text)
   WHERE t.tenant = $1 AND t.id = x.id AND t.xmin = x.xv::xid`;
  return {
    /** creation only; returns (id, xv) of the rows inserted */
    insert: `${insertNew('$2')} RETURNING id, xmin::text AS xv`,
    /** insert or overwrite whole rows, in one transaction: one version back */
    save: `WITH w AS (INSERT INTO entities (${cols}) SELECT ${values} FROM ${recordset('$2')}
       ON CONFLICT (tenant, id) DO UPDATE SET types = EXCLUDED.types, scopes = EXCLUDED.scopes,
         created_at = EXCLUDED.created_at, modified_at = EXCLUDED.modified_at, attrs = EXCLUDED.attrs, expires_at = EXCLUDED.expires_at,
         attr_names = EXCLUDED.attr_names, loc_bbox = EXCLUDED.loc_bbox${postgis ? ', geom = EXCLUDED.geom' : ''}
       RETURNING xmin) SELECT xmin::text AS xv FROM w LIMIT 1`,
    /*
     * What the unlocked statements return: one row, the batch positions of the rows updated (`u`)
     * and the ids of the rows inserted (`i`), and their version, the same for all since one
     * statement is one transaction (100 result rows to parse were ~9 % of what the broker
     * allocated in a write storm).
     */
    updateUnlocked: `WITH u AS (${updateSet} RETURNING x.n, t.xmin)
  SELECT string_agg(n::text, ',') AS u, NULL AS i, min(xmin::text) AS xv FROM u`,
    insertUnlocked: `WITH i AS (${insertNew('$2')} RETURNING id, xmin)
  SELECT NULL AS u, array_agg(id) AS i, min(xmin::text) AS xv FROM i`,
    /** both in one statement ($4 holds the new rows) */
    upsertUnlocked: `WITH u AS (${updateSet} RETURNING x.n, t.xmin), i AS (${insertNew('$4')} RETURNING id, xmin)
  SELECT (SELECT string_agg(n::text, ',') FROM u) AS u, (SELECT array_agg(id) FROM i) AS i,
    COALESCE((SELECT min(xmin::text) FROM u), (SELECT min(xmin::text) FROM i)) AS xv`,
  };
}
const STATEMENTS = { plain: writeStatements(false), postgis: writeStatements(true) };
const statements = (db: Db) => (db.hasPostgis ? STATEMENTS.postgis : STATEMENTS.plain);

/** True when the entity has a GeoProperty instance other than `location`'s. */
function hasOtherGeoAttr(e: StoredEntity): boolean {
  for (const a in e.attrs) {
    if (a === LOCATION_IRI) continue;
    const list = e.attrs[a];
    for (let i = 0; i < list.length; i++) if (list[i].type === 'GeoProperty') return true;
  }
  return false;
}

/** Identity of an entity's geometries other than `location` (inline): equal keys mean the entity_geo rows are still right. */
function geoKey(e: StoredEntity | undefined): string {
  if (!e) return '\u0000';
  let k = '';
  for (const a in e.attrs) if (a !== LOCATION_IRI) for (const i of e.attrs[a]) if (i.type === 'GeoProperty') k += a + '|' + (i.datasetId ?? '') + '|' + JSON.stringify(i.value) + ';';
  return k;
}

export class EntityRepository {
  private knownTenants = new Set<string>(['']);
  private writesSinceAnalyze = 0;
  private analyzing = false;
  constructor(readonly db: Db) {}

  /**
   * Keeps planner statistics fresh after bulk writes. PGlite has no autovacuum, and without
   * statistics a `type=` query sorts every match instead of walking the primary key.
   */
  private rowsSeen = 0;
  /** `n` new rows: statistics are refreshed after growth of 2,000 rows or 20 %, like autovacuum's analyze threshold. */
  private noteWrites(n: number) {
    if (n === 0) return;
    this.writesSinceAnalyze += n;
    this.rowsSeen += n;
    if (this.analyzing || this.writesSinceAnalyze < Math.max(2000, this.rowsSeen * 0.2)) return;
    this.analyzing = true;
    this.writesSinceAnalyze = 0;
    setTimeout(() => {
      this.db.exec('ANALYZE entities; ANALYZE entity_geo').catch(() => {}).finally(() => { this.analyzing = false; });
    }, 1000).unref();
  }

  async tenantExists(tenant: string): Promise<boolean> {
    if (this.knownTenants.has(tenant)) return true;
    const r = await this.db.query('SELECT 1 FROM tenants WHERE name = $1', [tenant]);
    if (r.length) this.knownTenants.add(tenant);
    return r.length > 0;
  }

  async ensureTenant(db: Db, tenant: string): Promise<void> {
    if (this.knownTenants.has(tenant)) return;
    await db.query('INSERT INTO tenants (name) VALUES ($1) ON CONFLICT DO NOTHING', [tenant]);
    this.knownTenants.add(tenant);
  }

  async listTenants(): Promise<string[]> {
    return (await this.db.query<{ name: string }>('SELECT name FROM tenants ORDER BY name')).map((r) => r.name);
  }

  async get(tenant: string, id: string, db: Db = this.db, forUpdate = false): Promise<StoredEntity | null> {
    const r = await db.query<Row>(`SELECT ${RCOLS} FROM entities WHERE tenant = $1 AND id = $2${forUpdate ? ' FOR UPDATE' : ''}`, [tenant, id]);
    return r.length ? fromRow(r[0]) : null;
  }

  async getMany(tenant: string, ids: string[], db: Db = this.db, forUpdate = false): Promise<Map<string, StoredEntity>> {
    const m = new Map<string, StoredEntity>();
    if (ids.length === 0) return m;
    // locks are taken in id order so that concurrent batches cannot deadlock
    const r = await db.query<Row>(`SELECT ${RCOLS} FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) ORDER BY id${forUpdate ? ' FOR UPDATE' : ''}`, [tenant, ids]);
    for (const row of r) m.set(row.id, fromRow(row));
    return m;
  }

  /**
   * Locks the existing rows among `ids` (in id order, so concurrent writers cannot deadlock) and
   * returns their current versions: from `cached` when its row version matches, read otherwise.
   */
  async lockMany(db: Db, tenant: string, ids: string[], cached: (id: string) => StoredEntity | undefined): Promise<Map<string, StoredEntity>> {
    const m = new Map<string, StoredEntity>();
    if (ids.length === 0) return m;
    const rows = await db.query<{ id: string; xv: string }>('SELECT id, xmin::text AS xv FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE', [tenant, ids]);
    const missed: string[] = [];
    for (const r of rows) {
      const c = cached(r.id);
      if (c && versionOf(c) === r.xv) m.set(r.id, c);
      else missed.push(r.id);
    }
    if (missed.length) for (const [id, e] of await this.getMany(tenant, missed, db)) m.set(id, e);
    return m;
  }

  /** Inserts entities that do not exist yet; returns the ids actually inserted. */
  async insertMany(db: Db, tenant: string, entities: StoredEntity[]): Promise<Set<string>> {
    if (entities.length === 0) return new Set();
    this.noteWrites(entities.length);
    await this.ensureTenant(db, tenant);
    // an expired transient entity no longer exists: its id may be created again
    await db.query('DELETE FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) AND expires_at IS NOT NULL AND expires_at::timestamptz <= now()', [tenant, entities.map((e) => e.id)]);
    const r = await db.query<{ id: string; xv: string }>(
      statements(db).insert,
      [tenant, JSON.stringify(entities.map((e) => toRecord(e, db.hasPostgis)))],
    );
    const ok = new Set(r.map((x) => x.id));
    if (r.length) for (const e of entities) if (ok.has(e.id)) setVersion(e, r[0].xv);
    await this.writeGeo(db, tenant, entities.filter((e) => ok.has(e.id)));
    return ok;
  }

  /** Writes the given entities whole (insert or overwrite). */
  /**
   * `before`: the stored versions being replaced, when known; the bbox index is then only rewritten
   * for entities whose GeoProperties changed (most updates are measurements, not moves).
   */
  async saveMany(db: Db, tenant: string, entities: StoredEntity[], before?: Map<string, StoredEntity>): Promise<void> {
    if (entities.length === 0) return;
    this.noteWrites(before ? entities.filter((e) => !before.has(e.id)).length : entities.length);
    entities = [...entities].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    await this.ensureTenant(db, tenant);
    // every row written by one transaction carries its id as xmin: one row back is enough
    const r = await db.query<{ xv: string }>(
      statements(db).save,
      [tenant, JSON.stringify(entities.map((e) => toRecord(e, db.hasPostgis)))],
    );
    if (r.length) for (const e of entities) setVersion(e, r[0].xv);
    await this.writeGeo(db, tenant, before ? entities.filter((e) => geoKey(e) !== geoKey(before.get(e.id))) : entities);
  }

  async deleteMany(db: Db, tenant: string, ids: string[]): Promise<StoredEntity[]> {
    if (ids.length === 0) return [];
    const r = await db.query<Row>(`DELETE FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) RETURNING ${COLS}`, [tenant, ids]);
    await db.query('DELETE FROM entity_geo WHERE tenant = $1 AND entity_id = ANY($2::text[])', [tenant, ids]);
    return r.map(fromRow);
  }

  hasVersion(e: StoredEntity): boolean {
    return versionOf(e) !== undefined;
  }

  /** True when `a` and `b` have the same GeoProperties other than `location` (entity_geo rows stay right). */
  sameOtherGeo(a: StoredEntity, b: StoredEntity): boolean {
    // most entities have no GeoProperty but `location`: no key strings to build then
    if (!hasOtherGeoAttr(a) && !hasOtherGeoAttr(b)) return true;
    return geoKey(a) === geoKey(b);
  }

  /**
   * Writes without a transaction or lock query, in one statement (autocommit on the pool):
   * `updates` overwrite existing rows, each only if its row is still the version `before` was read
   * at; `inserts` create rows that do not exist. Returns what was written; the rest changed
   * meanwhile, was deleted, or exists, and is left untouched for the caller's locked path. Rows
   * waiting on a concurrent writer's lock are re-checked after it commits: no lost update.
   * Only for entities whose GeoProperties other than `location` need no entity_geo change.
   */
  async writeUnlocked(db: Db, tenant: string, updates: { before: StoredEntity; after: StoredEntity }[], inserts: StoredEntity[] = []): Promise<{ updated: Set<string>; inserted: Set<string> }> {
    const updated = new Set<string>();
    const inserted = new Set<string>();
    if (updates.length === 0 && inserts.length === 0) return { updated, inserted };
    if (inserts.length) await this.ensureTenant(db, tenant);
    const n = updates.length + inserts.length;
    if (db.kind === 'postgres' && n > 2 * PARALLEL_CHUNK) {
      // no transaction spans the rows, so a large batch is written as chunks on several
      // connections at once: the server parses and indexes them on all its cores
      const k = Math.min(4, Math.ceil(n / PARALLEL_CHUNK));
      const parts = await Promise.all(
        Array.from({ length: k }, (_, j) =>
          this.writeUnlocked(db, tenant, updates.slice(Math.floor((j * updates.length) / k), Math.floor(((j + 1) * updates.length) / k)), inserts.slice(Math.floor((j * inserts.length) / k), Math.floor(((j + 1) * inserts.length) / k))),
        ),
      );
      for (const p of parts) {
        for (const id of p.updated) updated.add(id);
        for (const id of p.inserted) inserted.add(id);
      }
      return { updated, inserted };
    }
    // members equal to the version being replaced are left out and kept: a value update then ships
    // (and PostgreSQL parses) little more than the attributes
    const modifiedAt = updates.length ? updates[0].after.modifiedAt : '';
    const sql = statements(db);
    const rec = (e: StoredEntity) => toRecord(e, db.hasPostgis);
    const ups = updates.map(({ before, after }, n) => {
      const r: Record<string, unknown> = { n, id: after.id, xv: versionOf(before) };
      // attributes stored exactly as before (typically all but the measured ones, since instance
      // timestamps equal to the entity's are implied) are not sent: the row keeps their JSON
      let set: Record<string, unknown> | undefined;
      let kept = 0;
      for (const k in after.attrs) {
        const b = before.attrs[k];
        if (b && storedAlike(after.attrs[k], after.modifiedAt, b, before.modifiedAt)) kept++;
        else (set ??= {})[k] = toStoredInstances(after.attrs[k], after.modifiedAt);
      }
      if (kept === 0) r.attrs = set ?? {};
      else {
        if (set) r.set = set;
        let del: string[] | undefined;
        for (const k in before.attrs) if (!(k in after.attrs)) (del ??= []).push(k);
        if (del) r.del = del;
      }
      if (!sameStrings(before.type, after.type)) r.types = after.type;
      if (after.scope) r.scopes = after.scope;
      if (before.createdAt !== after.createdAt) r.created_at = after.createdAt;
      if (after.modifiedAt !== modifiedAt) r.modified_at = after.modifiedAt;
      if (after.expiresAt) r.expires_at = after.expiresAt;
      if (!sameKeys(before.attrs, after.attrs)) r.attr_names = Object.keys(after.attrs);
      const la = after.attrs[LOCATION_IRI];
      const lb = before.attrs[LOCATION_IRI];
      if (la !== lb && !sameGeometries(la, lb)) {
        r.loc = locationBox(after) ?? '';
        if (db.hasPostgis) r.geo = locationGeoJson(after) ?? '';
      }
      return r;
    });
    // a batch that only updates (or only inserts) runs that statement alone: the other CTE and the
    // union cost PostgreSQL ~15 % of the statement even when empty
    const [r] = await db.query<{ u: string | null; i: string[] | null; xv: string | null }>(
      !inserts.length ? sql.updateUnlocked : !updates.length ? sql.insertUnlocked : sql.upsertUnlocked,
      !inserts.length ? [tenant, JSON.stringify(ups), modifiedAt] : !updates.length ? [tenant, JSON.stringify(inserts.map(rec))] : [tenant, JSON.stringify(ups), modifiedAt, JSON.stringify(inserts.map(rec))],
    );
    if (r?.xv) {
      if (r.u) {
        for (const n of r.u.split(',')) {
          const u = updates[Number(n)];
          updated.add(u.after.id);
          setVersion(u.after, r.xv);
        }
      }
      if (r.i) {
        const ids = new Set(r.i);
        for (const e of inserts) {
          if (!ids.has(e.id)) continue;
          inserted.add(e.id);
          setVersion(e, r.xv);
        }
      }
    }
    this.noteWrites(inserted.size);
    return { updated, inserted };
  }

  /** True when the entity has GeoProperties other than `location` (indexed in entity_geo). */
  hasOtherGeo(e: StoredEntity): boolean {
    return hasOtherGeoAttr(e);
  }

  /** Keeps the bbox index in step with GeoProperty instances. */
  private async writeGeo(db: Db, tenant: string, entities: StoredEntity[]): Promise<void> {
    const rows: { e: string; a: string; d: string; x1: number; y1: number; x2: number; y2: number }[] = [];
    const touched: string[] = [];
    for (const e of entities) {
      touched.push(e.id);
      for (const a in e.attrs) {
        if (a === LOCATION_IRI) continue; // inline in entities.loc_bbox
        for (const i of e.attrs[a]) {
          if (i.type !== 'GeoProperty' || typeof i.value !== 'object' || i.value === null) continue;
          try {
            const [x1, y1, x2, y2] = bboxOf(i.value as never);
            rows.push({ e: e.id, a, d: i.datasetId ?? '', x1, y1, x2, y2 });
          } catch {
            /* invalid geometries are rejected on input; nothing to index */
          }
        }
      }
    }
    if (touched.length === 0) return;
    await db.query('DELETE FROM entity_geo WHERE tenant = $1 AND entity_id = ANY($2::text[])', [tenant, touched]);
    if (rows.length === 0) return;
    await db.query(
      `INSERT INTO entity_geo (tenant, entity_id, attr, dataset_id, bbox)
       SELECT $1, x.e, x.a, x.d, box(point(x.x1, x.y1), point(x.x2, x.y2))
       FROM jsonb_to_recordset($2::jsonb) AS x(e text, a text, d text, x1 float8, y1 float8, x2 float8, y2 float8)
       ON CONFLICT DO NOTHING`,
      [tenant, JSON.stringify(rows)],
    );
  }

  /** Runs a filtered query; `where` is a SQL boolean over the entities table aliased `e`, params start at $2. */
  async select(tenant: string, where: string, params: unknown[], page?: { limit: number; offset: number }, orderBy = 'e.id', planPerCall = false): Promise<StoredEntity[]> {
    const p = [tenant, ...params];
    let sql = `SELECT ${SELECT_E} FROM entities e WHERE e.tenant = $1 AND (e.expires_at IS NULL OR e.expires_at::timestamptz > now())${where ? ' AND (' + where + ')' : ''} ORDER BY ${orderBy}`;
    if (page) {
      p.push(page.limit, page.offset);
      sql += ` LIMIT $${p.length - 1} OFFSET $${p.length}`;
    }
    return (await this.db.query<Row>(sql, p, { planPerCall })).map(fromRow);
  }

  /** Ids of a page of matches (bodies then come from the entity cache). */
  async selectIds(tenant: string, where: string, params: unknown[], page: { limit: number; offset: number }, planPerCall = false): Promise<string[]> {
    const p = [tenant, ...params, page.limit, page.offset];
    const sql = `SELECT e.id FROM entities e WHERE e.tenant = $1 AND (e.expires_at IS NULL OR e.expires_at::timestamptz > now())${where ? ' AND (' + where + ')' : ''} ORDER BY e.id LIMIT $${p.length - 1} OFFSET $${p.length}`;
    return (await this.db.query<{ id: string }>(sql, p, { planPerCall })).map((r) => r.id);
  }

  /** Transient entities whose expiry has passed (for the reaper). */
  async expired(limit = 1000): Promise<{ tenant: string; id: string }[]> {
    return this.db.query<{ tenant: string; id: string }>(
      'SELECT tenant, id FROM entities WHERE expires_at IS NOT NULL AND expires_at::timestamptz <= now() LIMIT $1',
      [limit],
    );
  }

  async count(tenant: string, where: string, params: unknown[], planPerCall = false): Promise<number> {
    const p = [tenant, ...params];
    const r = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM entities e WHERE e.tenant = $1 AND (e.expires_at IS NULL OR e.expires_at::timestamptz > now())${where ? ' AND (' + where + ')' : ''}`,
      p,
      { planPerCall },
    );
    return Number(r[0].n);
  }
}

/** KPI tables (own migrations): values with correction history, targets, profiles, frameworks, surveys, samples. */
import type { Db } from '../store/db.ts';
import { migrateModule, type Migration } from '../store/schema.ts';
import type { FrameworkConfig } from './domain/frameworks.ts';
import type { CityProfile, KpiTarget, KpiValue, Polarity, Sample, SeriesMap } from './domain/types.ts';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS kpi_tenants (
  tenant text PRIMARY KEY,
  catalogue_version text NOT NULL,
  demo_seeded boolean NOT NULL DEFAULT false,
  updated_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS kpi_values (
  tenant text NOT NULL,
  code text NOT NULL,
  period text NOT NULL,
  data_point text NOT NULL DEFAULT '',
  value double precision,
  unit text,
  method text NOT NULL,
  source text,
  quality text,
  entered_by text,
  verified_by text,
  note text,
  inputs jsonb,
  computed_at text NOT NULL,
  revision int NOT NULL DEFAULT 1,
  PRIMARY KEY (tenant, code, period, data_point)
);
CREATE INDEX IF NOT EXISTS kpi_values_period ON kpi_values (tenant, period);
CREATE TABLE IF NOT EXISTS kpi_value_history (
  tenant text NOT NULL,
  code text NOT NULL,
  period text NOT NULL,
  data_point text NOT NULL,
  revision int NOT NULL,
  value double precision,
  unit text,
  method text NOT NULL,
  source text,
  quality text,
  entered_by text,
  verified_by text,
  note text,
  inputs jsonb,
  computed_at text NOT NULL,
  replaced_at text NOT NULL,
  replaced_by text,
  reason text,
  PRIMARY KEY (tenant, code, period, data_point, revision)
);
CREATE TABLE IF NOT EXISTS kpi_targets (
  tenant text NOT NULL,
  code text NOT NULL,
  data_point text NOT NULL DEFAULT '',
  target double precision NOT NULL,
  baseline double precision,
  polarity text,
  source text,
  updated_at text NOT NULL,
  PRIMARY KEY (tenant, code, data_point)
);
CREATE TABLE IF NOT EXISTS kpi_profiles (
  tenant text NOT NULL,
  period text NOT NULL,
  name text,
  vals jsonb NOT NULL,
  sources jsonb,
  updated_at text NOT NULL,
  PRIMARY KEY (tenant, period)
);
CREATE TABLE IF NOT EXISTS kpi_frameworks (
  tenant text NOT NULL,
  id text NOT NULL,
  config jsonb NOT NULL,
  updated_at text NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS kpi_surveys (
  tenant text NOT NULL,
  period text NOT NULL,
  key text NOT NULL,
  value double precision NOT NULL,
  PRIMARY KEY (tenant, period, key)
);
CREATE TABLE IF NOT EXISTS kpi_samples (
  tenant text NOT NULL,
  entity_id text NOT NULL,
  attr text NOT NULL,
  ts bigint NOT NULL,
  v double precision NOT NULL,
  PRIMARY KEY (tenant, entity_id, attr, ts)
);
`,
  },
];

interface ValueRow {
  code: string;
  period: string;
  data_point: string;
  value: number | null;
  unit: string | null;
  method: string;
  source: string | null;
  quality: string | null;
  entered_by: string | null;
  verified_by: string | null;
  note: string | null;
  inputs: unknown;
  computed_at: string;
  revision: number;
  replaced_at?: string;
  replaced_by?: string | null;
  reason?: string | null;
}

const toValue = (r: ValueRow): KpiValue & { revision: number } => ({
  code: r.code,
  period: r.period,
  dataPoint: r.data_point,
  value: r.value === null ? null : Number(r.value),
  unit: r.unit,
  method: r.method as KpiValue['method'],
  source: r.source,
  quality: r.quality as KpiValue['quality'],
  enteredBy: r.entered_by,
  verifiedBy: r.verified_by,
  note: r.note,
  inputs: (typeof r.inputs === 'string' ? JSON.parse(r.inputs) : r.inputs) as KpiValue['inputs'],
  computedAt: r.computed_at,
  revision: Number(r.revision),
});

const COLS = 'code, period, data_point, value, unit, method, source, quality, entered_by, verified_by, note, inputs, computed_at, revision';

export class KpiStore {
  constructor(readonly db: Db) {}

  migrate() {
    return migrateModule(this.db, 'kpi', MIGRATIONS);
  }

  // ---- tenants ----
  async tenantState(tenant: string): Promise<{ catalogue_version: string; demo_seeded: boolean } | null> {
    const r = await this.db.query<{ catalogue_version: string; demo_seeded: boolean }>('SELECT catalogue_version, demo_seeded FROM kpi_tenants WHERE tenant = $1', [tenant]);
    return r[0] ?? null;
  }
  async setTenant(tenant: string, version: string, now: string, demoSeeded?: boolean) {
    await this.db.query(
      `INSERT INTO kpi_tenants (tenant, catalogue_version, demo_seeded, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant) DO UPDATE SET catalogue_version = $2, demo_seeded = kpi_tenants.demo_seeded OR $3, updated_at = $4`,
      [tenant, version, demoSeeded ?? false, now],
    );
  }
  async tenants(): Promise<string[]> {
    return (await this.db.query<{ tenant: string }>('SELECT tenant FROM kpi_tenants ORDER BY tenant')).map((r) => r.tenant);
  }

  // ---- values ----
  async values(tenant: string, f: { code?: string; period?: string; periods?: string[]; dataPoint?: string } = {}): Promise<(KpiValue & { revision: number })[]> {
    const where = ['tenant = $1'];
    const args: unknown[] = [tenant];
    if (f.code) where.push(`code = $${args.push(f.code)}`);
    if (f.period) where.push(`period = $${args.push(f.period)}`);
    if (f.periods) where.push(`period = ANY($${args.push(f.periods)}::text[])`);
    if (f.dataPoint !== undefined) where.push(`data_point = $${args.push(f.dataPoint)}`);
    const rows = await this.db.query<ValueRow>(`SELECT ${COLS} FROM kpi_values WHERE ${where.join(' AND ')} ORDER BY code, period, data_point`, args);
    return rows.map(toValue);
  }

  /**
   * Store a value. Automatic values never overwrite a manual / semi-automatic one; any other
   * replacement of an existing value keeps the previous version in kpi_value_history.
   * Returns whether it was written.
   */
  async putValue(tenant: string, v: KpiValue, opts: { now: string; by?: string | null; reason?: string | null }): Promise<boolean> {
    return this.db.tx(async (db) => {
      const cur = (await db.query<ValueRow>(`SELECT ${COLS} FROM kpi_values WHERE tenant = $1 AND code = $2 AND period = $3 AND data_point = $4`, [tenant, v.code, v.period, v.dataPoint]))[0];
      const auto = v.method === 'automatic';
      if (cur && auto && cur.method !== 'automatic') return false;
      let revision = 1;
      if (cur) {
        revision = Number(cur.revision) + 1;
        if (!auto || cur.method !== 'automatic') {
          await db.query(
            `INSERT INTO kpi_value_history (tenant, code, period, data_point, revision, value, unit, method, source, quality, entered_by, verified_by, note, inputs, computed_at, replaced_at, replaced_by, reason)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14::jsonb,$15,$16,$17,$18) ON CONFLICT DO NOTHING`,
            [tenant, cur.code, cur.period, cur.data_point, cur.revision, cur.value, cur.unit, cur.method, cur.source, cur.quality, cur.entered_by, cur.verified_by, cur.note,
              cur.inputs === null || cur.inputs === undefined ? null : JSON.stringify(cur.inputs), cur.computed_at, opts.now, opts.by ?? null, opts.reason ?? null],
          );
        }
      }
      await db.query(
        `INSERT INTO kpi_values (tenant, code, period, data_point, value, unit, method, source, quality, entered_by, verified_by, note, inputs, computed_at, revision)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::jsonb,$14,$15)
         ON CONFLICT (tenant, code, period, data_point) DO UPDATE SET value = $5, unit = $6, method = $7, source = $8, quality = $9, entered_by = $10,
           verified_by = $11, note = $12, inputs = $13::jsonb, computed_at = $14, revision = $15`,
        [tenant, v.code, v.period, v.dataPoint, v.value, v.unit ?? null, v.method, v.source ?? null, v.quality ?? null, v.enteredBy ?? null, v.verifiedBy ?? null, v.note ?? null,
          v.inputs ? JSON.stringify(v.inputs) : null, v.computedAt ?? opts.now, revision],
      );
      return true;
    });
  }

  async history(tenant: string, code: string, period?: string) {
    const args: unknown[] = [tenant, code];
    const rows = await this.db.query<ValueRow>(
      `SELECT ${COLS}, replaced_at, replaced_by, reason FROM kpi_value_history WHERE tenant = $1 AND code = $2 ${period ? `AND period = $${args.push(period)}` : ''} ORDER BY period, data_point, revision`,
      args,
    );
    return rows.map((r) => ({ ...toValue(r), replacedAt: r.replaced_at, replacedBy: r.replaced_by ?? null, reason: r.reason ?? null }));
  }

  async deleteValue(tenant: string, code: string, period: string, dataPoint: string, now: string, by?: string | null): Promise<boolean> {
    const cur = await this.values(tenant, { code, period, dataPoint });
    if (!cur.length) return false;
    await this.putValue(tenant, { ...cur[0], value: null, method: 'manual', note: 'deleted', inputs: null, computedAt: now }, { now, by, reason: 'deleted' });
    return true;
  }

  // ---- targets ----
  async targets(tenant: string): Promise<(KpiTarget & { updatedAt: string })[]> {
    const rows = await this.db.query<{ code: string; data_point: string; target: number; baseline: number | null; polarity: string | null; source: string | null; updated_at: string }>(
      'SELECT code, data_point, target, baseline, polarity, source, updated_at FROM kpi_targets WHERE tenant = $1 ORDER BY code, data_point',
      [tenant],
    );
    return rows.map((r) => ({
      code: r.code,
      dataPoint: r.data_point,
      target: Number(r.target),
      baseline: r.baseline === null ? null : Number(r.baseline),
      polarity: r.polarity as Polarity | null,
      source: r.source,
      updatedAt: r.updated_at,
    }));
  }
  async putTarget(tenant: string, t: KpiTarget, now: string) {
    await this.db.query(
      `INSERT INTO kpi_targets (tenant, code, data_point, target, baseline, polarity, source, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
       ON CONFLICT (tenant, code, data_point) DO UPDATE SET target = $4, baseline = $5, polarity = $6, source = $7, updated_at = $8`,
      [tenant, t.code, t.dataPoint, t.target, t.baseline ?? null, t.polarity ?? null, t.source ?? null, now],
    );
  }
  async deleteTarget(tenant: string, code: string, dataPoint: string): Promise<boolean> {
    const r = await this.db.query('DELETE FROM kpi_targets WHERE tenant = $1 AND code = $2 AND data_point = $3 RETURNING code', [tenant, code, dataPoint]);
    return r.length > 0;
  }

  // ---- profiles ----
  async profiles(tenant: string): Promise<CityProfile[]> {
    const rows = await this.db.query<{ period: string; name: string | null; vals: unknown; sources: unknown }>('SELECT period, name, vals, sources FROM kpi_profiles WHERE tenant = $1 ORDER BY period', [tenant]);
    const j = (x: unknown) => (typeof x === 'string' ? JSON.parse(x) : x);
    return rows.map((r) => ({ period: r.period, name: r.name ?? undefined, values: j(r.vals) as Record<string, number>, sources: (j(r.sources) ?? {}) as Record<string, string> }));
  }
  async putProfile(tenant: string, p: CityProfile, now: string) {
    await this.db.query(
      `INSERT INTO kpi_profiles (tenant, period, name, vals, sources, updated_at) VALUES ($1,$2,$3,$4::jsonb,$5::jsonb,$6)
       ON CONFLICT (tenant, period) DO UPDATE SET name = $3, vals = $4::jsonb, sources = $5::jsonb, updated_at = $6`,
      [tenant, p.period, p.name ?? null, JSON.stringify(p.values), JSON.stringify(p.sources ?? {}), now],
    );
  }

  // ---- frameworks and surveys ----
  async frameworks(tenant: string): Promise<FrameworkConfig[]> {
    const rows = await this.db.query<{ config: unknown }>('SELECT config FROM kpi_frameworks WHERE tenant = $1 ORDER BY id', [tenant]);
    return rows.map((r) => (typeof r.config === 'string' ? JSON.parse(r.config) : r.config) as FrameworkConfig);
  }
  async putFramework(tenant: string, f: FrameworkConfig, now: string) {
    await this.db.query(
      `INSERT INTO kpi_frameworks (tenant, id, config, updated_at) VALUES ($1,$2,$3::jsonb,$4) ON CONFLICT (tenant, id) DO UPDATE SET config = $3::jsonb, updated_at = $4`,
      [tenant, f.id, JSON.stringify(f), now],
    );
  }
  async deleteFramework(tenant: string, id: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM kpi_frameworks WHERE tenant = $1 AND id = $2 RETURNING id', [tenant, id])).length > 0;
  }
  async survey(tenant: string, period: string): Promise<Record<string, number>> {
    const rows = await this.db.query<{ key: string; value: number }>('SELECT key, value FROM kpi_surveys WHERE tenant = $1 AND period = $2', [tenant, period]);
    return Object.fromEntries(rows.map((r) => [r.key, Number(r.value)]));
  }
  async putSurvey(tenant: string, period: string, values: Record<string, number>) {
    for (const [k, v] of Object.entries(values))
      await this.db.query('INSERT INTO kpi_surveys (tenant, period, key, value) VALUES ($1,$2,$3,$4) ON CONFLICT (tenant, period, key) DO UPDATE SET value = $4', [tenant, period, k, v]);
  }

  // ---- samples (attribute history the calculators need) ----
  async addSamples(rows: { tenant: string; entityId: string; attr: string; ts: number; v: number }[]) {
    if (!rows.length) return;
    const args: unknown[] = [];
    const tuples = rows.map((r) => `($${args.push(r.tenant)}, $${args.push(r.entityId)}, $${args.push(r.attr)}, $${args.push(r.ts)}, $${args.push(r.v)})`);
    await this.db.query(`INSERT INTO kpi_samples (tenant, entity_id, attr, ts, v) VALUES ${tuples.join(',')} ON CONFLICT (tenant, entity_id, attr, ts) DO UPDATE SET v = EXCLUDED.v`, args);
  }
  async samples(tenant: string, ids: string[], attrs: string[], fromMs: number, toMs: number): Promise<SeriesMap> {
    const out: SeriesMap = {};
    if (!ids.length || !attrs.length) return out;
    const rows = await this.db.query<{ entity_id: string; attr: string; ts: string | number; v: number }>(
      `SELECT entity_id, attr, ts, v FROM kpi_samples WHERE tenant = $1 AND entity_id = ANY($2::text[]) AND attr = ANY($3::text[]) AND ts >= $4 AND ts < $5 ORDER BY ts`,
      [tenant, ids, attrs, fromMs, toMs],
    );
    for (const r of rows) {
      const s: Sample = { t: new Date(Number(r.ts)).toISOString(), v: Number(r.v) };
      ((out[r.entity_id] ??= {})[r.attr] ??= []).push(s);
    }
    return out;
  }
  async pruneSamples(beforeMs: number) {
    await this.db.query('DELETE FROM kpi_samples WHERE ts < $1', [beforeMs]);
  }
}

/**
 * Temporal aggregation benchmark (issue 3, point 5): hourly avg over 30 days of 500 sensors at
 * 1 sample/min (21.6 M attribute instances), through the HTTP API:
 *   GET /ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg
 *       &aggrPeriodDuration=PT1H&timerel=between&timeAt=<day 0>&endTimeAt=<day 30>&limit=500
 * Target (not asserted): < 500 ms.
 *
 *   node --import tsx bench/temporal.ts                       # PGlite (embedded), 500 sensors x 30 days
 *   BENCH_DATABASE_URL=postgres://... node --import tsx bench/temporal.ts   # PostgreSQL (database is wiped)
 *
 * BENCH_SENSORS (default 500) / BENCH_DAYS (default 30) size the data set. BENCH_KEEP=1 keeps the
 * loaded data for the next run (PGlite: in BENCH_DATA_DIR; PostgreSQL: in the database) and skips
 * the load when it is already there. BENCH_RUNS (default 5) warm runs.
 *
 * Loading goes through the real tables (on PostgreSQL: the partitioned attr_history, monthly
 * partition created by the store first) with set-based SQL: one statement per BENCH_CHUNK sensors
 * (default 25) generates the instances (generate_series) and, from the same rows (data-modifying
 * CTE), their hourly rollup rows; the secondary indexes of attr_history are dropped during the load
 * and rebuilt afterwards from their own definitions (one sort instead of 21.6 M random inserts).
 * The API answer is checked against avg() over the raw rows for a few buckets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPlatform } from '../src/server/start.ts';
import { temporalModule, type TemporalService } from '../src/temporal/module.ts';
import type { Db } from '../src/store/db.ts';
import { table, fmt } from './_lib.ts';

const SENSORS = Number(process.env.BENCH_SENSORS ?? 500);
const DAYS = Number(process.env.BENCH_DAYS ?? 30);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 25);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const KEEP = process.env.BENCH_KEEP === '1';
const PG_URL = process.env.BENCH_DATABASE_URL || undefined;
const V = 'https://uri.etsi.org/ngsi-ld/default-context/';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const MIN = 60_000;
const HOUR = 3_600_000;
const PER_SENSOR = DAYS * 24 * 60;

const log = (m: string) => console.error(`[bench/temporal ${new Date().toISOString().slice(11, 19)}] ${m}`);

/** PostgreSQL: drop every table of the (benchmark-only) database but extensions' own, so that the run starts empty. */
async function wipePostgres(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`DO $$ DECLARE t record; BEGIN
      FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
        EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', t.relname);
      END LOOP; END $$`);
  } finally {
    await c.end();
  }
}

/** Whether the database already holds exactly this data set (BENCH_KEEP). */
async function loaded(db: Db): Promise<boolean> {
  const [e] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM temporal_entities`);
  const [r] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM attr_rollup_hour`);
  return Number(e.n) === SENSORS && Number(r.n) === SENSORS * DAYS * 24;
}

async function load(db: Db, svc: TemporalService): Promise<{ loadS: number; indexS: number }> {
  let t = Date.now();
  // BENCH_KEEP with another size: start over
  await db.exec(`TRUNCATE temporal_entities, attr_history, attr_rollup_hour`);
  await db.query(
    `INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at)
     SELECT '', 'urn:ngsi-ld:Sensor:' || s, ARRAY['${V}Sensor'], ${T0}, ${T0} FROM generate_series(0, ${SENSORS - 1}) s`,
  );
  // the store's own monthly partitions (PostgreSQL), so that rows are routed as in production
  const months: number[] = [];
  for (let d = 0; d <= DAYS; d++) months.push(T0 + d * 86_400_000);
  await svc.store.ensurePartitions(months);
  // secondary indexes are rebuilt after the load (CREATE INDEX sorts once)
  const idx = await db.query<{ indexname: string; indexdef: string }>(
    `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'attr_history'`,
  );
  for (const i of idx) await db.exec(`DROP INDEX IF EXISTS ${i.indexname}`);
  for (let a = 0; a < SENSORS; a += CHUNK) {
    const b = Math.min(SENSORS, a + CHUNK) - 1;
    // value = a daily sine per sensor plus a per-sensor offset; the rollup rows come from the very
    // rows inserted (RETURNING), as the store's write path does for each batch
    await db.exec(
      `WITH ins AS (
         INSERT INTO attr_history (tenant, entity_id, attr, dataset_id, instance_id, attr_type, instance, num, vkey, ts, observed_at, created_at, modified_at)
         SELECT '', 'urn:ngsi-ld:Sensor:' || s, '${V}t', '', 'urn:ngsi-ld:attribute:instance:' || s || '-' || i, 'Property',
                jsonb_build_object('type', 'Property', 'value', v,
                                   'observedAt', to_char(to_timestamp(ts / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                v, v::text, ts, ts, ts, ts
         FROM generate_series(${a}, ${b}) s, generate_series(0, ${PER_SENSOR - 1}) i,
              LATERAL (SELECT round((15 + 10 * sin(i / 229.18) + s % 7)::numeric, 2)::float8 AS v, ${T0} + i::bigint * ${MIN} AS ts) x
         RETURNING entity_id, attr, dataset_id, ts, num)
       INSERT INTO attr_rollup_hour (tenant, entity_id, attr, dataset_id, hour, cnt, nnum, sum, sumsq, min, max)
       SELECT '', entity_id, attr, dataset_id, ts - ts % ${HOUR}, count(*), count(num), sum(num), sum(num * num), min(num), max(num)
       FROM ins GROUP BY entity_id, attr, dataset_id, ts - ts % ${HOUR}`,
    );
    log(`loaded sensors ${a}..${b} (${((Date.now() - t) / 1000).toFixed(0)} s)`);
  }
  const loadS = (Date.now() - t) / 1000;
  t = Date.now();
  for (const i of idx) {
    // a partitioned parent's index is shown "ON ONLY": create it on the partitions too
    await db.tx(async (x) => {
      if (db.kind === 'postgres') await x.exec(`SET LOCAL maintenance_work_mem = '512MB'`);
      await x.exec(i.indexdef.replace(' ON ONLY ', ' ON '));
    });
    log(`index ${i.indexname} rebuilt (${((Date.now() - t) / 1000).toFixed(0)} s)`);
  }
  await db.exec(`ANALYZE temporal_entities; ANALYZE attr_history`);
  return { loadS, indexS: (Date.now() - t) / 1000 };
}

if (PG_URL && !KEEP) await wipePostgres(PG_URL);
const dataDir = process.env.BENCH_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'urbis-bench-temporal-'));
const p = await startPlatform({
  modules: [temporalModule],
  noListen: true,
  config: { dataDir, databaseUrl: PG_URL, auth: false, demo: false, mqttPort: 0, logLevel: 'warn', maxLimit: 1000 },
});
try {
  const db = p.platform.db;
  const svc = p.platform.services.get('temporal') as TemporalService;
  log(`${db.kind} ${await db.version()}, ${SENSORS} sensors x ${DAYS} days`);
  let loadS = NaN;
  let indexS = NaN;
  if (KEEP && (await loaded(db))) log('data already loaded (BENCH_KEEP=1)');
  else ({ loadS, indexS } = await load(db, svc));
  // the state after routine upkeep: rollup vacuumed (visibility map for index-only scans) and
  // analysed, by autovacuum on PostgreSQL, by the temporal module's hourly maintain() on PGlite
  await db.exec('VACUUM (ANALYZE) attr_rollup_hour');

  const end = new Date(T0 + DAYS * 86_400_000).toISOString();
  const url = `/ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H&timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=${end}&limit=${Math.min(SENSORS, 1000)}`;
  const runs: number[] = [];
  let body = '';
  for (let k = 0; k <= RUNS; k++) {
    const t1 = performance.now();
    const r = await p.app.inject({ method: 'GET', url });
    runs.push(performance.now() - t1);
    if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${r.body.slice(0, 300)}`);
    body = r.body;
  }
  const ents = JSON.parse(body) as { id: string; t: { avg: [number | null, string, string][] } }[];
  const buckets = ents.reduce((a, e) => a + (e.t?.avg?.length ?? 0), 0);
  if (ents.length !== SENSORS || buckets !== SENSORS * DAYS * 24) throw new Error(`expected ${SENSORS} entities / ${SENSORS * DAYS * 24} buckets, got ${ents.length} / ${buckets}`);
  // correctness: a few buckets against avg() over the raw instances
  for (const [s, h] of [[0, 0], [SENSORS - 1, DAYS * 24 - 1], [Math.floor(SENSORS / 3), Math.min(100, DAYS * 24 - 1)]]) {
    const e = ents.find((x) => x.id === `urn:ngsi-ld:Sensor:${s}`)!;
    const [raw] = await db.query<{ a: number }>(
      `SELECT avg(num) AS a FROM attr_history WHERE tenant = '' AND entity_id = $1 AND attr = $2 AND ts >= $3 AND ts < $4`,
      [e.id, `${V}t`, T0 + h * HOUR, T0 + (h + 1) * HOUR],
    );
    const got = e.t.avg[h];
    if (Math.abs(Number(got[0]) - Number(raw.a)) > 1e-9 || got[1] !== new Date(T0 + h * HOUR).toISOString().replace('.000Z', 'Z'))
      throw new Error(`bucket ${h} of ${e.id}: API ${JSON.stringify(got)}, raw avg ${raw.a}`);
  }
  // a raw-history aggregation (distinctCount forces it off the rollup) for comparison, on one day
  const t2 = performance.now();
  const r2 = await p.app.inject({
    method: 'GET',
    url: `/ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg,distinctCount&aggrPeriodDuration=PT1H&timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=2026-01-02T00:00:00Z&limit=${Math.min(SENSORS, 1000)}`,
  });
  const rawMs = performance.now() - t2;
  if (r2.statusCode !== 200) throw new Error(`${r2.statusCode}`);
  const warm = runs.slice(1).sort((a, b) => a - b);
  table([
    {
      store: db.kind,
      sensors: SENSORS,
      days: DAYS,
      instances: fmt(SENSORS * PER_SENSOR),
      'load s': fmt(loadS, 1),
      'index rebuild s': fmt(indexS, 1),
      'hourly buckets returned': fmt(buckets),
      'response MB': fmt(body.length / 1e6, 1),
      'cold ms': fmt(runs[0], 0),
      [`warm ms (median of ${RUNS})`]: fmt(warm[Math.floor(warm.length / 2)], 0),
      'warm min-max ms': `${fmt(warm[0], 0)}-${fmt(warm[warm.length - 1], 0)}`,
      'raw 1 d avg+distinctCount ms': fmt(rawMs, 0),
    },
  ]);
} finally {
  await p.close();
  if (!KEEP && !process.env.BENCH_DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
}

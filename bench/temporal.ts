/**
 * Temporal aggregation benchmark (issue 3, point 5): hourly avg over 30 days of 500 sensors at
 * 1 sample/min (21.6 M attribute instances), through the HTTP API:
 *   GET /ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg
 *       &aggrPeriodDuration=PT1H&timerel=between&timeAt=<day 0>&endTimeAt=<day 30>&limit=500
 * The history is generated inside the database (generate_series) on a PGlite data folder, the
 * hourly rollup is built from it, then the query is timed (cold + warm). Target (not asserted):
 * < 500 ms. BENCH_SENSORS (default 100) / BENCH_DAYS (default 30) size the data set: loading the full
 * 500 sensors (21.6 M rows) takes ~8-9 min on a 2-core machine (about 1 s per sensor-month on PGlite),
 * so the default is 100 sensors (4.3 M rows, loads in < 2 min); the table also prints a linear
 * extrapolation of the query time to 500 sensors (the query cost is linear in the buckets returned).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../src/server/start.ts';
import { temporalModule } from '../src/temporal/module.ts';
import { table, fmt } from './_lib.ts';

const SENSORS = Number(process.env.BENCH_SENSORS ?? 100);
const DAYS = Number(process.env.BENCH_DAYS ?? 30);
const V = 'https://uri.etsi.org/ngsi-ld/default-context/';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const MIN = 60_000;

const dataDir = mkdtempSync(join(tmpdir(), 'urbis-bench-temporal-'));
const p = await startPlatform({
  modules: [temporalModule],
  noListen: true,
  config: { dataDir, auth: false, demo: false, mqttPort: 0, logLevel: 'warn', maxLimit: 1000 },
});
try {
  const db = p.platform.db;
  const perSensor = DAYS * 24 * 60;
  let t = Date.now();
  await db.query(
    `INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at)
     SELECT '', 'urn:ngsi-ld:Sensor:' || s, ARRAY['${V}Sensor'], ${T0}, ${T0} FROM generate_series(0, ${SENSORS - 1}) s`,
  );
  // one sensor at a time keeps memory flat; value = a daily sine per sensor plus noise
  for (let s = 0; s < SENSORS; s++) {
    await db.query(
      `INSERT INTO attr_history (tenant, entity_id, attr, dataset_id, instance_id, attr_type, instance, num, vkey, ts, observed_at, created_at, modified_at)
       SELECT '', 'urn:ngsi-ld:Sensor:${s}', '${V}t', '', 'urn:ngsi-ld:attribute:instance:${s}-' || i, 'Property',
              NULL, v, v::text, ${T0} + i::bigint * ${MIN}, ${T0} + i::bigint * ${MIN}, ${T0} + i::bigint * ${MIN}, ${T0} + i::bigint * ${MIN}
       FROM (SELECT i, round((15 + 10 * sin(i / 229.18) + ${s % 7})::numeric, 2)::float8 AS v FROM generate_series(0, ${perSensor - 1}) i) x`,
    );
  }
  const loadS = (Date.now() - t) / 1000;
  t = Date.now();
  await db.query(
    `INSERT INTO attr_rollup_hour (tenant, entity_id, attr, dataset_id, hour, cnt, nnum, sum, sumsq, min, max)
     SELECT tenant, entity_id, attr, dataset_id, ts - ts % 3600000, count(*), count(num), sum(num), sum(num * num), min(num), max(num)
     FROM attr_history GROUP BY 1, 2, 3, 4, 5`,
  );
  const rollupS = (Date.now() - t) / 1000;
  const end = new Date(T0 + DAYS * 86_400_000).toISOString();
  const url = `/ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H&timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=${end}&limit=${Math.min(SENSORS, 1000)}`;
  const runs: number[] = [];
  let buckets = 0;
  let bytes = 0;
  for (let k = 0; k < 4; k++) {
    const t1 = performance.now();
    const r = await p.app.inject({ method: 'GET', url });
    runs.push(performance.now() - t1);
    if (r.statusCode !== 200) throw new Error(`${r.statusCode} ${r.body.slice(0, 300)}`);
    const body = r.json() as { t: { avg: unknown[] } }[];
    buckets = body.reduce((a, e) => a + (e.t?.avg?.length ?? 0), 0);
    bytes = r.body.length;
  }
  // a raw-history aggregation (distinctCount forces it off the rollup) for comparison, on one day
  const t2 = performance.now();
  const r2 = await p.app.inject({
    method: 'GET',
    url: `/ngsi-ld/v1/temporal/entities?type=Sensor&attrs=t&options=aggregatedValues&aggrMethods=avg,distinctCount&aggrPeriodDuration=PT1H&timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=2026-01-02T00:00:00Z&limit=${Math.min(SENSORS, 1000)}`,
  });
  const rawMs = performance.now() - t2;
  if (r2.statusCode !== 200) throw new Error(`${r2.statusCode}`);
  table([
    {
      sensors: SENSORS,
      days: DAYS,
      instances: fmt(SENSORS * perSensor),
      'load s': fmt(loadS, 1),
      'rollup build s': fmt(rollupS, 1),
      'hourly buckets returned': fmt(buckets),
      'response MB': fmt(bytes / 1e6, 1),
      'hourly avg, 30 d, cold ms': fmt(runs[0], 0),
      'warm ms (median of 3)': fmt([...runs.slice(1)].sort((a, b) => a - b)[1], 0),
      'raw 1 d avg+distinctCount ms': fmt(rawMs, 0),
      'warm ms extrapolated to 500 sensors (linear)': fmt(([...runs.slice(1)].sort((a, b) => a - b)[1] * 500) / SENSORS, 0),
    },
  ]);
} finally {
  await p.close();
  rmSync(dataDir, { recursive: true, force: true });
}

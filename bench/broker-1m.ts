/**
 * Queries at city scale: BENCH_ENTITIES (default 1,000,000) ParkingSpot entities on PostgreSQL
 * (URBIS_BENCH_DATABASE_URL, default the CI test database), loaded through the API in 2,000-entity
 * upserts, then each query timed alone (median and max of 20 requests, one at a time): retrieve by
 * id, type page, q (common and rare value), attrs, geo near, count. Prints the load rate and a table.
 * Skipped when PostgreSQL is not reachable (PGlite is not meant for a million entities). The
 * tables are dropped at the end unless BENCH_KEEP is set.
 */
import pg from 'pg';
import { startBroker, table, fmt, quietDatabase, resetBrokerTables } from './_lib.ts';

const N = Number(process.env.BENCH_ENTITIES ?? 1_000_000);
const pgUrl = process.env.URBIS_BENCH_DATABASE_URL ?? 'postgres://urbis:urbis@127.0.0.1:5432/urbis_test';

const entity = (i: number) => ({
  id: `urn:ngsi-ld:ParkingSpot:${i}`,
  type: 'ParkingSpot',
  // one spot in 10,000 is "reserved": a selective q
  status: { type: 'Property', value: i % 10_000 === 7 ? 'reserved' : i % 3 ? 'free' : 'occupied', observedAt: '2026-11-01T10:00:00Z' },
  category: { type: 'Property', value: ['onstreet'] },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.9 + (i % 1000) * 0.0002, 43.4 + Math.floor(i / 1000) * 0.0002] } },
  refParkingSite: { type: 'Relationship', object: `urn:ngsi-ld:ParkingSite:${i % 500}` },
});

if (!(await resetBrokerTables(pgUrl))) {
  console.log(`PostgreSQL not reachable at ${pgUrl}: skipping the ${N.toLocaleString('en-US')}-entity run`);
  process.exit(0);
}
const b = await startBroker({ URBIS_MODULES: 'none', DATABASE_URL: pgUrl, URBIS_ENTITY_CACHE: '100000' });
try {
  const t0 = Date.now();
  const BATCH = 2000;
  let next = 0;
  const loader = async () => {
    for (;;) {
      const start = next;
      next += BATCH;
      if (start >= N) return;
      const body = JSON.stringify(Array.from({ length: Math.min(BATCH, N - start) }, (_, k) => entity(start + k)));
      const r = await fetch(`${b.url}/ngsi-ld/v1/entityOperations/upsert`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (!r.ok) throw new Error(`load: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
      if ((start / BATCH) % 25 === 0) process.stdout.write(`\r  loading ${fmt(Math.min(N, start + BATCH))} / ${fmt(N)} entities`);
    }
  };
  await Promise.all([loader(), loader()]);
  const loadS = (Date.now() - t0) / 1000;
  console.log(`\r  loaded ${fmt(N)} entities in ${fmt(loadS, 1)} s (${fmt(N / loadS)} entities/s, 2 clients)`);
  // planner statistics, as autovacuum would gather them
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  await c.query('ANALYZE entities');
  await c.end();
  // after a million inserts autovacuum runs for a while: queries are timed on the settled server
  await quietDatabase(pgUrl, 300);

  const q = (path: string) => `${b.url}/ngsi-ld/v1/${path}`;
  const mid = Math.floor(N / 2);
  const lon = -3.9 + (mid % 1000) * 0.0002;
  const lat = 43.4 + Math.floor(mid / 1000) * 0.0002;
  const scenarios: [string, string][] = [
    ['GET /entities/{id} (not cached)', q(`entities/urn:ngsi-ld:ParkingSpot:${mid + 1}`)],
    ['type=ParkingSpot&limit=20', q('entities?type=ParkingSpot&limit=20')],
    ['type page deep: offset=500000', q(`entities?type=ParkingSpot&limit=20&offset=${Math.floor(N / 2)}`)],
    ['q=status=="free" (2 in 3)', q('entities?type=ParkingSpot&q=status==%22free%22&limit=20')],
    ['q=status=="reserved" (1 in 10,000)', q('entities?type=ParkingSpot&q=status==%22reserved%22&limit=20')],
    ['q=refParkingSite==... (1 in 500)', q('entities?type=ParkingSpot&q=refParkingSite==%22urn:ngsi-ld:ParkingSite:42%22&limit=20')],
    ['attrs=status&limit=20', q('entities?type=ParkingSpot&attrs=status&limit=20')],
    ['geo near;maxDistance==100', q(`entities?type=ParkingSpot&georel=near;maxDistance==100&geometry=Point&coordinates=[${lon},${lat}]&limit=100`)],
    ['geo within 1 km² polygon', q(`entities?type=ParkingSpot&georel=within&geometry=Polygon&coordinates=[[[${lon},${lat}],[${lon + 0.012},${lat}],[${lon + 0.012},${lat + 0.009}],[${lon},${lat + 0.009}],[${lon},${lat}]]]&limit=20`)],
    ['count=true&limit=0 (all)', q('entities?type=ParkingSpot&count=true&limit=0')],
    ['count, q rare value', q('entities?type=ParkingSpot&q=status==%22reserved%22&count=true&limit=0')],
  ];
  const rows: Record<string, string>[] = [];
  for (const [name, url] of scenarios) {
    const times: number[] = [];
    let results = '';
    for (let k = 0; k < 20; k++) {
      const t = performance.now();
      const r = await fetch(url);
      const body = await r.text();
      times.push(performance.now() - t);
      if (r.status !== 200) throw new Error(`${name}: ${r.status} ${body.slice(0, 200)}`);
      const parsed = JSON.parse(body) as unknown;
      results = r.headers.get('ngsild-results-count') ?? (Array.isArray(parsed) ? String(parsed.length) : '1');
    }
    times.sort((a, c) => a - c);
    rows.push({ query: name, 'results (count)': results, 'median ms': fmt(times[10], 1), 'max ms': fmt(times[19], 1) });
  }
  console.log(`queries over ${fmt(N)} entities, PostgreSQL, one request at a time (20 each):`);
  table(rows);
} finally {
  await b.stop();
  // ~2 GB of rows: not left behind
  if (!process.env.BENCH_KEEP) await resetBrokerTables(pgUrl);
}

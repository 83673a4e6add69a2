/**
 * NGSI-LD broker benchmark: the broker pinned to core 0, wrk on core 1.
 * Scenarios (targets from the broker issue): retrieve by id, type query limit=20 over 10k entities,
 * PATCH attrs (durable), upsert of 100 entities per request, one 2,000-entity upsert.
 * Stores: PostgreSQL when reachable (URBIS_BENCH_DATABASE_URL, default the CI test database), and PGlite.
 */
import { startBroker, wrk, table, fmt, cpuSnapshot, cpuDelta, quietDatabase, resetBrokerTables } from './_lib.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** seconds of the same load before each measured scenario (JIT, caches, connection pools: the steady state is measured) */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const N = 10_000;
/** BENCH_SCENARIOS=get,type,q,patch,big,upsert,upsert-all (default all); BENCH_STORES=postgres,pglite (default both) */
const SCENARIOS = process.env.BENCH_SCENARIOS?.split(',');
const STORES = process.env.BENCH_STORES?.split(',') ?? ['postgres', 'pglite'];
const pgUrl = process.env.URBIS_BENCH_DATABASE_URL ?? 'postgres://urbis:urbis@127.0.0.1:5432/urbis_test';

const entity = (i: number) => ({
  id: `urn:ngsi-ld:ParkingSpot:${i}`,
  type: 'ParkingSpot',
  status: { type: 'Property', value: i % 3 ? 'free' : 'occupied', observedAt: '2026-11-01T10:00:00Z' },
  category: { type: 'Property', value: ['onstreet'] },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.81 + (i % 100) * 0.0005, 43.46 + Math.floor(i / 100) * 0.0005] } },
  refParkingSite: { type: 'Relationship', object: `urn:ngsi-ld:ParkingSite:${i % 50}` },
});

async function post(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function run(store: 'postgres' | 'pglite') {
  // the broker core alone (URBIS_MODULES=none); BENCH_MODULES=all measures the whole platform
  const env: Record<string, string> = {};
  if (process.env.BENCH_MODULES !== 'all') env.URBIS_MODULES = process.env.BENCH_MODULES ?? 'none';
  if (store === 'postgres') env.DATABASE_URL = pgUrl;
  const b = await startBroker(env);
  try {
    for (let i = 0; i < N; i += 1000) {
      const r = await post(b.url, '/ngsi-ld/v1/entityOperations/upsert', Array.from({ length: 1000 }, (_, k) => entity(i + k)));
      if (!r.ok) throw new Error(`seed failed: ${r.status} ${await r.text()}`);
    }
    // planner statistics after the bulk load (PostgreSQL's autovacuum would get there too, later)
    await new Promise((r) => setTimeout(r, 1500));
    const rows: Record<string, string | number>[] = [];
    // CPU per process during each scenario (share of one core): where the time goes
    let cpu0 = cpuSnapshot({ broker: b.proc.pid! });
    const add = (scenario: string, r: ReturnType<typeof wrk>, unit = 1, target = '') => {
      const cpu1 = cpuSnapshot({ broker: b.proc.pid! });
      rows.push({ store, scenario, 'req/s': fmt(r.rps), 'entities/s': unit > 1 ? fmt(r.rps * unit) : '', 'p50 ms': fmt(r.p50ms, 2), 'p99 ms': fmt(r.p99ms, 2), errors: r.errors, target, 'CPU (one core = 100%)': cpuDelta(cpu0, cpu1, SECONDS) });
      cpu0 = cpuSnapshot({ broker: b.proc.pid! });
    };

    // each scenario: WARMUP seconds of its load, then the measured run (CPU counted from there)
    const measure = (url: string, opts: Parameters<typeof wrk>[1] = {}) => {
      if (WARMUP > 0) wrk(url, { ...opts, seconds: WARMUP });
      cpu0 = cpuSnapshot({ broker: b.proc.pid! });
      return wrk(url, opts);
    };
    const on = (name: string) => !SCENARIOS || SCENARIOS.includes(name);
    if (on('get')) add('GET /entities/{id}', measure(`${b.url}/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:1`, {
      seconds: SECONDS,
      lua: `counter = 0\nrequest = function()\n counter = counter + 1\n return wrk.format("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:" .. (counter % ${N}))\nend`,
    }), 1, '≥ 30k/s');
    if (on('type')) add('GET ?type=ParkingSpot&limit=20', measure(`${b.url}/ngsi-ld/v1/entities?type=ParkingSpot&limit=20`, { seconds: SECONDS }), 1, '≥ 5k/s');
    if (on('q')) add('GET ?type&q=status=="free"', measure(`${b.url}/ngsi-ld/v1/entities?type=ParkingSpot&q=status==%22free%22&limit=20`, { seconds: SECONDS }), 1, '');
    if (on('patch')) add('PATCH /entities/{id}/attrs', measure(`${b.url}/`, {
      seconds: SECONDS,
      lua: `counter = 0\nwrk.method = "PATCH"\nwrk.headers["Content-Type"] = "application/json"\nrequest = function()\n counter = counter + 1\n return wrk.format("PATCH", "/ngsi-ld/v1/entities/urn:ngsi-ld:ParkingSpot:" .. (counter % ${N}) .. "/attrs", nil, '{"status":{"type":"Property","value":"occupied","observedAt":"2026-11-01T11:00:00Z"}}')\nend`,
    }), 1, '≥ 10k/s');
    // one 2,000-entity upsert, measured from here (median of 5)
    if (on('big')) {
      // a latency figure: let the server finish vacuuming the previous scenarios' garbage first
      if (store === 'postgres') await quietDatabase(pgUrl);
      const times: number[] = [];
      for (let k = 0; k < 5; k++) {
        // the body is serialised before the clock starts: the figure is the request, not the client
        const big = JSON.stringify(Array.from({ length: 2000 }, (_, i) => entity(20_000 + k * 2000 + i)));
        const t0 = performance.now();
        const r = await fetch(b.url + '/ngsi-ld/v1/entityOperations/upsert', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
        await r.arrayBuffer();
        times.push(performance.now() - t0);
      }
      times.sort((a, c) => a - c);
      rows.push({ store, scenario: 'one 2,000-entity upsert', 'req/s': '', 'entities/s': fmt(2000 / (times[2] / 1000)), 'p50 ms': fmt(times[2], 1), 'p99 ms': fmt(times[4], 1), errors: 0, target: '< 100 ms', 'CPU (one core = 100%)': '' });
    }
    // Each request upserts the next 100 of the 10,000 entities (existing ones: replaced), so
    // concurrent requests write different rows, as device gateways do. (Eight connections sending
    // one fixed body would serialise on the same 100 row locks and measure lock waits.)
    // Every visit of an entity (each 100th request) brings a new status reading: the value flips
    // and observedAt moves on. With `every`, the spot is also moved, recategorised and relinked,
    // so no attribute's stored JSON stays as it was (the worst case for the write path; otherwise,
    // as with sensors, the measured attribute changes and the descriptive ones are sent unchanged).
    const upsertLua = (every: boolean) => `counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local base = (counter * 100) % ${N}
  local visit = math.floor(counter * 100 / ${N})
  counter = counter + 1
  local v = ${every ? 'visit' : '0'}
  local parts = {}
  for k = 0, 99 do
    local i = base + k
    parts[#parts + 1] = string.format('{"id":"urn:ngsi-ld:ParkingSpot:%d","type":"ParkingSpot","status":{"type":"Property","value":"%s","observedAt":"2026-11-01T%02d:%02d:%02dZ"},"category":{"type":"Property","value":["onstreet%d"]},"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[%.4f,%.4f]}},"refParkingSite":{"type":"Relationship","object":"urn:ngsi-ld:ParkingSite:%d"}}', i, (visit % 2 == 0) and "free" or "occupied", math.floor(visit / 3600) % 24, math.floor(visit / 60) % 60, visit % 60, v % 2, -3.81 + (i % 100) * 0.0005 + (v % 2) * 0.0001, 43.46 + math.floor(i / 100) * 0.0005, (i + v) % 50)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",") .. "]")
end`;
    const upsertOpts = (every: boolean) => ({ seconds: SECONDS, connections: Number(process.env.BENCH_UPSERT_CONNECTIONS ?? 8), lua: upsertLua(every) });
    if (on('upsert')) add('upsert 100 entities/request', measure(`${b.url}/ngsi-ld/v1/entityOperations/upsert`, upsertOpts(false)), 100, '≥ 50k entities/s');
    if (on('upsert-all')) add('upsert 100/request, every attribute changed', measure(`${b.url}/ngsi-ld/v1/entityOperations/upsert`, upsertOpts(true)), 100, '');

    const mem = await fetch(`${b.url}/health`).then((r) => r.json()).catch(() => ({}));
    void mem;
    table(rows);
  } finally {
    await b.stop();
  }
}

console.log(`broker benchmark: ${N} entities, ${SECONDS}s per scenario, broker on core 0 (taskset), wrk on core 1`);
if (STORES.includes('postgres')) {
  if (await resetBrokerTables(pgUrl)) await run('postgres');
  else console.log(`PostgreSQL not reachable at ${pgUrl}: skipping the PostgreSQL run`);
}
if (STORES.includes('pglite')) await run('pglite');

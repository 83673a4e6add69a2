/**
 * Dashboard first paint with 10 000 entities in the broker (issue: < 2 s on this machine).
 * Starts the real platform (in-memory store, all modules), loads a synthetic Santander of N
 * entities, opens the dashboard in Debian's headless Chromium (cold cache, new context each run)
 * and reports, per run and as the median:
 *   fcp        first contentful paint (the app shell)
 *   data       all entities fetched from the NGSI-LD API (performance mark urbis:data-loaded)
 *   mapReady   map idle with every entity layer drawn (performance mark urbis:map-ready)
 * Usage: node --import tsx bench/dashboard-first-paint.ts [entities=10000] [runs=5]
 */
import { testPlatform } from '../test/helpers/server.ts';
import { modules } from '../src/modules.ts';
import { syntheticCity } from '../test/e2e/support/city.ts';
import { CHROMIUM, CHROMIUM_ARGS, chromiumMissing, ensureWebBuild } from '../test/e2e/support/browser.ts';

const N = Number(process.argv[2] ?? 10_000);
const RUNS = Number(process.argv[3] ?? 5);
const LIMIT_MS = 2000;

const missing = chromiumMissing();
if (missing) {
  console.log(`dashboard-first-paint: skipped, ${missing}`);
  process.exit(0);
}
ensureWebBuild();
const s = await testPlatform({ modules, listen: true });
const city = syntheticCity(N);
for (let i = 0; i < city.length; i += 1000) {
  const r = await s.platform.broker.upsertEntities('', city.slice(i, i + 1000));
  if (r.errors.length) throw new Error(JSON.stringify(r.errors[0]));
}
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
const rows: { fcp: number; mapLoad: number; firstEntities: number; data: number; mapReady: number; features: number }[] = [];
try {
  for (let run = 0; run < RUNS + 1; run++) {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true }); // for the evaluate strings only
    const page = await ctx.newPage();
    await page.goto(s.url + '/');
    await page.waitForFunction(`performance.getEntriesByName('urbis:map-ready').length > 0`, undefined, { timeout: 60_000 });
    const m = (await page.evaluate(`(() => {
      const get = (n) => performance.getEntriesByName(n)[0]?.startTime ?? NaN;
      return { fcp: get('first-contentful-paint'), mapLoad: get('urbis:map-load'), firstEntities: get('urbis:first-entities'), data: get('urbis:data-loaded'), mapReady: get('urbis:map-ready'), features: window.__urbis.store.size };
    })()`)) as (typeof rows)[number];
    await ctx.close();
    if (run === 0) continue; // warm-up (server-side JIT, PGlite caches); browser cache is cold every run
    rows.push(m);
    console.log(`run ${run}: fcp ${m.fcp.toFixed(0)} ms, map style loaded ${m.mapLoad.toFixed(0)} ms, first entities on map ${m.firstEntities.toFixed(0)} ms, all data ${m.data.toFixed(0)} ms, map ready ${m.mapReady.toFixed(0)} ms, entities ${m.features}`);
  }
} finally {
  await browser.close();
  await s.close();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fcp = median(rows.map((r) => r.fcp));
const ready = median(rows.map((r) => r.mapReady));
console.log(`dashboard-first-paint (${N} entities, median of ${rows.length}): fcp ${fcp.toFixed(0)} ms, data ${median(rows.map((r) => r.data)).toFixed(0)} ms, map with entities ${ready.toFixed(0)} ms (limit ${LIMIT_MS} ms: ${ready < LIMIT_MS ? 'OK' : 'OVER'})`);

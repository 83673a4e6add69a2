/**
 * Rules benchmark (target: 10k rule evaluations per second).
 *  1. engine: the pure engine alone, 2,000 entities x 40 rules of every kind, change events in batches.
 *  2. platform: the rules module on a real platform (in-memory PGlite): change events published on
 *     the bus, evaluated, states / alarms persisted and Alert entities written, timed until idle.
 * Prints evaluations/s for each.
 */
import type { ChangeEvent } from '../src/bus/change-bus.ts';
import { startPlatform } from '../src/server/start.ts';
import { brokerGeoEngine, brokerQEngine, coreExpandTerm } from '../src/rules/adapters.ts';
import { RuleEngine } from '../src/rules/domain/engine.ts';
import { validateRule } from '../src/rules/domain/validate.ts';
import { createRulesModule } from '../src/rules/module.ts';
import type { RulesService } from '../src/rules/service.ts';
import { entity, ctx } from '../src/rules/testkit.ts';

const ENTITIES = 2000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const zone = { type: 'Polygon', coordinates: [[[-3.81, 43.46], [-3.80, 43.46], [-3.80, 43.47], [-3.81, 43.47], [-3.81, 43.46]]] };

function ruleInputs(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < 8; i++) {
    out.push({ id: `cond-${i}`, name: 'c', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: `pm25>${40 + i};pm10>=0`, for: i % 2 ? '10m' : undefined } });
    out.push({ id: `rate-${i}`, name: 'r', select: { type: 'AirQualityObserved' }, trigger: { kind: 'rateOfChange', attribute: 'pm25', per: '1h', riseAbove: 100 + i } });
    out.push({ id: `abs-${i}`, name: 'a', select: { type: 'AirQualityObserved' }, trigger: { kind: 'absence', after: `${10 + i}m` } });
    out.push({ id: `geo-${i}`, name: 'g', select: { type: 'AirQualityObserved' }, trigger: { kind: 'geofence', event: 'enter', geometry: zone } });
    out.push({ id: `anom-${i}`, name: 'n', select: { type: 'AirQualityObserved' }, trigger: { kind: 'anomaly', attribute: 'pm10', method: i % 2 ? 'ewma' : 'zscore', window: 30 } });
  }
  for (const r of out) if ((r.trigger as Record<string, unknown>).for === undefined) delete (r.trigger as Record<string, unknown>).for;
  return out;
}

function makeEvents(n: number, t0: number): ChangeEvent[] {
  const evs: ChangeEvent[] = [];
  const last = new Map<number, ReturnType<typeof entity>>();
  for (let k = 0; k < n; k++) {
    const i = k % ENTITIES;
    const at = new Date(t0 + k * 10).toISOString();
    const pm25 = 20 + ((k * 7919) % 50);
    const e = entity(`urn:ngsi-ld:AirQualityObserved:${i}`, 'AirQualityObserved', {
      pm25, pm10: 30 + ((k * 104729) % 20),
      location: { type: 'Point', coordinates: [-3.815 + (k % 20) * 0.001, 43.465] },
    }, at);
    const before = last.get(i);
    last.set(i, e);
    evs.push({
      tenant: '', entityId: e.id, types: e.type, kind: before ? 'update' : 'create', before, after: e,
      changedAttrs: Object.keys(e.attrs), at,
    });
  }
  return evs;
}

function benchEngine(): number {
  const engine = new RuleEngine({ q: brokerQEngine, geo: brokerGeoEngine, expandTerm: coreExpandTerm });
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  for (const r of ruleInputs()) engine.setRule(validateRule(r, ctx()), t0);
  const events = makeEvents(50_000, t0);
  // warm-up
  engine.process(events.slice(0, 5000), t0);
  engine.drain();
  const e0 = engine.evaluations;
  const start = performance.now();
  let now = t0;
  let i = 5000;
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    const batch = events.slice(i % events.length, (i % events.length) + 100);
    i += 100;
    now += 1000;
    engine.process(batch, now);
    engine.tick(now);
    engine.drain();
  }
  const secs = (performance.now() - start) / 1000;
  return (engine.evaluations - e0) / secs;
}

async function benchPlatform(): Promise<{ rate: number; evaluations: number; secs: number; alarms: number }> {
  const mod = createRulesModule();
  const s = await startPlatform({ memory: true, noListen: true, modules: [mod], config: { auth: false, demo: false, logLevel: 'warn', mqttPort: 0, port: 0 } });
  try {
    const svc = s.platform.services.get('rules') as RulesService;
    for (const r of ruleInputs()) await svc.createRule('', r);
    const t0 = Date.now();
    const events = makeEvents(Number(process.env.BENCH_EVENTS ?? 8000), t0);
    const e0 = svc.engine.evaluations;
    const start = performance.now();
    for (let i = 0; i < events.length; i += 200) {
      s.platform.bus.publish(events.slice(i, i + 200));
      if ((i / 200) % 10 === 0) await new Promise((r) => setImmediate(r)); // let persistence interleave
    }
    await svc.idle();
    const secs = (performance.now() - start) / 1000;
    const evaluations = svc.engine.evaluations - e0;
    return { rate: evaluations / secs, evaluations, secs, alarms: svc.engine.alarms.list().length };
  } finally {
    await s.close();
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const engineRate = benchEngine();
console.log(`rules engine (pure, 40 rules x ${ENTITIES} entities, 5 kinds): ${fmt(engineRate)} evaluations/s`);
const p = await benchPlatform();
console.log(`rules on the platform (bus -> engine -> SQL states/alarms + Alert entities, PGlite): ${fmt(p.rate)} evaluations/s (${fmt(p.evaluations)} evaluations in ${p.secs.toFixed(2)} s, ${p.alarms} alarms)`);
const target = 10_000;
console.log(`target ${fmt(target)} evaluations/s: ${p.rate >= target && engineRate >= target ? 'met' : 'NOT met'}`);

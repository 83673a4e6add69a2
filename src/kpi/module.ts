/**
 * KPI module (layer 3): U4SSC catalogue per tenant, automatic calculators over live data, manual
 * and imported values, targets and scoring, frameworks, reports. REST API under /kpi/v1.
 * Recompute interval: URBIS_KPI_INTERVAL_S (default 900 s; first run 5 s after start).
 */
import type { Platform, UrbisModule } from '../platform.ts';
import defaults from './catalogue/default-targets.json' with { type: 'json' };
import { KpiService } from './service.ts';
import { kpiRoutes } from './routes.ts';
import { periodOf } from './domain/period.ts';
import { validateTarget } from './domain/values.ts';

let svc: KpiService | null = null;
let cancel: (() => void) | null = null;
let unsubscribe: (() => void) | null = null;

/** Demo inventory for the demo city (Santander): assets the live devices do not provide. */
function demoAssets(): Record<string, unknown>[] {
  const P = (value: unknown) => ({ type: 'Property', value });
  const G = (coordinates: unknown, type = 'Point') => ({ type: 'GeoProperty', value: { type, coordinates } });
  const out: Record<string, unknown>[] = [];
  const wifi: [string, number, number][] = [['Ayuntamiento', -3.8046, 43.4636], ['Jardines de Pereda', -3.8037, 43.4614], ['Mercado de la Esperanza', -3.8063, 43.4641], ['El Sardinero', -3.789, 43.4762], ['Estación de Autobuses', -3.8105, 43.4588], ['Palacio de la Magdalena', -3.7655, 43.469]];
  wifi.forEach(([n, lon, lat], i) => out.push({ id: `urn:ngsi-ld:WifiPointOfInterest:santander-${i + 1}`, type: 'WifiPointOfInterest', name: P(`Wi-Fi ${n}`), location: G([lon, lat]) }));
  ['air-quality', 'noise', 'traffic', 'parking', 'budget'].forEach((d, i) =>
    out.push({ id: `urn:ngsi-ld:Dataset:santander-${d}`, type: 'Dataset', title: P(d), accessRights: P(i < 4 ? 'public' : 'non-public'), ...(i < 4 ? { license: P('CC-BY-4.0') } : {}) }),
  );
  ['adaptive', 'fixedTime', 'adaptive', 'actuated'].forEach((m, i) => out.push({ id: `urn:ngsi-ld:TrafficSignal:santander-${i + 1}`, type: 'TrafficSignal', controlMode: P(m) }));
  const seg = (i: number, a: number[], b: number[], cls: string, monitored: boolean) =>
    out.push({ id: `urn:ngsi-ld:RoadSegment:santander-${i}`, type: 'RoadSegment', roadClass: P(cls), location: G([a, b], 'LineString'), ...(monitored ? { refDevice: { type: 'Relationship', object: `urn:ngsi-ld:Device:traffic-0${i}` } } : {}) });
  seg(1, [-3.82, 43.4552], [-3.8071, 43.4629], 'primary', true);
  seg(2, [-3.779, 43.469], [-3.7955, 43.4716], 'primary', true);
  seg(3, [-3.8262, 43.4468], [-3.82, 43.4552], 'trunk', false);
  ['Plaza de Italia', 'Ayuntamiento', 'Valdecilla', 'Estaciones'].forEach((n, i) =>
    out.push({ id: `urn:ngsi-ld:GtfsStop:santander-${i + 1}`, type: 'GtfsStop', name: P(n), locationType: P(0), realTimePassengerInformation: P(i !== 3) }),
  );
  out.push({ id: 'urn:ngsi-ld:Park:santander-mesones', type: 'Park', name: P('Parque de Mesones'), area: P(30000) });
  out.push({ id: 'urn:ngsi-ld:Park:santander-magdalena', type: 'Park', name: P('Península de la Magdalena'), area: P(250000) });
  out.push({ id: 'urn:ngsi-ld:Museum:santander-mas', type: 'Museum', name: P('Museo de Arte de Santander') });
  out.push({ id: 'urn:ngsi-ld:Museum:santander-centro-botin', type: 'Museum', name: P('Centro Botín') });
  return out;
}

async function seedDemo(p: Platform, s: KpiService, tenant: string): Promise<void> {
  const st = await s.store.tenantState(tenant);
  if (st?.demo_seeded) return;
  const year = periodOf(p.clock.now(), 'year').id;
  await s.store.putProfile(
    tenant,
    {
      period: year,
      name: 'Santander (demo)',
      values: { population: 172000, areaKm2: 36.1, households: 72000, waterMetersTotal: 4, electricityMetersTotal: 4, majorStreetsKm: 12, publicTransportStops: 8 },
      sources: { population: 'illustrative demo figure' },
    },
    s.nowIso(),
  );
  for (const t of defaults.targets) await s.store.putTarget(tenant, { ...validateTarget(t), source: (t as { source?: string }).source ?? defaults.source }, s.nowIso());
  const r = await p.broker.upsertEntities(tenant, demoAssets(), { mode: 'update' });
  if (r.errors.length) p.log.warn('kpi: demo assets rejected', { errors: r.errors.slice(0, 3) });
  await s.store.setTenant(tenant, (await s.store.tenantState(tenant))?.catalogue_version ?? '', s.nowIso(), true);
}

export const kpiModule: UrbisModule = {
  name: 'kpi',
  async start(p) {
    svc = new KpiService(p);
    await svc.store.migrate();
    const s = svc;
    unsubscribe = p.bus.subscribe((events) => s.onChanges(events));
    await s.ensureTenant('');
    if (p.config.demo) await seedDemo(p, s, '');
    const every = Math.max(10, Number(process.env.URBIS_KPI_INTERVAL_S ?? 900)) * 1000;
    const arm = (ms: number) => {
      cancel = p.clock.setTimer(ms, () => {
        void s.tick().finally(() => {
          if (cancel) arm(every);
        });
      });
    };
    arm(5000);
    p.services.set('kpi', s);
  },
  routes(app) {
    if (!svc) throw new Error('kpi module not started');
    kpiRoutes(app, svc);
  },
  async stop() {
    const c = cancel;
    cancel = null;
    c?.();
    unsubscribe?.();
    unsubscribe = null;
    await svc?.flush();
    svc = null;
  },
};

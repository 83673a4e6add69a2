/**
 * Synthetic Santander entities for the dashboard's browser tests and first-paint benchmark, used
 * only when the platform's own demo city is not running: parking spots, waste containers, air
 * quality stations and their Device entities, placed inside the dashboard's (approximate) city
 * outline. NGSI-LD normalized form, core @context (terms expand to the default vocabulary).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pointInRing, type Pos } from '../../../web/src/geo.ts';

const outline = JSON.parse(readFileSync(fileURLToPath(new URL('../../../web/public/data/santander.geojson', import.meta.url)), 'utf8')) as {
  features: { properties: { kind: string }; geometry: { coordinates: Pos[][] } }[];
};
const land = outline.features.find((f) => f.properties.kind === 'land')!.geometry.coordinates[0];

/** deterministic PRNG (mulberry32) */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pointIn(r: () => number): Pos {
  for (;;) {
    const p: Pos = [-3.895 + r() * 0.133, 43.432 + r() * 0.06];
    if (pointInRing(p, land)) return [Math.round(p[0] * 1e6) / 1e6, Math.round(p[1] * 1e6) / 1e6];
  }
}

const prop = (value: unknown, observedAt?: string) => (observedAt ? { type: 'Property', value, observedAt } : { type: 'Property', value });
const rel = (object: string) => ({ type: 'Relationship', object });
const geo = (p: Pos) => ({ type: 'GeoProperty', value: { type: 'Point', coordinates: p } });

/** n entities in all (about 45 % parking, 25 % waste, 5 % air quality, 25 % devices) */
export function syntheticCity(n: number, now = Date.now(), seed = 42): Record<string, unknown>[] {
  const r = rng(seed);
  const out: Record<string, unknown>[] = [];
  const at = new Date(now).toISOString();
  const nAir = Math.max(3, Math.round(n * 0.05));
  const nWaste = Math.round(n * 0.25);
  const nDevices = Math.round(n * 0.25);
  const nParking = Math.max(0, n - nAir - nWaste - nDevices);
  const assets: string[] = [];
  for (let i = 0; i < nParking; i++) {
    const id = `urn:ngsi-ld:ParkingSpot:santander:${i + 1}`;
    assets.push(id);
    out.push({ id, type: 'ParkingSpot', name: prop(`Plaza ${i + 1}`), parkingStatus: prop(r() < 0.55 ? 'occupied' : 'free', at) /* SDM `status` is a reserved core term */, category: prop(['onStreet']), location: geo(pointIn(r)) });
  }
  for (let i = 0; i < nWaste; i++) {
    const id = `urn:ngsi-ld:WasteContainer:santander:${i + 1}`;
    assets.push(id);
    out.push({ id, type: 'WasteContainer', name: prop(`Contenedor ${i + 1}`), fillingLevel: prop(Math.round(r() * 100) / 100, at), wasteType: prop(r() < 0.5 ? 'organic' : 'paper'), location: geo(pointIn(r)) });
  }
  for (let i = 0; i < nAir; i++) {
    const id = `urn:ngsi-ld:AirQualityObserved:santander:${i + 1}`;
    assets.push(id);
    out.push({
      id, type: 'AirQualityObserved', name: prop(`Estación ${i + 1}`),
      no2: prop(Math.round(10 + r() * 140), at), pm10: prop(Math.round(5 + r() * 60), at), pm25: prop(Math.round(3 + r() * 30), at),
      temperature: prop(Math.round((12 + r() * 10) * 10) / 10, at), location: geo(pointIn(r)),
    });
  }
  // air stations first, so each of them has a device behind it
  const order = [...assets.filter((a) => a.includes(':AirQualityObserved:')), ...assets.filter((a) => !a.includes(':AirQualityObserved:'))];
  for (let i = 0; i < nDevices; i++) {
    const asset = order[i % order.length];
    const silent = r() < 0.08;
    const faulty = !silent && r() < 0.03;
    const last = new Date(now - (silent ? 3 * 3600e3 : r() * 600e3)).toISOString();
    out.push({
      id: `urn:ngsi-ld:Device:santander:${i + 1}`, type: 'Device', name: prop(`sensor-${i + 1}`),
      deviceState: prop(faulty ? 'faulty' : silent ? 'silent' : 'online', last), dateLastValueReported: prop(last),
      batteryLevel: prop(Math.round(r() * 100) / 100), controlledAsset: rel(asset), location: geo(pointIn(r)),
    });
  }
  return out;
}

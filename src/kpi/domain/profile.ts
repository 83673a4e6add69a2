/** City profile: denominators per year (population, area, households, network lengths, ...). */
import { badRequest } from '../../common/problem.ts';
import type { CityProfile } from './types.ts';

/** Known profile keys with their units; other numeric keys are accepted and kept. */
export const PROFILE_KEYS: Record<string, string> = {
  population: 'inhabitants',
  areaKm2: 'km2',
  households: 'households',
  labourForce: 'persons',
  gdp: 'local currency',
  waterMetersTotal: 'meters installed (smart and conventional)',
  electricityMetersTotal: 'meters installed (smart and conventional)',
  electricityCustomers: 'customers served',
  waterNetworkKm: 'km of water distribution network',
  drainageNetworkKm: 'km of drainage / storm-water network',
  electricityNetworkKm: 'km of electricity supply network',
  majorStreetsKm: 'km of arterials and highways',
  signalisedIntersections: 'signal-controlled intersections',
  publicTransportStops: 'stops and stations',
  datasetsInventoried: 'datasets in the city data inventory',
  publicBuildingsFloorAreaM2: 'm2',
};

export function validateProfile(input: unknown): CityProfile {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw badRequest('profile must be a JSON object');
  const o = input as Record<string, unknown>;
  const period = String(o.period ?? '');
  if (!/^\d{4}$/.test(period)) throw badRequest('profile.period must be a year (YYYY)');
  const src = (o.values ?? {}) as Record<string, unknown>;
  if (typeof src !== 'object' || Array.isArray(src)) throw badRequest('profile.values must be an object');
  const values: Record<string, number> = {};
  for (const [k, v] of Object.entries(src)) {
    if (v === null || v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw badRequest(`profile.values.${k} must be a non-negative number`);
    values[k] = v;
  }
  const sources: Record<string, string> = {};
  if (o.sources && typeof o.sources === 'object') for (const [k, v] of Object.entries(o.sources)) sources[k] = String(v);
  return { period, name: typeof o.name === 'string' ? o.name : undefined, values, sources };
}

/** the profile for a year, or the latest earlier one (denominators change slowly) */
export function profileFor(profiles: CityProfile[], year: string): CityProfile | null {
  const best = profiles.filter((p) => p.period <= year).sort((a, b) => b.period.localeCompare(a.period))[0];
  return best ?? profiles.sort((a, b) => a.period.localeCompare(b.period))[0] ?? null;
}

/** Registry of the automatic calculators, keyed by exact U4SSC code. */
import type { Calculator, DataRequirement } from '../types.ts';
import {
  adaptiveIntersections,
  culturalInfrastructure,
  drainageMonitoring,
  dynamicPublicTransportInfo,
  electricityMonitoring,
  greenAreas,
  openData,
  smartElectricityMeters,
  smartWaterMeters,
  trafficMonitoring,
  waterSupplyMonitoring,
  wifiHotspots,
} from './inventory.ts';
import { airPollution, noiseExposure } from './environment.ts';
import { electricityConsumption, outageFrequency, outageTime, waterConsumption } from './utilities.ts';
import { travelTimeIndex } from './mobility.ts';

export const CALCULATOR_LIST: readonly Calculator[] = [
  wifiHotspots,
  smartWaterMeters,
  waterSupplyMonitoring,
  drainageMonitoring,
  smartElectricityMeters,
  electricityMonitoring,
  dynamicPublicTransportInfo,
  trafficMonitoring,
  adaptiveIntersections,
  openData,
  outageFrequency,
  outageTime,
  travelTimeIndex,
  airPollution,
  waterConsumption,
  noiseExposure,
  greenAreas,
  electricityConsumption,
  culturalInfrastructure,
];

export const CALCULATORS: ReadonlyMap<string, Calculator> = new Map(CALCULATOR_LIST.map((c) => [c.code, c]));

/** Everything the calculators read, merged per entity type (what the module must query). */
export function dataRequirements(calcs: readonly Calculator[] = CALCULATOR_LIST): Map<string, { attrs: Set<string>; history: Set<string> }> {
  const out = new Map<string, { attrs: Set<string>; history: Set<string> }>();
  for (const c of calcs)
    for (const r of c.reads as DataRequirement[]) {
      let e = out.get(r.entityType);
      if (!e) out.set(r.entityType, (e = { attrs: new Set(), history: new Set() }));
      r.attrs.forEach((a) => e!.attrs.add(a));
      (r.history ?? []).forEach((a) => e!.history.add(a));
    }
  return out;
}

export * from './util.ts';
export { interruptions } from './utilities.ts';
export { POLLUTANTS } from './environment.ts';

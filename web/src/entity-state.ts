/**
 * Pure: classify an entity (keyValues properties) into a display state for map colouring,
 * legends and the device fleet. No DOM, no I/O (unit-tested in test/e2e/dashboard-unit.test.ts).
 */
import type { StringKey } from './strings.ts';

export type StateKey =
  | 'free' | 'occupied'
  | 'good' | 'fair' | 'moderate' | 'poor' | 'verypoor'
  | 'low' | 'medium' | 'high' | 'full'
  | 'online' | 'silent' | 'faulty'
  | 'ok' | 'alarm'
  | 'unknown';

/** Colour-blind-safe-ish palette, all with ≥ 3:1 contrast against the dark map background. */
export const STATE_COLOURS: Record<StateKey, string> = {
  free: '#2ecc71',
  occupied: '#e74c3c',
  good: '#50f0e6',
  fair: '#50ccaa',
  moderate: '#f0e641',
  poor: '#ff5050',
  verypoor: '#c864ff',
  low: '#2ecc71',
  medium: '#f1c40f',
  high: '#e67e22',
  full: '#e74c3c',
  online: '#2ecc71',
  silent: '#95a5a6',
  faulty: '#ff4fa3',
  ok: '#5dade2',
  alarm: '#ff5050',
  unknown: '#bdc3c7',
};

export const STATE_LABELS: Record<StateKey, StringKey> = {
  free: 'stateFree',
  occupied: 'stateOccupied',
  good: 'stateGood',
  fair: 'stateFair',
  moderate: 'stateModerate',
  poor: 'statePoor',
  verypoor: 'stateVeryPoor',
  low: 'stateLow',
  medium: 'stateMedium',
  high: 'stateHigh',
  full: 'stateFull',
  online: 'stateOnline',
  silent: 'stateSilent',
  faulty: 'stateFaulty',
  ok: 'stateOk',
  alarm: 'stateAlarm',
  unknown: 'stateUnknown',
};

/** Which states a type's legend shows. */
export function legendFor(type: string): StateKey[] {
  switch (family(type)) {
    case 'parking': return ['free', 'occupied', 'unknown'];
    case 'air': return ['good', 'fair', 'moderate', 'poor', 'verypoor', 'unknown'];
    case 'waste': return ['low', 'medium', 'high', 'full', 'unknown'];
    case 'device': return ['online', 'silent', 'faulty'];
    case 'alert': return ['alarm', 'ok'];
    default: return ['ok'];
  }
}

type Family = 'parking' | 'air' | 'waste' | 'device' | 'alert' | 'other';

export function family(type: string): Family {
  const t = shortName(type).toLowerCase();
  if (t.includes('parking')) return 'parking';
  if (t.includes('airquality')) return 'air';
  if (t.includes('wastecontainer') || t.includes('container')) return 'waste';
  if (t === 'device' || t === 'devicemeasurement') return 'device';
  if (t === 'alert' || t === 'alarm') return 'alert';
  return 'other';
}

/** last segment of an IRI or a prefixed name */
export function shortName(iri: string): string {
  const m = /[^/#:]+$/.exec(iri);
  return m ? m[0] : iri;
}

/**
 * Attributes the map needs per type family (GeoJSON `attrs=`: smaller pages for 10k entities);
 * undefined = all. `status` is left out: it is a reserved core term the broker refuses as a name.
 */
export function mapAttrs(type: string): string[] | undefined {
  switch (family(type)) {
    case 'parking': return ['name', 'parkingStatus', 'occupancyStatus', 'spotStatus', 'availableSpotNumber', 'location'];
    case 'waste': return ['name', 'fillingLevel', 'location'];
    case 'device': return ['name', 'deviceState', 'dateLastValueReported', 'batteryLevel', 'healthIssues', 'location'];
    default: return undefined;
  }
}

/** A device is silent when it has not reported for this long (ms). */
export const SILENT_AFTER_MS = 60 * 60 * 1000;

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  if (v && typeof v === 'object' && 'value' in v) return num((v as { value: unknown }).value);
  return undefined;
}
function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && '@value' in v) return str((v as { '@value': unknown })['@value']);
  if (v && typeof v === 'object' && 'value' in v) return str((v as { value: unknown }).value);
  if (v && typeof v === 'object' && 'vocab' in v) return str((v as { vocab: unknown }).vocab);
  return undefined;
}

export function stateOf(type: string, p: Record<string, unknown>, now = Date.now()): StateKey {
  switch (family(type)) {
    case 'parking': return parkingState(p);
    case 'air': return airState(p);
    case 'waste': return wasteState(p);
    case 'device': return deviceState(p, now);
    case 'alert': return isActiveAlert(p) ? 'alarm' : 'ok';
    default: return 'ok';
  }
}

/**
 * `status` is a reserved NGSI-LD core term (subscriptions), so feeds may carry the Smart Data Models
 * ParkingSpot status under another name; the first present of these is used.
 */
export const PARKING_STATUS_ATTRS = ['status', 'parkingStatus', 'occupancyStatus', 'spotStatus'];

export function parkingState(p: Record<string, unknown>): StateKey {
  const s = str(PARKING_STATUS_ATTRS.map((k) => p[k]).find((v) => v !== undefined))?.toLowerCase();
  if (s === 'free' || s === 'available') return 'free';
  if (s === 'occupied' || s === 'full' || s === 'closed') return 'occupied';
  const avail = num(p.availableSpotNumber);
  if (avail !== undefined) return avail > 0 ? 'free' : 'occupied';
  return 'unknown';
}

/** European Air Quality Index band (EEA), worst pollutant wins; µg/m³. */
const EAQI: Record<string, number[]> = {
  pm25: [10, 20, 25, 50],
  pm10: [20, 40, 50, 100],
  no2: [40, 90, 120, 230],
  o3: [50, 100, 130, 240],
  so2: [100, 200, 350, 500],
};
const BANDS: StateKey[] = ['good', 'fair', 'moderate', 'poor', 'verypoor'];

export function airState(p: Record<string, unknown>): StateKey {
  const level = str(p.airQualityLevel)?.toLowerCase().replace(/[\s_-]/g, '');
  if (level) {
    const m = BANDS.find((b) => b === level) ?? (level === 'verygood' ? 'good' : level === 'unhealthy' ? 'poor' : level === 'hazardous' ? 'verypoor' : undefined);
    if (m) return m;
  }
  let worst = -1;
  for (const [key, limits] of Object.entries(EAQI)) {
    const v = num(p[key]) ?? num(p[key.toUpperCase()]) ?? num(p[key === 'pm25' ? 'PM2.5' : key]);
    if (v === undefined) continue;
    let band = limits.findIndex((l) => v <= l);
    if (band === -1) band = 4;
    worst = Math.max(worst, band);
  }
  if (worst >= 0) return BANDS[worst];
  const aqi = num(p.airQualityIndex);
  if (aqi !== undefined) return BANDS[Math.min(4, Math.max(0, Math.ceil(aqi / 50) - 1))];
  return 'unknown';
}

export function wasteState(p: Record<string, unknown>): StateKey {
  let f = num(p.fillingLevel);
  if (f === undefined) return 'unknown';
  if (f > 1) f = f / 100; // some feeds report percent
  if (f < 0.4) return 'low';
  if (f < 0.7) return 'medium';
  if (f < 0.9) return 'high';
  return 'full';
}

export function deviceState(p: Record<string, unknown>, now = Date.now()): StateKey {
  const s = str(p.deviceState)?.toLowerCase();
  if (s && /fault|error|broken|fail|malfunction/.test(s)) return 'faulty';
  const issues = Array.isArray(p.healthIssues) ? p.healthIssues.map(String) : typeof p.healthIssues === 'string' ? [p.healthIssues] : [];
  if (issues.some((i) => /^(frozen|outOfRange|malformed)/.test(i))) return 'faulty';
  if (issues.includes('silent')) return 'silent';
  if (s && /silent|offline|disconnected|inactive|off$/.test(s)) return 'silent';
  const last = str(p.dateLastValueReported);  // string or {"@type":"DateTime","@value":...}
  const t = last ? Date.parse(last) : NaN;
  if (Number.isFinite(t) && now - t > SILENT_AFTER_MS) return 'silent';
  if (!Number.isFinite(t) && !s) return 'silent';
  return 'online';
}

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low', 'informational'];
export function severityRank(sev: unknown): number {
  const i = SEVERITY_ORDER.indexOf(String(sev ?? '').toLowerCase());
  return i === -1 ? SEVERITY_ORDER.length : i;
}

/** lifecycle status of an Alert: `alarmStatus` (rules module) or SDM `status` */
export function alertStatus(p: Record<string, unknown>): string {
  return (str(p.alarmStatus) ?? str(p.status) ?? 'active').toLowerCase();
}

/** An alert still needs attention unless it was cleared/closed/resolved. */
export function isActiveAlert(p: Record<string, unknown>): boolean {
  const s = alertStatus(p);
  return !/^(cleared|closed|resolved|inactive|solved)$/.test(s);
}

/**
 * Calculators over the asset inventory held in the broker (current entities): shares of smart meters,
 * ICT-monitored networks, stops with dynamic information, adaptive intersections, Wi-Fi hotspots,
 * open datasets, green areas and cultural institutions.
 */
import type { CalcInput, CalcResult, Calculator, KvEntity } from '../types.ts';
import { lineLengthKm, list, newInputs, num, ofType, pct, polygonAreaM2, profileValue, round, truthy, used, val } from './util.ts';

const INACTIVE = new Set(['outofservice', 'out of service', 'inactive', 'closed', 'decommissioned', 'removed']);
const isActive = (e: KvEntity) => {
  const s = val(e, 'status');
  return !(typeof s === 'string' && INACTIVE.has(s.toLowerCase()));
};

/** ---- EC: ICT: ICT: 5C Availability of Wi-Fi in Public Areas ---- */
export const wifiHotspots: Calculator = {
  code: 'EC: ICT: ICT: 5C',
  description: 'Number of active public Wi-Fi hotspots: WifiPointOfInterest entities, plus PointOfInterest entities whose category includes "wifi"; status outOfService/inactive/closed excluded.',
  unit: 'number of public Wi-Fi hotspots',
  reads: [
    { entityType: 'WifiPointOfInterest', attrs: ['status'] },
    { entityType: 'PointOfInterest', attrs: ['category', 'status'], optional: true },
  ],
  profileKeys: [],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const wifi = ofType(input, 'WifiPointOfInterest');
    const pois = ofType(input, 'PointOfInterest').filter((e) => list(e, 'category').some((c) => /wi-?fi/i.test(c)));
    used(inp, 'WifiPointOfInterest', wifi, ['status']);
    if (pois.length) used(inp, 'PointOfInterest', pois, ['category', 'status']);
    const ids = new Set([...wifi, ...pois].filter(isActive).map((e) => e.id));
    inp.figures.active = ids.size;
    inp.figures.inventoried = wifi.length + pois.length;
    return { value: ids.size, unit: this.unit, inputs: inp };
  },
};

/** share of meters that are smart: numerator from the platform, denominator from the profile */
function meterShare(
  code: string,
  label: string,
  observationTypes: string[],
  deviceProps: string[],
  profileKey: string,
): Calculator {
  return {
    code,
    description: `${label}: distinct smart meters connected to the platform (${observationTypes.join(', ')} entities, keyed by refDevice when present, and Device entities of category "meter" whose controlledProperty is one of ${deviceProps.join(', ')}) / ${profileKey} from the city profile x 100.`,
    unit: '%',
    method: 'semiautomatic',
    reads: [
      ...observationTypes.map((t, i) => ({ entityType: t, attrs: ['refDevice'], optional: i > 0 })),
      { entityType: 'Device', attrs: ['category', 'controlledProperty'], optional: true },
    ],
    profileKeys: [profileKey],
    compute(input: CalcInput): CalcResult {
      const inp = newInputs(input);
      const meters = new Set<string>();
      for (const t of observationTypes) {
        const es = ofType(input, t);
        if (es.length) used(inp, t, es, ['refDevice']);
        for (const e of es) {
          const refs = list(e, 'refDevice');
          if (refs.length) refs.forEach((r) => meters.add(r));
          else meters.add(e.id);
        }
      }
      const devices = ofType(input, 'Device').filter(
        (e) => list(e, 'category').includes('meter') && list(e, 'controlledProperty').some((p) => deviceProps.includes(p)),
      );
      if (devices.length) used(inp, 'Device', devices, ['category', 'controlledProperty']);
      devices.forEach((d) => meters.add(d.id));
      inp.figures.smartMeters = meters.size;
      const total = profileValue(input, inp, profileKey);
      if (total === null) {
        inp.notes.push(`city profile has no ${profileKey}: share cannot be computed`);
        return { value: null, unit: '%', inputs: inp };
      }
      if (meters.size > total) inp.notes.push(`more smart meters (${meters.size}) than ${profileKey} (${total}): profile out of date?`);
      return { value: pct(Math.min(meters.size, total), total), unit: '%', inputs: inp };
    },
  };
}

export const smartWaterMeters = meterShare('EC: ICT: WS: 1C', 'Smart water meters', ['WaterConsumptionObserved', 'WaterMeter'], ['waterConsumption', 'water'], 'waterMetersTotal');
export const smartElectricityMeters = meterShare(
  'EC: ICT: ES: 1C',
  'Smart electricity meters',
  ['ThreePhaseAcMeasurement', 'ACMeasurement', 'ElectricityMeter'],
  ['electricityConsumption', 'energy', 'electricity'],
  'electricityMetersTotal',
);

/** length in km of a linear asset: geometry first, else `length` (in the given unit) */
export function assetLengthKm(e: KvEntity, lengthUnit: 'm' | 'km'): number | null {
  const g = lineLengthKm(val(e, 'location'));
  if (g !== null && g > 0) return g;
  const l = num(e, 'length');
  if (l !== null) return lengthUnit === 'm' ? l / 1000 : l;
  const a = num(e, 'startKilometer');
  const b = num(e, 'endKilometer');
  if (a !== null && b !== null) return Math.abs(b - a);
  return null;
}

const DRAINAGE = new Set(['drainage', 'stormwater', 'storm water', 'combinedsewer', 'combined sewer']);
const isDrainage = (e: KvEntity) => list(e, 'networkType').some((t) => DRAINAGE.has(t.toLowerCase()));

/** share of a linear network monitored by ICT (segment with refDevice or monitored=true) */
function networkShare(
  code: string,
  label: string,
  entityType: string,
  filter: (e: KvEntity) => boolean,
  filterText: string,
  profileKey: string,
): Calculator {
  return {
    code,
    description: `${label}: km of ${entityType} segments (${filterText}) that are ICT-monitored (a refDevice relationship or monitored=true) / total network km (${profileKey} from the profile, else the sum of all segments) x 100. Length from the LineString geometry, else the length attribute in metres.`,
    unit: '%',
    reads: [{ entityType, attrs: ['location', 'length', 'refDevice', 'monitored', 'networkType'] }],
    profileKeys: [profileKey],
    compute(input: CalcInput): CalcResult {
      const inp = newInputs(input);
      const segs = ofType(input, entityType).filter(filter);
      used(inp, entityType, segs, ['location', 'length', 'refDevice', 'monitored', 'networkType']);
      let all = 0;
      let mon = 0;
      let unknown = 0;
      for (const s of segs) {
        const km = assetLengthKm(s, 'm');
        if (km === null) {
          unknown++;
          continue;
        }
        all += km;
        if (list(s, 'refDevice').length > 0 || truthy(s, 'monitored')) mon += km;
      }
      if (unknown) inp.notes.push(`${unknown} segment(s) without geometry or length ignored`);
      inp.figures.monitoredKm = round(mon, 3);
      inp.figures.inventoryKm = round(all, 3);
      const total = profileValue(input, inp, profileKey) ?? (all > 0 ? all : null);
      if (total === null) {
        inp.notes.push(`no ${entityType} segments and no ${profileKey} in the profile`);
        return { value: null, unit: '%', inputs: inp };
      }
      inp.figures.totalKm = round(total, 3);
      return { value: pct(Math.min(mon, total), total), unit: '%', inputs: inp };
    },
  };
}

export const waterSupplyMonitoring = networkShare('EC: ICT: WS: 2A', 'Water supply ICT monitoring', 'Pipe', (e) => !isDrainage(e), 'networkType not drainage/stormWater', 'waterNetworkKm');
export const drainageMonitoring = networkShare('EC: ICT: D: 1A', 'Drainage / storm water ICT monitoring', 'Pipe', isDrainage, 'networkType drainage, stormWater or combinedSewer', 'drainageNetworkKm');
export const electricityMonitoring = networkShare('EC: ICT: ES: 2A', 'Electricity supply ICT monitoring', 'PowerLine', () => true, 'all', 'electricityNetworkKm');

/** ---- EC: ICT: T: 1C Dynamic Public Transport Information ---- */
export const dynamicPublicTransportInfo: Calculator = {
  code: 'EC: ICT: T: 1C',
  description: 'Stops and stations (GtfsStop with locationType 0/1 or absent, PublicTransportStop) with realTimePassengerInformation=true / all stops and stations (publicTransportStops from the profile when given) x 100.',
  unit: '%',
  reads: [
    { entityType: 'GtfsStop', attrs: ['locationType', 'realTimePassengerInformation'] },
    { entityType: 'PublicTransportStop', attrs: ['realTimePassengerInformation'], optional: true },
  ],
  profileKeys: ['publicTransportStops'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const gtfs = ofType(input, 'GtfsStop').filter((e) => {
      const lt = num(e, 'locationType');
      return lt === null || lt === 0 || lt === 1;
    });
    const pts = ofType(input, 'PublicTransportStop');
    used(inp, 'GtfsStop', gtfs, ['locationType', 'realTimePassengerInformation']);
    if (pts.length) used(inp, 'PublicTransportStop', pts, ['realTimePassengerInformation']);
    const stops = [...gtfs, ...pts];
    const dyn = stops.filter((e) => truthy(e, 'realTimePassengerInformation')).length;
    inp.figures.withRealTimeInformation = dyn;
    inp.figures.inventoryStops = stops.length;
    const total = profileValue(input, inp, 'publicTransportStops') ?? (stops.length || null);
    if (total === null) {
      inp.notes.push('no stops in the broker and no publicTransportStops in the profile');
      return { value: null, unit: '%', inputs: inp };
    }
    return { value: pct(Math.min(dyn, total), total), unit: '%', inputs: inp };
  },
};

const MAJOR = new Set(['motorway', 'trunk', 'primary', 'secondary', 'arterial', 'highway']);

/** ---- EC: ICT: T: 2C Traffic Monitoring ---- */
export const trafficMonitoring: Calculator = {
  code: 'EC: ICT: T: 2C',
  description: 'km of major RoadSegments (roadClass motorway/trunk/primary/secondary/arterial/highway, or no roadClass) observed by a TrafficFlowObserved (refRoadSegment) or carrying a refDevice / total km of major streets (majorStreetsKm from the profile, else the sum of major segments) x 100. RoadSegment length from geometry, else length (km), else endKilometer - startKilometer.',
  unit: '%',
  reads: [
    { entityType: 'RoadSegment', attrs: ['location', 'length', 'startKilometer', 'endKilometer', 'roadClass', 'refDevice'] },
    { entityType: 'TrafficFlowObserved', attrs: ['refRoadSegment'] },
  ],
  profileKeys: ['majorStreetsKm'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const segs = ofType(input, 'RoadSegment').filter((e) => {
      const c = val(e, 'roadClass');
      return c === undefined || c === null || MAJOR.has(String(c).toLowerCase());
    });
    const flows = ofType(input, 'TrafficFlowObserved');
    used(inp, 'RoadSegment', segs, ['location', 'length', 'roadClass', 'refDevice']);
    used(inp, 'TrafficFlowObserved', flows, ['refRoadSegment']);
    const observed = new Set(flows.flatMap((f) => list(f, 'refRoadSegment')));
    let all = 0;
    let mon = 0;
    for (const s of segs) {
      const km = assetLengthKm(s, 'km');
      if (km === null) continue;
      all += km;
      if (observed.has(s.id) || list(s, 'refDevice').length) mon += km;
    }
    inp.figures.monitoredKm = round(mon, 3);
    inp.figures.inventoryKm = round(all, 3);
    const total = profileValue(input, inp, 'majorStreetsKm') ?? (all > 0 ? all : null);
    if (total === null) {
      inp.notes.push('no major RoadSegments and no majorStreetsKm in the profile');
      return { value: null, unit: '%', inputs: inp };
    }
    return { value: pct(Math.min(mon, total), total), unit: '%', inputs: inp };
  },
};

/** ---- EC: ICT: T: 3A Intersection Control ---- */
export const adaptiveIntersections: Calculator = {
  code: 'EC: ICT: T: 3A',
  description: 'Signalised intersections (TrafficSignal entities, one per intersection, or grouped by refIntersection) whose controlMode is adaptive or priority / all signalised intersections (signalisedIntersections from the profile when given) x 100.',
  unit: '%',
  reads: [{ entityType: 'TrafficSignal', attrs: ['controlMode', 'refIntersection'] }],
  profileKeys: ['signalisedIntersections'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const sig = ofType(input, 'TrafficSignal');
    used(inp, 'TrafficSignal', sig, ['controlMode', 'refIntersection']);
    const byX = new Map<string, boolean>();
    for (const s of sig) {
      const key = list(s, 'refIntersection')[0] ?? s.id;
      const adaptive = ['adaptive', 'priority', 'prioritisation', 'prioritization'].includes(String(val(s, 'controlMode') ?? '').toLowerCase());
      byX.set(key, (byX.get(key) ?? false) || adaptive);
    }
    const adaptive = [...byX.values()].filter(Boolean).length;
    inp.figures.adaptiveIntersections = adaptive;
    inp.figures.inventoryIntersections = byX.size;
    const total = profileValue(input, inp, 'signalisedIntersections') ?? (byX.size || null);
    if (total === null) {
      inp.notes.push('no TrafficSignal entities and no signalisedIntersections in the profile');
      return { value: null, unit: '%', inputs: inp };
    }
    return { value: pct(Math.min(adaptive, total), total), unit: '%', inputs: inp };
  },
};

const OPEN_RIGHTS = /public|open/i;
const CLOSED_RIGHTS = /non[-_ ]?public|restricted|confidential|closed/i;

/** ---- EC: ICT: PS: 1A Open Data ---- */
export const openData: Calculator = {
  code: 'EC: ICT: PS: 1A',
  description: 'Dataset entities (DCAT-AP) whose accessRights is public/open (not non-public/restricted/confidential; or absent with a license) / all inventoried datasets (datasetsInventoried from the profile, else all Dataset entities) x 100; the number published is the data point "number".',
  unit: '%',
  reads: [{ entityType: 'Dataset', attrs: ['accessRights', 'license'] }],
  profileKeys: ['datasetsInventoried'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const ds = ofType(input, 'Dataset');
    used(inp, 'Dataset', ds, ['accessRights', 'license']);
    const open = ds.filter((d) => {
      const r = val(d, 'accessRights');
      if (r === undefined || r === null) return val(d, 'license') !== undefined;
      const rights = String(r);
      return !CLOSED_RIGHTS.test(rights) && OPEN_RIGHTS.test(rights);
    }).length;
    inp.figures.openDatasets = open;
    const total = profileValue(input, inp, 'datasetsInventoried') ?? (ds.length || null);
    const share = total === null ? null : pct(Math.min(open, total), total);
    if (total === null) inp.notes.push('no Dataset entities and no datasetsInventoried in the profile');
    return { value: share, dataPoints: { percentage: share, number: open }, unit: '%', inputs: inp };
  },
};

/** ---- EN: EN: PSN: 1C Green Areas ---- */
export const greenAreas: Calculator = {
  code: 'EN: EN: PSN: 1C',
  description: 'Green area in hectares per 100 000 inhabitants: Park and Garden entities, area from the Polygon/MultiPolygon location (spherical approximation), else the area attribute in m2; divided by population / 100 000.',
  unit: 'hectares per 100 000 inhabitants',
  reads: [
    { entityType: 'Park', attrs: ['location', 'area'] },
    { entityType: 'Garden', attrs: ['location', 'area'], optional: true },
  ],
  profileKeys: ['population'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    let m2 = 0;
    for (const t of ['Park', 'Garden']) {
      const es = ofType(input, t);
      if (!es.length) continue;
      used(inp, t, es, ['location', 'area']);
      for (const e of es) m2 += polygonAreaM2(val(e, 'location')) ?? num(e, 'area') ?? 0;
    }
    inp.figures.greenAreaHa = round(m2 / 10_000, 3);
    const pop = profileValue(input, inp, 'population');
    if (!pop) {
      inp.notes.push('city profile has no population');
      return { value: null, unit: this.unit, inputs: inp };
    }
    return { value: round(m2 / 10_000 / (pop / 100_000)), unit: this.unit, inputs: inp };
  },
};

/** ---- SC: EH: C: 2A Cultural Infrastructure ---- */
export const culturalInfrastructure: Calculator = {
  code: 'SC: EH: C: 2A',
  description: 'Cultural institutions (Museum entities, and PointOfInterest entities whose category includes library, theatre, museum or cultural centre) per 100 000 inhabitants.',
  unit: 'per 100 000 inhabitants',
  reads: [
    { entityType: 'Museum', attrs: ['status'] },
    { entityType: 'PointOfInterest', attrs: ['category', 'status'], optional: true },
  ],
  profileKeys: ['population'],
  compute(input): CalcResult {
    const inp = newInputs(input);
    const museums = ofType(input, 'Museum');
    const pois = ofType(input, 'PointOfInterest').filter((e) => list(e, 'category').some((c) => /librar|theat|museum|cultur|cinema|concert/i.test(c)));
    if (museums.length) used(inp, 'Museum', museums, ['status']);
    if (pois.length) used(inp, 'PointOfInterest', pois, ['category', 'status']);
    const n = new Set([...museums, ...pois].filter(isActive).map((e) => e.id)).size;
    inp.figures.institutions = n;
    const pop = profileValue(input, inp, 'population');
    if (!pop) {
      inp.notes.push('city profile has no population');
      return { value: null, unit: this.unit, inputs: inp };
    }
    return { value: round(n / (pop / 100_000)), unit: this.unit, inputs: inp };
  },
};

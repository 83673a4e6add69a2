/**
 * Demo city: Santander (Cantabria, Spain), home of the SmartSantander testbed. Devices are placed
 * on real street coordinates (WGS84) and produce plausible daily patterns; a few are faulty on
 * purpose (silent, frozen value, low battery, out-of-range values, malformed payloads).
 * Pure: provisioning payloads (FIWARE shapes) and `demoMeasures(device, t)` as a deterministic
 * function of time; the module's simulator publishes them through MQTT and HTTP.
 */

export type DemoKind =
  | 'airQuality'
  | 'noise'
  | 'parking'
  | 'streetlight'
  | 'waste'
  | 'water'
  | 'electricity'
  | 'traffic'
  | 'weather';

/** How the simulated device reaches the platform. */
export type DemoTransport = 'mqtt-json' | 'mqtt-ul' | 'http-ul' | 'http-json' | 'lorawan-chirpstack' | 'lorawan-tts';

export type DemoFault = 'silent' | 'frozen' | 'batteryLow' | 'outOfRange' | 'malformed';

export interface DemoDevice {
  id: string;
  kind: DemoKind;
  /** human place name */
  place: string;
  lat: number;
  lon: number;
  transport: DemoTransport;
  /** seconds between reports */
  interval: number;
  fault?: DemoFault;
  devEui?: string;
}

export const DEMO_CITY = {
  name: 'Santander',
  country: 'ES',
  /** Ayuntamiento de Santander */
  center: { lat: 43.4636, lon: -3.8046 },
  /** UTC offset used for daily patterns (CET; DST ignored) */
  utcOffsetHours: 1,
  /** fiware-service of the demo ('' = default tenant, what the dashboard shows) */
  service: '',
  servicePath: '/demo',
};

interface KindSpec {
  apikey: string;
  entity_type: string;
  transport: DemoTransport;
  interval: number;
  protocol: string;
  attributes: { object_id: string; name: string; type: string; unitCode?: string }[];
  commands?: { name: string; type: string }[];
  ranges?: Record<string, [number, number]>;
}

export const DEMO_KINDS: Record<DemoKind, KindSpec> = {
  airQuality: {
    apikey: 'demo-aq',
    entity_type: 'AirQualityObserved',
    transport: 'mqtt-json',
    interval: 10,
    protocol: 'IoTA-JSON',
    attributes: [
      { object_id: 'no2', name: 'NO2', type: 'Number', unitCode: 'GQ' },
      { object_id: 'o3', name: 'O3', type: 'Number', unitCode: 'GQ' },
      { object_id: 'pm10', name: 'PM10', type: 'Number', unitCode: 'GQ' },
      { object_id: 'pm25', name: 'PM2.5', type: 'Number', unitCode: 'GQ' },
      { object_id: 'co', name: 'CO', type: 'Number', unitCode: 'GP' },
      { object_id: 't', name: 'temperature', type: 'Number', unitCode: 'CEL' },
      { object_id: 'h', name: 'relativeHumidity', type: 'Number', unitCode: 'P1' },
    ],
    ranges: { NO2: [0, 400], PM10: [0, 600], temperature: [-20, 50] },
  },
  noise: {
    apikey: 'demo-noise',
    entity_type: 'NoiseLevelObserved',
    transport: 'mqtt-ul',
    interval: 10,
    protocol: 'PDI-IoTA-UltraLight',
    attributes: [
      { object_id: 'laeq', name: 'LAeq', type: 'Number', unitCode: '2N' },
      { object_id: 'lamax', name: 'LAmax', type: 'Number', unitCode: '2N' },
    ],
    ranges: { LAeq: [20, 130] },
  },
  parking: {
    apikey: 'demo-parking',
    entity_type: 'ParkingSpot',
    transport: 'lorawan-chirpstack',
    interval: 15,
    protocol: 'LoRaWAN',
    attributes: [
      { object_id: 'status', name: 'status', type: 'Text' },
      { object_id: 'battery', name: 'batteryLevel', type: 'Number' },
    ],
  },
  streetlight: {
    apikey: 'demo-light',
    entity_type: 'Streetlight',
    transport: 'mqtt-ul',
    interval: 15,
    protocol: 'PDI-IoTA-UltraLight',
    attributes: [
      { object_id: 'st', name: 'powerState', type: 'Text' },
      { object_id: 'dim', name: 'dimmingLevel', type: 'Number', unitCode: 'P1' },
      { object_id: 'pw', name: 'powerConsumption', type: 'Number', unitCode: 'WTT' },
    ],
    commands: [
      { name: 'switch', type: 'command' },
      { name: 'dim', type: 'command' },
    ],
  },
  waste: {
    apikey: 'demo-waste',
    entity_type: 'WasteContainer',
    transport: 'lorawan-tts',
    interval: 20,
    protocol: 'LoRaWAN',
    attributes: [
      { object_id: 'fill', name: 'fillingLevel', type: 'Number' },
      { object_id: 'temp', name: 'temperature', type: 'Number', unitCode: 'CEL' },
      { object_id: 'battery', name: 'batteryLevel', type: 'Number' },
    ],
    ranges: { fillingLevel: [0, 1], temperature: [-20, 70] },
  },
  water: {
    apikey: 'demo-water',
    entity_type: 'WaterMeter',
    transport: 'http-ul',
    interval: 15,
    protocol: 'PDI-IoTA-UltraLight',
    attributes: [
      { object_id: 'v', name: 'cumulativeWaterConsumption', type: 'Number', unitCode: 'MTQ' },
      { object_id: 'f', name: 'flow', type: 'Number', unitCode: 'G51' },
    ],
  },
  electricity: {
    apikey: 'demo-power',
    entity_type: 'ElectricityMeter',
    transport: 'http-json',
    interval: 15,
    protocol: 'IoTA-JSON',
    attributes: [
      { object_id: 'e', name: 'totalActiveEnergyImport', type: 'Number', unitCode: 'KWH' },
      { object_id: 'p', name: 'activePower', type: 'Number', unitCode: 'KWT' },
    ],
  },
  traffic: {
    apikey: 'demo-traffic',
    entity_type: 'TrafficFlowObserved',
    transport: 'mqtt-json',
    interval: 10,
    protocol: 'IoTA-JSON',
    attributes: [
      { object_id: 'int', name: 'intensity', type: 'Number' },
      { object_id: 'spd', name: 'averageVehicleSpeed', type: 'Number', unitCode: 'KMH' },
      { object_id: 'occ', name: 'occupancy', type: 'Number' },
    ],
    ranges: { averageVehicleSpeed: [0, 150], occupancy: [0, 1] },
  },
  weather: {
    apikey: 'demo-weather',
    entity_type: 'WeatherObserved',
    transport: 'http-ul',
    interval: 15,
    protocol: 'PDI-IoTA-UltraLight',
    attributes: [
      { object_id: 't', name: 'temperature', type: 'Number', unitCode: 'CEL' },
      { object_id: 'h', name: 'relativeHumidity', type: 'Number' },
      { object_id: 'p', name: 'atmosphericPressure', type: 'Number', unitCode: 'A97' },
      { object_id: 'ws', name: 'windSpeed', type: 'Number', unitCode: 'MTS' },
      { object_id: 'wd', name: 'windDirection', type: 'Number', unitCode: 'DD' },
      { object_id: 'r', name: 'precipitation', type: 'Number', unitCode: 'MMT' },
    ],
    ranges: { temperature: [-15, 45], relativeHumidity: [0, 1] },
  },
};

type Spot = [string, number, number, DemoFault?];

const PLACES: Record<DemoKind, Spot[]> = {
  airQuality: [
    ['Jardines de Pereda', 43.4614, -3.8037],
    ['Plaza de Numancia', 43.4602, -3.8137],
    ['Calle Castilla', 43.4561, -3.8186, 'frozen'],
    ['El Sardinero', 43.4762, -3.789],
  ],
  noise: [
    ['Plaza del Ayuntamiento', 43.4636, -3.8047],
    ['Paseo de Pereda', 43.462, -3.8006],
    ['Calle Burgos', 43.4612, -3.8118],
    ['Avenida de los Castros', 43.4716, -3.799],
    ['Plaza de Cañadío', 43.463, -3.8001],
    ['Calle Vargas', 43.4585, -3.8163, 'silent'],
  ],
  parking: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => [`Calle Daoíz y Velarde ${i + 1}`, 43.46297 + i * 0.00003, -3.80356 + i * 0.00009] as Spot),
  streetlight: [0, 1, 2, 3, 4, 5].map((i) => [`Calle Castelar ${i + 1}`, 43.4624 + i * 0.00028, -3.7983 + i * 0.00085] as Spot),
  waste: [
    ['Calle Cádiz', 43.4596, -3.809],
    ['Calle Isabel II', 43.4627, -3.8066],
    ['Calle Santa Lucía', 43.4641, -3.8021],
    ['Cuatro Caminos', 43.4572, -3.823, 'batteryLow'],
    ['Calle General Dávila', 43.4679, -3.8101],
    ['Hospital Valdecilla', 43.4552, -3.8302],
  ],
  water: [
    ['Barrio Pesquero', 43.4527, -3.8146],
    ['Peñacastillo', 43.4478, -3.8502],
    ['Cueto', 43.4815, -3.798, 'malformed'],
  ],
  electricity: [
    ['Ayuntamiento de Santander', 43.4636, -3.8046],
    ['Palacio de Exposiciones', 43.4716, -3.7955],
    ['Mercado de la Esperanza', 43.4641, -3.8063],
  ],
  traffic: [
    ['Calle Castilla - Marqués de la Hermida', 43.4552, -3.82],
    ['Avenida Reina Victoria', 43.469, -3.779],
    ['Calle Calvo Sotelo', 43.4629, -3.8071],
    ['Avenida de Parayas', 43.4468, -3.8262, 'outOfRange'],
  ],
  weather: [['Palacio de la Magdalena', 43.469, -3.7655]],
};

const PREFIX: Record<DemoKind, string> = {
  airQuality: 'aq',
  noise: 'noise',
  parking: 'parking',
  streetlight: 'light',
  waste: 'waste',
  water: 'water',
  electricity: 'power',
  traffic: 'traffic',
  weather: 'weather',
};

export function demoDevices(): DemoDevice[] {
  const out: DemoDevice[] = [];
  for (const kind of Object.keys(PLACES) as DemoKind[]) {
    const spec = DEMO_KINDS[kind];
    PLACES[kind].forEach(([place, lat, lon, fault], i) => {
      const id = `${PREFIX[kind]}-${String(i + 1).padStart(2, '0')}`;
      const d: DemoDevice = { id, kind, place, lat, lon, transport: spec.transport, interval: spec.interval };
      if (fault) d.fault = fault;
      if (spec.transport.startsWith('lorawan')) d.devEui = devEuiFor(id);
      out.push(d);
    });
  }
  return out;
}

function devEuiFor(id: string): string {
  return ('70B3D5' + (hash(id) >>> 0).toString(16).padStart(8, '0') + '0000').slice(0, 16).toUpperCase();
}

/** FIWARE provisioning payloads for the demo: `{services}` for POST /iot/services and `{devices}` for POST /iot/devices. */
export function demoProvisioning(): { services: Record<string, unknown>[]; devices: Record<string, unknown>[] } {
  const services = (Object.keys(DEMO_KINDS) as DemoKind[]).map((kind) => {
    const s = DEMO_KINDS[kind];
    return {
      apikey: s.apikey,
      resource: s.transport.startsWith('http-json') ? '/iot/json' : s.transport === 'http-ul' ? '/iot/d' : '',
      entity_type: s.entity_type,
      protocol: s.protocol,
      transport: s.transport.startsWith('mqtt') ? 'MQTT' : s.transport.startsWith('lorawan') ? 'LORAWAN' : 'HTTP',
      autoprovision: false,
      attributes: s.attributes.map((a) => ({
        object_id: a.object_id,
        name: a.name,
        type: a.type,
        ...(a.unitCode ? { metadata: { unitCode: { type: 'Text', value: a.unitCode } } } : {}),
      })),
      commands: s.commands ?? [],
      health: { expectedInterval: s.interval, ...(s.ranges ? { ranges: s.ranges } : {}) },
    };
  });
  const devices = demoDevices().map((d) => {
    const s = DEMO_KINDS[d.kind];
    const dev: Record<string, unknown> = {
      device_id: d.id,
      apikey: s.apikey,
      entity_name: `urn:ngsi-ld:${s.entity_type}:santander:${d.id}`,
      entity_type: s.entity_type,
      protocol: s.protocol,
      transport: s.transport.startsWith('mqtt') ? 'MQTT' : s.transport.startsWith('lorawan') ? 'LORAWAN' : 'HTTP',
      timezone: 'Europe/Madrid',
      static_attributes: [
        { name: 'location', type: 'geo:json', value: { type: 'Point', coordinates: [d.lon, d.lat] } },
        { name: 'address', type: 'StructuredValue', value: { streetAddress: d.place, addressLocality: 'Santander', addressRegion: 'Cantabria', addressCountry: 'ES' } },
        { name: 'name', type: 'Text', value: `${d.place}` },
      ],
    };
    if (d.devEui) dev.internal_attributes = { lorawan: { dev_eui: d.devEui } };
    return dev;
  });
  return { services, devices };
}

// ---------------------------------------------------------------- measures

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/** Deterministic uniform [0,1) for (key, n). */
export function rand(key: string, n: number): number {
  let t = (hash(key) ^ Math.imul(n | 0, 0x9e3779b1)) >>> 0;
  t = (t + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
const clamp = (v: number, a: number, b: number) => Math.min(b, Math.max(a, v));

/** Local hour of day (fractional) in the demo city. */
export function localHour(t: number): number {
  const h = (t / 3_600_000 + DEMO_CITY.utcOffsetHours) % 24;
  return h < 0 ? h + 24 : h;
}

/** Road traffic shape: morning and evening peaks, low at night (0..1). */
export function trafficShape(h: number): number {
  const peak = (c: number, w: number) => Math.exp(-((h - c) ** 2) / (2 * w * w));
  return clamp(0.08 + 0.85 * peak(8.5, 1.2) + 0.55 * peak(14, 1.5) + 0.9 * peak(18.5, 1.6), 0, 1);
}

/** Human activity (noise, water, power): daytime plateau. */
export function activityShape(h: number): number {
  return clamp(0.15 + 0.85 / (1 + Math.exp(-(h - 7.5) * 1.6)) - 0.85 / (1 + Math.exp(-(h - 23) * 1.6)), 0, 1);
}

/** Sunlight (0..1), Santander roughly 8:00-18:30 in winter, 7:00-22:00 in summer; a mean is enough. */
export function sunShape(h: number): number {
  return clamp(Math.sin(((h - 7.5) / 12.5) * Math.PI), 0, 1);
}

/** Streetlights are on at night (local time). */
export function lightsOn(h: number): boolean {
  return h < 7.75 || h >= 18.75;
}

/**
 * Measures (object_id -> value) of a demo device at time t, or undefined when the device does not
 * report (silent fault). `seq` is the report number (used for noise and faults). Malformed devices
 * return a raw string payload every third report.
 */
export function demoMeasures(d: DemoDevice, t: number, seq: number): Record<string, number | string> | string | undefined {
  const h = localHour(t);
  const r = (n: number) => rand(d.id, seq * 16 + n);
  const noise = (n: number, a: number) => (r(n) - 0.5) * 2 * a;
  if (d.fault === 'silent' && seq > 0) return undefined;
  if (d.fault === 'malformed' && seq % 3 === 2) return seq % 2 ? 'v|' : '{"v": oops';
  const day = Math.floor(t / 86_400_000);
  switch (d.kind) {
    case 'airQuality': {
      const tr = trafficShape(h);
      const site = 0.7 + rand(d.id, -1) * 0.6;
      const no2 = d.fault === 'frozen' && seq > 2 ? 42.5 : round(site * (12 + 48 * tr) + noise(1, 4));
      return {
        no2,
        o3: round(clamp(35 + 45 * sunShape(h) - 0.35 * no2 + noise(2, 5), 2, 200)),
        pm10: round(site * (10 + 22 * tr) + noise(3, 3)),
        pm25: round(site * (6 + 13 * tr) + noise(4, 2)),
        co: round(0.15 + 0.45 * tr + noise(5, 0.05), 2),
        t: round(12 + 5 * sunShape(h) + noise(6, 0.4)),
        h: round(clamp(78 - 15 * sunShape(h) + noise(7, 3), 30, 100)),
      };
    }
    case 'noise': {
      const laeq = round(42 + 28 * activityShape(h) * (0.6 + 0.4 * trafficShape(h)) + noise(1, 3));
      return { laeq, lamax: round(laeq + 8 + r(2) * 12) };
    }
    case 'parking': {
      const occ = 0.25 + 0.65 * activityShape(h);
      const slot = Math.floor(t / 600_000); // a car stays ~10 minutes at least
      return { status: rand(d.id, slot) < occ ? 'occupied' : 'free', battery: round(0.9 - (seq % 1000) * 0.0001, 3) };
    }
    case 'streetlight': {
      const on = lightsOn(h);
      const dim = on ? (h >= 0 && h < 6 ? 50 : 100) : 0;
      return { st: on ? 'on' : 'off', dim, pw: on ? round(dim * 0.7 + noise(1, 2)) : 0 };
    }
    case 'waste': {
      const rate = 0.5 + rand(d.id, -2) * 0.6; // fraction of capacity per day
      const sinceCollection = ((h - 6 + 24) % 24) / 24; // collected at 06:00
      const fill = clamp(0.03 + rate * sinceCollection * (0.6 + 0.8 * activityShape(h)), 0, 1);
      return {
        fill: round(fill, 2),
        temp: round(11 + 6 * sunShape(h) + noise(1, 0.5)),
        battery: d.fault === 'batteryLow' ? round(0.08 - (seq % 50) * 0.0005, 3) : round(0.82 - (day % 300) * 0.001, 3),
      };
    }
    case 'water': {
      const flow = round(0.4 + 3.2 * activityShape(h) + noise(1, 0.3), 2); // m3/h
      return { v: round(1200 + rand(d.id, -3) * 500 + cumulative(t, (x) => 0.4 + 3.2 * activityShape(x)), 2), f: flow };
    }
    case 'electricity': {
      const p = round(4 + 38 * activityShape(h) + noise(1, 2), 2); // kW
      return { e: round(50_000 + rand(d.id, -4) * 20_000 + cumulative(t, (x) => 4 + 38 * activityShape(x)), 1), p };
    }
    case 'traffic': {
      const tr = trafficShape(h);
      const cap = 900 + rand(d.id, -5) * 900; // veh/h
      const intensity = Math.round(cap * tr + noise(1, 30));
      const occ = round(clamp(0.05 + 0.6 * tr * tr + noise(2, 0.03), 0, 1), 2);
      const spd = d.fault === 'outOfRange' && seq % 4 === 3 ? 247 : round(clamp(50 - 25 * tr * tr + noise(3, 3), 5, 70));
      return { int: Math.max(0, intensity), spd, occ };
    }
    case 'weather': {
      return {
        t: round(12.5 + 4 * Math.sin(((h - 9) / 24) * 2 * Math.PI) + noise(1, 0.3)),
        h: round(clamp(0.8 - 0.15 * sunShape(h) + noise(2, 0.03), 0.3, 1), 2),
        p: round(1016 + 4 * Math.sin((day / 5) * Math.PI) + noise(3, 0.4)),
        ws: round(clamp(3 + 4 * sunShape(h) + noise(4, 1.5), 0, 30)),
        wd: Math.round(300 + noise(5, 40) + 360) % 360,
        r: r(6) < 0.15 ? round(r(7) * 2, 1) : 0,
      };
    }
  }
}

/** Integral (per-hour rate) from the start of the local day to t, plus whole days since 2025-01-01. */
function cumulative(t: number, rate: (h: number) => number): number {
  let daily = 0;
  for (let i = 0; i < 96; i++) daily += rate((i + 0.5) / 4) / 4;
  const dayStart = Date.UTC(2025, 0, 1) - DEMO_CITY.utcOffsetHours * 3_600_000;
  const days = Math.floor((t - dayStart) / 86_400_000);
  const h = localHour(t);
  let today = 0;
  const steps = Math.floor(h * 4);
  for (let i = 0; i < steps; i++) today += rate((i + 0.5) / 4) / 4;
  today += rate(h) * (h - steps / 4);
  return Math.max(0, days) * daily + today;
}

/** Ultralight text of a measure record: t|25|h|40 (optionally prefixed by an ISO timestamp). */
export function toUltralight(m: Record<string, number | string>, isoTime?: string): string {
  const body = Object.entries(m)
    .map(([k, v]) => `${k}|${v}`)
    .join('|');
  return isoTime ? `${isoTime}|${body}` : body;
}

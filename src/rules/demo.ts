/**
 * Rules of the demo city (created at start when URBIS_DEMO is on and they do not exist yet; an
 * operator's edits are kept). Thresholds follow the WHO 2021 air quality guidelines (24-hour PM2.5
 * 15 ug/m3, PM10 45 ug/m3, here with margins) and the demo devices' behaviour (src/devices/domain/demo-city.ts):
 * a silent noise sensor, a waste container with a failing battery, an out-of-range traffic sensor,
 * containers filling up during the day, parking spots and congested roads at peak hours.
 * Attribute names: Smart Data Models (pm25 / pm10; the PM10 rule also accepts the FIWARE-style PM10).
 */
export const DEMO_RULES: Record<string, unknown>[] = [
  {
    id: 'demo-pm25-high',
    name: 'PM2.5 high for 10 minutes',
    description: 'Fine particulate matter above 25 ug/m3 (WHO 2021 interim target 4) for 10 minutes.',
    select: { type: 'AirQualityObserved' },
    trigger: { kind: 'condition', q: 'pm25>25', for: '10m' },
    alarm: { severity: 'medium', category: 'environment', subCategory: 'airPollution', clearAfter: '5m' },
  },
  {
    id: 'demo-pm10-high',
    name: 'PM10 high for 10 minutes',
    description: 'Particulate matter PM10 above 45 ug/m3 (WHO 2021 24-hour guideline) for 10 minutes.',
    select: { type: 'AirQualityObserved' },
    trigger: { kind: 'condition', q: 'pm10>45|PM10>45', for: '10m' },
    alarm: { severity: 'medium', category: 'environment', subCategory: 'airPollution', clearAfter: '5m' },
  },
  {
    id: 'demo-device-silent',
    name: 'Device silent',
    description: 'A device has reported nothing for 2 minutes (demo devices report every 10-20 s).',
    select: { type: 'Device' },
    trigger: { kind: 'absence', after: '2m', attribute: 'dateLastValueReported' },
    alarm: { severity: 'high', category: 'security', description: 'Device {entityId} has been silent for 2 minutes' },
  },
  {
    id: 'demo-waste-full',
    name: 'Waste container over 80% full',
    select: { type: 'WasteContainer' },
    trigger: { kind: 'condition', q: 'fillingLevel>0.8' },
    alarm: { severity: 'low', category: 'environment', clearAfter: '2m', description: 'Container {entityId} is {fillingLevel} full' },
    actions: [{ type: 'serviceRequest', serviceCode: 'waste-collection', serviceName: 'Empty waste container', agency: 'Servicio de Limpieza' }],
  },
  {
    id: 'demo-battery-low',
    name: 'Sensor battery low',
    select: { type: 'WasteContainer' },
    trigger: { kind: 'condition', q: 'batteryLevel<0.1' },
    alarm: { severity: 'low', category: 'security', clearAfter: '10m' },
    actions: [{ type: 'serviceRequest', serviceCode: 'sensor-maintenance', serviceName: 'Replace sensor battery' }],
  },
  {
    id: 'demo-parking-overstay',
    name: 'Parking spot occupied for over an hour',
    select: { type: 'ParkingSpot' },
    trigger: { kind: 'condition', q: 'status=="occupied"', for: '1h' },
    alarm: { severity: 'informational', category: 'traffic' },
  },
  {
    id: 'demo-traffic-congestion',
    name: 'Road congested',
    select: { type: 'TrafficFlowObserved' },
    trigger: { kind: 'condition', q: 'occupancy>0.45', for: '5m' },
    alarm: { severity: 'medium', category: 'traffic', subCategory: 'trafficJam', clearAfter: '5m' },
  },
  {
    id: 'demo-traffic-speed-anomaly',
    name: 'Implausible traffic speed',
    select: { type: 'TrafficFlowObserved' },
    trigger: { kind: 'anomaly', attribute: 'averageVehicleSpeed', method: 'zscore', window: 30, sensitivity: 4, minSamples: 8 },
    alarm: { severity: 'low', category: 'traffic', clearAfter: '2m' },
  },
];

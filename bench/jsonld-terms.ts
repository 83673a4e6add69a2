/**
 * Cached term expansion/compaction throughput over 10k entity-like term sets.
 * Prints only: node --import tsx bench/jsonld-terms.ts
 */
import { ActiveContext, CORE_CONTEXT } from '../src/ngsi-ld/jsonld/index.ts';

const user = {
  fiware: 'https://uri.fiware.org/ns/data-models#',
  schema: 'https://schema.org/',
  Building: 'fiware:Building', Vehicle: 'fiware:Vehicle', OffStreetParking: 'fiware:OffStreetParking',
  AirQualityObserved: 'fiware:AirQualityObserved', category: 'fiware:category', name: 'schema:name',
  address: 'schema:address', speed: 'fiware:speed', fuelLevel: 'fiware:fuelLevel', no2: 'fiware:no2',
  pm10: 'fiware:pm10', temperature: 'fiware:temperature', occupancy: 'fiware:occupancy',
  status: { '@id': 'fiware:status', '@type': '@vocab' }, refDevice: { '@id': 'fiware:refDevice', '@type': '@id' },
};
const ctx = new ActiveContext([user]);

const types = ['Building', 'Vehicle', 'OffStreetParking', 'AirQualityObserved', 'WeatherObserved'];
const attrs = ['category', 'name', 'address', 'speed', 'fuelLevel', 'no2', 'pm10', 'temperature', 'occupancy',
  'status', 'refDevice', 'location', 'description', 'humidity', 'windSpeed', 'precipitation'];
const core = ['type', 'value', 'observedAt', 'unitCode', 'datasetId', 'Property', 'Relationship', 'GeoProperty'];
const sets: string[][] = [];
for (let i = 0; i < 10_000; i++) {
  const s = [types[i % types.length]];
  for (let j = 0; j < 10; j++) s.push(attrs[(i + j * 7) % attrs.length]);
  for (let j = 0; j < 4; j++) s.push(core[(i + j) % core.length]);
  sets.push(s);
}
const perSet = sets[0].length;

function run(label: string, fn: (t: string) => string, input: string[][]): void {
  let sink = 0;
  for (const s of input.slice(0, 100)) for (const t of s) sink += fn(t).length; // warm the memo + JIT
  const rounds = 20;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const s of input) for (const t of s) sink += fn(t).length;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const ops = rounds * input.length * perSet;
  console.log(`${label.padEnd(26)} ${(ops / secs / 1e6).toFixed(2)} M ops/s  (${((rounds * input.length) / secs / 1e3).toFixed(0)} k entities/s, ${perSet} terms each; sink ${sink % 7})`);
}

run('expandTerm (cached)', (t) => ctx.expandTerm(t), sets);
const expanded = sets.map((s) => s.map((t) => ctx.expandTerm(t)));
run('compactIri (cached)', (t) => ctx.compactIri(t), expanded);
const t0 = process.hrtime.bigint();
for (let i = 0; i < 200; i++) new ActiveContext([user, CORE_CONTEXT]);
console.log(`${'ActiveContext build'.padEnd(26)} ${(Number(process.hrtime.bigint() - t0) / 1e6 / 200).toFixed(3)} ms per context (user + core)`);

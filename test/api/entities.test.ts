import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';

let s: Awaited<ReturnType<typeof testPlatform>>;
before(async () => {
  s = await testPlatform();
});
after(async () => {
  await s.close();
});

const json = (o: unknown) => JSON.stringify(o);
const H = { 'content-type': 'application/json' };

const building = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  type: 'Building',
  name: { type: 'Property', value: 'Town hall' },
  floors: { type: 'Property', value: 5, observedAt: '2026-01-01T10:00:00Z' },
  location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.80, 43.46] } },
  owner: { type: 'Relationship', object: 'urn:ngsi-ld:Person:alice' },
  ...extra,
});

test('create, retrieve, 409 on duplicate, 404 on unknown', async () => {
  let r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json(building('urn:ngsi-ld:Building:1')) });
  assert.equal(r.statusCode, 201, r.body);
  assert.equal(r.headers.location, '/ngsi-ld/v1/entities/urn%3Angsi-ld%3ABuilding%3A1');
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json(building('urn:ngsi-ld:Building:1')) });
  assert.equal(r.statusCode, 409);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/AlreadyExists');
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1' });
  assert.equal(r.statusCode, 200);
  const e = r.json();
  assert.equal(e.type, 'Building');
  assert.equal(e.floors.value, 5);
  assert.equal(e.owner.object, 'urn:ngsi-ld:Person:alice');
  assert.match(String(r.headers.link), /json-ld#context/);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:nope' });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound');
});

test('representations: keyValues, concise, sysAttrs, ld+json, geo+json', async () => {
  let r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?options=keyValues' });
  assert.deepEqual(r.json().floors, 5);
  assert.deepEqual(r.json().owner, 'urn:ngsi-ld:Person:alice');
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?format=concise' });
  assert.deepEqual(r.json().name, 'Town hall');
  assert.deepEqual(r.json().floors, { value: 5, observedAt: '2026-01-01T10:00:00Z' });
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1?options=sysAttrs' });
  assert.ok(r.json().createdAt && r.json().floors.modifiedAt);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1', headers: { accept: 'application/ld+json' } });
  assert.equal(r.headers['content-type'], 'application/ld+json');
  assert.ok(r.json()['@context']);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1', headers: { accept: 'application/geo+json' } });
  assert.equal(r.json().type, 'Feature');
  assert.deepEqual(r.json().geometry.coordinates, [-3.8, 43.46]);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Building:1', headers: { accept: 'text/html' } });
  assert.equal(r.statusCode, 406);
});

test('bad input is rejected with a clear error and stores nothing', async () => {
  let r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: '{"id": "urn:x:1", "type": ' });
  assert.equal(r.statusCode, 400);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest');
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json({ id: 'not a uri', type: 'T' }) });
  assert.equal(r.statusCode, 400);
  assert.match(r.json().detail, /not a valid URI/);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json({ id: 'urn:x:2' }) });
  assert.equal(r.statusCode, 400);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json({ id: 'urn:x:3', type: 'T', loc: { type: 'GeoProperty', value: { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1]]] } } }) });
  assert.equal(r.statusCode, 400);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:x:3' });
  assert.equal(r.statusCode, 404);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'content-type': 'text/xml' }, payload: '<a/>' });
  assert.equal(r.statusCode, 415);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'content-type': 'application/ld+json' }, payload: json({ id: 'urn:x:4', type: 'T' }) });
  assert.equal(r.statusCode, 400);
  assert.match(r.json().detail, /@context/);
});

test('attrs: append, update (207), partial update, replace, delete', async () => {
  const id = 'urn:ngsi-ld:Building:2';
  await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H, payload: json(building(id)) });
  let r = await s.inject({ method: 'POST', url: `/ngsi-ld/v1/entities/${id}/attrs`, headers: H, payload: json({ height: { type: 'Property', value: 30 } }) });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'POST', url: `/ngsi-ld/v1/entities/${id}/attrs?options=noOverwrite`, headers: H, payload: json({ height: { type: 'Property', value: 99 } }) });
  assert.equal(r.statusCode, 207);
  // update replaces existing attributes and appends new ones (v1.9 clause 5.6.2)
  r = await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${id}/attrs`, headers: H, payload: json({ height: { type: 'Property', value: 31 }, added: { type: 'Property', value: 1 } }) });
  assert.equal(r.statusCode, 204);
  // scope can only be updated where the entity has one: 207
  r = await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${id}/attrs`, headers: H, payload: json({ scope: '/a/b' }) });
  assert.equal(r.statusCode, 207);
  r = await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${id}/attrs/floors`, headers: H, payload: json({ value: 6 }) });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities/${id}?options=keyValues` });
  assert.equal(r.json().floors, 6);
  assert.equal(r.json().height, 31);
  r = await s.inject({ method: 'PUT', url: `/ngsi-ld/v1/entities/${id}/attrs/height`, headers: H, payload: json({ type: 'Property', value: 40, unitCode: 'MTR' }) });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/entities/${id}/attrs/height` });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/entities/${id}/attrs/height` });
  assert.equal(r.statusCode, 404);
  r = await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${id}`, headers: H, payload: json({ name: 'urn:ngsi-ld:null', color: { type: 'Property', value: 'red' } }) });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities/${id}?options=keyValues` });
  assert.equal(r.json().name, undefined);
  assert.equal(r.json().color, 'red');
  r = await s.inject({ method: 'PUT', url: `/ngsi-ld/v1/entities/${id}`, headers: H, payload: json({ type: 'Building', only: { type: 'Property', value: 1 } }) });
  assert.equal(r.statusCode, 204);
  r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities/${id}?options=keyValues` });
  assert.deepEqual(r.json(), { id, type: 'Building', only: 1 });
});

test('batch operations: create, upsert, update, merge, delete with 207', async () => {
  const ents = Array.from({ length: 5 }, (_, i) => ({ id: `urn:ngsi-ld:Sensor:${i}`, type: 'Sensor', temperature: { type: 'Property', value: 20 + i } }));
  let r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/create', headers: H, payload: json([...ents, { id: 'bad id', type: 'Sensor' }]) });
  assert.equal(r.statusCode, 207);
  assert.equal(r.json().success.length, 5);
  assert.equal(r.json().errors.length, 1);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/upsert', headers: H, payload: json([{ id: 'urn:ngsi-ld:Sensor:9', type: 'Sensor', temperature: { type: 'Property', value: 1 } }, { ...ents[0], humidity: { type: 'Property', value: 50 } }]) });
  assert.equal(r.statusCode, 201);
  assert.deepEqual(r.json(), ['urn:ngsi-ld:Sensor:9']);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/update', headers: H, payload: json([{ id: 'urn:ngsi-ld:Sensor:1', temperature: { type: 'Property', value: 0 } }, { id: 'urn:ngsi-ld:Sensor:404', temperature: { type: 'Property', value: 0 } }]) });
  assert.equal(r.statusCode, 207);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/query', headers: H, payload: json({ type: 'Query', entities: [{ type: 'Sensor' }], q: 'temperature<21' }) });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json().map((e: { id: string }) => e.id).sort(), ['urn:ngsi-ld:Sensor:0', 'urn:ngsi-ld:Sensor:1', 'urn:ngsi-ld:Sensor:9']);
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/delete', headers: H, payload: json(['urn:ngsi-ld:Sensor:9', 'urn:ngsi-ld:Sensor:404']) });
  assert.equal(r.statusCode, 207);
});

test('queries: type, q, attrs, pick, count, limit/offset with Link, TooManyResults', async () => {
  let r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Sensor&q=temperature>=22&options=keyValues&count=true' });
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.headers['ngsild-results-count'], '3');
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Sensor&limit=2&count=true' });
  assert.equal(r.json().length, 2);
  assert.match(String(r.headers.link), /rel="next"/);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Sensor&limit=5000' });
  assert.equal(r.statusCode, 403);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/TooManyResults');
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Sensor&pick=id,humidity' });
  assert.ok(r.json().every((e: Record<string, unknown>) => e.type === undefined));
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities' });
  assert.equal(r.statusCode, 400);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Sensor&q=temperature>>' });
  assert.equal(r.statusCode, 400);
});

test('geo query near and within', async () => {
  let r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities?type=Building&georel=near;maxDistance==1000&geometry=Point&coordinates=${encodeURIComponent('[-3.801,43.461]')}` });
  assert.equal(r.statusCode, 200, r.body);
  assert.ok(r.json().some((e: { id: string }) => e.id === 'urn:ngsi-ld:Building:1'));
  r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities?type=Building&georel=within&geometry=Polygon&coordinates=${encodeURIComponent('[[[0,0],[1,0],[1,1],[0,1],[0,0]]]')}` });
  assert.deepEqual(r.json(), []);
});

test('tenants are isolated; unknown tenant is NonexistentTenant', async () => {
  let r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Building', headers: { 'NGSILD-Tenant': 'nowhere' } });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant');
  r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { ...H, 'NGSILD-Tenant': 'city2' }, payload: json(building('urn:ngsi-ld:Building:1')) });
  assert.equal(r.statusCode, 201);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Building', headers: { 'NGSILD-Tenant': 'city2' } });
  assert.equal(r.json().length, 1);
});

test('types and attributes', async () => {
  let r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/types' });
  assert.ok(r.json().typeList.includes('Building'));
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/types/Sensor' });
  assert.equal(r.json().typeName, 'Sensor');
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/attributes' });
  assert.ok(r.json().attributeList.includes('temperature'));
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/attributes/temperature' });
  assert.deepEqual(r.json().typeNames, ['Sensor']);
  r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/types/Nope' });
  assert.equal(r.statusCode, 404);
});

test('health', async () => {
  const r = await s.inject({ method: 'GET', url: '/health' });
  assert.equal(r.json().store, 'pglite');
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';

/** Consumption: query / retrieve semantics (join, pick/omit, orderBy, validation, paging, keyValues). */

let s: Awaited<ReturnType<typeof testPlatform>>;
const H = { 'content-type': 'application/json' };
const E = '/ngsi-ld/v1/entities';
const get = (url: string, headers: Record<string, string> = {}) => s.inject({ method: 'GET', url, headers });
const post = (url: string, body: unknown) => s.inject({ method: 'POST', url, headers: H, payload: JSON.stringify(body) });

before(async () => {
  s = await testPlatform();
  const ents = [
    { id: 'urn:ngsi-ld:Country:fr', type: 'Country', name: { type: 'Property', value: 'France' }, description: { type: 'Property', value: 'EU' } },
    { id: 'urn:ngsi-ld:City:paris', type: 'City', name: { type: 'Property', value: 'Paris' }, inCountry: { type: 'Relationship', object: 'urn:ngsi-ld:Country:fr' } },
    { id: 'urn:ngsi-ld:Building:b1', type: 'Building', name: { type: 'Property', value: 'b' }, rank: { type: 'Property', value: 2 }, locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:paris' } },
    { id: 'urn:ngsi-ld:Building:b2', type: 'Building', name: { type: 'Property', value: 'á' }, rank: { type: 'Property', value: 'x' }, locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:nowhere' } },
    { id: 'urn:ngsi-ld:Building:b3', type: 'Building', name: { type: 'Property', value: 'A' }, category: { type: 'VocabProperty', vocab: 'commercial' } },
  ];
  for (const e of ents) assert.equal((await post(E, e)).statusCode, 201);
});
after(async () => {
  await s.close();
});

test('join=inline puts the target in "entity" (normalized) or in place of the object (keyValues)', async () => {
  let r = await get(`${E}/urn:ngsi-ld:Building:b1?join=inline&joinLevel=2`);
  assert.equal(r.statusCode, 200, r.body);
  const e = r.json();
  assert.equal(e.locatedAt.object, 'urn:ngsi-ld:City:paris');
  assert.equal(e.locatedAt.entity.id, 'urn:ngsi-ld:City:paris');
  assert.equal(e.locatedAt.entity.inCountry.entity.name.value, 'France');
  r = await get(`${E}/urn:ngsi-ld:Building:b1?join=inline&options=keyValues`);
  assert.equal(r.json().locatedAt.id, 'urn:ngsi-ld:City:paris');
  assert.equal(r.json().locatedAt.inCountry, 'urn:ngsi-ld:Country:fr', 'joinLevel 1 stops after one hop');
});

test('join=flat lists the linked entities after the entity; a missing target is left as is', async () => {
  let r = await get(`${E}/urn:ngsi-ld:Building:b1?join=flat&joinLevel=2`);
  assert.deepEqual(r.json().map((x: { id: string }) => x.id), ['urn:ngsi-ld:Building:b1', 'urn:ngsi-ld:City:paris', 'urn:ngsi-ld:Country:fr']);
  assert.equal(r.json()[0].locatedAt.entity, undefined);
  r = await get(`${E}/urn:ngsi-ld:Building:b2?join=flat`);
  assert.equal(r.json().id, 'urn:ngsi-ld:Building:b2');
  r = await get(`${E}?type=Building&join=flat&idPattern=b1`);
  assert.deepEqual(r.json().map((x: { id: string }) => x.id), ['urn:ngsi-ld:Building:b1', 'urn:ngsi-ld:City:paris']);
});

test('pick / omit project linked entities with rel{...}', async () => {
  let r = await get(`${E}/urn:ngsi-ld:Building:b1?join=inline&joinLevel=2&pick=${encodeURIComponent('id,locatedAt{id,name,inCountry{description}}')}`);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), {
    id: 'urn:ngsi-ld:Building:b1',
    locatedAt: {
      type: 'Relationship', object: 'urn:ngsi-ld:City:paris',
      entity: {
        id: 'urn:ngsi-ld:City:paris', name: { type: 'Property', value: 'Paris' },
        inCountry: { type: 'Relationship', object: 'urn:ngsi-ld:Country:fr', entity: { description: { type: 'Property', value: 'EU' } } },
      },
    },
  });
  r = await get(`${E}/urn:ngsi-ld:Building:b1?join=inline&omit=${encodeURIComponent('type,name,rank,locatedAt{name,inCountry}')}`);
  assert.deepEqual(r.json().locatedAt.entity, { id: 'urn:ngsi-ld:City:paris', type: 'City' });
});

test('projection syntax and combination errors are BadRequestData; nothing left is ResourceNotFound', async () => {
  for (const qs of ['pick=id;name', 'pick=id,locatedAt{name', 'pick=id,,name', 'pick=locatedAt{}', 'pick=name||rank', 'pick=name&omit=name', 'pick=name&attrs=name', 'omit=name&attrs=rank', 'pick=locatedAt{name}', 'pick=locatedAt{inCountry{name}}&join=inline']) {
    const r = await get(`${E}/urn:ngsi-ld:Building:b1?${qs.replace(/[{}|]/g, encodeURIComponent)}`);
    assert.equal(r.statusCode, 400, qs);
    assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/BadRequestData', qs);
  }
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?pick=unknown`)).statusCode, 404);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?attrs=unknown`)).statusCode, 404);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?pick=${encodeURIComponent('name|rank')}`)).json().rank.value, 2);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?type=City`)).statusCode, 404);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?type=Building`)).statusCode, 200);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?geometryProperty=location`)).statusCode, 400);
  assert.equal((await get(`${E}/urn:ngsi-ld:Building:b1?options=bogus`)).json().type, 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest');
});

test('a query must be bounded: ids alone or system attributes alone are too wide; local=true and type=* are not', async () => {
  for (const qs of ['id=urn:ngsi-ld:Building:b1', 'attrs=createdAt', 'q=modifiedAt>"2020-01-01T00:00:00Z"', 'id=notauri&type=Building', 'type=Building&q=locatedAt{name}=="Paris"', 'type=*&local=false']) {
    assert.equal((await get(`${E}?${qs.replace(/[{}"]/g, encodeURIComponent)}`)).statusCode, 400, qs);
  }
  assert.equal((await get(`${E}?local=true`)).statusCode, 200);
  assert.ok((await get(`${E}?type=*`)).json().length >= 5);
});

test('linked q terms follow relationships when join is given', async () => {
  const r = await get(`${E}?type=Building&join=inline&q=${encodeURIComponent('locatedAt{name}=="Paris"')}&count=true`);
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.json().length, 1);
  assert.equal(r.json()[0].id, 'urn:ngsi-ld:Building:b1');
});

test('orderBy: asc/desc, numbers before strings before absent, collation, distance needs orderFrom', async () => {
  const ids = async (qs: string) => (await get(`${E}?type=Building&${qs}`)).json().map((x: { id: string }) => x.id.slice(-2));
  assert.deepEqual(await ids('orderBy=name'), ['b3', 'b1', 'b2']);
  assert.deepEqual(await ids('orderBy=name;desc'), ['b2', 'b1', 'b3']);
  assert.deepEqual(await ids('orderBy=name&collation=und'), ['b3', 'b2', 'b1']);
  assert.deepEqual(await ids('orderBy=rank'), ['b1', 'b2', 'b3']);
  assert.equal((await get(`${E}?type=Building&orderBy=name&collation=!!nope`)).statusCode, 400);
  assert.equal((await get(`${E}?type=Building&orderBy=location;dist-asc`)).statusCode, 400);
});

test('paging links: sorted keys, readable values, the response media type', async () => {
  const r = await get(`${E}/?type=Building&limit=1&offset=1&count=true`);
  const links = ([] as string[]).concat(r.headers.link as string | string[]).filter((l) => !l.includes('json-ld#context'));
  assert.deepEqual(links.sort(), [
    '</ngsi-ld/v1/entities?count=true&limit=1&offset=0&type=Building>; rel="prev"; type="application/json"',
    '</ngsi-ld/v1/entities?count=true&limit=1&offset=2&type=Building>; rel="next"; type="application/json"',
  ]);
});

test('keyValues: VocabProperty as {vocab}, several instances as a dataset map', async () => {
  await post(E, { id: 'urn:ngsi-ld:Vehicle:v1', type: 'Vehicle', speed: [{ type: 'Property', value: 55 }, { type: 'Property', value: 11, datasetId: 'urn:ngsi-ld:Dataset:gps' }] });
  const r = await get(`${E}/urn:ngsi-ld:Vehicle:v1?options=keyValues`);
  assert.deepEqual(r.json().speed, { dataset: { '@none': 55, 'urn:ngsi-ld:Dataset:gps': 11 } });
  assert.deepEqual((await get(`${E}/urn:ngsi-ld:Building:b3?options=keyValues`)).json().category, { vocab: 'commercial' });
});

test('POST entityOperations/query validates the Query', async () => {
  const q = (extra: Record<string, unknown>) => post('/ngsi-ld/v1/entityOperations/query', { type: 'Query', entities: [{ type: 'Building' }], ...extra });
  for (const extra of [{ attrs: [] }, { q: 42 }, { join: 'inline', joinLevel: 0 }, { temporalQ: { timerel: 'after', timeAt: '2020-01-01T00:00:00Z' } }, { entities: [{ id: 'urn:ngsi-ld:Building:b1' }] }, { entities: [{ type: 'Building', id: 'not a uri' }] }]) {
    assert.equal((await q(extra)).statusCode, 400, JSON.stringify(extra));
  }
  const r = await q({ entities: [{ type: 'Building', id: 'urn:ngsi-ld:Building:b1', idPattern: 'b2$' }] });
  assert.deepEqual(r.json().map((x: { id: string }) => x.id), ['urn:ngsi-ld:Building:b1'], 'id takes precedence over idPattern');
});

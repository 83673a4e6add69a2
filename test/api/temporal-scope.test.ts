import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';
import { temporalModule } from '../../src/temporal/module.ts';

const JSON_CT = { 'content-type': 'application/json' };
const T = '/ngsi-ld/v1/temporal';
const W = 'timerel=between&timeAt=2026-03-01T12:00:00Z&endTimeAt=2026-03-01T13:00:00Z';

test('scope history: temporal property, validity over time, scopeQ bounds instances, upsert replaces same observedAt', async () => {
  const s = await testPlatform({ modules: [temporalModule] });
  try {
    const post = (payload: object) => s.inject({ method: "POST", url: `${T}/entities`, payload: JSON.stringify(payload), headers: JSON_CT });
    const sp = (v: string, at: string) => ({ type: 'Property', value: v, observedAt: `2026-03-01T${at}:00Z` });
    assert.equal((await post({ id: 'urn:x:rep', type: 'V', scope: [sp('/R', '10:00'), sp('/S', '12:30')], speed: [sp('old', '12:15'), sp('new', '12:45')] })).statusCode, 201);
    assert.equal((await post({ id: 'urn:x:late', type: 'V', scope: [sp('/Z', '14:00')], speed: [sp('late', '12:05')] })).statusCode, 201);
    assert.equal((await post({ id: 'urn:x:str', type: 'V', scope: '/Plain', speed: [sp('p', '12:05')] })).statusCode, 201);
    assert.equal((await post({ id: 'urn:x:bad', type: 'V', scope: [{ type: 'Property', value: 'no-slash' }] })).statusCode, 400);

    const q = async (scopeQ: string) => {
      const r = await s.inject({ method: 'GET', url: `${T}/entities?type=V&scopeQ=${encodeURIComponent(scopeQ)}&${W}` });
      assert.equal(r.statusCode, 200, r.body);
      return r.json() as { id: string; speed?: { value: string }[]; scope?: { value: string }[] }[];
    };
    // the replaced scope only sees the instances of its validity interval, the replacing one the later ones
    let r = await q('/R');
    assert.deepEqual(r.map((e) => e.id), ['urn:x:rep']);
    assert.deepEqual(r[0].speed!.map((i) => i.value), ['old']);
    assert.deepEqual(r[0].scope!.map((i) => i.value), ['/R']);
    r = await q('/S');
    assert.deepEqual(r[0].speed!.map((i) => i.value), ['new']);
    // a scope set only after the window never qualifies
    assert.deepEqual(await q('/Z'), []);
    // '/Plain' carries no observedAt: it is valid from the request time on, after this window
    assert.deepEqual((await q('/#')).map((e) => e.id).sort(), ['urn:x:rep']);

    // retrieval: the scope valid at the window start (set before it) is presented
    let g = await s.inject({ method: 'GET', url: `${T}/entities/urn:x:rep?${W}` });
    assert.deepEqual(g.json().scope.map((i: { value: string }) => i.value), ['/R', '/S']);
    g = await s.inject({ method: 'GET', url: `${T}/entities/urn:x:rep?${W}&options=temporalValues` });
    assert.deepEqual(g.json().scope.values, [['/R', '2026-03-01T10:00:00Z'], ['/S', '2026-03-01T12:30:00Z']]);

    // Core API scope changes become instances with observedAt = modifiedAt
    const b = s.platform.broker;
    await b.createEntity('', { id: 'urn:x:core', type: 'V', scope: '/Old', n: { type: 'Property', value: 1 } });
    await b.updateAttrs('', 'urn:x:core', { n: { type: 'Property', value: 2 } });
    g = await s.inject({ method: 'GET', url: `${T}/entities/urn:x:core?options=sysAttrs` });
    const sc = g.json().scope as { value: string; observedAt: string; modifiedAt: string }[];
    assert.equal(sc.length, 1);
    assert.equal(sc[0].value, '/Old');
    assert.equal(sc[0].observedAt, sc[0].modifiedAt);

    // upsert: an instance at the same observedAt (attribute, datasetId) replaces the stored one
    assert.equal((await post({ id: 'urn:x:rep', type: 'V', speed: [{ type: 'Property', value: 'old2', observedAt: '2026-03-01T12:15:00Z' }] })).statusCode, 204);
    g = await s.inject({ method: 'GET', url: `${T}/entities/urn:x:rep?attrs=speed&options=temporalValues` });
    assert.deepEqual(g.json().speed.values, [['old2', '2026-03-01T12:15:00Z'], ['new', '2026-03-01T12:45:00Z']]);
  } finally {
    await s.close();
  }
});

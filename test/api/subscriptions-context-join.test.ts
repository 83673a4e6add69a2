import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { testPlatform, CORE, LD } from '../helpers/server.ts';
import { subscriptionsModule } from '../../src/subscriptions/module.ts';

/** A notification receiver: every body, and a way to wait for the next n. */
async function receiver() {
  const bodies: Record<string, unknown>[] = [];
  const waiters: { n: number; res: () => void }[] = [];
  const srv = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      bodies.push(JSON.parse(b));
      res.statusCode = 200;
      res.end();
      for (const w of waiters.splice(0)) if (bodies.length >= w.n) w.res();
        else waiters.push(w);
    });
  }).listen(0);
  await once(srv, 'listening');
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/notify`;
  const next = (n: number) => new Promise<void>((res) => (bodies.length >= n ? res() : waiters.push({ n, res })));
  return { bodies, url, next, close: () => srv.close() };
}

const json = { 'content-type': 'application/json' };

test('subscriptions: jsonldContext (ImplicitlyCreated for inline @context), Link on GET, Prefer version, nothing stored on a failed create', async () => {
  const s = await testPlatform({ modules: [subscriptionsModule] });
  try {
    const inline = { '@context': [{ Building: 'https://example.org/Building', name: 'https://example.org/name' }, CORE] };
    let r = await s.inject({
      method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: { 'content-type': LD },
      payload: { id: 'urn:ngsi-ld:Subscription:ctx1', type: 'Subscription', entities: [{ type: 'Building' }], notification: { endpoint: { uri: 'http://127.0.0.1:1/n' } }, ...inline },
    });
    assert.equal(r.statusCode, 201, r.body);
    // no Accept: application/json, the @context in a Link header, jsonldContext = a hosted URL of this broker
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ctx1' });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.match(String(r.headers.link), /rel="http:\/\/www\.w3\.org\/ns\/json-ld#context"/);
    const url = r.json().jsonldContext as string;
    assert.match(url, /\/ngsi-ld\/v1\/jsonldContexts\//);
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/jsonldContexts?kind=ImplicitlyCreated' });
    assert.ok((r.json() as string[]).includes(url), r.body);
    r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/jsonldContexts/${encodeURIComponent(url.split('/').pop()!)}` });
    assert.deepEqual(r.json(), inline);

    // a Link @context URL is kept as is; no @context at all is the core
    r = await s.inject({
      method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: json,
      payload: { id: 'urn:ngsi-ld:Subscription:ctx2', type: 'Subscription', entities: [{ type: 'Building' }], notification: { endpoint: { uri: 'http://127.0.0.1:1/n' } } },
    });
    assert.equal(r.statusCode, 201, r.body);
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ctx2', headers: { accept: LD } });
    assert.equal(r.json().jsonldContext, CORE);
    assert.equal(r.json()['@context'], CORE);
    assert.match(String(r.headers['content-type']), /^application\/ld\+json/);
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ctx2', headers: { accept: 'application/geo+json' } });
    assert.equal(r.statusCode, 406);

    // version preference (6.3.6): RFC 7240 spellings; a Subscription has no fallbacks, so it is served as is
    for (const [prefer, applied] of [
      ['ngsi-ld=1.0', 'ngsi-ld=1.0'], ['NGSI-LD=1.0', 'ngsi-ld=1.0'], ['ngsi-ld="1.0"', 'ngsi-ld=1.0'],
      ['ngsi-ld=1.0;q=0.1', 'ngsi-ld=1.0'], ['respond-async, ngsi-ld=1.8.1', 'ngsi-ld=1.8.1'],
      ['respond-async', undefined], ['ngsi-ld=2.0', undefined], ['ngsi-ld=1.10', undefined],
    ] as const) {
      r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ctx2', headers: { prefer } });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['preference-applied'], applied, prefer);
    }

    // an unreachable jsonldContext: the create fails and leaves no subscription behind
    r = await s.inject({
      method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: json,
      payload: { id: 'urn:ngsi-ld:Subscription:ctx3', type: 'Subscription', entities: [{ type: 'Building' }], jsonldContext: 'http://127.0.0.1:1/missing.jsonld', notification: { endpoint: { uri: 'http://127.0.0.1:1/n' } } },
    });
    assert.ok(r.statusCode >= 400, r.body);
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:ctx3' });
    assert.equal(r.statusCode, 404);
    r = await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions' });
    assert.deepEqual((r.json() as { id: string }[]).map((x) => x.id), ['urn:ngsi-ld:Subscription:ctx1', 'urn:ngsi-ld:Subscription:ctx2']);
  } finally {
    await s.close();
  }
});

test('subscriptions: join (flat / inline) and linked-entity q in notifications, percent-encoded q', async () => {
  const rx = await receiver();
  const s = await testPlatform({ modules: [subscriptionsModule] });
  const b = s.platform.broker;
  try {
    await b.createEntity('', { id: 'urn:ngsi-ld:Country:FR', type: 'Country', name: { type: 'Property', value: 'France' } });
    await b.createEntity('', { id: 'urn:ngsi-ld:City:Paris', type: 'City', name: { type: 'Property', value: 'Paris' }, isInCountry: { type: 'Relationship', object: 'urn:ngsi-ld:Country:FR' } });
    const sub = (id: string, extra: Record<string, unknown>, notification: Record<string, unknown> = {}) =>
      s.inject({
        method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: json,
        payload: { id, type: 'Subscription', ...extra, notification: { endpoint: { uri: rx.url }, ...notification } },
      });
    assert.equal((await sub('urn:s:flat', { entities: [{ type: 'Building' }] }, { join: 'flat', attributes: ['locatedAt'] })).statusCode, 201);
    assert.equal((await sub('urn:s:inline', { entities: [{ type: 'Building' }] }, { join: 'inline', joinLevel: 2, format: 'keyValues' })).statusCode, 201);
    assert.equal((await sub('urn:s:linkedq', { entities: [{ type: 'Building' }], q: 'locatedAt{name}=="Paris"' })).statusCode, 201);
    assert.equal((await sub('urn:s:pct', { entities: [{ type: 'Building' }], q: 'name=="Tour%20Eiffel"' })).statusCode, 201);

    await b.createEntity('', { id: 'urn:ngsi-ld:Building:other', type: 'Building', name: { type: 'Property', value: 'Elsewhere' } });
    await b.createEntity('', {
      id: 'urn:ngsi-ld:Building:eiffel', type: 'Building', name: { type: 'Property', value: 'Tour Eiffel' },
      locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:Paris' },
    });
    // other: flat + inline; eiffel: flat + inline + linkedq + pct
    await rx.next(6);
    const svc = s.platform.services.get('subscriptions') as { dispatcher: { idle(): Promise<void> } };
    await svc.dispatcher.idle();
    const of = (id: string) => rx.bodies.filter((n) => n.subscriptionId === id).map((n) => n.data as Record<string, unknown>[]);

    assert.equal(of('urn:s:linkedq').length, 1);
    assert.equal(of('urn:s:linkedq')[0][0].id, 'urn:ngsi-ld:Building:eiffel');
    assert.equal(of('urn:s:pct').length, 1);
    assert.equal(of('urn:s:pct')[0][0].id, 'urn:ngsi-ld:Building:eiffel');

    const flat = of('urn:s:flat').find((d) => d[0].id === 'urn:ngsi-ld:Building:eiffel')!;
    assert.deepEqual(flat, [
      { id: 'urn:ngsi-ld:Building:eiffel', type: 'Building', locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:Paris' } },
      { id: 'urn:ngsi-ld:City:Paris', type: 'City', name: { type: 'Property', value: 'Paris' }, isInCountry: { type: 'Relationship', object: 'urn:ngsi-ld:Country:FR' } },
    ]);
    const inl = of('urn:s:inline').find((d) => d[0].id === 'urn:ngsi-ld:Building:eiffel')!;
    assert.deepEqual(inl, [{
      id: 'urn:ngsi-ld:Building:eiffel', type: 'Building', name: 'Tour Eiffel',
      locatedAt: { id: 'urn:ngsi-ld:City:Paris', type: 'City', name: 'Paris', isInCountry: { id: 'urn:ngsi-ld:Country:FR', type: 'Country', name: 'France' } },
    }]);
  } finally {
    await s.close();
    rx.close();
  }
});

/** Common behaviours of the NGSI-LD HTTP binding (6.3) and the @context store (5.13). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { testPlatform, LD, CORE } from '../helpers/server.ts';

let s: Awaited<ReturnType<typeof testPlatform>>;
let ctxServer: http.Server;
let ctxBase = '';
before(async () => {
  s = await testPlatform({ listen: true });
  // a tiny remote @context server: one valid document, one that is not JSON
  ctxServer = http.createServer((req, res) => {
    if (req.url === '/ctx.jsonld') {
      res.setHeader('content-type', 'application/ld+json');
      res.end(JSON.stringify({ '@context': { speed: 'https://example.org/speed' } }));
    } else if (req.url === '/broken.jsonld') {
      res.end('this is { not json');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((ok) => ctxServer.listen(0, '127.0.0.1', ok));
  ctxBase = `http://127.0.0.1:${(ctxServer.address() as { port: number }).port}`;
});
after(async () => {
  await s.close();
  await new Promise((ok) => ctxServer.close(ok));
});

const json = (o: unknown) => JSON.stringify(o);
const H = { 'content-type': 'application/json' };
const V1 = '/ngsi-ld/v1';

async function createBuilding(id: string) {
  const r = await s.inject({ method: 'POST', url: `${V1}/entities`, headers: H, payload: json({ id, type: 'Building', location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [1, 2] } } }) });
  assert.equal(r.statusCode, 201, r.body);
}

test('Accept: highest weight wins, ties follow the 6.3.4 list order, q=0 refuses, bad q keeps weight 1', async () => {
  await createBuilding('urn:ngsi-ld:Building:acc');
  const ct = async (accept: string) => {
    const r = await s.inject({ method: 'GET', url: `${V1}/entities/urn:ngsi-ld:Building:acc`, headers: { accept } });
    return r.statusCode === 200 ? String(r.headers['content-type']) : r.statusCode;
  };
  assert.equal(await ct('application/ld+json, application/json'), 'application/json');
  assert.equal(await ct('application/geo+json, application/json'), 'application/json');
  assert.equal(await ct('application/json;q=0.1, application/ld+json;q=0.9'), 'application/ld+json');
  assert.equal(await ct('application/json;q=0, */*'), 'application/ld+json');
  assert.equal(await ct('*/*;q=0.9, application/ld+json;q=0.8'), 'application/json');
  assert.equal(await ct('application/ld+json;q=notanumber'), 'application/ld+json');
  assert.equal(await ct('text/html'), 406);
  // geo+json is not offered by /types: the other named type is served instead of a 406
  const r = await s.inject({ method: 'GET', url: `${V1}/types`, headers: { accept: 'application/geo+json;q=0.9, application/ld+json;q=0.1' } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'application/ld+json');
  // the Accept precondition is decided before the resource is looked up; unknown routes stay 404
  const c = await s.inject({ method: 'GET', url: `${V1}/jsonldContexts/urn:ngsi-ld:Context:nope`, headers: { accept: 'text/html' } });
  assert.equal(c.statusCode, 406);
  assert.equal(c.json().type, 'https://uri.etsi.org/ngsi-ld/errors/NotAcceptable');
  // geo+json is offered by Retrieve / Query Entities only (6.3.15)
  const g = await s.inject({ method: 'GET', url: `${V1}/jsonldContexts/urn:ngsi-ld:Context:nope`, headers: { accept: 'application/geo+json' } });
  assert.equal(g.statusCode, 406);
  const u = await s.inject({ method: 'GET', url: `${V1}/no-such-resource`, headers: { accept: 'text/html' } });
  assert.equal(u.statusCode, 404);
});

test('GeoJSON embeds the @context unless Prefer: body=json', async () => {
  await createBuilding('urn:ngsi-ld:Building:geo');
  let r = await s.inject({ method: 'GET', url: `${V1}/entities?type=Building`, headers: { accept: 'application/geo+json' } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().type, 'FeatureCollection');
  assert.equal(r.json()['@context'], CORE);
  r = await s.inject({ method: 'GET', url: `${V1}/entities?type=Building`, headers: { accept: 'application/geo+json', prefer: 'body=json' } });
  assert.equal(r.json()['@context'], undefined);
  assert.match(String(r.headers.link), /json-ld#context/);
});

test('411 without Content-Length on POST/PATCH/PUT, decided before the tenant; GET is exempt', async () => {
  const send = (method: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((ok, ko) => {
      const req = http.request(`${s.url}${V1}${path}`, { method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', ko);
      req.write(json({ id: 'urn:ngsi-ld:Building:411', type: 'Building' })); // chunked: no Content-Length
      req.end();
    });
  for (const [m, p] of [['POST', '/entities'], ['PATCH', '/entities/urn:ngsi-ld:Building:411/attrs'], ['PUT', '/entities/urn:ngsi-ld:Building:411']]) {
    const r = await send(m, p);
    assert.equal(r.status, 411, `${m} ${p}`);
    assert.equal(r.body, '');
  }
  assert.equal((await send('POST', '/entities', { 'ngsild-tenant': 'nosuchtenant' })).status, 411);
  const g = await s.inject({ method: 'GET', url: `${V1}/entities?type=Building` });
  assert.equal(g.statusCode, 200);
});

test('unsupported query parameters: 400 InvalidRequest; known ones pass', async () => {
  for (const [method, url, payload] of [
    ['POST', `${V1}/entities?invalidParam=x`, json({ id: 'urn:ngsi-ld:Building:qp', type: 'Building' })],
    ['GET', `${V1}/entities?invalidParam=x&type=Building`, undefined],
    ['DELETE', `${V1}/entities?invalidParam=x`, undefined],
    ['GET', `${V1}/types?invalidParam=x`, undefined],
    ['GET', `${V1}/jsonldContexts?invalidParam=x`, undefined],
  ] as const) {
    const r = await s.inject({ method, url, headers: payload ? H : {}, payload });
    assert.equal(r.statusCode, 400, `${method} ${url}: ${r.body}`);
    assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest');
  }
  const ok = await s.inject({ method: 'GET', url: `${V1}/entities?type=Building&limit=5&offset=0&count=true&options=keyValues&local=true` });
  assert.equal(ok.statusCode, 200, ok.body);
});

test('PATCH accepts application/merge-patch+json on every PATCH route', async () => {
  await createBuilding('urn:ngsi-ld:Building:mp');
  const r = await s.inject({
    method: 'PATCH', url: `${V1}/entities/urn:ngsi-ld:Building:mp/attrs/location`,
    headers: { 'content-type': 'application/merge-patch+json' },
    payload: json({ type: 'GeoProperty', value: { type: 'Point', coordinates: [3, 4] } }),
  });
  assert.equal(r.statusCode, 204, r.body);
});

test('NGSILD-Tenant is echoed, also on errors; JSON responses carry no charset', async () => {
  let r = await s.inject({ method: 'GET', url: `${V1}/entities?type=Building`, headers: { 'ngsild-tenant': 'echo1' } });
  assert.equal(r.statusCode, 404);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant');
  assert.equal(r.headers['ngsild-tenant'], 'echo1');
  r = await s.inject({ method: 'POST', url: `${V1}/entities`, headers: { ...H, 'ngsild-tenant': 'echo1' }, payload: json({ id: 'urn:ngsi-ld:Building:t', type: 'Building' }) });
  assert.equal(r.statusCode, 201);
  assert.equal(r.headers['ngsild-tenant'], 'echo1');
  r = await s.inject({ method: 'GET', url: `${V1}/nothing-here` });
  assert.equal(r.headers['content-type'], 'application/json');
});

test('remote @context: unretrievable is 504 LdContextNotAvailable, non-JSON is 400 BadRequestData; a look-alike core URL is not the core', async () => {
  const post = (ctx: string, id: string) => s.inject({ method: 'POST', url: `${V1}/entities`, headers: { 'content-type': LD }, payload: json({ id, type: 'Vehicle', '@context': ctx }) });
  let r = await post(`${ctxBase}/missing.jsonld`, 'urn:ngsi-ld:Vehicle:c1');
  assert.equal(r.statusCode, 504);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable');
  r = await post(`${ctxBase}/broken.jsonld`, 'urn:ngsi-ld:Vehicle:c2');
  assert.equal(r.statusCode, 400);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/BadRequestData');
  r = await s.inject({ method: 'GET', url: `${V1}/entities/urn:ngsi-ld:Vehicle:c2` });
  assert.equal(r.statusCode, 404);
  const { isCoreContextUrl } = await import('../../src/ngsi-ld/jsonld/index.ts');
  assert.ok(!isCoreContextUrl('https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-non-existing.jsonld'));
  assert.ok(isCoreContextUrl('https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld'));
});

test('hosted @context: relative Location, served as application/json, usable by its path and counted', async () => {
  let r = await s.inject({ method: 'POST', url: `${V1}/jsonldContexts`, headers: H, payload: json({ '@context': { A1: 'urn:ngsi-ld:attributes:A1' } }) });
  assert.equal(r.statusCode, 201, r.body);
  const loc = String(r.headers.location);
  assert.match(loc, /^\/ngsi-ld\/v1\/jsonldContexts\/urn:ngsi-ld:Context:/);
  const id = loc.split('/').pop()!;
  r = await s.inject({ method: 'GET', url: `${V1}/jsonldContexts/${encodeURIComponent(id)}` });
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(r.json(), { '@context': { A1: 'urn:ngsi-ld:attributes:A1' } });
  r = await s.inject({ method: 'GET', url: `${V1}/jsonldContexts` });
  assert.ok((r.json() as string[]).some((u) => u.endsWith(loc)));
  // the Location, a path-absolute reference, resolves against the request URL: this broker's hosted context
  r = await s.inject({ method: 'POST', url: `${V1}/entities`, headers: { 'content-type': LD }, payload: json({ id: 'urn:ngsi-ld:T:1', type: 'T', A1: 'x', '@context': loc }) });
  assert.equal(r.statusCode, 201, r.body);
  r = await s.inject({ method: 'GET', url: `${V1}/entities/urn:ngsi-ld:T:1?options=keyValues` });
  assert.equal(r.json()['urn:ngsi-ld:attributes:A1'], 'x');
  r = await s.inject({ method: 'GET', url: `${V1}/jsonldContexts/${encodeURIComponent(id)}?details=true` });
  assert.equal(r.json().kind, 'Hosted');
  assert.equal(r.json().numberOfHits, 1);
});

test('a tenant\'s hosted @context resolves for that tenant\'s requests', async () => {
  const T = { 'ngsild-tenant': 'ctxtenant' };
  let r = await s.inject({ method: 'POST', url: `${V1}/jsonldContexts`, headers: { ...H, ...T }, payload: json({ '@context': { B1: 'urn:ngsi-ld:attributes:B1' } }) });
  assert.equal(r.statusCode, 201);
  const url = `${s.url}${r.headers.location}`;
  r = await s.inject({ method: 'POST', url: `${V1}/entities`, headers: { 'content-type': LD, ...T }, payload: json({ id: 'urn:ngsi-ld:T:2', type: 'T', B1: 'y', '@context': url }) });
  assert.equal(r.statusCode, 201, r.body);
  r = await s.inject({ method: 'GET', url: `${V1}/entities/urn:ngsi-ld:T:2?options=keyValues`, headers: T });
  assert.equal(r.json()['urn:ngsi-ld:attributes:B1'], 'y');
});

test('GET /info/sourceIdentity: 5.2.40 members, one alias per tenant, stable', async () => {
  const get = (tenant?: string) => s.inject({ method: 'GET', url: `${V1}/info/sourceIdentity`, headers: tenant ? { 'ngsild-tenant': tenant } : {} });
  const d = (await get()).json();
  assert.equal(d.type, 'ContextSourceIdentity');
  assert.match(d.id, /^urn:/);
  assert.match(d.contextSourceUptime, /^P(?!$)(\d+D)?(T(?!$)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/);
  assert.match(d.contextSourceTimeAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/);
  const a = (await get('a')).json().contextSourceAlias;
  assert.notEqual(a, d.contextSourceAlias);
  assert.notEqual(a, (await get('b')).json().contextSourceAlias);
  assert.equal((await get('a')).json().contextSourceAlias, a);
});

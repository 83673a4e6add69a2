/**
 * Authorization matrix: role x endpoint x information class x tenant, including subscriptions
 * (management and notifications) and the dashboard live feed. Fails when any cell leaks.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trustPlatform } from '../../src/trust/testkit.ts';
import { dashboardModule } from '../../src/dashboard/module.ts';
import { subscriptionsModule } from '../../src/subscriptions/module.ts';
import type { InfoClass } from '../../src/trust/api.ts';

type Kit = Awaited<ReturnType<typeof trustPlatform>>;
let k: Kit;
const ROLES = ['admin', 'security-operator', 'operator', 'analyst', 'data-publisher', 'service-developer', 'public'] as const;
type Role = (typeof ROLES)[number];
const cookies: Record<string, string> = {};
const CLASSES: InfoClass[] = ['open', 'restricted', 'security'];
const TENANTS = ['', 'other'];

const READ: Record<Role, InfoClass[]> = {
  admin: CLASSES, 'security-operator': CLASSES, operator: ['open', 'restricted'], analyst: ['open', 'restricted'],
  'data-publisher': ['open', 'restricted'], 'service-developer': ['open'], public: ['open'],
};
const WRITE: Record<Role, InfoClass[]> = {
  admin: CLASSES, 'security-operator': CLASSES, operator: ['open', 'restricted'], analyst: [], 'data-publisher': ['open', 'restricted'], 'service-developer': [], public: [],
};
const SUBSCRIBE: Role[] = ['admin', 'security-operator', 'operator', 'analyst', 'service-developer'];

const idOf = (cls: InfoClass, tenant: string) => `urn:ngsi-ld:Thing:${cls}-${tenant || 'default'}`;
const H = (role: Role, tenant: string, extra: Record<string, string> = {}) => ({ cookie: cookies[role], ...(tenant ? { 'ngsild-tenant': tenant } : {}), ...extra });

before(async () => {
  k = await trustPlatform({ modules: [dashboardModule, subscriptionsModule], listen: true });
  // every role is bound to the default tenant only, except admin ('*')
  for (const r of ROLES) cookies[r] = await k.user(r === 'admin' ? 'root' : r, [{ role: r, tenant: r === 'admin' ? '*' : '' }]);
  for (const t of TENANTS) {
    for (const cls of CLASSES) {
      await k.s.platform.broker.createEntity(t, { id: idOf(cls, t), type: 'Thing', infoClass: { type: 'Property', value: cls }, n: { type: 'Property', value: 1 } });
    }
  }
});
after(async () => {
  await k.s.close();
});

test('anonymous: 401 on every data API when public read is off', async () => {
  for (const url of ['/ngsi-ld/v1/entities?type=Thing', `/ngsi-ld/v1/entities/${idOf('open', '')}`, '/ngsi-ld/v1/subscriptions', '/live', '/ngsi-ld/v1/types']) {
    const r = await k.s.inject({ method: 'GET', url });
    assert.equal(r.statusCode, 401, url);
    assert.match(String(r.headers['www-authenticate']), /^Bearer realm="urbis"/);
  }
  const r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'content-type': 'application/json' }, payload: { id: 'urn:x:anon', type: 'Thing' } });
  assert.equal(r.statusCode, 401);
});

test('read matrix: retrieve and query, per role, class and tenant', async () => {
  for (const role of ROLES) {
    for (const tenant of TENANTS) {
      const onTenant = role === 'admin' || tenant === '';
      const q = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Thing&count=true', headers: H(role, tenant) });
      if (!onTenant) {
        assert.equal(q.statusCode, 403, `${role} query on tenant ${tenant}`);
        continue;
      }
      assert.equal(q.statusCode, 200, `${role}: ${q.body}`);
      const got = (q.json() as { id: string }[]).map((e) => e.id).sort();
      const want = READ[role].map((c) => idOf(c, tenant)).sort();
      assert.deepEqual(got, want, `${role} query on tenant "${tenant}"`);
      assert.equal(q.headers['ngsild-results-count'], String(want.length), `${role} count`);
      const post = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/query', headers: H(role, tenant, { 'content-type': 'application/json' }), payload: { type: 'Query', entities: [{ type: 'Thing' }] } });
      assert.deepEqual((post.json() as { id: string }[]).map((e) => e.id).sort(), want, `${role} POST query`);
      for (const cls of CLASSES) {
        const r = await k.s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities/${idOf(cls, tenant)}`, headers: H(role, tenant) });
        assert.equal(r.statusCode, READ[role].includes(cls) ? 200 : 404, `${role} GET ${cls} on "${tenant}"`);
      }
    }
  }
});

test('write matrix: create, update, batch upsert, delete per role, class and tenant', async () => {
  let n = 0;
  for (const role of ROLES) {
    for (const tenant of TENANTS) {
      const onTenant = role === 'admin' || tenant === '';
      for (const cls of CLASSES) {
        const allowed = onTenant && WRITE[role].includes(cls);
        const deny = onTenant ? 403 : 403;
        const id = `urn:ngsi-ld:Thing:w${++n}`;
        const body = { id, type: 'Thing', infoClass: { type: 'Property', value: cls } };
        let r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H(role, tenant, { 'content-type': 'application/json' }), payload: body });
        assert.equal(r.statusCode, allowed ? 201 : deny, `${role} create ${cls} on "${tenant}": ${r.body}`);
        r = await k.s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${idOf(cls, tenant)}/attrs`, headers: H(role, tenant, { 'content-type': 'application/json' }), payload: { n: { type: 'Property', value: 2 } } });
        assert.equal(r.statusCode, allowed ? 204 : deny, `${role} update ${cls} on "${tenant}": ${r.body}`);
        r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/upsert?options=update', headers: H(role, tenant, { 'content-type': 'application/json' }), payload: [{ id: idOf(cls, tenant), type: 'Thing', n: { type: 'Property', value: 3 } }] });
        assert.ok(allowed ? r.statusCode < 300 : r.statusCode === deny, `${role} upsert ${cls} on "${tenant}": ${r.statusCode}`);
        if (allowed) {
          r = await k.s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/entities/${id}`, headers: H(role, tenant) });
          assert.equal(r.statusCode, 204);
        }
      }
    }
  }
  // upgrading or downgrading a class needs write on both classes
  const r = await k.s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${idOf('restricted', '')}/attrs`, headers: H('operator', '', { 'content-type': 'application/json' }), payload: { infoClass: { type: 'Property', value: 'open' } } });
  assert.equal(r.statusCode, 204);
  const up = await k.s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${idOf('restricted', '')}/attrs`, headers: H('operator', '', { 'content-type': 'application/json' }), payload: { infoClass: { type: 'Property', value: 'security' } } });
  assert.equal(up.statusCode, 403);
  const sec = await k.s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/entities/${idOf('security', '')}/attrs/infoClass`, headers: H('operator', '', { 'content-type': 'application/json' }), payload: { type: 'Property', value: 'open' } });
  assert.equal(sec.statusCode, 403);
  const bad = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H('admin', '', { 'content-type': 'application/json' }), payload: { id: 'urn:x:bad', type: 'Thing', infoClass: 'secretish' } });
  assert.equal(bad.statusCode, 400);
  // type defaults: Camera is security-sensitive by default
  const cam = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: H('operator', '', { 'content-type': 'application/json' }), payload: { id: 'urn:x:cam', type: 'Camera' } });
  assert.equal(cam.statusCode, 403);
  // purge by query needs write on every class
  const purge = await k.s.inject({ method: 'DELETE', url: '/ngsi-ld/v1/entities?type=Thing', headers: H('operator', '') });
  assert.equal(purge.statusCode, 403);
});

test('subscriptions: who may subscribe, and owners only', async () => {
  const sub = (id: string) => ({ id, type: 'Subscription', entities: [{ type: 'Thing' }], notification: { endpoint: { uri: 'http://127.0.0.1:9/none', accept: 'application/json' } } });
  for (const role of ROLES) {
    for (const tenant of TENANTS) {
      const onTenant = role === 'admin' || tenant === '';
      const id = `urn:ngsi-ld:Subscription:${role}-${tenant || 'd'}`;
      const r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: H(role, tenant, { 'content-type': 'application/json' }), payload: sub(id) });
      const allowed = onTenant && SUBSCRIBE.includes(role);
      assert.equal(r.statusCode, allowed ? 201 : 403, `${role} subscribe on "${tenant}": ${r.body}`);
    }
  }
  // someone else's subscription: 403 for non-admins, allowed for admins
  let r = await k.s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/subscriptions/${encodeURIComponent('urn:ngsi-ld:Subscription:operator-d')}`, headers: H('analyst', '') });
  assert.equal(r.statusCode, 403);
  r = await k.s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${encodeURIComponent('urn:ngsi-ld:Subscription:operator-d')}`, headers: H('operator', '') });
  assert.equal(r.statusCode, 200);
  r = await k.s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/subscriptions/${encodeURIComponent('urn:ngsi-ld:Subscription:analyst-d')}`, headers: H('admin', '') });
  assert.equal(r.statusCode, 204);
});

test('subscriptions: the list shows a non-admin only its own subscriptions', async () => {
  const r = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions?limit=1000', headers: H('operator', '') });
  assert.equal(r.statusCode, 200, r.body);
  const ids = (r.json() as { id: string }[]).map((s) => s.id);
  assert.ok(ids.includes('urn:ngsi-ld:Subscription:operator-d'), 'own subscription listed');
  assert.deepEqual(ids.filter((i) => /Subscription:(security-operator|service-developer|admin)-/.test(i)), [], `others' subscriptions listed: ${ids.join(', ')}`);
  const all = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions?limit=1000', headers: H('admin', '') });
  assert.ok((all.json() as { id: string }[]).length > ids.length, 'an admin sees every subscription');
});

test('subscriptions: notifications carry only what the owner may read, personal data redacted', async () => {
  const got: { id: string; email?: unknown; age?: unknown }[] = [];
  let wake: () => void = () => {};
  const server: Server = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      for (const e of (JSON.parse(b) as { data: { id: string }[] }).data) got.push(e);
      res.end();
      wake();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const r = await k.s.inject({
      method: 'POST', url: '/ngsi-ld/v1/subscriptions', headers: H('operator', '', { 'content-type': 'application/json' }),
      payload: { type: 'Subscription', entities: [{ type: 'Camera' }, { type: 'Person' }], notification: { endpoint: { uri: `http://127.0.0.1:${port}/n`, accept: 'application/json' } } },
    });
    assert.equal(r.statusCode, 201, r.body);
    const b = k.s.platform.broker;
    await b.createEntity('', { id: 'urn:ngsi-ld:Camera:n1', type: 'Camera', n: { type: 'Property', value: 1 } });
    const arrived = new Promise<void>((res) => (wake = res));
    await b.createEntity('', { id: 'urn:ngsi-ld:Person:n2', type: 'Person', email: { type: 'Property', value: 'p@x' }, age: { type: 'Property', value: 3 } });
    await arrived;
    assert.deepEqual(got.map((e) => e.id), ['urn:ngsi-ld:Person:n2']);
    assert.equal(got[0].email, undefined, 'personal attribute redacted for an operator');
    assert.ok(got[0].age !== undefined, 'other attributes are delivered');
  } finally {
    server.close();
  }
});

test('live feed: per-role visibility and redaction', async () => {
  const read = async (role: Role): Promise<{ id: string; values?: Record<string, unknown> }[]> => {
    const ac = new AbortController();
    const res = await fetch(`${k.s.url}/live`, { headers: { cookie: cookies[role] }, signal: ac.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const next = async (re: RegExp) => {
      while (!re.test(buf)) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += dec.decode(value);
      }
    };
    await next(/event: hello/);
    const b = k.s.platform.broker;
    const tag = Math.random().toString(36).slice(2);
    await b.createEntity('', { id: `urn:ngsi-ld:Thing:live-s-${tag}`, type: 'Thing', infoClass: { type: 'Property', value: 'security' } });
    await b.createEntity('', { id: `urn:ngsi-ld:Thing:live-r-${tag}`, type: 'Thing', infoClass: { type: 'Property', value: 'restricted' } });
    await b.createEntity('', { id: `urn:ngsi-ld:Person:live-${tag}`, type: 'Person', email: { type: 'Property', value: 'x@y' }, infoClass: { type: 'Property', value: 'open' } });
    await b.createEntity('', { id: `urn:ngsi-ld:Thing:live-o-${tag}`, type: 'Thing' });
    await next(new RegExp(`live-o-${tag}`));
    ac.abort();
    const items: { id: string; values?: Record<string, unknown> }[] = [];
    for (const m of buf.matchAll(/event: change\ndata: (.*)\n/g)) items.push(...(JSON.parse(m[1]) as { id: string }[]));
    return items.filter((i) => i.id.includes(tag));
  };
  const admin = await read('admin');
  assert.equal(admin.length, 4);
  assert.equal(admin.find((i) => i.id.includes('Person'))?.values?.email, 'x@y');
  const pub = await read('public');
  assert.deepEqual(pub.map((i) => i.id.replace(/-[a-z0-9]+$/, '')).sort(), ['urn:ngsi-ld:Person:live', 'urn:ngsi-ld:Thing:live-o']);
  assert.equal(pub.find((i) => i.id.includes('Person'))?.values?.email, undefined, 'personal data redacted in the live feed');
  const op = await read('operator');
  assert.equal(op.length, 3);
  assert.ok(!op.some((i) => i.id.includes('live-s')));
});

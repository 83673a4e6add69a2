/**
 * Authorization matrix of the temporal API (/ngsi-ld/v1/temporal/entities[/{id}] and
 * /temporal/entityOperations/query): the same per-entity information-class filtering and
 * personal-data redaction as the entity routes, per role, class and tenant; history keeps the most
 * restrictive class an entity has had; personal attributes (and their history) redacted for
 * roles without clearance; cleared personal-data reads and denied retrievals audited.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { trustPlatform } from '../../src/trust/testkit.ts';
import { temporalModule } from '../../src/temporal/module.ts';
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
const CLEARED: Role[] = ['admin', 'security-operator'];
const T = '/ngsi-ld/v1/temporal';
const idOf = (cls: InfoClass, tenant: string) => `urn:ngsi-ld:Thing:t-${cls}-${tenant || 'default'}`;
const H = (role: Role, tenant = '', extra: Record<string, string> = {}) => ({ cookie: cookies[role], ...(tenant ? { 'ngsild-tenant': tenant } : {}), ...extra });
const PERSON = 'urn:ngsi-ld:Person:t-1';
const DOWN = 'urn:ngsi-ld:Thing:t-downgraded';
const GONE = 'urn:ngsi-ld:Thing:t-deleted-security';

before(async () => {
  k = await trustPlatform({ modules: [temporalModule] });
  for (const r of ROLES) cookies[r] = await k.user(r === 'admin' ? 'root' : r, [{ role: r, tenant: r === 'admin' ? '*' : '' }]);
  const b = k.s.platform.broker;
  for (const t of TENANTS) {
    for (const cls of CLASSES) {
      await b.createEntity(t, { id: idOf(cls, t), type: 'Thing', infoClass: { type: 'Property', value: cls }, n: { type: 'Property', value: 1 } });
      await b.updateAttrs(t, idOf(cls, t), { n: { type: 'Property', value: 2 } });
    }
  }
  // Person: restricted by type default, email personal; age not
  await b.createEntity('', { id: PERSON, type: 'Person', email: { type: 'Property', value: 'p@x.example' }, age: { type: 'Property', value: 30 } });
  await b.updateAttrs('', PERSON, { email: { type: 'Property', value: 'q@x.example' }, age: { type: 'Property', value: 31 } });
  // security history, open now: its history stays security for the temporal API
  await b.createEntity('', { id: DOWN, type: 'Gadget', infoClass: { type: 'Property', value: 'security' }, n: { type: 'Property', value: 7 } });
  await b.updateAttrs('', DOWN, { infoClass: { type: 'Property', value: 'open' } });
  // deleted from the broker, history remains: still classified by its history
  await b.createEntity('', { id: GONE, type: 'Gadget', infoClass: { type: 'Property', value: 'security' }, n: { type: 'Property', value: 9 } });
  await b.deleteEntity('', GONE);
});
after(async () => {
  await k.s.close();
});

const ids = (body: string) => (JSON.parse(body) as { id: string }[]).map((e) => e.id).sort();

test('temporal read matrix: query (GET, POST, q, attrs, aggregated) and retrieve per role, class and tenant', async () => {
  for (const role of ROLES) {
    for (const tenant of TENANTS) {
      const onTenant = role === 'admin' || tenant === '';
      const q = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Thing&count=true`, headers: H(role, tenant) });
      if (!onTenant) {
        assert.equal(q.statusCode, 403, `${role} temporal query on tenant ${tenant}`);
        continue;
      }
      assert.equal(q.statusCode, 200, `${role}: ${q.body}`);
      const want = READ[role].map((c) => idOf(c, tenant)).sort();
      assert.deepEqual(ids(q.body), want, `${role} temporal query on "${tenant}"`);
      assert.equal(q.headers['ngsild-results-count'], String(want.length), `${role} count`);
      // a selection without infoClass (attrs=n) cannot change the class of an entity
      const a = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Thing&attrs=n&options=temporalValues`, headers: H(role, tenant) });
      assert.deepEqual(ids(a.body), want, `${role} attrs=n`);
      // in-memory path (q): filtered before paging, exact count
      const f = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Thing&q=n>0&count=true`, headers: H(role, tenant) });
      assert.deepEqual(ids(f.body), want, `${role} q=`);
      assert.equal(f.headers['ngsild-results-count'], String(want.length), `${role} q count`);
      const agg = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Thing&options=aggregatedValues&aggrMethods=max`, headers: H(role, tenant) });
      assert.deepEqual(ids(agg.body), want, `${role} aggregatedValues`);
      const post = await k.s.inject({ method: 'POST', url: `${T}/entityOperations/query`, headers: H(role, tenant, { 'content-type': 'application/json' }), payload: { type: 'Query', entities: [{ type: 'Thing' }] } });
      assert.equal(post.statusCode, 200, post.body);
      assert.deepEqual(ids(post.body), want, `${role} POST temporal query`);
      for (const cls of CLASSES) {
        const r = await k.s.inject({ method: 'GET', url: `${T}/entities/${idOf(cls, tenant)}`, headers: H(role, tenant) });
        assert.equal(r.statusCode, READ[role].includes(cls) ? 200 : 404, `${role} temporal GET ${cls} on "${tenant}": ${r.body}`);
        if (r.statusCode === 200) assert.deepEqual((r.json().n as { value: number }[]).map((i) => i.value), [1, 2]);
      }
    }
  }
});

test('temporal: history keeps the most restrictive class an entity has had (downgraded, deleted)', async () => {
  // the entity routes follow the current class ...
  let r = await k.s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities/${DOWN}`, headers: H('operator') });
  assert.equal(r.statusCode, 200);
  // ... the temporal API hides the security-era history from roles without security clearance
  for (const role of ROLES) {
    const sees = READ[role].includes('security');
    for (const id of [DOWN, GONE]) {
      r = await k.s.inject({ method: 'GET', url: `${T}/entities/${id}`, headers: H(role) });
      assert.equal(r.statusCode, sees ? 200 : 404, `${role} temporal GET ${id}`);
    }
    r = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Gadget&attrs=n`, headers: H(role) });
    assert.deepEqual(ids(r.body), sees ? [DOWN, GONE].sort() : [], `${role} temporal query Gadget`);
  }
  // the 404 does not differ from an unknown entity, and the refusal is audited
  const unknown = await k.s.inject({ method: 'GET', url: `${T}/entities/urn:ngsi-ld:Thing:nope`, headers: H('operator') });
  const hidden = await k.s.inject({ method: 'GET', url: `${T}/entities/${idOf('security', '')}`, headers: H('operator') });
  assert.equal(unknown.statusCode, 404);
  assert.equal(hidden.json().type, unknown.json().type);
  const denied = await k.svc.auditLog.list({ action: 'temporal.read', limit: 1000 });
  assert.ok(denied.some((e) => e.outcome === 'denied' && e.target === idOf('security', '') && e.actor === 'user:operator'), 'denied temporal retrieve audited');
});

test('temporal: personal attributes and their history redacted without clearance, cleared reads audited', async () => {
  for (const role of ROLES) {
    const cleared = CLEARED.includes(role);
    const canSee = READ[role].includes('restricted');
    const g = await k.s.inject({ method: 'GET', url: `${T}/entities/${PERSON}`, headers: H(role) });
    if (!canSee) {
      assert.equal(g.statusCode, 404, `${role} Person`);
      continue;
    }
    assert.equal(g.statusCode, 200, `${role}: ${g.body}`);
    const b = g.json();
    assert.deepEqual((b.age as { value: number }[]).map((i) => i.value), [30, 31], `${role} age history`);
    if (cleared) assert.deepEqual((b.email as { value: string }[]).map((i) => i.value), ['p@x.example', 'q@x.example']);
    else assert.equal(b.email, undefined, `${role}: email history redacted`);
    if (cleared) continue;
    assert.ok(!g.body.includes('x.example'), `${role}: no personal value anywhere`);
    for (const url of [
      `${T}/entities?type=Person&options=temporalValues`,
      `${T}/entities?type=Person&attrs=email,age`,
      `${T}/entities?type=Person&options=aggregatedValues&aggrMethods=totalCount,distinctCount`,
      `${T}/entities/${PERSON}?options=aggregatedValues&aggrMethods=totalCount`,
      `${T}/entities/${PERSON}?lastN=1`,
    ]) {
      const r = await k.s.inject({ method: 'GET', url, headers: H(role) });
      assert.equal(r.statusCode, 200, `${role} ${url}: ${r.body}`);
      assert.ok(!r.body.includes('x.example') && !/"email"/.test(r.body), `${role} ${url}: ${r.body}`);
    }
    // asking only for the personal attribute: nothing to show
    const only = await k.s.inject({ method: 'GET', url: `${T}/entities/${PERSON}?attrs=email`, headers: H(role) });
    assert.equal(only.statusCode, 404, `${role} attrs=email`);
    // q cannot test a personal attribute the caller may not see (no oracle)
    const oracle = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Person&q=${encodeURIComponent('email=="p@x.example"')}`, headers: H(role) });
    assert.equal(oracle.statusCode, 200, oracle.body);
    assert.deepEqual(ids(oracle.body), [], `${role}: q on a redacted attribute matches nothing`);
  }
  // a cleared reader's q on it works
  const q = await k.s.inject({ method: 'GET', url: `${T}/entities?type=Person&q=${encodeURIComponent('email=="p@x.example"')}`, headers: H('security-operator') });
  assert.deepEqual(ids(q.body), [PERSON]);
  // cleared reads through the temporal API are in the personal-data access log of the subject
  const log = await k.svc.auditLog.list({ action: 'personal-data.read', subject: PERSON, limit: 1000 });
  const actors = new Set(log.map((e) => e.actor));
  assert.ok(actors.has('user:security-operator') && actors.has('user:root'), `audited readers: ${[...actors].join(', ')}`);
  assert.ok(!actors.has('user:operator') && !actors.has('user:analyst'), 'uncleared (redacted) reads are not personal-data reads');
  assert.ok(log.every((e) => (e.detail?.attrs as string[]).includes('email')));
});

test('temporal writes: the whole history class counts, also for temporal-only and deleted entities', async () => {
  const CT = { 'content-type': 'application/json' };
  const SEC = 'urn:ngsi-ld:Thing:t-temporal-only-security';
  const inst = (v: number, day: string) => [{ type: 'Property', value: v, observedAt: `2026-01-${day}T00:00:00Z` }];
  let r = await k.s.inject({ method: 'POST', url: `${T}/entities`, headers: H('admin', '', CT), payload: { id: SEC, type: 'Thing', infoClass: { type: 'Property', value: 'security' }, n: inst(1, '01') } });
  assert.equal(r.statusCode, 201, r.body);
  const n = async () => ((await k.s.inject({ method: 'GET', url: `${T}/entities/${SEC}?options=temporalValues`, headers: H('admin') })).json().n.values as [number, string][]).map((x) => x[0]);
  for (const id of [SEC, GONE]) {
    // an operator (no security clearance) can neither read nor change it: 404, nothing written
    const ops = [
      { method: 'POST' as const, url: `${T}/entities/${id}/attrs`, payload: { n: inst(666, '02') } },
      { method: 'POST' as const, url: `${T}/entities`, payload: { id, type: 'Thing', n: inst(667, '03') } },
      { method: 'DELETE' as const, url: `${T}/entities/${id}/attrs/n?deleteAll=true` },
      { method: 'DELETE' as const, url: `${T}/entities/${id}` },
    ];
    for (const o of ops) {
      r = await k.s.inject({ method: o.method, url: o.url, headers: H('operator', '', o.payload ? CT : {}), payload: o.payload });
      assert.equal(r.statusCode, 404, `operator ${o.method} ${o.url}: ${r.statusCode} ${r.body}`);
    }
  }
  assert.deepEqual(await n(), [1], 'history unchanged');
  // cleared roles write as before
  r = await k.s.inject({ method: 'POST', url: `${T}/entities/${SEC}/attrs`, headers: H('security-operator', '', CT), payload: { n: inst(2, '04') } });
  assert.equal(r.statusCode, 204, r.body);
  assert.deepEqual(await n(), [1, 2]);
  // and an operator still writes the history of entities within its clearance
  r = await k.s.inject({ method: 'POST', url: `${T}/entities/${idOf('restricted', '')}/attrs`, headers: H('operator', '', CT), payload: { n: inst(5, '05') } });
  assert.equal(r.statusCode, 204, r.body);
});

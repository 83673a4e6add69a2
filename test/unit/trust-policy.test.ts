import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Policy, defaultPolicy, validatePolicy, shortName, infoClassValue } from '../../src/trust/policy.ts';
import { classifyRoute } from '../../src/trust/route-map.ts';
import { checkQuery } from '../../src/trust/complexity.ts';
import { RateLimiter } from '../../src/trust/rate-limit.ts';
import { canonical, recordHash, GENESIS } from '../../src/trust/audit.ts';
import { hashPassword, verifyPassword, newApiKey, API_KEY_RE, oneTimePassword } from '../../src/trust/secrets.ts';
import { FakeClock } from '../../src/common/clock.ts';
import type { Principal } from '../../src/trust/api.ts';
import type { StoredEntity } from '../../src/ngsi-ld/model/types.ts';

const D = 'https://uri.etsi.org/ngsi-ld/default-context/';
const user = (role: string, tenant = ''): Principal => ({ kind: 'user', id: role, name: role, roles: [{ role, tenant }] });
const ent = (type: string, attrs: Record<string, unknown> = {}): StoredEntity => ({
  id: `urn:ngsi-ld:${type}:1`, type: [D + type], createdAt: '', modifiedAt: '',
  attrs: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [D + k, [{ type: 'Property', value: v }]])) as StoredEntity['attrs'],
});

test('policy: roles x operations x classes x tenants', () => {
  const p = new Policy(defaultPolicy());
  const can = (pr: Principal, operation: 'read' | 'write' | 'subscribe' | 'administer', infoClass: 'open' | 'restricted' | 'security', tenant = '', area: 'entities' | 'auth' = 'entities') =>
    p.authorize(pr, { operation, tenant, area, infoClass, entityType: D + 'X' }).allowed;
  assert.ok(can(user('admin', '*'), 'write', 'security', 'any'));
  assert.ok(can(user('security-operator'), 'read', 'security'));
  assert.ok(!can(user('operator'), 'read', 'security'));
  assert.ok(can(user('operator'), 'write', 'restricted'));
  assert.ok(!can(user('operator'), 'write', 'restricted', 'other-tenant'));
  assert.ok(can(user('analyst'), 'read', 'restricted'));
  assert.ok(!can(user('analyst'), 'write', 'open'));
  assert.ok(can(user('data-publisher'), 'write', 'open'));
  assert.ok(!can(user('data-publisher'), 'write', 'security'));
  assert.ok(can(user('service-developer'), 'subscribe', 'open'));
  assert.ok(!can(user('service-developer'), 'read', 'restricted'));
  assert.ok(can(user('public'), 'read', 'open'));
  assert.ok(!can(user('public'), 'write', 'open'));
  // platform administration needs a '*' binding
  assert.ok(!can(user('admin', 'city2'), 'administer', 'open', '*', 'auth'));
  assert.ok(can(user('admin', '*'), 'administer', 'open', '*', 'auth'));
  // API key limited to read
  assert.ok(!p.authorize({ ...user('admin', '*'), ops: ['read'] }, { operation: 'write', tenant: '', area: 'entities' }).allowed);
  // must change password: nothing
  assert.ok(!p.authorize({ ...user('admin', '*'), mustChangePassword: true }, { operation: 'read', tenant: '', area: 'entities' }).allowed);
});

test('policy: type-restricted grants', () => {
  const doc = defaultPolicy();
  doc.roles.parking = { grants: [{ ops: ['write'], areas: ['entities'], types: ['ParkingSpot'] }] };
  const p = new Policy(validatePolicy(doc));
  const pr = user('parking');
  assert.ok(p.authorize(pr, { operation: 'write', tenant: '', area: 'entities', entityType: D + 'ParkingSpot', infoClass: 'open' }).allowed);
  assert.ok(!p.authorize(pr, { operation: 'write', tenant: '', area: 'entities', entityType: D + 'Camera', infoClass: 'open' }).allowed);
});

test('information class: own property, type default, fail closed on unknown values', () => {
  const p = new Policy(defaultPolicy());
  assert.equal(p.classOf('', ent('Building')), 'open');
  assert.equal(p.classOf('', ent('Camera')), 'security');
  assert.equal(p.classOf('', ent('Camera', { infoClass: 'open' })), 'open');
  assert.equal(p.classOf('', ent('Building', { infoClass: 'restricted' })), 'restricted');
  assert.equal(infoClassValue(ent('Building', { infoClass: 'top-secret' })), 'security');
  const doc = defaultPolicy();
  doc.tenants = { police: { types: { Building: { infoClass: 'security' } } } };
  assert.equal(new Policy(doc).classOf('police', ent('Building')), 'security');
  assert.equal(new Policy(doc).classOf('', ent('Building')), 'open');
});

test('personal attributes and data subjects', () => {
  const p = new Policy(defaultPolicy());
  const person = ent('Person', { name: 'Ana', email: 'a@x', age: 40 });
  assert.deepEqual(p.personalAttrs('', person).map(shortName).sort(), ['email', 'name']);
  assert.deepEqual(p.subjectsOf('', person), ['urn:ngsi-ld:Person:1']);
  const sr = ent('ServiceRequest', { reporter: 'urn:ngsi-ld:Person:7', email: 'b@x' });
  assert.deepEqual(p.subjectsOf('', sr), ['urn:ngsi-ld:Person:7']);
  assert.ok(p.personalClearance(user('security-operator'), ''));
  assert.ok(!p.personalClearance(user('analyst'), ''));
});

test('policy validation refuses bad documents', () => {
  assert.throws(() => validatePolicy({}), /version/);
  const d = defaultPolicy() as unknown as { roles: Record<string, unknown> };
  delete d.roles.admin;
  assert.throws(() => validatePolicy(d), /admin/);
  const e = defaultPolicy();
  e.roles.x = { grants: [{ ops: ['fly' as never] }] };
  assert.throws(() => validatePolicy(e), /unknown operation/);
});

test('route map classifies every kind of route', () => {
  assert.deepEqual(classifyRoute('GET', '/health'), { kind: 'public' });
  assert.deepEqual(classifyRoute('POST', '/ngsi-ld/v1/entityOperations/query'), { kind: 'api', area: 'entities', op: 'read' });
  assert.equal((classifyRoute('POST', '/ngsi-ld/v1/entities') as { write: string }).write, 'create');
  assert.equal((classifyRoute('DELETE', '/ngsi-ld/v1/entities') as { write: string }).write, 'purge');
  assert.equal((classifyRoute('PATCH', '/ngsi-ld/v1/entities/:id/attrs/:attr') as { write: string }).write, 'entity');
  assert.deepEqual(classifyRoute('POST', '/ngsi-ld/v1/subscriptions'), { kind: 'api', area: 'subscriptions', op: 'subscribe' });
  assert.deepEqual(classifyRoute('GET', '/live'), { kind: 'api', area: 'live', op: 'read' });
  assert.deepEqual(classifyRoute('POST', '/iot/json'), { kind: 'device' });
  assert.equal((classifyRoute('POST', '/iot/devices') as { op: string }).op, 'write');
  assert.equal((classifyRoute('GET', '/auth/v1/users') as { op: string }).op, 'administer');
  assert.equal(classifyRoute('GET', '/something/new'), null);
  assert.equal(classifyRoute('POST', '/'), null);
});

test('query complexity limits', () => {
  assert.doesNotThrow(() => checkQuery({ q: 'a==1;b==2', idPattern: 'urn:.*' }));
  assert.throws(() => checkQuery({ idPattern: '(a+)+$' }), /nested quantifier/);
  assert.throws(() => checkQuery({ q: Array.from({ length: 100 }, (_, i) => `a${i}==1`).join(';') }), /terms/);
  assert.throws(() => checkQuery({ q: '('.repeat(20) + 'a==1' + ')'.repeat(20) }), /nests/);
  assert.throws(() => checkQuery({ attrs: Array.from({ length: 300 }, (_, i) => `a${i}`).join(',') }), /attrs/);
  assert.throws(() => checkQuery({ geoQ: { coordinates: Array.from({ length: 6000 }, () => [1, 2]) } }), /geometry/);
});

test('rate limiter: burst, refill, Retry-After seconds', () => {
  const c = new FakeClock();
  const rl = new RateLimiter(c);
  const spec = { rate: 1, burst: 3 };
  assert.equal(rl.take('k', spec), 0);
  assert.equal(rl.take('k', spec), 0);
  assert.equal(rl.take('k', spec), 0);
  assert.equal(rl.take('k', spec), 1);
  assert.equal(rl.take('other', spec), 0);
  c.advance(1000);
  assert.equal(rl.take('k', spec), 0);
  assert.equal(rl.take('k', spec), 1);
  const small = new RateLimiter(c, 10);
  for (let i = 0; i < 50; i++) small.take(`k${i}`, spec);
  assert.ok(small.size <= 10);
});

test('audit hash: canonical JSON is key-order independent and content-sensitive', () => {
  assert.equal(canonical({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } }), '{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}');
  const r = { seq: 1, at: 't', actor: 'a', action: 'x', outcome: 'ok', tenant: null, target: null, subject: null, detail: { b: 1, a: 2 } };
  assert.equal(recordHash(GENESIS, r), recordHash(GENESIS, { ...r, detail: { a: 2, b: 1 } }));
  assert.notEqual(recordHash(GENESIS, r), recordHash(GENESIS, { ...r, actor: 'b' }));
});

test('secrets: scrypt round trip, API key format, one-time passwords', async () => {
  const h = await hashPassword('correct horse battery staple', { N: 1024, r: 8, p: 1, len: 32 });
  assert.match(h, /^scrypt\$1024\$8\$1\$/);
  assert.ok(await verifyPassword('correct horse battery staple', h));
  assert.ok(!(await verifyPassword('wrong', h)));
  assert.ok(!(await verifyPassword('x', 'plain')));
  const k = newApiKey();
  assert.match(k.token, API_KEY_RE);
  assert.notEqual(oneTimePassword(), oneTimePassword());
});

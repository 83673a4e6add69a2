/**
 * Every route of the whole platform (all modules of src/modules.ts) is classified by the trust
 * layer, and every non-public route refuses anonymous callers. A new API that is not added to
 * src/trust/route-map.ts makes this test fail (and is admin-only at run time).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { trustPlatform } from '../../src/trust/testkit.ts';
import { modules } from '../../src/modules.ts';
import type { UrbisModule } from '../../src/platform.ts';

let k: Awaited<ReturnType<typeof trustPlatform>>;
const extra: UrbisModule = {
  name: 'later-api',
  routes(app) {
    app.get('/later/v1/things', async () => ({ secret: true }));
  },
};

before(async () => {
  const others = modules.filter((m) => m.name !== 'trust');
  k = await trustPlatform({ modules: [...others, extra], trust: { rate: { anonymous: { rate: 0, burst: 0 } } } });
});
after(async () => {
  await k.s.close();
});

test('every registered route is classified (except the deliberately new one)', () => {
  const routes = k.tm.routes_;
  assert.ok(routes.length > 50, `only ${routes.length} routes seen`);
  const missing = routes.filter((r) => !r.cls).map((r) => `${r.method} ${r.url}`);
  assert.deepEqual(missing, ['GET /later/v1/things', 'HEAD /later/v1/things'], 'classify these routes in src/trust/route-map.ts');
  const areas = new Set<string>(routes.map((r) => (r.cls?.kind === 'api' ? r.cls.area : (r.cls?.kind ?? 'unclassified'))));
  for (const a of ['entities', 'subscriptions', 'iot', 'kpi', 'rules', 'live', 'auth', 'public', 'device', 'session']) assert.ok(areas.has(a), `no ${a} routes seen`);
});

test('every non-public route answers 401 to an anonymous caller', async () => {
  const failures: string[] = [];
  for (const r of k.tm.routes_) {
    if (r.method === 'HEAD' || r.cls?.kind === 'public' || r.cls?.kind === 'device') continue;
    const url = r.url.replace(/:[A-Za-z_]+/g, 'x').replace('*', 'x');
    const res = await k.s.inject({ method: r.method as 'GET', url, headers: { 'content-type': 'application/json' }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
    if (res.statusCode !== 401) failures.push(`${r.method} ${r.url} -> ${res.statusCode}`);
  }
  assert.deepEqual(failures, []);
});

test('an unclassified route is admin-only at run time', async () => {
  const analyst = await k.user('an', [{ role: 'analyst', tenant: '*' }]);
  const root = await k.user('root', [{ role: 'admin', tenant: '*' }]);
  assert.equal((await k.s.inject({ method: 'GET', url: '/later/v1/things', headers: { cookie: analyst } })).statusCode, 403);
  assert.equal((await k.s.inject({ method: 'GET', url: '/later/v1/things', headers: { cookie: root } })).statusCode, 200);
});

test('a public-role user cannot call any write or administer route', async () => {
  const pub = await k.user('pub', [{ role: 'public', tenant: '*' }]);
  const failures: string[] = [];
  for (const r of k.tm.routes_) {
    if (r.cls?.kind !== 'api' || r.cls.op === 'read') continue;
    const url = r.url.replace(/:[A-Za-z_]+/g, 'x').replace('*', 'x');
    const res = await k.s.inject({ method: r.method as 'GET', url, headers: { cookie: pub, 'content-type': 'application/json', 'fiware-service': 'x' }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
    if (res.statusCode !== 403) failures.push(`${r.method} ${r.url} -> ${res.statusCode}`);
  }
  assert.deepEqual(failures, []);
});

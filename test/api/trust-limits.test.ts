/**
 * Limits and transport: rate limits (429 + Retry-After) per IP / user / API key, login throttling,
 * body size, query complexity, slow-loris timeouts, security headers and CSP, CORS, cookies,
 * first-run admin with a one-time password and forced change, URBIS_AUTH=off.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { trustPlatform } from '../../src/trust/testkit.ts';
import { testPlatform } from '../helpers/server.ts';
import { createTrustModule } from '../../src/trust/module.ts';
import { FakeClock } from '../../src/common/clock.ts';
import { MqttLimits } from '../../src/trust/mqtt-guard.ts';

const clock = new FakeClock();
let k: Awaited<ReturnType<typeof trustPlatform>>;
before(async () => {
  k = await trustPlatform({
    clock,
    trust: { publicRead: true, corsOrigins: ['https://apps.city.example'], rate: { anonymous: { rate: 1, burst: 3 }, principal: { rate: 2, burst: 5 }, login: { rate: 1 / 60, burst: 3 } } },
    config: { bodyLimit: 10_000 },
  });
});
after(async () => {
  await k.s.close();
});

test('anonymous rate limit per IP: 429 with Retry-After, refills with time', async () => {
  const get = (ip = '10.0.0.1') => k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Thing', remoteAddress: ip });
  for (let i = 0; i < 3; i++) assert.equal((await get()).statusCode, 200);
  const r = await get();
  assert.equal(r.statusCode, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/TooManyRequests');
  assert.equal((await get('10.0.0.2')).statusCode, 200, 'another address has its own bucket');
  clock.advance(1000);
  assert.equal((await get()).statusCode, 200);
});

test('per principal: a user and an API key have their own buckets whatever the address', async () => {
  const key = await k.apiKey([{ role: 'analyst', tenant: '' }]);
  const get = (ip: string) => k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Thing', remoteAddress: ip, headers: { 'x-api-key': key } });
  for (let i = 0; i < 5; i++) assert.equal((await get(`10.1.0.${i}`)).statusCode, 200);
  const r = await get('10.1.0.99');
  assert.equal(r.statusCode, 429);
  assert.ok(Number(r.headers['retry-after']) >= 1);
  clock.advance(10_000);
});

test('login attempts are throttled per address and user name', async () => {
  const login = (u: string, ip: string) => k.s.inject({ method: 'POST', url: '/auth/v1/login', remoteAddress: ip, payload: { username: u, password: 'wrong password' } });
  for (let i = 0; i < 3; i++) assert.equal((await login('admin', `10.2.0.${i}`)).statusCode, 401);
  const r = await login('admin', '10.2.0.9');
  assert.equal(r.statusCode, 429);
  assert.ok(Number(r.headers['retry-after']) > 1);
  clock.advance(600_000);
});

test('body size and query complexity limits', async () => {
  const key = await k.apiKey([{ role: 'admin', tenant: '*' }]);
  const big = { id: 'urn:x:big', type: 'Thing', blob: { type: 'Property', value: 'x'.repeat(20_000) } };
  let r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'x-api-key': key, 'content-type': 'application/json' }, payload: JSON.stringify(big) });
  assert.equal(r.statusCode, 413);
  r = await k.s.inject({ method: 'GET', url: `/ngsi-ld/v1/entities?type=Thing&idPattern=${encodeURIComponent('(a+)+$')}`, headers: { 'x-api-key': key } });
  assert.equal(r.statusCode, 403);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery');
  r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/query', headers: { 'x-api-key': key, 'content-type': 'application/json' }, payload: { type: 'Query', q: Array.from({ length: 100 }, (_, i) => `a${i}==1`).join(';') } });
  assert.equal(r.statusCode, 403);
  clock.advance(10_000);
});

test('slow-loris safe server timeouts', () => {
  const srv = k.s.app.server;
  assert.ok(srv.headersTimeout > 0 && srv.headersTimeout <= 20_000);
  assert.ok(srv.requestTimeout > 0 && srv.requestTimeout <= 60_000);
});

test('security headers, strict CSP, CORS for configured origins only', async () => {
  let r = await k.s.inject({ method: 'GET', url: '/health', remoteAddress: '10.9.0.1' });
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['x-frame-options'], 'DENY');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  r = await k.s.inject({ method: 'OPTIONS', url: '/ngsi-ld/v1/entities', remoteAddress: '10.9.0.2', headers: { origin: 'https://apps.city.example', 'access-control-request-method': 'POST' } });
  assert.equal(r.statusCode, 204);
  assert.equal(r.headers['access-control-allow-origin'], 'https://apps.city.example');
  assert.match(String(r.headers['access-control-allow-headers']), /Authorization/);
  r = await k.s.inject({ method: 'OPTIONS', url: '/ngsi-ld/v1/entities', remoteAddress: '10.9.0.3', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('session cookies: HttpOnly, SameSite=Strict; cross-site writes refused; logout ends the session', async () => {
  const cookie = await k.user('op', [{ role: 'operator', tenant: '' }]);
  const r0 = await k.s.inject({ method: 'POST', url: '/auth/v1/login', payload: { username: 'op', password: 'pw-op-long-enough' }, remoteAddress: '10.3.0.1' });
  const sc = String(r0.headers['set-cookie']);
  assert.match(sc, /HttpOnly/);
  assert.match(sc, /SameSite=Strict/);
  let r = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', remoteAddress: '10.3.0.2', headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/json' }, payload: { id: 'urn:x:csrf', type: 'Thing' } });
  assert.equal(r.statusCode, 403);
  r = await k.s.inject({ method: 'POST', url: '/auth/v1/logout', remoteAddress: '10.3.0.3', headers: { cookie } });
  assert.equal(r.statusCode, 204);
  r = await k.s.inject({ method: 'GET', url: '/auth/v1/me', remoteAddress: '10.3.0.4', headers: { cookie } });
  assert.equal(r.statusCode, 401);
  clock.advance(10_000);
});

test('MQTT limits: connections per address, messages per client, message size', () => {
  const c = new FakeClock();
  const m = new MqttLimits(c, { maxConnectionsPerIp: 2, perClient: { rate: 1, burst: 2 }, maxMessageBytes: 100 });
  assert.ok(m.onConnect('a', '1.1.1.1'));
  assert.ok(m.onConnect('b', '1.1.1.1'));
  assert.ok(!m.onConnect('c', '1.1.1.1'));
  m.onDisconnect('a', '1.1.1.1');
  assert.ok(m.onConnect('c', '1.1.1.1'));
  assert.ok(m.onPublish('b', 10));
  assert.ok(m.onPublish('b', 10));
  assert.ok(!m.onPublish('b', 10));
  c.advance(1000);
  assert.ok(m.onPublish('b', 10));
  assert.ok(!m.onPublish('c', 101));
});

test('first run: one-time admin password shown once, change required before any API', async () => {
  const lines: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (lines.push(String(s)), true)) as typeof process.stderr.write;
  let s;
  try {
    s = await testPlatform({ modules: [createTrustModule({}, {})], config: { auth: true, logLevel: 'warn' } });
  } finally {
    process.stderr.write = orig;
  }
  try {
    const m = lines.map((l) => /one-time password (\S+)/.exec(l)).find(Boolean);
    assert.ok(m, 'the one-time password is logged once');
    assert.equal(lines.filter((l) => l.includes(m![1])).length, 1);
    const login = await s.inject({ method: 'POST', url: '/auth/v1/login', payload: { username: 'admin', password: m![1] } });
    assert.equal(login.statusCode, 200);
    assert.equal(login.json().mustChangePassword, true);
    const cookie = String(login.headers['set-cookie']).split(';')[0];
    assert.equal((await s.inject({ method: 'GET', url: '/auth/v1/users', headers: { cookie } })).statusCode, 403);
    const ch = await s.inject({ method: 'POST', url: '/auth/v1/password', headers: { cookie }, payload: { currentPassword: m![1], newPassword: 'a brand new long password' } });
    assert.equal(ch.statusCode, 204, ch.body);
    assert.equal((await s.inject({ method: 'GET', url: '/auth/v1/users', headers: { cookie } })).statusCode, 200);
    // nothing writable without credentials in a fresh install
    assert.equal((await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'content-type': 'application/json' }, payload: { id: 'urn:x:1', type: 'Thing' } })).statusCode, 401);
    const pw = await s.platform.db.query<{ password_hash: string }>("SELECT password_hash FROM trust_users WHERE name = 'admin'");
    assert.match(pw[0].password_hash, /^scrypt\$32768\$8\$1\$/);
  } finally {
    await s.close();
  }
});

test('URBIS_AUTH=off opens everything and says so loudly', async () => {
  const lines: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((x: string | Uint8Array) => (lines.push(String(x)), true)) as typeof process.stderr.write;
  let s;
  try {
    s = await testPlatform({ modules: [createTrustModule({}, {})], config: { auth: false, logLevel: 'warn' } });
  } finally {
    process.stderr.write = orig;
  }
  try {
    assert.ok(lines.some((l) => /AUTHENTICATION AND AUTHORIZATION ARE DISABLED/.test(l)));
    const r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'content-type': 'application/json' }, payload: { id: 'urn:x:1', type: 'Camera' } });
    assert.equal(r.statusCode, 201);
    assert.equal((await s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:x:1' })).statusCode, 200);
  } finally {
    await s.close();
  }
});

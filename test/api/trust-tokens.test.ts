/**
 * OIDC bearer tokens against a local JWKS served by the test: valid (Keycloak claims), expired,
 * wrong issuer, wrong audience, wrong signature, unknown key, malformed, alg "none", HMAC with the
 * public key; and API keys: valid, revoked, expired, scoped, malformed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { createHmac } from 'node:crypto';
import { trustPlatform } from '../../src/trust/testkit.ts';
import { FakeClock } from '../../src/common/clock.ts';

const ISS = 'https://idp.example.test/realms/city';
const AUD = 'urbis';
let k: Awaited<ReturnType<typeof trustPlatform>>;
let jwksServer: Server;
let key: CryptoKey;
let other: CryptoKey;
let publicJwk: Record<string, unknown>;
const clock = new FakeClock(Date.parse('2026-03-01T12:00:00Z'));
const nowS = () => Math.floor(clock.now() / 1000);

before(async () => {
  const kp = await generateKeyPair('RS256', { extractable: true });
  key = kp.privateKey;
  other = (await generateKeyPair('RS256')).privateKey;
  publicJwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  jwksServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/certs`;
  k = await trustPlatform({ clock, trust: { oidc: { issuer: ISS, jwksUrl, audience: AUD, clientId: 'urbis-dashboard' } } });
  await k.s.platform.broker.createEntity('', { id: 'urn:ngsi-ld:Thing:1', type: 'Thing' });
  await k.s.platform.broker.createEntity('', { id: 'urn:ngsi-ld:Thing:sec', type: 'Thing', infoClass: { type: 'Property', value: 'security' } });
});
after(async () => {
  await k.s.close();
  jwksServer.close();
});

const jwt = (claims: Record<string, unknown> = {}, o: { key?: CryptoKey; kid?: string; iss?: string; exp?: number; aud?: string } = {}) =>
  new SignJWT({ realm_access: { roles: ['analyst', 'offline_access'] }, preferred_username: 'ana', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: o.kid ?? 'k1' })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? AUD)
    .setSubject('user-123')
    .setIssuedAt(nowS() - 60)
    .setExpirationTime(o.exp ?? nowS() + 300)
    .sign(o.key ?? key);

const get = (auth: string, url = '/ngsi-ld/v1/entities?type=Thing', tenant?: string) =>
  k.s.inject({ method: 'GET', url, headers: { authorization: auth, ...(tenant ? { 'ngsild-tenant': tenant } : {}) } });

const refused = async (auth: string, re: RegExp) => {
  const r = await get(auth);
  assert.equal(r.statusCode, 401, r.body);
  assert.match(String(r.headers['www-authenticate']), /Bearer realm="urbis"/);
  assert.match(r.json().detail, re);
  assert.equal(r.json().type, 'https://uri.etsi.org/ngsi-ld/errors/Unauthorized');
};

test('a valid token: Keycloak realm roles, read per class', async () => {
  const r = await get(`Bearer ${await jwt()}`);
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual((r.json() as { id: string }[]).map((e) => e.id), ['urn:ngsi-ld:Thing:1']);
  const me = await get(`Bearer ${await jwt()}`, '/auth/v1/me');
  assert.equal(me.json().kind, 'oidc');
  assert.deepEqual(me.json().roles, [{ role: 'analyst', tenant: '' }, { role: 'offline_access', tenant: '' }]);
});

test('client roles, role@tenant and the tenant claim', async () => {
  const t = await jwt({ realm_access: { roles: [] }, resource_access: { 'urbis-dashboard': { roles: ['security-operator'] } } });
  const r = await get(`Bearer ${t}`);
  assert.equal(r.json().length, 2);
  const other = await jwt({ realm_access: { roles: ['analyst@city2'] } });
  assert.equal((await get(`Bearer ${other}`)).statusCode, 403);
  assert.equal((await get(`Bearer ${other}`, '/ngsi-ld/v1/entities?type=Thing', 'city2')).statusCode !== 403, true);
  const claimTenant = await jwt({ tenant: ['city3'] });
  assert.equal((await get(`Bearer ${claimTenant}`)).statusCode, 403);
});

test('expired token', async () => {
  await refused(`Bearer ${await jwt({}, { exp: nowS() - 120 })}`, /expired/);
  // still valid now, expired after the clock moves on
  const t = await jwt({}, { exp: nowS() + 10 });
  assert.equal((await get(`Bearer ${t}`)).statusCode, 200);
  clock.advance(60_000);
  await refused(`Bearer ${t}`, /expired/);
});

test('wrong issuer and wrong audience', async () => {
  await refused(`Bearer ${await jwt({}, { iss: 'https://evil.example/realms/city' })}`, /"iss"/);
  await refused(`Bearer ${await jwt({}, { aud: 'someone-else' })}`, /"aud"/);
});

test('wrong signature and unknown key', async () => {
  await refused(`Bearer ${await jwt({}, { key: other })}`, /signature/);
  await refused(`Bearer ${await jwt({}, { key: other, kid: 'nope' })}`, /unknown key/);
  // a valid token with one byte of the payload changed
  const [h, p, s] = (await jwt()).split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  payload.realm_access.roles = ['admin'];
  await refused(`Bearer ${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`, /signature/);
});

test('malformed tokens, alg none, HMAC confusion', async () => {
  await refused('Bearer not-a-jwt', /malformed/);
  await refused('Bearer a.b.c', /malformed|not accepted/);
  await refused('Basic dXNlcjpwYXNz', /Bearer/);
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = { iss: ISS, aud: AUD, sub: 'x', exp: nowS() + 300, realm_access: { roles: ['admin'] } };
  await refused(`Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`, /not allowed|malformed|not accepted/);
  const head = b64({ alg: 'HS256', kid: 'k1' });
  const body = b64(claims);
  const mac = createHmac('sha256', JSON.stringify(publicJwk)).update(`${head}.${body}`).digest('base64url');
  await refused(`Bearer ${head}.${body}.${mac}`, /not allowed|not accepted/);
});

test('API keys: valid, scoped to operations, expired, revoked, malformed', async () => {
  const tok = await k.apiKey([{ role: 'data-publisher', tenant: '' }]);
  assert.equal((await get(`Bearer ${tok}`)).statusCode, 200);
  const viaHeader = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Thing', headers: { 'x-api-key': tok } });
  assert.equal(viaHeader.statusCode, 200);
  const w = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'x-api-key': tok, 'content-type': 'application/json' }, payload: { id: 'urn:x:k1', type: 'Thing' } });
  assert.equal(w.statusCode, 201);
  const ro = await k.apiKey([{ role: 'data-publisher', tenant: '' }], { ops: ['read'] });
  const w2 = await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { 'x-api-key': ro, 'content-type': 'application/json' }, payload: { id: 'urn:x:k2', type: 'Thing' } });
  assert.equal(w2.statusCode, 403);
  const short = await k.apiKey([{ role: 'analyst', tenant: '' }], { expiresInMs: 1000 });
  assert.equal((await get(`Bearer ${short}`)).statusCode, 200);
  clock.advance(31_000); // past expiry and the 30 s key cache
  await refused(`Bearer ${short}`, /expired/);
  await refused(`Bearer ${tok.slice(0, -2)}xx`, /not valid/);
  await refused('Bearer urbis_nope', /malformed/);
  // revoke through the admin API
  const admin = await k.login('admin', 'admin password for tests');
  const id = tok.split('_')[1];
  assert.equal((await k.s.inject({ method: 'DELETE', url: `/auth/v1/apikeys/${id}`, headers: { cookie: admin } })).statusCode, 204);
  await refused(`Bearer ${tok}`, /revoked/);
});

test('API keys issued through the API are shown once and stored hashed', async () => {
  const admin = await k.login('admin', 'admin password for tests');
  const r = await k.s.inject({ method: 'POST', url: '/auth/v1/apikeys', headers: { cookie: admin }, payload: { name: 'sensor gateway', roles: [{ role: 'data-publisher', tenant: '' }], expiresAt: new Date(clock.now() + 86_400_000).toISOString() } });
  assert.equal(r.statusCode, 201, r.body);
  const { key: token, id } = r.json();
  const rows = await k.s.platform.db.query<{ secret_hash: string }>('SELECT secret_hash FROM trust_api_keys WHERE id = $1', [id]);
  assert.ok(!rows[0].secret_hash.includes(token.split('_')[2]));
  const list = await k.s.inject({ method: 'GET', url: '/auth/v1/apikeys', headers: { cookie: admin } });
  assert.ok(!list.body.includes(token));
  const tooLong = await k.s.inject({ method: 'POST', url: '/auth/v1/apikeys', headers: { cookie: admin }, payload: { name: 'x', roles: [{ role: 'analyst', tenant: '' }], expiresAt: '2099-01-01T00:00:00Z' } });
  assert.equal(tooLong.statusCode, 400);
});

/**
 * Audit: hash chain verifies, detects a modified, removed or truncated record; the table refuses
 * UPDATE/DELETE; personal-data reads are logged and "who read data about me" answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { trustPlatform, ADMIN_PASSWORD } from '../../src/trust/testkit.ts';
import { verifyAudit } from '../../src/trust/audit.ts';

let k: Awaited<ReturnType<typeof trustPlatform>>;
let admin: string;
before(async () => {
  k = await trustPlatform();
  admin = await k.login('admin', ADMIN_PASSWORD);
});
after(async () => {
  await k.s.close();
});

test('personal data: redacted without clearance, reads logged, who-read-about-me', async () => {
  const b = k.s.platform.broker;
  await b.createEntity('', { id: 'urn:ngsi-ld:Person:42', type: 'Person', name: { type: 'Property', value: 'Ana' }, email: { type: 'Property', value: 'ana@example.org' }, age: { type: 'Property', value: 30 } });
  const analyst = await k.user('analyst1', [{ role: 'analyst', tenant: '' }]);
  const secop = await k.user('c2', [{ role: 'security-operator', tenant: '' }]);
  const ana = await k.user('ana', [{ role: 'public', tenant: '' }], { subject: 'urn:ngsi-ld:Person:42' });

  let r = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Person:42', headers: { cookie: analyst } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().email, undefined);
  assert.equal(r.json().name, undefined);
  assert.equal(r.json().age.value, 30);
  r = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Person&options=keyValues', headers: { cookie: analyst } });
  assert.deepEqual(Object.keys(r.json()[0]).sort(), ['age', 'id', 'type']);
  r = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Person:42', headers: { cookie: secop } });
  assert.equal(r.json().email.value, 'ana@example.org');
  r = await k.s.inject({ method: 'GET', url: '/ngsi-ld/v1/entities?type=Person', headers: { cookie: secop } });
  assert.equal(r.json()[0].email.value, 'ana@example.org');

  r = await k.s.inject({ method: 'GET', url: '/auth/v1/personal-data-access?subject=urn:ngsi-ld:Person:42', headers: { cookie: admin } });
  assert.equal(r.statusCode, 200);
  const reads = r.json().reads as { reader: string; attrs: string[]; entity: string }[];
  assert.deepEqual(reads.map((x) => x.reader), ['user:c2', 'user:c2'], 'only the cleared reader read personal data');
  assert.deepEqual(reads[0].attrs.sort(), ['email', 'name']);
  // the person themselves may ask; someone else may not
  r = await k.s.inject({ method: 'GET', url: '/auth/v1/personal-data-access?subject=urn:ngsi-ld:Person:42', headers: { cookie: ana } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().reads.length, 2);
  r = await k.s.inject({ method: 'GET', url: '/auth/v1/personal-data-access?subject=urn:ngsi-ld:Person:42', headers: { cookie: analyst } });
  assert.equal(r.statusCode, 403);
});

test('administrative actions and authorization failures are audited', async () => {
  const analyst = await k.user('analyst2', [{ role: 'analyst', tenant: '' }]);
  await k.s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', headers: { cookie: analyst, 'content-type': 'application/json' }, payload: { id: 'urn:x:1', type: 'Thing' } });
  await k.s.inject({ method: 'GET', url: '/auth/v1/users', headers: { cookie: analyst } });
  const c = await k.s.inject({ method: 'POST', url: '/auth/v1/users', headers: { cookie: admin }, payload: { name: 'bob', roles: [{ role: 'operator', tenant: '' }] } });
  assert.equal(c.statusCode, 201);
  assert.match(c.json().oneTimePassword, /^[A-Za-z0-9]{20}$/);
  await k.s.inject({ method: 'POST', url: '/auth/v1/login', payload: { username: 'admin', password: 'wrong' } });
  const r = await k.s.inject({ method: 'GET', url: '/auth/v1/audit?limit=1000', headers: { cookie: admin } });
  const recs = r.json() as { actor: string; action: string; outcome: string }[];
  const has = (action: string, outcome: string, actor?: string) => recs.some((x) => x.action === action && x.outcome === outcome && (!actor || x.actor === actor));
  assert.ok(has('entities.write', 'denied', 'user:analyst2'));
  assert.ok(has('auth.administer', 'denied', 'user:analyst2'));
  assert.ok(has('user.create', 'ok', 'user:admin'));
  assert.ok(has('login', 'failed', 'user:admin'));
  assert.ok(!JSON.stringify(recs).includes(c.json().oneTimePassword), 'secrets never in the audit log');
});

test('the chain verifies; a modified, removed or truncated record is detected', async () => {
  const db = k.s.platform.db;
  let v = await verifyAudit(db);
  assert.equal(v.ok, true, JSON.stringify(v));
  assert.ok(v.records > 5);
  const anchor = v.head;
  const api = await k.s.inject({ method: 'GET', url: '/auth/v1/audit/verify', headers: { cookie: admin } });
  assert.equal(api.json().ok, true);

  // append-only: plain UPDATE and DELETE are refused by the database
  await assert.rejects(db.query("UPDATE trust_audit SET actor = 'x' WHERE seq = 2"), /append-only/);
  await assert.rejects(db.query('DELETE FROM trust_audit WHERE seq = 2'), /append-only/);

  // a superuser who disables the trigger and edits a record is still detected
  await db.exec('ALTER TABLE trust_audit DISABLE TRIGGER trust_audit_no_change');
  const orig = (await db.query<{ actor: string }>('SELECT actor FROM trust_audit WHERE seq = 3'))[0].actor;
  await db.query("UPDATE trust_audit SET actor = 'user:someone-else' WHERE seq = 3");
  v = await verifyAudit(db);
  assert.equal(v.ok, false);
  assert.equal(v.broken?.seq, 3);
  assert.match(v.broken!.reason, /modified/);
  const viaApi = await k.s.inject({ method: 'GET', url: '/auth/v1/audit/verify', headers: { cookie: admin } });
  assert.equal(viaApi.json().ok, false);
  await db.query('UPDATE trust_audit SET actor = $1 WHERE seq = 3', [orig]);
  assert.equal((await verifyAudit(db, anchor)).ok, true);

  // removing a record in the middle
  const row = (await db.query<Record<string, unknown>>('SELECT * FROM trust_audit WHERE seq = 4'))[0];
  await db.query('DELETE FROM trust_audit WHERE seq = 4');
  v = await verifyAudit(db);
  assert.equal(v.ok, false);
  assert.equal(v.broken?.seq, 5);
  await db.query('INSERT INTO trust_audit (seq, at, actor, action, outcome, tenant, target, subject, detail, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11)', [
    row.seq, row.at, row.actor, row.action, row.outcome, row.tenant, row.target, row.subject, row.detail === null ? null : JSON.stringify(row.detail), row.prev_hash, row.hash,
  ]);
  assert.equal((await verifyAudit(db)).ok, true);

  // truncating the newest records: detected against an anchor kept elsewhere
  const head = (await verifyAudit(db)).head;
  await db.query('DELETE FROM trust_audit WHERE seq = $1', [head.seq]);
  v = await verifyAudit(db, head);
  assert.equal(v.ok, false);
  assert.match(v.broken!.reason, /truncated/);
  await db.exec('ALTER TABLE trust_audit ENABLE TRIGGER trust_audit_no_change');
});

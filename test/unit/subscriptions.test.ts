import { test } from 'node:test';
import { CandidateIndex } from '../../src/subscriptions/domain/candidates.ts';
import { fanoutBody } from '../../src/subscriptions/delivery/outbox.ts';
import { notificationBody as nBody, notificationData, notificationTail } from '../../src/subscriptions/domain/shape.ts';
import assert from 'node:assert/strict';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';
import type { StoredEntity } from '../../src/ngsi-ld/model/types.ts';
import { applySubscriptionUpdate, parseSubscription, subscriptionStatus } from '../../src/subscriptions/domain/validate.ts';
import { classifyChanges, matchEvent, nextPeriodic, throttleDecision } from '../../src/subscriptions/domain/match.ts';
import { compileFilters, decodeQ, validators } from '../../src/subscriptions/domain/filters.ts';
import { mqttPayload, notificationBody, notificationHeaders, shapeEntity } from '../../src/subscriptions/domain/shape.ts';
import { subscriptionToPayload } from '../../src/subscriptions/domain/render.ts';
import type { Subscription } from '../../src/subscriptions/domain/types.ts';

const V = 'https://example.org/vocab#';
const expandTerm = (t: string) => (t.includes(':') ? t : t === 'location' ? 'https://uri.etsi.org/ngsi-ld/location' : V + t);
const compact = (i: string) => (i.startsWith(V) ? i.slice(V.length) : i === 'https://uri.etsi.org/ngsi-ld/location' ? 'location' : i);
const NOW = Date.parse('2026-01-01T00:00:00Z');
const deps = { expandTerm, now: NOW, ...validators() };
let n = 0;
const make = (p: Record<string, unknown>, tenant = ''): Subscription =>
  parseSubscription({ type: 'Subscription', ...p }, deps, { tenant, newId: () => `urn:ngsi-ld:Subscription:${++n}` });
const ep = { endpoint: { uri: 'http://localhost:1111/notify' } };
const base = (extra: Record<string, unknown> = {}) => make({ entities: [{ type: 'Building' }], notification: ep, ...extra });

const ent = (id: string, attrs: Record<string, unknown>, type = 'Building', extra: Partial<StoredEntity> = {}): StoredEntity => ({
  id,
  type: [V + type],
  createdAt: '2026-01-01T00:00:00.000Z',
  modifiedAt: '2026-01-01T00:00:00.000Z',
  attrs: Object.fromEntries(
    Object.entries(attrs).map(([k, v]) => [
      expandTerm(k),
      [typeof v === 'object' && v !== null && 'type' in (v as object) ? v : { type: 'Property', value: v }],
    ]),
  ) as StoredEntity['attrs'],
  ...extra,
});
const ev = (kind: ChangeEvent['kind'], before?: StoredEntity, after?: StoredEntity, changed?: string[], deleted?: string[]): ChangeEvent => ({
  tenant: '',
  entityId: (after ?? before)!.id,
  types: (after ?? before)!.type,
  kind,
  before,
  after,
  changedAttrs: changed ?? Object.keys(after?.attrs ?? before?.attrs ?? {}),
  deletedAttrs: deleted,
  at: '2026-01-01T00:00:05.000Z',
});

// ---------------------------------------------------------------------------------------- validation

test('create: defaults, expansion and rendering back', () => {
  const s = make({
    id: 'urn:ngsi-ld:Subscription:x',
    entities: [{ type: 'Building', idPattern: '^urn:ngsi-ld:Building:.*' }],
    watchedAttributes: ['name'],
    q: 'name=="Eiffel"',
    notification: { attributes: ['name'], format: 'keyValues', endpoint: { uri: 'http://localhost:1111/notify', accept: 'application/json' } },
  });
  assert.equal(s.id, 'urn:ngsi-ld:Subscription:x');
  assert.deepEqual(s.notificationTrigger, ['attributeCreated', 'attributeUpdated']);
  assert.deepEqual(s.watchedAttributes, [V + 'name']);
  assert.deepEqual(s.entities![0].typeExpr, [[V + 'Building']]);
  assert.equal(s.isActive, true);
  const out = subscriptionToPayload(s, { timesSent: 2, timesFailed: 1, status: 'failed' }, compact, NOW);
  assert.equal(out.status, 'active');
  assert.deepEqual(out.entities, [{ idPattern: '^urn:ngsi-ld:Building:.*', type: 'Building' }]);
  assert.deepEqual(out.watchedAttributes, ['name']);
  const notif = out.notification as Record<string, unknown>;
  assert.deepEqual(notif.attributes, ['name']);
  assert.equal(notif.timesSent, 2);
  assert.equal(notif.status, 'failed');
});

test('create: invalid payloads answer BadRequestData with a useful detail', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ notification: ep }, /entities or watchedAttributes/],
    [{ entities: [{ type: 'Building' }] }, /notification/],
    [{ entities: [{ type: 'Building' }], timeInterval: 10, throttling: 30, notification: ep }, /timeInterval and throttling/],
    [{ entities: [{ type: 'Building' }], throttling: -1, notification: ep }, /throttling/],
    [{ watchedAttributes: ['a'], timeInterval: 10, notification: ep }, /timeInterval and watchedAttributes/],
    [{ entities: [{ id: 'urn:x:1' }], notification: ep }, /type is mandatory/],
    [{ entities: [{ type: 'B', id: 'not a uri' }], notification: ep }, /id must be a URI/],
    [{ entities: [{ type: 'B', idPattern: '(' }], notification: ep }, /idPattern/],
    [{ entities: [{ type: 'B' }], notificationTrigger: ['bogus'], notification: ep }, /notificationTrigger/],
    [{ entities: [{ type: 'B' }], expiresAt: '2020-01-01T00:00:00Z', notification: ep }, /future/],
    [{ entities: [{ type: 'B' }], q: 'a==', notification: ep }, /./],
    [{ entities: [{ type: 'B' }], geoQ: { georel: 'near', geometry: 'Point', coordinates: [1, 2] }, notification: ep }, /georel/],
    [{ entities: [{ type: 'B' }], notification: { endpoint: { uri: 'ftp://x/y' } } }, /scheme/],
    [{ entities: [{ type: 'B' }], notification: { endpoint: { uri: 'http://x/y', accept: 'text/plain' } } }, /accept/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, format: 'keyValues', showChanges: true } }, /showChanges/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, format: 'simplified', showChanges: true } }, /showChanges/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, attributes: [] } }, /empty/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, pick: [] } }, /empty/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, pick: ['name'], attributes: ['name'] } }, /cannot be combined/],
    [{ entities: [{ type: 'B' }], notification: { ...ep, pick: ['name'], omit: ['name'] } }, /both name/],
    [{ entities: [{ type: 'B' }], notification: { endpoint: { uri: 'http://x/y', receiverInfo: [{ key: 'K', value: 42 }] } } }, /KeyValuePair/],
    [{ entities: [{ type: 'B' }], notification: { endpoint: { uri: 'http://x/y', receiverInfo: [{ key: 'K' }] } } }, /KeyValuePair/],
    [{ entities: [{ type: 'B' }], notification: { endpoint: { uri: 'mqtt://h/t', notifierInfo: [{ key: 'MQTT-QoS', value: '3' }] } } }, /MQTT-QoS/],
  ];
  for (const [p, re] of cases) {
    assert.throws(
      () => make(p),
      (e: Error & { kind?: string }) => {
        assert.ok(['BadRequestData', 'TooComplexQuery'].includes(e.kind ?? ''), `${JSON.stringify(p)} -> ${e.kind}`);
        assert.match(e.message, re, JSON.stringify(p));
        return true;
      },
    );
  }
  assert.throws(() => parseSubscription({ type: 'Sub' }, deps, { tenant: '', newId: () => 'urn:x' }), /type must be/);
  assert.throws(() => parseSubscription({ type: 'Subscription', id: 'bad id' }, deps, { tenant: '', newId: () => 'urn:x' }), /URI/);
});

test('update: status transitions, null removal, merge of notification', () => {
  const s = base({ expiresAt: '2026-06-01T00:00:00Z' });
  const paused = applySubscriptionUpdate(s, { isActive: false }, deps);
  assert.equal(subscriptionStatus(paused, NOW), 'paused');
  assert.equal(subscriptionStatus(applySubscriptionUpdate(paused, { isActive: true }, deps), NOW), 'active');
  assert.equal(subscriptionStatus(s, Date.parse('2026-07-01T00:00:00Z')), 'expired');
  assert.throws(() => applySubscriptionUpdate(s, { expiresAt: '2020-01-01T00:00:00Z' }, deps), /future/);
  assert.throws(() => applySubscriptionUpdate(s, { notification: null }, deps), /mandatory/);
  assert.throws(() => applySubscriptionUpdate(s, { notification: { endpoint: null } }, deps), /mandatory/);
  assert.throws(() => applySubscriptionUpdate(s, { entities: null }, deps), /entities or watchedAttributes/);
  // 5.8.2: notification in a fragment replaces the whole NotificationParams, so its endpoint is mandatory
  assert.throws(() => applySubscriptionUpdate(s, { notification: { format: 'keyValues' } }, deps), /endpoint is mandatory/);
  const u = applySubscriptionUpdate(
    s,
    { notification: { format: 'keyValues', attributes: ['speed'], endpoint: { uri: 'http://localhost:1111/notify' } }, expiresAt: null, q: 'speed>10' },
    deps,
  );
  assert.equal(u.notification.format, 'keyValues');
  assert.deepEqual(u.notification.attributes, [V + 'speed']);
  assert.equal(u.notification.endpoint.uri, 'http://localhost:1111/notify');
  assert.equal(u.expiresAt, undefined);
  assert.equal(u.q, 'speed>10');
});

// ------------------------------------------------------------------------------------------ matching

const m = (s: Subscription, e: ChangeEvent, now = NOW) => matchEvent(s, e, compileFilters(s, expandTerm), now);

test('matching: entity selectors (id, idPattern, type, type selection)', () => {
  const a = ent('urn:ngsi-ld:Building:1', { name: 'A' });
  const create = ev('create', undefined, a);
  assert.ok(m(base(), create));
  assert.equal(m(make({ entities: [{ type: 'Vehicle' }], notification: ep }), create), null);
  assert.ok(m(make({ entities: [{ type: 'Vehicle,Building' }], notification: ep }), create));
  assert.equal(m(make({ entities: [{ type: 'Vehicle;Building' }], notification: ep }), create), null);
  assert.ok(m(make({ entities: [{ type: 'Building', id: 'urn:ngsi-ld:Building:1' }], notification: ep }), create));
  assert.equal(m(make({ entities: [{ type: 'Building', id: 'urn:ngsi-ld:Building:2' }], notification: ep }), create), null);
  assert.ok(m(make({ entities: [{ type: 'Building', idPattern: 'Building:[0-9]$' }], notification: ep }), create));
  assert.equal(m(make({ entities: [{ type: 'Building', idPattern: '^x' }], notification: ep }), create), null);
  // tenant isolation
  assert.equal(m(base(), { ...create, tenant: 'other' }), null);
  // only watchedAttributes: any entity
  assert.ok(m(make({ watchedAttributes: ['name'], notification: ep }), create));
});

test('matching: notificationTrigger per kind of change', () => {
  const b = ent('urn:ngsi-ld:Building:1', { name: 'A', height: 10 });
  const b2 = ent('urn:ngsi-ld:Building:1', { name: 'B', height: 10, color: 'red' });
  const upd = ev('update', b, b2, [V + 'name', V + 'color']);
  assert.deepEqual(classifyChanges(upd), { created: [V + 'color'], updated: [V + 'name'], deleted: [] });
  const del = ev('update', b, ent('urn:ngsi-ld:Building:1', { name: 'A' }), [V + 'height'], [V + 'height']);
  const trig = (t: string[]) => make({ entities: [{ type: 'Building' }], notificationTrigger: t, notification: ep });
  assert.equal(m(base(), ev('create', undefined, b))!.trigger, 'attributeCreated');
  assert.equal(m(trig(['entityCreated']), ev('create', undefined, b))!.trigger, 'entityCreated');
  assert.equal(m(trig(['entityUpdated']), ev('create', undefined, b)), null);
  assert.equal(m(trig(['entityUpdated']), upd)!.trigger, 'entityUpdated');
  assert.equal(m(trig(['attributeUpdated']), upd)!.trigger, 'attributeUpdated');
  assert.equal(m(trig(['attributeCreated']), upd)!.trigger, 'attributeCreated');
  assert.equal(m(trig(['attributeDeleted']), upd), null);
  assert.equal(m(trig(['attributeDeleted']), del)!.trigger, 'attributeDeleted');
  assert.equal(m(base(), del), null);
  assert.equal(m(trig(['entityDeleted']), ev('delete', b, undefined))!.trigger, 'entityDeleted');
  assert.equal(m(base(), ev('delete', b, undefined)), null);
});

test('matching: watchedAttributes', () => {
  const b = ent('urn:ngsi-ld:Building:1', { name: 'A', height: 10 });
  const s = make({ entities: [{ type: 'Building' }], watchedAttributes: ['height'], notification: ep });
  assert.equal(m(s, ev('update', b, ent(b.id, { name: 'B', height: 10 }), [V + 'name'])), null);
  const r = m(s, ev('update', b, ent(b.id, { name: 'B', height: 11 }), [V + 'name', V + 'height']));
  assert.deepEqual(r?.updated, [V + 'height']);
});

test('matching: q, geoQ and scopeQ filters on the entity after the change', () => {
  const b = ent('urn:ngsi-ld:Building:1', { name: 'A', height: 10 });
  const tall = ent(b.id, { name: 'A', height: 50 });
  const s = base({ q: 'height>20' });
  assert.equal(m(s, ev('update', b, ent(b.id, { name: 'A', height: 11 }), [V + 'height'])), null);
  assert.ok(m(s, ev('update', b, tall, [V + 'height'])));
  const loc = (x: number, y: number) => ({ type: 'GeoProperty', value: { type: 'Point', coordinates: [x, y] } });
  const g = base({ geoQ: { georel: 'near;maxDistance==2000', geometry: 'Point', coordinates: [2.2945, 48.8584] } });
  const near = ent(b.id, { location: loc(2.295, 48.858) });
  const far = ent(b.id, { location: loc(-8.5, 41.2) });
  assert.ok(m(g, ev('create', undefined, near)));
  assert.equal(m(g, ev('create', undefined, far)), null);
  const w = base({ geoQ: { georel: 'within', geometry: 'Polygon', coordinates: '[[[2,48],[3,48],[3,49],[2,49],[2,48]]]' } });
  assert.ok(m(w, ev('create', undefined, near)));
  assert.equal(m(w, ev('create', undefined, far)), null);
  const sc = base({ scopeQ: '/Madrid/#' });
  assert.ok(m(sc, ev('create', undefined, ent(b.id, { name: 'A' }, 'Building', { scope: ['/Madrid/Centro'] }))));
  assert.equal(m(sc, ev('create', undefined, ent(b.id, { name: 'A' }, 'Building', { scope: ['/Paris'] }))), null);
});

test('matching: inactive, expired and periodic subscriptions do not fire on changes', () => {
  const b = ent('urn:ngsi-ld:Building:1', { name: 'A' });
  const c = ev('create', undefined, b);
  assert.equal(m(base({ isActive: false }), c), null);
  assert.equal(m(base({ expiresAt: '2026-01-02T00:00:00Z' }), c, Date.parse('2026-01-03T00:00:00Z')), null);
  assert.equal(m(base({ timeInterval: 5 }), c), null);
});

test('throttling and periodic scheduling decisions', () => {
  assert.deepEqual(throttleDecision(undefined, NOW, NOW), { send: true });
  assert.deepEqual(throttleDecision(10, undefined, NOW), { send: true });
  assert.deepEqual(throttleDecision(10, NOW, NOW + 3000), { send: false, at: NOW + 10_000 });
  assert.deepEqual(throttleDecision(10, NOW, NOW + 10_000), { send: true });
  assert.equal(nextPeriodic(5, undefined, NOW), NOW);
  assert.equal(nextPeriodic(5, NOW, NOW + 1000), NOW + 5000);
  assert.equal(nextPeriodic(5, NOW, NOW + 9000), NOW + 9000);
});

// ------------------------------------------------------------------------------------------- shaping

test('shaping: showChanges, deleted attributes and deleted entities carry null markers', () => {
  const before = ent('urn:ngsi-ld:Building:1', {
    name: 'Eiffel Tower',
    street: { type: 'LanguageProperty', languageMap: { fr: 'Grand Place' } },
    locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:Paris' },
  });
  const after = ent(before.id, { name: 'Tour Eiffel', locatedAt: { type: 'Relationship', object: 'urn:ngsi-ld:City:Paris' } });
  const s = base({ notificationTrigger: ['attributeUpdated', 'attributeDeleted'], notification: { ...ep, showChanges: true } });
  const e = ev('update', before, after, [V + 'name', V + 'street'], [V + 'street']);
  const r = m(s, e)!;
  assert.equal(r.trigger, 'attributeDeleted');
  const out = shapeEntity(s, e, r);
  assert.equal(out.attrs[V + 'name'][0].value, 'Tour Eiffel');
  assert.equal(out.attrs[V + 'name'][0].previousValue, 'Eiffel Tower');
  assert.deepEqual(out.attrs[V + 'street'][0].languageMap, { '@none': 'urn:ngsi-ld:null' });
  assert.deepEqual(out.attrs[V + 'street'][0].previousLanguageMap, { fr: 'Grand Place' });
  assert.equal(out.attrs[V + 'locatedAt'][0].previousObject, undefined);

  const sd = base({ notificationTrigger: ['entityDeleted'], notification: { ...ep, attributes: ['locatedAt'] } });
  const de = ev('delete', before, undefined);
  const od = shapeEntity(sd, de, m(sd, de)!);
  // entityDeleted: id, type and deletedAt only
  assert.equal(od.deletedAt, de.at);
  assert.deepEqual(Object.keys(od.attrs), []);
  // attributeDeleted on an entity deletion: the watched attributes as null markers
  const sa = base({ notificationTrigger: ['attributeDeleted'], watchedAttributes: ['locatedAt'], notification: { ...ep } });
  const oa = shapeEntity(sa, de, m(sa, de)!);
  assert.equal(oa.deletedAt, de.at);
  assert.deepEqual(Object.keys(oa.attrs), [V + 'locatedAt']);
  assert.equal(oa.attrs[V + 'locatedAt'][0].object, 'urn:ngsi-ld:null');
  assert.equal(oa.attrs[V + 'locatedAt'][0].deletedAt, de.at);
});

test('shaping: datasetId filter keeps only the subscribed instances', () => {
  const e = ent('urn:ngsi-ld:Building:1', {});
  e.attrs[V + 'name'] = [
    { type: 'Property', value: 'default' },
    { type: 'Property', value: 'fr', datasetId: 'urn:ngsi-ld:Dataset:french-name' },
  ];
  const s = base({ datasetId: ['urn:ngsi-ld:Dataset:french-name'] });
  const c = ev('create', undefined, e);
  const out = shapeEntity(s, c, m(s, c)!);
  assert.deepEqual(out.attrs[V + 'name'].map((i) => i.value), ['fr']);
});

test('notification body, headers per accept, receiverInfo and MQTT shape', () => {
  const s = base({
    notification: {
      endpoint: { uri: 'http://localhost:1111/notify', accept: 'application/json', receiverInfo: [{ key: 'X-Additional-Key', value: 'Value' }] },
    },
  });
  const h = notificationHeaders(s, 'https://example.org/ctx.jsonld');
  assert.equal(h['Content-Type'], 'application/json');
  assert.match(h.Link, /<https:\/\/example.org\/ctx.jsonld>; rel="http:\/\/www.w3.org\/ns\/json-ld#context"/);
  assert.equal(h['X-Additional-Key'], 'Value');
  const ld = base({ notification: { endpoint: { uri: 'http://x/n', accept: 'application/ld+json' } } });
  assert.equal(notificationHeaders(ld, 'https://example.org/ctx.jsonld').Link, undefined);
  const body = notificationBody({
    id: 'urn:ngsi-ld:Notification:1',
    subscriptionId: s.id,
    notifiedAt: '2026-01-01T00:00:00.000Z',
    data: [{ id: 'urn:x:1', type: 'B', location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [1, 2] } } }],
    accept: 'application/ld+json',
    context: 'https://example.org/ctx.jsonld',
  });
  assert.equal(body['@context'], 'https://example.org/ctx.jsonld');
  assert.equal(body.type, 'Notification');
  const geo = notificationBody({ ...body, data: body.data as Record<string, unknown>[], accept: 'application/geo+json' });
  const fc = geo.data[0] as { type: string; features: { geometry: unknown }[] };
  assert.equal(fc.type, 'FeatureCollection');
  assert.deepEqual(fc.features[0].geometry, { type: 'Point', coordinates: [1, 2] });
  const mq = mqttPayload(h, body);
  assert.equal(mq.metadata['Content-Type'], 'application/json');
  assert.equal(mq.metadata['X-Additional-Key'], 'Value');
  assert.equal(mq.body, body);
});

test('MQTT metadata keeps receiverInfo keys as written; subscription q is percent-decoded like a query parameter', () => {
  const mq = mqttPayload({ 'content-type': 'application/json', link: '<https://ctx>', 'test-receiver-key': 'v' }, {
    id: 'urn:n:1', type: 'Notification', subscriptionId: 'urn:s:1', notifiedAt: '2026-01-01T00:00:00.000Z', data: [],
  });
  assert.deepEqual(mq.metadata, { 'Content-Type': 'application/json', Link: '<https://ctx>', 'test-receiver-key': 'v' });
  assert.equal(decodeQ('name=="Eiffel%20Tower"'), 'name=="Eiffel Tower"');
  assert.equal(decodeQ('name=="100%"'), 'name=="100%"');
  assert.equal(decodeQ('a==1;b==2'), 'a==1;b==2');
});

test('notification JSON from a shared tail is the notification body', () => {
  const data = [{ id: 'urn:ngsi-ld:X:1', type: 'X', location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [1, 2] } } }];
  for (const accept of ['application/json', 'application/ld+json', 'application/geo+json'] as const) {
    const context = 'https://example.org/ctx.jsonld';
    const tail = notificationTail(JSON.stringify(notificationData(data, accept, context)), accept, context);
    const json = fanoutBody(7, 2, 'urn:ngsi-ld:Subscription:s', Date.parse('2026-03-01T00:00:00Z'), tail);
    assert.deepEqual(
      JSON.parse(json),
      nBody({ id: 'urn:ngsi-ld:Notification:7-2', subscriptionId: 'urn:ngsi-ld:Subscription:s', notifiedAt: '2026-03-01T00:00:00.000Z', data, accept, context }),
    );
  }
});

test('candidate index: by id, by type, catch-all; periodic left out; removal', () => {
  const ix = new CandidateIndex();
  const sub = (id: string, entities?: { id?: string; idPattern?: string; type: string; typeExpr: string[][] }[], extra: Record<string, unknown> = {}) =>
    ({ id, tenant: '', entities, ...extra }) as unknown as Parameters<CandidateIndex['add']>[1];
  ix.add('byId', sub('byId', [{ id: 'urn:e:1', type: 'T', typeExpr: [['T']] }]));
  ix.add('byType', sub('byType', [{ type: 'T', typeExpr: [['A', 'T'], ['U']] }]));
  ix.add('pattern', sub('pattern', [{ idPattern: '.*', type: 'U', typeExpr: [['U']] }]));
  ix.add('watch', sub('watch'));
  ix.add('periodic', sub('periodic', [{ type: 'T', typeExpr: [['T']] }], { timeInterval: 10 }));
  const c = (id: string, types: string[], tenant = '') => [...ix.candidates(tenant, id, types)].sort();
  assert.deepEqual(c('urn:e:1', ['T']), ['byId', 'watch']);
  assert.deepEqual(c('urn:e:2', ['A']), ['byType', 'watch']);
  assert.deepEqual(c('urn:e:2', ['U']), ['byType', 'pattern', 'watch']);
  assert.deepEqual(c('urn:e:1', ['T'], 'other'), []);
  ix.delete('watch');
  ix.delete('byType');
  assert.deepEqual(c('urn:e:2', ['U']), ['pattern']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { testPlatform } from '../helpers/server.ts';
import { subscriptionsModule } from '../../src/subscriptions/module.ts';

test('subscriptions API: CRUD, validation, notification on entity change with counters', async () => {
  const bodies: Record<string, unknown>[] = [];
  let onBody: (() => void) | undefined;
  const rx = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      bodies.push({ headers: req.headers, body: JSON.parse(b) });
      res.statusCode = 200;
      res.end();
      onBody?.();
    });
  }).listen(0);
  await once(rx, 'listening');
  const port = (rx.address() as AddressInfo).port;
  const s = await testPlatform({ modules: [subscriptionsModule] });
  try {
    const sub = {
      id: 'urn:ngsi-ld:Subscription:api1',
      type: 'Subscription',
      entities: [{ type: 'Building' }],
      notification: { format: 'keyValues', endpoint: { uri: `http://127.0.0.1:${port}/notify`, accept: 'application/json' } },
    };
    let r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 201, r.body);
    r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 409);
    r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: { ...sub, id: 'urn:x:2', throttling: -1 }, headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 400);
    assert.match(r.json().type, /BadRequestData/);

    const got = new Promise<void>((res) => (onBody = res));
    await s.platform.broker.createEntity('', { id: 'urn:ngsi-ld:Building:1', type: 'Building', name: { type: 'Property', value: 'Eiffel' } });
    await got;
    const n = bodies[0].body as Record<string, unknown>;
    assert.equal(n.type, 'Notification');
    assert.equal(n.subscriptionId, sub.id);
    assert.deepEqual((n.data as Record<string, unknown>[])[0], { id: 'urn:ngsi-ld:Building:1', type: 'Building', name: 'Eiffel' });
    const svc = s.platform.services.get('subscriptions') as { dispatcher: { idle(): Promise<void> } };
    await svc.dispatcher.idle();

    r = await s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${sub.id}` });
    assert.equal(r.statusCode, 200);
    const got2 = r.json();
    assert.equal(got2.status, 'active');
    assert.equal(got2.notification.timesSent, 1);
    assert.equal(got2.notification.status, 'ok');
    assert.deepEqual(got2.entities, [{ type: 'Building' }]);

    r = await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/subscriptions/${sub.id}`, payload: { isActive: false }, headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 204);
    assert.equal((await s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${sub.id}` })).json().status, 'paused');
    assert.equal((await s.inject({ method: 'GET', url: '/ngsi-ld/v1/subscriptions' })).json().length, 1);
    assert.equal((await s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/subscriptions/${sub.id}` })).statusCode, 204);
    assert.equal((await s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${sub.id}` })).statusCode, 404);
  } finally {
    await s.close();
    rx.close();
  }
});

test('subscriptions API: a notification sent but not answered yet already counts in timesSent', async () => {
  // the receiver holds its answer: a client acting on the notification may ask before it answers
  let hold: (() => void) | undefined;
  let onRequest: (() => void) | undefined;
  const rx = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hold = () => res.writeHead(204).end();
      onRequest?.();
    });
  }).listen(0);
  await once(rx, 'listening');
  const port = (rx.address() as AddressInfo).port;
  const s = await testPlatform({ modules: [subscriptionsModule] });
  try {
    const id = 'urn:ngsi-ld:Subscription:inflight';
    const sub = { id, type: 'Subscription', entities: [{ type: 'Building' }], notification: { endpoint: { uri: `http://127.0.0.1:${port}/n`, accept: 'application/json' } } };
    assert.equal((await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: { 'content-type': 'application/json' } })).statusCode, 201);
    const requested = new Promise<void>((res) => (onRequest = res));
    await s.platform.broker.createEntity('', { id: 'urn:ngsi-ld:Building:held', type: 'Building', name: { type: 'Property', value: 'x' } });
    await requested;
    let n = (await s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${id}` })).json().notification;
    assert.equal(n.timesSent, 1);
    assert.ok(n.lastNotification);
    assert.equal(n.lastSuccess, undefined);
    hold!();
    const svc = s.platform.services.get('subscriptions') as { dispatcher: { idle(): Promise<void> } };
    await svc.dispatcher.idle();
    n = (await s.inject({ method: 'GET', url: `/ngsi-ld/v1/subscriptions/${id}` })).json().notification;
    assert.equal(n.timesSent, 1); // counted once, not again when answered
    assert.ok(n.lastSuccess);
  } finally {
    await s.close();
    rx.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { testPlatform } from '../helpers/server.ts';
import { subscriptionsModule } from '../../src/subscriptions/module.ts';
import { FakeClock } from '../../src/common/clock.ts';

/** Throttling, periodic notifications and durability on acknowledgement, on a FakeClock. */

async function receiver() {
  const bodies: Record<string, unknown>[] = [];
  const rx = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      bodies.push(JSON.parse(b));
      res.end();
    });
  }).listen(0);
  await once(rx, 'listening');
  return { bodies, url: `http://127.0.0.1:${(rx.address() as AddressInfo).port}/notify`, close: () => rx.close() };
}

async function waitFor(pred: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Svc = { dispatcher: { idle(): Promise<void> }; outbox: { pendingCount(): Promise<number> } };
const JSON_CT = { 'content-type': 'application/json' };

test('throttling delays notifications (outbox next_at) and drops none', async () => {
  const rx = await receiver();
  const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
  const s = await testPlatform({ modules: [subscriptionsModule], clock });
  try {
    const sub = {
      id: 'urn:ngsi-ld:Subscription:thr',
      type: 'Subscription',
      entities: [{ type: 'Sensor' }],
      throttling: 10,
      notification: { format: 'keyValues', endpoint: { uri: rx.url, accept: 'application/json' } },
    };
    assert.equal((await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: JSON_CT })).statusCode, 201);
    const svc = s.platform.services.get('subscriptions') as Svc;
    const b = s.platform.broker;
    await b.createEntity('', { id: 'urn:ngsi-ld:Sensor:1', type: 'Sensor', t: { type: 'Property', value: 1 } });
    await b.updateAttrs('', 'urn:ngsi-ld:Sensor:1', { t: { type: 'Property', value: 2 } });
    await b.updateAttrs('', 'urn:ngsi-ld:Sensor:1', { t: { type: 'Property', value: 3 } });
    await waitFor(() => rx.bodies.length === 1);
    await svc.dispatcher.idle();
    assert.equal(rx.bodies.length, 1, 'the second and third wait for their throttling slot');
    assert.equal(await svc.outbox.pendingCount(), 2);
    clock.advance(9_999);
    await svc.dispatcher.idle();
    assert.equal(rx.bodies.length, 1);
    clock.advance(1);
    await waitFor(() => rx.bodies.length === 2);
    clock.advance(10_000);
    await waitFor(() => rx.bodies.length === 3);
    const values = rx.bodies.map((n) => ((n.data as Record<string, unknown>[])[0].t as number));
    assert.deepEqual(values, [1, 2, 3], 'in order, nothing dropped');
  } finally {
    await s.close();
    rx.close();
  }
});

test('periodic notifications (timeInterval) follow the clock with the current state', async () => {
  const rx = await receiver();
  const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
  const s = await testPlatform({ modules: [subscriptionsModule], clock });
  try {
    const b = s.platform.broker;
    await b.createEntity('', { id: 'urn:ngsi-ld:Sensor:p1', type: 'Sensor', t: { type: 'Property', value: 20 } });
    await b.createEntity('', { id: 'urn:ngsi-ld:Sensor:p2', type: 'Sensor', t: { type: 'Property', value: 5 } });
    const sub = {
      id: 'urn:ngsi-ld:Subscription:per',
      type: 'Subscription',
      entities: [{ type: 'Sensor' }],
      q: 't>10',
      timeInterval: 60,
      notification: { format: 'keyValues', endpoint: { uri: rx.url, accept: 'application/json' } },
    };
    assert.equal((await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: JSON_CT })).statusCode, 201);
    clock.advance(0);
    await waitFor(() => rx.bodies.length === 1);
    assert.deepEqual((rx.bodies[0].data as Record<string, unknown>[]).map((e) => e.id), ['urn:ngsi-ld:Sensor:p1']);
    // a change does not notify a periodic subscription by itself
    await b.updateAttrs('', 'urn:ngsi-ld:Sensor:p2', { t: { type: 'Property', value: 50 } });
    clock.advance(59_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rx.bodies.length, 1);
    clock.advance(1_000);
    await waitFor(() => rx.bodies.length === 2);
    assert.deepEqual((rx.bodies[1].data as Record<string, unknown>[]).map((e) => e.id).sort(), ['urn:ngsi-ld:Sensor:p1', 'urn:ngsi-ld:Sensor:p2']);
    // paused: no tick; deleted: timer gone
    await s.inject({ method: 'PATCH', url: `/ngsi-ld/v1/subscriptions/${sub.id}`, payload: { isActive: false }, headers: JSON_CT });
    clock.advance(120_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rx.bodies.length, 2);
    await s.inject({ method: 'DELETE', url: `/ngsi-ld/v1/subscriptions/${sub.id}` });
  } finally {
    await s.close();
    rx.close();
  }
});

test('the outbox row exists when the write is acknowledged (receiver down)', async () => {
  const clock = new FakeClock(Date.parse('2026-03-01T00:00:00Z'));
  const s = await testPlatform({ modules: [subscriptionsModule], clock });
  try {
    const sub = {
      id: 'urn:ngsi-ld:Subscription:dur',
      type: 'Subscription',
      entities: [{ type: 'Sensor' }],
      notification: { endpoint: { uri: 'http://127.0.0.1:1/down', accept: 'application/json' } },
    };
    assert.equal((await s.inject({ method: 'POST', url: '/ngsi-ld/v1/subscriptions', payload: sub, headers: JSON_CT })).statusCode, 201);
    const svc = s.platform.services.get('subscriptions') as Svc;
    const r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', payload: { id: 'urn:ngsi-ld:Sensor:d', type: 'Sensor', t: 1 }, headers: JSON_CT });
    assert.equal(r.statusCode, 201);
    assert.equal(await svc.outbox.pendingCount(), 1, 'stored before the 201');
  } finally {
    await s.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { connectAsync } from 'mqtt';
import { openPglite } from '../../src/store/pglite.ts';
import { FakeClock } from '../../src/common/clock.ts';
import { Outbox, backoffDelay, DEFAULT_BACKOFF, type OutboxItem, type OutboxRow } from '../../src/subscriptions/delivery/outbox.ts';
import { Dispatcher, type DeliveryResult } from '../../src/subscriptions/delivery/dispatcher.ts';
import { HttpNotifier } from '../../src/subscriptions/delivery/http-notifier.ts';
import { MqttNotifier, parseMqttEndpoint } from '../../src/subscriptions/delivery/mqtt-notifier.ts';
import { DeliveryError, SchemeRouter, type Notifier } from '../../src/subscriptions/delivery/notifier.ts';

const item = (sub: string, i: number, endpoint = 'http://receiver/notify'): OutboxItem => ({
  tenant: '',
  subscriptionId: sub,
  endpoint,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ sub, i }),
});

async function freshOutbox(policy = DEFAULT_BACKOFF) {
  const db = await openPglite();
  const ob = new Outbox(db, policy, () => 0.5);
  await ob.migrate();
  return { db, ob };
}

/** Notifier double: records deliveries, fails while `down` says so. */
class FakeNotifier implements Notifier {
  sent: { sub: string; i: number }[] = [];
  down = new Set<string>();
  async send(msg: OutboxRow) {
    const b = JSON.parse(msg.body) as { sub: string; i: number };
    if (this.down.has(b.sub)) throw new DeliveryError('HTTP 503', 503);
    this.sent.push(b);
  }
  async close() {}
}

test('backoff grows exponentially with bounded jitter', () => {
  const p = { baseMs: 1000, maxMs: 60_000, maxAttempts: 5, jitter: 0.5 };
  assert.equal(backoffDelay(1, p, () => 1), 1000);
  assert.equal(backoffDelay(1, p, () => 0), 500);
  assert.equal(backoffDelay(3, p, () => 1), 4000);
  assert.equal(backoffDelay(20, p, () => 1), 60_000);
});

test('outbox: claims keep per-subscription order and never run one subscription twice', async () => {
  const { db, ob } = await freshOutbox();
  const now = 1_000_000;
  await ob.enqueue([item('a', 1), item('b', 1), item('a', 2), item('a', 3), item('b', 2)], now);
  const c1 = await ob.claim(now, { perSub: 2 });
  assert.deepEqual(c1.map((r) => `${r.subscriptionId}${JSON.parse(r.body).i}`), ['a1', 'b1', 'a2', 'b2']);
  // everything of a and b is leased: nothing more to claim
  assert.equal((await ob.claim(now)).length, 0);
  await ob.ack(c1.filter((r) => r.subscriptionId === 'a').map((r) => r.seq));
  const c2 = await ob.claim(now);
  assert.deepEqual(c2.map((r) => `${r.subscriptionId}${JSON.parse(r.body).i}`), ['a3']);
  // expired leases come back
  const c3 = await ob.claim(now + 120_000);
  assert.deepEqual(c3.map((r) => `${r.subscriptionId}${JSON.parse(r.body).i}`), ['b1', 'a3', 'b2']);
  await db.close();
});

test('outbox: failures back off, block the subscription head, then dead-letter', async () => {
  const { db, ob } = await freshOutbox({ baseMs: 1000, maxMs: 10_000, maxAttempts: 3, jitter: 0 });
  const now = 1_000_000;
  await ob.enqueue([item('a', 1), item('a', 2)], now);
  let [r] = await ob.claim(now, { perSub: 1 });
  let out = await ob.fail([{ seq: r.seq, attempts: r.attempts, error: 'HTTP 500' }], now);
  assert.deepEqual(out[0].nextAt, now + 1000);
  assert.equal((await ob.claim(now + 999)).length, 0, 'a2 must wait behind a1');
  [r] = await ob.claim(now + 1000, { perSub: 1 });
  assert.equal(JSON.parse(r.body).i, 1);
  out = await ob.fail([{ seq: r.seq, attempts: r.attempts, error: 'HTTP 500' }], now + 1000);
  assert.equal(out[0].nextAt, now + 3000);
  [r] = await ob.claim(now + 3000, { perSub: 1 });
  out = await ob.fail([{ seq: r.seq, attempts: r.attempts, error: 'HTTP 500' }], now + 3000);
  assert.equal(out[0].dead, true);
  assert.equal((await ob.deadLetters('', 'a')).length, 1);
  const next = await ob.claim(now + 3000);
  assert.deepEqual(next.map((x) => JSON.parse(x.body).i), [2]);
  assert.equal(await ob.redrive('', 'a', now + 4000), 1);
  await db.close();
});

test('dispatcher: retry after a failing endpoint comes back, in order, with counters', async () => {
  const { db, ob } = await freshOutbox({ baseMs: 1000, maxMs: 60_000, maxAttempts: 10, jitter: 0 });
  const clock = new FakeClock(1_000_000);
  const n = new FakeNotifier();
  const results: DeliveryResult[] = [];
  const d = new Dispatcher(ob, n, clock, { onResults: (r) => void results.push(...r) });
  await d.start();
  n.down.add('a');
  await ob.enqueue([item('a', 1), item('b', 1), item('a', 2), item('b', 2)], clock.now());
  d.kick();
  await d.idle();
  assert.deepEqual(n.sent, [{ sub: 'b', i: 1 }, { sub: 'b', i: 2 }]);
  assert.equal(results.filter((r) => !r.ok).length, 1);
  clock.advance(1000); // first retry: still down
  await d.idle();
  assert.equal(results.filter((r) => !r.ok).length, 2);
  n.down.delete('a');
  clock.advance(1999);
  await d.idle();
  assert.equal(n.sent.length, 2, 'not before the backoff elapsed');
  clock.advance(1);
  await d.idle();
  assert.deepEqual(n.sent.slice(2), [{ sub: 'a', i: 1 }, { sub: 'a', i: 2 }]);
  assert.equal(await ob.pendingCount(), 0);
  await d.stop();
  await db.close();
});

test('dispatcher: dead letter after the retry budget, the rest of the subscription goes on', async () => {
  const { db, ob } = await freshOutbox({ baseMs: 100, maxMs: 100, maxAttempts: 2, jitter: 0 });
  const clock = new FakeClock(1_000_000);
  const n: Notifier = {
    async send(m) {
      if (JSON.parse(m.body).i === 1) throw new DeliveryError('HTTP 400', 400);
    },
    async close() {},
  };
  const results: DeliveryResult[] = [];
  const d = new Dispatcher(ob, n, clock, { onResults: (r) => void results.push(...r) });
  await d.start();
  await ob.enqueue([item('a', 1), item('a', 2)], clock.now());
  d.kick();
  await d.idle();
  clock.advance(100);
  await d.idle();
  assert.ok(results.some((r) => r.dead));
  assert.ok(results.some((r) => r.ok));
  assert.equal((await ob.deadLetters('', 'a')).length, 1);
  await d.stop();
  await db.close();
});

test('restart with a pending outbox: nothing is lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'urbis-outbox-'));
  try {
    let db = await openPglite(dir);
    let ob = new Outbox(db);
    await ob.migrate();
    await ob.enqueue([item('a', 1), item('a', 2), item('b', 1)], 1000);
    await ob.claim(1000); // claimed, then the process "dies" before acknowledging
    await db.close();

    db = await openPglite(dir);
    ob = new Outbox(db);
    await ob.migrate();
    const n = new FakeNotifier();
    const d = new Dispatcher(ob, n, new FakeClock(2000));
    await d.start();
    await d.idle();
    assert.deepEqual(
      n.sent.map((s) => `${s.sub}${s.i}`).sort(),
      ['a1', 'a2', 'b1'],
    );
    assert.equal(await ob.pendingCount(), 0);
    await d.stop();
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HTTP notifier: keep-alive pool, headers and status handling', async () => {
  const got: { headers: IncomingMessage['headers']; body: string; socket: unknown }[] = [];
  let fail = false;
  const srv = createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: b, socket: req.socket });
      res.statusCode = fail ? 500 : 204;
      res.end();
    });
  });
  srv.listen(0);
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  const hn = new HttpNotifier({ connections: 1 });
  const row = (i: number): OutboxRow => ({
    seq: i,
    attempts: 0,
    createdAt: 0,
    tenant: '',
    subscriptionId: 's',
    endpoint: `http://127.0.0.1:${port}/notify?x=1`,
    headers: { 'content-type': 'application/json', link: '<https://ctx>; rel="http://www.w3.org/ns/json-ld#context"', 'x-additional-key': 'Value' },
    body: `{"i":${i}}`,
  });
  await hn.send(row(1));
  await hn.send(row(2));
  assert.equal(got.length, 2);
  assert.equal(got[0].headers['content-type'], 'application/json');
  assert.equal(got[0].headers['x-additional-key'], 'Value');
  assert.match(String(got[0].headers.link), /json-ld#context/);
  assert.equal(got[1].body, '{"i":2}');
  assert.equal(got[0].socket, got[1].socket, 'the connection is reused');
  fail = true;
  await assert.rejects(hn.send(row(3)), /HTTP 500/);
  await hn.close();
  await assert.rejects(
    new HttpNotifier().send({ ...row(4), endpoint: 'http://127.0.0.1:1/notify', timeoutMs: 500 }),
    DeliveryError,
  );
  srv.close();
});

test('MQTT endpoint parsing: topic, QoS, version, credentials', () => {
  const e = parseMqttEndpoint('mqtt://u:p@broker.local/city/notifications', [
    { key: 'MQTT-QoS', value: '1' },
    { key: 'MQTT-Version', value: 'mqtt5.0' },
  ]);
  assert.deepEqual(e, { brokerUrl: 'mqtt://broker.local:1883', topic: 'city/notifications', qos: 1, version: 5, username: 'u', password: 'p' });
  assert.equal(parseMqttEndpoint('mqtts://h:8884/t').brokerUrl, 'mqtts://h:8884');
  assert.throws(() => parseMqttEndpoint('mqtt://h/'), /topic/);
});

async function freePort(): Promise<number> {
  const s = netServer().listen(0);
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

async function mqttRoundTrip(brokerUrl: string, version: 'mqtt3.1.1' | 'mqtt5.0', qos: string) {
  const sub = await connectAsync(brokerUrl, { protocolVersion: version === 'mqtt5.0' ? 5 : 4 } as Parameters<typeof connectAsync>[1] & object);
  await sub.subscribeAsync('urbis/notify/#', { qos: 1 });
  const received = new Promise<[string, Buffer]>((r) => sub.once('message', (t: string, b: Buffer) => r([t, b])));
  const mn = new MqttNotifier();
  const router = new SchemeRouter({ mqtt: mn });
  const u = new URL(brokerUrl);
  await router.send({
    seq: 1,
    attempts: 0,
    createdAt: 0,
    tenant: '',
    subscriptionId: 's',
    endpoint: `mqtt://${u.host}/urbis/notify/s1`,
    headers: { 'content-type': 'application/json', link: '<https://ctx>' },
    body: '{"type":"Notification","data":[]}',
    notifierInfo: [{ key: 'MQTT-QoS', value: qos }, { key: 'MQTT-Version', value: version }],
  });
  const [topic, payload] = await received;
  assert.equal(topic, 'urbis/notify/s1');
  const msg = JSON.parse(payload.toString());
  assert.deepEqual(msg.metadata, { 'Content-Type': 'application/json', Link: '<https://ctx>' });
  assert.equal(msg.body.type, 'Notification');
  await mn.close();
  await sub.endAsync();
}

test('MQTT notifier: delivery through the embedded aedes broker (QoS 0 and 1)', async () => {
  const { Aedes } = (await import('aedes')) as unknown as { Aedes: { createBroker(): Promise<{ handle: (s: unknown) => void; close(cb: () => void): void }> } };
  const broker = await Aedes.createBroker();
  const srv = netServer(broker.handle);
  srv.listen(0);
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  try {
    // aedes speaks MQTT 3.1.1 only
    await mqttRoundTrip(`mqtt://127.0.0.1:${port}`, 'mqtt3.1.1', '1');
    await mqttRoundTrip(`mqtt://127.0.0.1:${port}`, 'mqtt3.1.1', '0');
  } finally {
    srv.close();
    await new Promise<void>((r) => broker.close(() => r()));
  }
});

test('MQTT notifier: delivery through a real mosquitto broker', async (t) => {
  const which = spawnSync('sh', ['-c', 'command -v mosquitto || ls /usr/sbin/mosquitto']);
  const bin = which.stdout.toString().trim().split('\n')[0];
  if (which.status !== 0 || !bin) {
    t.skip('mosquitto is not installed (apt-get install -y mosquitto)');
    return;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'urbis-mosq-'));
  const conf = join(dir, 'm.conf');
  (await import('node:fs')).writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n`);
  const proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    // wait until it accepts connections (mosquitto logs on stderr once listening)
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      try {
        const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { connectTimeout: 200, reconnectPeriod: 0 });
        await c.endAsync();
        up = true;
      } catch {
        await once(proc.stderr!, 'data').catch(() => {});
      }
    }
    assert.ok(up, 'mosquitto came up');
    await mqttRoundTrip(`mqtt://127.0.0.1:${port}`, 'mqtt5.0', '2');
    await mqttRoundTrip(`mqtt://127.0.0.1:${port}`, 'mqtt3.1.1', '1');
  } finally {
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MQTT notifier: a pooled connection recovers after the broker refused a reconnect (restarted with other credentials)', async () => {
  type Client = { close(): void };
  type AedesBroker = {
    handle: (s: unknown) => void;
    close(cb: () => void): void;
    authenticate: (client: unknown, user: string | undefined, pass: Buffer | undefined, cb: (err: (Error & { returnCode?: number }) | null, ok: boolean) => void) => void;
    clients: Record<string, Client>;
    on(ev: 'publish', f: (packet: { topic: string; payload: Buffer }) => void): void;
  };
  const { Aedes } = (await import('aedes')) as unknown as { Aedes: { createBroker(): Promise<AedesBroker> } };
  const broker = await Aedes.createBroker();
  let refuse = false;
  broker.authenticate = (_c, _u, _p, cb) => {
    if (!refuse) return cb(null, true);
    const e = new Error('not authorized') as Error & { returnCode?: number };
    e.returnCode = 5;
    cb(e, false);
  };
  const topics: string[] = [];
  broker.on('publish', (p) => { if (p.topic.startsWith('urbis/')) topics.push(p.topic); });
  const srv = netServer(broker.handle);
  srv.listen(0);
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  const mn = new MqttNotifier();
  const row = (n: number): OutboxRow => ({
    seq: n, attempts: 0, createdAt: 0, tenant: '', subscriptionId: 's',
    endpoint: `mqtt://127.0.0.1:${port}/urbis/r${n}`, headers: {}, body: '{"type":"Notification","data":[]}',
  });
  try {
    await mn.send(row(1));
    for (let i = 0; i < 50 && topics.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    // the broker drops the connection and refuses the reconnect (CONNACK 5): mqtt.js would stop reconnecting for good
    refuse = true;
    for (const c of Object.values(broker.clients)) c.close();
    await new Promise((r) => setTimeout(r, 1500));
    refuse = false;
    await mn.send(row(2));
    for (let i = 0; i < 50 && topics.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(topics, ['urbis/r1', 'urbis/r2']);
  } finally {
    await mn.close();
    srv.close();
    await new Promise<void>((r) => broker.close(() => r()));
  }
});

// ---- fast path (fan-out rows, in-memory lanes) ----------------------------------------------------

/** A shared-tail item, as the module builds them: the body after its head is `"data":[{"i":i}]`. */
const shared = (sub: string, i: number, tail = { tail: `,"data":[{"i":${i}}]}` }): OutboxItem => ({
  tenant: '',
  subscriptionId: sub,
  endpoint: 'http://receiver/notify',
  headers: { 'content-type': 'application/json' },
  shared: tail,
});

/** Records `${subscriptionId}${data[0].i}` per delivery; fails while the subscription is in `down`. */
class BodyNotifier implements Notifier {
  sent: string[] = [];
  ids: string[] = [];
  down = new Set<string>();
  async send(msg: OutboxRow) {
    const b = JSON.parse(msg.body) as { id: string; subscriptionId: string; data: { i: number }[] };
    if (this.down.has(b.subscriptionId)) throw new DeliveryError('HTTP 503', 503);
    this.sent.push(`${b.subscriptionId}${b.data[0].i}`);
    this.ids.push(b.id);
  }
  async close() {}
}

test('fast path: one fan-out row per shared body, delivered from memory, deleted once all are sent', async () => {
  const { db, ob } = await freshOutbox();
  const clock = new FakeClock(1_000_000);
  const n = new BodyNotifier();
  const results: DeliveryResult[] = [];
  const d = new Dispatcher(ob, n, clock, { onResults: (r) => void results.push(...r) });
  await d.start();
  const t1 = { tail: ',"data":[{"i":1}]}' };
  const t2 = { tail: ',"data":[{"i":2}]}' };
  await d.submit([shared('a', 1, t1), shared('b', 1, t1), shared('c', 1, t1)]);
  // stored before submit() resolved: one row for the three
  const fan = await db.query<{ n: string }>('SELECT count(*) AS n FROM notification_fanout');
  assert.ok(Number(fan[0].n) <= 1);
  await d.submit([shared('a', 2, t2), shared('b', 2, t2)]);
  await d.idle();
  assert.deepEqual(n.sent.filter((s) => s.startsWith('a')), ['a1', 'a2']);
  assert.deepEqual(n.sent.filter((s) => s.startsWith('b')), ['b1', 'b2']);
  assert.equal(n.sent.length, 5);
  assert.equal(new Set(n.ids).size, 5, 'every notification has its own id');
  assert.equal(await ob.pendingCount(), 0);
  assert.equal(Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM notification_fanout'))[0].n), 0);
  assert.equal(results.filter((r) => r.ok).length, 5);
  await d.stop();
  await db.close();
});

test('fast path: a failing endpoint moves its notifications to the table, retried in order after backoff', async () => {
  const { db, ob } = await freshOutbox({ baseMs: 1000, maxMs: 60_000, maxAttempts: 10, jitter: 0 });
  const clock = new FakeClock(1_000_000);
  const n = new BodyNotifier();
  const results: DeliveryResult[] = [];
  const d = new Dispatcher(ob, n, clock, { onResults: (r) => void results.push(...r) });
  await d.start();
  n.down.add('a');
  await d.submit([shared('a', 1), shared('b', 1)]);
  await d.submit([shared('a', 2), shared('b', 2)]);
  await d.idle();
  assert.deepEqual(n.sent, ['b1', 'b2']);
  assert.equal(results.filter((r) => !r.ok).length, 1);
  assert.equal(await ob.pendingCount('', 'a'), 2, 'a1 (retry pending) and a2 wait in the table');
  // a new notification of a queues behind them
  await d.submit([shared('a', 3), shared('b', 3)]);
  await d.idle();
  assert.deepEqual(n.sent, ['b1', 'b2', 'b3']);
  n.down.delete('a');
  clock.advance(999);
  await d.idle();
  assert.equal(n.sent.length, 3, 'not before the backoff elapsed');
  clock.advance(1);
  await d.idle();
  assert.deepEqual(n.sent.slice(3), ['a1', 'a2', 'a3']);
  assert.equal(await ob.pendingCount(), 0);
  // a is back on the fast path once its rows are gone
  await d.submit([shared('a', 4)]);
  await d.idle();
  assert.deepEqual(n.sent.slice(6), ['a4']);
  await d.stop();
  await db.close();
});

test('fast path: restart with fan-out rows not yet delivered: nothing is lost, order holds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'urbis-fanout-'));
  try {
    let db = await openPglite(dir);
    let ob = new Outbox(db);
    await ob.migrate();
    // a receiver that never answers: the process "dies" with everything in flight
    const hang: Notifier = { send: () => new Promise(() => {}), close: async () => {} };
    const d1 = new Dispatcher(ob, hang, new FakeClock(1000));
    await d1.start();
    const t1 = { tail: ',"data":[{"i":1}]}' };
    await d1.submit([shared('a', 1, t1), shared('b', 1, t1)]);
    await d1.submit([shared('a', 2), shared('b', 2)]);
    await db.close();

    db = await openPglite(dir);
    ob = new Outbox(db);
    await ob.migrate();
    const n = new BodyNotifier();
    const d = new Dispatcher(ob, n, new FakeClock(2000));
    await d.start();
    await d.idle();
    assert.deepEqual(n.sent.filter((s) => s.startsWith('a')), ['a1', 'a2']);
    assert.deepEqual(n.sent.filter((s) => s.startsWith('b')), ['b1', 'b2']);
    assert.equal(await ob.pendingCount(), 0);
    await d.stop();
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fast path: a full lane moves the subscription to the table without reordering', async () => {
  const { db, ob } = await freshOutbox();
  const clock = new FakeClock(1_000_000);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sent: string[] = [];
  const slow: Notifier = {
    async send(m) {
      await gate;
      const b = JSON.parse(m.body) as { subscriptionId: string; data: { i: number }[] };
      sent.push(`${b.subscriptionId}${b.data[0].i}`);
    },
    async close() {},
  };
  const d = new Dispatcher(ob, slow, clock, { laneCap: 2 });
  await d.start();
  for (let i = 1; i <= 5; i++) await d.submit([shared('a', i)]);
  release();
  await d.idle();
  assert.deepEqual(sent, ['a1', 'a2', 'a3', 'a4', 'a5']);
  assert.equal(await ob.pendingCount(), 0);
  await d.stop();
  await db.close();
});

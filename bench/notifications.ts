/**
 * Notification benchmarks (issue 3, point 5).
 *  1. fan-out: 1,000 subscriptions (each on one of 100 entities, so every update fans out to 10),
 *     a stream of batch updates; a local HTTP receiver counts notifications. Prints notifications/s,
 *     losses and the delivery latency (write sent -> notification received) p50/p99.
 *  2. kill -9: a stream of single-entity updates; the broker is killed with SIGKILL halfway, restarted
 *     on the same data folder; every acknowledged write must still be notified (pending outbox rows
 *     are sent after the restart). Prints acknowledged / notified / lost.
 * Targets (not asserted): >= 10k notifications/s, zero loss, p99 < 50 ms, no loss across kill -9.
 */
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, table, fmt } from './_lib.ts';

const SUBS = Number(process.env.BENCH_SUBS ?? 1000);
const ENTITIES = 100;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 40);
const CONCURRENCY = 4;

interface Rx {
  url: string;
  got: Map<string, number>;
  latencies: number[];
  first: number;
  last: number;
  close(): void;
}

async function receiver(): Promise<Rx> {
  const rx: Rx = { url: '', got: new Map(), latencies: [], first: 0, last: 0, close: () => srv.close() };
  const srv = createServer((req, res) => {
    let b = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      const now = Date.now();
      res.end();
      const n = JSON.parse(b) as { subscriptionId: string; data: { id: string; seq: { seq: number; t: number } | number }[] };
      for (const e of n.data) {
        const v = e.seq as { seq: number; t: number };
        const k = `${n.subscriptionId}|${e.id}|${v.seq}`;
        rx.got.set(k, (rx.got.get(k) ?? 0) + 1);
        rx.latencies.push(now - v.t);
      }
      rx.first ||= now;
      rx.last = now;
    });
  });
  srv.keepAliveTimeout = 60_000;
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  rx.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/notify`;
  return rx;
}

const J = { 'content-type': 'application/json' };
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

async function createSubs(base: string, rxUrl: string, n: number, entities: number) {
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, k) =>
        fetch(`${base}/ngsi-ld/v1/subscriptions`, {
          method: 'POST',
          headers: J,
          body: JSON.stringify({
            id: `urn:ngsi-ld:Subscription:b${i + k}`,
            type: 'Subscription',
            entities: [{ id: `urn:ngsi-ld:Sensor:${(i + k) % entities}`, type: 'Sensor' }],
            notification: { format: 'keyValues', attributes: ['seq'], endpoint: { uri: rxUrl, accept: 'application/json' } },
          }),
        }).then(async (r) => {
          if (r.status !== 201) throw new Error(`subscription: ${r.status} ${await r.text()}`);
        }),
      ),
    );
  }
}

async function fanOut() {
  const rx = await receiver();
  const b = await startBroker({ URBIS_MODULES: 'subscriptions' }, '0');
  try {
    const ents = Array.from({ length: ENTITIES }, (_, i) => ({ id: `urn:ngsi-ld:Sensor:${i}`, type: 'Sensor', seq: { type: 'Property', value: { seq: -1, t: 0 } } }));
    let r = await fetch(`${b.url}/ngsi-ld/v1/entityOperations/create`, { method: 'POST', headers: J, body: JSON.stringify(ents) });
    if (r.status !== 201) throw new Error(`create: ${r.status}`);
    await createSubs(b.url, rx.url, SUBS, ENTITIES);
    rx.got.clear();
    rx.latencies.length = 0;
    rx.first = 0;
    const t0 = Date.now();
    let next = 0;
    const worker = async () => {
      for (;;) {
        const seq = next++;
        if (seq >= BATCHES) return;
        const body = ents.map((e) => ({ id: e.id, type: 'Sensor', seq: { type: 'Property', value: { seq, t: Date.now() } } }));
        r = await fetch(`${b.url}/ngsi-ld/v1/entityOperations/update`, { method: 'POST', headers: J, body: JSON.stringify(body) });
        if (r.status !== 204) throw new Error(`update: ${r.status} ${await r.text()}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const acked = Date.now();
    const expected = BATCHES * ENTITIES * (SUBS / ENTITIES);
    const deadline = Date.now() + 120_000;
    while (rx.got.size < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const secs = (rx.last - t0) / 1000;
    const dups = [...rx.got.values()].filter((c) => c > 1).length;
    table([
      {
        subscriptions: SUBS,
        updates: BATCHES * ENTITIES,
        'notifications expected': expected,
        received: rx.got.size,
        lost: expected - rx.got.size,
        duplicates: dups,
        'writes acked (s)': fmt((acked - t0) / 1000, 2),
        'notifications/s': fmt(rx.got.size / secs),
        'p50 ms': fmt(pct(rx.latencies, 50), 1),
        'p99 ms': fmt(pct(rx.latencies, 99), 1),
      },
    ]);
  } finally {
    await b.stop();
    rx.close();
  }
}

async function killNine() {
  const rx = await receiver();
  const dataDir = mkdtempSync(join(tmpdir(), 'urbis-kill9-'));
  const env = { URBIS_MODULES: 'subscriptions', URBIS_DATA_DIR: dataDir };
  let b = await startBroker(env, '0');
  const SUBS9 = 20;
  const WRITES = Number(process.env.BENCH_KILL_WRITES ?? 2000);
  const acked: number[] = [];
  let killedAt = -1;
  try {
    await fetch(`${b.url}/ngsi-ld/v1/entities`, { method: 'POST', headers: J, body: JSON.stringify({ id: 'urn:ngsi-ld:Sensor:0', type: 'Sensor', seq: { type: 'Property', value: { seq: -1, t: 0 } } }) });
    await createSubs(b.url, rx.url, SUBS9, 1);
    const url = b.url;
    let seq = 0;
    const writer = async () => {
      while (seq < WRITES) {
        const s = seq++;
        if (s === WRITES / 2) {
          killedAt = s;
          b.proc.kill('SIGKILL');
        }
        try {
          const r = await fetch(`${url}/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:0/attrs`, {
            method: 'PATCH',
            headers: J,
            body: JSON.stringify({ seq: { type: 'Property', value: { seq: s, t: Date.now() } } }),
          });
          if (r.status === 204) acked.push(s);
        } catch {
          /* broker gone: not acknowledged */
        }
      }
    };
    await Promise.all([writer(), writer(), writer(), writer()]);
    if (b.proc.exitCode === null && b.proc.signalCode === null) await new Promise((r) => b.proc.once('exit', r));
    // restart on the same data folder: pending outbox rows go out
    b = await startBroker(env, '0');
    const want = new Set<string>();
    for (const s of acked) for (let i = 0; i < SUBS9; i++) want.add(`urn:ngsi-ld:Subscription:b${i}|urn:ngsi-ld:Sensor:0|${s}`);
    const deadline = Date.now() + 60_000;
    const missing = () => [...want].filter((k) => !rx.got.has(k)).length;
    while (missing() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    table([
      {
        writes: WRITES,
        'killed at write': killedAt,
        'acknowledged writes': acked.length,
        'notifications owed': want.size,
        delivered: want.size - missing(),
        lost: missing(),
      },
    ]);
  } finally {
    await b.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rx.close();
  }
}

const only = process.env.BENCH_ONLY; // 'fanout' | 'kill9'
if (!only || only === 'fanout') {
  console.log('1. fan-out (1,000 subscriptions, local receiver)');
  await fanOut();
}
if (!only || only === 'kill9') {
  console.log('\n2. kill -9 in the middle of a stream');
  await killNine();
}

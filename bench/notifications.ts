/**
 * Notification benchmarks (issue 3, point 5). A local HTTP receiver in this process counts every
 * (subscription, entity, seq) it gets: losses and duplicates are exact.
 *  1. fan-out, maximum throughput (closed loop): 1,000 subscriptions (each on one of 100 entities,
 *     so every update fans out to 10), 4 writers sending 100-entity batch updates back to back.
 *     Prints notifications/s; its latency is mostly queueing behind the burst.
 *  2. fan-out, open-loop stream: batch updates sent on a fixed schedule (every 10 ms, whatever the
 *     broker answers) at BENCH_RATE notifications/s (default 10,000) for BENCH_SECONDS (default 5);
 *     latency from the scheduled send of the write to the receipt of the notification, p50/p99/max.
 *  3. kill -9: a stream of single-entity updates; the broker is killed with SIGKILL halfway, restarted
 *     on the same data; every acknowledged write must still be notified (pending outbox rows are
 *     sent after the restart). Prints acknowledged / notified / lost.
 * Targets (not asserted): >= 10k notifications/s, zero loss, p99 < 50 ms, no loss across kill -9.
 * DATABASE_URL: run on that PostgreSQL database instead of PGlite; it is emptied before each part,
 * so it must be a database reserved for benchmarks (its name must contain "bench").
 */
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startBroker, table, fmt, cpuSnapshot, cpuDelta } from './_lib.ts';

const SUBS = Number(process.env.BENCH_SUBS ?? 1000);
const ENTITIES = 100;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 40);
const CONCURRENCY = 4;
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const DB_URL = process.env.DATABASE_URL;

interface Rx {
  url: string;
  /** deliveries per subscription|entity|seq */
  got: Map<string, number>;
  /** ms from the write's (scheduled) send to the receipt */
  latencies: number[];
  /** receipt times, beside latencies (BENCH_DEBUG breakdown) */
  at: number[];
  first: number;
  last: number;
  close(): void;
}

/**
 * The receiver. Cheap on purpose (it shares a core with the load): the body is parsed once, and the
 * answer is an empty 204 sent before the bookkeeping.
 */
async function receiver(): Promise<Rx> {
  const rx: Rx = { url: '', got: new Map(), latencies: [], at: [], first: 0, last: 0, close: () => srv.close() };
  const srv = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = performance.now();
      res.statusCode = 204;
      res.end();
      const n = JSON.parse(chunks.length === 1 ? chunks[0].toString() : Buffer.concat(chunks).toString()) as {
        subscriptionId: string;
        data: { id: string; seq: { seq: number; t: number } }[];
      };
      for (const e of n.data) {
        const k = `${n.subscriptionId}|${e.id}|${e.seq.seq}`;
        rx.got.set(k, (rx.got.get(k) ?? 0) + 1);
        rx.latencies.push(now - e.seq.t);
        rx.at.push(now);
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

/** Empties the benchmark's PostgreSQL database (every table of schema public but extensions'). */
async function resetPostgres(): Promise<void> {
  if (!DB_URL) return;
  if (!/bench/.test(new URL(DB_URL).pathname)) throw new Error('DATABASE_URL must name a database reserved for benchmarks ("bench" in its name)');
  const c = new pg.Client({ connectionString: DB_URL });
  await c.connect();
  try {
    // not the tables of extensions (PostGIS's spatial_ref_sys)
    const t = await c.query<{ n: string }>(
      `SELECT quote_ident(c.relname) AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
       WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p')
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
    );
    if (t.rows.length) await c.query(`DROP TABLE IF EXISTS ${t.rows.map((r) => r.n).join(', ')} CASCADE`);
  } finally {
    await c.end();
  }
}

const dupCount = (rx: Rx) => {
  let d = 0;
  for (const c of rx.got.values()) if (c > 1) d++;
  return d;
};

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

/** Broker with 100 entities and SUBS subscriptions (SUBS / 100 on each entity). */
async function fanOutSetup(rx: Rx) {
  await resetPostgres();
  const b = await startBroker({ URBIS_MODULES: 'subscriptions' }, '0');
  const ents = Array.from({ length: ENTITIES }, (_, i) => ({ id: `urn:ngsi-ld:Sensor:${i}`, type: 'Sensor', seq: { type: 'Property', value: { seq: -1, t: 0 } } }));
  const r = await fetch(`${b.url}/ngsi-ld/v1/entityOperations/create`, { method: 'POST', headers: J, body: JSON.stringify(ents) });
  if (r.status !== 201) throw new Error(`create: ${r.status}`);
  await createSubs(b.url, rx.url, SUBS, ENTITIES);
  return { b, ents };
}

const resetRx = (rx: Rx) => {
  rx.got.clear();
  rx.latencies.length = 0;
  rx.at.length = 0;
  rx.first = 0;
  rx.last = 0;
};

async function waitFor(rx: Rx, expected: number, ms: number) {
  const deadline = Date.now() + ms;
  while (rx.got.size < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Part 1: closed loop, 4 writers of 100-entity batches back to back. */
async function fanOut() {
  const rx = await receiver();
  const { b, ents } = await fanOutSetup(rx);
  try {
    // warm-up batch (connections, JIT), not counted
    await fetch(`${b.url}/ngsi-ld/v1/entityOperations/update`, { method: 'POST', headers: J, body: JSON.stringify(ents.map((e) => ({ id: e.id, type: 'Sensor', seq: { type: 'Property', value: { seq: -2, t: performance.now() } } }))) });
    await waitFor(rx, SUBS, 30_000);
    resetRx(rx);
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      for (;;) {
        const seq = next++;
        if (seq >= BATCHES) return;
        const body = ents.map((e) => ({ id: e.id, type: 'Sensor', seq: { type: 'Property', value: { seq, t: performance.now() } } }));
        const r = await fetch(`${b.url}/ngsi-ld/v1/entityOperations/update`, { method: 'POST', headers: J, body: JSON.stringify(body) });
        if (r.status !== 204) throw new Error(`update: ${r.status} ${await r.text()}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const acked = performance.now();
    const expected = BATCHES * ENTITIES * (SUBS / ENTITIES);
    await waitFor(rx, expected, 120_000);
    const secs = (rx.last - t0) / 1000;
    table([
      {
        subscriptions: SUBS,
        updates: BATCHES * ENTITIES,
        'notifications expected': expected,
        received: rx.got.size,
        lost: expected - rx.got.size,
        duplicates: dupCount(rx),
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

/**
 * Part 2: open loop. Every 10 ms a batch update of RATE / 100 / (SUBS / 100) entities is sent on
 * schedule, without waiting for earlier ones; a late tick still carries its scheduled time, so a
 * broker falling behind shows as latency (no coordinated omission).
 */
async function stream() {
  const rx = await receiver();
  const { b, ents } = await fanOutSetup(rx);
  const perEntity = SUBS / ENTITIES;
  const perTick = Math.max(1, Math.round(RATE / 100 / perEntity));
  const ticks = Math.round(SECONDS * 100);
  try {
    // warm-up: a second of the stream at the same rate, not counted
    const send = (tick: number, at: number) => {
      const body = Array.from({ length: perTick }, (_, k) => ({
        id: ents[(tick * perTick + k) % ENTITIES].id,
        type: 'Sensor',
        seq: { type: 'Property', value: { seq: tick, t: at } },
      }));
      return fetch(`${b.url}/ngsi-ld/v1/entityOperations/update`, { method: 'POST', headers: J, body: JSON.stringify(body) }).then(async (r) => {
        if (r.status !== 204) throw new Error(`update: ${r.status} ${await r.text()}`);
        return performance.now();
      });
    };
    const run = async (from: number, n: number) => {
      const t0 = performance.now();
      const acks: Promise<number>[] = [];
      const sent: number[] = [];
      for (let i = 0; i < n; i++) {
        const at = t0 + i * 10;
        const wait = at - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        sent.push(at);
        acks.push(send(from + i, at));
      }
      const done = await Promise.all(acks);
      return { t0, writeMs: done.map((d, i) => d - sent[i]) };
    };
    await run(1_000_000, 100);
    await waitFor(rx, 100 * perTick * perEntity, 30_000);
    resetRx(rx);
    // BENCH_PROF=1: SIGUSR2 to the broker when the measured stream starts (starts a profiler preloaded
    // with NODE_OPTIONS=--import=..., see docs/performance.md)
    if (process.env.BENCH_PROF) b.proc.kill('SIGUSR2');
    const eld = monitorEventLoopDelay({ resolution: 5 });
    eld.enable();
    const cpu0 = cpuSnapshot({ broker: b.proc.pid!, bench: process.pid });
    const { t0, writeMs } = await run(0, ticks);
    const cpu1 = cpuSnapshot({ broker: b.proc.pid!, bench: process.pid });
    eld.disable();
    const expected = ticks * perTick * perEntity;
    await waitFor(rx, expected, 120_000);
    const secs = (rx.last - t0) / 1000;
    table([
      {
        'offered notifications/s': fmt(perTick * perEntity * 100),
        'updates/s': fmt(perTick * 100),
        seconds: SECONDS,
        expected,
        received: rx.got.size,
        lost: expected - rx.got.size,
        duplicates: dupCount(rx),
        'notifications/s': fmt(rx.got.size / secs),
        'p50 ms': fmt(pct(rx.latencies, 50), 1),
        'p99 ms': fmt(pct(rx.latencies, 99), 1),
        'max ms': fmt(pct(rx.latencies, 100), 1),
        'write p99 ms': fmt(pct(writeMs, 99), 1),
      },
    ]);
    if (process.env.BENCH_DEBUG) {
      // where the tail is: per half second of the stream, notification and write latency; the bench
      // process's own event-loop delay (receiver and load generator share it); CPU per process
      const rows: Record<string, string>[] = [];
      for (let s = 0; s < SECONDS * 2; s++) {
        const lo = t0 + s * 500, hi = lo + 500;
        const ls = rx.latencies.filter((_, i) => rx.at[i] - rx.latencies[i] >= lo && rx.at[i] - rx.latencies[i] < hi);
        const ws = writeMs.slice(s * 50, s * 50 + 50);
        rows.push({ 'from s': fmt(s / 2, 1), 'p50': fmt(pct(ls, 50), 1), 'p99': fmt(pct(ls, 99), 1), 'max': fmt(pct(ls, 100), 1), 'write p50': fmt(pct(ws, 50), 1), 'write max': fmt(pct(ws, 100), 1) });
      }
      table(rows);
      // the slowest writes, wall clock (ms mod 100 s) of their scheduled send, to match a broker-side trace
      const wall = Date.now() - performance.now();
      const slow = writeMs.map((ms, i) => [ms, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 6);
      console.log(`slowest writes: ${slow.map(([ms, i]) => `${fmt(ms, 0)} ms @${Math.round((wall + t0 + i * 10) % 100_000)}`).join(', ')}`);
      console.log(`bench event loop delay p99 ${fmt(eld.percentile(99) / 1e6, 1)} ms, max ${fmt(eld.max / 1e6, 1)} ms; CPU: ${cpuDelta(cpu0, cpu1, SECONDS, 8)}`);
    }
  } finally {
    await b.stop();
    rx.close();
  }
}

async function killNine() {
  const rx = await receiver();
  await resetPostgres();
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
            body: JSON.stringify({ seq: { type: 'Property', value: { seq: s, t: performance.now() } } }),
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

const only = process.env.BENCH_ONLY; // 'fanout' | 'stream' | 'kill9'
console.log(`store: ${DB_URL ? 'PostgreSQL' : 'PGlite'}`);
if (!only || only === 'fanout') {
  console.log(`1. fan-out, maximum throughput (${SUBS} subscriptions, closed loop, local receiver)`);
  await fanOut();
}
if (!only || only === 'stream') {
  console.log(`\n2. fan-out, open-loop stream (${SUBS} subscriptions, ${RATE} notifications/s offered)`);
  await stream();
}
if (!only || only === 'kill9') {
  console.log('\n3. kill -9 in the middle of a stream');
  await killNine();
}

/**
 * Device ingestion benchmark: MQTT QoS 1 measures -> entity updates (+ history, through the change
 * bus) on the embedded broker, zero loss checked (measures acknowledged by the broker vs measures
 * stored, change events seen, last values read back).
 *
 *   node --import tsx bench/devices-mqtt.ts [--devices 1000] [--messages 20] [--measures 10]
 *   BENCH_DATABASE_URL=postgres://urbis:urbis@127.0.0.1:5432/urbis_test ... (PostgreSQL instead of PGlite)
 *   BENCH_MODULES=devices ... (only the listed modules)
 *
 * The platform (all modules of src/modules.ts, demo off, in-memory PGlite) runs in this process;
 * the devices run in a child process (one MQTT connection per device, token authentication), so
 * publishing does not steal the platform's event loop.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

if (args[0] === '--publisher') await publisher();
else await main();

interface Plan {
  url: string;
  apikey: string;
  devices: { id: string; token: string }[];
  messages: number;
  measures: number;
}

async function publisher(): Promise<void> {
  const plan = JSON.parse(await new Promise<string>((res) => {
    let s = '';
    process.stdin.on('data', (d) => (s += d));
    process.stdin.on('end', () => res(s));
  })) as Plan;
  const clients: mqtt.MqttClient[] = [];
  for (let i = 0; i < plan.devices.length; i += 100)
    clients.push(...(await Promise.all(plan.devices.slice(i, i + 100).map((d) => mqtt.connectAsync(plan.url, { username: 'token', password: d.token, clientId: `bench-${d.id}`, reconnectPeriod: 0, clean: true, connectTimeout: 60_000 })))));
  process.stdout.write(JSON.stringify({ connected: clients.length }) + '\n');
  await new Promise<void>((res) => process.once('message', () => res()));
  const t0 = performance.now();
  let acked = 0;
  const window = 32; // in-flight QoS 1 messages per device
  await Promise.all(
    clients.map(async (c, i) => {
      const d = plan.devices[i];
      const inflight = new Set<Promise<unknown>>();
      for (let n = 1; n <= plan.messages; n++) {
        const m: Record<string, number> = { seq: n };
        for (let k = 1; k < plan.measures; k++) m[`m${k}`] = Math.round(Math.random() * 1000) / 10;
        const p = c.publishAsync(`/json/${plan.apikey}/${d.id}/attrs`, JSON.stringify(m), { qos: 1 }).then(() => {
          acked++;
          inflight.delete(p);
        });
        inflight.add(p);
        if (inflight.size >= window) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    }),
  );
  const ms = performance.now() - t0;
  process.send!({ acked, ms });
  await Promise.all(clients.map((c) => c.endAsync()));
  process.exit(0);
}

async function main(): Promise<void> {
  const devices = opt('devices', 1000);
  const messages = opt('messages', 20);
  const measures = opt('measures', 10);
  // every simulated device connects from 127.0.0.1: lift the trust layer's per-address and
  // per-client MQTT limits (defaults 50 connections per address, 20 messages/s per client)
  process.env.URBIS_MQTT_MAX_CONN_PER_IP ??= '0';
  process.env.URBIS_MQTT_RATE ??= '100000/100000';
  const { startPlatform } = await import('../src/server/start.ts');
  const { modules: all } = await import('../src/modules.ts');
  const only = process.env.BENCH_MODULES?.split(',');
  const modules = only ? all.filter((m) => only.includes(m.name)) : all;
  // BENCH_DATABASE_URL=postgres://...: run on PostgreSQL, in a schema of its own dropped at the end
  const pgBase = process.env.BENCH_DATABASE_URL;
  const schema = `bench_devices_${process.pid}`;
  let databaseUrl: string | undefined;
  if (pgBase) {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: pgBase });
    await c.connect();
    await c.query(`CREATE SCHEMA ${schema}`);
    await c.end();
    databaseUrl = `${pgBase}${pgBase.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema},public`)}`;
  }
  const running = await startPlatform({ memory: !pgBase, modules, config: { port: 0, host: '127.0.0.1', mqttPort: 0, demo: false, auth: true, databaseUrl, logLevel: process.env.URBIS_LOG ?? 'warn' } });
  const p = running.platform;
  const svc = p.services.get('devices') as import('../src/devices/service.ts').DeviceService;
  const mqttUrl = (p.services.get('mqtt') as import('../src/devices/mqtt.ts').MqttService).url;
  const scope = { tenant: 'bench', service: 'bench', servicePath: '/' };
  await svc.createGroups(scope, { services: [{ apikey: 'benchkey', entity_type: 'BenchSensor', transport: 'MQTT', protocol: 'IoTA-JSON', autoprovision: false, attributes: [{ object_id: 'seq', name: 'seq', type: 'Number' }] }] });
  const ids = Array.from({ length: devices }, (_, i) => `dev${String(i).padStart(5, '0')}`);
  for (let i = 0; i < ids.length; i += 200) await svc.createDevices(scope, { devices: ids.slice(i, i + 200).map((id) => ({ device_id: id, apikey: 'benchkey' })) });
  const creds: { id: string; token: string }[] = [];
  for (let i = 0; i < ids.length; i += 32) {
    const part = await Promise.all(ids.slice(i, i + 32).map(async (id) => ({ id, token: (await svc.issueCredentials(scope, id, {})).token! })));
    creds.push(...part);
  }
  await svc.ingest.idle();

  // change events of the benchmark entities (what history, subscriptions and rules consume)
  let events = 0;
  const lastSeq = new Map<string, number>();
  p.bus.subscribe((evs) => {
    for (const e of evs) {
      if (e.tenant !== 'bench' || !e.entityId.startsWith('urn:ngsi-ld:BenchSensor:')) continue;
      const v = e.after?.attrs['https://uri.etsi.org/ngsi-ld/default-context/seq']?.[0]?.value;
      if (typeof v === 'number' && e.changedAttrs.length) {
        events++;
        lastSeq.set(e.entityId, Math.max(lastSeq.get(e.entityId) ?? 0, v));
      }
    }
  });
  const storedBefore = svc.ingest.counters.measuresStored;

  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--publisher'], { stdio: ['pipe', 'pipe', 'inherit', 'ipc'] });
  child.stdin!.end(JSON.stringify({ url: mqttUrl, apikey: 'benchkey', devices: creds, messages, measures } satisfies Plan));
  await new Promise<void>((res) => child.stdout!.once('data', () => res()));
  const t0 = performance.now();
  child.send('go');
  const result = await new Promise<{ acked: number; ms: number }>((res) => child.once('message', (m) => res(m as { acked: number; ms: number })));
  await svc.ingest.idle();
  const totalMs = performance.now() - t0;

  const published = devices * messages;
  const publishedMeasures = published * measures;
  const stored = svc.ingest.counters.measuresStored - storedBefore;
  let lastOk = 0;
  for (const id of ids) {
    const e = await p.broker.getEntity('bench', `urn:ngsi-ld:BenchSensor:${id}`, { format: 'keyValues', attrs: ['seq'] });
    if (e?.seq === messages) lastOk++;
  }
  const out = {
    devices,
    messagesPerDevice: messages,
    measuresPerMessage: measures,
    published,
    acked: result.acked,
    publishedMeasures,
    storedMeasures: stored,
    changeEvents: events,
    lost: publishedMeasures - stored,
    lastValuesCorrect: `${lastOk}/${devices}`,
    seconds: +(totalMs / 1000).toFixed(2),
    messagesPerSecond: Math.round(published / (totalMs / 1000)),
    measuresPerSecond: Math.round(stored / (totalMs / 1000)),
    failedUpdates: svc.ingest.counters.updatesFailed,
    store: p.db.kind,
  };
  console.log(JSON.stringify(out, null, 2));
  console.log(`devices-mqtt: ${out.measuresPerSecond} measures/s (${out.messagesPerSecond} QoS 1 messages/s), lost ${out.lost}, change events ${events}/${published}`);
  await running.close();
  if (pgBase) {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: pgBase });
    await c.connect();
    await c.query(`DROP SCHEMA ${schema} CASCADE`);
    await c.end();
  }
  process.exit(out.lost === 0 && events === published && lastOk === devices ? 0 : 1);
}

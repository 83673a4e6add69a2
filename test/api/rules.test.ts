import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { FakeClock } from '../../src/common/clock.ts';
import { createRulesModule } from '../../src/rules/module.ts';
import type { RulesService } from '../../src/rules/service.ts';
import { testPlatform } from '../helpers/server.ts';

// ---------------------------------------------------------------- local receivers

interface Hook { body: Record<string, unknown>; headers: IncomingMessage['headers'] }
const hooks: Hook[] = [];
let failNext = 0;
let http: Server;
let hookUrl = '';

const mails: { to: string[]; data: string }[] = [];
let smtp: { close(cb: () => void): void; server: { address(): { port: number } } };
let smtpPort = 0;

let aedes: Aedes;
let mqttServer: NetServer;
let mqttUrl = '';
const mqttMessages: { topic: string; payload: Record<string, unknown> }[] = [];
let sub: mqtt.MqttClient;

before(async () => {
  http = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.statusCode = 503;
        return res.end('busy');
      }
      hooks.push({ body: JSON.parse(data), headers: req.headers });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(http.address() as { port: number }).port}/hook`;

  // local SMTP receiver (smtp-server has no type declarations)
  const { SMTPServer } = (await import('smtp-server' as string)) as { SMTPServer: new (o: object) => typeof smtp & { listen(p: number, h: string, cb: () => void): void } };
  const s = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream: NodeJS.ReadableStream, session: { envelope: { rcptTo: { address: string }[] } }, cb: () => void) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
        cb();
      });
    },
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  smtp = s;
  smtpPort = s.server.address().port;

  aedes = await Aedes.createBroker();
  mqttServer = createNetServer(aedes.handle);
  await new Promise<void>((r) => mqttServer.listen(0, '127.0.0.1', r));
  mqttUrl = `mqtt://127.0.0.1:${(mqttServer.address() as { port: number }).port}`;
  sub = await mqtt.connectAsync(mqttUrl);
  await sub.subscribeAsync('urbis/alarms/#');
  sub.on('message', (topic, payload) => mqttMessages.push({ topic, payload: JSON.parse(payload.toString()) }));
});

after(async () => {
  await sub.endAsync(true);
  await new Promise<void>((r) => aedes.close(() => r()));
  await new Promise<void>((r) => mqttServer.close(() => r()));
  await new Promise<void>((r) => http.close(() => r()));
  await new Promise<void>((r) => smtp.close(() => r()));
});

function rulesModule() {
  return createRulesModule({ smtp: { host: '127.0.0.1', port: smtpPort, from: 'urbis@city.example', ignoreTLS: true }, retryDelaysMs: [5, 5] });
}

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Platform = Awaited<ReturnType<typeof testPlatform>>;
const svcOf = (s: Platform) => s.platform.services.get('rules') as RulesService;

async function upsert(s: Platform, e: Record<string, unknown>) {
  const r = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entityOperations/upsert?options=update', ...json([e]) });
  assert.ok(r.statusCode === 201 || r.statusCode === 204, `${r.statusCode} ${r.body}`);
  await svcOf(s).idle();
}

const aq = (id: string, pm25: number, extra: Record<string, unknown> = {}) => ({
  id, type: 'AirQualityObserved', pm25: { type: 'Property', value: pm25 }, location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [-3.8, 43.46] } }, ...extra,
});

// ---------------------------------------------------------------- tests

test('rules CRUD, validation errors, NGSI-LD mirror', async () => {
  const s = await testPlatform({ modules: [rulesModule()] });
  try {
    const bad = await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ name: 'x', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm25>>1', for: 'P90D' } }) });
    assert.equal(bad.statusCode, 400);
    const p = bad.json();
    assert.equal(p.type, 'https://uri.etsi.org/ngsi-ld/errors/BadRequestData');
    assert.match(p.detail, /trigger\.q/);
    assert.match(p.detail, /trigger\.for: impossible duration/);
    assert.equal(p.errors.length, 2);

    // unknown attribute once entities of the type exist
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:a1', 10));
    const unk = await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ name: 'x', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm2_5>25' } }) });
    assert.equal(unk.statusCode, 400);
    assert.match(unk.json().detail, /unknown attribute "pm2_5" for type AirQualityObserved \(known: .*pm25/);

    const ok = await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'pm', name: 'PM2.5 high', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm25>50', for: '30m' } }) });
    assert.equal(ok.statusCode, 201, ok.body);
    assert.equal(ok.headers.location, '/rules/v1/rules/pm');
    assert.equal(ok.json().trigger.for, '30m');
    const dup = await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'pm', name: 'again', select: { type: 'A' }, trigger: { kind: 'absence', after: '5m' } }) });
    assert.equal(dup.statusCode, 409);

    const list = (await s.inject({ url: '/rules/v1/rules' })).json();
    assert.deepEqual(list.map((r: { id: string }) => r.id), ['pm']);
    const patched = await s.inject({ method: 'PATCH', url: '/rules/v1/rules/pm', ...json({ enabled: false, alarm: { severity: 'critical' } }) });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(patched.json().enabled, false);
    assert.equal(patched.json().alarm.severity, 'critical');
    assert.equal(patched.json().trigger.q, 'pm25>50');

    const ent = await s.inject({ url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:pm' });
    assert.equal(ent.statusCode, 200, ent.body);
    assert.equal(ent.json().type, 'Rule');
    assert.equal(ent.json().enabled.value, false);

    const v = await s.inject({ method: 'POST', url: '/rules/v1/rules/validate', ...json({ name: 'n', select: { type: 'X' }, trigger: { kind: 'absence', after: '5m' } }) });
    assert.equal(v.statusCode, 200);
    assert.equal(v.json().valid, true);

    assert.equal((await s.inject({ method: 'DELETE', url: '/rules/v1/rules/pm' })).statusCode, 204);
    assert.equal((await s.inject({ url: '/rules/v1/rules/pm' })).statusCode, 404);
    assert.equal((await s.inject({ url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:pm' })).statusCode, 404);
  } finally {
    await s.close();
  }
});

test('alarm raised on the change bus, Alert entity, actions delivered to local webhook / MQTT / SMTP, service request, ack and auto-clear', async () => {
  const s = await testPlatform({ modules: [rulesModule()] });
  try {
    const r = await s.inject({
      method: 'POST', url: '/rules/v1/rules',
      ...json({
        id: 'pm-now', name: 'PM2.5 high', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm25>50' },
        alarm: { severity: 'high', category: 'environment', subCategory: 'airPollution' },
        actions: [
          { type: 'webhook', url: hookUrl, headers: { 'x-city': 'santander' }, on: ['raise', 'acknowledge', 'clear'] },
          { type: 'mqtt', url: mqttUrl, topic: 'urbis/alarms/air' },
          { type: 'email', to: ['ops@city.example'], subject: 'Urbis' },
          { type: 'serviceRequest', serviceCode: 'air-check', serviceName: 'Check air quality sensor', agency: 'Environment' },
        ],
      }),
    });
    assert.equal(r.statusCode, 201, r.body);
    hooks.length = 0;
    mqttMessages.length = 0;
    mails.length = 0;

    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:b1', 20));
    assert.equal((await s.inject({ url: '/rules/v1/alarms' })).json().length, 0);
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:b1', 80));

    const alarms = (await s.inject({ url: '/rules/v1/alarms?status=active' })).json();
    assert.equal(alarms.length, 1);
    const a = alarms[0];
    assert.equal(a.entityId, 'urn:ngsi-ld:AirQualityObserved:b1');
    assert.equal(a.ruleId, 'pm-now');
    assert.equal(a.severity, 'high');
    assert.deepEqual(a.value, { pm25: 80 });

    // Alert entity (Smart Data Models)
    const alert = await s.inject({ url: `/ngsi-ld/v1/entities/${a.id}?options=keyValues` });
    assert.equal(alert.statusCode, 200, alert.body);
    const kv = alert.json();
    assert.equal(kv.type, 'Alert');
    assert.equal(kv.category, 'environment');
    assert.equal(kv.subCategory, 'airPollution');
    assert.equal(kv.severity, 'high');
    assert.equal(kv.alertSource, 'urn:ngsi-ld:AirQualityObserved:b1');
    assert.equal(kv.alarmStatus, 'active');
    assert.ok(kv.dateIssued);
    assert.deepEqual(kv.location, { type: 'Point', coordinates: [-3.8, 43.46] });

    // deliveries
    await waitFor('webhook', () => hooks.length === 1);
    assert.equal(hooks[0].body.event, 'raise');
    assert.equal(hooks[0].headers['x-city'], 'santander');
    assert.equal((hooks[0].body.alarm as { id: string }).id, a.id);
    await waitFor('mqtt', () => mqttMessages.length === 1);
    assert.equal(mqttMessages[0].topic, 'urbis/alarms/air');
    assert.equal(mqttMessages[0].payload.event, 'raise');
    await waitFor('mail', () => mails.length === 1);
    assert.deepEqual(mails[0].to, ['ops@city.example']);
    assert.match(mails[0].data, /Subject: Urbis - \[HIGH\] Alarm raised: PM2\.5 high/);
    const sr = await s.inject({ url: `/ngsi-ld/v1/entities/${a.serviceRequestId}?options=keyValues` });
    assert.equal(sr.statusCode, 200, sr.body);
    assert.equal(sr.json().type, 'ServiceRequest');
    assert.equal(sr.json().request_status, 'open');
    assert.equal(sr.json().service_code, 'air-check');

    // flapping does not make more alarms
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:b1', 81));
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:b1', 82));
    assert.equal((await s.inject({ url: '/rules/v1/alarms' })).json().length, 1);

    // acknowledge
    const ack = await s.inject({ method: 'POST', url: `/rules/v1/alarms/${a.id}/acknowledge`, ...json({ by: 'alice', note: 'crew on the way' }) });
    assert.equal(ack.statusCode, 200, ack.body);
    assert.equal(ack.json().status, 'acknowledged');
    assert.equal(ack.json().acknowledgedBy, 'alice');
    await waitFor('ack webhook', () => hooks.length === 2);
    assert.equal(hooks[1].body.event, 'acknowledge');
    await svcOf(s).idle();
    assert.equal((await s.inject({ url: `/ngsi-ld/v1/entities/${a.id}?options=keyValues` })).json().alarmStatus, 'acknowledged');

    // condition ends: auto-clear, service request closed
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:b1', 10));
    const cleared = (await s.inject({ url: `/rules/v1/alarms/${a.id}` })).json();
    assert.equal(cleared.status, 'cleared');
    assert.equal(cleared.clearedBy, 'auto');
    await waitFor('clear webhook', () => hooks.length === 3);
    assert.equal((await s.inject({ url: `/ngsi-ld/v1/entities/${a.serviceRequestId}?options=keyValues` })).json().request_status, 'closed');
    const ak = (await s.inject({ url: `/ngsi-ld/v1/entities/${a.id}?options=keyValues` })).json();
    assert.equal(ak.alarmStatus, 'cleared');
    assert.ok(ak.validTo);
    const log = (await s.inject({ url: `/rules/v1/alarms/${a.id}/deliveries` })).json();
    assert.ok(log.length >= 7 && log.every((d: { ok: boolean }) => d.ok), JSON.stringify(log));
    assert.equal((await s.inject({ method: 'POST', url: `/rules/v1/alarms/${a.id}/acknowledge`, ...json({}) })).statusCode, 409);
    assert.equal((await s.inject({ method: 'POST', url: '/rules/v1/alarms/urn:ngsi-ld:Alert:nope/clear', ...json({}) })).statusCode, 404);
  } finally {
    await s.close();
  }
});

test('rules as NGSI-LD entities: create, update (invalid -> ruleError), delete through the broker API', async () => {
  const s = await testPlatform({ modules: [rulesModule()] });
  try {
    const entity = {
      id: 'urn:ngsi-ld:Rule:noise-night', type: 'Rule',
      name: { type: 'Property', value: 'Noise at night' },
      select: { type: 'JsonProperty', json: { type: 'NoiseLevelObserved' } },
      trigger: { type: 'JsonProperty', json: { kind: 'condition', q: 'LAeq>65' } },
      alarm: { type: 'JsonProperty', json: { severity: 'low', category: 'environment' } },
    };
    const c = await s.inject({ method: 'POST', url: '/ngsi-ld/v1/entities', ...json(entity) });
    assert.equal(c.statusCode, 201, c.body);
    await svcOf(s).idle();
    const r = await s.inject({ url: '/rules/v1/rules/noise-night' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().trigger.q, 'LAeq>65');
    await upsert(s, { id: 'urn:ngsi-ld:NoiseLevelObserved:n1', type: 'NoiseLevelObserved', LAeq: { type: 'Property', value: 72 } });
    assert.equal((await s.inject({ url: '/rules/v1/alarms?rule=noise-night' })).json().length, 1);

    // invalid update: the rule keeps its definition, the entity says why
    const bad = await s.inject({ method: 'PATCH', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:noise-night/attrs', ...json({ trigger: { type: 'JsonProperty', json: { kind: 'condition', q: 'LAeq>>' } } }) });
    assert.equal(bad.statusCode, 204, bad.body);
    await svcOf(s).idle();
    assert.equal((await s.inject({ url: '/rules/v1/rules/noise-night' })).json().trigger.q, 'LAeq>65');
    const withErr = (await s.inject({ url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:noise-night?options=keyValues' })).json();
    assert.match(withErr.ruleError, /trigger\.q/);

    // valid update through NGSI-LD
    await s.inject({ method: 'PATCH', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:noise-night/attrs', ...json({ trigger: { type: 'JsonProperty', json: { kind: 'condition', q: 'LAeq>80' } } }) });
    await svcOf(s).idle();
    assert.equal((await s.inject({ url: '/rules/v1/rules/noise-night' })).json().trigger.q, 'LAeq>80');
    assert.equal((await s.inject({ url: '/rules/v1/alarms?rule=noise-night&status=active' })).json().length, 0, 'trigger changed: alarm cleared');
    const fixed = (await s.inject({ url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:noise-night?options=keyValues' })).json();
    assert.equal(fixed.ruleError, undefined);

    assert.equal((await s.inject({ method: 'DELETE', url: '/ngsi-ld/v1/entities/urn:ngsi-ld:Rule:noise-night' })).statusCode, 204);
    await svcOf(s).idle();
    assert.equal((await s.inject({ url: '/rules/v1/rules/noise-night' })).statusCode, 404);
  } finally {
    await s.close();
  }
});

test('webhook delivery is retried', async () => {
  const s = await testPlatform({ modules: [rulesModule()] });
  try {
    await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'w', name: 'w', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm25>50' }, actions: [{ type: 'webhook', url: hookUrl, on: ['raise'] }] }) });
    hooks.length = 0;
    failNext = 2;
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:w1', 99));
    const [a] = (await s.inject({ url: '/rules/v1/alarms' })).json();
    const log = (await s.inject({ url: `/rules/v1/alarms/${a.id}/deliveries` })).json();
    assert.equal(log.length, 1);
    assert.equal(log[0].ok, true);
    assert.equal(log[0].attempts, 3);
    assert.equal(hooks.length, 1);
  } finally {
    failNext = 0;
    await s.close();
  }
});

test('held condition and absence on the platform clock (fake), surviving a restart with active alarms', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'urbis-rules-'));
  const clock = new FakeClock(Date.now());
  const opts = { memory: false, clock, config: { dataDir: dir } };
  let s = await testPlatform({ ...opts, modules: [rulesModule()] });
  try {
    await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'hold', name: 'PM2.5 held', select: { type: 'AirQualityObserved' }, trigger: { kind: 'condition', q: 'pm25>50', for: '30m' } }) });
    await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'silent', name: 'silent', select: { type: 'Device' }, trigger: { kind: 'absence', after: '15m' } }) });
    await upsert(s, { id: 'urn:ngsi-ld:Device:d1', type: 'Device', batteryLevel: { type: 'Property', value: 1 } });
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:h1', 70));
    clock.advance(29 * 60_000);
    await svcOf(s).idle();
    assert.deepEqual((await s.inject({ url: '/rules/v1/alarms' })).json().map((a: { ruleId: string }) => a.ruleId), ['silent']);
    clock.advance(60_000);
    await svcOf(s).idle();
    const open = (await s.inject({ url: '/rules/v1/alarms?status=active' })).json();
    assert.deepEqual(open.map((a: { ruleId: string }) => a.ruleId).sort(), ['hold', 'silent']);
    // a second AQ entity starts its hold, then the platform stops
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:h2', 90));
    await s.close();

    clock.advance(40 * 60_000); // down for 40 minutes
    s = await testPlatform({ ...opts, modules: [rulesModule()] });
    await svcOf(s).idle();
    const after = (await s.inject({ url: '/rules/v1/alarms?status=active' })).json();
    assert.deepEqual(after.map((a: { entityId: string }) => a.entityId).sort(), [
      'urn:ngsi-ld:AirQualityObserved:h1', 'urn:ngsi-ld:AirQualityObserved:h2', 'urn:ngsi-ld:Device:d1',
    ]);
    // the alarm raised before the restart clears after it (same alarm id)
    const h1 = after.find((a: { entityId: string }) => a.entityId === 'urn:ngsi-ld:AirQualityObserved:h1');
    await upsert(s, aq('urn:ngsi-ld:AirQualityObserved:h1', 5));
    assert.equal((await s.inject({ url: `/rules/v1/alarms/${h1.id}` })).json().status, 'cleared');
    const stats = (await s.inject({ url: '/rules/v1/stats' })).json();
    assert.equal(stats.rules, 2);
    assert.equal(stats.alarms.active, 2);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('absence rule created after its entities exist: seeded from their last update', async () => {
  const clock = new FakeClock(Date.now());
  const s = await testPlatform({ clock, modules: [rulesModule()] });
  try {
    await upsert(s, { id: 'urn:ngsi-ld:WeatherObserved:ws1', type: 'WeatherObserved', temperature: { type: 'Property', value: 12 } });
    await upsert(s, { id: 'urn:ngsi-ld:WeatherObserved:ws2', type: 'WeatherObserved', temperature: { type: 'Property', value: 13 } });
    const r = await s.inject({ method: 'POST', url: '/rules/v1/rules', ...json({ id: 'ws-silent', name: 'Weather station silent', select: { type: 'WeatherObserved' }, trigger: { kind: 'absence', after: '10m', attribute: 'temperature' } }) });
    assert.equal(r.statusCode, 201, r.body);
    clock.advance(5 * 60_000);
    await upsert(s, { id: 'urn:ngsi-ld:WeatherObserved:ws2', type: 'WeatherObserved', temperature: { type: 'Property', value: 14 } });
    clock.advance(6 * 60_000);
    await svcOf(s).idle();
    const open = (await s.inject({ url: '/rules/v1/alarms?status=active' })).json();
    assert.deepEqual(open.map((a: { entityId: string }) => a.entityId), ['urn:ngsi-ld:WeatherObserved:ws1']);
    assert.match(open[0].description, /no update from urn:ngsi-ld:WeatherObserved:ws1 for 10m/);
  } finally {
    await s.close();
  }
});

test('demo city rules are installed and raise alarms from demo-like data', async () => {
  const s = await testPlatform({ modules: [rulesModule()], config: { demo: true } });
  try {
    const ids = (await s.inject({ url: '/rules/v1/rules' })).json().map((r: { id: string }) => r.id);
    for (const id of ['demo-pm25-high', 'demo-pm10-high', 'demo-device-silent', 'demo-waste-full', 'demo-parking-overstay'])
      assert.ok(ids.includes(id), id);
    await upsert(s, { id: 'urn:ngsi-ld:WasteContainer:w1', type: 'WasteContainer', fillingLevel: { type: 'Property', value: 0.93 }, batteryLevel: { type: 'Property', value: 0.05 } });
    const alarms = (await s.inject({ url: '/rules/v1/alarms?status=active' })).json();
    assert.deepEqual(alarms.map((a: { ruleId: string }) => a.ruleId).sort(), ['demo-battery-low', 'demo-waste-full']);
    const full = alarms.find((a: { ruleId: string }) => a.ruleId === 'demo-waste-full');
    assert.equal(full.description, 'Container urn:ngsi-ld:WasteContainer:w1 is 0.93 full');
    const sr = await s.inject({ url: `/ngsi-ld/v1/entities?type=ServiceRequest&options=keyValues` });
    assert.equal(sr.json().length, 2);
    const alerts = await s.inject({ url: `/ngsi-ld/v1/entities?type=Alert&options=keyValues` });
    assert.equal(alerts.json().length, 2);
  } finally {
    await s.close();
  }
});

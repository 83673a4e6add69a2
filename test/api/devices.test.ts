import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { testPlatform } from '../helpers/server.ts';
import { createDevicesModule } from '../../src/devices/module.ts';
import type { MqttService } from '../../src/devices/mqtt.ts';
import type { DeviceService } from '../../src/devices/service.ts';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';

const DV = 'https://uri.etsi.org/ngsi-ld/default-context/';
type S = Awaited<ReturnType<typeof testPlatform>>;
let s: S;
let mod: ReturnType<typeof createDevicesModule>;
let mqttUrl: string;
const svc = () => mod.service() as DeviceService;

before(async () => {
  mod = createDevicesModule();
  // auth on: MQTT devices must present credentials
  s = await testPlatform({ modules: [mod], listen: true, config: { auth: true } });
  mqttUrl = (s.platform.services.get('mqtt') as MqttService).url;
});
after(async () => {
  await s.close();
});

const H = (service = 'openiot', path = '/') => ({ 'fiware-service': service, 'fiware-servicepath': path, 'content-type': 'application/json' });

async function req(method: string, path: string, body?: unknown, headers: Record<string, string> = H()) {
  const r = await fetch(s.url + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: r.status, body: json as any, text };
}

/** Resolves with the first change event matching `pred` (subscribe before triggering). */
function waitFor(pred: (e: ChangeEvent) => boolean): Promise<ChangeEvent> {
  return new Promise((resolve) => {
    const un = s.platform.bus.subscribe((evs) => {
      for (const e of evs)
        if (pred(e)) {
          un();
          resolve(e);
          return;
        }
    });
  });
}
const changed = (id: string, attr: string) => (e: ChangeEvent) => e.entityId === id && e.changedAttrs.includes(DV + attr);
const val = (e: ChangeEvent, attr: string) => e.after?.attrs[DV + attr]?.[0];

async function entity(tenant: string, id: string) {
  return (await s.platform.broker.getEntity(tenant, id, { format: 'keyValues' })) as Record<string, any> | null;
}

test('provisioning round trip with FIWARE documentation payloads', async () => {
  // config group (api.md example, legacy "type" and cbHost/trust/lazy)
  const group = {
    services: [
      {
        resource: '/deviceTest',
        apikey: '801230BJKL23Y9090DSFL123HJK09H324HV8732',
        type: 'Light',
        trust: '8970A9078A803H3BL98PINEQRW8342HBAMS',
        cbHost: 'http://orion:1026',
        commands: [{ name: 'wheel1', type: 'Wheel' }],
        attributes: [{ name: 'luminescence', type: 'Integer', metadata: { unitCode: { type: 'Text', value: 'CAL' } } }],
        lazy: [{ name: 'status', type: 'Boolean' }],
      },
    ],
  };
  assert.equal((await req('POST', '/iot/services', group)).status, 201);
  assert.equal((await req('POST', '/iot/services', group)).status, 409);
  let g = await req('GET', '/iot/services');
  assert.equal(g.body.count, 1);
  assert.equal(g.body.services[0].entity_type, 'Light');
  assert.equal(g.body.services[0].cbHost, 'http://orion:1026');
  assert.equal((await req('PUT', '/iot/services?resource=/deviceTest&apikey=801230BJKL23Y9090DSFL123HJK09H324HV8732', { trust: 'NEWTRUST', cbHost: 'http://orion:1026' })).status, 204);
  g = await req('GET', '/iot/services', undefined, H('openiot', '/*'));
  assert.equal(g.body.services[0].trust, 'NEWTRUST');
  assert.equal((await req('GET', '/iot/services', undefined, H('other'))).body.count, 0);

  // device (api.md example)
  const dev = {
    devices: [
      {
        device_id: 'DevID1',
        entity_name: 'urn:ngsi-ld:Device:TheDevice1',
        entity_type: 'Device',
        attributes: [
          { object_id: 't', name: 'temperature', type: 'Float' },
          { object_id: 'h', name: 'humidity', type: 'Float' },
        ],
      },
    ],
  };
  assert.equal((await req('POST', '/iot/devices', dev)).status, 201);
  assert.equal((await req('POST', '/iot/devices', dev)).status, 409);
  const one = await req('GET', '/iot/devices/DevID1');
  assert.equal(one.status, 200);
  assert.equal(one.body.entity_name, 'urn:ngsi-ld:Device:TheDevice1');
  assert.equal(one.body.service, 'openiot');
  assert.equal(one.body.service_path, '/');
  const list = await req('GET', '/iot/devices?limit=10&offset=0');
  assert.equal(list.body.count, 1);
  // PUT example of api.md
  const put = await req('PUT', '/iot/devices/DevID1', {
    attributes: [
      { object_id: 't', name: 'temperature', type: 'Float' },
      { object_id: 'h', name: 'humidity', type: 'Float' },
      { object_id: 'p', name: 'pressure', type: 'Float' },
    ],
    lazy: [{ object_id: 'l', name: 'luminosity', type: 'percentage' }],
    commands: [{ object_id: 't', name: 'turn', type: 'Text' }],
    static_attributes: [{ name: 'serialID', type: '02598347' }],
  });
  assert.equal(put.status, 204);
  assert.equal((await req('GET', '/iot/devices/DevID1')).body.attributes.length, 3);
  // the device is an NGSI-LD Device entity (its entity type is already Device)
  const e = await entity('openiot', 'urn:ngsi-ld:Device:TheDevice1');
  assert.equal(e?.type, 'Device');
  assert.equal(e?.name, 'DevID1');
  assert.equal(e?.turn_status, 'UNKNOWN');

  // tutorial device with a static relationship: data entity + SDM Device linked both ways
  const t = await req('POST', '/iot/devices', {
    devices: [
      {
        device_id: 'temperature001',
        entity_name: 'urn:ngsi-ld:Temperature:001',
        entity_type: 'Temperature',
        timezone: 'Europe/Berlin',
        attributes: [{ object_id: 't', name: 'temperature', type: 'Integer' }],
        static_attributes: [{ name: 'refStore', type: 'Relationship', value: 'urn:ngsi-ld:Store:001' }],
      },
    ],
  });
  assert.equal(t.status, 201);
  const data = await entity('openiot', 'urn:ngsi-ld:Temperature:001');
  assert.equal(data?.refStore, 'urn:ngsi-ld:Store:001');
  const devEnt = await entity('openiot', data?.refDevice);
  assert.equal(devEnt?.type, 'Device');
  assert.equal(devEnt?.controlledAsset, 'urn:ngsi-ld:Temperature:001');
  assert.deepEqual(devEnt?.controlledProperty, ['temperature']);

  // errors use the FIWARE {name, message} members
  const bad = await req('POST', '/iot/devices', { devices: [{ entity_type: 'X' }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.name, 'WRONG_SYNTAX');
  assert.equal((await req('GET', '/iot/devices/nope')).status, 404);
  assert.equal((await req('DELETE', '/iot/devices/temperature001')).status, 204);
  assert.equal((await req('GET', '/iot/devices/temperature001')).status, 404);
  assert.equal((await req('DELETE', '/iot/services?resource=/deviceTest&apikey=801230BJKL23Y9090DSFL123HJK09H324HV8732')).status, 204);
  assert.equal((await req('GET', '/iot/services')).body.count, 0);
});

test('HTTP Ultralight 2.0 and JSON southbound, with device timestamps', async () => {
  await req('POST', '/iot/services', { services: [{ apikey: 'ulkey', resource: '/iot/d', entity_type: 'Thing', protocol: 'PDI-IoTA-UltraLight', attributes: [{ object_id: 't', name: 'temperature', type: 'Number' }, { object_id: 'h', name: 'relativeHumidity', type: 'Number' }] }] }, H('city'));
  await req('POST', '/iot/devices', { devices: [{ device_id: 'ul1', apikey: 'ulkey', transport: 'HTTP' }] }, H('city'));
  const id = 'urn:ngsi-ld:Thing:ul1';
  let w = waitFor(changed(id, 'temperature'));
  const r = await fetch(`${s.url}/iot/d?k=ulkey&i=ul1`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 't|25|h|40' });
  assert.equal(r.status, 200);
  let ev = await w;
  assert.equal(val(ev, 'temperature')?.value, 25);
  assert.ok(val(ev, 'temperature')?.observedAt);
  // multi-measure lines with timestamps: two separate updates (history keeps both)
  const seen: number[] = [];
  const both = new Promise<void>((res) => {
    const un = s.platform.bus.subscribe((evs) => {
      for (const e of evs)
        if (e.entityId === id && e.changedAttrs.includes(DV + 'temperature')) {
          seen.push(val(e, 'temperature')!.value as number);
          if (seen.length === 2) {
            un();
            res();
          }
        }
    });
  });
  await fetch(`${s.url}/iot/d?k=ulkey&i=ul1`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '2026-01-01T10:00:00Z|t|20\n2026-01-01T10:05:00Z|t|21' });
  await both;
  assert.deepEqual(seen, [20, 21]);
  const e = (await s.platform.broker.getEntity('city', id)) as any;
  assert.equal(e.temperature.observedAt, '2026-01-01T10:05:00.000Z');

  // JSON over HTTP (unprovisioned device, autoprovisioned by the group)
  await req('POST', '/iot/services', { services: [{ apikey: 'jsonkey', resource: '/iot/json', entity_type: 'Sensor' }] }, H('city'));
  w = waitFor(changed('urn:ngsi-ld:Sensor:auto9', 'l'));
  const j = await fetch(`${s.url}/iot/json?k=jsonkey&i=auto9&t=2026-02-02T02:02:02Z`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"h": "45%", "t": "23", "l": 1570}' });
  assert.equal(j.status, 200);
  ev = await w;
  assert.equal(val(ev, 'l')?.value, 1570);
  assert.equal(val(ev, 'l')?.observedAt, '2026-02-02T02:02:02.000Z');
  assert.equal((await req('GET', '/iot/devices/auto9', undefined, H('city'))).status, 200);

  // unknown apikey / device: refused and counted
  const before = svc().stats().rejected as Record<string, number>;
  const u = await fetch(`${s.url}/iot/d?k=nokey&i=x`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 't|1' });
  assert.equal(u.status, 404);
  assert.equal((svc().stats().rejected as Record<string, number>).unknown, before.unknown + 1);
});

test('malformed payloads are rejected, counted per device and visible; nothing crashes', async () => {
  await req('POST', '/iot/services', { services: [{ apikey: 'mkey', resource: '/iot/d', entity_type: 'Thing', attributes: [{ object_id: 't', name: 'temperature', type: 'Number' }] }] }, H('mal'));
  await req('POST', '/iot/devices', { devices: [{ device_id: 'm1', apikey: 'mkey' }] }, H('mal'));
  for (const body of ['t|', 't|1|h', 'garbage']) {
    const r = await fetch(`${s.url}/iot/d?k=mkey&i=m1`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
    assert.equal(r.status, 400, body);
  }
  const r = await fetch(`${s.url}/iot/json?k=mkey&i=m1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"t": ' });
  assert.equal(r.status, 400);
  // a value of the wrong type: the attribute is refused, counted, the rest goes in
  const w = waitFor(changed('urn:ngsi-ld:Thing:m1', 'x'));
  await fetch(`${s.url}/iot/d?k=mkey&i=m1`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 't|hot|x|1' });
  await w;
  const st = await req('GET', '/iot/devices/m1/status', undefined, H('mal'));
  assert.equal(st.body.malformed, 4);
  assert.match(st.body.lastError, /temperature: "hot" is not a number/);
  await svc().ingest.idle();
  const dev = await entity('mal', (await entity('mal', 'urn:ngsi-ld:Thing:m1'))!.refDevice);
  assert.equal(dev?.malformedMessages, 4);
});

async function connect(opts: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

test('MQTT JSON and Ultralight end to end with per-device credentials; commands round trip', async () => {
  await req('POST', '/iot/services', { services: [{ apikey: 'mqk', resource: '', entity_type: 'Streetlight', protocol: 'IoTA-JSON', transport: 'MQTT', attributes: [{ object_id: 'd', name: 'dimmingLevel', type: 'Number' }], commands: [{ name: 'dim', type: 'command' }] }] }, H('lights'));
  await req('POST', '/iot/devices', { devices: [{ device_id: 'lamp1', apikey: 'mqk', entity_name: 'urn:ngsi-ld:Streetlight:lamp1' }, { device_id: 'lamp2', apikey: 'mqk', protocol: 'PDI-IoTA-UltraLight' }] }, H('lights'));
  const cred = await req('POST', '/iot/devices/lamp1/credentials', {}, H('lights'));
  assert.equal(cred.status, 201);
  const token = cred.body.token as string;
  assert.ok(token.length > 20);
  const pw = await req('POST', '/iot/devices/lamp2/credentials', { password: 'lamp2-secret' }, H('lights'));
  assert.equal(pw.body.username, 'mqk/lamp2');

  // JSON measures over MQTT, token authentication
  const c1 = await connect({ username: 'token', password: token, clientId: 'lamp1' });
  let w = waitFor(changed('urn:ngsi-ld:Streetlight:lamp1', 'dimmingLevel'));
  await c1.publishAsync('/json/mqk/lamp1/attrs', JSON.stringify({ d: 80, TimeInstant: '2026-04-01T20:00:00Z' }), { qos: 1 });
  let ev = await w;
  assert.equal(val(ev, 'dimmingLevel')?.value, 80);
  assert.equal(val(ev, 'dimmingLevel')?.observedAt, '2026-04-01T20:00:00.000Z');
  // single attribute topic
  w = waitFor(changed('urn:ngsi-ld:Streetlight:lamp1', 'dimmingLevel'));
  await c1.publishAsync('/json/mqk/lamp1/attrs/d', '55', { qos: 1 });
  assert.equal(val(await w, 'dimmingLevel')?.value, 55);

  // Ultralight over MQTT, username/password
  const c2 = await connect({ username: 'mqk/lamp2', password: 'lamp2-secret', clientId: 'lamp2' });
  w = waitFor(changed('urn:ngsi-ld:Streetlight:lamp2', 'dimmingLevel'));
  await c2.publishAsync('/ul/mqk/lamp2/attrs', 'd|30', { qos: 1 });
  assert.equal(val(await w, 'dimmingLevel')?.value, 30);

  // actuation: the dim command attribute changes on the entity -> /mqk/lamp1/cmd -> cmdexe -> status OK
  await c1.subscribeAsync('/mqk/lamp1/cmd', { qos: 1 });
  const gotCmd = new Promise<string>((res) => c1.once('message', (_t, p) => res(p.toString())));
  const pending = waitFor((e) => e.entityId === 'urn:ngsi-ld:Streetlight:lamp1' && val(e, 'dim_status')?.value === 'PENDING');
  await s.platform.broker.updateAttrs('lights', 'urn:ngsi-ld:Streetlight:lamp1', { dim: { type: 'Property', value: { level: 40 } } });
  assert.deepEqual(JSON.parse(await gotCmd), { dim: { level: 40 } });
  await pending;
  const ok = waitFor((e) => e.entityId === 'urn:ngsi-ld:Streetlight:lamp1' && val(e, 'dim_status')?.value === 'OK');
  await c1.publishAsync('/json/mqk/lamp1/cmdexe', JSON.stringify({ dim: 'dimmed to 40' }), { qos: 1 });
  ev = await ok;
  assert.equal(val(ev, 'dim_info')?.value, 'dimmed to 40');

  // UL command to an UL device
  await c2.subscribeAsync('/mqk/lamp2/cmd', { qos: 1 });
  const gotUl = new Promise<string>((res) => c2.once('message', (_t, p) => res(p.toString())));
  await s.platform.broker.updateAttrs('lights', 'urn:ngsi-ld:Streetlight:lamp2', { dim: { type: 'Property', value: 10 } });
  assert.equal(await gotUl, 'lamp2@dim|10');
  const ok2 = waitFor((e) => e.entityId === 'urn:ngsi-ld:Streetlight:lamp2' && val(e, 'dim_status')?.value === 'OK');
  await c2.publishAsync('/ul/mqk/lamp2/cmdexe', 'lamp2@dim|done', { qos: 1 });
  assert.equal(val(await ok2, 'dim_info')?.value, 'done');

  // malformed MQTT payload: counted, the connection stays up
  await c2.publishAsync('/ul/mqk/lamp2/attrs', 'd|', { qos: 1 });
  w = waitFor(changed('urn:ngsi-ld:Streetlight:lamp2', 'dimmingLevel'));
  await c2.publishAsync('/ul/mqk/lamp2/attrs', 'd|31', { qos: 1 });
  assert.equal(val(await w, 'dimmingLevel')?.value, 31);
  assert.equal((await req('GET', '/iot/devices/lamp2/status', undefined, H('lights'))).body.malformed, 1);

  await c1.endAsync();
  await c2.endAsync();
});

test('credential rejection: anonymous, wrong password, unknown, other device topic, revoked, rotated', async () => {
  await req('POST', '/iot/services', { services: [{ apikey: 'seck', entity_type: 'Thing', transport: 'MQTT' }] }, H('sec'));
  await req('POST', '/iot/devices', { devices: [{ device_id: 's1', apikey: 'seck' }, { device_id: 's2', apikey: 'seck' }] }, H('sec'));
  const { token } = (await req('POST', '/iot/devices/s1/credentials', {}, H('sec'))).body;
  const stats = () => svc().stats().rejected as Record<string, number>;
  const r0 = { ...stats() };

  await assert.rejects(connect({ clientId: 'anon' }), /Not authorized|Bad username|bad user/i);
  await assert.rejects(connect({ username: 'seck/s1', password: 'wrong-password' }), /Not authorized|Bad username|bad user/i);
  await assert.rejects(connect({ username: 'seck/ghost', password: 'whatever-123' }), /Not authorized|Bad username|bad user/i);
  await assert.rejects(connect({ username: 'token', password: 'not-a-token-at-all' }), /Not authorized|Bad username|bad user/i);
  assert.ok(stats().badCredentials >= r0.badCredentials + 2);
  assert.ok(stats().unknown >= r0.unknown + 2);

  // publishing for another device closes the connection
  const c = await connect({ username: 'token', password: token, clientId: 's1' });
  const closed = new Promise<void>((res) => c.once('close', () => res()));
  c.publish('/json/seck/s2/attrs', '{"a":1}', { qos: 1 });
  await closed;
  c.end(true);
  assert.ok(stats().forbidden >= r0.forbidden + 1);

  // rotation: a new token replaces the old one
  const { token: t2 } = (await req('POST', '/iot/devices/s1/credentials', {}, H('sec'))).body;
  await assert.rejects(connect({ username: 'token', password: token }), /Not authorized|Bad username|bad user/i);
  const c2 = await connect({ username: 'token', password: t2 });
  // revocation disconnects and refuses the device
  const closed2 = new Promise<void>((res) => c2.once('close', () => res()));
  assert.equal((await req('DELETE', '/iot/devices/s1/credentials', undefined, H('sec'))).status, 204);
  await closed2;
  c2.end(true);
  await assert.rejects(connect({ username: 'token', password: t2 }), /Not authorized|Bad username|bad user/i);
  const http = await fetch(`${s.url}/iot/json?k=seck&i=s1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  assert.equal(http.status, 400);
  assert.equal(((await http.json()) as { name: string }).name, 'DEVICE_REVOKED');
  assert.ok(stats().revoked >= r0.revoked + 1);
  // HTTP device with credentials must send its token
  const { token: t3 } = (await req('POST', '/iot/devices/s2/credentials', {}, H('sec'))).body;
  const noTok = await fetch(`${s.url}/iot/json?k=seck&i=s2`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  assert.equal(noTok.status, 401);
  const withTok = await fetch(`${s.url}/iot/json?k=seck&i=s2`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t3}` }, body: '{"a":1}' });
  assert.equal(withTok.status, 200);
});

// ChirpStack v4 HTTP integration, event=up (JSON marshaler), shape of the ChirpStack docs example.
const CHIRPSTACK_UP = {
  deduplicationId: '3ac7e3c4-4401-4b8d-9386-a5c902f9202d',
  time: '2022-07-18T09:34:15.775023242+00:00',
  deviceInfo: {
    tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242',
    tenantName: 'ChirpStack',
    applicationId: '17c82e96-be03-4f38-aef3-f83d48582d97',
    applicationName: 'Test application',
    deviceProfileId: '14855bf7-d10d-4aee-b618-ebfcb64dc7ad',
    deviceProfileName: 'Test device-profile',
    deviceName: 'Test device',
    devEui: '0101010101010101',
    tags: { key: 'value' },
  },
  devAddr: '00189440',
  dr: 1,
  fCnt: 4,
  fPort: 1,
  data: 'qg==',
  object: { temperature: 22.5, humidity: 61 },
  rxInfo: [
    { gatewayId: '0016c001f153a14c', uplinkId: 4217106255, rssi: -36, snr: 10.5, context: 'E3OWOQ==', metadata: { region_name: 'eu868', region_common_name: 'EU868' } },
    { gatewayId: '0016c001f1500000', uplinkId: 1, rssi: -90, snr: 2 },
  ],
  txInfo: { frequency: 867100000, modulation: { lora: { bandwidth: 125000, spreadingFactor: 7, codeRate: 'CR_4_5' } } },
};

// The Things Stack v3 uplink message, shape of the TTS "Data formats" documentation.
const TTS_UPLINK = {
  end_device_ids: {
    device_id: 'dev1',
    application_ids: { application_id: 'app1' },
    dev_eui: '0004A30B001C0530',
    join_eui: '800000000000000C',
    dev_addr: '00BCB929',
  },
  correlation_ids: ['as:up:01E0ZW16KQ2M1BG5S4WCMJZTQJ', 'gs:conn:01E0ZVNDGJ0YWPBY1RGF3Z5N3A'],
  received_at: '2020-02-12T15:15:45.787Z',
  uplink_message: {
    session_key_id: 'AXA50...',
    f_port: 15,
    f_cnt: 7,
    frm_payload: 'YWFhYWFhYWFhYWFhYWFhYWFhYWE=',
    decoded_payload: { temperature: 21.4, battery: 3.3 },
    rx_metadata: [
      {
        gateway_ids: { gateway_id: 'gtw1', eui: '9C5C8E00001A05C4' },
        time: '2020-02-12T15:15:45.787Z',
        timestamp: 2463457000,
        rssi: -35,
        channel_rssi: -35,
        snr: 5.2,
        location: { latitude: 37.97155556731436, longitude: 23.72678801175413, altitude: 2, source: 'SOURCE_REGISTRY' },
        uplink_token: 'ChIKEAoEZ3R3MRIICcXiwgD//w==',
        channel_index: 6,
      },
    ],
    settings: { data_rate: { lora: { bandwidth: 125000, spreading_factor: 7 } }, coding_rate: '4/6', frequency: '868500000', timestamp: 2463457000, time: '2020-02-12T15:15:45.787Z' },
    received_at: '2020-02-12T15:15:45.787Z',
    consumed_airtime: '0.056576s',
  },
};

test('LoRaWAN webhooks: ChirpStack v4 up event and The Things Stack v3 uplink', async () => {
  await req('POST', '/iot/services', { services: [{ apikey: 'lora', entity_type: 'AirQualityObserved', transport: 'LORAWAN', attributes: [{ object_id: 'temperature', name: 'temperature', type: 'Number' }] }] }, H('lw'));
  await req('POST', '/iot/devices', {
    devices: [
      { device_id: 'cs1', apikey: 'lora', internal_attributes: { lorawan: { dev_eui: '0101010101010101' } } },
      { device_id: 'tts1', apikey: 'lora', internal_attributes: { lorawan: { dev_eui: '0004A30B001C0530' } } },
    ],
  }, H('lw'));
  let w = waitFor(changed('urn:ngsi-ld:AirQualityObserved:cs1', 'temperature'));
  let r = await fetch(`${s.url}/iot/lorawan/chirpstack?event=up&k=lora`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHIRPSTACK_UP) });
  assert.equal(r.status, 200);
  let ev = await w;
  assert.equal(val(ev, 'temperature')?.value, 22.5);
  assert.equal(val(ev, 'temperature')?.observedAt, '2022-07-18T09:34:15.775Z');
  await svc().ingest.idle();
  const dev = await entity('lw', (await entity('lw', 'urn:ngsi-ld:AirQualityObserved:cs1'))!.refDevice);
  assert.equal(dev?.rssi, -36);
  assert.equal(dev?.snr, 10.5);
  assert.equal(dev?.gatewayId, '0016c001f153a14c');

  w = waitFor(changed('urn:ngsi-ld:AirQualityObserved:tts1', 'temperature'));
  r = await fetch(`${s.url}/iot/lorawan/tts`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'lora' }, body: JSON.stringify(TTS_UPLINK) });
  assert.equal(r.status, 200);
  ev = await w;
  assert.equal(val(ev, 'temperature')?.value, 21.4);
  assert.equal(val(ev, 'battery')?.value, 3.3);

  // other events are ignored; wrong apikey, unknown DevEUI and malformed bodies are refused
  assert.equal((await fetch(`${s.url}/iot/lorawan/chirpstack?event=join&k=lora`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 204);
  assert.equal((await fetch(`${s.url}/iot/lorawan/chirpstack?event=up&k=wrong`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHIRPSTACK_UP) })).status, 401);
  const unknown = { ...CHIRPSTACK_UP, deviceInfo: { ...CHIRPSTACK_UP.deviceInfo, devEui: 'ffffffffffffffff' } };
  assert.equal((await fetch(`${s.url}/iot/lorawan/chirpstack?event=up&k=lora`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(unknown) })).status, 404);
  assert.equal((await fetch(`${s.url}/iot/lorawan/tts?k=lora`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"uplink_message": 1}' })).status, 400);
});

test('HTTP commands: push to the device endpoint (FIWARE bell001) and polling with getCmd=1', async () => {
  const { createServer } = await import('node:http');
  // the device: answers UL commands with a result
  let received = '';
  const srv = createServer((rq, rs) => {
    let b = '';
    rq.on('data', (d) => (b += d));
    rq.on('end', () => {
      received = b;
      rs.writeHead(200, { 'content-type': 'text/plain' }).end('bell001@ring|rung');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await req('POST', '/iot/services', { services: [{ apikey: 'httpk', resource: '/iot/d', entity_type: 'Bell', protocol: 'PDI-IoTA-UltraLight', transport: 'HTTP' }] }, H('shop'));
  await req('POST', '/iot/devices', {
    devices: [
      { device_id: 'bell001', apikey: 'httpk', entity_name: 'urn:ngsi-ld:Bell:001', entity_type: 'Bell', protocol: 'PDI-IoTA-UltraLight', transport: 'HTTP', endpoint: `http://127.0.0.1:${port}/iot/bell001`, commands: [{ name: 'ring', type: 'command' }] },
      { device_id: 'bell002', apikey: 'httpk', entity_name: 'urn:ngsi-ld:Bell:002', entity_type: 'Bell', protocol: 'PDI-IoTA-UltraLight', transport: 'HTTP', commands: [{ name: 'ring', type: 'command' }] },
    ],
  }, H('shop'));
  const ok = waitFor((e) => e.entityId === 'urn:ngsi-ld:Bell:001' && val(e, 'ring_status')?.value === 'OK');
  const r = await fetch(`${s.url}/ngsi-ld/v1/entities/urn:ngsi-ld:Bell:001/attrs/ring`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'NGSILD-Tenant': 'shop' }, body: JSON.stringify({ type: 'Property', value: '' + 'now' }) });
  assert.equal(r.status, 204);
  const ev = await ok;
  assert.equal(received, 'bell001@ring|now');
  assert.equal(val(ev, 'ring_info')?.value, 'rung');
  srv.close();

  // polling device: the command waits until the device asks for it
  const pending = waitFor((e) => e.entityId === 'urn:ngsi-ld:Bell:002' && val(e, 'ring_status')?.value === 'PENDING');
  await s.platform.broker.updateAttrs('shop', 'urn:ngsi-ld:Bell:002', { ring: { type: 'Property', value: 'twice' } });
  await pending;
  const delivered = waitFor((e) => e.entityId === 'urn:ngsi-ld:Bell:002' && val(e, 'ring_status')?.value === 'DELIVERED');
  const poll = await fetch(`${s.url}/iot/d?k=httpk&i=bell002&getCmd=1`);
  assert.equal(await poll.text(), 'bell002@ring|twice');
  await delivered;
  const done = waitFor((e) => e.entityId === 'urn:ngsi-ld:Bell:002' && val(e, 'ring_status')?.value === 'OK');
  await fetch(`${s.url}/iot/d?k=httpk&i=bell002`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'bell002@ring|rang twice' });
  assert.equal(val(await done, 'ring_info')?.value, 'rang twice');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PayloadError,
  commandTopic,
  formatJsonCommand,
  formatUltralightCommand,
  parseDeviceTime,
  parseJsonCommandResult,
  parseJsonMeasures,
  parseJsonSingle,
  parseTopic,
  parseUltralight,
  parseUltralightCommandResult,
  parseUltralightSingle,
} from '../../src/devices/domain/payloads.ts';
import { loraMeasures, loraMetadata, parseChirpStackUp, parseTtsUplink } from '../../src/devices/domain/lorawan.ts';

test('Ultralight 2.0 measures (iotagent-ul manual examples)', () => {
  assert.deepEqual(parseUltralight('t|15|k|abc'), [{ values: { t: '15', k: 'abc' } }]);
  assert.deepEqual(parseUltralight('gps|1.2/3.4#t|10'), [{ values: { gps: '1.2/3.4' } }, { values: { t: '10' } }]);
  assert.deepEqual(parseUltralight('2016-06-13T00:35:30Z|lle|100'), [{ values: { lle: '100' }, observedAt: '2016-06-13T00:35:30.000Z' }]);
  assert.deepEqual(parseUltralight(Buffer.from('t|25|h|40')), [{ values: { t: '25', h: '40' } }]);
});

test('Ultralight multi-measure lines with timestamps', () => {
  const g = parseUltralight('2026-01-01T10:00:00Z|t|20\n2026-01-01T10:05:00+01:00|t|21\nt|22');
  assert.equal(g.length, 3);
  assert.equal(g[0].observedAt, '2026-01-01T10:00:00.000Z');
  assert.equal(g[1].observedAt, '2026-01-01T09:05:00.000Z');
  assert.equal(g[2].observedAt, undefined);
});

test('malformed Ultralight is rejected with PayloadError', () => {
  for (const bad of ['', 't|', 't|1|h', 'notatime|t|1', '|1', 'a b|1', Buffer.from([0xff, 0xfe, 0x00])])
    assert.throws(() => parseUltralight(bad as string), PayloadError, String(bad));
  assert.throws(() => parseUltralight('x'.repeat(300_000)), /too large/);
  assert.throws(() => parseUltralightSingle('t', '1|2'), PayloadError);
  assert.deepEqual(parseUltralightSingle('t', '25'), [{ values: { t: '25' } }]);
});

test('Ultralight commands and command results', () => {
  assert.equal(formatUltralightCommand('weatherStation167', 'ping', { param1: 1, param2: 2 }), 'weatherStation167@ping|param1=1|param2=2');
  assert.equal(formatUltralightCommand('light1', 'dim', 40), 'light1@dim|40');
  assert.equal(formatUltralightCommand('bell001', 'ring', ''), 'bell001@ring');
  assert.deepEqual(parseUltralightCommandResult('weatherStation167@ping|Ping ok'), [{ device: 'weatherStation167', command: 'ping', result: 'Ping ok' }]);
  assert.throws(() => parseUltralightCommandResult('no-at-sign'), PayloadError);
});

test('JSON measures (iotagent-json manual examples)', () => {
  assert.deepEqual(parseJsonMeasures('{"h": "45%", "t": "23", "l": "1570"}'), [{ values: { h: '45%', t: '23', l: '1570' } }]);
  const multi = parseJsonMeasures('[{"h": "45%","t": "23","l": "1570"},{"h": "47%","t": "21","l": "1321"}]');
  assert.equal(multi.length, 2);
  assert.deepEqual(parseJsonMeasures({ t: 21, TimeInstant: '2026-03-01T12:00:00Z' }), [{ values: { t: 21 }, observedAt: '2026-03-01T12:00:00.000Z' }]);
  assert.deepEqual(parseJsonMeasures('{"l": { "a": 2, "b": "up", "c": ["1", "3"] }}')[0].values.l, { a: 2, b: 'up', c: ['1', '3'] });
  for (const bad of ['{bad', '42', '[]', '[1]', '{}', '{"TimeInstant":"nope","t":1}', '{"a/b":1}'])
    assert.throws(() => parseJsonMeasures(bad), PayloadError, bad);
});

test('JSON single attribute: value, raw text, timestamped array', () => {
  assert.deepEqual(parseJsonSingle('h', '70'), [{ values: { h: 70 } }]);
  assert.deepEqual(parseJsonSingle('attrHex', 'hello'), [{ values: { attrHex: 'hello' } }]);
  assert.deepEqual(parseJsonSingle('h', '[{"timestamp": "2025-01-26T12:00:00Z", "value":44},{"timestamp": "2025-01-27T09:00:00Z", "value":33}]'), [
    { values: { h: 44 }, observedAt: '2025-01-26T12:00:00.000Z' },
    { values: { h: 33 }, observedAt: '2025-01-27T09:00:00.000Z' },
  ]);
});

test('JSON commands and cmdexe (iotagent-json manual)', () => {
  assert.equal(formatJsonCommand('ping', { data: '22' }), '{"ping":{"data":"22"}}');
  assert.deepEqual(parseJsonCommandResult('{"ping": "1234567890"}'), [{ command: 'ping', result: '1234567890' }]);
  assert.throws(() => parseJsonCommandResult('[1]'), PayloadError);
});

test('topics', () => {
  assert.deepEqual(parseTopic('/json/ABCDEF/id_sen1/attrs'), { protocol: 'json', apikey: 'ABCDEF', deviceId: 'id_sen1', kind: 'attrs' });
  assert.deepEqual(parseTopic('/json/ABCDEF/id_sen1/attrs/h'), { protocol: 'json', apikey: 'ABCDEF', deviceId: 'id_sen1', kind: 'attr', attr: 'h' });
  assert.deepEqual(parseTopic('/ul/k1/dev1/cmdexe'), { protocol: 'ul', apikey: 'k1', deviceId: 'dev1', kind: 'cmdexe' });
  assert.deepEqual(parseTopic('k1/dev1/attrs'), { protocol: undefined, apikey: 'k1', deviceId: 'dev1', kind: 'attrs' });
  assert.equal(parseTopic('/json/k1/dev1/other'), undefined);
  assert.equal(parseTopic('/json/k1'), undefined);
  assert.equal(commandTopic('ABCDEF', 'id_sen1'), '/ABCDEF/id_sen1/cmd');
});

test('device time formats', () => {
  assert.equal(parseDeviceTime('20160125T092703Z'), '2016-01-25T09:27:03.000Z');
  assert.equal(parseDeviceTime(1637245214901), '2021-11-18T14:20:14.901Z');
  assert.equal(parseDeviceTime(1637245214), '2021-11-18T14:20:14.000Z');
  assert.equal(parseDeviceTime('2026-02-30T00:00:00Z'), '2026-03-02T00:00:00.000Z'.replace('03-02', '03-02'));
  assert.equal(parseDeviceTime('yesterday'), undefined);
});

// ChirpStack v4 HTTP integration, event=up (JSON marshaler), shape of the ChirpStack docs example.
export const CHIRPSTACK_UP = {
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
export const TTS_UPLINK = {
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

test('ChirpStack v4 up event', () => {
  const u = parseChirpStackUp(CHIRPSTACK_UP);
  assert.equal(u.devEui, '0101010101010101');
  assert.deepEqual(u.decoded, { temperature: 22.5, humidity: 61 });
  assert.equal(u.rssi, -36);
  assert.equal(u.snr, 10.5);
  assert.equal(u.gatewayId, '0016c001f153a14c');
  assert.equal(u.time, '2022-07-18T09:34:15.775Z');
  assert.deepEqual(loraMeasures(u), [{ values: { temperature: 22.5, humidity: 61 }, observedAt: '2022-07-18T09:34:15.775Z' }]);
  assert.deepEqual(loraMetadata(u), { rssi: -36, snr: 10.5, gatewayId: '0016c001f153a14c', fCnt: 4, fPort: 1 });
});

test('ChirpStack v3 JSON (base64 devEUI, objectJSON, loRaSNR) is accepted', () => {
  const u = parseChirpStackUp({
    applicationID: '123',
    deviceName: 'garden-sensor',
    devEUI: 'AgICAgICAgI=',
    rxInfo: [{ gatewayID: 'AwMDAwMDAwM=', time: '2019-11-08T13:59:25.048445Z', rssi: -48, loRaSNR: 9 }],
    fCnt: 10,
    fPort: 5,
    data: '...',
    objectJSON: '{"temperatureSensor":{"1":25},"humiditySensor":{"1":32}}',
  });
  assert.equal(u.devEui, '0202020202020202');
  assert.equal(u.snr, 9);
  assert.equal(u.gatewayId, '0303030303030303');
  assert.equal(u.time, '2019-11-08T13:59:25.048Z');
});

test('The Things Stack v3 uplink', () => {
  const u = parseTtsUplink(TTS_UPLINK);
  assert.equal(u.devEui, '0004A30B001C0530');
  assert.deepEqual(u.decoded, { temperature: 21.4, battery: 3.3 });
  assert.equal(u.rssi, -35);
  assert.equal(u.snr, 5.2);
  assert.equal(u.gatewayId, 'gtw1');
  assert.equal(u.time, '2020-02-12T15:15:45.787Z');
  assert.equal(u.fCnt, 7);
});

test('LoRaWAN malformed events', () => {
  assert.throws(() => parseChirpStackUp({ deviceInfo: { devEui: 'xyz' } }), PayloadError);
  assert.throws(() => parseChirpStackUp('nope'), PayloadError);
  assert.throws(() => parseTtsUplink({ end_device_ids: { dev_eui: '0004A30B001C0530' } }), /not an uplink/);
  assert.throws(() => loraMeasures(parseChirpStackUp({ ...CHIRPSTACK_UP, object: undefined })), /decoded payload/);
  assert.throws(() => parseChirpStackUp({ ...CHIRPSTACK_UP, object: [1, 2] }), PayloadError);
});

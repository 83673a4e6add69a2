import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemError } from '../../src/common/problem.ts';
import {
  autoprovisionDevice,
  deviceToApi,
  effectiveDevice,
  mergeDeviceUpdate,
  mergeGroupUpdate,
  parseDevicesBody,
  parseGroupsBody,
  scopeFromHeaders,
  toEntityUri,
} from '../../src/devices/domain/provisioning.ts';
import { mapMeasures, toGeometry } from '../../src/devices/domain/mapping.ts';
import { commandStatusFragment, deviceEntityId, provisionedEntities } from '../../src/devices/domain/entities.ts';
import { parseUltralight, parseJsonMeasures } from '../../src/devices/domain/payloads.ts';

const scope = scopeFromHeaders({ 'fiware-service': 'openiot', 'fiware-servicepath': '/' });

// ---- payloads copied from the FIWARE documentation (iotagent-node-lib doc/api.md, tutorials)

const DOC_GROUP = {
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

const TUTORIAL_GROUP = {
  services: [{ apikey: '4jggokgpepnvsb2uv4s40d59ov', cbroker: 'http://orion:1026', entity_type: 'Thing', resource: '/iot/d' }],
};

const DOC_METADATA_GROUP = {
  services: [
    {
      apikey: 'lampkey',
      entity_type: 'Lamp',
      resource: '/iot/d',
      protocol: 'PDI-IoTA-UltraLight',
      commands: [
        { name: 'on', type: 'command' },
        { name: 'off', type: 'command' },
      ],
      attributes: [
        { object_id: 's', name: 'state', type: 'Text' },
        { object_id: 'l', name: 'luminosity', type: 'Integer', metadata: { unitCode: { type: 'Text', value: 'CAL' } } },
      ],
      static_attributes: [
        { name: 'category', type: 'Text', value: ['actuator', 'sensor'] },
        {
          name: 'controlledProperty',
          type: 'Text',
          value: ['light'],
          metadata: { includes: { type: 'Text', value: ['state', 'luminosity'] }, alias: { type: 'Text', value: 'lamp' } },
        },
      ],
    },
  ],
};

const DOC_DEVICE = {
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

const TUTORIAL_DEVICE = {
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
};

const TUTORIAL_ACTUATOR = {
  devices: [
    {
      device_id: 'bell001',
      entity_name: 'urn:ngsi-ld:Bell:001',
      entity_type: 'Bell',
      protocol: 'PDI-IoTA-UltraLight',
      transport: 'HTTP',
      endpoint: 'http://iot-sensors:3001/iot/bell001',
      commands: [{ name: 'ring', type: 'command' }],
      static_attributes: [{ name: 'refStore', type: 'Relationship', value: 'urn:ngsi-ld:Store:001' }],
    },
  ],
};

const DOC_EXPRESSION_DEVICE = {
  devices: [
    {
      device_id: '45',
      protocol: 'GENERIC_PROTO',
      entity_name: 'WasteContainer:WC45',
      entity_type: 'WasteContainer',
      attributes: [
        { name: 'location', type: 'geo:json', expression: "{coordinates: [longitude,latitude], type: 'Point'}" },
        { name: 'fillingLevel', type: 'Number', expression: 'level / 100' },
        { name: 'level', type: 'Number' },
        { name: 'latitude', type: 'Number' },
        { name: 'longitude', type: 'Number' },
      ],
    },
  ],
};

const DOC_MULTIENTITY = {
  devices: [
    {
      protocol: 'IoTA-UL',
      entity_name: 'urn:ngsi-ld:Device:contador12',
      entity_type: 'multientity',
      attributes: [
        { object_id: 'cont1', name: 'vol', type: 'Text', entity_name: 'urn:ngsi-ld:Device:WaterMeterSoria01', entity_type: 'WaterMeter' },
        { object_id: 'cont2', name: 'vol', type: 'Text', entity_name: 'urn:ngsi-ld:Device:WaterMeterSoria02', entity_type: 'WaterMeter' },
        { object_id: 'cont3', name: 'vol', type: 'Text', entity_name: 'urn:ngsi-ld:Device:WaterMeterSoria03', entity_type: 'WaterMeter' },
      ],
      device_id: 'contador12',
    },
  ],
};

const DOC_PUT_DEVICE = {
  attributes: [
    { object_id: 't', name: 'temperature', type: 'Float' },
    { object_id: 'h', name: 'humidity', type: 'Float' },
    { object_id: 'p', name: 'pressure', type: 'Float' },
  ],
  lazy: [{ object_id: 'l', name: 'luminosity', type: 'percentage' }],
  commands: [{ object_id: 't', name: 'turn', type: 'Text' }],
  static_attributes: [{ name: 'serialID', type: '02598347' }],
};

const noGroup = () => undefined;

test('fiware-service / fiware-servicepath headers map to a tenant scope', () => {
  assert.deepEqual(scopeFromHeaders({}), { tenant: '', service: '', servicePath: '/' });
  assert.deepEqual(scopeFromHeaders({ 'fiware-service': 'SmartGondor', 'fiware-servicepath': '/gardens/' }), { tenant: 'smartgondor', service: 'smartgondor', servicePath: '/gardens' });
  assert.equal(scopeFromHeaders({ 'fiware-servicepath': '/*' }, true).servicePath, '/*');
  assert.throws(() => scopeFromHeaders({ 'fiware-servicepath': '/*' }), ProblemError);
  assert.throws(() => scopeFromHeaders({ 'fiware-service': 'bad service!' }), ProblemError);
  assert.throws(() => scopeFromHeaders({ 'fiware-servicepath': 'noslash' }), ProblemError);
});

test('config groups from the FIWARE docs are accepted as they are', () => {
  const [g] = parseGroupsBody(DOC_GROUP, scope);
  assert.equal(g.entity_type, 'Light'); // legacy "type"
  assert.equal(g.cbHost, 'http://orion:1026');
  assert.equal(g.trust, '8970A9078A803H3BL98PINEQRW8342HBAMS');
  assert.equal(g.autoprovision, true);
  assert.equal(g.service, 'openiot');
  assert.equal(g.subservice, '/');
  assert.deepEqual(g.lazy, [{ name: 'status', type: 'Boolean' }]);
  const [t] = parseGroupsBody(TUTORIAL_GROUP, scope);
  assert.equal(t.cbroker, 'http://orion:1026');
  assert.equal(t.resource, '/iot/d');
  const [m] = parseGroupsBody(DOC_METADATA_GROUP, scope);
  assert.equal(m.static_attributes.length, 2);
  assert.equal(m.commands.length, 2);
});

test('config group validation', () => {
  assert.throws(() => parseGroupsBody({}, scope), /services/);
  assert.throws(() => parseGroupsBody({ services: [{ resource: '/x' }] }, scope), /apikey/);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'a/b' }] }, scope), /apikey/);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'k', attributes: {} }] }, scope), /array/);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'k', attributes: [{ type: 'Number' }] }] }, scope), /name/);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'k', attributes: [{ name: 'a', expression: '1 +' }] }] }, scope), /invalid expression/);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'k', resource: '/r' }, { apikey: 'k', resource: '/r' }] }, scope), (e: ProblemError) => e.status === 409);
  assert.throws(() => parseGroupsBody({ services: [{ apikey: 'k', health: { ranges: { t: [5, 1] } } }] }, scope), /min, max/);
  const [g] = parseGroupsBody({ services: [{ apikey: 'k', explicitAttrs: "['temperature', {object_id:'h'}]" }] }, scope);
  assert.equal(g.explicitAttrs, "['temperature', {object_id:'h'}]");
  const upd = mergeGroupUpdate(g, { trust: 'T', cbHost: 'http://orion:1026' });
  assert.equal(upd.trust, 'T');
  assert.equal(upd.apikey, 'k');
});

test('devices from the FIWARE docs are accepted as they are', () => {
  const [d] = parseDevicesBody(DOC_DEVICE, scope, noGroup);
  assert.equal(d.entity_name, 'urn:ngsi-ld:Device:TheDevice1');
  assert.equal(d.service_path, '/');
  const [t] = parseDevicesBody(TUTORIAL_DEVICE, scope, noGroup);
  assert.equal(t.timezone, 'Europe/Berlin');
  const [b] = parseDevicesBody(TUTORIAL_ACTUATOR, scope, noGroup);
  assert.equal(b.transport, 'HTTP');
  assert.equal(b.endpoint, 'http://iot-sensors:3001/iot/bell001');
  const [w] = parseDevicesBody(DOC_EXPRESSION_DEVICE, scope, noGroup);
  assert.equal(w.entity_name, 'WasteContainer:WC45');
  const [m] = parseDevicesBody(DOC_MULTIENTITY, scope, noGroup);
  assert.equal(m.attributes.length, 3);
  const api = deviceToApi(t);
  assert.equal(api.device_id, 'temperature001');
  assert.equal(api.service, 'openiot');
  assert.deepEqual(api.lazy, []);
  const upd = mergeDeviceUpdate(d, DOC_PUT_DEVICE);
  assert.equal(upd.attributes.length, 3);
  assert.equal(upd.entity_name, 'urn:ngsi-ld:Device:TheDevice1');
  assert.equal(upd.commands[0].name, 'turn');
});

test('device validation and defaults', () => {
  assert.throws(() => parseDevicesBody({ devices: [{}] }, scope, noGroup), /device_id/);
  assert.throws(() => parseDevicesBody({ devices: [{ device_id: 'a/b' }] }, scope, noGroup), /device_id/);
  assert.throws(() => parseDevicesBody({ devices: [{ device_id: 'a', transport: 'PIGEON' }] }, scope, noGroup), /transport/);
  assert.throws(() => parseDevicesBody({ devices: [{ device_id: 'a' }, { device_id: 'a' }] }, scope, noGroup), (e: ProblemError) => e.status === 409);
  assert.throws(() => parseDevicesBody({ devices: [{ device_id: 'a', internal_attributes: { lorawan: { dev_eui: 'zz' } } }] }, scope, noGroup), /dev_eui/);
  const [group] = parseGroupsBody(TUTORIAL_GROUP, scope);
  const [d] = parseDevicesBody({ devices: [{ device_id: 'motion001', apikey: group.apikey }] }, scope, () => group);
  assert.equal(d.entity_type, 'Thing');
  assert.equal(d.entity_name, 'urn:ngsi-ld:Thing:motion001');
  assert.equal(toEntityUri('Room1', 'Room'), 'urn:ngsi-ld:Room:Room1');
  const [l] = parseDevicesBody({ devices: [{ device_id: 'lora1', internal_attributes: { lorawan: { dev_eui: '0004a30b001c0530' } } }] }, scope, noGroup);
  assert.equal(l.dev_eui, '0004A30B001C0530');
  const auto = autoprovisionDevice('sensor9', group, 'HTTP');
  assert.equal(auto.entity_name, 'urn:ngsi-ld:Thing:sensor9');
});

const received = '2026-05-01T10:00:00.000Z';

test('measure mapping: object_id -> name/type, unitCode, observedAt, unmapped measures', () => {
  const [g] = parseGroupsBody(DOC_METADATA_GROUP, scope);
  const [d] = parseDevicesBody({ devices: [{ device_id: 'lamp1', apikey: 'lampkey' }] }, scope, () => g);
  const eff = effectiveDevice(d, g);
  const r = mapMeasures(eff, parseUltralight('s|ON|l|1200|x|3.5'), { receivedAt: received, textValues: true });
  assert.deepEqual(r.errors, []);
  assert.equal(r.updates.length, 1);
  const u = r.updates[0];
  assert.equal(u.id, 'urn:ngsi-ld:Lamp:lamp1');
  assert.deepEqual(u.attrs.state, { type: 'Property', value: 'ON', observedAt: received });
  assert.deepEqual(u.attrs.luminosity, { type: 'Property', value: 1200, observedAt: received, unitCode: 'CAL' });
  assert.deepEqual(u.attrs.x, { type: 'Property', value: 3.5, observedAt: received });
  // device timestamp wins
  const r2 = mapMeasures(eff, parseUltralight('2026-05-01T09:00:00Z|l|7'), { receivedAt: received, textValues: true });
  assert.equal(r2.updates[0].attrs.luminosity.observedAt, '2026-05-01T09:00:00.000Z');
});

test('measure mapping: wrong values are reported per attribute, the rest goes in', () => {
  const [d] = parseDevicesBody(DOC_DEVICE, scope, noGroup);
  const r = mapMeasures(effectiveDevice(d), parseUltralight('t|warm|h|40'), { receivedAt: received, textValues: true });
  assert.deepEqual(r.errors, [{ attr: 'temperature', message: '"warm" is not a number' }]);
  assert.deepEqual(Object.keys(r.updates[0].attrs), ['humidity']);
});

test('measure mapping: computed attributes (FIWARE doc WasteContainer example)', () => {
  const [d] = parseDevicesBody(DOC_EXPRESSION_DEVICE, scope, noGroup);
  const eff = effectiveDevice(d);
  const r = mapMeasures(eff, parseJsonMeasures({ level: 85.3, latitude: 43.46, longitude: -3.8 }), { receivedAt: received });
  const a = r.updates[0].attrs;
  assert.equal(r.updates[0].id, 'WasteContainer:WC45');
  assert.deepEqual(a.location, { type: 'GeoProperty', value: { coordinates: [-3.8, 43.46], type: 'Point' }, observedAt: received });
  assert.equal(a.fillingLevel.value, 0.853);
  assert.equal(a.level.value, 85.3);
  // doc: only latitude + level arrive -> location is not computed
  const r2 = mapMeasures(eff, parseJsonMeasures({ level: 85.3, latitude: 1.9 }), { receivedAt: received });
  assert.equal(r2.updates[0].attrs.location, undefined);
  assert.equal(r2.updates[0].attrs.fillingLevel.value, 0.853);
});

test('measure mapping: expression order (nested) and skipValue', () => {
  const [d] = parseDevicesBody(
    {
      devices: [
        {
          device_id: 'lvl',
          entity_type: 'Tank',
          attributes: [
            { name: 'correctedLevel', type: 'Number', expression: 'level * 0.897' },
            { name: 'normalizedLevel', type: 'Number', expression: 'correctedLevel / 100' },
            { object_id: 'q', name: 'quality', type: 'Number', expression: 'q < 0 ? -1 : q', skipValue: -1 },
          ],
        },
      ],
    },
    scope,
    noGroup,
  );
  const r = mapMeasures(effectiveDevice(d), parseJsonMeasures({ level: 100, q: -5 }), { receivedAt: received });
  const a = r.updates[0].attrs;
  assert.equal(a.correctedLevel.value, 89.7);
  assert.equal(a.normalizedLevel.value, 0.897);
  assert.equal(a.quality, undefined);
});

test('measure mapping: explicitAttrs true / array expression', () => {
  const base = { device_id: 'e1', entity_type: 'Thing', attributes: [{ object_id: 't', name: 'temperature', type: 'Number' }, { object_id: 'h', name: 'humidity', type: 'Number' }] };
  const [d1] = parseDevicesBody({ devices: [{ ...base, explicitAttrs: true }] }, scope, noGroup);
  const r1 = mapMeasures(effectiveDevice(d1), parseJsonMeasures({ t: 1, h: 2, extra: 3 }), { receivedAt: received });
  assert.deepEqual(Object.keys(r1.updates[0].attrs).sort(), ['humidity', 'temperature']);
  const [d2] = parseDevicesBody({ devices: [{ ...base, explicitAttrs: "['temperature']" }] }, scope, noGroup);
  const r2 = mapMeasures(effectiveDevice(d2), parseJsonMeasures({ t: 1, h: 2, extra: 3 }), { receivedAt: received });
  assert.deepEqual(Object.keys(r2.updates[0].attrs), ['temperature']);
  const [d3] = parseDevicesBody({ devices: [{ ...base, explicitAttrs: "[{object_id:'h'}]" }] }, scope, noGroup);
  const r3 = mapMeasures(effectiveDevice(d3), parseJsonMeasures({ t: 1, h: 2 }), { receivedAt: received });
  assert.deepEqual(Object.keys(r3.updates[0].attrs), ['humidity']);
  const [d4] = parseDevicesBody({ devices: [base] }, scope, noGroup);
  const r4 = mapMeasures(effectiveDevice(d4), parseJsonMeasures({ t: 1, id: 'x', type: 'y' }), { receivedAt: received });
  assert.deepEqual(Object.keys(r4.updates[0].attrs), ['temperature']);
});

test('measure mapping: multi-entity (FIWARE doc contador12)', () => {
  const [d] = parseDevicesBody(DOC_MULTIENTITY, scope, noGroup);
  const r = mapMeasures(effectiveDevice(d), parseUltralight('cont1|10|cont2|20'), { receivedAt: received, textValues: true });
  assert.deepEqual(
    r.updates.map((u) => [u.id, u.type, u.attrs.vol.value]),
    [
      ['urn:ngsi-ld:Device:WaterMeterSoria01', 'WaterMeter', '10'],
      ['urn:ngsi-ld:Device:WaterMeterSoria02', 'WaterMeter', '20'],
    ],
  );
});

test('measure mapping: multi-measure groups become separate updates', () => {
  const [d] = parseDevicesBody(DOC_DEVICE, scope, noGroup);
  const r = mapMeasures(effectiveDevice(d), parseUltralight('2026-01-01T00:00:00Z|t|1#2026-01-01T00:01:00Z|t|2'), { receivedAt: received, textValues: true });
  assert.equal(r.updates.length, 2);
  assert.equal(r.updates[1].attrs.temperature.observedAt, '2026-01-01T00:01:00.000Z');
});

test('geometry conversion', () => {
  assert.deepEqual(toGeometry('43.46, -3.80'), { type: 'Point', coordinates: [-3.8, 43.46] });
  assert.deepEqual(toGeometry([-3.8, 43.46]), { type: 'Point', coordinates: [-3.8, 43.46] });
  assert.throws(() => toGeometry('95, 10'));
});

test('provisioned entities: data entity + SDM Device linked both ways, commands with status/info', () => {
  const [b] = parseDevicesBody(TUTORIAL_ACTUATOR, scope, noGroup);
  const eff = effectiveDevice(b);
  const [data, device] = provisionedEntities(eff, received);
  assert.equal(data.id, 'urn:ngsi-ld:Bell:001');
  assert.deepEqual(data.refStore, { type: 'Relationship', object: 'urn:ngsi-ld:Store:001' });
  assert.deepEqual(data.ring_status, { type: 'Property', value: 'UNKNOWN' });
  assert.deepEqual(data.refDevice, { type: 'Relationship', object: deviceEntityId(eff) });
  assert.equal(device.type, 'Device');
  assert.deepEqual(device.controlledAsset, { type: 'Relationship', object: 'urn:ngsi-ld:Bell:001' });
  assert.deepEqual((device.deviceCategory as { value: unknown }).value, ['sensor', 'actuator']);
  // a device whose entity is already a Device: one entity
  const [d] = parseDevicesBody(DOC_DEVICE, scope, noGroup);
  assert.equal(provisionedEntities(effectiveDevice(d), received).length, 1);
  assert.deepEqual(commandStatusFragment('ring', 'OK', received, 'rung'), {
    ring_status: { type: 'Property', value: 'OK', observedAt: received },
    ring_info: { type: 'Property', value: 'rung', observedAt: received },
  });
});

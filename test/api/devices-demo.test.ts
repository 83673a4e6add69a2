import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testPlatform } from '../helpers/server.ts';
import { createDevicesModule } from '../../src/devices/module.ts';
import { demoDevices, DEMO_KINDS } from '../../src/devices/domain/demo-city.ts';

let s: Awaited<ReturnType<typeof testPlatform>>;

before(async () => {
  s = await testPlatform({ modules: [createDevicesModule()], listen: true, config: { demo: true, auth: true } });
});
after(async () => {
  await s.close();
});

test('the demo city feeds the platform through MQTT, HTTP and LoRaWAN within seconds', async () => {
  const devs = demoDevices().filter((d) => !d.fault);
  // one healthy device per transport
  const wanted = new Map<string, string>();
  for (const d of devs) if (![...wanted.values()].includes(d.transport)) wanted.set(`urn:ngsi-ld:${DEMO_KINDS[d.kind].entity_type}:santander:${d.id}`, d.transport);
  assert.equal(wanted.size, 6);
  const seen = new Set<string>();
  await new Promise<void>((resolve) => {
    const un = s.platform.bus.subscribe((evs) => {
      for (const e of evs) if (wanted.has(e.entityId) && e.kind === 'update' && e.changedAttrs.some((a) => !a.endsWith('deviceState'))) seen.add(e.entityId);
      if (seen.size === wanted.size) {
        un();
        resolve();
      }
    });
  });
  const aq = await s.platform.broker.getEntity('', 'urn:ngsi-ld:AirQualityObserved:santander:aq-01', { format: 'keyValues' });
  assert.equal(typeof aq?.NO2, 'number');
  assert.deepEqual((aq?.location as { coordinates: number[] }).coordinates, [-3.8037, 43.4614]);
  const list = (await (await fetch(`${s.url}/iot/devices?limit=100`, { headers: { 'fiware-servicepath': '/demo' } })).json()) as { count: number };
  assert.equal(list.count, demoDevices().length);
});

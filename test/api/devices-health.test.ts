import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/common/clock.ts';
import { testPlatform } from '../helpers/server.ts';
import { createDevicesModule } from '../../src/devices/module.ts';
import type { DeviceService } from '../../src/devices/service.ts';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';

const DV = 'https://uri.etsi.org/ngsi-ld/default-context/';
const clock = new FakeClock(Date.parse('2026-06-01T08:00:00Z'));
let s: Awaited<ReturnType<typeof testPlatform>>;
const mod = createDevicesModule();
const svc = () => mod.service() as DeviceService;
const H = { 'fiware-service': 'health', 'fiware-servicepath': '/', 'content-type': 'application/json' };

before(async () => {
  s = await testPlatform({ modules: [mod], listen: true, clock });
});
after(async () => {
  await s.close();
});

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
const deviceState = (e: ChangeEvent) => e.after?.attrs[DV + 'deviceState']?.[0]?.value;
const issues = (e: ChangeEvent) => e.after?.attrs[DV + 'healthIssues']?.[0]?.value as string[];

async function send(body: string) {
  const r = await fetch(`${s.url}/iot/d?k=hk&i=h1`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
  assert.equal(r.status, 200);
}

test('health transitions raise changes on the Device entity: online, battery low, out of range, frozen, silent', async () => {
  await fetch(`${s.url}/iot/services`, {
    method: 'POST',
    headers: H,
    body: JSON.stringify({
      services: [{ apikey: 'hk', resource: '/iot/d', entity_type: 'WasteContainer', attributes: [{ object_id: 'f', name: 'fillingLevel', type: 'Number' }, { object_id: 'b', name: 'batteryLevel', type: 'Number' }], health: { expectedInterval: 60, frozenAfter: 300, ranges: { fillingLevel: [0, 1] } } }],
    }),
  });
  await fetch(`${s.url}/iot/devices`, { method: 'POST', headers: H, body: JSON.stringify({ devices: [{ device_id: 'h1', apikey: 'hk' }] }) });
  const devId = (await s.platform.broker.getEntity('health', 'urn:ngsi-ld:WasteContainer:h1', { format: 'keyValues' }))!.refDevice as string;
  const isDev = (e: ChangeEvent) => e.entityId === devId;

  let w = waitFor((e) => isDev(e) && deviceState(e) === 'online');
  await send('f|0.4|b|0.9');
  assert.deepEqual(issues(await w), ['none']);

  w = waitFor((e) => isDev(e) && issues(e)?.includes('batteryLow'));
  clock.advance(60_000);
  await send('f|0.5|b|0.1');
  await w;

  w = waitFor((e) => isDev(e) && issues(e)?.includes('outOfRange:fillingLevel'));
  clock.advance(60_000);
  await send('f|1.7|b|0.1');
  await w;

  // same filling level for 5 minutes -> frozen
  w = waitFor((e) => isDev(e) && issues(e)?.includes('frozen:fillingLevel'));
  for (let i = 0; i < 6; i++) {
    clock.advance(60_000);
    await send('f|0.6|b|0.1');
  }
  await w;

  // no data for 2.5 x 60 s -> silent (the health check runs on the platform clock)
  await svc().ingest.idle();
  w = waitFor((e) => isDev(e) && deviceState(e) === 'silent');
  clock.advance(151_000);
  const ev = await w;
  assert.ok(issues(ev).includes('silent'));
  const st = await (await fetch(`${s.url}/iot/devices/h1/status`, { headers: H })).json() as Record<string, unknown>;
  assert.equal(st.connectivity, 'silent');

  w = waitFor((e) => isDev(e) && deviceState(e) === 'online');
  await send('f|0.61|b|0.95');
  const back = await w;
  assert.deepEqual(issues(back), ['none']);
});

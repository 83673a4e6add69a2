import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { testPlatform } from '../helpers/server.ts';
import { createDevicesModule } from '../../src/devices/module.ts';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';

/** Consuming device traffic from an external broker (Debian's mosquitto) instead of the embedded one. */
const BIN = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p));
const DV = 'https://uri.etsi.org/ngsi-ld/default-context/';

let broker: ChildProcess | undefined;
let url = '';
let s: Awaited<ReturnType<typeof testPlatform>> | undefined;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

before(async () => {
  if (!BIN) {
    console.log('# skipping external MQTT broker tests: mosquitto is not installed (apt-get install -y mosquitto)');
    return;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'urbis-mosq-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  broker = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  url = `mqtt://127.0.0.1:${port}`;
  // wait until the broker accepts connections
  for (let i = 0; ; i++) {
    try {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000 });
      await c.endAsync();
      break;
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  s = await testPlatform({ modules: [createDevicesModule()], listen: true, config: { mqttUrl: url } });
});

after(async () => {
  await s?.close();
  broker?.kill();
});

test('measures and commands through an external mosquitto broker', { skip: !BIN && 'mosquitto not installed' }, async () => {
  const H = { 'fiware-service': 'ext', 'fiware-servicepath': '/', 'content-type': 'application/json' };
  await fetch(`${s!.url}/iot/services`, { method: 'POST', headers: H, body: JSON.stringify({ services: [{ apikey: 'extk', entity_type: 'Valve', protocol: 'PDI-IoTA-UltraLight', transport: 'MQTT', attributes: [{ object_id: 'p', name: 'pressure', type: 'Number' }], commands: [{ name: 'open', type: 'command' }] }] }) });
  await fetch(`${s!.url}/iot/devices`, { method: 'POST', headers: H, body: JSON.stringify({ devices: [{ device_id: 'v1', apikey: 'extk' }] }) });
  const dev = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const got = new Promise<ChangeEvent>((resolve) => {
    const un = s!.platform.bus.subscribe((evs) => {
      for (const e of evs)
        if (e.entityId === 'urn:ngsi-ld:Valve:v1' && e.changedAttrs.includes(DV + 'pressure')) {
          un();
          resolve(e);
        }
    });
  });
  await dev.publishAsync('/ul/extk/v1/attrs', 'p|3.2', { qos: 1 });
  assert.equal((await got).after?.attrs[DV + 'pressure'][0].value, 3.2);

  await dev.subscribeAsync('/extk/v1/cmd', { qos: 1 });
  const cmd = new Promise<string>((res) => dev.once('message', (_t, p) => res(p.toString())));
  await s!.platform.broker.updateAttrs('ext', 'urn:ngsi-ld:Valve:v1', { open: { type: 'Property', value: 'yes' } });
  assert.equal(await cmd, 'v1@open|yes');
  const ok = new Promise<ChangeEvent>((resolve) => {
    const un = s!.platform.bus.subscribe((evs) => {
      for (const e of evs)
        if (e.entityId === 'urn:ngsi-ld:Valve:v1' && e.after?.attrs[DV + 'open_status']?.[0].value === 'OK') {
          un();
          resolve(e);
        }
    });
  });
  await dev.publishAsync('/ul/extk/v1/cmdexe', 'v1@open|opened', { qos: 1 });
  assert.equal((await ok).after?.attrs[DV + 'open_info'][0].value, 'opened');
  await dev.endAsync();
});

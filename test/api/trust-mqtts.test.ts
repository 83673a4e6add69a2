/**
 * MQTTS: with URBIS_TLS_CERT / URBIS_TLS_KEY set, the embedded broker also listens with TLS
 * (src/trust/tls.ts mqttTlsServer, URBIS_MQTTS_PORT). A self-signed certificate is made with the
 * openssl command line (node:crypto cannot issue X.509 certificates); skipped when it is absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import mqtt from 'mqtt';
import { testPlatform } from '../helpers/server.ts';
import { createDevicesModule } from '../../src/devices/module.ts';
import type { MqttService } from '../../src/devices/mqtt.ts';
import type { ChangeEvent } from '../../src/bus/change-bus.ts';

const DV = 'https://uri.etsi.org/ngsi-ld/default-context/';
let skip: string | false = false;
let dir = '';
let cert: Buffer;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  skip = 'openssl is not available: cannot make a test certificate';
  console.log(`# trust-mqtts: skipped (${skip})`);
}

type S = Awaited<ReturnType<typeof testPlatform>>;
let s: S | undefined;
let mq: MqttService;
const saved = { cert: process.env.URBIS_TLS_CERT, key: process.env.URBIS_TLS_KEY, port: process.env.URBIS_MQTTS_PORT };
const H = { 'fiware-service': 'tls', 'fiware-servicepath': '/', 'content-type': 'application/json' };

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'urbis-mqtts-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'));
  process.env.URBIS_TLS_CERT = join(dir, 'cert.pem');
  process.env.URBIS_TLS_KEY = join(dir, 'key.pem');
  process.env.URBIS_MQTTS_PORT = '0';
  try {
    // auth on: devices must present credentials (over TLS too)
    s = await testPlatform({ modules: [createDevicesModule()], config: { auth: true } });
  } finally {
    for (const [k, v] of [['URBIS_TLS_CERT', saved.cert], ['URBIS_TLS_KEY', saved.key], ['URBIS_MQTTS_PORT', saved.port]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  mq = s.platform.services.get('mqtt') as MqttService;
});
after(async () => {
  await s?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function waitFor(pred: (e: ChangeEvent) => boolean): Promise<ChangeEvent> {
  return new Promise((resolve) => {
    const un = s!.platform.bus.subscribe((evs) => {
      for (const e of evs)
        if (pred(e)) {
          un();
          resolve(e);
          return;
        }
    });
  });
}

test('MQTTS: a device publishes over TLS with its credentials; plaintext and bad credentials refused on the TLS port', { skip }, async () => {
  assert.equal(typeof mq.tlsPort, 'number', 'MQTTS listener started');
  assert.notEqual(mq.tlsPort, mq.port);
  const inject = (url: string, payload: unknown) => s!.inject({ method: 'POST', url, headers: H, payload: JSON.stringify(payload) });
  assert.equal((await inject('/iot/services', { services: [{ apikey: 'tk', resource: '', entity_type: 'Meter', transport: 'MQTT', attributes: [{ object_id: 'v', name: 'volume', type: 'Number' }] }] })).statusCode, 201);
  assert.equal((await inject('/iot/devices', { devices: [{ device_id: 'm1', apikey: 'tk', entity_name: 'urn:ngsi-ld:Meter:m1' }] })).statusCode, 201);
  const cred = await inject('/iot/devices/m1/credentials', { password: 'm1-secret-long' });
  assert.equal(cred.statusCode, 201, cred.body);

  const url = `mqtts://127.0.0.1:${mq.tlsPort}`;
  // the certificate is verified against the test CA (our self-signed certificate)
  const c = await mqtt.connectAsync(url, { ca: cert, rejectUnauthorized: true, username: 'tk/m1', password: 'm1-secret-long', clientId: 'm1', reconnectPeriod: 0, connectTimeout: 5000 });
  try {
    const w = waitFor((e) => e.entityId === 'urn:ngsi-ld:Meter:m1' && e.changedAttrs.includes(DV + 'volume'));
    await c.publishAsync('/json/tk/m1/attrs', JSON.stringify({ v: 42 }), { qos: 1 });
    assert.equal((await w).after?.attrs[DV + 'volume']?.[0]?.value, 42);
  } finally {
    await c.endAsync();
  }

  // a client that does not trust the certificate refuses the server
  await assert.rejects(mqtt.connectAsync(url, { rejectUnauthorized: true, username: 'tk/m1', password: 'm1-secret-long', reconnectPeriod: 0, connectTimeout: 3000 }));
  // bad credentials over TLS: CONNACK refused
  await assert.rejects(mqtt.connectAsync(url, { ca: cert, username: 'tk/m1', password: 'wrong', reconnectPeriod: 0, connectTimeout: 3000 }));
  // plaintext MQTT CONNECT on the TLS port: the connection is closed, no CONNACK (0x20)
  const reply = await new Promise<Buffer>((res, rej) => {
    const chunks: Buffer[] = [];
    const sock = netConnect(mq.tlsPort!, '127.0.0.1', () => {
      sock.write(Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x78]));
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => res(Buffer.concat(chunks)));
    setTimeout(() => {
      sock.destroy();
      rej(new Error('the TLS port kept a plaintext connection open'));
    }, 5000).unref();
  });
  assert.notEqual(reply[0], 0x20, 'no CONNACK over plaintext');
  // TLS below 1.2 does not connect (server minVersion TLSv1.2; the client's OpenSSL may refuse it as well)
  await assert.rejects(
    new Promise((res, rej) => {
      const sock = tlsConnect({ host: '127.0.0.1', port: mq.tlsPort!, ca: cert, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => res(sock));
      sock.once('error', rej);
    }),
  );
  // TLS 1.2 accepted at the transport level
  await new Promise<void>((res, rej) => {
    const sock = tlsConnect({ host: '127.0.0.1', port: mq.tlsPort!, ca: cert, maxVersion: 'TLSv1.2' }, () => {
      assert.equal(sock.getProtocol(), 'TLSv1.2');
      sock.end();
      res();
    });
    sock.once('error', rej);
  });
  // the plain listener is still there (compatibility); it is not TLS
  await new Promise<void>((res, rej) => {
    const sock = netConnect(mq.port!, '127.0.0.1', () => {
      sock.end();
      res();
    });
    sock.once('error', rej);
  });
});

test('MQTTS: not started without a certificate', { skip }, async () => {
  const plain = await testPlatform({ modules: [createDevicesModule()] });
  try {
    assert.equal((plain.platform.services.get('mqtt') as MqttService).tlsPort, undefined);
  } finally {
    await plain.close();
  }
});

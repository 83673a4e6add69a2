/**
 * Demo city simulator (Santander): provisions the demo groups and devices (FIWARE payloads of
 * domain/demo-city.ts) and then plays the devices through the real southbound paths: MQTT clients
 * with per-device credentials (JSON and Ultralight), HTTP Ultralight/JSON posts, and ChirpStack /
 * TTS webhooks. Simulated streetlights obey `switch` / `dim` commands and answer on cmdexe.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Platform } from '../platform.ts';
import { DEMO_CITY, DEMO_KINDS, demoDevices, demoMeasures, demoProvisioning, toUltralight, type DemoDevice } from './domain/demo-city.ts';
import { scopeFromHeaders } from './domain/provisioning.ts';
import { parseUltralightCommandResult } from './domain/payloads.ts';
import type { DeviceService } from './service.ts';

export interface DemoHandle {
  stop(): Promise<void>;
  /** reports sent so far */
  sent(): number;
}

export async function startDemo(p: Platform, svc: DeviceService, opts: { mqttUrl: string; httpBase: () => string | undefined }): Promise<DemoHandle> {
  const log = p.log.child('demo');
  const scope = scopeFromHeaders({ 'fiware-service': DEMO_CITY.service, 'fiware-servicepath': DEMO_CITY.servicePath });
  const { services, devices } = demoProvisioning();
  const missingGroups = services.filter((g) => !svc.reg.getGroup(scope.tenant, scope.servicePath, String(g.resource ?? ''), String(g.apikey)));
  if (missingGroups.length) await svc.createGroups(scope, { services: missingGroups });
  const missingDevices = devices.filter((d) => !svc.reg.getDevice(scope.tenant, String(d.device_id)));
  if (missingDevices.length) await svc.createDevices(scope, { devices: missingDevices });

  const demo = demoDevices();
  const timers = new Map<string, NodeJS.Timeout>();
  const clients: MqttClient[] = [];
  let sent = 0;
  let stopped = false;
  const seq = new Map<string, number>();
  /** streetlight overrides set by commands */
  const override = new Map<string, { st?: string; dim?: number }>();

  const warned = new Set<string>();
  const post = async (path: string, body: string, contentType: string, headers: Record<string, string> = {}) => {
    const base = opts.httpBase();
    if (!base) return;
    try {
      const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body, signal: AbortSignal.timeout(5000) });
      const text = await r.text();
      // malformed demo payloads are refused on purpose; anything else is worth a warning (once per route)
      const route = path.split('?')[0];
      if (!r.ok && !/WRONG_SYNTAX/.test(text) && !warned.has(route)) {
        warned.add(route);
        log.warn(`demo device refused on ${route}: HTTP ${r.status} ${text.slice(0, 200)}`);
      }
    } catch (e) {
      log.debug('demo HTTP post failed', { err: (e as Error).message });
    }
  };

  for (const d of demo) {
    const spec = DEMO_KINDS[d.kind];
    let client: MqttClient | undefined;
    if (d.transport.startsWith('mqtt')) {
      // each MQTT device gets its own credentials (issued again at every start: only hashes are stored)
      const { token } = await svc.issueCredentials(scope, d.id, {});
      client = mqtt.connect(opts.mqttUrl, { clientId: `demo-${d.id}`, username: 'token', password: token, reconnectPeriod: 2000, clean: true });
      client.on('error', (e) => log.debug('demo MQTT client error', { device: d.id, err: e.message }));
      clients.push(client);
      if (spec.commands?.length) {
        const c = client;
        c.on('connect', () => c.subscribe(`/${spec.apikey}/${d.id}/cmd`, { qos: 1 }));
        c.on('message', (_topic, payload) => {
          // UL command: <device>@<cmd>|<value>
          try {
            const [cmd] = parseUltralightCommandResult(payload);
            const o = override.get(d.id) ?? {};
            if (cmd.command === 'switch') o.st = /off|0|false/i.test(cmd.result) ? 'off' : 'on';
            if (cmd.command === 'dim') o.dim = Math.max(0, Math.min(100, Number(cmd.result.replace(/^\D*/, '')) || 0));
            override.set(d.id, o);
            c.publish(`/ul/${spec.apikey}/${d.id}/cmdexe`, `${d.id}@${cmd.command}|${cmd.command} ${cmd.result} done`, { qos: 1 });
          } catch {
            /* not a command for us */
          }
        });
      }
    }
    const send = () => {
      if (stopped) return;
      const n = seq.get(d.id) ?? 0;
      seq.set(d.id, n + 1);
      const now = p.clock.now();
      let m = demoMeasures(d, now, n);
      if (m !== undefined) {
        if (typeof m === 'object' && d.kind === 'streetlight') {
          const o = override.get(d.id);
          if (o?.st) m = { ...m, st: o.st, dim: o.st === 'off' ? 0 : (o.dim ?? m.dim), pw: o.st === 'off' ? 0 : m.pw };
          else if (o?.dim !== undefined && m.st === 'on') m = { ...m, dim: o.dim };
        }
        sent++;
        void emit(d, m, now, client);
      }
      timers.set(d.id, setTimeout(send, d.interval * 1000 * (0.9 + Math.random() * 0.2)).unref());
    };
    // first report within two seconds of start
    timers.set(d.id, setTimeout(send, 200 + Math.random() * 1800).unref());
  }

  async function emit(d: DemoDevice, m: Record<string, number | string> | string, now: number, client?: MqttClient): Promise<void> {
    const spec = DEMO_KINDS[d.kind];
    const iso = new Date(now).toISOString();
    switch (d.transport) {
      case 'mqtt-json':
        client?.publish(`/json/${spec.apikey}/${d.id}/attrs`, typeof m === 'string' ? m : JSON.stringify(m), { qos: 1 });
        return;
      case 'mqtt-ul':
        client?.publish(`/ul/${spec.apikey}/${d.id}/attrs`, typeof m === 'string' ? m : toUltralight(m), { qos: 1 });
        return;
      case 'http-ul':
        // the device clock is given as the UL group timestamp
        return post(`/iot/d?k=${spec.apikey}&i=${d.id}`, typeof m === 'string' ? m : toUltralight(m, iso), 'text/plain');
      case 'http-json':
        return post(`/iot/json?k=${spec.apikey}&i=${d.id}`, typeof m === 'string' ? m : JSON.stringify(m), 'application/json');
      case 'lorawan-chirpstack': {
        const body = {
          deduplicationId: cryptoId(d.id, now),
          time: iso,
          deviceInfo: { tenantName: 'Santander', applicationName: 'parking', deviceProfileName: 'parking-sensor', deviceName: d.id, devEui: d.devEui!.toLowerCase() },
          fCnt: seq.get(d.id),
          fPort: 2,
          data: 'AQ==',
          object: m,
          rxInfo: [{ gatewayId: 'b827ebfffe7a3c01', rssi: -70 - Math.round(Math.random() * 40), snr: Math.round(Math.random() * 100) / 10 }],
        };
        return post(`/iot/lorawan/chirpstack?event=up&k=${spec.apikey}`, JSON.stringify(body), 'application/json');
      }
      case 'lorawan-tts': {
        const body = {
          end_device_ids: { device_id: d.id, application_ids: { application_id: 'santander-waste' }, dev_eui: d.devEui },
          received_at: iso,
          uplink_message: {
            f_port: 1,
            f_cnt: seq.get(d.id),
            frm_payload: 'AA==',
            decoded_payload: m,
            rx_metadata: [{ gateway_ids: { gateway_id: 'santander-gw-centro', eui: 'B827EBFFFE7A3C02' }, rssi: -80 - Math.round(Math.random() * 30), snr: Math.round(Math.random() * 80) / 10 }],
            received_at: iso,
          },
        };
        return post(`/iot/lorawan/tts`, JSON.stringify(body), 'application/json', { 'x-api-key': spec.apikey });
      }
    }
  }

  log.info(`demo city ${DEMO_CITY.name}: ${demo.length} devices reporting through MQTT, HTTP and LoRaWAN webhooks`);
  return {
    sent: () => sent,
    async stop() {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    },
  };
}

function cryptoId(id: string, t: number): string {
  const h = (id + t).split('').reduce((a, c) => (Math.imul(a, 31) + c.charCodeAt(0)) >>> 0, 7).toString(16).padStart(8, '0');
  return `${h}-0000-4000-8000-${String(t).slice(-12).padStart(12, '0')}`;
}

/**
 * The device layer (layer 1) as an Urbis module: FIWARE-compatible provisioning, MQTT (embedded
 * aedes on MQTT_PORT, or an external broker with MQTT_URL), HTTP and LoRaWAN southbound, actuation,
 * device health, and the Santander demo city (unless URBIS_DEMO=off).
 * Registers `p.services.get('mqtt')` (MqttService) and `p.services.get('devices')` (DeviceService).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import { DeviceService } from './service.ts';
import { startEmbeddedMqtt, startExternalMqtt, type MqttTransport } from './mqtt.ts';
import { deviceRoutes } from './routes.ts';
import { startDemo, type DemoHandle } from './demo.ts';

export function createDevicesModule(): UrbisModule & { service(): DeviceService | undefined } {
  let svc: DeviceService | undefined;
  let transport: MqttTransport | undefined;
  let demo: DemoHandle | undefined;
  let app: FastifyInstance | undefined;
  let platform: Platform | undefined;

  const httpBase = (): string | undefined => {
    const addr = app?.server.address() as AddressInfo | null | undefined;
    if (!addr || typeof addr !== 'object') return undefined;
    const host = addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address.includes(':') ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}`;
  };

  return {
    name: 'devices',
    service: () => svc,
    async start(p) {
      platform = p;
      svc = new DeviceService(p);
      await svc.start();
      transport = p.config.mqttUrl ? await startExternalMqtt(p, svc, p.config.mqttUrl) : await startEmbeddedMqtt(p, svc);
      svc.sink = transport;
      p.services.set('mqtt', transport.service);
      p.services.set('devices', svc);
      if (p.config.demo) {
        const mqttUrl = p.config.mqttUrl ?? transport.service.url;
        demo = await startDemo(p, svc, { mqttUrl, httpBase });
      }
    },
    routes(a, p) {
      app = a;
      deviceRoutes(a, p, () => {
        if (!svc) throw new Error('devices module not started');
        return svc;
      });
    },
    async stop() {
      await demo?.stop();
      await svc?.stop();
      await transport?.close();
      platform?.services.delete('mqtt');
      platform?.services.delete('devices');
    },
  };
}

export const devicesModule = createDevicesModule();

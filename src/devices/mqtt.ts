/**
 * MQTT transport. Embedded: an aedes broker on MQTT_PORT with per-device authentication
 * (authenticate), topic authorization (authorizePublish / authorizeSubscribe: a device publishes
 * only its own /json|ul/<apikey>/<device>/... topics and subscribes only to its /<apikey>/<device>/cmd),
 * and ingestion in the `published` hook (which gives back-pressure: the PUBACK of a QoS 1 measure is
 * sent once the measure is queued for the store). External: an mqtt.js client subscribed to the
 * device topics of another broker (MQTT_URL, e.g. mosquitto), which authenticates devices itself.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes, type Client } from 'aedes';
import mqtt from 'mqtt';
import type { Platform } from '../platform.ts';
import { ProblemError } from '../common/problem.ts';
import type { DeviceService, CommandSink } from './service.ts';
import type { DeviceRecord } from './registry.ts';
import { parseTopic } from './domain/payloads.ts';
import { mqttTlsServer } from '../trust/tls.ts';

/** What other modules get with p.services.get('mqtt'). */
export interface MqttService {
  kind: 'embedded' | 'external';
  /** port of the embedded broker (the real one when MQTT_PORT=0) */
  port?: number;
  /** MQTTS port of the embedded broker, when URBIS_TLS_CERT / URBIS_TLS_KEY are set (URBIS_MQTTS_PORT, default 8883) */
  tlsPort?: number;
  url: string;
  publish(topic: string, payload: string | Buffer, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): Promise<void>;
  /** extra authenticators for non-device clients (e.g. a subscription notifier, the dashboard): return true to accept */
  addAuthenticator(fn: (username: string | undefined, password: string | undefined) => boolean | Promise<boolean>): void;
}

const SYS = '$SYS/';

export interface MqttTransport extends CommandSink {
  service: MqttService;
  close(): Promise<void>;
}

type AuthedClient = Client & { urbisDevice?: DeviceRecord; urbisService?: boolean; urbisIp?: string };

/** MQTT limits of the trust layer (p.services.get('auth').mqtt), when that module runs. */
interface MqttGuard {
  onConnect(clientId: string, ip: string | undefined): boolean;
  onDisconnect(clientId: string, ip: string | undefined): void;
  onPublish(clientId: string, bytes: number): boolean;
}
const guardOf = (p: Platform): MqttGuard | undefined => (p.services.get('auth') as { mqtt?: MqttGuard } | undefined)?.mqtt;
const dropped = new WeakSet<object>();
/** clients counted by the guard's onConnect, released exactly once */
const counted = new WeakSet<object>();
const release = (p: Platform, c: AuthedClient) => {
  if (!counted.has(c)) return;
  counted.delete(c);
  guardOf(p)?.onDisconnect(c.id, c.urbisIp);
};

export async function startEmbeddedMqtt(p: Platform, svc: DeviceService): Promise<MqttTransport> {
  const aedes = await Aedes.createBroker({ concurrency: 1000, drainTimeout: 30_000, queueLimit: 1000, maxClientsIdLength: 256, heartbeatInterval: 60_000 });
  const authenticators: ((u: string | undefined, pw: string | undefined) => boolean | Promise<boolean>)[] = [];
  const clients = new Map<string, Set<AuthedClient>>();
  const log = p.log.child('mqtt');

  aedes.preConnect = (client, _packet, done) => {
    const c = client as AuthedClient;
    c.urbisIp = (c.conn as { remoteAddress?: string } | undefined)?.remoteAddress;
    const g = guardOf(p);
    if (g && !g.onConnect(c.id ?? '', c.urbisIp)) {
      svc.ingest.counters.rejected.rateLimited++;
      return done(new Error('too many connections from this address'), false);
    }
    if (g) counted.add(c);
    done(null, true);
  };

  aedes.authenticate = (client, username, password, done) => {
    const c = client as AuthedClient;
    const pw = password ? Buffer.from(password).toString('utf8') : undefined;
    void (async () => {
      for (const a of authenticators) {
        if (await a(username, pw)) {
          c.urbisService = true;
          return done(null, true);
        }
      }
      const r = await svc.authenticateMqtt(username, pw);
      if (!r) {
        const e = Object.assign(new Error('bad user name or password'), { returnCode: 4 });
        return done(e as never, false);
      }
      if (r !== 'anonymous') {
        c.urbisDevice = r;
        const k = `${r.tenant}\u0000${r.device.device_id}`;
        let set = clients.get(k);
        if (!set) clients.set(k, (set = new Set()));
        set.add(c);
      }
      done(null, true);
    })().catch((e) => {
      log.error('authentication failed', { err: e });
      done(Object.assign(new Error('server unavailable'), { returnCode: 3 }) as never, false);
    });
  };

  aedes.authorizePublish = (client, packet, done) => {
    if (packet.topic.startsWith(SYS)) return done(new Error('$SYS topics are reserved'));
    const c = client as AuthedClient | null;
    if (!c || c.urbisService) return done(null);
    const g = guardOf(p);
    if (g && !g.onPublish(c.id, packet.payload?.length ?? 0)) {
      // over the rate or size limit: dropped (not stored) and counted, the connection stays
      svc.ingest.counters.rejected.rateLimited++;
      dropped.add(packet);
      return done(null);
    }
    const t = parseTopic(packet.topic);
    if (!t) {
      svc.ingest.counters.rejected.forbidden++;
      return done(new Error(`topic ${packet.topic} is not a device topic`));
    }
    if (c.urbisDevice) {
      const eff = svc.reg.effective(c.urbisDevice);
      if (t.deviceId !== c.urbisDevice.device.device_id || t.apikey !== eff.apikey) {
        svc.ingest.counters.rejected.forbidden++;
        return done(new Error(`client may only publish for ${eff.apikey}/${c.urbisDevice.device.device_id}`));
      }
      if (c.urbisDevice.revoked || svc.reg.getDevice(c.urbisDevice.tenant, c.urbisDevice.device.device_id)?.revoked) {
        svc.ingest.counters.rejected.revoked++;
        return done(new Error('device revoked'));
      }
    }
    done(null);
  };

  aedes.authorizeSubscribe = (client, sub, done) => {
    const c = client as AuthedClient;
    if (c.urbisService) return done(null, sub);
    if (c.urbisDevice) {
      const eff = svc.reg.effective(c.urbisDevice);
      const own = `/${eff.apikey}/${c.urbisDevice.device.device_id}/`;
      const ok = sub.topic === `${own}cmd` || sub.topic === `${own}configuration/values` || sub.topic === own.slice(1) + 'cmd';
      return done(null, ok ? sub : null);
    }
    // anonymous (URBIS_AUTH=off): any command topic, like a plain FIWARE deployment
    done(null, /^\/?[^/#+]+\/[^/#+]+\/cmd$/.test(sub.topic) ? sub : null);
  };

  aedes.published = (packet, client, done) => {
    const c = client as AuthedClient | null;
    if (!c || c.urbisService || packet.topic.startsWith(SYS) || dropped.has(packet)) return done();
    try {
      svc.handleMqtt(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload), { device: c.urbisDevice });
    } catch (e) {
      // unknown / forbidden devices: refused and counted; never crash the broker
      if (!(e instanceof ProblemError)) log.error('MQTT message handling failed', { err: e, topic: packet.topic });
      else log.debug('MQTT message refused', { topic: packet.topic, reason: e.message });
    }
    const w = svc.ingest.ready();
    if (w) w.then(() => done(), () => done());
    else done();
  };

  aedes.on('clientDisconnect', (client) => {
    const c = client as AuthedClient;
    release(p, c);
    if (!c.urbisDevice) return;
    const k = `${c.urbisDevice.tenant}\u0000${c.urbisDevice.device.device_id}`;
    clients.get(k)?.delete(c);
  });
  aedes.on('clientError', (client, err) => log.debug('client error', { client: client?.id, err: err.message }));
  aedes.on('connectionError', (client, err) => {
    if (client) release(p, client as AuthedClient);
    log.debug('connection error', { client: client?.id, err: err.message });
  });

  const server: Server = createServer(aedes.handle);
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(p.config.mqttPort, p.config.host === '0.0.0.0' ? undefined : p.config.host, () => res());
  });
  const port = (server.address() as AddressInfo).port;
  log.info(`embedded MQTT broker listening on port ${port}`);
  // trust: MQTTS (TLS >= 1.2) on URBIS_MQTTS_PORT when a certificate is configured
  const tlsServer = mqttTlsServer(aedes.handle as (socket: import('node:net').Socket) => void);
  let tlsPort: number | undefined;
  if (tlsServer) {
    const want = Number(process.env.URBIS_MQTTS_PORT || 8883);
    if (!Number.isInteger(want) || want < 0 || want > 65535) throw new Error(`URBIS_MQTTS_PORT must be a port number, got "${process.env.URBIS_MQTTS_PORT}"`);
    await new Promise<void>((res, rej) => {
      tlsServer.once('error', rej);
      tlsServer.listen(want, p.config.host === '0.0.0.0' ? undefined : p.config.host, () => res());
    });
    tlsPort = (tlsServer.address() as AddressInfo).port;
    log.info(`embedded MQTT broker listening for MQTTS on port ${tlsPort}`);
  }

  const publish = (topic: string, payload: string | Buffer, opts: { qos?: 0 | 1 | 2; retain?: boolean } = {}) =>
    new Promise<void>((res, rej) =>
      aedes.publish(
        { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: opts.qos ?? 0, retain: opts.retain ?? false, dup: false },
        (err) => (err ? rej(err) : res()),
      ),
    );
  return {
    service: {
      kind: 'embedded',
      port,
      tlsPort,
      url: `mqtt://127.0.0.1:${port}`,
      publish,
      addAuthenticator: (fn) => authenticators.push(fn),
    },
    publish: (topic, payload, qos, retain) => publish(topic, payload, { qos, retain }),
    disconnect(tenant, deviceId) {
      for (const c of clients.get(`${tenant}\u0000${deviceId}`) ?? []) c.close();
      clients.delete(`${tenant}\u0000${deviceId}`);
    },
    async close() {
      await new Promise<void>((res) => aedes.close(() => res()));
      await new Promise<void>((res) => server.close(() => res()));
      if (tlsServer) await new Promise<void>((res) => tlsServer.close(() => res()));
    },
  };
}

/** Consume device traffic from an external broker (MQTT_URL). */
export async function startExternalMqtt(p: Platform, svc: DeviceService, url: string): Promise<MqttTransport> {
  const log = p.log.child('mqtt');
  const client = await mqtt.connectAsync(url, { clientId: `urbis-devices-${process.pid}-${Date.now().toString(36)}`, clean: true, reconnectPeriod: 2000 });
  const topics = ['/json/+/+/attrs', '/json/+/+/attrs/+', '/json/+/+/cmdexe', '/ul/+/+/attrs', '/ul/+/+/attrs/+', '/ul/+/+/cmdexe', '/+/+/attrs', '/+/+/attrs/+', '/+/+/cmdexe'];
  await client.subscribeAsync(topics.map((t) => ({ topic: t, qos: 1 as const })).reduce((o, x) => ({ ...o, [x.topic]: { qos: x.qos } }), {}));
  client.on('message', (topic, payload) => {
    try {
      svc.handleMqtt(topic, payload, {});
    } catch (e) {
      if (!(e instanceof ProblemError)) log.error('MQTT message handling failed', { err: e, topic });
    }
  });
  client.on('error', (e) => log.warn('external MQTT broker error', { err: e.message }));
  log.info(`consuming device traffic from ${url}`);
  const publish = async (topic: string, payload: string | Buffer, opts: { qos?: 0 | 1 | 2; retain?: boolean } = {}) => {
    await client.publishAsync(topic, payload, { qos: opts.qos ?? 0, retain: opts.retain ?? false });
  };
  return {
    service: { kind: 'external', url, publish, addAuthenticator: () => {} },
    publish: (topic, payload, qos, retain) => publish(topic, payload, { qos, retain }),
    async close() {
      await client.endAsync();
    },
  };
}

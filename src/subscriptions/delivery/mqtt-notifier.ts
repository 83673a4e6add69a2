import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { DeliveryError, type Notifier } from './notifier.ts';
import type { OutboxRow } from './outbox.ts';

/**
 * MQTT notifier (NGSI-LD v1.9.1 clause 7.3 / 5.2.15): endpoint mqtt[s]://[user:pass@]host[:port]/topic.
 * One mqtt.js client per broker URL and protocol version; QoS from notifierInfo MQTT-QoS (default 0),
 * protocol from MQTT-Version (mqtt3.1.1 default, mqtt5.0). The message is {metadata, body}: the
 * stored headers as metadata and the notification as body. With QoS 1/2 the promise resolves on
 * PUBACK/PUBCOMP, so the outbox row is only acknowledged once the broker holds the message.
 */
export interface MqttEndpoint {
  brokerUrl: string;
  topic: string;
  qos: 0 | 1 | 2;
  version: 4 | 5;
  username?: string;
  password?: string;
}

export function parseMqttEndpoint(uri: string, notifierInfo: { key: string; value: string }[] = []): MqttEndpoint {
  const u = new URL(uri);
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new DeliveryError(`not an MQTT endpoint: ${uri}`);
  const topic = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!topic) throw new DeliveryError(`MQTT endpoint ${uri} names no topic`);
  const info = new Map(notifierInfo.map((p) => [p.key, p.value]));
  const qos = Number(info.get('MQTT-QoS') ?? '0');
  const version = info.get('MQTT-Version') === 'mqtt5.0' ? 5 : 4;
  const port = u.port || (u.protocol === 'mqtts:' ? '8883' : '1883');
  return {
    brokerUrl: `${u.protocol}//${u.hostname}:${port}`,
    topic,
    qos: (qos === 1 || qos === 2 ? qos : 0) as 0 | 1 | 2,
    version,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

export class MqttNotifier implements Notifier {
  private clients = new Map<string, Promise<MqttClient>>();
  constructor(private opts: { connectTimeoutMs?: number; clientIdPrefix?: string } = {}) {}

  private key(ep: MqttEndpoint): string {
    return `${ep.brokerUrl}|${ep.version}|${ep.username ?? ''}|${ep.password ?? ''}`;
  }

  private client(ep: MqttEndpoint): Promise<MqttClient> {
    const key = this.key(ep);
    let c = this.clients.get(key);
    if (!c) {
      const o: IClientOptions = {
        protocolVersion: ep.version,
        connectTimeout: this.opts.connectTimeoutMs ?? 5000,
        reconnectPeriod: 1000,
        // a refused CONNACK (e.g. the broker was restarted with other credentials) must not end the
        // pooled client for good: mqtt.js would otherwise stop reconnecting and every later
        // notification to this broker would fail
        reconnectOnConnackError: true,
        clientId: `${this.opts.clientIdPrefix ?? 'urbis-notifier'}-${Math.random().toString(16).slice(2, 10)}`,
        clean: true,
      };
      if (ep.username) o.username = ep.username;
      if (ep.password) o.password = ep.password;
      const p = connectAsync(ep.brokerUrl, o, false).then(
        (cl) => {
          cl.on('error', () => {}); // connection errors show as failed deliveries; an unhandled 'error' would throw
          return cl;
        },
        (e: unknown) => {
          if (this.clients.get(key) === p) this.clients.delete(key);
          throw e;
        },
      );
      c = p;
      this.clients.set(key, c);
    }
    return c;
  }

  /**
   * A connected client: a pooled client that was ended is replaced, one that is reconnecting
   * (the broker restarted) is waited for, up to the connect timeout.
   */
  private async connected(ep: MqttEndpoint): Promise<MqttClient> {
    let c = await this.client(ep);
    if (c.connected) return c;
    if (c.disconnecting || c.disconnected) {
      const key = this.key(ep);
      if (this.clients.get(key) !== undefined) this.clients.delete(key);
      c.end(true);
      c = await this.client(ep);
      if (c.connected) return c;
    }
    const waitMs = this.opts.connectTimeoutMs ?? 5000;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        c.off('connect', done);
        resolve();
      };
      const t = setTimeout(done, waitMs);
      c.on('connect', done);
    });
    if (!c.connected) throw new Error('not connected');
    return c;
  }

  async send(msg: OutboxRow): Promise<void> {
    const ep = parseMqttEndpoint(msg.endpoint, msg.notifierInfo);
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(msg.headers)) metadata[canonical(k)] = v;
    const payload = `{"metadata":${JSON.stringify(metadata)},"body":${msg.body}}`;
    try {
      const client = await this.connected(ep);
      await withTimeout(client.publishAsync(ep.topic, payload, { qos: ep.qos }), msg.timeoutMs ?? 10_000);
    } catch (e) {
      throw new DeliveryError(`MQTT ${ep.brokerUrl}/${ep.topic}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.endAsync(true)).catch(() => {})));
  }
}

/**
 * The broker's own metadata names in their canonical spelling; anything else (receiverInfo keys)
 * is passed on exactly as the subscriber wrote it (7.3: MQTT metadata carries receiverInfo as given).
 */
const CANONICAL_HEADERS: Record<string, string> = { 'content-type': 'Content-Type', link: 'Link', 'ngsild-tenant': 'NGSILD-Tenant' };

function canonical(k: string): string {
  return CANONICAL_HEADERS[k.toLowerCase()] ?? k;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

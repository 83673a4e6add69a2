import type { ConnectionOptions } from 'node:tls';
import { DeliveryError, type Notifier } from './notifier.ts';
import type { OutboxRow } from './outbox.ts';
import { Http1Client, type Origin } from './http1-client.ts';

export interface HttpNotifierOptions {
  /** connections per origin (default 32) */
  connections?: number;
  /** requests in flight per connection (HTTP/1.1 pipelining; default 16, 1 = none) */
  pipelining?: number;
  /** when a subscription's endpoint gives no timeout (default 10 s) */
  defaultTimeoutMs?: number;
  userAgent?: string;
  /** extra options of https connections (e.g. ca) */
  tls?: ConnectionOptions;
}

interface Target {
  key: string;
  origin: Origin;
  /** `POST <path> HTTP/1.1` and Host, before the per-subscription headers */
  requestLine: string;
  /** origin and path without the query, for error messages */
  label: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// ASCII only: the request is written as one UTF-8 string, so obs-text (latin1) cannot be sent as is
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * HTTP(S) notifier: POST of the stored body with its stored headers (Content-Type per accept, Link
 * for application/json, receiverInfo) through the pipelining keep-alive client of http1-client.ts.
 * Any 2xx is success. The request head up to Content-Length is built once per endpoint and headers
 * object (one headers object per subscription), so a send is one string concatenation.
 */
export class HttpNotifier implements Notifier {
  private client: Http1Client;
  private targets = new Map<string, Target | DeliveryError>();
  /** request head (up to the Content-Length value) per stored headers object, per endpoint */
  private heads = new WeakMap<Record<string, string>, Map<string, string | DeliveryError>>();

  constructor(private opts: HttpNotifierOptions = {}) {
    this.client = new Http1Client(Math.max(1, opts.connections ?? 32), Math.max(1, opts.pipelining ?? 16), opts.tls);
  }

  private target(endpoint: string): Target | DeliveryError {
    let t = this.targets.get(endpoint);
    if (!t) {
      try {
        const url = new URL(endpoint);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
        const secure = url.protocol === 'https:';
        const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
        const path = (url.pathname || '/') + url.search;
        t = {
          key: url.origin,
          origin: { secure, host, port: url.port ? Number(url.port) : secure ? 443 : 80 },
          requestLine: `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\n`,
          label: url.origin + url.pathname,
        };
      } catch {
        t = new DeliveryError(`invalid endpoint ${endpoint}`);
      }
      if (this.targets.size > 10_000) this.targets.clear();
      this.targets.set(endpoint, t);
    }
    return t;
  }

  private head(t: Target, endpoint: string, headers: Record<string, string>): string | DeliveryError {
    let byEndpoint = this.heads.get(headers);
    if (!byEndpoint) this.heads.set(headers, (byEndpoint = new Map()));
    let h = byEndpoint.get(endpoint);
    if (h === undefined) {
      h = t.requestLine;
      for (const [k, v] of Object.entries({ ...headers, 'user-agent': this.opts.userAgent ?? 'urbis-notifier' })) {
        const name = k.toLowerCase();
        // framing is ours to write
        if (name === 'host' || name === 'content-length' || name === 'connection' || name === 'transfer-encoding' || name === 'keep-alive') continue;
        const value = String(v);
        if (!TOKEN.test(k) || !FIELD_VALUE.test(value)) {
          h = new DeliveryError(`invalid notification header ${JSON.stringify(k)}`);
          break;
        }
        h += `${k}: ${value}\r\n`;
      }
      if (typeof h === 'string') h += 'connection: keep-alive\r\ncontent-length: ';
      byEndpoint.set(endpoint, h);
    }
    return h;
  }

  send(msg: OutboxRow): Promise<void> {
    const t = this.target(msg.endpoint);
    if (t instanceof DeliveryError) return Promise.reject(t);
    const head = this.head(t, msg.endpoint, msg.headers);
    if (head instanceof DeliveryError) return Promise.reject(head);
    const data = `${head}${Buffer.byteLength(msg.body)}\r\n\r\n${msg.body}`;
    const timeout = msg.timeoutMs ?? this.opts.defaultTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => this.client.request(t.key, t.origin, data, timeout, t.label, resolve, reject));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

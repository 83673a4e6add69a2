import { Pool } from 'undici';
import { DeliveryError, type Notifier } from './notifier.ts';
import type { OutboxRow } from './outbox.ts';

/**
 * HTTP(S) notifier: one undici keep-alive Pool per origin, POST of the stored body with its stored
 * headers (Content-Type per accept, Link for application/json, receiverInfo). Any 2xx is success.
 */
export class HttpNotifier implements Notifier {
  private pools = new Map<string, Pool>();
  constructor(
    private opts: { connections?: number; defaultTimeoutMs?: number; pipelining?: number; userAgent?: string } = {},
  ) {}

  private pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, {
        connections: this.opts.connections ?? 32,
        pipelining: this.opts.pipelining ?? 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
      });
      this.pools.set(origin, p);
    }
    return p;
  }

  /** parsed endpoints (a notification's endpoint is one of few, parsing it per send is waste) */
  private targets = new Map<string, { origin: string; path: string } | DeliveryError>();
  /** request headers per stored headers object (the same object for every row of a subscription) */
  private headerSets = new WeakMap<Record<string, string>, Record<string, string>>();

  private target(endpoint: string): { origin: string; path: string } {
    let t = this.targets.get(endpoint);
    if (!t) {
      try {
        const url = new URL(endpoint);
        t = { origin: url.origin, path: url.pathname + url.search };
      } catch {
        t = new DeliveryError(`invalid endpoint ${endpoint}`);
      }
      if (this.targets.size > 10_000) this.targets.clear();
      this.targets.set(endpoint, t);
    }
    if (t instanceof DeliveryError) throw t;
    return t;
  }

  /**
   * One POST through the pool's dispatch API with a minimal handler: the response body is
   * discarded as it arrives, without the stream objects of `request()` (a notification's answer
   * carries nothing we need, and this is the hot path of the fan-out).
   */
  send(msg: OutboxRow): Promise<void> {
    let t: { origin: string; path: string };
    try {
      t = this.target(msg.endpoint);
    } catch (e) {
      return Promise.reject(e);
    }
    let headers = this.headerSets.get(msg.headers);
    if (!headers) this.headerSets.set(msg.headers, (headers = { ...msg.headers, 'user-agent': this.opts.userAgent ?? 'urbis-notifier' }));
    const timeout = msg.timeoutMs ?? this.opts.defaultTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      let status = 0;
      this.pool(t.origin).dispatch(
        { method: 'POST', path: t.path, headers, body: msg.body, headersTimeout: timeout, bodyTimeout: timeout },
        {
          onConnect() {},
          onHeaders(statusCode: number) {
            status = statusCode;
            return true;
          },
          onData() {
            return true;
          },
          onComplete() {
            if (status >= 200 && status < 300) resolve();
            else reject(new DeliveryError(`HTTP ${status} from ${t.origin}${t.path.split('?')[0]}`, status));
          },
          onError(e: Error) {
            reject(e instanceof DeliveryError ? e : new DeliveryError(`${e.name}: ${e.message}`));
          },
        },
      );
    });
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}

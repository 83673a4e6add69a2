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

  async send(msg: OutboxRow): Promise<void> {
    let url: URL;
    try {
      url = new URL(msg.endpoint);
    } catch {
      throw new DeliveryError(`invalid endpoint ${msg.endpoint}`);
    }
    const timeout = msg.timeoutMs ?? this.opts.defaultTimeoutMs ?? 10_000;
    try {
      const res = await this.pool(url.origin).request({
        method: 'POST',
        path: url.pathname + url.search,
        headers: { ...msg.headers, 'user-agent': this.opts.userAgent ?? 'urbis-notifier' },
        body: msg.body,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode >= 300) {
        throw new DeliveryError(`HTTP ${res.statusCode} from ${url.origin}${url.pathname}`, res.statusCode);
      }
    } catch (e) {
      if (e instanceof DeliveryError) throw e;
      throw new DeliveryError(`${(e as Error).name}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}

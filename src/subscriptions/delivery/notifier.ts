import type { OutboxRow } from './outbox.ts';

/** Sends one notification; resolves when the receiver acknowledged it, rejects otherwise. */
export interface Notifier {
  send(msg: OutboxRow): Promise<void>;
  close(): Promise<void>;
}

/** Failure with a short reason (HTTP status, network error, MQTT error). */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Routes by endpoint scheme: http/https -> HTTP notifier, mqtt/mqtts -> MQTT notifier. */
export class SchemeRouter implements Notifier {
  constructor(private byScheme: Record<string, Notifier>) {}
  send(msg: OutboxRow): Promise<void> {
    const scheme = msg.endpoint.slice(0, msg.endpoint.indexOf(':')).toLowerCase();
    const n = this.byScheme[scheme];
    if (!n) return Promise.reject(new DeliveryError(`no notifier for scheme "${scheme}"`));
    return n.send(msg);
  }
  async close(): Promise<void> {
    await Promise.all([...new Set(Object.values(this.byScheme))].map((n) => n.close()));
  }
}

/**
 * Counts the notifications sent through `inner` and not answered yet, per tenant and subscription:
 * timesSent counts notifications sent (clause 5.2.12), and a receiver may act on one (and ask for
 * the subscription) before its answer is read. A send settles here before the caller's own
 * handlers run (they attach to the same promise later), so a notification is never counted both
 * in flight and as an outcome.
 */
export class InflightCounter implements Notifier {
  private bySub = new Map<string, Map<string, { n: number; at: number }>>();
  constructor(private inner: Notifier, private now: () => number) {}

  send(msg: OutboxRow): Promise<void> {
    let subs = this.bySub.get(msg.tenant);
    if (!subs) this.bySub.set(msg.tenant, (subs = new Map()));
    let f = subs.get(msg.subscriptionId);
    if (!f) subs.set(msg.subscriptionId, (f = { n: 0, at: 0 }));
    f.n++;
    f.at = this.now();
    const sent = this.inner.send(msg);
    const settle = () => {
      if (--f.n === 0) subs.delete(msg.subscriptionId);
    };
    sent.then(settle, settle);
    return sent;
  }

  /** Notifications of the subscription on their way, and when the last one left. */
  inflight(tenant: string, subscriptionId: string): { n: number; at: number } | undefined {
    return this.bySub.get(tenant)?.get(subscriptionId);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

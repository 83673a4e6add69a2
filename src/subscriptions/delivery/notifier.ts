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

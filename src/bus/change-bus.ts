import type { StoredEntity } from '../ngsi-ld/model/types.ts';

/** One write to one entity, as seen by subscriptions, history, rules, the live feed and peer nodes. */
export interface ChangeEvent {
  tenant: string;
  entityId: string;
  /** expanded types after the change (before, for deletes) */
  types: string[];
  kind: 'create' | 'update' | 'replace' | 'delete';
  /** entity before the write (undefined on create) */
  before?: StoredEntity;
  /** entity after the write (undefined on delete) */
  after?: StoredEntity;
  /** expanded names of attributes whose value changed, were added or were deleted */
  changedAttrs: string[];
  /** deleted attribute names (expanded) */
  deletedAttrs?: string[];
  /** ISO time of the write */
  at: string;
  /** set when the event came from another node, so it is not re-broadcast */
  origin?: string;
}

export type ChangeHandler = (events: ChangeEvent[]) => void | Promise<void>;

/** Small interface so that a NATS-backed bus can replace the in-process one between nodes. */
export interface ChangeBus {
  /**
   * Delivers the events to every handler. The promise settles when the handlers that returned a
   * promise have finished: the broker awaits it before acknowledging a write, so durable consumers
   * (notification outbox, history) have stored what they need by the time the client hears 2xx.
   * Handlers with nothing durable to do should return nothing (and not slow writes down).
   */
  publish(events: ChangeEvent[]): Promise<void>;
  subscribe(handler: ChangeHandler): () => void;
}

/**
 * In-process bus. Handlers are called synchronously in order of subscription with the whole batch;
 * a handler that throws or rejects is logged and does not stop the others.
 */
export class LocalChangeBus implements ChangeBus {
  private handlers: ChangeHandler[] = [];
  constructor(private onError: (e: unknown) => void = () => {}) {}
  async publish(events: ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    let pending: Promise<void>[] | undefined;
    for (const h of this.handlers) {
      try {
        const r = h(events);
        if (r && typeof (r as Promise<void>).then === 'function') (pending ??= []).push((r as Promise<void>).catch(this.onError));
      } catch (e) {
        this.onError(e);
      }
    }
    if (pending) await Promise.all(pending);
  }
  subscribe(handler: ChangeHandler): () => void {
    this.handlers.push(handler);
    return () => {
      this.handlers = this.handlers.filter((h) => h !== handler);
    };
  }
}

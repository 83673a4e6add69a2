import type { Notifier } from './notifier.ts';
import type { OutboxRow } from './outbox.ts';

/**
 * The in-memory fast path of the dispatcher: one lane per subscription, holding outbox rows that
 * were stored already claimed (state inflight) and are sent straight from memory, without a claim
 * query. A lane has at most one send in flight, so a subscription's notifications go out in order;
 * lanes of different subscriptions run concurrently. What happens after a send (acknowledging in
 * batches, rescheduling a failure) is the dispatcher's business, through the callbacks.
 */
export interface LaneCallbacks {
  /** the receiver acknowledged `row` */
  delivered(key: string, row: OutboxRow): void;
  /**
   * `row` failed; the lane is gone and `rest` (not attempted, still claimed in the table) is handed
   * back with it, in order: the dispatcher moves the subscription to the claim path.
   */
  failed(key: string, row: OutboxRow, error: Error, rest: OutboxRow[]): void;
  /** after spill(): the lane is gone, `rest` (not attempted) is handed back in order */
  spilled(key: string, rest: OutboxRow[]): void;
  /** no send is in flight any more */
  quiet(): void;
}

/**
 * A lane stays in the map when it runs dry (a subscription sends again soon), with its two
 * completion callbacks made once: per notification, a lane object and two closures were garbage.
 */
interface Lane {
  key: string;
  rows: OutboxRow[];
  /** index of the next row to send */
  next: number;
  busy: boolean;
  /** hand the rest back once the send in flight is done */
  spill?: boolean;
  /** the row in flight */
  current?: OutboxRow;
  ok: () => void;
  fail: (e: unknown) => void;
}

export class Lanes {
  private lanes = new Map<string, Lane>();
  private inFlight = 0;
  private stopped = false;

  constructor(
    private notifier: Notifier,
    private cb: LaneCallbacks,
  ) {}

  /** rows waiting or in flight for a subscription */
  queued(key: string): number {
    const l = this.lanes.get(key);
    return l ? l.rows.length - l.next + (l.busy ? 1 : 0) : 0;
  }

  get sending(): number {
    return this.inFlight;
  }

  /** Appends rows (in seq order) to the subscription's lane and starts it if it is idle. */
  push(key: string, rows: OutboxRow[]): void {
    let l = this.lanes.get(key);
    if (!l) this.lanes.set(key, (l = this.lane(key)));
    for (const r of rows) l.rows.push(r);
    if (!l.busy) this.send(key, l);
  }

  /**
   * Ends a subscription's lane: no further send; once the send in flight (if any) is done,
   * `spilled` gets the rows that were not attempted (at once when nothing is in flight).
   */
  spill(key: string): void {
    const l = this.lanes.get(key);
    if (!l) {
      this.cb.spilled(key, []);
      return;
    }
    l.spill = true;
    if (!l.busy) this.send(key, l);
  }

  /** Drops a subscription's lane (deleted subscription) and returns the rows not attempted. */
  drop(key: string): OutboxRow[] {
    const l = this.lanes.get(key);
    if (!l) return [];
    const rest = l.rows.slice(l.next);
    l.rows = [];
    l.next = 0;
    if (!l.busy) this.lanes.delete(key);
    return rest;
  }

  /** No new sends; rows left in lanes stay claimed in the table and come back on restart. */
  stop(): void {
    this.stopped = true;
  }

  resume(): void {
    this.stopped = false;
  }

  private lane(key: string): Lane {
    const l: Lane = { key, rows: [], next: 0, busy: false, ok: () => this.sent(l), fail: (e: unknown) => this.sendFailed(l, e) };
    return l;
  }

  private send(key: string, l: Lane): void {
    if (l.spill) {
      const rest = l.rows.slice(l.next);
      l.rows = [];
      l.next = 0;
      l.busy = false;
      if (this.lanes.get(key) === l) this.lanes.delete(key);
      this.cb.spilled(key, rest);
      return;
    }
    if (this.stopped || l.next >= l.rows.length) {
      l.busy = false;
      if (l.next >= l.rows.length) {
        l.rows.length = 0;
        l.next = 0;
      }
      return;
    }
    const row = l.rows[l.next++];
    if (l.next > 256 && l.next * 2 > l.rows.length) {
      // compact now and then instead of shift() per row
      l.rows = l.rows.slice(l.next);
      l.next = 0;
    }
    l.busy = true;
    l.current = row;
    this.inFlight++;
    this.notifier.send(row).then(l.ok, l.fail);
  }

  private sent(l: Lane): void {
    const row = l.current!;
    l.current = undefined;
    this.inFlight--;
    this.cb.delivered(l.key, row);
    this.send(l.key, l);
    if (this.inFlight === 0) this.cb.quiet();
  }

  private sendFailed(l: Lane, e: unknown): void {
    const row = l.current!;
    l.current = undefined;
    this.inFlight--;
    const rest = l.rows.slice(l.next);
    l.rows = [];
    l.next = 0;
    l.busy = false;
    if (this.lanes.get(l.key) === l) this.lanes.delete(l.key);
    this.cb.failed(l.key, row, e instanceof Error ? e : new Error(String(e)), rest);
    if (this.inFlight === 0) this.cb.quiet();
  }
}

import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { Notifier } from './notifier.ts';
import type { Outbox, OutboxItem, OutboxRow } from './outbox.ts';
import { Lanes } from './lanes.ts';

/** Outcome of one delivery attempt, for the subscription's status and counters. */
export interface DeliveryResult {
  tenant: string;
  subscriptionId: string;
  ok: boolean;
  /** epoch ms of the attempt */
  at: number;
  /** the row was given up on (dead letter) */
  dead?: boolean;
  error?: string;
  /** ms from enqueue to acknowledgement (successes) */
  latencyMs?: number;
}

export interface DispatcherOptions {
  /** rows claimed per round */
  batch?: number;
  /** rows of one subscription per round (sent in order) */
  perSub?: number;
  /** rounds running at once (each covers distinct subscriptions) */
  rounds?: number;
  leaseMs?: number;
  onResults?: (results: DeliveryResult[]) => void | Promise<void>;
  /** each outcome as soon as it is known (the same objects are passed to onResults at the end of the round) */
  onResult?: (result: DeliveryResult) => void;
  log?: Logger;
  /** fast path: longest in-memory lane of a subscription before further rows go through the table */
  laneCap?: number;
  /** fast path: delivered rows are deleted in one statement at most this often while busy (ms) */
  ackEveryMs?: number;
  /** fast path: delivery outcomes go to onResults at most this often while busy (ms) */
  resultsEveryMs?: number;
  /** fast path: lease of rows stored already claimed (ms); only a restart frees them sooner */
  fastLeaseMs?: number;
}

interface Submission {
  items: OutboxItem[];
  now: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const keyOf = (tenant: string, subscriptionId: string) => `${tenant}\u0000${subscriptionId}`;

/**
 * The outbox worker, with two paths:
 *  - fast path: `submit()` stores notifications (group commit: the submissions that arrive while
 *    one insert runs go into the next, one statement) already claimed, resolves once they are
 *    durable, and hands them to in-memory lanes (one send in flight per subscription). Delivered
 *    rows are deleted in batches; a failure reschedules its row in the table and moves the
 *    subscription to the claim path.
 *  - claim path: claims due rows from the table (retries after backoff, throttled rows, rows left
 *    over by a restart, rows of subscriptions whose lane is full), sends each subscription's rows in
 *    order, acknowledges successes, reschedules failures, and sleeps on the clock until the next
 *    retry is due.
 * A subscription that has rows in the table (other than dead letters) takes the claim path for all
 * its new rows until the table has none left for it, so its order holds across both paths.
 * `kick()` after enqueueing directly; `idle()` resolves once nothing is in flight or claimable.
 */
export class Dispatcher {
  private wanted = false;
  private claiming = false;
  private active = 0;
  private stopped = false;
  private cancelTimer?: () => void;
  private timerAt?: number;
  private idleWaiters: (() => void)[] = [];
  private settling = false;

  // fast path
  private lanes: Lanes;
  /** subscriptions whose new rows go through the table (claim path), see the class comment */
  private viaTable = new Set<string>();
  private submissions: Submission[] = [];
  private committing = false;
  /** the claim path ran dry: see whether subscriptions in viaTable can come back to the fast path */
  private recheck = false;
  /** failures of the fast path being written to the table */
  private diverting = 0;
  private acks: number[] = [];
  /** subscriptions of the rows in `acks` that are in viaTable (their claims wait for the delete) */
  private ackUnblocks = false;
  private results: DeliveryResult[] = [];
  private flushing = false;
  private flushTimer?: NodeJS.Timeout;
  private flushAt = 0;
  private lastResults = 0;

  constructor(
    private outbox: Outbox,
    private notifier: Notifier,
    private clock: Clock,
    private opts: DispatcherOptions = {},
  ) {
    this.lanes = new Lanes(notifier, {
      delivered: (key, row) => this.delivered(key, row),
      failed: (key, row, e, rest) => this.divert(key, row, e, rest),
      quiet: () => this.scheduleFlush(true),
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.lanes.resume();
    const n = await this.outbox.recover();
    if (n) this.opts.log?.info('re-queued in-flight notifications', { count: n });
    // whatever is queued from before goes first, through the claim path
    for (const q of await this.outbox.queuedSubscriptions()) this.viaTable.add(keyOf(q.tenant, q.subscriptionId));
    this.kick();
  }

  kick(): void {
    this.wanted = true;
    this.pump();
  }

  /**
   * Stores notifications durably and delivers them: resolves when they are in the table (the
   * broker acknowledges the write after that); sending goes on in the background.
   */
  submit(items: OutboxItem[], now: number = this.clock.now()): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.submissions.push({ items, now, resolve, reject });
      void this.commit();
    });
  }

  /** Forgets the in-memory lane of a deleted subscription (its rows are purged from the table). */
  forget(tenant: string, subscriptionId: string): void {
    const k = keyOf(tenant, subscriptionId);
    this.lanes.drop(k);
    this.viaTable.delete(k);
  }

  /** Resolves when nothing is being stored, sent, acknowledged or claimed (a retry timer may be armed). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => {
      this.idleWaiters.push(r);
      this.scheduleFlush(false);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.lanes.stop();
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const busy = () => this.active > 0 || this.claiming || this.committing || this.lanes.sending > 0 || this.diverting > 0 || this.flushing;
    while (busy()) await new Promise((r) => setImmediate(r));
    // what was delivered is acknowledged; rows still in lanes stay claimed and come back on restart
    this.clearFlushTimer();
    await this.flush(true);
    while (busy()) await new Promise((r) => setImmediate(r));
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((f) => f());
  }

  private isIdle(): boolean {
    return (
      this.active === 0 && !this.claiming && !this.wanted && !this.settling &&
      !this.committing && this.submissions.length === 0 && this.lanes.sending === 0 && this.diverting === 0 &&
      this.acks.length === 0 && this.results.length === 0 && !this.flushing
    );
  }

  private wakeIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((f) => f());
  }

  // ---- fast path -------------------------------------------------------------------------------

  private async commit(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.submissions.length > 0 || this.recheck) {
        if (this.recheck) await this.recheckViaTable();
        if (this.submissions.length === 0) continue;
        const batch = this.submissions.splice(0);
        await this.commitBatch(batch);
      }
    } finally {
      this.committing = false;
      this.wakeIdle();
    }
  }

  /**
   * One insert for the whole group. Which path a row takes is decided here, while no other insert
   * runs: a subscription with rows in the table (or a row not due yet, or a full lane) goes through
   * the table from that row on.
   */
  private async commitBatch(batch: Submission[]): Promise<void> {
    const items: OutboxItem[] = [];
    const leases: (number | undefined)[] = [];
    const now = this.clock.now();
    const lease = now + (this.opts.fastLeaseMs ?? 3_600_000);
    const cap = this.opts.laneCap ?? 1000;
    const laneAdds = new Map<string, number>();
    let viaTable = false;
    for (const s of batch) {
      for (const it of s.items) {
        const k = keyOf(it.tenant, it.subscriptionId);
        const item = it.nextAt === undefined ? { ...it, nextAt: s.now } : it;
        const inLane = (laneAdds.get(k) ?? 0) + this.lanes.queued(k);
        const fast = !this.stopped && !this.viaTable.has(k) && item.nextAt! <= now && inLane < cap;
        if (fast) laneAdds.set(k, inLane + 1 - this.lanes.queued(k));
        else {
          this.viaTable.add(k);
          viaTable = true;
        }
        items.push(item);
        leases.push(fast ? lease : undefined);
      }
    }
    let seqs: number[];
    try {
      seqs = await this.outbox.enqueue(items, now, undefined, leases);
    } catch (e) {
      batch.forEach((s) => s.reject(e));
      return;
    }
    batch.forEach((s) => s.resolve());
    const byLane = new Map<string, OutboxRow[]>();
    const release: number[] = [];
    for (let i = 0; i < items.length; i++) {
      if (leases[i] === undefined) continue;
      const it = items[i];
      const row: OutboxRow = { ...it, seq: seqs[i], attempts: 0, createdAt: now };
      const k = keyOf(it.tenant, it.subscriptionId);
      // a failure of this subscription while the insert ran: the row joins the others in the table
      if (this.viaTable.has(k)) release.push(row.seq);
      else (byLane.get(k) ?? byLane.set(k, []).get(k)!).push(row);
    }
    for (const [k, rows] of byLane) this.lanes.push(k, rows);
    if (release.length) {
      try {
        await this.outbox.release(release);
      } catch (e) {
        this.opts.log?.error('releasing notifications failed (they are sent after a restart)', { error: e });
      }
    }
    if (viaTable || release.length) this.kick();
  }

  /** Subscriptions in viaTable with nothing left in the table come back to the fast path. */
  private async recheckViaTable(): Promise<void> {
    this.recheck = false;
    if (this.viaTable.size === 0) return;
    const keys = [...this.viaTable].map((k) => {
      const i = k.indexOf('\u0000');
      return { tenant: k.slice(0, i), subscriptionId: k.slice(i + 1) };
    });
    try {
      const still = new Set((await this.outbox.queuedSubscriptions(keys)).map((q) => keyOf(q.tenant, q.subscriptionId)));
      for (const k of keys.map((q) => keyOf(q.tenant, q.subscriptionId))) {
        if (!still.has(k) && this.diverting === 0 && this.lanes.queued(k) === 0) this.viaTable.delete(k);
      }
    } catch (e) {
      this.opts.log?.error('outbox recheck failed', { error: e });
    }
  }

  private delivered(key: string, row: OutboxRow): void {
    const at = this.clock.now();
    this.acks.push(row.seq);
    if (this.viaTable.has(key)) this.ackUnblocks = true;
    const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: true, at, latencyMs: at - row.createdAt };
    this.results.push(r);
    this.opts.onResult?.(r);
    this.scheduleFlush(false);
  }

  /** A fast-path failure: the row is rescheduled (or dead-lettered) in the table, the rest released. */
  private divert(key: string, row: OutboxRow, e: Error, rest: OutboxRow[]): void {
    this.viaTable.add(key);
    this.diverting++;
    const at = this.clock.now();
    const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: false, at, error: e.message };
    this.opts.onResult?.(r);
    (async () => {
      const [o] = await this.outbox.fail([{ seq: row.seq, attempts: row.attempts, error: e.message ?? String(e) }], at);
      if (o?.dead) {
        r.dead = true;
        this.opts.log?.warn('notifications dead-lettered', { count: 1 });
      }
      await this.outbox.release(rest.map((x) => x.seq));
    })()
      .catch((err) => this.opts.log?.error('recording a failed notification failed (it is sent again after a restart)', { error: err }))
      .finally(() => {
        this.results.push(r);
        this.diverting--;
        this.kick();
        this.scheduleFlush(false);
      });
  }

  /**
   * Acknowledgements and outcomes are written in batches: at once when no send is in flight
   * (`now`, or an idle() waiter), else deletes at most every ackEveryMs and counter updates at
   * most every resultsEveryMs (one statement each, whatever the number of rows).
   */
  private scheduleFlush(now: boolean): void {
    if (this.flushing) return; // flush() looks again when it is done
    if (this.acks.length === 0 && this.results.length === 0) {
      this.wakeIdle();
      return;
    }
    if (now || this.idleWaiters.length > 0 || this.lanes.sending === 0) {
      this.clearFlushTimer();
      void this.flush(true);
      return;
    }
    const wait = this.acks.length > 0 ? this.opts.ackEveryMs ?? 20 : Math.max(0, this.lastResults + (this.opts.resultsEveryMs ?? 500) - Date.now());
    const at = Date.now() + wait;
    if (this.flushTimer && this.flushAt <= at) return;
    this.clearFlushTimer();
    this.flushAt = at;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush(false);
    }, wait);
  }

  private clearFlushTimer(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Writes the pending acknowledgements, and the outcomes when `all` or when they are due. */
  private async flush(all: boolean): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      do {
        const acks = this.acks.splice(0);
        const unblocks = this.ackUnblocks;
        this.ackUnblocks = false;
        if (acks.length) {
          try {
            await this.outbox.ack(acks);
          } catch (e) {
            // the rows stay claimed: sent again after a restart (at-least-once)
            this.opts.log?.error('acknowledging notifications failed', { error: e });
          }
          // claims of subscriptions on the claim path waited for these rows to go
          if (unblocks) this.kick();
        }
        if (this.results.length > 0 && (all || Date.now() - this.lastResults >= (this.opts.resultsEveryMs ?? 500))) {
          const rs = this.results.splice(0);
          this.lastResults = Date.now();
          try {
            await this.opts.onResults?.(rs);
          } catch (e) {
            this.opts.log?.error('recording notification outcomes failed', { error: e });
          }
        }
      } while (all && (this.acks.length > 0 || this.results.length > 0));
    } finally {
      this.flushing = false;
      this.scheduleFlush(false);
    }
  }

  // ---- claim path ------------------------------------------------------------------------------

  private pump(): void {
    const max = this.opts.rounds ?? 4;
    while (!this.stopped && this.wanted && !this.claiming && this.active < max) {
      this.wanted = false;
      this.claiming = true;
      this.active++;
      this.round()
        .catch((e) => {
          this.opts.log?.error('notification round failed', { error: e });
          // transient store error: try again on the next kick/timer
          this.armTimer(this.clock.now() + 1000);
        })
        .finally(() => {
          this.active--;
          this.pump();
          this.maybeSettle();
        });
    }
  }

  private async round(): Promise<void> {
    let rows: OutboxRow[];
    try {
      rows = await this.outbox.claim(this.clock.now(), {
        limit: this.opts.batch ?? 5000,
        perSub: this.opts.perSub ?? 50,
        leaseMs: this.opts.leaseMs ?? 60_000,
      });
    } finally {
      this.claiming = false;
    }
    if (rows.length === 0) return;
    this.wanted = true; // there may be more: let another round claim while this one sends
    this.pump();

    const groups = new Map<string, OutboxRow[]>();
    for (const r of rows) {
      const k = `${r.tenant}\u0000${r.subscriptionId}`;
      const g = groups.get(k);
      if (g) g.push(r);
      else groups.set(k, [r]);
    }
    const acks: number[] = [];
    const fails: { seq: number; attempts: number; error: string }[] = [];
    const releases: number[] = [];
    const results: DeliveryResult[] = [];
    await Promise.all(
      [...groups.values()].map(async (g) => {
        for (let i = 0; i < g.length; i++) {
          const row = g[i];
          try {
            await this.notifier.send(row);
            const at = this.clock.now();
            acks.push(row.seq);
            const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: true, at, latencyMs: at - row.createdAt };
            results.push(r);
            this.opts.onResult?.(r);
          } catch (e) {
            fails.push({ seq: row.seq, attempts: row.attempts, error: (e as Error).message ?? String(e) });
            const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: false, at: this.clock.now(), error: (e as Error).message };
            results.push(r);
            this.opts.onResult?.(r);
            for (let j = i + 1; j < g.length; j++) releases.push(g[j].seq);
            return;
          }
        }
      }),
    );
    await this.outbox.ack(acks);
    await this.outbox.release(releases);
    const outcomes = await this.outbox.fail(fails, this.clock.now());
    const dead = new Set(outcomes.filter((o) => o.dead).map((o) => o.seq));
    if (dead.size) {
      // mark the matching failure results as dead letters (same order as fails)
      let k = 0;
      for (const r of results) {
        if (r.ok) continue;
        if (dead.has(fails[k].seq)) r.dead = true;
        k++;
      }
      this.opts.log?.warn('notifications dead-lettered', { count: dead.size });
    }
    if (results.length) await this.opts.onResults?.(results);
  }

  private maybeSettle(): void {
    if (this.active > 0 || this.claiming || this.wanted || this.settling || this.stopped) return;
    this.settling = true;
    this.outbox
      .nextDue()
      .then((due) => {
        if (due !== undefined) this.armTimer(due);
      })
      .catch((e) => this.opts.log?.error('outbox nextDue failed', { error: e }))
      .finally(() => {
        this.settling = false;
        if (this.wanted) this.pump();
        else if (this.viaTable.size > 0 && !this.stopped) {
          // the claim path ran dry: subscriptions with nothing left in the table may take the fast path again
          this.recheck = true;
          void this.commit();
        } else this.wakeIdle();
      });
  }

  private armTimer(at: number): void {
    if (this.stopped) return;
    if (at <= this.clock.now()) {
      // already due: go again at once (nextDue only counts claimable heads, so this cannot spin)
      this.wanted = true;
      return;
    }
    if (this.timerAt !== undefined && this.timerAt <= at && this.cancelTimer) return;
    this.cancelTimer?.();
    this.timerAt = at;
    this.cancelTimer = this.clock.setTimer(Math.max(0, at - this.clock.now()), () => {
      this.cancelTimer = undefined;
      this.timerAt = undefined;
      this.kick();
    });
  }
}

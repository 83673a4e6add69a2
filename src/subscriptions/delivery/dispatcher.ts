import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { Notifier } from './notifier.ts';
import { backoffDelay, fanoutBody, headersJson, type FanoutItem, type MovedRow, type Outbox, type OutboxItem, type OutboxRow, type SharedBody } from './outbox.ts';
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
  /**
   * with `coalesceResults`: this many successes in a row of the subscription (default 1); `at`
   * and `latencyMs` are those of the last one
   */
  count?: number;
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
  /** fast path: delivered fan-out rows are deleted in one statement at most this often (ms, default 200) */
  ackEveryMs?: number;
  /**
   * fast path: delivery outcomes go to onResults at most this often while busy (ms); the counters
   * update touches every active subscription's row, and retrievals merge what is not written yet
   */
  resultsEveryMs?: number;
  /** fast path: lease of rows stored already claimed (ms); only a restart frees them sooner */
  fastLeaseMs?: number;
  /**
   * fast path: successive successes of a subscription between two flushes are one result with a
   * `count` (onResult sees it once, when it is created, and it keeps counting): at 10,000
   * notifications/s one object per delivery, kept up to resultsEveryMs, was promoted to the old
   * generation and fed major GC pauses, and the flush aggregated 20,000 of them at once
   */
  coalesceResults?: boolean;
}

interface Submission {
  items: OutboxItem[];
  now: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const keyOf = (tenant: string, subscriptionId: string) => `${tenant}\u0000${subscriptionId}`;
const splitKey = (k: string) => {
  const i = k.indexOf('\u0000');
  return { tenant: k.slice(0, i), subscriptionId: k.slice(i + 1) };
};

/** A fan-out row in memory: how many of its targets are still owed, who was delivered already. */
interface Fan {
  id: number;
  remaining: number;
  /** keys of the subscriptions delivered from it */
  done: string[];
}

/** A fan-out target on its way through a lane. */
interface FastRow extends OutboxRow {
  fan: Fan;
}

/**
 * A subscription leaving the fast path (its send failed, or it needs the table: a throttled row,
 * a full lane): its fan-out targets become outbox rows, in order, in one transaction, once its
 * lane has stopped.
 */
interface Move {
  failed?: { row: FastRow; error: Error; result: DeliveryResult };
  /** rows its lane had not attempted */
  laneRest: FastRow[];
  /** rows stored as fan-out targets after the move began */
  late: FastRow[];
  /** the lane has stopped (laneRest is known) */
  ready: boolean;
}

/**
 * The outbox worker, with two paths:
 *  - fast path: `submit()` stores a change's notifications as fan-out rows (one per change and
 *    rendering, listing the subscriptions to notify; group commit: submissions that arrive while
 *    one insert runs share the next statement), resolves once they are durable, and hands them to
 *    in-memory lanes (one send in flight per subscription, lanes run concurrently). A fan-out row
 *    is deleted (in batches) once all its targets are delivered. A failed send moves the
 *    subscription's remaining targets to outbox rows (the failed one with its retry time).
 *  - claim path: claims due outbox rows (retries after backoff, throttled rows, rows left by a
 *    restart), sends each subscription's rows in order, acknowledges successes, reschedules
 *    failures, and sleeps on the clock until the next retry is due.
 * Order per subscription: at any time a subscription has either fan-out targets or outbox rows
 * (other than dead letters), never both; it goes back to the fast path once it has no rows left.
 * On start-up, fan-out rows left by a crash become outbox rows, in order.
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
  /** subscriptions whose new rows go to the table (claim path) */
  private viaTable = new Set<string>();
  private moves = new Map<string, Move>();
  /** deleted subscriptions: a send of theirs still in flight that fails is not moved to the table */
  private gone = new Set<string>();
  /** fan-outs a subscription was delivered from that still owe others (a move drops it from them) */
  /**
   * per subscription: how many unfinished fan-outs it was delivered from (entries stay at 0: a Set
   * per subscription added and deleted per notification made the map rehash all the time, and its
   * tables were most of what the fast path promoted to the old generation)
   */
  private doneCount = new Map<string, { n: number }>();
  /** fan-outs with targets still owed */
  private liveFans = new Set<Fan>();
  private submissions: Submission[] = [];
  private committing = false;
  /** the claim path ran dry: see whether subscriptions in viaTable can come back to the fast path */
  private recheck = false;
  /** fan-out rows with nothing owed, to delete */
  private fanAcks: number[] = [];
  private results: DeliveryResult[] = [];
  /** coalesceResults: the open (last, successful, not yet flushed) result per subscription */
  private openResults = new Map<string, DeliveryResult>();
  private flushing = false;
  private flushTimer?: NodeJS.Timeout;
  private flushAt = 0;
  private lastResults = 0;
  private lastAcks = 0;

  constructor(
    private outbox: Outbox,
    private notifier: Notifier,
    private clock: Clock,
    private opts: DispatcherOptions = {},
  ) {
    this.lanes = new Lanes(notifier, {
      delivered: (key, row) => this.delivered(key, row as FastRow),
      failed: (key, row, e, rest) => this.failed(key, row as FastRow, e, rest as FastRow[]),
      spilled: (key, rest) => this.spilled(key, rest as FastRow[]),
      quiet: () => this.scheduleFlush(),
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.lanes.resume();
    const n = await this.outbox.recover();
    if (n) this.opts.log?.info('re-queued in-flight notifications', { count: n });
    const f = await this.outbox.expandFanouts();
    if (f) this.opts.log?.info('re-queued fan-out notifications', { count: f });
    // whatever is queued from before goes first, through the claim path
    for (const q of await this.outbox.queuedSubscriptions()) this.viaTable.add(keyOf(q.tenant, q.subscriptionId));
    this.kick();
  }

  kick(): void {
    this.wanted = true;
    this.pump();
  }

  /**
   * Stores notifications durably and delivers them: resolves when they are stored (the broker
   * acknowledges the write after that); sending goes on in the background.
   */
  submit(items: OutboxItem[], now: number = this.clock.now()): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.submissions.push({ items, now, resolve, reject });
      void this.commit();
    });
  }

  /** Forgets the in-memory state of a deleted subscription (the caller purges its stored rows). */
  forget(tenant: string, subscriptionId: string): void {
    const k = keyOf(tenant, subscriptionId);
    const gone = this.lanes.drop(k) as FastRow[];
    const m = this.moves.get(k);
    if (m) {
      this.moves.delete(k);
      if (m.failed) gone.push(m.failed.row);
      gone.push(...m.laneRest, ...m.late);
    }
    for (const r of gone) this.settleTarget(r.fan);
    this.dropDone(k);
    this.doneCount.delete(k);
    this.viaTable.delete(k);
    this.gone.add(k);
    this.scheduleFlush();
  }

  /** Resolves when nothing is being stored, sent, acknowledged or claimed (a retry timer may be armed). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => {
      this.idleWaiters.push(r);
      this.scheduleFlush();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.lanes.stop();
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const busy = () => this.active > 0 || this.claiming || this.committing || this.lanes.sending > 0 || this.flushing;
    while (busy()) await new Promise((r) => setImmediate(r));
    // what was delivered is acknowledged; fan-out targets not sent stay stored and come back on restart
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
      !this.committing && this.submissions.length === 0 && this.lanes.sending === 0 && this.moves.size === 0 &&
      this.fanAcks.length === 0 && this.results.length === 0 && !this.flushing
    );
  }

  private wakeIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((f) => f());
  }

  // ---- fast path -------------------------------------------------------------------------------

  /** The one writer of the fast path: inserts, moves and rechecks run one at a time, in order. */
  private async commit(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      for (;;) {
        if (this.recheck) await this.recheckViaTable();
        const ready = [...this.moves].find(([, m]) => m.ready);
        if (ready) {
          await this.move(ready[0], ready[1]);
          continue;
        }
        if (this.submissions.length === 0) break;
        await this.commitBatch(this.submissions.splice(0));
      }
    } finally {
      this.committing = false;
      this.wakeIdle();
    }
  }

  /** The subscription has fan-out targets stored (in a lane, or delivered from unfinished fan-outs). */
  private present(k: string): boolean {
    return this.lanes.queued(k) > 0 || (this.doneCount.get(k)?.n ?? 0) > 0;
  }

  /** Starts moving a subscription to the table: its lane stops after the send in flight. */
  private startMove(k: string): void {
    if (this.moves.has(k)) return;
    this.moves.set(k, { laneRest: [], late: [], ready: false });
    this.viaTable.add(k);
    this.lanes.spill(k);
  }

  /**
   * One insert for the whole group. Which path an item takes is decided here, while no other
   * insert or move runs (see the class comment on order).
   */
  private async commitBatch(batch: Submission[]): Promise<void> {
    const now = this.clock.now();
    const cap = this.opts.laneCap ?? 1000;
    const table: OutboxItem[] = [];
    /** fan-out rows of this batch, by shared tail, then tenant + headers */
    const groups = new Map<SharedBody, Map<string, Map<string, { fan: FanoutItem; keys: string[]; items: OutboxItem[] }>>>();
    const fans: { fan: FanoutItem; keys: string[]; items: OutboxItem[] }[] = [];
    const fastHere = new Set<string>();
    for (const s of batch) {
      for (const it of s.items) {
        const k = this.keyOf(it.tenant, it.subscriptionId);
        if (this.gone.size > 0) this.gone.delete(k); // (created again)
        // the module sets nextAt on throttled subscriptions only: those rows wait in the table
        const due = it.nextAt === undefined;
        let fast: boolean;
        if (!it.shared || this.stopped) fast = false;
        else if (this.moves.has(k)) fast = true; // joins the move once stored
        else if (this.viaTable.has(k)) fast = false;
        else if (!due || this.lanes.queued(k) >= cap) {
          // needs the table; if it already has fan-out targets, they all move there first, in order
          fast = fastHere.has(k) || this.present(k);
          if (fast) this.startMove(k);
        } else fast = true;
        if (!fast) {
          // (an item without a shared tail for a subscription with fan-out targets would be out of
          // order after a crash; the module always sets one)
          this.viaTable.add(k);
          table.push(it.nextAt === undefined ? { ...it, nextAt: s.now } : it);
          continue;
        }
        fastHere.add(k);
        let byTenant = groups.get(it.shared!);
        if (!byTenant) groups.set(it.shared!, (byTenant = new Map()));
        let byHeaders = byTenant.get(it.tenant);
        if (!byHeaders) byTenant.set(it.tenant, (byHeaders = new Map()));
        const hk = headersJson(it.headers);
        let g = byHeaders.get(hk);
        if (!g) {
          g = { fan: { tenant: it.tenant, headers: it.headers, tail: it.shared!.tail, targets: [] }, keys: [], items: [] };
          byHeaders.set(hk, g);
          fans.push(g);
        }
        g.fan.targets.push({ subscriptionId: it.subscriptionId, endpoint: it.endpoint, notifierInfo: it.notifierInfo, timeoutMs: it.timeoutMs });
        g.keys.push(k);
        g.items.push(it);
      }
    }
    let ids: number[];
    try {
      const stored = await Promise.all([this.outbox.insertFanouts(fans.map((g) => g.fan), now), this.outbox.enqueue(table, now)]);
      ids = stored[0];
    } catch (e) {
      // nothing of the batch is stored and nothing went to a lane
      batch.forEach((s) => s.reject(e));
      return;
    }
    batch.forEach((s) => s.resolve());
    const byLane = new Map<string, FastRow[]>();
    fans.forEach((g, i) => {
      const fan: Fan = { id: ids[i], remaining: g.items.length, done: [] };
      this.liveFans.add(fan);
      g.items.forEach((it, t) => {
        const row: FastRow = {
          tenant: it.tenant,
          subscriptionId: it.subscriptionId,
          endpoint: it.endpoint,
          headers: it.headers,
          body: fanoutBody(fan.id, t, it.subscriptionId, now, g.fan.tail),
          notifierInfo: it.notifierInfo,
          timeoutMs: it.timeoutMs,
          nextAt: it.nextAt,
          seq: 0,
          attempts: 0,
          createdAt: now,
          fan,
        };
        const k = g.keys[t];
        const m = this.moves.get(k);
        if (m) m.late.push(row);
        else (byLane.get(k) ?? byLane.set(k, []).get(k)!).push(row);
      });
    });
    // rows of one subscription in one lane, in order (fan-outs are in submission order)
    for (const [k, rows] of byLane) this.lanes.push(k, rows);
    if (table.length) this.kick();
  }

  /** keyOf() without building (and hashing) a new string per notification */
  private keys = new Map<string, Map<string, string>>();
  private keyOf(tenant: string, subscriptionId: string): string {
    let byId = this.keys.get(tenant);
    if (!byId) this.keys.set(tenant, (byId = new Map()));
    let k = byId.get(subscriptionId);
    if (k === undefined) {
      if (byId.size >= 100_000) byId.clear();
      byId.set(subscriptionId, (k = keyOf(tenant, subscriptionId)));
    }
    return k;
  }

  /** Moves a subscription's fan-out targets to outbox rows (see Move). */
  private async move(k: string, m: Move): Promise<void> {
    const now = this.clock.now();
    const rows: MovedRow[] = [];
    const f = m.failed;
    let dead = false;
    if (f) {
      const attempts = f.row.attempts + 1;
      dead = attempts >= this.outbox.policy.maxAttempts;
      rows.push({
        row: f.row,
        attempts,
        state: dead ? 'dead' : 'pending',
        nextAt: dead ? now : now + backoffDelay(attempts, this.outbox.policy),
        lastError: f.error.message,
      });
    }
    for (const r of [...m.laneRest, ...m.late]) rows.push({ row: r, attempts: 0, state: 'pending', nextAt: r.nextAt ?? r.createdAt });
    const fanIds = new Set<number>(rows.map((r) => (r.row as FastRow).fan.id));
    for (const fan of this.liveFans) if (fan.done.includes(k)) fanIds.add(fan.id);
    const { tenant, subscriptionId } = splitKey(k);
    try {
      await this.outbox.moveTargets(tenant, subscriptionId, rows, [...fanIds], now);
    } catch (e) {
      // still stored as fan-out targets: sent after a restart; the subscription waits for it
      this.opts.log?.error('moving notifications to the outbox failed (they are sent after a restart)', { error: e });
      this.moves.delete(k);
      return;
    }
    this.moves.delete(k);
    for (const r of rows) this.settleTarget((r.row as FastRow).fan);
    this.dropDone(k);
    if (f) {
      if (dead) {
        f.result.dead = true;
        this.opts.log?.warn('notifications dead-lettered', { count: 1 });
      }
      this.results.push(f.result);
    }
    this.kick();
    this.scheduleFlush();
  }

  /** Subscriptions in viaTable with nothing left anywhere come back to the fast path. */
  private async recheckViaTable(): Promise<void> {
    this.recheck = false;
    if (this.viaTable.size === 0) return;
    const keys = [...this.viaTable].filter((k) => !this.moves.has(k) && !this.present(k));
    if (keys.length === 0) return;
    try {
      const still = new Set(
        (await this.outbox.queuedSubscriptions(keys.map(splitKey))).map((q) => keyOf(q.tenant, q.subscriptionId)),
      );
      for (const k of keys) if (!still.has(k) && !this.moves.has(k)) this.viaTable.delete(k);
    } catch (e) {
      this.opts.log?.error('outbox recheck failed', { error: e });
    }
  }

  /** One target of a fan-out is settled (delivered, moved to the table, or dropped). */
  private settleTarget(fan: Fan): void {
    if (--fan.remaining > 0) return;
    this.fanAcks.push(fan.id);
    this.liveFans.delete(fan);
    for (const d of fan.done) {
      const c = this.doneCount.get(d);
      if (c) c.n--;
    }
  }

  /** The subscription leaves the unfinished fan-outs it was delivered from (moved or deleted). */
  private dropDone(k: string): void {
    for (const fan of this.liveFans) if (fan.done.includes(k)) fan.done = fan.done.filter((d) => d !== k);
    const c = this.doneCount.get(k);
    if (c) c.n = 0;
  }

  private delivered(key: string, row: FastRow): void {
    const at = this.clock.now();
    if (row.fan.remaining > 1) {
      row.fan.done.push(key);
      let c = this.doneCount.get(key);
      if (!c) this.doneCount.set(key, (c = { n: 0 }));
      c.n++;
    }
    this.settleTarget(row.fan);
    if (this.opts.coalesceResults) {
      const open = this.openResults.get(key);
      if (open) {
        open.count = (open.count ?? 1) + 1;
        open.at = at;
        open.latencyMs = at - row.createdAt;
        this.scheduleFlush();
        return;
      }
    }
    const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: true, at, latencyMs: at - row.createdAt };
    this.results.push(r);
    if (this.opts.coalesceResults) this.openResults.set(key, r);
    this.opts.onResult?.(r);
    this.scheduleFlush();
  }

  /** A fast-path send failed: the subscription moves to the table (the failed row with its retry time). */
  private failed(key: string, row: FastRow, e: Error, rest: FastRow[]): void {
    if (this.gone.has(key)) {
      for (const x of [row, ...rest]) this.settleTarget(x.fan);
      this.scheduleFlush();
      return;
    }
    const r: DeliveryResult = { tenant: row.tenant, subscriptionId: row.subscriptionId, ok: false, at: this.clock.now(), error: e.message };
    this.openResults.delete(key); // later successes come after this failure
    this.opts.onResult?.(r);
    this.viaTable.add(key);
    let m = this.moves.get(key);
    if (!m) this.moves.set(key, (m = { laneRest: [], late: [], ready: false }));
    m.failed = { row, error: e, result: r };
    m.laneRest = rest;
    m.ready = true;
    void this.commit();
  }

  private spilled(key: string, rest: FastRow[]): void {
    const m = this.moves.get(key);
    if (!m) return;
    m.laneRest = rest;
    m.ready = true;
    if (!this.committing) void this.commit();
  }

  /**
   * Fan-out deletes and outcomes are written in batches, by a timer: deletes at most every
   * ackEveryMs, outcomes at most every resultsEveryMs; an idle() waiter (or stop) flushes at once.
   * Not at once when the lanes go quiet: at 10,000 notifications/s they do between two changes,
   * every few ms, and a DELETE (and the counters UPDATE) per change was a third of the statements
   * and of the WAL flushes competing with the writes. A delivered fan-out row is kept a little
   * longer; after a crash its targets are sent again (at-least-once, as before).
   */
  private scheduleFlush(): void {
    if (this.flushing) return; // flush() looks again when it is done
    if (this.fanAcks.length === 0 && this.results.length === 0) {
      this.wakeIdle();
      return;
    }
    const nowMs = Date.now();
    const resultsAt = this.results.length > 0 ? this.lastResults + (this.opts.resultsEveryMs ?? 2000) : Infinity;
    const acksAt = this.fanAcks.length > 0 ? this.lastAcks + (this.opts.ackEveryMs ?? 200) : Infinity;
    const waiting = this.idleWaiters.length > 0;
    if (waiting || nowMs >= resultsAt || nowMs >= acksAt) {
      this.clearFlushTimer();
      void this.flush(waiting);
      return;
    }
    const at = Math.min(resultsAt, acksAt);
    if (this.flushTimer && this.flushAt <= at) return;
    this.clearFlushTimer();
    this.flushAt = at;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush(false);
    }, at - nowMs);
  }

  private clearFlushTimer(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Deletes the finished fan-out rows, and writes the outcomes when `all` or when they are due. */
  private async flush(all: boolean): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      do {
        const acks = all || Date.now() >= this.lastAcks + (this.opts.ackEveryMs ?? 200) ? this.fanAcks.splice(0) : [];
        if (acks.length) {
          this.lastAcks = Date.now();
          try {
            await this.outbox.deleteFanouts(acks);
          } catch (e) {
            // the rows stay: their targets are sent again after a restart (at-least-once)
            this.opts.log?.error('acknowledging notifications failed', { error: e });
          }
        }
        if (this.results.length > 0 && (all || Date.now() - this.lastResults >= (this.opts.resultsEveryMs ?? 2000))) {
          const rs = this.results.splice(0);
          this.openResults.clear();
          this.lastResults = Date.now();
          try {
            await this.opts.onResults?.(rs);
          } catch (e) {
            this.opts.log?.error('recording notification outcomes failed', { error: e });
          }
        }
      } while (all && (this.fanAcks.length > 0 || this.results.length > 0));
    } finally {
      this.flushing = false;
      this.scheduleFlush();
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

import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { Notifier } from './notifier.ts';
import type { Outbox, OutboxRow } from './outbox.ts';

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
}

/**
 * The outbox worker: claims due rows, sends each subscription's rows in order (subscriptions in
 * parallel), acknowledges successes, reschedules failures, and sleeps on the clock until the next
 * retry is due. `kick()` after enqueueing; `idle()` resolves once nothing is claimable.
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

  constructor(
    private outbox: Outbox,
    private notifier: Notifier,
    private clock: Clock,
    private opts: DispatcherOptions = {},
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    const n = await this.outbox.recover();
    if (n) this.opts.log?.info('re-queued in-flight notifications', { count: n });
    this.kick();
  }

  kick(): void {
    this.wanted = true;
    this.pump();
  }

  /** Resolves when no round runs and nothing is due right now (a retry timer may be armed). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    while (this.active > 0 || this.claiming) await new Promise((r) => setImmediate(r));
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((f) => f());
  }

  private isIdle(): boolean {
    return this.active === 0 && !this.claiming && !this.wanted && !this.settling;
  }

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
        else if (this.isIdle()) {
          const w = this.idleWaiters;
          this.idleWaiters = [];
          w.forEach((f) => f());
        }
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

import { randomUUID } from 'node:crypto';
import type { Db } from '../../store/db.ts';
import { migrateModule, type Migration } from '../../store/schema.ts';

/**
 * Durable notification outbox (at-least-once). Every notification is a row written before it is
 * sent; a worker claims the oldest due rows of each subscription in order, sends them and deletes
 * them on success. Failures back off exponentially with jitter; after `maxAttempts` the row turns
 * `dead` (dead letter, kept for inspection) and the next one of that subscription goes on.
 * Rows of one subscription are never in flight concurrently, which keeps per-subscription order.
 * Claims carry a lease so that rows of a crashed worker come back; on start-up, `recover()` frees
 * every lease of this (single) node at once.
 */
export const OUTBOX_MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS notification_outbox (
  seq bigserial PRIMARY KEY,
  tenant text NOT NULL,
  subscription_id text NOT NULL,
  endpoint text NOT NULL,
  headers jsonb NOT NULL,
  body text NOT NULL,
  notifier_info jsonb,
  timeout_ms int,
  attempts int NOT NULL DEFAULT 0,
  next_at bigint NOT NULL,
  state text NOT NULL DEFAULT 'pending',
  lease_until bigint,
  last_error text,
  created_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS notification_outbox_sub ON notification_outbox (tenant, subscription_id, seq) WHERE state <> 'dead';
CREATE INDEX IF NOT EXISTS notification_outbox_dead ON notification_outbox (tenant, subscription_id) WHERE state = 'dead';
`,
  },
  {
    // fast path: one row per change and rendering with the subscriptions still to notify
    version: 2,
    sql: `
CREATE TABLE IF NOT EXISTS notification_fanout (
  id bigserial PRIMARY KEY,
  tenant text NOT NULL,
  headers jsonb NOT NULL,
  tail text NOT NULL,
  targets jsonb NOT NULL,
  created_at bigint NOT NULL
);
`,
  },
];

/**
 * The part of a notification body after its head (id, type, subscriptionId, notifiedAt): `data`
 * and, for application/ld+json, `@context`, up to the closing brace. Items that share one object
 * (and equal headers) are stored as one fan-out row by the dispatcher's fast path.
 */
export interface SharedBody {
  tail: string;
}

/**
 * The body of a fan-out target. The notification id is made of the fan-out row's id and the
 * target's position, so a notification sent again after a restart keeps its id and notifiedAt.
 */
export function fanoutBody(fanoutId: number, k: number, subscriptionId: string, createdAt: number, tail: string): string {
  return `{"id":"urn:ngsi-ld:Notification:${fanoutId}-${k}","type":"Notification","subscriptionId":${jsonString(subscriptionId)},"notifiedAt":"${isoTime(createdAt)}"${tail}`;
}

// The bodies of one fan-out share their time and repeat the same few subscription ids: a Date, an
// ISO string and a JSON string per notification were garbage at 10,000 notifications/s.
let lastTime = NaN;
let lastIso = '';
function isoTime(ms: number): string {
  if (ms !== lastTime) {
    lastIso = new Date(ms).toISOString();
    lastTime = ms;
  }
  return lastIso;
}
const jsonStrings = new Map<string, string>();
function jsonString(s: string): string {
  let j = jsonStrings.get(s);
  if (j === undefined) {
    if (jsonStrings.size >= 100_000) jsonStrings.clear();
    jsonStrings.set(s, (j = JSON.stringify(s)));
  }
  return j;
}

/** The body of an item with a shared tail stored as an outbox row of its own. */
function wholeBody(subscriptionId: string, createdAt: number, tail: string): string {
  return `{"id":"urn:ngsi-ld:Notification:${randomUUID()}","type":"Notification","subscriptionId":${JSON.stringify(subscriptionId)},"notifiedAt":"${new Date(createdAt).toISOString()}"${tail}`;
}

/** One subscription of a fan-out row. */
export interface FanoutTarget {
  subscriptionId: string;
  endpoint: string;
  notifierInfo?: { key: string; value: string }[];
  timeoutMs?: number;
}

/**
 * A fan-out row: one change rendered alike for several subscriptions of a tenant (same headers),
 * stored once with the list of subscriptions still to notify.
 */
export interface FanoutItem {
  tenant: string;
  headers: Record<string, string>;
  tail: string;
  targets: FanoutTarget[];
}

/** stored target: [position, subscriptionId, endpoint, notifierInfo, timeoutMs] */
/** fan-out rows inserted with one parameter per value (4 each; far below the 65,535 parameters of a statement) */
const FANOUT_VALUES_MAX = 1000;

type StoredTarget = [number, string, string, { key: string; value: string }[] | null, number | null];

/** An outbox row to write with its delivery state (a fan-out target moved to the table). */
export interface MovedRow {
  row: OutboxRow;
  attempts: number;
  state: 'pending' | 'dead';
  nextAt: number;
  lastError?: string;
}

export interface OutboxItem {
  tenant: string;
  subscriptionId: string;
  /** endpoint URI (http, https, mqtt, mqtts) */
  endpoint: string;
  headers: Record<string, string>;
  /** serialized notification body, or: */
  body?: string;
  /**
   * or the body after its head, shared with the other items that have the same object: the fast
   * path stores such items as one fan-out row (see SharedBody)
   */
  shared?: SharedBody;
  notifierInfo?: { key: string; value: string }[];
  timeoutMs?: number;
  /** epoch ms before which the row is not sent (throttling); default: the enqueue time */
  nextAt?: number;
}

export interface OutboxRow extends OutboxItem {
  /** the whole body (composed from the shared tail for such rows) */
  body: string;
  seq: number;
  attempts: number;
  createdAt: number;
}

export interface BackoffPolicy {
  /** first retry delay, ms */
  baseMs: number;
  /** cap, ms */
  maxMs: number;
  /** attempts before dead letter */
  maxAttempts: number;
  /** 0..1 share of the delay randomised ("full jitter" when 1) */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 5 * 60_000, maxAttempts: 10, jitter: 0.5 };

const headerJson = new WeakMap<Record<string, string>, string>();
/** JSON of a headers object (one object per subscription, shared by its items: serialized once) */
export function headersJson(h: Record<string, string>): string {
  let j = headerJson.get(h);
  if (j === undefined) headerJson.set(h, (j = JSON.stringify(h)));
  return j;
}

/** Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with jitter. */
export function backoffDelay(attempt: number, p: BackoffPolicy, rand: () => number = Math.random): number {
  const raw = Math.min(p.maxMs, p.baseMs * 2 ** Math.max(0, attempt - 1));
  const j = raw * p.jitter;
  return Math.round(raw - j + rand() * j);
}

interface Raw {
  seq: string | number;
  tenant: string;
  subscription_id: string;
  endpoint: string;
  headers: Record<string, string> | null;
  body: string | null;
  notifier_info: { key: string; value: string }[] | null;
  timeout_ms: number | null;
  attempts: number;
  created_at: string | number;
}

const toRow = (r: Raw): OutboxRow => ({
  seq: Number(r.seq),
  tenant: r.tenant,
  subscriptionId: r.subscription_id,
  endpoint: r.endpoint,
  headers: r.headers ?? {},
  body: r.body ?? '{}',
  notifierInfo: r.notifier_info ?? undefined,
  timeoutMs: r.timeout_ms ?? undefined,
  attempts: r.attempts,
  createdAt: Number(r.created_at),
});

export interface FailureOutcome {
  seq: number;
  tenant: string;
  subscriptionId: string;
  dead: boolean;
  nextAt?: number;
}

export class Outbox {
  constructor(
    private db: Db,
    readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private rand: () => number = Math.random,
  ) {}

  async migrate(): Promise<void> {
    await migrateModule(this.db, 'subscriptions_outbox', OUTBOX_MIGRATIONS);
  }

  /**
   * Appends notifications in one statement (in `db`, e.g. the caller's transaction) and returns
   * their seqs in item order. `leaseUntil[i]`, when set, stores item i already claimed (state
   * inflight, leased until then): the dispatcher's in-memory fast path sends it without a claim
   * query, and a restart (`recover()`) puts it back in the queue if it was not acknowledged.
   */
  async enqueue(items: OutboxItem[], now: number, db: Db = this.db, leaseUntil?: (number | undefined)[]): Promise<number[]> {
    return this.insertRows(items, now, db, { leaseUntil });
  }

  private async insertRows(
    items: OutboxItem[],
    now: number,
    db: Db,
    o: { leaseUntil?: (number | undefined)[]; attempts?: number[]; dead?: boolean[]; lastError?: (string | undefined)[] } = {},
  ): Promise<number[]> {
    const seqs: number[] = [];
    const CHUNK = 5000;
    for (let i = 0; i < items.length; i += CHUNK) {
      const part = items.slice(i, i + CHUNK);
      const col = <T>(f: (it: OutboxItem, k: number) => T) => part.map((it, k) => f(it, i + k));
      // parallel arrays + unnest: cheaper to encode and parse than one JSON document per row
      const r = await db.query<{ seqs: string | null }>(
        `WITH ins AS (
           INSERT INTO notification_outbox (tenant, subscription_id, endpoint, headers, body, notifier_info, timeout_ms, next_at, created_at, state,
                                            lease_until, attempts, last_error)
           SELECT t, s, e, h::jsonb, b, ni::jsonb, tm, COALESCE(na, $10::bigint), $10::bigint,
                  CASE WHEN dd THEN 'dead' WHEN lu IS NULL THEN 'pending' ELSE 'inflight' END, lu, COALESCE(at, 0), le
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::bigint[], $9::bigint[],
                       $11::int[], $12::boolean[], $13::text[])
                WITH ORDINALITY AS x(t, s, e, h, b, ni, tm, na, lu, at, dd, le, ord)
           ORDER BY ord
           RETURNING seq)
         SELECT string_agg(seq::text, ',' ORDER BY seq) AS seqs FROM ins`,
        [
          col((it) => it.tenant),
          col((it) => it.subscriptionId),
          col((it) => it.endpoint),
          col((it) => headersJson(it.headers)),
          col((it) => it.body ?? wholeBody(it.subscriptionId, now, it.shared?.tail ?? ',"data":[]}')),
          col((it) => (it.notifierInfo ? JSON.stringify(it.notifierInfo) : null)),
          col((it) => it.timeoutMs ?? null),
          col((it) => it.nextAt ?? null),
          col((_it, k) => o.leaseUntil?.[k] ?? null),
          now,
          col((_it, k) => o.attempts?.[k] ?? null),
          col((_it, k) => o.dead?.[k] ?? false),
          col((_it, k) => o.lastError?.[k]?.slice(0, 500) ?? null),
        ],
      );
      // one statement numbers its rows in insertion (= item) order
      for (const s of (r[0]?.seqs ?? '').split(',')) if (s) seqs.push(Number(s));
    }
    return seqs;
  }

  // ---- fan-out rows (dispatcher fast path) ------------------------------------------------------

  /** Stores fan-out rows in one statement; returns their ids in order. */
  async insertFanouts(fans: FanoutItem[], now: number, db: Db = this.db): Promise<number[]> {
    if (fans.length === 0) return [];
    const targets = (f: FanoutItem) =>
      JSON.stringify(f.targets.map((t, k): StoredTarget => [k, t.subscriptionId, t.endpoint, t.notifierInfo ?? null, t.timeoutMs ?? null]));
    if (fans.length <= FANOUT_VALUES_MAX) {
      // one parameter per value: text[] parameters are escaped element by element by the driver (two
      // regex replaces over every body tail and target list, per change, on the fan-out's hot path)
      const params: unknown[] = [now];
      let values = '';
      for (let i = 0; i < fans.length; i++) {
        const f = fans[i];
        const b = params.length;
        params.push(f.tenant, headersJson(f.headers), f.tail, targets(f));
        values += `${i ? ',' : ''}($${b + 1}::text, $${b + 2}::jsonb, $${b + 3}::text, $${b + 4}::jsonb, ${i})`;
      }
      const r = await db.query<{ ids: string | null }>(
        `WITH ins AS (
           INSERT INTO notification_fanout (tenant, headers, tail, targets, created_at)
           SELECT t, h, tl, tg, $1::bigint FROM (VALUES ${values}) AS x(t, h, tl, tg, ord)
           ORDER BY ord
           RETURNING id)
         SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM ins`,
        params,
      );
      return (r[0]?.ids ?? '').split(',').filter(Boolean).map(Number);
    }
    const r = await db.query<{ ids: string | null }>(
      `WITH ins AS (
         INSERT INTO notification_fanout (tenant, headers, tail, targets, created_at)
         SELECT t, h::jsonb, tl, tg::jsonb, $5::bigint
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(t, h, tl, tg, ord)
         ORDER BY ord
         RETURNING id)
       SELECT string_agg(id::text, ',' ORDER BY id) AS ids FROM ins`,
      [fans.map((f) => f.tenant), fans.map((f) => headersJson(f.headers)), fans.map((f) => f.tail), fans.map(targets), now],
    );
    return (r[0]?.ids ?? '').split(',').filter(Boolean).map(Number);
  }

  /** Every target of these fan-out rows was delivered (or moved to the table). */
  async deleteFanouts(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query('DELETE FROM notification_fanout WHERE id = ANY($1::bigint[])', [ids]);
  }

  /**
   * Moves a subscription's fan-out targets to the table, in one transaction: `rows` become outbox
   * rows (in order, with their delivery state) and the subscription leaves the targets of
   * `fanoutIds` (those rows, and the fan-outs it was already delivered from). Returns the seqs.
   */
  async moveTargets(tenant: string, subscriptionId: string, rows: MovedRow[], fanoutIds: number[], now: number): Promise<number[]> {
    return this.db.tx(async (t) => {
      const seqs = await this.insertRows(
        rows.map((m) => ({ ...m.row, nextAt: m.nextAt })),
        now,
        t,
        { attempts: rows.map((m) => m.attempts), dead: rows.map((m) => m.state === 'dead'), lastError: rows.map((m) => m.lastError) },
      );
      await this.dropTargets(t, tenant, subscriptionId, fanoutIds);
      return seqs;
    });
  }

  private async dropTargets(db: Db, tenant: string, subscriptionId: string, fanoutIds?: number[]): Promise<void> {
    if (fanoutIds && fanoutIds.length === 0) return;
    await db.query(
      `UPDATE notification_fanout f
       SET targets = (SELECT COALESCE(jsonb_agg(x.t ORDER BY x.o), '[]'::jsonb) FROM jsonb_array_elements(f.targets) WITH ORDINALITY AS x(t, o)
                      WHERE x.t->>1 <> $2)
       WHERE f.tenant = $1 AND ($3::bigint[] IS NULL OR f.id = ANY($3::bigint[]))`,
      [tenant, subscriptionId, fanoutIds ?? null],
    );
  }

  /**
   * Start-up: the targets of fan-out rows left by the previous run become outbox rows (pending,
   * in order of their fan-out row), in one transaction. A target delivered before the crash but
   * not yet acknowledged here is sent again (at-least-once).
   */
  async expandFanouts(): Promise<number> {
    return this.db.tx(async (t) => {
      const fans = await t.query<{ id: string; tenant: string; headers: Record<string, string>; tail: string; targets: StoredTarget[]; created_at: string }>(
        'SELECT id, tenant, headers, tail, targets, created_at FROM notification_fanout ORDER BY id',
      );
      if (fans.length === 0) return 0;
      const items: OutboxItem[] = [];
      for (const f of fans) {
        const id = Number(f.id);
        const at = Number(f.created_at);
        for (const [k, sub, endpoint, ni, tm] of f.targets) {
          items.push({
            tenant: f.tenant,
            subscriptionId: sub,
            endpoint,
            headers: f.headers,
            body: fanoutBody(id, k, sub, at, f.tail),
            notifierInfo: ni ?? undefined,
            timeoutMs: tm ?? undefined,
            nextAt: at,
          });
        }
      }
      await this.insertRows(items, Date.now(), t);
      await t.query('DELETE FROM notification_fanout WHERE id = ANY($1::bigint[])', [fans.map((f) => Number(f.id))]);
      return items.length;
    });
  }

  /**
   * Claims due rows: for each subscription with no live claim, its oldest rows in order, at most
   * `perSub` of them and only the leading run that is due. Returns rows ordered by seq.
   */
  async claim(now: number, opts: { limit?: number; perSub?: number; leaseMs?: number } = {}): Promise<OutboxRow[]> {
    const limit = opts.limit ?? 5000;
    const perSub = opts.perSub ?? 50;
    const leaseMs = opts.leaseMs ?? 60_000;
    const rows = await this.db.query<Raw>(
      `WITH live AS (
         SELECT seq, tenant, subscription_id, next_at,
                row_number() OVER w AS rn,
                bool_or(state = 'inflight' AND lease_until > $1) OVER (PARTITION BY tenant, subscription_id) AS busy,
                max(CASE WHEN next_at > $1 THEN 1 ELSE 0 END) OVER w AS blocked
         FROM notification_outbox
         WHERE state <> 'dead'
         WINDOW w AS (PARTITION BY tenant, subscription_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
       ), picked AS (
         SELECT seq FROM live WHERE NOT busy AND blocked = 0 AND rn <= $3 ORDER BY seq LIMIT $4
       )
       UPDATE notification_outbox o SET state = 'inflight', lease_until = $2
       FROM picked WHERE o.seq = picked.seq
       RETURNING o.seq, o.tenant, o.subscription_id, o.endpoint, o.headers, o.body, o.notifier_info, o.timeout_ms, o.attempts, o.created_at`,
      [now, now + leaseMs, perSub, limit],
    );
    return rows.map(toRow).sort((a, b) => a.seq - b.seq);
  }

  /** Delivered: rows leave the outbox. */
  async ack(seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.db.query('DELETE FROM notification_outbox WHERE seq = ANY($1::bigint[])', [seqs]);
  }

  /** Claimed but not attempted (a predecessor failed): back to pending, attempts unchanged. */
  async release(seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.db.query(
      `UPDATE notification_outbox SET state = 'pending', lease_until = NULL WHERE seq = ANY($1::bigint[]) AND state = 'inflight'`,
      [seqs],
    );
  }

  /** Records failed attempts: reschedules with backoff, or dead-letters after maxAttempts. */
  async fail(items: { seq: number; attempts: number; error: string }[], now: number): Promise<FailureOutcome[]> {
    if (items.length === 0) return [];
    const updates = items.map((it) => {
      const attempts = it.attempts + 1;
      const dead = attempts >= this.policy.maxAttempts;
      return {
        seq: it.seq,
        attempts,
        state: dead ? 'dead' : 'pending',
        next_at: dead ? now : now + backoffDelay(attempts, this.policy, this.rand),
        last_error: it.error.slice(0, 500),
      };
    });
    const rows = await this.db.query<{ seq: string; tenant: string; subscription_id: string; state: string; next_at: string }>(
      `UPDATE notification_outbox o SET attempts = u.attempts, state = u.state, next_at = u.next_at, lease_until = NULL,
              last_error = u.last_error
       FROM jsonb_to_recordset($1::jsonb) AS u(seq bigint, attempts int, state text, next_at bigint, last_error text)
       WHERE o.seq = u.seq
       RETURNING o.seq, o.tenant, o.subscription_id, o.state, o.next_at`,
      [JSON.stringify(updates)],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      tenant: r.tenant,
      subscriptionId: r.subscription_id,
      dead: r.state === 'dead',
      nextAt: r.state === 'dead' ? undefined : Number(r.next_at),
    }));
  }

  /** Frees every claim (start-up of a single node: whatever was in flight is sent again). */
  async recover(): Promise<number> {
    const r = await this.db.query<{ n: string }>(
      `WITH u AS (UPDATE notification_outbox SET state = 'pending', lease_until = NULL WHERE state = 'inflight' RETURNING 1)
       SELECT count(*) AS n FROM u`,
    );
    return Number(r[0].n);
  }

  /**
   * Earliest time the head row of some subscription becomes claimable (its retry time, or the end
   * of its lease), or undefined when the outbox is empty. Only heads count: later rows wait anyway.
   */
  async nextDue(): Promise<number | undefined> {
    const r = await this.db.query<{ t: string | null }>(
      `SELECT min(CASE WHEN state = 'pending' THEN next_at ELSE lease_until END) AS t FROM (
         SELECT DISTINCT ON (tenant, subscription_id) state, next_at, lease_until FROM notification_outbox
         WHERE state <> 'dead' ORDER BY tenant, subscription_id, seq) h`,
    );
    return r[0].t === null ? undefined : Number(r[0].t);
  }

  /**
   * Which of these subscriptions (null: any) still have rows that are not dead letters: those
   * must keep going through the table (claims) so that their order holds.
   */
  async queuedSubscriptions(keys?: { tenant: string; subscriptionId: string }[]): Promise<{ tenant: string; subscriptionId: string }[]> {
    if (keys && keys.length === 0) return [];
    const rows = keys
      ? await this.db.query<{ tenant: string; subscription_id: string }>(
          `SELECT DISTINCT o.tenant, o.subscription_id FROM notification_outbox o
           JOIN unnest($1::text[], $2::text[]) AS k(t, s) ON o.tenant = k.t AND o.subscription_id = k.s
           WHERE o.state <> 'dead'`,
          [keys.map((k) => k.tenant), keys.map((k) => k.subscriptionId)],
        )
      : await this.db.query<{ tenant: string; subscription_id: string }>(
          `SELECT DISTINCT tenant, subscription_id FROM notification_outbox WHERE state <> 'dead'`,
        );
    return rows.map((r) => ({ tenant: r.tenant, subscriptionId: r.subscription_id }));
  }

  /** Notifications not delivered yet (outbox rows other than dead letters, and fan-out targets). */
  async pendingCount(tenant?: string, subscriptionId?: string): Promise<number> {
    const r = await this.db.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM notification_outbox WHERE state <> 'dead'
                 AND ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR subscription_id = $2))
            + (SELECT count(*) FROM notification_fanout f, jsonb_array_elements(f.targets) t
                 WHERE ($1::text IS NULL OR f.tenant = $1) AND ($2::text IS NULL OR t->>1 = $2)) AS n`,
      [tenant ?? null, subscriptionId ?? null],
    );
    return Number(r[0].n);
  }

  async deadLetters(tenant: string, subscriptionId: string): Promise<OutboxRow[]> {
    const rows = await this.db.query<Raw>(
      `SELECT * FROM notification_outbox WHERE state = 'dead' AND tenant = $1 AND subscription_id = $2 ORDER BY seq`,
      [tenant, subscriptionId],
    );
    return rows.map(toRow);
  }

  /** Puts dead letters of a subscription back in the queue (operator action). */
  async redrive(tenant: string, subscriptionId: string, now: number): Promise<number> {
    const r = await this.db.query<{ seq: string }>(
      `UPDATE notification_outbox SET state = 'pending', attempts = 0, next_at = $3
       WHERE state = 'dead' AND tenant = $1 AND subscription_id = $2 RETURNING seq`,
      [tenant, subscriptionId, now],
    );
    return r.length;
  }

  /** Drops everything queued for a subscription (it was deleted). */
  async purge(tenant: string, subscriptionId: string): Promise<void> {
    await this.db.query('DELETE FROM notification_outbox WHERE tenant = $1 AND subscription_id = $2', [tenant, subscriptionId]);
    await this.dropTargets(this.db, tenant, subscriptionId);
  }
}

/**
 * SQL persistence of the rules layer (PGlite and PostgreSQL 15+): rules, per-(rule, entity)
 * evaluation states, alarms (with history) and the action delivery log. Writes are batched: one
 * statement per batch of states / alarms, so a burst of evaluations costs a few round trips.
 */
import type { Db } from '../store/db.ts';
import { migrateModule } from '../store/schema.ts';
import type { AlarmRecord } from './domain/alarms.ts';
import type { EvalState } from './domain/engine.ts';
import type { AlarmStatus, Rule } from './domain/types.ts';

export const RULES_MIGRATIONS = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS rules (
  tenant text NOT NULL,
  id text NOT NULL,
  body jsonb NOT NULL,
  created_at text NOT NULL,
  modified_at text NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS rule_states (
  tenant text NOT NULL,
  rule_id text NOT NULL,
  entity_id text NOT NULL,
  state jsonb NOT NULL,
  PRIMARY KEY (tenant, rule_id, entity_id)
);
CREATE TABLE IF NOT EXISTS rule_alarms (
  id text PRIMARY KEY,
  tenant text NOT NULL,
  rule_id text NOT NULL,
  entity_id text NOT NULL,
  status text NOT NULL,
  first_seen text NOT NULL,
  last_seen text NOT NULL,
  body jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_alarms_open ON rule_alarms (tenant, status, last_seen);
CREATE INDEX IF NOT EXISTS rule_alarms_rule ON rule_alarms (tenant, rule_id, entity_id);
CREATE TABLE IF NOT EXISTS rule_deliveries (
  seq bigserial PRIMARY KEY,
  at text NOT NULL,
  tenant text NOT NULL,
  rule_id text NOT NULL,
  alarm_id text NOT NULL,
  event text NOT NULL,
  action text NOT NULL,
  target text NOT NULL,
  ok boolean NOT NULL,
  attempts int NOT NULL,
  error text
);
CREATE INDEX IF NOT EXISTS rule_deliveries_alarm ON rule_deliveries (alarm_id);
`,
  },
  {
    // one row per entity holding the states of every rule watching it: a checkpoint writes one row
    // per changed entity instead of one per (rule, entity)
    version: 2,
    sql: `
DROP TABLE IF EXISTS rule_states;
CREATE TABLE IF NOT EXISTS rule_entity_states (
  tenant text NOT NULL,
  entity_id text NOT NULL,
  states jsonb NOT NULL,
  PRIMARY KEY (tenant, entity_id)
);
`,
  },
];

const iso = (ms: number) => new Date(ms).toISOString();

export interface StoredRule {
  rule: Rule;
  createdAt: string;
  modifiedAt: string;
}

export interface DeliveryRecord {
  at: string;
  tenant: string;
  ruleId: string;
  alarmId: string;
  event: string;
  action: string;
  target: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

export class RulesStore {
  constructor(private db: Db) {}

  migrate(): Promise<void> {
    return migrateModule(this.db, 'rules', RULES_MIGRATIONS);
  }

  // ---------- rules
  async loadRules(): Promise<Rule[]> {
    const rows = await this.db.query<{ body: Rule; created_at: string; modified_at: string }>(
      'SELECT body, created_at, modified_at FROM rules ORDER BY tenant, id',
    );
    return rows.map((r) => ({ ...r.body, createdAt: r.created_at, modifiedAt: r.modified_at }));
  }

  async getRule(tenant: string, id: string): Promise<Rule | undefined> {
    const rows = await this.db.query<{ body: Rule; created_at: string; modified_at: string }>(
      'SELECT body, created_at, modified_at FROM rules WHERE tenant = $1 AND id = $2', [tenant, id],
    );
    return rows[0] ? { ...rows[0].body, createdAt: rows[0].created_at, modifiedAt: rows[0].modified_at } : undefined;
  }

  /** insert (create=true: fails with false when it exists) or replace */
  async saveRule(rule: Rule, now: number, create: boolean): Promise<boolean> {
    const body = { ...rule };
    delete body.createdAt;
    delete body.modifiedAt;
    if (create) {
      const rows = await this.db.query(
        `INSERT INTO rules (tenant, id, body, created_at, modified_at) VALUES ($1, $2, $3::jsonb, $4, $4)
         ON CONFLICT (tenant, id) DO NOTHING RETURNING id`,
        [rule.tenant, rule.id, JSON.stringify(body), iso(now)],
      );
      return rows.length === 1;
    }
    await this.db.query(
      `INSERT INTO rules (tenant, id, body, created_at, modified_at) VALUES ($1, $2, $3::jsonb, $4, $4)
       ON CONFLICT (tenant, id) DO UPDATE SET body = EXCLUDED.body, modified_at = EXCLUDED.modified_at`,
      [rule.tenant, rule.id, JSON.stringify(body), iso(now)],
    );
    return true;
  }

  async deleteRule(tenant: string, id: string): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM rules WHERE tenant = $1 AND id = $2 RETURNING id', [tenant, id]);
    return rows.length > 0;
  }

  // ---------- states: one row per (tenant, entity): { ruleId: EvalState }
  async loadStates(): Promise<[string, EvalState][]> {
    const rows = await this.db.query<{ tenant: string; entity_id: string; states: Record<string, EvalState> }>(
      'SELECT tenant, entity_id, states FROM rule_entity_states',
    );
    const out: [string, EvalState][] = [];
    for (const r of rows) for (const [rule, st] of Object.entries(r.states)) out.push([`${r.tenant}\u0000${rule}\u0000${r.entity_id}`, st]);
    return out;
  }

  /** write the complete states of these entities (an empty object deletes the row) */
  async saveEntityStates(entries: { tenant: string; entityId: string; states: Record<string, EvalState> }[]): Promise<void> {
    const up = entries.filter((e) => Object.keys(e.states).length > 0).map((e) => ({ t: e.tenant, e: e.entityId, s: e.states }));
    const del = entries.filter((e) => Object.keys(e.states).length === 0).map((e) => ({ t: e.tenant, e: e.entityId }));
    for (let i = 0; i < up.length; i += 5000) {
      await this.db.query(
        `INSERT INTO rule_entity_states (tenant, entity_id, states)
         SELECT x.t, x.e, x.s FROM jsonb_to_recordset($1::jsonb) AS x(t text, e text, s jsonb)
         ON CONFLICT (tenant, entity_id) DO UPDATE SET states = EXCLUDED.states`,
        [JSON.stringify(up.slice(i, i + 5000))],
      );
    }
    if (del.length) {
      await this.db.query(
        `DELETE FROM rule_entity_states s USING jsonb_to_recordset($1::jsonb) AS x(t text, e text)
         WHERE s.tenant = x.t AND s.entity_id = x.e`,
        [JSON.stringify(del)],
      );
    }
  }

  // ---------- alarms
  /** alarms the engine needs after a restart: open ones and those cleared recently (reopen window) */
  async loadLiveAlarms(clearedSince: number): Promise<AlarmRecord[]> {
    const rows = await this.db.query<{ body: AlarmRecord }>(
      `SELECT body FROM rule_alarms WHERE status <> 'cleared' OR (body->>'clearedAt')::bigint >= $1`,
      [clearedSince],
    );
    return rows.map((r) => r.body);
  }

  async saveAlarms(alarms: AlarmRecord[]): Promise<void> {
    if (alarms.length === 0) return;
    const rows = alarms.map((a) => ({
      id: a.id, t: a.tenant, r: a.ruleId, e: a.entityId, s: a.status, f: iso(a.firstSeen), l: iso(a.lastSeen), b: a,
    }));
    await this.db.query(
      `INSERT INTO rule_alarms (id, tenant, rule_id, entity_id, status, first_seen, last_seen, body)
       SELECT x.id, x.t, x.r, x.e, x.s, x.f, x.l, x.b FROM jsonb_to_recordset($1::jsonb)
         AS x(id text, t text, r text, e text, s text, f text, l text, b jsonb)
       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, last_seen = EXCLUDED.last_seen, body = EXCLUDED.body`,
      [JSON.stringify(rows)],
    );
  }

  async getAlarm(tenant: string, id: string): Promise<AlarmRecord | undefined> {
    const rows = await this.db.query<{ body: AlarmRecord }>('SELECT body FROM rule_alarms WHERE tenant = $1 AND id = $2', [tenant, id]);
    return rows[0]?.body;
  }

  async listAlarms(
    tenant: string,
    f: { status?: AlarmStatus[]; ruleId?: string; entityId?: string; severity?: string[]; limit: number; offset: number },
  ): Promise<{ alarms: AlarmRecord[]; count: number }> {
    const where = ['tenant = $1'];
    const params: unknown[] = [tenant];
    if (f.status?.length) {
      params.push(f.status);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (f.ruleId) {
      params.push(f.ruleId);
      where.push(`rule_id = $${params.length}`);
    }
    if (f.entityId) {
      params.push(f.entityId);
      where.push(`entity_id = $${params.length}`);
    }
    if (f.severity?.length) {
      params.push(f.severity);
      where.push(`body->>'severity' = ANY($${params.length}::text[])`);
    }
    const w = where.join(' AND ');
    const [{ n }] = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM rule_alarms WHERE ${w}`, params);
    const rows = await this.db.query<{ body: AlarmRecord }>(
      `SELECT body FROM rule_alarms WHERE ${w} ORDER BY last_seen DESC, id LIMIT ${Math.trunc(f.limit)} OFFSET ${Math.trunc(f.offset)}`,
      params,
    );
    return { alarms: rows.map((r) => r.body), count: Number(n) };
  }

  // ---------- deliveries
  async logDeliveries(d: DeliveryRecord[]): Promise<void> {
    if (d.length === 0) return;
    await this.db.query(
      `INSERT INTO rule_deliveries (at, tenant, rule_id, alarm_id, event, action, target, ok, attempts, error)
       SELECT x.at, x.tenant, x."ruleId", x."alarmId", x.event, x.action, x.target, x.ok, x.attempts, x.error
       FROM jsonb_to_recordset($1::jsonb) AS x(at text, tenant text, "ruleId" text, "alarmId" text, event text,
         action text, target text, ok boolean, attempts int, error text)`,
      [JSON.stringify(d)],
    );
  }

  async listDeliveries(tenant: string, f: { alarmId?: string; limit: number }): Promise<DeliveryRecord[]> {
    const params: unknown[] = [tenant];
    let w = 'tenant = $1';
    if (f.alarmId) {
      params.push(f.alarmId);
      w += ` AND alarm_id = $2`;
    }
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT at, tenant, rule_id, alarm_id, event, action, target, ok, attempts, error FROM rule_deliveries WHERE ${w} ORDER BY seq DESC LIMIT ${Math.trunc(f.limit)}`,
      params,
    );
    return rows.map((r) => ({
      at: r.at as string, tenant: r.tenant as string, ruleId: r.rule_id as string, alarmId: r.alarm_id as string,
      event: r.event as string, action: r.action as string, target: r.target as string, ok: r.ok as boolean,
      attempts: Number(r.attempts), ...(r.error ? { error: r.error as string } : {}),
    }));
  }

  /** expanded attribute names present on (up to 200) entities of a type; undefined when none exist */
  async knownAttributes(tenant: string, typeIri: string): Promise<Set<string> | undefined> {
    const rows = await this.db.query<{ k: string }>(
      `SELECT DISTINCT jsonb_object_keys(e.attrs) AS k FROM (SELECT attrs FROM entities WHERE tenant = $1 AND types @> ARRAY[$2]::text[] LIMIT 200) e`,
      [tenant, typeIri],
    );
    if (rows.length === 0) {
      const any = await this.db.query('SELECT 1 FROM entities WHERE tenant = $1 AND types @> ARRAY[$2]::text[] LIMIT 1', [tenant, typeIri]);
      return any.length ? new Set() : undefined;
    }
    return new Set(rows.map((r) => r.k));
  }
}

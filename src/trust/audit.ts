/**
 * Append-only, hash-chained audit log (tamper-evident): every record carries the SHA-256 of the
 * previous record's hash and its own canonical content, so changing, removing or reordering any
 * record breaks the chain at that point. The table also refuses UPDATE, DELETE and TRUNCATE
 * (trigger), so tampering needs a database superuser and is then detected by `verifyAudit`
 * (GET /auth/v1/audit/verify, `scripts/audit-verify.ts`). Keep the head (seq, hash) that verify
 * prints somewhere else (ticket, e-mail) to also detect truncation of the newest records.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../store/db.ts';
import type { Clock } from '../common/clock.ts';
import type { AuditInput } from './api.ts';

export const GENESIS = '0'.repeat(64);

export interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  action: string;
  outcome: string;
  tenant: string | null;
  target: string | null;
  subject: string | null;
  detail: Record<string, unknown> | null;
  prevHash: string;
  hash: string;
}

/** JSON with sorted keys at every level (jsonb does not keep key order) */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

export function recordHash(prevHash: string, r: Omit<AuditRecord, 'hash' | 'prevHash'>): string {
  const body = canonical([r.seq, r.at, r.actor, r.action, r.outcome, r.tenant, r.target, r.subject, r.detail]);
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

export const AUDIT_MIGRATION = `
CREATE TABLE IF NOT EXISTS trust_audit (
  seq bigint PRIMARY KEY,
  at text NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  outcome text NOT NULL,
  tenant text,
  target text,
  subject text,
  detail jsonb,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS trust_audit_subject ON trust_audit (subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS trust_audit_action ON trust_audit (action, seq);
CREATE OR REPLACE FUNCTION trust_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'trust_audit is append-only';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS trust_audit_no_change ON trust_audit;
CREATE TRIGGER trust_audit_no_change BEFORE UPDATE OR DELETE ON trust_audit FOR EACH ROW EXECUTE FUNCTION trust_audit_append_only();
DROP TRIGGER IF EXISTS trust_audit_no_truncate ON trust_audit;
CREATE TRIGGER trust_audit_no_truncate BEFORE TRUNCATE ON trust_audit FOR EACH STATEMENT EXECUTE FUNCTION trust_audit_append_only();
`;

type Row = {
  seq: string | number;
  at: string;
  actor: string;
  action: string;
  outcome: string;
  tenant: string | null;
  target: string | null;
  subject: string | null;
  detail: Record<string, unknown> | null;
  prev_hash: string;
  hash: string;
};

export function rowToRecord(r: Row): AuditRecord {
  return {
    seq: Number(r.seq), at: r.at, actor: r.actor, action: r.action, outcome: r.outcome, tenant: r.tenant, target: r.target,
    subject: r.subject, detail: r.detail, prevHash: r.prev_hash, hash: r.hash,
  };
}

const clip = (s: string | undefined, n = 1024) => (s === undefined ? null : s.length > n ? s.slice(0, n) : s);

export class AuditLog {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(
    private db: Db,
    private clock: Clock,
  ) {}

  /** appends records in order, in one transaction; serialised in-process and across nodes (advisory lock) */
  append(entries: AuditInput[]): Promise<AuditRecord[]> {
    if (!entries.length) return Promise.resolve([]);
    const run = this.chain.then(() =>
      this.db.tx(async (t) => {
        await t.query('SELECT pg_advisory_xact_lock(734500117)');
        const head = await t.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM trust_audit ORDER BY seq DESC LIMIT 1');
        let seq = head.length ? Number(head[0].seq) : 0;
        let prev = head.length ? head[0].hash : GENESIS;
        const at = new Date(this.clock.now()).toISOString();
        const out: AuditRecord[] = [];
        for (const e of entries) {
          seq++;
          const base = {
            seq, at, actor: clip(e.actor, 256) ?? '', action: clip(e.action, 128) ?? '', outcome: e.outcome,
            tenant: clip(e.tenant, 128), target: clip(e.target), subject: clip(e.subject), detail: e.detail ? (JSON.parse(JSON.stringify(e.detail)) as Record<string, unknown>) : null,
          };
          const hash = recordHash(prev, base);
          out.push({ ...base, prevHash: prev, hash });
          prev = hash;
        }
        const cols = 11;
        const params: unknown[] = [];
        const values = out.map((r, i) => {
          params.push(r.seq, r.at, r.actor, r.action, r.outcome, r.tenant, r.target, r.subject, r.detail === null ? null : JSON.stringify(r.detail), r.prevHash, r.hash);
          return `(${Array.from({ length: cols }, (_, j) => `$${i * cols + j + 1}${j === 8 ? '::jsonb' : ''}`).join(',')})`;
        });
        await t.query(`INSERT INTO trust_audit (seq, at, actor, action, outcome, tenant, target, subject, detail, prev_hash, hash) VALUES ${values.join(',')}`, params);
        return out;
      }),
    );
    this.chain = run.catch(() => {});
    return run;
  }

  async list(opts: { after?: number; limit?: number; action?: string; subject?: string; actor?: string } = {}): Promise<AuditRecord[]> {
    const where: string[] = ['seq > $1'];
    const params: unknown[] = [opts.after ?? 0];
    if (opts.action) where.push(`action = $${params.push(opts.action)}`);
    if (opts.subject) where.push(`subject = $${params.push(opts.subject)}`);
    if (opts.actor) where.push(`actor = $${params.push(opts.actor)}`);
    const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
    const rows = await this.db.query<Row>(`SELECT * FROM trust_audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ${limit}`, params);
    return rows.map(rowToRecord);
  }

  verify(anchor?: { seq: number; hash: string }): Promise<VerifyResult> {
    return verifyAudit(this.db, anchor);
  }
}

export interface VerifyResult {
  ok: boolean;
  records: number;
  head: { seq: number; hash: string };
  /** first broken record and why */
  broken?: { seq: number; reason: string };
}

/** recomputes the whole chain, page by page */
export async function verifyAudit(db: Db, anchor?: { seq: number; hash: string }): Promise<VerifyResult> {
  let prev = GENESIS;
  let expect = 1;
  let n = 0;
  let anchorSeen = !anchor;
  for (;;) {
    const rows = await db.query<Row>('SELECT * FROM trust_audit WHERE seq >= $1 ORDER BY seq LIMIT 1000', [expect]);
    if (!rows.length) break;
    for (const row of rows) {
      const r = rowToRecord(row);
      const bad = (reason: string): VerifyResult => ({ ok: false, records: n, head: { seq: expect - 1, hash: prev }, broken: { seq: r.seq, reason } });
      if (r.seq !== expect) return bad(`record ${expect} is missing (next is ${r.seq})`);
      if (r.prevHash !== prev) return bad('prev_hash does not match the previous record (a record was removed, inserted or reordered)');
      if (recordHash(prev, r) !== r.hash) return bad('content does not match its hash (the record was modified)');
      if (anchor && r.seq === anchor.seq) {
        if (r.hash !== anchor.hash) return bad('hash differs from the anchor recorded earlier');
        anchorSeen = true;
      }
      prev = r.hash;
      expect++;
      n++;
    }
  }
  if (!anchorSeen) return { ok: false, records: n, head: { seq: expect - 1, hash: prev }, broken: { seq: anchor!.seq, reason: 'the anchored record is gone (the log was truncated)' } };
  return { ok: true, records: n, head: { seq: expect - 1, hash: prev } };
}

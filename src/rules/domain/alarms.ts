/**
 * Alarm lifecycle and deduplication (pure).
 *
 * One alarm per (tenant, rule, entity) at a time. While it is active or acknowledged, new firings of
 * the trigger increase `count` and move `lastSeen` instead of creating alarms; a firing shortly after
 * a clear (within `reopenWithinMs`) reopens the same alarm. Lifecycle: active -> acknowledged ->
 * cleared (auto when the trigger stops, if the rule says so, or by an operator).
 */
import { ProblemError } from '../../common/problem.ts';
import type { Alarm, AlarmStatus, AlarmTransition, Rule } from './types.ts';

export const ALERT_ID_PREFIX = 'urn:ngsi-ld:Alert:';

export interface FireInfo {
  entityType?: string;
  value?: unknown;
  location?: unknown;
  description: string;
}

export const alarmKey = (tenant: string, ruleId: string, entityId: string) => `${tenant}\u0000${ruleId}\u0000${entityId}`;

/** FNV-1a 32-bit, hex */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export function alarmIdFor(ruleId: string, entityId: string, firstSeen: number): string {
  return `${ALERT_ID_PREFIX}${ruleId}-${fnv1a(entityId)}-${firstSeen.toString(36)}`;
}

export interface AlarmRecord extends Alarm {
  /** times this alarm was cleared (drives notification dedup on flapping) */
  clears?: number;
  /** times it was reopened after a clear */
  reopens?: number;
}

export class AlarmBook {
  /** latest alarm per (tenant, rule, entity), whatever its status */
  private latest = new Map<string, AlarmRecord>();
  private byId = new Map<string, AlarmRecord>();

  load(alarms: AlarmRecord[]): void {
    for (const a of alarms) this.put(a);
  }

  private put(a: AlarmRecord) {
    const k = alarmKey(a.tenant, a.ruleId, a.entityId);
    const prev = this.latest.get(k);
    if (prev && prev.id !== a.id) {
      if (prev.firstSeen > a.firstSeen) return; // keep the newest
      this.byId.delete(prev.id);
    }
    this.latest.set(k, a);
    this.byId.set(a.id, a);
  }

  get(id: string): AlarmRecord | undefined {
    return this.byId.get(id);
  }

  current(tenant: string, ruleId: string, entityId: string): AlarmRecord | undefined {
    return this.latest.get(alarmKey(tenant, ruleId, entityId));
  }

  list(filter: { tenant?: string; status?: AlarmStatus[]; ruleId?: string; entityId?: string } = {}): AlarmRecord[] {
    const out: AlarmRecord[] = [];
    for (const a of this.byId.values()) {
      if (filter.tenant !== undefined && a.tenant !== filter.tenant) continue;
      if (filter.status && !filter.status.includes(a.status)) continue;
      if (filter.ruleId && a.ruleId !== filter.ruleId) continue;
      if (filter.entityId && a.entityId !== filter.entityId) continue;
      out.push(a);
    }
    return out.sort((a, b) => b.lastSeen - a.lastSeen || a.id.localeCompare(b.id));
  }

  /** the trigger fired for this entity: raise, reopen, or count a repeat */
  fire(rule: Rule, entityId: string, info: FireInfo, now: number): AlarmTransition {
    const cur = this.current(rule.tenant, rule.id, entityId);
    if (cur && cur.status !== 'cleared') {
      cur.count++;
      cur.lastSeen = now;
      this.refresh(cur, rule, info);
      return { event: 'update', alarm: { ...cur } };
    }
    if (cur && cur.clearedAt !== undefined && now - cur.clearedAt <= rule.alarm.reopenWithinMs) {
      cur.status = 'active';
      cur.count++;
      cur.lastSeen = now;
      cur.reopens = (cur.reopens ?? 0) + 1;
      delete cur.clearedAt;
      delete cur.clearedBy;
      delete cur.acknowledgedAt;
      delete cur.acknowledgedBy;
      this.refresh(cur, rule, info);
      return { event: 'reopen', alarm: { ...cur } };
    }
    const a: AlarmRecord = {
      id: alarmIdFor(rule.id, entityId, now),
      tenant: rule.tenant,
      ruleId: rule.id,
      entityId,
      severity: rule.alarm.severity,
      category: rule.alarm.category,
      description: info.description,
      status: 'active',
      firstSeen: now,
      lastSeen: now,
      count: 1,
      clears: 0,
      reopens: 0,
    };
    this.refresh(a, rule, info);
    this.put(a);
    return { event: 'raise', alarm: { ...a } };
  }

  private refresh(a: AlarmRecord, rule: Rule, info: FireInfo) {
    a.severity = rule.alarm.severity;
    a.category = rule.alarm.category;
    if (rule.alarm.subCategory) a.subCategory = rule.alarm.subCategory;
    else delete a.subCategory;
    a.description = info.description;
    if (info.entityType) a.entityType = info.entityType;
    if (info.value !== undefined) a.value = info.value;
    if (info.location !== undefined) a.location = info.location;
  }

  /** still firing: refresh lastSeen / value without counting a new occurrence */
  touch(tenant: string, ruleId: string, entityId: string, info: Partial<FireInfo>, now: number): AlarmTransition | undefined {
    const cur = this.current(tenant, ruleId, entityId);
    if (!cur || cur.status === 'cleared') return undefined;
    cur.lastSeen = now;
    if (info.value !== undefined) cur.value = info.value;
    if (info.location !== undefined) cur.location = info.location;
    if (info.description) cur.description = info.description;
    return { event: 'update', alarm: { ...cur } };
  }

  /** the trigger stopped firing (auto-clear) or the rule / entity went away */
  autoClear(tenant: string, ruleId: string, entityId: string, by: string, now: number): AlarmTransition | undefined {
    const cur = this.current(tenant, ruleId, entityId);
    if (!cur || cur.status === 'cleared') return undefined;
    return this.doClear(cur, by, now);
  }

  private doClear(a: AlarmRecord, by: string, now: number, note?: string): AlarmTransition {
    a.status = 'cleared';
    a.clearedAt = now;
    a.clearedBy = by;
    if (note) a.note = note;
    const t: AlarmTransition = { event: 'clear', alarm: { ...a } };
    a.clears = (a.clears ?? 0) + 1;
    return t;
  }

  acknowledge(id: string, by: string, now: number, note?: string): AlarmTransition {
    const a = this.byId.get(id);
    if (!a) throw new ProblemError('ResourceNotFound', `no alarm ${id}`);
    if (a.status === 'cleared') throw new ProblemError('Conflict', `alarm ${id} is cleared; only active alarms can be acknowledged`);
    if (a.status === 'acknowledged') return { event: 'update', alarm: { ...a } };
    a.status = 'acknowledged';
    a.acknowledgedAt = now;
    a.acknowledgedBy = by;
    if (note) a.note = note;
    return { event: 'acknowledge', alarm: { ...a } };
  }

  clear(id: string, by: string, now: number, note?: string): AlarmTransition {
    const a = this.byId.get(id);
    if (!a) throw new ProblemError('ResourceNotFound', `no alarm ${id}`);
    if (a.status === 'cleared') return { event: 'update', alarm: { ...a } };
    return this.doClear(a, by, now, note);
  }

  /** forget cleared alarms older than `before` (they stay in the store) */
  prune(before: number): void {
    for (const [k, a] of this.latest) {
      if (a.status === 'cleared' && (a.clearedAt ?? 0) < before) {
        this.latest.delete(k);
        this.byId.delete(a.id);
      }
    }
  }

  all(): AlarmRecord[] {
    return [...this.byId.values()];
  }
}

/**
 * Device health as a pure state machine, driven by measures and by clock ticks:
 *   connectivity: unknown -> online (a measure) -> silent (no measure for silenceFactor x interval) -> online
 *   frozen: a reported attribute kept exactly the same value for `frozenAfter`
 *   batteryLow: battery attribute under the threshold (fractions 0..1, or percent when > 1)
 *   outOfRange: attributes outside their configured [min, max]
 * Each transition is returned as a HealthChange so that the module can write it to the Device
 * entity (deviceState / healthIssues), which raises a change event that rules/alarms can use.
 */
import type { HealthSpec } from './types.ts';

export type Connectivity = 'unknown' | 'online' | 'silent';

export interface HealthState {
  connectivity: Connectivity;
  lastSeen?: number;
  /** per attribute: last value (JSON) and since when it has had it */
  last: Record<string, { v: string; since: number }>;
  frozen: string[];
  batteryLow: boolean;
  outOfRange: string[];
  malformed: number;
}

export type HealthChange =
  | { kind: 'online' }
  | { kind: 'silent'; lastSeen?: number }
  | { kind: 'frozen'; attr: string; since: number }
  | { kind: 'unfrozen'; attr: string }
  | { kind: 'batteryLow'; value: number }
  | { kind: 'batteryOk'; value: number }
  | { kind: 'outOfRange'; attr: string; value: number; range: [number, number] }
  | { kind: 'inRange'; attr: string; value: number };

export interface HealthConfig {
  /** ms; 0 or undefined: connectivity is not supervised */
  expectedIntervalMs?: number;
  /** silent after this many expected intervals without data (default 2.5) */
  silenceFactor: number;
  frozenAfterMs?: number;
  batteryAttr: string;
  batteryLow: number;
  ranges: Record<string, [number, number]>;
}

export function healthConfig(spec: HealthSpec | undefined): HealthConfig {
  const ei = spec?.expectedInterval ? spec.expectedInterval * 1000 : undefined;
  return {
    expectedIntervalMs: ei,
    silenceFactor: 2.5,
    frozenAfterMs: spec?.frozenAfter !== undefined ? spec.frozenAfter * 1000 : ei ? ei * 12 : undefined,
    batteryAttr: spec?.batteryAttr ?? 'batteryLevel',
    batteryLow: spec?.batteryLow ?? 0.15,
    ranges: spec?.ranges ?? {},
  };
}

export function initialHealth(): HealthState {
  return { connectivity: 'unknown', last: {}, frozen: [], batteryLow: false, outOfRange: [], malformed: 0 };
}

/** Deadline (ms epoch) after which the device becomes silent, if supervised. */
export function silentAt(s: HealthState, cfg: HealthConfig): number | undefined {
  if (!cfg.expectedIntervalMs || s.lastSeen === undefined) return undefined;
  return s.lastSeen + cfg.expectedIntervalMs * cfg.silenceFactor;
}

/** A measure arrived at `now` with the device-entity attribute values `values`. */
export function onMeasure(prev: HealthState, cfg: HealthConfig, values: Record<string, unknown>, now: number): { state: HealthState; changes: HealthChange[] } {
  const s: HealthState = { ...prev, last: { ...prev.last }, frozen: [...prev.frozen], outOfRange: [...prev.outOfRange] };
  const changes: HealthChange[] = [];
  s.lastSeen = now;
  if (s.connectivity !== 'online') {
    s.connectivity = 'online';
    changes.push({ kind: 'online' });
  }
  for (const [attr, v] of Object.entries(values)) {
    const j = JSON.stringify(v);
    const l = s.last[attr];
    if (!l || l.v !== j) {
      s.last[attr] = { v: j, since: now };
      const i = s.frozen.indexOf(attr);
      if (i >= 0) {
        s.frozen.splice(i, 1);
        changes.push({ kind: 'unfrozen', attr });
      }
    }
    if (typeof v !== 'number') continue;
    const r = cfg.ranges[attr];
    if (r) {
      const out = v < r[0] || v > r[1];
      const was = s.outOfRange.includes(attr);
      if (out && !was) {
        s.outOfRange.push(attr);
        changes.push({ kind: 'outOfRange', attr, value: v, range: r });
      } else if (!out && was) {
        s.outOfRange = s.outOfRange.filter((a) => a !== attr);
        changes.push({ kind: 'inRange', attr, value: v });
      }
    }
    if (attr === cfg.batteryAttr) {
      const frac = v > 1 ? v / 100 : v;
      const low = frac < cfg.batteryLow;
      if (low && !s.batteryLow) changes.push({ kind: 'batteryLow', value: v });
      if (!low && s.batteryLow) changes.push({ kind: 'batteryOk', value: v });
      s.batteryLow = low;
    }
  }
  changes.push(...frozenCheck(s, cfg, now));
  return { state: s, changes };
}

function frozenCheck(s: HealthState, cfg: HealthConfig, now: number): HealthChange[] {
  if (!cfg.frozenAfterMs) return [];
  const changes: HealthChange[] = [];
  for (const [attr, l] of Object.entries(s.last)) {
    if (attr === cfg.batteryAttr) continue;
    if (now - l.since >= cfg.frozenAfterMs && !s.frozen.includes(attr)) {
      s.frozen.push(attr);
      changes.push({ kind: 'frozen', attr, since: l.since });
    }
  }
  return changes;
}

/** Periodic check at `now` (silence). Frozen values are judged on arrival of the repeated value. */
export function onTick(prev: HealthState, cfg: HealthConfig, now: number): { state: HealthState; changes: HealthChange[] } {
  const deadline = silentAt(prev, cfg);
  if (deadline === undefined || prev.connectivity !== 'online' || now < deadline) return { state: prev, changes: [] };
  return { state: { ...prev, connectivity: 'silent' }, changes: [{ kind: 'silent', lastSeen: prev.lastSeen }] };
}

/** A payload of this device was rejected. */
export function onMalformed(prev: HealthState): HealthState {
  return { ...prev, malformed: prev.malformed + 1 };
}

/** Summary written to the Device entity. */
export function healthIssues(s: HealthState): string[] {
  const out: string[] = [];
  if (s.connectivity === 'silent') out.push('silent');
  for (const a of s.frozen) out.push(`frozen:${a}`);
  if (s.batteryLow) out.push('batteryLow');
  for (const a of s.outOfRange) out.push(`outOfRange:${a}`);
  return out;
}

/**
 * Write path: measures of a device -> NGSI-LD updates, batched through `p.broker.upsertEntities`
 * (mode update: one SQL transaction per batch; the bus then feeds history, subscriptions, rules).
 * The same entity never appears twice in one batch, so every measure group becomes its own
 * change event (and history instance). Also keeps per-device counters, the health state machine
 * and the Device entity (deviceState, healthIssues, dateLastValueReported, radio metadata).
 */
import type { Platform } from '../platform.ts';
import { mapMeasures, type AttrError, type EntityUpdate } from './domain/mapping.ts';
import { deviceEntityId } from './domain/entities.ts';
import { healthConfig, healthIssues, initialHealth, onMalformed, onMeasure, onTick, type HealthChange, type HealthState } from './domain/health.ts';
import type { MeasureGroup, Transport } from './domain/types.ts';
import type { DeviceRegistry, DeviceRecord } from './registry.ts';

export interface DeviceStats {
  received: number;
  stored: number;
  malformed: number;
  lastError?: string;
  lastErrorAt?: string;
  lastSeen?: string;
  transport?: Transport;
  meta?: Record<string, unknown>;
}

export interface Counters {
  measuresReceived: number;
  measuresStored: number;
  updatesFailed: number;
  malformed: number;
  rejected: { unknown: number; revoked: number; badCredentials: number; forbidden: number; rateLimited: number };
}

interface Pending {
  tenant: string;
  entity: Record<string, unknown>;
  /** measures carried by this update (for the stored counter) */
  measures: number;
  device?: DeviceStats;
}

const MAX_BATCH = 1000;
/** concurrent write lanes (entities are spread over lanes by id) */
const LANES = 4;
const HIGH_WATER = 20_000;
const DEVICE_ENTITY_REFRESH_MS = 60_000;

export class Ingestor {
  readonly counters: Counters = { measuresReceived: 0, measuresStored: 0, updatesFailed: 0, malformed: 0, rejected: { unknown: 0, revoked: 0, badCredentials: 0, forbidden: 0, rateLimited: 0 } };
  private stats = new Map<string, DeviceStats>();
  private health = new Map<string, HealthState>();
  private lastDeviceWrite = new Map<string, number>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private drainWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private stopTick?: () => void;
  private stopped = false;
  /** listeners for health transitions (tests, module) */
  onHealth?: (r: DeviceRecord, changes: HealthChange[]) => void;

  constructor(private p: Platform, private reg: DeviceRegistry) {}

  key(r: DeviceRecord): string {
    return `${r.tenant}\u0000${r.device.device_id}`;
  }

  statsOf(r: DeviceRecord): DeviceStats {
    const k = this.key(r);
    let s = this.stats.get(k);
    if (!s) {
      s = { received: 0, stored: 0, malformed: 0 };
      this.stats.set(k, s);
    }
    return s;
  }

  healthOf(r: DeviceRecord): HealthState {
    return this.health.get(this.key(r)) ?? initialHealth();
  }

  /** A payload of a known device was rejected (unparseable, wrong shape): counted and visible. */
  malformed(r: DeviceRecord, message: string, transport: Transport): void {
    const s = this.statsOf(r);
    s.malformed++;
    s.lastError = message;
    s.lastErrorAt = new Date(this.p.clock.now()).toISOString();
    s.transport = transport;
    this.counters.malformed++;
    this.health.set(this.key(r), onMalformed(this.healthOf(r)));
    this.p.log.debug('malformed payload', { device: r.device.device_id, message });
    this.pushDevice(r, {
      malformedMessages: { type: 'Property', value: s.malformed },
      lastError: { type: 'Property', value: message, observedAt: s.lastErrorAt },
    });
  }

  /** Measures of one message of a device. Returns per-attribute conversion errors (already counted). */
  ingest(r: DeviceRecord, groups: MeasureGroup[], o: { transport: Transport; textValues?: boolean; meta?: Record<string, unknown> }): { errors: AttrError[]; updates: number } {
    const now = this.p.clock.now();
    const receivedAt = new Date(now).toISOString();
    const eff = this.reg.effective(r);
    const res = mapMeasures(eff, groups, { receivedAt, textValues: o.textValues, now: () => this.p.clock.now() });
    const s = this.statsOf(r);
    const n = groups.reduce((a, g) => a + Object.keys(g.values).length, 0);
    s.received += n;
    s.lastSeen = receivedAt;
    s.transport = o.transport;
    if (o.meta) s.meta = { ...s.meta, ...o.meta };
    this.counters.measuresReceived += n;
    if (res.errors.length) {
      const msg = res.errors.map((e) => `${e.attr}: ${e.message}`).join('; ');
      this.malformed(r, msg, o.transport);
    }
    for (const u of res.updates) this.push(r.tenant, toEntity(u), Object.keys(u.attrs).length, s);
    // health
    const cfg = healthConfig(eff.health);
    const h = onMeasure(this.healthOf(r), cfg, res.values, now);
    this.health.set(this.key(r), h.state);
    const lastW = this.lastDeviceWrite.get(this.key(r)) ?? 0;
    if (h.changes.length || now - lastW >= DEVICE_ENTITY_REFRESH_MS || o.meta) {
      this.lastDeviceWrite.set(this.key(r), now);
      const frag: Record<string, unknown> = {
        deviceState: { type: 'Property', value: h.state.connectivity, observedAt: receivedAt },
        healthIssues: { type: 'Property', value: healthIssues(h.state).length ? healthIssues(h.state) : ['none'], observedAt: receivedAt },
        dateLastValueReported: { type: 'Property', value: receivedAt },
      };
      const battery = res.values[cfg.batteryAttr];
      if (typeof battery === 'number') frag.batteryLevel = { type: 'Property', value: battery > 1 ? battery / 100 : battery, observedAt: receivedAt };
      for (const [k, v] of Object.entries(o.meta ?? {})) frag[k] = { type: 'Property', value: v, observedAt: receivedAt };
      this.pushDevice(r, frag);
    }
    if (h.changes.length) this.onHealth?.(r, h.changes);
    return { errors: res.errors, updates: res.updates.length };
  }

  /** Extra attributes for the data entity (command status) or the Device entity. */
  push(tenant: string, entity: Record<string, unknown>, measures = 0, device?: DeviceStats): void {
    this.queue.push({ tenant, entity, measures, device });
    this.schedule();
  }

  pushDevice(r: DeviceRecord, attrs: Record<string, unknown>): void {
    this.push(r.tenant, { id: deviceEntityId(this.reg.effective(r)), type: 'Device', ...attrs });
  }

  /** Resolves when the queue is below the high-water mark (MQTT/HTTP back-pressure). */
  ready(): Promise<void> | undefined {
    if (this.queue.length < HIGH_WATER) return undefined;
    return new Promise((res) => this.drainWaiters.push(res));
  }

  /** Resolves when everything queued so far is written. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.flushing) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  private schedule(): void {
    if (this.scheduled || this.flushing || this.stopped) return;
    this.scheduled = true;
    // a short delay lets a burst accumulate into one batch
    setTimeout(() => {
      this.scheduled = false;
      void this.flushLoop();
    }, this.queue.length >= MAX_BATCH ? 0 : 5);
  }

  private async flushLoop(): Promise<void> {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.queue.length) {
        const take = this.queue.splice(0, MAX_BATCH * LANES);
        // lanes by entity id: lanes write concurrently (the store and the history consumers
        // overlap), each lane in order; within a lane, a batch never holds the same entity twice
        const lanes: Map<string, Pending[][]>[] = Array.from({ length: LANES }, () => new Map());
        const lastIdx = new Map<string, number>();
        for (const it of take) {
          const id = it.entity.id as string;
          const lane = lanes[laneOf(id)];
          let batches = lane.get(it.tenant);
          if (!batches) lane.set(it.tenant, (batches = []));
          const key = `${it.tenant}\u0000${id}`;
          const last = lastIdx.get(key) ?? -1;
          let i = last + 1;
          while (i < batches.length && batches[i].length >= MAX_BATCH) i++;
          if (i === batches.length) batches.push([]);
          batches[i].push(it);
          lastIdx.set(key, i);
        }
        await Promise.all(
          lanes.map(async (lane) => {
            for (const [tenant, batches] of lane) for (const b of batches) await this.write(tenant, b);
          }),
        );
        if (this.queue.length < HIGH_WATER) for (const w of this.drainWaiters.splice(0)) w();
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
      for (const w of this.drainWaiters.splice(0)) w();
      if (this.queue.length) this.schedule();
      else for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async write(tenant: string, batch: Pending[]): Promise<void> {
    try {
      const res = await this.p.broker.upsertEntities(tenant, batch.map((b) => b.entity), { mode: 'update' });
      const failed = new Set(res.errors.map((e) => e.entityId));
      for (const b of batch) {
        if (failed.has(b.entity.id as string)) {
          this.counters.updatesFailed++;
          continue;
        }
        this.counters.measuresStored += b.measures;
        if (b.device) b.device.stored += b.measures;
      }
      if (res.errors.length) this.p.log.warn('device updates rejected by the broker', { errors: res.errors.slice(0, 5) });
    } catch (e) {
      this.counters.updatesFailed += batch.length;
      this.p.log.error('device batch write failed', { err: e, size: batch.length });
    }
  }

  /** Start the periodic health check (silence detection) on the platform clock. */
  startHealthTicks(everyMs = 1000): void {
    const tick = () => {
      if (this.stopped) return;
      try {
        this.tick();
      } finally {
        this.stopTick = this.p.clock.setTimer(everyMs, tick);
      }
    };
    this.stopTick = this.p.clock.setTimer(everyMs, tick);
  }

  tick(): void {
    const now = this.p.clock.now();
    for (const r of this.reg.allDevices()) {
      const k = this.key(r);
      const st = this.health.get(k);
      if (!st || st.connectivity !== 'online') continue;
      const cfg = healthConfig(this.reg.effective(r).health);
      const t = onTick(st, cfg, now);
      if (!t.changes.length) continue;
      this.health.set(k, t.state);
      const at = new Date(now).toISOString();
      this.pushDevice(r, {
        deviceState: { type: 'Property', value: t.state.connectivity, observedAt: at },
        healthIssues: { type: 'Property', value: healthIssues(t.state).length ? healthIssues(t.state) : ['none'], observedAt: at },
      });
      this.onHealth?.(r, t.changes);
    }
  }

  forget(r: DeviceRecord): void {
    this.stats.delete(this.key(r));
    this.health.delete(this.key(r));
  }

  async stop(): Promise<void> {
    this.stopTick?.();
    await this.idle();
    this.stopped = true;
  }
}

function laneOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) | 0;
  return (h >>> 0) % LANES;
}

function toEntity(u: EntityUpdate): Record<string, unknown> {
  return { id: u.id, type: u.type, ...u.attrs };
}

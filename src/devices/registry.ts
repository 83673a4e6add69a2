/**
 * Device registry: config groups and devices persisted in SQL (module 'devices' migrations) and
 * indexed in memory for the southbound hot path (apikey+device id, DevEUI, token fingerprint).
 * Writes go to SQL first, then to the indexes.
 */
import type { Db } from '../store/db.ts';
import { migrateModule } from '../store/schema.ts';
import { effectiveDevice, type EffectiveDevice } from './domain/provisioning.ts';
import type { Device, ServiceGroup } from './domain/types.ts';

export const MIGRATIONS = [
  {
    version: 1,
    sql: `
CREATE TABLE IF NOT EXISTS device_groups (
  tenant text NOT NULL,
  subservice text NOT NULL,
  resource text NOT NULL,
  apikey text NOT NULL,
  doc jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, subservice, resource, apikey)
);
CREATE INDEX IF NOT EXISTS device_groups_apikey ON device_groups (apikey);

CREATE TABLE IF NOT EXISTS devices (
  tenant text NOT NULL,
  device_id text NOT NULL,
  service_path text NOT NULL,
  apikey text NOT NULL DEFAULT '',
  dev_eui text,
  doc jsonb NOT NULL,
  secret_hash text,
  token_hash text,
  token_fp text,
  revoked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, device_id)
);
CREATE INDEX IF NOT EXISTS devices_apikey ON devices (apikey, device_id);
CREATE UNIQUE INDEX IF NOT EXISTS devices_dev_eui ON devices (dev_eui) WHERE dev_eui IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS devices_token_fp ON devices (token_fp) WHERE token_fp IS NOT NULL;
`,
  },
];

export interface DeviceRecord {
  tenant: string;
  device: Device;
  secretHash?: string;
  tokenHash?: string;
  tokenFp?: string;
  revoked: boolean;
}

const gkey = (tenant: string, subservice: string, resource: string, apikey: string) => `${tenant}\u0000${subservice}\u0000${resource}\u0000${apikey}`;
const dkey = (tenant: string, id: string) => `${tenant}\u0000${id}`;
const akey = (apikey: string, id: string) => `${apikey}\u0000${id}`;

export class DeviceRegistry {
  private groups = new Map<string, ServiceGroup>();
  private devices = new Map<string, DeviceRecord>();
  private byApikey = new Map<string, DeviceRecord>();
  private byEui = new Map<string, DeviceRecord>();
  private byTokenFp = new Map<string, DeviceRecord>();
  private effCache = new Map<DeviceRecord, EffectiveDevice>();

  constructor(private db: Db) {}

  async init(): Promise<void> {
    await migrateModule(this.db, 'devices', MIGRATIONS);
    for (const r of await this.db.query<{ tenant: string; doc: ServiceGroup }>('SELECT tenant, doc FROM device_groups')) {
      this.groups.set(gkey(r.tenant, r.doc.subservice, r.doc.resource, r.doc.apikey), r.doc);
    }
    const rows = await this.db.query<{ tenant: string; doc: Device; secret_hash: string | null; token_hash: string | null; token_fp: string | null; revoked: boolean }>(
      'SELECT tenant, doc, secret_hash, token_hash, token_fp, revoked FROM devices',
    );
    for (const r of rows)
      this.index({ tenant: r.tenant, device: r.doc, secretHash: r.secret_hash ?? undefined, tokenHash: r.token_hash ?? undefined, tokenFp: r.token_fp ?? undefined, revoked: r.revoked });
  }

  // ------------------------------------------------------------------ groups

  listGroups(tenant: string, subservice: string): ServiceGroup[] {
    return [...this.groups.values()].filter((g) => g.service === tenant && (subservice === '/*' || subservice === '/#' || g.subservice === subservice));
  }

  getGroup(tenant: string, subservice: string, resource: string, apikey: string): ServiceGroup | undefined {
    return this.groups.get(gkey(tenant, subservice, resource, apikey));
  }

  /** Any group with this apikey (southbound: the apikey identifies the group), preferring `resource`. */
  groupByApikey(apikey: string, resource?: string): ServiceGroup | undefined {
    let found: ServiceGroup | undefined;
    for (const g of this.groups.values()) {
      if (g.apikey !== apikey) continue;
      if (resource === undefined || g.resource === resource) return g;
      found ??= g;
    }
    return found;
  }

  /** The group of a device: by apikey, else (FIWARE legacy) by entity type; same service path preferred. */
  groupFor(tenant: string, subservice: string, apikey?: string, entityType?: string): ServiceGroup | undefined {
    if (apikey === undefined && entityType === undefined) return undefined;
    const all = [...this.groups.values()].filter((g) => g.service === tenant && (apikey !== undefined ? g.apikey === apikey : g.entity_type === entityType));
    return all.find((g) => g.subservice === subservice) ?? all[0];
  }

  groupOf(r: DeviceRecord): ServiceGroup | undefined {
    return this.groupFor(r.tenant, r.device.service_path, r.device.apikey, r.device.entity_type);
  }

  async putGroup(g: ServiceGroup): Promise<void> {
    await this.db.query(
      `INSERT INTO device_groups (tenant, subservice, resource, apikey, doc) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant, subservice, resource, apikey) DO UPDATE SET doc = EXCLUDED.doc`,
      [g.service, g.subservice, g.resource, g.apikey, JSON.stringify(g)],
    );
    this.groups.set(gkey(g.service, g.subservice, g.resource, g.apikey), g);
    this.effCache.clear();
  }

  async deleteGroup(g: ServiceGroup): Promise<void> {
    await this.db.query('DELETE FROM device_groups WHERE tenant = $1 AND subservice = $2 AND resource = $3 AND apikey = $4', [g.service, g.subservice, g.resource, g.apikey]);
    this.groups.delete(gkey(g.service, g.subservice, g.resource, g.apikey));
    this.effCache.clear();
  }

  // ------------------------------------------------------------------ devices

  private index(r: DeviceRecord): void {
    const old = this.devices.get(dkey(r.tenant, r.device.device_id));
    if (old) this.unindex(old);
    this.devices.set(dkey(r.tenant, r.device.device_id), r);
    this.byApikey.set(akey(this.apikeyOf(r), r.device.device_id), r);
    if (r.device.dev_eui) this.byEui.set(r.device.dev_eui, r);
    if (r.tokenFp) this.byTokenFp.set(r.tokenFp, r);
  }

  private unindex(r: DeviceRecord): void {
    this.devices.delete(dkey(r.tenant, r.device.device_id));
    const ak = akey(this.apikeyOf(r), r.device.device_id);
    if (this.byApikey.get(ak) === r) this.byApikey.delete(ak);
    if (r.device.dev_eui && this.byEui.get(r.device.dev_eui) === r) this.byEui.delete(r.device.dev_eui);
    if (r.tokenFp && this.byTokenFp.get(r.tokenFp) === r) this.byTokenFp.delete(r.tokenFp);
    this.effCache.delete(r);
  }

  private apikeyOf(r: DeviceRecord): string {
    return r.device.apikey ?? this.groupOf(r)?.apikey ?? '';
  }

  listDevices(tenant: string, servicePath: string): DeviceRecord[] {
    return [...this.devices.values()].filter((r) => r.tenant === tenant && (servicePath === '/*' || servicePath === '/#' || r.device.service_path === servicePath));
  }

  allDevices(): DeviceRecord[] {
    return [...this.devices.values()];
  }

  getDevice(tenant: string, id: string): DeviceRecord | undefined {
    return this.devices.get(dkey(tenant, id));
  }

  byApikeyAndId(apikey: string, id: string): DeviceRecord | undefined {
    return this.byApikey.get(akey(apikey, id));
  }

  byDevEui(eui: string): DeviceRecord | undefined {
    return this.byEui.get(eui);
  }

  byToken(fp: string): DeviceRecord | undefined {
    return this.byTokenFp.get(fp);
  }

  /** Effective configuration (device + its group), cached until the next registry write. */
  effective(r: DeviceRecord): EffectiveDevice {
    let e = this.effCache.get(r);
    if (!e) {
      const g = this.groupOf(r);
      e = effectiveDevice(r.device, g);
      this.effCache.set(r, e);
    }
    return e;
  }

  async putDevice(r: DeviceRecord): Promise<void> {
    const apikey = r.device.apikey ?? this.groupOf(r)?.apikey ?? '';
    await this.db.query(
      `INSERT INTO devices (tenant, device_id, service_path, apikey, dev_eui, doc, secret_hash, token_hash, token_fp, revoked)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (tenant, device_id) DO UPDATE SET service_path = EXCLUDED.service_path, apikey = EXCLUDED.apikey,
         dev_eui = EXCLUDED.dev_eui, doc = EXCLUDED.doc, secret_hash = EXCLUDED.secret_hash, token_hash = EXCLUDED.token_hash,
         token_fp = EXCLUDED.token_fp, revoked = EXCLUDED.revoked, updated_at = now()`,
      [r.tenant, r.device.device_id, r.device.service_path, apikey, r.device.dev_eui ?? null, JSON.stringify(r.device), r.secretHash ?? null, r.tokenHash ?? null, r.tokenFp ?? null, r.revoked],
    );
    this.index(r);
  }

  async deleteDevice(r: DeviceRecord): Promise<void> {
    await this.db.query('DELETE FROM devices WHERE tenant = $1 AND device_id = $2', [r.tenant, r.device.device_id]);
    this.unindex(r);
  }

  /** a DevEUI or token fingerprint already used by another device */
  conflicts(r: DeviceRecord): string | undefined {
    const e = r.device.dev_eui ? this.byEui.get(r.device.dev_eui) : undefined;
    if (e && (e.tenant !== r.tenant || e.device.device_id !== r.device.device_id)) return `dev_eui ${r.device.dev_eui} is already used by device "${e.device.device_id}"`;
    const a = this.byApikey.get(akey(r.device.apikey ?? this.groupOf(r)?.apikey ?? '', r.device.device_id));
    if (a && a.tenant !== r.tenant) return `device "${r.device.device_id}" already exists for this apikey in another service`;
    return undefined;
  }
}

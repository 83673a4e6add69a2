/**
 * The device layer's application service: provisioning (groups, devices, credentials, NGSI-LD
 * entities), southbound message handling shared by MQTT, HTTP and LoRaWAN, and actuation
 * (command attributes changed on entities -> device -> cmdexe -> <cmd>_status / <cmd>_info).
 */
import type { Platform } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import { coreActiveContext } from '../ngsi-ld/jsonld/index.ts';
import { ProblemError } from '../common/problem.ts';
import {
  autoprovisionDevice,
  iotError,
  mergeDeviceUpdate,
  mergeGroupUpdate,
  parseDevicesBody,
  parseGroupsBody,
  type Scope,
} from './domain/provisioning.ts';
import { commandStatusFragment, provisionedEntities } from './domain/entities.ts';
import {
  PayloadError,
  commandTopic,
  formatJsonCommand,
  formatUltralightCommand,
  parseJsonCommandResult,
  parseJsonMeasures,
  parseJsonSingle,
  parseTopic,
  parseUltralight,
  parseUltralightCommandResult,
  parseUltralightSingle,
  parseDeviceTime,
} from './domain/payloads.ts';
import { loraMeasures, loraMetadata, parseChirpStackUp, parseTtsUplink, type LoraUplink } from './domain/lorawan.ts';
import { forgetVerifications, generateToken, hashSecret, hashToken, tokenFingerprint, verifySecret } from './domain/credentials.ts';
import type { Device, MeasureGroup, ServiceGroup, Transport } from './domain/types.ts';
import { DeviceRegistry, type DeviceRecord } from './registry.ts';
import { Ingestor } from './ingest.ts';

export interface CommandSink {
  /** publish a command to a device over MQTT */
  publish(topic: string, payload: string, qos: 0 | 1 | 2, retain: boolean): Promise<void>;
  /** drop the MQTT connections of a device (revocation) */
  disconnect?(tenant: string, deviceId: string): void;
}

export interface SouthboundIdentity {
  /** authenticated device (MQTT credentials), or undefined for anonymous / external broker */
  device?: DeviceRecord;
}

interface PendingCommand {
  command: string;
  value: unknown;
  at: number;
}

const ctx = coreActiveContext();

export class DeviceService {
  readonly reg: DeviceRegistry;
  readonly ingest: Ingestor;
  sink?: CommandSink;
  private polling = new Map<string, PendingCommand[]>();
  /** (tenant, entity id) -> device record, for actuation */
  private byEntity = new Map<string, DeviceRecord>();
  private unsubscribe?: () => void;

  constructor(private p: Platform) {
    this.reg = new DeviceRegistry(p.db);
    this.ingest = new Ingestor(p, this.reg);
  }

  async start(): Promise<void> {
    await this.reg.init();
    for (const r of this.reg.allDevices()) this.indexEntity(r);
    this.unsubscribe = this.p.bus.subscribe((evs) => this.onChanges(evs));
    this.ingest.startHealthTicks();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.ingest.stop();
  }

  private indexEntity(r: DeviceRecord): void {
    this.byEntity.set(`${r.tenant}\u0000${r.device.entity_name}`, r);
  }

  private now(): string {
    return new Date(this.p.clock.now()).toISOString();
  }

  // ================================================================ provisioning

  async createGroups(scope: Scope, body: unknown): Promise<ServiceGroup[]> {
    const groups = parseGroupsBody(body, scope);
    for (const g of groups) {
      if (this.reg.getGroup(scope.tenant, scope.servicePath, g.resource, g.apikey))
        throw iotError(409, 'DUPLICATE_GROUP', `a group for resource "${g.resource}" and apikey "${g.apikey}" already exists`);
      const other = this.reg.groupByApikey(g.apikey);
      if (other && other.service !== g.service) throw iotError(409, 'DUPLICATE_GROUP', `apikey "${g.apikey}" is already used by another service`);
    }
    for (const g of groups) await this.reg.putGroup(g);
    return groups;
  }

  async updateGroup(scope: Scope, resource: string, apikey: string, body: unknown): Promise<ServiceGroup> {
    const g = this.reg.getGroup(scope.tenant, scope.servicePath, resource, apikey);
    if (!g) throw iotError(404, 'DEVICE_GROUP_NOT_FOUND', `no group for resource "${resource}" and apikey "${apikey}"`);
    const next = mergeGroupUpdate(g, body);
    if (next.resource !== g.resource || next.apikey !== g.apikey) await this.reg.deleteGroup(g);
    await this.reg.putGroup(next);
    return next;
  }

  async deleteGroup(scope: Scope, resource: string, apikey: string): Promise<void> {
    const g = this.reg.getGroup(scope.tenant, scope.servicePath, resource, apikey);
    if (!g) throw iotError(404, 'DEVICE_GROUP_NOT_FOUND', `no group for resource "${resource}" and apikey "${apikey}"`);
    await this.reg.deleteGroup(g);
  }

  async createDevices(scope: Scope, body: unknown): Promise<Device[]> {
    const devices = parseDevicesBody(body, scope, (apikey, type) => this.reg.groupFor(scope.tenant, scope.servicePath, apikey, type));
    for (const d of devices) {
      if (this.reg.getDevice(scope.tenant, d.device_id)) throw iotError(409, 'DUPLICATE_DEVICE_ID', `device "${d.device_id}" already exists`);
      const c = this.reg.conflicts({ tenant: scope.tenant, device: d, revoked: false });
      if (c) throw iotError(409, 'DUPLICATE_DEVICE_ID', c);
    }
    for (const d of devices) await this.saveDevice({ tenant: scope.tenant, device: d, revoked: false }, true);
    return devices;
  }

  private async saveDevice(r: DeviceRecord, writeEntities: boolean): Promise<void> {
    await this.reg.putDevice(r);
    this.indexEntity(r);
    if (writeEntities) {
      const ents = provisionedEntities(this.reg.effective(r), this.now());
      const res = await this.p.broker.upsertEntities(r.tenant, ents, { mode: 'update' });
      if (res.errors.length) this.p.log.warn('device entities rejected', { device: r.device.device_id, errors: res.errors });
    }
  }

  getDevice(scope: Scope, id: string): DeviceRecord {
    const r = this.reg.getDevice(scope.tenant, id);
    if (!r || (scope.servicePath !== '/*' && scope.servicePath !== '/#' && r.device.service_path !== scope.servicePath))
      throw iotError(404, 'DEVICE_NOT_FOUND', `no device "${id}" in this service / service path`);
    return r;
  }

  async updateDevice(scope: Scope, id: string, body: unknown): Promise<Device> {
    const r = this.getDevice(scope, id);
    const group = this.reg.groupOf(r);
    const next = mergeDeviceUpdate(r.device, body, group);
    const rec = { ...r, device: next };
    const c = this.reg.conflicts(rec);
    if (c) throw iotError(409, 'DUPLICATE_DEVICE_ID', c);
    if (next.entity_name !== r.device.entity_name) this.byEntity.delete(`${r.tenant}\u0000${r.device.entity_name}`);
    await this.saveDevice(rec, true);
    return next;
  }

  async deleteDevice(scope: Scope, id: string): Promise<void> {
    const r = this.getDevice(scope, id);
    await this.reg.deleteDevice(r);
    this.byEntity.delete(`${r.tenant}\u0000${r.device.entity_name}`);
    this.ingest.forget(r);
    this.sink?.disconnect?.(r.tenant, id);
  }

  /** Issue credentials: a password chosen by the caller, or else a generated token (returned once). */
  async issueCredentials(scope: Scope, id: string, body: unknown): Promise<{ device_id: string; token?: string; username: string }> {
    const r = this.getDevice(scope, id);
    const password = body && typeof body === 'object' ? (body as { password?: unknown }).password : undefined;
    if (password !== undefined && (typeof password !== 'string' || password.length < 8 || password.length > 1024))
      throw iotError(400, 'WRONG_SYNTAX', 'password must be a string of 8 to 1024 characters');
    const next: DeviceRecord = { ...r, revoked: false };
    let token: string | undefined;
    if (typeof password === 'string') next.secretHash = await hashSecret(password);
    else {
      token = generateToken();
      next.tokenHash = hashToken(token);
      next.tokenFp = tokenFingerprint(token);
    }
    forgetVerifications();
    await this.reg.putDevice(next);
    this.sink?.disconnect?.(r.tenant, id);
    return { device_id: id, username: `${this.reg.effective(next).apikey}/${id}`, ...(token ? { token } : {}) };
  }

  /** Revoke: every credential is dropped and the device is refused until new credentials are issued. */
  async revokeCredentials(scope: Scope, id: string): Promise<void> {
    const r = this.getDevice(scope, id);
    forgetVerifications();
    await this.reg.putDevice({ ...r, secretHash: undefined, tokenHash: undefined, tokenFp: undefined, revoked: true });
    this.sink?.disconnect?.(r.tenant, id);
  }

  // ================================================================ identities

  /** MQTT CONNECT: username = <device_id> or <apikey>/<device_id> + password, or "token" + token. */
  async authenticateMqtt(username: string | undefined, password: string | undefined): Promise<DeviceRecord | 'anonymous' | undefined> {
    if (!username && !password) {
      if (this.p.config.auth) {
        this.ingest.counters.rejected.badCredentials++;
        return undefined;
      }
      return 'anonymous';
    }
    if (!password) {
      this.ingest.counters.rejected.badCredentials++;
      return undefined;
    }
    let r: DeviceRecord | undefined;
    if (username === 'token' || !username) {
      r = this.reg.byToken(tokenFingerprint(password));
    } else {
      const i = username.indexOf('/');
      if (i > 0) r = this.reg.byApikeyAndId(username.slice(0, i), username.slice(i + 1));
      else r = this.reg.allDevices().find((x) => x.device.device_id === username);
    }
    if (!r) {
      this.ingest.counters.rejected.unknown++;
      return undefined;
    }
    if (r.revoked) {
      this.ingest.counters.rejected.revoked++;
      return undefined;
    }
    const ok = (r.secretHash && (await verifySecret(password, r.secretHash))) || (r.tokenHash && (await verifySecret(password, r.tokenHash)));
    if (!ok) {
      this.ingest.counters.rejected.badCredentials++;
      return undefined;
    }
    return r;
  }

  /** Find the device of a southbound message and check it may send (identity, revocation, group). */
  resolveDevice(apikey: string, deviceId: string, transport: Transport, id: SouthboundIdentity, resource?: string): DeviceRecord {
    let r = this.reg.byApikeyAndId(apikey, deviceId);
    if (id.device) {
      // an authenticated connection may only speak for its own device
      if (!r || r !== this.reg.getDevice(id.device.tenant, id.device.device.device_id)) {
        this.ingest.counters.rejected.forbidden++;
        throw iotError(400, 'FORBIDDEN', `this connection is authenticated as "${id.device.device.device_id}"`);
      }
    }
    if (!r) {
      const g = this.reg.groupByApikey(apikey, resource);
      if (!g || !g.autoprovision) {
        this.ingest.counters.rejected.unknown++;
        throw iotError(404, 'DEVICE_NOT_FOUND', `unknown device "${deviceId}" for apikey "${apikey}"`);
      }
      // autoprovision (FIWARE default): create the device from the group, entities on first write
      const d = autoprovisionDevice(deviceId, g, transport === 'mqtt' ? 'MQTT' : 'HTTP');
      r = { tenant: g.service, device: d, revoked: false };
      void this.saveDevice(r, true).catch((e) => this.p.log.warn('autoprovisioning failed', { err: e, device: deviceId }));
    }
    if (r.revoked) {
      this.ingest.counters.rejected.revoked++;
      throw iotError(400, 'DEVICE_REVOKED', `device "${deviceId}" has been revoked`);
    }
    return r;
  }

  private hasCredentials(r: DeviceRecord): boolean {
    return !!(r.secretHash || r.tokenHash);
  }

  /** HTTP southbound: apikey + device id; a device with credentials must also present them (Bearer token or password). */
  async checkHttpCredentials(r: DeviceRecord, authorization: string | undefined): Promise<void> {
    if (!this.hasCredentials(r)) return;
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    const secret = m?.[1];
    const ok = !!secret && ((r.tokenHash && (await verifySecret(secret, r.tokenHash))) || (r.secretHash && (await verifySecret(secret, r.secretHash))));
    if (!ok) {
      this.ingest.counters.rejected.badCredentials++;
      throw new ProblemError('Unauthorized', `device "${r.device.device_id}" must authenticate with its token (Authorization: Bearer ...)`, { name: 'UNAUTHORIZED' });
    }
  }

  // ================================================================ southbound

  /**
   * One MQTT message. Unknown topics and devices are refused (thrown); malformed payloads of known
   * devices are counted and swallowed (never crash, never disconnect).
   */
  handleMqtt(topic: string, payload: Buffer, id: SouthboundIdentity): void {
    const t = parseTopic(topic);
    if (!t) {
      this.ingest.counters.rejected.forbidden++;
      throw iotError(400, 'WRONG_TOPIC', `topic "${topic}" is not a device topic`);
    }
    const r = this.resolveDevice(t.apikey, t.deviceId, 'mqtt', id);
    const protocol = t.protocol ?? this.protocolOf(r);
    try {
      if (t.kind === 'cmdexe') return this.commandResults(r, protocol, payload);
      if (t.kind === 'configuration') return;
      let groups: MeasureGroup[];
      if (protocol === 'ul') groups = t.kind === 'attr' ? parseUltralightSingle(t.attr!, payload) : parseUltralight(payload);
      else groups = t.kind === 'attr' ? parseJsonSingle(t.attr!, payload) : parseJsonMeasures(payload);
      this.ingest.ingest(r, groups, { transport: 'mqtt', textValues: protocol === 'ul' });
    } catch (e) {
      if (e instanceof PayloadError) return this.ingest.malformed(r, e.message, 'mqtt');
      throw e;
    }
  }

  private protocolOf(r: DeviceRecord): 'json' | 'ul' {
    const p = (r.device.protocol ?? this.reg.effective(r).group?.protocol ?? '').toLowerCase();
    return p.includes('ul') || p.includes('ultralight') ? 'ul' : 'json';
  }

  /**
   * HTTP measures: POST /iot/json (JSON), POST|GET /iot/d (Ultralight), with k (apikey), i (device),
   * optional t (timestamp) and getCmd=1 (returns pending polling commands).
   */
  async handleHttp(
    format: 'json' | 'ul',
    q: Record<string, unknown>,
    body: unknown,
    authorization: string | undefined,
    opts: { attr?: string; resource?: string } = {},
  ): Promise<{ status: number; body?: unknown; contentType?: string }> {
    const k = typeof q.k === 'string' ? q.k : undefined;
    const i = typeof q.i === 'string' ? q.i : undefined;
    if (!k || !i) throw iotError(400, 'MANDATORY_PARAMS_NOT_FOUND', 'query parameters k (apikey) and i (device id) are mandatory');
    const r = this.resolveDevice(k, i, 'http', {}, opts.resource);
    await this.checkHttpCredentials(r, authorization);
    const ts = typeof q.t === 'string' ? parseDeviceTime(q.t) : undefined;
    const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : undefined;
    const hasBody = body !== undefined && body !== null && !(typeof body === 'string' && body.trim() === '');
    const d = typeof q.d === 'string' ? q.d : undefined;
    if (hasBody || d) {
      try {
        if (format === 'ul') {
          const src = hasBody ? (text ?? '') : d!;
          if (/^[^|#\n]*@[^|#\n]+\|/.test(src.trim()) || /^[^|#\n]+@[^|#\n]+$/.test(src.trim())) this.commandResults(r, 'ul', Buffer.from(src));
          else this.ingest.ingest(r, stamp(opts.attr ? parseUltralightSingle(opts.attr, src) : parseUltralight(src), ts), { transport: 'http', textValues: true });
        } else {
          const groups = opts.attr ? (text !== undefined ? parseJsonSingle(opts.attr, text) : [{ values: { [opts.attr]: body } }]) : parseJsonMeasures(body);
          this.ingest.ingest(r, stamp(groups, ts), { transport: 'http' });
        }
      } catch (e) {
        if (e instanceof PayloadError) {
          this.ingest.malformed(r, e.message, 'http');
          throw iotError(400, 'WRONG_SYNTAX', e.message);
        }
        throw e;
      }
    } else if (q.getCmd !== '1') {
      this.ingest.malformed(r, 'empty measure', 'http');
      throw iotError(400, 'WRONG_SYNTAX', 'no measures in the request');
    }
    await this.ingest.ready();
    if (q.getCmd === '1') return this.pollCommands(r, format);
    return { status: 200, body: '', contentType: 'text/plain' };
  }

  /** HTTP command result: POST /iot/json/commands?k=&i= with {"<cmd>": result}. */
  async handleHttpCommandResult(q: Record<string, unknown>, body: unknown, authorization?: string): Promise<void> {
    const k = typeof q.k === 'string' ? q.k : '';
    const i = typeof q.i === 'string' ? q.i : '';
    const r = this.resolveDevice(k, i, 'http', {});
    await this.checkHttpCredentials(r, authorization);
    try {
      this.commandResults(r, 'json', Buffer.from(typeof body === 'string' ? body : JSON.stringify(body ?? null)));
    } catch (e) {
      if (e instanceof PayloadError) {
        this.ingest.malformed(r, e.message, 'http');
        throw iotError(400, 'WRONG_SYNTAX', e.message);
      }
      throw e;
    }
  }

  /** LoRaWAN webhook (ChirpStack v4 `up` / TTS v3 uplink). `apikey` must be the device's (group) apikey. */
  async handleLora(network: 'chirpstack' | 'tts', body: unknown, apikey: string | undefined): Promise<{ device: string } | undefined> {
    let u: LoraUplink;
    try {
      u = network === 'chirpstack' ? parseChirpStackUp(body) : parseTtsUplink(body);
    } catch (e) {
      if (e instanceof PayloadError) {
        this.ingest.counters.malformed++;
        throw iotError(400, 'WRONG_SYNTAX', e.message);
      }
      throw e;
    }
    const r = this.reg.byDevEui(u.devEui);
    if (!r) {
      this.ingest.counters.rejected.unknown++;
      throw iotError(404, 'DEVICE_NOT_FOUND', `no device with DevEUI ${u.devEui}`);
    }
    const eff = this.reg.effective(r);
    if (!apikey || apikey !== eff.apikey) {
      this.ingest.counters.rejected.badCredentials++;
      throw new ProblemError('Unauthorized', 'the webhook must carry the apikey of the device group (?k= or X-Api-Key header)', { name: 'UNAUTHORIZED' });
    }
    if (r.revoked) {
      this.ingest.counters.rejected.revoked++;
      throw iotError(400, 'DEVICE_REVOKED', `device "${r.device.device_id}" has been revoked`);
    }
    try {
      this.ingest.ingest(r, loraMeasures(u), { transport: 'lorawan', meta: loraMetadata(u) });
    } catch (e) {
      if (e instanceof PayloadError) {
        this.ingest.malformed(r, e.message, 'lorawan');
        throw iotError(400, 'WRONG_SYNTAX', e.message);
      }
      throw e;
    }
    await this.ingest.ready();
    return { device: r.device.device_id };
  }

  // ================================================================ actuation

  private onChanges(evs: ChangeEvent[]): void {
    for (const ev of evs) {
      if (ev.kind === 'delete' || ev.kind === 'create' || !ev.after) continue;
      const r = this.byEntity.get(`${ev.tenant}\u0000${ev.entityId}`);
      if (!r) continue;
      const eff = this.reg.effective(r);
      for (const c of eff.commands) {
        const iri = ctx.expandTerm(c.name);
        if (!ev.changedAttrs.includes(iri)) continue;
        const inst = ev.after.attrs[iri]?.[0];
        if (!inst) continue;
        const value = inst.value ?? inst.object ?? inst.json;
        if (value === '' || value === undefined) continue;
        void this.sendCommand(r, c.name, value).catch((e) => this.p.log.warn('command failed', { err: e, device: r.device.device_id, command: c.name }));
      }
    }
  }

  private status(r: DeviceRecord, command: string, status: 'PENDING' | 'DELIVERED' | 'OK' | 'ERROR', info?: unknown): void {
    this.ingest.push(r.tenant, { id: r.device.entity_name, type: r.device.entity_type, ...commandStatusFragment(command, status, this.now(), info) });
  }

  /** Send a command down: MQTT push, HTTP push (endpoint) or queue for HTTP polling. */
  async sendCommand(r: DeviceRecord, command: string, value: unknown): Promise<void> {
    const eff = this.reg.effective(r);
    const def = eff.commands.find((c) => c.name === command);
    const protocol = this.protocolOf(r);
    const payload = protocol === 'ul' ? formatUltralightCommand(r.device.device_id, command, value) : formatJsonCommand(command, value);
    const endpoint = r.device.endpoint ?? eff.group?.endpoint;
    if (eff.transport === 'MQTT' || (!endpoint && eff.transport !== 'HTTP' && this.sink)) {
      if (!this.sink) throw new Error('no MQTT transport');
      const qos = (def?.mqtt?.qos ?? 1) as 0 | 1 | 2;
      await this.sink.publish(commandTopic(eff.apikey, r.device.device_id), payload, qos, def?.mqtt?.retain ?? false);
      this.status(r, command, 'PENDING');
      return;
    }
    if (endpoint) {
      this.status(r, command, 'PENDING');
      try {
        const res = await fetch(endpoint, {
          method: 'POST',
          headers: {
            'content-type': protocol === 'ul' ? 'text/plain' : 'application/json',
            'fiware-service': r.device.service,
            'fiware-servicepath': r.device.service_path,
          },
          body: payload,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (!res.ok) return this.status(r, command, 'ERROR', `HTTP ${res.status}`);
        if (protocol === 'ul') {
          const rs = parseUltralightCommandResult(text);
          this.status(r, command, 'OK', rs.find((x) => x.command === command)?.result ?? text);
        } else {
          const rs = parseJsonCommandResult(text);
          this.status(r, command, 'OK', rs.find((x) => x.command === command)?.result ?? text);
        }
      } catch (e) {
        this.status(r, command, 'ERROR', (e as Error).message);
      }
      return;
    }
    const k = `${r.tenant}\u0000${r.device.device_id}`;
    const list = (this.polling.get(k) ?? []).filter((x) => x.command !== command);
    list.push({ command, value, at: this.p.clock.now() });
    this.polling.set(k, list.slice(-100));
    this.status(r, command, 'PENDING');
  }

  private pollCommands(r: DeviceRecord, format: 'json' | 'ul'): { status: number; body: unknown; contentType: string } {
    const k = `${r.tenant}\u0000${r.device.device_id}`;
    const list = this.polling.get(k) ?? [];
    this.polling.delete(k);
    for (const c of list) this.status(r, c.command, 'DELIVERED');
    if (format === 'ul') return { status: 200, body: list.map((c) => formatUltralightCommand(r.device.device_id, c.command, c.value)).join('#'), contentType: 'text/plain' };
    const o: Record<string, unknown> = {};
    for (const c of list) o[c.command] = c.value;
    return { status: 200, body: JSON.stringify(o), contentType: 'application/json' };
  }

  /** cmdexe: UL `<device>@<cmd>|<result>` or JSON `{"<cmd>": <result>}` -> <cmd>_status OK, <cmd>_info result. */
  private commandResults(r: DeviceRecord, protocol: 'json' | 'ul', payload: Buffer): void {
    const eff = this.reg.effective(r);
    const known = new Set(eff.commands.map((c) => c.name));
    const results = protocol === 'ul' ? parseUltralightCommandResult(payload).map((x) => ({ command: x.command, result: x.result as unknown })) : parseJsonCommandResult(payload);
    for (const x of results) {
      if (!known.has(x.command)) throw new PayloadError(`unknown command "${x.command}"`);
      this.status(r, x.command, 'OK', x.result);
    }
  }

  /** Summary for GET /iot/stats. */
  stats(): Record<string, unknown> {
    return { ...this.ingest.counters, rejected: { ...this.ingest.counters.rejected }, devices: this.reg.allDevices().length };
  }
}

function stamp(groups: MeasureGroup[], ts: string | undefined): MeasureGroup[] {
  if (!ts) return groups;
  return groups.map((g) => (g.observedAt ? g : { ...g, observedAt: ts }));
}

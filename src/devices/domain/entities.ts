/**
 * NGSI-LD entities owned by the device layer: the data entity a device feeds (static attributes,
 * command attributes with their `_status` / `_info` companions, `refDevice`) and the Smart Data
 * Models `Device` entity that describes the device itself (controlledAsset -> data entity,
 * deviceState, dateLastValueReported, batteryLevel, radio metadata, health).
 */
import { convertValue, toNgsiAttr, type NgsiAttr } from './mapping.ts';
import type { EffectiveDevice } from './provisioning.ts';

export const DEVICE_TYPE = 'Device';

/** Id of the SDM Device entity of a device (the data entity itself when its type is already Device). */
export function deviceEntityId(eff: EffectiveDevice): string {
  if (eff.device.entity_type === DEVICE_TYPE) return eff.device.entity_name;
  const sp = eff.device.service_path === '/' ? '' : eff.device.service_path.replace(/\//g, ':');
  return `urn:ngsi-ld:Device:${eff.device.service || 'default'}${sp}:${eff.device.device_id}`;
}

function staticAttrs(eff: EffectiveDevice, at: string): Record<string, NgsiAttr> {
  const out: Record<string, NgsiAttr> = {};
  for (const s of eff.static_attributes) {
    if (s.value === undefined || s.name === 'id' || s.name === 'type') continue;
    let v: unknown;
    try {
      v = convertValue(s.value, s.type);
    } catch {
      v = s.value;
    }
    out[s.name] = toNgsiAttr(s.name, v, s.type, s.metadata as Record<string, unknown> | undefined);
    if (out[s.name].type === 'Property') out[s.name].observedAt = at;
  }
  return out;
}

/** Protocol names as in SDM Device.supportedProtocol */
function protocolOf(eff: EffectiveDevice): string[] {
  const p = (eff.device.protocol ?? eff.group?.protocol ?? '').toLowerCase();
  const t = eff.transport.toLowerCase();
  const out = new Set<string>();
  if (p.includes('ul') || p.includes('ultralight')) out.add('ul20');
  if (p.includes('json')) out.add('json');
  if (eff.device.dev_eui || t === 'lorawan') out.add('lorawan');
  if (t === 'mqtt') out.add('mqtt');
  if (t === 'http') out.add('http');
  return [...out];
}

/** Entities written at provisioning: the data entity skeleton and the Device entity. */
export function provisionedEntities(eff: EffectiveDevice, at: string): Record<string, unknown>[] {
  const d = eff.device;
  const devId = deviceEntityId(eff);
  const statics = staticAttrs(eff, at);
  const commandAttrs: Record<string, NgsiAttr> = {};
  for (const c of eff.commands) {
    commandAttrs[c.name] = { type: 'Property', value: '' };
    commandAttrs[`${c.name}_status`] = { type: 'Property', value: 'UNKNOWN' };
    commandAttrs[`${c.name}_info`] = { type: 'Property', value: '' };
  }
  const controlled = [...eff.attributes.map((a) => a.name), ...eff.lazy.map((a) => a.name)];
  const device: Record<string, unknown> = {
    id: devId,
    type: DEVICE_TYPE,
    name: { type: 'Property', value: d.device_id },
    deviceCategory: { type: 'Property', value: eff.commands.length ? ['sensor', 'actuator'] : ['sensor'] },
    controlledProperty: { type: 'Property', value: controlled.length ? controlled : ['unknown'] },
    supportedProtocol: { type: 'Property', value: protocolOf(eff).length ? protocolOf(eff) : ['unknown'] },
    deviceState: { type: 'Property', value: 'provisioned', observedAt: at },
    servicePath: { type: 'Property', value: d.service_path },
  };
  if (d.dev_eui) device.devEui = { type: 'Property', value: d.dev_eui };
  if (statics.location) device.location = statics.location;
  const out: Record<string, unknown>[] = [];
  if (devId === d.entity_name) {
    out.push({ ...device, ...statics, ...commandAttrs });
  } else {
    device.controlledAsset = { type: 'Relationship', object: d.entity_name };
    out.push({ id: d.entity_name, type: d.entity_type, ...statics, ...commandAttrs, refDevice: { type: 'Relationship', object: devId } });
    out.push(device);
  }
  return out;
}

/** Fragment written to the data entity when a command changes status. */
export function commandStatusFragment(command: string, status: 'PENDING' | 'DELIVERED' | 'OK' | 'ERROR' | 'EXPIRED', at: string, info?: unknown): Record<string, NgsiAttr> {
  const f: Record<string, NgsiAttr> = { [`${command}_status`]: { type: 'Property', value: status, observedAt: at } };
  if (info !== undefined) f[`${command}_info`] = { type: 'Property', value: info === null ? '' : info, observedAt: at };
  return f;
}

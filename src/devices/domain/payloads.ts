/**
 * Southbound payload parsers: Ultralight 2.0 (iotagent-ul) and JSON (iotagent-json) measures and
 * command results, and the command payloads sent down to devices. Pure; every parser throws
 * PayloadError on malformed input so the caller can reject and count it.
 */
import type { MeasureGroup } from './types.ts';

export class PayloadError extends Error {}

export const MAX_PAYLOAD_BYTES = 256 * 1024;
const MAX_GROUPS = 10_000;

const ISO_TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/;
const COMPACT_TS_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;

/** Parse a device timestamp (ISO 8601, compact ISO 20160125T092703Z, or epoch seconds/ms) to ISO UTC. */
export function parseDeviceTime(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) {
    const ms = v < 1e11 ? v * 1000 : v;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
  }
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (/^\d{9,13}$/.test(s)) return parseDeviceTime(Number(s));
  let iso = s;
  const c = COMPACT_TS_RE.exec(s);
  if (c) iso = `${c[1]}-${c[2]}-${c[3]}T${c[4]}:${c[5]}:${c[6]}${c[7] ?? ''}${c[8] ?? 'Z'}`;
  else if (!ISO_TS_RE.test(s)) return undefined;
  else if (!/(Z|[+-]\d{2}:?\d{2})$/.test(s)) iso = s + 'Z';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function asText(payload: string | Uint8Array): string {
  if (typeof payload === 'string') {
    if (payload.length > MAX_PAYLOAD_BYTES) throw new PayloadError('payload too large');
    return payload;
  }
  if (payload.byteLength > MAX_PAYLOAD_BYTES) throw new PayloadError('payload too large');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    throw new PayloadError('payload is not valid UTF-8');
  }
}

/**
 * Ultralight 2.0 measures: `t|25|h|40`, groups separated by `#` (or new lines), each with an
 * optional leading timestamp: `2016-06-13T00:35:30Z|lle|100`.
 */
export function parseUltralight(payload: string | Uint8Array): MeasureGroup[] {
  const text = asText(payload).trim();
  if (text === '') throw new PayloadError('empty Ultralight payload');
  const groups: MeasureGroup[] = [];
  for (const rawGroup of text.split(/[#\n]/)) {
    const g = rawGroup.trim();
    if (g === '') continue;
    if (groups.length >= MAX_GROUPS) throw new PayloadError('too many measure groups');
    const parts = g.split('|');
    let observedAt: string | undefined;
    if (parts.length % 2 === 1) {
      observedAt = parseDeviceTime(parts[0]);
      if (!observedAt) throw new PayloadError(`Ultralight group "${truncate(g)}" has an odd number of fields and no valid timestamp`);
      parts.shift();
    }
    if (parts.length === 0) throw new PayloadError(`Ultralight group "${truncate(g)}" has no measures`);
    const values: Record<string, unknown> = {};
    for (let i = 0; i < parts.length; i += 2) {
      const k = parts[i].trim();
      if (!/^[^\s@=]{1,256}$/.test(k) || k === '__proto__') throw new PayloadError(`invalid Ultralight measure name "${truncate(k)}"`);
      if (parts[i + 1].trim() === '') throw new PayloadError(`empty value for Ultralight measure "${truncate(k)}"`);
      values[k] = parts[i + 1];
    }
    groups.push(observedAt ? { values, observedAt } : { values });
  }
  if (groups.length === 0) throw new PayloadError('empty Ultralight payload');
  return groups;
}

/** Ultralight single attribute topic (/ul/<k>/<i>/attrs/<attr>): the payload is the raw value. */
export function parseUltralightSingle(attr: string, payload: string | Uint8Array): MeasureGroup[] {
  const v = asText(payload);
  if (v.includes('|') || v.includes('#')) throw new PayloadError('single-attribute Ultralight value may not contain "|" or "#"');
  return [{ values: { [checkName(attr)]: v } }];
}

/** Ultralight command result: `<device>@<command>|<result>` (several separated by `#` or new lines). */
export function parseUltralightCommandResult(payload: string | Uint8Array): { device: string; command: string; result: string }[] {
  const text = asText(payload).trim();
  const out: { device: string; command: string; result: string }[] = [];
  for (const line of text.split(/[#\n]/)) {
    const l = line.trim();
    if (!l) continue;
    const m = /^([^@|]+)@([^|]+)\|?(.*)$/s.exec(l);
    if (!m) throw new PayloadError(`invalid Ultralight command result "${truncate(l)}"`);
    out.push({ device: m[1].trim(), command: m[2].trim(), result: m[3] });
  }
  if (out.length === 0) throw new PayloadError('empty Ultralight command result');
  return out;
}

/** Ultralight command sent to a device: `<device>@<command>|<value>` or `<device>@<command>|k=v|k2=v2` for objects. */
export function formatUltralightCommand(deviceId: string, command: string, value: unknown): string {
  let rest: string;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    rest = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join('|');
  } else if (Array.isArray(value)) rest = value.map(String).join('|');
  else rest = value === undefined || value === null ? '' : String(value);
  return rest === '' ? `${deviceId}@${command}` : `${deviceId}@${command}|${rest}`;
}

function checkName(k: string): string {
  if (!/^[^\s/#+]{1,256}$/.test(k) || k === '__proto__') throw new PayloadError(`invalid measure name "${truncate(k)}"`);
  return k;
}

function truncate(s: string, n = 60): string {
  return s.length > n ? s.slice(0, n) + '…' : s;
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new PayloadError('payload is not valid JSON');
  }
}

function jsonGroup(o: unknown, timestampKeys: string[]): MeasureGroup {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new PayloadError('each JSON measure group must be an object');
  const values: Record<string, unknown> = {};
  let observedAt: string | undefined;
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (timestampKeys.includes(k)) {
      const t = parseDeviceTime(v);
      if (!t) throw new PayloadError(`invalid timestamp in "${k}"`);
      observedAt = t;
      continue;
    }
    values[checkName(k)] = v;
  }
  if (Object.keys(values).length === 0) throw new PayloadError('JSON measure group has no measures');
  return observedAt ? { values, observedAt } : { values };
}

/** Keys read as the device timestamp of a JSON group (TimeInstant is the FIWARE convention). */
export const JSON_TIMESTAMP_KEYS = ['TimeInstant', 'timeInstant', 'observedAt'];

/** iotagent-json measures: a flat object, or an array of objects (multi-measure). */
export function parseJsonMeasures(payload: string | Uint8Array | unknown, timestampKeys = JSON_TIMESTAMP_KEYS): MeasureGroup[] {
  const v = typeof payload === 'string' || payload instanceof Uint8Array ? parseJsonText(asText(payload)) : payload;
  if (Array.isArray(v)) {
    if (v.length === 0) throw new PayloadError('empty JSON measure array');
    if (v.length > MAX_GROUPS) throw new PayloadError('too many measure groups');
    return v.map((g) => jsonGroup(g, timestampKeys));
  }
  return [jsonGroup(v, timestampKeys)];
}

/**
 * iotagent-json single attribute (/json/<k>/<i>/attrs/<attr>): a JSON value, an array of
 * `{timestamp, value}` (several observations), or, when not JSON, the raw text.
 */
export function parseJsonSingle(attr: string, payload: string | Uint8Array): MeasureGroup[] {
  const name = checkName(attr);
  const text = asText(payload);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [{ values: { [name]: text } }];
  }
  if (Array.isArray(v) && v.length > 0 && v.every((x) => x && typeof x === 'object' && 'value' in x && 'timestamp' in x)) {
    return v.map((x: { value: unknown; timestamp: unknown }) => {
      const t = parseDeviceTime(x.timestamp);
      if (!t) throw new PayloadError('invalid timestamp in single-attribute measure');
      return { values: { [name]: x.value }, observedAt: t };
    });
  }
  return [{ values: { [name]: v } }];
}

/** iotagent-json command result: `{"<command>": <result>, ...}` */
export function parseJsonCommandResult(payload: string | Uint8Array): { command: string; result: unknown }[] {
  const v = parseJsonText(asText(payload));
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PayloadError('command result must be a JSON object');
  const out = Object.entries(v as Record<string, unknown>).map(([command, result]) => ({ command: checkName(command), result }));
  if (out.length === 0) throw new PayloadError('empty command result');
  return out;
}

export function formatJsonCommand(command: string, value: unknown): string {
  return JSON.stringify({ [command]: value ?? '' });
}

/** MQTT topic of a southbound message, in FIWARE form. */
export interface ParsedTopic {
  /** json | ul; undefined for the legacy topics without protocol prefix (/<apikey>/<device>/attrs) */
  protocol?: 'json' | 'ul';
  apikey: string;
  deviceId: string;
  kind: 'attrs' | 'attr' | 'cmdexe' | 'configuration';
  attr?: string;
}

/** Topics: /json|ul/<apikey>/<device>/attrs[/<attr>], .../cmdexe (leading slash optional, legacy no-prefix form accepted). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] === '') parts.shift();
  let protocol: 'json' | 'ul' | undefined;
  if (parts[0] === 'json' || parts[0] === 'ul') {
    if (parts.length >= 4) protocol = parts.shift() as 'json' | 'ul';
  }
  const [apikey, deviceId, kind, attr, ...more] = parts;
  if (!apikey || !deviceId || !kind || more.length) return undefined;
  if (kind === 'attrs') return attr === undefined ? { protocol, apikey, deviceId, kind: 'attrs' } : attr ? { protocol, apikey, deviceId, kind: 'attr', attr } : undefined;
  if (kind === 'cmdexe' && attr === undefined) return { protocol, apikey, deviceId, kind: 'cmdexe' };
  if (kind === 'configuration' && attr === 'commands') return { protocol, apikey, deviceId, kind: 'configuration' };
  return undefined;
}

/** Topic on which a device receives its commands: /<apikey>/<device>/cmd (FIWARE). */
export function commandTopic(apikey: string, deviceId: string): string {
  return `/${apikey}/${deviceId}/cmd`;
}

/**
 * LoRaWAN network-server webhooks: ChirpStack v4 "up" events (HTTP integration, JSON encoding;
 * the legacy v3 JSON is accepted too) and The Things Stack v3 uplink messages. Both are reduced
 * to one shape: DevEUI, decoded measures, device time and radio metadata (RSSI/SNR/gateway).
 */
import { PayloadError, parseDeviceTime } from './payloads.ts';
import type { MeasureGroup } from './types.ts';

export interface LoraUplink {
  network: 'chirpstack' | 'tts';
  /** upper-case hex */
  devEui: string;
  /** decoded payload (codec output); undefined when the network server had no codec */
  decoded?: Record<string, unknown>;
  /** raw FRMPayload, base64 */
  raw?: string;
  fPort?: number;
  fCnt?: number;
  /** ISO time of reception by the network */
  time?: string;
  /** best gateway reception (highest RSSI) */
  rssi?: number;
  snr?: number;
  gatewayId?: string;
  gateways: { gatewayId?: string; rssi?: number; snr?: number }[];
  /** name of the device in the network server */
  deviceName?: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** DevEUI as hex; ChirpStack v3 "JSON" marshaler encodes bytes as base64. */
function euiOf(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  if (/^[0-9a-fA-F]{16}$/.test(v)) return v.toUpperCase();
  if (/^[A-Za-z0-9+/]{11}=$/.test(v)) {
    const b = Buffer.from(v, 'base64');
    if (b.length === 8) return b.toString('hex').toUpperCase();
  }
  return undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

function bestOf(gws: LoraUplink['gateways']): Pick<LoraUplink, 'rssi' | 'snr' | 'gatewayId'> {
  let best: LoraUplink['gateways'][number] | undefined;
  for (const g of gws) if (!best || (g.rssi ?? -Infinity) > (best.rssi ?? -Infinity)) best = g;
  return best ? { rssi: best.rssi, snr: best.snr, gatewayId: best.gatewayId } : {};
}

function flatDecoded(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new PayloadError('decoded payload must be a JSON object');
  return v;
}

/** ChirpStack v4 `up` event (`?event=up`), or the legacy v3 JSON uplink. */
export function parseChirpStackUp(body: unknown): LoraUplink {
  if (!isObj(body)) throw new PayloadError('ChirpStack event must be a JSON object');
  const di = isObj(body.deviceInfo) ? body.deviceInfo : undefined;
  const devEui = euiOf(di?.devEui ?? body.devEUI ?? body.devEui);
  if (!devEui) throw new PayloadError('ChirpStack event without a valid deviceInfo.devEui');
  let decoded: Record<string, unknown> | undefined;
  if (body.object !== undefined) decoded = flatDecoded(body.object);
  else if (typeof body.objectJSON === 'string' && body.objectJSON !== '') {
    try {
      decoded = flatDecoded(JSON.parse(body.objectJSON));
    } catch (e) {
      if (e instanceof PayloadError) throw e;
      throw new PayloadError('ChirpStack objectJSON is not valid JSON');
    }
  }
  const rx = Array.isArray(body.rxInfo) ? body.rxInfo : [];
  const gateways = rx.filter(isObj).map((r) => ({
    gatewayId: typeof r.gatewayId === 'string' ? r.gatewayId : euiOf(r.gatewayID)?.toLowerCase() ?? (typeof r.gatewayID === 'string' ? r.gatewayID : undefined),
    rssi: num(r.rssi),
    snr: num(r.snr ?? r.loRaSNR),
  }));
  const firstRxTime = rx.find((r) => isObj(r) && typeof r.time === 'string') as Record<string, unknown> | undefined;
  const time = parseDeviceTime(body.time) ?? parseDeviceTime(firstRxTime?.time) ?? parseDeviceTime(body.publishedAt);
  return {
    network: 'chirpstack',
    devEui,
    decoded,
    raw: typeof body.data === 'string' ? body.data : undefined,
    fPort: num(body.fPort),
    fCnt: num(body.fCnt),
    time,
    gateways,
    ...bestOf(gateways),
    deviceName: typeof di?.deviceName === 'string' ? di.deviceName : typeof body.deviceName === 'string' ? body.deviceName : undefined,
  };
}

/** The Things Stack v3 uplink message (webhook "uplink message" path). */
export function parseTtsUplink(body: unknown): LoraUplink {
  if (!isObj(body)) throw new PayloadError('TTS message must be a JSON object');
  const ids = isObj(body.end_device_ids) ? body.end_device_ids : undefined;
  const devEui = euiOf(ids?.dev_eui);
  if (!devEui) throw new PayloadError('TTS message without a valid end_device_ids.dev_eui');
  const up = body.uplink_message;
  if (!isObj(up)) throw new PayloadError('TTS message is not an uplink message (no uplink_message)');
  const decoded = flatDecoded(up.decoded_payload);
  const rx = Array.isArray(up.rx_metadata) ? up.rx_metadata : [];
  const gateways = rx.filter(isObj).map((r) => {
    const g = isObj(r.gateway_ids) ? r.gateway_ids : {};
    return {
      gatewayId: typeof g.gateway_id === 'string' ? g.gateway_id : typeof g.eui === 'string' ? g.eui : undefined,
      rssi: num(r.rssi ?? r.channel_rssi),
      snr: num(r.snr),
    };
  });
  const time = parseDeviceTime(up.received_at) ?? parseDeviceTime(body.received_at);
  return {
    network: 'tts',
    devEui,
    decoded,
    raw: typeof up.frm_payload === 'string' ? up.frm_payload : undefined,
    fPort: num(up.f_port),
    fCnt: num(up.f_cnt),
    time,
    gateways,
    ...bestOf(gateways),
    deviceName: typeof ids?.device_id === 'string' ? ids.device_id : undefined,
  };
}

/**
 * Measures of an uplink: the decoded object's scalar members become measures (nested objects are
 * kept as structured values). Without a decoded payload there is nothing to store.
 */
export function loraMeasures(u: LoraUplink): MeasureGroup[] {
  if (!u.decoded || Object.keys(u.decoded).length === 0)
    throw new PayloadError('uplink without a decoded payload (configure a payload codec in the network server)');
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(u.decoded)) {
    if (k === '__proto__' || /[\s/#+]/.test(k)) continue;
    values[k] = v;
  }
  return [u.time ? { values, observedAt: u.time } : { values }];
}

/** Radio metadata kept on the Device entity. */
export function loraMetadata(u: LoraUplink): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  if (u.rssi !== undefined) m.rssi = u.rssi;
  if (u.snr !== undefined) m.snr = u.snr;
  if (u.gatewayId !== undefined) m.gatewayId = u.gatewayId;
  if (u.fCnt !== undefined) m.fCnt = u.fCnt;
  if (u.fPort !== undefined) m.fPort = u.fPort;
  return m;
}

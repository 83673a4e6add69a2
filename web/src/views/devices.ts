/**
 * Device fleet: online / silent / faulty counts, last seen, battery (NGSI-LD `Device` entities) and
 * rejected payloads. The devices module (src/devices) keeps no list of rejected messages; it gives
 *   GET /iot/stats    counters: malformed payloads of known devices, and messages refused before a
 *                     device was known (rejected.unknown / badCredentials / revoked / forbidden)
 *   Device entities   `lastError` (observedAt = when) and `malformedMessages` of every device whose
 *                     last rejected payload is known (also per device: GET /iot/devices/{id}/status)
 * so the "recent rejected payloads" list is the devices with a `lastError`, newest first.
 */
import { getJson, queryKeyValues, NGSI, qs, shortKeys } from '../api.ts';
import { deviceState, STATE_COLOURS, STATE_LABELS, type StateKey } from '../entity-state.ts';
import { fmtBattery } from '../inspector.ts';
import { h, replace, relTime, fmtTime, fmtValue } from '../dom.ts';
import { t } from '../strings.ts';
import type { LiveChange } from '../live.ts';

/** IoT counters (devices module, GET /iot/stats) */
export const IOT_STATS_URL = '/iot/stats';
/** devices whose last payload was rejected, normalized (observedAt of lastError = when) */
export const REJECTED_DEVICES_URL = `${NGSI}/entities${qs({ type: 'Device', q: 'lastError', attrs: 'lastError,malformedMessages,name', limit: 100 })}`;

interface IotStats {
  malformed?: number;
  rejected?: { unknown?: number; revoked?: number; badCredentials?: number; forbidden?: number };
}

export interface RejectedRow {
  id: string;
  name: string;
  at: string | undefined;
  reason: string;
  count: number | undefined;
}

/** rows of the rejected-payload table from normalized Device entities (pure; unit-tested) */
export function rejectedRows(entities: Record<string, unknown>[]): RejectedRow[] {
  const val = (a: unknown): unknown => (a && typeof a === 'object' && !Array.isArray(a) ? (a as { value?: unknown }).value : a);
  const rows: RejectedRow[] = [];
  for (const raw of entities) {
    const e = shortKeys(raw);
    const le = (Array.isArray(e.lastError) ? e.lastError[0] : e.lastError) as { value?: unknown; observedAt?: string } | string | undefined;
    if (le === undefined || le === null) continue;
    const name = val(e.name);
    const n = Number(val(e.malformedMessages));
    rows.push({
      id: String(e.id),
      name: typeof name === 'string' ? name : String(e.id).split(':').pop() ?? String(e.id),
      at: typeof le === 'object' ? le.observedAt : undefined,
      reason: String(typeof le === 'object' ? le.value : le),
      count: Number.isFinite(n) ? n : undefined,
    });
  }
  return rows.sort((a, b) => String(b.at ?? '').localeCompare(String(a.at ?? '')));
}

type Dev = Record<string, unknown> & { id: string };

export class DevicesView {
  readonly el = h('section', { class: 'view devices-view', 'aria-labelledby': 'devices-h' });
  private counts = h('div', { class: 'fleet-counts' });
  private table = h('div', { class: 'table-wrap' });
  private rejected = h('div');
  private devices: Dev[] = [];
  private filter: StateKey | 'all' = 'all';
  private timer = 0;

  constructor(private opts: { onOpen(id: string): void }) {
    replace(
      this.el,
      h('h1', { id: 'devices-h' }, t('devicesTitle')),
      this.counts,
      h('section', { class: 'rejected-section', 'aria-labelledby': 'rej-h' }, h('h2', { id: 'rej-h' }, t('devRejected')), this.rejected),
      h('h2', { id: 'fleet-h' }, t('devList')),
      this.table,
    );
  }

  async load(): Promise<void> {
    try {
      this.devices = (await queryKeyValues({ type: 'Device' })) as Dev[];
    } catch (e) {
      replace(this.table, h('p', { class: 'error', role: 'alert' }, t('error', { msg: (e as Error).message })));
      return;
    }
    this.render();
    void this.loadRejected();
  }

  live(changes: LiveChange[]): void {
    if (!changes.some((c) => /(^|[/#:])Device$/.test(c.type))) return;
    let touched = false;
    for (const c of changes) {
      const d = this.devices.find((x) => x.id === c.id);
      if (d && c.values) {
        Object.assign(d, c.values);
        touched = true;
      } else if (!d) touched = true;
    }
    if (!touched) return;
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.render(), 500);
  }

  private render(): void {
    const now = Date.now();
    const st = new Map<Dev, StateKey>(this.devices.map((d) => [d, deviceState(d, now)]));
    const n = (k: StateKey) => [...st.values()].filter((s) => s === k).length;
    const chip = (k: StateKey | 'all', label: string, count: number) => {
      const b = h('button', { type: 'button', class: 'fleet-count', 'aria-pressed': this.filter === k ? 'true' : 'false', 'data-state': k },
        k !== 'all' ? h('span', { class: 'swatch', style: `background:${STATE_COLOURS[k]}` }) : null,
        h('span', { class: 'n' }, String(count)), h('span', { class: 'l' }, label));
      b.addEventListener('click', () => {
        this.filter = k;
        this.render();
      });
      return b;
    };
    replace(this.counts,
      h('div', { class: 'row wrap', role: 'group', 'aria-label': t('devFilter') },
        chip('all', t('devTotal'), this.devices.length), chip('online', t('devOnline'), n('online')),
        chip('silent', t('devSilent'), n('silent')), chip('faulty', t('devFaulty'), n('faulty'))));
    if (!this.devices.length) {
      replace(this.table, h('p', { class: 'muted' }, t('devEmpty')));
      return;
    }
    const rows = this.devices
      .filter((d) => this.filter === 'all' || st.get(d) === this.filter)
      .sort((a, b) => String(a.dateLastValueReported ?? '').localeCompare(String(b.dateLastValueReported ?? '')))
      .slice(0, 500);
    replace(this.table,
      h('table', { class: 'devices' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('devId')), h('th', { scope: 'col' }, t('devState')), h('th', { scope: 'col' }, t('devLastSeen')), h('th', { scope: 'col' }, t('devBattery')))),
        h('tbody', {}, rows.map((d) => {
          const s = st.get(d)!;
          return h('tr', { 'data-id': d.id },
            h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => this.opts.onOpen(d.id) }, String(d.name ?? d.id))),
            h('td', {}, h('span', { class: 'swatch', style: `background:${STATE_COLOURS[s]}` }), t(STATE_LABELS[s]), d.deviceState && String(d.deviceState).toLowerCase() !== s ? h('span', { class: 'muted' }, ` (${fmtValue(d.deviceState)})`) : null),
            h('td', { title: fmtTime(d.dateLastValueReported) }, d.dateLastValueReported ? t('ago', { v: relTime(d.dateLastValueReported, now) }) : t('never')),
            h('td', {}, batteryCell(d.batteryLevel)));
        }))));
  }

  private async loadRejected(): Promise<void> {
    const [stats, devs] = await Promise.all([
      getJson<IotStats>(IOT_STATS_URL).catch(() => null),
      getJson<Record<string, unknown>[]>(REJECTED_DEVICES_URL).catch(() => null),
    ]);
    const rows = devs ? rejectedRows(devs) : [];
    const r = stats?.rejected ?? {};
    const counters: [string, string, number | undefined][] = [
      ['malformed', t('rejMalformed'), stats?.malformed],
      ['unknown', t('rejUnknown'), r.unknown],
      ['badCredentials', t('rejBadCredentials'), r.badCredentials],
      ['revoked', t('rejRevoked'), r.revoked],
      ['forbidden', t('rejForbidden'), r.forbidden],
    ];
    replace(this.rejected,
      stats ? h('dl', { class: 'rejected-counters' },
        counters.map(([kind, label, n]) => h('div', { 'data-kind': kind, 'data-count': String(n ?? 0) }, h('dt', {}, label), h('dd', {}, String(n ?? 0))))) : null,
      rows.length === 0 ? h('p', { class: 'muted' }, t('devRejectedNone')) :
        h('table', { class: 'devices rejected' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('devId')), h('th', { scope: 'col' }, t('devReceived')), h('th', { scope: 'col' }, t('devReason')), h('th', { scope: 'col' }, t('rejCount')))),
          h('tbody', {}, rows.slice(0, 20).map((x) => h('tr', { 'data-id': x.id },
            h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => this.opts.onOpen(x.id) }, x.name)),
            h('td', { title: fmtTime(x.at) }, x.at ? t('ago', { v: relTime(x.at) }) : '—'),
            h('td', {}, x.reason),
            h('td', {}, x.count === undefined ? '—' : String(x.count)))))));
  }
}

function batteryCell(v: unknown): HTMLElement | string {
  if (v === undefined || v === null) return '—';
  const s = fmtBattery(v);
  const n = parseInt(s, 10);
  return h('span', { class: Number.isFinite(n) && n < 15 ? 'battery low' : 'battery' }, s);
}

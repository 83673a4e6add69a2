/**
 * Device fleet: online / silent / faulty counts, last seen, battery (NGSI-LD `Device` entities) and
 * recent rejected payloads (IoT API).
 */
import { getJson, queryKeyValues } from '../api.ts';
import { deviceState, STATE_COLOURS, STATE_LABELS, type StateKey } from '../entity-state.ts';
import { fmtBattery } from '../inspector.ts';
import { h, replace, relTime, fmtTime, fmtValue } from '../dom.ts';
import { t } from '../strings.ts';
import type { LiveChange } from '../live.ts';

/** where the IoT layer lists recently rejected payloads (first one that answers wins) */
export const REJECTED_URLS = ['/iot/rejected?limit=20', '/iot/v1/rejected?limit=20', '/iot/payloads/rejected?limit=20'];

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
      this.table,
      h('section', { 'aria-labelledby': 'rej-h' }, h('h2', { id: 'rej-h' }, t('devRejected')), this.rejected),
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
            h('td', {}, h('span', { class: 'swatch', style: `background:${STATE_COLOURS[s]}` }), t(STATE_LABELS[s]), d.deviceState ? h('span', { class: 'muted' }, ` (${fmtValue(d.deviceState)})`) : null),
            h('td', { title: fmtTime(d.dateLastValueReported) }, d.dateLastValueReported ? t('ago', { v: relTime(d.dateLastValueReported, now) }) : t('never')),
            h('td', {}, batteryCell(d.batteryLevel)));
        }))));
  }

  private async loadRejected(): Promise<void> {
    for (const url of REJECTED_URLS) {
      try {
        const r = await getJson<unknown>(url);
        const list = (Array.isArray(r) ? r : ((r as { rejected?: unknown[]; items?: unknown[] }).rejected ?? (r as { items?: unknown[] }).items ?? [])) as Record<string, unknown>[];
        replace(this.rejected, list.length === 0 ? h('p', { class: 'muted' }, t('devRejectedNone')) :
          h('table', { class: 'devices' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('devId')), h('th', { scope: 'col' }, t('devReceived')), h('th', { scope: 'col' }, t('devReason')))),
            h('tbody', {}, list.slice(0, 20).map((x) => h('tr', {},
              h('td', {}, fmtValue(x.deviceId ?? x.device ?? x.device_id)),
              h('td', {}, fmtTime(x.at ?? x.receivedAt ?? x.time)),
              h('td', {}, fmtValue(x.reason ?? x.error ?? x.detail)))))));
        return;
      } catch {
        /* try the next one */
      }
    }
    replace(this.rejected, h('p', { class: 'muted' }, t('devRejectedNone')));
  }
}

function batteryCell(v: unknown): HTMLElement | string {
  if (v === undefined || v === null) return '—';
  const s = fmtBattery(v);
  const n = parseInt(s, 10);
  return h('span', { class: Number.isFinite(n) && n < 15 ? 'battery low' : 'battery' }, s);
}

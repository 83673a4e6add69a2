/**
 * Alarms panel: active (and acknowledged) Smart Data Models `Alert` entities by severity, with
 * acknowledge / clear (rules API) and a jump to the source entity on the map.
 */
import { queryKeyValues, request, ApiError } from '../api.ts';
import { isActiveAlert, severityRank } from '../entity-state.ts';
import { h, replace, relTime, fmtTime, announce } from '../dom.ts';
import { t, type StringKey } from '../strings.ts';
import type { LiveChange } from '../live.ts';

export type Alert = Record<string, unknown> & { id: string };

const SEV_LABEL: Record<string, StringKey> = {
  critical: 'sevCritical',
  high: 'sevHigh',
  medium: 'sevMedium',
  low: 'sevLow',
  informational: 'sevInformational',
};

export async function loadActiveAlerts(): Promise<Alert[]> {
  let all: Record<string, unknown>[];
  try {
    all = await queryKeyValues({ type: 'Alert', q: 'status!="cleared"' });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 400) throw e;
    all = await queryKeyValues({ type: 'Alert' });
  }
  return (all as Alert[])
    .filter(isActiveAlert)
    .sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || String(b.dateIssued ?? '').localeCompare(String(a.dateIssued ?? '')));
}

export class AlarmsView {
  readonly el = h('section', { class: 'view alarms-view', 'aria-labelledby': 'alarms-h' });
  private list = h('div', { class: 'table-wrap' });
  private summary = h('div', { class: 'sev-summary', 'aria-live': 'polite' });
  private alerts: Alert[] = [];
  private timer = 0;
  /** active count listeners (nav badge) */
  onCount: (n: number) => void = () => {};

  constructor(private opts: { onJump(entityId: string): void }) {
    replace(this.el, h('h1', { id: 'alarms-h' }, t('alarmsTitle')), this.summary, this.list);
  }

  async load(): Promise<void> {
    try {
      this.alerts = await loadActiveAlerts();
      this.render();
    } catch (e) {
      replace(this.list, h('p', { class: 'error', role: 'alert' }, t('error', { msg: (e as Error).message })));
    }
  }

  /** live changes: refetch when an Alert changed (debounced) */
  live(changes: LiveChange[]): void {
    if (!changes.some((c) => /(^|[/#:])Alert$/.test(c.type))) return;
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.load(), 250);
  }

  private render(): void {
    const counts = new Map<string, number>();
    for (const a of this.alerts) counts.set(String(a.severity), (counts.get(String(a.severity)) ?? 0) + 1);
    this.onCount(this.alerts.filter((a) => String(a.status ?? 'active') === 'active').length);
    replace(
      this.summary,
      Object.keys(SEV_LABEL).map((s) => h('span', { class: `sev-chip sev-${s}` }, `${t(SEV_LABEL[s])}: ${counts.get(s) ?? 0}`)),
    );
    if (this.alerts.length === 0) {
      replace(this.list, h('p', { class: 'muted empty' }, t('alarmsEmpty')));
      return;
    }
    replace(
      this.list,
      h('table', { class: 'alarms' },
        h('caption', { class: 'sr-only' }, t('alarmsTitle')),
        h('thead', {}, h('tr', {}, ...(['severity', 'category', 'source', 'issued', 'status', 'actions'] as StringKey[]).map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', {}, this.alerts.map((a) => this.row(a)))),
    );
  }

  private row(a: Alert): HTMLElement {
    const sev = String(a.severity ?? 'informational');
    const status = String(a.status ?? 'active');
    const source = typeof a.alertSource === 'string' ? a.alertSource : (a.alertSource as { object?: string } | undefined)?.object;
    const ack = h('button', { type: 'button', class: 'btn small', 'data-action': 'ack', disabled: status !== 'active' }, t('acknowledge'));
    const clr = h('button', { type: 'button', class: 'btn small secondary', 'data-action': 'clear' }, t('clear'));
    ack.addEventListener('click', () => void this.act(a, 'ack', ack));
    clr.addEventListener('click', () => void this.act(a, 'clear', clr));
    return h('tr', { class: `alarm status-${status}`, 'data-id': a.id },
      h('td', {}, h('span', { class: `sev-chip sev-${sev}` }, t(SEV_LABEL[sev] ?? 'sevInformational'))),
      h('td', {}, String(a.category ?? '—'), a.subCategory ? h('div', { class: 'muted' }, String(a.subCategory)) : null,
        a.description ? h('div', { class: 'desc' }, String(a.description)) : null),
      h('td', {}, source ? h('button', { type: 'button', class: 'link', 'data-action': 'jump', onclick: () => this.opts.onJump(source), 'aria-label': `${t('jumpTo')} ${source}` }, source) : '—'),
      h('td', { title: fmtTime(a.dateIssued) }, t('ago', { v: relTime(a.dateIssued) })),
      h('td', {}, status),
      h('td', { class: 'actions' }, ack, clr),
    );
  }

  private async act(a: Alert, action: 'ack' | 'clear', btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    try {
      await request(`/rules/v1/alarms/${encodeURIComponent(a.id)}/${action}`, { method: 'POST', body: {} });
      if (action === 'clear') this.alerts = this.alerts.filter((x) => x.id !== a.id);
      else a.status = 'acknowledged';
      announce(t(action === 'ack' ? 'alarmAcked' : 'alarmCleared', { id: a.id }));
      this.render();
    } catch (e) {
      btn.disabled = false;
      announce(t('error', { msg: (e as Error).message }));
      alert(t('error', { msg: (e as Error).message }));
    }
  }
}

/**
 * Alarms panel: active (and acknowledged) Smart Data Models `Alert` entities by severity, with
 * acknowledge / clear (rules API) and a jump to the source entity on the map.
 */
import { queryKeyValues, request } from '../api.ts';
import { isActiveAlert, severityRank, alertStatus } from '../entity-state.ts';
import { isoOf } from '../dom.ts';
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
  // filtered here rather than with q=status!="cleared": `status` is a reserved core term, so the
  // Alert's SDM `status` only resolves with the writer's @context, which the dashboard does not know
  const all = await queryKeyValues({ type: 'Alert' });
  return (all as Alert[])
    .filter(isActiveAlert)
    .sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || (isoOf(b.dateIssued) ?? '').localeCompare(isoOf(a.dateIssued) ?? ''));
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
    this.onCount(this.alerts.filter((a) => alertStatus(a) === 'active').length);
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
    const status = alertStatus(a);
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
      // rules module: POST /rules/v1/alarms/{id}/acknowledge | /clear (src/rules/api.ts)
      await request(`/rules/v1/alarms/${encodeURIComponent(a.id)}/${action === 'ack' ? 'acknowledge' : 'clear'}`, { method: 'POST', body: {} });
      if (action === 'clear') this.alerts = this.alerts.filter((x) => x.id !== a.id);
      else a.alarmStatus = 'acknowledged';
      announce(t(action === 'ack' ? 'alarmAcked' : 'alarmCleared', { id: a.id }));
      this.render();
    } catch (e) {
      btn.disabled = false;
      announce(t('error', { msg: (e as Error).message }));
      btn.title = t('error', { msg: (e as Error).message });
    }
  }
}

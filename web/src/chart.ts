/** History chart (uPlot) for one attribute of one entity, with time-range presets. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { temporalSeries, type Series } from './api.ts';
import { h, replace } from './dom.ts';
import { t, type StringKey } from './strings.ts';

export interface RangePreset {
  key: string;
  label: StringKey;
  ms: number;
  /** aggregation period (ISO 8601 duration) */
  period: string;
}

export const PRESETS: RangePreset[] = [
  { key: '1h', label: 'range1h', ms: 3600e3, period: 'PT5M' },
  { key: '24h', label: 'range24h', ms: 24 * 3600e3, period: 'PT1H' },
  { key: '7d', label: 'range7d', ms: 7 * 24 * 3600e3, period: 'PT6H' },
  { key: '30d', label: 'range30d', ms: 30 * 24 * 3600e3, period: 'P1D' },
];

export class HistoryChart {
  readonly el = h('section', { class: 'history', 'aria-labelledby': 'history-h' });
  private plot: uPlot | null = null;
  private plotEl = h('div', { class: 'plot', role: 'img' });
  private status = h('p', { class: 'muted', 'aria-live': 'polite' });
  private preset = PRESETS[1];
  private attr = '';
  private seq = 0;

  constructor(private entityId: string, private numericAttrs: string[]) {
    this.attr = numericAttrs[0] ?? '';
    this.render();
  }

  private render(): void {
    if (!this.attr) {
      replace(this.el, h('h3', { id: 'history-h' }, t('history')), h('p', { class: 'muted' }, t('historyNoNumeric')));
      return;
    }
    const sel = h('select', { id: 'history-attr' }, this.numericAttrs.map((a) => h('option', { value: a, selected: a === this.attr }, a)));
    sel.addEventListener('change', () => {
      this.attr = sel.value;
      void this.load();
    });
    const presets = h(
      'div',
      { class: 'segmented', role: 'radiogroup', 'aria-label': t('historyRange') },
      PRESETS.map((p) => {
        const b = h('button', { type: 'button', role: 'radio', 'aria-checked': p === this.preset ? 'true' : 'false', 'data-range': p.key }, t(p.label));
        b.addEventListener('click', () => {
          this.preset = p;
          for (const x of presets.querySelectorAll('button')) x.setAttribute('aria-checked', x === b ? 'true' : 'false');
          void this.load();
        });
        return b;
      }),
    );
    replace(
      this.el,
      h('h3', { id: 'history-h' }, t('history')),
      h('div', { class: 'row wrap' }, h('label', { for: 'history-attr' }, t('historyAttr')), sel, presets),
      this.plotEl,
      this.status,
    );
    void this.load();
  }

  async load(): Promise<void> {
    const seq = ++this.seq;
    const to = new Date();
    const from = new Date(to.getTime() - this.preset.ms);
    this.status.textContent = t('loading');
    let s: Series;
    try {
      s = await temporalSeries(this.entityId, this.attr, from, to, this.preset.period);
    } catch (e) {
      if (seq === this.seq) this.status.textContent = t('error', { msg: (e as Error).message });
      return;
    }
    if (seq !== this.seq) return;
    this.status.textContent = s.t.length === 0 ? t('historyEmpty') : s.aggregated ? '' : s.rawReason === 'short' ? t('historyShort') : t('historyRaw');
    this.el.dataset.points = String(s.v.filter((x) => x !== null).length);
    this.el.dataset.mode = s.aggregated ? 'avg' : 'raw';
    this.plotEl.setAttribute('aria-label', `${t('history')}: ${this.attr}, ${t(this.preset.label)}, ${s.t.length} points`);
    this.draw(s, from, to);
  }

  private draw(s: Series, from: Date, to: Date): void {
    const width = Math.max(260, this.plotEl.clientWidth || this.el.clientWidth || 340);
    const opts: uPlot.Options = {
      width,
      height: 200,
      scales: { x: { time: true, min: from.getTime() / 1000, max: to.getTime() / 1000 } },
      legend: { show: true },
      axes: [
        { stroke: '#c8d1da', grid: { stroke: '#2c3e50' }, ticks: { stroke: '#2c3e50' } },
        { stroke: '#c8d1da', grid: { stroke: '#2c3e50' }, ticks: { stroke: '#2c3e50' }, size: 50 },
      ],
      series: [
        {},
        { label: `${this.attr}${s.aggregated ? ' (avg)' : ''}`, stroke: '#5dade2', width: 2, fill: 'rgba(93,173,226,0.15)', spanGaps: false, points: { show: s.t.length < 60 } },
      ],
    };
    this.plot?.destroy();
    this.plot = new uPlot(opts, [s.t, s.v], this.plotEl);
  }

  destroy(): void {
    this.seq++;
    this.plot?.destroy();
    this.plot = null;
  }
}

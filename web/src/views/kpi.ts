/**
 * KPI scorecard: U4SSC dimension scores with bands, drill-down to each KPI's value history, target
 * and provenance, and download of the KPI report (/kpi/v1/scores, /values, /reports).
 */
import uPlot from 'uplot';
import { getJson, request, qs, ApiError } from '../api.ts';
import { h, replace, fmtValue, fmtTime } from '../dom.ts';
import { t, type StringKey } from '../strings.ts';
import { BANDS, bandOf, periodStart } from '../kpi-bands.ts';

interface Group {
  name: string;
  percent: number | null;
  band: number | null;
  bandLabel?: string | null;
  scored?: number;
  reported?: number;
  total?: number;
  subDimensions?: Group[];
  categories?: (Group & { codes?: string[] })[];
}
interface Item {
  code: string;
  dataPoint: string;
  value: number | null;
  target: number | null;
  share: number | null;
  points: number | null;
  polarity?: string | null;
  excluded?: string;
  name?: string;
}
interface Scorecard {
  period?: string;
  overall?: Group;
  dimensions: Group[];
  items: Item[];
}
interface KpiValue {
  code: string;
  period: string;
  dataPoint?: string;
  value: number | null;
  unit?: string | null;
  method?: string;
  source?: string | null;
  quality?: string | null;
  enteredBy?: string | null;
  verifiedBy?: string | null;
  note?: string | null;
  computedAt?: string;
  inputs?: unknown;
}

function normalizeScorecard(x: unknown): Scorecard {
  const o = (x ?? {}) as Record<string, unknown>;
  const sc = (Array.isArray(o.dimensions) ? o : (o.scorecard ?? o.scores ?? o)) as Record<string, unknown>;
  return {
    period: (o.period ?? sc.period) as string | undefined,
    overall: sc.overall as Group | undefined,
    dimensions: (Array.isArray(sc.dimensions) ? sc.dimensions : []) as Group[],
    items: (Array.isArray(sc.items) ? sc.items : []) as Item[],
  };
}

export class KpiView {
  readonly el = h('section', { class: 'view kpi-view', 'aria-labelledby': 'kpi-h' });
  private cards = h('div', { class: 'kpi-grid' });
  private detail = h('div', { class: 'kpi-detail', 'aria-live': 'polite' });
  private sc: Scorecard | null = null;
  private plot: uPlot | null = null;
  private names = new Map<string, string>();

  constructor() {
    const dl = (fmt: 'html' | 'csv' | 'json') =>
      h('button', { type: 'button', class: 'btn small secondary', 'data-format': fmt, onclick: () => void this.download(fmt) }, fmt.toUpperCase());
    replace(
      this.el,
      h('div', { class: 'row spread' },
        h('h1', { id: 'kpi-h' }, t('kpiTitle')),
        h('div', { class: 'row', role: 'group', 'aria-label': t('kpiDownload') }, h('span', { class: 'muted' }, t('kpiDownload')), dl('html'), dl('csv'), dl('json'))),
      this.cards,
      this.detail,
    );
  }

  async load(): Promise<void> {
    replace(this.cards, h('p', { class: 'muted' }, t('loading')));
    try {
      const [sc, defs] = await Promise.all([
        getJson('/kpi/v1/scores'),
        getJson<{ code: string; name: string }[]>('/kpi/v1/definitions').catch(() => []),
      ]);
      this.sc = normalizeScorecard(sc);
      if (Array.isArray(defs)) for (const d of defs) if (d?.code) this.names.set(d.code, d.name);
    } catch (e) {
      const msg = e instanceof ApiError && e.status === 404 ? t('kpiUnavailable') : t('error', { msg: (e as Error).message });
      replace(this.cards, h('p', { class: 'error' }, msg));
      return;
    }
    this.render();
  }

  private bandBadge(g: { percent: number | null; band?: number | null }): HTMLElement {
    const b = g.band ?? bandOf(g.percent);
    const info = b ? BANDS[b] : null;
    return h('span', { class: `band ${info?.cls ?? 'band-none'}`, title: info?.range ?? '' }, info ? t(info.label) : t('bandNone'));
  }

  private render(): void {
    const sc = this.sc!;
    if (!sc.dimensions.length) {
      replace(this.cards, h('p', { class: 'muted' }, t('kpiEmpty')));
      return;
    }
    const overall = sc.overall
      ? h('article', { class: 'kpi-card overall' },
          h('h2', {}, sc.overall.name || 'Overall', sc.period ? h('span', { class: 'muted' }, ` · ${sc.period}`) : null),
          h('p', { class: 'score' }, sc.overall.percent === null ? '—' : `${sc.overall.percent.toFixed(0)} %`),
          this.bandBadge(sc.overall))
      : null;
    replace(
      this.cards,
      overall,
      sc.dimensions.map((d) =>
        h('article', { class: 'kpi-card', 'data-dimension': d.name },
          h('h2', {}, d.name),
          h('p', { class: 'score', 'aria-label': `${t('kpiScore')} ${d.percent ?? '—'} %` }, d.percent === null ? '—' : `${d.percent.toFixed(0)} %`),
          this.bandBadge(d),
          h('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': d.percent ?? 0, 'aria-label': d.name },
            h('span', { style: `width:${Math.min(100, d.percent ?? 0)}%` })),
          d.scored !== undefined ? h('p', { class: 'muted small' }, t('kpiScoredOf', { n: d.scored, total: d.total ?? '?' })) : null,
          this.kpiList(d))),
    );
  }

  private kpiList(d: Group): HTMLElement {
    const codes = new Set<string>();
    for (const sd of d.subDimensions ?? []) for (const c of sd.categories ?? []) for (const code of c.codes ?? []) codes.add(code);
    const items = this.sc!.items.filter((i) => codes.has(i.code));
    const byCode = new Map<string, Item[]>();
    for (const i of items) byCode.set(i.code, [...(byCode.get(i.code) ?? []), i]);
    const details = h('details', {},
      h('summary', {}, `${byCode.size} KPI`),
      h('ul', { class: 'kpi-items' },
        [...byCode.entries()].map(([code, its]) => {
          const pts = its.map((i) => i.points).filter((p): p is number => p !== null);
          const b = pts.length ? Math.round(pts.reduce((a, p) => a + p, 0) / pts.length) : null;
          return h('li', {},
            h('span', { class: `dot ${b ? BANDS[b].cls : 'band-none'}`, 'aria-hidden': 'true' }),
            h('button', { type: 'button', class: 'link', 'data-kpi': code, onclick: () => void this.drill(code) }, `${code} ${its[0].name ?? this.names.get(code) ?? ''}`.trim()));
        })));
    return details;
  }

  private async drill(code: string): Promise<void> {
    const items = this.sc?.items.filter((i) => i.code === code) ?? [];
    replace(this.detail, h('p', { class: 'muted' }, t('loading')));
    let values: KpiValue[] = [];
    try {
      const r = await getJson<KpiValue[] | { values?: KpiValue[] }>(`/kpi/v1/values${qs({ code })}`);
      values = (Array.isArray(r) ? r : (r.values ?? [])).filter((v) => v.code === code);
    } catch (e) {
      replace(this.detail, h('p', { class: 'error' }, t('error', { msg: (e as Error).message })));
      return;
    }
    values.sort((a, b) => a.period.localeCompare(b.period));
    const latest = values[values.length - 1];
    const plotEl = h('div', { class: 'plot', role: 'img', 'aria-label': `${t('kpiHistory')} ${code}` });
    replace(
      this.detail,
      h('h2', { tabindex: '-1', id: 'kpi-detail-h' }, code, this.names.get(code) ? h('span', { class: 'muted' }, ` · ${this.names.get(code)}`) : null),
      h('table', { class: 'attrs' },
        h('thead', {}, h('tr', {}, ...(['kpiName', 'kpiValue', 'kpiTarget', 'kpiBand'] as StringKey[]).map((k) => h('th', { scope: 'col' }, t(k))))),
        h('tbody', {}, items.map((i) => h('tr', {},
          h('th', { scope: 'row' }, i.dataPoint || code),
          h('td', {}, fmtValue(i.value), latest?.unit ? ` ${latest.unit}` : ''),
          h('td', {}, fmtValue(i.target), i.polarity ? h('span', { class: 'muted' }, ` (${i.polarity})`) : null),
          h('td', {}, i.points ? this.bandBadge({ percent: null, band: i.points }) : h('span', { class: 'muted' }, i.excluded ?? '—')))))),
      h('h3', {}, t('kpiHistory')),
      plotEl,
      h('h3', {}, t('kpiProvenance')),
      latest
        ? h('dl', { class: 'prov' },
            ...([['method', latest.method], ['source', latest.source], ['quality', latest.quality], ['enteredBy', latest.enteredBy],
              ['verifiedBy', latest.verifiedBy], ['note', latest.note], [t('kpiUpdated'), fmtTime(latest.computedAt)], ['period', latest.period]] as [string, unknown][])
              .filter(([, v]) => v !== undefined && v !== null && v !== '')
              .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, fmtValue(v))]),
            latest.inputs ? [h('dt', {}, 'inputs'), h('dd', {}, h('code', {}, fmtValue(latest.inputs)))] : null)
        : h('p', { class: 'muted' }, t('none')),
    );
    (document.getElementById('kpi-detail-h') as HTMLElement | null)?.focus();
    this.plot?.destroy();
    const headline = values.filter((v) => !v.dataPoint);
    const series = headline.length ? headline : values;
    if (series.length) {
      const xs = series.map((v) => periodStart(v.period) / 1000);
      const ys = series.map((v) => v.value);
      const target = items.find((i) => !i.dataPoint)?.target ?? items[0]?.target ?? null;
      this.plot = new uPlot(
        {
          width: Math.max(280, Math.min(720, this.detail.clientWidth || 600)),
          height: 200,
          scales: { x: { time: true } },
          axes: [{ stroke: '#c8d1da', grid: { stroke: '#2c3e50' } }, { stroke: '#c8d1da', grid: { stroke: '#2c3e50' }, size: 55 }],
          series: [{}, { label: code, stroke: '#5dade2', width: 2, points: { show: true } },
            ...(target !== null ? [{ label: t('kpiTarget'), stroke: '#2ecc71', dash: [6, 4] }] : [])],
        },
        target !== null ? [xs, ys, xs.map(() => target)] : [xs, ys],
        plotEl,
      );
    }
  }

  private async download(fmt: 'html' | 'csv' | 'json'): Promise<void> {
    try {
      const res = await request(`/kpi/v1/reports${qs({ format: fmt })}`, { accept: fmt === 'html' ? 'text/html' : fmt === 'csv' ? 'text/csv' : 'application/json' });
      const blob = await res.blob();
      const a = h('a', { href: URL.createObjectURL(blob), download: `urbis-kpi-report.${fmt}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (e) {
      replace(this.detail, h('p', { class: 'error', role: 'alert' }, t('error', { msg: (e as Error).message })));
    }
  }
}


/**
 * Entity inspector: attributes, navigable relationships, devices behind the entity and a history
 * chart, from GET /ngsi-ld/v1/entities/{id} (normalized) and the temporal API.
 */
import { getEntity, queryKeyValues, ApiError } from './api.ts';
import { HistoryChart } from './chart.ts';
import { h, replace, fmtValue, fmtTime, relTime, unitLabel } from './dom.ts';
import { t } from './strings.ts';
import { deviceState, STATE_COLOURS, STATE_LABELS } from './entity-state.ts';

interface Attr {
  name: string;
  type: string;
  value: unknown;
  targets: string[];
  observedAt?: string;
  unitCode?: string;
  datasetId?: string;
}

const SKIP = new Set(['id', 'type', '@context', 'scope', 'createdAt', 'modifiedAt']);

export function attrsOf(entity: Record<string, unknown>): Attr[] {
  const out: Attr[] = [];
  for (const [name, raw] of Object.entries(entity)) {
    if (SKIP.has(name)) continue;
    for (const inst of Array.isArray(raw) ? raw : [raw]) {
      if (!inst || typeof inst !== 'object') {
        out.push({ name, type: 'Property', value: inst, targets: [] });
        continue;
      }
      const o = inst as Record<string, unknown>;
      const type = String(o.type ?? 'Property');
      const targets =
        type === 'Relationship' ? [o.object].flat().filter((x): x is string => typeof x === 'string')
        : type === 'ListRelationship' ? ((o.objectList ?? []) as unknown[]).map((x) => (typeof x === 'object' && x ? (x as { object?: string }).object : x)).filter((x): x is string => typeof x === 'string')
        : [];
      const value = o.value ?? o.languageMap ?? o.vocab ?? o.json ?? o.valueList ?? (targets.length ? targets : undefined);
      out.push({ name, type, value, targets, observedAt: o.observedAt as string | undefined, unitCode: o.unitCode as string | undefined, datasetId: o.datasetId as string | undefined });
    }
  }
  return out;
}

export class Inspector {
  readonly el = h('aside', { class: 'inspector', 'aria-labelledby': 'inspector-h', tabindex: '-1' });
  private stack: string[] = [];
  private current: string | null = null;
  private chart: HistoryChart | null = null;
  private body = h('div', { class: 'inspector-body' });
  private attrsEl = h('div');
  private refreshTimer = 0;

  constructor(private opts: { onShowOnMap(id: string): void; onClose(): void }) {
    this.renderEmpty();
  }

  get currentId(): string | null {
    return this.current;
  }

  private header(title: string, ...extra: (Node | null)[]): HTMLElement {
    const closeBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('close'), onclick: () => this.close() }, '×');
    const backBtn = this.stack.length > 1 ? h('button', { type: 'button', class: 'btn secondary small', onclick: () => this.back() }, `← ${t('back')}`) : null;
    return h('header', { class: 'inspector-head' }, h('h2', { id: 'inspector-h' }, title), ...extra, backBtn, closeBtn);
  }

  private renderEmpty(): void {
    replace(this.el, this.header(t('inspectorTitle')), h('p', { class: 'muted' }, t('inspectorEmpty')));
  }

  close(): void {
    this.chart?.destroy();
    this.chart = null;
    this.current = null;
    this.stack = [];
    this.renderEmpty();
    this.opts.onClose();
  }

  back(): void {
    this.stack.pop();
    const prev = this.stack.pop();
    if (prev) void this.open(prev);
  }

  async open(id: string): Promise<void> {
    if (this.stack[this.stack.length - 1] !== id) this.stack.push(id);
    this.current = id;
    this.chart?.destroy();
    this.chart = null;
    replace(this.el, this.header(t('inspectorTitle')), h('p', { class: 'muted' }, t('loading')));
    let entity: Record<string, unknown>;
    try {
      entity = await getEntity(id);
    } catch (e) {
      if (this.current !== id) return;
      const msg = e instanceof ApiError && e.status === 404 ? t('notFound', { id }) : t('error', { msg: (e as Error).message });
      replace(this.el, this.header(t('inspectorTitle')), h('p', { class: 'error', role: 'alert' }, msg));
      return;
    }
    if (this.current !== id) return;
    const attrs = attrsOf(entity);
    const name = attrs.find((a) => a.name === 'name')?.value;
    const type = String([entity.type].flat()[0] ?? '');
    replace(this.attrsEl, this.attrTable(attrs));
    const numeric = [...new Set(attrs.filter((a) => a.type === 'Property' && typeof a.value === 'number').map((a) => a.name))];
    this.chart = new HistoryChart(id, numeric);
    replace(
      this.body,
      h('p', { class: 'entity-id' }, h('span', { class: 'badge' }, type), ' ', h('code', {}, id)),
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'btn small', onclick: () => this.opts.onShowOnMap(id) }, t('openOnMap'))),
      h('section', { 'aria-labelledby': 'attrs-h' }, h('h3', { id: 'attrs-h' }, t('attributes')), this.attrsEl),
      this.relationships(attrs),
      this.devicesSection(id, attrs),
      this.chart.el,
    );
    replace(this.el, this.header(typeof name === 'string' ? name : id), this.body);
    this.el.focus({ preventScroll: true });
  }

  /** called for live changes of the open entity: refresh the attribute table only */
  liveUpdate(id: string): void {
    if (id !== this.current) return;
    clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(async () => {
      try {
        const e = await getEntity(id);
        if (this.current === id) {
          replace(this.attrsEl, this.attrTable(attrsOf(e)));
          this.attrsEl.classList.add('flash');
          setTimeout(() => this.attrsEl.classList.remove('flash'), 800);
        }
      } catch {
        /* next update will retry */
      }
    }, 300);
  }

  private attrTable(attrs: Attr[]): HTMLElement {
    const rows = attrs.filter((a) => a.targets.length === 0).sort((a, b) => (a.name === 'name' ? -1 : b.name === 'name' ? 1 : a.name.localeCompare(b.name)));
    return h(
      'table',
      { class: 'attrs' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('attrName')), h('th', { scope: 'col' }, t('attrValue')), h('th', { scope: 'col' }, t('attrObserved')))),
      h('tbody', {},
        rows.map((a) =>
          h('tr', { 'data-attr': a.name },
            h('th', { scope: 'row' }, a.name, a.datasetId ? h('span', { class: 'muted' }, ` [${a.datasetId}]`) : null),
            h('td', {}, a.type === 'GeoProperty' ? geoSummary(a.value) : fmtValue(a.value), a.unitCode ? h('span', { class: 'muted', title: a.unitCode }, ` ${unitLabel(a.unitCode)}`) : null),
            h('td', { title: fmtTime(a.observedAt) }, a.observedAt ? t('ago', { v: relTime(a.observedAt) }) : '—'),
          ))),
    );
  }

  private relationships(attrs: Attr[]): HTMLElement | null {
    const rels = attrs.filter((a) => a.targets.length > 0);
    if (!rels.length) return null;
    return h(
      'section',
      { 'aria-labelledby': 'rels-h' },
      h('h3', { id: 'rels-h' }, t('relationships')),
      h('ul', { class: 'rels' },
        rels.map((r) => h('li', {}, h('span', { class: 'rel-name' }, r.name), ' → ',
          r.targets.map((target) => h('button', { type: 'button', class: 'link', 'data-target': target, onclick: () => void this.open(target) }, target))))),
    );
  }

  private devicesSection(id: string, attrs: Attr[]): HTMLElement {
    const list = h('ul', { class: 'devices-behind' }, h('li', { class: 'muted' }, t('loading')));
    void (async () => {
      const ids = new Set<string>(attrs.filter((a) => /^refDevice/i.test(a.name) || a.name === 'hasDevice').flatMap((a) => a.targets));
      const devices: Record<string, unknown>[] = [];
      try {
        devices.push(...(await queryKeyValues({ type: 'Device', q: `controlledAsset=="${id}"` })));
      } catch {
        /* broker without list-equality support: fall back to relationships only */
      }
      for (const d of devices) ids.delete(String(d.id));
      for (const did of ids) {
        try {
          devices.push(...(await queryKeyValues({ id: did })));
        } catch {
          /* ignore */
        }
      }
      if (this.current !== id) return;
      replace(
        list,
        devices.length === 0 ? h('li', { class: 'muted' }, t('none')) : null,
        devices.map((d) => {
          const s = deviceState(d);
          return h('li', {},
            h('span', { class: 'swatch', style: `background:${STATE_COLOURS[s]}` }),
            h('button', { type: 'button', class: 'link', onclick: () => void this.open(String(d.id)) }, String(d.name ?? d.id)),
            h('span', { class: 'muted' }, ` ${t(STATE_LABELS[s])} · ${t('devLastSeen')}: ${relTime(d.dateLastValueReported)}`,
              d.batteryLevel !== undefined ? ` · ${t('devBattery')}: ${fmtBattery(d.batteryLevel)}` : ''));
        }),
      );
    })();
    return h('section', { 'aria-labelledby': 'devs-h' }, h('h3', { id: 'devs-h' }, t('devicesBehind')), list);
  }
}

export function fmtBattery(v: unknown): string {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) return '—';
  return `${Math.round(n <= 1 ? n * 100 : n)}%`;
}

function geoSummary(v: unknown): string {
  const g = v as { type?: string; coordinates?: unknown };
  if (g?.type === 'Point' && Array.isArray(g.coordinates)) return `Point ${(g.coordinates as number[]).map((x) => x.toFixed(5)).join(', ')}`;
  return g?.type ?? fmtValue(v);
}

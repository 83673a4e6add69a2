/**
 * Live map: the city's own GeoJSON (offline base) or configured online tiles, one clustered GeoJSON
 * source per entity type (layer toggles), points coloured by state, search, area filter.
 */
import type { Map as MlMap, GeoJSONSource, StyleSpecification, MapLayerMouseEvent } from 'maplibre-gl';
import { maplibregl } from './maplibre.ts';
import { AreaDrawer } from './draw.ts';
import { store, type Entity } from '../store.ts';
import { config } from '../config.ts';
import { legendFor, stateOf, STATE_COLOURS, STATE_LABELS } from '../entity-state.ts';
import { pointInRing, bboxOf, type Pos } from '../geo.ts';
import { h, replace, announce } from '../dom.ts';
import { t } from '../strings.ts';

const TYPE_PALETTE = ['#5dade2', '#af7ac5', '#f5b041', '#48c9b0', '#ec7063', '#f4d03f', '#85c1e9', '#a3e4d7', '#f8c471', '#d7bde2'];

export interface MapViewOpts {
  onSelect(id: string): void;
}

export class MapView {
  map!: MlMap;
  private drawer!: AreaDrawer;
  private area: Pos[] | null = null;
  private visible = new Map<string, boolean>();
  private typeColour = new Map<string, string>();
  private layersEl = h('div', { class: 'layers' });
  private areaEl = h('div', { class: 'area-result', 'aria-live': 'polite' });
  private countEl = h('p', { class: 'muted', 'aria-live': 'polite' });
  private ready: Promise<void>;
  private selected: string | null = null;
  private styleReady = false;

  constructor(private container: HTMLElement, private sidebar: HTMLElement, private opts: MapViewOpts) {
    this.buildSidebar();
    this.ready = this.init();
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  private async init(): Promise<void> {
    const style = baseStyle();
    this.map = new maplibregl.Map({
      container: this.container,
      style,
      center: config.center,
      zoom: config.zoom,
      ...(config.bounds ? { bounds: config.bounds, fitBoundsOptions: { padding: 16 } } : {}),
      attributionControl: config.attribution ? { compact: true } : false,
      fadeDuration: 0,
      canvasContextAttributes: { preserveDrawingBuffer: true },
    });
    this.map.getCanvas().setAttribute('aria-label', t('mapLabel'));
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
    this.map.addControl(new maplibregl.ScaleControl({}), 'bottom-left');
    await new Promise<void>((r) => (this.map.loaded() ? r() : this.map.once('load', () => r())));
    performance.mark('urbis:map-load');
    if (config.tileUrl && config.tileType === 'vector') addCityLayers(this.map, true);
    this.map.addSource('selected', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    this.map.addLayer({ id: 'selected', type: 'circle', source: 'selected', paint: { 'circle-radius': 13, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#ffd400', 'circle-stroke-width': 3 } });
    this.drawer = new AreaDrawer(this.map);
    this.styleReady = true;
    store.onTypesChanged((types) => this.refresh(types));
    this.refresh(new Set(store.types));
    void this.districtLabels();
  }

  private async districtLabels(): Promise<void> {
    try {
      const fc = (await (await fetch('/data/santander.geojson')).json()) as GeoJSON.FeatureCollection;
      for (const f of fc.features) {
        if (f.properties?.kind !== 'label') continue;
        const el = h('div', { class: 'district-label', 'aria-hidden': 'true' }, String(f.properties.name ?? ''));
        new maplibregl.Marker({ element: el }).setLngLat((f.geometry as GeoJSON.Point).coordinates as [number, number]).addTo(this.map);
      }
    } catch {
      /* labels are cosmetic */
    }
  }

  private colourOf(type: string): string {
    let c = this.typeColour.get(type);
    if (!c) {
      c = TYPE_PALETTE[this.typeColour.size % TYPE_PALETTE.length];
      this.typeColour.set(type, c);
    }
    return c;
  }

  private features(type: string): GeoJSON.FeatureCollection {
    const now = Date.now();
    const features: GeoJSON.Feature[] = [];
    for (const e of store.byType.get(type)?.values() ?? []) {
      if (!e.pos) continue;
      if (this.area && !pointInRing(e.pos, this.area)) continue;
      const s = stateOf(type, e.props, now);
      features.push({
        type: 'Feature',
        geometry: { type: 'Point', coordinates: e.pos },
        properties: { id: e.id, name: typeof e.props.name === 'string' ? e.props.name : '', _s: s, _c: STATE_COLOURS[s] },
      });
    }
    return { type: 'FeatureCollection', features };
  }

  /** (re)build sources for the given types */
  private refresh(types: Set<string>): void {
    if (!this.styleReady) return;
    for (const type of types) {
      const src = `ent-${type}`;
      const data = this.features(type);
      const existing = this.map.getSource(src) as GeoJSONSource | undefined;
      if (existing) existing.setData(data);
      else if (data.features.length > 0) {
        if (this.typeColour.size === 0) performance.mark('urbis:first-entities');
        this.addTypeLayers(type, data);
      }
    }
    if (this.selected) this.highlight(this.selected);
    this.renderLayerList();
    this.countEl.textContent = t('entitiesLoaded', { n: store.size });
    if (this.area) this.renderArea();
  }

  private addTypeLayers(type: string, data: GeoJSON.FeatureCollection): void {
    const src = `ent-${type}`;
    const colour = this.colourOf(type);
    const vis = this.visible.get(type) ?? true ? 'visible' : 'none';
    this.visible.set(type, vis === 'visible');
    this.map.addSource(src, { type: 'geojson', data, cluster: true, clusterMaxZoom: 14, clusterRadius: 45 });
    this.map.addLayer(
      {
        id: `${src}-clusters`,
        type: 'circle',
        source: src,
        filter: ['has', 'point_count'],
        layout: { visibility: vis },
        paint: {
          'circle-color': colour,
          'circle-opacity': 0.75,
          'circle-radius': ['step', ['get', 'point_count'], 12, 20, 16, 100, 22, 500, 28],
          'circle-stroke-color': '#ffffff',
          'circle-stroke-width': 1.5,
        },
      },
      'selected',
    );
    this.map.addLayer(
      {
        id: `${src}-points`,
        type: 'circle',
        source: src,
        filter: ['!', ['has', 'point_count']],
        layout: { visibility: vis },
        paint: {
          'circle-color': ['get', '_c'],
          'circle-radius': ['interpolate', ['linear'], ['zoom'], 10, 4, 16, 8],
          'circle-stroke-color': colour,
          'circle-stroke-width': 2,
        },
      },
      'selected',
    );
    this.map.on('click', `${src}-points`, (e: MapLayerMouseEvent) => {
      if (this.drawer.active) return;
      const id = e.features?.[0]?.properties?.id;
      if (typeof id === 'string') this.opts.onSelect(id);
    });
    this.map.on('click', `${src}-clusters`, async (e: MapLayerMouseEvent) => {
      if (this.drawer.active) return;
      const f = e.features?.[0];
      if (!f) return;
      const zoom = await (this.map.getSource(src) as GeoJSONSource).getClusterExpansionZoom(f.properties?.cluster_id as number);
      this.map.easeTo({ center: (f.geometry as GeoJSON.Point).coordinates as [number, number], zoom });
    });
    for (const l of [`${src}-points`, `${src}-clusters`]) {
      this.map.on('mouseenter', l, () => !this.drawer.active && (this.map.getCanvas().style.cursor = 'pointer'));
      this.map.on('mouseleave', l, () => !this.drawer.active && (this.map.getCanvas().style.cursor = ''));
    }
  }

  private setVisible(type: string, on: boolean): void {
    this.visible.set(type, on);
    for (const suffix of ['clusters', 'points']) {
      const id = `ent-${type}-${suffix}`;
      if (this.map.getLayer(id)) this.map.setLayoutProperty(id, 'visibility', on ? 'visible' : 'none');
    }
  }

  // ---------- sidebar ----------

  private buildSidebar(): void {
    const input = h('input', {
      type: 'search',
      id: 'map-search',
      placeholder: t('searchPlaceholder'),
      autocomplete: 'off',
      role: 'combobox',
      'aria-expanded': 'false',
      'aria-controls': 'search-results',
      'aria-autocomplete': 'list',
    });
    const results = h('ul', { id: 'search-results', role: 'listbox', class: 'search-results', 'aria-label': t('searchLabel') });
    let matches: Entity[] = [];
    let active = -1;
    const renderResults = () => {
      replace(
        results,
        matches.map((e, i) =>
          h(
            'li',
            { role: 'option', id: `sr-${i}`, 'aria-selected': i === active ? 'true' : 'false', onclick: () => choose(e) },
            h('span', { class: 'sr-name' }, String(e.props.name ?? e.id)),
            h('span', { class: 'sr-meta' }, `${e.type} · ${e.id}`),
          ),
        ),
        input.value && matches.length === 0 ? h('li', { class: 'muted' }, t('searchNoMatch')) : null,
      );
      input.setAttribute('aria-expanded', matches.length ? 'true' : 'false');
      if (active >= 0) input.setAttribute('aria-activedescendant', `sr-${active}`);
      else input.removeAttribute('aria-activedescendant');
    };
    const choose = (e: Entity) => {
      matches = [];
      active = -1;
      input.value = '';
      renderResults();
      this.opts.onSelect(e.id);
    };
    input.addEventListener('input', () => {
      matches = store.search(input.value);
      active = -1;
      renderResults();
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'ArrowDown' && matches.length) { active = (active + 1) % matches.length; renderResults(); ev.preventDefault(); }
      else if (ev.key === 'ArrowUp' && matches.length) { active = (active - 1 + matches.length) % matches.length; renderResults(); ev.preventDefault(); }
      else if (ev.key === 'Enter' && matches.length) choose(matches[Math.max(active, 0)]);
      else if (ev.key === 'Escape') { matches = []; renderResults(); }
    });

    const drawBtn = h('button', { type: 'button', class: 'btn', id: 'draw-area' }, t('drawArea'));
    const clearBtn = h('button', { type: 'button', class: 'btn secondary', id: 'clear-area', disabled: true }, t('clearArea'));
    const hint = h('p', { class: 'hint', hidden: true }, t('drawHint'));
    drawBtn.addEventListener('click', async () => {
      await this.ready;
      hint.hidden = false;
      announce(t('drawHint'));
      drawBtn.setAttribute('aria-pressed', 'true');
      const ring = await this.drawer.start();
      drawBtn.removeAttribute('aria-pressed');
      hint.hidden = true;
      if (ring) {
        this.setArea(ring);
        clearBtn.disabled = false;
      }
    });
    clearBtn.addEventListener('click', () => {
      this.setArea(null);
      clearBtn.disabled = true;
      drawBtn.focus();
    });

    replace(
      this.sidebar,
      h('div', { class: 'field' }, h('label', { for: 'map-search' }, t('searchLabel')), input, results),
      h('section', { 'aria-labelledby': 'layers-h' }, h('h2', { id: 'layers-h' }, t('layers')), this.countEl, this.layersEl),
      h('section', { class: 'area-tools' }, h('div', { class: 'row' }, drawBtn, clearBtn), hint, this.areaEl),
    );
  }

  private renderLayerList(): void {
    const types = store.types.filter((ty) => [...(store.byType.get(ty)?.values() ?? [])].some((e) => e.pos));
    replace(
      this.layersEl,
      types.map((type) => {
        const id = `layer-${type}`;
        const cb = h('input', { type: 'checkbox', id, checked: this.visible.get(type) ?? true });
        cb.addEventListener('change', () => this.setVisible(type, cb.checked));
        const n = store.byType.get(type)?.size ?? 0;
        return h(
          'div',
          { class: 'layer' },
          h('div', { class: 'layer-head' },
            cb,
            h('label', { for: id, 'aria-label': t('layerToggle', { type }) },
              h('span', { class: 'swatch ring', style: `border-color:${this.colourOf(type)}` }),
              `${type} `, h('span', { class: 'muted' }, `(${n})`))),
          h('ul', { class: 'legend', 'aria-label': `${t('legend')} ${type}` },
            legendFor(type).map((s) => h('li', {}, h('span', { class: 'swatch', style: `background:${STATE_COLOURS[s]}` }), t(STATE_LABELS[s])))),
        );
      }),
    );
  }

  private setArea(ring: Pos[] | null): void {
    this.area = ring;
    this.drawer.show(ring);
    this.refresh(new Set(store.types));
    if (!ring) replace(this.areaEl);
  }

  private renderArea(): void {
    if (!this.area) return;
    const inside: Entity[] = [];
    for (const e of store.byId.values()) if (e.pos && (this.visible.get(e.type) ?? true) && pointInRing(e.pos, this.area)) inside.push(e);
    replace(
      this.areaEl,
      h('p', { class: 'area-count' }, t('inArea', { n: inside.length })),
      h('ul', { class: 'entity-list' },
        inside.slice(0, 100).map((e) =>
          h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => this.opts.onSelect(e.id) }, String(e.props.name ?? e.id), h('span', { class: 'muted' }, ` ${e.type}`))))),
    );
  }

  // ---------- selection ----------

  private highlight(id: string | null): void {
    const src = this.map?.getSource('selected') as GeoJSONSource | undefined;
    const e = id ? store.get(id) : undefined;
    src?.setData({ type: 'FeatureCollection', features: e?.pos ? [{ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: e.pos } }] : [] });
  }

  /** highlight an entity and bring it into view */
  async focus(id: string, fly = true): Promise<void> {
    await this.ready;
    this.selected = id;
    this.highlight(id);
    const e = store.get(id);
    if (e?.pos && fly) {
      this.map.easeTo({ center: e.pos, zoom: Math.max(this.map.getZoom(), 15.5), duration: 600 });
    }
  }

  /** fit the view to all loaded entities */
  fitAll(): void {
    const b = bboxOf([...store.byId.values()].flatMap((e) => (e.pos ? [e.pos] : [])));
    if (b) this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, duration: 0, maxZoom: 15 });
  }

  resize(): void {
    this.map?.resize();
  }
}

function baseStyle(): StyleSpecification | string {
  if (config.tileUrl && config.tileType === 'vector') return config.tileUrl;
  const style: StyleSpecification = {
    version: 8,
    sources: { city: { type: 'geojson', data: '/data/santander.geojson' } },
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#16283a' } }],
  };
  if (config.tileUrl) {
    style.sources.tiles = { type: 'raster', tiles: [config.tileUrl], tileSize: 256, attribution: config.attribution || undefined };
    style.layers.push({ id: 'tiles', type: 'raster', source: 'tiles' });
  }
  const withTiles = !!config.tileUrl;
  style.layers.push(
    { id: 'land', type: 'fill', source: 'city', filter: ['==', ['get', 'kind'], 'land'], paint: { 'fill-color': '#2b3440', 'fill-opacity': withTiles ? 0 : 1 } },
    { id: 'districts', type: 'fill', source: 'city', filter: ['==', ['get', 'kind'], 'district'], paint: { 'fill-color': ['get', 'fill'], 'fill-opacity': withTiles ? 0.08 : 0.35 } },
    { id: 'district-lines', type: 'line', source: 'city', filter: ['==', ['get', 'kind'], 'district'], paint: { 'line-color': '#8fa3b8', 'line-width': 1, 'line-dasharray': [3, 2] } },
    { id: 'coast', type: 'line', source: 'city', filter: ['==', ['get', 'kind'], 'land'], paint: { 'line-color': '#7fb3d5', 'line-width': 1.5 } },
    { id: 'roads', type: 'line', source: 'city', filter: ['==', ['get', 'kind'], 'road'], paint: { 'line-color': '#5d6d7e', 'line-width': ['interpolate', ['linear'], ['zoom'], 11, 1, 16, 4] } },
  );
  return style;
}

/** city layers over a vector style (online mode) */
function addCityLayers(map: MlMap, overlay: boolean): void {
  if (!map.getSource('city')) map.addSource('city', { type: 'geojson', data: '/data/santander.geojson' });
  map.addLayer({ id: 'district-lines', type: 'line', source: 'city', filter: ['==', ['get', 'kind'], 'district'], paint: { 'line-color': overlay ? '#34495e' : '#8fa3b8', 'line-width': 1.5, 'line-dasharray': [3, 2] } });
}

/** Draw a polygon on the map: click to add corners, double-click / Enter to finish, Escape to cancel. */
import type { Map as MlMap, MapMouseEvent, GeoJSONSource } from 'maplibre-gl';
import type { Pos } from '../geo.ts';

export class AreaDrawer {
  private pts: Pos[] = [];
  active = false;
  private resolve: ((ring: Pos[] | null) => void) | null = null;

  constructor(private map: MlMap) {
    map.addSource('draw', { type: 'geojson', data: empty() });
    map.addLayer({ id: 'draw-fill', type: 'fill', source: 'draw', filter: ['==', ['geometry-type'], 'Polygon'], paint: { 'fill-color': '#f7dc6f', 'fill-opacity': 0.15 } });
    map.addLayer({ id: 'draw-line', type: 'line', source: 'draw', paint: { 'line-color': '#f7dc6f', 'line-width': 2, 'line-dasharray': [2, 1] } });
    map.addLayer({ id: 'draw-pts', type: 'circle', source: 'draw', filter: ['==', ['geometry-type'], 'Point'], paint: { 'circle-radius': 4, 'circle-color': '#f7dc6f' } });
  }

  /** resolves with the closed ring, or null when cancelled */
  start(): Promise<Pos[] | null> {
    this.cancel();
    this.active = true;
    this.pts = [];
    this.map.doubleClickZoom.disable();
    this.map.getCanvas().style.cursor = 'crosshair';
    this.map.on('click', this.onClick);
    this.map.on('dblclick', this.onDbl);
    window.addEventListener('keydown', this.onKey);
    return new Promise((r) => (this.resolve = r));
  }

  /** show a finished area (or none) */
  show(ring: Pos[] | null): void {
    this.pts = ring ? ring.slice(0, -1) : [];
    this.render(true);
  }

  cancel(): void {
    if (this.active) this.finish(null);
  }

  private onClick = (e: MapMouseEvent) => {
    this.pts.push([e.lngLat.lng, e.lngLat.lat]);
    this.render(false);
  };
  private onDbl = (e: MapMouseEvent) => {
    e.preventDefault();
    this.complete();
  };
  private onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') this.finish(null);
    else if (e.key === 'Enter') this.complete();
  };

  private complete(): void {
    // a double-click also fired two clicks: drop the duplicate corner
    const pts = this.pts.filter((p, i, a) => i === 0 || Math.abs(p[0] - a[i - 1][0]) + Math.abs(p[1] - a[i - 1][1]) > 1e-9);
    if (pts.length < 3) return this.finish(null);
    this.pts = pts;
    this.finish([...pts, pts[0]]);
  }

  private finish(ring: Pos[] | null): void {
    this.active = false;
    this.map.off('click', this.onClick);
    this.map.off('dblclick', this.onDbl);
    window.removeEventListener('keydown', this.onKey);
    this.map.getCanvas().style.cursor = '';
    setTimeout(() => this.map.doubleClickZoom.enable(), 300);
    if (!ring) this.pts = [];
    this.render(!!ring);
    const r = this.resolve;
    this.resolve = null;
    r?.(ring);
  }

  private render(closed: boolean): void {
    const src = this.map.getSource('draw') as GeoJSONSource | undefined;
    if (!src) return;
    const f: GeoJSON.Feature[] = this.pts.map((p) => ({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: p } }));
    if (this.pts.length >= 2) {
      f.push(
        closed && this.pts.length >= 3
          ? { type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [[...this.pts, this.pts[0]]] } }
          : { type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: this.pts } },
      );
    }
    src.setData({ type: 'FeatureCollection', features: f });
  }
}

function empty(): GeoJSON.FeatureCollection {
  return { type: 'FeatureCollection', features: [] };
}

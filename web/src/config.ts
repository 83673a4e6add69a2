/**
 * Runtime settings of the dashboard, from GET /dashboard-config.json (served by the dashboard
 * module from environment variables) with URL overrides (?tiles=...&tileType=raster|vector).
 */
export interface DashboardConfig {
  /** raster tile URL template ({z}/{x}/{y}) or vector style/TileJSON URL; empty = offline base */
  tileUrl: string;
  tileType: 'raster' | 'vector';
  attribution: string;
  center: [number, number];
  zoom: number;
  /** initial view (overrides center/zoom): [[west, south], [east, north]] */
  bounds?: [[number, number], [number, number]];
  /** true when the platform requires sign-in */
  auth: boolean;
  city: string;
}

export const defaults: DashboardConfig = {
  tileUrl: '',
  tileType: 'raster',
  attribution: '',
  center: [-3.8099, 43.4623], // Santander
  zoom: 12.5,
  bounds: [[-3.895, 43.432], [-3.762, 43.492]], // Santander
  auth: false,
  city: 'Santander',
};

export let config: DashboardConfig = { ...defaults };

export async function loadConfig(): Promise<DashboardConfig> {
  try {
    const r = await fetch('/dashboard-config.json', { cache: 'no-store' });
    if (r.ok) config = { ...defaults, ...((await r.json()) as Partial<DashboardConfig>) };
  } catch {
    /* offline defaults */
  }
  const u = new URLSearchParams(location.search);
  const tiles = u.get('tiles');
  if (tiles !== null) config.tileUrl = tiles;
  const tt = u.get('tileType');
  if (tt === 'raster' || tt === 'vector') config.tileType = tt;
  return config;
}

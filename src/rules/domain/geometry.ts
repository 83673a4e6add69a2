/**
 * Small geometry helpers for geofence rules (pure): point-in-polygon on [lon, lat] rings, great-circle
 * distance, polygon validation. Entity geometries other than Point are judged by their vertices
 * (inside = every vertex inside; intersects = some vertex inside), which is enough for fences around
 * moving assets reported as points.
 */
type Pos = [number, number];
type Ring = Pos[];

export function validatePolygon(g: { type: string; coordinates: unknown }): string | undefined {
  const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : undefined;
  if (!Array.isArray(polys) || polys.length === 0) return `geometry must be a GeoJSON Polygon or MultiPolygon`;
  for (const poly of polys) {
    if (!Array.isArray(poly) || poly.length === 0) return `a polygon needs at least one ring`;
    for (const ring of poly) {
      if (!Array.isArray(ring) || ring.length < 4) return `a polygon ring needs at least 4 positions (closed)`;
      for (const p of ring) {
        if (!Array.isArray(p) || p.length < 2 || !p.every((x) => typeof x === 'number' && Number.isFinite(x)))
          return `bad position ${JSON.stringify(p)} (expected [longitude, latitude])`;
        if (Math.abs(p[0]) > 180 || Math.abs(p[1]) > 90) return `position ${JSON.stringify(p)} is out of range`;
      }
      const a = ring[0];
      const b = ring[ring.length - 1];
      if (a[0] !== b[0] || a[1] !== b[1]) return `a polygon ring must be closed (first position = last position)`;
    }
  }
  return undefined;
}

function inRing(p: Pos, ring: Ring): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function pointInPolygon(p: Pos, g: { type: string; coordinates: unknown }): boolean {
  const polys = (g.type === 'Polygon' ? [g.coordinates] : g.coordinates) as Ring[][];
  for (const poly of polys) {
    if (!inRing(p, poly[0])) continue;
    let inHole = false;
    for (let h = 1; h < poly.length; h++) if (inRing(p, poly[h])) inHole = true;
    if (!inHole) return true;
  }
  return false;
}

/** metres between two [lon, lat] positions (haversine) */
export function distanceM(a: Pos, b: Pos): number {
  const R = 6_371_008.8;
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLon = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** all positions of a GeoJSON geometry */
export function positions(g: { type: string; coordinates: unknown }): Pos[] {
  const out: Pos[] = [];
  const walk = (c: unknown) => {
    if (!Array.isArray(c)) return;
    if (typeof c[0] === 'number' && typeof c[1] === 'number') out.push([c[0], c[1]]);
    else c.forEach(walk);
  };
  walk(g.coordinates);
  return out;
}

export function geometryMatches(
  rel: string,
  entityGeom: { type: string; coordinates: unknown },
  query: { type: string; coordinates: unknown },
  opts: { maxDistance?: number; minDistance?: number } = {},
): boolean {
  const pts = positions(entityGeom);
  if (pts.length === 0) return false;
  if (query.type === 'Point') {
    const q = query.coordinates as Pos;
    const d = Math.min(...pts.map((p) => distanceM(p, q)));
    if (rel === 'near') return opts.maxDistance !== undefined ? d <= opts.maxDistance : d >= (opts.minDistance ?? 0);
    if (rel === 'equals' || rel === 'intersects') return d === 0;
    if (rel === 'disjoint') return d > 0;
    return false;
  }
  const inside = pts.map((p) => pointInPolygon(p, query));
  switch (rel) {
    case 'within':
      return inside.every(Boolean);
    case 'intersects':
    case 'overlaps':
      return inside.some(Boolean);
    case 'disjoint':
      return !inside.some(Boolean);
    default:
      return false;
  }
}

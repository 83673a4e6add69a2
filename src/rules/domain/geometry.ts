/**
 * Small geometry helpers for geofence rules (pure): point-in-polygon on [lon, lat] rings and polygon
 * validation. An entity geometry other than a Point counts as inside when one of its vertices is,
 * which is enough for fences around moving assets reported as points.
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

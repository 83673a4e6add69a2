/** Pure geometry helpers for the map (no DOM). Coordinates are [lon, lat]. */
export type Pos = [number, number];

/** A representative point for any GeoJSON geometry (bbox centre for lines/polygons). */
export function representativePoint(g: { type: string; coordinates?: unknown; geometries?: unknown[] } | null | undefined): Pos | null {
  if (!g) return null;
  if (g.type === 'Point') {
    const c = g.coordinates as number[];
    return Array.isArray(c) && Number.isFinite(c[0]) && Number.isFinite(c[1]) ? [c[0], c[1]] : null;
  }
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  const walk = (c: unknown): void => {
    if (Array.isArray(c) && typeof c[0] === 'number' && typeof c[1] === 'number') {
      minX = Math.min(minX, c[0]); maxX = Math.max(maxX, c[0]);
      minY = Math.min(minY, c[1]); maxY = Math.max(maxY, c[1]);
    } else if (Array.isArray(c)) for (const x of c) walk(x);
  };
  if (g.type === 'GeometryCollection') for (const x of g.geometries ?? []) walk((x as { coordinates?: unknown }).coordinates);
  else walk(g.coordinates);
  return minX === Infinity ? null : [(minX + maxX) / 2, (minY + maxY) / 2];
}

/** Ray-casting point-in-polygon over a single ring (closed or not). */
export function pointInRing(p: Pos, ring: Pos[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function bboxOf(points: Pos[]): [number, number, number, number] | null {
  if (points.length === 0) return null;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const [x, y] of points) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x);
    minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  return [minX, minY, maxX, maxY];
}

/**
 * Planar topology on lon/lat (internal to geo/).
 *
 * Edges are straight lines in lon/lat, as RFC 7946 3.1.1 defines them, so planar math is the
 * faithful model for topology; only distances (distance.ts) are spherical. No antimeridian
 * wrapping here: RFC 7946 3.1.9 asks producers to cut geometries that cross it.
 *
 * A point counts as on a boundary when it is within EPS degrees (about 0.1 mm) of it, so
 * positions that came from the same JSON text but went through an interpolation still meet.
 */
import type { Geometry, Position } from './geojson.ts';

export const EPS = 1e-9;

/** A geometry flattened by dimension; arrays alias the input coordinates (no copying). */
export interface Shape {
  points: Position[];
  lines: Position[][];
  polys: Position[][][];
  /** highest dimension present: 0 points, 1 lines, 2 polygons */
  dim: 0 | 1 | 2;
}

const NONE: never[] = [];

export function shapeOf(g: Geometry): Shape {
  switch (g.type) {
    case 'Point': return { points: [g.coordinates], lines: NONE, polys: NONE, dim: 0 };
    case 'MultiPoint': return { points: g.coordinates, lines: NONE, polys: NONE, dim: 0 };
    case 'LineString': return { points: NONE, lines: [g.coordinates], polys: NONE, dim: 1 };
    case 'MultiLineString': return { points: NONE, lines: g.coordinates, polys: NONE, dim: 1 };
    case 'Polygon': return { points: NONE, lines: NONE, polys: [g.coordinates], dim: 2 };
    case 'MultiPolygon': return { points: NONE, lines: NONE, polys: g.coordinates, dim: 2 };
    case 'GeometryCollection': {
      const s: Shape = { points: [], lines: [], polys: [], dim: 0 };
      for (const sub of g.geometries) {
        const t = shapeOf(sub);
        for (const p of t.points) s.points.push(p);
        for (const l of t.lines) s.lines.push(l);
        for (const p of t.polys) s.polys.push(p);
      }
      s.dim = s.polys.length > 0 ? 2 : s.lines.length > 0 ? 1 : 0;
      return s;
    }
  }
}

const cache = new WeakMap<object, Shape>();

/** shapeOf, memoised per geometry object: for query geometries, evaluated once per event each. */
export function cachedShapeOf(g: Geometry): Shape {
  let s = cache.get(g);
  if (s === undefined) {
    s = shapeOf(g);
    cache.set(g, s);
  }
  return s;
}

export const OUTSIDE = 0;
export const BOUNDARY = 1;
export const INSIDE = 2;
export type Location = 0 | 1 | 2;

/** Cross product (b - a) x (p - a): > 0 when p is left of a->b. */
export function orient(ax: number, ay: number, bx: number, by: number, px: number, py: number): number {
  return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

/** Whether p lies on segment ab (within EPS degrees). */
export function onSegment(ax: number, ay: number, bx: number, by: number, px: number, py: number): boolean {
  const minX = ax < bx ? ax : bx;
  const maxX = ax < bx ? bx : ax;
  const minY = ay < by ? ay : by;
  const maxY = ay < by ? by : ay;
  if (px < minX - EPS || px > maxX + EPS || py < minY - EPS || py > maxY + EPS) return false;
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  if (len2 === 0) return Math.abs(px - ax) <= EPS && Math.abs(py - ay) <= EPS;
  const c = dx * (py - ay) - dy * (px - ax);
  // |c| / |ab| is the distance of p from the line through a and b.
  return c * c <= EPS * EPS * len2;
}

/** Whether closed segments ab and cd share at least one point. */
export function segmentsIntersect(
  ax: number, ay: number, bx: number, by: number,
  cx: number, cy: number, dx: number, dy: number,
): boolean {
  if ((ax < bx ? ax : bx) > (cx > dx ? cx : dx) + EPS) return false;
  if ((ax > bx ? ax : bx) < (cx < dx ? cx : dx) - EPS) return false;
  if ((ay < by ? ay : by) > (cy > dy ? cy : dy) + EPS) return false;
  if ((ay > by ? ay : by) < (cy < dy ? cy : dy) - EPS) return false;
  const d1 = orient(cx, cy, dx, dy, ax, ay);
  const d2 = orient(cx, cy, dx, dy, bx, by);
  const d3 = orient(ax, ay, bx, by, cx, cy);
  const d4 = orient(ax, ay, bx, by, dx, dy);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  return onSegment(cx, cy, dx, dy, ax, ay) || onSegment(cx, cy, dx, dy, bx, by) ||
    onSegment(ax, ay, bx, by, cx, cy) || onSegment(ax, ay, bx, by, dx, dy);
}

/** Location of a point relative to one ring, even-odd rule (so self-intersecting rings still answer). */
function locateInRing(x: number, y: number, ring: Position[]): Location {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
    if (onSegment(xj, yj, xi, yi, x, y)) return BOUNDARY;
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside ? INSIDE : OUTSIDE;
}

export function locateInPolygon(x: number, y: number, rings: Position[][]): Location {
  const shell = locateInRing(x, y, rings[0]);
  if (shell !== INSIDE) return shell;
  for (let h = 1; h < rings.length; h++) {
    const r = locateInRing(x, y, rings[h]);
    if (r === BOUNDARY) return BOUNDARY;
    if (r === INSIDE) return OUTSIDE;
  }
  return INSIDE;
}

function locateOnLine(x: number, y: number, line: Position[]): Location {
  const n = line.length;
  let hit = false;
  for (let i = 1; i < n; i++) {
    if (onSegment(line[i - 1][0], line[i - 1][1], line[i][0], line[i][1], x, y)) { hit = true; break; }
  }
  if (!hit) return OUTSIDE;
  const a = line[0], b = line[n - 1];
  const closed = a[0] === b[0] && a[1] === b[1];
  // OGC: the boundary of an open line is its two end points; a closed line has none.
  // (The mod-2 rule for MultiLineString end points shared by several lines is not applied.)
  if (!closed && (near(x, y, a) || near(x, y, b))) return BOUNDARY;
  return INSIDE;
}

function near(x: number, y: number, p: Position): boolean {
  return Math.abs(x - p[0]) <= EPS && Math.abs(y - p[1]) <= EPS;
}

/** Location of a point relative to the union of a shape's parts. */
export function locate(x: number, y: number, s: Shape): Location {
  let res: Location = OUTSIDE;
  for (let i = 0; i < s.polys.length; i++) {
    const r = locateInPolygon(x, y, s.polys[i]);
    if (r === INSIDE) return INSIDE;
    if (r === BOUNDARY) res = BOUNDARY;
  }
  for (let i = 0; i < s.lines.length; i++) {
    const r = locateOnLine(x, y, s.lines[i]);
    if (r === INSIDE) return INSIDE;
    if (r === BOUNDARY) res = BOUNDARY;
  }
  for (let i = 0; i < s.points.length; i++) if (near(x, y, s.points[i])) return INSIDE;
  return res;
}

/** Whether the two shapes share at least one point (boundaries included). */
export function shapesIntersect(a: Shape, b: Shape): boolean {
  for (const p of a.points) if (locate(p[0], p[1], b) !== OUTSIDE) return true;
  for (const p of b.points) if (locate(p[0], p[1], a) !== OUTSIDE) return true;
  if (a.lines.length + a.polys.length === 0 || b.lines.length + b.polys.length === 0) return false;
  // Plain loops, no callbacks: this runs per change event per subscription.
  for (const l of a.lines) if (listHitsEdges(l, b)) return true;
  for (const p of a.polys) for (const r of p) if (listHitsEdges(r, b)) return true;
  // No edges meet: one part can still lie wholly inside a polygon of the other, and then any
  // one of its vertices tells.
  for (const l of a.lines) if (locate(l[0][0], l[0][1], b) !== OUTSIDE) return true;
  for (const p of a.polys) if (locate(p[0][0][0], p[0][0][1], b) !== OUTSIDE) return true;
  for (const l of b.lines) if (locate(l[0][0], l[0][1], a) !== OUTSIDE) return true;
  for (const p of b.polys) if (locate(p[0][0][0], p[0][0][1], a) !== OUTSIDE) return true;
  return false;
}

function listHitsEdges(list: Position[], s: Shape): boolean {
  for (let i = 1; i < list.length; i++) {
    const ax = list[i - 1][0], ay = list[i - 1][1], bx = list[i][0], by = list[i][1];
    for (const l of s.lines) if (segmentHitsList(ax, ay, bx, by, l)) return true;
    for (const p of s.polys) for (const r of p) if (segmentHitsList(ax, ay, bx, by, r)) return true;
  }
  return false;
}

function segmentHitsList(ax: number, ay: number, bx: number, by: number, list: Position[]): boolean {
  for (let j = 1; j < list.length; j++) {
    if (segmentsIntersect(ax, ay, bx, by, list[j - 1][0], list[j - 1][1], list[j][0], list[j][1])) return true;
  }
  return false;
}

/**
 * Splits segment ab wherever `other`'s edges or points touch it, and counts the location of
 * each piece's midpoint relative to `other` into `counts` (indexed by Location). Between two
 * split points a piece cannot change location, so the midpoints classify the whole segment.
 */
const params: number[] = [];
const ascending = (u: number, v: number) => u - v;

export function classifySegment(
  ax: number, ay: number, bx: number, by: number, other: Shape, counts: Int32Array,
): void {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  if (len2 === 0) return;
  params.length = 0;
  params.push(0, 1);
  for (const l of other.lines) addSplits(ax, ay, bx, by, l);
  for (const poly of other.polys) for (const r of poly) addSplits(ax, ay, bx, by, r);
  for (const p of other.points) {
    if (onSegment(ax, ay, bx, by, p[0], p[1])) addParam(ax, ay, dx, dy, len2, p[0], p[1]);
  }
  if (params.length > 2) params.sort(ascending);
  const len = Math.sqrt(len2);
  let prev = 0;
  for (let i = 1; i < params.length; i++) {
    const cur = params[i];
    // Pieces shorter than the boundary tolerance carry no information of their own.
    if ((cur - prev) * len > EPS * 4) {
      const m = (prev + cur) / 2;
      counts[locate(ax + m * dx, ay + m * dy, other)]++;
    }
    if (cur > prev) prev = cur;
  }
}

function addSplits(ax: number, ay: number, bx: number, by: number, list: Position[]): void {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  for (let j = 1; j < list.length; j++) {
    const cx = list[j - 1][0], cy = list[j - 1][1], ex = list[j][0], ey = list[j][1];
    if (!segmentsIntersect(ax, ay, bx, by, cx, cy, ex, ey)) continue;
    const fx = ex - cx;
    const fy = ey - cy;
    const denom = dx * fy - dy * fx;
    if (Math.abs(denom) <= 1e-12 * Math.sqrt(len2 * (fx * fx + fy * fy))) {
      // Collinear (or degenerate): the overlap starts and ends at end points of either edge.
      addParam(ax, ay, dx, dy, len2, cx, cy);
      addParam(ax, ay, dx, dy, len2, ex, ey);
    } else {
      const t = ((cx - ax) * fy - (cy - ay) * fx) / denom;
      if (t > 0 && t < 1) params.push(t);
      // An end point of cd touching ab: split exactly at its projection too, against rounding.
      if (onSegment(ax, ay, bx, by, cx, cy)) addParam(ax, ay, dx, dy, len2, cx, cy);
      if (onSegment(ax, ay, bx, by, ex, ey)) addParam(ax, ay, dx, dy, len2, ex, ey);
    }
  }
}

function addParam(ax: number, ay: number, dx: number, dy: number, len2: number, px: number, py: number): void {
  const t = ((px - ax) * dx + (py - ay) * dy) / len2;
  if (t > 0 && t < 1) params.push(t);
}

/** Counts, per Location relative to `other`, the pieces of all edges of `lists` (lines or rings). */
export function classifyLists(lists: Position[][], other: Shape, counts: Int32Array): void {
  counts[0] = counts[1] = counts[2] = 0;
  for (const list of lists) addListCounts(list, other, counts);
}

/** Adds the piece counts of one line or ring to `counts` (no reset). */
export function addListCounts(list: Position[], other: Shape, counts: Int32Array): void {
  for (let i = 1; i < list.length; i++) {
    classifySegment(list[i - 1][0], list[i - 1][1], list[i][0], list[i][1], other, counts);
  }
}

/** The polygons of a shape alone (collections may mix in points and lines that have no area). */
export function polysOnly(s: Shape): Shape {
  return s.points.length + s.lines.length === 0 ? s : { points: NONE, lines: NONE, polys: s.polys, dim: 2 };
}

/**
 * A point strictly inside polygon `rings` (for the case where two polygons' boundaries
 * coincide and only an interior point can tell "same area" from "the hole of the other").
 */
export function interiorPoint(rings: Position[][]): [number, number] | null {
  const shell = rings[0];
  for (let i = 1; i < shell.length; i++) {
    const ax = shell[i - 1][0], ay = shell[i - 1][1], bx = shell[i][0], by = shell[i][1];
    const dx = bx - ax, dy = by - ay;
    const len = Math.sqrt(dx * dx + dy * dy);
    if (len <= EPS * 4) continue;
    const mx = (ax + bx) / 2, my = (ay + by) / 2;
    for (const off of [1e-7, 1e-5, 1e-3]) {
      const e = Math.min(off, len / 4);
      const nx = (-dy / len) * e, ny = (dx / len) * e;
      if (locateInPolygon(mx + nx, my + ny, rings) === INSIDE) return [mx + nx, my + ny];
      if (locateInPolygon(mx - nx, my - ny, rings) === INSIDE) return [mx - nx, my - ny];
    }
  }
  return null;
}

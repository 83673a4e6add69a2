/**
 * Geo-query evaluation (ETSI GS CIM 009 clause 4.10): "target geometry GEOREL query geometry",
 * where the target is the entity's geoproperty value, e.g. within = the entity lies within the
 * query polygon, contains = the entity contains the query geometry.
 *
 * Relations follow OGC Simple Features / DE-9IM (the reference [14] of 4.10):
 *  - intersects: the geometries share at least one point (touching counts); disjoint = not that.
 *  - within(T, Q): no point of T outside Q and the interiors meet, so a point on a polygon's
 *    edge or at a line's end point is not within it (PostGIS ST_Within gives the same).
 *    A point in a hole is outside. contains(T, Q) = within(Q, T).
 *  - overlaps: same dimension, interiors share a part of that dimension, neither covers the other.
 *  - equals: same type and the same positions in the same order (altitude ignored); rings that
 *    start at another vertex are not recognised as equal.
 *  - near;maxDistance==d / near;minDistance==d: the minimum distance between the two geometries
 *    in metres (0 when they intersect, so 0 inside a polygon) is <= d / >= d.
 *
 * Approximations: topology is planar in lon/lat with a 1e-9 degree boundary tolerance and no
 * antimeridian wrapping (RFC 7946 asks for geometries cut there); distances are haversine on a
 * sphere, with the closest point of an edge picked in a local equirectangular frame (distance.ts).
 * MultiLineString boundaries do not apply the mod-2 rule; a GeometryCollection is treated as the
 * union of its parts, which is exact for intersects/near and close for the others.
 *
 * An entity lacking the geoproperty matches nothing, not even disjoint: that is the caller's
 * test (nothing here is called without a target geometry).
 */
import { extendBBox, type BBox, type Geometry, type Position } from './geojson.ts';
import type { GeoQuery } from './geoq.ts';
import { EARTH_RADIUS_M, shapeDistanceMeters } from './distance.ts';
import {
  addListCounts,
  BOUNDARY,
  cachedShapeOf,
  classifyLists,
  EPS,
  INSIDE,
  interiorPoint,
  locate,
  OUTSIDE,
  polysOnly,
  shapeOf,
  shapesIntersect,
  type Shape,
} from './shape.ts';

const D2R = Math.PI / 180;

// Scratch space reused across calls: evaluation is synchronous, so no call sees another's data.
const tbox = new Float64Array(4);
const nbox = new Float64Array(4);
const c1 = new Int32Array(3);
const c2 = new Int32Array(3);

/** Whether `target` (the entity's geoproperty value) satisfies the geo-query. */
export function matchesGeoQ(q: GeoQuery, target: Geometry): boolean {
  targetBox(target);
  const qb = q.bbox;
  switch (q.georel) {
    case 'near': {
      const qs = cachedShapeOf(q.geometry);
      if (q.maxDistance !== undefined) {
        nearBox(qb, q.maxDistance, nbox);
        if (!boxesOverlap(tbox, nbox)) return false;
        return shapeDistanceMeters(shapeOf(target), qs, q.maxDistance) <= q.maxDistance;
      }
      if (q.minDistance !== undefined) {
        return shapeDistanceMeters(shapeOf(target), qs, q.minDistance) >= q.minDistance;
      }
      return false;
    }
    case 'within':
      if (!boxInside(tbox, qb)) return false;
      return within(shapeOf(target), cachedShapeOf(q.geometry));
    case 'contains':
      if (!boxInside(qb, tbox)) return false;
      return within(cachedShapeOf(q.geometry), shapeOf(target));
    case 'intersects':
      if (!boxesOverlap(tbox, qb)) return false;
      return shapesIntersect(shapeOf(target), cachedShapeOf(q.geometry));
    case 'disjoint':
      if (!boxesOverlap(tbox, qb)) return true;
      return !shapesIntersect(shapeOf(target), cachedShapeOf(q.geometry));
    case 'equals':
      return geometriesEqual(target, q.geometry);
    case 'overlaps':
      if (!boxesOverlap(tbox, qb)) return false;
      return overlaps(shapeOf(target), cachedShapeOf(q.geometry));
  }
}

/**
 * Minimum distance in metres between the target and the query geometry (0 when they
 * intersect), for ordering `near` results.
 */
export function distanceMeters(q: GeoQuery, target: Geometry): number {
  return shapeDistanceMeters(shapeOf(target), cachedShapeOf(q.geometry));
}

/**
 * A box that the bbox of every matching target intersects, for an index prefilter
 * (`bbox && box(...)`), or null when no box bounds the answer (disjoint, near;minDistance).
 * For near;maxDistance it is the query bbox grown by the distance on the sphere; when the
 * grown box would cross a pole or the antimeridian it widens to all longitudes, as one box
 * cannot wrap.
 */
export function prefilterBox(q: GeoQuery): BBox | null {
  if (q.georel === 'disjoint') return null;
  if (q.georel === 'near') {
    if (q.maxDistance === undefined) return null;
    nearBox(q.bbox, q.maxDistance, nbox);
    return [nbox[0], nbox[1], nbox[2], nbox[3]];
  }
  return [q.bbox[0], q.bbox[1], q.bbox[2], q.bbox[3]];
}

function targetBox(g: Geometry): void {
  tbox[0] = Infinity;
  tbox[1] = Infinity;
  tbox[2] = -Infinity;
  tbox[3] = -Infinity;
  extendBBox(tbox, g);
}

function nearBox(b: ArrayLike<number>, meters: number, out: Float64Array): void {
  const delta = meters / EARTH_RADIUS_M;
  // Margins (relative and absolute) so float rounding can never cut off a true match.
  const dLat = (delta / D2R) * (1 + 1e-9) + 1e-9;
  const minLat = b[1] - dLat;
  const maxLat = b[3] + dLat;
  let minLon = -180;
  let maxLon = 180;
  if (delta < Math.PI / 2 && minLat > -90 && maxLat < 90) {
    // Widest longitude offset of a spherical cap of radius delta centred at latitude phi:
    // asin(sin(delta) / cos(phi)); it grows with |phi|, so the bbox's extreme latitude bounds it.
    const phi = Math.max(Math.abs(b[1]), Math.abs(b[3])) * D2R;
    const s = Math.sin(delta) / Math.cos(phi);
    if (s < 1) {
      const dLon = (Math.asin(s) / D2R) * (1 + 1e-9) + 1e-9;
      if (b[0] - dLon >= -180 && b[2] + dLon <= 180) {
        minLon = b[0] - dLon;
        maxLon = b[2] + dLon;
      }
    }
  }
  out[0] = minLon;
  out[1] = minLat < -90 ? -90 : minLat;
  out[2] = maxLon;
  out[3] = maxLat > 90 ? 90 : maxLat;
}

function boxesOverlap(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a[0] <= b[2] + EPS && b[0] <= a[2] + EPS && a[1] <= b[3] + EPS && b[1] <= a[3] + EPS;
}

/** Whether box a lies inside box b. */
function boxInside(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a[0] >= b[0] - EPS && a[1] >= b[1] - EPS && a[2] <= b[2] + EPS && a[3] <= b[3] + EPS;
}

/** OGC within: no point of t outside q, and the interiors meet. */
function within(t: Shape, q: Shape): boolean {
  if (t.dim > q.dim) return false;
  let meet = false;
  for (const p of t.points) {
    const loc = locate(p[0], p[1], q);
    if (loc === OUTSIDE) return false;
    if (loc === INSIDE) meet = true;
  }
  for (const l of t.lines) {
    c1[0] = c1[1] = c1[2] = 0;
    addListCounts(l, q, c1);
    if (c1[OUTSIDE] > 0) return false;
    if (c1[INSIDE] > 0) meet = true;
    else if (c1[BOUNDARY] === 0) {
      // Zero length: no pieces, so judge the line by its position.
      const loc = locate(l[0][0], l[0][1], q);
      if (loc === OUTSIDE) return false;
      if (loc === INSIDE) meet = true;
    }
  }
  if (t.polys.length > 0) {
    if (!areaCovered(t, q)) return false;
    meet = true; // a covered area lies in the interior of q
  }
  return meet;
}

/**
 * Whether the polygons of t lie in the polygons of q (closure). Each ring of t must stay
 * out of q's exterior and no ring of q may enter t's interior; when a polygon's rings run
 * wholly along q's boundary, an interior point tells "same area" from "q's hole".
 */
function areaCovered(t: Shape, q: Shape): boolean {
  const qp = polysOnly(q);
  if (qp.polys.length === 0) return false;
  for (const poly of t.polys) {
    classifyLists(poly, qp, c1);
    if (c1[OUTSIDE] > 0) return false;
    if (c1[INSIDE] === 0) {
      const ip = interiorPoint(poly);
      if (ip === null || locate(ip[0], ip[1], qp) !== INSIDE) return false;
    }
  }
  const tp = polysOnly(t);
  for (const poly of qp.polys) {
    classifyLists(poly, tp, c2);
    if (c2[INSIDE] > 0) return false;
  }
  return true;
}

/** OGC overlaps: same dimension, interiors share a part of it, neither covers the other. */
function overlaps(t: Shape, q: Shape): boolean {
  if (t.dim !== q.dim) return false;
  if (t.dim === 0) {
    let shared = false;
    let tOnly = false;
    for (const p of t.points) {
      if (locate(p[0], p[1], q) === INSIDE) shared = true;
      else tOnly = true;
    }
    if (!shared || !tOnly) return false;
    for (const p of q.points) if (locate(p[0], p[1], t) !== INSIDE) return true;
    return false;
  }
  if (t.dim === 1) {
    classifyLists(t.lines, q, c1);
    // A shared piece of positive length, and a piece of t off q.
    if (c1[INSIDE] + c1[BOUNDARY] === 0 || c1[OUTSIDE] === 0) return false;
    classifyLists(q.lines, t, c2);
    return c2[OUTSIDE] > 0;
  }
  // Interiors of two areas meet iff some boundary piece of one runs inside the other (or the
  // boundaries coincide, but then each covers the other and they do not overlap anyway).
  const tp = polysOnly(t);
  const qp = polysOnly(q);
  let meet = false;
  for (const poly of tp.polys) {
    classifyLists(poly, qp, c1);
    if (c1[INSIDE] > 0) { meet = true; break; }
  }
  if (!meet) {
    for (const poly of qp.polys) {
      classifyLists(poly, tp, c1);
      if (c1[INSIDE] > 0) { meet = true; break; }
    }
  }
  return meet && !areaCovered(tp, qp) && !areaCovered(qp, tp);
}

function geometriesEqual(a: Geometry, b: Geometry): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'GeometryCollection') {
    const bg = (b as typeof a).geometries;
    if (a.geometries.length !== bg.length) return false;
    for (let i = 0; i < bg.length; i++) if (!geometriesEqual(a.geometries[i], bg[i])) return false;
    return true;
  }
  return coordsEqual(a.coordinates, (b as typeof a).coordinates);
}

type Nested = Position | Nested[];

function coordsEqual(a: Nested, b: Nested): boolean {
  if (typeof a[0] === 'number') return a[0] === b[0] && a[1] === b[1];
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!coordsEqual(a[i] as Nested, b[i] as Nested)) return false;
  return true;
}

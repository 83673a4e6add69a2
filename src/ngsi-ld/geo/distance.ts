/**
 * Distances in metres on a spherical Earth (internal to geo/).
 *
 * Point to point is haversine on a sphere of the IUGG mean radius, the same sphere PostGIS
 * geography uses with use_spheroid = false (error against WGS84 under 0.5 %).
 * Point to edge: edges are straight in lon/lat (RFC 7946), so the closest point is searched on
 * that straight edge, in an equirectangular frame centred on the point (longitude scaled by
 * cos(latitude)), then measured with haversine. The frame is exact at the point and drifts
 * with distance; picking the closest point metrically rather than in raw degrees is what keeps
 * high-latitude answers right (conformance TP 019_30_11). The result is always the haversine
 * length to a real point of the edge, so it never underestimates the true distance, which the
 * SQL bbox prefilter relies on.
 */
import type { Position } from './geojson.ts';
import { locate, OUTSIDE, shapesIntersect, type Shape } from './shape.ts';

export const EARTH_RADIUS_M = 6371008.8;
const D2R = Math.PI / 180;

export function haversineMeters(lon1: number, lat1: number, lon2: number, lat2: number): number {
  const sLat = Math.sin(((lat2 - lat1) * D2R) / 2);
  const sLon = Math.sin(((lon2 - lon1) * D2R) / 2);
  const a = sLat * sLat + Math.cos(lat1 * D2R) * Math.cos(lat2 * D2R) * sLon * sLon;
  return 2 * EARTH_RADIUS_M * Math.asin(a >= 1 ? 1 : Math.sqrt(a));
}

function wrap180(d: number): number {
  return d > 180 ? d - 360 : d < -180 ? d + 360 : d;
}

/** Metres from point p to the straight lon/lat edge ab. */
export function pointEdgeMeters(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  // Relative longitudes: shift the edge as a whole by 360 so a point just across the
  // antimeridian sees it nearby, without changing which way the edge runs.
  const rax = wrap180(ax - px);
  const rbx = rax + (bx - ax);
  let d = edgeInFrame(px, py, rax, ay, rbx, by);
  if (rbx > 180) d = Math.min(d, edgeInFrame(px, py, rax - 360, ay, rbx - 360, by));
  else if (rbx < -180) d = Math.min(d, edgeInFrame(px, py, rax + 360, ay, rbx + 360, by));
  return d;
}

function edgeInFrame(px: number, py: number, rax: number, ay: number, rbx: number, by: number): number {
  const k = Math.cos(py * D2R);
  const x0 = rax * k, y0 = ay - py;
  const dx = (rbx - rax) * k, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : -(x0 * dx + y0 * dy) / len2;
  if (t < 0) t = 0;
  else if (t > 1) t = 1;
  return haversineMeters(px, py, px + rax + t * (rbx - rax), ay + t * dy);
}

/** Metres from point p to the nearest point of the shape's parts (0 inside a polygon). */
export function pointShapeMeters(px: number, py: number, s: Shape, stopAt = -1): number {
  if (s.polys.length > 0 && locate(px, py, s) !== OUTSIDE) return 0;
  return pointPartsMeters(px, py, s, stopAt);
}

/** pointShapeMeters without the inside test, for callers that already ruled it out. */
function pointPartsMeters(px: number, py: number, s: Shape, stopAt: number): number {
  let best = Infinity;
  for (const q of s.points) {
    const d = haversineMeters(px, py, q[0], q[1]);
    if (d < best) { best = d; if (best <= stopAt) return best; }
  }
  for (const l of s.lines) {
    best = listMin(px, py, l, best);
    if (best <= stopAt) return best;
  }
  for (const poly of s.polys) {
    for (const r of poly) {
      best = listMin(px, py, r, best);
      if (best <= stopAt) return best;
    }
  }
  return best;
}

function listMin(px: number, py: number, list: Position[], best: number): number {
  if (list.length === 1) return Math.min(best, haversineMeters(px, py, list[0][0], list[0][1]));
  for (let i = 1; i < list.length; i++) {
    const d = pointEdgeMeters(px, py, list[i - 1][0], list[i - 1][1], list[i][0], list[i][1]);
    if (d < best) best = d;
  }
  return best;
}

/**
 * Minimum distance in metres between two shapes: 0 when they intersect, otherwise the least
 * vertex-to-edge distance either way (the closest pair of two non-crossing straight edges
 * always involves an end point of one of them). Returns early once a distance <= stopAt is
 * found, as callers only compare against a threshold.
 */
export function shapeDistanceMeters(a: Shape, b: Shape, stopAt = -1): number {
  // Point to point needs no topology: the common near;maxDistance case on Point locations.
  if (a.dim === 0 && b.dim === 0 && a.points.length === 1 && b.points.length === 1) {
    return haversineMeters(a.points[0][0], a.points[0][1], b.points[0][0], b.points[0][1]);
  }
  if (shapesIntersect(a, b)) return 0;
  let best = Infinity;
  best = verticesTo(a, b, best, stopAt);
  if (best <= stopAt) return best;
  return verticesTo(b, a, best, stopAt);
}

function verticesTo(from: Shape, to: Shape, best: number, stopAt: number): number {
  const floor = Math.max(stopAt, 0);
  for (const p of from.points) {
    best = Math.min(best, pointPartsMeters(p[0], p[1], to, floor));
    if (best <= stopAt) return best;
  }
  for (const l of from.lines) {
    for (const p of l) {
      best = Math.min(best, pointPartsMeters(p[0], p[1], to, floor));
      if (best <= stopAt) return best;
    }
  }
  for (const poly of from.polys) {
    for (const r of poly) {
      for (const p of r) {
        best = Math.min(best, pointPartsMeters(p[0], p[1], to, floor));
        if (best <= stopAt) return best;
      }
    }
  }
  return best;
}

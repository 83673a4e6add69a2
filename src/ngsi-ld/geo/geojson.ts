/**
 * GeoJSON geometries as NGSI-LD GeoProperty values (ETSI GS CIM 009 clause 4.7, IETF RFC 7946).
 *
 * Validation is strict on structure (nesting, closed rings, coordinate ranges) because a
 * malformed stored geometry would make every later geo-query silently wrong. It is lenient on
 * what real fixtures carry: altitude (a third number), repeated consecutive positions and
 * self-intersecting rings are accepted (the ETSI conformance fixtures of 019_11 use such a ring;
 * the predicates use the even-odd rule, so they still give a defined answer).
 * Validation works in place: the returned geometry is the input object, nothing is copied.
 */
import { ProblemError } from '../../common/problem.ts';

/** [longitude, latitude] or [longitude, latitude, altitude]; predicates ignore altitude. */
export type Position = number[];

export interface Point { type: 'Point'; coordinates: Position }
export interface MultiPoint { type: 'MultiPoint'; coordinates: Position[] }
export interface LineString { type: 'LineString'; coordinates: Position[] }
export interface MultiLineString { type: 'MultiLineString'; coordinates: Position[][] }
export interface Polygon { type: 'Polygon'; coordinates: Position[][] }
export interface MultiPolygon { type: 'MultiPolygon'; coordinates: Position[][][] }
export interface GeometryCollection { type: 'GeometryCollection'; geometries: Geometry[] }

export type Geometry =
  | Point | MultiPoint | LineString | MultiLineString | Polygon | MultiPolygon | GeometryCollection;

/** Geometry types that carry a `coordinates` member (all but GeometryCollection). */
export type CoordinateGeometryType = Exclude<Geometry['type'], 'GeometryCollection'>;

/** [minLon, minLat, maxLon, maxLat] */
export type BBox = [number, number, number, number];

/** Nesting depth of `coordinates` per type: how many array levels wrap a number. */
export const COORDINATE_DEPTH: Readonly<Record<CoordinateGeometryType, number>> = {
  Point: 1,
  MultiPoint: 2,
  LineString: 2,
  MultiLineString: 3,
  Polygon: 3,
  MultiPolygon: 4,
};

const SHAPE_HINT: Readonly<Record<CoordinateGeometryType, string>> = {
  Point: '[lon, lat]',
  MultiPoint: '[[lon, lat], ...]',
  LineString: '[[lon, lat], [lon, lat], ...]',
  MultiLineString: '[[[lon, lat], [lon, lat], ...], ...]',
  Polygon: '[[[lon, lat], ... , first position repeated]]',
  MultiPolygon: '[[[[lon, lat], ... , first position repeated]], ...]',
};

const TYPES = 'Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon, GeometryCollection';

/** Validates a GeoJSON geometry object and returns it typed (same object, not a copy). */
export function validateGeometry(value: unknown): Geometry {
  checkGeometry(value, 'GeoJSON geometry', 0);
  return value as Geometry;
}

/**
 * Validates `coordinates` for a given geometry type (used by the geo-query parser, where type
 * and coordinates arrive as separate parameters).
 */
export function validateCoordinates(type: CoordinateGeometryType, coordinates: unknown, label: string = type): void {
  checkCoordinates(type, coordinates, label);
}

export function isCoordinateGeometryType(t: unknown): t is CoordinateGeometryType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(COORDINATE_DEPTH, t);
}

function fail(detail: string): never {
  throw new ProblemError('BadRequestData', detail);
}

function checkGeometry(value: unknown, label: string, level: number): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(`${label} must be a GeoJSON object with "type" and "coordinates", got ${describe(value)}`);
  }
  const g = value as Record<string, unknown>;
  const type = g.type;
  if (type === 'GeometryCollection') {
    // Nested collections are legal GeoJSON but RFC 7946 3.1.8 discourages them; bound the depth
    // so a hostile payload cannot recurse without limit.
    if (level > 4) fail(`${label} nests GeometryCollections too deeply (more than 4 levels)`);
    const geoms = g.geometries;
    if (!Array.isArray(geoms)) fail(`${label} of type GeometryCollection must have a "geometries" array`);
    if (geoms.length === 0) fail(`${label} of type GeometryCollection must contain at least one geometry`);
    for (let i = 0; i < geoms.length; i++) checkGeometry(geoms[i], `GeometryCollection geometry ${i}`, level + 1);
    return;
  }
  if (!isCoordinateGeometryType(type)) {
    fail(`${label} has unsupported type ${JSON.stringify(type)}; expected one of ${TYPES}`);
  }
  if (!('coordinates' in g)) fail(`${label} of type ${type} is missing "coordinates" (expected ${SHAPE_HINT[type]})`);
  checkCoordinates(type, g.coordinates, level === 0 ? type : `${label} (${type})`);
}

function checkCoordinates(type: CoordinateGeometryType, c: unknown, label: string): void {
  const want = COORDINATE_DEPTH[type];
  const got = depthOf(c);
  if (got !== want && got !== -1) {
    if (!Array.isArray(c)) fail(`${label} coordinates must be an array ${SHAPE_HINT[type]}, got ${describe(c)}`);
    fail(
      `${label} coordinates are nested ${got} level${got === 1 ? '' : 's'} deep but ${type} needs ${want} ` +
        `(${SHAPE_HINT[type]}), got ${preview(c)}`,
    );
  }
  switch (type) {
    case 'Point':
      checkPosition(c as unknown[], `${label}`);
      return;
    case 'MultiPoint':
      checkPositions(c as unknown[], 1, label, 'point');
      return;
    case 'LineString':
      checkPositions(c as unknown[], 2, label, 'position');
      return;
    case 'MultiLineString': {
      const lines = c as unknown[];
      if (lines.length === 0) fail(`${label} must contain at least one line`);
      for (let i = 0; i < lines.length; i++) checkPositions(asArray(lines[i], `${label} line ${i}`), 2, `${label} line ${i}`, 'position');
      return;
    }
    case 'Polygon':
      checkPolygon(c as unknown[], label);
      return;
    case 'MultiPolygon': {
      const polys = c as unknown[];
      if (polys.length === 0) fail(`${label} must contain at least one polygon`);
      for (let i = 0; i < polys.length; i++) checkPolygon(asArray(polys[i], `${label} polygon ${i}`), `${label} polygon ${i}`);
      return;
    }
  }
}

function checkPolygon(rings: unknown[], label: string): void {
  if (rings.length === 0) fail(`${label} must contain at least one linear ring (the exterior ring)`);
  for (let r = 0; r < rings.length; r++) {
    const ringLabel = `${label} ring ${r}`;
    const ring = asArray(rings[r], ringLabel);
    if (ring.length < 4) {
      fail(`${ringLabel} has ${ring.length} position${ring.length === 1 ? '' : 's'}; a linear ring needs at least 4 (the first repeated as the last)`);
    }
    checkPositions(ring, 4, ringLabel, 'position');
    const first = ring[0] as Position;
    const last = ring[ring.length - 1] as Position;
    if (!samePosition(first, last)) {
      fail(`${ringLabel} is not closed: first position ${fmt(first)} differs from last ${fmt(last)}`);
    }
  }
}

function checkPositions(list: unknown[], min: number, label: string, what: string): void {
  if (list.length < min) fail(`${label} has ${list.length} ${what}${list.length === 1 ? '' : 's'}; at least ${min} required`);
  for (let i = 0; i < list.length; i++) checkPosition(list[i], `${label} position ${i}`);
}

function checkPosition(p: unknown, label: string): void {
  if (!Array.isArray(p) || p.length < 2 || p.length > 3) {
    fail(`${label} must be a position [longitude, latitude] (optionally with altitude), got ${preview(p)}`);
  }
  for (let i = 0; i < p.length; i++) {
    const n = p[i];
    if (typeof n !== 'number' || !Number.isFinite(n)) fail(`${label} must contain only finite numbers, got ${preview(p)}`);
  }
  const lon = p[0] as number;
  const lat = p[1] as number;
  if (lon < -180 || lon > 180) {
    fail(`${label}: longitude ${lon} is out of range [-180, 180] (GeoJSON positions are [longitude, latitude])`);
  }
  if (lat < -90 || lat > 90) {
    fail(`${label}: latitude ${lat} is out of range [-90, 90] (GeoJSON positions are [longitude, latitude])`);
  }
}

function asArray(v: unknown, label: string): unknown[] {
  if (!Array.isArray(v)) fail(`${label} must be an array, got ${describe(v)}`);
  return v;
}

/**
 * Depth along the first element, or -1 when an empty array hides the depth: the per-type
 * "at least N" checks then give the more useful message.
 */
function depthOf(v: unknown): number {
  let d = 0;
  while (Array.isArray(v)) {
    if (v.length === 0) return -1;
    d++;
    v = v[0];
  }
  return d;
}

function samePosition(a: Position, b: Position): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fmt(p: Position): string {
  return `[${p.join(', ')}]`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array ${preview(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${preview(v)}`;
}

function preview(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Bounding box of a validated geometry, ignoring altitude. */
export function bboxOf(geometry: Geometry): BBox {
  const b: BBox = [Infinity, Infinity, -Infinity, -Infinity];
  extendBBox(b, geometry);
  return b;
}

/** Grows `b` in place to cover `g` (lets callers reuse one box on hot paths). */
export function extendBBox(b: BBox | Float64Array, g: Geometry): void {
  switch (g.type) {
    case 'Point':
      addPos(b, g.coordinates);
      return;
    case 'MultiPoint':
    case 'LineString':
      addList(b, g.coordinates);
      return;
    case 'MultiLineString':
      for (const l of g.coordinates) addList(b, l);
      return;
    case 'Polygon':
      // All rings, not only the exterior one: simplicity is not validated, and a hole poking out
      // of its shell would otherwise make the SQL prefilter disagree with the exact predicates.
      for (const r of g.coordinates) addList(b, r);
      return;
    case 'MultiPolygon':
      for (const p of g.coordinates) for (const r of p) addList(b, r);
      return;
    case 'GeometryCollection':
      for (const sub of g.geometries) extendBBox(b, sub);
      return;
  }
}

function addList(b: BBox | Float64Array, list: Position[]): void {
  for (let i = 0; i < list.length; i++) addPos(b, list[i]);
}

function addPos(b: BBox | Float64Array, p: Position): void {
  const x = p[0];
  const y = p[1];
  if (x < b[0]) b[0] = x;
  if (y < b[1]) b[1] = y;
  if (x > b[2]) b[2] = x;
  if (y > b[3]) b[3] = y;
}

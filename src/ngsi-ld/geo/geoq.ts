/**
 * NGSI-LD geo-queries (ETSI GS CIM 009 clause 4.10 grammar, 5.2.13 GeoQuery data type).
 *
 *   georel   = nearRel / "within" / "contains" / "intersects" / "equals" / "disjoint" / "overlaps"
 *   nearRel  = "near" ";" ("maxDistance" / "minDistance") "==" PositiveNumber   ; metres
 *
 * PositiveNumber is an RFC 8259 number without the minus sign and not 0; exactly one distance
 * modifier is allowed (conformance TP 019_30 rejects 0, negatives, inf, 1e400 and two modifiers).
 * Every error is BadRequestData, which is what the conformance suite expects for a malformed
 * geo-query (037_03_03, 019_03_04, 019_30).
 */
import { ProblemError } from '../../common/problem.ts';
import {
  bboxOf,
  isCoordinateGeometryType,
  validateCoordinates,
  type BBox,
  type CoordinateGeometryType,
  type Geometry,
} from './geojson.ts';

export type GeoRel = 'near' | 'within' | 'contains' | 'intersects' | 'equals' | 'disjoint' | 'overlaps';

export interface GeoQuery {
  georel: GeoRel;
  /** near only: match when distance <= maxDistance (metres) */
  maxDistance?: number;
  /** near only: match when distance >= minDistance (metres) */
  minDistance?: number;
  /** the reference geometry of the query */
  geometry: Exclude<Geometry, { type: 'GeometryCollection' }>;
  /** attribute holding the target geometry: a term as given (default "location") until resolveGeoQ */
  geoproperty: string;
  /** bbox of `geometry`, computed once so per-event evaluation does not redo it */
  bbox: BBox;
}

/** Raw geo-query members: query-string parameters, or the geoQ object of a subscription / POST query. */
export interface GeoQParams {
  georel?: string;
  geometry?: string;
  /** JSON text (query string) or an already-parsed array (JSON bodies) */
  coordinates?: string | unknown;
  geoproperty?: string;
}

export const DEFAULT_GEOPROPERTY = 'location';

const SIMPLE_RELS: ReadonlySet<string> = new Set(['within', 'contains', 'intersects', 'equals', 'disjoint', 'overlaps']);
const GEORELS = 'near;maxDistance==<metres>, near;minDistance==<metres>, within, contains, intersects, equals, disjoint, overlaps';
const GEOMETRIES = 'Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon';
// RFC 8259 number grammar minus the optional leading '-'.
const POSITIVE_NUMBER = /^(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function bad(detail: string): never {
  throw new ProblemError('BadRequestData', detail);
}

/** True when any geo-query member is present: the caller then parses and a partial one is an error. */
export function hasGeoQ(params: GeoQParams): boolean {
  return present(params.georel) || present(params.geometry) || present(params.coordinates);
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** Parses and validates a geo-query; throws ProblemError(BadRequestData) with an actionable detail. */
export function parseGeoQ(params: GeoQParams): GeoQuery {
  const { georel, geometry, coordinates, geoproperty } = params;
  if (!present(georel)) {
    bad(`Incomplete geo-query: georel is missing; a geo-query needs georel, geometry and coordinates (e.g. georel=near;maxDistance==2000&geometry=Point&coordinates=[8,40])`);
  }
  if (!present(geometry)) {
    bad(`Incomplete geo-query: geometry is missing; georel=${String(georel)} needs geometry (one of ${GEOMETRIES}) and coordinates`);
  }
  if (!present(coordinates)) {
    bad(`Incomplete geo-query: coordinates are missing; georel=${String(georel)} needs coordinates for geometry ${String(geometry)}`);
  }
  if (typeof georel !== 'string') bad(`georel must be a string, got ${typeof georel}`);
  if (typeof geometry !== 'string') bad(`geometry must be a string, got ${typeof geometry}`);

  const rel = parseGeorel(georel);

  if (!isCoordinateGeometryType(geometry)) {
    const hint = caseHint(geometry);
    bad(`Unsupported geo-query geometry ${JSON.stringify(geometry)}; expected one of ${GEOMETRIES}${hint}`);
  }
  const coords = parseCoordinates(coordinates, geometry);
  try {
    validateCoordinates(geometry, coords, `geo-query ${geometry}`);
  } catch (e) {
    if (e instanceof ProblemError) bad(`Invalid geo-query coordinates: ${e.message}`);
    throw e;
  }
  const geom = { type: geometry, coordinates: coords } as GeoQuery['geometry'];

  let prop = DEFAULT_GEOPROPERTY;
  if (geoproperty !== undefined && geoproperty !== null && geoproperty !== '') {
    if (typeof geoproperty !== 'string') bad(`geoproperty must be a string (an attribute name), got ${typeof geoproperty}`);
    prop = geoproperty.trim();
    if (prop === '' || /[\s,;]/.test(prop)) {
      bad(`geoproperty must be a single attribute name (default "location"), got ${JSON.stringify(geoproperty)}`);
    }
  }

  const q: GeoQuery = { georel: rel.georel, geometry: geom, geoproperty: prop, bbox: bboxOf(geom) };
  if (rel.maxDistance !== undefined) q.maxDistance = rel.maxDistance;
  if (rel.minDistance !== undefined) q.minDistance = rel.minDistance;
  return q;
}

export interface ParsedRel { georel: GeoRel; maxDistance?: number; minDistance?: number }

/** Parses the georel text alone (exported for callers that validate parameters one by one). */
export function parseGeorel(text: string): ParsedRel {
  const t = text.trim();
  if (SIMPLE_RELS.has(t)) return { georel: t as GeoRel };
  const parts = t.split(';');
  const op = parts[0];
  if (op !== 'near') {
    if (SIMPLE_RELS.has(op)) bad(`georel "${op}" takes no modifiers, got ${JSON.stringify(text)}`);
    bad(`Unknown georel ${JSON.stringify(text)}; expected one of ${GEORELS}`);
  }
  if (parts.length === 1) {
    bad(`georel "near" needs exactly one distance modifier: near;maxDistance==<metres> or near;minDistance==<metres>`);
  }
  if (parts.length > 2) {
    bad(`georel "near" admits exactly one distance modifier (maxDistance or minDistance), got ${JSON.stringify(text)}`);
  }
  const m = /^(maxDistance|minDistance)==(.*)$/.exec(parts[1]);
  if (!m) {
    bad(`Invalid near modifier ${JSON.stringify(parts[1])}; expected maxDistance==<metres> or minDistance==<metres>`);
  }
  const num = m[2];
  const value = POSITIVE_NUMBER.test(num) ? Number(num) : NaN;
  if (!(value > 0) || !Number.isFinite(value)) {
    bad(`${m[1]} must be a finite number of metres greater than 0 (no sign), got ${JSON.stringify(num)}`);
  }
  return m[1] === 'maxDistance' ? { georel: 'near', maxDistance: value } : { georel: 'near', minDistance: value };
}

function parseCoordinates(raw: unknown, geometry: CoordinateGeometryType): unknown {
  if (Array.isArray(raw)) return raw;
  if (typeof raw !== 'string') {
    bad(`geo-query coordinates must be a JSON array (or its text), got ${raw === null ? 'null' : typeof raw}`);
  }
  const text = raw.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Some clients double-encode the brackets; accept the percent-encoded text too.
    if (text.includes('%')) {
      try {
        parsed = JSON.parse(decodeURIComponent(text));
      } catch {
        /* reported below */
      }
    }
    if (parsed === undefined) {
      bad(`geo-query coordinates are not valid JSON: ${preview(text)}; expected a GeoJSON coordinates array for ${geometry}, e.g. ${example(geometry)}`);
    }
  }
  if (!Array.isArray(parsed)) {
    bad(`geo-query coordinates must be a JSON array, got ${preview(text)}; for ${geometry} e.g. ${example(geometry)}`);
  }
  return parsed;
}

function example(g: CoordinateGeometryType): string {
  switch (g) {
    case 'Point': return '[8,40]';
    case 'MultiPoint': return '[[8,40],[9,41]]';
    case 'LineString': return '[[8,40],[9,41]]';
    case 'MultiLineString': return '[[[8,40],[9,41]]]';
    case 'Polygon': return '[[[8,40],[9,40],[9,41],[8,40]]]';
    case 'MultiPolygon': return '[[[[8,40],[9,40],[9,41],[8,40]]]]';
  }
}

function caseHint(g: string): string {
  for (const t of GEOMETRIES.split(', ')) if (t.toLowerCase() === g.toLowerCase()) return ` (names are case-sensitive: use "${t}")`;
  return '';
}

function preview(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

/** The georel text of a parsed query (for echoing a subscription's geoQ back). */
export function formatGeorel(q: Pick<GeoQuery, 'georel' | 'maxDistance' | 'minDistance'>): string {
  if (q.georel !== 'near') return q.georel;
  return q.maxDistance !== undefined ? `near;maxDistance==${q.maxDistance}` : `near;minDistance==${q.minDistance}`;
}

/**
 * Expands the geoproperty term with the request's @context. Kept separate from parsing so the
 * parser stays free of JSON-LD; the default "location" expands to the core IRI.
 */
export function resolveGeoQ(q: GeoQuery, expandTerm: (term: string) => string): GeoQuery {
  const iri = expandTerm(q.geoproperty);
  return iri === q.geoproperty ? q : { ...q, geoproperty: iri };
}

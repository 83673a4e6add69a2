/** NGSI-LD geo: GeoJSON validation, geo-query parsing, geometry predicates (pure, no I/O). */
export {
  bboxOf,
  validateGeometry,
  type BBox,
  type Geometry,
  type GeometryCollection,
  type LineString,
  type MultiLineString,
  type MultiPoint,
  type MultiPolygon,
  type Point,
  type Polygon,
  type Position,
} from './geojson.ts';
export {
  DEFAULT_GEOPROPERTY,
  formatGeorel,
  hasGeoQ,
  parseGeoQ,
  resolveGeoQ,
  type GeoQParams,
  type GeoQuery,
  type GeoRel,
} from './geoq.ts';
export { distanceMeters, matchesGeoQ, prefilterBox } from './predicates.ts';

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemError } from '../../src/common/problem.ts';
import {
  bboxOf,
  distanceMeters,
  formatGeorel,
  hasGeoQ,
  matchesGeoQ,
  parseGeoQ,
  prefilterBox,
  resolveGeoQ,
  validateGeometry,
  type Geometry,
  type GeoQuery,
} from '../../src/ngsi-ld/geo/index.ts';

// One degree of arc on the broker's sphere (R = 6371008.8 m): R * pi / 180 = 111195.0802 m.
const DEG_M = (6371008.8 * Math.PI) / 180;

const g = (type: string, coordinates: unknown): Geometry => validateGeometry({ type, coordinates });
const pt = (lon: number, lat: number) => g('Point', [lon, lat]);
const square = (x0: number, y0: number, x1: number, y1: number) =>
  [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
const poly = (...rings: number[][][]) => g('Polygon', rings);
const line = (...positions: number[][]) => g('LineString', positions);

function q(georel: string, geometry: string, coordinates: unknown, geoproperty?: string): GeoQuery {
  return parseGeoQ({ georel, geometry, coordinates: typeof coordinates === 'string' ? coordinates : JSON.stringify(coordinates), geoproperty });
}

/** Asserts a BadRequestData ProblemError whose detail matches `re`. */
function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProblemError, `expected ProblemError, got ${String(e)}`);
    assert.equal(e.kind, 'BadRequestData');
    assert.match(e.message, re);
    return true;
  });
}

// The query square used throughout: 0..10 x 0..10 degrees, optionally with the hole 4..6 x 4..6.
const SQ = square(0, 0, 10, 10);
const HOLE = square(4, 4, 6, 6);

describe('validateGeometry', () => {
  it('accepts every geometry type and returns the same object', () => {
    const samples: unknown[] = [
      { type: 'Point', coordinates: [8, 40] },
      { type: 'Point', coordinates: [8, 40, 120] },
      { type: 'MultiPoint', coordinates: [[8, 40], [9, 41]] },
      { type: 'LineString', coordinates: [[8, 40], [9, 41]] },
      { type: 'MultiLineString', coordinates: [[[8, 40], [9, 41]], [[0, 0], [1, 1], [2, 0]]] },
      { type: 'Polygon', coordinates: [SQ, HOLE] },
      { type: 'MultiPolygon', coordinates: [[SQ], [square(20, 20, 21, 21)]] },
      { type: 'GeometryCollection', geometries: [{ type: 'Point', coordinates: [1, 2] }, { type: 'LineString', coordinates: [[0, 0], [1, 1]] }] },
      { type: 'Point', coordinates: [-180, -90] },
      { type: 'Point', coordinates: [180, 90] },
    ];
    for (const s of samples) assert.equal(validateGeometry(s), s);
  });

  it('accepts the conformance fixtures: repeated positions and a self-crossing ring (019_11)', () => {
    validateGeometry({ type: 'Polygon', coordinates: [[[13.3844376, 52.5356966], [13.3844376, 52.5356966], [13.381691, 52.5123012], [13.4235764, 52.5100027], [13.4331894, 52.5273425], [13.3844376, 52.5356966]]] });
    validateGeometry({ type: 'Polygon', coordinates: [[[13.2865906, 52.5648645], [13.2879639, 52.5648645], [13.2797241, 52.4988679], [13.477478, 52.4712703], [13.5049438, 52.5373084], [13.2865906, 52.5648645]]] });
  });

  it('rejects non-objects and unknown types', () => {
    rejects(() => validateGeometry(null), /must be a GeoJSON object.*null/);
    rejects(() => validateGeometry('POINT(1 2)'), /must be a GeoJSON object.*string/);
    rejects(() => validateGeometry([1, 2]), /must be a GeoJSON object.*array/);
    rejects(() => validateGeometry({ type: 'Circle', coordinates: [1, 2] }), /unsupported type "Circle"; expected one of Point, .*GeometryCollection/);
    rejects(() => validateGeometry({ type: 'point', coordinates: [1, 2] }), /unsupported type "point"/);
    rejects(() => validateGeometry({ type: 'Point' }), /Point is missing "coordinates"/);
  });

  it('rejects the wrong nesting depth with the expected shape', () => {
    rejects(() => g('Point', [[1, 2]]), /Point coordinates are nested 2 levels deep but Point needs 1/);
    rejects(() => g('Polygon', [[0, 0], [1, 0], [1, 1], [0, 0]]), /nested 2 levels deep but Polygon needs 3 \(\[\[\[lon, lat\]/);
    rejects(() => g('MultiPolygon', [SQ]), /nested 3 levels deep but MultiPolygon needs 4/);
    rejects(() => g('LineString', [1, 2]), /nested 1 level deep but LineString needs 2/);
    rejects(() => g('Point', 'abc'), /coordinates must be an array/);
  });

  it('rejects open rings, short rings and short lines', () => {
    rejects(() => poly([[0, 0], [1, 0], [1, 1], [0, 1]]), /^Polygon ring 0 is not closed: first position \[0, 0\] differs from last \[0, 1\]$/);
    rejects(() => poly(SQ, [[4, 4], [6, 4], [6, 6], [4, 6]]), /Polygon ring 1 is not closed/);
    rejects(() => g('MultiPolygon', [[SQ], [[[0, 0], [1, 0], [1, 1], [0, 2]]]]), /MultiPolygon polygon 1 ring 0 is not closed: first position \[0, 0\] differs from last \[0, 2\]/);
    rejects(() => poly([[0, 0], [1, 0], [0, 0]]), /ring 0 has 3 positions; a linear ring needs at least 4/);
    rejects(() => g('Polygon', []), /at least one linear ring/);
    rejects(() => line([0, 0]), /LineString has 1 position; at least 2 required/);
    rejects(() => g('MultiPoint', []), /MultiPoint has 0 points/);
    rejects(() => g('MultiLineString', []), /at least one line/);
    rejects(() => g('MultiPolygon', []), /at least one polygon/);
  });

  it('rejects out-of-range and non-numeric coordinates', () => {
    rejects(() => pt(181, 0), /longitude 181 is out of range \[-180, 180\]/);
    rejects(() => pt(0, -90.5), /latitude -90.5 is out of range \[-90, 90\]/);
    // Swapped order is the usual mistake: lat 120 hints at [lat, lon].
    rejects(() => pt(45, 120), /latitude 120 is out of range.*\[longitude, latitude\]/);
    rejects(() => poly([[0, 0], [1, 0], [1, 95], [0, 0]]), /Polygon ring 0 position 2: latitude 95/);
    rejects(() => g('Point', ['8', 40]), /finite numbers/);
    rejects(() => g('Point', [8]), /must be a position \[longitude, latitude\]/);
    rejects(() => g('Point', [8, 40, 1, 2]), /must be a position/);
  });

  it('checks GeometryCollection members', () => {
    rejects(() => validateGeometry({ type: 'GeometryCollection', geometries: [] }), /at least one geometry/);
    rejects(() => validateGeometry({ type: 'GeometryCollection' }), /"geometries" array/);
    rejects(
      () => validateGeometry({ type: 'GeometryCollection', geometries: [{ type: 'Point', coordinates: [0, 0] }, { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]] }] }),
      /GeometryCollection geometry 1 \(Polygon\) ring 0 is not closed/,
    );
  });
});

describe('bboxOf', () => {
  it('covers every position, altitude ignored', () => {
    assert.deepEqual(bboxOf(g('Point', [8, 40, 100])), [8, 40, 8, 40]);
    assert.deepEqual(bboxOf(poly(SQ, HOLE)), [0, 0, 10, 10]);
    assert.deepEqual(bboxOf(g('MultiLineString', [[[1, 5], [2, 6]], [[-3, 0], [0, 1]]])), [-3, 0, 2, 6]);
    assert.deepEqual(bboxOf(g('MultiPolygon', [[SQ], [square(20, -5, 21, 1)]])), [0, -5, 21, 10]);
    assert.deepEqual(
      bboxOf(validateGeometry({ type: 'GeometryCollection', geometries: [{ type: 'Point', coordinates: [-1, 50] }, { type: 'LineString', coordinates: [[3, 4], [5, 6]] }] })),
      [-1, 4, 5, 50],
    );
  });
});

describe('parseGeoQ', () => {
  it('parses near with either distance and defaults geoproperty to location', () => {
    const a = parseGeoQ({ georel: 'near;maxDistance==2000', geometry: 'Point', coordinates: '[8,40]' });
    assert.deepEqual(a, { georel: 'near', maxDistance: 2000, geometry: { type: 'Point', coordinates: [8, 40] }, geoproperty: 'location', bbox: [8, 40, 8, 40] });
    const b = parseGeoQ({ georel: 'near;minDistance==10', geometry: 'Point', coordinates: '[8,40]', geoproperty: '' });
    assert.equal(b.minDistance, 10);
    assert.equal(b.maxDistance, undefined);
    assert.equal(b.geoproperty, 'location');
    assert.equal(q('near;maxDistance==1.5e3', 'Point', [0, 0]).maxDistance, 1500);
    assert.equal(q('near;maxDistance==0.5', 'Point', [0, 0]).maxDistance, 0.5);
  });

  it('parses every other georel and keeps geoproperty as given', () => {
    for (const rel of ['within', 'contains', 'intersects', 'equals', 'disjoint', 'overlaps']) {
      const r = q(rel, 'Polygon', [SQ], 'observationSpace');
      assert.equal(r.georel, rel);
      assert.equal(r.geoproperty, 'observationSpace');
      assert.deepEqual(r.bbox, [0, 0, 10, 10]);
    }
  });

  it('accepts coordinates as an array (geoQ object), with spaces, or percent-encoded', () => {
    const arr = [[[2.0, 48.5], [2.6, 48.5], [2.6, 49.2], [2.0, 49.2], [2.0, 48.5]]];
    const a = parseGeoQ({ georel: 'within', geometry: 'Polygon', coordinates: arr });
    assert.equal(a.geometry.coordinates, arr);
    assert.deepEqual(q('equals', 'Point', '[13.3986, 52.5547]').geometry.coordinates, [13.3986, 52.5547]);
    assert.deepEqual(q('equals', 'Point', '%5B17.1,48.1%5D').geometry.coordinates, [17.1, 48.1]);
    assert.deepEqual(q('near;maxDistance==2000', 'LineString', '[[0,60],[10,60]]').bbox, [0, 60, 10, 60]);
  });

  it('rejects the malformed georels of conformance TP 019_30', () => {
    rejects(() => q('near;maxDistance==0', 'Point', [8, 40]), /maxDistance must be a finite number of metres greater than 0.*"0"/);
    rejects(() => q('near;maxDistance==-100', 'Point', [8, 40]), /greater than 0.*"-100"/);
    rejects(() => q('near;maxDistance==5;minDistance==1', 'Point', [8, 40]), /exactly one distance modifier/);
    rejects(() => q('near', 'Point', [8, 40]), /"near" needs exactly one distance modifier/);
    rejects(() => q('touches', 'Point', [8, 40]), /Unknown georel "touches"; expected one of near;maxDistance==<metres>/);
    rejects(() => q('near;maxDistance==inf', 'Point', [8, 40]), /"inf"/);
    rejects(() => q('near;maxDistance==1e400', 'Point', [8, 40]), /"1e400"/);
  });

  it('rejects other malformed georels', () => {
    rejects(() => q('invalid', 'Point', [8, 40]), /Unknown georel "invalid"/);
    rejects(() => q('near;maxDistance=2000', 'Point', [8, 40]), /Invalid near modifier "maxDistance=2000"/);
    rejects(() => q('near;distance==5', 'Point', [8, 40]), /Invalid near modifier/);
    rejects(() => q('near;maxDistance==', 'Point', [8, 40]), /greater than 0/);
    rejects(() => q('near;maxDistance==+5', 'Point', [8, 40]), /"\+5"/);
    rejects(() => q('near;maxDistance==0.0', 'Point', [8, 40]), /"0.0"/);
    rejects(() => q('near;maxDistance==2km', 'Point', [8, 40]), /"2km"/);
    rejects(() => q('within;maxDistance==5', 'Polygon', [SQ]), /"within" takes no modifiers/);
    rejects(() => q('WITHIN', 'Polygon', [SQ]), /Unknown georel "WITHIN"/);
  });

  it('rejects missing members (037_03_03: georel alone)', () => {
    rejects(() => parseGeoQ({ georel: 'within' }), /geometry is missing/);
    rejects(() => parseGeoQ({ georel: 'within', geometry: 'Polygon' }), /coordinates are missing/);
    rejects(() => parseGeoQ({ geometry: 'Point', coordinates: '[8,40]' }), /georel is missing/);
    rejects(() => parseGeoQ({ georel: 'near;maxDistance==10', geometry: 'Point', coordinates: '' }), /coordinates are missing/);
  });

  it('rejects bad geometry names and bad coordinates', () => {
    rejects(() => q('within', 'point', [8, 40]), /Unsupported geo-query geometry "point".*use "Point"/);
    rejects(() => q('within', 'Circle', [8, 40]), /Unsupported geo-query geometry "Circle"; expected one of Point/);
    rejects(() => q('within', 'GeometryCollection', [8, 40]), /Unsupported geo-query geometry/);
    rejects(() => q('within', 'Point', '[8,40'), /coordinates are not valid JSON: "\[8,40".*e\.g\. \[8,40\]/);
    rejects(() => q('within', 'Point', '{"a":1}'), /must be a JSON array/);
    rejects(() => q('within', 'Polygon', [8, 40]), /Invalid geo-query coordinates: .*nested 1 level deep but Polygon needs 3/);
    rejects(() => q('within', 'Point', [[8, 40]]), /nested 2 levels deep but Point needs 1/);
    rejects(() => q('within', 'Polygon', [[[0, 0], [1, 0], [1, 1], [0, 1]]]), /ring 0 is not closed: first position \[0, 0\] differs from last \[0, 1\]/);
    rejects(() => q('within', 'Point', [200, 40]), /longitude 200 is out of range/);
    rejects(() => parseGeoQ({ georel: 'within', geometry: 'Point', coordinates: 42 }), /must be a JSON array.*number/);
    rejects(() => q('within', 'Point', [8, 40], 'a,b'), /single attribute name/);
  });

  it('resolves the geoproperty term, formats georel back, detects presence', () => {
    const r = resolveGeoQ(q('near;maxDistance==2000', 'Point', [8, 40]), (t) => `https://uri.etsi.org/ngsi-ld/${t}`);
    assert.equal(r.geoproperty, 'https://uri.etsi.org/ngsi-ld/location');
    assert.equal(formatGeorel(r), 'near;maxDistance==2000');
    assert.equal(formatGeorel(q('near;minDistance==10', 'Point', [8, 40])), 'near;minDistance==10');
    assert.equal(formatGeorel(q('overlaps', 'Point', [8, 40])), 'overlaps');
    assert.equal(hasGeoQ({}), false);
    assert.equal(hasGeoQ({ geoproperty: 'location' }), false);
    assert.equal(hasGeoQ({ georel: 'within' }), true);
  });
});

/** Evaluates one georel against several targets and returns a 0/1 string, one char per target. */
function hits(query: GeoQuery, targets: Geometry[]): string {
  return targets.map((t) => (matchesGeoQ(query, t) ? '1' : '0')).join('');
}

describe('matchesGeoQ: intersects / disjoint', () => {
  const Q = q('intersects', 'Polygon', [SQ, HOLE]);
  const D = q('disjoint', 'Polygon', [SQ, HOLE]);
  const cases: [string, Geometry, boolean][] = [
    ['point inside the shell', pt(2, 2), true],
    ['point on the outer edge', pt(10, 5), true],
    ['point at a corner', pt(0, 0), true],
    ['point outside', pt(11, 5), false],
    ['point in the hole', pt(5, 5), false],
    ['point on the hole edge', pt(4, 5), true],
    ['multipoint, one part inside', g('MultiPoint', [[20, 20], [1, 1]]), true],
    ['multipoint, all in hole or outside', g('MultiPoint', [[5, 5], [-1, -1]]), false],
    ['line crossing the shell', line([-5, 2], [5, 2]), true],
    ['line wholly inside the shell', line([1, 1], [2, 2]), true],
    ['line wholly inside the hole', line([4.5, 4.5], [5.5, 5.5]), false],
    ['line touching a corner from outside', line([-1, -1], [0, 0]), true],
    ['line outside, bbox overlapping', line([12, 9], [9, 12]), false],
    ['polygon overlapping the shell', poly(square(8, 8, 12, 12)), true],
    ['polygon enclosing the query', poly(square(-1, -1, 11, 11)), true],
    ['polygon inside the hole', poly(square(4.5, 4.5, 5.5, 5.5)), false],
    ['polygon sharing an edge from outside', poly(square(10, 0, 12, 10)), true],
    ['polygon far away', poly(square(50, 50, 51, 51)), false],
    ['multipolygon, second part inside', g('MultiPolygon', [[square(50, 50, 51, 51)], [square(1, 1, 2, 2)]]), true],
    ['multilinestring, all parts in the hole', g('MultiLineString', [[[4.5, 4.5], [5, 5]], [[5, 5.5], [5.5, 5.5]]]), false],
  ];
  for (const [name, target, want] of cases) {
    it(`${name}: intersects=${want}, disjoint=${!want}`, () => {
      assert.equal(matchesGeoQ(Q, target), want);
      assert.equal(matchesGeoQ(D, target), !want);
    });
  }

  it('line and point queries', () => {
    const x = q('intersects', 'LineString', [[0, 0], [10, 10]]);
    assert.equal(hits(x, [line([0, 10], [10, 0]), line([0, 1], [9, 10]), line([5, 5], [20, 20]), pt(3, 3), pt(3, 3.1)]), '10110');
    const p = q('intersects', 'Point', [5, 5]);
    assert.equal(hits(p, [poly(SQ), poly(SQ, HOLE), line([0, 0], [10, 10]), pt(5, 5), pt(5, 5.000001)]), '10110');
  });
});

describe('matchesGeoQ: within (target within query)', () => {
  const W = q('within', 'Polygon', [SQ, HOLE]);
  it('points: interior only, holes excluded, boundary is not within (OGC)', () => {
    assert.equal(hits(W, [pt(2, 2), pt(5, 5), pt(0, 5), pt(4, 5), pt(11, 5)]), '10000');
    assert.equal(hits(W, [g('MultiPoint', [[1, 1], [9, 9]]), g('MultiPoint', [[1, 1], [11, 1]]), g('MultiPoint', [[1, 1], [10, 1]]), g('MultiPoint', [[0, 1], [10, 1]])]), '1010');
  });
  it('lines: inside, crossing out, crossing the hole, along the edge', () => {
    assert.equal(hits(W, [
      line([1, 1], [3, 1], [3, 3]),
      line([1, 1], [12, 1]),
      line([1, 5], [9, 5]),
      line([0, 0], [10, 0]),
      line([0, 1], [2, 1]),
      line([1, 1], [4, 4]),
    ]), '100011');
  });
  it('polygons: inside, equal, poking out, covering the hole, filling the hole', () => {
    assert.equal(hits(W, [
      poly(square(1, 1, 3, 3)),
      poly(SQ, HOLE),
      poly(square(8, 8, 12, 12)),
      poly(square(3, 3, 7, 7)),
      poly(HOLE),
      poly(square(0, 0, 4, 4)),
      g('MultiPolygon', [[square(1, 1, 2, 2)], [square(7, 7, 9, 9)]]),
      g('MultiPolygon', [[square(1, 1, 2, 2)], [square(4.5, 4.5, 5, 5)]]),
    ]), '11000110');
  });
  it('the whole square without the hole is within it (same boundary)', () => {
    assert.equal(matchesGeoQ(q('within', 'Polygon', [SQ]), poly(SQ)), true);
    // The hole-filling polygon's boundary lies wholly on the query boundary: interior point decides.
    assert.equal(matchesGeoQ(W, poly(HOLE)), false);
    assert.equal(matchesGeoQ(q('within', 'Polygon', [SQ]), poly(HOLE)), true);
  });
  it('within a line or a point', () => {
    const L = q('within', 'LineString', [[0, 0], [10, 0], [10, 10]]);
    assert.equal(hits(L, [pt(5, 0), pt(0, 0), pt(10, 5), pt(5, 1), line([2, 0], [10, 0], [10, 3]), line([2, 0], [11, 0]), poly(square(0, 0, 1, 1))]), '1010100');
    const P = q('within', 'Point', [3, 4]);
    assert.equal(hits(P, [pt(3, 4), pt(3, 4.5), g('MultiPoint', [[3, 4], [3, 4]]), line([3, 4], [3, 5])]), '1010');
  });
  it('within a MultiPolygon: each part may sit in a different polygon', () => {
    const M = q('within', 'MultiPolygon', [[square(0, 0, 1, 1)], [square(5, 5, 6, 6)]]);
    assert.equal(hits(M, [g('MultiPoint', [[0.5, 0.5], [5.5, 5.5]]), pt(3, 3), poly(square(5.2, 5.2, 5.8, 5.8)), line([0.5, 0.5], [5.5, 5.5])]), '1010');
  });
});

describe('matchesGeoQ: contains (target contains query)', () => {
  it('polygon targets containing points and polygons; holes respected', () => {
    const cp = q('contains', 'Point', [5, 5]);
    assert.equal(hits(cp, [poly(SQ), poly(SQ, HOLE), poly(square(0, 0, 5, 5)), pt(5, 5), line([0, 0], [10, 10]), line([0, 0], [5, 5])]), '100110');
    const cq = q('contains', 'Polygon', [square(1, 1, 2, 2)]);
    assert.equal(hits(cq, [poly(SQ), poly(square(1.5, 1.5, 3, 3)), poly(SQ, [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5], [0.5, 0.5]]), g('MultiPolygon', [[square(50, 50, 51, 51)], [SQ]])]), '1001');
  });
  it('line targets containing lines', () => {
    const cl = q('contains', 'LineString', [[1, 0], [2, 0]]);
    assert.equal(hits(cl, [line([0, 0], [3, 0]), line([0, 0], [1.5, 0]), line([0, 0], [1, 0], [2, 0], [2, 5])]), '101');
  });
});

describe('matchesGeoQ: equals', () => {
  it('same type and positions in order; altitude ignored', () => {
    assert.equal(hits(q('equals', 'Point', [2.29, 48.85]), [pt(2.29, 48.85), pt(2.29, 48.850001), g('Point', [2.29, 48.85, 35]), g('MultiPoint', [[2.29, 48.85]])]), '1010');
    const ring = [[0, 0], [1, 0], [1, 1], [0, 0]];
    const rotated = [[1, 0], [1, 1], [0, 0], [1, 0]];
    assert.equal(hits(q('equals', 'Polygon', [ring]), [poly(ring), poly(rotated), poly(ring, [[0.5, 0.2], [0.8, 0.2], [0.8, 0.5], [0.5, 0.2]])]), '100');
    assert.equal(hits(q('equals', 'MultiLineString', [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]), [g('MultiLineString', [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]), g('MultiLineString', [[[0, 0], [1, 1]]])]), '10');
  });
});

describe('matchesGeoQ: overlaps', () => {
  it('areas: partial overlap only', () => {
    const O = q('overlaps', 'Polygon', [SQ]);
    assert.equal(hits(O, [
      poly(square(5, 5, 15, 15)),
      poly(square(1, 1, 2, 2)),
      poly(SQ),
      poly(square(-5, -5, 20, 20)),
      poly(square(10, 0, 20, 10)),
      poly(square(20, 20, 30, 30)),
      line([-5, 5], [5, 5]),
      pt(5, 5),
    ]), '10000000');
  });
  it('areas with holes', () => {
    const O = q('overlaps', 'Polygon', [SQ, HOLE]);
    assert.equal(hits(O, [poly(square(4.5, 4.5, 5.5, 5.5)), poly(square(3, 3, 5, 5)), poly(HOLE), poly(square(3, 3, 7, 7))]), '0101');
  });
  it('lines: a shared stretch and each with a part of its own', () => {
    const O = q('overlaps', 'LineString', [[0, 0], [2, 0]]);
    assert.equal(hits(O, [line([1, 0], [3, 0]), line([1, -1], [1, 1]), line([0.5, 0], [1.5, 0]), line([-1, 0], [3, 0]), line([0, 0], [2, 0])]), '10000');
  });
  it('points: share some, each has others', () => {
    const O = q('overlaps', 'MultiPoint', [[0, 0], [1, 1]]);
    assert.equal(hits(O, [g('MultiPoint', [[1, 1], [2, 2]]), g('MultiPoint', [[0, 0]]), g('MultiPoint', [[0, 0], [1, 1]]), g('MultiPoint', [[3, 3], [4, 4]])]), '1000');
  });
});

describe('matchesGeoQ: near and distanceMeters', () => {
  it('point to point: one degree of latitude is R*pi/180 metres', () => {
    const target = pt(0, 1);
    assert.ok(Math.abs(distanceMeters(q('near;maxDistance==1', 'Point', [0, 0]), target) - DEG_M) < 1e-6);
    assert.equal(matchesGeoQ(q(`near;maxDistance==${DEG_M + 1}`, 'Point', [0, 0]), target), true);
    assert.equal(matchesGeoQ(q(`near;maxDistance==${DEG_M - 1}`, 'Point', [0, 0]), target), false);
    assert.equal(matchesGeoQ(q(`near;minDistance==${DEG_M - 1}`, 'Point', [0, 0]), target), true);
    assert.equal(matchesGeoQ(q(`near;minDistance==${DEG_M + 1}`, 'Point', [0, 0]), target), false);
  });

  it('point to line: perpendicular foot, not the nearest vertex', () => {
    const d = distanceMeters(q('near;maxDistance==1', 'Point', [0, 1]), line([-1, 0], [1, 0]));
    assert.ok(Math.abs(d - DEG_M) < 1e-6, String(d));
    const lines = distanceMeters(q('near;maxDistance==1', 'LineString', [[0, 0], [1, 0]]), line([0, 2], [1, 2]));
    assert.ok(Math.abs(lines - 2 * DEG_M) < 1e-6, String(lines));
  });

  it('a reference line, not its first position (019_30_09/10)', () => {
    const east = pt(10, 60.009); // 0.009 degrees of latitude north of the line's east end: ~1000.76 m
    const d = distanceMeters(q('near;maxDistance==1', 'LineString', [[0, 60], [10, 60]]), east);
    assert.ok(Math.abs(d - 0.009 * DEG_M) < 0.01, String(d));
    assert.equal(matchesGeoQ(q('near;maxDistance==2000', 'LineString', [[0, 60], [10, 60]]), east), true);
    assert.equal(matchesGeoQ(q('near;maxDistance==2000', 'LineString', [[0, 61], [10, 61]]), east), false);
  });

  it('the closest point is chosen metrically at high latitude (019_30_11/12)', () => {
    // In a frame centred on [0,85], the ends are (0, 0.6 deg) and (cos 85 deg = 0.0872 deg, 0):
    // the foot of the perpendicular is 0.6*0.0872/sqrt(0.36+0.0076) deg = 0.0863 deg = ~9.6 km.
    // Choosing the foot in raw degrees would land ~0.44 deg north, ~49 km away.
    const probe = line([0, 85.6], [1, 85]);
    const d = distanceMeters(q('near;maxDistance==1', 'Point', [0, 85]), probe);
    assert.ok(d > 9400 && d < 9700, String(d));
    assert.equal(matchesGeoQ(q('near;maxDistance==20000', 'Point', [0, 85]), probe), true);
    assert.equal(matchesGeoQ(q('near;maxDistance==5000', 'Point', [0, 85]), probe), false);
  });

  it('inside a polygon the distance is 0; in a hole it is to the hole edge', () => {
    const target = poly(SQ, HOLE);
    assert.equal(distanceMeters(q('near;maxDistance==1', 'Point', [2, 2]), target), 0);
    assert.equal(matchesGeoQ(q('near;minDistance==1', 'Point', [2, 2]), target), false);
    assert.equal(matchesGeoQ(q('near;maxDistance==1', 'Point', [2, 2]), target), true);
    // From [5,5] the hole edges are 1 degree away; the west/east ones are nearest, along the
    // parallel at 5 deg: 2R asin(cos 5deg * sin 0.5deg) ~= DEG_M * cos 5deg.
    const d = distanceMeters(q('near;maxDistance==1', 'Point', [5, 5]), target);
    const want = 2 * 6371008.8 * Math.asin(Math.cos((5 * Math.PI) / 180) * Math.sin((0.5 * Math.PI) / 180));
    assert.ok(Math.abs(d - want) < 0.01, `${d} vs ${want}`);
    // Polygon query containing a point target: distance 0.
    assert.equal(distanceMeters(q('near;maxDistance==1', 'Polygon', [SQ]), pt(3, 3)), 0);
  });

  it('multi geometries use their nearest part; results can be ordered', () => {
    const near = q('near;maxDistance==300000', 'Point', [0, 0]);
    const targets = [pt(0, 2), g('MultiPoint', [[0, 5], [0, -1]]), poly(square(3, -1, 4, 1)), pt(0, 0.5)];
    const d = targets.map((t) => distanceMeters(near, t));
    assert.ok(Math.abs(d[0] - 2 * DEG_M) < 1e-6);
    assert.ok(Math.abs(d[1] - DEG_M) < 1e-6);
    assert.ok(Math.abs(d[2] - 3 * DEG_M) < 1e-6); // edge x=3 at the equator, foot [3,0]
    assert.ok(Math.abs(d[3] - 0.5 * DEG_M) < 1e-6);
    assert.equal(hits(near, targets), '1101');
  });

  it('antimeridian: distances wrap even though topology does not', () => {
    const a = q('near;maxDistance==25000', 'Point', [179.9, 0]);
    assert.ok(Math.abs(distanceMeters(a, pt(-179.9, 0)) - 0.2 * DEG_M) < 1e-3);
    assert.equal(matchesGeoQ(a, pt(-179.9, 0)), true);
    assert.equal(matchesGeoQ(a, pt(179.6, 0)), false);
    // An edge on the other side of the antimeridian: 0.06 degrees of longitude at the equator.
    const edge = distanceMeters(a, line([-179.96, -1], [-179.96, 1]));
    assert.ok(Math.abs(edge - 0.14 * DEG_M) < 1e-3, String(edge));
    const b = q('near;maxDistance==7000', 'Point', [179.98, 0.5]);
    assert.equal(matchesGeoQ(b, line([-179.96, -1], [-179.96, 1])), true);
  });
});

describe('prefilterBox', () => {
  it('is null where no box bounds the answer, the query bbox otherwise', () => {
    assert.equal(prefilterBox(q('disjoint', 'Polygon', [SQ])), null);
    assert.equal(prefilterBox(q('near;minDistance==10', 'Point', [0, 0])), null);
    for (const rel of ['within', 'contains', 'intersects', 'equals', 'overlaps']) {
      assert.deepEqual(prefilterBox(q(rel, 'Polygon', [SQ, HOLE])), [0, 0, 10, 10]);
    }
  });

  it('grows a point by the distance, more in longitude away from the equator', () => {
    const [x0, y0, x1, y1] = prefilterBox(q(`near;maxDistance==${DEG_M}`, 'Point', [0, 0]))!;
    for (const v of [-x0, -y0, x1, y1]) assert.ok(v >= 1 && v < 1.000001, String(v));
    // At 60 deg: asin(sin 1deg / cos 60deg) = 2.0003 deg, a little over 1/cos(60deg) = 2.
    const b = prefilterBox(q(`near;maxDistance==${DEG_M}`, 'Point', [10, 60]))!;
    const dLon = (Math.asin(Math.sin(Math.PI / 180) / 0.5) * 180) / Math.PI;
    assert.ok(Math.abs(b[2] - 10 - dLon) < 1e-6 && Math.abs(10 - b[0] - dLon) < 1e-6, String(b));
    assert.ok(Math.abs(b[1] - 59) < 1e-6 && Math.abs(b[3] - 61) < 1e-6, String(b));
  });

  it('widens to all longitudes across a pole or the antimeridian, and clamps latitude', () => {
    assert.deepEqual(prefilterBox(q(`near;maxDistance==${DEG_M}`, 'Point', [30, 89.5]))!.map((v) => Math.round(v * 1e6) / 1e6), [-180, 88.5, 180, 90]);
    const am = prefilterBox(q(`near;maxDistance==${DEG_M}`, 'Point', [179.5, 0]))!;
    assert.equal(am[0], -180);
    assert.equal(am[2], 180);
    assert.deepEqual(prefilterBox(q('near;maxDistance==30000000', 'Point', [0, 0])), [-180, -90, 180, 90]);
  });

  it('never excludes a match (pseudo-random sweep incl. high latitudes and the antimeridian)', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const centres: [number, number][] = [[0, 0], [13.4, 52.5], [-70, -80], [179.9, 10], [-179.95, -30], [0, 89.9], [100, 75]];
    const overlaps = (a: number[], b: number[]) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
    let matched = 0;
    for (const [cx, cy] of centres) {
      for (const dist of [500, 20000, 300000]) {
        const near = q(`near;maxDistance==${dist}`, 'Point', [cx, cy]);
        const box = prefilterBox(near)!;
        for (let i = 0; i < 300; i++) {
          const spread = (dist / DEG_M) * 3;
          let lon = cx + (rnd() * 2 - 1) * spread * 4;
          const lat = Math.max(-90, Math.min(90, cy + (rnd() * 2 - 1) * spread));
          if (lon > 180) lon -= 360;
          if (lon < -180) lon += 360;
          const t = rnd() < 0.5 ? pt(lon, lat) : line([lon, lat], [Math.max(-180, Math.min(180, lon + spread * (rnd() - 0.5))), lat]);
          if (matchesGeoQ(near, t)) {
            matched++;
            assert.ok(overlaps(bboxOf(t), box), `target ${JSON.stringify(t)} outside ${JSON.stringify(box)}`);
          }
        }
      }
    }
    assert.ok(matched > 100, `sweep matched only ${matched}`);
  });
});

describe('GeometryCollection targets', () => {
  const coll = validateGeometry({ type: 'GeometryCollection', geometries: [{ type: 'Point', coordinates: [1, 1] }, { type: 'LineString', coordinates: [[2, 2], [3, 3]] }] });
  it('act as the union of their parts', () => {
    assert.equal(matchesGeoQ(q('within', 'Polygon', [SQ]), coll), true);
    assert.equal(matchesGeoQ(q('within', 'Polygon', [square(0, 0, 2.5, 2.5)]), coll), false);
    assert.equal(matchesGeoQ(q('intersects', 'Point', [2.5, 2.5]), coll), true);
    assert.equal(matchesGeoQ(q('contains', 'Point', [1, 1]), coll), true);
    assert.ok(Math.abs(distanceMeters(q('near;maxDistance==1', 'Point', [1, 0]), coll) - DEG_M) < 1e-6);
  });
});

describe('conformance fixtures (ETSI suite 019_10, 019_11, 019_30)', () => {
  const count = (targets: Geometry[], georel: string, geometry: string, coordinates: string) =>
    targets.filter((t) => matchesGeoQ(parseGeoQ({ georel, geometry, coordinates }), t)).length;

  it('019_10: Point entities in Berlin', () => {
    const ents = [pt(13.3986, 52.5547), pt(13.509818, 52.363457), pt(13.215983, 52.470441)];
    const area = '[[[13.1616211,52.5438124],[13.597641,52.4840224],[13.5948944,52.3402782],[13.142395,52.386428],[13.1616211,52.5438124]]]';
    assert.equal(count(ents, 'equals', 'Point', '[13.3986, 52.5547]'), 1);
    assert.equal(count(ents, 'near;maxDistance==15000', 'Point', '[13.388930, 52.534473]'), 2);
    assert.equal(count(ents, 'near;minDistance==15000', 'Point', '[13.388930, 52.534473]'), 1);
    assert.equal(count(ents, 'within', 'Polygon', area), 2);
    assert.equal(count(ents, 'disjoint', 'Polygon', area), 1);
    assert.equal(count(ents, 'disjoint', 'Point', '[13.3986, 52.5547]'), 2);
    assert.equal(count(ents, 'contains', 'Point', '[13.3986, 52.5547]'), 1);
    assert.equal(count(ents, 'intersects', 'Point', '[13.3986, 52.5547]'), 1);
  });

  it('019_11: Polygon entities (one self-crossing)', () => {
    const P1 = '[[[13.2865906,52.5648645],[13.2879639,52.5648645],[13.2797241,52.4988679],[13.477478,52.4712703],[13.5049438,52.5373084],[13.2865906,52.5648645]]]';
    const ents = [g('Polygon', JSON.parse(P1)), g('Polygon', [[[13.315773, 52.4757209], [13.339119, 52.4443421], [13.3892441, 52.4669371], [13.315773, 52.4757209]]])];
    const q2 = '[[[13.3456421,52.4794848],[13.3641815,52.4428773],[13.4177399,52.4730023],[13.3459854,52.479903],[13.3456421,52.4794848]]]';
    const q4 = '[[[13.1369019,52.5198225],[13.1365585,52.5200314],[13.131752,52.4980907],[13.1832504,52.5026887],[13.1369019,52.5198225]]]';
    assert.equal(count(ents, 'equals', 'Polygon', P1), 1);
    assert.equal(count(ents, 'intersects', 'Polygon', q2), 1);
    assert.equal(count(ents, 'contains', 'Polygon', '[[[13.3844376,52.5356966],[13.3844376,52.5356966],[13.381691,52.5123012],[13.4235764,52.5100027],[13.4331894,52.5273425],[13.3844376,52.5356966]]]'), 1);
    assert.equal(count(ents, 'contains', 'Polygon', q4), 0);
    assert.equal(count(ents, 'disjoint', 'Polygon', q4), 2);
    assert.equal(count(ents, 'within', 'Polygon', '[[[13.3023834,52.4903066],[13.3027267,52.4905156],[13.2745743,52.465632],[13.3343124,52.4185447],[13.4311295,52.47107],[13.3023834,52.4903066]]]'), 1);
    assert.equal(count(ents, 'overlaps', 'Polygon', q2), 1);
    assert.equal(count(ents, 'contains', 'Point', '[13.3442688,52.4650045]'), 1);
  });

  it('019_30: hole excludes, default geoproperty probes', () => {
    const ents = [pt(5, 5), pt(2, 2), line([0, 85.6], [1, 85]), pt(10, 60.009)];
    assert.equal(count(ents, 'within', 'Polygon', '[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]]'), 1);
    assert.equal(count(ents, 'near;maxDistance==2000', 'Point', '[8,40]'), 0);
    assert.equal(count([pt(8, 40)], 'near;maxDistance==2000', 'Point', '[8,40]'), 1);
    assert.equal(count(ents, 'near;maxDistance==2000', 'LineString', '[[0,60],[10,60]]'), 1);
    assert.equal(count(ents, 'near;maxDistance==2000', 'LineString', '[[0,61],[10,61]]'), 0);
    assert.equal(count(ents, 'near;maxDistance==20000', 'Point', '[0,85]'), 1);
    assert.equal(count(ents, 'near;maxDistance==5000', 'Point', '[0,85]'), 0);
  });
});

describe('evaluation state', () => {
  it('interleaved queries do not leak scratch state and inputs are untouched', () => {
    const target = poly(square(1, 1, 2, 2));
    const before = JSON.stringify(target);
    const a = q('within', 'Polygon', [SQ]);
    const b = q('near;maxDistance==1000', 'Point', [50, 50]);
    const c = q('overlaps', 'Polygon', [square(1.5, 1.5, 3, 3)]);
    for (let i = 0; i < 3; i++) {
      assert.equal(matchesGeoQ(a, target), true);
      assert.equal(matchesGeoQ(b, target), false);
      assert.equal(matchesGeoQ(c, target), true);
    }
    assert.equal(JSON.stringify(target), before);
  });
});

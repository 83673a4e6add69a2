import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { ProblemError } from '../../src/common/problem.ts';
import {
  parseTypeExpr,
  resolveTypeExpr,
  evaluateTypeExpr,
  typeExprToSql,
  simpleTypeList,
  type TypeExpr,
} from '../../src/ngsi-ld/query/index.ts';

const NS = 'https://ex.org/';
const expand = (t: string) => (t.includes(':') ? t : NS + t);
const rt = (s: string): TypeExpr => resolveTypeExpr(parseTypeExpr(s), expand);
const rejects = (q: string, kind: string, re?: RegExp) =>
  assert.throws(() => parseTypeExpr(q), (e: unknown) => e instanceof ProblemError && e.kind === kind && (!re || re.test(e.message)));

const ENTITIES: [string, string[]][] = [
  ['building', ['Building']],
  ['house', ['House']],
  ['home-vehicle', ['Home', 'Vehicle']],
  ['motorhome', ['Motorhome']],
  ['home', ['Home']],
  ['vehicle', ['Vehicle', 'Thing']],
  ['iri', ['https://other.org/Building']],
].map(([id, t]) => [id as string, (t as string[]).map(expand)]);

const CASES: [string, string[]][] = [
  ['Building', ['building']],
  ['Building|House', ['building', 'house']],
  ['Building,House', ['building', 'house']],
  ['(Home;Vehicle)', ['home-vehicle']],
  ['Home;Vehicle', ['home-vehicle']],
  ['(Home;Vehicle)|Motorhome', ['home-vehicle', 'motorhome']],
  ['(Home;Vehicle),Motorhome', ['home-vehicle', 'motorhome']],
  ['Vehicle;(Home,Thing)', ['home-vehicle', 'vehicle']],
  ['https://other.org/Building', ['iri']],
  ['Nothing', []],
  ['((Home));Vehicle,Building', ['building', 'home-vehicle']],
];

describe('parseTypeExpr', () => {
  test('structure', () => {
    assert.deepEqual(parseTypeExpr('Building'), { type: 'name', name: 'Building' });
    const e = parseTypeExpr('(Home;Vehicle)|Motorhome');
    assert.equal(e.type, 'or');
    assert.equal(e.type === 'or' && e.items[0].type, 'and');
    assert.deepEqual(parseTypeExpr('https://ex.org/T#x'), { type: 'name', name: 'https://ex.org/T#x' });
  });
  test('resolveTypeExpr expands every name', () => {
    assert.deepEqual(rt('A,(B;C)'), {
      type: 'or',
      items: [{ type: 'name', name: NS + 'A' }, { type: 'and', items: [{ type: 'name', name: NS + 'B' }, { type: 'name', name: NS + 'C' }] }],
    });
  });
  test('simpleTypeList is the fast path for plain lists only', () => {
    assert.deepEqual(simpleTypeList(parseTypeExpr('A')), ['A']);
    assert.deepEqual(simpleTypeList(parseTypeExpr('A,B|C')), ['A', 'B', 'C']);
    assert.deepEqual(simpleTypeList(parseTypeExpr('(A,B)')), ['A', 'B']);
    assert.equal(simpleTypeList(parseTypeExpr('A;B')), null);
    assert.equal(simpleTypeList(parseTypeExpr('A,(B;C)')), null);
  });
  for (const [q, re] of [
    ['', /empty/],
    ['A,', /expected an entity type/],
    [',A', /expected an entity type/],
    ['(A;B', /missing '\)'/],
    ['A)', /unbalanced/],
    ['A B', /whitespace/],
    ['()', /expected an entity type/],
  ] as [string, RegExp][]) {
    test(`rejects ${JSON.stringify(q)}`, () => rejects(q, 'BadRequestData', re));
  }
  test('limits', () => {
    rejects('('.repeat(40) + 'A' + ')'.repeat(40), 'TooComplexQuery');
    rejects(Array.from({ length: 300 }, (_, i) => 'T' + i).join(','), 'TooComplexQuery');
  });
});

describe('evaluateTypeExpr', () => {
  for (const [q, ids] of CASES) {
    test(q, () => {
      const e = rt(q);
      assert.deepEqual(ENTITIES.filter(([, t]) => evaluateTypeExpr(e, t)).map(([id]) => id), ids);
    });
  }
});

describe('typeExprToSql agrees with evaluateTypeExpr (PGlite)', () => {
  let db: PGlite;
  before(async () => {
    db = new PGlite();
    await db.exec('CREATE TABLE e (id text PRIMARY KEY, types text[] NOT NULL); CREATE INDEX ON e USING gin (types)');
    for (const [id, t] of ENTITIES) await db.query('INSERT INTO e VALUES ($1, $2)', [id, t]);
  });
  after(async () => db?.close());

  test('same id sets', async () => {
    for (const [q, ids] of CASES) {
      const params: unknown[] = [];
      const w = typeExprToSql(rt(q), params);
      const rows = (await db.query<{ id: string }>(`SELECT id FROM e WHERE ${w}`, params)).rows.map((r) => r.id).sort();
      assert.deepEqual(rows, [...ids].sort(), q);
    }
  });

  test('uses array operators with one bound array per plain list', () => {
    const params: unknown[] = [];
    assert.equal(typeExprToSql(rt('A,B'), params, 'x.types'), 'x.types && $1::text[]');
    assert.deepEqual(params, [[NS + 'A', NS + 'B']]);
    const p2: unknown[] = [];
    assert.equal(typeExprToSql(rt('A;B'), p2), 'types @> $1::text[]');
  });
});

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { ProblemError } from '../../src/common/problem.ts';
import { parseScopeQ, evaluateScopeQ, scopeQToSql } from '../../src/ngsi-ld/query/index.ts';

const rejects = (q: string, kind: string, re?: RegExp) =>
  assert.throws(() => parseScopeQ(q), (e: unknown) => e instanceof ProblemError && e.kind === kind && (!re || re.test(e.message)));

// Fixtures of conformance 019_01_06 / 019_34 plus edge shapes.
const ENTITIES: [string, string[] | null][] = [
  ['one', ['/Madrid/Gardens/ParqueNorte']],
  ['many', ['/Madrid/Gardens/ParqueNorte', '/CompanyA/OrganizationB/UnitC']],
  ['sights', ['/Madrid/Sights/ParqueNorte/Statue']],
  ['madrid', ['/Madrid']],
  ['company', ['/CompanyA']],
  ['deep', ['/Madrid/Gardens/ParqueNorte/Parterre1']],
  ['none', null],
  ['empty', []],
  ['noslash', ['Madrid']],
];

const CASES: [string, string[]][] = [
  ['/Madrid/Gardens/ParqueNorte', ['one', 'many']],
  ['/Madrid/+/ParqueNorte', ['one', 'many']],
  ['/Madrid/+/ParqueNorte/#', ['one', 'many', 'sights', 'deep']],
  ['/CompanyA/#', ['many', 'company']],
  ['/#', ['one', 'many', 'sights', 'madrid', 'company', 'deep', 'noslash']],
  ['/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC', ['many']],
  ['/Madrid/Gardens/ParqueNorte,/CompanyA/OrganizationB/UnitC', ['one', 'many']],
  ['(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)', ['many']],
  ['(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)|/Madrid/Gardens/ParqueNorte', ['one', 'many']],
  ['/CompanyA/OrganizationB/UnitC|/Nowhere/AtAll', ['many']],
  ['(/Madrid/Gardens/ParqueNorte;/Nowhere/AtAll)', []],
  ['/Madrid', ['madrid']],
  ['/Madrid/#', ['one', 'many', 'sights', 'madrid', 'deep']],
  ['/+', ['madrid', 'company']],
  ['/+/#', ['one', 'many', 'sights', 'madrid', 'company', 'deep']],
  ['/Madrid/Gardens', []],
  ['((/Madrid/#;/CompanyA/#),/Madrid)', ['many', 'madrid']],
];

describe('parseScopeQ', () => {
  test('parses scopes, wildcards and operators', () => {
    assert.deepEqual(parseScopeQ('/Madrid/Gardens/#'), { type: 'scope', levels: ['Madrid', 'Gardens'], subtree: true });
    assert.deepEqual(parseScopeQ('/#'), { type: 'scope', levels: [], subtree: true });
    assert.deepEqual(parseScopeQ('/Madrid/+/ParqueNorte'), { type: 'scope', levels: ['Madrid', '+', 'ParqueNorte'], subtree: false });
    assert.equal(parseScopeQ('/a,/b|/c').type, 'or');
    const g = parseScopeQ('(/a;/b)|/c');
    assert.equal(g.type, 'or');
    assert.equal(g.type === 'or' && g.items[0].type, 'and');
    assert.equal(parseScopeQ('/a;/b,/c').type, 'or', '; binds tighter than ,');
  });
  for (const [q, re] of [
    ['', /empty/],
    ['Madrid', /must start with '\/'/],
    ['/Madrid/#/x', /'#' is only allowed as the last level/],
    ['/Ma drid', /invalid scope level/],
    ['/a//b', /invalid scope level/],
    ['/', /invalid scope level|no level/],
    ['(/a;/b', /missing '\)'/],
    ['/a)', /unbalanced/],
    ['/a,', /expected a scope/],
    ['/a;;/b', /expected a scope/],
  ] as [string, RegExp][]) {
    test(`rejects ${JSON.stringify(q)}`, () => rejects(q, 'BadRequestData', re));
  }
  test('limits', () => {
    rejects('('.repeat(50) + '/a' + ')'.repeat(50), 'TooComplexQuery');
    rejects('/a'.repeat(3000), 'TooComplexQuery');
  });
});

describe('evaluateScopeQ', () => {
  for (const [q, ids] of CASES) {
    test(q, () => {
      const e = parseScopeQ(q);
      assert.deepEqual(ENTITIES.filter(([, s]) => evaluateScopeQ(e, s ?? undefined)).map(([id]) => id), ids);
    });
  }
  test('trailing-slash garbage does not count as a sub-scope', () => {
    assert.equal(evaluateScopeQ(parseScopeQ('/a/#'), ['/a/']), false);
    assert.equal(evaluateScopeQ(parseScopeQ('/a/#'), ['/a//b']), false);
  });
});

describe('scopeQToSql agrees with evaluateScopeQ (PGlite)', () => {
  let db: PGlite;
  before(async () => {
    db = new PGlite();
    await db.exec('CREATE TABLE e (id text PRIMARY KEY, scopes text[])');
    for (const [id, s] of [...ENTITIES, ['slash', ['/a/']], ['dbl', ['/a//b']], ['a', ['/a']]] as [string, string[] | null][]) {
      await db.query('INSERT INTO e VALUES ($1, $2)', [id, s]);
    }
  });
  after(async () => db?.close());

  test('same id sets, also under NOT', async () => {
    const all = (await db.query<{ id: string; scopes: string[] | null }>('SELECT id, scopes FROM e ORDER BY id')).rows;
    for (const [q] of [...CASES, ['/a/#', []] as [string, string[]]]) {
      const e = parseScopeQ(q);
      const params: unknown[] = [];
      const w = scopeQToSql(e, params);
      const sql = (await db.query<{ id: string }>(`SELECT id FROM e WHERE ${w} ORDER BY id`, params)).rows.map((r) => r.id);
      const js = all.filter((r) => evaluateScopeQ(e, r.scopes ?? undefined)).map((r) => r.id);
      assert.deepEqual(sql, js, q);
      const neg = (await db.query<{ id: string }>(`SELECT id FROM e WHERE NOT (${w}) ORDER BY id`, params)).rows.map((r) => r.id);
      assert.deepEqual(neg, all.map((r) => r.id).filter((id) => !js.includes(id)), `NOT ${q}`);
    }
  });

  test('exact scopes use @> (GIN-friendly) with bound values', () => {
    const params: unknown[] = [];
    const sql = scopeQToSql(parseScopeQ('/Madrid/Gardens'), params, 't.scopes');
    assert.match(sql, /t\.scopes @> ARRAY\[\$1::text\]/);
    assert.deepEqual(params, ['/Madrid/Gardens']);
  });
});

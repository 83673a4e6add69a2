import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PGlite } from '@electric-sql/pglite';
import { ProblemError } from '../../src/common/problem.ts';
import type { AttrInstance, StoredEntity } from '../../src/ngsi-ld/model/types.ts';
import {
  parseQ,
  resolveQ,
  evaluateQ,
  qToSql,
  qLinkedDepth,
  qAttributes,
  toPosixRegex,
  type QExpr,
  type QTerm,
  type ResolvedQ,
} from '../../src/ngsi-ld/query/index.ts';

const NS = 'https://ex.org/';
const CORE = 'https://uri.etsi.org/ngsi-ld/';
const expand = (t: string): string => {
  if (t.includes(':')) return t;
  if (t === 'createdAt' || t === 'modifiedAt' || t === 'location') return CORE + t;
  return NS + t;
};
const rq = (q: string, opts?: Parameters<typeof resolveQ>[2]): ResolvedQ => resolveQ(parseQ(q), expand, opts);
const term = (e: QExpr): QTerm => {
  assert.equal(e.type, 'term');
  return e as QTerm;
};

function ent(id: string, attrs: Record<string, AttrInstance | AttrInstance[]>, extra: Partial<StoredEntity> = {}): StoredEntity {
  const a: Record<string, AttrInstance[]> = {};
  for (const [k, v] of Object.entries(attrs)) a[expand(k)] = Array.isArray(v) ? v : [v];
  return {
    id,
    type: [NS + 'Thing'],
    createdAt: '2024-01-01T00:00:00.000Z',
    modifiedAt: '2024-06-01T00:00:00.000Z',
    attrs: a,
    ...extra,
  };
}
const P = (value: unknown, more: Record<string, unknown> = {}): AttrInstance => ({ type: 'Property', value, ...more });
const R = (object: string | string[], more: Record<string, unknown> = {}): AttrInstance => ({ type: 'Relationship', object, ...more });

function expectProblem(fn: () => unknown, kind: string, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProblemError, `expected ProblemError, got ${String(e)}`);
    assert.equal(e.kind, kind);
    if (re) assert.match(e.message, re);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------

describe('parseQ: constructs', () => {
  test('comparison with number, quoted string and each operator', () => {
    for (const op of ['==', '!=', '>', '>=', '<', '<=']) {
      const t = term(parseQ(`speed${op}50`));
      assert.equal(t.op, op);
      assert.deepEqual(t.operand, { kind: 'value', value: { kind: 'number', value: 50 } });
    }
    assert.deepEqual(term(parseQ('brandName!="Mercedes"')).operand, {
      kind: 'value',
      value: { kind: 'string', value: 'Mercedes', quoted: true },
    });
    assert.deepEqual(term(parseQ('x==-1.5e3')).operand, { kind: 'value', value: { kind: 'number', value: -1500 } });
  });

  test('existence and negated existence', () => {
    const t = term(parseQ('isMonitoredBy'));
    assert.equal(t.op, null);
    assert.equal(t.negated, false);
    const n = term(parseQ('!heading'));
    assert.equal(n.negated, true);
    assert.equal(n.path.attr, 'heading');
  });

  test('AND binds tighter than OR; parentheses group; same-kind nodes flatten', () => {
    const e = parseQ('a==1|b==2;c==3');
    assert.equal(e.type, 'or');
    if (e.type !== 'or') return;
    assert.equal(e.items[1].type, 'and');
    const g = parseQ('((speed>50|rpm>3000);brandName=="Mercedes")');
    assert.equal(g.type, 'and');
    const f = parseQ('a;b;(c;d)');
    assert.equal(f.type, 'and');
    if (f.type === 'and') assert.equal(f.items.length, 4);
    const w = parseQ('(temperature>=20;temperature<=25)|capacity<=10');
    assert.equal(w.type, 'or');
  });

  test('booleans, dates, datetimes, times, URIs and bare words', () => {
    assert.deepEqual(term(parseQ('on==true')).operand, { kind: 'value', value: { kind: 'boolean', value: true } });
    const dt = term(parseQ('temperature.observedAt>=2017-12-24T12:00:00Z'));
    assert.deepEqual(dt.path.sub, ['observedAt']);
    assert.equal(dt.operand?.kind === 'value' && dt.operand.value.kind, 'instant');
    assert.equal(term(parseQ('d<2020-01-01')).operand?.kind === 'value' && (term(parseQ('d<2020-01-01')).operand as any).value.kind, 'instant');
    assert.equal((term(parseQ('t>12:30:00Z')).operand as any).value.kind, 'time');
    // a quoted DateTime compares as a time too (conformance 5722_01_02)
    assert.equal((term(parseQ('modifiedAt>"2020-01-01T00:00:00Z"')).operand as any).value.kind, 'instant');
    assert.deepEqual(term(parseQ('locatedIn==urn:ngsi-ld:City:Pisa')).operand, {
      kind: 'value',
      value: { kind: 'string', value: 'urn:ngsi-ld:City:Pisa', quoted: false },
    });
    assert.deepEqual((term(parseQ('category==commercial')).operand as any).value, { kind: 'string', value: 'commercial', quoted: false });
  });

  test('ranges and value lists', () => {
    assert.deepEqual(term(parseQ('airQualityLevel==4..5')).operand, {
      kind: 'range',
      min: { kind: 'number', value: 4 },
      max: { kind: 'number', value: 5 },
    });
    const r = term(parseQ('t==2020-01-01T00:00:00Z..2020-12-31T00:00:00Z')).operand as any;
    assert.equal(r.kind, 'range');
    assert.equal(r.min.kind, 'instant');
    assert.equal((term(parseQ('n=="a".."c"')).operand as any).kind, 'range');
    const l = term(parseQ('name=="Eiffel Tower","Pisa Tower"')).operand as any;
    assert.equal(l.kind, 'list');
    assert.deepEqual(l.values.map((v: any) => v.value), ['Eiffel Tower', 'Pisa Tower']);
    const l2 = term(parseQ('color!="black", "red"')).operand as any;
    assert.equal(l2.values.length, 2);
    const l3 = term(parseQ('x==1,true,"s",urn:a:b')).operand as any;
    assert.deepEqual(l3.values.map((v: any) => v.kind), ['number', 'boolean', 'string', 'string']);
  });

  test('dotted, bracket and combined paths; full IRIs; compact IRIs', () => {
    assert.deepEqual(term(parseQ('a.b.c==1')).path, { attr: 'a', sub: ['b', 'c'], member: null, linked: null });
    assert.deepEqual(term(parseQ('address[city]=="Berlin"')).path.member, ['city']);
    assert.deepEqual(term(parseQ('a[b][c]==1')).path.member, ['b', 'c']);
    assert.deepEqual(term(parseQ('a[b.c]==1')).path.member, ['b', 'c']);
    const s = term(parseQ('sensor.rawdata[airquality.particulate]==40')).path;
    assert.deepEqual([s.attr, s.sub, s.member], ['sensor', ['rawdata'], ['airquality', 'particulate']]);
    const iri = term(parseQ('https://ex.org/v1.2/temp.observedAt>2020-01-01')).path;
    assert.equal(iri.attr, 'https://ex.org/v1.2/temp');
    assert.deepEqual(iri.sub, ['observedAt']);
    assert.equal(term(parseQ('https://ex.org/ns#speed>2')).path.attr, 'https://ex.org/ns#speed');
    assert.deepEqual(term(parseQ('ex:temp.ex:sub==1')).path.sub, ['ex:sub']);
    assert.deepEqual(term(parseQ('color[*]=="rouge"')).path.member, ['*']);
  });

  test('linked entity paths with type hints', () => {
    const p = term(parseQ('managedBy{Building,House:owner{name}}=="x"')).path;
    assert.equal(p.attr, 'managedBy');
    assert.deepEqual(p.linked?.types, ['Building', 'House']);
    assert.equal(p.linked?.path.attr, 'owner');
    assert.equal(p.linked?.path.linked?.path.attr, 'name');
    assert.equal(qLinkedDepth(parseQ('owner{works{name}}=="x";a')), 2);
    assert.equal(qLinkedDepth(parseQ('a==1')), 0);
  });

  test('pattern operators: quoted and unquoted regex', () => {
    assert.deepEqual(term(parseQ('name~="^Eiffel"')).operand, { kind: 'regex', source: '^Eiffel' });
    assert.equal(term(parseQ('name!~="^E"')).op, '!~=');
    const e = parseQ('name~=^(a|b)c;x==1');
    assert.equal(e.type, 'and');
    assert.deepEqual(term((e as any).items[0]).operand, { kind: 'regex', source: '^(a|b)c' });
    assert.equal(term(parseQ('name~="a\\"b"')).operand?.kind === 'regex' && (term(parseQ('name~="a\\"b"')).operand as any).source, 'a"b');
    assert.equal((term(parseQ('n~="\\d+"')).operand as any).source, '\\d+');
    const or = parseQ('speed>25|name~="^m"');
    assert.equal(or.type, 'or');
  });

  test('string escapes are JSON escapes', () => {
    assert.equal((term(parseQ('a=="x\\"y\\\\z\\u00e9\\n"')).operand as any).value.value, 'x"y\\zé\n');
  });
});

describe('parseQ: malformed input', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['   ', /empty/],
    ['(a==1', /missing '\)'/],
    ['a==1)', /unbalanced '\)'/],
    ['((a==1)', /missing '\)'/],
    ['a==', /missing value/],
    ['speed>', /missing value/],
    ['a=1', /unknown operator '='/],
    ['a=>1', /unknown operator '='/],
    ['a!1', /unknown operator/],
    ['a==1 b', /position 6/],
    ['a==1;', /expected a query term/],
    [';a', /expected a query term/],
    ['a||b', /expected a query term/],
    ['()', /expected a query term/],
    ['name=="Eiffel', /unterminated string/],
    ['a=="\\q"', /invalid escape/],
    ['airQualityLevel>4..5', /range can only be used/],
    ['a>1,2', /value list can only be used/],
    ['a==1.."x"', /same type/],
    ['a>true', /boolean/],
    ['a>abc', /must be a number/],
    ['a==1e400', /out of range/],
    ['a==12abc', /not a valid number/],
    ['a~="[a"', /invalid regular expression/],
    ['a~=', /missing regular expression/],
    ['a~="(?<n>x)"', /unsupported regular expression/],
    ['a~="\\p{L}"', /unsupported regular expression/],
    ['!(a)', /negate/],
    ['!a==1', /cannot be combined/],
    ['a.observedAt.b==1', /must be the last/],
    ['a[b==1', /missing '\]'/],
    ['a[]==1', /empty name/],
    ['a{b==1', /expected '\}'/],
    ['a.b{c}==1', /linked-entity/],
    ['==1', /expected an attribute name/],
    ['.a==1', /not a valid attribute path/],
    ['a..b==1', /not a valid attribute path/],
  ];
  for (const [q, re] of cases) {
    test(`rejects ${JSON.stringify(q)}`, () => expectProblem(() => parseQ(q), 'BadRequestData', re));
  }
  test('error message carries the 1-based position', () => {
    expectProblem(() => parseQ('speed>50;name=="x'), 'BadRequestData', /position 16/);
  });
  test('limits: length, depth and term count are TooComplexQuery, not a stack overflow', () => {
    expectProblem(() => parseQ('a'.repeat(9000)), 'TooComplexQuery');
    expectProblem(() => parseQ('('.repeat(40) + 'a' + ')'.repeat(40)), 'TooComplexQuery');
    expectProblem(() => parseQ(Array.from({ length: 300 }, (_, i) => `a${i}`).join(';')), 'TooComplexQuery');
    expectProblem(() => parseQ('('.repeat(5000)), 'TooComplexQuery');
    assert.doesNotThrow(() => parseQ('('.repeat(30) + 'a' + ')'.repeat(30)));
  });
  test('non-string input', () => expectProblem(() => parseQ(42 as unknown as string), 'BadRequestData'));
});

describe('toPosixRegex', () => {
  test('maps JS-only escapes to ARE and rejects divergent constructs', () => {
    assert.equal(toPosixRegex('\\bfoo\\B'), '\\yfoo\\Y');
    assert.equal(toPosixRegex('[\\b]'), '[\\u0008]');
    assert.equal(toPosixRegex('\\x41B'), '\\u0041B');
    assert.equal(toPosixRegex('a.b'), 'a[^\\n\\r\\u2028\\u2029]b');
    for (const bad of ['\\e', '[[:alpha:]]', '[^]', '(?<n>a)', 'a{', '[\\D]']) {
      expectProblem(() => toPosixRegex(bad), 'BadRequestData');
    }
  });
});

describe('resolveQ', () => {
  test('expands attribute and sub-attribute names, not member keys nor instance keys', () => {
    const r = rq('temperature.accuracy.observedAt>2020-01-01;address[city]=="x";https://o.org/a==1');
    const items = (r.root as any).items;
    assert.equal(items[0].path.attr, NS + 'temperature');
    assert.deepEqual(items[0].path.sub, [NS + 'accuracy']);
    assert.equal(items[0].path.leafKey, 'observedAt');
    assert.deepEqual(items[1].path.member, ['city']);
    assert.equal(items[2].path.attr, 'https://o.org/a');
    assert.deepEqual([...qAttributes(r)], [NS + 'temperature', NS + 'address', 'https://o.org/a']);
  });
  test('linked type hints are expanded; createdAt/modifiedAt address the entity', () => {
    const r = rq('rel{Building:name}=="x"');
    assert.deepEqual((r.root as any).path.linked.types, [NS + 'Building']);
    assert.equal((rq('modifiedAt>2020-01-01').root as any).path.system, 'modifiedAt');
  });
  test('expandValues expands string values of the listed attributes only', () => {
    const r = rq('category==commercial;other==commercial', { expandValues: ['category'] });
    const items = (r.root as any).items;
    assert.equal(items[0].operand.value.value, NS + 'commercial');
    assert.equal(items[1].operand.value.value, 'commercial');
  });
});

// ---------------------------------------------------------------------------------------------
// Evaluation semantics (and the corpus for the SQL agreement test)

const E: StoredEntity[] = [
  ent('e01', { speed: P(60), brandName: P('Mercedes'), name: P('Eiffel Tower') }),
  ent('e02', { speed: P(40), brandName: P('Tesla'), name: P('Pisa Tower') }),
  ent('e03', { speed: P('fast'), rpm: P(4000), name: P('mountain') }),
  ent('e04', { speed: [P(10, { datasetId: 'urn:ds:a' }), P(90, { datasetId: 'urn:ds:b' })] }),
  ent('e05', { colors: P(['red', 'blue', 'green']), airQualityLevel: P(4) }),
  ent('e06', { colors: P(['black']), airQualityLevel: P(6) }),
  ent('e07', { address: P({ city: 'Berlin', street: 'Ulrich Strasse', zip: { code: '10115' } }) }),
  ent('e08', { address: P({ city: 'Paris' }), capacity: P(5) }),
  ent('e09', { color: { type: 'LanguageProperty', languageMap: { fr: 'rouge', en: 'red', de: 'rot' } } }),
  ent('e10', { color: { type: 'LanguageProperty', languageMap: { fr: ['chat', 'noir'], en: ['cat', 'black'] } } }),
  ent('e11', { category: { type: 'VocabProperty', vocab: NS + 'commercial' } }),
  ent('e12', { category: { type: 'VocabProperty', vocab: [NS + 'residential', NS + 'commercial'] } }),
  ent('e13', { managedBy: R('urn:ngsi-ld:Building:e02'), locatedIn: R('urn:ngsi-ld:City:Pisa') }),
  ent('e14', { managedBy: R(['urn:ngsi-ld:Building:e01', 'urn:x:9']), locatedIn: R('urn:ngsi-ld:City:Paris') }),
  ent('e15', { route: { type: 'ListRelationship', objectList: ['urn:r:1', 'urn:r:2'] } }),
  ent('e16', { readings: { type: 'ListProperty', valueList: [1, 2, 3] } }),
  ent('e17', { parkingTickets: { type: 'JsonProperty', json: { id: '85a6', value: 'Overstay 60 minutes' } } }),
  ent('e18', {
    temperature: P(21.5, { observedAt: '2017-12-24T13:00:00Z', unitCode: 'CEL', [NS + 'accuracy']: P(0.5, { observedAt: '2017-12-24T13:00:00.500Z' }) }),
  }),
  ent('e19', { temperature: P(19, { observedAt: '2017-12-24T11:00:00+00:00', unitCode: 'FAH' }) }),
  ent('e20', { temperature: P(25, { observedAt: '2017-12-24T13:30:00+02:00' }) }),
  ent('e21', { deadline: P({ '@type': 'DateTime', '@value': '2021-03-01T10:00:00Z' }), opens: P('08:30:00Z') }),
  ent('e22', { deadline: P('2021-02-29T00:00:00Z'), opens: P('18:00') }),
  ent('e23', { day: P('2020-05-05'), flag: P(true) }),
  ent('e24', { day: P('2020-05-05T12:00:00Z'), flag: P(false) }),
  ent('e25', { flag: P('true'), route: P('550') }),
  ent('e26', { route: P(550), note: P('line1\nline2') }),
  ent('e27', { nothing: P(null), heading: P(90), speed: P(30) }),
  ent('e28', { sensor: P(40, { [NS + 'rawdata']: P({ airquality: { particulate: 40, PM20: 85 } }) }) }),
  ent('e29', { location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [8, 40] } }, name: P(['Alpha', 'Beta']) }),
  ent('e30', { n: P(1.0), m: P(-0.5), s: P('Zebra') }),
  ent('e31', { n: P(2), s: P('apple'), arr: P([[1, 2], [3]]) }, { createdAt: '2019-01-01T00:00:00.000Z', modifiedAt: '2019-02-01T00:00:00.000Z' }),
  ent('e32', { temperature: [P(15, { datasetId: 'urn:ds:x' }), P(30)] }),
];

const match = (q: string | ResolvedQ, opts?: Parameters<typeof evaluateQ>[2]): string[] => {
  const r = typeof q === 'string' ? rq(q) : q;
  return E.filter((e) => evaluateQ(r, e, opts)).map((e) => e.id);
};

// Expected answers chosen by reading clause 4.9; the SQL translation must reproduce every one.
const CASES: [string, string[]][] = [
  ['speed>50', ['e01', 'e04']],
  ['speed>50;brandName!="Mercedes"', []],
  ['speed>50;brandName!="Tesla"', ['e01']],
  ['brandName!="Mercedes"', ['e02']],
  ['speed', ['e01', 'e02', 'e03', 'e04', 'e27']],
  ['!speed;temperature', ['e18', 'e19', 'e20', 'e32']],
  ['!heading;speed>25', ['e01', 'e02', 'e04']],
  ['speed==10..40', ['e02', 'e04', 'e27']],
  ['speed!=10..40', ['e01', 'e03', 'e04']],
  ['speed!=60', ['e02', 'e03', 'e04', 'e27']],
  ['speed=="fast"', ['e03']],
  ['speed<"m"', ['e03']],
  ['((speed>50|rpm>3000);name~="^m")', ['e03']],
  ['(speed>50|rpm>3000);name~="^E"', ['e01']],
  ['name=="Eiffel Tower","Pisa Tower"', ['e01', 'e02']],
  ['name!="Eiffel Tower","Big Ben"', ['e02', 'e03', 'e29']],
  ['name!~="^Eiffel"', ['e02', 'e03', 'e29']],
  ['name~="Tow"', ['e01', 'e02']],
  ['name~="a$"', ['e29']],
  ['colors=="red"', ['e05']],
  ['colors!="red"', ['e06']],
  ['colors=="black","blue"', ['e05', 'e06']],
  ['airQualityLevel==4..5', ['e05']],
  ['airQualityLevel!=4..5', ['e06']],
  ['airQualityLevel>=4;airQualityLevel<7', ['e05', 'e06']],
  ['address[city]=="Berlin"', ['e07']],
  ['address[postcode]=="Berlin"', []],
  ['address[city]', ['e07', 'e08']],
  ['address[zip][code]=="10115"', ['e07']],
  ['address[zip.code]~="^101"', ['e07']],
  ['color[en]=="red"', ['e09']],
  ['color[en]=="rouge"', []],
  ['color[*]=="rouge"', ['e09']],
  ['color[*]!="red"', ['e10']],
  ['color=="black"', ['e10']],
  ['color[fr]~="^n"', ['e10']],
  ['category==commercial', []],
  [`category=="${NS}commercial"`, ['e11', 'e12']],
  ['managedBy=="urn:ngsi-ld:Building:e01"', ['e14']],
  ['managedBy!="urn:ngsi-ld:Building:e01"', ['e13']],
  ['locatedIn==urn:ngsi-ld:City:Pisa|locatedIn==urn:ngsi-ld:City:Paris', ['e13', 'e14']],
  ['managedBy>"urn:a"', []],
  ['managedBy~="urn"', []],
  ['route=="urn:r:2"', ['e15']],
  ['route=="550"', ['e25']],
  ['route==550', ['e26']],
  ['route!=550', ['e15', 'e25']],
  ['readings==2', ['e16']],
  ['readings>2', ['e16']],
  ['parkingTickets[value]=="Overstay 60 minutes"', ['e17']],
  ['temperature.observedAt>=2017-12-24T12:00:00Z', ['e18']],
  ['temperature.observedAt<"2017-12-24T12:00:00.000Z"', ['e19', 'e20']],
  ['temperature.observedAt==2017-12-24T11:30:00Z', ['e20']],
  ['temperature.unitCode=="CEL"', ['e18']],
  ['temperature.unitCode', ['e18', 'e19']],
  ['temperature.accuracy<1', ['e18']],
  ['temperature.accuracy.observedAt>2017-12-24T13:00:00Z', ['e18']],
  ['temperature.datasetId=="urn:ds:x"', ['e32']],
  ['temperature>20;temperature<20', ['e32']],
  ['deadline>2021-01-01', ['e21']],
  ['deadline==2021-03-01T11:00:00+01:00', ['e21']],
  ['deadline~="^2021"', ['e21', 'e22']],
  ['opens<12:00:00Z', ['e21']],
  ['opens>=12:00', ['e22']],
  ['day==2020-05-05', ['e23']],
  ['day<=2020-05-05T12:00:00Z', ['e23', 'e24']],
  ['day=="2020-05-05"', ['e23']],
  ['flag==true', ['e23']],
  ['flag!=true', ['e24', 'e25']],
  ['flag=="true"', ['e25']],
  ['note~="^line1.line2$"', []],
  ['note~="line2$"', ['e26']],
  ['nothing', ['e27']],
  ['nothing!=1', ['e27']],
  ['nothing==1', []],
  ['sensor.rawdata[airquality.particulate]==40', ['e28']],
  ['sensor.rawdata[airquality.PM20]>80', ['e28']],
  ['sensor.rawdata[airquality]', ['e28']],
  ['location', ['e29']],
  ['location[type]=="Point"', ['e29']],
  ['location[coordinates][0]==8', ['e29']],
  ['n==1', ['e30']],
  ['n>=1;n<=2', ['e30', 'e31']],
  ['m<0', ['e30']],
  ['s>"Z"', ['e30', 'e31']],
  ['s<"a"', ['e30']],
  ['arr==3', []],
  ['arr[1][0]==3', ['e31']],
  ['arr[-1][0]==3', ['e31']],
  ['createdAt<2020-01-01T00:00:00Z', ['e31']],
  ['modifiedAt>"2020-01-01T00:00:00Z";speed', ['e01', 'e02', 'e03', 'e04', 'e27']],
  ['https://ex.org/speed>80', ['e04']],
  ['speed.observedAt', []],
  ['unknown|name=="mountain"', ['e03']],
];

describe('evaluateQ semantics', () => {
  for (const [q, ids] of CASES) {
    test(q, () => assert.deepEqual(match(q), ids));
  }

  test('expandValues makes a VocabProperty term match (clause 4.9 EXAMPLE 12)', () => {
    assert.deepEqual(match(rq('category==commercial', { expandValues: ['category'] })), ['e11', 'e12']);
    assert.deepEqual(match(rq('category==residential,commercial', { expandValues: ['category'] })), ['e11', 'e12']);
  });

  test('lang option selects the LanguageProperty value when no [lang] is given', () => {
    assert.deepEqual(match('color=="rot"', { lang: 'de' }), ['e09']);
    assert.deepEqual(match('color=="rouge"', { lang: 'de' }), []);
    assert.deepEqual(match('color[fr]=="rouge"', { lang: 'de' }), ['e09']);
  });

  test('linked entity terms follow Relationships through getEntity, honouring type hints', () => {
    const byId = new Map(E.map((e) => ['urn:ngsi-ld:Building:' + e.id, { ...e, type: [NS + 'Building'] }]));
    const getEntity = (id: string) => byId.get(id);
    assert.deepEqual(match('managedBy{name}=="Pisa Tower"', { getEntity }), ['e13']);
    assert.deepEqual(match('managedBy{Building:name}=="Pisa Tower"', { getEntity }), ['e13']);
    assert.deepEqual(match('managedBy{Vehicle:name}=="Pisa Tower"', { getEntity }), []);
    assert.deepEqual(match('managedBy{speed}>50', { getEntity }), ['e14']);
    assert.deepEqual(match('!managedBy{speed}', { getEntity }).includes('e13'), false);
    assert.deepEqual(match('managedBy{name}=="Pisa Tower"'), [], 'without getEntity linked terms never match');
  });

  test('evaluation does not throw on odd stored shapes', () => {
    const odd = ent('odd', {
      a: { type: 'Property' } as AttrInstance,
      b: { type: 'LanguageProperty', languageMap: [] as unknown as Record<string, string> },
      c: P(1, { [NS + 'sub']: 'not-an-object' }),
    });
    for (const q of ['a==1', 'a!=1', 'b=="x"', 'b[*]!="x"', 'c.sub==1', 'c.sub', 'a[x]', 'b']) {
      assert.doesNotThrow(() => evaluateQ(rq(q), odd), q);
    }
    assert.equal(evaluateQ(rq('a!=1'), odd), false);
    assert.equal(evaluateQ(rq('c.sub'), odd), false);
  });
});

// ---------------------------------------------------------------------------------------------

describe('qToSql agrees with evaluateQ (PGlite)', () => {
  let db: PGlite;
  before(async () => {
    db = new PGlite();
    await db.exec('CREATE TABLE e (id text PRIMARY KEY, attrs jsonb NOT NULL, created_at text NOT NULL, modified_at text NOT NULL)');
    for (const x of E) {
      await db.query('INSERT INTO e VALUES ($1, $2::jsonb, $3, $4)', [x.id, JSON.stringify(x.attrs), x.createdAt, x.modifiedAt]);
    }
  });
  after(async () => {
    await db?.close();
  });

  const sqlIds = async (r: ResolvedQ, opts?: Parameters<typeof qToSql>[3]): Promise<string[]> => {
    const params: unknown[] = [];
    const where = qToSql(r, params, 'attrs', opts);
    const res = await db.query<{ id: string }>(`SELECT id FROM e WHERE ${where} ORDER BY id`, params);
    return res.rows.map((row) => row.id);
  };

  test(`${CASES.length} expressions give the same id sets`, async () => {
    const failures: string[] = [];
    for (const [q] of CASES) {
      const r = rq(q);
      const js = match(r);
      const sql = await sqlIds(r);
      if (JSON.stringify(js) !== JSON.stringify(sql)) failures.push(`${q}: evaluateQ=${js} sql=${sql}`);
      // negation through NOT must agree too (SQL is two-valued)
      const neg = await sqlIds(rq(q)).then(async () => {
        const params: unknown[] = [];
        const w = qToSql(r, params);
        const res = await db.query<{ id: string }>(`SELECT id FROM e WHERE NOT (${w}) ORDER BY id`, params);
        return res.rows.map((row) => row.id);
      });
      const jsNeg = E.map((e) => e.id).filter((id) => !js.includes(id));
      if (JSON.stringify(jsNeg) !== JSON.stringify(neg)) failures.push(`NOT ${q}: js=${jsNeg} sql=${neg}`);
    }
    assert.deepEqual(failures, []);
  });

  test('options: lang, expandValues, qualified column', async () => {
    const r = rq('color=="rot"');
    assert.deepEqual(await sqlIds(r, { lang: 'de' }), match(r, { lang: 'de' }));
    const v = rq('category==commercial', { expandValues: ['category'] });
    assert.deepEqual(await sqlIds(v), ['e11', 'e12']);
    const params: unknown[] = [];
    const w = qToSql(rq('createdAt<2020-01-01'), params, 't.attrs');
    const res = await db.query<{ id: string }>(`SELECT id FROM e AS t WHERE ${w}`, params);
    assert.deepEqual(res.rows.map((x) => x.id), ['e31']);
  });

  test('values and names never appear in the SQL text', () => {
    const params: unknown[] = [];
    const sql = qToSql(rq(`name=="x'); DROP TABLE e; --";speed>5;address[city']=="y"`), params);
    assert.ok(!sql.includes('DROP'));
    assert.ok(!sql.includes(NS));
    assert.ok(params.includes(NS + 'name'));
  });

  test('appends to existing params', () => {
    const params: unknown[] = ['tenant'];
    const sql = qToSql(rq('speed>5'), params);
    assert.match(sql, /\$2/);
    assert.doesNotMatch(sql, /\$1\b/);
  });

  test('linked terms are refused in SQL', () => {
    expectProblem(() => qToSql(rq('managedBy{name}=="x"'), []), 'OperationNotSupported');
  });
});

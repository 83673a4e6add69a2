import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { ProblemError } from '../../src/common/problem.ts';
import {
  ActiveContext, ContextLoader, ContextRegistry, CORE_CONTEXT, CORE_CONTEXT_DOCUMENT, CORE_CONTEXT_URL,
  DEFAULT_VOCAB, InMemoryContextStore, coreActiveContext, isCoreContextUrl, type ContextDetails,
} from '../../src/ngsi-ld/jsonld/index.ts';

// jsonld.js ships no typings and @types/jsonld is not installed: load it untyped, used as the oracle only
interface JsonLdApi {
  expand(input: unknown, options: unknown): Promise<Array<Record<string, unknown>>>;
  compact(input: unknown, ctx: unknown, options: unknown): Promise<Record<string, unknown>>;
}
const jsonld = createRequire(import.meta.url)('jsonld') as JsonLdApi;

const NGSI = 'https://uri.etsi.org/ngsi-ld/';
const FIWARE_URL = 'https://fiware.github.io/data-models/context.jsonld';
const SUITE_URL = 'https://ngsi-ld-test-suite.example/context.jsonld';
const fiwareDoc = JSON.parse(readFileSync('/work/shared/ngsi-ld-conformance/harness/static/fiware/data-models-context.jsonld', 'utf8'));
const suiteDoc = {
  '@context': {
    Building: 'https://ngsi-ld-test-suite/context#Building',
    Vehicle: 'https://ngsi-ld-test-suite/context#Vehicle',
    almostFull: 'https://ngsi-ld-test-suite/context#almostFull',
    name: 'https://ngsi-ld-test-suite/context#name',
    speed: 'https://ngsi-ld-test-suite/context#speed',
  },
};

function problem(kind: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ProblemError, `expected ProblemError, got ${String(e)}`);
    assert.equal(e.kind, kind);
    if (re) assert.match(e.message, re);
    return true;
  };
}

describe('ActiveContext: core', () => {
  const ctx = coreActiveContext();
  test('core terms, keyword aliases and datatype coercion', () => {
    assert.equal(ctx.expandTerm('Property'), NGSI + 'Property');
    assert.equal(ctx.expandTerm('GeoProperty'), NGSI + 'GeoProperty');
    assert.equal(ctx.expandTerm('observedAt'), NGSI + 'observedAt');
    assert.equal(ctx.expandTerm('object'), NGSI + 'hasObject');
    assert.equal(ctx.expandTerm('Point'), 'https://purl.org/geojson/vocab#Point');
    assert.equal(ctx.expandTerm('description'), 'http://purl.org/dc/terms/description');
    assert.equal(ctx.expandTerm('type'), '@type');
    assert.equal(ctx.expandTerm('id'), '@id');
    assert.equal(ctx.termType('createdAt'), NGSI + 'DateTime');
    assert.equal(ctx.termType('vocab'), '@vocab');
    assert.equal(ctx.termType('object'), '@id');
    assert.equal(ctx.termType('json'), '@json');
    assert.equal(ctx.termType('speed'), undefined);
    assert.deepEqual(ctx.definition('coordinates')?.container, ['@list']);
    assert.equal(ctx.vocab, DEFAULT_VOCAB);
  });
  test('undefined terms use the default vocab; IRIs and compact IRIs', () => {
    assert.equal(ctx.expandTerm('speed'), DEFAULT_VOCAB + 'speed');
    assert.equal(ctx.expandTerm('ngsi-ld:foo'), NGSI + 'foo');
    assert.equal(ctx.expandTerm('geojson:Point'), 'https://purl.org/geojson/vocab#Point');
    assert.equal(ctx.expandTerm('http://example.org/a#b'), 'http://example.org/a#b');
    assert.equal(ctx.expandTerm('urn:ngsi-ld:x:y'), 'urn:ngsi-ld:x:y');
  });
  test('compaction', () => {
    assert.equal(ctx.compactIri(NGSI + 'Property'), 'Property');
    assert.equal(ctx.compactIri(NGSI + 'hasObject'), 'object');
    assert.equal(ctx.compactIri(DEFAULT_VOCAB + 'speed'), 'speed');
    assert.equal(ctx.compactIri(NGSI + 'somethingElse'), 'ngsi-ld:somethingElse');
    assert.equal(ctx.compactIri('https://purl.org/geojson/vocab#other'), 'geojson:other');
    assert.equal(ctx.compactIri('http://example.org/x'), 'http://example.org/x');
    assert.equal(ctx.compactIri('@type'), 'type');
    assert.equal(ctx.compactIri('@id'), 'id');
  });
  test('built once and shared', () => {
    assert.equal(coreActiveContext(), ctx);
    assert.equal(ctx.warnings.length, 0);
  });
});

describe('ActiveContext: user contexts', () => {
  test('simple terms, expanded definitions, prefixes defined later in the same object', () => {
    const ctx = new ActiveContext([{
      temperature: 'ex:temperature',
      ex: 'http://example.org/ns#',
      state: { '@id': 'ex:state', '@type': '@vocab' },
      status: { '@id': 'ex:status', '@type': '@vocab' },
      owner: { '@id': 'ex:owner', '@type': '@id' },
      at: { '@id': 'ex:at', '@type': 'xsd:dateTime' },
      xsd: 'http://www.w3.org/2001/XMLSchema#',
      tags: { '@id': 'ex:tags', '@container': '@set' },
      'ex:explicit': { '@type': '@id' },
    }]);
    assert.equal(ctx.expandTerm('temperature'), 'http://example.org/ns#temperature');
    assert.equal(ctx.expandTerm('state'), 'http://example.org/ns#state');
    assert.equal(ctx.termType('state'), '@vocab');
    // "status" is a core term: the user definition loses
    assert.equal(ctx.expandTerm('status'), NGSI + 'status');
    assert.ok(ctx.warnings.some((w) => w.includes('"status"')));
    assert.equal(ctx.termType('owner'), '@id');
    assert.equal(ctx.termType('at'), 'http://www.w3.org/2001/XMLSchema#dateTime');
    assert.deepEqual(ctx.definition('tags')?.container, ['@set']);
    assert.equal(ctx.expandTerm('ex:explicit'), 'http://example.org/ns#explicit');
    assert.equal(ctx.expandTerm('ex:other'), 'http://example.org/ns#other');
    assert.equal(ctx.compactIri('http://example.org/ns#temperature'), 'temperature');
    assert.equal(ctx.compactIri('http://example.org/ns#unknown'), 'ex:unknown');
    assert.equal(ctx.expandTerm('Property'), NGSI + 'Property');
  });
  test('a user term shadowing the @vocab suffix forces a compact IRI (conformance 001_05_02)', () => {
    const ctx = new ActiveContext([suiteDoc['@context']]);
    assert.equal(ctx.compactIri(DEFAULT_VOCAB + 'almostFull'), 'ngsi-ld:default-context/almostFull');
    assert.equal(ctx.compactIri('https://ngsi-ld-test-suite/context#almostFull'), 'almostFull');
    assert.equal(coreActiveContext().compactIri(DEFAULT_VOCAB + 'almostFull'), 'almostFull');
  });
  test('the core context wins for its terms, wherever it sits in the list', () => {
    const user = { type: 'http://example.org/type', Property: 'http://example.org/Property', createdAt: 'http://example.org/created', mine: 'http://example.org/mine' };
    for (const list of [[user], [CORE_CONTEXT, user]]) {
      const ctx = new ActiveContext(list);
      assert.equal(ctx.expandTerm('type'), '@type');
      assert.equal(ctx.expandTerm('Property'), NGSI + 'Property');
      assert.equal(ctx.expandTerm('createdAt'), NGSI + 'createdAt');
      assert.equal(ctx.expandTerm('mine'), 'http://example.org/mine');
      assert.equal(ctx.warnings.length, 3, ctx.warnings.join('\n'));
    }
  });
  test('identical redefinition of a core term is silent', () => {
    const ctx = new ActiveContext([{ 'ngsi-ld': NGSI, Property: 'ngsi-ld:Property' }]);
    assert.deepEqual(ctx.warnings, []);
  });
  test('@vocab: last one wins, as in JSON-LD; a user @vocab after the core applies', () => {
    const before = new ActiveContext([{ '@vocab': 'http://example.org/v/' }]);
    assert.equal(before.expandTerm('speed'), DEFAULT_VOCAB + 'speed');
    const after = new ActiveContext([CORE_CONTEXT, { '@vocab': 'http://example.org/v/' }]);
    assert.equal(after.expandTerm('speed'), 'http://example.org/v/speed');
    assert.equal(after.compactIri('http://example.org/v/speed'), 'speed');
    assert.equal(after.expandTerm('Property'), NGSI + 'Property');
    const compact = new ActiveContext([CORE_CONTEXT, { '@vocab': 'ngsi-ld:vocab/' }]);
    assert.equal(compact.expandTerm('x'), NGSI + 'vocab/x');
    const none = new ActiveContext([CORE_CONTEXT, { '@vocab': null }]);
    assert.equal(none.vocab, undefined);
    assert.equal(none.expandTerm('x'), DEFAULT_VOCAB + 'x');
  });
  test('terms relative to @vocab', () => {
    const ctx = new ActiveContext([CORE_CONTEXT, { '@vocab': 'http://example.org/v/', rel: 'relative', rel2: { '@id': 'other' } }]);
    assert.equal(ctx.expandTerm('rel'), 'http://example.org/v/relative');
    assert.equal(ctx.expandTerm('rel2'), 'http://example.org/v/other');
  });
  test('@base, @language, scoped contexts and @protected are accepted', () => {
    const ctx = new ActiveContext([{
      '@version': 1.1, '@base': 'http://example.org/', '@language': 'en', '@protected': true,
      nested: { '@id': 'http://example.org/nested', '@context': { inner: 'http://example.org/inner' } },
      label: { '@id': 'http://example.org/label', '@language': 'fr' },
    }]);
    assert.equal(ctx.expandTerm('nested'), 'http://example.org/nested');
    assert.equal(ctx.expandTerm('inner'), DEFAULT_VOCAB + 'inner');
    assert.equal(ctx.definition('label')?.language, 'fr');
    assert.ok(ctx.warnings.some((w) => w.includes('scoped')));
  });
  test('a protected user term keeps its first definition', () => {
    const ctx = new ActiveContext([{ '@protected': true, p: 'http://a/p' }, { p: 'http://b/p' }]);
    assert.equal(ctx.expandTerm('p'), 'http://a/p');
    assert.equal(ctx.warnings.length, 1);
  });
  test('null mapping, null entry', () => {
    const ctx = new ActiveContext([{ dropped: null, keep: 'http://x/keep' }]);
    assert.equal(ctx.expandTerm('dropped'), DEFAULT_VOCAB + 'dropped');
    const reset = new ActiveContext([{ a: 'http://x/a' }, null, { b: 'http://x/b' }]);
    assert.equal(reset.expandTerm('a'), DEFAULT_VOCAB + 'a');
    assert.equal(reset.expandTerm('b'), 'http://x/b');
  });
  test('prefix flag: expanded definitions are not prefixes unless @prefix: true', () => {
    const ctx = new ActiveContext([{ pp: { '@id': 'http://p.example/' }, qq: { '@id': 'http://q.example/', '@prefix': true }, rr: 'http://r.example/ns' }]);
    assert.equal(ctx.expandTerm('pp:x'), 'pp:x');
    assert.equal(ctx.expandTerm('qq:x'), 'http://q.example/x');
    assert.equal(ctx.expandTerm('rr:x'), 'rr:x');
    assert.equal(ctx.compactIri('http://q.example/x'), 'qq:x');
    assert.equal(ctx.compactIri('http://p.example/x'), 'http://p.example/x');
  });
  test('shortest compact IRI, and round trips', () => {
    const ctx = new ActiveContext([{ long: 'http://example.org/a/', short: 'http://example.org/a/b/', s: 'http://example.org/a/b/' }]);
    assert.equal(ctx.compactIri('http://example.org/a/b/c'), 's:c');
    const terms = ['long', 'short', 'Property', 'speed', 'long:x', 's:y', 'http://other.example/z', 'location', 'unitCode'];
    for (const t of terms) assert.equal(ctx.expandTerm(ctx.compactIri(ctx.expandTerm(t))), ctx.expandTerm(t), t);
  });
  test('memo is bounded', () => {
    const ctx = new ActiveContext([], { memoSize: 32 });
    for (let i = 0; i < 1000; i++) assert.equal(ctx.expandTerm('t' + i), DEFAULT_VOCAB + 't' + i);
    assert.equal(ctx.expandTerm('t0'), DEFAULT_VOCAB + 't0');
  });
});

describe('ActiveContext: malformed contexts', () => {
  const bad: Array<[string, unknown[]]> = [
    ['keyword redefinition', [{ '@id': 'http://x' }]],
    ['number as term value', [{ a: 42 }]],
    ['unknown key', [{ a: { '@id': 'http://x/a', foo: 1 } }]],
    ['relative @id without vocab', [{ '@vocab': null }, { a: { '@id': 'rel' } }]],
    ['cyclic', [{ a: 'b:x', b: 'a:y' }]],
    ['bad container', [{ a: { '@id': 'http://x/a', '@container': '@bogus' } }]],
    ['bad @type', [{ a: { '@id': 'http://x/a', '@type': 7 } }]],
    ['bad @version', [{ '@version': 2 }]],
    ['bad @vocab', [{ '@vocab': 3 }]],
    ['empty term', [{ '': 'http://x' }]],
    ['not an object', [[1, 2]]],
    ['IRI-shaped term aliasing another IRI', [{ 'http://a/x': 'http://b/y' }]],
  ];
  for (const [name, list] of bad) {
    test(name, () => {
      assert.throws(() => new ActiveContext(list as never), problem('BadRequestData', /Invalid @context/));
    });
  }
});

// --- oracle: jsonld.js with a local document loader --------------------------------------------

const oracleDocs: Record<string, unknown> = {
  [CORE_CONTEXT_URL]: CORE_CONTEXT_DOCUMENT,
  [FIWARE_URL]: fiwareDoc,
  [SUITE_URL]: suiteDoc,
  // referenced by a scoped context of the core (ngsildproof); only needs to load
  'https://w3id.org/security/data-integrity/v2': { '@context': {} },
};
const documentLoader = async (url: string) => {
  const document = oracleDocs[url];
  if (!document) throw new Error(`oracle: no document for ${url}`);
  return { contextUrl: null, documentUrl: url, document: structuredClone(document) };
};

async function oracleExpandType(ctx: unknown[], term: string): Promise<string | undefined> {
  const out = await jsonld.expand({ '@context': ctx, '@type': term }, { documentLoader });
  return (out[0] as Record<string, string[]> | undefined)?.['@type']?.[0];
}
async function oracleExpandKey(ctx: unknown[], term: string): Promise<string | undefined> {
  const out = await jsonld.expand({ '@context': ctx, '@id': 'urn:x', [term]: { '@id': 'urn:y' } }, { documentLoader });
  return Object.keys(out[0] ?? {}).find((k) => k !== '@id');
}
async function oracleCompactType(ctx: unknown[], iri: string): Promise<string> {
  const out = await jsonld.compact({ '@id': 'urn:x', '@type': iri } as never, { '@context': ctx }, { documentLoader });
  return (out as Record<string, string>).type;
}

const userInline = {
  ex: 'http://example.org/ns#',
  schema: 'https://schema.org/',
  temperature: 'ex:temperature',
  humidity: { '@id': 'ex:humidity' },
  state: { '@id': 'ex:state', '@type': '@vocab' },
  status: { '@id': 'ex:status', '@type': '@vocab' },
  'ex:explicit': 'http://example.org/ns#explicit',
  qq: { '@id': 'http://q.example/', '@prefix': true },
  pp: { '@id': 'http://p.example/' },
  description: 'https://schema.org/description',
};
const oracleContexts: Array<[string, unknown[], unknown[]]> = [
  // name, list given to jsonld.js (core last, as the broker appends it), same list for us
  ['core only', [CORE_CONTEXT_URL], [CORE_CONTEXT]],
  ['fiware data models', [FIWARE_URL, CORE_CONTEXT_URL], [fiwareDoc['@context'], CORE_CONTEXT]],
  ['conformance suite', [SUITE_URL, CORE_CONTEXT_URL], [suiteDoc['@context'], CORE_CONTEXT]],
  ['inline user', [userInline, CORE_CONTEXT_URL], [userInline, CORE_CONTEXT]],
  ['user @vocab after core', [CORE_CONTEXT_URL, { '@vocab': 'http://example.org/v/', rel: 'relative' }], [CORE_CONTEXT, { '@vocab': 'http://example.org/v/', rel: 'relative' }]],
];
const oracleTerms = [
  'Property', 'Relationship', 'GeoProperty', 'LanguageProperty', 'VocabProperty', 'JsonProperty', 'ListProperty',
  'ListRelationship', 'location', 'observationSpace', 'operationSpace', 'observedAt', 'createdAt', 'modifiedAt',
  'unitCode', 'datasetId', 'object', 'objectType', 'value', 'vocab', 'json', 'languageMap', 'description', 'title',
  'Point', 'Polygon', 'Feature', 'geometry', 'coordinates', 'DateTime', 'Subscription', 'entities', 'notification',
  'Building', 'Vehicle', 'OffStreetParking', 'category', 'name', 'address', 'almostFull', 'speed', 'temperature',
  'humidity', 'state', 'status', 'ex:explicit', 'ex:other', 'schema:name', 'rel', 'qq:thing', 'pp:thing', 'fiware:thing', 'ngsi-ld:foo',
  'http://example.org/abs', 'urn:ngsi-ld:Thing:1', 'unknownTerm', 'brandName', 'some/path', 'x-y_z.1',
];

describe('oracle: expandTerm / compactIri against jsonld.js', () => {
  for (const [name, theirs, ours] of oracleContexts) {
    test(name, async () => {
      const ctx = new ActiveContext(ours as never);
      let checked = 0;
      for (const term of oracleTerms) {
        const expected = await oracleExpandType(theirs, term);
        assert.ok(expected, `jsonld.js dropped ${term}`);
        assert.equal(ctx.expandTerm(term), expected, `expandTerm(${term}) in ${name}`);
        const key = await oracleExpandKey(theirs, term);
        if (key !== undefined) assert.equal(ctx.expandTerm(term), key, `key ${term} in ${name}`);
        // JSON-LD picks terms per value shape; compare type-position compaction where no
        // coercion of the candidate term is involved
        const exact = ctx.definition(ctx.compactIri(expected));
        if (!exact || (exact.type === undefined && exact.container === undefined)) {
          assert.equal(ctx.compactIri(expected), await oracleCompactType(theirs, expected), `compactIri(${expected}) in ${name}`);
        }
        checked++;
      }
      assert.equal(checked, oracleTerms.length);
    });
  }
});

// --- remote loading ------------------------------------------------------------------------------

describe('ContextLoader', () => {
  let server: Server;
  let base = '';
  const hits = new Map<string, number>();
  before(async () => {
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/ld+json' });
        res.end(JSON.stringify(body));
      };
      if (path === '/ok.jsonld') return json(200, { '@context': { speed: 'http://example.org/speed', ex: 'http://example.org/' } });
      if (path === '/nested.jsonld') return json(200, { '@context': ['ok.jsonld', { extra: 'ex:extra' }, CORE_CONTEXT_URL] });
      if (path === '/import.jsonld') return json(200, { '@context': { '@import': `${base}/ok.jsonld`, imported: 'ex:imported' } });
      if (path === '/cycle-a.jsonld') return json(200, { '@context': `${base}/cycle-b.jsonld` });
      if (path === '/cycle-b.jsonld') return json(200, { '@context': `${base}/cycle-a.jsonld` });
      if (path.startsWith('/deep/')) {
        const n = Number(path.slice(6));
        return json(200, { '@context': n > 0 ? `${base}/deep/${n - 1}` : { deepest: 'http://example.org/deepest' } });
      }
      if (path === '/nocontext.json') return json(200, { hello: 'world' });
      if (path === '/notjson') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html>nope</html>');
      }
      if (path === '/slow') return; // never answers
      json(404, { error: 'not found' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('undefined, null and every core URL resolve to the core without network', async () => {
    const loader = new ContextLoader({ fetch: () => { throw new Error('no network expected'); } });
    assert.equal(await loader.resolve(undefined), coreActiveContext());
    assert.equal(await loader.resolve(CORE_CONTEXT_URL), coreActiveContext());
    assert.equal(await loader.resolve('https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld'), coreActiveContext());
    assert.equal(await loader.resolve('https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld'), coreActiveContext());
    assert.equal((await loader.resolve([CORE_CONTEXT_URL])).expandTerm('Property'), NGSI + 'Property');
    assert.ok(isCoreContextUrl('https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld'));
    assert.ok(!isCoreContextUrl('https://example.org/ngsi-ld-core-context.jsonld'));
  });
  test('fetches once, caches documents and resolved contexts', async () => {
    const loader = new ContextLoader();
    const before = hits.get('/ok.jsonld') ?? 0;
    const [a, b] = await Promise.all([loader.resolve(`${base}/ok.jsonld`), loader.resolve(`${base}/ok.jsonld`)]);
    assert.equal(a, b);
    assert.equal(a.expandTerm('speed'), 'http://example.org/speed');
    assert.equal(a.expandTerm('Property'), NGSI + 'Property');
    const c = await loader.resolve([`${base}/ok.jsonld`, { more: 'ex:more' }]);
    assert.equal(c.expandTerm('more'), 'http://example.org/more');
    assert.equal(hits.get('/ok.jsonld'), before + 1);
  });
  test('nested references (relative to the document), inline objects and @import', async () => {
    const loader = new ContextLoader();
    const ctx = await loader.resolve(`${base}/nested.jsonld`);
    assert.equal(ctx.expandTerm('speed'), 'http://example.org/speed');
    assert.equal(ctx.expandTerm('extra'), 'http://example.org/extra');
    const imp = await loader.resolve(`${base}/import.jsonld`);
    assert.equal(imp.expandTerm('imported'), 'http://example.org/imported');
    assert.equal(imp.expandTerm('speed'), 'http://example.org/speed');
  });
  test('cycles and depth are bounded', async () => {
    const loader = new ContextLoader({ maxDepth: 4 });
    await assert.rejects(loader.resolve(`${base}/cycle-a.jsonld`), problem('BadRequestData', /recursive/));
    await assert.rejects(loader.resolve(`${base}/deep/10`), problem('BadRequestData', /deeper than 4/));
    assert.equal((await loader.resolve(`${base}/deep/2`)).expandTerm('deepest'), 'http://example.org/deepest');
  });
  test('404, unreachable and timeout: LdContextNotAvailable naming the URL; non-JSON: BadRequestData (5.5.6)', async () => {
    const loader = new ContextLoader({ timeoutMs: 150 });
    await assert.rejects(loader.resolve(`${base}/missing.jsonld`), (e: unknown) => {
      assert.ok(e instanceof ProblemError);
      assert.equal(e.kind, 'LdContextNotAvailable');
      assert.equal(e.status, 504);
      assert.match(e.message, /missing\.jsonld.*HTTP 404/);
      return true;
    });
    await assert.rejects(loader.resolve(`${base}/notjson`), problem('BadRequestData', /notjson.*not JSON/));
    await assert.rejects(loader.resolve('http://127.0.0.1:1/ctx.jsonld'), problem('LdContextNotAvailable', /127\.0\.0\.1:1.*unreachable/));
    const t0 = Date.now();
    await assert.rejects(loader.resolve(`${base}/slow`), problem('LdContextNotAvailable', /slow.*150 ms/));
    assert.ok(Date.now() - t0 < 2000);
  });
  test('invalid shapes: BadRequestData', async () => {
    const loader = new ContextLoader();
    await assert.rejects(loader.resolve(`${base}/nocontext.json`), problem('BadRequestData', /no top-level "@context"/));
    await assert.rejects(loader.resolve(42 as never), problem('BadRequestData'));
    await assert.rejects(loader.resolve([CORE_CONTEXT_URL, 7] as never), problem('BadRequestData'));
    await assert.rejects(loader.resolve([[CORE_CONTEXT_URL]] as never), problem('BadRequestData', /nested arrays/));
    await assert.rejects(loader.resolve('relative.jsonld'), problem('BadRequestData', /absolute URL/));
    await assert.rejects(loader.resolve({ a: { '@id': 'x', bogus: 1 } }), problem('BadRequestData'));
  });
  test('hooks: local lookup first, downloads and uses reported', async () => {
    const fetched: string[] = [];
    const used: string[][] = [];
    const loader = new ContextLoader({
      hooks: {
        lookup: (url) => (url === 'http://broker.local/ngsi-ld/v1/jsonldContexts/x' ? { '@context': { local: 'http://example.org/local' } } : undefined),
        fetched: (url) => fetched.push(url),
        used: (urls) => used.push([...urls]),
      },
    });
    const ctx = await loader.resolve(['http://broker.local/ngsi-ld/v1/jsonldContexts/x', `${base}/ok.jsonld`]);
    assert.equal(ctx.expandTerm('local'), 'http://example.org/local');
    await loader.resolve(['http://broker.local/ngsi-ld/v1/jsonldContexts/x', `${base}/ok.jsonld`]);
    assert.deepEqual(fetched, [`${base}/ok.jsonld`]);
    assert.equal(used.length, 2);
  });
});

// --- registry ------------------------------------------------------------------------------------

describe('ContextRegistry', () => {
  const minimal = { '@context': { A1: 'urn:ngsi-ld:attributes:A1', A2: 'urn:ngsi-ld:attributes:A2' } };
  const make = (opts: { store?: InMemoryContextStore; loader?: ContextLoader } = {}) => {
    let n = 0;
    return new ContextRegistry({ baseUrl: 'http://broker.example:1026/', newId: () => `urn:ngsi-ld:Context:${++n}`, ...opts });
  };

  test('add / get / list / delete a Hosted context', async () => {
    const reg = make();
    const { id, url } = await reg.add(minimal);
    assert.equal(id, 'urn:ngsi-ld:Context:1');
    assert.equal(url, 'http://broker.example:1026/ngsi-ld/v1/jsonldContexts/urn:ngsi-ld:Context:1');
    assert.deepEqual(reg.get(id), minimal);
    assert.deepEqual(reg.get(url), minimal);
    const d = reg.get(id, { details: 'true' }) as ContextDetails;
    assert.equal(d.kind, 'Hosted');
    assert.equal(d.localId, id);
    assert.equal(d.URL, url);
    assert.equal(d.numberOfHits, 0);
    assert.ok(!Number.isNaN(Date.parse(d.createdAt)));
    for (const k of Object.keys(d)) assert.ok(['URL', 'localId', 'kind', 'createdAt', 'lastUsage', 'numberOfHits', 'extraInfo'].includes(k));
    assert.deepEqual(reg.list(), [CORE_CONTEXT_URL, url]);
    assert.deepEqual(reg.list({ kind: 'Hosted' }), [url]);
    assert.deepEqual(reg.list({ kind: 'ImplicitlyCreated' }), []);
    const details = reg.list({ details: true }) as ContextDetails[];
    assert.equal(details[0].URL, CORE_CONTEXT_URL);
    assert.equal(details[0].kind, 'Cached');
    await reg.delete(id);
    assert.throws(() => reg.get(id), problem('ResourceNotFound'));
    await assert.rejects(reg.delete(id), problem('ResourceNotFound'));
  });
  test('payload and parameter validation', async () => {
    const reg = make();
    await assert.rejects(reg.add({ A1: 'urn:a' }), problem('InvalidRequest'));
    await assert.rejects(reg.add([1]), problem('InvalidRequest'));
    await assert.rejects(reg.add({ '@context': 42 }), problem('BadRequestData'));
    await assert.rejects(reg.add({ '@context': true }), problem('BadRequestData'));
    await assert.rejects(reg.add({ '@context': ['https://example.org/ctx.jsonld', 7] }), problem('BadRequestData'));
    await assert.rejects(reg.add({ '@context': { a: { '@id': 'urn:a', bad: 1 } } }), problem('BadRequestData'));
    assert.deepEqual(reg.list({ kind: 'Hosted' }), []);
    const ok = await reg.add({ '@context': ['https://example.org/a.jsonld', { local: 'prefixFromRemote:x' }] });
    assert.ok(ok.id);
    assert.throws(() => reg.list({ kind: 'other' }), problem('BadRequestData'));
    assert.throws(() => reg.list({ details: 'other' }), problem('BadRequestData'));
    assert.throws(() => reg.get('wrong_id_context', { details: true }), problem('ResourceNotFound'));
    await assert.rejects(reg.delete('wrong_id_context', { reload: 'xxx' }), problem('BadRequestData'));
    await assert.rejects(reg.delete('wrong_id_context', { reload: true }), problem('BadRequestData'));
    await assert.rejects(reg.delete('wrong_id_context', { reload: 'false' }), problem('ResourceNotFound'));
    await assert.rejects(reg.delete(ok.id, { reload: 'true' }), problem('BadRequestData', /Cached/));
  });
  test('core context: listed, served, not deletable, reload is a no-op', async () => {
    const reg = make();
    assert.deepEqual(reg.get(CORE_CONTEXT_URL), CORE_CONTEXT_DOCUMENT);
    assert.equal((reg.get(CORE_CONTEXT_URL, { details: true }) as ContextDetails).kind, 'Cached');
    await assert.rejects(reg.delete(CORE_CONTEXT_URL), problem('BadRequestData'));
    await assert.rejects(reg.delete(CORE_CONTEXT_URL, { reload: 'false' }), problem('BadRequestData'));
    await reg.delete(CORE_CONTEXT_URL, { reload: true });
    assert.deepEqual(reg.list(), [CORE_CONTEXT_URL]);
  });
  test('tenants do not see each other\'s hosted contexts', async () => {
    const reg = make();
    const { id, url } = await reg.add(minimal, { tenant: 'a' });
    assert.throws(() => reg.get(id, { tenant: 'b' }), problem('ResourceNotFound'));
    assert.throws(() => reg.get(id, { tenant: 'b', details: true }), problem('ResourceNotFound'));
    assert.ok(!JSON.stringify(reg.list({ tenant: 'b', details: true })).includes(id));
    await assert.rejects(reg.delete(id, { tenant: 'b' }), problem('ResourceNotFound'));
    assert.deepEqual(reg.get(id, { tenant: 'a' }), minimal);
    assert.deepEqual(reg.list({ tenant: 'a', kind: 'Hosted' }), [url]);
    await reg.delete(id, { tenant: 'a' });
  });
  test('ImplicitlyCreated: one record per content and tenant', async () => {
    const reg = make();
    const ctx = ['https://example.org/a.jsonld', 'https://example.org/b.jsonld'];
    const a = await reg.implicit(ctx);
    const b = await reg.implicit(structuredClone(ctx));
    const c = await reg.implicit(ctx, { tenant: 't' });
    assert.equal(a.id, b.id);
    assert.notEqual(a.id, c.id);
    assert.deepEqual(reg.get(a.id), { '@context': ctx });
    assert.deepEqual(reg.list({ kind: 'ImplicitlyCreated' }), [a.url]);
    await assert.rejects(reg.delete(a.id, { reload: true }), problem('BadRequestData'));
    await reg.delete(a.id);
    assert.notEqual((await reg.implicit(ctx)).id, a.id);
  });
  test('urlFor: a single URL stays, inline or compound contexts become ImplicitlyCreated', async () => {
    const reg = make();
    assert.equal(await reg.urlFor('https://example.org/a.jsonld'), 'https://example.org/a.jsonld');
    assert.equal(await reg.urlFor(['https://example.org/a.jsonld']), 'https://example.org/a.jsonld');
    assert.equal(await reg.urlFor(undefined), CORE_CONTEXT_URL);
    const ctx = ['https://example.org/a.jsonld', { x: 'https://example.org/x' }];
    const url = await reg.urlFor(ctx, { tenant: 't' });
    assert.equal(url, (await reg.implicit(ctx, { tenant: 't' })).url);
    assert.deepEqual(reg.list({ tenant: 't', kind: 'ImplicitlyCreated' }), [url]);
  });

  describe('with a loader', () => {
    let server: Server;
    let base = '';
    let up = true;
    let version = 1;
    before(async () => {
      server = createServer((req, res) => {
        if (!up) {
          res.writeHead(503);
          return res.end();
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ '@context': { A1: `urn:v${version}:A1` } }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    test('downloads become Cached (persisted), hosted URLs resolve locally, uses are counted', async () => {
      up = true;
      version = 1;
      const store = new InMemoryContextStore();
      const loader = new ContextLoader({ timeoutMs: 300 });
      const reg = make({ store, loader });
      const remote = `${base}/api/v1/context.jsonld`;
      const hosted = await reg.add({ '@context': [remote] });
      // the broker may be reached under another host name than baseUrl
      const otherHost = hosted.url.replace('broker.example:1026', 'localhost:9090');
      const ctx = await loader.resolve([otherHost]);
      assert.equal(ctx.expandTerm('A1'), 'urn:v1:A1');
      await loader.resolve(otherHost);
      await loader.resolve(otherHost);
      await reg.settled();
      const cached = reg.get(remote, { details: true }) as ContextDetails;
      assert.equal(cached.kind, 'Cached');
      assert.equal(cached.URL, remote);
      assert.equal(cached.numberOfHits, 3);
      assert.ok(cached.lastUsage);
      assert.equal((reg.get(hosted.id, { details: true }) as ContextDetails).numberOfHits, 3);
      assert.deepEqual(reg.list({ kind: 'Cached' }), [CORE_CONTEXT_URL, remote]);
      assert.ok([...store.rows.values()].some((r) => r.kind === 'Cached' && r.url === remote));

      // reload: refetched, replaces the stored document
      version = 2;
      await reg.delete(remote, { reload: 'true' });
      assert.equal((await loader.resolve(remote)).expandTerm('A1'), 'urn:v2:A1');
      // failed reload: 504, the Cached entry stays
      up = false;
      await assert.rejects(reg.delete(remote, { reload: true }), (e: unknown) => {
        assert.ok(e instanceof ProblemError && e.kind === 'LdContextNotAvailable' && e.status === 504);
        return true;
      });
      assert.equal((reg.get(remote, { details: true }) as ContextDetails).kind, 'Cached');
      assert.equal((await loader.resolve(remote)).expandTerm('A1'), 'urn:v2:A1');

      // a registry restarted on the same store serves the Cached copy without the network
      await reg.flushUsage();
      const loader2 = new ContextLoader({ timeoutMs: 300 });
      const reg2 = make({ store, loader: loader2 });
      await reg2.init();
      assert.equal((await loader2.resolve(remote)).expandTerm('A1'), 'urn:v2:A1');
      assert.equal((reg2.get(hosted.id, { details: true }) as ContextDetails).numberOfHits, 3);

      // plain delete removes it; the next use downloads again (and fails: server down)
      await reg.delete(remote);
      assert.throws(() => reg.get(remote), problem('ResourceNotFound'));
      await assert.rejects(loader.resolve(remote), problem('LdContextNotAvailable'));
      await reg.delete(hosted.id);
      await assert.rejects(loader.resolve(hosted.url), problem('LdContextNotAvailable'));
      await assert.rejects(loader.resolve([otherHost]), problem('LdContextNotAvailable'));
    });
  });
});

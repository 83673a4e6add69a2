import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toStoredAttrs, fromStoredAttrs, storedAlike, jsonEqual } from '../../src/ngsi-ld/repository/stored-form.ts';
import { EntityCache } from '../../src/ngsi-ld/repository/entity-cache.ts';
import type { AttrInstance, StoredEntity } from '../../src/ngsi-ld/model/types.ts';

const M = '2026-11-22T10:00:00.000Z';
const EARLIER = '2026-11-01T08:00:00.000Z';
const T = 'https://uri.etsi.org/ngsi-ld/default-context/temperature';
const R = 'https://uri.etsi.org/ngsi-ld/default-context/ref';

test('stored form: implied members are left out and come back on read', () => {
  const attrs: Record<string, AttrInstance[]> = {
    [T]: [
      { type: 'Property', value: 21.5, observedAt: M, createdAt: M, modifiedAt: M },
      { type: 'Property', value: 3, datasetId: 'urn:d:1', createdAt: EARLIER, modifiedAt: M },
    ],
    [R]: [{ type: 'Relationship', object: 'urn:x:1', createdAt: EARLIER, modifiedAt: EARLIER }],
  };
  const stored = toStoredAttrs(attrs, M);
  assert.deepEqual(stored, {
    [T]: [{ value: 21.5, observedAt: M }, { value: 3, datasetId: 'urn:d:1', createdAt: EARLIER }],
    [R]: [{ type: 'Relationship', object: 'urn:x:1', modifiedAt: EARLIER }],
  });
  // the input is not modified
  assert.equal(attrs[T][0].type, 'Property');
  const back = fromStoredAttrs(JSON.parse(JSON.stringify(stored)), M);
  assert.equal(back.canonical, true);
  assert.deepEqual(back.attrs, attrs);
  assert.deepEqual(Object.keys(back.attrs[T][0])[0], 'type');
});

test('stored form: members absent from the instance stay absent (stored as null)', () => {
  const attrs: Record<string, AttrInstance[]> = { [T]: [{ type: 'Property', value: 1 }] };
  const stored = toStoredAttrs(attrs, M);
  assert.deepEqual(stored[T], [{ value: 1, modifiedAt: null, createdAt: null }]);
  const back = fromStoredAttrs(JSON.parse(JSON.stringify(stored)), M).attrs;
  assert.deepEqual(back[T], [{ type: 'Property', value: 1 }]);
});

test('stored form: rows in the full form read unchanged and are flagged when they would be stored differently', () => {
  const full = { [T]: [{ type: 'Property', value: 1, createdAt: EARLIER, modifiedAt: M }] };
  const r = fromStoredAttrs(JSON.parse(JSON.stringify(full)), M);
  assert.deepEqual(r.attrs, full);
  assert.equal(r.canonical, false);
  const explicit = { [R]: [{ type: 'Relationship', object: 'urn:x:1', createdAt: EARLIER, modifiedAt: '2026-11-02T00:00:00.000Z' }] };
  assert.equal(fromStoredAttrs(JSON.parse(JSON.stringify(explicit)), M).canonical, true);
});

test('stored form: storedAlike tells when an attribute keeps its stored JSON across versions', () => {
  const M2 = '2026-11-22T11:00:00.000Z';
  // replaced with the same value: new instance stamped with the new version, stored the same
  const before: AttrInstance[] = [{ type: 'Property', value: ['a'], createdAt: M, modifiedAt: M }];
  const after: AttrInstance[] = [{ type: 'Property', value: ['a'], createdAt: M2, modifiedAt: M2 }];
  assert.equal(storedAlike(after, M2, before, M), true);
  assert.equal(jsonEqual(toStoredAttrs({ x: after }, M2), toStoredAttrs({ x: before }, M)), true);
  // untouched by a partial update: its timestamps are no longer the entity's, so it must be sent
  assert.equal(storedAlike(before, M2, before, M), false);
  assert.equal(storedAlike([{ ...after[0], value: ['b'] }], M2, before, M), false);
  assert.equal(storedAlike([...after, ...after], M2, before, M), false);
  assert.equal(storedAlike([{ ...after[0], type: 'JsonProperty' }], M2, before, M), false);
  assert.equal(storedAlike([{ ...after[0], observedAt: M }], M2, before, M), false);
  // explicit timestamps that do not follow the entity's stay equal when unchanged
  const old: AttrInstance[] = [{ type: 'Relationship', object: 'urn:x:1', createdAt: EARLIER, modifiedAt: EARLIER }];
  assert.equal(storedAlike(old, M2, old, M), true);
  // members absent on both sides (stored as null) match
  assert.equal(storedAlike([{ type: 'Property', value: 1 }], M2, [{ type: 'Property', value: 1 }], M), true);
  assert.equal(storedAlike([{ type: 'Property', value: 1 }], M2, [{ type: 'Property', value: 1, createdAt: M, modifiedAt: M }], M), false);
});

test('jsonEqual: structural, key order ignored, undefined members ignored', () => {
  assert.equal(jsonEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }), true);
  assert.equal(jsonEqual({ a: 1, u: undefined }, { a: 1 }), true);
  assert.equal(jsonEqual({ a: 1 }, { a: 1, b: null }), false);
  assert.equal(jsonEqual([1, 2], { 0: 1, 1: 2 }), false);
  assert.equal(jsonEqual(null, {}), false);
  assert.equal(jsonEqual('1', 1), false);
});

const ent = (id: string): StoredEntity => ({ id, type: ['T'], createdAt: M, modifiedAt: M, attrs: {} });

test('entity cache: second-chance eviction keeps entries used since the last pass', () => {
  const c = new EntityCache(3);
  c.set('', ent('a'));
  c.set('', ent('b'));
  c.set('', ent('c'));
  assert.ok(c.get('', 'a')); // used: survives the next eviction
  c.set('', ent('d')); // evicts b (a gets its second chance)
  assert.ok(c.get('', 'a'));
  assert.equal(c.get('', 'b'), undefined);
  assert.ok(c.get('', 'c'));
  assert.ok(c.get('', 'd'));
  // replacing an entry does not grow the cache; tenants are separate
  const a2 = ent('a');
  c.set('', a2);
  assert.equal(c.get('', 'a'), a2);
  assert.equal(c.get('other', 'a'), undefined);
  c.set('other', ent('z'));
  let n = 0;
  for (const id of ['a', 'b', 'c', 'd']) if (c.get('', id)) n++;
  assert.equal(n + (c.get('other', 'z') ? 1 : 0), 3);
  c.delete('other', 'z');
  assert.equal(c.get('other', 'z'), undefined);
  assert.equal(new EntityCache(0).enabled, false);
});

test('stored form: storedAlike agrees with comparing the built stored forms (generated cases)', () => {
  const times = [undefined, M, EARLIER, '2026-11-22T11:00:00.000Z'];
  const types = [undefined, 'Property', 'Relationship'];
  const values = [1, 'a', ['a'], { x: 1 }];
  let seed = 7;
  const pick = <T,>(xs: T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2147483648) % xs.length];
  const inst = (): AttrInstance => {
    const i: Record<string, unknown> = {};
    for (const [k, pool] of [['type', types], ['value', values], ['createdAt', times], ['modifiedAt', times], ['observedAt', times]] as const) {
      const v = pick(pool as unknown[]);
      if (v !== undefined) i[k] = v;
    }
    return i as AttrInstance;
  };
  for (let n = 0; n < 3000; n++) {
    const a = [inst()], b = [inst()];
    const ma = pick(times.slice(1)) as string, mb = pick(times.slice(1)) as string;
    assert.equal(storedAlike(a, ma, b, mb), jsonEqual(toStoredAttrs({ x: a }, ma), toStoredAttrs({ x: b }, mb)), JSON.stringify({ a, ma, b, mb }));
  }
});

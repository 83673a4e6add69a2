import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPglite } from '../../src/store/pglite.ts';
import { Outbox, type FanoutItem } from '../../src/subscriptions/delivery/outbox.ts';

const fan = (i: number): FanoutItem => ({
  tenant: i % 2 ? 't1' : '',
  headers: { 'Content-Type': 'application/json', 'X-Q': 'say "hi" \\ there' },
  tail: `,"data":[{"id":"urn:e:${i}","q":"a \\"quoted\\" \\\\ value"}]}`,
  targets: [
    { subscriptionId: `s${i}`, endpoint: 'http://r/n' },
    { subscriptionId: `s${i}b`, endpoint: 'http://r/n', notifierInfo: [{ key: 'k', value: 'v' }], timeoutMs: 5 },
  ],
});

test('fan-out rows: ids in order and values intact, with one parameter per value and with the array form (large batches)', async () => {
  const db = await openPglite();
  const ob = new Outbox(db);
  await ob.migrate();
  for (const n of [3, 1001]) {
    const fans = Array.from({ length: n }, (_, i) => fan(i));
    const ids = await ob.insertFanouts(fans, 1_000_000);
    assert.equal(ids.length, n);
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'ids in the order of the items');
    const rows = await db.query<{ id: string; tenant: string; headers: Record<string, string>; tail: string; targets: unknown[] }>(
      'SELECT id, tenant, headers, tail, targets FROM notification_fanout WHERE id = ANY($1::bigint[]) ORDER BY id',
      [ids],
    );
    rows.forEach((r, i) => {
      assert.equal(r.tenant, fans[i].tenant);
      assert.deepEqual(r.headers, fans[i].headers);
      assert.equal(r.tail, fans[i].tail);
      assert.deepEqual(r.targets, [[0, `s${i}`, 'http://r/n', null, null], [1, `s${i}b`, 'http://r/n', [{ key: 'k', value: 'v' }], 5]]);
    });
    await ob.deleteFanouts(ids);
  }
  await db.close();
});

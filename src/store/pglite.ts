import { PGlite, type Transaction } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import type { Db } from './db.ts';

type Queryable = Pick<PGlite, 'query' | 'exec'> | Transaction;

/** Embedded WASM PostgreSQL: data in a local folder, or in memory when dir is undefined. */
export async function openPglite(dir?: string): Promise<Db> {
  if (dir) mkdirSync(dir, { recursive: true });
  const pg = dir ? new PGlite(dir) : new PGlite();
  await pg.waitReady;
  return wrap(pg, pg);
}

function wrap(root: PGlite, q: Queryable): Db {
  const db: Db = {
    kind: 'pglite',
    hasPostgis: false,
    async version() {
      const r = await q.query<{ v: string }>('SELECT version() AS v');
      return r.rows[0].v.split(' on ')[0];
    },
    async query<T>(sql: string, params?: unknown[]) {
      const r = await q.query<T>(sql, params as unknown[] | undefined);
      return r.rows;
    },
    async exec(sql: string) {
      await q.exec(sql);
    },
    async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
      if (q !== root) return fn(db); // already inside a transaction: flatten
      return root.transaction((t) => fn(wrap(root, t)));
    },
    async close() {
      if (q === root) await root.close();
    },
  };
  return db;
}

import pg from 'pg';
import { createHash } from 'node:crypto';

/**
 * Named (prepared) statements: PostgreSQL then plans each statement shape once per connection
 * instead of on every call; planning was the larger part of a 20-entity type query.
 */
const names = new Map<string, string>();
function statementName(sql: string): string {
  let n = names.get(sql);
  if (!n) {
    n = 'u' + createHash('sha1').update(sql).digest('hex').slice(0, 20);
    if (names.size < 5000) names.set(sql, n);
  }
  return n;
}
import type { Db } from './db.ts';

/** PostgreSQL server through a pg pool. */
export async function openPostgres(url: string, poolSize = 20): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on('error', () => {
    /* idle client errors are reported on next use */
  });
  const ext = await pool.query("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'");
  let hasPostgis = false;
  if (ext.rowCount) {
    try {
      await pool.query('CREATE EXTENSION IF NOT EXISTS postgis');
      hasPostgis = true;
    } catch {
      hasPostgis = false; // no privilege: geo still works through the portable bbox index
    }
  }
  const make = (q: pg.Pool | pg.PoolClient, inTx: boolean): Db => {
    const db: Db = {
      kind: 'postgres',
      hasPostgis,
      async version() {
        const r = await q.query('SELECT version() AS v');
        return String(r.rows[0].v).split(' on ')[0];
      },
      async query<T>(sql: string, params?: unknown[], opts?: { planPerCall?: boolean }) {
        const r = params && params.length
          ? opts?.planPerCall
            ? await q.query(sql, params as unknown[])
            : await q.query({ name: statementName(sql), text: sql, values: params as unknown[] })
          : await q.query(sql);
        return r.rows as T[];
      },
      async exec(sql: string) {
        await q.query(sql);
      },
      async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
        if (inTx) return fn(db);
        // deadlocks and serialization failures are transient: the whole transaction is retried
        for (let attempt = 1; ; attempt++) {
          const c = await pool.connect();
          try {
            await c.query('BEGIN');
            const r = await fn(make(c, true));
            await c.query('COMMIT');
            return r;
          } catch (e) {
            await c.query('ROLLBACK').catch(() => {});
            const code = (e as { code?: string }).code;
            if ((code === '40P01' || code === '40001') && attempt < 5) continue;
            throw e;
          } finally {
            c.release();
          }
        }
      },
      async close() {
        if (!inTx) await pool.end();
      },
    };
    return db;
  };
  return make(pool, false);
}

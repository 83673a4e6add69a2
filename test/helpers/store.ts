import type { Db } from '../../src/store/db.ts';
import { openStore } from '../../src/store/open.ts';

/**
 * The store under test: in-memory PGlite by default; PostgreSQL when URBIS_TEST_STORE=postgres
 * (URBIS_TEST_DATABASE_URL, default postgres://urbis:urbis@127.0.0.1:5432/urbis_test). On
 * PostgreSQL every test file gets its own schema so runs never see each other's rows.
 */
export function storeKind(): 'pglite' | 'postgres' {
  return process.env.URBIS_TEST_STORE === 'postgres' ? 'postgres' : 'pglite';
}

export async function testStore(): Promise<{ db: Db; databaseUrl?: string; cleanup(): Promise<void> }> {
  if (storeKind() === 'pglite') {
    const db = await openStore({ memory: true });
    return { db, cleanup: () => db.close().catch(() => {}) };
  }
  const base = process.env.URBIS_TEST_DATABASE_URL ?? 'postgres://urbis:urbis@127.0.0.1:5432/urbis_test';
  const schema = `t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const pg = (await import('pg')).default;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema},public`)}`;
  const db = await openStore({ databaseUrl: url });
  return {
    db,
    databaseUrl: url,
    async cleanup() {
      await db.close().catch(() => {}); // may already be closed by the code under test
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

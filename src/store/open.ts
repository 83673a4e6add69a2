import { join } from 'node:path';
import type { Db } from './db.ts';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import { migrate } from './schema.ts';

/** Opens the configured store and brings its schema up to date. */
export async function openStore(opts: { databaseUrl?: string; dataDir?: string; memory?: boolean }): Promise<Db> {
  const db = opts.databaseUrl
    ? await openPostgres(opts.databaseUrl)
    : await openPglite(opts.memory ? undefined : join(opts.dataDir ?? './data', 'pglite'));
  await migrate(db);
  return db;
}

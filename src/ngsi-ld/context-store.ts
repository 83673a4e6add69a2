import type { Db } from '../store/db.ts';
import type { ContextRecord, ContextStore } from './jsonld/index.ts';

/** Persists hosted / cached / implicit @contexts in the jsonld_contexts table. */
export class SqlContextStore implements ContextStore {
  constructor(private db: Db) {}
  async loadAll(): Promise<ContextRecord[]> {
    return (await this.db.query<{ record: ContextRecord }>('SELECT record FROM jsonld_contexts')).map((r) => r.record);
  }
  async save(rec: ContextRecord): Promise<void> {
    await this.db.query(
      'INSERT INTO jsonld_contexts (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record',
      [rec.id, JSON.stringify(rec)],
    );
  }
  async delete(id: string): Promise<void> {
    await this.db.query('DELETE FROM jsonld_contexts WHERE id = $1', [id]);
  }
}

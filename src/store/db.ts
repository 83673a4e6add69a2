/**
 * The one storage interface: the same SQL runs on embedded PGlite and on PostgreSQL.
 * Callers use `$1..$n` placeholders and get plain row objects back (jsonb parsed, text[] as arrays).
 */
export interface Db {
  readonly kind: 'pglite' | 'postgres';
  /** server version string, e.g. "PostgreSQL 17.4" */
  version(): Promise<string>;
  /** `opts.planPerCall`: plan with the actual values each time (PostgreSQL otherwise reuses a prepared statement's plan) */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], opts?: { planPerCall?: boolean }): Promise<T[]>;
  /** run several statements without parameters (migrations) */
  exec(sql: string): Promise<void>;
  /** run fn in one transaction; rolls back when fn throws */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /** whether the PostGIS extension is available (PostgreSQL only) */
  readonly hasPostgis: boolean;
  close(): Promise<void>;
}

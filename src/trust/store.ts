/** Trust tables (users, API keys, sessions, policies, audit): SQL valid on PGlite and PostgreSQL 15+. */
import type { Db } from '../store/db.ts';
import { migrateModule } from '../store/schema.ts';
import { AUDIT_MIGRATION } from './audit.ts';
import type { Operation, PrincipalRef, RoleBinding } from './api.ts';
import type { PolicyDoc } from './policy.ts';

export async function migrateTrust(db: Db): Promise<void> {
  await migrateModule(db, 'trust', [
    {
      version: 1,
      sql: `
CREATE TABLE IF NOT EXISTS trust_users (
  name text PRIMARY KEY,
  password_hash text NOT NULL,
  roles jsonb NOT NULL DEFAULT '[]'::jsonb,
  subject text,
  disabled boolean NOT NULL DEFAULT false,
  must_change boolean NOT NULL DEFAULT false,
  created_at text NOT NULL,
  updated_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS trust_api_keys (
  id text PRIMARY KEY,
  secret_hash text NOT NULL,
  name text NOT NULL,
  roles jsonb NOT NULL,
  ops jsonb,
  expires_at text NOT NULL,
  created_by text NOT NULL,
  created_at text NOT NULL,
  revoked boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS trust_sessions (
  token_hash text PRIMARY KEY,
  user_name text NOT NULL,
  created_at text NOT NULL,
  expires_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS trust_sessions_user ON trust_sessions (user_name);
CREATE TABLE IF NOT EXISTS trust_policies (
  id text PRIMARY KEY,
  doc jsonb NOT NULL,
  updated_at text NOT NULL,
  updated_by text NOT NULL
);
${AUDIT_MIGRATION}
`,
    },
    {
      // who created each NGSI-LD subscription: notifications are filtered with that principal's rights
      version: 2,
      sql: `
CREATE TABLE IF NOT EXISTS trust_subscription_owners (
  tenant text NOT NULL,
  sub_id text NOT NULL,
  ref jsonb NOT NULL,
  PRIMARY KEY (tenant, sub_id)
);
`,
    },
  ]);
}

export interface UserRow {
  name: string;
  password_hash: string;
  roles: RoleBinding[];
  subject: string | null;
  disabled: boolean;
  must_change: boolean;
  created_at: string;
  updated_at: string;
}

export interface ApiKeyRow {
  id: string;
  secret_hash: string;
  name: string;
  roles: RoleBinding[];
  ops: Operation[] | null;
  expires_at: string;
  created_by: string;
  created_at: string;
  revoked: boolean;
}

export class TrustStore {
  constructor(readonly db: Db) {}

  async countUsers(): Promise<number> {
    const r = await this.db.query<{ n: string | number }>('SELECT count(*) AS n FROM trust_users');
    return Number(r[0].n);
  }
  async getUser(name: string): Promise<UserRow | undefined> {
    return (await this.db.query<UserRow>('SELECT * FROM trust_users WHERE name = $1', [name]))[0];
  }
  async listUsers(): Promise<UserRow[]> {
    return this.db.query<UserRow>('SELECT * FROM trust_users ORDER BY name');
  }
  async insertUser(u: UserRow): Promise<boolean> {
    const r = await this.db.query(
      `INSERT INTO trust_users (name, password_hash, roles, subject, disabled, must_change, created_at, updated_at)
       VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING RETURNING name`,
      [u.name, u.password_hash, JSON.stringify(u.roles), u.subject, u.disabled, u.must_change, u.created_at, u.updated_at],
    );
    return r.length === 1;
  }
  async updateUser(name: string, patch: Partial<Pick<UserRow, 'password_hash' | 'roles' | 'subject' | 'disabled' | 'must_change'>>, at: string): Promise<boolean> {
    const sets: string[] = [];
    const params: unknown[] = [name];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      sets.push(`${k} = $${params.push(k === 'roles' ? JSON.stringify(v) : v)}${k === 'roles' ? '::jsonb' : ''}`);
    }
    sets.push(`updated_at = $${params.push(at)}`);
    const r = await this.db.query(`UPDATE trust_users SET ${sets.join(', ')} WHERE name = $1 RETURNING name`, params);
    return r.length === 1;
  }
  async deleteUser(name: string): Promise<boolean> {
    await this.db.query('DELETE FROM trust_sessions WHERE user_name = $1', [name]);
    return (await this.db.query('DELETE FROM trust_users WHERE name = $1 RETURNING name', [name])).length === 1;
  }

  async insertKey(k: ApiKeyRow): Promise<void> {
    await this.db.query(
      `INSERT INTO trust_api_keys (id, secret_hash, name, roles, ops, expires_at, created_by, created_at, revoked)
       VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, false)`,
      [k.id, k.secret_hash, k.name, JSON.stringify(k.roles), k.ops ? JSON.stringify(k.ops) : null, k.expires_at, k.created_by, k.created_at],
    );
  }
  async getKey(id: string): Promise<ApiKeyRow | undefined> {
    return (await this.db.query<ApiKeyRow>('SELECT * FROM trust_api_keys WHERE id = $1', [id]))[0];
  }
  async listKeys(): Promise<ApiKeyRow[]> {
    return this.db.query<ApiKeyRow>('SELECT * FROM trust_api_keys ORDER BY created_at, id');
  }
  async revokeKey(id: string): Promise<boolean> {
    return (await this.db.query('UPDATE trust_api_keys SET revoked = true WHERE id = $1 RETURNING id', [id])).length === 1;
  }

  async insertSession(tokenHash: string, user: string, at: string, expires: string): Promise<void> {
    await this.db.query('INSERT INTO trust_sessions (token_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)', [tokenHash, user, at, expires]);
  }
  async getSession(tokenHash: string): Promise<{ user_name: string; expires_at: string } | undefined> {
    return (await this.db.query<{ user_name: string; expires_at: string }>('SELECT user_name, expires_at FROM trust_sessions WHERE token_hash = $1', [tokenHash]))[0];
  }
  async deleteSession(tokenHash: string): Promise<void> {
    await this.db.query('DELETE FROM trust_sessions WHERE token_hash = $1', [tokenHash]);
  }
  async deleteSessionsOf(user: string, except?: string): Promise<void> {
    await this.db.query('DELETE FROM trust_sessions WHERE user_name = $1 AND token_hash <> $2', [user, except ?? '']);
  }
  async purgeSessions(now: string): Promise<void> {
    await this.db.query('DELETE FROM trust_sessions WHERE expires_at < $1', [now]);
  }

  async setSubscriptionOwner(tenant: string, id: string, ref: PrincipalRef): Promise<void> {
    await this.db.query(
      `INSERT INTO trust_subscription_owners (tenant, sub_id, ref) VALUES ($1, $2, $3::jsonb)
       ON CONFLICT (tenant, sub_id) DO UPDATE SET ref = EXCLUDED.ref`,
      [tenant, id, JSON.stringify(ref)],
    );
  }
  async deleteSubscriptionOwner(tenant: string, id: string): Promise<void> {
    await this.db.query('DELETE FROM trust_subscription_owners WHERE tenant = $1 AND sub_id = $2', [tenant, id]);
  }
  async subscriptionOwners(): Promise<{ tenant: string; sub_id: string; ref: PrincipalRef }[]> {
    return this.db.query('SELECT tenant, sub_id, ref FROM trust_subscription_owners');
  }

  async getPolicy(): Promise<PolicyDoc | undefined> {
    return (await this.db.query<{ doc: PolicyDoc }>("SELECT doc FROM trust_policies WHERE id = 'global'"))[0]?.doc;
  }
  async putPolicy(doc: PolicyDoc, by: string, at: string): Promise<void> {
    await this.db.query(
      `INSERT INTO trust_policies (id, doc, updated_at, updated_by) VALUES ('global', $1::jsonb, $2, $3)
       ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by`,
      [JSON.stringify(doc), at, by],
    );
  }
}

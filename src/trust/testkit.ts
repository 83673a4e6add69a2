/**
 * Test helpers for the trust layer (used by test/api/trust*.test.ts and by other modules' tests
 * that need signed-in callers): a platform with auth on, users and API keys created directly.
 */
import { testPlatform } from '../../test/helpers/server.ts';
import type { UrbisModule } from '../platform.ts';
import type { Clock } from '../common/clock.ts';
import type { RoleBinding, Operation } from './api.ts';
import { createTrustModule } from './module.ts';
import type { TrustOverrides } from './options.ts';
import type { TrustService } from './service.ts';
import { hashPassword, newApiKey, sha256 } from './secrets.ts';

export const ADMIN_PASSWORD = 'admin password for tests';

export async function trustPlatform(opts: { modules?: UrbisModule[]; trust?: TrustOverrides; clock?: Clock; listen?: boolean; config?: Record<string, unknown> } = {}) {
  const tm = createTrustModule({ adminPassword: ADMIN_PASSWORD, ...opts.trust }, {});
  const s = await testPlatform({ modules: [tm, ...(opts.modules ?? [])], clock: opts.clock, listen: opts.listen, config: { auth: true, ...opts.config } });
  const svc = tm.service() as TrustService;
  const now = () => new Date(s.platform.clock.now()).toISOString();
  const kit = {
    s,
    tm,
    svc,
    /** creates a user (no password change required) and returns a Cookie header value for it */
    async user(name: string, roles: RoleBinding[], extra: { subject?: string } = {}): Promise<string> {
      const pw = `pw-${name}-long-enough`;
      await svc.store.insertUser({ name, password_hash: await hashPassword(pw, { N: 1024, r: 8, p: 1, len: 32 }), roles, subject: extra.subject ?? null, disabled: false, must_change: false, created_at: now(), updated_at: now() });
      return kit.login(name, pw);
    },
    async login(name: string, password: string): Promise<string> {
      const r = await s.inject({ method: 'POST', url: '/auth/v1/login', payload: { username: name, password } });
      if (r.statusCode !== 200) throw new Error(`login ${name}: ${r.statusCode} ${r.body}`);
      return String(r.headers['set-cookie']).split(';')[0];
    },
    /** an API key token (urbis_<id>_<secret>) */
    async apiKey(roles: RoleBinding[], o: { ops?: Operation[]; expiresInMs?: number } = {}): Promise<string> {
      const k = newApiKey();
      await svc.store.insertKey({ id: k.id, secret_hash: sha256(k.secret), name: 'test', roles, ops: o.ops ?? null, expires_at: new Date(s.platform.clock.now() + (o.expiresInMs ?? 86_400_000)).toISOString(), created_by: 'test', created_at: now(), revoked: false });
      return k.token;
    },
  };
  return kit;
}

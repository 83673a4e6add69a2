/**
 * OIDC: accepts JWTs from an external identity provider, verified against its JWKS (signature,
 * issuer, audience, expiry with 30 s tolerance, allowed algorithms only: never `none` or HMAC).
 * Keycloak-compatible claims: roles from realm_access.roles, resource_access[clientId].roles and
 * a top-level `roles`; a role may name its tenant as `role@tenant`; otherwise the roles apply to
 * the tenants in the tenant claim (string or list, default claim `tenant`), else the default tenant.
 */
import { createRemoteJWKSet, jwtVerify, errors, type JWTPayload } from 'jose';
import type { Clock } from '../common/clock.ts';
import type { Principal, RoleBinding } from './api.ts';

export interface OidcOptions {
  issuer: string;
  /** default: jwks_uri of <issuer>/.well-known/openid-configuration */
  jwksUrl?: string;
  audience?: string;
  /** client whose resource_access roles count */
  clientId?: string;
  tenantClaim?: string;
  /** claim holding the person's data-subject identifier (optional) */
  subjectClaim?: string;
  algorithms?: string[];
}

export class TokenError extends Error {}

export class OidcVerifier {
  private jwks?: ReturnType<typeof createRemoteJWKSet>;
  private jwksPromise?: Promise<ReturnType<typeof createRemoteJWKSet>>;
  constructor(
    private o: OidcOptions,
    private clock: Clock,
  ) {}

  private keys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.jwks) return Promise.resolve(this.jwks);
    this.jwksPromise ??= (async () => {
      let url = this.o.jwksUrl;
      if (!url) {
        const r = await fetch(`${this.o.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
        if (!r.ok) throw new Error(`OIDC discovery failed: HTTP ${r.status}`);
        url = String(((await r.json()) as { jwks_uri?: string }).jwks_uri ?? '');
        if (!url) throw new Error('OIDC discovery: no jwks_uri');
      }
      this.jwks = createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      return this.jwks;
    })().catch((e) => {
      this.jwksPromise = undefined;
      throw e;
    });
    return this.jwksPromise;
  }

  /** verified principal, or TokenError with a short reason (no token content in it) */
  async verify(token: string): Promise<Principal> {
    if (token.length > 16_384 || token.split('.').length !== 3) throw new TokenError('malformed token');
    let payload: JWTPayload;
    try {
      const r = await jwtVerify(token, await this.keys(), {
        issuer: this.o.issuer,
        audience: this.o.audience,
        algorithms: this.o.algorithms ?? ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
        currentDate: new Date(this.clock.now()),
        clockTolerance: 30,
        requiredClaims: ['exp', 'sub'],
      });
      payload = r.payload;
    } catch (e) {
      throw new TokenError(reason(e));
    }
    return this.toPrincipal(payload);
  }

  toPrincipal(c: JWTPayload): Principal {
    const names = new Set<string>();
    const add = (v: unknown) => {
      if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') names.add(x);
    };
    add((c.realm_access as { roles?: unknown } | undefined)?.roles);
    if (this.o.clientId) add((c.resource_access as Record<string, { roles?: unknown }> | undefined)?.[this.o.clientId]?.roles);
    add(c.roles);
    const tc = c[this.o.tenantClaim ?? 'tenant'];
    const tenants = typeof tc === 'string' ? [tc] : Array.isArray(tc) ? tc.filter((x): x is string => typeof x === 'string') : [''];
    const roles: RoleBinding[] = [];
    for (const n of names) {
      const at = n.lastIndexOf('@');
      if (at > 0) roles.push({ role: n.slice(0, at), tenant: n.slice(at + 1) });
      else for (const t of tenants) roles.push({ role: n, tenant: t });
    }
    const subject = this.o.subjectClaim ? c[this.o.subjectClaim] : undefined;
    return {
      kind: 'oidc',
      id: `${c.iss}|${c.sub}`,
      name: String(c.preferred_username ?? c.email ?? c.sub),
      roles,
      subject: typeof subject === 'string' ? subject : undefined,
      via: 'bearer',
    };
  }
}

function reason(e: unknown): string {
  if (e instanceof errors.JWTExpired) return 'token expired';
  if (e instanceof errors.JWTClaimValidationFailed) return `token claim "${e.claim}" is not valid`;
  if (e instanceof errors.JWSSignatureVerificationFailed) return 'token signature is not valid';
  if (e instanceof errors.JWKSNoMatchingKey) return 'token signed with an unknown key';
  if (e instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return 'malformed token';
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid) return 'identity provider keys unavailable';
  if (e instanceof errors.JOSEError) return 'token not accepted';
  return 'token not accepted';
}

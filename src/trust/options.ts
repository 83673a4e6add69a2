/** Trust-layer settings, read from the environment (see docs/security.md, "Configuration"). */
import type { RateSpec } from './rate-limit.ts';
import type { ComplexityLimits } from './complexity.ts';
import type { OidcOptions } from './oidc.ts';

export interface TrustOptions {
  /** initial policy: anonymous callers may read open data (URBIS_PUBLIC_READ=on) */
  publicRead: boolean;
  /** first-run admin password (URBIS_ADMIN_PASSWORD); else a one-time password is printed once */
  adminPassword?: string;
  oidc?: OidcOptions;
  rate: {
    /** per signed-in user / API key / OIDC subject */
    principal: RateSpec;
    /** per client address, anonymous callers */
    anonymous: RateSpec;
    /** per client address, southbound device HTTP */
    device: RateSpec;
    /** login attempts per address and per user name */
    login: RateSpec;
  };
  complexity?: Partial<ComplexityLimits>;
  /** Secure cookies: 'auto' = when TLS is configured or the base URL is https */
  cookieSecure: boolean | 'auto';
  sessionTtlMs: number;
  /** allowed CORS origins ('*' = any, without credentials); empty = no CORS */
  corsOrigins: string[];
  /** extra sources for the dashboard's Content-Security-Policy (map tiles) */
  cspConnect: string[];
  tls?: { certFile: string; keyFile: string; caFile?: string };
  mqtt: { maxConnectionsPerIp: number; perClient: RateSpec; maxMessageBytes: number };
  /** API keys: default and longest lifetime */
  apiKeyDays: { default: number; max: number };
}

const num = (v: string | undefined, d: number) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);
const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
/** "rate/burst", e.g. "20/100"; "0" disables */
function rateSpec(v: string | undefined, d: RateSpec): RateSpec {
  if (!v) return d;
  const [r, b] = v.split('/').map(Number);
  if (!Number.isFinite(r)) return d;
  return { rate: r, burst: Number.isFinite(b) ? b : Math.max(1, r * 2) };
}

export type TrustOverrides = Partial<Omit<TrustOptions, 'rate' | 'mqtt'>> & { rate?: Partial<TrustOptions['rate']>; mqtt?: Partial<TrustOptions['mqtt']> };

export function loadTrustOptions(env: NodeJS.ProcessEnv = process.env, over: TrustOverrides = {}): TrustOptions {
  const issuer = env.URBIS_OIDC_ISSUER;
  const tileOrigin = (() => {
    try {
      return env.URBIS_MAP_TILES ? [new URL(env.URBIS_MAP_TILES.replace(/\{[a-z]\}/g, '0')).origin] : [];
    } catch {
      return [];
    }
  })();
  const base: TrustOptions = {
    publicRead: (env.URBIS_PUBLIC_READ ?? 'off').toLowerCase() === 'on',
    adminPassword: env.URBIS_ADMIN_PASSWORD || undefined,
    oidc: issuer
      ? {
          issuer,
          jwksUrl: env.URBIS_OIDC_JWKS_URL || undefined,
          audience: env.URBIS_OIDC_AUDIENCE || undefined,
          clientId: env.URBIS_OIDC_CLIENT_ID || undefined,
          tenantClaim: env.URBIS_OIDC_TENANT_CLAIM || undefined,
          subjectClaim: env.URBIS_OIDC_SUBJECT_CLAIM || undefined,
        }
      : undefined,
    rate: {
      principal: rateSpec(env.URBIS_RATE_PRINCIPAL, { rate: 100, burst: 400 }),
      anonymous: rateSpec(env.URBIS_RATE_ANONYMOUS, { rate: 20, burst: 100 }),
      device: rateSpec(env.URBIS_RATE_DEVICE, { rate: 200, burst: 1000 }),
      login: rateSpec(env.URBIS_RATE_LOGIN, { rate: 10 / 300, burst: 10 }),
    },
    cookieSecure: env.URBIS_COOKIE_SECURE === 'on' ? true : env.URBIS_COOKIE_SECURE === 'off' ? false : 'auto',
    sessionTtlMs: num(env.URBIS_SESSION_HOURS, 12) * 3600_000,
    corsOrigins: list(env.URBIS_CORS_ORIGINS),
    cspConnect: [...tileOrigin, ...list(env.URBIS_CSP_CONNECT)],
    tls: env.URBIS_TLS_CERT && env.URBIS_TLS_KEY ? { certFile: env.URBIS_TLS_CERT, keyFile: env.URBIS_TLS_KEY, caFile: env.URBIS_TLS_CA || undefined } : undefined,
    mqtt: {
      maxConnectionsPerIp: num(env.URBIS_MQTT_MAX_CONN_PER_IP, 50),
      perClient: rateSpec(env.URBIS_MQTT_RATE, { rate: 20, burst: 100 }),
      maxMessageBytes: num(env.URBIS_MQTT_MAX_BYTES, 256 * 1024),
    },
    apiKeyDays: { default: num(env.URBIS_APIKEY_DAYS, 90), max: num(env.URBIS_APIKEY_MAX_DAYS, 730) },
  };
  return { ...base, ...over, rate: { ...base.rate, ...over.rate }, mqtt: { ...base.mqtt, ...over.mqtt } };
}

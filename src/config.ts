/** All runtime settings, read once from the environment. */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  /** false only with URBIS_AUTH=off: every API open, for local development and conformance runs */
  auth: boolean;
  demo: boolean;
  mqttPort: number;
  /** external MQTT broker URL to consume device traffic from instead of the embedded one */
  mqttUrl?: string;
  /** public base URL used in Location headers, hosted @context URLs, Link headers */
  baseUrl: string;
  maxLimit: number;
  defaultLimit: number;
  bodyLimit: number;
  contextTimeoutMs: number;
  logLevel: string;
  /** entities kept in the read cache (0 disables it: several nodes writing one database) */
  entityCacheSize: number;
  /** HTTP notifications: keep-alive connections per receiver origin */
  notifyConnections: number;
  /** HTTP notifications: requests in flight per connection (HTTP/1.1 pipelining; 1 turns it off for receivers that mishandle it) */
  notifyPipelining: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int(env.PORT, 8080);
  const host = env.HOST ?? '0.0.0.0';
  return {
    port,
    host,
    dataDir: env.URBIS_DATA_DIR ?? './data',
    databaseUrl: env.DATABASE_URL || undefined,
    auth: (env.URBIS_AUTH ?? 'on').toLowerCase() !== 'off',
    demo: (env.URBIS_DEMO ?? 'on').toLowerCase() !== 'off',
    mqttPort: int(env.MQTT_PORT, 1883),
    mqttUrl: env.MQTT_URL || undefined,
    baseUrl: (env.URBIS_BASE_URL ?? `http://localhost:${port}`).replace(/\/$/, ''),
    maxLimit: int(env.URBIS_MAX_LIMIT, 1000),
    defaultLimit: int(env.URBIS_DEFAULT_LIMIT, 20),
    bodyLimit: int(env.URBIS_BODY_LIMIT, 8 * 1024 * 1024),
    contextTimeoutMs: int(env.URBIS_CONTEXT_TIMEOUT_MS, 5000),
    logLevel: env.URBIS_LOG ?? 'info',
    entityCacheSize: int(env.URBIS_ENTITY_CACHE, 100_000),
    notifyConnections: Math.max(1, int(env.URBIS_NOTIFY_CONNECTIONS, 32)),
    notifyPipelining: Math.max(1, int(env.URBIS_NOTIFY_PIPELINING, 16)),
  };
}

function int(v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`expected a non-negative integer, got "${v}"`);
  return n;
}

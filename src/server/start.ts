import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../config.ts';
import { createLogger } from '../common/log.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import { openStore } from '../store/open.ts';
import { LocalChangeBus } from '../bus/change-bus.ts';
import { ContextLoader, ContextRegistry } from '../ngsi-ld/jsonld/index.ts';
import { SqlContextStore } from '../ngsi-ld/context-store.ts';
import { Broker } from '../ngsi-ld/broker.ts';
import type { Platform, UrbisModule } from '../platform.ts';
import { modules as defaultModules } from '../modules.ts';
import { buildApp } from './app.ts';

export interface Running {
  platform: Platform;
  app: FastifyInstance;
  /** base URL the HTTP server listens on, e.g. http://127.0.0.1:41234 */
  url: string;
  close(): Promise<void>;
}

export interface StartOptions {
  /** overrides of the environment configuration */
  config?: Partial<Config>;
  /** in-memory PGlite (tests) instead of the data folder */
  memory?: boolean;
  /** modules to run (default: all of src/modules.ts) */
  modules?: UrbisModule[];
  clock?: Clock;
  /** do not open a TCP port (tests that use app.inject) */
  noListen?: boolean;
}

/** Opens the store, starts every module and the HTTP server. Used by main.ts and by tests. */
export async function startPlatform(opts: StartOptions = {}): Promise<Running> {
  const config: Config = { ...loadConfig(), ...opts.config };
  const log = createLogger(config.logLevel);
  const db = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, memory: opts.memory });
  const bus = new LocalChangeBus((e) => log.error('change handler failed', { err: e }));
  const loader = new ContextLoader({ timeoutMs: config.contextTimeoutMs });
  const registry = new ContextRegistry({ baseUrl: config.baseUrl, store: new SqlContextStore(db), loader, onError: (e) => log.warn('context store write failed', { err: e }) });
  await registry.init();
  // @context usage counters (numberOfHits, lastUsage) are kept in memory and persisted in batches
  const flushUsage = () => registry.flushUsage().catch((e) => log.warn('context usage flush failed', { err: e }));
  const usageTimer = setInterval(flushUsage, 15_000);
  usageTimer.unref();
  const broker = new Broker(db, bus, loader, { maxLimit: config.maxLimit, defaultLimit: config.defaultLimit, cacheSize: config.entityCacheSize });
  const platform: Platform = { config, db, bus, log, clock: opts.clock ?? systemClock, broker, services: new Map() };
  platform.services.set('jsonld.registry', registry);
  platform.services.set('jsonld.loader', loader);
  if (!config.auth) log.warn('URBIS_AUTH=off: every API is open to anyone who can reach this port. Use only for local development and conformance runs.');

  // URBIS_MODULES=a,b runs only those modules (e.g. a bare broker for conformance runs: URBIS_MODULES=none)
  const only = process.env.URBIS_MODULES?.split(',').map((x) => x.trim()).filter(Boolean);
  const mods = opts.modules ?? (only ? defaultModules.filter((m) => only.includes(m.name)) : defaultModules);
  const started: UrbisModule[] = [];
  try {
    for (const m of mods) {
      if (m.start) await m.start(platform);
      started.push(m);
    }
  } catch (e) {
    for (const m of started.reverse()) await m.stop?.().catch(() => {});
    await db.close();
    throw e;
  }
  const app = await buildApp(platform, mods);
  const reaper = setInterval(() => void broker.reapExpired().catch((e) => log.warn('reaping expired entities failed', { err: e })), 10_000);
  reaper.unref();
  let url = '';
  if (!opts.noListen) {
    url = await app.listen({ port: config.port, host: config.host });
    url = url.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
  } else {
    await app.ready();
  }
  return {
    platform,
    app,
    url,
    async close() {
      clearInterval(reaper);
      await app.close();
      for (const m of [...started].reverse()) await m.stop?.().catch((e) => log.warn(`stopping ${m.name} failed`, { err: e }));
      clearInterval(usageTimer);
      await flushUsage();
      await registry.settled?.().catch(() => {});
      await db.close();
    },
  };
}

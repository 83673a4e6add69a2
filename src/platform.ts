import type { FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import type { Db } from './store/db.ts';
import type { ChangeBus } from './bus/change-bus.ts';
import type { Logger } from './common/log.ts';
import type { Clock } from './common/clock.ts';
import type { Broker } from './ngsi-ld/broker.ts';

/** What every service of the platform gets: configuration, store, bus and the broker core. */
export interface Platform {
  config: Config;
  db: Db;
  bus: ChangeBus;
  log: Logger;
  clock: Clock;
  /** in-process NGSI-LD operations (same semantics as the HTTP API, no HTTP) */
  broker: Broker;
  /** services registered by modules for each other, by name (e.g. 'mqtt', 'auth') */
  services: Map<string, unknown>;
}

/**
 * A platform module (one layer or service). `start` runs once after the store is open (migrations,
 * workers), `routes` registers its HTTP API, `stop` releases resources. Modules are listed in
 * src/modules.ts in start order.
 */
export interface UrbisModule {
  name: string;
  start?(p: Platform): Promise<void>;
  routes?(app: FastifyInstance, p: Platform): Promise<void> | void;
  /**
   * Hooks on the root HTTP instance, registered before any route, so they apply to every API
   * (authentication, authorization, rate limits, security headers).
   */
  hooks?(app: FastifyInstance, p: Platform): Promise<void> | void;
  stop?(): Promise<void>;
}

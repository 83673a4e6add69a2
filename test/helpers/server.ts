import { startPlatform, type Running, type StartOptions } from '../../src/server/start.ts';

/**
 * Starts a real platform on an in-memory store for a test file. With `listen`, it also opens an
 * HTTP port on 127.0.0.1 (random) so real clients can connect; otherwise use `inject`.
 */
export async function testPlatform(opts: StartOptions & { listen?: boolean } = {}): Promise<Running & { inject: Running['app']['inject'] }> {
  const r = await startPlatform({
    memory: true,
    noListen: !opts.listen,
    modules: opts.modules ?? [],
    ...opts,
    config: { port: 0, host: '127.0.0.1', auth: false, demo: false, logLevel: process.env.URBIS_LOG ?? 'silent', mqttPort: 0, ...opts.config },
  });
  return Object.assign(r, { inject: r.app.inject.bind(r.app) });
}

export const LD = 'application/ld+json';
export const CORE = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld';

/**
 * TLS for HTTP and MQTT when a certificate is configured (URBIS_TLS_CERT / URBIS_TLS_KEY, PEM files;
 * URBIS_TLS_CA optional). TLS 1.2 minimum. The key is read once and never logged.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Server } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadTrustOptions } from './options.ts';

export function tlsOptions(env: NodeJS.ProcessEnv = process.env): TlsOptions | undefined {
  const t = loadTrustOptions(env).tls;
  if (!t) return undefined;
  return {
    cert: readFileSync(t.certFile),
    key: readFileSync(t.keyFile),
    ca: t.caFile ? readFileSync(t.caFile) : undefined,
    minVersion: 'TLSv1.2',
  };
}

/**
 * For Fastify's `serverFactory`: an HTTPS server when a certificate is configured, else undefined
 * (Fastify then makes its plain HTTP server).
 */
export function httpsServerFactory(env: NodeJS.ProcessEnv = process.env) {
  const o = tlsOptions(env);
  if (!o) return undefined;
  return (handler: (req: IncomingMessage, res: ServerResponse) => void) => createHttpsServer(o, handler) as unknown as import('node:http').Server;
}

/** For the MQTT listener: a TLS server when a certificate is configured, else undefined. */
export function mqttTlsServer(handler: (socket: import('node:net').Socket) => void, env: NodeJS.ProcessEnv = process.env): Server | undefined {
  const o = tlsOptions(env);
  return o ? createTlsServer(o, handler) : undefined;
}

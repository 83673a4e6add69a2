/**
 * HTTP API of the device layer:
 *   northbound provisioning (FIWARE IoT Agent API): /iot/about, /iot/services, /iot/devices[/:id]
 *   Urbis extensions: /iot/devices/:id/credentials (issue, rotate, revoke), /iot/devices/:id/status, /iot/stats
 *   southbound: POST /iot/json, /iot/json/attrs/:attr, /iot/json/commands, POST|GET /iot/d,
 *               POST /iot/lorawan/chirpstack (?event=up), POST /iot/lorawan/tts
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Platform } from '../platform.ts';
import { deviceToApi, groupToApi, iotError, scopeFromHeaders } from './domain/provisioning.ts';
import { healthIssues } from './domain/health.ts';
import type { DeviceService } from './service.ts';

type Q = Record<string, unknown>;

export function deviceRoutes(app: FastifyInstance, p: Platform, svc: () => DeviceService): void {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const scope = (req: FastifyRequest, wildcard = false) => scopeFromHeaders(req.headers as Record<string, unknown>, wildcard);
  const query = (req: FastifyRequest) => (req.query ?? {}) as Q;

  app.get('/iot/about', async () => ({ libVersion: 'urbis-devices-1', port: String(p.config.port), baseRoot: '/', version: '0.1.0' }));

  // ------------------------------------------------------------- config groups
  app.get('/iot/services', async (req) => {
    const s = scope(req, true);
    const list = svc().reg.listGroups(s.tenant, s.servicePath);
    const q = query(req);
    const offset = Number(q.offset ?? 0) || 0;
    const limit = Number(q.limit ?? 1000) || 1000;
    return { count: list.length, services: list.slice(offset, offset + limit).map(groupToApi) };
  });
  app.post('/iot/services', async (req, reply) => {
    await svc().createGroups(scope(req), req.body);
    reply.code(201).send({});
  });
  app.put('/iot/services', async (req, reply) => {
    const q = query(req);
    if (typeof q.apikey !== 'string') throw iotError(400, 'MISSING_PARAMETERS', 'query parameters resource and apikey are mandatory');
    await svc().updateGroup(scope(req), typeof q.resource === 'string' ? q.resource : '', q.apikey, req.body);
    reply.code(204).send();
  });
  app.delete('/iot/services', async (req, reply) => {
    const q = query(req);
    if (typeof q.apikey !== 'string') throw iotError(400, 'MISSING_PARAMETERS', 'query parameters resource and apikey are mandatory');
    await svc().deleteGroup(scope(req), typeof q.resource === 'string' ? q.resource : '', q.apikey);
    reply.code(204).send();
  });

  // ------------------------------------------------------------- devices
  app.get('/iot/devices', async (req) => {
    const s = scope(req, true);
    const q = query(req);
    const list = svc().reg.listDevices(s.tenant, s.servicePath).sort((a, b) => a.device.device_id.localeCompare(b.device.device_id));
    const offset = Math.max(0, Number(q.offset ?? 0) || 0);
    const limit = Math.max(1, Math.min(1000, Number(q.limit ?? 20) || 20));
    return { count: list.length, devices: list.slice(offset, offset + limit).map((r) => deviceToApi(r.device)) };
  });
  app.post('/iot/devices', async (req, reply) => {
    await svc().createDevices(scope(req), req.body);
    reply.code(201).send({});
  });
  app.get('/iot/devices/:id', async (req) => deviceToApi(svc().getDevice(scope(req, true), (req.params as { id: string }).id).device));
  app.put('/iot/devices/:id', async (req, reply) => {
    await svc().updateDevice(scope(req), (req.params as { id: string }).id, req.body);
    reply.code(204).send();
  });
  app.delete('/iot/devices/:id', async (req, reply) => {
    await svc().deleteDevice(scope(req), (req.params as { id: string }).id);
    reply.code(204).send();
  });
  app.post('/iot/devices/:id/credentials', async (req, reply) => {
    reply.code(201).send(await svc().issueCredentials(scope(req), (req.params as { id: string }).id, req.body));
  });
  app.delete('/iot/devices/:id/credentials', async (req, reply) => {
    await svc().revokeCredentials(scope(req), (req.params as { id: string }).id);
    reply.code(204).send();
  });
  app.get('/iot/devices/:id/status', async (req) => {
    const s = svc();
    const r = s.getDevice(scope(req, true), (req.params as { id: string }).id);
    const h = s.ingest.healthOf(r);
    return {
      device_id: r.device.device_id,
      entity_name: r.device.entity_name,
      revoked: r.revoked,
      hasCredentials: !!(r.secretHash || r.tokenHash),
      connectivity: h.connectivity,
      lastSeen: h.lastSeen !== undefined ? new Date(h.lastSeen).toISOString() : undefined,
      healthIssues: healthIssues(h),
      ...s.ingest.statsOf(r),
    };
  });
  app.get('/iot/stats', async () => svc().stats());

  // ------------------------------------------------------------- southbound HTTP
  const send = (reply: FastifyReply, r: { status: number; body?: unknown; contentType?: string }) => {
    reply.code(r.status);
    if (r.contentType) reply.header('content-type', r.contentType);
    return reply.send(r.body ?? '');
  };
  const auth = (req: FastifyRequest) => (typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined);

  app.post('/iot/json', async (req, reply) => send(reply, await svc().handleHttp('json', query(req), req.body, auth(req), { resource: '/iot/json' })));
  app.post('/iot/json/attrs/:attr', async (req, reply) =>
    send(reply, await svc().handleHttp('json', query(req), req.body, auth(req), { attr: (req.params as { attr: string }).attr, resource: '/iot/json' })),
  );
  app.get('/iot/json', async (req, reply) => send(reply, await svc().handleHttp('json', { ...query(req), getCmd: '1' }, undefined, auth(req), { resource: '/iot/json' })));
  app.post('/iot/json/commands', async (req, reply) => {
    await svc().handleHttpCommandResult(query(req), req.body, auth(req));
    reply.code(200).send('');
  });
  app.post('/iot/d', async (req, reply) => send(reply, await svc().handleHttp('ul', query(req), req.body, auth(req), { resource: '/iot/d' })));
  app.get('/iot/d', async (req, reply) => send(reply, await svc().handleHttp('ul', query(req), undefined, auth(req), { resource: '/iot/d' })));

  // ------------------------------------------------------------- LoRaWAN webhooks
  const apikeyOf = (req: FastifyRequest) => {
    const q = query(req);
    const h = req.headers['x-api-key'];
    return typeof q.k === 'string' ? q.k : typeof h === 'string' ? h : undefined;
  };
  app.post('/iot/lorawan/chirpstack', async (req, reply) => {
    const ev = query(req).event;
    if (ev !== undefined && ev !== 'up') return reply.code(204).send(); // join, status, ack, txack, log: not measures
    const r = await svc().handleLora('chirpstack', req.body, apikeyOf(req));
    return reply.code(200).send(r);
  });
  app.post('/iot/lorawan/tts', async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (body && typeof body === 'object' && !('uplink_message' in body) && 'end_device_ids' in body) return reply.code(204).send(); // join accept, downlink events
    const r = await svc().handleLora('tts', req.body, apikeyOf(req));
    return reply.code(200).send(r);
  });
}

/**
 * REST API of the rules layer, under /rules/v1 (tenant: NGSILD-Tenant header, default tenant otherwise).
 *
 *   GET    /rules/v1/rules                     list rules
 *   POST   /rules/v1/rules                     create (201 + Location); 400 with every problem; 409 if the id exists
 *   POST   /rules/v1/rules/validate            check a rule without saving it (200 { valid, rule } or 400)
 *   GET    /rules/v1/rules/{id}                one rule (+ live counts)
 *   PUT    /rules/v1/rules/{id}                replace
 *   PATCH  /rules/v1/rules/{id}                merge (e.g. { "enabled": false }) then validate as a whole
 *   DELETE /rules/v1/rules/{id}                delete (its open alarms are cleared)
 *   GET    /rules/v1/alarms                    ?status=active,acknowledged,cleared &rule= &entity= &severity= &limit= &offset=
 *   GET    /rules/v1/alarms/{id}               one alarm
 *   POST   /rules/v1/alarms/{id}/acknowledge   { by?, note? }
 *   POST   /rules/v1/alarms/{id}/clear         { by?, note? }
 *   GET    /rules/v1/alarms/{id}/deliveries    action delivery log of an alarm
 *   GET    /rules/v1/stats                     rules, evaluations, states, open alarms
 * Rules are also readable as NGSI-LD entities of type Rule (urn:ngsi-ld:Rule:{id}) and alarms as
 * Smart Data Models Alert entities (urn:ngsi-ld:Alert:...).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProblemError } from '../common/problem.ts';
import { tenantOf } from '../ngsi-ld/api/http.ts';
import { alarmJson } from './domain/actions.ts';
import type { AlarmStatus, Rule } from './domain/types.ts';
import { RULE_ID_PREFIX, ruleToInput } from './domain/validate.ts';
import type { RulesService } from './service.ts';

const PREFIX = '/rules/v1';
const STATUSES: AlarmStatus[] = ['active', 'acknowledged', 'cleared'];

function ruleJson(r: Rule, svc: RulesService): Record<string, unknown> {
  const alarms = svc.engine.alarms.list({ tenant: r.tenant, ruleId: r.id, status: ['active', 'acknowledged'] });
  return { ...ruleToInput(r), entityId: RULE_ID_PREFIX + r.id, openAlarms: alarms.length };
}

function intParam(v: unknown, name: string, dflt: number, max: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ProblemError('BadRequestData', `${name} must be an integer between 0 and ${max}`);
  return n;
}

function list(v: unknown): string[] | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

function actor(req: FastifyRequest, body: Record<string, unknown>): string {
  if (typeof body.by === 'string' && body.by.trim()) return body.by.trim().slice(0, 200);
  const user = (req as unknown as { user?: { sub?: string; name?: string } }).user;
  return user?.name ?? user?.sub ?? 'operator';
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (b === null) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
      const m = deepMerge(out[k], v);
      if (m === undefined) delete out[k];
      else out[k] = m;
    }
    return out;
  }
  return b;
}

export function registerRulesRoutes(app: FastifyInstance, svc: () => RulesService): void {
  app.get(`${PREFIX}/rules`, async (req) => {
    const tenant = tenantOf(req);
    return svc().listRules(tenant).map((r) => ruleJson(r, svc()));
  });

  app.post(`${PREFIX}/rules/validate`, async (req) => {
    const r = await svc().validate(tenantOf(req), req.body);
    return { valid: true, rule: ruleToInput(r) };
  });

  app.post(`${PREFIX}/rules`, async (req, reply) => {
    const r = await svc().createRule(tenantOf(req), req.body);
    reply.code(201).header('location', `${PREFIX}/rules/${encodeURIComponent(r.id)}`);
    return ruleJson(r, svc());
  });

  app.get<{ Params: { id: string } }>(`${PREFIX}/rules/:id`, async (req) => {
    const id = req.params.id.replace(RULE_ID_PREFIX, '');
    const r = svc().getRule(tenantOf(req), id);
    if (!r) throw new ProblemError('ResourceNotFound', `no rule ${id}`);
    return ruleJson(r, svc());
  });

  app.put<{ Params: { id: string } }>(`${PREFIX}/rules/:id`, async (req) => {
    const id = req.params.id.replace(RULE_ID_PREFIX, '');
    return ruleJson(await svc().replaceRule(tenantOf(req), id, req.body), svc());
  });

  app.patch<{ Params: { id: string } }>(`${PREFIX}/rules/:id`, async (req) => {
    const tenant = tenantOf(req);
    const id = req.params.id.replace(RULE_ID_PREFIX, '');
    const cur = svc().getRule(tenant, id);
    if (!cur) throw new ProblemError('ResourceNotFound', `no rule ${id}`);
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) throw new ProblemError('BadRequestData', 'PATCH needs a JSON object');
    const base = ruleToInput(cur);
    delete base.createdAt;
    delete base.modifiedAt;
    delete base.tenant;
    const merged = deepMerge(base, req.body);
    return ruleJson(await svc().replaceRule(tenant, id, merged), svc());
  });

  app.delete<{ Params: { id: string } }>(`${PREFIX}/rules/:id`, async (req, reply) => {
    await svc().deleteRule(tenantOf(req), req.params.id.replace(RULE_ID_PREFIX, ''));
    reply.code(204);
    return null;
  });

  app.get<{ Querystring: Record<string, string> }>(`${PREFIX}/alarms`, async (req, reply) => {
    const tenant = tenantOf(req);
    const q = req.query;
    const status = list(q.status);
    if (status && !status.every((s) => STATUSES.includes(s as AlarmStatus)))
      throw new ProblemError('BadRequestData', `status must be a comma-separated list of ${STATUSES.join(', ')}`);
    const limit = intParam(q.limit, 'limit', 100, 1000);
    const offset = intParam(q.offset, 'offset', 0, 1_000_000);
    await svc().settled();
    const { alarms, count } = await svc().store.listAlarms(tenant, {
      status: status as AlarmStatus[] | undefined, ruleId: q.rule, entityId: q.entity, severity: list(q.severity), limit, offset,
    });
    reply.header('x-total-count', String(count));
    return alarms.map(alarmJson);
  });

  app.get<{ Params: { id: string } }>(`${PREFIX}/alarms/:id`, async (req) => {
    await svc().settled();
    const a = await svc().store.getAlarm(tenantOf(req), req.params.id);
    if (!a) throw new ProblemError('ResourceNotFound', `no alarm ${req.params.id}`);
    return alarmJson(a);
  });

  app.post<{ Params: { id: string } }>(`${PREFIX}/alarms/:id/acknowledge`, async (req) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    const note = typeof body.note === 'string' ? body.note.slice(0, 2000) : undefined;
    return alarmJson(await svc().acknowledge(tenantOf(req), req.params.id, actor(req, body), note));
  });

  app.post<{ Params: { id: string } }>(`${PREFIX}/alarms/:id/clear`, async (req) => {
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    const note = typeof body.note === 'string' ? body.note.slice(0, 2000) : undefined;
    return alarmJson(await svc().clear(tenantOf(req), req.params.id, actor(req, body), note));
  });

  app.get<{ Params: { id: string } }>(`${PREFIX}/alarms/:id/deliveries`, async (req) => {
    await svc().idle();
    return svc().store.listDeliveries(tenantOf(req), { alarmId: req.params.id, limit: 200 });
  });

  app.get(`${PREFIX}/stats`, async (req) => svc().stats(tenantOf(req)));
}

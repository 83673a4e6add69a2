/** REST API under /kpi/v1 (see docs/kpi.md and GET /kpi/v1/openapi.json). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, notFound, ProblemError } from '../common/problem.ts';
import { tenantOf } from '../ngsi-ld/api/http.ts';
import { CATALOGUE, findKpi } from './domain/catalogue.ts';
import { CALCULATORS, CALCULATOR_LIST } from './domain/calculators/index.ts';
import { parsePeriod, periodOf } from './domain/period.ts';
import { validateProfile } from './domain/profile.ts';
import { compareReports, comparisonToCsv, comparisonToHtml, reportToCsv, reportToHtml } from './domain/report.ts';
import { validateFramework } from './domain/frameworks.ts';
import { parseValuesCsv, validateManualValue, validateTarget } from './domain/values.ts';
import type { KpiService } from './service.ts';
import { openApiDocument } from './openapi.ts';

type Q = Record<string, string | undefined>;
const P = '/kpi/v1';

export function kpiRoutes(app: FastifyInstance, svc: KpiService): void {
  const tenant = async (req: FastifyRequest) => {
    const t = tenantOf(req);
    await svc.ensureTenant(t);
    return t;
  };
  const period = (req: FastifyRequest) => parsePeriod((req.query as Q).period ?? periodOf(svc.p.clock.now(), 'year').id).id;
  const kpi = (code: string | undefined) => {
    const d = findKpi(decodeURIComponent(code ?? ''));
    if (!d) throw notFound(`KPI "${code}" is not in the catalogue`);
    return d;
  };
  const body = (req: FastifyRequest) => {
    const b = req.body;
    if (b === undefined || b === null || typeof b !== 'object') throw badRequest('a JSON body is required');
    return b as Record<string, unknown>;
  };
  const send = (reply: FastifyReply, format: string | undefined, json: unknown, csv: () => string, html: () => string, name: string) => {
    const f = (format ?? 'json').toLowerCase();
    if (f === 'json') return reply.type('application/json').send(json);
    if (f === 'csv') return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(csv());
    if (f === 'html') return reply.type('text/html; charset=utf-8').send(html());
    throw badRequest('format must be json, csv or html');
  };

  app.get(`${P}/openapi.json`, async () => openApiDocument());

  app.get(`${P}/definitions`, async (req) => {
    const q = req.query as Q;
    return CATALOGUE.filter(
      (d) => (!q.dimension || d.dimension === q.dimension) && (!q.kind || d.kind === q.kind) && (!q.method || d.calculationMethod === q.method),
    );
  });
  app.get(`${P}/definitions/:code`, async (req) => {
    const d = kpi((req.params as Q).code);
    const c = CALCULATORS.get(d.code);
    return { ...d, calculator: c ? { description: c.description, unit: c.unit, reads: c.reads, profileKeys: c.profileKeys, params: c.params ?? {} } : null };
  });
  app.get(`${P}/calculators`, async () =>
    CALCULATOR_LIST.map((c) => ({ code: c.code, description: c.description, unit: c.unit, method: c.method ?? 'automatic', reads: c.reads, profileKeys: c.profileKeys, params: c.params ?? {} })),
  );

  // ---- city profile ----
  app.get(`${P}/profiles`, async (req) => svc.store.profiles(await tenant(req)));
  app.put(`${P}/profiles/:period`, async (req) => {
    const t = await tenant(req);
    const p = validateProfile({ ...body(req), period: (req.params as Q).period });
    await svc.store.putProfile(t, p, svc.nowIso());
    return p;
  });

  // ---- values ----
  app.get(`${P}/values`, async (req) => {
    const t = await tenant(req);
    const q = req.query as Q;
    const code = q.code ? kpi(q.code).code : undefined;
    const vals = await svc.store.values(t, { code, period: q.period ? parsePeriod(q.period).id : undefined, dataPoint: q.dataPoint });
    return q.explain === 'false' ? vals.map(({ inputs, ...v }) => v) : vals;
  });
  app.post(`${P}/values`, async (req, reply) => {
    const t = await tenant(req);
    const items = Array.isArray(req.body) ? (req.body as unknown[]) : [body(req)];
    const now = svc.nowIso();
    const vals = items.map((i) => ({ ...validateManualValue(i), computedAt: now }));
    for (const v of vals) {
      await svc.store.putValue(t, v, { now, by: v.enteredBy, reason: (items[0] as Q)?.reason ?? 'manual entry' });
      await svc.publish(t, v.code, parsePeriod(v.period), v.value === null ? [] : [v], now);
    }
    return reply.code(201).send(Array.isArray(req.body) ? vals : vals[0]);
  });
  app.get(`${P}/values/history`, async (req) => {
    const q = req.query as Q;
    return svc.store.history(await tenant(req), kpi(q.code).code, q.period ? parsePeriod(q.period).id : undefined);
  });
  app.delete(`${P}/values`, async (req, reply) => {
    const q = req.query as Q;
    const ok = await svc.store.deleteValue(await tenant(req), kpi(q.code).code, parsePeriod(q.period ?? '').id, q.dataPoint ?? '', svc.nowIso(), q.by);
    if (!ok) throw notFound('no such value');
    return reply.code(204).send();
  });
  app.post(`${P}/import`, async (req) => {
    const t = await tenant(req);
    if (typeof req.body !== 'string') throw new ProblemError('UnsupportedMediaType', 'send the CSV as text/csv');
    const r = parseValuesCsv(req.body);
    const now = svc.nowIso();
    for (const v of r.values) {
      await svc.store.putValue(t, { ...v, computedAt: now }, { now, by: v.enteredBy, reason: 'CSV import' });
      await svc.publish(t, v.code, parsePeriod(v.period), v.value === null ? [] : [v], now);
    }
    return { imported: r.values.length, errors: r.errors };
  });

  // ---- recompute ----
  app.post(`${P}/recompute`, async (req) => {
    const t = await tenant(req);
    const p = period(req);
    const written = await svc.recompute(t, p);
    return { period: p, computed: written.length, values: written.map(({ inputs, ...v }) => v) };
  });

  // ---- targets ----
  app.get(`${P}/targets`, async (req) => svc.store.targets(await tenant(req)));
  app.put(`${P}/targets`, async (req) => {
    const t = await tenant(req);
    const items = Array.isArray(req.body) ? (req.body as unknown[]) : [body(req)];
    const ts = items.map(validateTarget);
    for (const x of ts) await svc.store.putTarget(t, x, svc.nowIso());
    return Array.isArray(req.body) ? ts : ts[0];
  });
  app.delete(`${P}/targets`, async (req, reply) => {
    const q = req.query as Q;
    if (!(await svc.store.deleteTarget(await tenant(req), kpi(q.code).code, q.dataPoint ?? ''))) throw notFound('no such target');
    return reply.code(204).send();
  });

  // ---- scores, frameworks, surveys ----
  app.get(`${P}/scores`, async (req) => svc.scores(await tenant(req), period(req)));
  app.get(`${P}/frameworks`, async (req) => svc.frameworks(await tenant(req)));
  app.get(`${P}/frameworks/:id`, async (req) => {
    const f = (await svc.frameworks(await tenant(req))).find((x) => x.id === (req.params as Q).id);
    if (!f) throw notFound(`framework "${(req.params as Q).id}" not found`);
    return f;
  });
  app.put(`${P}/frameworks/:id`, async (req) => {
    const t = await tenant(req);
    const f = validateFramework({ ...body(req), id: (req.params as Q).id });
    await svc.store.putFramework(t, f, svc.nowIso());
    return f;
  });
  app.delete(`${P}/frameworks/:id`, async (req, reply) => {
    if (!(await svc.store.deleteFramework(await tenant(req), (req.params as Q).id!))) throw notFound('no such framework (built-in frameworks cannot be deleted)');
    return reply.code(204).send();
  });
  app.get(`${P}/frameworks/:id/evaluation`, async (req) => svc.evaluate(await tenant(req), (req.params as Q).id!, period(req)));
  app.get(`${P}/surveys/:period`, async (req) => svc.store.survey(await tenant(req), parsePeriod((req.params as Q).period!).id));
  app.put(`${P}/surveys/:period`, async (req) => {
    const t = await tenant(req);
    const b = body(req);
    for (const [k, v] of Object.entries(b)) if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`survey value "${k}" must be a number`);
    const per = parsePeriod((req.params as Q).period!).id;
    await svc.store.putSurvey(t, per, b as Record<string, number>);
    return svc.store.survey(t, per);
  });

  // ---- reports ----
  app.get(`${P}/reports`, async (req, reply) => {
    const t = await tenant(req);
    const r = await svc.report(t, period(req));
    return send(reply, (req.query as Q).format, r, () => reportToCsv(r), () => reportToHtml(r), `kpi-report-${t || 'default'}-${r.period}`);
  });
  /** compare ?period (this tenant) with ?with (another period) and/or ?tenant (another city) */
  app.get(`${P}/compare`, async (req, reply) => {
    const t = await tenant(req);
    const q = req.query as Q;
    const pa = period(req);
    const pb = q.with ? parsePeriod(q.with).id : pa;
    const tb = q.tenant ?? t;
    if (!/^[A-Za-z0-9_\-.:/]{0,128}$/.test(tb)) throw badRequest('invalid tenant');
    if (pb === pa && tb === t) throw badRequest('give ?with=<period> and/or ?tenant=<other tenant> to compare');
    await svc.ensureTenant(tb);
    const c = compareReports(await svc.report(t, pa), await svc.report(tb, pb));
    return send(reply, q.format, c, () => comparisonToCsv(c), () => comparisonToHtml(c), `kpi-compare-${pa}-${pb}`);
  });
}

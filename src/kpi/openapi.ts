/** OpenAPI 3.1 description of the KPI API (served at /kpi/v1/openapi.json). */
const tenantHeader = { name: 'NGSILD-Tenant', in: 'header', required: false, schema: { type: 'string' }, description: 'tenant (city); default tenant when absent' };
const periodQ = { name: 'period', in: 'query', schema: { type: 'string', examples: ['2025', '2025-Q2', '2025-03', '2025-03-14'] }, description: 'period, default: the current year' };
const codeQ = (required: boolean) => ({ name: 'code', in: 'query', required, schema: { type: 'string' }, description: 'U4SSC code ("EC: ICT: WS: 1C") or slug ("EC-ICT-WS-1C")' });
const formatQ = { name: 'format', in: 'query', schema: { type: 'string', enum: ['json', 'csv', 'html'], default: 'json' } };
const problem = { description: 'RFC 7807 problem', content: { 'application/json': { schema: { $ref: '#/components/schemas/Problem' } } } };
const ok = (schema: unknown, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const ref = (n: string) => ({ $ref: `#/components/schemas/${n}` });
const arr = (n: string) => ({ type: 'array', items: ref(n) });

function op(summary: string, extra: Record<string, unknown> = {}) {
  const params = (extra.parameters as unknown[]) ?? [];
  return { summary, ...extra, parameters: [tenantHeader, ...params], responses: { ...(extra.responses as object), '400': problem, '404': problem } };
}

export function openApiDocument() {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Urbis KPI API',
      version: '1.0.0',
      description: 'U4SSC key performance indicators for smart sustainable cities (91 KPIs): catalogue, automatic and manual values per period, targets, U4SSC scoring, assessment frameworks and reports. KPI values are also published as the `kpiValue` attribute of the `KeyPerformanceIndicator` NGSI-LD entities (query/subscribe/temporal through /ngsi-ld/v1).',
    },
    paths: {
      '/kpi/v1/definitions': { get: op('List the 91 KPI definitions', { parameters: [{ name: 'dimension', in: 'query', schema: { type: 'string' } }, { name: 'kind', in: 'query', schema: { enum: ['core', 'advanced'] } }, { name: 'method', in: 'query', schema: { enum: ['automatic', 'semiautomatic', 'manual'] } }], responses: { '200': ok(arr('Definition')) } }) },
      '/kpi/v1/definitions/{code}': { get: op('One definition with its calculator (what it reads)', { parameters: [{ name: 'code', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': ok(ref('Definition')) } }) },
      '/kpi/v1/calculators': { get: op('Automatic calculators: entity types and attributes read, profile keys, parameters', { responses: { '200': ok({ type: 'array' }) } }) },
      '/kpi/v1/profiles': { get: op('City profiles (denominators per year)', { responses: { '200': ok(arr('Profile')) } }) },
      '/kpi/v1/profiles/{period}': { put: op('Set the city profile of a year', { parameters: [{ name: 'period', in: 'path', required: true, schema: { type: 'string', pattern: '^\\d{4}$' } }], requestBody: { content: { 'application/json': { schema: ref('Profile') } } }, responses: { '200': ok(ref('Profile')) } }) },
      '/kpi/v1/values': {
        get: op('KPI values (with inputs explaining automatic values)', { parameters: [codeQ(false), { ...periodQ, description: 'filter by period' }, { name: 'dataPoint', in: 'query', schema: { type: 'string' } }, { name: 'explain', in: 'query', schema: { type: 'boolean', default: true } }], responses: { '200': ok(arr('Value')) } }),
        post: op('Enter manual values (one object or an array); a replaced value is kept in the correction history', { requestBody: { content: { 'application/json': { schema: { oneOf: [ref('ValueInput'), arr('ValueInput')] } } } }, responses: { '201': ok({ oneOf: [ref('Value'), arr('Value')] }, 'Created') } }),
        delete: op('Withdraw a value (kept in the history)', { parameters: [codeQ(true), { ...periodQ, required: true }, { name: 'dataPoint', in: 'query', schema: { type: 'string' } }], responses: { '204': { description: 'Deleted' } } }),
      },
      '/kpi/v1/values/history': { get: op('Correction history of a KPI', { parameters: [codeQ(true), periodQ], responses: { '200': ok({ type: 'array' }) } }) },
      '/kpi/v1/import': { post: op('CSV import of manual values (header: code, period, value[, dataPoint, unit, method, source, quality, enteredBy, verifiedBy, note]; "," or ";")', { requestBody: { content: { 'text/csv': { schema: { type: 'string' } } } }, responses: { '200': ok({ type: 'object', properties: { imported: { type: 'integer' }, errors: { type: 'array' } } }) } }) },
      '/kpi/v1/recompute': { post: op('Recompute the automatic KPIs for a period now', { parameters: [periodQ], responses: { '200': ok({ type: 'object' }) } }) },
      '/kpi/v1/targets': {
        get: op('Targets and baselines', { responses: { '200': ok(arr('Target')) } }),
        put: op('Set targets (one object or an array)', { requestBody: { content: { 'application/json': { schema: { oneOf: [ref('Target'), arr('Target')] } } } }, responses: { '200': ok({}) } }),
        delete: op('Remove a target', { parameters: [codeQ(true), { name: 'dataPoint', in: 'query', schema: { type: 'string' } }], responses: { '204': { description: 'Deleted' } } }),
      },
      '/kpi/v1/scores': { get: op('U4SSC scorecard: items with share of target and points, category / sub-dimension / dimension scores', { parameters: [periodQ], responses: { '200': ok(ref('Scorecard')) } }) },
      '/kpi/v1/frameworks': { get: op('Assessment frameworks (built-in and own)', { responses: { '200': ok(arr('Framework')) } }) },
      '/kpi/v1/frameworks/{id}': {
        get: op('One framework', { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': ok(ref('Framework')) } }),
        put: op('Define or replace a framework (configuration, not code)', { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], requestBody: { content: { 'application/json': { schema: ref('Framework') } } }, responses: { '200': ok(ref('Framework')) } }),
        delete: op('Delete an own framework', { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Deleted' } } }),
      },
      '/kpi/v1/frameworks/{id}/evaluation': { get: op('Evaluate a framework for a period', { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }, periodQ], responses: { '200': ok({ type: 'object' }) } }) },
      '/kpi/v1/surveys/{period}': {
        get: op('Survey results (subjective indicators) of a period', { parameters: [{ name: 'period', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': ok({ type: 'object', additionalProperties: { type: 'number' } }) } }),
        put: op('Set survey results { key: number }', { parameters: [{ name: 'period', in: 'path', required: true, schema: { type: 'string' } }], requestBody: { content: { 'application/json': { schema: { type: 'object', additionalProperties: { type: 'number' } } } } }, responses: { '200': ok({ type: 'object' }) } }),
      },
      '/kpi/v1/reports': { get: op('KPI report of a period (JSON, CSV or printable HTML)', { parameters: [periodQ, formatQ], responses: { '200': { description: 'report', content: { 'application/json': { schema: { type: 'object' } }, 'text/csv': { schema: { type: 'string' } }, 'text/html': { schema: { type: 'string' } } } } } }) },
      '/kpi/v1/compare': { get: op('Compare two periods and/or two tenants (cities)', { parameters: [periodQ, { name: 'with', in: 'query', schema: { type: 'string' }, description: 'other period' }, { name: 'tenant', in: 'query', schema: { type: 'string' }, description: 'other tenant (city)' }, formatQ], responses: { '200': { description: 'comparison' } } }) },
      '/kpi/v1/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI document' } } } },
    },
    components: {
      schemas: {
        Problem: { type: 'object', properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' } } },
        Definition: {
          type: 'object',
          properties: {
            code: { type: 'string' }, slug: { type: 'string' }, dimension: { type: 'string' }, subDimension: { type: 'string' }, category: { type: 'string' }, name: { type: 'string' },
            kind: { enum: ['core', 'advanced'] }, type: { type: ['string', 'null'] }, unit: { type: ['string', 'null'] }, formula: { type: ['string', 'null'] }, definition: { type: 'string' },
            sdg: { type: 'array', items: { type: 'string' } }, polarity: { enum: ['higher-better', 'lower-better', 'target', null] }, calculationMethod: { enum: ['automatic', 'semiautomatic', 'manual'] },
            dataPoints: { type: 'array', items: { type: 'string' } },
          },
        },
        Profile: { type: 'object', properties: { period: { type: 'string' }, name: { type: 'string' }, values: { type: 'object', additionalProperties: { type: 'number' } }, sources: { type: 'object' } } },
        ValueInput: {
          type: 'object', required: ['code', 'period', 'value'],
          properties: { code: { type: 'string' }, period: { type: 'string' }, dataPoint: { type: 'string' }, value: { type: ['number', 'string', 'boolean', 'null'] }, unit: { type: 'string' }, method: { enum: ['manual', 'semiautomatic', 'automatic'] }, source: { type: 'string' }, quality: { enum: ['verified', 'official', 'measured', 'estimated', 'provisional'] }, enteredBy: { type: 'string' }, verifiedBy: { type: 'string' }, note: { type: 'string' } },
        },
        Value: { allOf: [ref('ValueInput'), { type: 'object', properties: { computedAt: { type: 'string' }, revision: { type: 'integer' }, inputs: { type: ['object', 'null'], description: 'window, entities and attributes read, profile figures, intermediate figures, notes' } } }] },
        Target: { type: 'object', required: ['code', 'target'], properties: { code: { type: 'string' }, dataPoint: { type: 'string' }, target: { type: 'number' }, baseline: { type: ['number', 'null'] }, polarity: { enum: ['higher-better', 'lower-better', 'target', null] }, source: { type: 'string' } } },
        Scorecard: { type: 'object', properties: { period: { type: 'string' }, overall: { type: 'object' }, dimensions: { type: 'array' }, items: { type: 'array' } } },
        Framework: { type: 'object', required: ['name', 'normalisation', 'groups'], properties: { id: { type: 'string' }, name: { type: 'string' }, normalisation: { enum: ['minmax', 'target'] }, scale: { type: 'number' }, groups: { type: 'array' } } },
      },
    },
  };
}

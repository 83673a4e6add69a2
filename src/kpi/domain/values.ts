/** Validation of manual / imported KPI values and the CSV import format. */
import { badRequest } from '../../common/problem.ts';
import { findKpi } from './catalogue.ts';
import { parsePeriod } from './period.ts';
import { DATA_QUALITY, type CalculationMethod, type DataQuality, type KpiTarget, type KpiValue, type Polarity } from './types.ts';

/** Parse RFC 4180 CSV (quotes, doubled quotes, CRLF); the delimiter is ',' or ';' (auto-detected). */
export function parseCsv(text: string, delimiter?: string): string[][] {
  const src = text.replace(/^\uFEFF/, '');
  const firstLine = src.split(/\r?\n/, 1)[0] ?? '';
  const d = delimiter ?? ((firstLine.match(/;/g)?.length ?? 0) > (firstLine.match(/,/g)?.length ?? 0) ? ';' : ',');
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (q) {
      if (c === '"') {
        if (src[i + 1] === '"') {
          cell += '"';
          i++;
        } else q = false;
      } else cell += c;
    } else if (c === '"' && cell === '') q = true;
    else if (c === d) {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0].trim() === ''));
}

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  // neutralise spreadsheet formulas
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d/.test(s) ? `'${s}` : s;
  return /[",;\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export const toCsv = (rows: unknown[][]) => rows.map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';

const str = (v: unknown, max = 500): string | null => {
  if (v === undefined || v === null || v === '') return null;
  const s = String(v).trim();
  if (s.length > max) throw badRequest(`text longer than ${max} characters`);
  return s || null;
};

/** numbers, yes/no (1/0) for Yes/No KPIs */
export function parseValue(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw badRequest('value must be a finite number');
    return v;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === 'yes' || s === 'true') return 1;
    if (s === 'no' || s === 'false') return 0;
    const n = Number(s.replace(/\s/g, '').replace(/,(?=\d+$)/, '.'));
    if (s !== '' && Number.isFinite(n)) return n;
  }
  throw badRequest(`value "${String(v)}" is not a number (or yes/no)`);
}

export interface ManualValueInput {
  code: string;
  period: string;
  dataPoint?: string;
  value: unknown;
  unit?: string;
  method?: string;
  source?: string;
  quality?: string;
  enteredBy?: string;
  verifiedBy?: string;
  note?: string;
}

/** Validate one manual value; `user` is recorded as enteredBy when none is given. */
export function validateManualValue(input: unknown, user?: string): KpiValue {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw badRequest('a value must be a JSON object');
  const o = input as ManualValueInput;
  const def = findKpi(String(o.code ?? ''));
  if (!def) throw badRequest(`unknown KPI code "${String(o.code ?? '')}"`);
  const period = parsePeriod(String(o.period ?? '')).id;
  const dataPoint = String(o.dataPoint ?? '').trim();
  if (dataPoint && !def.dataPoints.includes(dataPoint))
    throw badRequest(`KPI ${def.code} has no data point "${dataPoint}"${def.dataPoints.length ? ` (expected one of ${def.dataPoints.join(', ')})` : ''}`);
  const method = (o.method ?? 'manual') as CalculationMethod;
  if (!['manual', 'semiautomatic', 'automatic'].includes(method)) throw badRequest('method must be manual, semiautomatic or automatic');
  const quality = (str(o.quality) ?? 'provisional') as DataQuality;
  if (!DATA_QUALITY.includes(quality)) throw badRequest(`quality must be one of ${DATA_QUALITY.join(', ')}`);
  if (o.value === undefined) throw badRequest('value is required');
  return {
    code: def.code,
    period,
    dataPoint,
    value: parseValue(o.value),
    unit: str(o.unit, 100) ?? def.unit,
    method,
    source: str(o.source),
    quality,
    enteredBy: str(o.enteredBy, 200) ?? user ?? null,
    verifiedBy: str(o.verifiedBy, 200),
    note: str(o.note, 2000),
  };
}

const HEADER_ALIASES: Record<string, string> = {
  kpi: 'code',
  kpicode: 'code',
  code: 'code',
  period: 'period',
  year: 'period',
  datapoint: 'dataPoint',
  value: 'value',
  unit: 'unit',
  method: 'method',
  source: 'source',
  quality: 'quality',
  dataquality: 'quality',
  enteredby: 'enteredBy',
  verifiedby: 'verifiedBy',
  note: 'note',
  notes: 'note',
};

export interface CsvImportResult {
  values: KpiValue[];
  errors: { line: number; message: string }[];
}

/**
 * CSV import of manual values: header row with at least code, period, value (any order, case
 * insensitive; dataPoint, unit, method, source, quality, enteredBy, verifiedBy, note optional).
 */
export function parseValuesCsv(text: string, user?: string): CsvImportResult {
  const rows = parseCsv(text);
  if (!rows.length) throw badRequest('CSV is empty');
  const header = rows[0].map((h) => HEADER_ALIASES[h.trim().toLowerCase().replace(/[\s_-]/g, '')] ?? '');
  for (const req of ['code', 'period', 'value']) if (!header.includes(req)) throw badRequest(`CSV header must include "${req}"`);
  const values: KpiValue[] = [];
  const errors: { line: number; message: string }[] = [];
  rows.slice(1).forEach((r, i) => {
    const o: Record<string, string> = {};
    header.forEach((h, j) => {
      if (h && r[j] !== undefined) o[h] = r[j];
    });
    try {
      values.push(validateManualValue(o, user));
    } catch (e) {
      errors.push({ line: i + 2, message: (e as Error).message });
    }
  });
  return { values, errors };
}

export function validateTarget(input: unknown): KpiTarget {
  if (!input || typeof input !== 'object' || Array.isArray(input)) throw badRequest('a target must be a JSON object');
  const o = input as Record<string, unknown>;
  const def = findKpi(String(o.code ?? ''));
  if (!def) throw badRequest(`unknown KPI code "${String(o.code ?? '')}"`);
  const dataPoint = String(o.dataPoint ?? '').trim();
  if (dataPoint && !def.dataPoints.includes(dataPoint)) throw badRequest(`KPI ${def.code} has no data point "${dataPoint}"`);
  const target = parseValue(o.target);
  if (target === null) throw badRequest('target is required');
  const baseline = o.baseline === undefined || o.baseline === null || o.baseline === '' ? null : parseValue(o.baseline);
  const polarity = (o.polarity ?? null) as Polarity | null;
  if (polarity !== null && !['higher-better', 'lower-better', 'target'].includes(polarity))
    throw badRequest('polarity must be higher-better, lower-better or target');
  if (!polarity && !def.polarity) throw badRequest(`KPI ${def.code} has no polarity in the catalogue: give one with the target`);
  return { code: def.code, dataPoint, target, baseline, polarity, source: str(o.source) };
}

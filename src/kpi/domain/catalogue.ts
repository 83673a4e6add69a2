/**
 * The U4SSC catalogue: 91 KPI definitions built from the reference JSON (codes kept exact), their
 * calculation method (automatic when a calculator exists), data points and the NGSI-LD
 * KeyPerformanceIndicator entity form (Smart Data Models dataModel.KeyPerformanceIndicator).
 */
import raw from '../catalogue/u4ssc-kpis.json' with { type: 'json' };
import type { CalculationMethod, KpiDefinition, Polarity } from './types.ts';
import { CALCULATORS } from './calculators/index.ts';

interface RawKpi {
  code: string;
  dimension: string;
  subDimension: string;
  category: string;
  name: string;
  kind: string;
  type: string | null;
  unit: string | null;
  formula: string | null;
  definitionShort: string;
  sdg: string[];
  polarity: string | null;
  sensorDerivable: boolean;
  source: string | null;
  verification: string;
  unverifiedFields: string[];
  hint: { unit?: string; formula?: string; type?: string } | null;
}

/** KPIs reported as several separately scored data points (U4SSC scores every data point). */
export const DATA_POINTS: Record<string, string[]> = {
  'EC: ICT: ICT: 4C': ['3G', '4G'],
  'EC: ICT: PS: 1A': ['percentage', 'number'],
  'EC: I: T: 4A': ['publicTransport', 'privateVehicle', 'walking', 'cycling', 'other'],
  'EC: I: UP: 2A': ['compact', 'connected', 'integrated', 'inclusive', 'resilient'],
  'EN: EN: AQ: 1C': ['pm10', 'pm25', 'no2', 'so2', 'o3'],
  'EN: EN: WS: 4C': ['primary', 'secondary', 'tertiary'],
  'EN: EN: WA: 1C': ['landfill', 'incineration', 'openBurning', 'openDump', 'recycling', 'other'],
};

/** "EC: ICT: ICT: 1C" -> "EC-ICT-ICT-1C" */
export function slugOf(code: string): string {
  return code.replace(/[:\s]+/g, '-').replace(/-+/g, '-');
}

export const KPI_ENTITY_PREFIX = 'urn:ngsi-ld:KeyPerformanceIndicator:U4SSC-';
export const kpiEntityId = (code: string) => KPI_ENTITY_PREFIX + slugOf(code);

function methodOf(r: RawKpi): CalculationMethod {
  const c = CALCULATORS.get(r.code);
  if (c) return c.method ?? 'automatic';
  return r.sensorDerivable ? 'semiautomatic' : 'manual';
}

function unitOf(r: RawKpi): string | null {
  const c = CALCULATORS.get(r.code);
  return r.unit ?? c?.unit ?? r.hint?.unit ?? null;
}

export const CATALOGUE: readonly KpiDefinition[] = Object.freeze(
  (raw as RawKpi[]).map(
    (r): KpiDefinition =>
      Object.freeze({
        code: r.code,
        slug: slugOf(r.code),
        dimension: r.dimension,
        subDimension: r.subDimension,
        category: r.category,
        name: r.name,
        kind: r.kind === 'advanced' ? 'advanced' : 'core',
        type: (r.type as KpiDefinition['type']) ?? null,
        unit: unitOf(r),
        formula: r.formula ?? r.hint?.formula ?? null,
        definition: r.definitionShort,
        sdg: [...r.sdg],
        polarity: (r.polarity as Polarity | null) ?? null,
        calculationMethod: methodOf(r),
        sensorDerivable: r.sensorDerivable,
        dataPoints: DATA_POINTS[r.code] ?? [],
        verification: r.verification,
        unverifiedFields: [...r.unverifiedFields],
        source: r.source ?? null,
      }),
  ),
);

const BY_CODE = new Map(CATALOGUE.map((d) => [d.code, d]));
const BY_SLUG = new Map(CATALOGUE.map((d) => [d.slug, d]));

/** Look a KPI up by exact code, slug or entity id. */
export function findKpi(key: string): KpiDefinition | undefined {
  const k = key.trim();
  if (BY_CODE.has(k)) return BY_CODE.get(k);
  if (k.startsWith(KPI_ENTITY_PREFIX)) return BY_SLUG.get(k.slice(KPI_ENTITY_PREFIX.length));
  return BY_SLUG.get(k) ?? BY_CODE.get(normaliseCode(k));
}

/** Tolerant code normalisation: "sc:eh:ed:1c" -> "SC: EH: ED: 1C". */
export function normaliseCode(code: string): string {
  return code
    .split(/\s*[:\-]\s*/)
    .filter(Boolean)
    .map((s) => s.toUpperCase())
    .join(': ');
}

/** Dimension -> sub-dimension -> category tree with KPI codes, in catalogue order. */
export function hierarchy(defs: readonly KpiDefinition[] = CATALOGUE) {
  const dims: { name: string; subDimensions: { name: string; categories: { name: string; codes: string[] }[] }[] }[] = [];
  for (const d of defs) {
    let dim = dims.find((x) => x.name === d.dimension);
    if (!dim) dims.push((dim = { name: d.dimension, subDimensions: [] }));
    let sub = dim.subDimensions.find((x) => x.name === d.subDimension);
    if (!sub) dim.subDimensions.push((sub = { name: d.subDimension, categories: [] }));
    let cat = sub.categories.find((x) => x.name === d.category);
    if (!cat) sub.categories.push((cat = { name: d.category, codes: [] }));
    cat.codes.push(d.code);
  }
  return dims;
}

const prop = (value: unknown) => ({ type: 'Property', value });

/**
 * The KeyPerformanceIndicator entity (normalized NGSI-LD) for one definition. Attribute names follow
 * Smart Data Models where the model has one (name, description, category, organization, process,
 * calculationMethod, calculationFormula, calculationFrequency, aggregatedData, area); the U4SSC
 * fields use the `u4ssc*` / `kpi*` names documented in docs/kpi.md.
 */
export function toKpiEntity(def: KpiDefinition, opts: { organization?: string } = {}): Record<string, unknown> {
  const calc = CALCULATORS.get(def.code);
  const e: Record<string, unknown> = {
    id: kpiEntityId(def.code),
    type: 'KeyPerformanceIndicator',
    name: prop(def.name),
    description: prop(def.definition),
    category: prop([def.unit && /yes\/no/i.test(def.unit) ? 'qualitative' : 'quantitative']),
    process: prop('U4SSC Key Performance Indicators for Smart Sustainable Cities (ITU-T Y.4903)'),
    kpiCode: prop(def.code),
    dimension: prop(def.dimension),
    subDimension: prop(def.subDimension),
    kpiCategory: prop(def.category),
    kpiKind: prop(def.kind),
    calculationMethod: prop(def.calculationMethod),
    calculationFrequency: prop(def.calculationMethod === 'automatic' ? 'daily' : 'yearly'),
    sdgTargets: prop(def.sdg.length ? def.sdg : ['none recorded']),
    verification: prop(def.verification),
  };
  if (opts.organization) e.organization = prop(opts.organization);
  if (def.type) e.kpiType = prop(def.type);
  if (def.unit) e.unitText = prop(def.unit);
  if (def.formula) e.calculationFormula = prop(def.formula);
  if (def.polarity) e.polarity = prop(def.polarity);
  if (def.dataPoints.length) e.dataPoints = prop(def.dataPoints);
  if (def.source) e.kpiSource = prop(def.source);
  if (calc) e.aggregatedData = prop(calc.reads.map((r) => ({ entityType: r.entityType, attrs: r.attrs })));
  return e;
}

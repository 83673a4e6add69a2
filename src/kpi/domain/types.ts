/**
 * Shared types of the KPI domain (pure: no I/O). See docs/kpi.md.
 */

export type Polarity = 'higher-better' | 'lower-better' | 'target';
export type CalculationMethod = 'automatic' | 'semiautomatic' | 'manual';
export type KpiKind = 'core' | 'advanced';

/** A U4SSC KPI definition (one entry of the catalogue). */
export interface KpiDefinition {
  /** exact U4SSC code, e.g. "EC: ICT: ICT: 1C" */
  code: string;
  /** id-safe form of the code, e.g. "EC-ICT-ICT-1C" */
  slug: string;
  dimension: string;
  subDimension: string;
  category: string;
  name: string;
  kind: KpiKind;
  /** second "Type" of the ITU sheet: smart / sustainable / structural (null: not seen) */
  type: 'smart' | 'sustainable' | 'structural' | null;
  /** unit as confirmed by ITU, else the best-knowledge hint, else null */
  unit: string | null;
  formula: string | null;
  definition: string;
  sdg: string[];
  /** null: no natural direction (scored only when a target gives one) */
  polarity: Polarity | null;
  calculationMethod: CalculationMethod;
  sensorDerivable: boolean;
  /** named data points scored separately (e.g. one per pollutant); empty for single-valued KPIs */
  dataPoints: string[];
  /** where the definition was verified (itu-kpi-page / itu-city-report / checklist-only) */
  verification: string;
  unverifiedFields: string[];
  source: string | null;
}

/** A calendar period: year "2025", quarter "2025-Q2", month "2025-03", day "2025-03-14". */
export interface Period {
  id: string;
  granularity: 'year' | 'quarter' | 'month' | 'day';
  /** inclusive start, ISO-8601 UTC */
  start: string;
  /** exclusive end, ISO-8601 UTC */
  end: string;
}

/** Denominators for a city and a year. Known keys are listed in PROFILE_KEYS (profile.ts). */
export interface CityProfile {
  /** the year this profile applies to ("2025") */
  period: string;
  name?: string;
  values: Record<string, number>;
  sources?: Record<string, string>;
}

/** An entity in keyValues form, as returned by the broker with format=keyValues. */
export type KvEntity = { id: string; type: string | string[] } & Record<string, unknown>;

/** One sample of an attribute's history. */
export interface Sample {
  t: string;
  v: number;
}

/** history per entity id, then per attribute name */
export type SeriesMap = Record<string, Record<string, Sample[]>>;

/** What a calculator reads from the context broker (Smart Data Models names). */
export interface DataRequirement {
  entityType: string;
  attrs: string[];
  /** history of these attributes over the period is needed (temporal) */
  history?: string[];
  /** optional: true when the calculator works without this type */
  optional?: boolean;
  note?: string;
}

export interface CalcInput {
  period: Period;
  profile: CityProfile | null;
  /** current entities by entity type (keyValues) */
  entities: Record<string, KvEntity[]>;
  /** attribute history over the period (and possibly a little before, for cumulative counters) */
  series: SeriesMap;
  /** calculator parameters (overrides of defaults) */
  params?: Record<string, unknown>;
}

/** Explanation of a computed value: what was read and how it was combined. */
export interface InputsUsed {
  window: { from: string; to: string };
  entities: { type: string; count: number; ids: string[] }[];
  attributes: string[];
  profile: Record<string, number>;
  /** intermediate figures (numerator, denominator, per-station means, ...) */
  figures: Record<string, number | string | null>;
  notes: string[];
}

export interface CalcResult {
  /** headline value; null when it cannot be computed (reason in inputs.notes) */
  value: number | null;
  /** values per data point for multi-point KPIs */
  dataPoints?: Record<string, number | null>;
  unit: string;
  inputs: InputsUsed;
}

export interface Calculator {
  code: string;
  description: string;
  unit: string;
  /** 'semiautomatic' when a denominator must come from the city profile */
  method?: CalculationMethod;
  reads: DataRequirement[];
  /** profile keys used as denominators (or fallbacks) */
  profileKeys: string[];
  /** default parameters (thresholds, hours) */
  params?: Record<string, unknown>;
  compute(input: CalcInput): CalcResult;
}

export type DataQuality = 'verified' | 'official' | 'measured' | 'estimated' | 'provisional';
export const DATA_QUALITY: DataQuality[] = ['verified', 'official', 'measured', 'estimated', 'provisional'];

/** One value of one KPI for one period (and data point). */
export interface KpiValue {
  code: string;
  period: string;
  /** '' for the headline value */
  dataPoint: string;
  value: number | null;
  unit?: string | null;
  method: CalculationMethod;
  source?: string | null;
  quality?: DataQuality | null;
  enteredBy?: string | null;
  verifiedBy?: string | null;
  note?: string | null;
  computedAt?: string;
  inputs?: InputsUsed | null;
}

export interface KpiTarget {
  code: string;
  dataPoint: string;
  target: number;
  baseline?: number | null;
  /** overrides the catalogue polarity (needed for KPIs without one) */
  polarity?: Polarity | null;
  source?: string | null;
}

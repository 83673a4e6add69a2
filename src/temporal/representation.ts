import { renderInstance } from '../ngsi-ld/model/render.ts';
import type { AttrInstance, TermResolver } from '../ngsi-ld/model/types.ts';
import { iso, type AggrMethod, type TimeProperty } from './params.ts';
import type { AggSeries, HistoryInstance, TemporalEntityRow } from './store.ts';

/**
 * Temporal representations of an entity (NGSI-LD v1.9.1 clauses 4.5.7 normalized temporal
 * representation, 4.5.9 simplified "temporalValues", 4.5.19 aggregated temporal representation).
 * Pure builders over history rows; terms are compacted with the request's context.
 */

/** member holding the value list in temporalValues per attribute type */
const VALUES_KEY: Record<string, [string, string]> = {
  Property: ['values', 'value'],
  GeoProperty: ['values', 'value'],
  Relationship: ['objects', 'object'],
  LanguageProperty: ['languageMaps', 'languageMap'],
  VocabProperty: ['vocabs', 'vocab'],
  JsonProperty: ['jsons', 'json'],
  ListProperty: ['valueLists', 'valueList'],
  ListRelationship: ['objectLists', 'objectList'],
};

function base(e: TemporalEntityRow, ctx: TermResolver, sysAttrs: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: e.id,
    type: e.types.length === 1 ? ctx.compactIri(e.types[0]) : e.types.map((t) => ctx.compactIri(t)),
  };
  if (e.scopes && e.scopes.length) out.scope = e.scopes.length === 1 ? e.scopes[0] : e.scopes;
  if (sysAttrs) {
    out.createdAt = iso(e.createdAt);
    out.modifiedAt = iso(e.modifiedAt);
    if (e.deletedAt) out.deletedAt = iso(e.deletedAt);
  }
  return out;
}

function groupByAttr(rows: HistoryInstance[]): Map<string, HistoryInstance[]> {
  const m = new Map<string, HistoryInstance[]>();
  for (const r of rows) {
    const g = m.get(r.attr);
    if (g) g.push(r);
    else m.set(r.attr, [r]);
  }
  return m;
}

/** Normalized temporal representation: each attribute an array of instances with instanceId. */
export function normalizedTemporal(
  e: TemporalEntityRow,
  rows: HistoryInstance[],
  ctx: TermResolver,
  opts: { sysAttrs?: boolean; lang?: string } = {},
): Record<string, unknown> {
  const out = base(e, ctx, !!opts.sysAttrs);
  for (const [attr, insts] of groupByAttr(rows)) {
    out[ctx.compactIri(attr)] = insts.map((h) => {
      const inst: AttrInstance = h.instance ? { ...h.instance } : { type: (h.attrType as AttrInstance['type']) ?? 'Property' };
      if (h.datasetId && inst.datasetId === undefined) inst.datasetId = h.datasetId;
      if (!h.instance) {
        // tombstone: value is the null marker
        const k = VALUES_KEY[inst.type]?.[1] ?? 'value';
        inst[k] = 'urn:ngsi-ld:null';
      }
      const r = renderInstance(inst, ctx, { format: 'normalized', sysAttrs: false, lang: opts.lang }, true) as Record<string, unknown>;
      r.instanceId = h.instanceId;
      if (opts.sysAttrs) {
        r.createdAt = iso(h.createdAt);
        r.modifiedAt = iso(h.modifiedAt);
      }
      if (h.deletedAt !== undefined) r.deletedAt = iso(h.deletedAt);
      return r;
    });
  }
  return out;
}

/**
 * Simplified temporal representation (options=temporalValues): per attribute (and datasetId)
 * {type, values: [[value, time], ...]} with the time of the requested time property.
 */
export function temporalValues(
  e: TemporalEntityRow,
  rows: HistoryInstance[],
  ctx: TermResolver,
  opts: { timeproperty?: TimeProperty; sysAttrs?: boolean } = {},
): Record<string, unknown> {
  const out = base(e, ctx, !!opts.sysAttrs);
  for (const [attr, insts] of groupByAttr(rows)) {
    const byDs = new Map<string, HistoryInstance[]>();
    for (const h of insts) {
      const k = h.datasetId ?? '';
      const g = byDs.get(k);
      if (g) g.push(h);
      else byDs.set(k, [h]);
    }
    const series = [...byDs.entries()].map(([ds, hs]) => {
      const type = hs[0].instance?.type ?? hs[0].attrType;
      const [listKey, valueKey] = VALUES_KEY[type] ?? ['values', 'value'];
      const s: Record<string, unknown> = { type };
      s[listKey] = hs.map((h) => {
        let v: unknown = h.instance ? h.instance[valueKey] : 'urn:ngsi-ld:null';
        if (type === 'VocabProperty' && h.instance) {
          v = Array.isArray(v) ? v.map((x) => ctx.compactIri(String(x))) : ctx.compactIri(String(v));
        }
        // 4.5.9: languageMap / json / vocab values are wrapped in an object naming the member
        if (type === 'LanguageProperty' || type === 'JsonProperty' || type === 'VocabProperty') v = { [valueKey]: v };
        return [v, iso(h.t)];
      });
      if (ds) s.datasetId = ds;
      return s;
    });
    out[ctx.compactIri(attr)] = series.length === 1 ? series[0] : series;
  }
  return out;
}

/** Aggregated temporal representation: {type, <method>: [[value, start, end], ...]} per attribute. */
export function aggregatedValues(
  e: TemporalEntityRow,
  series: AggSeries[],
  methods: AggrMethod[],
  ctx: TermResolver,
  opts: { sysAttrs?: boolean; emptyAttrs?: string[] } = {},
): Record<string, unknown> {
  const out = base(e, ctx, !!opts.sysAttrs);
  for (const s of series) {
    const a: Record<string, unknown> = { type: s.attrType === 'Relationship' ? 'Relationship' : s.attrType };
    for (const m of methods) a[m] = s.buckets.map((b) => [b.values[m] ?? null, iso(b.start), iso(b.end)]);
    out[ctx.compactIri(s.attr)] = a;
  }
  for (const attr of opts.emptyAttrs ?? []) {
    const name = ctx.compactIri(attr);
    if (out[name] !== undefined) continue;
    const a: Record<string, unknown> = { type: 'Property' };
    for (const m of methods) a[m] = [];
    out[name] = a;
  }
  return out;
}

/**
 * Instance cap for one response (6.3.10 / 6.3.x pagination of temporal evolutions): instances of
 * all attributes sorted by time (newest first with lastN) and cut at `cap`. Returns the kept rows
 * and, when something was cut, the Content-Range header value ("date-time <start>-<end>/<size>").
 */
export function capInstances(
  rows: HistoryInstance[],
  cap: number,
  q: { timerel?: string; timeAt?: number; endTimeAt?: number; lastN?: number },
): { rows: HistoryInstance[]; contentRange?: string } {
  if (rows.length <= cap) return { rows };
  const desc = q.lastN !== undefined;
  const sorted = [...rows].sort((a, b) => (desc ? b.t - a.t : a.t - b.t) || a.instanceId.localeCompare(b.instanceId));
  const kept = sorted.slice(0, cap);
  const keptSet = new Set(kept);
  const out = rows.filter((r) => keptSet.has(r));
  const first = kept[0].t;
  const last = kept[kept.length - 1].t;
  let start: number;
  if (desc) start = q.timerel === 'between' ? q.endTimeAt! : q.timerel === 'before' ? q.timeAt! : first;
  else start = q.timerel === 'after' || q.timerel === 'between' ? q.timeAt! : first;
  const size = q.lastN !== undefined ? String(q.lastN) : '*';
  return { rows: out, contentRange: `date-time ${iso(start)}-${iso(last)}/${size}` };
}

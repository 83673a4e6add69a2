import { renderInstance } from '../ngsi-ld/model/render.ts';
import type { AttrInstance, TermResolver } from '../ngsi-ld/model/types.ts';
import { iso, type AggrMethod, type TimeProperty } from './params.ts';
import { SCOPE_ATTR, AggSeries, type HistoryInstance, type TemporalEntityRow } from './store.ts';

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

/** member name of an attribute's history (the scope history is presented as "scope") */
const memberName = (attr: string, ctx: TermResolver) => (attr === SCOPE_ATTR ? 'scope' : ctx.compactIri(attr));

/** `latestScope`: the aggregated representation shows the latest scope value (the history rows carry it otherwise) */
function base(e: TemporalEntityRow, ctx: TermResolver, sysAttrs: boolean, latestScope = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: e.id,
    type: e.types.length === 1 ? ctx.compactIri(e.types[0]) : e.types.map((t) => ctx.compactIri(t)),
  };
  if (latestScope && e.scopes && e.scopes.length) out.scope = e.scopes.length === 1 ? e.scopes[0] : e.scopes;
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
    out[memberName(attr, ctx)] = insts.map((h) => {
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
    out[memberName(attr, ctx)] = series.length === 1 ? series[0] : series;
  }
  return out;
}

/**
 * A JSON text spliced verbatim into a response by `stringifyWithRaw` (serialises as a placeholder
 * first): lets the aggregated representation write its bucket lists without one array per value.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify that writes RawJson members as their text. */
export function stringifyWithRaw(payload: unknown): string {
  const raws: string[] = [];
  // a per-call nonce: stored data cannot forge a placeholder
  const tag = `raw${Math.random().toString(36).slice(2)}_`;
  const proto = RawJson.prototype as unknown as { toJSON?: () => string };
  proto.toJSON = function (this: RawJson) {
    raws.push(this.text);
    return `\u0001${tag}${raws.length - 1}\u0001`;
  };
  try {
    const s = JSON.stringify(payload);
    return raws.length === 0 ? s : s.replace(new RegExp(`"\\\\u0001${tag}(\\d+)\\\\u0001"`, 'g'), (_, k: string) => raws[Number(k)]);
  } finally {
    delete proto.toJSON;
  }
}

/**
 * Per period grid (the bucket starts and their period), the text that follows each bucket value:
 * `,"<start>","<end>"]` (`last`) and the same followed by `,[` (`between`: it also opens the next
 * bucket). Series on the same grid (every sensor of one query) share it, so the ISO strings of the
 * bucket boundaries are written once per response, not once per series.
 */
interface GridText {
  starts: number[];
  between: string[];
  last: string;
}
const gridTexts = new Map<string, GridText>();
function gridText(s: AggSeries): GridText {
  const n = s.starts.length;
  const key = `${s.starts[0]}|${n}|${s.starts[n - 1]}|${s.endOf(s.starts[0])}`;
  const hit = gridTexts.get(key);
  // same first/last/count/period only implies the same grid for consecutive starts: check them all
  // (one comparison when the series share the starts array, as the hourly path's do)
  if (hit && (hit.starts === s.starts || hit.starts.every((x, k) => x === s.starts[k]))) return hit;
  const suffix = s.starts.map((st) => `,"${iso(st)}","${iso(s.endOf(st))}"]`);
  const g: GridText = { starts: s.starts, between: suffix.map((x) => x + ',['), last: suffix[n - 1] };
  if (gridTexts.size > 64) gridTexts.clear();
  gridTexts.set(key, g);
  return g;
}

/**
 * The JSON text of one method's bucket list, `[[v0,"s0","e0"],[v1,"s1","e1"],...]`, from the
 * series' comma-separated literals: one regex replace of the separators by the grid's texts gives
 * a flat string in one native pass (no per-bucket strings, arrays or concatenation ropes).
 */
function bucketListText(s: AggSeries, m: AggrMethod): string {
  const n = s.starts.length;
  if (n === 0) return '[]';
  const text = s.text[m];
  if (text === undefined) return '[' + s.starts.map((st) => `[null,"${iso(st)}","${iso(s.endOf(st))}"]`).join(',') + ']';
  const g = gridText(s);
  let k = 0;
  return '[[' + (n === 1 ? text : text.replace(/,/g, () => g.between[k++])) + g.last + ']';
}

/**
 * Aggregated temporal representation: {type, <method>: [[value, start, end], ...]} per attribute.
 * With `raw`, the lists are RawJson texts (for stringifyWithRaw), else plain arrays.
 */
export function aggregatedValues(
  e: TemporalEntityRow,
  series: AggSeries[],
  methods: AggrMethod[],
  ctx: TermResolver,
  opts: { sysAttrs?: boolean; emptyAttrs?: string[]; raw?: boolean } = {},
): Record<string, unknown> {
  const out = base(e, ctx, !!opts.sysAttrs, true);
  for (const s of series) {
    const a: Record<string, unknown> = { type: s.attrType === 'Relationship' ? 'Relationship' : s.attrType };
    for (const m of methods) {
      if (opts.raw) a[m] = new RawJson(bucketListText(s, m));
      else {
        const v = s.values[m] ?? [];
        a[m] = s.starts.map((st, k) => [v[k] === undefined || v[k] === 'null' ? null : Number(v[k]), iso(st), iso(s.endOf(st))]);
      }
    }
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

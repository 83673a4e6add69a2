import type { AttrInstance, StoredEntity, TermResolver } from './types.ts';
import { INSTANCE_CORE_KEYS } from './types.ts';

/** Stored form -> NGSI-LD JSON (normalized, concise or keyValues) with terms compacted to the request's context. */
export interface RenderOptions {
  format: 'normalized' | 'keyValues' | 'concise';
  sysAttrs?: boolean;
  /** expanded attribute names to keep (undefined: all) */
  pick?: Set<string>;
  /** expanded attribute names to drop */
  omit?: Set<string>;
  /** keep only instances with one of these datasetIds ('@none' = default instance) */
  datasetId?: Set<string>;
  lang?: string;
  /** whether id/type are kept when pick is given (pick=id,type semantics) */
  keepId?: boolean;
  keepType?: boolean;
}

export function renderEntity(e: StoredEntity, ctx: TermResolver, o: RenderOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (o.keepId !== false) out.id = e.id;
  if (o.keepType !== false) {
    out.type = e.type.length === 1 ? ctx.compactIri(e.type[0]) : e.type.map((t) => ctx.compactIri(t));
  }
  if (e.scope && (!o.pick || o.pick.has('scope'))) out.scope = e.scope.length === 1 ? e.scope[0] : e.scope;
  if (o.sysAttrs) {
    out.createdAt = e.createdAt;
    out.modifiedAt = e.modifiedAt;
  }
  for (const iri in e.attrs) {
    if (o.pick && !o.pick.has(iri)) continue;
    if (o.omit && o.omit.has(iri)) continue;
    let insts = e.attrs[iri];
    if (o.datasetId) insts = insts.filter((i) => o.datasetId!.has(i.datasetId ?? '@none'));
    if (insts.length === 0) continue;
    const name = ctx.compactIri(iri);
    if (o.format === 'keyValues') {
      // keyValues carries one value per attribute; the default instance wins
      const inst = insts.find((i) => i.datasetId === undefined) ?? insts[0];
      out[name] = simplified(inst, ctx, o.lang);
    } else {
      const r = insts.map((i) => renderInstance(i, ctx, o, true));
      out[name] = r.length === 1 ? r[0] : r;
    }
  }
  return out;
}

export function renderInstance(i: AttrInstance, ctx: TermResolver, o: RenderOptions, top: boolean): unknown {
  const concise = o.format === 'concise';
  const out: Record<string, unknown> = {};
  let type: string = i.type;
  if (type === 'LanguageProperty' && o.lang !== undefined) {
    const [val, lang] = pickLang(i.languageMap ?? {}, o.lang);
    type = 'Property';
    if (!concise) out.type = 'Property';
    out.value = val;
    if (lang) out.lang = lang;
  } else {
    if (!concise) out.type = type;
    switch (i.type) {
      case 'Property':
      case 'GeoProperty':
        out.value = i.value;
        break;
      case 'Relationship':
        out.object = i.object;
        break;
      case 'LanguageProperty':
        out.languageMap = i.languageMap;
        break;
      case 'VocabProperty':
        out.vocab = Array.isArray(i.vocab) ? i.vocab.map((v) => ctx.compactIri(v)) : ctx.compactIri(i.vocab as string);
        break;
      case 'JsonProperty':
        out.json = i.json;
        break;
      case 'ListProperty':
        out.valueList = i.valueList;
        break;
      case 'ListRelationship':
        out.objectList = concise ? i.objectList : (i.objectList ?? []).map((x) => ({ object: x }));
        break;
    }
  }
  if (i.objectType !== undefined)
    out.objectType = Array.isArray(i.objectType) ? i.objectType.map((t) => ctx.compactIri(t)) : ctx.compactIri(i.objectType);
  if (i.datasetId !== undefined) out.datasetId = i.datasetId;
  if (i.observedAt !== undefined) out.observedAt = i.observedAt;
  if (i.unitCode !== undefined) out.unitCode = i.unitCode;
  if ((i as Record<string, unknown>).lang !== undefined) out.lang = (i as Record<string, unknown>).lang;
  if (o.sysAttrs) {
    if (i.createdAt) out.createdAt = i.createdAt;
    if (i.modifiedAt) out.modifiedAt = i.modifiedAt;
  }
  for (const k in i) {
    if (INSTANCE_CORE_KEYS.has(k) || k === 'lang') continue;
    out[ctx.compactIri(k)] = renderInstance(i[k] as AttrInstance, ctx, o, false);
  }
  if (concise) {
    // concise drops the wrapper when only the value would remain (and the value is not ambiguous)
    const keys = Object.keys(out);
    if (type === 'Property' && keys.length === 1 && keys[0] === 'value' && !isPlainObjectWithValueKeys(out.value)) return out.value;
    if (type === 'GeoProperty' && keys.length === 1) return out.value;
  }
  void top;
  return out;
}

function isPlainObjectWithValueKeys(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && ('value' in v || 'object' in v || 'type' in v || 'languageMap' in v);
}

/** keyValues value of one instance. */
export function simplified(i: AttrInstance, ctx: TermResolver, lang?: string): unknown {
  switch (i.type) {
    case 'Property':
    case 'GeoProperty':
      return i.value;
    case 'Relationship':
      return i.object;
    case 'LanguageProperty':
      return lang !== undefined ? pickLang(i.languageMap ?? {}, lang)[0] : { languageMap: i.languageMap };
    case 'VocabProperty':
      return Array.isArray(i.vocab) ? i.vocab.map((v) => ctx.compactIri(v)) : ctx.compactIri(i.vocab as string);
    case 'JsonProperty':
      return { json: i.json };
    case 'ListProperty':
      return i.valueList;
    case 'ListRelationship':
      return i.objectList;
  }
}

/** lang filter (clause 4.15): exact tag, else '*' / first available; returns [value, chosen tag]. */
function pickLang(map: Record<string, string | string[]>, lang: string): [unknown, string | undefined] {
  const prefs = lang.split(',').map((s) => s.split(';')[0].trim()).filter(Boolean);
  for (const p of prefs) {
    if (p === '*') break;
    if (p in map) return [map[p], p];
  }
  if ('@none' in map) return [map['@none'], undefined];
  const first = Object.keys(map)[0];
  return first === undefined ? [undefined, undefined] : [map[first], first];
}

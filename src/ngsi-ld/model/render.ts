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
  /**
   * Linked entity retrieval, join=inline (clause 4.5.23): the rendered target of a top-level
   * Relationship (attribute IRI, target id), or undefined when it is not to be inlined.
   */
  inline?: (attr: string, id: string) => Record<string, unknown> | undefined;
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
  // expiresAt is a system attribute (clause 6.3.11): shown with sysAttrs only
  if (e.expiresAt !== undefined && o.sysAttrs) out.expiresAt = e.expiresAt;
  for (const iri in e.attrs) {
    if (o.pick && !o.pick.has(iri)) continue;
    if (o.omit && o.omit.has(iri)) continue;
    let insts = e.attrs[iri];
    if (o.datasetId) insts = insts.filter((i) => o.datasetId!.has(i.datasetId ?? '@none'));
    if (insts.some((i) => i.expiresAt !== undefined)) {
      // transient attribute instances vanish once expired (clause 4.22)
      const now = Date.now();
      insts = insts.filter((i) => i.expiresAt === undefined || Date.parse(i.expiresAt) > now);
    }
    if (insts.length === 0) continue;
    const name = ctx.compactIri(iri);
    if (o.format === 'keyValues') {
      // keyValues: one value per attribute; several instances become a dataset map keyed by datasetId (clause 4.5.4)
      const inl = o.inline ? (id: string) => o.inline!(iri, id) : undefined;
      if (insts.length === 1 && insts[0].datasetId === undefined) out[name] = simplified(insts[0], ctx, o.lang, inl);
      else {
        const dataset: Record<string, unknown> = {};
        for (const i of insts) dataset[i.datasetId ?? '@none'] = simplified(i, ctx, o.lang, inl);
        out[name] = { dataset };
      }
    } else {
      const r = insts.map((i) => renderInstance(i, ctx, o, true, iri));
      out[name] = r.length === 1 ? r[0] : r;
    }
  }
  return out;
}

export function renderInstance(i: AttrInstance, ctx: TermResolver, o: RenderOptions, top: boolean, attr?: string): unknown {
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
        if (top && o.inline && attr !== undefined && i.object !== undefined) {
          const linked = inlined(i.object, (id) => o.inline!(attr, id));
          if (linked !== undefined) out.entity = linked;
        }
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
        if (top && o.inline && attr !== undefined && i.objectList) {
          const list = i.objectList.map((id) => o.inline!(attr, id));
          if (list.some((x) => x !== undefined)) out.entityList = list.map((x, k) => x ?? { id: i.objectList![k] });
        }
        break;
    }
  }
  if (i.objectType !== undefined)
    out.objectType = Array.isArray(i.objectType) ? i.objectType.map((t) => ctx.compactIri(t)) : ctx.compactIri(i.objectType);
  if (i.datasetId !== undefined) out.datasetId = i.datasetId;
  if (i.observedAt !== undefined) out.observedAt = i.observedAt;
  if (i.unitCode !== undefined) out.unitCode = i.unitCode;
  if (i.expiresAt !== undefined && o.sysAttrs) out.expiresAt = i.expiresAt;
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

/** Rendered targets of a relationship object (one id or several); undefined when none is joined. */
function inlined(object: string | string[], get: (id: string) => Record<string, unknown> | undefined): unknown {
  if (!Array.isArray(object)) return get(object);
  const list = object.map(get);
  return list.some((x) => x !== undefined) ? list.map((x, k) => x ?? { id: object[k] }) : undefined;
}

/** keyValues value of one instance; `inline` gives the joined target of a Relationship (join=inline). */
export function simplified(i: AttrInstance, ctx: TermResolver, lang?: string, inline?: (id: string) => Record<string, unknown> | undefined): unknown {
  switch (i.type) {
    case 'Property':
    case 'GeoProperty':
      return i.value;
    case 'Relationship':
      return (inline && i.object !== undefined ? inlined(i.object, inline) : undefined) ?? i.object;
    case 'LanguageProperty':
      return lang !== undefined ? pickLang(i.languageMap ?? {}, lang)[0] : { languageMap: i.languageMap };
    case 'VocabProperty':
      return { vocab: Array.isArray(i.vocab) ? i.vocab.map((v) => ctx.compactIri(v)) : ctx.compactIri(i.vocab as string) };
    case 'JsonProperty':
      return { json: i.json };
    case 'ListProperty':
      return i.valueList;
    case 'ListRelationship':
      if (inline && i.objectList) {
        const list = i.objectList.map(inline);
        if (list.some((x) => x !== undefined)) return list.map((x, k) => x ?? i.objectList![k]);
      }
      return i.objectList;
  }
}

/** lang filter (clause 4.15): exact tag, else '*' / first available; returns [value, chosen tag]. */
function pickLang(map: Record<string, string | string[]>, lang: string): [unknown, string | undefined] {
  // RFC 4647 lookup over the ranges ordered by quality value (default 1), list order breaking ties
  const prefs = lang.split(',').map((s, i) => {
    const [tag, ...ps] = s.split(';').map((x) => x.trim());
    const q = ps.find((x) => x.startsWith('q='));
    return { tag: tag.toLowerCase(), q: q ? Number(q.slice(2)) : 1, i };
  }).filter((x) => x.tag && !(x.q <= 0)).sort((a, b) => b.q - a.q || a.i - b.i);
  const keys = Object.keys(map);
  const find = (t: string) => keys.find((k) => k.toLowerCase() === t);
  for (const { tag } of prefs) {
    if (tag === '*') break;
    for (let r = tag; r; r = r.includes('-') ? r.slice(0, r.lastIndexOf('-')) : '') {
      const k = find(r);
      if (k !== undefined) return [map[k], k];
    }
    const longer = keys.find((k) => k.toLowerCase().startsWith(tag + '-'));
    if (longer !== undefined) return [map[longer], longer];
  }
  if ('@none' in map) return [map['@none'], undefined];
  const first = keys[0];
  return first === undefined ? [undefined, undefined] : [map[first], first];
}

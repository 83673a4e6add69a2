/**
 * A JSON-LD 1.1 active context reduced to what an NGSI-LD broker needs: term <-> IRI mapping
 * for property names, type names and vocab values, with per-term @type/@container coercions.
 *
 * Term definition follows the JSON-LD 1.1 "Create Term Definition" and "IRI Expansion"
 * algorithms (mirrored on jsonld.js so the two agree, see test/unit/jsonld.test.ts), with the
 * NGSI-LD deviations documented on the class. No I/O: remote references are resolved by
 * ContextLoader before a context reaches this class.
 */
import { ProblemError } from '../../common/problem.ts';
import type { TermResolver } from '../model/types.ts';
import { CORE_CONTEXT, DEFAULT_VOCAB } from './core.ts';

/** A local context object, already dereferenced (no URL strings). */
export type ContextDefinition = Readonly<Record<string, unknown>>;

export interface TermDefinition {
  /** expanded IRI, blank node id or keyword; null: the term is explicitly unmapped */
  readonly id: string | null;
  /** '@id' | '@vocab' | '@json' | '@none' or an expanded datatype IRI */
  readonly type?: string;
  readonly container?: readonly string[];
  readonly language?: string | null;
  /** may be used as the prefix of a compact IRI (JSON-LD 1.1 prefix flag) */
  readonly prefix: boolean;
  readonly protected: boolean;
  readonly reverse: boolean;
  /** defined by the NGSI-LD core context */
  readonly core: boolean;
  /** the definition carried a scoped @context, which this implementation does not apply */
  readonly scoped: boolean;
}

export interface ActiveContextOptions {
  /** entries kept by each memo (expandTerm / compactIri); default 10 000 */
  memoSize?: number;
  /** append the core context when the list does not contain it; default true */
  withCore?: boolean;
}

const KEYWORDS = new Set([
  '@base', '@container', '@context', '@default', '@direction', '@embed', '@explicit', '@graph',
  '@id', '@import', '@included', '@index', '@json', '@language', '@list', '@nest', '@none',
  '@omitDefault', '@prefix', '@preserve', '@propagate', '@protected', '@requireAll', '@reverse',
  '@set', '@type', '@value', '@version', '@vocab',
]);
const KEYWORD_LIKE = /^@[a-zA-Z]+$/;
const ABSOLUTE_IRI = /^([A-Za-z][A-Za-z0-9+\-.]*|_):[^\s]*$/;
const GEN_DELIM_END = /[:/?#[\]@]$/;
const TERM_DEF_KEYS = new Set([
  '@container', '@id', '@language', '@reverse', '@type', '@context', '@direction', '@index',
  '@nest', '@prefix', '@protected',
]);
/** keys of a local context that are settings rather than terms */
const CONTEXT_KEYWORDS = new Set(['@base', '@direction', '@import', '@language', '@propagate', '@protected', '@version', '@vocab']);
const CONTAINERS = new Set(['@list', '@set', '@index', '@language', '@graph', '@id', '@type']);

export const isKeyword = (s: string): boolean => KEYWORDS.has(s);
export const isAbsoluteIri = (s: string): boolean => ABSOLUTE_IRI.test(s);

function invalid(detail: string): ProblemError {
  return new ProblemError('BadRequestData', `Invalid @context: ${detail}`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON-LD's "shortest, then lexicographically least" order. */
function shortestLeast(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Deviations from plain JSON-LD, all deliberate:
 * - The core context is protected and always wins for its terms: a user definition of a core
 *   term is ignored (JSON-LD would raise "protected term redefinition" when the user context
 *   comes after the core) and recorded in `warnings`. Other protected terms: first definition
 *   wins, later different ones are ignored with a warning instead of failing the request.
 * - @vocab and term definitions are processed in list order, so with the default list
 *   [user..., core] the core's @vocab (default-context) is the effective one, exactly as a
 *   JSON-LD processor sees the same list. A user @vocab takes effect only when it comes after
 *   the core (e.g. [core URL, {"@vocab": ...}]).
 * - expandTerm never drops a term: a term JSON-LD would drop (null mapping, no @vocab) is
 *   expanded against the NGSI-LD default vocabulary.
 * - @base, @language, @direction, @propagate, @nest, @index and scoped contexts are accepted
 *   and ignored (scoped ones with a warning).
 * - Nullifying the context (a null entry) clears non-protected definitions instead of failing
 *   when protected terms exist.
 */
export class ActiveContext implements TermResolver {
  /** the effective @vocab, undefined when none */
  readonly vocab: string | undefined;
  /** non-fatal issues met while processing (ignored redefinitions, scoped contexts) */
  readonly warnings: readonly string[];

  private readonly defs: Map<string, TermDefinition>;
  private readonly memoSize: number;
  private readonly expandMemo = new Map<string, string>();
  private readonly compactMemo = new Map<string, string>();
  private inverse: Map<string, string> | undefined;
  private prefixes: Array<[string, string]> | undefined;

  constructor(contexts: ReadonlyArray<ContextDefinition | null>, options: ActiveContextOptions = {}) {
    this.memoSize = Math.max(16, options.memoSize ?? 10_000);
    const list = options.withCore === false || contexts.includes(CORE_CONTEXT)
      ? contexts
      : [...contexts, CORE_CONTEXT];
    const builder = new Builder();
    for (const ctx of list) builder.process(ctx, ctx === CORE_CONTEXT);
    this.defs = builder.defs;
    this.vocab = builder.vocab;
    this.warnings = builder.warnings;
  }

  /**
   * Expands a property name, attribute name or type name (vocab-relative IRI expansion).
   * Keyword aliases come back as the keyword ('type' -> '@type').
   */
  expandTerm(term: string): string {
    const hit = this.expandMemo.get(term);
    if (hit !== undefined) return hit;
    let iri = expandIri(this.defs, this.vocab, term);
    if (iri === null || (!isKeyword(iri) && !isAbsoluteIri(iri))) iri = DEFAULT_VOCAB + term;
    remember(this.expandMemo, term, iri, this.memoSize);
    return iri;
  }

  /**
   * Compacts an expanded IRI with the JSON-LD IRI Compaction order (vocab = true): a term whose
   * IRI is exactly `iri`, else the suffix after @vocab unless that suffix is itself a term,
   * else the shortest usable compact IRI, else the IRI unchanged.
   */
  compactIri(iri: string): string {
    const hit = this.compactMemo.get(iri);
    if (hit !== undefined) return hit;
    const out = this.computeCompact(iri);
    remember(this.compactMemo, iri, out, this.memoSize);
    return out;
  }

  /** The @type coercion of a term ('@id', '@vocab', '@json', a datatype IRI), if any. */
  termType(term: string): string | undefined {
    return this.defs.get(term)?.type;
  }

  /** The @type coercion of the term that `iri` compacts to, for callers holding expanded IRIs. */
  typeOfIri(iri: string): string | undefined {
    const term = this.inverseMap().get(iri);
    return term === undefined ? undefined : this.defs.get(term)?.type;
  }

  definition(term: string): TermDefinition | undefined {
    return this.defs.get(term);
  }

  /** Whether `term` has a definition (possibly a null one). */
  has(term: string): boolean {
    return this.defs.has(term);
  }

  get size(): number {
    return this.defs.size;
  }

  private computeCompact(iri: string): string {
    if (isKeyword(iri)) {
      // keyword aliases such as "id"/"type": pick the shortest plain alias
      let best: string | undefined;
      for (const [term, d] of this.defs) {
        if (d.id === iri && d.type === undefined && d.container === undefined && (best === undefined || shortestLeast(term, best) < 0)) best = term;
      }
      return best ?? iri;
    }
    const exact = this.inverseMap().get(iri);
    if (exact !== undefined) return exact;
    // every candidate below must expand back to `iri` (JSON-LD does not check this for the
    // @vocab suffix: "http://v/a:b" would come back as the absolute IRI "a:b")
    const vocab = this.vocab;
    if (vocab !== undefined && iri.length > vocab.length && iri.startsWith(vocab)) {
      const suffix = iri.slice(vocab.length);
      if (!this.defs.has(suffix) && expandIri(this.defs, vocab, suffix) === iri) return suffix;
    }
    let choice: string | undefined;
    for (const [term, id] of this.prefixList()) {
      if (iri.length <= id.length || !iri.startsWith(id)) continue;
      const curie = term + ':' + iri.slice(id.length);
      const d = this.defs.get(curie);
      if (d !== undefined && d.id !== iri) continue;
      if (choice !== undefined && shortestLeast(curie, choice) >= 0) continue;
      if (expandIri(this.defs, vocab, curie) === iri) choice = curie;
    }
    return choice ?? iri;
  }

  private inverseMap(): Map<string, string> {
    if (this.inverse) return this.inverse;
    const inv = new Map<string, string>();
    for (const [term, d] of this.defs) {
      if (d.id === null || d.reverse || isKeyword(d.id)) continue;
      const cur = inv.get(d.id);
      if (cur === undefined || betterTerm(term, d, cur, this.defs.get(cur)!) < 0) inv.set(d.id, term);
    }
    this.inverse = inv;
    return inv;
  }

  private prefixList(): Array<[string, string]> {
    if (this.prefixes) return this.prefixes;
    const out: Array<[string, string]> = [];
    for (const [term, d] of this.defs) if (d.prefix && d.id !== null) out.push([term, d.id]);
    this.prefixes = out;
    return out;
  }
}

/**
 * Several terms for one IRI: JSON-LD picks per value shape; for keys and type names we prefer
 * a core term (the core is authoritative), then a term without coercions (what JSON-LD picks
 * for plain values), then shortest/least.
 */
function betterTerm(a: string, da: TermDefinition, b: string, db: TermDefinition): number {
  if (da.core !== db.core) return da.core ? -1 : 1;
  const pa = da.type === undefined && da.container === undefined ? 0 : 1;
  const pb = db.type === undefined && db.container === undefined ? 0 : 1;
  if (pa !== pb) return pa - pb;
  return shortestLeast(a, b);
}

function remember(memo: Map<string, string>, k: string, v: string, max: number): void {
  // FIFO eviction keeps the memo bounded at O(1) cost; attribute vocabularies are small, so
  // eviction only kicks in under hostile input (random attribute names).
  if (memo.size >= max) memo.delete(memo.keys().next().value as string);
  memo.set(k, v);
}

/** IRI Expansion with vocab = true against finished definitions. */
function expandIri(defs: Map<string, TermDefinition>, vocab: string | undefined, value: string): string | null {
  if (isKeyword(value)) return value;
  if (KEYWORD_LIKE.test(value)) return null;
  const d = defs.get(value);
  if (d !== undefined) return d.id;
  const colon = value.indexOf(':');
  if (colon > 0) {
    const prefix = value.slice(0, colon);
    const suffix = value.slice(colon + 1);
    if (prefix === '_' || suffix.startsWith('//')) return value;
    const p = defs.get(prefix);
    if (p !== undefined && p.prefix && p.id !== null) return p.id + suffix;
    if (isAbsoluteIri(value)) return value;
  }
  return vocab !== undefined ? vocab + value : value;
}

/** Mutable state while processing the context list. */
class Builder {
  readonly defs = new Map<string, TermDefinition>();
  vocab: string | undefined;
  readonly warnings: string[] = [];

  process(ctx: ContextDefinition | null, isCore: boolean): void {
    if (ctx === null) {
      for (const [t, d] of this.defs) if (!d.protected) this.defs.delete(t);
      this.vocab = undefined;
      return;
    }
    if (!isPlainObject(ctx)) throw invalid('a local context must be an object, a URL or null');
    const local = ctx;
    if ('@version' in local && local['@version'] !== 1.1) {
      throw invalid(`@version must be 1.1, got ${JSON.stringify(local['@version'])}`);
    }
    if ('@import' in local) {
      // ContextLoader inlines @import; one left here was not resolvable
      throw invalid('@import must be resolved before processing');
    }
    if ('@protected' in local && typeof local['@protected'] !== 'boolean') throw invalid('@protected must be a boolean');
    if ('@propagate' in local && typeof local['@propagate'] !== 'boolean') throw invalid('@propagate must be a boolean');
    if ('@base' in local && local['@base'] !== null && typeof local['@base'] !== 'string') throw invalid('@base must be a string or null');
    if ('@language' in local && local['@language'] !== null && typeof local['@language'] !== 'string') {
      throw invalid('@language must be a string or null');
    }
    if ('@vocab' in local) {
      const v = local['@vocab'];
      if (v === null) this.vocab = undefined;
      else if (typeof v !== 'string') throw invalid('@vocab must be a string or null');
      else {
        // JSON-LD 1.1: @vocab may be a term, compact IRI or relative to the previous @vocab;
        // the terms of this same local context are not visible yet (jsonld.js agrees)
        const e = expandIri(this.defs, this.vocab, v);
        if (e === null) throw invalid(`@vocab ${JSON.stringify(v)} does not expand to an IRI`);
        this.vocab = e;
      }
    }
    const defined = new Map<string, boolean>();
    const localProtected = local['@protected'] === true;
    for (const term of Object.keys(local)) {
      if (CONTEXT_KEYWORDS.has(term)) continue;
      this.define(local, term, defined, localProtected, isCore);
    }
  }

  private define(local: Record<string, unknown>, term: string, defined: Map<string, boolean>, localProtected: boolean, isCore: boolean): void {
    const state = defined.get(term);
    if (state === true) return;
    if (state === false) throw invalid(`cyclic IRI mapping for term "${term}"`);
    defined.set(term, false);
    const raw = local[term];

    if (term === '@type') {
      // 1.1 allows {"@type": {"@container": "@set"}} only
      if (!isPlainObject(raw) || Object.keys(raw).some((k) => k !== '@container' && k !== '@protected')
        || (raw['@container'] ?? '@set') !== '@set') {
        throw invalid('keywords cannot be redefined');
      }
      defined.set(term, true);
      return;
    }
    if (isKeyword(term)) throw invalid(`keyword "${term}" cannot be redefined`);
    if (KEYWORD_LIKE.test(term)) {
      this.warnings.push(`term "${term}" looks like a keyword and was ignored`);
      defined.set(term, true);
      return;
    }
    if (term === '') throw invalid('a term cannot be the empty string');

    const previous = this.defs.get(term);
    const simple = typeof raw === 'string' || raw === null;
    const value: Record<string, unknown> = simple ? { '@id': raw } : (raw as Record<string, unknown>);
    if (!isPlainObject(value)) throw invalid(`term "${term}" must map to a string, an object or null`);
    for (const k of Object.keys(value)) {
      if (!TERM_DEF_KEYS.has(k)) throw invalid(`term "${term}" has an unknown key "${k}"`);
    }

    const colon = term.indexOf(':');
    const termHasColon = colon > 0;
    let id: string | null | undefined;
    let reverse = false;
    let prefix = false;

    if ('@reverse' in value) {
      const r = value['@reverse'];
      if ('@id' in value || typeof r !== 'string') throw invalid(`term "${term}" has an invalid @reverse`);
      const e = this.expandDuring(local, r, defined, localProtected, isCore);
      if (e === null || !isAbsoluteIri(e)) throw invalid(`@reverse of "${term}" must expand to an absolute IRI`);
      id = e;
      reverse = true;
    } else if ('@id' in value) {
      const v = value['@id'];
      if (v === null) id = null;
      else if (typeof v !== 'string') throw invalid(`@id of term "${term}" must be a string or null`);
      else if (!isKeyword(v) && KEYWORD_LIKE.test(v)) {
        this.warnings.push(`term "${term}" maps to a reserved keyword-like value and was ignored`);
        defined.set(term, true);
        return;
      } else if (v !== term) {
        const e = this.expandDuring(local, v, defined, localProtected, isCore);
        if (e === null || (!isAbsoluteIri(e) && !isKeyword(e))) {
          throw invalid(`term "${term}" maps to "${v}", which is not an absolute IRI`);
        }
        if (/(?::[^:])|\//.test(term)) {
          // a term that looks like an IRI must not alias a different IRI; its own earlier
          // definition must not take part (JSON-LD removes it before redefining)
          const saved = this.defs.get(term);
          this.defs.delete(term);
          defined.set(term, true);
          const asIri = this.expandDuring(local, term, defined, localProtected, isCore);
          defined.set(term, false);
          if (saved !== undefined) this.defs.set(term, saved);
          if (asIri !== e) throw invalid(`term "${term}" has the form of an IRI but maps to "${e}"`);
        }
        if (e === '@context' || e === '@preserve') throw invalid(`"${e}" cannot be aliased`);
        id = e;
        prefix = simple && !termHasColon && GEN_DELIM_END.test(e);
      }
    }
    if (id === undefined) {
      if (termHasColon) {
        const p = term.slice(0, colon);
        if (Object.hasOwn(local, p)) this.define(local, p, defined, localProtected, isCore);
        const pd = this.defs.get(p);
        id = pd !== undefined && pd.id !== null ? pd.id + term.slice(colon + 1) : term;
      } else {
        if (this.vocab === undefined) throw invalid(`term "${term}" has no @id and there is no @vocab`);
        id = this.vocab + term;
      }
    }
    defined.set(term, true);

    let type: string | undefined;
    if ('@type' in value) {
      const t = value['@type'];
      if (typeof t !== 'string') throw invalid(`@type of term "${term}" must be a string`);
      if (t === '@id' || t === '@vocab' || t === '@json' || t === '@none') type = t;
      else {
        const e = this.expandDuring(local, t, defined, localProtected, isCore);
        if (e === null || !isAbsoluteIri(e) || e.startsWith('_:')) throw invalid(`@type of term "${term}" must expand to an IRI`);
        type = e;
      }
    }
    let container: string[] | undefined;
    if ('@container' in value) {
      const c = value['@container'];
      container = typeof c === 'string' ? [c] : Array.isArray(c) ? c as string[] : undefined;
      if (container === undefined || container.some((x) => typeof x !== 'string' || !CONTAINERS.has(x))
        || (container.includes('@list') && container.length !== 1)) {
        throw invalid(`@container of term "${term}" is not valid`);
      }
      if (container.includes('@type')) {
        type ??= '@id';
        if (type !== '@id' && type !== '@vocab') throw invalid(`term "${term}": @container @type requires @type @id or @vocab`);
      }
    }
    let language: string | null | undefined;
    if ('@language' in value && !('@type' in value)) {
      const l = value['@language'];
      if (l !== null && typeof l !== 'string') throw invalid(`@language of term "${term}" must be a string or null`);
      language = l === null ? null : l.toLowerCase();
    }
    if ('@prefix' in value) {
      if (/[:/]/.test(term)) throw invalid(`@prefix is not allowed on the compact IRI term "${term}"`);
      if (typeof value['@prefix'] !== 'boolean') throw invalid(`@prefix of term "${term}" must be a boolean`);
      if (id !== null && isKeyword(id)) throw invalid('keywords may not be used as prefixes');
      prefix = value['@prefix'];
    }
    const scoped = '@context' in value;
    if (scoped && !isCore) this.warnings.push(`scoped @context of term "${term}" is not applied`);

    const def: TermDefinition = {
      id, prefix, reverse, core: isCore, scoped,
      protected: isCore || value['@protected'] === true || (localProtected && value['@protected'] !== false),
      ...(type !== undefined ? { type } : {}),
      ...(container !== undefined ? { container } : {}),
      ...(language !== undefined ? { language } : {}),
    };

    if (isCore && previous !== undefined && !previous.core && !sameDefinition(previous, def)) {
      this.warnings.push(`term "${term}" is defined by the NGSI-LD core context; the user definition is overridden`);
    }
    if (previous !== undefined && previous.protected && !isCore) {
      if (!sameDefinition(previous, def)) {
        this.warnings.push(previous.core
          ? `term "${term}" is defined by the NGSI-LD core context and cannot be redefined; the core definition is kept`
          : `protected term "${term}" cannot be redefined; the first definition is kept`);
      }
      return;
    }
    this.defs.set(term, def);
  }

  /** IRI expansion while a local context is being processed (defines dependencies first). */
  private expandDuring(local: Record<string, unknown>, value: string, defined: Map<string, boolean>, localProtected: boolean, isCore: boolean): string | null {
    if (isKeyword(value)) return value;
    if (KEYWORD_LIKE.test(value)) return null;
    if (Object.hasOwn(local, value) && defined.get(value) !== true) this.define(local, value, defined, localProtected, isCore);
    const colon = value.indexOf(':');
    if (colon > 0) {
      const p = value.slice(0, colon);
      if (p !== '_' && !value.startsWith('//', colon + 1) && Object.hasOwn(local, p)) {
        this.define(local, p, defined, localProtected, isCore);
      }
    }
    return expandIri(this.defs, this.vocab, value);
  }
}

function sameDefinition(a: TermDefinition, b: TermDefinition): boolean {
  return a.id === b.id && a.type === b.type && a.reverse === b.reverse && a.language === b.language
    && (a.container ?? []).join() === (b.container ?? []).join();
}

let coreOnly: ActiveContext | undefined;
/** The active context of a request without a user @context (shared, built once). */
export function coreActiveContext(): ActiveContext {
  return (coreOnly ??= new ActiveContext([CORE_CONTEXT]));
}

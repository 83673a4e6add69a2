/**
 * Turns a request's @context (URL, inline object, array of both, or nothing) into an
 * ActiveContext, fetching remote documents once and caching both the documents and the
 * resulting active contexts.
 */
import { ProblemError } from '../../common/problem.ts';
import { ActiveContext, coreActiveContext, type ContextDefinition } from './active-context.ts';
import { CORE_CONTEXT, isCoreContextUrl } from './core.ts';

/** What may appear as a request's @context. */
export type ContextReference = string | ContextDefinition | null | undefined | ReadonlyArray<string | ContextDefinition | null>;

/**
 * Lets the broker's own @context storage (ContextRegistry) take part in resolution: hosted
 * contexts resolve locally, fetched ones are recorded as Cached, and uses are counted.
 */
export interface ContextHooks {
  /** a document ({"@context": ...}) this broker holds for `url`, visible to `tenant` */
  lookup?(url: string, tenant: string | undefined): unknown;
  /** a remote document was downloaded */
  fetched?(url: string, document: unknown): void;
  /** a resolved context that depends on `urls` was used by a request */
  used?(urls: readonly string[], tenant: string | undefined): void;
}

export interface ContextLoaderOptions {
  /** per-request timeout of a remote fetch; default 5000 ms */
  timeoutMs?: number;
  /** nesting limit of remote references (a context that references a context ...); default 8 */
  maxDepth?: number;
  /** largest remote document accepted; default 1 MiB */
  maxBytes?: number;
  /** remote documents kept (LRU); default 256 */
  documentCacheSize?: number;
  /** resolved active contexts kept (LRU, keyed by the serialised reference); default 1024 */
  contextCacheSize?: number;
  /** memo size of each ActiveContext */
  memoSize?: number;
  fetch?: typeof fetch;
  hooks?: ContextHooks;
}

export interface ResolveOptions {
  /** NGSILD-Tenant of the request: hosted contexts are tenant-scoped */
  tenant?: string;
}

/**
 * LdContextNotAvailable is 504 in CIM 009 V1.9.1 (Table 6.3.2-1); problem.ts still says 503,
 * which the v1.9 conformance TPs (051_05, 053_05, 5135_01) reject.
 */
export const LD_CONTEXT_NOT_AVAILABLE_STATUS = 504;

export function contextNotAvailable(url: string, why: string): ProblemError {
  return new ProblemError('LdContextNotAvailable', `@context ${url} could not be retrieved: ${why}`, { url }, LD_CONTEXT_NOT_AVAILABLE_STATUS);
}

function badContext(detail: string): ProblemError {
  return new ProblemError('BadRequestData', `Invalid @context: ${detail}`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Map-based LRU: re-inserting on read moves an entry to the young end. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.map.delete(k);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K);
    this.map.set(k, v);
  }
  delete(k: K): boolean {
    return this.map.delete(k);
  }
  clear(): void {
    this.map.clear();
  }
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
  get size(): number {
    return this.map.size;
  }
}

interface Resolved {
  ctx: ActiveContext;
  /** every URL the context was built from (nested ones included), for hit counting/invalidation */
  urls: readonly string[];
}

export class ContextLoader {
  readonly timeoutMs: number;
  readonly maxDepth: number;
  private readonly maxBytes: number;
  private readonly memoSize: number | undefined;
  private readonly fetchImpl: typeof fetch;
  private hooks: ContextHooks;
  private readonly documents: Lru<string, unknown>;
  private readonly contexts: Lru<string, Resolved>;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly building = new Map<string, Promise<Resolved>>();
  // bumped by invalidate(): a resolution that started before must not repopulate the cache
  private generation = 0;

  constructor(options: ContextLoaderOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxDepth = options.maxDepth ?? 8;
    this.maxBytes = options.maxBytes ?? 1 << 20;
    this.memoSize = options.memoSize;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.hooks = options.hooks ?? {};
    this.documents = new Lru(options.documentCacheSize ?? 256);
    this.contexts = new Lru(options.contextCacheSize ?? 1024);
  }

  setHooks(hooks: ContextHooks): void {
    this.hooks = hooks;
    this.contexts.clear();
  }

  /** The active context of a request that carries no @context. */
  get core(): ActiveContext {
    return coreActiveContext();
  }

  async resolve(ref: ContextReference, options: ResolveOptions = {}): Promise<ActiveContext> {
    if (ref === undefined || ref === null) return coreActiveContext();
    if (typeof ref === 'string' && isCoreContextUrl(ref)) return coreActiveContext();
    const tenant = options.tenant;
    // the tenant is part of the key: the same hosted URL may exist for one tenant only
    const key = (tenant ?? '') + '\u0000' + (typeof ref === 'string' ? ref : JSON.stringify(ref));
    const cached = this.contexts.get(key);
    if (cached) {
      if (cached.urls.length) this.hooks.used?.(cached.urls, tenant);
      return cached.ctx;
    }
    // concurrent requests with the same new @context share one build
    let pending = this.building.get(key);
    if (!pending) {
      pending = this.build(ref, tenant, key).finally(() => this.building.delete(key));
      this.building.set(key, pending);
    }
    const resolved = await pending;
    if (resolved.urls.length) this.hooks.used?.(resolved.urls, tenant);
    return resolved.ctx;
  }

  private async build(ref: ContextReference, tenant: string | undefined, key: string): Promise<Resolved> {
    const generation = this.generation;
    const urls: string[] = [];
    const list: Array<ContextDefinition | null> = [];
    await this.collect(ref, 0, [], urls, list, tenant, undefined);
    const ctx = list.length === 1 && list[0] === CORE_CONTEXT
      ? coreActiveContext()
      : new ActiveContext(list, { memoSize: this.memoSize });
    const resolved: Resolved = { ctx, urls: [...new Set(urls)] };
    if (generation === this.generation) this.contexts.set(key, resolved);
    return resolved;
  }

  /**
   * Downloads `url` (or returns the cached copy). `force` bypasses both the local lookup and
   * the cache: used by DELETE ?reload=true.
   */
  async fetchDocument(url: string, options: { force?: boolean; tenant?: string } = {}): Promise<unknown> {
    if (!options.force) {
      const local = this.hooks.lookup?.(url, options.tenant);
      if (local !== undefined) return local;
      const doc = this.documents.get(url);
      if (doc !== undefined) return doc;
    }
    let p = options.force ? undefined : this.inflight.get(url);
    if (!p) {
      p = this.download(url).finally(() => this.inflight.delete(url));
      if (!options.force) this.inflight.set(url, p);
    }
    return p;
  }

  /**
   * Forgets a document and every resolved context built from it. A predicate lets the registry
   * match every URL naming one of its records (the broker is reachable under several hosts).
   */
  invalidate(match: string | ((url: string) => boolean)): void {
    this.generation++;
    const hit = typeof match === 'string' ? (u: string) => u === match : match;
    for (const [u] of [...this.documents.entries()]) if (hit(u)) this.documents.delete(u);
    for (const [k, r] of [...this.contexts.entries()]) if (r.urls.some(hit)) this.contexts.delete(k);
  }

  clear(): void {
    this.generation++;
    this.documents.clear();
    this.contexts.clear();
  }

  private async collect(
    ref: unknown, depth: number, path: readonly string[], urls: string[],
    out: Array<ContextDefinition | null>, tenant: string | undefined, base: string | undefined,
  ): Promise<void> {
    if (ref === null) {
      out.push(null);
    } else if (typeof ref === 'string') {
      if (isCoreContextUrl(ref)) {
        out.push(CORE_CONTEXT);
        return;
      }
      const url = checkUrl(ref, base);
      if (isCoreContextUrl(url)) {
        out.push(CORE_CONTEXT);
        return;
      }
      if (path.includes(url)) throw badContext(`recursive inclusion of ${url}`);
      if (depth >= this.maxDepth) throw badContext(`remote @context nesting deeper than ${this.maxDepth} at ${url}`);
      urls.push(url);
      const doc = await this.fetchDocument(url, { tenant });
      await this.collect(contextOf(doc, url), depth + 1, [...path, url], urls, out, tenant, url);
    } else if (Array.isArray(ref)) {
      for (const item of ref) {
        // JSON-LD forbids arrays directly inside arrays; a remote document's array is a new level
        if (Array.isArray(item)) throw badContext('nested arrays are not allowed in @context');
        await this.collect(item, depth, path, urls, out, tenant, base);
      }
    } else if (isPlainObject(ref)) {
      out.push(await this.inlineImport(ref, depth, path, urls, tenant, base));
    } else {
      throw badContext(`a @context entry must be a URL string, an object or null, not ${ref === undefined ? 'undefined' : JSON.stringify(ref)}`);
    }
  }

  private async inlineImport(
    ctx: Record<string, unknown>, depth: number, path: readonly string[], urls: string[], tenant: string | undefined,
    base: string | undefined,
  ): Promise<ContextDefinition> {
    if (!('@import' in ctx)) return ctx;
    const ref = ctx['@import'];
    if (typeof ref !== 'string') throw badContext('@import must be a URL string');
    const url = checkUrl(ref, base);
    if (path.includes(url)) throw badContext(`recursive inclusion of ${url}`);
    if (depth >= this.maxDepth) throw badContext(`remote @context nesting deeper than ${this.maxDepth} at ${url}`);
    if (!isCoreContextUrl(url)) urls.push(url);
    const imported = isCoreContextUrl(url) ? CORE_CONTEXT : contextOf(await this.fetchDocument(url, { tenant }), url);
    if (!isPlainObject(imported)) throw badContext(`@import ${url} must reference a single context object`);
    if ('@import' in imported) throw badContext(`@import ${url} must not itself contain @import`);
    const { '@import': _drop, ...rest } = ctx;
    return { ...imported, ...rest };
  }

  private async download(url: string): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        headers: { accept: 'application/ld+json, application/json;q=0.9, */*;q=0.1' },
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      if (err.name === 'TimeoutError' || err.name === 'AbortError') {
        throw contextNotAvailable(url, `no answer within ${this.timeoutMs} ms`);
      }
      const cause = err.cause?.code ?? err.cause?.message ?? err.message;
      throw contextNotAvailable(url, `unreachable (${cause})`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw contextNotAvailable(url, `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`);
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > this.maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw contextNotAvailable(url, `document larger than ${this.maxBytes} bytes`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      const err = e as Error;
      if (err.name === 'TimeoutError' || err.name === 'AbortError') {
        throw contextNotAvailable(url, `no complete answer within ${this.timeoutMs} ms`);
      }
      throw contextNotAvailable(url, `reading the response failed (${err.message})`);
    }
    if (text.length > this.maxBytes) throw contextNotAvailable(url, `document larger than ${this.maxBytes} bytes`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      // retrieved but invalid: BadRequestData, not LdContextNotAvailable (5.5.6)
      throw badContext(`document at ${url} is not JSON (content-type ${res.headers.get('content-type') ?? 'none'})`);
    }
    contextOf(doc, url);
    this.documents.set(url, doc);
    this.hooks.fetched?.(url, doc);
    return doc;
  }
}

/**
 * A reference inside a remote document is relative to that document (JSON-LD); one in a
 * request has no base, so it must be absolute.
 */
function checkUrl(ref: string, base: string | undefined): string {
  let u: URL;
  try {
    u = new URL(ref, base);
  } catch {
    throw badContext(`"${ref}" is not an absolute URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badContext(`"${ref}" is not an http(s) URL`);
  return base === undefined ? ref : u.href;
}

/** The @context member of a remote document, validated for shape. */
function contextOf(doc: unknown, url: string): unknown {
  if (!isPlainObject(doc) || !('@context' in doc)) {
    throw badContext(`document at ${url} is not a JSON-LD context (no top-level "@context" member)`);
  }
  const c = doc['@context'];
  if (!(c === null || typeof c === 'string' || Array.isArray(c) || isPlainObject(c))) {
    throw badContext(`"@context" of ${url} must be an object, a URL, an array or null`);
  }
  return c;
}

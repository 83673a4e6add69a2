/**
 * The broker's @context storage behind /ngsi-ld/v1/jsonldContexts (CIM 009 clause 5.13),
 * independent of HTTP. Kinds: Hosted (added through the API), Cached (remote documents the
 * broker downloaded), ImplicitlyCreated (inline/compound contexts the broker had to give a URL,
 * e.g. a subscription's jsonldContext). The core context is listed as Cached and cannot be
 * deleted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { badRequest, invalidRequest, notFound } from '../../common/problem.ts';
import { ActiveContext, type ContextDefinition } from './active-context.ts';
import { CORE_CONTEXT, CORE_CONTEXT_DOCUMENT, CORE_CONTEXT_URL } from './core.ts';
import { contextNotAvailable, type ContextHooks, type ContextLoader } from './loader.ts';

export type ContextKind = 'Hosted' | 'Cached' | 'ImplicitlyCreated';
export const CONTEXT_KINDS: readonly ContextKind[] = ['Hosted', 'Cached', 'ImplicitlyCreated'];

/** One stored @context (what ContextStore persists). */
export interface ContextRecord {
  /** localId */
  id: string;
  /** NGSILD-Tenant ('' = default). Cached records are shared by all tenants: they are public documents. */
  tenant: string;
  kind: ContextKind;
  /** Cached: the URL it was downloaded from; others: this broker's URL for it */
  url: string;
  /** the document served without details, {"@context": ...} */
  body: unknown;
  createdAt: string;
  lastUsage?: string;
  numberOfHits: number;
  /** ImplicitlyCreated: hash of the serialised @context, to reuse one record per content */
  contentHash?: string;
}

export interface ContextStore {
  loadAll(): Promise<ContextRecord[]>;
  save(rec: ContextRecord): Promise<void>;
  delete(id: string): Promise<void>;
}

/** ContextDetails of clause 5.2.37 (list and serve with details=true). */
export interface ContextDetails {
  URL: string;
  localId: string;
  kind: ContextKind;
  createdAt: string;
  lastUsage?: string;
  numberOfHits: number;
  extraInfo?: Record<string, unknown>;
}

export class InMemoryContextStore implements ContextStore {
  readonly rows = new Map<string, ContextRecord>();
  async loadAll(): Promise<ContextRecord[]> {
    return [...this.rows.values()].map((r) => structuredClone(r));
  }
  async save(rec: ContextRecord): Promise<void> {
    this.rows.set(rec.id, structuredClone(rec));
  }
  async delete(id: string): Promise<void> {
    this.rows.delete(id);
  }
}

export interface ContextRegistryOptions {
  /** external base URL of this broker, e.g. https://broker.example.org (no trailing slash needed) */
  baseUrl: string;
  store?: ContextStore;
  /** when given, the registry becomes its hooks: hosted URLs resolve locally, downloads are recorded */
  loader?: ContextLoader;
  now?: () => Date;
  newId?: () => string;
  /** failures of background persistence (records written from loader hooks) */
  onError?: (err: unknown) => void;
}

export interface TenantOption {
  tenant?: string;
}

const PATH = '/ngsi-ld/v1/jsonldContexts/';
export const CORE_LOCAL_ID = 'ngsi-ld-core-context-v1.9';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** details / reload / kind arrive as query strings at the HTTP layer; accept both forms here. */
function parseBool(name: string, v: boolean | string | undefined): boolean {
  if (v === undefined || v === '' || v === false || v === 'false') return false;
  if (v === true || v === 'true') return true;
  throw badRequest(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

function parseKind(v: string | undefined): ContextKind | undefined {
  if (v === undefined || v === '') return undefined;
  if ((CONTEXT_KINDS as readonly string[]).includes(v)) return v as ContextKind;
  throw badRequest(`kind must be one of ${CONTEXT_KINDS.join(', ')}, got ${JSON.stringify(v)}`);
}

export class ContextRegistry implements ContextHooks {
  readonly baseUrl: string;
  private readonly store: ContextStore;
  private readonly loader: ContextLoader | undefined;
  private readonly now: () => Date;
  private readonly newId: () => string;
  private readonly onError: (err: unknown) => void;
  private readonly byId = new Map<string, ContextRecord>();
  /** Cached records by their source URL */
  private readonly cachedByUrl = new Map<string, ContextRecord>();
  /** ImplicitlyCreated by tenant + content hash */
  private readonly implicitByHash = new Map<string, ContextRecord>();
  private readonly dirty = new Set<string>();
  private readonly core: ContextRecord;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(options: ContextRegistryOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.store = options.store ?? new InMemoryContextStore();
    this.loader = options.loader;
    this.now = options.now ?? (() => new Date());
    this.newId = options.newId ?? (() => `urn:ngsi-ld:Context:${randomUUID()}`);
    this.onError = options.onError ?? (() => {});
    this.core = {
      id: CORE_LOCAL_ID, tenant: '', kind: 'Cached', url: CORE_CONTEXT_URL, body: CORE_CONTEXT_DOCUMENT,
      createdAt: this.now().toISOString(), numberOfHits: 0,
    };
    this.loader?.setHooks(this);
  }

  /** Loads persisted records; call once at start-up before serving requests. */
  async init(): Promise<void> {
    for (const rec of await this.store.loadAll()) this.index(rec);
  }

  /** This broker's URL for a hosted / implicit context. */
  urlOf(id: string): string {
    return `${this.baseUrl}${this.pathOf(id)}`;
  }

  /**
   * The path of a hosted / implicit context (the Location of POST /jsonldContexts). ':' is a
   * valid path character (RFC 3986 pchar), so a URN localId stays readable.
   */
  pathOf(id: string): string {
    return `${PATH}${encodeURIComponent(id).replace(/%3A/gi, ':')}`;
  }

  /**
   * POST /jsonldContexts: stores `body` ({"@context": object | URL | array}) as Hosted.
   * Inline term definitions are validated now; URLs inside are fetched when first used.
   */
  async add(body: unknown, options: TenantOption = {}): Promise<{ id: string; url: string }> {
    if (!isPlainObject(body) || !('@context' in body)) {
      throw invalidRequest('the payload must be a JSON object with an "@context" member');
    }
    validateLocal(body['@context']);
    const id = this.newId();
    const rec: ContextRecord = {
      id, tenant: options.tenant ?? '', kind: 'Hosted', url: this.urlOf(id),
      body: { '@context': body['@context'] }, createdAt: this.now().toISOString(), numberOfHits: 0,
    };
    await this.store.save(rec);
    this.index(rec);
    return { id, url: rec.url };
  }

  /**
   * Gives an inline or compound @context a URL of this broker (kind ImplicitlyCreated), e.g. for
   * a subscription's jsonldContext. Idempotent per tenant and content.
   */
  async implicit(context: unknown, options: TenantOption = {}): Promise<{ id: string; url: string }> {
    validateLocal(context);
    const tenant = options.tenant ?? '';
    const contentHash = createHash('sha256').update(JSON.stringify(context)).digest('base64url');
    const existing = this.implicitByHash.get(tenant + '\u0000' + contentHash);
    if (existing) return { id: existing.id, url: existing.url };
    const id = this.newId();
    const rec: ContextRecord = {
      id, tenant, kind: 'ImplicitlyCreated', url: this.urlOf(id), body: { '@context': context },
      createdAt: this.now().toISOString(), numberOfHits: 0, contentHash,
    };
    await this.store.save(rec);
    this.index(rec);
    return { id, url: rec.url };
  }

  /**
   * One URL for a request's @context, as a subscription's jsonldContext (5.2.12) needs: a single
   * URL stays as it is, anything else (inline object, array) gets an ImplicitlyCreated record.
   * No @context at all means the core.
   */
  async urlFor(context: unknown, options: TenantOption = {}): Promise<string> {
    if (context === undefined || context === null) return CORE_CONTEXT_URL;
    if (typeof context === 'string') return context;
    if (Array.isArray(context) && context.length === 1 && typeof context[0] === 'string') return context[0];
    return (await this.implicit(context, options)).url;
  }

  /**
   * GET /jsonldContexts/{id}: the document, or its ContextDetails with details=true. `id` is a
   * localId, this broker's URL for it, or (Cached only) the original URL.
   */
  get(id: string, options: TenantOption & { details?: boolean | string } = {}): unknown {
    const details = parseBool('details', options.details);
    const rec = this.find(id, options.tenant);
    if (!rec) throw notFound(`no @context with id ${id}`);
    return details ? this.detailsOf(rec) : rec.body;
  }

  /** GET /jsonldContexts: URLs, or ContextDetails with details=true; core first. */
  list(options: TenantOption & { details?: boolean | string; kind?: string } = {}): string[] | ContextDetails[] {
    const details = parseBool('details', options.details);
    const kind = parseKind(options.kind);
    const tenant = options.tenant ?? '';
    const recs: ContextRecord[] = [];
    if (kind === undefined || kind === 'Cached') recs.push(this.core);
    for (const rec of this.byId.values()) {
      if ((kind === undefined || rec.kind === kind) && this.visible(rec, tenant)) recs.push(rec);
    }
    return details ? recs.map((r) => this.detailsOf(r)) : recs.map((r) => r.url);
  }

  /**
   * DELETE /jsonldContexts/{id}. reload=true only applies to Cached contexts: the document is
   * downloaded again and replaces the stored one; when that fails the old one stays and
   * LdContextNotAvailable is raised. The core context cannot be deleted; reloading it is a
   * no-op (it is built in).
   */
  async delete(id: string, options: TenantOption & { reload?: boolean | string } = {}): Promise<void> {
    const reload = parseBool('reload', options.reload);
    if (this.isCore(id)) {
      if (reload) return;
      throw badRequest('the NGSI-LD core @context cannot be deleted');
    }
    const rec = this.find(id, options.tenant);
    if (reload) {
      if (!rec || rec.kind !== 'Cached') {
        throw badRequest(`reload=true applies to Cached @contexts only; ${id} is ${rec ? rec.kind : 'unknown'}`);
      }
      await this.reload(rec);
      return;
    }
    if (!rec) throw notFound(`no @context with id ${id}`);
    await this.store.delete(rec.id);
    this.unindex(rec);
    this.loader?.invalidate((u) => u === rec.url || this.localIdOf(u) === rec.id);
  }

  /** Persists usage counters changed since the last flush (they are not written per request). */
  async flushUsage(): Promise<void> {
    const ids = [...this.dirty];
    this.dirty.clear();
    for (const id of ids) {
      const rec = this.byId.get(id);
      if (rec) await this.store.save(rec);
    }
    await this.pending;
  }

  /** Waits for records written from loader hooks. */
  async settled(): Promise<void> {
    await this.pending;
  }

  // --- ContextHooks -------------------------------------------------------------------------

  lookup(url: string, tenant: string | undefined): unknown {
    const rec = this.find(url, tenant);
    return rec?.body;
  }

  fetched(url: string, document: unknown): void {
    if (this.findOwn(url)) return;
    const existing = this.cachedByUrl.get(url);
    const rec: ContextRecord = existing
      ? { ...existing, body: document }
      : { id: this.newId(), tenant: '', kind: 'Cached', url, body: document, createdAt: this.now().toISOString(), numberOfHits: 0 };
    this.index(rec);
    this.persist(rec);
  }

  used(urls: readonly string[], tenant: string | undefined): void {
    const at = this.now().toISOString();
    for (const url of urls) {
      const rec = this.find(url, tenant);
      if (!rec) continue;
      rec.numberOfHits++;
      rec.lastUsage = at;
      if (rec !== this.core) this.dirty.add(rec.id);
    }
  }

  // --- internals -----------------------------------------------------------------------------

  private async reload(rec: ContextRecord): Promise<void> {
    if (!this.loader) throw contextNotAvailable(rec.url, 'no loader configured to download it');
    const doc = await this.loader.fetchDocument(rec.url, { force: true });
    const next: ContextRecord = { ...rec, body: doc, createdAt: this.now().toISOString() };
    await this.store.save(next);
    this.index(next);
    this.loader.invalidate(rec.url);
  }

  private isCore(id: string): boolean {
    return id === CORE_LOCAL_ID || id === CORE_CONTEXT_URL || id === 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld';
  }

  private visible(rec: ContextRecord, tenant: string | undefined): boolean {
    return rec.kind === 'Cached' || rec.tenant === (tenant ?? '');
  }

  /** localId, this broker's URL (any host: the broker may be reached under several names), or a Cached source URL */
  private find(id: string, tenant: string | undefined): ContextRecord | undefined {
    if (this.isCore(id)) return this.core;
    const rec = this.findOwn(id) ?? this.cachedByUrl.get(id);
    return rec && this.visible(rec, tenant) ? rec : undefined;
  }

  private findOwn(id: string): ContextRecord | undefined {
    const direct = this.byId.get(id);
    if (direct) return direct;
    const localId = this.localIdOf(id);
    return localId === undefined ? undefined : this.byId.get(localId);
  }

  /** The localId in a URL of the form http(s)://any-host/ngsi-ld/v1/jsonldContexts/{id}. */
  private localIdOf(url: string): string | undefined {
    const at = url.indexOf(PATH);
    if (at < 0 || !/^https?:\/\//.test(url)) return undefined;
    const rest = url.slice(at + PATH.length);
    if (!rest || /[/?#]/.test(rest)) return undefined;
    try {
      return decodeURIComponent(rest);
    } catch {
      return undefined;
    }
  }

  private detailsOf(rec: ContextRecord): ContextDetails {
    return {
      URL: rec.url,
      localId: rec.id,
      kind: rec.kind,
      createdAt: rec.createdAt,
      ...(rec.lastUsage !== undefined ? { lastUsage: rec.lastUsage } : {}),
      numberOfHits: rec.numberOfHits,
      ...(rec === this.core ? { extraInfo: { core: true, builtIn: true } } : {}),
    };
  }

  private index(rec: ContextRecord): void {
    const old = this.byId.get(rec.id);
    if (old) this.unindex(old);
    this.byId.set(rec.id, rec);
    if (rec.kind === 'Cached') this.cachedByUrl.set(rec.url, rec);
    if (rec.kind === 'ImplicitlyCreated' && rec.contentHash) this.implicitByHash.set(rec.tenant + '\u0000' + rec.contentHash, rec);
  }

  private unindex(rec: ContextRecord): void {
    this.byId.delete(rec.id);
    this.dirty.delete(rec.id);
    if (this.cachedByUrl.get(rec.url) === rec) this.cachedByUrl.delete(rec.url);
    if (rec.contentHash) this.implicitByHash.delete(rec.tenant + '\u0000' + rec.contentHash);
  }

  private persist(rec: ContextRecord): void {
    const snapshot = structuredClone(rec);
    this.pending = this.pending.then(() => this.store.save(snapshot)).catch((e) => this.onError(e));
  }
}

/**
 * Shape check of a @context value supplied to the API (5.13.2.4 / 5.5.4): URL strings, objects
 * and null (or an array of them); inline objects must also be valid term definitions.
 */
function validateLocal(ctx: unknown): void {
  const items = Array.isArray(ctx) ? ctx : [ctx];
  const inline: ContextDefinition[] = [];
  for (const item of items) {
    if (typeof item === 'string') {
      try {
        new URL(item);
      } catch {
        throw badRequest(`@context entry ${JSON.stringify(item)} is not an absolute URL`);
      }
    } else if (isPlainObject(item)) {
      if ('@import' in item) continue;
      inline.push(item);
    } else if (item !== null) {
      throw badRequest(`@context entries must be URL strings, objects or null, not ${JSON.stringify(item)}`);
    }
  }
  // URL entries are not fetched here; processing each inline object after the core (which
  // supplies @vocab, as a URL entry might) leaves only errors of the object itself
  for (const local of inline) new ActiveContext([CORE_CONTEXT, local], { memoSize: 16 });
}

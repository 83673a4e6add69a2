/**
 * Operations dashboard, server side: serves the built web app (web/dist) at `/`, its runtime
 * settings at `/dashboard-config.json`, and the live feed `GET /live` (Server-Sent Events fed from
 * the change bus). The app itself only uses the platform's public APIs.
 *
 * Live feed protocol (text/event-stream):
 *   event: hello   data: {"at": ISO}                      once, on connect
 *   event: change  data: [LiveChange, ...]                batched (<= 1 message / FLUSH_MS)
 *   event: resync  data: {}                               the client fell behind; refetch
 *   : ping                                                 heartbeat every HEARTBEAT_MS
 * LiveChange = { id, type, kind, attrs: [changed attr names], values: { attr: keyValues value | null }, at }
 * Query: ?type=A,B (short names or IRIs) restricts the entity types; the tenant is the
 * NGSILD-Tenant header (or ?tenant=), default tenant otherwise.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { extname, join, normalize, sep } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Platform, UrbisModule } from '../platform.ts';
import type { ChangeEvent } from '../bus/change-bus.ts';
import type { AttrInstance } from '../ngsi-ld/model/types.ts';
import { simplified } from '../ngsi-ld/model/render.ts';
import { coreActiveContext } from '../ngsi-ld/jsonld/index.ts';
import { ProblemError } from '../common/problem.ts';

/** the built app (npm run build:web); URBIS_WEB_DIR overrides, read per request */
export const webDir = () => process.env.URBIS_WEB_DIR || fileURLToPath(new URL('../../web/dist/', import.meta.url));
const FLUSH_MS = 100;
const HEARTBEAT_MS = 20_000;
/** bytes queued on one socket before the client is considered too slow (then: resync) */
const MAX_BUFFERED = 4 * 1024 * 1024;
const MAX_CLIENTS = 1000;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.geojson': 'application/geo+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.pbf': 'application/x-protobuf',
};

// ---------------------------------------------------------------------------------------------
// AUTHORIZATION HOOK (trust layer). The single place that decides whether the caller of /live may
// see a change event. `principalOf` resolves the caller once per connection through the 'auth'
// service when the trust module registered one; `canSee` is called for every event.
// Without an 'auth' service (trust layer not installed yet, or URBIS_AUTH=off) every event of the
// caller's tenant is visible, exactly like the NGSI-LD API in that configuration.
// ---------------------------------------------------------------------------------------------
export interface AuthLike {
  /** resolve the caller of a request (throws or returns null/undefined when not authenticated) */
  authenticate?(req: FastifyRequest): unknown | Promise<unknown>;
  /** may this principal read this entity? */
  canRead?(principal: unknown, target: { tenant: string; entityId: string; types: string[]; entity?: ChangeEvent['after'] }): boolean;
  /** the event as this principal may see it (personal attributes redacted), null when hidden */
  redactEvent?(principal: unknown, event: ChangeEvent, channel?: string): ChangeEvent | null;
}
const principals = new WeakMap<FastifyRequest, { auth?: AuthLike; principal?: unknown; tenant: string }>();

export function canSee(request: FastifyRequest, event: ChangeEvent): boolean {
  const c = principals.get(request);
  if (!c) return false;
  if (event.tenant !== c.tenant) return false;
  if (c.auth?.canRead) {
    try {
      return c.auth.canRead(c.principal, { tenant: event.tenant, entityId: event.entityId, types: event.types, entity: event.after ?? event.before });
    } catch {
      return false;
    }
  }
  return true;
}

/** the event with what this caller may not see removed (trust layer), null when hidden */
export function redactFor(request: FastifyRequest, event: ChangeEvent): ChangeEvent | null {
  const c = principals.get(request);
  if (!c?.auth?.redactEvent) return event;
  try {
    return c.auth.redactEvent(c.principal, event, 'live');
  } catch {
    return null;
  }
}

async function principalOf(request: FastifyRequest, p: Platform, tenant: string): Promise<void> {
  const auth = p.services.get('auth') as AuthLike | undefined;
  let principal: unknown;
  if (auth?.authenticate) {
    principal = await auth.authenticate(request);
    if (principal === null || principal === undefined) throw new ProblemError('Unauthorized', 'Sign in to receive live updates.');
  }
  principals.set(request, { auth, principal, tenant });
}
// ------------------------------------------- end of AUTHORIZATION HOOK ------------------------

/** compact names for the feed: core-context terms, else the last IRI segment */
export function makeCompactor(): (iri: string) => string {
  let ctx: { compactIri(i: string): string } | undefined;
  try {
    ctx = coreActiveContext();
  } catch {
    ctx = undefined;
  }
  const cache = new Map<string, string>();
  return (iri) => {
    let s = cache.get(iri);
    if (s === undefined) {
      s = ctx ? ctx.compactIri(iri) : iri;
      if (/[/#]/.test(s)) s = /[^/#:]+$/.exec(s)?.[0] ?? s;
      if (cache.size < 10_000) cache.set(iri, s);
      else cache.clear();
    }
    return s;
  };
}

export interface LiveChange {
  id: string;
  type: string;
  kind: ChangeEvent['kind'];
  attrs: string[];
  values?: Record<string, unknown>;
  at: string;
}

/** One change event -> compact feed item (keyValues-like values of the changed attributes). */
export function toLiveChange(e: ChangeEvent, compact: (iri: string) => string): LiveChange {
  const out: LiveChange = { id: e.entityId, type: compact(e.types[0] ?? ''), kind: e.kind, attrs: e.changedAttrs.map(compact), at: e.at };
  if (e.kind !== 'delete' && e.after) {
    const values: Record<string, unknown> = {};
    const resolver = { compactIri: compact, expandTerm: (t: string) => t };
    const names = e.kind === 'create' || e.kind === 'replace' ? Object.keys(e.after.attrs) : e.changedAttrs;
    for (const iri of names) {
      const insts = e.after.attrs[iri] as AttrInstance[] | undefined;
      if (!insts?.length) {
        values[compact(iri)] = null;
        continue;
      }
      const inst = insts.find((i) => i.datasetId === undefined) ?? insts[0];
      values[compact(iri)] = simplified(inst, resolver);
    }
    for (const iri of e.deletedAttrs ?? []) values[compact(iri)] = null;
    out.values = values;
  }
  return out;
}

/** does the event match the ?type= filter (short names or IRIs)? */
export function typeMatches(filter: Set<string> | null, e: ChangeEvent, compact: (iri: string) => string): boolean {
  if (!filter) return true;
  return e.types.some((t) => filter.has(t) || filter.has(compact(t)));
}

function tenantFrom(req: FastifyRequest): string {
  const hdr = req.headers['ngsild-tenant'];
  const q = (req.query as Record<string, string | undefined>).tenant;
  const v = (Array.isArray(hdr) ? hdr[0] : hdr) ?? q ?? '';
  if (v !== '' && !/^[A-Za-z0-9_\-.:/]{1,128}$/.test(v)) throw new ProblemError('BadRequestData', `NGSILD-Tenant "${v}" is not a valid tenant name.`);
  return v;
}

export class LiveHub {
  private clients = new Set<{ send(events: ChangeEvent[]): void; close(): void }>();
  private unsubscribe: (() => void) | null = null;
  readonly compact = makeCompactor();

  constructor(private p: Platform) {}

  get size(): number {
    return this.clients.size;
  }

  private ensureSubscribed(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.p.bus.subscribe((events) => {
      for (const c of this.clients) c.send(events);
    });
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (this.clients.size >= MAX_CLIENTS) throw new ProblemError('TooManyRequests', 'Too many live-feed clients; retry later.', undefined, 503);
    const tenant = tenantFrom(request);
    await principalOf(request, this.p, tenant);
    const typeParam = (request.query as Record<string, string | undefined>).type;
    const filter = typeParam ? new Set(typeParam.split(',').map((s) => s.trim()).filter(Boolean)) : null;

    reply.hijack();
    const res = reply.raw;
    request.raw.socket.setTimeout(0);
    request.raw.socket.setNoDelay(true);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 3000\nevent: hello\ndata: ${JSON.stringify({ at: new Date(this.p.clock.now()).toISOString() })}\n\n`);

    let queue: LiveChange[] = [];
    let timer: (() => void) | null = null;
    let overflow = false;
    let seq = 0;
    const flush = () => {
      timer = null;
      if (queue.length === 0 || res.destroyed) return;
      const batch = queue;
      queue = [];
      if (overflow) return;
      if (res.writableLength > MAX_BUFFERED) {
        overflow = true;
        res.once('drain', () => {
          overflow = false;
          if (!res.destroyed) res.write('event: resync\ndata: {}\n\n');
        });
        return;
      }
      res.write(`id: ${++seq}\nevent: change\ndata: ${JSON.stringify(batch)}\n\n`);
    };
    const client = {
      send: (events: ChangeEvent[]) => {
        for (const e of events) {
          if (!typeMatches(filter, e, this.compact)) continue;
          if (!canSee(request, e)) continue;
          const v = redactFor(request, e); // trust: personal attributes redacted
          if (v) queue.push(toLiveChange(v, this.compact));
        }
        if (queue.length && !timer) timer = this.p.clock.setTimer(FLUSH_MS, flush);
      },
      close: () => {
        timer?.();
        clearInterval(hb);
        this.clients.delete(client);
        if (!res.destroyed) res.end();
      },
    };
    const hb = setInterval(() => {
      if (!res.destroyed) res.write(': ping\n\n');
    }, HEARTBEAT_MS);
    hb.unref();
    this.clients.add(client);
    this.ensureSubscribed();
    request.raw.on('close', client.close);
    res.on('error', client.close);
  }

  stop(): void {
    for (const c of [...this.clients]) c.close();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}

/** Static file handler for web/dist (no directory listing, no path escape). */
async function serveFile(rel: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const dir = webDir();
  const root = normalize(dir.endsWith(sep) ? dir : dir + sep);
  const file = normalize(join(root, decodeURIComponent(rel)));
  if (!file.startsWith(root)) throw new ProblemError('ResourceNotFound', 'Not found.');
  let st;
  try {
    st = await stat(file);
  } catch {
    st = undefined;
  }
  if (!st?.isFile()) {
    if (rel === 'index.html') {
      reply.code(503).type('text/html; charset=utf-8');
      return reply.send('<!doctype html><title>Urbis</title><p>The dashboard is not built: run <code>npm run build:web</code>.</p>');
    }
    throw new ProblemError('ResourceNotFound', `No file ${rel}.`);
  }
  const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const immutable = rel.startsWith('assets/');
  reply.header('etag', etag);
  reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('x-content-type-options', 'nosniff');
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();
  reply.type(MIME[extname(file).toLowerCase()] ?? 'application/octet-stream');
  reply.header('content-length', st.size);
  return reply.send(createReadStream(file));
}

export function dashboardConfig(p: Platform, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const num = (v: string | undefined, d: number) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : d);
  return {
    tileUrl: env.URBIS_MAP_TILES ?? '',
    tileType: env.URBIS_MAP_TILES_TYPE === 'vector' ? 'vector' : 'raster',
    attribution: env.URBIS_MAP_ATTRIBUTION ?? '',
    center: [num(env.URBIS_MAP_LON, -3.8099), num(env.URBIS_MAP_LAT, 43.4623)],
    zoom: num(env.URBIS_MAP_ZOOM, 12.5),
    // initial view: the demo city (Santander) unless a centre is configured
    bounds: env.URBIS_MAP_LON || env.URBIS_MAP_LAT ? null : [[-3.895, 43.432], [-3.762, 43.492]],
    auth: p.config.auth,
    city: env.URBIS_CITY ?? 'Santander',
  };
}

/** one hub per app instance (tests build several apps in one process) */
const hubs = new Set<LiveHub>();

export const dashboardModule: UrbisModule = {
  name: 'dashboard',
  routes(app: FastifyInstance, p: Platform) {
    const h = new LiveHub(p);
    hubs.add(h);
    app.addHook('preClose', async () => {
      h.stop();
      hubs.delete(h);
    });
    app.get('/', (req, reply) => serveFile('index.html', req, reply));
    app.get('/index.html', (req, reply) => serveFile('index.html', req, reply));
    app.get('/favicon.svg', (req, reply) => serveFile('favicon.svg', req, reply));
    app.get('/assets/*', (req, reply) => serveFile(`assets/${(req.params as { '*': string })['*']}`, req, reply));
    app.get('/data/*', (req, reply) => serveFile(`data/${(req.params as { '*': string })['*']}`, req, reply));
    app.get('/dashboard-config.json', async (_req, reply) => {
      reply.header('cache-control', 'no-cache');
      return dashboardConfig(p);
    });
    app.get('/live', (req, reply) => h.handle(req, reply));
  },
  async stop() {
    for (const h of hubs) h.stop();
    hubs.clear();
  },
};

export default dashboardModule;

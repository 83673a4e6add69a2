/**
 * Thin client of the platform's public HTTP APIs (NGSI-LD, temporal, KPI, rules, IoT, auth).
 * Authentication is the trust layer's session cookie (HttpOnly, sent by the browser itself, see
 * auth.ts). A 401 asks the auth handler (sign-in dialog) and retries once; a 403 asks it too, since
 * an account with a one-time password is refused everything until the password is changed.
 * Requests that fail while a sign-in is under way wait for it and are retried.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: { type?: string; title?: string; detail?: string } | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** resolves true when the request should be retried (signed in, password changed) */
export type AuthHandler = (status: 401 | 403) => Promise<boolean>;
let authHandler: AuthHandler | null = null;
let pendingAuth: Promise<boolean> | null = null;
/** bumped after every successful sign-in / password change */
let authGeneration = 0;

export function onAuthNeeded(h: AuthHandler): void {
  authHandler = h;
}

async function askAuth(status: 401 | 403, sentAt: number): Promise<boolean> {
  if (!authHandler) return false;
  if (authGeneration !== sentAt) return true; // someone signed in meanwhile
  pendingAuth ??= authHandler(status)
    .then((ok) => {
      if (ok) authGeneration++;
      return ok;
    })
    .finally(() => (pendingAuth = null));
  return pendingAuth;
}

export interface RequestOpts {
  method?: string;
  accept?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** fetch with the session; returns the Response (ok) or throws ApiError */
export async function request(path: string, opts: RequestOpts = {}, retried = false): Promise<Response> {
  const headers: Record<string, string> = { accept: opts.accept ?? 'application/json', ...opts.headers };
  let body: string | URLSearchParams | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string' || opts.body instanceof URLSearchParams) body = opts.body;
    else {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
  }
  const sentAt = authGeneration;
  const res = await fetch(path, { method: opts.method ?? 'GET', headers, body, signal: opts.signal, credentials: 'same-origin' });
  if ((res.status === 401 || res.status === 403) && !retried && (await askAuth(res.status, sentAt))) return request(path, opts, true);
  if (!res.ok) {
    let problem: ApiError['problem'];
    try {
      problem = (await res.json()) as ApiError['problem'];
    } catch {
      problem = undefined;
    }
    throw new ApiError(res.status, problem, problem?.detail ?? problem?.title ?? `${res.status} ${res.statusText}`);
  }
  return res;
}

export async function getJson<T>(path: string, opts: RequestOpts = {}): Promise<T> {
  const res = await request(path, opts);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export function qs(params: Record<string, string | number | boolean | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

// ---------- NGSI-LD ----------

export const NGSI = '/ngsi-ld/v1';
export const MAX_LIMIT = 1000;

export interface Feature {
  type: 'Feature';
  id: string;
  geometry: { type: string; coordinates: unknown } | null;
  properties: Record<string, unknown>;
}
export interface FeatureCollection {
  type: 'FeatureCollection';
  features: Feature[];
}

/** GET /types: short type names */
export async function listTypes(): Promise<string[]> {
  const r = await getJson<{ typeList?: string[] } | string[]>(`${NGSI}/types`);
  const list = Array.isArray(r) ? r : (r.typeList ?? []);
  return list.map(String);
}

/**
 * All entities of a type for the map, as features (id, point geometry, keyValues properties).
 * Fetched as plain keyValues JSON with `pick=` (only the attributes the map needs; about 40 % less
 * broker work and bytes than `attrs=` with `Accept: application/geo+json`, which repeats the
 * location in geometry and properties), in pages of 1000: the first page asks for the count, the
 * rest are requested in parallel. Brokers without `pick` (400) are asked with `attrs=` instead.
 */
export async function entitiesGeoJson(type: string, attrs?: string[], signal?: AbortSignal): Promise<Feature[]> {
  let usePick = attrs !== undefined;
  const page = async (offset: number, count: boolean): Promise<Response> => {
    const sel = attrs === undefined ? {} : usePick ? { pick: ['id', 'type', ...attrs].join(',') } : { attrs: attrs.join(',') };
    try {
      return await request(`${NGSI}/entities${qs({ type, ...sel, options: 'keyValues', limit: MAX_LIMIT, offset, count: count || undefined })}`, { signal });
    } catch (e) {
      if (usePick && e instanceof ApiError && e.status === 400) {
        usePick = false;
        return page(offset, count);
      }
      throw e;
    }
  };
  const first = await page(0, true);
  const total = Number(first.headers.get('NGSILD-Results-Count') ?? NaN);
  const out = featuresOf(await first.json());
  if (Number.isFinite(total) && total > out.length) {
    const offsets: number[] = [];
    for (let o = MAX_LIMIT; o < total; o += MAX_LIMIT) offsets.push(o);
    const rest = await Promise.all(offsets.map(async (o) => featuresOf(await (await page(o, false)).json())));
    for (const r of rest) out.push(...r);
  } else if (!Number.isFinite(total) && out.length === MAX_LIMIT) {
    // no count header: walk pages sequentially
    for (let o = MAX_LIMIT; ; o += MAX_LIMIT) {
      const r = featuresOf(await (await page(o, false)).json());
      out.push(...r);
      if (r.length < MAX_LIMIT) break;
    }
  }
  return out;
}

/** keyValues entities (or a GeoJSON FeatureCollection) to features; geometry = `location` */
export function featuresOf(x: unknown): Feature[] {
  if (x && typeof x === 'object' && !Array.isArray(x) && Array.isArray((x as FeatureCollection).features)) {
    const list = (x as FeatureCollection).features;
    for (const f of list) if (f.properties) f.properties = shortKeys(f.properties);
    return list;
  }
  if (!Array.isArray(x)) return [];
  const out: Feature[] = new Array(x.length);
  let n = 0;
  for (const raw of x as Record<string, unknown>[]) {
    if (!raw || typeof raw !== 'object') continue;
    const props = shortKeys(raw);
    const loc = props.location as Feature['geometry'] | undefined;
    out[n++] = { type: 'Feature', id: String(props.id), geometry: loc && typeof loc === 'object' && 'type' in loc ? loc : null, properties: props };
  }
  out.length = n;
  return out;
}

/**
 * Attribute names that the broker could not compact with the core context arrive as full IRIs;
 * the dashboard works with short names (the live feed sends the same short names).
 */
export function shortKeys(o: Record<string, unknown>): Record<string, unknown> {
  let iri = false;
  for (const k in o) if (k.includes('/') || k.includes('#')) iri = true;
  if (!iri) return o;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k.includes('/') || k.includes('#') ? (/[^/#:]+$/.exec(k)?.[0] ?? k) : k] = v;
  return out;
}

/** entities as keyValues JSON, all pages */
export async function queryKeyValues(params: Record<string, string | undefined>): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (let offset = 0; ; offset += MAX_LIMIT) {
    const page = await getJson<Record<string, unknown>[]>(
      `${NGSI}/entities${qs({ ...params, options: 'keyValues', limit: MAX_LIMIT, offset })}`,
    );
    out.push(...page.map(shortKeys));
    if (page.length < MAX_LIMIT) return out;
  }
}

/** GET /entities/{id} in normalized form */
export function getEntity(id: string): Promise<Record<string, unknown>> {
  return getJson(`${NGSI}/entities/${encodeURIComponent(id)}`);
}

export interface Series {
  /** epoch seconds */
  t: number[];
  v: (number | null)[];
  /** avg per period; false = raw measurements */
  aggregated: boolean;
  /** why raw values are shown: the broker cannot aggregate, or the history is too short to aggregate */
  rawReason?: 'unsupported' | 'short';
}

/** below this many aggregated points a chart shows the raw measurements instead (young sensors) */
export const MIN_AGGREGATED_POINTS = 4;

/**
 * Temporal history of one attribute (temporal API, src/temporal): averages per period
 * (`options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=…`, answered as
 * `{ <attr>: { type, avg: [[value, periodStart, periodEnd], …] } }`). When that gives fewer than
 * MIN_AGGREGATED_POINTS periods (a sensor that started recently) or the broker cannot aggregate
 * (400/422/501), the raw `temporalValues` (`{ values: [[value, observedAt], …] }`) are shown.
 */
export async function temporalSeries(id: string, attr: string, from: Date, to: Date, period: string): Promise<Series> {
  const base = `${NGSI}/temporal/entities/${encodeURIComponent(id)}`;
  const common = { timerel: 'between', timeAt: from.toISOString(), endTimeAt: to.toISOString(), attrs: attr };
  const raw = async (reason: Series['rawReason']): Promise<Series> => {
    const r = await getJson<Record<string, unknown>>(base + qs({ ...common, options: 'temporalValues', lastN: 2000 }));
    return { ...parseTemporalValues(r, attr), aggregated: false, rawReason: reason };
  };
  let agg: { t: number[]; v: (number | null)[] };
  try {
    agg = parseAggregated(await getJson<Record<string, unknown>>(base + qs({ ...common, options: 'aggregatedValues', aggrMethods: 'avg', aggrPeriodDuration: period })), attr);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (e.status === 404) return { t: [], v: [], aggregated: true };
    if (![400, 422, 501].includes(e.status)) throw e;
    return raw('unsupported');
  }
  if (agg.v.filter((x) => x !== null).length >= MIN_AGGREGATED_POINTS) return { ...agg, aggregated: true };
  const r = await raw('short').catch(() => null);
  return r && r.t.length > agg.t.length ? r : { ...agg, aggregated: true };
}

function attrOf(entity: Record<string, unknown>, attr: string): Record<string, unknown> | undefined {
  let a = entity[attr];
  if (Array.isArray(a)) a = a.find((x) => x && typeof x === 'object' && !('datasetId' in x)) ?? a[0];
  return a && typeof a === 'object' ? (a as Record<string, unknown>) : undefined;
}

export function parseAggregated(entity: Record<string, unknown>, attr: string): { t: number[]; v: (number | null)[] } {
  const a = attrOf(entity, attr);
  const rows = (a?.avg ?? a?.['ngsi-ld:avg'] ?? []) as unknown[];
  return toSeries(rows, (row) => (Array.isArray(row) ? [row[1], row[0]] : [undefined, undefined]));
}

export function parseTemporalValues(entity: Record<string, unknown>, attr: string): { t: number[]; v: (number | null)[] } {
  const a = attrOf(entity, attr);
  if (a && Array.isArray(a.values)) {
    return toSeries(a.values as unknown[], (row) => (Array.isArray(row) ? [row[1], row[0]] : [undefined, undefined]));
  }
  // normalized temporal representation: array of instances
  const inst = entity[attr];
  if (Array.isArray(inst)) {
    return toSeries(inst, (i) => {
      const o = i as Record<string, unknown>;
      return [o.observedAt ?? o.modifiedAt, o.value];
    });
  }
  return { t: [], v: [] };
}

function toSeries(rows: unknown[], pick: (r: unknown) => [unknown, unknown]): { t: number[]; v: (number | null)[] } {
  const pts: [number, number | null][] = [];
  for (const r of rows) {
    const [time, value] = pick(r);
    const ms = typeof time === 'string' ? Date.parse(time) : NaN;
    if (!Number.isFinite(ms)) continue;
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    pts.push([ms / 1000, Number.isFinite(n) ? n : null]);
  }
  pts.sort((a, b) => a[0] - b[0]);
  return { t: pts.map((p) => p[0]), v: pts.map((p) => p[1]) };
}

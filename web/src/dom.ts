/** Tiny DOM helpers (no framework). */
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    // CSSOM, not a style attribute: the platform's CSP (style-src 'self') blocks inline style attributes
    else if (k === 'style') el.style.cssText = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

/** polite announcement for screen readers */
export function announce(msg: string): void {
  const el = document.getElementById('announcer');
  if (el) {
    el.textContent = '';
    setTimeout(() => (el.textContent = msg), 30);
  }
}

/** ISO string of a date value, also from a keyValues DateTime object {"@type":"DateTime","@value":...} */
export function isoOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { '@value'?: unknown })['@value'] === 'string') return (v as { '@value': string })['@value'];
  return undefined;
}

export function relTime(iso: unknown, now = Date.now()): string {
  const str = isoOf(iso);
  const t = str ? Date.parse(str) : NaN;
  if (!Number.isFinite(t)) return '—';
  const s = Math.round((now - t) / 1000);
  if (Math.abs(s) < 60) return `${s}s`;
  const m = Math.round(s / 60);
  if (Math.abs(m) < 60) return `${m} min`;
  const hr = Math.round(m / 60);
  if (Math.abs(hr) < 48) return `${hr} h`;
  return `${Math.round(hr / 24)} d`;
}

export function fmtTime(iso: unknown): string {
  const s = isoOf(iso);
  const t = s ? Date.parse(s) : NaN;
  return Number.isFinite(t) ? new Date(t).toLocaleString() : '—';
}

export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  try {
    const s = JSON.stringify(v);
    return s.length > 160 ? s.slice(0, 157) + '…' : s;
  } catch {
    return String(v);
  }
}

/** UN/CEFACT unit codes (NGSI-LD unitCode) commonly used by the city's feeds */
const UNITS: Record<string, string> = {
  GQ: 'µg/m³', GP: 'mg/m³', CEL: '°C', P1: '%', '2N': 'dB', MTQ: 'm³', KWH: 'kWh', KWT: 'kW', WTT: 'W',
  KMH: 'km/h', MTS: 'm/s', MMT: 'mm', A97: 'hPa', DD: '°', MTR: 'm', KGM: 'kg', LTR: 'L', 'E32': 'L/h',
};
export function unitLabel(code: string): string {
  return UNITS[code] ?? code;
}

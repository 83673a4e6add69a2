/**
 * A small NGSI-LD q evaluator used by the rule engine (a) to list the attributes a q expression reads
 * (for incremental evaluation and "unknown attribute" checks) and (b) as a fallback evaluator while
 * the broker's own q module (src/ngsi-ld/query) is not available. Pure.
 *
 * Supported: `;` (and, binds tighter) and `|` (or), parentheses, `==` `!=` `>` `>=` `<` `<=` `~=` `!~=`,
 * attribute existence (`attr`) and its negation (`!attr`), `attr.subAttr`, `attr[path.in.value]`,
 * values: numbers, "strings", true/false, dateTimes, ranges `a..b`, lists `a,b,c`.
 */
import type { AttrInstance, StoredEntity } from '../../ngsi-ld/model/types.ts';

export type QNode =
  | { op: 'and'; args: QNode[] }
  | { op: 'or'; args: QNode[] }
  | { op: 'exists'; path: QPath; negate: boolean }
  | { op: 'cmp'; path: QPath; cmp: Cmp; value: QValue };

export type Cmp = '==' | '!=' | '>' | '>=' | '<' | '<=' | '~=' | '!~=';
export interface QPath {
  attr: string;
  sub?: string;
  /** path inside a compound value */
  inner?: string[];
}
export type Scalar = string | number | boolean;
export type QValue =
  | { kind: 'scalar'; v: Scalar }
  | { kind: 'list'; v: Scalar[] }
  | { kind: 'range'; lo: Scalar; hi: Scalar }
  | { kind: 'regex'; re: RegExp };

export class QSyntaxError extends Error {}

const OPS: Cmp[] = ['!~=', '==', '!=', '>=', '<=', '~=', '>', '<'];

export function parseMiniQ(text: string): QNode {
  const s = text;
  let i = 0;
  const fail = (msg: string): never => {
    throw new QSyntaxError(`invalid q "${text}" at position ${i}: ${msg}`);
  };
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const parseOr = (): QNode => {
    const args = [parseAnd()];
    ws();
    while (s[i] === '|') {
      i++;
      args.push(parseAnd());
      ws();
    }
    return args.length === 1 ? args[0] : { op: 'or', args };
  };
  const parseAnd = (): QNode => {
    const args = [parseTerm()];
    ws();
    while (s[i] === ';') {
      i++;
      args.push(parseTerm());
      ws();
    }
    return args.length === 1 ? args[0] : { op: 'and', args };
  };
  const parseTerm = (): QNode => {
    ws();
    if (i >= s.length) fail('expected an attribute');
    if (s[i] === '(') {
      i++;
      const n = parseOr();
      ws();
      if (s[i] !== ')') fail('expected ")"');
      i++;
      return n;
    }
    let negate = false;
    if (s[i] === '!' && !s.startsWith('!=', i) && !s.startsWith('!~=', i)) {
      negate = true;
      i++;
    }
    const path = parsePath();
    ws();
    const op = OPS.find((o) => s.startsWith(o, i));
    if (!op) {
      if (i < s.length && !';|)'.includes(s[i])) fail(`unexpected "${s[i]}" after attribute "${path.attr}"`);
      return { op: 'exists', path, negate };
    }
    if (negate) fail('"!" only negates attribute existence');
    i += op.length;
    ws();
    const raw = readValue();
    if (raw === '') fail(`missing value after "${op}"`);
    return { op: 'cmp', path, cmp: op, value: parseValue(raw, op, fail) };
  };
  const parsePath = (): QPath => {
    const start = i;
    while (i < s.length && /[A-Za-z0-9_:\/#\-@.]/.test(s[i])) {
      // a '.' followed by a digit-less name is a sub-attribute separator; keep reading names
      i++;
    }
    let name = s.slice(start, i);
    if (!name) fail('expected an attribute name');
    let inner: string[] | undefined;
    if (s[i] === '[') {
      const end = s.indexOf(']', i);
      if (end < 0) fail('missing "]"');
      inner = s.slice(i + 1, end).split('.').filter(Boolean);
      if (inner.length === 0) fail('empty "[]" path');
      i = end + 1;
    }
    let sub: string | undefined;
    // attr.sub: split on the last '.' unless the name looks like an IRI with dots in the host
    if (!name.includes('://')) {
      const dot = name.indexOf('.');
      if (dot >= 0) {
        sub = name.slice(dot + 1);
        name = name.slice(0, dot);
        if (!name || !sub || sub.includes('.')) fail(`bad attribute path "${s.slice(start, i)}"`);
      }
    }
    if (!/^[A-Za-z_@]|^https?:/.test(name)) fail(`bad attribute name "${name}"`);
    return { attr: name, sub, inner };
  };
  const readValue = (): string => {
    const start = i;
    let inStr = false;
    while (i < s.length) {
      const c = s[i];
      if (inStr) {
        if (c === '\\') i++;
        else if (c === '"') inStr = false;
      } else if (c === '"') inStr = true;
      else if (c === ';' || c === '|' || c === ')') break;
      i++;
    }
    if (inStr) fail('unterminated string');
    return s.slice(start, i).trim();
  };
  const node = parseOr();
  ws();
  if (i < s.length) fail(`unexpected "${s[i]}"`);
  return node;
}

function parseScalar(raw: string, fail: (m: string) => never): Scalar {
  if (raw.startsWith('"')) {
    if (!raw.endsWith('"') || raw.length < 2) fail(`bad string ${raw}`);
    return raw.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) return Number(raw);
  if (/^\d{4}-\d{2}-\d{2}/.test(raw) || /^\d{2}:\d{2}/.test(raw)) return raw; // date / dateTime / time
  if (/^[A-Za-z0-9_:\/#.\-]+$/.test(raw)) return raw; // URI or bare token
  return fail(`bad value "${raw}" (quote strings: "text")`);
}

function parseValue(raw: string, op: Cmp, fail: (m: string) => never): QValue {
  if (op === '~=' || op === '!~=') {
    const src = raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
    let body = src;
    let flags = '';
    if (body.startsWith('(?i)')) {
      flags = 'i';
      body = body.slice(4);
    }
    try {
      return { kind: 'regex', re: new RegExp(body, flags) };
    } catch (e) {
      return fail(`bad regular expression: ${(e as Error).message}`);
    }
  }
  const parts = splitTop(raw, ',');
  if (parts.length > 1) {
    if (op !== '==' && op !== '!=') fail(`a list of values needs "==" or "!="`);
    return { kind: 'list', v: parts.map((p) => parseScalar(p.trim(), fail)) };
  }
  const range = splitTop(raw, '..');
  if (range.length === 2 && !raw.startsWith('"')) {
    if (op !== '==' && op !== '!=') fail(`a range needs "==" or "!="`);
    return { kind: 'range', lo: parseScalar(range[0].trim(), fail), hi: parseScalar(range[1].trim(), fail) };
  }
  return { kind: 'scalar', v: parseScalar(raw, fail) };
}

/** split on sep outside quotes */
function splitTop(raw: string, sep: string): string[] {
  const out: string[] = [];
  let inStr = false;
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\') i++;
    else if (raw[i] === '"') inStr = !inStr;
    else if (!inStr && raw.startsWith(sep, i)) {
      // do not split a decimal number like 1.5 on '..' (needs two dots) nor dateTimes on ','
      out.push(raw.slice(last, i));
      i += sep.length - 1;
      last = i + 1;
    }
  }
  out.push(raw.slice(last));
  return out;
}

/** Attribute names (terms as written) read by a q expression. */
export function qAttributes(node: QNode): string[] {
  const out = new Set<string>();
  const walk = (n: QNode) => {
    if (n.op === 'and' || n.op === 'or') n.args.forEach(walk);
    else out.add(n.path.attr);
  };
  walk(node);
  return [...out];
}

const CORE_SUB = new Set(['observedAt', 'unitCode', 'createdAt', 'modifiedAt', 'datasetId']);

/** Evaluates a parsed q against a stored entity; attribute names expanded with expandTerm. */
export function compileMiniQ(node: QNode, expandTerm: (t: string) => string): (e: StoredEntity) => boolean {
  const build = (n: QNode): ((e: StoredEntity) => boolean) => {
    if (n.op === 'and') {
      const fs = n.args.map(build);
      return (e) => fs.every((f) => f(e));
    }
    if (n.op === 'or') {
      const fs = n.args.map(build);
      return (e) => fs.some((f) => f(e));
    }
    const get = valueGetter(n.path, expandTerm);
    if (n.op === 'exists') return (e) => get(e).length > 0 !== n.negate;
    const test = comparator(n.cmp, n.value);
    if (n.cmp === '!=') return (e) => {
      const vs = get(e);
      return vs.length > 0 && vs.every((v) => test(v));
    };
    return (e) => get(e).some((v) => test(v));
  };
  return build(node);
}

function valueGetter(p: QPath, expandTerm: (t: string) => string): (e: StoredEntity) => unknown[] {
  const iri = p.attr === 'id' || p.attr === 'type' ? p.attr : expandTerm(p.attr);
  const subKey = p.sub === undefined ? undefined : CORE_SUB.has(p.sub) ? p.sub : expandTerm(p.sub);
  return (e) => {
    if (iri === 'id') return [e.id];
    if (iri === 'type') return e.type;
    const insts = e.attrs[iri];
    if (!insts) return [];
    const out: unknown[] = [];
    for (const inst of insts) {
      let v: unknown;
      if (subKey !== undefined) {
        const sub = (inst as Record<string, unknown>)[subKey];
        v = CORE_SUB.has(subKey) ? sub : sub && typeof sub === 'object' ? instanceValue(sub as AttrInstance) : undefined;
      } else v = instanceValue(inst);
      if (p.inner) for (const k of p.inner) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
      if (v === undefined || v === null) continue;
      if (Array.isArray(v)) out.push(...v);
      else out.push(v);
    }
    return out;
  };
}

export function instanceValue(inst: AttrInstance): unknown {
  if (inst.value !== undefined) return inst.value;
  if (inst.object !== undefined) return inst.object;
  if (inst.vocab !== undefined) return inst.vocab;
  if (inst.languageMap !== undefined) return Object.values(inst.languageMap).flat();
  if (inst.valueList !== undefined) return inst.valueList;
  if (inst.objectList !== undefined) return inst.objectList;
  if (inst.json !== undefined) return inst.json;
  return undefined;
}

function cmpScalar(a: unknown, b: Scalar): number | undefined {
  if (typeof b === 'number') {
    const x = typeof a === 'number' ? a : typeof a === 'string' && a.trim() !== '' ? Number(a) : NaN;
    return Number.isNaN(x) ? undefined : x - b;
  }
  if (typeof b === 'boolean') return a === b ? 0 : undefined;
  if (typeof a === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'number' && typeof b === 'string' && b.trim() !== '' && !Number.isNaN(Number(b))) return a - Number(b);
  return undefined;
}

function comparator(cmp: Cmp, value: QValue): (v: unknown) => boolean {
  if (value.kind === 'regex') {
    const re = value.re;
    return cmp === '~=' ? (v) => typeof v === 'string' && re.test(v) : (v) => typeof v === 'string' && !re.test(v);
  }
  if (value.kind === 'list') {
    const eq = (v: unknown) => value.v.some((x) => cmpScalar(v, x) === 0);
    return cmp === '==' ? eq : (v) => !eq(v);
  }
  if (value.kind === 'range') {
    const inRange = (v: unknown) => {
      const lo = cmpScalar(v, value.lo);
      const hi = cmpScalar(v, value.hi);
      return lo !== undefined && hi !== undefined && lo >= 0 && hi <= 0;
    };
    return cmp === '==' ? inRange : (v) => !inRange(v);
  }
  const b = value.v;
  switch (cmp) {
    case '==': return (v) => cmpScalar(v, b) === 0;
    case '!=': return (v) => cmpScalar(v, b) !== 0;
    case '>': return (v) => (cmpScalar(v, b) ?? -1) > 0;
    case '>=': return (v) => (cmpScalar(v, b) ?? -1) >= 0;
    case '<': return (v) => (cmpScalar(v, b) ?? 1) < 0;
    case '<=': return (v) => (cmpScalar(v, b) ?? 1) <= 0;
    default: return () => false;
  }
}

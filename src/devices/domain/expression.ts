/**
 * Safe expression language for computed attributes: the JEXL subset used by the FIWARE IoT Agents
 * (iotagent-node-lib "expression" fields), parsed by hand and interpreted over a plain value
 * context. No `eval`, no `Function`, no access to prototypes: member access only reads own
 * properties of plain objects/arrays and string `length`.
 *
 * Grammar (precedence low -> high):
 *   ternary   := or ('?' expr ':' expr)?
 *   or        := and ('||' and)*
 *   and       := in ('&&' in)*
 *   eq        := rel (('=='|'!=') rel)*
 *   rel       := add (('<'|'<='|'>'|'>='|'in') add)*
 *   add       := mul (('+'|'-') mul)*
 *   mul       := pow (('*'|'/'|'//'|'%') pow)*
 *   pow       := unary ('^' unary)*
 *   unary     := ('!'|'-'|'+') unary | postfix
 *   postfix   := primary ( '.' ident | '[' expr ']' | '|' ident ('(' args ')')? )*
 *   primary   := number | string | true | false | null | undefined | ident | ident '(' args ')'
 *              | '(' expr ')' | '[' elems ']' | '{' key ':' expr, ... '}'
 * `x | f(a, b)` calls transform f(x, a, b); `f(a)` calls f(a). Transforms: see TRANSFORMS.
 */

export class ExpressionError extends Error {}

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'id'; name: string }
  | { k: 'member'; obj: Node; prop: Node }
  | { k: 'call'; name: string; args: Node[] }
  | { k: 'un'; op: string; a: Node }
  | { k: 'bin'; op: string; a: Node; b: Node }
  | { k: 'cond'; c: Node; t: Node; f: Node }
  | { k: 'arr'; items: Node[] }
  | { k: 'obj'; entries: [string, Node][] };

interface Tok {
  t: 'num' | 'str' | 'id' | 'op' | 'eof';
  v: string;
  pos: number;
}

const MAX_SOURCE = 4096;
const MAX_DEPTH = 64;
const MAX_STRING = 1 << 20;
const OPS = ['//', '==', '!=', '<=', '>=', '&&', '||', '+', '-', '*', '/', '%', '^', '<', '>', '!', '?', ':', '.', ',', '(', ')', '[', ']', '{', '}', '|'];
const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if ((c >= '0' && c <= '9') || (c === '.' && src[i + 1] >= '0' && src[i + 1] <= '9')) {
      const m = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(src.slice(i))!;
      out.push({ t: 'num', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    if (c === '"' || c === "'") {
      let s = '';
      let j = i + 1;
      for (;;) {
        if (j >= src.length) throw new ExpressionError(`unterminated string at ${i}`);
        const d = src[j];
        if (d === c) break;
        if (d === '\\') {
          const e = src[j + 1];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : (e ?? '');
          j += 2;
          continue;
        }
        s += d;
        j++;
      }
      out.push({ t: 'str', v: s, pos: i });
      i = j + 1;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(src.slice(i))!;
      out.push({ t: 'id', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (!op) throw new ExpressionError(`unexpected character "${c}" at ${i}`);
    out.push({ t: 'op', v: op, pos: i });
    i += op.length;
  }
  out.push({ t: 'eof', v: '', pos: src.length });
  return out;
}

class Parser {
  private i = 0;
  private depth = 0;
  constructor(private toks: Tok[]) {}
  private peek() {
    return this.toks[this.i];
  }
  private next() {
    return this.toks[this.i++];
  }
  private isOp(v: string) {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private expect(v: string) {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new ExpressionError(`expected "${v}" at ${t.pos}, got "${t.v || 'end'}"`);
  }
  parseAll(): Node {
    const n = this.expr();
    const t = this.peek();
    if (t.t !== 'eof') throw new ExpressionError(`unexpected "${t.v}" at ${t.pos}`);
    return n;
  }
  expr(): Node {
    if (++this.depth > MAX_DEPTH) throw new ExpressionError('expression nested too deeply');
    try {
      const c = this.binary(0);
      if (this.isOp('?')) {
        this.next();
        const t = this.expr();
        this.expect(':');
        const f = this.expr();
        return { k: 'cond', c, t, f };
      }
      return c;
    } finally {
      this.depth--;
    }
  }
  private static LEVELS: string[][] = [['||'], ['&&'], ['==', '!='], ['<', '<=', '>', '>=', 'in'], ['+', '-'], ['*', '/', '//', '%'], ['^']];
  private binary(level: number): Node {
    if (level >= Parser.LEVELS.length) return this.unary();
    let a = this.binary(level + 1);
    for (;;) {
      const t = this.peek();
      const ops = Parser.LEVELS[level];
      const isOp = (t.t === 'op' && ops.includes(t.v)) || (t.t === 'id' && t.v === 'in' && ops.includes('in'));
      if (!isOp) return a;
      this.next();
      const b = this.binary(level + 1);
      a = { k: 'bin', op: t.v, a, b };
    }
  }
  private unary(): Node {
    const t = this.peek();
    if (t.t === 'op' && (t.v === '!' || t.v === '-' || t.v === '+')) {
      this.next();
      if (++this.depth > MAX_DEPTH) throw new ExpressionError('expression nested too deeply');
      try {
        return { k: 'un', op: t.v, a: this.unary() };
      } finally {
        this.depth--;
      }
    }
    return this.postfix(this.primary());
  }
  private postfix(n: Node): Node {
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const id = this.next();
        if (id.t !== 'id') throw new ExpressionError(`expected a property name at ${id.pos}`);
        n = { k: 'member', obj: n, prop: { k: 'lit', v: id.v } };
      } else if (this.isOp('[')) {
        this.next();
        const p = this.expr();
        this.expect(']');
        n = { k: 'member', obj: n, prop: p };
      } else if (this.isOp('|')) {
        this.next();
        const id = this.next();
        if (id.t !== 'id') throw new ExpressionError(`expected a transform name at ${id.pos}`);
        const args = this.isOp('(') ? this.args() : [];
        n = { k: 'call', name: id.v, args: [n, ...args] };
      } else return n;
    }
  }
  private args(): Node[] {
    this.expect('(');
    const out: Node[] = [];
    if (this.isOp(')')) {
      this.next();
      return out;
    }
    for (;;) {
      out.push(this.expr());
      if (this.isOp(',')) {
        this.next();
        continue;
      }
      this.expect(')');
      return out;
    }
  }
  private primary(): Node {
    const t = this.next();
    if (t.t === 'num') return { k: 'lit', v: Number(t.v) };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'id') {
      if (t.v === 'true') return { k: 'lit', v: true };
      if (t.v === 'false') return { k: 'lit', v: false };
      if (t.v === 'null') return { k: 'lit', v: null };
      if (t.v === 'undefined') return { k: 'lit', v: undefined };
      if (this.isOp('(')) return { k: 'call', name: t.v, args: this.args() };
      return { k: 'id', name: t.v };
    }
    if (t.t === 'op') {
      if (t.v === '(') {
        const e = this.expr();
        this.expect(')');
        return e;
      }
      if (t.v === '[') {
        const items: Node[] = [];
        if (this.isOp(']')) {
          this.next();
          return { k: 'arr', items };
        }
        for (;;) {
          items.push(this.expr());
          if (this.isOp(',')) {
            this.next();
            continue;
          }
          this.expect(']');
          return { k: 'arr', items };
        }
      }
      if (t.v === '{') {
        const entries: [string, Node][] = [];
        if (this.isOp('}')) {
          this.next();
          return { k: 'obj', entries };
        }
        for (;;) {
          const key = this.next();
          if (key.t !== 'id' && key.t !== 'str' && key.t !== 'num') throw new ExpressionError(`expected an object key at ${key.pos}`);
          if (FORBIDDEN_KEYS.has(key.v)) throw new ExpressionError(`forbidden object key "${key.v}"`);
          this.expect(':');
          entries.push([key.v, this.expr()]);
          if (this.isOp(',')) {
            this.next();
            continue;
          }
          this.expect('}');
          return { k: 'obj', entries };
        }
      }
    }
    throw new ExpressionError(`unexpected "${t.v || 'end of expression'}" at ${t.pos}`);
  }
}

export interface CompiledExpression {
  source: string;
  /** top-level identifiers the expression reads (measure names, context keys) */
  variables: string[];
  evaluate(ctx: Record<string, unknown>, opts?: EvalOptions): unknown;
}

export interface EvalOptions {
  /** clock for now(); defaults to Date.now */
  now?: () => number;
}

const cache = new Map<string, CompiledExpression>();

/** Parse once (cached); throws ExpressionError on syntax errors. */
export function compileExpression(source: string): CompiledExpression {
  const hit = cache.get(source);
  if (hit) return hit;
  if (typeof source !== 'string') throw new ExpressionError('expression must be a string');
  if (source.length > MAX_SOURCE) throw new ExpressionError(`expression longer than ${MAX_SOURCE} characters`);
  const ast = new Parser(tokenize(source)).parseAll();
  const vars = new Set<string>();
  collectVars(ast, vars);
  for (const n of callNames(ast)) if (!(n in TRANSFORMS)) throw new ExpressionError(`unknown transform "${n}"`);
  const compiled: CompiledExpression = {
    source,
    variables: [...vars],
    evaluate: (ctx, opts) => evaluate(ast, ctx, opts ?? {}),
  };
  if (cache.size > 5000) cache.clear();
  cache.set(source, compiled);
  return compiled;
}

/** Convenience: compile + evaluate; returns undefined for undefined variables like JEXL. */
export function evaluateExpression(source: string, ctx: Record<string, unknown>, opts?: EvalOptions): unknown {
  return compileExpression(source).evaluate(ctx, opts);
}

function collectVars(n: Node, out: Set<string>): void {
  switch (n.k) {
    case 'id':
      out.add(n.name);
      break;
    case 'member':
      collectVars(n.obj, out);
      collectVars(n.prop, out);
      break;
    case 'call':
      n.args.forEach((a) => collectVars(a, out));
      break;
    case 'un':
      collectVars(n.a, out);
      break;
    case 'bin':
      collectVars(n.a, out);
      collectVars(n.b, out);
      break;
    case 'cond':
      collectVars(n.c, out);
      collectVars(n.t, out);
      collectVars(n.f, out);
      break;
    case 'arr':
      n.items.forEach((a) => collectVars(a, out));
      break;
    case 'obj':
      n.entries.forEach(([, a]) => collectVars(a, out));
      break;
  }
}

function callNames(n: Node): string[] {
  const out: string[] = [];
  const walk = (x: Node) => {
    if (x.k === 'call') {
      out.push(x.name);
      x.args.forEach(walk);
    } else if (x.k === 'member') {
      walk(x.obj);
      walk(x.prop);
    } else if (x.k === 'un') walk(x.a);
    else if (x.k === 'bin') {
      walk(x.a);
      walk(x.b);
    } else if (x.k === 'cond') {
      walk(x.c);
      walk(x.t);
      walk(x.f);
    } else if (x.k === 'arr') x.items.forEach(walk);
    else if (x.k === 'obj') x.entries.forEach(([, v]) => walk(v));
  };
  walk(n);
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function member(obj: unknown, prop: unknown): unknown {
  if (obj === null || obj === undefined) return undefined;
  if (typeof prop !== 'string' && typeof prop !== 'number') return undefined;
  const key = String(prop);
  if (FORBIDDEN_KEYS.has(key)) return undefined;
  if (typeof obj === 'string') {
    if (key === 'length') return obj.length;
    return /^\d+$/.test(key) ? obj[Number(key)] : undefined;
  }
  if (Array.isArray(obj)) {
    if (key === 'length') return obj.length;
    return /^\d+$/.test(key) ? obj[Number(key)] : undefined;
  }
  if (isPlainObject(obj)) return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
  return undefined;
}

function checkString(s: unknown): unknown {
  if (typeof s === 'string' && s.length > MAX_STRING) throw new ExpressionError('string result too long');
  return s;
}

function evaluate(n: Node, ctx: Record<string, unknown>, opts: EvalOptions): unknown {
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'id':
      return FORBIDDEN_KEYS.has(n.name) || !Object.prototype.hasOwnProperty.call(ctx, n.name) ? undefined : ctx[n.name];
    case 'member':
      return member(evaluate(n.obj, ctx, opts), evaluate(n.prop, ctx, opts));
    case 'arr':
      return n.items.map((x) => evaluate(x, ctx, opts));
    case 'obj': {
      const o: Record<string, unknown> = {};
      for (const [k, v] of n.entries) o[k] = evaluate(v, ctx, opts);
      return o;
    }
    case 'cond':
      return evaluate(n.c, ctx, opts) ? evaluate(n.t, ctx, opts) : evaluate(n.f, ctx, opts);
    case 'un': {
      const a = evaluate(n.a, ctx, opts);
      if (n.op === '!') return !a;
      if (n.op === '-') return -(a as number);
      return +(a as number);
    }
    case 'bin': {
      if (n.op === '&&') {
        const a = evaluate(n.a, ctx, opts);
        return a ? evaluate(n.b, ctx, opts) : a;
      }
      if (n.op === '||') {
        const a = evaluate(n.a, ctx, opts);
        return a ? a : evaluate(n.b, ctx, opts);
      }
      const a = evaluate(n.a, ctx, opts) as any;
      const b = evaluate(n.b, ctx, opts) as any;
      switch (n.op) {
        case '+':
          return checkString(a + b);
        case '-':
          return a - b;
        case '*':
          return a * b;
        case '/':
          return a / b;
        case '//':
          return Math.floor(a / b);
        case '%':
          return a % b;
        case '^':
          return Math.pow(a, b);
        case '==':
          // JEXL uses loose equality
          return a == b; // eslint-disable-line eqeqeq
        case '!=':
          return a != b; // eslint-disable-line eqeqeq
        case '<':
          return a < b;
        case '<=':
          return a <= b;
        case '>':
          return a > b;
        case '>=':
          return a >= b;
        case 'in':
          if (typeof b === 'string') return typeof a === 'string' && b.includes(a);
          if (Array.isArray(b)) return b.some((x) => x == a); // eslint-disable-line eqeqeq
          return false;
      }
      throw new ExpressionError(`unknown operator ${n.op}`);
    }
    case 'call': {
      const f = TRANSFORMS[n.name];
      if (!f) throw new ExpressionError(`unknown transform "${n.name}"`);
      const args = n.args.map((x) => evaluate(x, ctx, opts));
      try {
        return checkString(f(args, opts));
      } catch (e) {
        if (e instanceof ExpressionError) throw e;
        // a transform applied to the wrong kind of value yields no value (like a JS TypeError in JEXL)
        return undefined;
      }
    }
  }
}

const str = (v: unknown) => String(v);
const arr = (v: unknown): unknown[] => {
  if (!Array.isArray(v)) throw new TypeError('not an array');
  return v;
};
const safeRegExp = (pattern: unknown, flags = ''): RegExp => {
  const p = String(pattern);
  if (p.length > 200) throw new ExpressionError('regular expression too long');
  // reject nested quantifiers, the usual catastrophic-backtracking shape
  if (/\([^)]*[+*}][^)]*\)[+*{]/.test(p)) throw new ExpressionError('regular expression with nested quantifiers is not allowed');
  return new RegExp(p, flags);
};
const limitInput = (s: string) => {
  if (s.length > 100_000) throw new ExpressionError('input too long for a regular expression');
  return s;
};

/** The FIWARE jexlTransformsMap functions (same names, same behaviour), implemented without eval. */
export const TRANSFORMS: Record<string, (a: unknown[], o: EvalOptions) => unknown> = {
  jsonparse: ([s]) => JSON.parse(str(s)),
  jsonstringify: ([o]) => JSON.stringify(o),
  indexOf: ([v, c]) => str(v).indexOf(str(c)),
  length: ([v]) => str(v).length,
  trim: ([v]) => str(v).trim(),
  substr: ([v, a, b]) => str(v).substr(Number(a), b === undefined ? undefined : Number(b)),
  addreduce: ([a]) => arr(a).reduce((i: any, v: any) => i + v),
  lengtharray: ([a]) => arr(a).length,
  typeof: ([v]) => typeof v,
  isarray: ([v]) => Array.isArray(v),
  isnan: ([v]) => isNaN(v as number),
  parseint: ([v, r]) => parseInt(str(v), r === undefined ? undefined : Number(r)),
  parsefloat: ([v]) => parseFloat(str(v)),
  toisodate: ([v]) => new Date(v as string).toISOString(),
  timeoffset: ([v]) => new Date(v as string).getTimezoneOffset(),
  tostring: ([v]) => {
    if (v === null || v === undefined) throw new TypeError('no value');
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  },
  urlencode: ([v]) => encodeURI(str(v)),
  urldecode: ([v]) => decodeURI(str(v)),
  replacestr: ([s, f, t]) => str(s).replace(str(f), str(t)),
  replaceregexp: ([s, r, t]) => limitInput(str(s)).replace(safeRegExp(r), str(t)),
  replaceallstr: ([s, f, t]) => str(s).replaceAll(str(f), str(t)),
  replaceallregexp: ([s, r, t]) => limitInput(str(s)).replaceAll(safeRegExp(r, 'g'), str(t)),
  split: ([s, c]) => str(s).split(str(c)),
  joinarrtostr: ([a, c]) => arr(a).join(c === undefined ? ',' : str(c)),
  concatarr: ([a, b]) => arr(a).concat(b as unknown[]),
  mapper: ([v, values, choices]) => arr(choices)[arr(values).findIndex((x) => x == v)], // eslint-disable-line eqeqeq
  thmapper: ([v, values, choices]) => {
    const idx = arr(values).findIndex((x) => (v as number) <= (x as number));
    return idx < 0 ? undefined : arr(choices)[idx];
  },
  bitwisemask: ([i, mask, op, shf]) => {
    const n = parseInt(str(i));
    const m = Number(mask);
    const r = op === '&' ? n & m : op === '|' ? n | m : op === '^' ? n ^ m : n;
    return r >> Number(shf ?? 0);
  },
  slice: ([a, b, c]) => (typeof a === 'string' ? a.slice(b as number, c as number) : arr(a).slice(b as number, c as number)),
  addset: ([a, x]) => Array.from(new Set(arr(a)).add(x)),
  removeset: ([a, x]) => {
    const s = new Set(arr(a));
    s.delete(x);
    return Array.from(s);
  },
  touppercase: ([v]) => str(v).toUpperCase(),
  tolowercase: ([v]) => str(v).toLowerCase(),
  round: ([v]) => Math.round(v as number),
  floor: ([v]) => Math.floor(v as number),
  ceil: ([v]) => Math.ceil(v as number),
  tofixed: ([v, d]) => Number.parseFloat(str(v)).toFixed(Number(d ?? 0)),
  gettime: ([d]) => new Date(d as string).getTime(),
  toisostring: ([d]) => new Date(d as string).toISOString(),
  localestring: ([d, tz, o]) => new Date(d as string).toLocaleString(tz as string, o as Intl.DateTimeFormatOptions),
  now: (_a, o) => (o.now ?? Date.now)(),
  hextostring: ([v]) => {
    const s = str(v);
    if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new TypeError('not hex');
    return Buffer.from(s, 'hex').toString('utf8');
  },
  // a few extra numeric helpers that are handy for unit conversion
  abs: ([v]) => Math.abs(v as number),
  min: (a) => Math.min(...(a as number[])),
  max: (a) => Math.max(...(a as number[])),
};

/**
 * NGSI-LD Query Language (ETSI GS CIM 009 v1.9.1 clause 4.9): parser, term resolution,
 * in-memory evaluator over the stored entity form, and a SQL translator that must agree with it.
 */
import { ProblemError } from '../../common/problem.ts';
import { IRI, type StoredEntity } from '../model/types.ts';
import { instantMs, timeMs, sqlInstantMs, sqlTimeMs } from './temporal-values.ts';

// ---------------------------------------------------------------------------------------------
// AST

export type QOp = '==' | '!=' | '>' | '>=' | '<' | '<=' | '~=' | '!~=';

/** A literal. Strings that look like a Date/DateTime (`instant`) or Time are typed as such, quoted or not. */
export type QScalar =
  | { kind: 'number'; value: number }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'string'; value: string; quoted: boolean }
  | { kind: 'instant'; value: string; ms: number }
  | { kind: 'time'; value: string; ms: number };

export type QOperand =
  | { kind: 'value'; value: QScalar }
  | { kind: 'list'; values: QScalar[] }
  | { kind: 'range'; min: QScalar; max: QScalar }
  | { kind: 'regex'; source: string };

export interface QPath {
  /** attribute name as written: a term, compact IRI or IRI */
  attr: string;
  /** dotted names after the attribute: sub-attributes, or a final instance key such as observedAt */
  sub: string[];
  /** `[a.b][c]` trailing path into the value (never expanded); null when absent */
  member: string[] | null;
  /** `attr{Type1,Type2:path}`: the term continues on the entities the Relationship points to */
  linked: { types: string[]; path: QPath } | null;
}

export interface QTerm {
  type: 'term';
  path: QPath;
  /** null: existence test */
  op: QOp | null;
  operand: QOperand | null;
  /** `!attr`: non-existence (only without operator) */
  negated: boolean;
  /** 0-based offset of the term in the q text, for error messages */
  pos: number;
}

export type QExpr = QTerm | { type: 'and'; items: QExpr[] } | { type: 'or'; items: QExpr[] };

/** Instance keys addressable with a dot that are core members, not sub-attributes, so never expanded. */
export const Q_INSTANCE_KEYS: ReadonlySet<string> = new Set(['observedAt', 'createdAt', 'modifiedAt', 'unitCode', 'datasetId']);

export const Q_LIMITS = { maxLength: 8192, maxDepth: 32, maxTerms: 256, maxListValues: 256 } as const;

// ---------------------------------------------------------------------------------------------
// Parser

function bad(pos: number, msg: string, text: string): never {
  const near = text.slice(pos, pos + 20);
  throw new ProblemError(
    'BadRequestData',
    `Invalid q at position ${pos + 1}: ${msg}` + (pos < text.length ? ` (near '${near}')` : ' (at end of query)'),
  );
}

const isNameStart = (c: string) => /[\p{L}\p{N}_]/u.test(c);
// Characters allowed in an attribute path: terms, compact IRIs and plain IRIs (no operator or logical chars).
const isPathChar = (c: string) => /[\p{L}\p{N}_\-:/#.@%+]/u.test(c);

const NUMBER_RE = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

class Parser {
  pos = 0;
  terms = 0;
  constructor(readonly text: string) {}

  fail(msg: string, at = this.pos): never {
    bad(at, msg, this.text);
  }
  peek(): string {
    return this.text[this.pos] ?? '';
  }
  skipWs(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === ' ' || this.text[this.pos] === '\t')) this.pos++;
  }

  parseOr(depth: number): QExpr {
    const items = [this.parseAnd(depth)];
    for (this.skipWs(); this.peek() === '|'; this.skipWs()) {
      this.pos++;
      items.push(this.parseAnd(depth));
    }
    return items.length === 1 ? items[0] : { type: 'or', items: flatten('or', items) };
  }

  parseAnd(depth: number): QExpr {
    const items = [this.parseUnit(depth)];
    for (this.skipWs(); this.peek() === ';'; this.skipWs()) {
      this.pos++;
      items.push(this.parseUnit(depth));
    }
    return items.length === 1 ? items[0] : { type: 'and', items: flatten('and', items) };
  }

  parseUnit(depth: number): QExpr {
    this.skipWs();
    const c = this.peek();
    if (c === '(') {
      if (depth >= Q_LIMITS.maxDepth) {
        throw new ProblemError('TooComplexQuery', `q nests parentheses deeper than ${Q_LIMITS.maxDepth} levels`);
      }
      const open = this.pos++;
      const inner = this.parseOr(depth + 1);
      this.skipWs();
      if (this.peek() !== ')') this.fail(this.pos >= this.text.length ? `missing ')' for '(' at position ${open + 1}` : "expected ';', '|' or ')'");
      this.pos++;
      return inner;
    }
    if (c === '') this.fail('expected a query term');
    if (c === ')' || c === ';' || c === '|') this.fail(`expected a query term, found '${c}'`);
    return this.parseTerm();
  }

  parseTerm(): QTerm {
    if (++this.terms > Q_LIMITS.maxTerms) {
      throw new ProblemError('TooComplexQuery', `q has more than ${Q_LIMITS.maxTerms} query terms`);
    }
    const start = this.pos;
    let negated = false;
    if (this.peek() === '!') {
      negated = true;
      this.pos++;
      if (this.peek() === '(') this.fail("'!' can only negate an attribute (existence test), not a group");
    }
    const path = this.parsePath();
    this.skipWs();
    const op = this.parseOp();
    if (op === null) {
      return { type: 'term', path, op: null, operand: null, negated, pos: start };
    }
    if (negated) this.fail(`'!' negates existence and cannot be combined with the operator '${op}'`, start);
    this.skipWs();
    const operand = op === '~=' || op === '!~=' ? this.parseRegex() : this.parseValueOperand(op);
    return { type: 'term', path, op, operand, negated: false, pos: start };
  }

  parsePath(): QPath {
    const start = this.pos;
    while (this.pos < this.text.length && isPathChar(this.text[this.pos])) this.pos++;
    const raw = this.text.slice(start, this.pos);
    if (raw === '') {
      const c = this.peek();
      this.fail(c === '' ? 'expected an attribute name' : `expected an attribute name, found '${c}'`);
    }
    const names = splitDotted(raw);
    let at = start;
    for (const n of names) {
      if (n === '' || !isNameStart(n[0])) this.fail(`'${raw}' is not a valid attribute path`, at);
      at += n.length + 1;
    }
    for (let i = 1; i < names.length - 1; i++) {
      if (Q_INSTANCE_KEYS.has(names[i])) this.fail(`'${names[i]}' must be the last name of the attribute path`, start);
    }
    const path: QPath = { attr: names[0], sub: names.slice(1), member: null, linked: null };
    if (this.peek() === '{') {
      if (path.sub.length > 0) this.fail("a linked-entity path '{...}' can only follow a plain attribute name");
      path.linked = this.parseLinked();
      return path;
    }
    while (this.peek() === '[') {
      const open = this.pos++;
      const close = this.text.indexOf(']', this.pos);
      if (close < 0) this.fail(`missing ']' for '[' at position ${open + 1}`, open);
      const inner = this.text.slice(this.pos, close);
      const keys = inner.split('.');
      if (keys.some((k) => k === '')) this.fail(`empty name in trailing path '[${inner}]'`, open);
      if (/[\[{]/.test(inner)) this.fail(`unexpected character in trailing path '[${inner}]'`, open);
      (path.member ??= []).push(...keys);
      this.pos = close + 1;
    }
    return path;
  }

  parseLinked(): { types: string[]; path: QPath } {
    const open = this.pos++;
    // EntityType 1*(,EntityType) ':' before the attribute: a type hint (names in braces are terms).
    let types: string[] = [];
    const m = /^([\p{L}\p{N}_]+(?:,[\p{L}\p{N}_]+)*):(?=[\p{L}\p{N}_])/u.exec(this.text.slice(this.pos));
    if (m) {
      types = m[1].split(',');
      this.pos += m[0].length;
    }
    const path = this.parsePath();
    if (this.peek() !== '}') this.fail(this.pos >= this.text.length ? `missing '}' for '{' at position ${open + 1}` : "expected '}'");
    this.pos++;
    return { types, path };
  }

  parseOp(): QOp | null {
    const t = this.text;
    const p = this.pos;
    const two = t.slice(p, p + 2);
    let op: QOp | null = null;
    if (t.startsWith('!~=', p)) op = '!~=';
    else if (two === '==' || two === '!=' || two === '>=' || two === '<=' || two === '~=') op = two;
    else if (two[0] === '>' || two[0] === '<') op = two[0];
    if (op) {
      this.pos += op.length;
      return op;
    }
    const c = this.peek();
    if (c === '' || c === ';' || c === '|' || c === ')') return null;
    if (c === '=') this.fail("unknown operator '=' (use '==')");
    if (c === '!' || c === '~') this.fail(`unknown operator starting with '${c}' (expected ==, !=, ~= or !~=)`);
    this.fail(`unexpected '${c}' after the attribute path (expected an operator, ';', '|' or ')')`);
  }

  parseRegex(): QOperand {
    const start = this.pos;
    let source: string;
    if (this.peek() === '"') {
      // Quoted: backslashes stay as regex escapes, only \" is unescaped.
      let i = this.pos + 1;
      let out = '';
      for (; i < this.text.length; i++) {
        const c = this.text[i];
        if (c === '\\' && this.text[i + 1] === '"') { out += '"'; i++; continue; }
        if (c === '\\' && i + 1 < this.text.length) { out += c + this.text[++i]; continue; }
        if (c === '"') break;
        out += c;
      }
      if (i >= this.text.length) this.fail('unterminated quoted regular expression', start);
      this.pos = i + 1;
      source = out;
    } else {
      // Unquoted: runs to a ';', '|' or ')' outside any group/class of the pattern itself.
      let depth = 0;
      let inClass = false;
      let i = this.pos;
      for (; i < this.text.length; i++) {
        const c = this.text[i];
        if (c === '\\') { i++; continue; }
        if (inClass) { if (c === ']') inClass = false; continue; }
        if (c === '[') inClass = true;
        else if (c === '(') depth++;
        else if (c === ')') { if (depth === 0) break; depth--; }
        else if ((c === ';' || c === '|') && depth === 0) break;
      }
      source = this.text.slice(this.pos, i);
      this.pos = i;
    }
    if (source === '') this.fail('missing regular expression after the pattern operator', start);
    try {
      new RegExp(source);
    } catch (e) {
      this.fail(`invalid regular expression: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`, start);
    }
    toPosixRegex(source, (msg) => this.fail(`unsupported regular expression: ${msg}`, start));
    return { kind: 'regex', source };
  }

  parseValueOperand(op: QOp): QOperand {
    const start = this.pos;
    const first = this.parseScalar();
    const ordering = op !== '==' && op !== '!=';
    if (this.text.startsWith('..', this.pos)) {
      this.pos += 2;
      const second = this.parseScalar();
      if (ordering) this.fail(`a range can only be used with '==' or '!=', not '${op}'`, start);
      checkComparable(first, this, start);
      if (first.kind !== second.kind) this.fail(`both ends of a range must be of the same type (${first.kind} .. ${second.kind})`, start);
      return { kind: 'range', min: first, max: second };
    }
    this.skipWs();
    if (this.peek() === ',') {
      const values = [first];
      while (this.peek() === ',') {
        this.pos++;
        this.skipWs();
        values.push(this.parseScalar());
        if (values.length > Q_LIMITS.maxListValues) {
          throw new ProblemError('TooComplexQuery', `q value list has more than ${Q_LIMITS.maxListValues} values`);
        }
        this.skipWs();
      }
      if (ordering) this.fail(`a value list can only be used with '==' or '!=', not '${op}'`, start);
      return { kind: 'list', values };
    }
    if (ordering) {
      if (first.kind === 'boolean') this.fail(`'${op}' needs a number, string, date, datetime or time, not a boolean`, start);
      checkComparable(first, this, start);
    }
    const c = this.peek();
    if (c !== '' && c !== ';' && c !== '|' && c !== ')') this.fail(`unexpected '${c}' after the value`);
    return { kind: 'value', value: first };
  }

  parseScalar(): QScalar {
    const start = this.pos;
    if (this.peek() === '"') return typeString(this.parseQuoted(), true);
    let i = this.pos;
    while (i < this.text.length) {
      const c = this.text[i];
      if (c === ';' || c === '|' || c === ',' || c === '(' || c === ')' || c === ' ' || c === '"') break;
      if (c === '.' && this.text[i + 1] === '.') break;
      i++;
    }
    const tok = this.text.slice(this.pos, i);
    if (tok === '') this.fail(this.pos >= this.text.length ? 'missing value after the operator' : `expected a value, found '${this.peek()}'`, start);
    this.pos = i;
    if (tok === 'true' || tok === 'false') return { kind: 'boolean', value: tok === 'true' };
    if (NUMBER_RE.test(tok)) {
      const n = Number(tok);
      if (!Number.isFinite(n)) this.fail(`number '${tok}' is out of range`, start);
      return { kind: 'number', value: n };
    }
    if (/^[-+.0-9]/.test(tok) && !/[:T]/.test(tok) && instantMs(tok) === null) this.fail(`'${tok}' is not a valid number or date`, start);
    return typeString(tok, false);
  }

  parseQuoted(): string {
    const start = this.pos;
    let out = '';
    let i = this.pos + 1;
    for (; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === '"') break;
      if (c !== '\\') { out += c; continue; }
      const e = this.text[++i];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const hex = this.text.slice(i + 1, i + 5);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape in string', i - 1);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        case undefined: this.fail('unterminated string', start); break;
        default: this.fail(`invalid escape '\\${e}' in string`, i - 1);
      }
    }
    if (i >= this.text.length) this.fail('unterminated string (missing closing \'"\')', start);
    this.pos = i + 1;
    return out;
  }
}

function checkComparable(v: QScalar, p: Parser, at: number): void {
  if (v.kind === 'boolean') p.fail('a boolean cannot be used in a range or an ordering comparison', at);
  if (v.kind === 'string' && !v.quoted) {
    p.fail(`'${v.value}' must be a number, a date/time or a quoted string for an ordering comparison or range`, at);
  }
}

function typeString(s: string, quoted: boolean): QScalar {
  const ms = instantMs(s);
  if (ms !== null) return { kind: 'instant', value: s, ms };
  const t = timeMs(s);
  if (t !== null) return { kind: 'time', value: s, ms: t };
  return { kind: 'string', value: s, quoted };
}

function flatten(kind: 'and' | 'or', items: QExpr[]): QExpr[] {
  const out: QExpr[] = [];
  for (const it of items) {
    if (it.type === kind) out.push(...it.items);
    else out.push(it);
  }
  return out;
}

/**
 * Splits a dotted attribute path. Plain IRIs contain dots (host names, versions), so when the
 * path contains '/' or '#' the dots up to the last of those belong to the attribute IRI; only
 * the attribute itself may then be an IRI, sub-attributes are given as terms.
 */
function splitDotted(raw: string): string[] {
  const cut = Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('#'));
  if (cut < 0) return raw.split('.');
  const dot = raw.indexOf('.', cut);
  if (dot < 0) return [raw];
  return [raw.slice(0, dot), ...raw.slice(dot + 1).split('.')];
}

/**
 * Parses an NGSI-LD q expression (already URL-decoded). `;` (AND) binds tighter than `|` (OR).
 * Throws ProblemError BadRequestData on syntax errors, TooComplexQuery past the limits.
 */
export function parseQ(text: string): QExpr {
  if (typeof text !== 'string') throw new ProblemError('BadRequestData', 'q must be a string');
  if (text.length > Q_LIMITS.maxLength) {
    throw new ProblemError('TooComplexQuery', `q is longer than ${Q_LIMITS.maxLength} characters`);
  }
  if (text.trim() === '') throw new ProblemError('BadRequestData', 'q must not be empty');
  const p = new Parser(text);
  const expr = p.parseOr(0);
  p.skipWs();
  if (p.pos < text.length) {
    const c = text[p.pos];
    p.fail(c === ')' ? "unbalanced ')'" : `unexpected '${c}'`);
  }
  return expr;
}

// ---------------------------------------------------------------------------------------------
// Regex dialect bridge: JS RegExp is the reference (evaluator); PostgreSQL ARE runs in SQL.

/**
 * Translates a JS pattern (no flags) to an equivalent PostgreSQL ARE, rejecting the constructs
 * whose meaning differs between the two so that SQL and the evaluator never disagree silently.
 */
export function toPosixRegex(src: string, reject: (msg: string) => never = (m) => { throw new ProblemError('BadRequestData', `unsupported regular expression: ${m}`); }): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '\\') {
      const n = src[++i];
      if (n === undefined) reject('trailing backslash');
      if (/[0-9]/.test(n)) { out += '\\' + n; continue; }
      if ('dsw'.includes(n)) { out += '\\' + n; continue; }
      if ('DSW'.includes(n)) { if (inClass) reject(`'\\${n}' inside a character class`); out += '\\' + n; continue; }
      if ('nrtfv'.includes(n)) { out += '\\' + n; continue; }
      if (n === 'b') { out += inClass ? '\\u0008' : '\\y'; continue; }
      if (n === 'B') { if (inClass) reject("'\\B' inside a character class"); out += '\\Y'; continue; }
      if (n === 'x') {
        const hex = src.slice(i + 1, i + 3);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) reject("'\\x' needs two hex digits");
        out += '\\u00' + hex; i += 2; continue;
      }
      if (n === 'u') {
        const hex = src.slice(i + 1, i + 5);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) reject("'\\u' needs four hex digits");
        out += '\\u' + hex; i += 4; continue;
      }
      if (/[A-Za-z]/.test(n)) reject(`escape '\\${n}'`);
      out += '\\' + n;
      continue;
    }
    if (inClass) {
      if (ch === '[' && /[:.=]/.test(src[i + 1] ?? '')) reject(`'[${src[i + 1]}' inside a character class`);
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      if (src[i + 1] === '^') { out += '^'; i++; }
      if (src[i + 1] === ']') reject("empty character class '[]' or '[^]'");
      continue;
    }
    // JS '.' does not match line terminators; ARE's does.
    if (ch === '.') { out += '[^\\n\\r\\u2028\\u2029]'; continue; }
    if (ch === '(' && src[i + 1] === '?') {
      const a = src[i + 2];
      const b = src[i + 3];
      if (!(a === ':' || a === '=' || a === '!' || (a === '<' && (b === '=' || b === '!')))) reject('named groups and inline flags');
    }
    if (ch === '{' && !/^\{[0-9]+(,[0-9]*)?\}/.test(src.slice(i))) reject("a literal '{' (escape it as '\\{')");
    out += ch;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Resolution

export interface ResolvedPath {
  /** expanded attribute IRI */
  attr: string;
  /** expanded sub-attribute IRIs, in order */
  sub: string[];
  /** final core instance key (observedAt, unitCode, ...) when the dotted path ends with one */
  leafKey: string | null;
  member: string[] | null;
  /** the entity's own createdAt / modifiedAt, addressed as a top-level attribute */
  system: 'createdAt' | 'modifiedAt' | null;
  linked: { types: string[]; path: ResolvedPath } | null;
}

type CandTest = (c: unknown) => boolean;

export interface ResolvedTerm {
  type: 'term';
  path: ResolvedPath;
  op: QOp | null;
  operand: QOperand | null;
  negated: boolean;
  pos: number;
  /** precomputed candidate predicate (== / ordering / pattern), so evaluation allocates nothing */
  test: CandTest | null;
  regex: RegExp | null;
}

export type ResolvedNode = ResolvedTerm | { type: 'and'; items: ResolvedNode[] } | { type: 'or'; items: ResolvedNode[] };

/** A q expression whose names are expanded IRIs; only resolveQ builds one. */
export interface ResolvedQ {
  readonly resolved: true;
  readonly root: ResolvedNode;
}

export interface ResolveQOptions {
  /**
   * Attributes (terms or IRIs, as in the `expandValues` parameter) whose string query values are
   * expanded with `expandTerm` before comparison (EXAMPLE 12 of clause 4.9), e.g. VocabProperty
   * values. Without it, values are compared verbatim.
   */
  expandValues?: Iterable<string>;
}

/**
 * Expands attribute, sub-attribute and linked type names to IRIs. Keys inside `[ ]` and the core
 * instance keys (observedAt, createdAt, modifiedAt, unitCode, datasetId) are left as they are.
 */
export function resolveQ(expr: QExpr, expandTerm: (term: string) => string, opts?: ResolveQOptions): ResolvedQ {
  const expandSet = new Set<string>();
  if (opts?.expandValues) for (const t of opts.expandValues) expandSet.add(expandTerm(t));
  const node = (e: QExpr): ResolvedNode => {
    if (e.type !== 'term') return { type: e.type, items: e.items.map(node) };
    const path = resolvePath(e.path, expandTerm, true);
    let operand = e.operand;
    if (operand && operand.kind !== 'regex' && expandSet.has(innermost(path).attr)) operand = expandOperand(operand, expandTerm);
    return {
      type: 'term',
      path,
      op: e.op,
      operand,
      negated: e.negated,
      pos: e.pos,
      test: e.op && operand ? buildTest(e.op, operand) : null,
      regex: operand?.kind === 'regex' ? new RegExp(operand.source) : null,
    };
  };
  return { resolved: true, root: node(expr) };
}

function innermost(p: ResolvedPath): ResolvedPath {
  while (p.linked) p = p.linked.path;
  return p;
}

function resolvePath(p: QPath, expandTerm: (t: string) => string, top: boolean): ResolvedPath {
  const attr = expandTerm(p.attr);
  const last = p.sub.length > 0 ? p.sub[p.sub.length - 1] : null;
  const leafKey = last !== null && Q_INSTANCE_KEYS.has(last) ? last : null;
  const subs = leafKey ? p.sub.slice(0, -1) : p.sub;
  let system: ResolvedPath['system'] = null;
  if (top && p.sub.length === 0 && !p.member && !p.linked) {
    if (attr === IRI.createdAt || p.attr === 'createdAt') system = 'createdAt';
    else if (attr === IRI.modifiedAt || p.attr === 'modifiedAt') system = 'modifiedAt';
  }
  return {
    attr,
    sub: subs.map(expandTerm),
    leafKey,
    member: p.member,
    system,
    linked: p.linked ? { types: p.linked.types.map(expandTerm), path: resolvePath(p.linked.path, expandTerm, false) } : null,
  };
}

function expandOperand(o: QOperand, expandTerm: (t: string) => string): QOperand {
  const ex = (v: QScalar): QScalar => (v.kind === 'string' ? { ...v, value: expandTerm(v.value) } : v);
  switch (o.kind) {
    case 'value': return { kind: 'value', value: ex(o.value) };
    case 'list': return { kind: 'list', values: o.values.map(ex) };
    case 'range': return { kind: 'range', min: ex(o.min), max: ex(o.max) };
    default: return o;
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** Typed-value unwrapping: `{"@type": "DateTime", "@value": "..."}` compares as its @value. */
function unwrap(c: unknown): unknown {
  if (c !== null && typeof c === 'object' && !Array.isArray(c)) {
    const v = (c as Record<string, unknown>)['@value'];
    if (typeof v === 'string') return v;
  }
  return c;
}

/** -1/0/1, or NaN when the candidate's type differs from the query value's (never matches). */
function compare(c: unknown, v: QScalar): number {
  switch (v.kind) {
    case 'number':
      return typeof c === 'number' ? (c < v.value ? -1 : c > v.value ? 1 : 0) : NaN;
    case 'boolean':
      return c === v.value ? 0 : NaN;
    case 'string':
      return typeof c === 'string' ? (c < v.value ? -1 : c > v.value ? 1 : 0) : NaN;
    case 'instant': {
      const ms = typeof c === 'string' ? instantMs(c) : null;
      return ms === null ? NaN : ms < v.ms ? -1 : ms > v.ms ? 1 : 0;
    }
    case 'time': {
      const ms = typeof c === 'string' ? timeMs(c) : null;
      return ms === null ? NaN : ms < v.ms ? -1 : ms > v.ms ? 1 : 0;
    }
  }
}

function buildTest(op: QOp, o: QOperand): CandTest | null {
  if (o.kind === 'regex') {
    const re = new RegExp(o.source);
    return (c) => { const u = unwrap(c); return typeof u === 'string' && re.test(u); };
  }
  if (op === '==' || op === '!=') {
    if (o.kind === 'value') { const v = o.value; return (c) => compare(unwrap(c), v) === 0; }
    if (o.kind === 'list') {
      const vs = o.values;
      return (c) => { const u = unwrap(c); for (let i = 0; i < vs.length; i++) if (compare(u, vs[i]) === 0) return true; return false; };
    }
    const { min, max } = o;
    return (c) => { const u = unwrap(c); return compare(u, min) >= 0 && compare(u, max) <= 0; };
  }
  if (o.kind !== 'value') return null;
  const v = o.value;
  switch (op) {
    case '>': return (c) => compare(unwrap(c), v) > 0;
    case '>=': return (c) => compare(unwrap(c), v) >= 0;
    case '<': return (c) => compare(unwrap(c), v) < 0;
    case '<=': return (c) => compare(unwrap(c), v) <= 0;
  }
  return null;
}

export interface EvaluateQOptions {
  /** language used for LanguageProperty targets without a `[lang]` path (the `lang` parameter) */
  lang?: string;
  /** loads the target of a Relationship, for linked-entity terms `rel{attr}`; without it they never match */
  getEntity?: (id: string) => StoredEntity | undefined;
}

/** `obj[key]` as PostgreSQL's `#>` does it: objects by key, arrays by integer index (negative from the end). */
function member(v: unknown, keys: string[], from: number): unknown {
  for (let i = from; i < keys.length; i++) {
    if (v === null || typeof v !== 'object') return undefined;
    const k = keys[i];
    if (Array.isArray(v)) {
      if (!/^-?[0-9]+$/.test(k)) return undefined;
      let n = Number(k);
      if (n < 0) n += v.length;
      v = n >= 0 && n < v.length ? v[n] : undefined;
    } else {
      v = Object.prototype.hasOwnProperty.call(v, k) ? (v as Record<string, unknown>)[k] : undefined;
    }
  }
  return v;
}

const ANY_LANG: unique symbol = Symbol('anyLanguage');

/** Base target of an element: the value the term compares, or undefined when not defined. */
function baseOf(el: Record<string, unknown>, path: ResolvedPath, lang: string | undefined): unknown {
  const m = path.member;
  switch (el.type) {
    case 'LanguageProperty': {
      const map = el.languageMap as Record<string, unknown> | undefined;
      if (map === undefined || map === null || typeof map !== 'object' || Array.isArray(map)) return undefined;
      const key = m ? m[0] : lang;
      if (key === undefined || key === '*') return m && m.length > 1 ? undefined : ANY_LANG;
      const v = Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
      return m && m.length > 1 ? member(v, m, 1) : v;
    }
    case 'Relationship': return m ? member(el.object, m, 0) : el.object;
    case 'ListRelationship': return m ? member(el.objectList, m, 0) : el.objectList;
    case 'VocabProperty': return m ? member(el.vocab, m, 0) : el.vocab;
    case 'ListProperty': return m ? member(el.valueList, m, 0) : el.valueList;
    case 'JsonProperty': return m ? member(el.json, m, 0) : el.json;
    default: return m ? member(el.value, m, 0) : el.value;
  }
}

function anyCandidate(base: unknown, el: Record<string, unknown>, test: CandTest): boolean {
  if (base === ANY_LANG) {
    const map = el.languageMap as Record<string, unknown>;
    for (const k in map) if (anyCandidate(map[k], el, test)) return true;
    return false;
  }
  if (Array.isArray(base)) {
    for (let i = 0; i < base.length; i++) if (test(base[i])) return true;
    return false;
  }
  return test(base);
}

const isString = (c: unknown) => typeof unwrap(c) === 'string';

/** One instance (or the entity itself for system attributes) against a non-linked term. */
function instanceMatches(t: ResolvedTerm, inst: Record<string, unknown>, path: ResolvedPath, opts: EvaluateQOptions | undefined): boolean {
  let el: unknown = inst;
  for (let i = 0; i < path.sub.length; i++) {
    el = (el as Record<string, unknown>)[path.sub[i]];
    if (el === null || typeof el !== 'object' || Array.isArray(el)) return false;
  }
  let base: unknown;
  let isRel = false;
  if (path.leafKey !== null) {
    el = (el as Record<string, unknown>)[path.leafKey];
    if (el === undefined) return false;
    base = path.member ? member(el, path.member, 0) : el;
  } else {
    const obj = el as Record<string, unknown>;
    isRel = obj.type === 'Relationship' || obj.type === 'ListRelationship';
    base = baseOf(obj, path, opts?.lang);
  }
  if (t.op === null) return path.member ? base !== undefined : true;
  if (base === undefined) return false;
  const test = t.test;
  const host = el as Record<string, unknown>;
  switch (t.op) {
    case '==': return test !== null && anyCandidate(base, host, test);
    case '!=': return test !== null && !anyCandidate(base, host, test);
    case '~=': return !isRel && test !== null && anyCandidate(base, host, test);
    case '!~=': return !isRel && test !== null && anyCandidate(base, host, isString) && !anyCandidate(base, host, test);
    default: return !isRel && test !== null && anyCandidate(base, host, test);
  }
}

function pathMatches(t: ResolvedTerm, entity: StoredEntity, path: ResolvedPath, opts: EvaluateQOptions | undefined, depth: number): boolean {
  if (path.system !== null) {
    const v = path.system === 'createdAt' ? entity.createdAt : entity.modifiedAt;
    return instanceMatches(t, SYSTEM_HOLDER(v), SYSTEM_PATH, opts);
  }
  const insts = entity.attrs[path.attr];
  if (!insts) return false;
  if (path.linked) {
    const get = opts?.getEntity;
    if (!get || depth > Q_LIMITS.maxDepth) return false;
    const { types, path: inner } = path.linked;
    for (let i = 0; i < insts.length; i++) {
      const inst = insts[i];
      const ids = inst.type === 'ListRelationship' ? inst.objectList : inst.type === 'Relationship' ? inst.object : undefined;
      if (ids === undefined) continue;
      const list = Array.isArray(ids) ? ids : [ids];
      for (let j = 0; j < list.length; j++) {
        const target = get(list[j]);
        if (!target) continue;
        if (types.length > 0 && !types.some((ty) => target.type.includes(ty))) continue;
        if (pathMatches(t, target, inner, opts, depth + 1)) return true;
      }
    }
    return false;
  }
  for (let i = 0; i < insts.length; i++) {
    if (instanceMatches(t, insts[i] as Record<string, unknown>, path, opts)) return true;
  }
  return false;
}

// System attributes are evaluated as a leaf value held by a one-key pseudo instance.
const SYSTEM_PATH: ResolvedPath = { attr: '', sub: [], leafKey: 'v', member: null, system: null, linked: null };
const systemHolder = { v: '' as unknown };
function SYSTEM_HOLDER(v: string): Record<string, unknown> {
  systemHolder.v = v;
  return systemHolder;
}

function evalNode(n: ResolvedNode, entity: StoredEntity, opts: EvaluateQOptions | undefined): boolean {
  if (n.type === 'and') {
    for (let i = 0; i < n.items.length; i++) if (!evalNode(n.items[i], entity, opts)) return false;
    return true;
  }
  if (n.type === 'or') {
    for (let i = 0; i < n.items.length; i++) if (evalNode(n.items[i], entity, opts)) return true;
    return false;
  }
  const hit = pathMatches(n, entity, n.path, opts, 0);
  return n.negated ? !hit : hit;
}

/**
 * Whether an entity (stored form) matches. An attribute matches when any of its instances does;
 * a type mismatch between target and query value never matches (so `!=` then matches, as unequal);
 * `!=`/`!~=` need the target to exist; ordering and pattern operators never match Relationships.
 */
export function evaluateQ(q: ResolvedQ, entity: StoredEntity, opts?: EvaluateQOptions): boolean {
  return evalNode(q.root, entity, opts);
}

// ---------------------------------------------------------------------------------------------
// Helpers for the API layer

/** Depth of linked-entity traversal the expression needs (0: none), to check against joinLevel. */
export function qLinkedDepth(expr: QExpr | ResolvedQ): number {
  const pathDepth = (p: QPath | ResolvedPath): number => (p.linked ? 1 + pathDepth(p.linked.path) : 0);
  const walk = (n: QExpr | ResolvedNode): number =>
    n.type === 'term' ? pathDepth(n.path) : n.items.reduce((m, it) => Math.max(m, walk(it)), 0);
  return walk('resolved' in expr ? expr.root : expr);
}

/** Top-level attribute IRIs referenced (for watchedAttributes defaults and "too wide" checks). */
export function qAttributes(q: ResolvedQ): Set<string> {
  const out = new Set<string>();
  const walk = (n: ResolvedNode): void => {
    if (n.type === 'term') out.add(n.path.attr);
    else n.items.forEach(walk);
  };
  walk(q.root);
  return out;
}

// ---------------------------------------------------------------------------------------------
// SQL

export interface QToSqlOptions {
  /** language for LanguageProperty targets without `[lang]` */
  lang?: string;
  /** text columns holding the entity's createdAt / modifiedAt; default: created_at / modified_at next to attrsColumn */
  createdAtColumn?: string;
  modifiedAtColumn?: string;
}

interface SqlCtx {
  params: unknown[];
  attrs: string;
  created: string;
  modified: string;
  lang: string | undefined;
}

function bind(ctx: SqlCtx, v: unknown): string {
  ctx.params.push(v);
  return `$${ctx.params.length}`;
}

/**
 * Translates a resolved q into a boolean SQL expression over the jsonb column holding
 * StoredEntity.attrs. Every value and name travels as a bind parameter appended to `params`;
 * the SQL text only holds fixed structure. Runs on PostgreSQL 15+ and PGlite without extensions.
 * Linked-entity terms (`rel{attr}`) cannot be expressed over one row: they throw
 * OperationNotSupported, and callers evaluate those in memory with evaluateQ + getEntity.
 */
export function qToSql(q: ResolvedQ, params: unknown[], attrsColumn = 'attrs', opts?: QToSqlOptions): string {
  const dot = attrsColumn.lastIndexOf('.');
  const prefix = dot >= 0 ? attrsColumn.slice(0, dot + 1) : '';
  const ctx: SqlCtx = {
    params,
    attrs: attrsColumn,
    created: opts?.createdAtColumn ?? `${prefix}created_at`,
    modified: opts?.modifiedAtColumn ?? `${prefix}modified_at`,
    lang: opts?.lang,
  };
  return nodeSql(q.root, ctx);
}

function nodeSql(n: ResolvedNode, ctx: SqlCtx): string {
  if (n.type === 'and' || n.type === 'or') {
    return '(' + n.items.map((it) => nodeSql(it, ctx)).join(n.type === 'and' ? ' AND ' : ' OR ') + ')';
  }
  const sql = termSql(n, ctx);
  return n.negated ? `(NOT ${sql})` : sql;
}

const TYPE_IS_REL = `COALESCE(_q_e.el ->> 'type' IN ('Relationship', 'ListRelationship'), false)`;

function termSql(t: ResolvedTerm, ctx: SqlCtx): string {
  const path = t.path;
  if (path.linked) {
    throw new ProblemError('OperationNotSupported', 'linked-entity q terms (attr{...}) are evaluated in memory, not in SQL');
  }
  let rows: string;
  let el: string;
  const leaf = path.leafKey !== null || path.system !== null;
  if (path.system !== null) {
    const col = path.system === 'createdAt' ? ctx.created : ctx.modified;
    rows = `(SELECT to_jsonb((${col})::text) AS x) AS _q_i`;
    el = '_q_i.x';
  } else {
    rows = `jsonb_array_elements(${ctx.attrs} -> ${bind(ctx, path.attr)}) AS _q_i(x)`;
    el = instanceElement(path, ctx);
  }
  const m = path.member ? bind(ctx, path.member) + '::text[]' : null;
  const base = leaf ? (m ? `_q_e.el #> ${m}` : '_q_e.el') : baseSql(path, ctx, m);
  const pred = predicateSql(t, ctx, leaf, m !== null);
  // A sub-attribute is an element only when it is an object (the evaluator's check).
  const isElem = !leaf && path.sub.length > 0 ? ` AND jsonb_typeof(_q_e.el) = 'object'` : '';
  return `EXISTS (SELECT 1 FROM ${rows} CROSS JOIN LATERAL (SELECT ${el} AS el) AS _q_e CROSS JOIN LATERAL (SELECT ${base} AS b) AS _q_b WHERE _q_e.el IS NOT NULL${isElem} AND ${pred})`;
}

/** The element a term addresses within the instance `_q_i.x`. */
function instanceElement(path: ResolvedPath, ctx: SqlCtx): string {
  // an instance's own timestamps may be implied by the row (repository/stored-form.ts)
  if (path.sub.length === 0 && path.leafKey === 'modifiedAt') return `COALESCE(_q_i.x -> 'modifiedAt', to_jsonb(${ctx.modified}))`;
  if (path.sub.length === 0 && path.leafKey === 'createdAt') return `COALESCE(_q_i.x -> 'createdAt', _q_i.x -> 'modifiedAt', to_jsonb(${ctx.modified}))`;
  return `_q_i.x${subChain(path, ctx)}`;
}

function subChain(path: ResolvedPath, ctx: SqlCtx): string {
  let s = '';
  for (const k of path.sub) s += ` -> ${bind(ctx, k)}`;
  if (path.leafKey !== null) s += ` -> ${bind(ctx, path.leafKey)}`;
  return s;
}

function baseSql(path: ResolvedPath, ctx: SqlCtx, m: string | null): string {
  const nav = (x: string) => (m ? `(${x}) #> ${m}` : x);
  const member = path.member;
  let lang: string;
  const anyLang = `jsonb_path_query_array(_q_e.el -> 'languageMap', 'lax $.*[*]')`;
  const key = member ? member[0] : ctx.lang;
  if (key === undefined || key === '*') lang = member && member.length > 1 ? 'NULL::jsonb' : anyLang;
  else {
    const k = bind(ctx, key);
    lang = member && member.length > 1 ? `(_q_e.el -> 'languageMap' -> ${k}::text) #> ${bind(ctx, member.slice(1))}::text[]` : `_q_e.el -> 'languageMap' -> ${k}::text`;
  }
  return (
    `CASE _q_e.el ->> 'type' WHEN 'LanguageProperty' THEN (CASE WHEN jsonb_typeof(_q_e.el -> 'languageMap') = 'object' THEN ${lang} END)` +
    ` WHEN 'Relationship' THEN ${nav("_q_e.el -> 'object'")}` +
    ` WHEN 'ListRelationship' THEN ${nav("_q_e.el -> 'objectList'")}` +
    ` WHEN 'VocabProperty' THEN ${nav("_q_e.el -> 'vocab'")}` +
    ` WHEN 'ListProperty' THEN ${nav("_q_e.el -> 'valueList'")}` +
    ` WHEN 'JsonProperty' THEN ${nav("_q_e.el -> 'json'")}` +
    ` ELSE ${nav("_q_e.el -> 'value'")} END`
  );
}

/** Candidates of the base: its elements when an array, else itself; typed values unwrapped. */
function anyCandSql(cond: string): string {
  return (
    `EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(_q_b.b) WHEN 'array' THEN _q_b.b ELSE jsonb_build_array(_q_b.b) END) AS _q_c0(c0)` +
    ` CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(_q_c0.c0 -> '@value') = 'string' THEN _q_c0.c0 -> '@value' ELSE _q_c0.c0 END AS c) AS _q_c` +
    ` WHERE ${cond})`
  );
}

function predicateSql(t: ResolvedTerm, ctx: SqlCtx, leaf: boolean, hasMember: boolean): string {
  if (t.op === null) return hasMember ? '_q_b.b IS NOT NULL' : 'true';
  const o = t.operand!;
  const notRel = leaf ? 'true' : `NOT ${TYPE_IS_REL}`;
  const defined = '_q_b.b IS NOT NULL';
  if (o.kind === 'regex') {
    const re = bind(ctx, toPosixRegex(o.source));
    const match = `COALESCE(CASE WHEN jsonb_typeof(_q_c.c) = 'string' THEN (_q_c.c #>> '{}') ~ ${re} END, false)`;
    if (t.op === '~=') return `${notRel} AND ${defined} AND ${anyCandSql(match)}`;
    return `${notRel} AND ${defined} AND ${anyCandSql("jsonb_typeof(_q_c.c) = 'string'")} AND NOT ${anyCandSql(match)}`;
  }
  if (t.op === '==' || t.op === '!=') {
    let cond: string;
    if (o.kind === 'value') cond = scalarCmpSql(ctx, o.value, '=');
    else if (o.kind === 'list') cond = '(' + o.values.map((v) => scalarCmpSql(ctx, v, '=')).join(' OR ') + ')';
    else cond = `(${scalarCmpSql(ctx, o.min, '>=')} AND ${scalarCmpSql(ctx, o.max, '<=')})`;
    return t.op === '==' ? `${defined} AND ${anyCandSql(cond)}` : `${defined} AND NOT ${anyCandSql(cond)}`;
  }
  if (o.kind !== 'value') return 'false';
  return `${notRel} AND ${defined} AND ${anyCandSql(scalarCmpSql(ctx, o.value, t.op))}`;
}

/** Type-guarded comparison of the candidate `_q_c.c` with a query scalar; never NULL, never a cast error. */
function scalarCmpSql(ctx: SqlCtx, v: QScalar, op: string): string {
  const c = '_q_c.c';
  const text = `(${c} #>> '{}')`;
  switch (v.kind) {
    case 'number':
      if (op === '=') return `(${c} = ${bind(ctx, JSON.stringify(v.value))}::jsonb)`;
      return `COALESCE(CASE WHEN jsonb_typeof(${c}) = 'number' THEN (${c})::numeric ${op} ${bind(ctx, String(v.value))}::numeric END, false)`;
    case 'boolean':
      return `(${c} = ${bind(ctx, JSON.stringify(v.value))}::jsonb)`;
    case 'string':
      if (op === '=') return `(${c} = ${bind(ctx, JSON.stringify(v.value))}::jsonb)`;
      return `COALESCE(CASE WHEN jsonb_typeof(${c}) = 'string' THEN ${text} COLLATE "C" ${op} ${bind(ctx, v.value)}::text END, false)`;
    case 'instant':
      return `COALESCE(CASE WHEN jsonb_typeof(${c}) = 'string' THEN ${sqlInstantMs(text)} ${op} ${bind(ctx, String(v.ms))}::numeric END, false)`;
    case 'time':
      return `COALESCE(CASE WHEN jsonb_typeof(${c}) = 'string' THEN ${sqlTimeMs(text)} ${op} ${bind(ctx, String(v.ms))}::numeric END, false)`;
  }
}

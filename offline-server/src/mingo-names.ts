/**
 * Field names that JavaScript objects treat specially, carried safely through mingo.
 *
 * In MongoDB `__proto__`, `constructor`, `prototype` and `toString` are ordinary field names
 * (manual, core/document "Field Names"; js-bson deserialises `__proto__` as an own property).
 * mingo, which evaluates aggregation expressions and pipelines here, does not treat them so: it
 * refuses any selector through `__proto__` ("Accessing __proto__ is not allowed"), copies objects
 * with `obj[key] = value` (which drops an own `__proto__` field by setting the copy's prototype),
 * reads `v.constructor` and `v.toString` to classify values (an own `constructor` or `toString`
 * field changes how it compares a document) and skips `Object.prototype` names only when reading.
 *
 * So at every entry into mingo the server renames such fields to a form mingo cannot confuse:
 * the name behind a NUL character (`"\0constructor"`). A BSON field name is a C string and can
 * never contain NUL (bsonspec.org, `e_name ::= cstring`), so the renaming cannot collide with a
 * real field. Documents, `let` variables and literal values are renamed on the way in; field
 * paths (`$a.constructor`), object-expression keys, `$getField`/`$setField`/`$unsetField` field
 * names and stage field names on the way in; results are renamed back on the way out. Stages
 * the server evaluates itself (`$match`, `$sort`) see documents with their real names.
 */
import type { Document } from 'bson';
import { ServerError } from './errors.js';
import { cloneDocumentRenamed, isPlainObject, setField } from './values.js';

const MARK = '\u0000';

/** Names an object inherits or that engines treat specially: every `Object.prototype` name. */
const SPECIAL_NAMES: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(Object.prototype),
  'prototype',
]);

/**
 * Matches a string with a special name as one of its dot-separated components (after leading
 * `$`s): the strings that need renaming. Everything else is returned as it is, without splitting.
 */
const MAY_NAME_SPECIAL = new RegExp(`(?:^\\$*|\\.)(?:${[...SPECIAL_NAMES].join('|')})(?:\\.|$)`);

/** Whether `name` is one of the names renamed for mingo (an `Object.prototype` name). */
export function isSpecialName(name: string): boolean {
  return SPECIAL_NAMES.has(name);
}

export function encodeName(name: string): string {
  return SPECIAL_NAMES.has(name) ? MARK + name : name;
}

export function decodeName(name: string): string {
  return name.charCodeAt(0) === 0 ? name.slice(1) : name;
}

function encodePath(path: string): string {
  if (!MAY_NAME_SPECIAL.test(path)) return path;
  return path.split('.').map(encodeName).join('.');
}

/** `value.map(f)`, but `value` itself when `f` changes no element (copy on first change). */
function mapShared(value: unknown[], f: (element: unknown) => unknown): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    const mapped = f(element);
    if (mapped !== element) {
      out ??= value.slice();
      out[i] = mapped;
    }
  }
  return out ?? value;
}

/**
 * The object with its keys and values mapped; `value` itself when nothing changes, so that the
 * common case (no special name anywhere) allocates nothing: the mapped keys and values are kept
 * only from the first change on.
 */
function mapEntriesShared(
  value: Document,
  key: (name: string) => string,
  f: (v: unknown) => unknown,
): Document {
  const keys = Object.keys(value);
  let entries: [string, unknown][] | undefined;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const v = value[k];
    const nk = key(k);
    const nv = f(v);
    if (entries === undefined && (nk !== k || nv !== v)) {
      entries = [];
      for (let j = 0; j < i; j++) {
        const same = keys[j] as string;
        entries.push([key(same), value[same]]);
      }
    }
    entries?.push([nk, nv]);
  }
  if (entries === undefined) return value;
  const out: Document = {};
  for (const [k, v] of entries) setField(out, k, v);
  return out;
}

/** Renamed keys, sharing every part that has nothing to rename. */
function mapKeys(value: unknown, rename: (name: string) => string): unknown {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return mapShared(v, walk);
    if (!isPlainObject(v)) return v;
    return mapEntriesShared(v, rename, walk);
  };
  return walk(value);
}

/** Renamed keys in a new structure of objects and arrays (leaf values are shared). */
function copyKeys(value: unknown, rename: (name: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => copyKeys(v, rename));
  if (!isPlainObject(value)) return value;
  const out: Document = {};
  for (const [k, v] of Object.entries(value)) setField(out, rename(k), copyKeys(v, rename));
  return out;
}

/**
 * A document or value with its special field names renamed for mingo. Parts without such a
 * name are shared with `value`, and `value` itself is returned when it has none: callers that
 * hand the result to something that mutates it (pipeline stages) pass a copy.
 */
export function encodeValue<T>(value: T): T {
  return mapKeys(value, encodeName) as T;
}

/**
 * A deep copy of a document with its special field names renamed for mingo, in one walk: what
 * a pipeline may mutate (mingo sets fields on the documents it is given).
 */
export function encodeCopy<T>(value: T): T {
  return cloneDocumentRenamed(value, encodeName);
}

/** The inverse of `encodeValue`, for what mingo returns (shares what it need not rename). */
export function decodeValue<T>(value: T): T {
  return mapKeys(value, decodeName) as T;
}

/** `$a.b` field paths and `$$var.a.b` variable paths, renamed after the variable. */
function encodePathString(s: string): string {
  if (!s.startsWith('$') || !MAY_NAME_SPECIAL.test(s)) return s;
  if (s.startsWith('$$')) {
    const [head, ...rest] = s.split('.');
    return [head, ...rest.map(encodeName)].join('.');
  }
  return `$${encodePath(s.slice(1))}`;
}

/** `$getField: {field}` and friends take a constant field name, not a path (mongod 5.0+). */
function encodeFieldNameArg(field: unknown): unknown {
  if (typeof field === 'string') return encodeName(field);
  if (isPlainObject(field) && Object.keys(field).length === 1 && typeof field.$literal === 'string')
    return { $literal: encodeName(field.$literal) };
  return encodeExpression(field);
}

/**
 * An aggregation expression with its field references renamed for mingo. Parts with nothing to
 * rename are shared with `expr`, except `$literal` documents and arrays, which are always new:
 * mingo returns a literal as it is, a later pipeline stage may set a field inside it, and
 * an update evaluates its pipeline once per document.
 */
export function encodeExpression(expr: unknown): unknown {
  if (typeof expr === 'string') return encodePathString(expr);
  if (Array.isArray(expr)) return mapShared(expr, encodeExpression);
  if (!isPlainObject(expr)) return expr;
  const keys = Object.keys(expr);
  const op = keys[0];
  if (keys.length === 1 && op !== undefined && op.startsWith('$')) {
    const arg = expr[op];
    switch (op) {
      case '$literal':
        return isPlainObject(arg) || Array.isArray(arg)
          ? { $literal: copyKeys(arg, encodeName) }
          : expr;
      case '$let':
        if (isPlainObject(arg)) {
          // Variable names are not field names: `$$constructor` refers to vars.constructor.
          const vars: Document = {};
          if (isPlainObject(arg.vars)) {
            for (const [k, v] of Object.entries(arg.vars)) setField(vars, k, encodeExpression(v));
          }
          return { $let: { ...arg, vars, in: encodeExpression(arg.in) } };
        }
        break;
      case '$getField':
      case '$setField':
      case '$unsetField':
        if (typeof arg === 'string') return { [op]: encodeName(arg) };
        if (isPlainObject(arg)) {
          const out = encodeExpression(arg) as Document;
          if (Object.hasOwn(arg, 'field')) out.field = encodeFieldNameArg(arg.field);
          return { [op]: out };
        }
        break;
    }
    const encoded = encodeExpression(arg);
    return encoded === arg ? expr : { [op]: encoded };
  }
  // An object expression (or an operator's named arguments, none of which is a special name).
  return mapEntriesShared(expr, encodePath, encodeExpression);
}

/** Whether a stage spec mentions a special name as a key or a string, anywhere. */
function mentionsSpecialName(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return value
      .replace(/^\$+/, '')
      .split('.')
      .find((part) => SPECIAL_NAMES.has(part));
  }
  if (Array.isArray(value)) {
    for (const v of value) {
      const found = mentionsSpecialName(v);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isPlainObject(value)) return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (SPECIAL_NAMES.has(k)) return k;
    const found = mentionsSpecialName(v);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** One pipeline stage with its field references renamed for mingo. */
function encodeStage(stage: Document): Document {
  const name = Object.keys(stage)[0] as string;
  const spec = stage[name];
  switch (name) {
    // Evaluated by the server itself (query.ts PIPELINE_OVERRIDES) on documents decoded back.
    case '$match':
    case '$sort':
    case '$skip':
    case '$limit':
    case '$sample':
      return stage;
    case '$count':
      return { $count: typeof spec === 'string' ? encodeName(spec) : spec };
    case '$unset':
      return {
        $unset:
          typeof spec === 'string'
            ? encodePath(spec)
            : Array.isArray(spec)
              ? spec.map((s) => (typeof s === 'string' ? encodePath(s) : s))
              : spec,
      };
    case '$unwind': {
      if (!isPlainObject(spec)) return { $unwind: encodeExpression(spec) };
      const out: Document = { ...spec, path: encodeExpression(spec.path) };
      if (typeof spec.includeArrayIndex === 'string')
        out.includeArrayIndex = encodePath(spec.includeArrayIndex);
      return { $unwind: out };
    }
    case '$facet': {
      if (!isPlainObject(spec)) return stage;
      const out: Document = {};
      for (const [k, v] of Object.entries(spec))
        setField(out, encodeName(k), Array.isArray(v) ? encodePipeline(v as Document[]) : v);
      return { $facet: out };
    }
    case '$addFields':
    case '$set':
    case '$project':
    case '$replaceRoot':
    case '$replaceWith':
    case '$group':
    case '$bucket':
    case '$bucketAuto':
    case '$sortByCount':
    case '$redact':
    case '$setWindowFields':
      return { [name]: encodeExpression(spec) };
    default: {
      // Stages whose field-name arguments are not modelled here ($densify, $fill): refuse a
      // special name rather than answer wrongly.
      const found = mentionsSpecialName(spec);
      if (found !== undefined) {
        throw new ServerError(
          2,
          `The offline test server cannot evaluate the field name '${found}' in ${name}`,
        );
      }
      return stage;
    }
  }
}

export function encodePipeline(pipeline: Document[]): Document[] {
  return pipeline.map((stage) => (isPlainObject(stage) ? encodeStage(stage) : stage));
}

/** `let` variables: the names stay, the values are renamed like documents. */
export function encodeVariables(variables: Document | undefined): Document | undefined {
  if (variables === undefined) return undefined;
  const out: Document = {};
  for (const [k, v] of Object.entries(variables)) setField(out, k, encodeValue(v));
  return out;
}

/**
 * Whether `value` needs no renaming either way: no field name at any depth is special (so
 * `encodeValue` returns `value` itself) or begins with the mark (so `decodeValue` would return
 * it itself too). A read-only walk, without the copy `encodeCopy` makes.
 */
export function hasNoRenamedName(value: unknown): boolean {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v === 'object' && v !== null && !hasNoRenamedName(v)) return false;
    }
    return true;
  }
  if (!isPlainObject(value)) return true;
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (k.charCodeAt(0) === 0 || SPECIAL_NAMES.has(k)) return false;
    const v = value[k];
    if (typeof v === 'object' && v !== null && !hasNoRenamedName(v)) return false;
  }
  return true;
}

/**
 * Documents found by `unchangingDocumentHasNoRenamedName` to pass `hasNoRenamedName`. Only
 * documents that nothing mutates afterwards are added: stored documents (the server never
 * changes one in place; every update builds a new version, see update.ts). The answer then
 * holds for the document's life; the set holds it weakly. mingo's `$dateToString` and
 * `$dateFromParts`, which write into an argument document, add no special or marked name.
 */
const WITHOUT_RENAMED_NAMES = new WeakSet<object>();

/**
 * `hasNoRenamedName(doc)` for a document nothing mutates afterwards (a stored document),
 * remembered: the update and the projection of one command, and the next command on the same
 * version, read the document once between them.
 */
export function unchangingDocumentHasNoRenamedName(doc: Document): boolean {
  if (WITHOUT_RENAMED_NAMES.has(doc)) return true;
  if (!hasNoRenamedName(doc)) return false;
  WITHOUT_RENAMED_NAMES.add(doc);
  return true;
}

/** `encodeValue(doc)`, without the walk for a document known to have nothing to rename. */
export function encodeDocument(doc: Document): Document {
  return WITHOUT_RENAMED_NAMES.has(doc) ? doc : encodeValue(doc);
}

/**
 * Whether `decodeValue(value)` would rename anything, when `value` may share parts with `source`,
 * a value for which `hasNoRenamedName` holds and which nothing has mutated since. A part of
 * `value` that is the very object found at the same position in `source` has no marked name,
 * so it is skipped; everything else is read. What mingo returns from a pipeline that leaves its
 * input intact mostly consists of such parts (an unchanged array element, `$$ROOT` itself).
 */
export function hasMarkedNameBeside(value: unknown, source: unknown): boolean {
  if (value === source) return false;
  if (Array.isArray(value)) {
    const paired = Array.isArray(source) ? source : undefined;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v === 'object' && v !== null && hasMarkedNameBeside(v, paired?.[i])) return true;
    }
    return false;
  }
  if (!isPlainObject(value)) return false;
  const paired = isPlainObject(source) ? source : undefined;
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (k.charCodeAt(0) === 0) return true;
    const v = value[k];
    if (
      typeof v === 'object' &&
      v !== null &&
      hasMarkedNameBeside(
        v,
        paired !== undefined && Object.hasOwn(paired, k) ? paired[k] : undefined,
      )
    )
      return true;
  }
  return false;
}

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
import { isPlainObject, setField } from './values.js';

const MARK = '\u0000';

/** Names an object inherits or that engines treat specially: every `Object.prototype` name. */
const SPECIAL_NAMES: ReadonlySet<string> = new Set([
  ...Object.getOwnPropertyNames(Object.prototype),
  'prototype',
]);

export function encodeName(name: string): string {
  return SPECIAL_NAMES.has(name) ? MARK + name : name;
}

export function decodeName(name: string): string {
  return name.charCodeAt(0) === 0 ? name.slice(1) : name;
}

function encodePath(path: string): string {
  return path.split('.').map(encodeName).join('.');
}

function mapKeys(value: unknown, rename: (name: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapKeys(v, rename));
  if (!isPlainObject(value)) return value;
  const out: Document = {};
  for (const [k, v] of Object.entries(value)) setField(out, rename(k), mapKeys(v, rename));
  return out;
}

/** A document or value with its special field names renamed for mingo (a new structure). */
export function encodeValue<T>(value: T): T {
  return mapKeys(value, encodeName) as T;
}

/** The inverse of `encodeValue`, for what mingo returns. */
export function decodeValue<T>(value: T): T {
  return mapKeys(value, decodeName) as T;
}

/** `$a.b` field paths and `$$var.a.b` variable paths, renamed after the variable. */
function encodePathString(s: string): string {
  if (!s.startsWith('$')) return s;
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

/** An aggregation expression with its field references renamed for mingo. */
export function encodeExpression(expr: unknown): unknown {
  if (typeof expr === 'string') return encodePathString(expr);
  if (Array.isArray(expr)) return expr.map(encodeExpression);
  if (!isPlainObject(expr)) return expr;
  const keys = Object.keys(expr);
  const op = keys[0];
  if (keys.length === 1 && op !== undefined && op.startsWith('$')) {
    const arg = expr[op];
    switch (op) {
      case '$literal':
        return { $literal: encodeValue(arg) };
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
    return { [op]: encodeExpression(arg) };
  }
  // An object expression (or an operator's named arguments, none of which is a special name).
  const out: Document = {};
  for (const [k, v] of Object.entries(expr)) setField(out, encodePath(k), encodeExpression(v));
  return out;
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

/**
 * The query language (filters), find projections, sort orders and the upsert equality seed.
 *
 * Filters are matched by our own evaluator rather than mingo's, because MongoDB's semantics hinge
 * on BSON types (ObjectId/Long/Decimal128 equality, type bracketing of `$gt`/`$lt`, null matching
 * missing) and on implicit array traversal, which mingo approximates. Aggregation expressions
 * (`$expr`, pipeline updates, `$project` expressions) are evaluated by mingo with a context whose
 * comparison operators use our BSON order (see `BSON_CONTEXT`).
 *
 * References: https://www.mongodb.com/docs/manual/reference/operator/query/ , mongod
 * `src/mongo/db/matcher/expression_parser.cpp`, `src/mongo/db/matcher/path.cpp`.
 */
import type { Document } from 'bson';
import { Context, evalExpr } from 'mingo/core';
import { type Iterator, Lazy } from 'mingo/lazy';
import * as accumulatorOperators from 'mingo/operators/accumulator';
import * as expressionOperators from 'mingo/operators/expression';
import * as pipelineOperators from 'mingo/operators/pipeline';
import * as projectionOperators from 'mingo/operators/projection';
import * as queryOperators from 'mingo/operators/query';
import * as windowOperators from 'mingo/operators/window';
import type { Options } from 'mingo/types';
import { ErrorCode, ServerError } from './errors.js';
import { BAIL, tryEvaluate } from './expressions.js';
import {
  decodeName,
  decodeValue,
  encodeDocument,
  encodeExpression,
  encodeName,
  encodeVariables,
} from './mingo-names.js';
import {
  addNumbers,
  bsonTypeName,
  canonicalRank,
  compareValues,
  EMPTY_ARRAY_SORT_KEY,
  getField,
  getPathValues,
  isArrayIndex,
  isNumeric,
  isPlainObject,
  multiplyNumbers,
  setField,
  splitPath,
  toDouble,
  valueKey,
  valuesEqual,
} from './values.js';

// =============================================================================================
// Filters

/** Where the last array traversal matched: mongod's "elemMatchKey", used by positional `$`. */
interface MatchDetails {
  index: number | undefined;
}
type Matcher = (doc: unknown, details: MatchDetails | undefined) => boolean;
type ValueTest = (value: unknown) => boolean;

export type CompiledFilter = ((doc: Document) => boolean) & {
  /** Index of the array element the filter matched (positional `$`); undefined when none. */
  readonly positionalIndex: (doc: Document) => number | undefined;
};

const compiledCache = new WeakMap<Document, CompiledFilter>();

/**
 * Compiles a query filter once; the result tests documents. Throws `ServerError` (BadValue) for
 * malformed filters and unknown operators, as mongod does at parse time.
 */
export function compileFilter(filter: Document): CompiledFilter {
  const cached = compiledCache.get(filter);
  if (cached) return cached;
  if (!isPlainObject(filter)) throw badValue('filter must be an object');
  const matcher = compileDocument(pinNow(filter, new Date()) as Document);
  const compiled = Object.assign((doc: Document) => matcher(doc, undefined), {
    positionalIndex: (doc: Document) => {
      const details: MatchDetails = { index: undefined };
      return matcher(doc, details) ? details.index : undefined;
    },
  });
  compiledCache.set(filter, compiled);
  return compiled;
}

function badValue(message: string): ServerError {
  return new ServerError(ErrorCode.BadValue, message);
}

function isOperatorObject(value: unknown): value is Document {
  if (!isPlainObject(value)) return false;
  return (Object.keys(value)[0] ?? '').startsWith('$');
}

function isRegex(value: unknown): boolean {
  return (
    value instanceof RegExp || (value as { _bsontype?: string } | null)?._bsontype === 'BSONRegExp'
  );
}

function compileDocument(filter: Document): Matcher {
  const parts: Matcher[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      const m = compileTopLevel(key, value);
      if (m) parts.push(m);
    } else {
      parts.push(compileField(splitPath(key), value));
    }
  }
  return allOf(parts);
}

function allOf(parts: Matcher[]): Matcher {
  if (parts.length === 1) return parts[0] as Matcher;
  return (doc, details) => parts.every((m) => m(doc, details));
}

function compileTopLevel(op: string, value: unknown): Matcher | undefined {
  switch (op) {
    case '$and':
    case '$or':
    case '$nor': {
      if (!Array.isArray(value) || value.length === 0) {
        throw badValue(`${op} argument must be a non-empty array`);
      }
      const children = value.map((child) => {
        if (!isPlainObject(child)) throw badValue(`${op} argument's entries must be objects`);
        return compileDocument(child);
      });
      if (op === '$and') return allOf(children);
      if (op === '$or') return (doc, details) => children.some((m) => m(doc, details));
      return (doc) => !children.some((m) => m(doc, undefined));
    }
    case '$expr': {
      return (doc) => coerceToBool(evaluateExpression(doc as Document, value));
    }
    case '$comment':
      return undefined;
    case '$alwaysTrue':
      return () => true;
    case '$alwaysFalse':
      return () => false;
    case '$where':
    case '$text':
    case '$jsonSchema':
    case '$sampleRate':
      throw badValue(`${op} is not supported by the offline test server`);
    default:
      throw badValue(`unknown top level operator: ${op}`);
  }
}

/** A field condition: an operator object, a regex, or an equality value. */
function compileField(path: string[], spec: unknown): Matcher {
  if (isRegex(spec)) return pathMatcher(path, regexTest(toRegExp(spec, undefined)));
  if (isOperatorObject(spec)) return compileOperators(path, spec);
  return pathMatcher(path, equalityTest(spec));
}

/**
 * Visits every value a path reaches, with mongod's implicit array traversal: an array met before
 * the end of the path contributes each object element (and, for a numeric component, the indexed
 * element); a missing field is visited as `undefined`; an array at the end of the path is visited
 * element by element and then whole (when `expandLeaf`). `index` is the position in the first
 * array traversed, reported for positional `$`.
 */
function traverse(
  value: unknown,
  path: readonly string[],
  i: number,
  index: number | undefined,
  expandLeaf: boolean,
  visit: (value: unknown, index: number | undefined) => boolean,
): boolean {
  if (i === path.length) {
    if (expandLeaf && Array.isArray(value)) {
      for (let k = 0; k < value.length; k++) {
        if (visit(value[k], index ?? k)) return true;
      }
    }
    return visit(value, index);
  }
  const part = path[i] as string;
  if (Array.isArray(value)) {
    // Only object elements are searched for the field: `{a: [1]}` has no `a.b`, not even a
    // missing one, so it does not match `{'a.b': null}` (MongoDB ≤ 8.x "legacy" dotted-path null
    // semantics; jstests/core/query/null_query_semantics.js).
    if (isArrayIndex(part) && Number(part) < value.length) {
      if (traverse(value[Number(part)], path, i + 1, index, expandLeaf, visit)) return true;
    }
    for (let k = 0; k < value.length; k++) {
      const element = value[k];
      if (isPlainObject(element) && traverse(element, path, i, index ?? k, expandLeaf, visit))
        return true;
    }
    return false;
  }
  if (isPlainObject(value)) {
    const next = Object.hasOwn(value, part) ? value[part] : undefined;
    if (next === undefined) return visit(undefined, index);
    return traverse(next, path, i + 1, index, expandLeaf, visit);
  }
  return visit(undefined, index);
}

function pathMatcher(path: readonly string[], test: ValueTest, expandLeaf = true): Matcher {
  return (doc, details) =>
    traverse(doc, path, 0, undefined, expandLeaf, (value, index) => {
      if (!test(value)) return false;
      if (details && index !== undefined) details.index = index;
      return true;
    });
}

function not(m: Matcher): Matcher {
  return (doc) => !m(doc, undefined);
}

function equalityTest(target: unknown): ValueTest {
  if (target === null || target === undefined) return (v) => v === null || v === undefined;
  return (v) => v !== undefined && valuesEqual(v, target);
}

/** `$gt`/`$lt`...: values compare only within the same canonical type ("type bracketing"). */
function comparisonTest(op: string, target: unknown): ValueTest {
  const accept =
    op === '$gt'
      ? (c: number) => c > 0
      : op === '$gte'
        ? (c: number) => c >= 0
        : op === '$lt'
          ? (c: number) => c < 0
          : (c: number) => c <= 0;
  const targetRank = canonicalRank(target);
  // MinKey and MaxKey compare against every type.
  const bracketFree = targetRank === -1 || targetRank === 127;
  const targetNaN = isNumeric(target) && Number.isNaN(toDouble(target));
  return (v) => {
    const value = v === undefined ? null : v;
    if (!bracketFree && canonicalRank(value) !== targetRank) return false;
    if (isNumeric(value) && (targetNaN || Number.isNaN(toDouble(value)))) {
      // NaN only matches NaN, and only through the inclusive operators.
      return targetNaN && Number.isNaN(toDouble(value)) && (op === '$gte' || op === '$lte');
    }
    return accept(compareValues(value, target));
  };
}

function inTest(op: string, list: unknown): ValueTest {
  if (!Array.isArray(list)) throw badValue(`${op} needs an array`);
  const keys = new Set<string>();
  const regexes: ValueTest[] = [];
  let matchesNull = false;
  for (const item of list) {
    if (isRegex(item)) regexes.push(regexTest(toRegExp(item, undefined)));
    else if (isOperatorObject(item)) throw badValue(`cannot nest $ under ${op}`);
    else if (item === null) matchesNull = true;
    else keys.add(valueKey(item));
  }
  return (v) => {
    if (v === undefined || v === null) return matchesNull;
    return keys.has(valueKey(v)) || regexes.some((t) => t(v));
  };
}

const TYPE_ALIASES: Record<string, number> = {
  double: 1,
  string: 2,
  object: 3,
  array: 4,
  binData: 5,
  undefined: 6,
  objectId: 7,
  bool: 8,
  date: 9,
  null: 10,
  regex: 11,
  dbPointer: 12,
  javascript: 13,
  symbol: 14,
  javascriptWithScope: 15,
  int: 16,
  timestamp: 17,
  long: 18,
  decimal: 19,
  minKey: -1,
  maxKey: 127,
};
const TYPE_NAMES_BY_CODE = new Map(
  Object.entries(TYPE_ALIASES).map(([name, code]) => [code, name]),
);

function typeTest(spec: unknown): ValueTest {
  const names = (Array.isArray(spec) ? spec : [spec]).map((t): string => {
    if (t === 'number') return 'number';
    if (typeof t === 'string') {
      if (!Object.hasOwn(TYPE_ALIASES, t)) throw badValue(`Unknown type name alias: ${t}`);
      return t;
    }
    if (isNumeric(t)) {
      const name = TYPE_NAMES_BY_CODE.get(toDouble(t));
      if (!name) throw badValue(`Invalid numerical type code: ${toDouble(t)}`);
      return name;
    }
    throw badValue('type must be represented as a number or a string');
  });
  return (v) => {
    if (v === undefined) return false;
    const name = bsonTypeName(v);
    return names.some((n) => n === name || (n === 'number' && isNumeric(v)));
  };
}

/** Builds a JS RegExp from a BSON regex / `$regex` + `$options` (options i, m, s, x, u). */
function toRegExp(pattern: unknown, options: unknown): RegExp {
  let source: string;
  let flags: string;
  if (pattern instanceof RegExp) {
    source = pattern.source;
    flags = pattern.flags.replace(/[gy]/g, '');
  } else if (isRegex(pattern)) {
    source = (pattern as { pattern: string }).pattern;
    flags = (pattern as { options: string }).options;
  } else if (typeof pattern === 'string') {
    source = pattern;
    flags = '';
  } else {
    throw badValue('$regex has to be a string');
  }
  if (options !== undefined) {
    if (typeof options !== 'string') throw badValue('$options has to be a string');
    flags = options;
  }
  for (const f of flags) {
    if (!'imsxu'.includes(f)) throw badValue(`invalid flag in regex options: ${f}`);
  }
  if (flags.includes('x')) {
    // Extended mode: unescaped whitespace and #-comments are ignored.
    source = source.replace(/\\.|#[^\n]*|\s+/g, (m) => (m.startsWith('\\') ? m : ''));
  }
  const jsFlags = [...new Set(flags.replace(/[xu]/g, ''))].join('');
  try {
    return new RegExp(source, `${jsFlags}u`);
  } catch {
    try {
      return new RegExp(source, jsFlags);
    } catch (error) {
      throw new ServerError(51091, `Regular expression is invalid: ${(error as Error).message}`);
    }
  }
}

function regexTest(re: RegExp): ValueTest {
  return (v) => {
    if (typeof v === 'string') return re.test(v);
    if ((v as { _bsontype?: string } | null)?._bsontype === 'BSONSymbol') {
      return re.test(String((v as { value: string }).value));
    }
    // A stored regex matches a query regex with the same pattern and flags.
    return isRegex(v) && valuesEqual(v, re);
  };
}

function compileOperators(path: readonly string[], spec: Document): Matcher {
  const parts: Matcher[] = [];
  if ('$options' in spec && !('$regex' in spec)) throw badValue('$options needs a $regex');
  for (const [op, arg] of Object.entries(spec)) {
    const m = compileOperator(path, op, arg, spec);
    if (m) parts.push(m);
  }
  return allOf(parts);
}

function compileOperator(
  path: readonly string[],
  op: string,
  arg: unknown,
  spec: Document,
): Matcher | undefined {
  switch (op) {
    case '$eq':
      return pathMatcher(path, equalityTest(arg));
    case '$ne':
      return not(pathMatcher(path, equalityTest(arg)));
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      return pathMatcher(path, comparisonTest(op, arg));
    case '$in':
      return pathMatcher(path, inTest(op, arg));
    case '$nin':
      return not(pathMatcher(path, inTest(op, arg)));
    case '$exists': {
      const exists = pathMatcher(path, (v) => v !== undefined, false);
      return coerceToBool(arg) ? exists : not(exists);
    }
    case '$type':
      return pathMatcher(path, typeTest(arg));
    case '$size': {
      if (!isNumeric(arg)) throw badValue('$size needs a number');
      const n = toDouble(arg);
      if (!Number.isInteger(n))
        throw badValue(`Failed to parse $size. Expected an integer, but found ${n}`);
      if (n < 0)
        throw badValue(`Failed to parse $size. Expected a non-negative number in: $size: ${n}`);
      return pathMatcher(path, (v) => Array.isArray(v) && v.length === n, false);
    }
    case '$all': {
      if (!Array.isArray(arg)) throw badValue('$all needs an array');
      if (arg.length === 0) return () => false;
      return allOf(
        arg.map((item) => {
          if (isPlainObject(item) && Object.keys(item)[0] === '$elemMatch') {
            return compileOperators(path, item);
          }
          if (isOperatorObject(item)) throw badValue('no $ expressions in $all');
          return pathMatcher(
            path,
            isRegex(item) ? regexTest(toRegExp(item, undefined)) : equalityTest(item),
          );
        }),
      );
    }
    case '$elemMatch':
      return elemMatchMatcher(path, arg);
    case '$not': {
      if (isRegex(arg)) return not(pathMatcher(path, regexTest(toRegExp(arg, undefined))));
      if (!isPlainObject(arg)) throw badValue('$not needs a regex or a document');
      if (Object.keys(arg).length === 0) throw badValue('$not cannot be empty');
      if (!isOperatorObject(arg)) throw badValue(`unknown operator: ${Object.keys(arg)[0]}`);
      return not(compileOperators(path, arg));
    }
    case '$regex':
      return pathMatcher(path, regexTest(toRegExp(arg, spec.$options)));
    case '$options':
      return undefined;
    case '$mod': {
      if (!Array.isArray(arg)) throw badValue('malformed mod, needs to be an array');
      if (arg.length < 2) throw badValue('malformed mod, not enough elements');
      if (arg.length > 2) throw badValue('malformed mod, too many elements');
      if (!isNumeric(arg[0]) || !isNumeric(arg[1]))
        throw badValue('malformed mod, divisor and remainder must be numbers');
      const divisor = Math.trunc(toDouble(arg[0]));
      const remainder = Math.trunc(toDouble(arg[1]));
      if (divisor === 0) throw badValue('divisor cannot be 0');
      return pathMatcher(path, (v) => {
        if (!isNumeric(v)) return false;
        const n = toDouble(v);
        return Number.isFinite(n) && Math.trunc(n) % divisor === remainder;
      });
    }
    case '$comment':
      return undefined;
    case '$bitsAllSet':
    case '$bitsAllClear':
    case '$bitsAnySet':
    case '$bitsAnyClear':
    case '$near':
    case '$nearSphere':
    case '$geoWithin':
    case '$geoIntersects':
    case '$within':
      throw badValue(`${op} is not supported by the offline test server`);
    default:
      throw badValue(`unknown operator: ${op}`);
  }
}

/**
 * `$elemMatch`: some element of the array matches. With operators at the top (`{$gte: 80}`) the
 * operators apply to the element itself; otherwise the element (an object or array) must match
 * the sub-filter as a document.
 */
function elemMatchMatcher(path: readonly string[], spec: unknown): Matcher {
  if (!isPlainObject(spec)) throw badValue('$elemMatch needs an Object');
  const first = Object.keys(spec)[0] ?? '';
  const valueMode =
    first.startsWith('$') && !['$and', '$or', '$nor', '$expr', '$where'].includes(first);
  const inner: ValueTest = valueMode
    ? (() => {
        const m = compileOperatorsOnValue(spec);
        return (element) => m(element, undefined);
      })()
    : (() => {
        const m = compileDocument(spec);
        return (element) =>
          (isPlainObject(element) || Array.isArray(element)) && m(element, undefined);
      })();
  return (doc, details) =>
    traverse(doc, path, 0, undefined, false, (value, index) => {
      if (!Array.isArray(value)) return false;
      const k = value.findIndex(inner);
      if (k < 0) return false;
      if (details) details.index = index ?? k;
      return true;
    });
}

/** Operators applied to one value directly (no array expansion): `$elemMatch` value mode. */
function compileOperatorsOnValue(spec: Document): Matcher {
  const m = compileOperators([], spec);
  return (value) => m(value, undefined);
}

// =============================================================================================
// Aggregation expressions through mingo, with BSON-correct comparisons.

/** Aggregation truthiness: false, null, missing and numeric zero are false. */
export function coerceToBool(value: unknown): boolean {
  if (value === false || value === null || value === undefined) return false;
  if (isNumeric(value)) return toDouble(value) !== 0;
  return true;
}

type ExprFn = (obj: Document, expr: unknown, options: Options) => unknown;

function twoArgs(name: string, obj: Document, expr: unknown, options: Options): [unknown, unknown] {
  if (!Array.isArray(expr) || expr.length !== 2) {
    throw new ServerError(
      16020,
      `Expression ${name} takes exactly 2 arguments. ${Array.isArray(expr) ? expr.length : 1} were passed in.`,
    );
  }
  const [a, b] = evalExpr(obj, expr, options) as [unknown, unknown];
  return [a, b];
}

/** Aggregation comparisons use the full BSON order (no type bracketing, no array traversal). */
function comparisonExpr(name: string, accept: (c: number) => boolean): ExprFn {
  return (obj, expr, options) => {
    const [a, b] = twoArgs(name, obj, expr, options);
    return accept(compareValues(a, b));
  };
}

/**
 * `$add`/`$multiply`/`$subtract` over numbers keep BSON numeric types (Long, Decimal128,
 * int32 overflow); dates and errors are left to mingo's implementation.
 */
function arithmeticExpr(name: '$add' | '$multiply' | '$subtract'): ExprFn {
  const fallback = (expressionOperators as unknown as Record<string, ExprFn>)[name] as ExprFn;
  return (obj, expr, options) => {
    const args = evalExpr(obj, expr, options);
    if (!Array.isArray(args) || !args.every(isNumeric)) return fallback(obj, expr, options);
    if (name === '$subtract') {
      if (args.length !== 2) return fallback(obj, expr, options);
      return addNumbers(args[0], multiplyNumbers(args[1], -1));
    }
    const combine = name === '$add' ? addNumbers : multiplyNumbers;
    return args.reduce((acc: unknown, v) => combine(acc, v), name === '$add' ? 0 : 1);
  };
}

/** `{ $op: x }` and `{ $op: [x] }` are the same single-argument expression. */
function singleArg(obj: Document, expr: unknown, options: Options): unknown {
  const arg = Array.isArray(expr) && expr.length === 1 ? expr[0] : expr;
  return evalExpr(obj, arg, options);
}

/**
 * An operator the offline server does not implement faithfully, refused naming it (NotImplemented,
 * 238; mongod has no such refusal): never a value mongod would not give.
 */
function refusedOperator(name: string, reason: string): () => never {
  return () => {
    throw new ServerError(
      ErrorCode.NotImplemented,
      `The offline test server does not implement ${name} (${reason})`,
    );
  };
}

/** Server-side JavaScript (`$function`, `$accumulator`) is refused, never run in the server. */
function refusedJavaScript(name: string): () => never {
  return refusedOperator(name, 'server-side JavaScript is never run by the offline test server');
}

/** The arguments 7.0's `$convert` knows (`format` is new in 8.0, `base` in 8.3). */
const CONVERT_ARGUMENTS: ReadonlySet<string> = new Set(['input', 'to', 'onError', 'onNull']);

/**
 * `$convert`'s arguments checked as MongoDB 7.0 parses them (src/mongo/db/pipeline/expression.cpp
 * ExpressionConvert::parse): an object of known names, `input` and `to` required; all
 * FailedToParse (9).
 */
function checkConvertArguments(expr: unknown): void {
  if (!isPlainObject(expr)) {
    throw new ServerError(
      ErrorCode.FailedToParse,
      `$convert expects an object of named arguments but found: ${bsonTypeName(expr)}`,
    );
  }
  for (const key of Object.keys(expr)) {
    if (!CONVERT_ARGUMENTS.has(key)) {
      throw new ServerError(
        ErrorCode.FailedToParse,
        `$convert found an unknown argument: ${decodeName(key)}`,
      );
    }
  }
  for (const required of ['input', 'to']) {
    if (!Object.hasOwn(expr, required)) {
      throw new ServerError(ErrorCode.FailedToParse, `Missing '${required}' parameter to $convert`);
    }
  }
}

function isValidArrayIndex(i: unknown): i is number {
  return Number.isInteger(i) && (i as number) >= 0;
}

const EXPRESSION_OVERRIDES: Record<string, ExprFn> = {
  $convert: (obj, expr, options) => {
    checkConvertArguments(expr);
    return expressionOperators.$convert(
      obj,
      expr as Parameters<typeof expressionOperators.$convert>[1],
      options,
    );
  },
  // mingo's own hash, not mongod's (BSONElementHasher over the value's BSON): refused.
  $toHashedIndexKey: refusedOperator(
    '$toHashedIndexKey',
    "mongod's hash of a value is not computed here",
  ),
  // A client's `$function` body is BSON code or a string, never a JavaScript function: refused.
  // mingo's own `$setWindowFields` evaluates each window through `$function` with a function
  // body of its own, which only mingo can build (BSON decoding yields no functions).
  $function: (obj, expr, options) => {
    if (isPlainObject(expr) && typeof expr.body === 'function') {
      return expressionOperators.$function(obj, expr as never, options);
    }
    return refusedJavaScript('$function')();
  },
  // mingo does not know Long/Decimal128 as numbers or as types.
  $isNumber: (obj, expr, options) => isNumeric(singleArg(obj, expr, options)),
  $type: (obj, expr, options) => bsonTypeName(singleArg(obj, expr, options)),
  $add: arithmeticExpr('$add'),
  $multiply: arithmeticExpr('$multiply'),
  $subtract: arithmeticExpr('$subtract'),
  $eq: comparisonExpr('$eq', (c) => c === 0),
  $ne: comparisonExpr('$ne', (c) => c !== 0),
  $gt: comparisonExpr('$gt', (c) => c > 0),
  $gte: comparisonExpr('$gte', (c) => c >= 0),
  $lt: comparisonExpr('$lt', (c) => c < 0),
  $lte: comparisonExpr('$lte', (c) => c <= 0),
  $cmp: (obj, expr, options) => compareValues(...twoArgs('$cmp', obj, expr, options)),
  $in: (obj, expr, options) => {
    const [item, list] = twoArgs('$in', obj, expr, options);
    if (!Array.isArray(list)) {
      throw new ServerError(
        40081,
        `$in requires an array as a second argument, found: ${bsonTypeName(list)}`,
      );
    }
    return list.some((v) => valuesEqual(v, item));
  },
  // mongod compares the elements like $eq (its value comparator: 2, 2.0, Long(2) and
  // Decimal128('2') are equal); mingo's own $indexOfArray compares JavaScript values, and
  // answers start - 1 instead of -1 when nothing is found after a <start>. A null or missing
  // array, and bad start/end arguments, are left to mingo's operator, as before.
  $indexOfArray: (obj, expr, options) => {
    const args = Array.isArray(expr) ? (evalExpr(obj, expr, options) as unknown[]) : [];
    const [array, search, start = 0, end] = args;
    if (
      !Array.isArray(array) ||
      !isValidArrayIndex(start) ||
      (end !== undefined && !isValidArrayIndex(end))
    ) {
      const literal = Array.isArray(expr) ? args.map((a) => ({ $literal: a })) : expr;
      return expressionOperators.$indexOfArray(obj, literal as unknown[], options);
    }
    const stop = Math.min(end ?? array.length, array.length);
    if (typeof search === 'string') {
      // Two strings compare equal exactly when they are the same string (compareStrings); any
      // other element (a BSON symbol compares as a string too) takes the general comparison.
      for (let i = start; i < stop; i++) {
        const element = array[i];
        if (typeof element === 'string' ? element === search : valuesEqual(element, search))
          return i;
      }
      return -1;
    }
    for (let i = start; i < stop; i++) if (valuesEqual(array[i], search)) return i;
    return -1;
  },
  // Field names become string values and back: keep them real outside the renaming of
  // mingo-names.ts (`{k: "constructor"}`, not the renamed form).
  $objectToArray: (obj, expr, options) => {
    const result = expressionOperators.$objectToArray(obj, expr, options);
    if (!Array.isArray(result)) return result;
    return result.map((e: unknown) =>
      isPlainObject(e) && typeof e.k === 'string' ? { k: decodeName(e.k), v: e.v } : e,
    );
  },
  $arrayToObject: (obj, expr, options) => {
    const input = singleArg(obj, expr, options);
    const renamed = Array.isArray(input)
      ? input.map((item: unknown) => {
          if (Array.isArray(item) && typeof item[0] === 'string')
            return [encodeName(item[0]), ...item.slice(1)];
          if (isPlainObject(item) && typeof item.k === 'string')
            return { ...item, k: encodeName(item.k) };
          return item;
        })
      : input;
    return expressionOperators.$arrayToObject(obj, { $literal: renamed }, options);
  },
};

type AccumulatorFn = (collection: Document[], expr: unknown, options: Options) => unknown;

/** `$min`/`$max` accumulators: BSON order, ignoring null and missing. */
function extremeAccumulator(sign: 1 | -1): AccumulatorFn {
  return (collection, expr, options) => {
    let best: unknown = null;
    // mingo's $push evaluates `expr` per item with the item as $$ROOT (or passes values through).
    for (const v of accumulatorOperators.$push(collection, expr, options) as unknown[]) {
      if (v === null || v === undefined) continue;
      if (best === null || sign * compareValues(v, best) > 0) best = v;
    }
    return best;
  };
}

const ACCUMULATOR_OVERRIDES: Record<string, AccumulatorFn> = {
  $accumulator: refusedJavaScript('$accumulator'),
  // $sum ignores non-numeric values and keeps BSON numeric types.
  $sum: (collection, expr, options) =>
    (accumulatorOperators.$push(collection, expr, options) as unknown[])
      .filter(isNumeric)
      .reduce((acc: unknown, v) => addNumbers(acc, v), 0),
  $min: extremeAccumulator(-1),
  $max: extremeAccumulator(1),
};

type PipelineFn = (collection: Iterator, expr: unknown, options: Options) => Iterator;

const PIPELINE_OVERRIDES: Record<string, PipelineFn> = {
  $match: (collection, expr) => {
    if (!isPlainObject(expr))
      throw new ServerError(15959, 'the match filter must be an expression in an object');
    const test = compileFilter(expr);
    // Documents inside mingo carry renamed special field names (mingo-names.ts).
    return collection.filter((doc: Document) => test(decodeValue(doc)));
  },
  $sort: (collection, expr) => {
    if (!isPlainObject(expr))
      throw new ServerError(15973, 'the $sort key specification must be an object');
    const cmp = compareBySort(expr);
    const pairs = (collection.collect() as Document[]).map((doc): [Document, Document] => [
      decodeValue(doc),
      doc,
    ]);
    return Lazy(pairs.sort((a, b) => cmp(a[0], b[0])).map(([, doc]) => doc));
  },
};

/** mingo's operators with BSON-correct comparison, matching and sorting. */
/**
 * Expressions mingo implements that MongoDB 7.0 does not have (`$sigmoid` is new in 8.2): left
 * out, so that they fail as 7.0 fails them, "Unrecognized expression" (see asServerError).
 */
const LATER_RELEASE_EXPRESSIONS = new Set(['$sigmoid']);

export const BSON_CONTEXT: Context = Context.init({
  accumulator: { ...accumulatorOperators, ...ACCUMULATOR_OVERRIDES },
  expression: Object.fromEntries(
    Object.entries({ ...expressionOperators, ...EXPRESSION_OVERRIDES }).filter(
      ([name]) => !LATER_RELEASE_EXPRESSIONS.has(name),
    ),
  ),
  pipeline: { ...pipelineOperators, ...PIPELINE_OVERRIDES },
  projection: projectionOperators,
  query: queryOperators,
  window: windowOperators,
} as Parameters<typeof Context.init>[0]);

/**
 * The options every evaluation without `let` variables shares, as mingo's own `ComputeOptions`.
 * Handed plain options, mingo copies every operator table of the context (`ComputeOptions.init`
 * → `Context.from`, several hundred operators) for each expression evaluated and each
 * `Aggregator` built: the largest cost of an expression here. Handed a `ComputeOptions`, it
 * copies only the evaluation's locals and shares the options (mingo's documented `init`:
 * "If an instance of ComputeOptions is provided, its internal options and locals are used"),
 * so the evaluation is the same. mingo does not export the class: an operator receives an
 * instance, so one evaluation in a throwaway context hands it over.
 */
const ComputeOptions = (() => {
  const capture = Context.init({
    expression: { $options: (_obj: unknown, _expr: unknown, options: Options) => options },
  } as Parameters<typeof Context.init>[0]);
  const instance = evalExpr({}, { $options: 1 }, { context: capture } as Options) as Options;
  return instance.constructor as unknown as { init(options: Partial<Options>): Options };
})();
const SHARED_OPTIONS: Options = ComputeOptions.init({ context: BSON_CONTEXT });

/** The shared options of each command's `let` variables (built once per command, not per use). */
const letOptions = new WeakMap<Document, Options>();

/**
 * mingo options for evaluating expressions and pipelines: the given (renamed) variables, else the
 * `let` variables of the command being run (`withCommandVariables`), else none.
 */
export function mingoOptions(variables?: Document): Options {
  if (variables) {
    // Given variables (an update statement's constants) come on top of the command's `let`.
    const outer = commandVariables === undefined ? undefined : encodeVariables(commandVariables);
    return { context: BSON_CONTEXT, variables: { ...outer, ...variables } } as Options;
  }
  if (commandVariables === undefined) return SHARED_OPTIONS;
  let options = letOptions.get(commandVariables);
  if (options === undefined) {
    options = ComputeOptions.init({
      context: BSON_CONTEXT,
      variables: encodeVariables(commandVariables) as Document,
    });
    letOptions.set(commandVariables, options);
  }
  return options;
}

/** Evaluates an aggregation expression against a document (`$$ROOT` is the document). */
export function evaluateExpression(doc: Document, expr: unknown, variables?: Document): unknown {
  // The direct evaluator first (expressions.ts): it reads no variable but `$$ROOT`/`$$CURRENT`,
  // which no `let` can define, and answers as the general path below or not at all.
  if (variables === undefined) {
    const direct = tryEvaluate(expr, doc);
    if (direct !== BAIL) return direct;
  }
  return evaluateExpressionThroughMingo(doc, expr, variables);
}

/** The general path of `evaluateExpression`: mingo, with the renaming of mingo-names.ts. */
export function evaluateExpressionThroughMingo(
  doc: Document,
  expr: unknown,
  variables?: Document,
): unknown {
  try {
    const result = evalExpr(
      encodeDocument(doc),
      encodeExpression(expr),
      mingoOptions(encodeVariables(variables)),
    );
    return decodeValue(result);
  } catch (error) {
    throw asServerError(error);
  }
}

/**
 * mingo throws plain errors; surface them as a generic expression failure with its text. An
 * operator mingo does not know (it looks for an expression, then an accumulator, of that name)
 * is what mongod calls an unknown expression: InvalidPipelineOperator (168), "Unrecognized
 * expression '$name'" (src/mongo/db/pipeline/expression.cpp Expression::parseExpression), as
 * 7.0 answers the expressions of later releases (`$toUUID`, new in 8.0).
 */
export function asServerError(error: unknown): ServerError {
  if (error instanceof ServerError) return error;
  const message = (error as Error).message;
  const undefinedVariable = /^Use of undefined variable: (.*)$/.exec(message);
  if (undefinedVariable !== null) {
    // mingo does not know $$CLUSTER_TIME, which mongod defines on a replica set: refuse, never
    // claim that mongod would call it undefined.
    if (undefinedVariable[1] === 'CLUSTER_TIME') {
      return new ServerError(
        ErrorCode.BadValue,
        'The offline test server does not implement the variable $$CLUSTER_TIME',
      );
    }
    // mongod: VariablesParseState::getVariable (src/mongo/db/pipeline/variables.cpp).
    return new ServerError(17276, `Use of undefined variable: ${undefinedVariable[1]}`);
  }
  const unknown = /^accumulator '(\$[^']+)' is not registered\.$/.exec(message);
  if (unknown !== null) {
    return new ServerError(
      ErrorCode.InvalidPipelineOperator,
      `Unrecognized expression '${unknown[1]}'`,
    );
  }
  return new ServerError(ErrorCode.BadValue, `Invalid expression: ${message}`);
}

/**
 * Replaces `$$NOW` / `$$CLUSTER_TIME` with one literal so that every document of one command sees
 * the same value (mongod evaluates them once per command).
 */
export function pinNow<T>(value: T, now: Date): T {
  return pinNowIn(value, now) as T;
}

// Copy on write: a value that does not mention `$$NOW` (the common case) is returned as it is.
// A module function, not a closure made per call (tsx names each closure it creates).
function pinNowIn(v: unknown, now: Date): unknown {
  if (v === '$$NOW') return { $literal: now };
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = pinNowIn(v[i], now);
      if (x !== v[i]) {
        out ??= v.slice();
        out[i] = x;
      }
    }
    return out ?? v;
  }
  if (isPlainObject(v)) {
    if ('$literal' in v) return v;
    let out: Document | undefined;
    const keys = Object.keys(v);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      const x = pinNowIn(v[k], now);
      if (x !== v[k] && out === undefined) {
        out = {};
        for (let j = 0; j < i; j++) setField(out, keys[j] as string, v[keys[j] as string]);
      }
      if (out !== undefined) setField(out, k, x);
    }
    return out ?? v;
  }
  return v;
}

// =============================================================================================
// Command `let` variables

/**
 * The `let` variables of the command being run, by name (values as the client sent them, not
 * renamed). Commands run one at a time and synchronously (server.ts), so one slot suffices:
 * `withCommandVariables` sets it for the length of a handler, and every expression evaluated
 * meanwhile (`$expr` in filters, find projections, pipelines, pipeline updates) sees them.
 */
let commandVariables: Document | undefined;

export function withCommandVariables<T>(variables: Document | undefined, run: () => T): T {
  const outer = commandVariables;
  commandVariables = variables;
  try {
    return run();
  } finally {
    commandVariables = outer;
  }
}

/** System variables a client may not set (mongod: `Variables::kSystemVarValidators`). */
const INTERNAL_CONSTANTS: ReadonlySet<string> = new Set([
  'NOW',
  'CLUSTER_TIME',
  'JS_SCOPE',
  'IS_MR',
  'USER_ROLES',
]);

/**
 * Why `name` is not a user variable name, or undefined when it is (mongod:
 * `variableValidation::isValidNameForUserWrite` / `validateNameForUserRead`,
 * src/mongo/db/pipeline/variable_validation.cpp): a lowercase ASCII letter (to read: of either
 * case) or a non-ASCII character first, then letters, digits, `_` or non-ASCII characters.
 */
function invalidVariableName(name: string, use: 'write' | 'read' = 'write'): string | undefined {
  if (name === '') return 'empty variable names are not allowed';
  const first = name.charCodeAt(0);
  const upper = use === 'read' && first >= 0x41 && first <= 0x5a;
  if (!((first >= 0x61 && first <= 0x7a) || upper || first >= 0x80)) {
    return `'${name}' starts with an invalid character for a user variable name`;
  }
  for (let i = 1; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const valid =
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x5f ||
      c >= 0x80;
    if (!valid) {
      return `'${name}' contains an invalid character for a variable name: '${name[i]}'`;
    }
  }
  return undefined;
}

/**
 * The constants `c` of one update statement (5.0+; manual, command/update: "You can specify c only
 * if u is a pipeline"), taken as they are, not evaluated. mongod (PipelineExecutor) checks each
 * name as one a pipeline may read (`validateNameForUserRead`: a letter of either case or a
 * non-ASCII character first) and defines it over a `let` variable of the same name. Names mingo
 * would read wrongly, or that mongod keeps for itself, are refused naming them.
 */
export function resolveConstants(c: unknown): Document | undefined {
  if (c === undefined || c === null) return undefined;
  if (!isPlainObject(c)) {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      `BSON field 'update.updates.c' is the wrong type '${bsonTypeName(c)}', expected type 'object'`,
    );
  }
  for (const name of Object.keys(c)) {
    if (name === 'this' || BUILTIN_VARIABLES.has(name)) {
      throw new ServerError(
        ErrorCode.BadValue,
        `The offline test server does not implement an update constant named '${name}'`,
      );
    }
    const invalid = invalidVariableName(name, 'read');
    if (invalid !== undefined) throw new ServerError(ErrorCode.FailedToParse, invalid);
  }
  return c;
}

/** mongod's builtin variable names (`Variables::kBuiltinVarNameToId`) and CURRENT. */
const BUILTIN_VARIABLES: ReadonlySet<string> = new Set([
  'ROOT',
  'CURRENT',
  'REMOVE',
  'NOW',
  'CLUSTER_TIME',
  'JS_SCOPE',
  'IS_MR',
  'SEARCH_META',
  'USER_ROLES',
]);

/** True when a `let` expression reads the document: a field path, `$$ROOT` or `$$CURRENT`. */
function readsDocument(expr: unknown): boolean {
  if (typeof expr === 'string') {
    if (!expr.startsWith('$')) return false;
    if (!expr.startsWith('$$')) return true;
    const name = expr.slice(2).split('.')[0];
    return name === 'ROOT' || name === 'CURRENT';
  }
  if (Array.isArray(expr)) return expr.some(readsDocument);
  if (isPlainObject(expr)) {
    if (Object.hasOwn(expr, '$literal')) return false;
    return Object.values(expr).some(readsDocument);
  }
  return false;
}

/**
 * The command's `let` variables (find, aggregate, update, delete, findAndModify; MongoDB 5.0+),
 * as mongod's `Variables::seedVariablesWithLetParameters` (src/mongo/db/pipeline/variables.cpp)
 * makes them: each value is an expression evaluated once, in order, before any document is read
 * (it may use `$$NOW` and the variables defined before it, never a field); a name must be a user
 * variable name. `let: null` is no `let`; anything else that is not an object is TypeMismatch.
 */
export function resolveLet(command: Document): Document | undefined {
  const spec = command.let as unknown;
  if (spec === undefined || spec === null) return undefined;
  const commandName = Object.keys(command)[0] ?? '';
  if (!isPlainObject(spec)) {
    throw new ServerError(
      ErrorCode.TypeMismatch,
      `BSON field '${commandName}.let' is the wrong type '${bsonTypeName(spec)}', expected type 'object'`,
    );
  }
  const now = new Date();
  let variables: Document = {};
  for (const name of Object.keys(spec)) {
    // mingo resolves `$$CURRENT` itself and binds `$$this` to the current document ahead of
    // global variables, so these two names (which mongod lets a client define) would be read
    // wrongly: refused, naming them.
    if (name === 'CURRENT' || name === 'this') {
      throw new ServerError(
        ErrorCode.BadValue,
        `The offline test server does not implement a 'let' variable named '${name}'`,
      );
    }
    const invalid = invalidVariableName(name);
    if (invalid !== undefined) {
      if (INTERNAL_CONSTANTS.has(name)) {
        throw new ServerError(4738901, `Attempt to set internal constant: ${name}`);
      }
      throw new ServerError(
        ErrorCode.FailedToParse,
        `Invalid 'let' parameter :: caused by :: ${invalid}`,
      );
    }
    const expr = spec[name];
    if (readsDocument(expr)) {
      throw new ServerError(
        4890500,
        'Command let Expression tried to access a field, but this is not allowed becauseCommand let Expressions run before the query examines any documents.',
      );
    }
    const value = withCommandVariables(variables, () => evaluateExpression({}, pinNow(expr, now)));
    // A fresh object per step: the options built for one set of variables are cached by identity.
    variables = { ...variables };
    setField(variables, name, value);
  }
  return variables;
}

// =============================================================================================
// Sort

/**
 * The sort key of one document for one field: arrays contribute their smallest element
 * (ascending) or largest (descending); an empty array sorts below null; missing sorts as null.
 */
function sortKey(doc: Document, path: string[], direction: 1 | -1): unknown {
  const values = getPathValues(doc, path);
  if (values.length === 0) return null;
  let best: unknown;
  let found = false;
  for (const v of values) {
    const candidates = Array.isArray(v) ? (v.length === 0 ? [EMPTY_ARRAY_SORT_KEY] : v) : [v];
    for (const c of candidates) {
      if (!found || direction * compareValues(c, best) < 0) {
        best = c;
        found = true;
      }
    }
  }
  return best;
}

/**
 * A comparator for `sort` specs (`{a: 1, 'b.c': -1}`), per
 * https://www.mongodb.com/docs/manual/reference/method/cursor.sort/ . Stable sorts keep the
 * natural order among ties.
 */
export function compareBySort(sort: Document): (a: Document, b: Document) => number {
  const fields = Object.entries(sort).map(([field, dir]): [string[], 1 | -1] => {
    if (isPlainObject(dir) && '$meta' in dir) {
      throw badValue('$meta sort is not supported by the offline test server');
    }
    const n = isNumeric(dir) ? toDouble(dir) : Number.NaN;
    if (n !== 1 && n !== -1) {
      throw new ServerError(
        15975,
        '$sort key ordering must be 1 (for ascending) or -1 (for descending)',
      );
    }
    return [splitPath(field), n];
  });
  const keyCache = new WeakMap<Document, unknown[]>();
  const keysOf = (doc: Document): unknown[] => {
    let keys = keyCache.get(doc);
    if (!keys) {
      keys = fields.map(([path, dir]) => sortKey(doc, path, dir));
      keyCache.set(doc, keys);
    }
    return keys;
  };
  return (a, b) => {
    const ka = keysOf(a);
    const kb = keysOf(b);
    for (let i = 0; i < fields.length; i++) {
      const c = compareValues(ka[i], kb[i]);
      if (c !== 0) return c * (fields[i] as [string[], 1 | -1])[1];
    }
    return 0;
  };
}

// =============================================================================================
// Upsert equality seed

/**
 * The equality conditions of a filter that seed an upserted document: `{a: 1}`, `{a: {$eq: 1}}`
 * and `$and` of those (nested `$and` too). Ranges, `$in`, `$or`, `$expr`, regexes and
 * `$elemMatch` do not contribute. Returns `[dottedPath, value]` pairs in filter order.
 * See https://www.mongodb.com/docs/manual/reference/method/db.collection.update/#upsert-behavior
 */
export function equalityFieldsForUpsert(filter: Document): [string, unknown][] {
  const out: [string, unknown][] = [];
  const collect = (f: Document): void => {
    for (const [key, value] of Object.entries(f)) {
      if (key === '$and' && Array.isArray(value)) {
        for (const child of value) if (isPlainObject(child)) collect(child);
      } else if (key.startsWith('$')) {
        // $or, $nor, $expr, $comment...: no equality contributed.
      } else if (isOperatorObject(value)) {
        if ('$eq' in value) out.push([key, value.$eq]);
      } else if (!isRegex(value)) {
        out.push([key, value]);
      }
    }
  };
  collect(filter);
  return out;
}

// =============================================================================================
// Projection

type ProjectionNode = Map<string, ProjectionNode | ProjectionLeaf>;
type ProjectionLeaf =
  | { kind: 'include' }
  | { kind: 'exclude' }
  | { kind: 'slice'; skip: number | undefined; limit: number }
  | { kind: 'elemMatch'; test: (element: unknown) => boolean }
  | { kind: 'positional' }
  | { kind: 'expression'; expr: unknown };

interface ParsedProjection {
  readonly inclusion: boolean;
  readonly root: ProjectionNode;
  readonly excludeId: boolean;
}

function isTruthyFlag(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (isNumeric(value)) return toDouble(value) !== 0;
  return undefined;
}

/** What parseProjection has found so far. */
interface ProjectionParse {
  readonly root: ProjectionNode;
  mode: 'include' | 'exclude' | undefined;
  excludeId: boolean;
}

// The parse is written as module functions over a ProjectionParse, not closures made for each
// projection: the server runs under tsx, whose transform names every function it creates (a
// defineProperty per closure per command).

function setProjectionMode(state: ProjectionParse, m: 'include' | 'exclude', path: string): void {
  if (state.mode && state.mode !== m) {
    throw m === 'exclude'
      ? new ServerError(31254, `Cannot do exclusion on field ${path} in inclusion projection`)
      : new ServerError(31253, `Cannot do inclusion on field ${path} in exclusion projection`);
  }
  state.mode = m;
}

function addProjectionLeaf(root: ProjectionNode, path: string, leaf: ProjectionLeaf): void {
  const parts = splitPath(path);
  let node = root;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const existing = node.get(part);
    if (i === parts.length - 1) {
      if (existing) throw new ServerError(31250, `Path collision at ${path}`);
      node.set(part, leaf);
    } else if (existing instanceof Map) {
      node = existing;
    } else if (existing) {
      throw new ServerError(
        31249,
        `Path collision at ${path} remaining portion ${parts.slice(i + 1).join('.')}`,
      );
    } else {
      const child: ProjectionNode = new Map();
      node.set(part, child);
      node = child;
    }
  }
}

function walkProjection(state: ProjectionParse, spec: Document, prefix: string): void {
  for (const [key, value] of Object.entries(spec)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const flag = isTruthyFlag(value);
    if (key.endsWith('.$') && flag) {
      setProjectionMode(state, 'include', path);
      addProjectionLeaf(state.root, path.slice(0, -2), { kind: 'positional' });
    } else if (flag !== undefined) {
      if (path === '_id') {
        state.excludeId = !flag;
        if (flag) addProjectionLeaf(state.root, path, { kind: 'include' });
        continue;
      }
      setProjectionMode(state, flag ? 'include' : 'exclude', path);
      addProjectionLeaf(state.root, path, { kind: flag ? 'include' : 'exclude' });
    } else if (isPlainObject(value) && '$slice' in value) {
      addProjectionLeaf(state.root, path, parseSlice(value.$slice));
    } else if (isPlainObject(value) && '$elemMatch' in value) {
      setProjectionMode(state, 'include', path);
      const m = compileDocument({ x: { $elemMatch: value.$elemMatch } });
      addProjectionLeaf(state.root, path, {
        kind: 'elemMatch',
        test: (element) => m({ x: [element] }, undefined),
      });
    } else if (isOperatorObject(value) || !isPlainObject(value)) {
      setProjectionMode(state, 'include', path);
      addProjectionLeaf(state.root, path, { kind: 'expression', expr: value });
    } else {
      walkProjection(state, value, path);
    }
  }
}

function parseProjection(projection: Document): ParsedProjection {
  const state: ProjectionParse = { root: new Map(), mode: undefined, excludeId: false };
  walkProjection(state, projection, '');
  // `{ _id: 1 }` alone is an inclusion projection: it returns `_id` and nothing else.
  const inclusion = state.mode === 'include' || (state.mode === undefined && state.root.has('_id'));
  return { inclusion, root: state.root, excludeId: state.excludeId };
}

function parseSlice(arg: unknown): ProjectionLeaf {
  if (isNumeric(arg)) return { kind: 'slice', skip: undefined, limit: Math.trunc(toDouble(arg)) };
  if (Array.isArray(arg) && arg.length === 2 && isNumeric(arg[0]) && isNumeric(arg[1])) {
    const limit = Math.trunc(toDouble(arg[1]));
    if (limit <= 0) throw badValue('$slice limit must be positive');
    return { kind: 'slice', skip: Math.trunc(toDouble(arg[0])), limit };
  }
  throw badValue('$slice only supports numbers and [skip, limit] arrays');
}

function applySlice(value: unknown, leaf: { skip: number | undefined; limit: number }): unknown {
  if (!Array.isArray(value)) return value;
  if (leaf.skip === undefined) {
    return leaf.limit >= 0 ? value.slice(0, leaf.limit) : value.slice(leaf.limit);
  }
  const start = leaf.skip < 0 ? Math.max(0, value.length + leaf.skip) : leaf.skip;
  return value.slice(start, start + leaf.limit);
}

/**
 * A find projection (https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#projection):
 * inclusion or exclusion (never both, except `_id: 0`), dotted and nested paths, `$slice`,
 * `$elemMatch`, positional `a.$` (given the query `filter`) and aggregation expressions.
 */
export function applyProjection(
  doc: Document,
  projection: Document | undefined,
  filter?: Document,
): Document {
  if (!projection || Object.keys(projection).length === 0) return doc;
  return project(doc, parseProjection(projection), filter);
}

/**
 * `applyProjection` for each document of one command: the projection is parsed once, when the
 * first document comes (so a command that projects no document refuses no projection, as
 * before), and never outlives the command.
 */
export function projector(
  projection: Document | undefined,
): (doc: Document, filter?: Document) => Document {
  if (!projection || Object.keys(projection).length === 0) return (doc) => doc;
  let parsed: ParsedProjection | undefined;
  return (doc, filter) => {
    parsed ??= parseProjection(projection);
    return project(doc, parsed, filter);
  };
}

function project(doc: Document, parsed: ParsedProjection, filter: Document | undefined): Document {
  const positional = filter ? compileFilter(filter).positionalIndex(doc) : undefined;
  const out = projectNode(doc, doc, parsed.root, parsed.inclusion, positional) as Document;
  if (
    parsed.inclusion &&
    !parsed.excludeId &&
    doc._id !== undefined &&
    !Object.hasOwn(out, '_id')
  ) {
    return { _id: doc._id, ...out };
  }
  if (parsed.excludeId) delete out._id;
  return out;
}

function projectNode(
  root: Document,
  value: Document,
  node: ProjectionNode,
  inclusion: boolean,
  positional: number | undefined,
): Document {
  // A spread (not Object.assign, which assigns through the `__proto__` setter) copies own fields.
  const out: Document = inclusion ? {} : { ...value };
  // Inclusion keeps the document's field order; computed fields not in the document come last.
  const keys = inclusion
    ? [
        ...Object.keys(value).filter((k) => node.has(k)),
        ...[...node.keys()].filter((k) => !Object.hasOwn(value, k)),
      ]
    : [...node.keys()];
  for (const key of keys) {
    const spec = node.get(key) as ProjectionNode | ProjectionLeaf;
    const current = getField(value, key);
    if (spec instanceof Map) {
      const projected = projectSub(root, current, spec, inclusion, positional);
      if (projected !== undefined) setField(out, key, projected);
      else delete out[key];
      continue;
    }
    switch (spec.kind) {
      case 'include':
        if (current !== undefined) setField(out, key, current);
        break;
      case 'exclude':
        delete out[key];
        break;
      case 'slice':
        if (current !== undefined) setField(out, key, applySlice(current, spec));
        break;
      case 'elemMatch': {
        const match = Array.isArray(current) ? current.find(spec.test) : undefined;
        if (match !== undefined) setField(out, key, [match]);
        else delete out[key];
        break;
      }
      case 'positional': {
        if (!Array.isArray(current)) break;
        if (positional === undefined || positional >= current.length) {
          throw badValue(
            "Executor error during find command :: caused by :: positional operator '.$' couldn't find a matching element in the array",
          );
        }
        setField(out, key, [current[positional]]);
        break;
      }
      case 'expression':
        setField(
          out,
          key,
          typeof spec.expr === 'string' || isPlainObject(spec.expr) || Array.isArray(spec.expr)
            ? evaluateExpression(root, spec.expr)
            : spec.expr,
        );
        break;
    }
  }
  return out;
}

/** Sub-paths project into objects, and into each object element of arrays. */
function projectSub(
  root: Document,
  value: unknown,
  node: ProjectionNode,
  inclusion: boolean,
  positional: number | undefined,
): unknown {
  if (Array.isArray(value)) {
    const items = value
      .filter((v) => !inclusion || isPlainObject(v) || Array.isArray(v))
      .map((v) => projectSub(root, v, node, inclusion, positional));
    return items;
  }
  if (isPlainObject(value)) return projectNode(root, value, node, inclusion, positional);
  if (value === undefined) {
    // Computed sub-fields still create the parent in an inclusion projection.
    const hasExpression = [...node.values()].some(
      (s) => !(s instanceof Map) && s.kind === 'expression',
    );
    return inclusion && hasExpression
      ? projectNode(root, {}, node, inclusion, positional)
      : undefined;
  }
  return inclusion ? undefined : value;
}

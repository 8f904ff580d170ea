/**
 * A direct evaluator for the commonest aggregation expressions, tried before mingo.
 *
 * mingo evaluates every expression through its interpreter (an options object, a context lookup
 * and a call per operator), which costs the server far more per command than mongod spends.
 * `tryEvaluate` walks the expression itself for a small grammar and answers exactly what the
 * general path (`evaluateExpression`: the renaming of mingo-names.ts, mingo with the overrides of
 * query.ts, the renaming back) answers, value and type; on anything else it returns BAIL and the
 * caller runs the general path, unchanged. So it never raises an error: wherever the general path
 * would raise one, or where the answer is not certain, it bails.
 *
 * Covered: constants, `$literal` of a scalar, field paths `$a.b` and `$$ROOT`/`$$CURRENT` (with a
 * path) through plain objects only (an array on the way is mongod's array traversal, left to
 * mingo), object expressions, array expressions (operator arguments), `$cond`, `$and`, `$or`,
 * `$not`, `$isNumber`, the six comparisons, `$add` of numbers, `$ifNull` and `$mergeObjects` of
 * documents. Special field names (mingo-names.ts) are never met here: a path or key with one bails,
 * since the general path renames them. Inputs are only read; built results are new objects whose
 * fields are set as own properties (`setField`).
 *
 * Where mingo's answer differs from mongod's the evaluator bails rather than pick one: truthiness
 * of NaN (mongod's Value::coerceToBool: true; mingo: false) and of Long/Decimal128 values (mingo
 * takes any object as true), `$not` of '' (mingo negates JavaScript falsiness), and comparisons
 * with a missing operand (mongod orders missing below null; the server's compareValues takes
 * missing as null), and `$add` of integers beyond the int64 range (mongod: a double; the server's
 * addNumbers wraps).
 */
import type { Document, Long } from 'bson';
import { isSpecialName } from './mingo-names.js';
import { addNumbers, bsonTypeName, compareValues, isNumeric, setField } from './values.js';

/** The evaluator's answer when the general path must evaluate the expression. */
export const BAIL: unique symbol = Symbol('bail');
export type Bail = typeof BAIL;

/**
 * `expr` evaluated with `root` as `$$ROOT` and `$$CURRENT`, or BAIL. Never throws, never writes
 * into `expr` or `root`.
 */
export function tryEvaluate(expr: unknown, root: Document): unknown {
  return evaluate(expr, root);
}

/** An expression object as mingo takes it: an own-properties object of Object's prototype. */
function isExpressionObject(value: object): value is Document {
  return Object.getPrototypeOf(value) === Object.prototype;
}

function evaluate(expr: unknown, root: Document): unknown {
  switch (typeof expr) {
    case 'string':
      return expr.length > 0 && expr.charCodeAt(0) === 36 /* $ */ ? evaluatePath(expr, root) : expr;
    case 'number':
    case 'boolean':
      return expr;
    case 'object':
      break;
    default:
      return BAIL;
  }
  if (expr === null) return null;
  if (Array.isArray(expr)) return evaluateArray(expr, root);
  if (!isExpressionObject(expr)) {
    // A BSON value (ObjectId, Long, Date, ...): a constant, as mingo returns it.
    return expr instanceof Date || typeof (expr as { _bsontype?: unknown })._bsontype === 'string'
      ? expr
      : BAIL;
  }
  const keys = Object.keys(expr);
  const first = keys[0];
  if (first !== undefined && first.charCodeAt(0) === 36) {
    if (keys.length !== 1) return BAIL;
    return evaluateOperator(first, expr[first], root);
  }
  // An object expression: each field evaluated, kept even when missing (as mingo keeps it).
  const out: Document = {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (key.length === 0 || key.charCodeAt(0) === 36 || key.includes('.') || isSpecialName(key))
      return BAIL;
    const value = evaluate(expr[key], root);
    if (value === BAIL) return BAIL;
    setField(out, key, value);
  }
  return out;
}

function evaluateArray(expr: unknown[], root: Document): unknown[] | Bail {
  const out = new Array<unknown>(expr.length);
  for (let i = 0; i < expr.length; i++) {
    const value = evaluate(expr[i], root);
    if (value === BAIL) return BAIL;
    out[i] = value;
  }
  return out;
}

/**
 * `$a.b`, `$$ROOT`, `$$CURRENT.a.b`: through plain objects only. mingo refuses a `__proto__`
 * anywhere in the path even after a missing field, so the whole path is checked first.
 */
function evaluatePath(expr: string, root: Document): unknown {
  let path: string;
  if (expr.charCodeAt(1) === 36) {
    const dot = expr.indexOf('.');
    const name = dot === -1 ? expr : expr.slice(0, dot);
    if (name !== '$$ROOT' && name !== '$$CURRENT') return BAIL;
    if (dot === -1) return root;
    path = expr.slice(dot + 1);
  } else {
    path = expr.slice(1);
  }
  const fields = path.split('.');
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as string;
    if (field.length === 0 || field.charCodeAt(0) === 36 || isSpecialName(field)) return BAIL;
  }
  let value: unknown = root;
  for (let i = 0; i < fields.length; i++) {
    // A scalar, null or missing has no fields: missing (mingo's getValue).
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object') {
      return typeof value === 'function' ? BAIL : undefined;
    }
    if (Array.isArray(value) || !isExpressionObject(value)) return BAIL;
    const field = fields[i] as string;
    value = Object.hasOwn(value, field) ? (value as Document)[field] : undefined;
  }
  return value;
}

/**
 * Aggregation truthiness where mongod (Value::coerceToBool: false, null, missing and numeric zero
 * are false) and mingo (`truthy`: JavaScript truthiness, '' true) agree; BAIL where they may not.
 */
function truth(value: unknown): boolean | Bail {
  if (value === true || value === false) return value;
  if (value === null || value === undefined) return false;
  if (typeof value === 'number') return Number.isNaN(value) ? BAIL : value !== 0;
  if (typeof value === 'string') return true;
  if (typeof value !== 'object' || isNumeric(value)) return BAIL;
  return true;
}

function evaluateOperator(op: string, arg: unknown, root: Document): unknown {
  switch (op) {
    case '$literal':
      // A literal document or array would be shared with the command: the general path copies it.
      return typeof arg === 'object' &&
        arg !== null &&
        (Array.isArray(arg) || isExpressionObject(arg))
        ? BAIL
        : arg;
    case '$cond':
      return evaluateCond(arg, root);
    case '$and':
    case '$or': {
      if (!Array.isArray(arg)) return BAIL;
      const stopAt = op === '$or';
      for (let i = 0; i < arg.length; i++) {
        const value = evaluate(arg[i], root);
        if (value === BAIL) return BAIL;
        const t = truth(value);
        if (t === BAIL) return BAIL;
        if (t === stopAt) return stopAt;
      }
      return !stopAt;
    }
    case '$not': {
      const operand = singleOperand(arg);
      if (operand === BAIL) return BAIL;
      const value = evaluate(operand, root);
      if (value === BAIL || value === '') return BAIL;
      const t = truth(value);
      return t === BAIL ? BAIL : !t;
    }
    case '$isNumber': {
      const operand = singleOperand(arg);
      if (operand === BAIL) return BAIL;
      const value = evaluate(operand, root);
      return value === BAIL ? BAIL : isNumeric(value);
    }
    case '$eq':
    case '$ne':
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte': {
      if (!Array.isArray(arg) || arg.length !== 2) return BAIL;
      const a = evaluate(arg[0], root);
      if (a === BAIL || a === undefined) return BAIL;
      const b = evaluate(arg[1], root);
      if (b === BAIL || b === undefined) return BAIL;
      const c = compareValues(a, b);
      switch (op) {
        case '$eq':
          return c === 0;
        case '$ne':
          return c !== 0;
        case '$gt':
          return c > 0;
        case '$gte':
          return c >= 0;
        case '$lt':
          return c < 0;
        default:
          return c <= 0;
      }
    }
    case '$add': {
      if (!Array.isArray(arg)) return BAIL;
      const values = evaluateArray(arg, root);
      if (values === BAIL) return BAIL;
      let total: unknown = 0;
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (!isNumeric(value) || overflowsLong(total, value)) return BAIL;
        total = addNumbers(total, value);
      }
      return total;
    }
    case '$ifNull': {
      if (!Array.isArray(arg) || arg.length < 2) return BAIL;
      let value: unknown;
      for (let i = 0; i < arg.length; i++) {
        value = evaluate(arg[i], root);
        if (value === BAIL) return BAIL;
        if (value !== null && value !== undefined) return value;
      }
      return value;
    }
    case '$mergeObjects':
      return evaluateMergeObjects(arg, root);
    default:
      return BAIL;
  }
}

const LONG_MIN = -(2n ** 63n);
const LONG_LIMIT = 2n ** 63n;

/**
 * Whether `a + b` of two integers (int32 or int64) leaves the int64 range. mongod's `$add` then
 * answers a double; the server's `addNumbers` wraps (as its `$inc` does where mongod fails), so
 * that case is left to the general path, unchanged.
 */
function overflowsLong(a: unknown, b: unknown): boolean {
  const ta = bsonTypeName(a);
  const tb = bsonTypeName(b);
  if ((ta !== 'int' && ta !== 'long') || (tb !== 'int' && tb !== 'long')) return false;
  const sum = integerValue(a, ta) + integerValue(b, tb);
  return sum < LONG_MIN || sum >= LONG_LIMIT;
}

function integerValue(value: unknown, type: string): bigint {
  return type === 'long' ? (value as Long).toBigInt() : BigInt(Number(value));
}

function evaluateCond(arg: unknown, root: Document): unknown {
  let ifExpr: unknown;
  let thenExpr: unknown;
  let elseExpr: unknown;
  if (Array.isArray(arg)) {
    if (arg.length !== 3) return BAIL;
    [ifExpr, thenExpr, elseExpr] = arg;
  } else {
    if (typeof arg !== 'object' || arg === null || !isExpressionObject(arg)) return BAIL;
    const keys = Object.keys(arg);
    if (
      keys.length !== 3 ||
      !Object.hasOwn(arg, 'if') ||
      !Object.hasOwn(arg, 'then') ||
      !Object.hasOwn(arg, 'else')
    )
      return BAIL;
    ifExpr = arg.if;
    thenExpr = arg.then;
    elseExpr = arg.else;
  }
  const condition = evaluate(ifExpr, root);
  if (condition === BAIL) return BAIL;
  const t = truth(condition);
  if (t === BAIL) return BAIL;
  return evaluate(t ? thenExpr : elseExpr, root);
}

/** `$mergeObjects` of an array of documents, nulls and missing values (mingo's array form). */
function evaluateMergeObjects(arg: unknown, root: Document): unknown {
  if (!Array.isArray(arg)) return BAIL;
  const out: Document = {};
  for (let i = 0; i < arg.length; i++) {
    const value = evaluate(arg[i], root);
    if (value === BAIL) return BAIL;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value) || !isExpressionObject(value))
      return BAIL;
    const keys = Object.keys(value);
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j] as string;
      if (isSpecialName(key) || key.charCodeAt(0) === 0) return BAIL;
      const v = (value as Document)[key];
      if (v !== undefined) setField(out, key, v);
    }
  }
  return out;
}

/** The one operand of a unary operator, given bare or as `[x]`; BAIL for another arity. */
function singleOperand(arg: unknown): unknown {
  if (!Array.isArray(arg)) return arg;
  return arg.length === 1 ? arg[0] : BAIL;
}

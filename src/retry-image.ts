/**
 * Reading the answer to a retried `findAndModify`, and rebuilding documents from server
 * replies without letting a field name reach a prototype.
 *
 * When the driver retries a `findAndModify` (a network error after the server applied it, a
 * retryable write concern error), mongod does not run it again: it answers from the stored
 * pre- or post-image of the first execution, and does NOT apply `fields` (the projection).
 * Source: mongod `src/mongo/db/ops/write_ops_retryability.cpp`
 * (`parseOplogEntryForFindAndModify`: `value` is the image as stored, `lastErrorObject` is
 * `{ n: 1, updatedExisting: true }`), SERVER-44151. Primitives that read their outcome from a
 * computed projection therefore get the whole document instead, and must compute from it what
 * the projection would have computed, exactly as the server's expressions do. These helpers are
 * the pieces of the server's semantics that such a recomputation needs: field paths through
 * embedded documents, `$eq` on scalars, numeric comparison across BSON types (exact, NaN below
 * every number) and `$add` of a positive step to a counter.
 *
 * Field names that are special in JavaScript (`__proto__`, `constructor`, `prototype`,
 * `toString`) are ordinary field names to MongoDB; js-bson deserialises them as own
 * properties. Everything here reads own properties only and writes with defined properties.
 */
import type { Document } from 'mongodb';
import { MongoAtomicsError } from './errors.js';
import { isPlainObject } from './validate.js';
import { sameScalar } from './values.js';

/**
 * Did `value` come back without its projection? Every projection these primitives send
 * excludes `_id`, and every stored document has an `_id`: a reply value that holds an `_id` is
 * the whole stored image a retried findAndModify answers with.
 */
export function isUnprojectedImage(value: Document): boolean {
  return Object.hasOwn(value, '_id');
}

/** Sets an own, enumerable property, even for `__proto__` (a plain assignment would set the prototype). */
export function setOwn(target: Document, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** Reads an own property; an inherited one (`toString`, `constructor`, `__proto__`) is missing. */
export function ownValue(doc: Document, key: string): unknown {
  return Object.hasOwn(doc, key) ? doc[key] : undefined;
}

/** Thrown when an image holds something the recomputation does not model (see callers). */
export function cannotRecompute(primitive: string, what: string): never {
  throw new MongoAtomicsError(
    `${primitive}: the update was applied (a retried findAndModify was answered from the stored image, without the projection), but the outcome cannot be recomputed from that image: ${what}. Do not repeat the call blindly (pass an opId to make repeats safe).`,
  );
}

/**
 * The value of an aggregation field path (`'$a.b'`) in `doc`, for paths through embedded
 * documents: `undefined` when a segment is missing or a parent is a scalar (aggregation's
 * "missing"). A parent that is an array is reported as `'array'`: the expression would map over
 * it, which the primitives do not support (and their updates fail on it).
 */
export function fieldPath(doc: Document, path: string): { readonly value: unknown } | 'array' {
  let current: unknown = doc;
  for (const segment of path.split('.')) {
    if (Array.isArray(current)) return 'array';
    if (!isDocument(current)) return { value: undefined };
    current = ownValue(current, segment);
  }
  return { value: current };
}

/** A BSON document as the driver deserialises it: a plain object (BSON values and Dates are class instances). */
export function isDocument(value: unknown): value is Document {
  return isPlainObject(value);
}

// =============================================================================================
// Numbers, exactly as the server compares and adds them

/** A finite number as `coef × 10^exp` (exact for doubles, longs and decimals alike). */
interface Rational {
  readonly coef: bigint;
  readonly exp: number;
}

type ExactNumber =
  | { readonly kind: 'nan' }
  | { readonly kind: 'infinity'; readonly sign: 1 | -1 }
  | { readonly kind: 'finite'; readonly r: Rational };

interface BsonNumberLike {
  _bsontype?: unknown;
  valueOf(): unknown;
  toString(): string;
}

/**
 * The BSON type of a value js-bson created (its class defines `_bsontype`). A plain object is a
 * document even when it holds a `_bsontype` field: to MongoDB that is an ordinary field name.
 */
const bsonType = (value: unknown): unknown =>
  typeof value === 'object' && value !== null && !isPlainObject(value)
    ? (value as BsonNumberLike)._bsontype
    : undefined;

function fromDouble(x: number): ExactNumber {
  if (Number.isNaN(x)) return { kind: 'nan' };
  if (!Number.isFinite(x)) return { kind: 'infinity', sign: x > 0 ? 1 : -1 };
  if (x === 0) return { kind: 'finite', r: { coef: 0n, exp: 0 } };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exp2: number;
  if (biased === 0) exp2 = -1074;
  else {
    mantissa |= 1n << 52n;
    exp2 = biased - 1075;
  }
  // m × 2^e = m × 5^-e × 10^e: every double is a finite decimal.
  const r =
    exp2 >= 0
      ? { coef: mantissa << BigInt(exp2), exp: 0 }
      : { coef: mantissa * 5n ** BigInt(-exp2), exp: exp2 };
  return { kind: 'finite', r: { coef: negative ? -r.coef : r.coef, exp: r.exp } };
}

/** Parses a decimal string as Decimal128 prints it ("-1.50", "1.2E+5", "NaN", "-Infinity"). */
function fromDecimalString(text: string): ExactNumber | undefined {
  if (/^-?NaN$/i.test(text)) return { kind: 'nan' };
  if (/^[+-]?Inf(inity)?$/i.test(text)) {
    return { kind: 'infinity', sign: text.startsWith('-') ? -1 : 1 };
  }
  const match = /^([+-])?(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (match === null) return undefined;
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  const digits = BigInt(`${whole}${fraction}`);
  return {
    kind: 'finite',
    r: { coef: sign === '-' ? -digits : digits, exp: Number(exponent) - fraction.length },
  };
}

/**
 * The exact value of a BSON number as the driver hands it over (number, bigint, Int32, Double,
 * Long, Decimal128); undefined for anything else (`$isNumber` false).
 */
function exactNumber(value: unknown): ExactNumber | undefined {
  if (typeof value === 'number') return fromDouble(value);
  if (typeof value === 'bigint') return { kind: 'finite', r: { coef: value, exp: 0 } };
  switch (bsonType(value)) {
    case 'Int32':
    case 'Double':
      return fromDouble(Number((value as BsonNumberLike).valueOf()));
    case 'Long':
      return { kind: 'finite', r: { coef: BigInt((value as BsonNumberLike).toString()), exp: 0 } };
    case 'Decimal128':
      return fromDecimalString((value as BsonNumberLike).toString());
    default:
      return undefined;
  }
}

/** `$isNumber`: int, long, double or decimal (NaN included). */
export function isBsonNumber(value: unknown): boolean {
  return exactNumber(value) !== undefined;
}

function compareRationals(a: Rational, b: Rational): number {
  const exp = Math.min(a.exp, b.exp);
  const x = a.coef * 10n ** BigInt(a.exp - exp);
  const y = b.coef * 10n ** BigInt(b.exp - exp);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Compares two BSON numbers as the server does (aggregation `$gt`/`$gte`/`$max`, `$eq`):
 * exactly across types (Decimal128("0.1") < 0.1 as a double), NaN equal to NaN and below every
 * other number. Undefined when either is not a number.
 */
export function compareNumbers(a: unknown, b: unknown): number | undefined {
  const x = exactNumber(a);
  const y = exactNumber(b);
  if (x === undefined || y === undefined) return undefined;
  const rank = (n: ExactNumber) =>
    n.kind === 'nan' ? 0 : n.kind === 'infinity' ? (n.sign < 0 ? 1 : 3) : 2;
  if (rank(x) !== rank(y)) return rank(x) < rank(y) ? -1 : 1;
  if (x.kind === 'finite' && y.kind === 'finite') return compareRationals(x.r, y.r);
  return 0;
}

/**
 * Aggregation `$eq` of a stored value and a scalar (simple collation): numbers by exact value
 * across types, everything else as `sameScalar` (same type and value). Arrays and documents
 * never equal a scalar.
 */
export function bsonEquals(stored: unknown, scalar: unknown): boolean {
  const order = compareNumbers(stored, scalar);
  if (order !== undefined) return order === 0;
  if (isBsonNumber(stored) || isBsonNumber(scalar)) return false;
  if (Array.isArray(stored) || isDocument(stored)) return false;
  return sameScalar(stored, scalar);
}

const INT32_MAX = 2 ** 31 - 1;

/** Decimal128 arithmetic keeps 34 significant digits (IEEE 754 decimal128), ties to even. */
function roundTo34Digits(r: Rational): Rational {
  const negative = r.coef < 0n;
  let coef = negative ? -r.coef : r.coef;
  let exp = r.exp;
  const excess = coef.toString().length - 34;
  if (excess > 0) {
    const divisor = 10n ** BigInt(excess);
    const quotient = coef / divisor;
    const remainder = coef % divisor;
    const twice = remainder * 2n;
    coef =
      twice > divisor || (twice === divisor && quotient % 2n === 1n) ? quotient + 1n : quotient;
    exp += excess;
  }
  return { coef: negative ? -coef : coef, exp };
}

/**
 * A JS number `step` as the server sees it once serialised by the driver, converted to
 * Decimal128 for a decimal `$add`: an int32 exactly; a double rounded to 15 significant digits
 * (mongod's Decimal128(double) conversion).
 */
function stepAsDecimal(step: number): Rational {
  const text =
    Number.isInteger(step) && Math.abs(step) <= INT32_MAX ? String(step) : step.toPrecision(15);
  const parsed = fromDecimalString(text);
  if (parsed?.kind !== 'finite') throw new RangeError(`not a finite step: ${step}`);
  return parsed.r;
}

/**
 * Aggregation `$add: [{ $ifNull: [counter, 0] }, { $literal: step }]` for a counter read from an
 * image, with `step` a positive finite JS number; the result in the form the driver would have
 * deserialised the server's result into. Undefined when the server would have failed (the
 * counter is not a number) or the result's type is not modelled here (a Date counter, an int32
 * or int64 overflow): the caller then says it cannot recompute.
 */
export function addStep(counter: unknown, step: number): unknown {
  if (counter === undefined || counter === null) return step;
  if (typeof counter === 'number') return counter + step;
  const integerStep = Number.isInteger(step) && Math.abs(step) <= INT32_MAX;
  if (typeof counter === 'bigint') {
    if (!integerStep) return Number(counter) + step;
    const sum = counter + BigInt(step);
    return BigInt.asIntN(64, sum) === sum ? sum : undefined;
  }
  const Ctor = (counter as { constructor: unknown }).constructor as {
    new (value: number): unknown;
    fromBigInt(value: bigint): unknown;
    fromString(value: string): unknown;
  };
  switch (bsonType(counter)) {
    case 'Int32': {
      const sum = Number((counter as BsonNumberLike).valueOf()) + step;
      return integerStep && Math.abs(sum) <= INT32_MAX ? new Ctor(sum) : undefined;
    }
    case 'Double':
      return new Ctor(Number((counter as BsonNumberLike).valueOf()) + step);
    case 'Long': {
      const value = BigInt((counter as BsonNumberLike).toString());
      if (!integerStep) return Number(value) + step;
      const sum = value + BigInt(step);
      return BigInt.asIntN(64, sum) === sum ? Ctor.fromBigInt(sum) : undefined;
    }
    case 'Decimal128': {
      const value = exactNumber(counter);
      if (value === undefined) return undefined;
      // NaN and ±Infinity stay what they are.
      if (value.kind !== 'finite') return counter;
      const s = stepAsDecimal(step);
      const exp = Math.min(value.r.exp, s.exp);
      const sum = roundTo34Digits({
        coef: value.r.coef * 10n ** BigInt(value.r.exp - exp) + s.coef * 10n ** BigInt(s.exp - exp),
        exp,
      });
      return Ctor.fromString(`${sum.coef}E${sum.exp}`);
    }
    default:
      return undefined;
  }
}

// =============================================================================================
// Rebuilding a document

/**
 * Puts `value` at the dotted `path` in `doc` (mutated), as a pipeline `$set` does: missing
 * parents are created, a scalar parent is replaced by a document, an array parent gets the field
 * in each of its document elements. Every write defines an own property and every read follows
 * own properties only, so a path segment `__proto__` (an ordinary field name to MongoDB, an own
 * property in what js-bson deserialises) names that field and never reaches a prototype.
 */
export function placeField(doc: Document, path: string, value: unknown): void {
  place(doc, path.split('.'), value);
}

function place(doc: Document, segments: readonly string[], value: unknown): void {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  if (rest.length === 0) {
    setOwn(doc, head, value);
    return;
  }
  const child = ownValue(doc, head);
  if (Array.isArray(child)) {
    setOwn(
      doc,
      head,
      child.map((element: unknown) => {
        if (Array.isArray(element)) return element;
        const target: Document = isDocument(element) ? element : {};
        place(target, rest, value);
        return target;
      }),
    );
    return;
  }
  const target: Document = isDocument(child) ? child : {};
  setOwn(doc, head, target);
  place(target, rest, value);
}

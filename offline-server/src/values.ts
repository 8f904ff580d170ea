/**
 * BSON value semantics shared by the query, update, sort and index layers: MongoDB's comparison
 * order across types, equality, canonical keys, type names and mongod-style rendering.
 *
 * Values are what `bson.deserialize` produces with default options: int32, double and int64 in
 * the safe range arrive as JS numbers; everything else as a `bson` class instance, recognised by
 * its `_bsontype` tag (robust against several copies of the `bson` package).
 *
 * Reference: https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/ and mongod
 * `src/mongo/bson/bsonelement.cpp` (`compareElementValues`, `canonicalizeBSONType`).
 */
import { Binary, Decimal128, type Document, Long, serialize, type Timestamp } from 'bson';

/** A BSON class instance, identified by its tag. */
interface Tagged {
  readonly _bsontype: string;
}

function tagOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const tag = (value as Partial<Tagged>)._bsontype;
  return typeof tag === 'string' ? tag : undefined;
}

/**
 * Field names are plain strings in MongoDB: `__proto__`, `constructor`, `prototype` and
 * `toString` are ordinary names (manual, core/document "Field Names": the only restrictions are
 * `_id`, a leading `$` and `.`), and js-bson deserialises `__proto__` as an own property. So the
 * server reads a document field only when it is the document's own (an inherited
 * `Object.prototype.constructor` is a missing field, not a function), and writes with
 * `defineProperty`, never `doc[name] = v`, which for `__proto__` would replace the object's
 * prototype instead of storing a field (and, on a shared prototype, pollute the process).
 */
export function getField(doc: object, name: string): unknown {
  return Object.hasOwn(doc, name) ? (doc as Document)[name] : undefined;
}

/** Stores field `name` as an own, enumerable property (keeps its position when it exists). */
export function setField(doc: object, name: string, value: unknown): void {
  Object.defineProperty(doc, name, { value, writable: true, enumerable: true, configurable: true });
}

export function isPlainObject(value: unknown): value is Document {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (value instanceof Date || value instanceof RegExp || tagOf(value) !== undefined) return false;
  return ArrayBuffer.isView(value) === false;
}

/** Numeric BSON values: JS numbers, Int32, Double, Long and Decimal128 instances. */
export function isNumeric(value: unknown): boolean {
  if (typeof value === 'number') return true;
  const tag = tagOf(value);
  return tag === 'Long' || tag === 'Decimal128' || tag === 'Int32' || tag === 'Double';
}

// ---------------------------------------------------------------------------------------------
// Canonical type ranks (mongod canonicalizeBSONType): the first criterion of every comparison.

const RANK = {
  minKey: -1,
  /** An empty array as a sort key: below null (documented sort rule). */
  emptyArraySortKey: 0,
  null: 5,
  number: 10,
  string: 15,
  object: 20,
  array: 25,
  binData: 30,
  objectId: 35,
  bool: 40,
  date: 45,
  timestamp: 47,
  regex: 50,
  dbPointer: 55,
  javascript: 60,
  javascriptWithScope: 65,
  maxKey: 127,
} as const;

/** Marker used by sort keys for an empty array, which sorts below null. */
export const EMPTY_ARRAY_SORT_KEY: unique symbol = Symbol('emptyArraySortKey');

export function canonicalRank(value: unknown): number {
  if (value === null || value === undefined) return RANK.null;
  switch (typeof value) {
    case 'number':
      return RANK.number;
    case 'string':
      return RANK.string;
    case 'boolean':
      return RANK.bool;
    case 'bigint':
      return RANK.number;
    case 'symbol':
      return value === EMPTY_ARRAY_SORT_KEY ? RANK.emptyArraySortKey : RANK.null;
    default:
      break;
  }
  if (Array.isArray(value)) return RANK.array;
  if (value instanceof Date) return RANK.date;
  if (value instanceof RegExp) return RANK.regex;
  switch (tagOf(value)) {
    case undefined:
      return ArrayBuffer.isView(value) ? RANK.binData : RANK.object;
    case 'Long':
    case 'Decimal128':
    case 'Int32':
    case 'Double':
      return RANK.number;
    case 'BSONSymbol':
      return RANK.string;
    case 'Binary':
      return RANK.binData;
    case 'ObjectId':
      return RANK.objectId;
    case 'Timestamp':
      return RANK.timestamp;
    case 'BSONRegExp':
      return RANK.regex;
    case 'DBRef':
      return RANK.object;
    case 'Code':
      return (value as { scope?: unknown }).scope ? RANK.javascriptWithScope : RANK.javascript;
    case 'MinKey':
      return RANK.minKey;
    case 'MaxKey':
      return RANK.maxKey;
    default:
      return RANK.object;
  }
}

// ---------------------------------------------------------------------------------------------
// Exact numbers. Mixed-type numeric comparison is exact in mongod (a Long near 2^63 is not
// rounded to a double), so numbers are compared as decimal fractions `m * 10^e` when they are
// not both plain JS numbers.

type ExactNumber =
  | { readonly kind: 'nan' }
  | { readonly kind: 'inf'; readonly sign: 1 | -1 }
  | { readonly kind: 'finite'; readonly m: bigint; readonly e: number };

function normalizeExact(m: bigint, e: number): ExactNumber {
  if (m === 0n) return { kind: 'finite', m: 0n, e: 0 };
  while (m % 10n === 0n) {
    m /= 10n;
    e += 1;
  }
  return { kind: 'finite', m, e };
}

function exactFromDouble(n: number): ExactNumber {
  if (Number.isNaN(n)) return { kind: 'nan' };
  if (!Number.isFinite(n)) return { kind: 'inf', sign: n > 0 ? 1 : -1 };
  if (Number.isInteger(n)) return normalizeExact(BigInt(n), 0);
  // n = mantissa * 2^exp exactly; 2^-k = 5^k * 10^-k.
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, n);
  const bits = view.getBigUint64(0);
  const sign = bits >> 63n === 1n ? -1n : 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exp = (biased === 0 ? 1 : biased) - 1075;
  if (exp >= 0) return normalizeExact(sign * mantissa * 2n ** BigInt(exp), 0);
  return normalizeExact(sign * mantissa * 5n ** BigInt(-exp), exp);
}

function exactFromDecimalString(text: string): ExactNumber {
  if (/nan/i.test(text)) return { kind: 'nan' };
  if (/inf/i.test(text)) return { kind: 'inf', sign: text.startsWith('-') ? -1 : 1 };
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return { kind: 'nan' };
  const [, sign = '', whole = '', frac = '', exp = '0'] = match;
  const digits = `${whole}${frac}` || '0';
  const m = BigInt(digits) * (sign === '-' ? -1n : 1n);
  return normalizeExact(m, Number(exp) - frac.length);
}

export function toExactNumber(value: unknown): ExactNumber {
  if (typeof value === 'number') return exactFromDouble(value);
  if (typeof value === 'bigint') return normalizeExact(value, 0);
  switch (tagOf(value)) {
    case 'Long':
      return normalizeExact(BigInt((value as Long).toString()), 0);
    case 'Decimal128':
      return exactFromDecimalString(String(value));
    case 'Int32':
    case 'Double':
      return exactFromDouble((value as { valueOf(): number }).valueOf());
    default:
      return { kind: 'nan' };
  }
}

function compareExact(a: ExactNumber, b: ExactNumber): number {
  // mongod orders NaN below every other number and equal to itself.
  if (a.kind === 'nan' || b.kind === 'nan')
    return a.kind === b.kind ? 0 : a.kind === 'nan' ? -1 : 1;
  if (a.kind === 'inf' && b.kind === 'inf') return sign(a.sign - b.sign);
  if (a.kind === 'inf') return a.sign;
  if (b.kind === 'inf') return -b.sign;
  const e = Math.min(a.e, b.e);
  const am = a.m * 10n ** BigInt(a.e - e);
  const bm = b.m * 10n ** BigInt(b.e - e);
  return am < bm ? -1 : am > bm ? 1 : 0;
}

export function compareNumbers(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isNaN(a) || Number.isNaN(b)) {
      return Number.isNaN(a) === Number.isNaN(b) ? 0 : Number.isNaN(a) ? -1 : 1;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return compareExact(toExactNumber(a), toExactNumber(b));
}

/** The value of a numeric BSON value as a JS number (may round Long/Decimal128). */
export function toDouble(value: unknown): number {
  if (typeof value === 'number') return value;
  const tag = tagOf(value);
  if (tag === 'Long') return (value as Long).toNumber();
  if (tag === 'Decimal128') return Number(String(value));
  if (tag === 'Int32' || tag === 'Double') return (value as { valueOf(): number }).valueOf();
  return Number.NaN;
}

// ---------------------------------------------------------------------------------------------
// Arithmetic across numeric types (mongod src/mongo/util/safe_num.cpp): Decimal128 wins, then
// double, then int64; int32 overflow widens to int64. JS numbers carry no int/double tag: an
// integer in the int32 range is taken as int32, anything else as a double.

/** Unnormalized decimal parts (Decimal128 keeps its exponent: 1.10 + 0.20 = 1.30). */
function decimalOperand(value: unknown): ExactNumber {
  if (tagOf(value) === 'Decimal128') {
    const text = String(value);
    const parsed = exactFromDecimalString(text);
    if (parsed.kind !== 'finite') return parsed;
    const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
    const [, sign = '', whole = '', frac = '', exp = '0'] = match ?? [];
    return {
      kind: 'finite',
      m: BigInt(`${sign}${whole}${frac}` || '0'),
      e: Number(exp) - frac.length,
    };
  }
  // mongod converts a double to Decimal128 rounded to 15 significant digits.
  if (typeof value === 'number' && !Number.isInteger(value) && Number.isFinite(value)) {
    return decimalOperand(Decimal128.fromString(value.toPrecision(15)));
  }
  return toExactNumber(value);
}

function exactToDouble(x: ExactNumber): number {
  if (x.kind === 'nan') return Number.NaN;
  if (x.kind === 'inf') return x.sign * Number.POSITIVE_INFINITY;
  return Number(`${x.m}e${x.e}`);
}

function decimalArithmetic(op: 'add' | 'multiply', a: unknown, b: unknown): Decimal128 {
  const x = decimalOperand(a);
  const y = decimalOperand(b);
  if (x.kind !== 'finite' || y.kind !== 'finite') {
    const [fx, fy] = [exactToDouble(x), exactToDouble(y)];
    return Decimal128.fromString(String(op === 'add' ? fx + fy : fx * fy));
  }
  if (op === 'multiply') return Decimal128.fromStringWithRounding(`${x.m * y.m}E${x.e + y.e}`);
  const e = Math.min(x.e, y.e);
  const m = x.m * 10n ** BigInt(x.e - e) + y.m * 10n ** BigInt(y.e - e);
  return Decimal128.fromStringWithRounding(`${m}E${e}`);
}

function integerOf(value: unknown): bigint | undefined {
  const exact = toExactNumber(value);
  if (exact.kind !== 'finite' || exact.e < 0) return undefined;
  return exact.m * 10n ** BigInt(exact.e);
}

function numericArithmetic(op: 'add' | 'multiply', a: unknown, b: unknown): unknown {
  const ta = bsonTypeName(a);
  const tb = bsonTypeName(b);
  if (ta === 'decimal' || tb === 'decimal') return decimalArithmetic(op, a, b);
  const integral = (t: string) => t === 'int' || t === 'long';
  if (integral(ta) && integral(tb)) {
    const x = integerOf(a) as bigint;
    const y = integerOf(b) as bigint;
    const exact = op === 'add' ? x + y : x * y;
    if (ta === 'int' && tb === 'int' && exact >= -(2n ** 31n) && exact < 2n ** 31n)
      return Number(exact);
    // int64 overflow wraps here; mongod reports an error instead (not emulated).
    return Long.fromBigInt(BigInt.asIntN(64, exact));
  }
  const x = toDouble(a);
  const y = toDouble(b);
  return op === 'add' ? x + y : x * y;
}

/** `a + b` with BSON numeric typing ($inc, $add, $sum). */
export function addNumbers(a: unknown, b: unknown): unknown {
  return numericArithmetic('add', a, b);
}

/** `a * b` with BSON numeric typing ($mul, $multiply). */
export function multiplyNumbers(a: unknown, b: unknown): unknown {
  return numericArithmetic('multiply', a, b);
}

// ---------------------------------------------------------------------------------------------
// Comparison.

/** Strings compare by UTF-8 bytes, i.e. by code point (JS `<` compares UTF-16 code units). */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800-DFFF) encode code points above U+FFFF: move them above U+E000-FFFF.
    if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function stringOf(value: unknown): string {
  return typeof value === 'string' ? value : String((value as { value: string }).value);
}

function regexParts(value: unknown): [string, string] {
  if (value instanceof RegExp) return [value.source, bsonRegexFlags(value.flags)];
  const r = value as { pattern: string; options: string };
  return [r.pattern, r.options];
}

/** JS RegExp flags as BSON regex options (alphabetical, only those BSON knows). */
export function bsonRegexFlags(flags: string): string {
  return [...flags]
    .filter((f) => 'imsux'.includes(f))
    .sort()
    .join('');
}

function binaryBytes(value: unknown): { bytes: Uint8Array; subType: number } {
  if (ArrayBuffer.isView(value)) {
    return {
      bytes: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
      subType: 0,
    };
  }
  const bin = value as Binary;
  return { bytes: bin.buffer.subarray(0, bin.position), subType: bin.sub_type };
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number) ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

/** Objects compare element by element: canonical type, then field name, then value. */
function unmarked(name: string): string {
  return name.charCodeAt(0) === 0 ? name.slice(1) : name;
}

function compareEntries(a: [string, unknown][], b: [string, unknown][]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const [ka, va] = a[i] as [string, unknown];
    const [kb, vb] = b[i] as [string, unknown];
    const byType = canonicalRank(va) - canonicalRank(vb);
    if (byType !== 0) return sign(byType);
    // Inside mingo, special names carry a leading NUL (mingo-names.ts); they order as the name.
    const byName = compareStrings(unmarked(ka), unmarked(kb));
    if (byName !== 0) return byName;
    const byValue = compareValues(va, vb);
    if (byValue !== 0) return byValue;
  }
  return sign(a.length - b.length);
}

function documentEntries(value: unknown): [string, unknown][] {
  if (tagOf(value) === 'DBRef') {
    const ref = value as { toJSON(): Document };
    return Object.entries(ref.toJSON());
  }
  return Object.entries(value as Document).filter(([, v]) => v !== undefined);
}

/**
 * MongoDB's total order over BSON values (the sort order of `find().sort()` and the order of
 * `$lt`/`$gt` within a type). Missing (`undefined`) sorts as null.
 */
export function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  const ra = canonicalRank(a);
  const rb = canonicalRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case RANK.number:
      return compareNumbers(a, b);
    case RANK.string:
      return compareStrings(stringOf(a), stringOf(b));
    case RANK.object:
      return compareEntries(documentEntries(a), documentEntries(b));
    case RANK.array:
      return compareEntries(
        (a as unknown[]).map((v, i) => [String(i), v]),
        (b as unknown[]).map((v, i) => [String(i), v]),
      );
    case RANK.binData: {
      // Length first, then subtype, then bytes (documented BinData order).
      const x = binaryBytes(a);
      const y = binaryBytes(b);
      if (x.bytes.length !== y.bytes.length) return x.bytes.length < y.bytes.length ? -1 : 1;
      if (x.subType !== y.subType) return x.subType < y.subType ? -1 : 1;
      return compareBytes(x.bytes, y.bytes);
    }
    case RANK.objectId:
      return compareBytes((a as { id: Uint8Array }).id, (b as { id: Uint8Array }).id);
    case RANK.bool:
      return a === b ? 0 : a ? 1 : -1;
    case RANK.date:
      return sign((a as Date).getTime() - (b as Date).getTime());
    case RANK.timestamp: {
      const x = a as Timestamp;
      const y = b as Timestamp;
      return x.t !== y.t ? sign(x.t - y.t) : sign(x.i - y.i);
    }
    case RANK.regex: {
      const [pa, fa] = regexParts(a);
      const [pb, fb] = regexParts(b);
      return compareStrings(pa, pb) || compareStrings(fa, fb);
    }
    case RANK.javascript:
    case RANK.javascriptWithScope:
      return compareStrings(
        String((a as { code: unknown }).code),
        String((b as { code: unknown }).code),
      );
    default:
      // null, MinKey, MaxKey, the empty-array sort marker: one value each.
      return 0;
  }
}

/** MongoDB equality: 1 == 1.0 == Long(1); objects equal only with the same field order. */
export function valuesEqual(a: unknown, b: unknown): boolean {
  return compareValues(a, b) === 0;
}

// ---------------------------------------------------------------------------------------------
// Canonical keys: valueKey(a) === valueKey(b) iff valuesEqual(a, b).

function numberKey(value: unknown): string {
  if (typeof value === 'number' && Number.isSafeInteger(value)) {
    if (value === 0) return 'n0';
    let digits = String(value);
    let e = 0;
    while (digits.endsWith('0')) {
      digits = digits.slice(0, -1);
      e++;
    }
    return `n${digits}e${e}`;
  }
  const exact = toExactNumber(value);
  if (exact.kind === 'nan') return 'nNaN';
  if (exact.kind === 'inf') return exact.sign > 0 ? 'n+Inf' : 'n-Inf';
  return exact.m === 0n ? 'n0' : `n${exact.m}e${exact.e}`;
}

export function valueKey(value: unknown): string {
  switch (canonicalRank(value)) {
    case RANK.null:
      return 'null';
    case RANK.minKey:
      return 'minKey';
    case RANK.maxKey:
      return 'maxKey';
    case RANK.emptyArraySortKey:
      return 'emptyArray';
    case RANK.number:
      return numberKey(value);
    case RANK.string:
      return `s${JSON.stringify(stringOf(value))}`;
    case RANK.bool:
      return value ? 'true' : 'false';
    case RANK.date:
      return `d${(value as Date).getTime()}`;
    case RANK.objectId:
      return `o${(value as { toHexString(): string }).toHexString()}`;
    case RANK.timestamp:
      return `t${(value as Timestamp).t}:${(value as Timestamp).i}`;
    case RANK.binData: {
      const { bytes, subType } = binaryBytes(value);
      return `b${subType}:${Buffer.from(bytes).toString('base64')}`;
    }
    case RANK.regex: {
      const [pattern, flags] = regexParts(value);
      return `r${JSON.stringify(pattern)}/${flags}`;
    }
    case RANK.array:
      return `[${(value as unknown[]).map(valueKey).join(',')}]`;
    case RANK.object:
      return `{${documentEntries(value)
        .map(([k, v]) => `${JSON.stringify(k)}:${valueKey(v)}`)
        .join(',')}}`;
    default:
      return `c${JSON.stringify(String((value as { code: unknown }).code))}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Type names (mongod typeName(), used by $type and in error messages).

/**
 * The BSON type name of a value. JS numbers carry no int/double distinction after
 * deserialization; they are named as `bson.serialize` would store them: an integer in the int32
 * range is `int`, anything else `double`.
 */
export function bsonTypeName(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) &&
        value >= -(2 ** 31) &&
        value < 2 ** 31 &&
        !Object.is(value, -0)
        ? 'int'
        : 'double';
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'bigint':
      return 'long';
    default:
      break;
  }
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'date';
  if (value instanceof RegExp) return 'regex';
  switch (tagOf(value)) {
    case undefined:
      return ArrayBuffer.isView(value) ? 'binData' : 'object';
    case 'Long':
      return 'long';
    case 'Decimal128':
      return 'decimal';
    case 'Int32':
      return 'int';
    case 'Double':
      return 'double';
    case 'BSONSymbol':
      return 'symbol';
    case 'Binary':
      return 'binData';
    case 'ObjectId':
      return 'objectId';
    case 'Timestamp':
      return 'timestamp';
    case 'BSONRegExp':
      return 'regex';
    case 'Code':
      return (value as { scope?: unknown }).scope ? 'javascriptWithScope' : 'javascript';
    case 'MinKey':
      return 'minKey';
    case 'MaxKey':
      return 'maxKey';
    default:
      return 'object';
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering in mongod's error-message style: `{_id: 1}`, `{ a: "x", b: [ 1, 2 ] }`.

export function formatValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Number.isSafeInteger(value)
      ? value.toExponential()
      : String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    return value.length === 0 ? '[]' : `[ ${value.map(formatValue).join(', ')} ]`;
  }
  if (value instanceof Date) return `new Date(${value.getTime()})`;
  if (value instanceof RegExp) return `/${value.source}/${value.flags}`;
  switch (tagOf(value)) {
    case undefined: {
      const entries = Object.entries(value as Document).filter(([, v]) => v !== undefined);
      if (entries.length === 0) return '{}';
      return `{ ${entries.map(([k, v]) => `${k}: ${formatValue(v)}`).join(', ')} }`;
    }
    case 'ObjectId':
      return `ObjectId('${(value as { toHexString(): string }).toHexString()}')`;
    case 'Long':
      return `${String(value)}`;
    case 'Decimal128':
      return `NumberDecimal("${String(value)}")`;
    case 'Timestamp':
      return `Timestamp(${(value as Timestamp).t}, ${(value as Timestamp).i})`;
    case 'Binary':
      return `BinData(${(value as Binary).sub_type}, ${(value as Binary).toString('hex').toUpperCase()})`;
    case 'MinKey':
      return 'MinKey';
    case 'MaxKey':
      return 'MaxKey';
    default:
      return String(value);
  }
}

/** One element rendered the way mongod prints it in messages: `{a: 5}`. */
export function formatElement(name: string, value: unknown): string {
  return `{${name}: ${formatValue(value)}}`;
}

// ---------------------------------------------------------------------------------------------
// Paths and cloning.

/** Splits a dotted path; mongod rejects empty components, so callers validate first. */
export function splitPath(path: string): string[] {
  return path.split('.');
}

export function isArrayIndex(component: string): boolean {
  return /^(0|[1-9]\d*)$/.test(component);
}

/**
 * The value at a dotted path, following numeric components into arrays, with no implicit
 * traversal of array elements. `undefined` when missing.
 */
export function getPath(doc: unknown, path: string | readonly string[]): unknown {
  let current: unknown = doc;
  for (const part of typeof path === 'string' ? splitPath(path) : path) {
    if (Array.isArray(current)) {
      if (!isArrayIndex(part)) return undefined;
      current = current[Number(part)];
    } else if (isPlainObject(current)) {
      current = getField(current, part);
    } else {
      return undefined;
    }
  }
  return current;
}

/**
 * Every value reachable at a dotted path, traversing arrays implicitly the way indexes and sort
 * keys do: an array met on the way contributes each element, an array at the end is returned
 * whole. Missing branches yield nothing.
 */
export function getPathValues(doc: unknown, path: string | readonly string[]): unknown[] {
  const parts = typeof path === 'string' ? splitPath(path) : path;
  const out: unknown[] = [];
  const walk = (value: unknown, i: number): void => {
    if (i === parts.length) {
      if (value !== undefined) out.push(value);
      return;
    }
    const part = parts[i] as string;
    if (Array.isArray(value)) {
      if (isArrayIndex(part) && Number(part) < value.length) walk(value[Number(part)], i + 1);
      for (const element of value) {
        if (isPlainObject(element)) walk(element, i);
      }
    } else if (isPlainObject(value) && Object.hasOwn(value, part)) {
      walk(value[part], i + 1);
    }
  };
  walk(doc, 0);
  return out;
}

/** Deep copy of documents and arrays; immutable BSON instances are shared, mutable ones copied. */
/**
 * Whether two documents serialize to the same BSON bytes: mongod's no-op test for an update
 * (`pipeline_executor.cpp` and the update driver compare the result with the stored document
 * byte for byte). A walk answers first, without serializing, when it can prove the answer;
 * only an unproven case is decided by serializing both.
 *
 * The walk pairs values that sit at the same path (the same field names in the same order, and
 * arrays of the same length), so that a path of names leads to one element in each document's
 * bytes (a JS object cannot hold a name twice). It proves the bytes EQUAL when every pair is:
 * the same strings, booleans, numbers (`Object.is`, so `0` and `-0`, which serialize
 * differently, are not the same; NaN is left to the bytes), the same object, or dates of the
 * same time. It proves them DIFFERENT as soon as one pair at the same path is two well-formed
 * strings, two numbers (neither NaN) or two booleans that differ: equal bytes would decode to
 * equal values at every path, and such pairs always encode differently (a number serializes as
 * int32 or double by its value, so two different numbers never share bytes; a string with a lone
 * surrogate is written as U+FFFD, so two such strings may, hence "well-formed"). Everything else
 * (different names, lengths or types, `undefined` against `null`, which js-bson writes alike,
 * BSON class instances) is unproven, and a proof of difference elsewhere still decides.
 */
export function sameBytes(a: Document, b: Document): boolean {
  const verdict = byteProof(a, b);
  if (verdict !== UNPROVEN) return verdict === SAME;
  return Buffer.from(serialize(a)).equals(Buffer.from(serialize(b)));
}

const SAME = 1;
const UNPROVEN = 0;
const DIFFERENT = -1;
type ByteProof = typeof SAME | typeof UNPROVEN | typeof DIFFERENT;
/** In unicode mode a paired surrogate is one code point; only a lone one is in `Cs`. */
const LONE_SURROGATE = /\p{Cs}/u;

function byteProof(a: unknown, b: unknown): ByteProof {
  if (typeof a === 'number') {
    if (typeof b !== 'number' || Number.isNaN(a) || Number.isNaN(b)) return UNPROVEN;
    return Object.is(a, b) ? SAME : DIFFERENT;
  }
  if (typeof a === 'string') {
    if (a === b) return SAME;
    if (typeof b !== 'string' || LONE_SURROGATE.test(a) || LONE_SURROGATE.test(b)) return UNPROVEN;
    return DIFFERENT;
  }
  if (typeof a === 'boolean') {
    if (typeof b !== 'boolean') return UNPROVEN;
    return a === b ? SAME : DIFFERENT;
  }
  if (a === b) return SAME;
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return UNPROVEN;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return UNPROVEN;
    let verdict: ByteProof = SAME;
    for (let i = 0; i < a.length; i++) {
      const element = byteProof(a[i], b[i]);
      if (element === DIFFERENT) return DIFFERENT;
      if (element === UNPROVEN) verdict = UNPROVEN;
    }
    return verdict;
  }
  if (a instanceof Date) {
    const t = a.getTime();
    return b instanceof Date && t === b.getTime() && !Number.isNaN(t) ? SAME : UNPROVEN;
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return UNPROVEN;
  const keys = Object.keys(a);
  const other = Object.keys(b);
  if (keys.length !== other.length) return UNPROVEN;
  let verdict: ByteProof = SAME;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (key !== other[i]) return UNPROVEN;
    const field = byteProof(a[key], b[key]);
    if (field === DIFFERENT) return DIFFERENT;
    if (field === UNPROVEN) verdict = UNPROVEN;
  }
  return verdict;
}

/**
 * A deep copy: new objects and arrays all the way down, new `Date`, `RegExp`, `Binary` and typed
 * arrays; other BSON class instances (immutable) are shared.
 *
 * A plain object is copied with a spread, which defines each own field as a data property
 * (`__proto__` included: CreateDataProperty, never the prototype setter) and is much cheaper
 * than one `defineProperty` per field; only object-valued fields are then redefined with their
 * copies through `setField`.
 */
export function cloneDocument<T>(value: T): T {
  return cloneValue(value) as T;
}

/**
 * `cloneDocument` with every field name passed through `rename`, in one walk (mingo-names.ts
 * copies a document for mingo and renames its special names).
 */
export function cloneDocumentRenamed<T>(value: T, rename: (name: string) => string): T {
  return cloneRenamed(value, rename) as T;
}

function cloneValue(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(cloneValue);
  if (!isPlainObject(value)) return cloneLeaf(value);
  const out: Document = { ...value };
  for (const k of Object.keys(out)) {
    const v = out[k];
    if (typeof v === 'object' && v !== null) setField(out, k, cloneValue(v));
  }
  return out;
}

function cloneRenamed(value: unknown, rename: (name: string) => string): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => cloneRenamed(v, rename));
  if (!isPlainObject(value)) return cloneLeaf(value);
  const keys = Object.keys(value);
  if (keys.every((k) => rename(k) === k)) {
    const out: Document = { ...value };
    for (const k of keys) {
      const v = out[k];
      if (typeof v === 'object' && v !== null) setField(out, k, cloneRenamed(v, rename));
    }
    return out;
  }
  const out: Document = {};
  for (const k of keys) setField(out, rename(k), cloneRenamed(value[k], rename));
  return out;
}

/** A copy of a non-plain object: what `bson.deserialize` gives or a caller stored. */
function cloneLeaf(value: object): unknown {
  if (value instanceof Date) return new Date(value.getTime());
  if (value instanceof RegExp) return new RegExp(value.source, value.flags);
  const tag = tagOf(value);
  if (tag === 'Binary') {
    const bin = value as Binary;
    return new Binary(Uint8Array.from(bin.buffer.subarray(0, bin.position)), bin.sub_type);
  }
  if (tag !== undefined) return value;
  if (ArrayBuffer.isView(value)) return (value as Uint8Array).slice();
  return value;
}

/** Lexicographic order of update paths (mongod ≥ 5.0): numeric names numerically. */
export function compareFieldNames(a: string, b: string): number {
  if (isArrayIndex(a) && isArrayIndex(b)) return sign(Number(a) - Number(b));
  return compareStrings(a, b);
}

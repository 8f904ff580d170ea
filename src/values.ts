/**
 * Client-side reading of documents returned by the server: dotted field access and equality of
 * the scalar values this library accepts as identities and states (see `isScalar`).
 */
import type { Document } from 'mongodb';

/**
 * The value at a dotted path (`'a.b'`), or undefined; arrays are not traversed.
 *
 * Only own properties are followed: a document that lacks `toString` must read as lacking it,
 * not as holding `Object.prototype.toString` (which, read as a version or a state, would make a
 * primitive act on a value that is in no document).
 */
export function getField(doc: Document, path: string): unknown {
  let current: unknown = doc;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Document)[segment];
  }
  return current;
}

/**
 * The value at a dotted path as a query or an aggregation reaches it, for describing what a
 * document holds: like `getField`, except that an array met before the path's end is returned
 * (the path runs through it, and MongoDB would read the array's elements, not one value).
 */
export function valueAlong(doc: Document, path: string): unknown {
  let current: unknown = doc;
  for (const segment of path.split('.')) {
    if (Array.isArray(current)) return current;
    if (typeof current !== 'object' || current === null) return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Document)[segment];
  }
  return current;
}

/** The symbol js-bson (6.x and 7.x) defines on the prototype of every BSON value class. */
const BSON_VERSION = Symbol.for('@@mdb.bson.version');

/**
 * The BSON type of a js-bson value (`'ObjectId'`, `'Decimal128'`, …), or undefined for anything
 * else.
 *
 * js-bson 6 and 7 define `_bsontype` (and the `@@mdb.bson.version` symbol) as getters on the
 * class prototypes. A plain object (prototype `Object.prototype` or null) is never a BSON value,
 * even when it carries a `_bsontype` key, as a parsed JSON request body can
 * (`{"_bsontype":"ObjectId","id":"x"}`): trusting that key would let a client pass a fake
 * ObjectId as an identity, and the driver's serialiser refuses such objects anyway.
 */
export function bsonType(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === null || proto === Object.prototype || Object.hasOwn(value, '_bsontype')) {
    return undefined;
  }
  const candidate = value as { _bsontype?: unknown; [BSON_VERSION]?: unknown };
  if (typeof candidate[BSON_VERSION] !== 'number') return undefined;
  return typeof candidate._bsontype === 'string' ? candidate._bsontype : undefined;
}

interface BsonLike {
  toHexString?: () => string;
  toString(): string;
  valueOf(): unknown;
  sub_type?: unknown;
  buffer?: Uint8Array;
}

/** The number a BSON numeric value holds (number, Int32, Double, Long, Decimal128); else undefined. */
export function numericValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const type = bsonType(value);
  if (type === 'Long' || type === 'Int32' || type === 'Double' || type === 'Decimal128') {
    return Number((value as BsonLike).toString());
  }
  return undefined;
}

/**
 * MongoDB equality for scalars: numbers compare by value across int/long/double, Dates by
 * time, ObjectId/Decimal128 by value, Binary by subtype and bytes.
 */
export function sameScalar(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const na = numericValue(a);
  const nb = numericValue(b);
  if (na !== undefined || nb !== undefined) return na !== undefined && na === nb;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  const ta = bsonType(a);
  const tb = bsonType(b);
  if (ta === undefined || ta !== tb) return false;
  if (ta === 'Binary') {
    const x = a as BsonLike;
    const y = b as BsonLike;
    return (
      x.sub_type === y.sub_type && Buffer.from(x.buffer ?? []).equals(Buffer.from(y.buffer ?? []))
    );
  }
  return String(a) === String(b);
}

/**
 * Client-side reading of documents returned by the server: dotted field access and equality of
 * the scalar values this library accepts as identities and states (see `isScalar`).
 */
import type { Document } from 'mongodb';

/** The value at a dotted path (`'a.b'`), or undefined; arrays are not traversed. */
export function getField(doc: Document, path: string): unknown {
  let current: unknown = doc;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    current = (current as Document)[segment];
  }
  return current;
}

interface BsonLike {
  _bsontype?: unknown;
  toHexString?: () => string;
  toString(): string;
  valueOf(): unknown;
  sub_type?: unknown;
  buffer?: Uint8Array;
}

/** The number a BSON numeric value holds (number, Int32, Double, Long, Decimal128); else undefined. */
export function numericValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const type = (value as BsonLike | null)?._bsontype;
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
  const ta = (a as BsonLike | null)?._bsontype;
  const tb = (b as BsonLike | null)?._bsontype;
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

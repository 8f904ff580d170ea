/**
 * Direct tests of src/values.ts, the client-side reading of returned documents, written to kill
 * the mutants the primitives' own tests left alive (npm run mutation; docs/reliability.md,
 * "Mutation testing"). No database: these are pure functions, and a wrong answer from one of
 * them makes a primitive report an outcome for a value that is in no document.
 */
import { Binary, Decimal128, Double, Int32, Long, ObjectId, UUID } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { bsonType, getField, numericValue, sameScalar } from '../../src/values.js';

describe('getField', () => {
  it('follows a dotted path through nested own properties', () => {
    expect(getField({ a: { b: { c: 7 } } }, 'a.b.c')).toBe(7);
    expect(getField({ a: { b: 1 } }, 'a')).toEqual({ b: 1 });
  });

  it('is undefined when a segment is missing', () => {
    expect(getField({ a: { b: 1 } }, 'a.x')).toBeUndefined();
    expect(getField({ a: 1 }, 'b')).toBeUndefined();
  });

  it('does not descend into scalars, null or arrays', () => {
    expect(getField({ a: 'text' }, 'a.length')).toBeUndefined();
    expect(getField({ a: 5 }, 'a.b')).toBeUndefined();
    expect(getField({ a: null }, 'a.b')).toBeUndefined();
    // an array's own 'length' and index properties are not fields of the document
    expect(getField({ a: [10, 20] }, 'a.0')).toBeUndefined();
    expect(getField({ a: [10, 20] }, 'a.length')).toBeUndefined();
  });

  it('never reads an inherited property: a document without toString lacks it', () => {
    expect(getField({}, 'toString')).toBeUndefined();
    expect(getField({ a: {} }, 'a.constructor')).toBeUndefined();
    expect(getField({ a: {} }, 'a.__proto__')).toBeUndefined();
  });

  it('reads an own property that holds null or a falsy value', () => {
    expect(getField({ a: null }, 'a')).toBeNull();
    expect(getField({ a: 0 }, 'a')).toBe(0);
    expect(getField({ a: { b: false } }, 'a.b')).toBe(false);
  });
});

describe('bsonType', () => {
  it('names real js-bson values', () => {
    expect(bsonType(new ObjectId())).toBe('ObjectId');
    expect(bsonType(Decimal128.fromString('1.5'))).toBe('Decimal128');
    expect(bsonType(Long.fromNumber(3))).toBe('Long');
    expect(bsonType(new Int32(3))).toBe('Int32');
    expect(bsonType(new Double(3))).toBe('Double');
    expect(bsonType(new Binary(Buffer.from('x')))).toBe('Binary');
  });

  it('is undefined for non-objects and null', () => {
    for (const value of [undefined, null, 1, 'ObjectId', true, 10n, Symbol('s'), () => 1]) {
      expect(bsonType(value)).toBeUndefined();
    }
  });

  it('refuses plain and null-prototype objects carrying a _bsontype key', () => {
    expect(bsonType({ _bsontype: 'ObjectId', id: 'x' })).toBeUndefined();
    const bare = Object.assign(Object.create(null), { _bsontype: 'ObjectId' });
    expect(bsonType(bare)).toBeUndefined();
  });

  it('refuses a plain object carrying the version symbol itself', () => {
    const version = Symbol.for('@@mdb.bson.version');
    expect(bsonType({ [version]: 7, _bsontype: 'ObjectId' })).toBeUndefined();
  });

  it('refuses a plain object even when Object.prototype was polluted with _bsontype', () => {
    // Another library's prototype pollution must not turn a request body into a BSON value:
    // the plain-object check, not the own-key check, is what refuses this one.
    const version = Symbol.for('@@mdb.bson.version');
    Object.defineProperty(Object.prototype, '_bsontype', {
      value: 'ObjectId',
      configurable: true,
    });
    try {
      expect(bsonType({ [version]: 7 })).toBeUndefined();
      expect(bsonType(new ObjectId())).toBe('ObjectId');
    } finally {
      delete (Object.prototype as { _bsontype?: unknown })._bsontype;
    }
    expect(Object.hasOwn(Object.prototype, '_bsontype')).toBe(false);
  });

  it('refuses an instance whose own _bsontype key shadows the prototype getter', () => {
    const fake = Object.create(ObjectId.prototype) as object;
    Object.defineProperty(fake, '_bsontype', { value: 'Decimal128', enumerable: true });
    expect(bsonType(fake)).toBeUndefined();
  });

  it('refuses class instances without the js-bson version symbol', () => {
    class Pretender {
      get _bsontype() {
        return 'ObjectId';
      }
    }
    expect(bsonType(new Pretender())).toBeUndefined();
    expect(bsonType(new Date())).toBeUndefined();
  });

  it('refuses a version symbol that is not a number, and a _bsontype that is not a string', () => {
    const version = Symbol.for('@@mdb.bson.version');
    class TextVersion {
      get [version]() {
        return '7';
      }
      get _bsontype() {
        return 'ObjectId';
      }
    }
    class NumericType {
      get [version]() {
        return 7;
      }
      get _bsontype() {
        return 7;
      }
    }
    class Genuine {
      get [version]() {
        return 7;
      }
      get _bsontype() {
        return 'ObjectId';
      }
    }
    expect(bsonType(new TextVersion())).toBeUndefined();
    expect(bsonType(new NumericType())).toBeUndefined();
    // the control: the same shape with a numeric version and a string type is accepted
    expect(bsonType(new Genuine())).toBe('ObjectId');
  });
});

describe('numericValue', () => {
  it('reads numbers and every BSON numeric type', () => {
    expect(numericValue(4)).toBe(4);
    expect(numericValue(-0.5)).toBe(-0.5);
    expect(numericValue(Long.fromNumber(12))).toBe(12);
    expect(numericValue(new Int32(-3))).toBe(-3);
    expect(numericValue(new Double(2.25))).toBe(2.25);
    expect(numericValue(Decimal128.fromString('9.75'))).toBe(9.75);
  });

  it('is undefined for non-numeric values, numeric strings included', () => {
    for (const value of ['5', new ObjectId(), new Date(0), null, undefined, true, { n: 1 }]) {
      expect(numericValue(value)).toBeUndefined();
    }
    expect(numericValue(new Binary(Buffer.from('5')))).toBeUndefined();
  });
});

describe('sameScalar', () => {
  it('compares numbers by value across int, long, double and decimal', () => {
    expect(sameScalar(1, Long.fromNumber(1))).toBe(true);
    expect(sameScalar(new Int32(2), new Double(2))).toBe(true);
    expect(sameScalar(Decimal128.fromString('3'), 3)).toBe(true);
    expect(sameScalar(1, 2)).toBe(false);
    expect(sameScalar(Long.fromNumber(1), new Int32(2))).toBe(false);
  });

  it('never equates a number with a non-number, in either order', () => {
    expect(sameScalar(1, '1')).toBe(false);
    expect(sameScalar('1', 1)).toBe(false);
    expect(sameScalar(new Int32(0), null)).toBe(false);
    expect(sameScalar(undefined, new Int32(0))).toBe(false);
    expect(sameScalar(0, new Date(0))).toBe(false);
    expect(sameScalar(new Date(0), 0)).toBe(false);
  });

  it('compares Dates by time, and a Date with nothing else', () => {
    expect(sameScalar(new Date(5), new Date(5))).toBe(true);
    expect(sameScalar(new Date(5), new Date(6))).toBe(false);
    expect(sameScalar(new Date(5), new Date(5).toString())).toBe(false);
    expect(sameScalar(new Date(5).toString(), new Date(5))).toBe(false);
    expect(sameScalar(new Date(5), new ObjectId('000000000000000000000005'))).toBe(false);
  });

  it('compares ObjectIds by value', () => {
    const hex = '64b7f0c2a1b2c3d4e5f60718';
    expect(sameScalar(new ObjectId(hex), new ObjectId(hex))).toBe(true);
    expect(sameScalar(new ObjectId(hex), new ObjectId())).toBe(false);
  });

  it('never equates values of different BSON types, or a BSON value with its text', () => {
    const hex = '64b7f0c2a1b2c3d4e5f60718';
    expect(sameScalar(new ObjectId(hex), hex)).toBe(false);
    expect(sameScalar(hex, new ObjectId(hex))).toBe(false);
    const uuid = new UUID();
    expect(sameScalar(uuid, uuid.toHexString())).toBe(false);
  });

  it('compares Binary by subtype and bytes', () => {
    const bytes = Buffer.from([1, 2, 3]);
    expect(sameScalar(new Binary(bytes, 0), new Binary(Buffer.from([1, 2, 3]), 0))).toBe(true);
    expect(sameScalar(new Binary(bytes, 0), new Binary(bytes, 5))).toBe(false);
    expect(sameScalar(new Binary(bytes, 0), new Binary(Buffer.from([1, 2, 4]), 0))).toBe(false);
  });

  it('compares a Binary look-alike without bytes as holding no bytes', () => {
    // bsonType accepts any class instance carrying the js-bson version symbol; a js-bson Binary
    // always has a buffer, a look-alike may not. Without bytes both sides read as empty.
    const version = Symbol.for('@@mdb.bson.version');
    class Bytesless {
      readonly sub_type = 0;
      get [version]() {
        return 7;
      }
      get _bsontype() {
        return 'Binary';
      }
    }
    expect(sameScalar(new Bytesless(), new Bytesless())).toBe(true);
    expect(sameScalar(new Bytesless(), new Binary(Buffer.alloc(0), 0))).toBe(true);
    expect(sameScalar(new Binary(Buffer.alloc(0), 0), new Bytesless())).toBe(true);
  });

  it('distinguishes different strings and booleans', () => {
    expect(sameScalar('a', 'a')).toBe(true);
    expect(sameScalar('a', 'b')).toBe(false);
    expect(sameScalar(true, false)).toBe(false);
    expect(sameScalar(true, 'true')).toBe(false);
  });
});

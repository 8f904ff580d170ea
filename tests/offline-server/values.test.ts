/**
 * BSON comparison order and equality.
 * https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
 * mongod src/mongo/bson/bsonelement.cpp (compareElementValues, canonicalizeBSONType).
 */
import {
  Binary,
  BSONRegExp,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  serialize,
  Timestamp,
} from 'bson';
import { describe, expect, it } from 'vitest';
import {
  bsonTypeName,
  cloneDocument,
  compareValues,
  getPath,
  getPathValues,
  sameBytes,
  valueKey,
  valuesEqual,
} from '../../offline-server/src/values.js';

describe('compareValues: order across types', () => {
  it('orders MinKey < null < numbers < strings < objects < arrays < binData < ObjectId < bool < Date < Timestamp < regex < MaxKey', () => {
    const ordered = [
      new MinKey(),
      null,
      1,
      'a',
      { a: 1 },
      [1],
      new Binary(Buffer.from('x')),
      new ObjectId('000000000000000000000000'),
      false,
      new Date(0),
      new Timestamp({ t: 1, i: 1 }),
      /a/,
      new MaxKey(),
    ];
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(compareValues(ordered[i], ordered[i + 1]), `${i}`).toBe(-1);
      expect(compareValues(ordered[i + 1], ordered[i]), `${i}`).toBe(1);
    }
  });

  it('treats missing (undefined) as null', () => {
    expect(compareValues(undefined, null)).toBe(0);
  });
});

describe('compareValues: numbers compare numerically across int, long, double and decimal', () => {
  it('equates 1, 1.0, Long(1), Int32(1), Double(1) and Decimal128("1.00")', () => {
    for (const v of [new Long(1), new Int32(1), new Double(1), Decimal128.fromString('1.00')]) {
      expect(compareValues(1, v)).toBe(0);
      expect(valuesEqual(v, 1)).toBe(true);
    }
  });

  it('compares Long exactly beyond 2^53 and against doubles', () => {
    const big = Long.fromString('9007199254740993'); // 2^53 + 1
    expect(compareValues(big, 9007199254740992)).toBe(1);
    expect(compareValues(Long.fromString('9223372036854775807'), 1e300)).toBe(-1);
    expect(compareValues(new Long(3), 2.5)).toBe(1);
  });

  it('compares Decimal128 exactly (0.1 decimal is not the double 0.1)', () => {
    expect(compareValues(Decimal128.fromString('0.1'), 0.1)).not.toBe(0);
    expect(compareValues(Decimal128.fromString('2.5'), 2.5)).toBe(0);
    expect(compareValues(Decimal128.fromString('-Infinity'), -1e308)).toBe(-1);
  });

  it('orders NaN below all numbers and equal to itself', () => {
    expect(compareValues(Number.NaN, Number.NEGATIVE_INFINITY)).toBe(-1);
    expect(compareValues(Number.NaN, Number.NaN)).toBe(0);
    expect(compareValues(Decimal128.fromString('NaN'), Number.NaN)).toBe(0);
  });
});

describe('compareValues: within-type order', () => {
  it('orders strings by code point (UTF-8 byte order), not UTF-16 units', () => {
    expect(compareValues('B', 'a')).toBe(-1);
    // U+FF61 < U+1F600 by code point, although its UTF-16 unit is larger than the surrogate.
    expect(compareValues('\uff61', '\u{1f600}')).toBe(-1);
  });

  it('orders ObjectIds by bytes', () => {
    expect(
      compareValues(
        new ObjectId('000000000000000000000001'),
        new ObjectId('0000000000000000000000ff'),
      ),
    ).toBe(-1);
  });

  it('compares objects field by field (type, then name, then value) and shorter first', () => {
    expect(compareValues({ a: 1 }, { a: 2 })).toBe(-1);
    expect(compareValues({ a: 1 }, { b: 0 })).toBe(-1);
    expect(compareValues({ a: 1 }, { a: 1, b: 1 })).toBe(-1);
    expect(compareValues({ a: 'x' }, { a: 1 })).toBe(1); // string type > number type
  });

  it('compares arrays element-wise', () => {
    expect(compareValues([1, 2], [1, 3])).toBe(-1);
    expect(compareValues([1], [1, 0])).toBe(-1);
  });

  it('orders BinData by length, then subtype, then bytes', () => {
    expect(compareValues(new Binary(Buffer.from('zz'), 0), new Binary(Buffer.from('aaa'), 0))).toBe(
      -1,
    );
    expect(compareValues(new Binary(Buffer.from('b'), 0), new Binary(Buffer.from('a'), 4))).toBe(
      -1,
    );
  });

  it('orders booleans, dates, timestamps', () => {
    expect(compareValues(false, true)).toBe(-1);
    expect(compareValues(new Date(-1), new Date(0))).toBe(-1);
    expect(compareValues(new Timestamp({ t: 1, i: 9 }), new Timestamp({ t: 2, i: 0 }))).toBe(-1);
  });
});

describe('valuesEqual / valueKey', () => {
  it('requires the same field order for objects', () => {
    expect(valuesEqual({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(false);
    expect(valueKey({ a: 1, b: 2 })).not.toBe(valueKey({ b: 2, a: 1 }));
  });

  it('gives equal keys exactly to equal values', () => {
    const id = new ObjectId();
    const equalPairs: [unknown, unknown][] = [
      [1, new Long(1)],
      [1, Decimal128.fromString('1.000')],
      [1000, Decimal128.fromString('1E+3')],
      [0.5, Decimal128.fromString('0.50')],
      [id, new ObjectId(id.toHexString())],
      [{ a: [1, 'x'] }, { a: [new Int32(1), 'x'] }],
      [null, undefined],
      [/a/i, new BSONRegExp('a', 'i')],
      [new Date(5), new Date(5)],
    ];
    for (const [a, b] of equalPairs) {
      expect(valuesEqual(a, b)).toBe(true);
      expect(valueKey(a)).toBe(valueKey(b));
    }
    const distinct = [
      1,
      2,
      '1',
      true,
      [1],
      { a: 1 },
      null,
      new Date(1),
      new ObjectId(),
      0.1,
      Decimal128.fromString('0.1'),
    ];
    expect(new Set(distinct.map(valueKey)).size).toBe(distinct.length);
  });
});

describe('bsonTypeName', () => {
  it('names JS numbers as bson.serialize stores them', () => {
    expect(bsonTypeName(5)).toBe('int');
    expect(bsonTypeName(5.5)).toBe('double');
    expect(bsonTypeName(2 ** 40)).toBe('double');
    expect(bsonTypeName(Long.fromString('9223372036854775807'))).toBe('long');
    expect(bsonTypeName(Decimal128.fromString('1'))).toBe('decimal');
    expect(bsonTypeName(new ObjectId())).toBe('objectId');
    expect(bsonTypeName(undefined)).toBe('missing');
  });
});

describe('paths and cloning', () => {
  it('getPath follows numeric components into arrays without implicit traversal', () => {
    const doc = { a: { b: [{ c: 1 }, { c: 2 }] } };
    expect(getPath(doc, 'a.b.1.c')).toBe(2);
    expect(getPath(doc, 'a.b.c')).toBeUndefined();
    expect(getPathValues(doc, 'a.b.c')).toEqual([1, 2]);
  });

  it('cloneDocument deep-copies documents and keeps BSON classes', () => {
    const id = new ObjectId();
    const doc = {
      _id: id,
      a: { b: [1, { c: new Date(3) }] },
      bin: new Binary(Buffer.from('x'), 4),
    };
    const copy = cloneDocument(doc);
    expect(copy).toEqual(doc);
    expect(copy.a).not.toBe(doc.a);
    expect(copy._id).toBeInstanceOf(ObjectId);
    expect(copy.a.b[1]).not.toBe(doc.a.b[1]);
    expect(valuesEqual(copy, doc)).toBe(true);
  });
});

describe('sameBytes: the no-op test of updates', () => {
  it('answers exactly as comparing the serialized bytes does, on a table of pairs', () => {
    // sameBytes proves equality by a walk before serializing; the walk must never say "same"
    // where the bytes differ, and the answer must always be the bytes' one.
    const id = new ObjectId();
    const date = new Date(1_700_000_000_000);
    const nested = { a: [1, { b: 'x' }] };
    const pairs: [unknown, unknown][] = [
      [1, 1],
      [1, 2],
      [0, -0],
      [-0, -0],
      [Number.NaN, Number.NaN],
      [1, new Int32(1)],
      [1, new Double(1)],
      [1.5, new Double(1.5)],
      [2 ** 31, 2 ** 31],
      [1, Long.fromNumber(1)],
      [Long.fromNumber(5), Long.fromNumber(5)],
      [Decimal128.fromString('1.0'), Decimal128.fromString('1.00')],
      ['a', 'a'],
      ['a', 'b'],
      [true, true],
      [true, 1],
      [null, null],
      [null, undefined],
      [undefined, undefined],
      [id, id],
      [id, new ObjectId(id.toHexString())],
      [date, new Date(date.getTime())],
      [date, new Date(date.getTime() + 1)],
      [new Date(Number.NaN), new Date(Number.NaN)],
      [nested, nested],
      [nested, structuredClone(nested)],
      [
        { a: 1, b: 2 },
        { b: 2, a: 1 },
      ],
      [{ a: 1 }, { a: 1, b: undefined }],
      [
        { a: 1, b: undefined },
        { a: 1, b: null },
      ],
      [
        [1, 2],
        [1, 2],
      ],
      [
        [1, 2],
        [2, 1],
      ],
      [[1], [1, 2]],
      [[], {}],
      [{ a: [] }, { a: {} }],
      [new Binary(Buffer.from('ab')), new Binary(Buffer.from('ab'))],
      [new Binary(Buffer.from('ab')), new Binary(Buffer.from('ac'))],
      [/a/i, /a/i],
      [new BSONRegExp('a', 'i'), /a/i],
      [new Timestamp({ t: 1, i: 1 }), new Timestamp({ t: 1, i: 1 })],
      [new MinKey(), new MinKey()],
      [new MaxKey(), new MinKey()],
    ];
    for (const [a, b] of pairs) {
      for (const [x, y] of [
        [a, b],
        [b, a],
      ]) {
        const docX = { _id: 1, v: x };
        const docY = { _id: 1, v: y };
        const bytes = Buffer.from(serialize(docX)).equals(Buffer.from(serialize(docY)));
        expect(sameBytes(docX, docY), `${String(x)} / ${String(y)}`).toBe(bytes);
      }
    }
    // The table holds both answers, and pairs the walk decides alone.
    expect(sameBytes({ a: 0 }, { a: -0 })).toBe(false);
    expect(
      sameBytes(
        { a: { b: [1, 'x', true, date] } },
        { a: { b: [1, 'x', true, new Date(date.getTime())] } },
      ),
    ).toBe(true);
  });
});

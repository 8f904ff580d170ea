/**
 * The query language: https://www.mongodb.com/docs/manual/reference/operator/query/ ,
 * mongod src/mongo/db/matcher/ (expression_parser.cpp, path.cpp), and
 * https://www.mongodb.com/docs/manual/reference/method/cursor.sort/ for sort order.
 */
import type { Document } from 'bson';
import { Decimal128, Long, MaxKey, MinKey, ObjectId } from 'bson';
import { describe, expect, it } from 'vitest';
import {
  applyProjection,
  compareBySort,
  compileFilter,
  equalityFieldsForUpsert,
  projector,
} from '../../offline-server/src/query.js';
import { serverError } from './helpers.js';

const matches = (filter: Document, doc: Document): boolean => compileFilter(filter)(doc);

describe('compileFilter: equality with BSON types', () => {
  it('matches ObjectId by value', () => {
    const id = new ObjectId();
    expect(matches({ _id: new ObjectId(id.toHexString()) }, { _id: id })).toBe(true);
    expect(matches({ _id: new ObjectId() }, { _id: id })).toBe(false);
  });

  it('matches numbers across int, Long, double and Decimal128', () => {
    expect(matches({ n: new Long(3) }, { n: 3 })).toBe(true);
    expect(matches({ n: { $gt: new Long(3) } }, { n: 4 })).toBe(true);
    expect(matches({ n: { $gt: new Long(3) } }, { n: 3 })).toBe(false);
    expect(matches({ n: Decimal128.fromString('2.50') }, { n: 2.5 })).toBe(true);
    expect(matches({ n: { $lte: 2 } }, { n: Decimal128.fromString('1.99') })).toBe(true);
  });

  it('matches dates by instant', () => {
    expect(matches({ at: { $lt: new Date(10) } }, { at: new Date(5) })).toBe(true);
  });

  it('compares subdocuments exactly, field order included', () => {
    expect(matches({ a: { x: 1, y: 2 } }, { a: { x: 1, y: 2 } })).toBe(true);
    expect(matches({ a: { x: 1, y: 2 } }, { a: { y: 2, x: 1 } })).toBe(false);
    expect(matches({ a: { x: 1 } }, { a: { x: 1, y: 2 } })).toBe(false);
  });
});

describe('compileFilter: null and missing', () => {
  it('{a: null} matches null and missing, $ne: null only present non-null values', () => {
    expect(matches({ a: null }, {})).toBe(true);
    expect(matches({ a: null }, { a: null })).toBe(true);
    expect(matches({ a: null }, { a: 0 })).toBe(false);
    expect(matches({ a: { $ne: null } }, {})).toBe(false);
    expect(matches({ a: { $ne: null } }, { a: 1 })).toBe(true);
  });

  it('dotted null matches object array elements lacking the field (null_query_semantics.js)', () => {
    expect(matches({ 'a.b': null }, { a: [{ b: 1 }, { c: 1 }] })).toBe(true);
    expect(matches({ 'a.b': null }, { a: 4 })).toBe(true);
    expect(matches({ 'a.b': null }, { a: [1] })).toBe(false);
    expect(matches({ 'a.b': { $ne: null } }, { a: [{ b: 1 }, { c: 1 }] })).toBe(false);
  });
});

describe('compileFilter: arrays', () => {
  it('equality matches an element or the whole array', () => {
    expect(matches({ tags: 'b' }, { tags: ['a', 'b'] })).toBe(true);
    expect(matches({ tags: ['a', 'b'] }, { tags: ['a', 'b'] })).toBe(true);
    expect(matches({ tags: ['b', 'a'] }, { tags: ['a', 'b'] })).toBe(false);
    expect(matches({ tags: ['a'] }, { tags: [['a'], 'x'] })).toBe(true);
  });

  it('dotted paths traverse arrays of documents', () => {
    const doc = {
      items: [
        { sku: 'x', qty: 1 },
        { sku: 'y', qty: 5 },
      ],
    };
    expect(matches({ 'items.sku': 'y' }, doc)).toBe(true);
    expect(matches({ 'items.qty': { $gt: 4 } }, doc)).toBe(true);
    expect(matches({ 'items.1.sku': 'y' }, doc)).toBe(true);
    expect(matches({ 'items.0.sku': 'y' }, doc)).toBe(false);
  });

  it('$elemMatch requires one element to satisfy every condition', () => {
    const doc = {
      items: [
        { sku: 'x', qty: 1 },
        { sku: 'y', qty: 5 },
      ],
    };
    expect(matches({ items: { $elemMatch: { sku: 'x', qty: { $gt: 4 } } } }, doc)).toBe(false);
    expect(matches({ items: { $elemMatch: { sku: 'y', qty: { $gt: 4 } } } }, doc)).toBe(true);
    expect(
      matches({ scores: { $elemMatch: { $gte: 80, $lt: 85 } } }, { scores: [79, 90, 82] }),
    ).toBe(true);
    expect(matches({ scores: { $elemMatch: { $gte: 80, $lt: 85 } } }, { scores: [79, 90] })).toBe(
      false,
    );
  });

  it('$size, $all, $in, $nin', () => {
    expect(matches({ a: { $size: 2 } }, { a: [1, 2] })).toBe(true);
    expect(matches({ a: { $size: 1 } }, { a: [1, 2] })).toBe(false);
    expect(matches({ a: { $all: [2, 1] } }, { a: [1, 2, 3] })).toBe(true);
    expect(matches({ a: { $all: [2, 4] } }, { a: [1, 2, 3] })).toBe(false);
    expect(matches({ a: { $all: [] } }, { a: [1] })).toBe(false);
    expect(matches({ a: { $in: [5, 3] } }, { a: [1, 3] })).toBe(true);
    expect(matches({ a: { $in: [null] } }, {})).toBe(true);
    expect(matches({ a: { $nin: [1] } }, { a: [1, 2] })).toBe(false);
    expect(matches({ a: { $in: [/^x/] } }, { a: 'xyz' })).toBe(true);
  });
});

describe('compileFilter: comparison type bracketing', () => {
  it('$gt/$lt compare only values of the same type', () => {
    expect(matches({ a: { $gt: 1 } }, { a: 'x' })).toBe(false);
    expect(matches({ a: { $lt: 'z' } }, { a: 5 })).toBe(false);
    expect(matches({ a: { $gte: null } }, {})).toBe(true);
    expect(matches({ a: { $gt: null } }, { a: 1 })).toBe(false);
  });

  it('MinKey and MaxKey bounds compare against every type', () => {
    expect(matches({ a: { $gt: new MinKey() } }, { a: 'x' })).toBe(true);
    expect(matches({ a: { $lt: new MaxKey() } }, { a: new ObjectId() })).toBe(true);
  });

  it('NaN matches only NaN through the inclusive operators', () => {
    expect(matches({ a: { $lt: 5 } }, { a: Number.NaN })).toBe(false);
    expect(matches({ a: { $gte: Number.NaN } }, { a: Number.NaN })).toBe(true);
    expect(matches({ a: Number.NaN }, { a: Number.NaN })).toBe(true);
  });
});

describe('compileFilter: element, evaluation and logical operators', () => {
  it('$exists', () => {
    expect(matches({ a: { $exists: true } }, { a: null })).toBe(true);
    expect(matches({ a: { $exists: false } }, {})).toBe(true);
    expect(matches({ 'a.b': { $exists: true } }, { a: [{ c: 1 }, { b: 2 }] })).toBe(true);
  });

  it('$type by alias, code, "number" and arrays', () => {
    expect(matches({ a: { $type: 'string' } }, { a: 'x' })).toBe(true);
    expect(matches({ a: { $type: 2 } }, { a: 'x' })).toBe(true);
    expect(matches({ a: { $type: 'objectId' } }, { a: new ObjectId() })).toBe(true);
    expect(matches({ a: { $type: 'number' } }, { a: Decimal128.fromString('1') })).toBe(true);
    expect(matches({ a: { $type: 'long' } }, { a: Long.fromString('9223372036854775807') })).toBe(
      true,
    );
    expect(matches({ a: { $type: 'array' } }, { a: [] })).toBe(true);
    expect(matches({ a: { $type: ['double', 'string'] } }, { a: [1.5] })).toBe(true);
    expect(serverError(() => compileFilter({ a: { $type: 'nope' } })).code).toBe(2);
  });

  it('$regex with $options, bare regexes and $not', () => {
    expect(matches({ s: { $regex: '^AB', $options: 'i' } }, { s: 'abc' })).toBe(true);
    expect(matches({ s: /^b/ }, { s: ['abc', 'bcd'] })).toBe(true);
    expect(matches({ s: { $not: /^a/ } }, { s: 'abc' })).toBe(false);
    expect(matches({ s: { $regex: 'a b # comment', $options: 'x' } }, { s: 'ab' })).toBe(true);
    expect(matches({ n: { $not: { $gt: 5 } } }, { n: 3 })).toBe(true);
  });

  it('$mod truncates', () => {
    expect(matches({ n: { $mod: [4, 1] } }, { n: 5.7 })).toBe(true);
    expect(serverError(() => compileFilter({ n: { $mod: [0, 1] } })).code).toBe(2);
  });

  it('$and, $or, $nor', () => {
    const doc = { a: 1, b: 2 };
    expect(matches({ $or: [{ a: 2 }, { b: 2 }] }, doc)).toBe(true);
    expect(matches({ $and: [{ a: 1 }, { b: 3 }] }, doc)).toBe(false);
    expect(matches({ $nor: [{ a: 2 }, { b: 3 }] }, doc)).toBe(true);
    expect(serverError(() => compileFilter({ $or: [] })).code).toBe(2);
  });

  it('$expr evaluates aggregation expressions with BSON comparisons and $$NOW', () => {
    expect(matches({ $expr: { $gt: ['$qty', '$reserved'] } }, { qty: 5, reserved: 2 })).toBe(true);
    expect(
      matches(
        { $expr: { $eq: ['$id', new ObjectId('000000000000000000000001')] } },
        { id: new ObjectId('000000000000000000000001') },
      ),
    ).toBe(true);
    expect(matches({ $expr: { $lt: ['$expiresAt', '$$NOW'] } }, { expiresAt: new Date(0) })).toBe(
      true,
    );
    // Aggregation $eq does not traverse arrays (unlike the query $eq).
    expect(matches({ $expr: { $eq: ['$a', 1] } }, { a: [1] })).toBe(false);
    expect(matches({ $expr: { $lt: ['$a', new Long(10)] } }, { a: 9 })).toBe(true);
  });

  it('rejects unknown operators with BadValue like mongod', () => {
    const top = serverError(() => compileFilter({ $foo: 1 }));
    expect(top.code).toBe(2);
    expect(top.message).toContain('unknown top level operator: $foo');
    const field = serverError(() => compileFilter({ a: { $foo: 1 } }));
    expect(field.code).toBe(2);
    expect(field.message).toBe('unknown operator: $foo');
  });
});

describe('compileFilter: positional index', () => {
  it('reports the array position the query matched', () => {
    const doc = { grades: [70, 80, 90], items: [{ k: 'a' }, { k: 'b' }] };
    expect(compileFilter({ grades: 80 }).positionalIndex(doc)).toBe(1);
    expect(compileFilter({ 'items.k': 'b' }).positionalIndex(doc)).toBe(1);
    expect(compileFilter({ items: { $elemMatch: { k: 'b' } } }).positionalIndex(doc)).toBe(1);
    expect(compileFilter({ grades: { $gte: 85 } }).positionalIndex(doc)).toBe(2);
    expect(compileFilter({ x: 1 }).positionalIndex(doc)).toBeUndefined();
  });
});

describe('compareBySort', () => {
  it('sorts mixed types in BSON order, missing as null', () => {
    const docs = [
      { v: 'x' },
      { v: true },
      {},
      { v: 2 },
      { v: new ObjectId('000000000000000000000001') },
    ];
    const sorted = [...docs].sort(compareBySort({ v: 1 })).map((d) => d.v);
    expect(sorted).toEqual([undefined, 2, 'x', docs[4]?.v, true]);
  });

  it('uses the smallest array element ascending and the largest descending; [] below null', () => {
    const docs = [{ _id: 1, v: [1, 9] }, { _id: 2, v: 5 }, { _id: 3, v: [] }, { _id: 4 }];
    expect([...docs].sort(compareBySort({ v: 1 })).map((d) => d._id)).toEqual([3, 4, 1, 2]);
    expect([...docs].sort(compareBySort({ v: -1 })).map((d) => d._id)).toEqual([1, 2, 4, 3]);
  });

  it('compound and dotted keys', () => {
    const docs = [
      { a: { b: 2 }, c: 1 },
      { a: { b: 1 }, c: 2 },
      { a: { b: 1 }, c: 1 },
    ];
    expect([...docs].sort(compareBySort({ 'a.b': 1, c: -1 }))).toEqual([docs[1], docs[2], docs[0]]);
  });

  it('rejects directions other than 1 and -1', () => {
    expect(serverError(() => compareBySort({ a: 2 })).code).toBe(15975);
  });
});

describe('applyProjection', () => {
  const doc = {
    _id: 1,
    a: 1,
    b: { c: 2, d: 3 },
    arr: [{ x: 1, y: 2 }, { x: 3, y: 4 }, 7],
    n: [1, 2, 3, 4],
  };

  it('inclusion keeps _id unless excluded; dotted paths into documents and arrays', () => {
    expect(applyProjection(doc, { a: 1 })).toEqual({ _id: 1, a: 1 });
    expect(applyProjection(doc, { a: 1, _id: 0 })).toEqual({ a: 1 });
    expect(applyProjection(doc, { 'b.c': 1 })).toEqual({ _id: 1, b: { c: 2 } });
    expect(applyProjection(doc, { 'arr.x': 1 })).toEqual({ _id: 1, arr: [{ x: 1 }, { x: 3 }] });
  });

  it('exclusion removes fields, keeps scalars in arrays', () => {
    expect(applyProjection(doc, { b: 0, n: 0, arr: 0 })).toEqual({ _id: 1, a: 1 });
    expect(applyProjection(doc, { 'arr.y': 0, b: 0, n: 0 })).toEqual({
      _id: 1,
      a: 1,
      arr: [{ x: 1 }, { x: 3 }, 7],
    });
  });

  it('mixing inclusion and exclusion is an error (31254 / 31253)', () => {
    expect(serverError(() => applyProjection(doc, { a: 1, b: 0 })).code).toBe(31254);
    expect(serverError(() => applyProjection(doc, { b: 0, a: 1 })).code).toBe(31253);
  });

  it('$slice, $elemMatch, positional and expressions', () => {
    expect(applyProjection(doc, { n: { $slice: 2 } }).n).toEqual([1, 2]);
    expect(applyProjection(doc, { n: { $slice: -1 } })).toEqual({ ...doc, n: [4] });
    expect(applyProjection(doc, { n: { $slice: [1, 2] } }).n).toEqual([2, 3]);
    expect(applyProjection(doc, { arr: { $elemMatch: { x: 3 } } })).toEqual({
      _id: 1,
      arr: [{ x: 3, y: 4 }],
    });
    expect(applyProjection(doc, { 'n.$': 1 }, { n: 3 })).toEqual({ _id: 1, n: [3] });
    expect(applyProjection(doc, { total: { $add: ['$a', 1] } })).toEqual({ _id: 1, total: 2 });
  });
});

describe('projector (find: one parse for the documents of one command)', () => {
  const docs = [
    { _id: 1, a: 1, n: [1, 2, 3] },
    { _id: 2, a: 5 },
    { _id: 3, n: [3, 4] },
  ];

  it('projects each document as applyProjection does', () => {
    const projections: Document[] = [
      { a: 1 },
      { a: 0 },
      { n: { $slice: -1 }, _id: 0 },
      { total: { $add: [{ $ifNull: ['$a', 0] }, 1] }, _id: 0 },
      { 'n.$': 1 },
    ];
    for (const projection of projections) {
      const filter = Object.hasOwn(projection, 'n.$') ? { n: 3 } : undefined;
      const project = projector(projection);
      for (const d of docs.filter((x) => filter === undefined || x.n !== undefined)) {
        expect(project(d, filter)).toEqual(applyProjection(d, projection, filter));
      }
    }
    expect(projector(undefined)(docs[0] as Document)).toBe(docs[0]);
    expect(projector({})(docs[0] as Document)).toBe(docs[0]);
  });

  it('parses the projection when the first document comes, so no document means no error', () => {
    expect(() => projector({ a: 1, b: 0 })).not.toThrow();
    const project = projector({ a: 1, b: 0 });
    expect(serverError(() => project(docs[0] as Document)).code).toBe(31254);
  });
});

describe('equalityFieldsForUpsert', () => {
  it('collects equality and $eq, through $and, but not ranges, $in, $or or $expr', () => {
    expect(
      equalityFieldsForUpsert({
        a: 1,
        b: { $eq: 2 },
        c: { $gt: 1 },
        d: { $in: [1] },
        $and: [{ e: 3 }, { $and: [{ 'f.g': 4 }] }],
        $or: [{ h: 1 }],
        $expr: { $eq: ['$i', 1] },
      }),
    ).toEqual([
      ['a', 1],
      ['b', 2],
      ['e', 3],
      ['f.g', 4],
    ]);
  });
});

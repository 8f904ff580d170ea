/**
 * The aggregate command's pipeline (https://www.mongodb.com/docs/manual/reference/operator/aggregation-pipeline/)
 * and index keys (https://www.mongodb.com/docs/manual/core/index-multikey/ ,
 * mongod src/mongo/db/index/btree_key_generator.cpp).
 */
import { Decimal128, ObjectId } from 'bson';
import { describe, expect, it } from 'vitest';
import { runPipeline } from '../../offline-server/src/aggregate.js';
import { indexKeys, matchesPartialFilter } from '../../offline-server/src/index-keys.js';
import { serverError } from './helpers.js';

const a = new ObjectId('000000000000000000000001');
const b = new ObjectId('000000000000000000000002');
const docs = [
  { _id: 1, owner: a, qty: 5, tags: ['x', 'y'], price: Decimal128.fromString('1.5') },
  { _id: 2, owner: b, qty: 2, tags: ['y'] },
  { _id: 3, owner: new ObjectId(a.toHexString()), qty: 7, tags: [] },
];

describe('runPipeline', () => {
  it("runs the driver's countDocuments pipeline", () => {
    expect(
      runPipeline(docs, [{ $match: { qty: { $gte: 5 } } }, { $group: { _id: 1, n: { $sum: 1 } } }]),
    ).toEqual([{ _id: 1, n: 2 }]);
    expect(runPipeline([], [{ $match: {} }, { $group: { _id: 1, n: { $sum: 1 } } }])).toEqual([]);
    expect(
      runPipeline(docs, [
        { $match: {} },
        { $skip: 1 },
        { $limit: 1 },
        { $group: { _id: 1, n: { $sum: 1 } } },
      ]),
    ).toEqual([{ _id: 1, n: 1 }]);
  });

  it('$match uses compileFilter semantics (ObjectId equality)', () => {
    expect(
      runPipeline(docs, [{ $match: { owner: new ObjectId(a.toHexString()) } }]).map((d) => d._id),
    ).toEqual([1, 3]);
  });

  it('$group by ObjectId with accumulators', () => {
    const out = runPipeline(docs, [
      {
        $group: {
          _id: '$owner',
          total: { $sum: '$qty' },
          avg: { $avg: '$qty' },
          min: { $min: '$qty' },
          max: { $max: '$qty' },
          all: { $push: '$_id' },
          set: { $addToSet: '$qty' },
          first: { $first: '$_id' },
          last: { $last: '$_id' },
          count: { $count: {} },
        },
      },
      { $sort: { _id: 1 } },
    ]);
    expect(out).toEqual([
      {
        _id: a,
        total: 12,
        avg: 6,
        min: 5,
        max: 7,
        all: [1, 3],
        set: [5, 7],
        first: 1,
        last: 3,
        count: 2,
      },
      { _id: b, total: 2, avg: 2, min: 2, max: 2, all: [2], set: [2], first: 2, last: 2, count: 1 },
    ]);
  });

  it('$project, $addFields/$set, $unset, $unwind, $replaceRoot, $count, $sort, $skip, $limit', () => {
    expect(runPipeline(docs, [{ $project: { qty: 1 } }, { $limit: 1 }])).toEqual([
      { _id: 1, qty: 5 },
    ]);
    expect(
      runPipeline(docs, [
        { $set: { double: { $multiply: ['$qty', 2] } } },
        { $unset: ['tags', 'owner', 'price'] },
        { $limit: 1 },
      ]),
    ).toEqual([{ _id: 1, qty: 5, double: 10 }]);
    expect(runPipeline(docs, [{ $unwind: '$tags' }, { $project: { tags: 1, _id: 0 } }])).toEqual([
      { tags: 'x' },
      { tags: 'y' },
      { tags: 'y' },
    ]);
    expect(
      runPipeline(docs, [
        { $replaceRoot: { newRoot: { q: '$qty' } } },
        { $sort: { q: -1 } },
        { $skip: 1 },
      ]),
    ).toEqual([{ q: 5 }, { q: 2 }]);
    expect(runPipeline(docs, [{ $count: 'n' }])).toEqual([{ n: 3 }]);
  });

  it('$sum keeps Decimal128 and Long exact', () => {
    const money = [
      { p: Decimal128.fromString('0.10') },
      { p: Decimal128.fromString('0.20') },
      { p: 'n/a' },
    ];
    expect(String(runPipeline(money, [{ $group: { _id: null, t: { $sum: '$p' } } }])[0]?.t)).toBe(
      '0.30',
    );
  });

  it('$sort orders mixed types in BSON order', () => {
    const mixed = [
      { _id: 1, v: true },
      { _id: 2, v: 'a' },
      { _id: 3, v: 1 },
      { _id: 4, v: b },
    ];
    expect(runPipeline(mixed, [{ $sort: { v: 1 } }]).map((d) => d._id)).toEqual([3, 2, 4, 1]);
  });

  it('does not mutate its input', () => {
    const input = [{ _id: 1, a: { b: 1 } }];
    runPipeline(input, [{ $set: { 'a.c': 2 } }]);
    expect(input).toEqual([{ _id: 1, a: { b: 1 } }]);
  });

  it('refuses unknown stages like mongod (40324) and unimplemented ones clearly', () => {
    expect(serverError(() => runPipeline(docs, [{ $bogus: {} }])).code).toBe(40324);
    const lookup = serverError(() => runPipeline(docs, [{ $lookup: { from: 'x', as: 'y' } }]));
    expect(lookup.code).toBe(59);
    expect(lookup.message).toContain('does not implement');
    expect(serverError(() => runPipeline(docs, [{ $match: {}, $limit: 1 }])).code).toBe(40323);
  });
});

describe('indexKeys', () => {
  it('a missing field indexes as null, like an explicit null', () => {
    expect(indexKeys({ _id: 1 }, { email: 1 })).toEqual(
      indexKeys({ _id: 2, email: null }, { email: 1 }),
    );
  });

  it('equal values from different numeric types give the same key', () => {
    expect(indexKeys({ n: 1 }, { n: 1 })).toEqual(
      indexKeys({ n: Decimal128.fromString('1.0') }, { n: -1 }),
    );
  });

  it('arrays are multikey: one key per element; [] differs from null', () => {
    const keys = indexKeys({ tags: ['a', 'b', 'a'] }, { tags: 1 });
    expect(keys).toHaveLength(2);
    expect(keys).toEqual(expect.arrayContaining(indexKeys({ tags: 'a' }, { tags: 1 })));
    expect(indexKeys({ tags: [] }, { tags: 1 })).not.toEqual(indexKeys({}, { tags: 1 }));
  });

  it('dotted paths through arrays of documents; elements lacking the field index null', () => {
    const keys = indexKeys({ items: [{ sku: 'x' }, { other: 1 }] }, { 'items.sku': 1 });
    expect(keys).toEqual([
      ...indexKeys({ items: { sku: 'x' } }, { 'items.sku': 1 }),
      ...indexKeys({}, { 'items.sku': 1 }),
    ]);
  });

  it('compound keys are the cartesian product; parallel arrays are refused (171)', () => {
    expect(indexKeys({ a: 1, b: [1, 2] }, { a: 1, b: 1 })).toHaveLength(2);
    expect(indexKeys({ a: 1, b: 2 }, { a: 1, b: 1 })).not.toEqual(
      indexKeys({ a: 2, b: 1 }, { a: 1, b: 1 }),
    );
    expect(serverError(() => indexKeys({ a: [1], b: [2] }, { a: 1, b: 1 })).code).toBe(171);
  });

  it('matchesPartialFilter uses the query language', () => {
    expect(matchesPartialFilter({ status: 'active' }, { status: { $eq: 'active' } })).toBe(true);
    expect(matchesPartialFilter({ qty: 0 }, { qty: { $gt: 0 } })).toBe(false);
  });
});

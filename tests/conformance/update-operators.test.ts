/**
 * Update operators and aggregation-pipeline updates.
 *
 * Sources: MongoDB manual, reference/operator/update/positional ($),
 * positional-filtered ($[<identifier>] + arrayFilters), positional-all ($[]), push ($each,
 * $sort, $slice), addToSet, pull, min, max, rename, unset, inc; tutorial/update-documents-with-
 * aggregation-pipeline (allowed stages $set/$addFields, $unset/$project, $replaceWith/
 * $replaceRoot), reference/aggregation-variables ($$NOW); server jstests
 * jstests/core/write/update/update_arrayFilters.js, update_with_pipeline.js ($match in an
 * update pipeline → InvalidOptions, 72); server src/mongo/util/safe_num.cpp (int32 overflow in
 * $inc widens to int64).
 */
import { Decimal128, type Document, Int32, Long, type ObjectId, type UpdateFilter } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('update_operators');

async function withDoc(doc: Doc) {
  const coll = t.db.collection<Doc>(t.uniqueName('ops'));
  await coll.insertOne(doc);
  return coll;
}

describe('array update operators', () => {
  // positional docs: $ stands for the first array element matched by the query.
  it("positional $ updates the element matched by the filter ('items.$.qty')", async () => {
    const coll = await withDoc({
      _id: 1,
      items: [
        { sku: 'a', qty: 1 },
        { sku: 'b', qty: 2 },
        { sku: 'c', qty: 3 },
      ],
    });
    const result = await coll.updateOne(
      { _id: 1, 'items.sku': 'b' },
      { $inc: { 'items.$.qty': 5 } },
    );
    expect(result.modifiedCount).toBe(1);
    expect((await coll.findOne({ _id: 1 }))?.items).toEqual([
      { sku: 'a', qty: 1 },
      { sku: 'b', qty: 7 },
      { sku: 'c', qty: 3 },
    ]);
  });

  // positional-filtered docs: $[<id>] updates every element matching its arrayFilters entry.
  it('$[elem] with arrayFilters updates every matching element', async () => {
    const coll = await withDoc({ _id: 1, grades: [{ score: 80 }, { score: 95 }, { score: 60 }] });
    await coll.updateOne(
      { _id: 1 },
      { $set: { 'grades.$[g].passed': true } },
      { arrayFilters: [{ 'g.score': { $gte: 70 } }] },
    );
    expect((await coll.findOne({ _id: 1 }))?.grades).toEqual([
      { score: 80, passed: true },
      { score: 95, passed: true },
      { score: 60 },
    ]);
  });

  // update_arrayFilters.js: an identifier used in the update needs an arrayFilters entry.
  it('$[elem] without a matching arrayFilters entry is rejected', async () => {
    const coll = await withDoc({ _id: 1, a: [1, 2] });
    const error = await serverError(coll.updateOne({ _id: 1 }, { $set: { 'a.$[x]': 0 } }));
    expect(error.code).toBe(2);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, a: [1, 2] });
  });

  // positional-all docs: $[] updates every element.
  it('$[] updates every element of the array', async () => {
    const coll = await withDoc({ _id: 1, items: [{ qty: 1 }, { qty: 2 }], scores: [1, 2, 3] });
    await coll.updateOne({ _id: 1 }, { $inc: { 'items.$[].qty': 10, 'scores.$[]': 100 } });
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      items: [{ qty: 11 }, { qty: 12 }],
      scores: [101, 102, 103],
    });
  });

  // push docs: $each appends several; $sort then $slice keeps a bounded, ordered array.
  it('$push with $each, $sort and $slice keeps a bounded ordered array', async () => {
    const coll = await withDoc({ _id: 1, recent: ['a', 'b'], top: [50, 70] });
    await coll.updateOne({ _id: 1 }, {
      $push: {
        recent: { $each: ['c', 'd'], $slice: -3 },
        top: { $each: [90, 10, 60], $sort: -1, $slice: 3 },
      },
    } as Document as UpdateFilter<Doc>);
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      recent: ['b', 'c', 'd'],
      top: [90, 70, 60],
    });
  });

  // push docs: pushing to a missing field creates the array.
  it('$push on a missing field creates the array', async () => {
    const coll = await withDoc({ _id: 1 });
    await coll.updateOne({ _id: 1 }, { $push: { log: 'x' } } as Document as UpdateFilter<Doc>);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, log: ['x'] });
  });

  // addToSet docs: adds only values not already present; $each adds several; an element that
  // is already there makes the update a no-op (nModified 0).
  it('$addToSet adds only missing values and is a no-op when all are present', async () => {
    const coll = await withDoc({ _id: 1, tags: ['a', 'b'] });
    const added = await coll.updateOne(
      { _id: 1 },
      { $addToSet: { tags: { $each: ['b', 'c', 'c'] } } },
    );
    expect(added.modifiedCount).toBe(1);
    expect((await coll.findOne({ _id: 1 }))?.tags).toEqual(['a', 'b', 'c']);
    const again = await coll.updateOne({ _id: 1 }, { $addToSet: { tags: 'a' } });
    expect(again.matchedCount).toBe(1);
    expect(again.modifiedCount).toBe(0);
  });

  // pull docs: removes every element equal to a value or matching a condition.
  it('$pull removes all elements equal to a value or matching a condition', async () => {
    const coll = await withDoc({
      _id: 1,
      tags: ['a', 'b', 'a', 'c'],
      items: [
        { sku: 'x', qty: 0 },
        { sku: 'y', qty: 3 },
        { sku: 'z', qty: 1 },
      ],
    });
    await coll.updateOne({ _id: 1 }, {
      $pull: { tags: 'a', items: { qty: { $lt: 2 } } },
    } as Document as UpdateFilter<Doc>);
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      tags: ['b', 'c'],
      items: [{ sku: 'y', qty: 3 }],
    });
  });
});

describe('field update operators', () => {
  // min/max docs: update only if the given value is lower/greater; otherwise no-op.
  it('$min and $max only move a value in their direction', async () => {
    const coll = await withDoc({ _id: 1, low: 10, high: 10 });
    await coll.updateOne({ _id: 1 }, { $min: { low: 5 }, $max: { high: 20 } });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, low: 5, high: 20 });
    const noop = await coll.updateOne({ _id: 1 }, { $min: { low: 7 }, $max: { high: 15 } });
    expect(noop.modifiedCount).toBe(0);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, low: 5, high: 20 });
    // min/max docs: a missing field is set to the given value.
    await coll.updateOne({ _id: 1 }, { $min: { fresh: 3 } });
    expect((await coll.findOne({ _id: 1 }))?.fresh).toBe(3);
  });

  // rename docs: moves the value (also into an embedded path); missing source is a no-op.
  it('$rename moves a field, including into an embedded path', async () => {
    const coll = await withDoc({ _id: 1, nmae: 'Ada', city: 'London' });
    await coll.updateOne({ _id: 1 }, { $rename: { nmae: 'name', city: 'address.city' } });
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      name: 'Ada',
      address: { city: 'London' },
    });
    const noop = await coll.updateOne({ _id: 1 }, { $rename: { absent: 'other' } });
    expect(noop.modifiedCount).toBe(0);
  });

  // unset docs: removes fields (top-level and embedded); missing fields are ignored.
  it('$unset removes top-level and embedded fields', async () => {
    const coll = await withDoc({ _id: 1, a: 1, b: { c: 2, d: 3 } });
    await coll.updateOne({ _id: 1 }, { $unset: { a: '', 'b.c': 1, missing: '' } });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, b: { d: 3 } });
  });

  // inc docs: a missing field is created with the increment.
  it('$inc creates a missing field and adds to an existing one', async () => {
    const coll = await withDoc({ _id: 1, n: 1 });
    await coll.updateOne({ _id: 1 }, { $inc: { n: 2, m: -4, 'deep.k': 1 } });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 3, m: -4, deep: { k: 1 } });
  });

  // safe_num.cpp (addInt32Int32): an int32 sum that overflows is returned as an int64.
  it('$inc past the int32 maximum widens the value to int64 (Long)', async () => {
    const coll = await withDoc({ _id: 1, i32: new Int32(2147483647), small: new Int32(1) });
    await coll.updateOne({ _id: 1 }, { $inc: { i32: 1, small: 1 } });
    const doc = (await coll.findOne({ _id: 1 }, { promoteLongs: false })) as Document;
    expect(doc.i32).toBeInstanceOf(Long);
    expect((doc.i32 as Long).toString()).toBe('2147483648');
    // Without overflow an int32 stays an int32 (deserialised as a JS number).
    expect(doc.small).toBe(2);
  });

  // safe_num.cpp: int64 + int32 is computed in int64, exactly, beyond 2^53.
  it('$inc on an int64 is exact beyond 2^53 and stays int64', async () => {
    const coll = await withDoc({ _id: 1, i64: Long.fromString('9007199254740992') });
    await coll.updateOne({ _id: 1 }, { $inc: { i64: 1 } });
    const doc = (await coll.findOne({ _id: 1 }, { promoteLongs: false })) as Document;
    expect(doc.i64).toBeInstanceOf(Long);
    expect((doc.i64 as Long).toString()).toBe('9007199254740993');
  });

  // safe_num.cpp: Decimal128 arithmetic stays decimal (no binary floating-point rounding).
  it('$inc on a Decimal128 stays decimal and exact', async () => {
    const coll = await withDoc({ _id: 1, dec: Decimal128.fromString('1.10') });
    await coll.updateOne({ _id: 1 }, { $inc: { dec: Decimal128.fromString('0.20') } });
    const doc = (await coll.findOne({ _id: 1 })) as Document;
    expect(doc.dec).toBeInstanceOf(Decimal128);
    expect((doc.dec as Decimal128).toString()).toBe('1.30');
  });
});

describe('aggregation pipeline updates', () => {
  // The cart idiom in one update: bump the quantity of the line with this sku if there is one,
  // otherwise append a new line ($cond + $in + $map + $concatArrays), stamping $$NOW.
  const addToCart = (sku: string) => [
    {
      $set: {
        items: {
          $cond: [
            { $in: [sku, '$items.sku'] },
            {
              $map: {
                input: '$items',
                as: 'line',
                in: {
                  $cond: [
                    { $eq: ['$$line.sku', sku] },
                    { $mergeObjects: ['$$line', { qty: { $add: ['$$line.qty', 1] } }] },
                    '$$line',
                  ],
                },
              },
            },
            { $concatArrays: ['$items', [{ sku, qty: 1 }]] },
          ],
        },
        updatedAt: '$$NOW',
      },
    },
  ];

  it('increments an existing cart line or appends a new one in a single pipeline update', async () => {
    const coll = await withDoc({ _id: 'cart', items: [{ sku: 'a', qty: 1 }] });
    const before = Date.now();
    await coll.updateOne({ _id: 'cart' }, addToCart('a'));
    await coll.updateOne({ _id: 'cart' }, addToCart('b'));
    await coll.updateOne({ _id: 'cart' }, addToCart('b'));
    const after = Date.now();
    const cart = await coll.findOne({ _id: 'cart' });
    expect(cart?.items).toEqual([
      { sku: 'a', qty: 2 },
      { sku: 'b', qty: 2 },
    ]);
    // aggregation-variables: $$NOW is the server's current datetime (a BSON Date).
    const updatedAt = cart?.updatedAt as unknown;
    expect(updatedAt).toBeInstanceOf(Date);
    const stamped = (updatedAt as Date).getTime();
    expect(stamped).toBeGreaterThanOrEqual(before - 5_000);
    expect(stamped).toBeLessThanOrEqual(after + 5_000);
  });

  it('$filter in a pipeline update drops elements; $unset and $replaceWith stages are allowed', async () => {
    const coll = await withDoc({
      _id: 1,
      items: [
        { sku: 'a', qty: 0 },
        { sku: 'b', qty: 2 },
      ],
      scratch: true,
      inner: { keep: 'me' },
    });
    await coll.updateOne({ _id: 1 }, [
      {
        $set: {
          items: { $filter: { input: '$items', as: 'i', cond: { $gt: ['$$i.qty', 0] } } },
        },
      },
      { $unset: 'scratch' },
    ]);
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      items: [{ sku: 'b', qty: 2 }],
      inner: { keep: 'me' },
    });
    await coll.updateOne({ _id: 1 }, [
      { $replaceWith: { $mergeObjects: [{ _id: '$_id' }, '$inner'] } },
    ]);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, keep: 'me' });
  });

  it('pipeline updates read the pre-update document in expressions ($add of two fields)', async () => {
    const coll = await withDoc({ _id: 1, a: 2, b: 3 });
    await coll.updateOne({ _id: 1 }, [{ $set: { sum: { $add: ['$a', '$b'] }, a: 10 } }]);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, a: 10, b: 3, sum: 5 });
  });

  // update_with_pipeline.js: stages other than the allowed ones fail with InvalidOptions (72).
  it('a pipeline update with a $match stage is rejected with InvalidOptions (72)', async () => {
    const coll = await withDoc({ _id: 1, x: 1 });
    const error = await serverError(coll.updateOne({ _id: 1 }, [{ $match: { x: 1 } }]));
    expect(error.code).toBe(72);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, x: 1 });
  });
});

describe('aggregation type expressions', () => {
  // Manual: $isNumber "returns true if the expression resolves to an integer, decimal, double,
  // or long"; $type returns the BSON type name ("missing" for a missing field).
  it('$isNumber and $type know int, double, long and decimal', async () => {
    const coll = t.db.collection<Document>('types');
    await coll.insertOne({
      _id: 1 as unknown as ObjectId,
      i: 5,
      d: 1.5,
      l: Long.fromString('9007199254740993'),
      m: Decimal128.fromString('1.30'),
      s: '5',
    });
    const [row] = await coll
      .aggregate([
        {
          $project: {
            _id: 0,
            numbers: ['$i', '$d', '$l', '$m', '$s'].map((f) => ({ $isNumber: f })),
            types: ['$i', '$d', '$l', '$m', '$s', '$nope'].map((f) => ({ $type: f })),
          },
        },
      ])
      .toArray();
    expect(row).toEqual({
      numbers: [true, true, true, true, false],
      types: ['int', 'double', 'long', 'decimal', 'string', 'missing'],
    });
  });
});

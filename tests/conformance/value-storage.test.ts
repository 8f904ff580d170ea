/**
 * Values are stored as mongod stores them, and documents and messages too deep for mongod are
 * refused as mongod refuses them, with the connection left serving.
 *
 * Sources:
 * - NaN and ±Infinity are doubles like any other (bsonspec.org: a double is an IEEE 754
 *   binary64); they are stored and returned unchanged. Manual, reference/bson-type-comparison-order
 *   (numbers compare by value across types) and mongod src/mongo/bson/bsonelement.cpp
 *   compareElementValues / compareDoubles: NaN sorts below every other number and equal to NaN.
 *   Queries: mongod src/mongo/db/matcher/expression_leaf.cpp (ComparisonMatchExpressionBase):
 *   NaN equals NaN, `$gte`/`$lte` NaN match NaN only, `$gt`/`$lt` never match when either side
 *   is NaN.
 * - Nesting depth of stored documents: mongod src/mongo/bson/bson_depth.{h,cpp}
 *   (getMaxDepthForUserStorage = maxBSONDepth 200 - kExtraSystemDepthLevels 20 = 180);
 *   src/mongo/db/ops/insert.cpp validateDepth (Overflow 15, "cannot insert document because it
 *   exceeds 180 levels of nesting"; empty documents and arrays do not count);
 *   src/mongo/db/update/storage_validation.cpp storageValid (Overflow 15, "Document exceeds
 *   maximum nesting depth of 180") for the result of an update or upsert; the server's jstest
 *   that starts mongod with maxBSONDepth 21 (user depth 1) inserts `{a: {}}` and is refused
 *   `{a: {b: 1}}` with Overflow. The manual
 *   (reference/limits, "Nested Depth for BSON Documents") promises "no more than 100 levels":
 *   the supported depth, below what the server refuses.
 * - Messages: mongod validates every received message (`net.wireObjectCheck`, default true;
 *   src/mongo/rpc/object_check.h, src/mongo/bson/bson_validate.cpp) and refuses BSON nested
 *   deeper than maxBSONDepth (200) with Overflow (15); src/mongo/transport
 *   service_entry_point_common.cpp answers a parse error with an error reply ("such as the
 *   document too deep error") rather than closing the connection. The message wording differs
 *   between releases, so only code and codeName are checked here.
 */
import { type Document, Double } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('value_storage');

const collection = () => t.db.collection<Doc>(t.uniqueName('values'));

/** A value that adds `levels` levels of embedded documents below the field holding it. */
function nested(levels: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

describe('NaN and infinities', () => {
  it('Double(NaN) is stored and returned as NaN, a double, not null', async () => {
    const coll = collection();
    await coll.insertOne({ _id: 1, v: new Double(Number.NaN), plain: Number.NaN });
    const doc = await coll.findOne({ _id: 1 });
    expect(Number.isNaN(doc?.v)).toBe(true);
    expect(Number.isNaN(doc?.plain)).toBe(true);
    expect(await coll.countDocuments({ v: { $type: 'double' } })).toBe(1);
    expect(await coll.countDocuments({ v: null })).toBe(0);
    const raw = await coll.findOne({ _id: 1 }, { promoteValues: false });
    expect(raw?.v).toBeInstanceOf(Double);
  });

  it('NaN written by $set, by a pipeline update and in arrays stays NaN; ±Infinity stay infinite', async () => {
    const coll = collection();
    await coll.insertOne({ _id: 1 });
    await coll.updateOne({ _id: 1 }, { $set: { a: Number.NaN, arr: [Number.NaN, 1] } });
    await coll.updateOne({ _id: 1 }, [{ $set: { p: { $literal: Number.NaN } } }]);
    await coll.updateOne(
      { _id: 1 },
      { $set: { inf: Number.POSITIVE_INFINITY, ninf: Number.NEGATIVE_INFINITY } },
    );
    const doc = (await coll.findOne({ _id: 1 })) as Document;
    expect(Number.isNaN(doc.a)).toBe(true);
    expect(Number.isNaN(doc.arr[0])).toBe(true);
    expect(doc.arr[1]).toBe(1);
    expect(Number.isNaN(doc.p)).toBe(true);
    expect(doc.inf).toBe(Number.POSITIVE_INFINITY);
    expect(doc.ninf).toBe(Number.NEGATIVE_INFINITY);
  });

  it('queries: NaN equals NaN; $gte/$lte NaN match NaN only; $gt/$lt never match NaN', async () => {
    const coll = collection();
    await coll.insertMany([
      { _id: 'nan', v: Number.NaN },
      { _id: 'ninf', v: Number.NEGATIVE_INFINITY },
      { _id: 'zero', v: 0 },
      { _id: 'null', v: null },
    ]);
    const ids = async (filter: Document) =>
      (await coll.find(filter, { sort: { _id: 1 } }).toArray()).map((d) => d._id);
    expect(await ids({ v: Number.NaN })).toEqual(['nan']);
    expect(await ids({ v: { $in: [Number.NaN] } })).toEqual(['nan']);
    expect(await ids({ v: { $gte: Number.NaN } })).toEqual(['nan']);
    expect(await ids({ v: { $lte: Number.NaN } })).toEqual(['nan']);
    expect(await ids({ v: { $gt: Number.NaN } })).toEqual([]);
    expect(await ids({ v: { $lt: 0 } })).toEqual(['ninf']);
    expect(await ids({ v: { $ne: Number.NaN } })).toEqual(['ninf', 'null', 'zero']);
  });

  it('sorts NaN below every other number (and above null), in find and in aggregate', async () => {
    const coll = collection();
    await coll.insertMany([
      { _id: 1, v: 5 },
      { _id: 2, v: Number.NaN },
      { _id: 3, v: 'text' },
      { _id: 4, v: Number.NEGATIVE_INFINITY },
      { _id: 5, v: null },
      { _id: 6, v: -1e308 },
    ]);
    const order = [5, 2, 4, 6, 1, 3];
    const found = await coll.find({}, { sort: { v: 1 } }).toArray();
    expect(found.map((d) => d._id)).toEqual(order);
    const aggregated = await coll.aggregate([{ $sort: { v: -1 } }]).toArray();
    expect(aggregated.map((d) => d._id)).toEqual([...order].reverse());
  });

  // Manual: core/index-unique — NaN equals NaN, so a unique index holds one.
  it('a unique index treats two NaNs as the same key', async () => {
    const coll = collection();
    await coll.createIndex({ v: 1 }, { unique: true });
    await coll.insertOne({ _id: 1, v: Number.NaN });
    const error = await serverError(coll.insertOne({ _id: 2, v: new Double(Number.NaN) }));
    expect(error.code).toBe(11000);
  });
});

describe('nesting depth of stored documents (180 levels, the document itself counted)', () => {
  it('insert: 180 levels are stored, 181 are refused with Overflow 15', async () => {
    const coll = collection();
    // The document is level 1; `d` adds 179 more.
    await coll.insertOne({ _id: 180, d: nested(179) });
    const reply = await t.db.command({
      insert: coll.collectionName,
      documents: [{ _id: 181, d: nested(180) }],
    });
    expect(reply.n).toBe(0);
    expect(reply.writeErrors).toHaveLength(1);
    expect(reply.writeErrors[0]).toMatchObject({
      index: 0,
      code: 15,
      errmsg: 'cannot insert document because it exceeds 180 levels of nesting',
    });
    expect((await coll.find({}).toArray()).map((d) => d._id)).toEqual([180]);
  });

  it('arrays count as levels; an empty innermost document or array does not', async () => {
    const coll = collection();
    const refused = await t.db.command({
      insert: coll.collectionName,
      documents: [{ _id: 'array', d: nested(179, [1]) }],
    });
    expect(refused.writeErrors?.[0]?.code).toBe(15);
    const accepted = await t.db.command({
      insert: coll.collectionName,
      documents: [
        { _id: 'emptyDoc', d: nested(179, {}) },
        { _id: 'emptyArray', d: nested(179, []) },
      ],
    });
    expect(accepted.writeErrors).toBeUndefined();
    expect(accepted.n).toBe(2);
  });

  it('an unordered insert stores the documents that fit', async () => {
    const coll = collection();
    const reply = await t.db.command({
      insert: coll.collectionName,
      documents: [{ _id: 1 }, { _id: 2, d: nested(180) }, { _id: 3 }],
      ordered: false,
    });
    expect(reply.n).toBe(2);
    expect(reply.writeErrors.map((e: Document) => [e.index, e.code])).toEqual([[1, 15]]);
  });

  it('update: a result past 180 levels is a write error (Overflow 15) and the document is unchanged', async () => {
    const coll = collection();
    await coll.insertOne({ _id: 1, n: 0 });
    const reply = await t.db.command({
      update: coll.collectionName,
      updates: [{ q: { _id: 1 }, u: { $set: { d: nested(180) } } }],
    });
    expect(reply.nModified).toBe(0);
    expect(reply.writeErrors[0]).toMatchObject({
      index: 0,
      code: 15,
      errmsg: 'Document exceeds maximum nesting depth of 180',
    });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 0 });
    const fits = await coll.updateOne({ _id: 1 }, { $set: { d: nested(179) } });
    expect(fits.modifiedCount).toBe(1);
  });

  it('upsert: an inserted document past 180 levels is refused the same way', async () => {
    const coll = collection();
    const reply = await t.db.command({
      update: coll.collectionName,
      updates: [{ q: { _id: 1 }, u: { $set: { d: nested(180) } }, upsert: true }],
    });
    expect(reply.writeErrors[0]).toMatchObject({ index: 0, code: 15 });
    expect(await coll.countDocuments()).toBe(0);
  });

  it('findAndModify: refused with Overflow 15 as a command error', async () => {
    const coll = collection();
    await coll.insertOne({ _id: 1 });
    const error = await serverError(
      coll.findOneAndUpdate({ _id: 1 }, { $set: { d: nested(180) } }),
    );
    expect(error.code).toBe(15);
    expect(error.codeName).toBe('Overflow');
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1 });
  });
});

describe('messages nested past 200 levels', () => {
  // 300 nested $and are 600 BSON levels, three times the limit; far deeper filters are pinned in
  // tests/offline-server/deep-messages.test.ts (driver 6's BSON serializer runs out of stack
  // before 1 000).
  it('a filter of 300 nested $and is refused with Overflow 15 and the connection keeps serving', async () => {
    const coll = collection();
    await coll.insertOne({ _id: 1, x: 1 });
    let filter: Document = { x: 1 };
    for (let i = 0; i < 300; i++) filter = { $and: [filter] };
    const error = await serverError(coll.find(filter).toArray());
    expect(error.code).toBe(15);
    expect(error.codeName).toBe('Overflow');
    expect(await coll.findOne({ x: 1 })).toEqual({ _id: 1, x: 1 });
  });

  it('a filter of 300 nested $not is refused the same way', async () => {
    const coll = collection();
    let condition: Document = { $eq: 1 };
    for (let i = 0; i < 300; i++) condition = { $not: condition };
    const error = await serverError(coll.find({ x: condition }).toArray());
    expect(error.code).toBe(15);
    expect(error.codeName).toBe('Overflow');
  });

  it('a deeply nested value in a filter or an inserted document is refused the same way', async () => {
    const coll = collection();
    const inFilter = await serverError(coll.findOne({ d: nested(300) }));
    expect(inFilter.code).toBe(15);
    const inDocument = await serverError(coll.insertOne({ _id: 1, d: nested(300) }));
    expect(inDocument.code).toBe(15);
    expect(inDocument.codeName).toBe('Overflow');
    expect(await coll.countDocuments()).toBe(0);
  });

  it('a filter nested 90 $and deep (under the limit) is answered normally', async () => {
    const coll = collection();
    await coll.insertMany([
      { _id: 1, x: 1 },
      { _id: 2, x: 2 },
    ]);
    let filter: Document = { x: 2 };
    for (let i = 0; i < 90; i++) filter = { $and: [filter] };
    expect(await coll.find(filter).toArray()).toEqual([{ _id: 2, x: 2 }]);
  });
});

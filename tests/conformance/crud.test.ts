/**
 * Basic CRUD as the Node driver sees it.
 *
 * Sources: MongoDB manual, crud, reference/command/insert|find|update|delete|count|distinct,
 * core/index-unique ("E11000 duplicate key error"), reference/operator/query/expr,
 * reference/bson-types; mongodb/specifications source/crud/crud.md (driver-side validation of
 * update/replacement documents); server error_codes.yml (DuplicateKey = 11000).
 */
import { Decimal128, type Document, Long, MongoInvalidArgumentError, ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, rejectionOf, serverError } from './helpers.js';

const t = useTestDatabase('crud');

describe('insert', () => {
  // Manual: crud "Insert Documents" — the driver generates an ObjectId _id when none is given.
  it('generates ObjectId _ids for documents inserted without one', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('ins'));
    const one = await coll.insertOne({ name: 'a' });
    expect(one.acknowledged).toBe(true);
    expect(one.insertedId).toBeInstanceOf(ObjectId);
    const many = await coll.insertMany([{ name: 'b' }, { name: 'c' }]);
    expect(many.insertedCount).toBe(2);
    expect(Object.keys(many.insertedIds)).toEqual(['0', '1']);
    expect(many.insertedIds[0]).toBeInstanceOf(ObjectId);
    const stored = await coll.findOne({ _id: one.insertedId });
    expect(stored).toEqual({ _id: one.insertedId, name: 'a' });
    expect(await coll.countDocuments()).toBe(3);
  });

  // Manual: core/index-unique; reference/command/insert (writeErrors with keyPattern/keyValue);
  // the message format is "E11000 duplicate key error collection: <ns> index: <name> dup key: {...}".
  it('rejects a duplicate _id with E11000, keyPattern, keyValue and the collection in errmsg', async () => {
    const name = t.uniqueName('dup');
    const coll = t.db.collection<Doc>(name);
    await coll.insertOne({ _id: 1, v: 'first' });
    const error = await serverError(coll.insertOne({ _id: 1, v: 'second' }));
    expect(error.code).toBe(11000);
    expect(error.keyPattern).toEqual({ _id: 1 });
    expect(error.keyValue).toEqual({ _id: 1 });
    expect(error.errmsg).toBe(
      `E11000 duplicate key error collection: ${t.db.databaseName}.${name} index: _id_ dup key: { _id: 1 }`,
    );
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 'first' });
  });

  // Same format with a string key: strings are shown double-quoted.
  it('formats a string duplicate key value in double quotes', async () => {
    const name = t.uniqueName('dupstr');
    const coll = t.db.collection<Doc>(name);
    await coll.insertOne({ _id: 'k1' });
    const error = await serverError(coll.insertOne({ _id: 'k1' }));
    expect(error.code).toBe(11000);
    expect(error.keyValue).toEqual({ _id: 'k1' });
    expect(error.errmsg).toBe(
      `E11000 duplicate key error collection: ${t.db.databaseName}.${name} index: _id_ dup key: { _id: "k1" }`,
    );
  });
});

describe('find', () => {
  const seed = async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('find'));
    await coll.insertMany(
      Array.from({ length: 10 }, (_, i) => ({ _id: i, n: i, group: i % 2 === 0 ? 'even' : 'odd' })),
    );
    return coll;
  };

  // Manual: reference/command/find — filter, projection, sort, skip, limit.
  it('applies filter, projection, sort, skip and limit together', async () => {
    const coll = await seed();
    const docs = await coll
      .find({ group: 'even' }, { projection: { _id: 0, n: 1 } })
      .sort({ n: -1 })
      .skip(1)
      .limit(2)
      .toArray();
    expect(docs).toEqual([{ n: 6 }, { n: 4 }]);
  });

  it('projection with an exclusion keeps the other fields', async () => {
    const coll = await seed();
    const doc = await coll.findOne({ _id: 3 }, { projection: { group: 0 } });
    expect(doc).toEqual({ _id: 3, n: 3 });
  });

  it('findOne returns null when nothing matches', async () => {
    const coll = await seed();
    expect(await coll.findOne({ n: 99 })).toBeNull();
  });

  // Manual: reference/method/db.collection.countDocuments (an aggregate) and
  // estimatedDocumentCount (the count command).
  it('countDocuments counts matches; estimatedDocumentCount counts the collection', async () => {
    const coll = await seed();
    expect(await coll.countDocuments({ group: 'odd' })).toBe(5);
    expect(await coll.countDocuments({ n: { $gte: 7 } })).toBe(3);
    expect(await coll.countDocuments({}, { skip: 2, limit: 5 })).toBe(5);
    expect(await coll.estimatedDocumentCount()).toBe(10);
  });

  // Manual: reference/command/distinct.
  it('distinct returns each value once', async () => {
    const coll = await seed();
    const groups = await coll.distinct('group');
    expect([...groups].sort()).toEqual(['even', 'odd']);
    const small = await coll.distinct('n', { n: { $lt: 3 } });
    expect([...small].sort()).toEqual([0, 1, 2]);
  });

  // Manual: reference/operator/query/expr — compare two fields of the same document.
  it('$expr filters compare fields of the same document', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('expr'));
    await coll.insertMany([
      { _id: 1, sold: 5, capacity: 10 },
      { _id: 2, sold: 10, capacity: 10 },
      { _id: 3, sold: 12, capacity: 10 },
    ]);
    const open = await coll
      .find({ $expr: { $lt: ['$sold', '$capacity'] } })
      .sort({ _id: 1 })
      .toArray();
    expect(open.map((doc) => doc._id)).toEqual([1]);
    const full = await coll.countDocuments({ $expr: { $gte: ['$sold', '$capacity'] } });
    expect(full).toBe(2);
    const updated = await coll.updateMany(
      { $expr: { $gt: ['$sold', '$capacity'] } },
      { $set: { oversold: true } },
    );
    expect(updated.modifiedCount).toBe(1);
    expect(await coll.findOne({ oversold: true })).toMatchObject({ _id: 3 });
  });
});

describe('delete', () => {
  // Manual: reference/command/delete — limit 1 vs 0 (deleteOne / deleteMany), n deleted.
  it('deleteOne removes one match and deleteMany removes all matches', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('del'));
    await coll.insertMany(Array.from({ length: 6 }, (_, i) => ({ _id: i, k: i < 4 ? 'x' : 'y' })));
    const one = await coll.deleteOne({ k: 'x' });
    expect(one.deletedCount).toBe(1);
    expect(await coll.countDocuments({ k: 'x' })).toBe(3);
    const many = await coll.deleteMany({ k: 'x' });
    expect(many.deletedCount).toBe(3);
    const none = await coll.deleteMany({ k: 'nope' });
    expect(none.deletedCount).toBe(0);
    expect(await coll.countDocuments()).toBe(2);
  });
});

describe('update and replace', () => {
  // Manual: reference/command/update — n (matched) and nModified; an update that changes
  // nothing is matched but not modified.
  it('updateOne reports matchedCount and modifiedCount; a no-op update modifies nothing', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('upd'));
    await coll.insertOne({ _id: 1, status: 'new' });
    const changed = await coll.updateOne({ _id: 1 }, { $set: { status: 'paid' } });
    expect(changed).toMatchObject({
      acknowledged: true,
      matchedCount: 1,
      modifiedCount: 1,
      upsertedCount: 0,
      upsertedId: null,
    });
    const noop = await coll.updateOne({ _id: 1 }, { $set: { status: 'paid' } });
    expect(noop.matchedCount).toBe(1);
    expect(noop.modifiedCount).toBe(0);
    const missing = await coll.updateOne({ _id: 2 }, { $set: { status: 'paid' } });
    expect(missing.matchedCount).toBe(0);
    expect(missing.modifiedCount).toBe(0);
  });

  it('updateMany updates every match and counts only the documents it changed', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('updm'));
    await coll.insertMany([
      { _id: 1, tier: 'a', flag: false },
      { _id: 2, tier: 'a', flag: true },
      { _id: 3, tier: 'a', flag: false },
      { _id: 4, tier: 'b', flag: false },
    ]);
    const result = await coll.updateMany({ tier: 'a' }, { $set: { flag: true } });
    expect(result.matchedCount).toBe(3);
    expect(result.modifiedCount).toBe(2);
    expect(await coll.countDocuments({ flag: true })).toBe(3);
    expect(await coll.findOne({ _id: 4 })).toEqual({ _id: 4, tier: 'b', flag: false });
  });

  // Manual: reference/method/db.collection.replaceOne — the replacement keeps _id only.
  it('replaceOne swaps the whole document but keeps its _id', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('repl'));
    await coll.insertOne({ _id: 7, a: 1, b: 2 });
    const result = await coll.replaceOne({ _id: 7 }, { c: 3 });
    expect(result.matchedCount).toBe(1);
    expect(result.modifiedCount).toBe(1);
    expect(await coll.findOne({ _id: 7 })).toEqual({ _id: 7, c: 3 });
  });

  // CRUD spec (crud.md): updateOne/updateMany MUST reject a document without update operators
  // before sending anything ("Update document requires atomic operators").
  it('updateOne without $ operators is rejected by the driver and never sent', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('noop'));
    await coll.insertOne({ _id: 1, a: 1 });
    t.commands.reset();
    const error = await rejectionOf(coll.updateOne({ _id: 1 }, { a: 2 }));
    expect(error).toBeInstanceOf(MongoInvalidArgumentError);
    expect((error as Error).message).toContain('atomic operators');
    expect(t.commands.names()).not.toContain('update');
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, a: 1 });
  });

  // Manual: reference/command/update — a replacement document (no operators) sent raw replaces.
  it('the update command with a plain document replaces the matched document', async () => {
    const name = t.uniqueName('rawrepl');
    const coll = t.db.collection<Doc>(name);
    await coll.insertOne({ _id: 1, a: 1 });
    const reply = await t.db.command({ update: name, updates: [{ q: { _id: 1 }, u: { b: 2 } }] });
    expect(reply.ok).toBe(1);
    expect(reply.n).toBe(1);
    expect(reply.nModified).toBe(1);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, b: 2 });
  });
});

describe('BSON round-trips', () => {
  // Manual: reference/bson-types — ObjectId, Date, Decimal128, int64 are stored as typed values.
  it('ObjectId, Date, Decimal128 and Long values come back with their types and values', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('bson'));
    const ref = new ObjectId();
    const when = new Date('2024-02-29T12:34:56.789Z');
    const price = Decimal128.fromString('19.90');
    const big = Long.fromString('9007199254740993');
    const { insertedId } = await coll.insertOne({ ref, when, price, big, nested: { at: when } });
    const doc: Document = (await coll.findOne({ _id: insertedId }, { promoteLongs: false })) ?? {};
    expect(doc.ref).toBeInstanceOf(ObjectId);
    expect((doc.ref as ObjectId).equals(ref)).toBe(true);
    expect(doc.when).toBeInstanceOf(Date);
    expect((doc.when as Date).toISOString()).toBe('2024-02-29T12:34:56.789Z');
    expect(doc.price).toBeInstanceOf(Decimal128);
    expect((doc.price as Decimal128).toString()).toBe('19.90');
    expect(doc.big).toBeInstanceOf(Long);
    expect((doc.big as Long).toString()).toBe('9007199254740993');
    expect((doc.nested as Document).at).toBeInstanceOf(Date);
  });

  it('queries match ObjectId, Date ranges and Decimal128 by value', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('bsonq'));
    const ref = new ObjectId();
    await coll.insertMany([
      { _id: 1, ref, when: new Date('2024-01-01T00:00:00Z'), price: Decimal128.fromString('1.5') },
      {
        _id: 2,
        ref: new ObjectId(),
        when: new Date('2024-06-01T00:00:00Z'),
        price: Decimal128.fromString('2.5'),
      },
    ]);
    expect(await coll.findOne({ ref: new ObjectId(ref.toHexString()) })).toMatchObject({ _id: 1 });
    const inRange = await coll.find({ when: { $gte: new Date('2024-03-01T00:00:00Z') } }).toArray();
    expect(inRange.map((doc) => doc._id)).toEqual([2]);
    const cheap = await coll.find({ price: { $lt: Decimal128.fromString('2') } }).toArray();
    expect(cheap.map((doc) => doc._id)).toEqual([1]);
    // Numbers compare across BSON numeric types: 1.5 (double) equals Decimal128 1.5.
    expect(await coll.countDocuments({ price: 1.5 })).toBe(1);
  });

  // Manual: reference/bson-type-comparison-order ("numeric types … compared by value") and
  // MONGODB.md: Decimal128 and double are compared exactly, the double NOT rounded to a
  // decimal first. The double 0.1 is 0.1000000000000000055…, so Decimal128("0.1") is below it;
  // guardedDecrementAll's diagnosis relies on the server deciding this, not JavaScript.
  it('Decimal128 and double compare exactly: Decimal128("0.1") < 0.1, in filters and in $expr', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('exact'));
    await coll.insertMany([
      { _id: 'dec', v: Decimal128.fromString('0.1') },
      { _id: 'half', v: Decimal128.fromString('0.5') },
    ]);
    const ids = async (filter: Document) =>
      (await coll.find(filter).sort({ _id: 1 }).toArray()).map((doc) => doc._id);
    expect(await ids({ v: { $gte: 0.1 } })).toEqual(['half']);
    expect(await ids({ v: { $lt: 0.1 } })).toEqual(['dec']);
    expect(await ids({ v: 0.1 })).toEqual([]);
    // 0.5 is exact in both types: equal.
    expect(await ids({ v: 0.5 })).toEqual(['half']);
    expect(await ids({ $expr: { $gte: ['$v', 0.1] } })).toEqual(['half']);
    expect(await ids({ $expr: { $gte: ['$v', Decimal128.fromString('0.1')] } })).toEqual([
      'dec',
      'half',
    ]);
  });
});

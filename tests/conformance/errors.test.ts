/**
 * Update type errors (with their codes) and bulk insert error reporting.
 *
 * Sources: server error_codes.yml (BadValue 2, TypeMismatch 14, PathNotViable 28,
 * ConflictingUpdateOperators 40, ImmutableField 66, DuplicateKey 11000); MongoDB manual,
 * reference/operator/update/inc ("$inc ... on a field with a null value / non-numeric will
 * generate an error"), update/push ("If the field is not an array, the operation will fail"),
 * core/document ("_id ... immutable"), reference/method/db.collection.insertMany ("ordered ...
 * stops at the first error; unordered continues"); server jstests
 * jstests/core/txns/multi_statement_transaction_write_error.js ($inc on a string →
 * TypeMismatch), jstests/core/write/update/update_invalid1.js, updatel.js.
 */
import { MongoBulkWriteError, type WriteError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, rejectionOf, serverError } from './helpers.js';

const t = useTestDatabase('errors');

async function withDoc(doc: Doc) {
  const coll = t.db.collection<Doc>(t.uniqueName('err'));
  await coll.insertOne(doc);
  return coll;
}

describe('update type errors leave the document unchanged', () => {
  it('$inc on a string field fails with TypeMismatch (14)', async () => {
    const original = { _id: 1, n: 'seven', other: 1 };
    const coll = await withDoc(original);
    const error = await serverError(coll.updateOne({ _id: 1 }, { $inc: { n: 1, other: 1 } }));
    expect(error.code).toBe(14);
    expect(error.errmsg).toContain('$inc');
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  it('$inc with a non-numeric amount fails with TypeMismatch (14)', async () => {
    const original = { _id: 1, n: 1 };
    const coll = await withDoc(original);
    const error = await serverError(coll.updateOne({ _id: 1 }, { $inc: { n: 'one' as never } }));
    expect(error.code).toBe(14);
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  it('$push on a non-array field fails with BadValue (2)', async () => {
    const original = { _id: 1, tags: 'not-an-array' };
    const coll = await withDoc(original);
    const error = await serverError(
      coll.updateOne({ _id: 1 }, { $push: { tags: 'x' } } as Doc as never),
    );
    expect(error.code).toBe(2);
    expect(error.errmsg).toContain('must be an array');
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  it("$set of 'a.b' where a is a scalar fails with PathNotViable (28)", async () => {
    const original = { _id: 1, a: 5 };
    const coll = await withDoc(original);
    const error = await serverError(coll.updateOne({ _id: 1 }, { $set: { 'a.b': 1, c: 1 } }));
    expect(error.code).toBe(28);
    expect(error.errmsg).toContain("Cannot create field 'b'");
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  it('two operators on the same path fail with ConflictingUpdateOperators (40)', async () => {
    const original = { _id: 1, n: 1 };
    const coll = await withDoc(original);
    const same = await serverError(coll.updateOne({ _id: 1 }, { $set: { n: 5 }, $inc: { n: 1 } }));
    expect(same.code).toBe(40);
    expect(same.errmsg).toContain('would create a conflict');
    // A path and its own prefix conflict too.
    const prefix = await serverError(coll.updateOne({ _id: 1 }, { $set: { a: {}, 'a.b': 1 } }));
    expect(prefix.code).toBe(40);
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  it('changing _id with $set fails with ImmutableField (66)', async () => {
    const original = { _id: 1, v: 1 };
    const coll = await withDoc(original);
    const error = await serverError(coll.updateOne({ _id: 1 }, { $set: { _id: 2, v: 2 } }));
    expect(error.code).toBe(66);
    expect(error.errmsg).toContain('_id');
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
    expect(await coll.findOne({ _id: 2 })).toBeNull();
  });

  it('a replacement with a different _id fails with ImmutableField (66)', async () => {
    const original = { _id: 1, v: 1 };
    const coll = await withDoc(original);
    const error = await serverError(coll.replaceOne({ _id: 1 }, { _id: 2, v: 2 }));
    expect(error.code).toBe(66);
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });

  // A failed update is atomic for the document: the valid parts of the update are not applied.
  it('findOneAndUpdate surfaces the same error code and applies nothing', async () => {
    const original = { _id: 1, n: 'x', m: 1 };
    const coll = await withDoc(original);
    const error = await serverError(
      coll.findOneAndUpdate({ _id: 1 }, { $inc: { m: 1, n: 1 } }, { returnDocument: 'after' }),
    );
    expect(error.code).toBe(14);
    expect(await coll.findOne({ _id: 1 })).toEqual(original);
  });
});

function writeErrorsOf(error: MongoBulkWriteError): WriteError[] {
  const errors = error.writeErrors;
  return Array.isArray(errors) ? errors : [errors as WriteError];
}

describe('insertMany with a duplicate in the middle', () => {
  const batch = [{ _id: 1 }, { _id: 2 }, { _id: 2 }, { _id: 3 }, { _id: 4 }];

  // insertMany docs: an ordered insert stops at the first error.
  it('ordered: inserts the documents before the duplicate and stops (writeErrors index 2)', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('ordered'));
    const error = await rejectionOf(coll.insertMany(batch));
    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulk = error as MongoBulkWriteError;
    expect(bulk.code).toBe(11000);
    expect(bulk.insertedCount).toBe(2);
    const errors = writeErrorsOf(bulk);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.index).toBe(2);
    expect(errors[0]?.code).toBe(11000);
    const ids = (await coll.find({}).sort({ _id: 1 }).toArray()).map((doc) => doc._id);
    expect(ids).toEqual([1, 2]);
  });

  // insertMany docs: an unordered insert attempts every document and reports each failure.
  it('unordered: inserts every other document and reports the duplicate at index 2', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('unordered'));
    const error = await rejectionOf(coll.insertMany(batch, { ordered: false }));
    expect(error).toBeInstanceOf(MongoBulkWriteError);
    const bulk = error as MongoBulkWriteError;
    expect(bulk.insertedCount).toBe(4);
    const errors = writeErrorsOf(bulk);
    expect(errors.map((e) => e.index)).toEqual([2]);
    expect(errors[0]?.code).toBe(11000);
    expect(errors[0]?.errmsg).toContain('E11000 duplicate key error');
    const ids = (await coll.find({}).sort({ _id: 1 }).toArray()).map((doc) => doc._id);
    expect(ids).toEqual([1, 2, 3, 4]);
  });

  // insert command docs: with several failures, each is reported with its own index.
  it('unordered: several duplicates are each reported with their index', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('several'));
    await coll.insertOne({ _id: 3 });
    const error = await rejectionOf(
      coll.insertMany([{ _id: 1 }, { _id: 1 }, { _id: 3 }, { _id: 4 }], { ordered: false }),
    );
    const bulk = error as MongoBulkWriteError;
    expect(bulk).toBeInstanceOf(MongoBulkWriteError);
    expect(bulk.insertedCount).toBe(2);
    expect(writeErrorsOf(bulk).map((e) => e.index)).toEqual([1, 2]);
    expect(await coll.countDocuments()).toBe(3);
  });

  // The raw insert command: writeErrors sit in an ok: 1 reply alongside n.
  it('the insert command reports write errors in an ok: 1 reply with n', async () => {
    const name = t.uniqueName('raw');
    const reply = await t.db.command({
      insert: name,
      documents: [{ _id: 1 }, { _id: 1 }, { _id: 2 }],
      ordered: false,
    });
    expect(reply.ok).toBe(1);
    expect(reply.n).toBe(2);
    expect(reply.writeErrors).toHaveLength(1);
    expect(reply.writeErrors[0]).toMatchObject({
      index: 1,
      code: 11000,
      keyPattern: { _id: 1 },
      keyValue: { _id: 1 },
    });
  });
});

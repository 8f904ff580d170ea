/**
 * Upserts: how the inserted document is built, what is reported.
 *
 * Sources: MongoDB manual, reference/method/db.collection.updateOne ("Upsert" — the new document
 * is built from the equality clauses of the filter, then the update is applied),
 * reference/operator/update/setOnInsert, reference/command/findAndModify, reference/operator/
 * update/positional ("do not use the positional operator $ with upsert operations");
 * server jstests jstests/core/write/update/upsert_fields.js, upsert_and.js (jstests/upsert4.js),
 * updatel.js.
 */
import { ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('upsert');

describe('upsert document seeding', () => {
  // updateOne docs + upsert_fields.js/upsert4.js: equality fields (top level, inside $and, and
  // dotted paths) seed the new document, then $set and $setOnInsert apply.
  it('seeds the inserted document from equality fields, $and equalities, dotted paths and $setOnInsert', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('seed'));
    const result = await coll.updateOne(
      { sku: 'abc', 'dims.w': 10, $and: [{ color: 'red' }, { size: { $eq: 'L' } }] },
      { $set: { qty: 5 }, $setOnInsert: { createdBy: 'upsert' } },
      { upsert: true },
    );
    expect(result.matchedCount).toBe(0);
    expect(result.modifiedCount).toBe(0);
    expect(result.upsertedCount).toBe(1);
    expect(result.upsertedId).toBeInstanceOf(ObjectId);
    const doc = await coll.findOne({ _id: result.upsertedId as ObjectId });
    expect(doc).toEqual({
      _id: result.upsertedId,
      sku: 'abc',
      dims: { w: 10 },
      color: 'red',
      size: 'L',
      qty: 5,
      createdBy: 'upsert',
    });
  });

  // upsert_fields.js: non-equality predicates ($gt, $in with several values, $exists, $or of
  // several branches) contribute nothing to the new document.
  it('does not copy non-equality predicates into the new document', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('noneq'));
    const result = await coll.updateOne(
      {
        k: 'x',
        n: { $gt: 5 },
        tag: { $in: ['a', 'b'] },
        opt: { $exists: false },
        $or: [{ p: 1 }, { p: 2 }],
      },
      { $set: { touched: true } },
      { upsert: true },
    );
    expect(result.upsertedCount).toBe(1);
    const doc = await coll.findOne({ _id: result.upsertedId as ObjectId });
    expect(doc).toEqual({ _id: result.upsertedId, k: 'x', touched: true });
  });

  // upsert_fields.js: an _id equality in the filter becomes the new document's _id.
  it('uses an _id equality from the filter as the upserted _id', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('id'));
    const result = await coll.updateOne({ _id: 'order-42' }, { $inc: { n: 1 } }, { upsert: true });
    expect(result.upsertedId).toBe('order-42');
    expect(result.upsertedCount).toBe(1);
    expect(await coll.findOne({ _id: 'order-42' })).toEqual({ _id: 'order-42', n: 1 });
  });

  // setOnInsert docs: "If the update operation does not result in an insert, $setOnInsert does
  // nothing."
  it('$setOnInsert is not applied when the upsert matches an existing document', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('soi'));
    const first = await coll.updateOne(
      { key: 'k' },
      { $inc: { hits: 1 }, $setOnInsert: { createdBy: 'first' } },
      { upsert: true },
    );
    expect(first.upsertedCount).toBe(1);
    const second = await coll.updateOne(
      { key: 'k' },
      { $inc: { hits: 1 }, $setOnInsert: { createdBy: 'second' } },
      { upsert: true },
    );
    expect(second.matchedCount).toBe(1);
    expect(second.modifiedCount).toBe(1);
    expect(second.upsertedCount).toBe(0);
    expect(second.upsertedId).toBeNull();
    const docs = await coll.find({}).toArray();
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({ key: 'k', hits: 2, createdBy: 'first' });
  });

  // updateMany with upsert inserts a single document when nothing matches.
  it('updateMany with upsert inserts one document when nothing matches', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('many'));
    const result = await coll.updateMany(
      { group: 'g' },
      { $set: { active: true } },
      { upsert: true },
    );
    expect(result.upsertedCount).toBe(1);
    expect(result.matchedCount).toBe(0);
    expect(await coll.countDocuments({ group: 'g', active: true })).toBe(1);
  });
});

describe('findOneAndUpdate and replacement upserts', () => {
  // findAndModify docs: with upsert and new: true (returnDocument 'after') the inserted document
  // is returned; with the default ('before') the result is null.
  it("findOneAndUpdate with upsert and returnDocument 'after' returns the inserted document", async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('fau'));
    const after = await coll.findOneAndUpdate(
      { email: 'a@example.com' },
      { $setOnInsert: { plan: 'free' }, $inc: { logins: 1 } },
      { upsert: true, returnDocument: 'after' },
    );
    expect(after).toMatchObject({ email: 'a@example.com', plan: 'free', logins: 1 });
    expect(after?._id).toBeInstanceOf(ObjectId);

    const before = await coll.findOneAndUpdate(
      { email: 'b@example.com' },
      { $inc: { logins: 1 } },
      { upsert: true },
    );
    expect(before).toBeNull();
    expect(await coll.findOne({ email: 'b@example.com' })).toMatchObject({ logins: 1 });
  });

  // findAndModify docs: lastErrorObject reports upserted and updatedExisting: false.
  it('findOneAndUpdate upsert metadata reports updatedExisting false and the upserted id', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('faumeta'));
    const result = await coll.findOneAndUpdate(
      { _id: 'u1' },
      { $set: { v: 1 } },
      { upsert: true, returnDocument: 'after', includeResultMetadata: true },
    );
    expect(result.ok).toBe(1);
    expect(result.value).toEqual({ _id: 'u1', v: 1 });
    expect(result.lastErrorObject).toMatchObject({ n: 1, updatedExisting: false, upserted: 'u1' });
  });

  // upsert_fields.js ("replacement style"): a replacement upsert inserts the replacement
  // document; filter fields other than _id are NOT copied into it.
  it('a replacement upsert inserts the replacement, not the filter fields', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('repl'));
    const result = await coll.replaceOne(
      { name: 'widget', color: 'blue' },
      { name: 'widget', price: 3 },
      { upsert: true },
    );
    expect(result.upsertedCount).toBe(1);
    expect(result.matchedCount).toBe(0);
    const doc = await coll.findOne({ _id: result.upsertedId as ObjectId });
    expect(doc).toEqual({ _id: result.upsertedId, name: 'widget', price: 3 });

    const withId = await coll.replaceOne({ _id: 'fixed', ignored: 1 }, { v: 2 }, { upsert: true });
    expect(withId.upsertedId).toBe('fixed');
    expect(await coll.findOne({ _id: 'fixed' })).toEqual({ _id: 'fixed', v: 2 });
  });
});

describe('upsert errors', () => {
  // Positional operator docs: "Do not use the positional operator $ with upsert operations";
  // updatel.js: an upsert whose update uses $ fails and inserts nothing. The server's message is
  // "The positional operator did not find the match needed from the query." (BadValue, 2).
  it('positional $ in an upsert that inserts is an error and inserts nothing', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('pos'));
    const error = await serverError(
      coll.updateOne({ 'items.sku': 'a' }, { $set: { 'items.$.qty': 1 } }, { upsert: true }),
    );
    expect(error.code).toBe(2);
    expect(error.errmsg).toContain('positional operator did not find the match');
    expect(await coll.countDocuments()).toBe(0);
  });

  // upsert_fields.js: two conflicting equalities for one field cannot seed a document.
  it('conflicting equalities on the same path in an upsert filter are an error', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('conflict'));
    await serverError(
      coll.updateOne({ $and: [{ x: 1 }, { x: 2 }] }, { $set: { a: 1 } }, { upsert: true }),
    );
    expect(await coll.countDocuments()).toBe(0);
  });
});

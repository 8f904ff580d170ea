/**
 * Collection and database commands, findAndModify, aggregate.
 *
 * Sources: MongoDB manual, reference/command/create ("Starting in MongoDB 7.0, create reports
 * success if the collection already exists with identical options"; SERVER-60064; a different
 * set of options fails with NamespaceExists, 48 — jstests/core/ddl/create_collection.js),
 * reference/command/drop (7.0+: dropping a missing collection succeeds; the driver also maps
 * NamespaceNotFound to `false`, see node driver src/operations/drop.ts),
 * reference/command/dropDatabase, reference/command/listCollections,
 * reference/command/findAndModify (new, fields, sort, remove, upsert; lastErrorObject),
 * reference/command/aggregate; Node driver v6 migration notes (includeResultMetadata).
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('commands');

async function collectionNames(): Promise<string[]> {
  const infos = await t.db.listCollections({}, { nameOnly: true }).toArray();
  return infos.map((info) => info.name);
}

describe('collection and database commands', () => {
  it('create makes an empty collection that listCollections reports as a collection', async () => {
    const name = t.uniqueName('created');
    await t.db.createCollection(name);
    expect(await collectionNames()).toContain(name);
    const [info] = await t.db.listCollections({ name }).toArray();
    expect(info).toMatchObject({ name, type: 'collection' });
    expect(await t.db.collection(name).countDocuments()).toBe(0);
  });

  // create_collection.js: "Creating a collection that already exists with the same options
  // reports success" (7.0+) ... "with different options reports failure" (NamespaceExists).
  it('create on an existing collection with different options fails with NamespaceExists (48)', async () => {
    const name = t.uniqueName('exists');
    await t.db.createCollection(name);
    const error = await serverError(t.db.createCollection(name, { capped: true, size: 4096 }));
    expect(error.code).toBe(48);
    expect(error.codeName).toBe('NamespaceExists');
    const [info] = await t.db.listCollections({ name }).toArray();
    expect((info as Document | undefined)?.options?.capped).toBeUndefined();
  });

  // Same jstest, 7.0+ (SERVER-60064): identical options → success, collection untouched.
  it('create on an existing collection with identical options succeeds and keeps the data', async () => {
    const name = t.uniqueName('idempotent');
    await t.db.createCollection(name);
    await t.db.collection(name).insertOne({ kept: true });
    await t.db.createCollection(name);
    expect(await t.db.collection(name).countDocuments()).toBe(1);
  });

  // Inserting into a missing collection creates it implicitly.
  it('the first insert creates a collection implicitly', async () => {
    const name = t.uniqueName('implicit');
    expect(await collectionNames()).not.toContain(name);
    await t.db.collection(name).insertOne({ a: 1 });
    expect(await collectionNames()).toContain(name);
  });

  it('drop removes a collection and its documents', async () => {
    const name = t.uniqueName('dropme');
    await t.db.collection(name).insertMany([{ a: 1 }, { a: 2 }]);
    expect(await t.db.collection(name).drop()).toBe(true);
    expect(await collectionNames()).not.toContain(name);
    expect(await t.db.collection(name).countDocuments()).toBe(0);
  });

  // drop docs / driver v6+: dropping a collection that does not exist resolves (no throw).
  it('dropping a missing collection resolves instead of throwing', async () => {
    const result = await t.db.collection(t.uniqueName('never')).drop();
    expect(typeof result).toBe('boolean');
    expect(await t.db.dropCollection(t.uniqueName('never'))).toBeTypeOf('boolean');
  });

  it('dropDatabase removes every collection of that database only', async () => {
    const other = t.client.db(`${t.db.databaseName}_x`);
    const keep = t.uniqueName('keep');
    await t.db.collection(keep).insertOne({ a: 1 });
    await other.collection('one').insertOne({ a: 1 });
    await other.collection('two').insertOne({ a: 1 });
    expect((await other.listCollections().toArray()).map((info) => info.name).sort()).toEqual([
      'one',
      'two',
    ]);
    expect(await other.dropDatabase()).toBe(true);
    expect(await other.listCollections().toArray()).toEqual([]);
    expect(await collectionNames()).toContain(keep);
  });

  // listCollections: filter by name, nameOnly returns name and type.
  it('listCollections filters by name; nameOnly lists every collection with its type', async () => {
    const a = t.uniqueName('lc_a');
    const b = t.uniqueName('lc_b');
    await t.db.createCollection(a);
    await t.db.createCollection(b);
    const filtered = await t.db.listCollections({ name: a }).toArray();
    expect(filtered.map((info) => info.name)).toEqual([a]);
    const names = await t.db.listCollections({}, { nameOnly: true }).toArray();
    expect(names.map((info) => info.name)).toEqual(expect.arrayContaining([a, b]));
    for (const info of names) expect(info.type).toBeDefined();
  });
});

describe('findAndModify through the driver helpers', () => {
  const seed = async () => {
    const name = t.uniqueName('fam');
    const coll = t.db.collection<Doc>(name);
    await coll.insertMany([
      { _id: 1, queue: 'q', priority: 2, state: 'ready', payload: 'p1' },
      { _id: 2, queue: 'q', priority: 9, state: 'ready', payload: 'p2' },
      { _id: 3, queue: 'q', priority: 5, state: 'ready', payload: 'p3' },
    ]);
    return coll;
  };

  function sentFindAndModify(): Document {
    const event = t.commands.started.find((e) => e.commandName === 'findAndModify');
    expect(event).toBeDefined();
    return event?.command ?? {};
  }

  // findAndModify: sort picks the document, new: true returns the post-image, fields projects.
  it("findOneAndUpdate with sort, projection and returnDocument 'after' (new, fields, sort)", async () => {
    const coll = await seed();
    t.commands.reset();
    const doc = await coll.findOneAndUpdate(
      { queue: 'q', state: 'ready' },
      { $set: { state: 'taken' } },
      { sort: { priority: -1 }, projection: { _id: 1, state: 1 }, returnDocument: 'after' },
    );
    expect(doc).toEqual({ _id: 2, state: 'taken' });
    const command = sentFindAndModify();
    expect(command.new).toBe(true);
    expect(command.fields).toEqual({ _id: 1, state: 1 });
    // The driver sends sort as an ordered Map (serialised as a BSON document).
    const sort = command.sort instanceof Map ? Object.fromEntries(command.sort) : command.sort;
    expect(sort).toEqual({ priority: -1 });
    expect(await coll.countDocuments({ state: 'taken' })).toBe(1);
  });

  // findAndModify: new defaults to false, so the pre-image is returned.
  it('findOneAndUpdate returns the document before the update by default', async () => {
    const coll = await seed();
    const doc = await coll.findOneAndUpdate({ _id: 1 }, { $inc: { priority: 1 } });
    expect(doc).toMatchObject({ _id: 1, priority: 2 });
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ priority: 3 });
  });

  it('findOneAndUpdate with includeResultMetadata returns value, lastErrorObject and ok', async () => {
    const coll = await seed();
    const hit = await coll.findOneAndUpdate(
      { _id: 3 },
      { $set: { state: 'done' } },
      { includeResultMetadata: true, returnDocument: 'after' },
    );
    expect(hit.ok).toBe(1);
    expect(hit.value).toMatchObject({ _id: 3, state: 'done' });
    expect(hit.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });

    const miss = await coll.findOneAndUpdate(
      { _id: 99 },
      { $set: { state: 'done' } },
      { includeResultMetadata: true },
    );
    expect(miss.ok).toBe(1);
    expect(miss.value).toBeNull();
    expect(miss.lastErrorObject).toMatchObject({ n: 0, updatedExisting: false });

    const plainMiss = await coll.findOneAndUpdate(
      { _id: 99 },
      { $set: { state: 'done' } },
      { includeResultMetadata: false },
    );
    expect(plainMiss).toBeNull();
  });

  // findAndModify: remove: true deletes the chosen (sorted) document and returns it.
  it('findOneAndDelete (remove) deletes the first document by sort and returns it', async () => {
    const coll = await seed();
    t.commands.reset();
    const doc = await coll.findOneAndDelete({ queue: 'q' }, { sort: { priority: 1 } });
    expect(doc).toMatchObject({ _id: 1, payload: 'p1' });
    expect(sentFindAndModify().remove).toBe(true);
    expect(await coll.countDocuments()).toBe(2);

    const meta = await coll.findOneAndDelete({ _id: 2 }, { includeResultMetadata: true });
    expect(meta.ok).toBe(1);
    expect(meta.value).toMatchObject({ _id: 2 });
    expect(meta.lastErrorObject).toMatchObject({ n: 1 });
    const none = await coll.findOneAndDelete({ _id: 2 }, { includeResultMetadata: true });
    expect(none.value).toBeNull();
    expect(none.lastErrorObject).toMatchObject({ n: 0 });
    expect(await coll.findOneAndDelete({ _id: 2 })).toBeNull();
  });

  // findAndModify with a replacement document.
  it('findOneAndReplace replaces the document and can return either image', async () => {
    const coll = await seed();
    const before = await coll.findOneAndReplace({ _id: 3 }, { queue: 'q', replaced: true });
    expect(before).toMatchObject({ _id: 3, payload: 'p3' });
    const after = await coll.findOneAndReplace(
      { _id: 3 },
      { queue: 'q', replaced: 2 },
      { returnDocument: 'after', includeResultMetadata: true },
    );
    expect(after.value).toEqual({ _id: 3, queue: 'q', replaced: 2 });
    expect(after.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
    const plain = await coll.findOneAndReplace(
      { _id: 3 },
      { queue: 'q', replaced: 3 },
      { returnDocument: 'after', includeResultMetadata: false },
    );
    expect(plain).toEqual({ _id: 3, queue: 'q', replaced: 3 });
  });
});

describe('aggregate', () => {
  // aggregate docs: $match → $group (with accumulators) → $project → $sort → $limit.
  it('runs $match, $group, $project, $sort and $limit', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('agg'));
    await coll.insertMany([
      { item: 'a', qty: 5, price: 10, status: 'A' },
      { item: 'b', qty: 2, price: 20, status: 'A' },
      { item: 'a', qty: 1, price: 10, status: 'A' },
      { item: 'c', qty: 7, price: 1, status: 'A' },
      { item: 'b', qty: 9, price: 20, status: 'B' },
    ]);
    const result = await coll
      .aggregate([
        { $match: { status: 'A' } },
        {
          $group: {
            _id: '$item',
            totalQty: { $sum: '$qty' },
            revenue: { $sum: { $multiply: ['$qty', '$price'] } },
            orders: { $sum: 1 },
          },
        },
        { $project: { _id: 0, item: '$_id', totalQty: 1, revenue: 1, orders: 1 } },
        { $sort: { revenue: -1 } },
        { $limit: 2 },
      ])
      .toArray();
    expect(result).toEqual([
      { totalQty: 6, revenue: 60, orders: 2, item: 'a' },
      { totalQty: 2, revenue: 40, orders: 1, item: 'b' },
    ]);
  });

  it('$group with _id: null counts and averages the whole input', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('aggall'));
    await coll.insertMany([{ v: 1 }, { v: 2 }, { v: 6 }]);
    const [summary] = await coll
      .aggregate([
        { $group: { _id: null, n: { $sum: 1 }, avg: { $avg: '$v' }, max: { $max: '$v' } } },
      ])
      .toArray();
    expect(summary).toEqual({ _id: null, n: 3, avg: 3, max: 6 });
  });
});

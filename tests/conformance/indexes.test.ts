/**
 * Indexes: creation, listing, unique / compound / partial behaviour, dropping, upsert races.
 *
 * Sources: MongoDB manual, reference/command/createIndexes, reference/command/listIndexes,
 * reference/command/dropIndexes, core/index-unique ("E11000 duplicate key error ...",
 * "MongoDB cannot create a unique index on the specified index field(s) if the collection
 * already contains data that would violate the unique constraint"), core/index-partial
 * ("partial indexes ... with unique ... only applies to documents that meet the filter
 * expression"), reference/method/db.collection.updateOne ("Upsert with Unique Index": since 4.2
 * the server retries an upsert that fails with a duplicate key error when the filter is an
 * equality on the unique index fields).
 */
import { describe, expect, it } from 'vitest';
import { newClient, useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('indexes');

describe('createIndex and listIndexes', () => {
  // createIndexes: the default name joins field_direction pairs; listIndexes shows _id_ too.
  it('creates unique, compound and partial indexes and lists them with key, name and unique', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('list'));
    await coll.insertOne({ email: 'a@x.io', a: 1, b: 1 });
    expect(await coll.createIndex({ email: 1 }, { unique: true })).toBe('email_1');
    expect(await coll.createIndex({ a: 1, b: -1 })).toBe('a_1_b_-1');
    expect(
      await coll.createIndex(
        { username: 1 },
        { unique: true, partialFilterExpression: { active: true }, name: 'uniq_active_username' },
      ),
    ).toBe('uniq_active_username');

    const indexes = await coll.listIndexes().toArray();
    const byName = new Map(indexes.map((index) => [index.name as string, index]));
    expect([...byName.keys()].sort()).toEqual(
      ['_id_', 'a_1_b_-1', 'email_1', 'uniq_active_username'].sort(),
    );
    expect(byName.get('_id_')?.key).toEqual({ _id: 1 });
    expect(byName.get('_id_')?.unique).toBeUndefined();
    expect(byName.get('email_1')).toMatchObject({ key: { email: 1 }, unique: true });
    expect(byName.get('a_1_b_-1')?.key).toEqual({ a: 1, b: -1 });
    expect(byName.get('a_1_b_-1')?.unique).toBeUndefined();
    expect(byName.get('uniq_active_username')).toMatchObject({
      key: { username: 1 },
      unique: true,
      partialFilterExpression: { active: true },
    });
    // Key order is significant in a compound index.
    expect(Object.keys(byName.get('a_1_b_-1')?.key)).toEqual(['a', 'b']);
  });

  // createIndexes: creating an identical index again is a no-op that succeeds.
  it('creating an existing index again succeeds and adds nothing', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('again'));
    await coll.createIndex({ k: 1 }, { unique: true });
    expect(await coll.createIndex({ k: 1 }, { unique: true })).toBe('k_1');
    expect(await coll.listIndexes().toArray()).toHaveLength(2);
  });

  // index-unique: an existing violation prevents building the unique index (E11000).
  it('a unique index cannot be built over existing duplicates', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('prebuilt'));
    await coll.insertMany([{ k: 1 }, { k: 1 }]);
    const error = await serverError(coll.createIndex({ k: 1 }, { unique: true }));
    expect(error.code).toBe(11000);
    const names = (await coll.listIndexes().toArray()).map((index) => index.name);
    expect(names).toEqual(['_id_']);
  });
});

describe('unique index violations', () => {
  // index-unique: the error names the index and shows the duplicate key.
  it('E11000 on a unique secondary index carries keyPattern, keyValue and the index name', async () => {
    const name = t.uniqueName('uniq');
    const coll = t.db.collection<Doc>(name);
    await coll.createIndex({ email: 1 }, { unique: true });
    await coll.insertOne({ _id: 1, email: 'a@x.io' });
    const error = await serverError(coll.insertOne({ _id: 2, email: 'a@x.io' }));
    expect(error.code).toBe(11000);
    expect(error.keyPattern).toEqual({ email: 1 });
    expect(error.keyValue).toEqual({ email: 'a@x.io' });
    expect(error.errmsg).toBe(
      `E11000 duplicate key error collection: ${t.db.databaseName}.${name} index: email_1 dup key: { email: "a@x.io" }`,
    );
    expect(await coll.countDocuments()).toBe(1);
  });

  it('an update that would duplicate a unique key fails with E11000 and is not applied', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('uniqupd'));
    await coll.createIndex({ email: 1 }, { unique: true });
    await coll.insertMany([
      { _id: 1, email: 'a@x.io' },
      { _id: 2, email: 'b@x.io' },
    ]);
    const error = await serverError(coll.updateOne({ _id: 2 }, { $set: { email: 'a@x.io' } }));
    expect(error.code).toBe(11000);
    expect(error.keyValue).toEqual({ email: 'a@x.io' });
    expect(await coll.findOne({ _id: 2 })).toEqual({ _id: 2, email: 'b@x.io' });
  });

  // Compound unique index: only the full key tuple must be unique.
  it('a compound unique index rejects a duplicate tuple and reports every key field', async () => {
    const name = t.uniqueName('compound');
    const coll = t.db.collection<Doc>(name);
    await coll.createIndex({ tenant: 1, slug: 1 }, { unique: true });
    await coll.insertMany([
      { tenant: 't1', slug: 'home' },
      { tenant: 't2', slug: 'home' },
    ]);
    const error = await serverError(coll.insertOne({ tenant: 't1', slug: 'home' }));
    expect(error.keyPattern).toEqual({ tenant: 1, slug: 1 });
    expect(error.keyValue).toEqual({ tenant: 't1', slug: 'home' });
    expect(error.errmsg).toContain(
      'index: tenant_1_slug_1 dup key: { tenant: "t1", slug: "home" }',
    );
  });

  // index-partial: uniqueness only among documents matching partialFilterExpression.
  it('a partial unique index allows duplicates outside its filter', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('partial'));
    await coll.createIndex(
      { username: 1 },
      { unique: true, partialFilterExpression: { active: true } },
    );
    await coll.insertOne({ username: 'ann', active: false });
    await coll.insertOne({ username: 'ann', active: false });
    await coll.insertOne({ username: 'ann' });
    await coll.insertOne({ username: 'ann', active: true });
    const error = await serverError(coll.insertOne({ username: 'ann', active: true }));
    expect(error.code).toBe(11000);
    expect(await coll.countDocuments({ username: 'ann' })).toBe(4);
    // Leaving the filter frees the key again.
    await coll.updateOne({ username: 'ann', active: true }, { $set: { active: false } });
    await coll.insertOne({ username: 'ann', active: true });
    expect(await coll.countDocuments({ username: 'ann', active: true })).toBe(1);
  });

  // index-unique: a missing field is indexed as null, so only one document may lack it.
  it('a non-partial unique index treats a missing field as null (only one allowed)', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('nulls'));
    await coll.createIndex({ code: 1 }, { unique: true });
    await coll.insertOne({ name: 'first' });
    const error = await serverError(coll.insertOne({ name: 'second' }));
    expect(error.code).toBe(11000);
    expect(error.keyValue).toEqual({ code: null });
  });
});

describe('dropIndexes', () => {
  // dropIndexes: by name, and '*' (driver dropIndexes()) drops all but _id_.
  it('dropIndex removes one index (and its constraint); dropIndexes removes all but _id_', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('drop'));
    await coll.createIndex({ email: 1 }, { unique: true });
    await coll.createIndex({ a: 1 });
    await coll.dropIndex('email_1');
    let names = (await coll.listIndexes().toArray()).map((index) => index.name).sort();
    expect(names).toEqual(['_id_', 'a_1']);
    await coll.insertMany([{ email: 'same' }, { email: 'same' }]);
    await coll.dropIndexes();
    names = (await coll.listIndexes().toArray()).map((index) => index.name);
    expect(names).toEqual(['_id_']);
  });

  // dropIndexes: an unknown index name is IndexNotFound (27); _id_ cannot be dropped.
  it('dropping a missing index fails with IndexNotFound (27)', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('dropmissing'));
    await coll.insertOne({ a: 1 });
    const error = await serverError(coll.dropIndex('nope_1'));
    expect(error.code).toBe(27);
  });
});

describe('upserts racing on a unique index', () => {
  // updateOne docs, "Upsert with Unique Index": when every racing upsert filters by equality
  // on the unique field, the server retries the losers as updates, so all succeed and exactly
  // one document exists. Separate clients so the upserts truly run concurrently.
  it('concurrent equality upserts on a unique key all succeed and leave one document', async () => {
    const name = t.uniqueName('race');
    await t.db.collection<Doc>(name).createIndex({ key: 1 }, { unique: true });
    const racers = Array.from({ length: 10 }, () => newClient({ maxPoolSize: 1 }));
    try {
      await Promise.all(racers.map((client) => client.connect()));
      const results = await Promise.allSettled(
        racers.map((client) =>
          client
            .db(t.db.databaseName)
            .collection<Doc>(name)
            .updateOne({ key: 'k' }, { $inc: { n: 1 } }, { upsert: true }),
        ),
      );
      const failures = results.filter((result) => result.status === 'rejected');
      expect(failures).toEqual([]);
      const docs = await t.db.collection<Doc>(name).find({}).toArray();
      expect(docs).toHaveLength(1);
      expect(docs[0]?.n).toBe(10);
      const inserted = results.filter(
        (result) => result.status === 'fulfilled' && result.value.upsertedCount === 1,
      );
      expect(inserted).toHaveLength(1);
    } finally {
      await Promise.all(racers.map((client) => client.close()));
    }
  });
});

/**
 * Command fields: the ones MongoDB 7.0 does not know, and documented ones that change nothing on
 * a single-node replica set (or that only restate the default).
 *
 * Sources: MongoDB manual, reference/command/<name> for each command's field list (find,
 * aggregate, insert, update, delete, findAndModify, count, distinct, createIndexes,
 * listCollections, listDatabases, commitTransaction); server src/mongo/idl/idl_parser.cpp (a
 * field a command's IDL does not declare: code 40415, "BSON field '<command>.<field>' is an
 * unknown field."; the command's name in that message is the IDL struct's, e.g. 'find' or
 * 'FindCommandRequest', so only the field is asserted) and
 * src/mongo/db/catalog/index_key_validate.cpp (an index specification field outside the allowed
 * list: InvalidIndexSpecificationOption, 197, "The field '<f>' is not valid for an index
 * specification."); manual reference/collation ("simple" locale: binary comparison),
 * reference/command/find (oplogReplay ignored since 4.4; allowPartialResults is for sharded
 * clusters), reference/command/createIndexes (background is ignored since 4.2; commitQuorum),
 * reference/method/db.collection.createIndex (sparse, expireAfterSeconds).
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('command_options');

const SEED = [
  { _id: 1, name: 'Ann', n: 1 },
  { _id: 2, name: 'bob', n: 2 },
  { _id: 3, name: 'Cid', n: 3 },
];

async function seeded(prefix: string): Promise<string> {
  const name = t.uniqueName(prefix);
  await t.db.collection<Doc>(name).insertMany(SEED.map((doc) => ({ ...doc })));
  return name;
}

/** A reply without what differs between two runs: cluster times, cursor ids, namespaces. */
function comparable(reply: Document, collection: string): unknown {
  const { operationTime: _o, $clusterTime: _c, ...rest } = reply;
  return JSON.parse(
    JSON.stringify(rest, (key, value: unknown) => (key === 'id' ? 0 : value)).replaceAll(
      collection,
      'COLLECTION',
    ),
  ) as unknown;
}

describe('fields MongoDB 7.0 does not know (IDL unknown field, 40415)', () => {
  const cases: [string, (collection: string) => Document][] = [
    ['find', (c) => ({ find: c, filter: {}, bogusOption: 1 })],
    ['insert', (c) => ({ insert: c, documents: [{ _id: 9 }], bogusOption: 1 })],
    [
      'update statement',
      (c) => ({ update: c, updates: [{ q: {}, u: { $set: { x: 1 } }, bogusOption: 1 }] }),
    ],
    ['delete statement', (c) => ({ delete: c, deletes: [{ q: {}, limit: 1, bogusOption: 1 }] })],
    [
      'findAndModify',
      (c) => ({ findAndModify: c, query: {}, update: { $set: { x: 1 } }, bogusOption: 1 }),
    ],
    ['aggregate', (c) => ({ aggregate: c, pipeline: [], cursor: {}, bogusOption: 1 })],
    ['count', (c) => ({ count: c, query: {}, bogusOption: 1 })],
    ['distinct', (c) => ({ distinct: c, key: 'name', bogusOption: 1 })],
    ['listIndexes', (c) => ({ listIndexes: c, bogusOption: 1 })],
    ['drop', (c) => ({ drop: c, bogusOption: 1 })],
  ];
  for (const [label, build] of cases) {
    it(`${label} with an unknown field fails with 40415 naming it, and changes nothing`, async () => {
      const collection = await seeded('unknown');
      const error = await serverError(t.db.command(build(collection)));
      expect(error.code).toBe(40415);
      expect(error.codeName).toBe('Location40415');
      expect(error.message).toContain('.bogusOption');
      expect(error.message).toContain('is an unknown field');
      const docs = await t.db.collection<Doc>(collection).find().sort({ _id: 1 }).toArray();
      expect(docs).toEqual(SEED);
    });
  }

  it('an index specification with an unknown field fails with InvalidIndexSpecificationOption (197)', async () => {
    const collection = await seeded('spec');
    const error = await serverError(
      t.db.command({
        createIndexes: collection,
        indexes: [{ key: { n: 1 }, name: 'n_1', bogusOption: true }],
      }),
    );
    expect(error.code).toBe(197);
    expect(error.codeName).toBe('InvalidIndexSpecificationOption');
    expect(error.message).toContain(
      "The field 'bogusOption' is not valid for an index specification",
    );
    const names = (await t.db.collection<Doc>(collection).listIndexes().toArray()).map(
      (i) => i.name,
    );
    expect(names).toEqual(['_id_']);
  });
});

describe('the simple collation is the binary comparison', () => {
  const simple = { locale: 'simple' };

  it('find, count, distinct and aggregate with { locale: "simple" } compare strings binary', async () => {
    const c = t.db.collection<Doc>(await seeded('simple'));
    expect(await c.find({ name: 'ann' }, { collation: simple }).toArray()).toEqual([]);
    expect(await c.find({ name: 'Ann' }, { collation: simple }).toArray()).toEqual([SEED[0]]);
    expect(
      (await c.find({}, { collation: simple, sort: { name: 1 } }).toArray()).map((d) => d._id),
    ).toEqual([1, 3, 2]);
    expect(await c.countDocuments({ name: 'bob' }, { collation: simple })).toBe(1);
    expect(await c.distinct('name', { name: { $gt: 'a' } }, { collation: simple })).toEqual([
      'bob',
    ]);
    expect(
      await c.aggregate([{ $match: { name: 'BOB' } }], { collation: simple }).toArray(),
    ).toEqual([]);
  });

  it('update, delete and findAndModify statements with the simple collation match binary', async () => {
    const c = t.db.collection<Doc>(await seeded('simpleWrites'));
    expect(
      (await c.updateOne({ name: 'ANN' }, { $set: { x: 1 } }, { collation: simple })).matchedCount,
    ).toBe(0);
    expect(
      (await c.updateOne({ name: 'Ann' }, { $set: { x: 1 } }, { collation: simple })).matchedCount,
    ).toBe(1);
    expect((await c.deleteOne({ name: 'BOB' }, { collation: simple })).deletedCount).toBe(0);
    expect(
      await c.findOneAndUpdate({ name: 'cid' }, { $set: { y: 1 } }, { collation: simple }),
    ).toBeNull();
    expect(await c.findOneAndDelete({ name: 'Cid' }, { collation: simple })).toEqual(SEED[2]);
  });

  it('create and createIndexes accept the simple collation', async () => {
    const name = t.uniqueName('simpleCreate');
    await t.db.createCollection(name, { collation: simple });
    const c = t.db.collection<Doc>(name);
    await c.createIndex({ name: 1 }, { name: 'name_1', unique: true, collation: simple });
    await c.insertMany([{ name: 'a' }, { name: 'A' }]);
    expect(await c.countDocuments({ name: 'a' })).toBe(1);
  });
});

// reference/method/db.collection.find, "Projection": `{ _id: 1 }` alone is an inclusion
// projection (only the _id field is returned).
describe('a projection naming only _id', () => {
  it('find and findAndModify with projection { _id: 1 } return only _id', async () => {
    const c = t.db.collection<Doc>(await seeded('idOnly'));
    expect(await c.find({}, { sort: { _id: 1 }, projection: { _id: 1 } }).toArray()).toEqual([
      { _id: 1 },
      { _id: 2 },
      { _id: 3 },
    ]);
    expect(await c.findOneAndDelete({ _id: 3 }, { projection: { _id: 1 } })).toEqual({ _id: 3 });
    expect(await c.find({ _id: 1 }, { projection: { _id: 0 } }).toArray()).toEqual([
      { name: 'Ann', n: 1 },
    ]);
  });
});

describe('documented fields with nothing to do on a single-node replica set', () => {
  // Each runs twice on identical data, without and with the field; the replies are the same.
  const cases: [string, (collection: string) => Document, Document][] = [
    [
      'find allowDiskUse',
      (c) => ({ find: c, filter: {}, sort: { n: -1 } }),
      { allowDiskUse: true },
    ],
    ['find noCursorTimeout', (c) => ({ find: c, filter: {} }), { noCursorTimeout: true }],
    ['find allowPartialResults', (c) => ({ find: c, filter: {} }), { allowPartialResults: true }],
    ['find oplogReplay', (c) => ({ find: c, filter: { n: { $gte: 2 } } }), { oplogReplay: true }],
    ['find returnKey: false', (c) => ({ find: c }), { returnKey: false }],
    ['find showRecordId: false', (c) => ({ find: c }), { showRecordId: false }],
    ['find tailable: false', (c) => ({ find: c }), { tailable: false }],
    ['find awaitData: false', (c) => ({ find: c }), { awaitData: false }],
    ['find comment and maxTimeMS', (c) => ({ find: c }), { comment: 'why', maxTimeMS: 60000 }],
    [
      'aggregate allowDiskUse',
      (c) => ({ aggregate: c, pipeline: [{ $sort: { n: -1 } }], cursor: {} }),
      { allowDiskUse: true },
    ],
    [
      'aggregate explain: false',
      (c) => ({ aggregate: c, pipeline: [], cursor: {} }),
      { explain: false },
    ],
    [
      'aggregate bypassDocumentValidation',
      (c) => ({ aggregate: c, pipeline: [], cursor: {} }),
      { bypassDocumentValidation: true },
    ],
    [
      'insert writeConcern',
      (c) => ({ insert: c, documents: [{ _id: 8 }] }),
      { writeConcern: { w: 'majority', j: true, wtimeout: 10000 } },
    ],
    [
      'insert bypassDocumentValidation',
      (c) => ({ insert: c, documents: [{ _id: 7 }] }),
      { bypassDocumentValidation: true },
    ],
    [
      'update bypassDocumentValidation',
      (c) => ({ update: c, updates: [{ q: { _id: 1 }, u: { $inc: { n: 1 } } }] }),
      { bypassDocumentValidation: true },
    ],
    [
      'findAndModify bypassDocumentValidation',
      (c) => ({ findAndModify: c, query: { _id: 2 }, update: { $inc: { n: 1 } }, new: true }),
      { bypassDocumentValidation: true },
    ],
    [
      'createIndexes commitQuorum',
      (c) => ({ createIndexes: c, indexes: [{ key: { n: 1 }, name: 'n_1' }] }),
      { commitQuorum: 'votingMembers' },
    ],
    [
      'listCollections authorizedCollections',
      (c) => ({ listCollections: 1, filter: { name: c }, nameOnly: true }),
      { authorizedCollections: true },
    ],
    [
      'listDatabases authorizedDatabases',
      () => ({ listDatabases: 1, nameOnly: true, filter: { name: t.db.databaseName } }),
      { authorizedDatabases: true },
    ],
  ];
  for (const [label, build, option] of cases) {
    it(`${label} answers as without it`, async () => {
      const first = await seeded('plain');
      const second = await seeded('option');
      const db = label.startsWith('listDatabases') ? t.client.db('admin') : t.db;
      const without = await db.command(build(first));
      const withOption = await db.command({ ...build(second), ...option });
      expect(comparable(withOption, second)).toEqual(comparable(without, first));
      expect(await t.db.collection<Doc>(second).find().sort({ _id: 1 }).toArray()).toEqual(
        await t.db.collection<Doc>(first).find().sort({ _id: 1 }).toArray(),
      );
    });
  }

  it('index specifications: background, v: 2, hidden: false and prepareUnique: false build the plain index', async () => {
    const c = t.db.collection<Doc>(await seeded('specDefaults'));
    await t.db.command({
      createIndexes: c.collectionName,
      indexes: [
        { key: { n: 1 }, name: 'n_1', background: true, v: 2, hidden: false, prepareUnique: false },
      ],
    });
    const index = (await c.listIndexes().toArray()).find((i) => i.name === 'n_1');
    expect(index).toMatchObject({ key: { n: 1 }, name: 'n_1', v: 2 });
    expect(index?.hidden).toBeUndefined();
    expect(index?.prepareUnique).toBeUndefined();
  });

  it('sparse and expireAfterSeconds are kept in the index specification', async () => {
    const c = t.db.collection<Doc>(await seeded('specKept'));
    await c.createIndex({ code: 1 }, { name: 'code_1', unique: true, sparse: true });
    await c.createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 3600 });
    const indexes = await c.listIndexes().toArray();
    expect(indexes.find((i) => i.name === 'code_1')).toMatchObject({ unique: true, sparse: true });
    expect(indexes.find((i) => i.name === 'at_1')).toMatchObject({ expireAfterSeconds: 3600 });
    // A sparse unique index holds no entry for documents without the field: SEED has three.
    await c.insertOne({ _id: 4 });
    expect(await c.countDocuments()).toBe(4);
  });

  it('listCollections with cursor.batchSize answers in batches of that size', async () => {
    const names = [await seeded('batchA'), await seeded('batchB')];
    const reply = await t.db.command({
      listCollections: 1,
      filter: { name: { $in: names } },
      nameOnly: true,
      cursor: { batchSize: 1 },
    });
    expect((reply.cursor as Document).firstBatch).toHaveLength(1);
    const listed = await t.db
      .listCollections({ name: { $in: names } }, { nameOnly: true, batchSize: 1 })
      .toArray();
    expect(listed.map((info) => info.name).sort()).toEqual([...names].sort());
  });

  it('listDatabases with a filter lists only the databases that match it', async () => {
    await seeded('listed');
    const reply = await t.client
      .db('admin')
      .command({ listDatabases: 1, nameOnly: true, filter: { name: t.db.databaseName } });
    expect(reply.databases).toEqual([{ name: t.db.databaseName }]);
    const none = await t.client
      .db('admin')
      .command({ listDatabases: 1, filter: { name: `${t.db.databaseName}_absent` } });
    expect(none.databases).toEqual([]);
  });
});

/**
 * The server says it is MongoDB 7.0 (`maxWireVersion` 21), so what 7.0 refuses, it refuses, the
 * way 7.0 does: a feature of a later release is an error, never accepted and ignored.
 *
 * Sources:
 * - mongod src/mongo/db/ops/write_ops.idl: `UpdateOpEntry` and `DeleteOpEntry` are
 *   `strict: true` structs; in 7.0 an update statement knows `q`, `u`, `c`, `arrayFilters`,
 *   `hint`, `multi`, `upsert`, `upsertSupplied`, `collation` (plus internal fields). The `sort`
 *   of `updateOne`/`replaceOne` is new in MongoDB 8.0 (manual, release-notes/8.0 "updateOne
 *   sort"; mongodb/specifications source/crud/tests/unified/updateOne-sort.yml runs on
 *   minServerVersion 8.0). Both drivers under test send it whatever the server's version
 *   (lib/operations/update.js makeUpdateStatement).
 * - mongod src/mongo/idl/idl_parser.cpp throwUnknownField: code 40415, "BSON field
 *   '<path>' is an unknown field."; 40415 has no name in error_codes.yml, so its codeName is
 *   "Location40415" (as mongod's replies show). The IDL parses the whole command before any
 *   statement runs, so the command fails as a whole.
 * - mongod src/mongo/db/ops/insert.cpp fixDocumentForInsert calls
 *   storage_validation::storageValidIdField (src/mongo/db/update/storage_validation.cpp):
 *   DollarPrefixedFieldName (52), "_id fields may not contain '$'-prefixed fields: <name> is not
 *   valid for storage.", found by BSONObj::storageValidEmbedded (src/mongo/bson/bsonobj.cpp) at
 *   any depth, a DBRef (`$ref`, `$id`, optional `$db`) excepted. mongodb/specifications
 *   source/crud/tests/unified/insertOne-dots_and_dollars.yml: "Inserting document with
 *   dollar-prefixed key in _id yields server-side error" on every server version, while a
 *   top-level `$a` field (5.0+) and a dotted key inside `_id` are accepted.
 * - The `bulkWrite` command is new in 8.0 (manual, reference/command/bulkWrite); 7.0 answers
 *   CommandNotFound (59) for a command it does not have.
 * - Aggregation expressions of later releases (`$toUUID`, new in 8.0; `$sigmoid`, new in 8.2:
 *   manual, reference/operator/aggregation) are unknown to 7.0: mongod
 *   src/mongo/db/pipeline/expression.cpp Expression::parseExpression answers
 *   InvalidPipelineOperator (168), "Unrecognized expression '<name>'".
 * - `$convert`'s `format` argument is new in 8.0 and `base` in 8.3 (manual,
 *   reference/operator/aggregation/convert); 7.0's ExpressionConvert::parse
 *   (src/mongo/db/pipeline/expression.cpp) knows `input`, `to`, `onError` and `onNull` only and
 *   answers FailedToParse (9), "$convert found an unknown argument: <name>".
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('version_honesty');

async function seeded() {
  const coll = t.db.collection<Doc>(t.uniqueName('coll'));
  await coll.insertMany([
    { _id: 1, x: 30 },
    { _id: 2, x: 10 },
    { _id: 3, x: 20 },
  ]);
  return coll;
}

/**
 * The `sort` of the last update statement the driver sent (proof the option left the client);
 * the driver holds it as a Map.
 */
function sentSort(): unknown {
  const updates = t.commands.started.filter((event) => event.commandName === 'update');
  const last = updates.at(-1)?.command.updates as Document[] | undefined;
  const sort: unknown = last?.[0]?.sort;
  return sort instanceof Map ? Object.fromEntries(sort) : sort;
}

describe('the version the server claims', () => {
  // Manual: reference/command/hello (maxWireVersion; 21 is 7.0) and reference/command/buildInfo.
  it('hello reports maxWireVersion 21 and buildInfo a 7.0 version', async () => {
    const admin = t.client.db('admin');
    const hello = await admin.command({ hello: 1 });
    expect(hello.maxWireVersion).toBe(21);
    const info = await admin.command({ buildInfo: 1 });
    expect(String(info.version)).toMatch(/^7\.0\./);
  });
});

describe('update statements: fields 7.0 does not know', () => {
  it('updateOne with sort (8.0) fails with 40415 (Location40415) naming update.updates.sort, and changes nothing', async () => {
    const coll = await seeded();
    t.commands.reset();
    const error = await serverError(
      coll.updateOne({}, { $set: { picked: true } }, { sort: { x: 1 } }),
    );
    expect(sentSort()).toEqual({ x: 1 });
    expect(error.code).toBe(40415);
    expect(error.codeName).toBe('Location40415');
    expect(error.errmsg).toBe("BSON field 'update.updates.sort' is an unknown field.");
    expect(await coll.countDocuments({ picked: true })).toBe(0);
  });

  it('replaceOne with sort (8.0) fails the same way and replaces nothing', async () => {
    const coll = await seeded();
    t.commands.reset();
    const error = await serverError(coll.replaceOne({}, { replaced: true }, { sort: { x: -1 } }));
    expect(sentSort()).toEqual({ x: -1 });
    expect(error.code).toBe(40415);
    expect(error.codeName).toBe('Location40415');
    expect(error.errmsg).toBe("BSON field 'update.updates.sort' is an unknown field.");
    expect(await coll.countDocuments({ replaced: true })).toBe(0);
  });

  it('an unknown field in any statement fails the whole command before the first statement runs', async () => {
    const coll = await seeded();
    const error = await serverError(
      t.db.command({
        update: coll.collectionName,
        updates: [
          { q: { _id: 1 }, u: { $set: { first: true } } },
          { q: { _id: 2 }, u: { $set: { second: true } }, sort: { x: 1 } },
        ],
      }),
    );
    expect(error.code).toBe(40415);
    expect(error.codeName).toBe('Location40415');
    expect(error.errmsg).toBe("BSON field 'update.updates.sort' is an unknown field.");
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, x: 30 });
  });

  it('a delete statement with a field 7.0 does not know fails with 40415 (Location40415) naming delete.deletes.<field>', async () => {
    const coll = await seeded();
    const error = await serverError(
      t.db.command({
        delete: coll.collectionName,
        deletes: [{ q: {}, limit: 1, sort: { x: 1 } }],
      }),
    );
    expect(error.code).toBe(40415);
    expect(error.codeName).toBe('Location40415');
    expect(error.errmsg).toBe("BSON field 'delete.deletes.sort' is an unknown field.");
    expect(await coll.countDocuments()).toBe(3);
  });

  it('the fields 7.0 knows still work: upsert, multi, arrayFilters', async () => {
    const coll = await seeded();
    const reply = await t.db.command({
      update: coll.collectionName,
      updates: [
        { q: { x: { $gte: 20 } }, u: { $inc: { x: 1 } }, multi: true, upsert: false },
        { q: { _id: 9 }, u: { $set: { tags: [1, 2] } }, upsert: true },
        { q: { _id: 9 }, u: { $set: { 'tags.$[t]': 0 } }, arrayFilters: [{ t: 2 }] },
      ],
    });
    expect(reply.ok).toBe(1);
    expect(reply.writeErrors).toBeUndefined();
    expect(await coll.find({}, { sort: { _id: 1 } }).toArray()).toEqual([
      { _id: 1, x: 31 },
      { _id: 2, x: 10 },
      { _id: 3, x: 21 },
      { _id: 9, tags: [1, 0] },
    ]);
  });
});

describe("'$'-prefixed field names inside _id", () => {
  /** The raw insert reply, so that the write error is seen exactly as the server sent it. */
  async function insertRaw(documents: Document[]) {
    const name = t.uniqueName('ids');
    const reply = await t.db.command({ insert: name, documents });
    return { reply, coll: t.db.collection<Doc>(name) };
  }

  it('an _id document with a $-prefixed field is refused with DollarPrefixedFieldName 52 and not stored', async () => {
    const { reply, coll } = await insertRaw([{ _id: { $a: 1 } }]);
    expect(reply.n).toBe(0);
    expect(reply.writeErrors).toHaveLength(1);
    expect(reply.writeErrors[0]).toMatchObject({
      index: 0,
      code: 52,
      errmsg: "_id fields may not contain '$'-prefixed fields: $a is not valid for storage.",
    });
    expect(await coll.countDocuments()).toBe(0);
  });

  it('is found at any depth inside _id, arrays included', async () => {
    const { reply } = await insertRaw([{ _id: { a: { b: [{ c: 1 }, { $d: 2 }] } } }]);
    expect(reply.writeErrors[0]).toMatchObject({
      index: 0,
      code: 52,
      errmsg: "_id fields may not contain '$'-prefixed fields: $d is not valid for storage.",
    });
  });

  it('through insertOne: the driver reports code 52', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('ids'));
    const error = await serverError(coll.insertOne({ _id: { $oid: '0123456789ab0123456789ab' } }));
    expect(error.code).toBe(52);
    expect(error.message).toBe(
      "_id fields may not contain '$'-prefixed fields: $oid is not valid for storage.",
    );
  });

  it('an unordered insert stores the other documents', async () => {
    const { reply, coll } = await insertRaw([{ _id: 1 }, { _id: { $bad: 1 } }, { _id: 3 }]);
    // insertRaw is ordered; send the unordered one explicitly.
    expect(reply.n).toBe(1);
    const unordered = await t.db.command({
      insert: coll.collectionName,
      documents: [{ _id: 4 }, { _id: { $bad: 1 } }, { _id: 5 }],
      ordered: false,
    });
    expect(unordered.n).toBe(2);
    expect(unordered.writeErrors.map((e: Document) => [e.index, e.code])).toEqual([[1, 52]]);
    expect(await coll.find({}, { sort: { _id: 1 } }).toArray()).toEqual([
      { _id: 1 },
      { _id: 4 },
      { _id: 5 },
    ]);
  });

  it('accepts what 7.0 accepts: a top-level $-prefixed field, a dotted key inside _id, $-fields outside _id', async () => {
    const { reply, coll } = await insertRaw([
      { _id: 1, $a: 1 },
      { _id: { 'a.b': 1 } },
      { _id: 3, a: { $b: 1 } },
    ]);
    expect(reply.writeErrors).toBeUndefined();
    expect(reply.n).toBe(3);
    expect(await coll.countDocuments()).toBe(3);
  });
});

describe('expressions of later releases', () => {
  for (const [name, expression] of [
    ['$toUUID', { $toUUID: '$s' }],
    ['$sigmoid', { $sigmoid: '$n' }],
  ] as const) {
    it(`${name} in $project is InvalidPipelineOperator 168, "Unrecognized expression '${name}'"`, async () => {
      const coll = t.db.collection<Doc>(t.uniqueName('expr'));
      await coll.insertOne({ _id: 1, s: '123e4567-e89b-12d3-a456-426614174000', n: 0 });
      const error = await serverError(coll.aggregate([{ $project: { x: expression } }]).toArray());
      expect(error.code).toBe(168);
      expect(error.codeName).toBe('InvalidPipelineOperator');
      expect(error.errmsg).toBe(`Unrecognized expression '${name}'`);
    });
  }

  it('in a find $expr too', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('expr'));
    await coll.insertOne({ _id: 1, n: 0 });
    const error = await serverError(
      coll.find({ $expr: { $gt: [{ $sigmoid: '$n' }, 0] } }).toArray(),
    );
    expect(error.code).toBe(168);
    expect(error.errmsg).toBe("Unrecognized expression '$sigmoid'");
  });
});

describe('commands of later releases', () => {
  // Manual: reference/command/bulkWrite ("New in version 8.0").
  it('the bulkWrite command is CommandNotFound (59)', async () => {
    const error = await serverError(
      t.client.db('admin').command({
        bulkWrite: 1,
        ops: [{ insert: 0, document: { _id: 1 } }],
        nsInfo: [{ ns: `${t.db.databaseName}.bulk` }],
      }),
    );
    expect(error.code).toBe(59);
    expect(error.codeName).toBe('CommandNotFound');
    expect(await t.db.collection('bulk').countDocuments()).toBe(0);
  });
});

describe('arguments of later releases', () => {
  for (const [name, argument] of [
    ['format', { format: 'base64' }],
    ['base', { base: 16 }],
  ] as const) {
    it(`$convert's ${name} is FailedToParse (9), "$convert found an unknown argument: ${name}"`, async () => {
      const coll = await seeded();
      const error = await serverError(
        coll
          .aggregate([
            { $project: { s: { $convert: { input: '$x', to: 'string', ...argument } } } },
          ])
          .toArray(),
      );
      expect(error.code).toBe(9);
      expect(error.codeName).toBe('FailedToParse');
      expect(error.errmsg).toBe(`$convert found an unknown argument: ${name}`);
    });
  }

  it("$convert with 7.0's arguments converts", async () => {
    const coll = await seeded();
    const result = await coll
      .aggregate([
        { $sort: { _id: 1 } },
        { $project: { s: { $convert: { input: '$x', to: 'string', onError: 'e', onNull: 'n' } } } },
      ])
      .toArray();
    expect(result).toEqual([
      { _id: 1, s: '30' },
      { _id: 2, s: '10' },
      { _id: 3, s: '20' },
    ]);
  });
});

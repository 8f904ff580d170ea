/**
 * Command `let` variables (MongoDB 5.0+): a top-level `let` document on find, aggregate, update,
 * delete and findAndModify defines variables that `$$name` reads in `$expr`, in pipelines, in
 * pipeline updates and in find projections. Each command's manual page documents its `let` field:
 * https://www.mongodb.com/docs/manual/reference/command/find/ ,
 * https://www.mongodb.com/docs/manual/reference/command/aggregate/ ,
 * https://www.mongodb.com/docs/manual/reference/command/update/ (one `let` for all statements),
 * https://www.mongodb.com/docs/manual/reference/command/delete/ ,
 * https://www.mongodb.com/docs/manual/reference/command/findAndModify/ .
 * The driver sends `let` from the `let` option of each helper (bulkWrite included, which sends
 * update and delete commands).
 *
 * How mongod seeds them: src/mongo/db/pipeline/variables.cpp (`seedVariablesWithLetParameters`:
 * each value is an expression evaluated once, in order, before any document is read; reading a
 * field is 4890500; setting NOW, CLUSTER_TIME, JS_SCOPE or IS_MR is 4738901) and
 * src/mongo/db/pipeline/variable_validation.cpp (`isValidNameForUserWrite`: any other name that
 * does not start with a lowercase letter is FailedToParse); an undefined variable is 17276
 * (`VariablesParseState::getVariable`). The server's own jstests/core/command_let_variables.js
 * checks the same codes.
 */
import type { Collection } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('let_variables');

async function fresh(prefix: string, docs: Doc[]): Promise<Collection<Doc>> {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  const coll = t.db.collection<Doc>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  return coll;
}

const birds: Doc[] = [
  { _id: 1, species: 'wren', n: 3 },
  { _id: 2, species: 'robin', n: 5 },
  { _id: 3, species: 'wren', n: 8 },
];

const isWren = { $expr: { $eq: ['$species', '$$target'] } };

describe('find (manual: command/find, field `let`)', () => {
  it('$$name in $expr reads the let variable', async () => {
    const coll = await fresh('find_expr', birds);
    const found = await coll.find(isWren, { let: { target: 'wren' } }).toArray();
    expect(found.map((d) => d._id)).toEqual([1, 3]);
  });

  it('a let variable is an expression, evaluated once; later ones may use earlier ones', async () => {
    const coll = await fresh('find_chain', birds);
    const found = await coll
      .find(
        {},
        {
          let: { a: 2, b: { $add: ['$$a', 3] }, c: { $multiply: ['$$a', '$$b'] } },
          projection: { _id: 1, c: '$$c' },
          sort: { _id: 1 },
        },
      )
      .toArray();
    expect(found).toEqual([
      { _id: 1, c: 10 },
      { _id: 2, c: 10 },
      { _id: 3, c: 10 },
    ]);
  });

  it('$rand in a let value is evaluated once for the whole command', async () => {
    const coll = await fresh('find_rand', birds);
    const found = await coll
      .find({}, { let: { r: { $rand: {} } }, projection: { r: '$$r' } })
      .toArray();
    expect(found).toHaveLength(3);
    expect(new Set(found.map((d) => d.r)).size).toBe(1);
    expect(typeof found[0]?.r).toBe('number');
  });

  it('a $literal value stays a string, not a field path; a missing value matches missing', async () => {
    const coll = await fresh('find_literal', [
      { _id: 1, a: '$notAField' },
      { _id: 2, b: 1 },
    ]);
    const literal = await coll
      .find({ $expr: { $eq: ['$a', '$$c'] } }, { let: { c: { $literal: '$notAField' } } })
      .toArray();
    expect(literal.map((d) => d._id)).toEqual([1]);
    const missing = await coll
      .find(
        { $expr: { $eq: ['$a', '$$c'] } },
        { let: { c: { $getField: { field: 'x', input: { y: 1 } } } } },
      )
      .toArray();
    expect(missing.map((d) => d._id)).toEqual([2]);
  });

  it('$$NOW is usable inside a let value', async () => {
    const coll = await fresh('find_now', birds.slice(0, 1));
    const [doc] = await coll
      .find({}, { let: { at: '$$NOW' }, projection: { at: '$$at' } })
      .toArray();
    expect(doc?.at).toBeInstanceOf(Date);
  });

  it('a find without let still fails on an undefined variable (17276)', async () => {
    const coll = await fresh('find_undefined', birds);
    const error = await serverError(coll.find(isWren).toArray());
    expect(error.code).toBe(17276);
    expect(error.message).toContain('Use of undefined variable: target');
  });
});

describe('aggregate (manual: command/aggregate, field `let`)', () => {
  it('$$name resolves in $match $expr and in later stages', async () => {
    const coll = await fresh('agg', birds);
    const out = await coll
      .aggregate(
        [
          { $match: isWren },
          { $project: { _id: 1, label: { $concat: ['$$prefix', '$species'] } } },
        ],
        { let: { target: 'wren', prefix: 'bird:' } },
      )
      .toArray();
    expect(out).toEqual([
      { _id: 1, label: 'bird:wren' },
      { _id: 3, label: 'bird:wren' },
    ]);
  });

  it('a $let inside the pipeline shadows a command variable of the same name', async () => {
    const coll = await fresh('agg_scope', birds.slice(0, 1));
    const out = await coll
      .aggregate(
        [
          {
            $project: {
              _id: 0,
              inner: { $let: { vars: { v: 'INNER' }, in: '$$v' } },
              outer: '$$v',
              both: { $let: { vars: { w: 'IN' }, in: { $concat: ['$$w', '$$v'] } } },
            },
          },
        ],
        { let: { v: 'OUTER' } },
      )
      .toArray();
    expect(out).toEqual([{ inner: 'INNER', outer: 'OUTER', both: 'INOUTER' }]);
  });
});

describe('update (manual: command/update, top-level `let` for every statement)', () => {
  it('updateOne: the filter $expr and a pipeline update read let variables', async () => {
    const coll = await fresh('update_one', birds);
    const result = await coll.updateOne(isWren, [{ $set: { species: '$$renamed' } }], {
      let: { target: 'wren', renamed: 'winter wren' },
    });
    expect(result.matchedCount).toBe(1);
    expect(result.modifiedCount).toBe(1);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, species: 'winter wren', n: 3 });
  });

  it('updateMany: an operator update with a let-driven filter', async () => {
    const coll = await fresh('update_many', birds);
    const result = await coll.updateMany(
      { $expr: { $gte: ['$n', '$$min'] } },
      { $inc: { n: 1 } },
      { let: { min: 5 } },
    );
    expect(result.matchedCount).toBe(2);
    expect((await coll.find({}, { sort: { _id: 1 } }).toArray()).map((d) => d.n)).toEqual([
      3, 6, 9,
    ]);
  });

  it('an upsert seeds its pipeline update with the let variables too', async () => {
    const coll = await fresh('update_upsert', []);
    const result = await coll.updateOne(
      { _id: 7 },
      [{ $set: { species: '$$s', n: { $add: ['$$base', 1] } } }],
      { upsert: true, let: { s: 'owl', base: 41 } },
    );
    expect(result.upsertedId).toBe(7);
    expect(await coll.findOne({ _id: 7 })).toEqual({ _id: 7, species: 'owl', n: 42 });
  });

  it('an undefined variable in the update pipeline fails with 17276', async () => {
    const coll = await fresh('update_undefined', birds);
    const error = await serverError(
      coll.updateOne({ _id: 1 }, [{ $set: { x: '$$nope' } }], { let: { other: 1 } }),
    );
    expect(error.code).toBe(17276);
    expect(await coll.findOne({ _id: 1 })).toEqual(birds[0]);
  });
});

describe('update statement constants `c` (manual: command/update, updates.c, pipeline updates only)', () => {
  // mongod: src/mongo/db/update/pipeline_executor.cpp defines each constant as it is (not an
  // expression) over the command's let; src/mongo/db/update/update_driver.cpp refuses `c` on any
  // other update with 51198.
  it('a constant is read by the pipeline, as given, and wins over a let of the same name', async () => {
    const coll = await fresh('constants', birds);
    const reply = await t.db.command({
      update: coll.collectionName,
      updates: [
        {
          q: { _id: 1 },
          u: [{ $set: { k: '$$k', other: '$$other', upper: '$$Up' } }],
          c: { k: 7, Up: 'U' },
        },
      ],
      let: { k: 1, other: 2 },
    });
    expect(reply.nModified).toBe(1);
    expect(await coll.findOne({ _id: 1 })).toEqual({
      _id: 1,
      species: 'wren',
      n: 3,
      k: 7,
      other: 2,
      upper: 'U',
    });
  });

  it('constants on an operator update are a write error 51198, and nothing is written', async () => {
    const coll = await fresh('constants_op', birds);
    const reply = await t.db.command({
      update: coll.collectionName,
      updates: [{ q: { _id: 1 }, u: { $set: { k: 1 } }, c: { k: 7 } }],
    });
    expect(reply.n).toBe(0);
    expect(reply.writeErrors[0].code).toBe(51198);
    expect(reply.writeErrors[0].errmsg).toBe(
      'Constant values may only be specified for pipeline updates',
    );
    expect(await coll.findOne({ _id: 1 })).toEqual(birds[0]);
  });
});

describe('delete (manual: command/delete, field `let`)', () => {
  it('deleteOne and deleteMany select with let variables', async () => {
    const coll = await fresh('delete', [...birds, { _id: 4, species: 'robin', n: 1 }]);
    expect((await coll.deleteOne(isWren, { let: { target: 'robin' } })).deletedCount).toBe(1);
    expect((await coll.deleteMany(isWren, { let: { target: 'wren' } })).deletedCount).toBe(2);
    expect((await coll.find({}).toArray()).map((d) => d._id)).toEqual([4]);
  });
});

describe('findAndModify (manual: command/findAndModify, field `let`)', () => {
  it('findOneAndUpdate: query, pipeline update and projection read let variables', async () => {
    const coll = await fresh('fam_update', birds);
    const after = await coll.findOneAndUpdate(
      { _id: 2, ...isWren },
      [{ $set: { n: { $multiply: ['$n', '$$factor'] } } }],
      {
        let: { target: 'robin', factor: 10, tag: 'seen' },
        returnDocument: 'after',
        projection: { n: 1, tag: '$$tag' },
      },
    );
    expect(after).toEqual({ _id: 2, n: 50, tag: 'seen' });
  });

  it('findOneAndReplace and findOneAndDelete select with let variables', async () => {
    const coll = await fresh('fam_replace_delete', birds);
    const before = await coll.findOneAndReplace(
      isWren,
      { species: 'gone' },
      { let: { target: 'robin' } },
    );
    expect(before?._id).toBe(2);
    const deleted = await coll.findOneAndDelete(isWren, {
      let: { target: 'wren' },
      sort: { _id: -1 },
    });
    expect(deleted?._id).toBe(3);
    expect((await coll.find({}, { sort: { _id: 1 } }).toArray()).map((d) => d.species)).toEqual([
      'wren',
      'gone',
    ]);
  });
});

describe('bulkWrite (the driver sends its `let` with each update and delete command)', () => {
  it('update and delete operations read the let variables', async () => {
    const coll = await fresh('bulk', birds);
    const result = await coll.bulkWrite(
      [
        { updateMany: { filter: isWren, update: [{ $set: { n: '$$n0' } }] } },
        { deleteOne: { filter: { $expr: { $eq: ['$species', '$$doomed'] } } } },
      ],
      { let: { target: 'wren', n0: 0, doomed: 'robin' } },
    );
    expect(result.modifiedCount).toBe(2);
    expect(result.deletedCount).toBe(1);
    expect(await coll.find({}, { sort: { _id: 1 } }).toArray()).toEqual([
      { _id: 1, species: 'wren', n: 0 },
      { _id: 3, species: 'wren', n: 0 },
    ]);
  });
});

describe('what mongod refuses in let (variables.cpp, variable_validation.cpp)', () => {
  it('a let that is not an object is TypeMismatch; let: null is no let', async () => {
    const coll = await fresh('not_object', birds);
    const error = await serverError(
      t.db.command({ find: coll.collectionName, filter: {}, let: 1 }),
    );
    expect(error.code).toBe(14);
    expect(error.codeName).toBe('TypeMismatch');
    const reply = await t.db.command({ find: coll.collectionName, filter: {}, let: null });
    expect(reply.cursor.firstBatch).toHaveLength(3);
  });

  it.each([['Reserved'], ['ROOT'], ['REMOVE'], ['_x']])(
    '%s is not a user variable name: FailedToParse (9)',
    async (name) => {
      const coll = await fresh('bad_name', birds);
      const error = await serverError(coll.find({}, { let: { [name]: 1 } }).toArray());
      expect(error.code).toBe(9);
      expect(error.codeName).toBe('FailedToParse');
      expect(error.message).toContain(
        `'${name}' starts with an invalid character for a user variable name`,
      );
    },
  );

  it('a character other than letters, digits and _ after the first: FailedToParse (9)', async () => {
    const coll = await fresh('bad_char', birds);
    const error = await serverError(coll.find({}, { let: { 'a-b': 1 } }).toArray());
    expect(error.code).toBe(9);
    expect(error.message).toContain("'a-b' contains an invalid character for a variable name: '-'");
  });

  it('non-ASCII names are user variable names', async () => {
    const coll = await fresh('unicode_name', birds);
    const found = await coll
      .find({ $expr: { $eq: ['$species', '$$été'] } }, { let: { été: 'robin' } })
      .toArray();
    expect(found.map((d) => d._id)).toEqual([2]);
  });

  it.each([['NOW'], ['CLUSTER_TIME']])(
    'setting the system variable %s is refused (4738901)',
    async (name) => {
      const coll = await fresh('system_var', birds);
      const error = await serverError(coll.aggregate([], { let: { [name]: 'failure' } }).toArray());
      expect(error.code).toBe(4738901);
      expect(error.message).toContain(`Attempt to set internal constant: ${name}`);
    },
  );

  it('a let value that reads a field is refused (4890500)', async () => {
    const coll = await fresh('reads_field', birds);
    for (const value of ['$_id', { $add: ['$n', 1] }, '$$ROOT']) {
      const error = await serverError(coll.find({}, { let: { a: value } }).toArray());
      expect(error.code).toBe(4890500);
      expect(error.message).toContain('Command let Expression tried to access a field');
    }
  });

  it('a let value that reads an undefined variable is 17276, even with nothing to match', async () => {
    const coll = await fresh('let_undefined', []);
    const error = await serverError(coll.find({}, { let: { a: '$$oops' } }).toArray());
    expect(error.code).toBe(17276);
  });
});

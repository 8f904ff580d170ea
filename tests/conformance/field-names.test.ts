/**
 * Field names JavaScript treats specially (`__proto__`, `constructor`, `prototype`, `toString`)
 * are ordinary field names in MongoDB.
 *
 * Sources: MongoDB manual, core/document "Field Names" (field names are strings; the only
 * restrictions are the `_id` field, names starting with `$` and names containing `.`, and since
 * 5.0 even those are allowed with care) and reference/limits "Restrictions on Field Names";
 * bsonspec.org (`e_name ::= cstring`: any string without NUL). js-bson (the driver's BSON
 * library) deserialises a `__proto__` field as an own property (`Object.defineProperty` in
 * `parser/deserializer.ts`), so applications receive it as data, never as a prototype; and it
 * serialises own enumerable keys, so a document built by `JSON.parse` sends its `__proto__` key.
 *
 * Documents here are built with JSON.parse, which (unlike an object literal) makes `__proto__`
 * an own key. Every test also checks that this process's Object.prototype gained nothing.
 */
import type { Document } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import type { Doc } from './helpers.js';

const t = useTestDatabase('field_names');

const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

afterEach(() => {
  expect(({} as Document).isAdmin).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeNames);
});

const doc = (json: string): Doc => JSON.parse(json) as Doc;

/** The value at own properties only (never an inherited one). */
function own(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) {
      return undefined;
    }
    current = (current as Document)[key];
  }
  return current;
}

/** JSON text keeps own `__proto__` keys and field order, which toEqual would not show. */
const text = (value: unknown): string => JSON.stringify(value);

async function withDocs(...docs: Doc[]) {
  const coll = t.db.collection<Doc>(t.uniqueName('names'));
  if (docs.length > 0) await coll.insertMany(docs);
  return coll;
}

describe('storing and reading', () => {
  it('insert stores __proto__, constructor and prototype as fields and find returns them as own fields', async () => {
    const coll = await withDocs(
      doc('{"_id":1,"__proto__":{"isAdmin":true},"constructor":"c","prototype":{"p":1}}'),
    );
    const found = await coll.findOne({ _id: 1 });
    expect(text(found)).toBe(
      '{"_id":1,"__proto__":{"isAdmin":true},"constructor":"c","prototype":{"p":1}}',
    );
    expect(Object.getPrototypeOf(found)).toBe(Object.prototype);
    expect(own(found, '__proto__', 'isAdmin')).toBe(true);
  });

  it('queries match through them: equality, dotted paths, $exists', async () => {
    const coll = await withDocs(
      doc('{"_id":1,"__proto__":{"isAdmin":1},"constructor":"x"}'),
      doc('{"_id":2,"prototype":[{"a":1}]}'),
      { _id: 3, plain: true },
    );
    const ids = async (filter: Document) =>
      (await coll.find(filter).sort({ _id: 1 }).toArray()).map((d) => d._id);
    expect(await ids({ '__proto__.isAdmin': 1 })).toEqual([1]);
    expect(await ids({ constructor: 'x' })).toEqual([1]);
    expect(await ids({ 'prototype.a': 1 })).toEqual([2]);
    expect(await ids(doc('{"__proto__":{"$exists":true}}'))).toEqual([1]);
    expect(await ids({ constructor: { $exists: false } })).toEqual([2, 3]);
  });

  // A field the document lacks is missing, whatever JavaScript objects inherit.
  it('a missing constructor or toString field is missing, not an inherited function', async () => {
    const coll = await withDocs({ _id: 1, a: 1 });
    expect(await coll.countDocuments({ toString: { $exists: true } })).toBe(0);
    expect(await coll.countDocuments({ constructor: { $exists: true } })).toBe(0);
    expect(await coll.countDocuments({ constructor: null })).toBe(1);
    expect(await coll.countDocuments({ 'valueOf.x': { $exists: true } })).toBe(0);
    const projected = await coll.findOne(
      { _id: 1 },
      { projection: { constructor: 1, toString: 1 } },
    );
    expect(text(projected)).toBe('{"_id":1}');
  });

  it('sort, distinct and projections use them as field names', async () => {
    const coll = await withDocs(
      doc('{"_id":1,"__proto__":{"k":3},"constructor":"b"}'),
      doc('{"_id":2,"__proto__":{"k":1},"constructor":"c"}'),
      doc('{"_id":3,"__proto__":{"k":2},"constructor":"a"}'),
    );
    const byProto = await coll.find({}, { sort: { '__proto__.k': 1 } }).toArray();
    expect(byProto.map((d) => d._id)).toEqual([2, 3, 1]);
    const byCtor = await coll.find({}, { sort: doc('{"constructor":-1}') }).toArray();
    expect(byCtor.map((d) => d._id)).toEqual([2, 1, 3]);
    expect((await coll.distinct('__proto__.k')).sort()).toEqual([1, 2, 3]);
    const inclusion = await coll.findOne({ _id: 1 }, { projection: { '__proto__.k': 1 } });
    expect(text(inclusion)).toBe('{"_id":1,"__proto__":{"k":3}}');
    const exclusion = await coll.findOne({ _id: 1 }, { projection: { __proto__: 0 } as Document });
    expect(text(exclusion)).toBe('{"_id":1,"__proto__":{"k":3},"constructor":"b"}');
    const excludeProto = await coll.findOne({ _id: 1 }, { projection: doc('{"__proto__":0}') });
    expect(text(excludeProto)).toBe('{"_id":1,"constructor":"b"}');
  });

  // Manual: core/index-unique; the key pattern names the field path like any other.
  it('a unique index on a path through __proto__ keys on it', async () => {
    const coll = await withDocs();
    await coll.createIndex(doc('{"__proto__.k":1}'), { unique: true });
    await coll.insertOne(doc('{"_id":1,"__proto__":{"k":1}}'));
    await coll.insertOne(doc('{"_id":2,"__proto__":{"k":2}}'));
    const error = await coll.insertOne(doc('{"_id":3,"__proto__":{"k":1}}')).catch((e) => e);
    expect(error.code).toBe(11000);
    expect(text(error.keyValue)).toBe('{"__proto__.k":1}');
    expect(text(error.keyPattern)).toBe('{"__proto__.k":1}');
    expect(await coll.countDocuments()).toBe(2);
  });
});

describe('update operators', () => {
  it('$set, $inc and $push write through __proto__, constructor and prototype paths', async () => {
    const coll = await withDocs(doc('{"_id":1,"__proto__":{"isAdmin":0}}'));
    const result = await coll.updateOne(
      { _id: 1 },
      doc(
        '{"$set":{"__proto__.role":"r","constructor.name":"n"},"$inc":{"__proto__.isAdmin":1,"toString":2},"$push":{"prototype":5}}',
      ),
    );
    expect(result.modifiedCount).toBe(1);
    expect(text(await coll.findOne({ _id: 1 }))).toBe(
      '{"_id":1,"__proto__":{"isAdmin":1,"role":"r"},"constructor":{"name":"n"},"prototype":[5],"toString":2}',
    );
  });

  it('a top-level $set of __proto__ stores the field (it is not dropped)', async () => {
    const coll = await withDocs({ _id: 1 });
    const result = await coll.updateOne({ _id: 1 }, doc('{"$set":{"__proto__":{"isAdmin":1}}}'));
    expect(result.modifiedCount).toBe(1);
    expect(text(await coll.findOne({ _id: 1 }))).toBe('{"_id":1,"__proto__":{"isAdmin":1}}');
  });

  it('$unset and $rename move them like other fields', async () => {
    const coll = await withDocs(doc('{"_id":1,"__proto__":{"a":1},"constructor":2,"x":3}'));
    await coll.updateOne(
      { _id: 1 },
      doc('{"$unset":{"__proto__.a":""},"$rename":{"constructor":"prototype"}}'),
    );
    expect(text(await coll.findOne({ _id: 1 }))).toBe(
      '{"_id":1,"__proto__":{},"x":3,"prototype":2}',
    );
    await coll.updateOne(
      { _id: 1 },
      doc('{"$rename":{"x":"__proto__.x"},"$unset":{"prototype":""}}'),
    );
    expect(text(await coll.findOne({ _id: 1 }))).toBe('{"_id":1,"__proto__":{"x":3}}');
  });

  it('an upsert seeds __proto__ paths from the filter and applies $setOnInsert to them', async () => {
    const coll = await withDocs();
    const result = await coll.updateOne(
      doc('{"_id":7,"__proto__.tenant":"t1"}'),
      doc('{"$setOnInsert":{"constructor":"made"},"$inc":{"__proto__.n":1}}'),
      { upsert: true },
    );
    expect(result.upsertedId).toBe(7);
    expect(text(await coll.findOne({ _id: 7 }))).toBe(
      '{"_id":7,"__proto__":{"tenant":"t1","n":1},"constructor":"made"}',
    );
  });

  it('findOneAndUpdate returns the projected post-image with its __proto__ field', async () => {
    const coll = await withDocs(doc('{"_id":1,"__proto__":{"n":1,"hidden":true},"other":1}'));
    const after = await coll.findOneAndUpdate(
      { '__proto__.n': 1 },
      doc('{"$inc":{"__proto__.n":1}}'),
      { returnDocument: 'after', projection: { '__proto__.n': 1, _id: 0 } },
    );
    expect(text(after)).toBe('{"__proto__":{"n":2}}');
    expect(own(after, '__proto__', 'n')).toBe(2);
  });
});

describe('aggregation', () => {
  it('pipeline updates read $__proto__ paths and $set such fields', async () => {
    const coll = await withDocs(doc('{"_id":1,"__proto__":{"n":1},"constructor":{"m":5}}'));
    await coll.updateOne({ _id: 1 }, [
      {
        $set: {
          '__proto__.n': { $add: ['$__proto__.n', 1] },
          prototype: { $getField: 'constructor' },
          copied: '$constructor.m',
        },
      },
    ]);
    expect(text(await coll.findOne({ _id: 1 }))).toBe(
      '{"_id":1,"__proto__":{"n":2},"constructor":{"m":5},"prototype":{"m":5},"copied":5}',
    );
  });

  it('aggregate $match, $project and $group see them as fields', async () => {
    const coll = await withDocs(
      doc('{"_id":1,"__proto__":{"isAdmin":1},"constructor":"a"}'),
      doc('{"_id":2,"__proto__":{"isAdmin":0},"constructor":"a"}'),
      doc('{"_id":3,"constructor":"b"}'),
    );
    const projected = await coll
      .aggregate([
        { $match: { '__proto__.isAdmin': { $gte: 0 } } },
        { $sort: { '__proto__.isAdmin': -1 } },
        { $project: { _id: 1, admin: '$__proto__.isAdmin', keys: { $objectToArray: '$$ROOT' } } },
      ])
      .toArray();
    expect(projected.map((d) => [d._id, d.admin])).toEqual([
      [1, 1],
      [2, 0],
    ]);
    expect(projected[0]?.keys.map((e: Document) => e.k)).toEqual([
      '_id',
      '__proto__',
      'constructor',
    ]);
    const grouped = await coll
      .aggregate([{ $group: { _id: '$constructor', n: { $sum: 1 } } }, { $sort: { _id: 1 } }])
      .toArray();
    expect(grouped).toEqual([
      { _id: 'a', n: 2 },
      { _id: 'b', n: 1 },
    ]);
    const built = await coll
      .aggregate([
        { $match: { _id: 3 } },
        { $replaceWith: { $arrayToObject: [[{ k: '__proto__', v: { isAdmin: 1 } }]] } },
      ])
      .toArray();
    expect(text(built)).toBe('[{"__proto__":{"isAdmin":1}}]');
    expect(own(built[0], '__proto__', 'isAdmin')).toBe(1);
  });
});

// Manual: reference/command/getParameter and setParameter. A parameter name is looked up among
// the server's parameters; `constructor` is no more a parameter than any other unknown name.
describe('server parameters', () => {
  it('getParameter and setParameter treat constructor and toString as unknown names', async () => {
    const admin = t.client.db('admin');
    const unknownGet = await admin
      .command({ getParameter: 1, noSuchParameterXyz: 1 })
      .catch((e) => e);
    for (const name of ['constructor', 'toString']) {
      const get = await admin.command({ getParameter: 1, [name]: 1 }).catch((e) => e);
      expect(get.code).toBe(unknownGet.code);
      expect(get.code).toBeDefined();
      const set = await admin.command({ setParameter: 1, [name]: 5 }).catch((e) => e);
      expect(set.code).toBeDefined();
      expect(set.errmsg).toContain(`unrecognized parameter [${name}]`);
    }
  });
});

describe('names that are not field names are looked up as the server does', () => {
  // Manual: reference/operator/query/type ("available types" and their aliases); mongod parses
  // the alias in MatcherTypeSet::parse and answers BadValue "Unknown type name alias: <name>"
  // for any other string, including names JavaScript objects inherit.
  it('$type with an alias named like an Object.prototype member is BadValue, not an empty match', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('types'));
    await coll.insertOne({ _id: 1, v: 'x' });
    for (const alias of ['constructor', 'toString', '__proto__']) {
      const error = await coll
        .find({ v: { $type: alias } } as Document)
        .toArray()
        .then(
          () => undefined,
          (e: unknown) => e as { code?: number; message?: string },
        );
      expect(error?.code).toBe(2);
      expect(error?.message).toContain(`Unknown type name alias: ${alias}`);
    }
    expect(await coll.countDocuments({ v: { $type: 'string' } })).toBe(1);
  });
});

/**
 * Updates: https://www.mongodb.com/docs/manual/reference/operator/update/ and mongod
 * src/mongo/db/update/*.cpp (codes and messages), jstests/core/write/update/*.
 */
import type { Document } from 'bson';
import { Decimal128, Long, ObjectId, Timestamp } from 'bson';
import { describe, expect, it } from 'vitest';
import { applyUpdate, upsertSeedDocument } from '../../offline-server/src/update.js';
import { valuesEqual } from '../../offline-server/src/values.js';
import { serverError } from './helpers.js';

const apply = (doc: Document, update: Document | Document[], options = {}) =>
  applyUpdate(doc, update, options).doc;

describe('applyUpdate: field operators', () => {
  it('$set creates nested paths and never mutates the input', () => {
    const doc = { _id: 1, a: { b: 1 } };
    const out = apply(doc, { $set: { 'a.c': 2, 'x.y': 3 } });
    expect(out).toEqual({ _id: 1, a: { b: 1, c: 2 }, x: { y: 3 } });
    expect(doc).toEqual({ _id: 1, a: { b: 1 } });
  });

  it('creates new fields in lexicographic order (5.0+)', () => {
    expect(Object.keys(apply({ _id: 1 }, { $set: { b: 1, a: 1 } }))).toEqual(['_id', 'a', 'b']);
    expect(
      Object.keys(apply({ _id: 1, a: {} }, { $set: { 'a.b10': 1, 'a.b9': 1, 'a.a': 1 } }).a),
    ).toEqual(['a', 'b10', 'b9']);
  });

  it('$set on an array index pads with null', () => {
    expect(apply({ _id: 1, a: [1] }, { $set: { 'a.3': 4 } }).a).toEqual([1, null, null, 4]);
  });

  it('$unset removes fields and nulls array elements', () => {
    expect(apply({ _id: 1, a: 1, b: [1, 2] }, { $unset: { a: '', 'b.0': '', 'c.d': '' } })).toEqual(
      { _id: 1, b: [null, 2] },
    );
  });

  it('$inc and $mul: missing fields, integers stay integral, Long and Decimal128', () => {
    expect(apply({ _id: 1 }, { $inc: { n: 5 }, $mul: { m: 3 } })).toEqual({ _id: 1, m: 0, n: 5 });
    expect(apply({ _id: 1, n: 2 }, { $inc: { n: 3 } }).n).toBe(5);
    // safe_num.cpp: an int32 result that overflows widens to int64.
    const widened = apply({ _id: 1, n: 2147483647 }, { $inc: { n: 1 } }).n;
    expect(widened).toBeInstanceOf(Long);
    expect(String(widened)).toBe('2147483648');
    expect(apply({ _id: 1, n: 1.5 }, { $mul: { n: 2 } }).n).toBe(3);
    const long = apply({ _id: 1, n: Long.fromString('9007199254740993') }, { $inc: { n: 1 } }).n;
    expect(long).toBeInstanceOf(Long);
    expect(String(long)).toBe('9007199254740994');
    const dec = apply({ _id: 1, p: Decimal128.fromString('0.1') }, { $inc: { p: 0.2 } }).p;
    expect(dec).toBeInstanceOf(Decimal128);
    // The double 0.2 converts to Decimal128 with 15 significant digits, as in mongod.
    expect(valuesEqual(dec, Decimal128.fromString('0.3'))).toBe(true);
    expect(String(apply({ _id: 1, p: Decimal128.fromString('1.5') }, { $mul: { p: 2 } }).p)).toBe(
      '3.0',
    );
    expect(String(apply({ _id: 1, p: 2 }, { $inc: { p: Decimal128.fromString('0.5') } }).p)).toBe(
      '2.5',
    );
    // Decimal arithmetic keeps the exponent, as IEEE 754-2008 decimal does.
    const cents = apply(
      { _id: 1, p: Decimal128.fromString('1.10') },
      { $inc: { p: Decimal128.fromString('0.20') } },
    ).p;
    expect(String(cents)).toBe('1.30');
  });

  it('$min, $max, $currentDate', () => {
    expect(apply({ _id: 1, a: 5, b: 5 }, { $min: { a: 3, c: 1 }, $max: { b: 3 } })).toEqual({
      _id: 1,
      a: 3,
      b: 5,
      c: 1,
    });
    const out = apply({ _id: 1 }, { $currentDate: { d: true, t: { $type: 'timestamp' } } });
    expect(out.d).toBeInstanceOf(Date);
    expect(out.t).toBeInstanceOf(Timestamp);
  });

  it('$rename moves a value; a missing source is a no-op', () => {
    expect(apply({ _id: 1, a: 1, c: { d: 2 } }, { $rename: { a: 'b', 'c.d': 'e' } })).toEqual({
      _id: 1,
      c: {},
      b: 1,
      e: 2,
    });
    expect(apply({ _id: 1 }, { $rename: { a: 'b' } })).toEqual({ _id: 1 });
  });

  it('$setOnInsert applies only when the upsert inserts', () => {
    expect(apply({ _id: 1 }, { $setOnInsert: { a: 1 } })).toEqual({ _id: 1 });
    expect(apply({ _id: 1 }, { $setOnInsert: { a: 1 } }, { isUpsertInsert: true })).toEqual({
      _id: 1,
      a: 1,
    });
  });

  it('accepts an empty operator object (5.0+) as a no-op', () => {
    expect(applyUpdate({ _id: 1, a: 1 }, { $set: {} }, {})).toEqual({
      doc: { _id: 1, a: 1 },
      changed: false,
    });
  });
});

describe('applyUpdate: array operators', () => {
  it('$push with $each, $position, $sort and $slice', () => {
    expect(apply({ _id: 1, a: [1] }, { $push: { a: 2 } }).a).toEqual([1, 2]);
    expect(apply({ _id: 1 }, { $push: { a: 1 } }).a).toEqual([1]);
    expect(apply({ _id: 1, a: [1, 2] }, { $push: { a: { $each: [9], $position: 0 } } }).a).toEqual([
      9, 1, 2,
    ]);
    expect(apply({ _id: 1, a: [1, 2] }, { $push: { a: { $each: [9], $position: -1 } } }).a).toEqual(
      [1, 9, 2],
    );
    expect(
      apply({ _id: 1, a: [5, 1] }, { $push: { a: { $each: [3], $sort: 1, $slice: -2 } } }).a,
    ).toEqual([3, 5]);
    expect(
      apply(
        { _id: 1, a: [{ s: 2 }, { s: 1 }] },
        { $push: { a: { $each: [{ s: 3 }], $sort: { s: -1 }, $slice: 2 } } },
      ).a,
    ).toEqual([{ s: 3 }, { s: 2 }]);
  });

  it('$addToSet adds only absent values (BSON equality)', () => {
    const id = new ObjectId();
    const out = apply(
      { _id: 1, a: [1, id] },
      { $addToSet: { a: { $each: [new Long(1), new ObjectId(id.toHexString()), 2, 2] } } },
    );
    expect(out.a).toEqual([1, id, 2]);
  });

  it('$pull by value, by condition, by sub-document query; $pullAll; $pop', () => {
    expect(apply({ _id: 1, a: [1, 2, 1, 3] }, { $pull: { a: 1 } }).a).toEqual([2, 3]);
    expect(apply({ _id: 1, a: [1, 6, 8] }, { $pull: { a: { $gte: 6 } } }).a).toEqual([1]);
    expect(
      apply(
        {
          _id: 1,
          a: [
            { i: 'A', s: 8 },
            { i: 'B', s: 8, x: 1 },
          ],
        },
        { $pull: { a: { s: 8, i: 'B' } } },
      ).a,
    ).toEqual([{ i: 'A', s: 8 }]);
    expect(apply({ _id: 1, a: [1, 2, 3] }, { $pullAll: { a: [1, 3] } }).a).toEqual([2]);
    expect(apply({ _id: 1, a: [1, 2, 3] }, { $pop: { a: 1 } }).a).toEqual([1, 2]);
    expect(apply({ _id: 1, a: [1, 2, 3] }, { $pop: { a: -1 } }).a).toEqual([2, 3]);
  });
});

describe('applyUpdate: positional operators', () => {
  it('$ resolves to the element the filter matched', () => {
    const doc = {
      _id: 1,
      grades: [80, 85, 90],
      items: [
        { k: 'a', q: 1 },
        { k: 'b', q: 1 },
      ],
    };
    expect(apply(doc, { $set: { 'grades.$': 82 } }, { filter: { grades: 85 } }).grades).toEqual([
      80, 82, 90,
    ]);
    expect(apply(doc, { $inc: { 'items.$.q': 5 } }, { filter: { 'items.k': 'b' } }).items).toEqual([
      { k: 'a', q: 1 },
      { k: 'b', q: 6 },
    ]);
  });

  it('$ without a matching array query is BadValue (2)', () => {
    const e = serverError(() =>
      apply({ _id: 1, a: [1] }, { $set: { 'a.$': 2 } }, { filter: { _id: 1 } }),
    );
    expect(e.code).toBe(2);
    expect(e.message).toBe('The positional operator did not find the match needed from the query.');
  });

  it('$[] updates every element, $[id] those the array filter accepts', () => {
    const doc = { _id: 1, a: [{ v: 1 }, { v: 5 }], b: [1, 5, 9] };
    expect(apply(doc, { $inc: { 'a.$[].v': 1 } }).a).toEqual([{ v: 2 }, { v: 6 }]);
    expect(
      apply(doc, { $set: { 'b.$[big]': 0 } }, { arrayFilters: [{ big: { $gte: 5 } }] }).b,
    ).toEqual([1, 0, 0]);
    expect(apply(doc, { $set: { 'a.$[e].v': 0 } }, { arrayFilters: [{ 'e.v': 5 }] }).a).toEqual([
      { v: 1 },
      { v: 0 },
    ]);
  });

  it('array filter errors: missing identifier (2), unused (9), $expr (224), bad name (2)', () => {
    const doc = { _id: 1, a: [1] };
    const missing = serverError(() => apply(doc, { $set: { 'a.$[i]': 1 } }));
    expect(missing.code).toBe(2);
    expect(missing.message).toBe("No array filter found for identifier 'i' in path 'a.$[i]'");
    const unused = serverError(() =>
      apply(doc, { $set: { 'a.$[i]': 5 } }, { arrayFilters: [{ i: 0 }, { j: 0 }] }),
    );
    expect(unused.code).toBe(9);
    expect(unused.message).toContain(
      "The array filter for identifier 'j' was not used in the update",
    );
    expect(
      serverError(() =>
        apply(doc, { $set: { 'a.$[i]': 1 } }, { arrayFilters: [{ $expr: { $eq: ['$i', 1] } }] }),
      ).code,
    ).toBe(224);
    expect(
      serverError(() => apply(doc, { $set: { 'a.$[I]': 1 } }, { arrayFilters: [{ I: 1 }] })).code,
    ).toBe(2);
  });

  it('$[] on a missing or non-array field is BadValue (2)', () => {
    expect(serverError(() => apply({ _id: 1 }, { $set: { 'a.$[]': 1 } })).code).toBe(2);
    expect(serverError(() => apply({ _id: 1, a: 5 }, { $set: { 'a.$[]': 1 } })).code).toBe(2);
  });
});

describe('applyUpdate: errors mingo would skip', () => {
  it("$inc on a non-number is TypeMismatch (14) with mongod's message", () => {
    const e = serverError(() => apply({ _id: 1, a: 'x' }, { $inc: { a: 1 } }));
    expect(e.code).toBe(14);
    expect(e.message).toBe(
      "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type string",
    );
    expect(serverError(() => apply({ _id: 1, a: 'x' }, { $mul: { a: 2 } })).code).toBe(14);
  });

  it('$inc with a non-numeric argument is TypeMismatch (14)', () => {
    const e = serverError(() => apply({ _id: 1 }, { $inc: { a: 'x' } }));
    expect(e.code).toBe(14);
    expect(e.message).toContain('Cannot increment with non-numeric argument');
  });

  it('$push / $addToSet / $pull / $pop on a non-array', () => {
    const push = serverError(() => apply({ _id: 1, a: 5 }, { $push: { a: 1 } }));
    expect(push.code).toBe(2);
    expect(push.message).toBe(
      "The field 'a' must be an array but is of type int in document {_id: 1}",
    );
    const add = serverError(() => apply({ _id: 1, a: 5 }, { $addToSet: { a: 1 } }));
    expect(add.code).toBe(2);
    expect(add.message).toBe(
      "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type int",
    );
    expect(serverError(() => apply({ _id: 1, a: 5 }, { $pull: { a: 1 } })).message).toBe(
      'Cannot apply $pull to a non-array value',
    );
    const pop = serverError(() => apply({ _id: 1, a: 5 }, { $pop: { a: 1 } }));
    expect(pop.code).toBe(14);
    expect(pop.message).toBe("Path 'a' contains an element of non-array type 'int'");
  });

  it('setting a sub-field of a scalar is PathNotViable (28)', () => {
    const e = serverError(() => apply({ _id: 1, a: 5 }, { $set: { 'a.b': 1 } }));
    expect(e.code).toBe(28);
    expect(e.message).toBe("Cannot create field 'b' in element {a: 5}");
    expect(serverError(() => apply({ _id: 1, a: [{ b: 1 }] }, { $set: { 'a.b': 1 } })).code).toBe(
      28,
    );
  });

  it('conflicting paths are ConflictingUpdateOperators (40)', () => {
    const same = serverError(() => apply({ _id: 1 }, { $set: { a: 1 }, $inc: { a: 1 } }));
    expect(same.code).toBe(40);
    expect(same.message).toBe("Updating the path 'a' would create a conflict at 'a'");
    const prefix = serverError(() => apply({ _id: 1 }, { $set: { a: 1 }, $unset: { 'a.b': 1 } }));
    expect(prefix.message).toBe("Updating the path 'a.b' would create a conflict at 'a'");
    expect(
      serverError(() => apply({ _id: 1, a: [1] }, { $set: { 'a.$[]': 1, 'a.0': 2 } })).code,
    ).toBe(40);
    expect(
      serverError(() => apply({ _id: 1, a: 1 }, { $rename: { a: 'b' }, $set: { b: 1 } })).code,
    ).toBe(40);
  });

  it('changing _id is ImmutableField (66); setting the same value is fine', () => {
    const e = serverError(() => apply({ _id: 1 }, { $set: { _id: 2 } }));
    expect(e.code).toBe(66);
    expect(e.message).toBe(
      "Performing an update on the path '_id' would modify the immutable field '_id'",
    );
    expect(serverError(() => apply({ _id: 1 }, { $unset: { _id: 1 } })).code).toBe(66);
    expect(apply({ _id: 1 }, { $set: { _id: 1.0 } })).toEqual({ _id: 1 });
  });

  it('unknown modifiers and mixed documents are FailedToParse (9)', () => {
    const e = serverError(() => apply({ _id: 1 }, { $foo: { a: 1 } }));
    expect(e.code).toBe(9);
    expect(e.message).toContain('Unknown modifier: $foo');
    expect(serverError(() => apply({ _id: 1 }, { $set: { a: 1 }, b: 2 })).code).toBe(9);
    expect(serverError(() => apply({ _id: 1 }, { $set: 5 })).code).toBe(9);
  });

  it('a replacement with $-prefixed top-level fields is DollarPrefixedFieldName (52)', () => {
    expect(serverError(() => apply({ _id: 1 }, { a: 1, $set: { b: 1 } })).code).toBe(52);
  });

  it('is all-or-nothing: an error after valid modifiers leaves nothing applied', () => {
    const doc = { _id: 1, a: 1, z: 'x' };
    expect(serverError(() => apply(doc, { $set: { a: 2 }, $inc: { z: 1 } })).code).toBe(14);
    expect(doc).toEqual({ _id: 1, a: 1, z: 'x' });
  });
});

describe('applyUpdate: replacement and pipeline updates', () => {
  it('replacement keeps _id first and rejects a different _id (66)', () => {
    expect(apply({ _id: 1, a: 1 }, { b: 2 })).toEqual({ _id: 1, b: 2 });
    expect(Object.keys(apply({ _id: 1, a: 1 }, { b: 2, _id: 1 }))).toEqual(['_id', 'b']);
    expect(serverError(() => apply({ _id: 1 }, { _id: 2 })).code).toBe(66);
  });

  it('pipeline updates evaluate aggregation expressions', () => {
    const doc = { _id: 1, qty: 5, items: [{ p: 1 }, { p: 2 }], tags: ['a'] };
    const out = apply(doc, [
      {
        $set: {
          total: {
            $reduce: { input: '$items', initialValue: 0, in: { $add: ['$$value', '$$this.p'] } },
          },
          status: { $cond: [{ $gt: ['$qty', 3] }, 'many', 'few'] },
          tags: { $concatArrays: ['$tags', ['b']] },
          pos: { $indexOfArray: ['$tags', 'a'] },
          at: '$$NOW',
          merged: { $mergeObjects: [{ x: 1 }, { y: { $ifNull: ['$missing', 2] } }] },
          big: { $filter: { input: '$items', cond: { $gte: ['$$this.p', 2] } } },
        },
      },
      { $unset: 'qty' },
    ]);
    expect(out).toMatchObject({
      _id: 1,
      total: 3,
      status: 'many',
      tags: ['a', 'b'],
      pos: 0,
      merged: { x: 1, y: 2 },
      big: [{ p: 2 }],
    });
    expect(out.at).toBeInstanceOf(Date);
    // Arithmetic expressions keep BSON numeric types.
    const typed = apply(
      { _id: 1, big: Long.fromString('9007199254740993'), d: Decimal128.fromString('1.10') },
      [
        {
          $set: {
            big: { $add: ['$big', 1] },
            d: { $subtract: ['$d', Decimal128.fromString('0.10')] },
            m: { $multiply: ['$d', 2] },
          },
        },
      ],
    );
    expect(String(typed.big)).toBe('9007199254740994');
    expect(String(typed.d)).toBe('1.00');
    expect(String(typed.m)).toBe('2.20');
    expect('qty' in out).toBe(false);
  });

  it('pipeline $replaceWith keeps the original _id when the result drops it', () => {
    expect(apply({ _id: 1, a: { b: 2 } }, [{ $replaceWith: '$a' }])).toEqual({ _id: 1, b: 2 });
    expect(serverError(() => apply({ _id: 1 }, [{ $set: { _id: 2 } }])).code).toBe(66);
  });

  it('pipeline stages other than $set/$addFields/$unset/$project/$replaceWith/$replaceRoot are InvalidOptions (72)', () => {
    const e = serverError(() => apply({ _id: 1 }, [{ $match: {} }]));
    expect(e.code).toBe(72);
    expect(e.message).toBe('$match is not allowed to be used within an update');
    expect(serverError(() => apply({ _id: 1 }, [{ $nope: {} }])).code).toBe(40324);
  });

  it('a pipeline applied to several documents gives each its own values and leaves the command as sent', () => {
    // The server shares the parts of a pipeline that need no renaming (mingo-names.ts) but a
    // `$literal` document is a new one per document: mingo returns it as it is and a later
    // stage's dotted $set writes inside it.
    const pipeline = [
      { $set: { a: { $literal: { x: 1 } }, list: { $literal: [{ k: 1 }] } } },
      { $set: { 'a.y': '$n' } },
    ];
    const sent = structuredClone(pipeline);
    const first = { _id: 1, n: 1, sub: { s: 1 } };
    const second = { _id: 2, n: 2, sub: { s: 2 } };
    const one = apply(first, pipeline);
    const two = apply(second, pipeline);
    expect(one).toEqual({
      _id: 1,
      n: 1,
      sub: { s: 1 },
      a: { x: 1, y: 1 },
      list: [{ k: 1 }],
    });
    expect(two).toMatchObject({ a: { x: 1, y: 2 } });
    expect(one.a).not.toBe(two.a);
    expect(one.list).not.toBe(two.list);
    expect(pipeline).toEqual(sent);
    expect(first).toEqual({ _id: 1, n: 1, sub: { s: 1 } });
    expect(second).toEqual({ _id: 2, n: 2, sub: { s: 2 } });
  });

  it('changed is false when the document is byte-identical', () => {
    expect(applyUpdate({ _id: 1, a: 1 }, { $set: { a: 1 } }).changed).toBe(false);
    expect(applyUpdate({ _id: 1, a: 1 }, { $set: { a: 2 } }).changed).toBe(true);
    expect(applyUpdate({ _id: 1, a: [1] }, { $addToSet: { a: 1 } }).changed).toBe(false);
    expect(applyUpdate({ _id: 1, a: 1 }, [{ $set: { a: 1 } }]).changed).toBe(false);
  });
});

describe('upsertSeedDocument', () => {
  it('seeds equality fields, dotted paths as sub-documents, _id first', () => {
    const seed = upsertSeedDocument({
      sku: 'x',
      'dim.h': 2,
      qty: { $gt: 1 },
      _id: 7,
      $and: [{ s: { $eq: 'a' } }],
    });
    expect(seed).toEqual({ _id: 7, sku: 'x', dim: { h: 2 }, s: 'a' });
    expect(Object.keys(seed)[0]).toBe('_id');
  });

  it('the caller then applies the update as an insert', () => {
    const seed = upsertSeedDocument({ sku: 'x' });
    expect(
      apply(seed, { $inc: { qty: 1 }, $setOnInsert: { created: 1 } }, { isUpsertInsert: true }),
    ).toEqual({ sku: 'x', created: 1, qty: 1 });
  });

  it('positional $ cannot be used with an upsert insert (2)', () => {
    const seed = upsertSeedDocument({ a: 1 });
    expect(
      serverError(() =>
        apply(seed, { $set: { 'a.$': 1 } }, { filter: { a: 1 }, isUpsertInsert: true }),
      ).code,
    ).toBe(2);
  });

  it('a path matched twice is NotSingleValueField (54)', () => {
    expect(serverError(() => upsertSeedDocument({ $and: [{ a: 1 }, { a: 2 }] })).code).toBe(54);
    expect(serverError(() => upsertSeedDocument({ a: { b: 1 }, 'a.b': 1 })).code).toBe(54);
  });

  it('a replacement upsert keeps only the seed _id', () => {
    const seed = upsertSeedDocument({ _id: 3, a: 1 });
    expect(apply(seed, { b: 2 }, { isUpsertInsert: true })).toEqual({ _id: 3, b: 2 });
  });
});

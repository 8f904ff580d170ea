/**
 * Aggregation array expressions the library relies on to find an array element in one pass
 * (incrementOrPushArrayItem, issue 11). Written to pass on a real mongod.
 *
 * Sources: MongoDB manual, reference/operator/aggregation/indexOfArray ("searches an array for
 * an occurrence of a specified value and returns the array index of the first occurrence";
 * `<start>`: where the search starts; a null or missing array gives null); server
 * src/mongo/db/pipeline/expression.cpp, ExpressionIndexOfArray (elements compared with the
 * expression context's value comparator, the comparator of `$eq`), and
 * ExpressionFieldPath::evaluatePathArray (a field path over an array takes the field of each
 * element that is a document and has it: other elements contribute nothing); manual,
 * reference/bson-type-comparison-order ("numeric types undergo conversion before comparison").
 */
import { BSONSymbol, Decimal128, type Document, Int32, Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import type { Doc } from './helpers.js';

const t = useTestDatabase('array_expressions');

/** Evaluates `expr` over `doc` on the server (one aggregate). */
async function evaluate(doc: Doc, expr: unknown): Promise<unknown> {
  const coll = t.db.collection<Doc>(t.uniqueName('expr'));
  await coll.insertOne(doc);
  const [out] = await coll.aggregate<Document>([{ $project: { _id: 0, out: expr } }]).toArray();
  return out?.out;
}

describe('$indexOfArray', () => {
  it('compares like $eq: int32, int64, double and Decimal128 of one value are equal', async () => {
    const doc = { _id: 1, arr: [new Int32(1), new Long(2), 3.5, Decimal128.fromString('4')] };
    expect(await evaluate(doc, { $indexOfArray: ['$arr', new Long(1)] })).toBe(0);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 2] })).toBe(1);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', Decimal128.fromString('3.5')] })).toBe(2);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', new Int32(4)] })).toBe(3);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', '2'] })).toBe(-1);
  });

  it('compares arrays element by element, like $eq (a $zip row against a sought row)', async () => {
    const doc = { _id: 1, a: ['x', 'y', 'x'], b: [1, 2, new Long(2)] };
    const rows = { $zip: { inputs: ['$a', '$b'] } };
    expect(await evaluate(doc, { $indexOfArray: [rows, { $literal: ['x', 2] }] })).toBe(2);
    expect(await evaluate(doc, { $indexOfArray: [rows, { $literal: ['y', 1] }] })).toBe(-1);
  });

  it('searches from <start>: an occurrence before it is not found (-1), one after it is', async () => {
    const doc = { _id: 1, arr: [10, 9, 9, 8, 9] };
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 9, 3] })).toBe(4);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 10, 1] })).toBe(-1);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 8, 4] })).toBe(-1);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 9, 20] })).toBe(-1);
  });

  it('a string is found by its exact text; a symbol of that text is equal, other types never', async () => {
    // Symbol and String are one type in the comparison order (reference/bson-type-comparison-order).
    const doc = {
      _id: 1,
      arr: [2, 'B', 'e\u0301', new BSONSymbol('é'), 'b', 'é', '\u{1F600}', 'b'],
    };
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 'b'] })).toBe(4);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 'b', 5] })).toBe(7);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 'b', 0, 4] })).toBe(-1);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', '2'] })).toBe(-1);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', 'é'] })).toBe(3);
    expect(await evaluate(doc, { $indexOfArray: ['$arr', '\u{1F600}'] })).toBe(6);
  });

  it('a missing or null array gives null', async () => {
    expect(await evaluate({ _id: 1 }, { $indexOfArray: ['$nope', 1] })).toBeNull();
    expect(await evaluate({ _id: 1, arr: null }, { $indexOfArray: ['$arr', 1] })).toBeNull();
  });
});

describe('a field path over an array of documents', () => {
  it('takes the field of each document that has it; documents without it and scalars contribute nothing', async () => {
    const doc = { _id: 1, arr: [{ id: 'a' }, { x: 1 }, 5, 'junk', { id: null }, { id: ['c'] }] };
    expect(await evaluate(doc, '$arr.id')).toEqual(['a', null, ['c']]);
  });
});

/**
 * incrementOrPushArrayItem finds the element in one pass (issue 11): `$indexOfArray` over the
 * identity values of all elements (`$$items.<key>`, a `$zip` of them for several keys), then
 * one rebuild of the array around the positions found. These tests pin the cases where that
 * position would be wrong if it were trusted blindly, and check the whole behaviour against a
 * model of the documented semantics (aggregation `$eq` per element) on arrays that mix them:
 *
 * - a field path over an array skips elements that lack the field and non-documents, which
 *   shifts the positions of every later element (the identity array is then shorter);
 * - several elements can match (duplicates left by an older, racy implementation): all move;
 * - `$indexOfArray` compares like `$eq`: 7, Long(7) and Decimal128('7') are one identity.
 */
import { fc, test } from '@fast-check/vitest';
import { type Collection, Decimal128, type Document, Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import type { Doc } from './conformance/helpers.js';
import { useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('increment_or_push_one_pass');

async function cartWith(items: unknown[]): Promise<Collection<Doc>> {
  const coll = t.db.collection<Doc>(t.uniqueName('cart'));
  await coll.insertOne({ _id: 'cart', items });
  return coll;
}

async function itemsOf(coll: Collection<Doc>): Promise<unknown[]> {
  return ((await coll.findOne({ _id: 'cart' }))?.items ?? []) as unknown[];
}

describe('the position found natively is used only when it is exact', () => {
  it('an element without the identity field before the match: the match is incremented, not its neighbour', async () => {
    const coll = await cartWith([
      { note: 'no sku' },
      { sku: 'b', quantity: 1 },
      { sku: 'a', quantity: 1 },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { sku: 'a' },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { sku: 'a', quantity: 2 } });
    expect(await itemsOf(coll)).toEqual([
      { note: 'no sku' },
      { sku: 'b', quantity: 1 },
      { sku: 'a', quantity: 2 },
    ]);
  });

  it('non-documents (a string, null, a nested array) before the match are kept, the match is incremented', async () => {
    const coll = await cartWith(['junk', null, [{ sku: 'a' }], { sku: 'a', quantity: 4 }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { sku: 'a' },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { sku: 'a', quantity: 5 } });
    expect(await itemsOf(coll)).toEqual(['junk', null, [{ sku: 'a' }], { sku: 'a', quantity: 5 }]);
  });

  it('multi-field identity, an earlier element lacking one of the fields: the full match is incremented', async () => {
    const coll = await cartWith([
      { productId: 'p', size: 'M', quantity: 7 },
      { productId: 'p', size: 'M', color: 'red', quantity: 1 },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { productId: 'p', size: 'M', color: 'red' },
    });
    expect(result).toEqual({
      outcome: 'incremented',
      item: { productId: 'p', size: 'M', color: 'red', quantity: 2 },
    });
    expect(await itemsOf(coll)).toEqual([
      { productId: 'p', size: 'M', quantity: 7 },
      { productId: 'p', size: 'M', color: 'red', quantity: 2 },
    ]);
  });

  it('duplicates with a cap: one over the cap blocks all, the first is reported unchanged', async () => {
    const lines = [
      { sku: 'a', quantity: 1 },
      { sku: 'b', quantity: 9 },
      { sku: 'a', quantity: 9 },
    ];
    const coll = await cartWith(lines);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { sku: 'a' },
      inc: { quantity: 2 },
      max: { quantity: 10 },
    });
    expect(result).toEqual({ outcome: 'limitReached', item: { sku: 'a', quantity: 1 } });
    expect(await itemsOf(coll)).toEqual(lines);
  });

  it.each([
    ['Long(7)', new Long(7)],
    ['Decimal128("7")', Decimal128.fromString('7')],
    ['7.0', 7.0],
  ])(
    'a stored int32 7 and a match of %s are one identity (compared like $eq): incremented, not pushed',
    async (_label, value) => {
      const coll = await cartWith([{ sku: 'x' }, { sku: 7, quantity: 1 }]);
      const result = await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'items',
        match: { sku: value },
      });
      expect(result).toEqual({ outcome: 'incremented', item: { sku: 7, quantity: 2 } });
      expect(await itemsOf(coll)).toHaveLength(2);
    },
  );

  it.each([0, 1, 999, 1999])(
    'a 2000-element array, the match at position %i: only that element changes',
    async (position) => {
      const lines = Array.from({ length: 2000 }, (_, i) => ({ sku: `s${i}`, quantity: i }));
      const coll = await cartWith(lines);
      const result = await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'items',
        match: { sku: `s${position}` },
        inc: { quantity: 3 },
      });
      expect(result).toEqual({
        outcome: 'incremented',
        item: { sku: `s${position}`, quantity: position + 3 },
      });
      const expected = lines.map((line, i) =>
        i === position ? { ...line, quantity: line.quantity + 3 } : line,
      );
      expect(await itemsOf(coll)).toEqual(expected);
    },
  );
});

// =============================================================================================
// Model: what the documented semantics say, element by element.

/** Identity values: strings, and numbers in several BSON types (equal by value, like $eq). */
const identityValue = fc.oneof(
  fc.constantFrom('a', 'b', 'A'),
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 3 }).map((n) => new Long(n)),
  fc.integer({ min: 1, max: 3 }).map((n) => Decimal128.fromString(String(n))),
);
/** What a stored element can hold in an identity field: a value, null, an array, or nothing. */
const storedField = fc.oneof(
  { weight: 6, arbitrary: identityValue },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: identityValue.map((v) => [v]) },
);
const element = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        k1: storedField,
        k2: storedField,
        quantity: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(null)),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('junk', null, 5, [{ k1: 'a' }]) },
);

function numeric(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof Long) return v.toNumber();
  if (v instanceof Decimal128) return Number(v.toString());
  return undefined;
}

/** Aggregation `$eq` for the values generated here: numbers by value, strings binary. */
function equal(stored: unknown, sought: unknown): boolean {
  const a = numeric(stored);
  const b = numeric(sought);
  if (a !== undefined || b !== undefined) return a === b;
  return typeof stored === 'string' && stored === sought;
}

function isDocument(v: unknown): v is Document {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

describe('against the model of the documented semantics', () => {
  test.prop(
    [
      fc.array(element, { maxLength: 8 }),
      fc.oneof(
        fc.record({ k1: identityValue }),
        fc.record({ k1: identityValue, k2: identityValue }),
      ),
      fc.integer({ min: 1, max: 3 }),
      fc.option(fc.integer({ min: 3, max: 6 }), { nil: undefined }),
    ],
    { numRuns: 60 },
  )(
    'mixed arrays (missing fields, non-documents, duplicates, numeric types): the outcome, item and array the model predicts',
    async (items, match, step, cap) => {
      const coll = await cartWith(items);
      // The model starts from the array as the driver reads it back (Long → number).
      const before = await itemsOf(coll);
      const matches = before.flatMap((el, i) =>
        isDocument(el) &&
        Object.entries(match).every(([k, v]) => Object.hasOwn(el, k) && equal(el[k], v))
          ? [i]
          : [],
      );
      const counter = (el: Document) => ((el.quantity ?? 0) as number) + step;

      const result = await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'items',
        match,
        inc: { quantity: step },
        ...(cap === undefined ? {} : { max: { quantity: cap } }),
      });
      const after = await itemsOf(coll);

      if (matches.length === 0) {
        expect(result.outcome).toBe('pushed');
        // A Long is read back as a number (the driver's promoteLongs), like the stored array.
        const stored = Object.fromEntries(
          Object.entries(match).map(([k, v]) => [k, v instanceof Long ? v.toNumber() : v]),
        );
        expect(after).toEqual([...before, { ...stored, quantity: step }]);
        return;
      }
      const first = before[matches[0] as number] as Document;
      const blocked =
        cap !== undefined && matches.some((i) => counter(before[i] as Document) > cap);
      if (blocked) {
        expect(result).toEqual({ outcome: 'limitReached', item: first });
        expect(after).toEqual(before);
        return;
      }
      expect(result).toEqual({
        outcome: 'incremented',
        item: { ...first, quantity: counter(first) },
      });
      expect(after).toEqual(
        before.map((el, i) =>
          matches.includes(i) ? { ...(el as Document), quantity: counter(el as Document) } : el,
        ),
      );
    },
  );
});

/**
 * incrementOrPushArrayItem: "increment the element with this identity, else append it", in one
 * atomic pipeline update.
 *
 * The race it closes is the one in the cart seeds (shared/seeds/000, 002): a positional `$inc`
 * on `{ userId, 'courses.courseId': id }`, then a `$push` when that matched nothing. Two
 * requests that both run the first step before either runs the second both push, and the cart
 * holds duplicate lines. The race tests below first show that under this file's harness, then
 * show the primitive holding under the same one.
 */
import { BSON, type Collection, Decimal128, type Document, Long, type MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  isInvalidArgumentError,
  isMongoAtomicsError,
} from '../src/errors.js';
import {
  type IncrementOrPushOptions,
  type IncrementOrPushResult,
  incrementOrPushArrayItem,
} from '../src/increment-or-push.js';
import { type Doc, rejectionOf } from './conformance/helpers.js';
import { caseInsensitiveCollection } from './support/case-insensitive.js';
import { failCommand, retryNextWrite, useFailPointClients } from './support/failpoints.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, race, useRaceClients } from './support/race.js';

const t = useTestDatabase('increment_or_push');

/** A fresh collection of this file's database, optionally seeded. */
async function carts(prefix: string, docs: Doc[] = []): Promise<Collection<Doc>> {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  const coll = t.db.collection<Doc>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  return coll;
}

/** The same collection through another client (a race worker or a fail point client). */
const via = <T extends Document = Doc>(client: MongoClient, coll: Collection<Doc>) =>
  client.db(t.db.databaseName).collection<T>(coll.collectionName);

/** The cart of seed 000, typed as an application would. */
interface Cart {
  _id: string;
  userId: string;
  courses: { courseId: string; quantity: number }[];
}

describe('outcomes', () => {
  it('increments the counter of the element with the same identity and leaves the others alone', async () => {
    const coll = await carts('inc', [
      {
        _id: 'cart',
        userId: 'u1',
        courses: [
          { courseId: 'c1', quantity: 2, title: 'Intro' },
          { courseId: 'c2', quantity: 1 },
        ],
      },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
      fields: { title: 'ignored when incrementing' },
    });
    expect(result).toEqual({
      outcome: 'incremented',
      item: { courseId: 'c1', quantity: 3, title: 'Intro' },
    });
    expect(await coll.findOne({ _id: 'cart' })).toEqual({
      _id: 'cart',
      userId: 'u1',
      courses: [
        { courseId: 'c1', quantity: 3, title: 'Intro' },
        { courseId: 'c2', quantity: 1 },
      ],
    });
  });

  it('pushes a new element (match fields, counters, extra fields, in that order) when none has the identity', async () => {
    const coll = await carts('push', [
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c2' },
      inc: { quantity: 2 },
      fields: { title: 'Advanced', price: 49.5 },
    });
    expect(result).toEqual({
      outcome: 'pushed',
      created: false,
      item: { courseId: 'c2', quantity: 2, title: 'Advanced', price: 49.5 },
    });
    const doc = await coll.findOne({ _id: 'cart' });
    expect(doc?.courses).toEqual([
      { courseId: 'c1', quantity: 1 },
      { courseId: 'c2', quantity: 2, title: 'Advanced', price: 49.5 },
    ]);
    expect(Object.keys(doc?.courses[1] as object)).toEqual([
      'courseId',
      'quantity',
      'title',
      'price',
    ]);
  });

  it('creates the array when the parent document has none', async () => {
    const coll = await carts('noarray', [{ _id: 'cart', userId: 'u1' }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
    });
    expect(result).toEqual({
      outcome: 'pushed',
      created: false,
      item: { courseId: 'c1', quantity: 1 },
    });
    expect(await coll.findOne({ _id: 'cart' })).toEqual({
      _id: 'cart',
      userId: 'u1',
      courses: [{ courseId: 'c1', quantity: 1 }],
    });
  });

  it('creates missing parents of a dotted path (data.cart of a guest session document)', async () => {
    const coll = await carts('dotted', [
      { _id: 'sess-1', expires: 10 },
      { _id: 'sess-2', data: { locale: 'fr' } },
    ]);
    for (const _id of ['sess-1', 'sess-2']) {
      const result = await incrementOrPushArrayItem(coll, {
        filter: { _id },
        array: 'data.cart',
        match: { courseId: 'c1' },
      });
      expect(result).toEqual({
        outcome: 'pushed',
        created: false,
        item: { courseId: 'c1', quantity: 1 },
      });
    }
    const again = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'sess-2' },
      array: 'data.cart',
      match: { courseId: 'c1' },
    });
    expect(again).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 2 } });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'sess-1', expires: 10, data: { cart: [{ courseId: 'c1', quantity: 1 }] } },
      { _id: 'sess-2', data: { locale: 'fr', cart: [{ courseId: 'c1', quantity: 2 }] } },
    ]);
  });

  it('upsert creates the missing parent document: pushed with created: true', async () => {
    const coll = await carts('upsert');
    const result = await incrementOrPushArrayItem(coll, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
      fields: { title: 'Intro' },
      upsert: true,
    });
    expect(result).toEqual({
      outcome: 'pushed',
      created: true,
      item: { courseId: 'c1', quantity: 1, title: 'Intro' },
    });
    const docs = await coll.find({}, { projection: { _id: 0 } }).toArray();
    expect(docs).toEqual([
      { userId: 'u1', courses: [{ courseId: 'c1', quantity: 1, title: 'Intro' }] },
    ]);
    // The next call finds the document it created.
    expect(
      await incrementOrPushArrayItem(coll, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        upsert: true,
      }),
    ).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 2, title: 'Intro' } });
  });

  it('upsert on a dotted path creates the document with its nested array', async () => {
    const coll = await carts('upsertdotted');
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'sess-9' },
      array: 'data.cart',
      match: { courseId: 'c1' },
      upsert: true,
    });
    expect(result).toMatchObject({ outcome: 'pushed', created: true });
    expect(await coll.findOne({ _id: 'sess-9' })).toEqual({
      _id: 'sess-9',
      data: { cart: [{ courseId: 'c1', quantity: 1 }] },
    });
  });

  it('resolves notFound and writes nothing when no document matches and upsert is off', async () => {
    const coll = await carts('notfound', [{ _id: 'cart', userId: 'u1', courses: [] }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { userId: 'someone-else' },
      array: 'courses',
      match: { courseId: 'c1' },
    });
    expect(result).toEqual({ outcome: 'notFound' });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'cart', userId: 'u1', courses: [] }]);
  });

  it('resolves limitReached with the unchanged element, and leaves the document unchanged, when an increment would pass max', async () => {
    const before = {
      _id: 'cart',
      userId: 'u1',
      courses: [
        { courseId: 'c1', quantity: 9, seats: 1 },
        { courseId: 'c2', quantity: 1, seats: 1 },
      ],
    };
    const coll = await carts('limit', [before]);
    const options = {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
      inc: { quantity: 1, seats: 1 },
      max: { quantity: 10 },
    };
    // 9 + 1 = 10 is within the cap.
    expect(await incrementOrPushArrayItem(coll, options)).toEqual({
      outcome: 'incremented',
      item: { courseId: 'c1', quantity: 10, seats: 2 },
    });
    const atCap = await coll.findOne({ _id: 'cart' });
    // 10 + 1 = 11 is not: neither counter moves.
    expect(await incrementOrPushArrayItem(coll, options)).toEqual({
      outcome: 'limitReached',
      item: { courseId: 'c1', quantity: 10, seats: 2 },
    });
    expect(await coll.findOne({ _id: 'cart' })).toEqual(atCap);
    // A new element is not blocked by another element's cap.
    expect(
      await incrementOrPushArrayItem(coll, { ...options, match: { courseId: 'c3' } }),
    ).toMatchObject({ outcome: 'pushed', item: { courseId: 'c3', quantity: 1, seats: 1 } });
  });

  it('a cap on one counter blocks the other counters too (all or nothing)', async () => {
    const coll = await carts('limit2', [
      { _id: 'cart', items: [{ sku: 'a', quantity: 1, points: 99 }] },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { sku: 'a' },
      inc: { quantity: 1, points: 5 },
      max: { points: 100 },
    });
    expect(result).toEqual({
      outcome: 'limitReached',
      item: { sku: 'a', quantity: 1, points: 99 },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.items).toEqual([
      { sku: 'a', quantity: 1, points: 99 },
    ]);
  });

  it('multi-field identity: a differing color is a new line, the same product/size/color is incremented', async () => {
    const coll = await carts('multi', [{ _id: 'cart', user: 'u1', products: [] }]);
    const add = (color: string, quantity = 1) =>
      incrementOrPushArrayItem(coll, {
        filter: { user: 'u1' },
        array: 'products',
        match: { productId: 'p1', size: 'M', color },
        inc: { quantity },
      });
    expect(await add('red')).toMatchObject({ outcome: 'pushed' });
    expect(await add('blue', 2)).toMatchObject({ outcome: 'pushed' });
    expect(await add('red', 3)).toEqual({
      outcome: 'incremented',
      item: { productId: 'p1', size: 'M', color: 'red', quantity: 4 },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.products).toEqual([
      { productId: 'p1', size: 'M', color: 'red', quantity: 4 },
      { productId: 'p1', size: 'M', color: 'blue', quantity: 2 },
    ]);
  });

  it('an element matches only when every identity field is equal (a partial match is a new line)', async () => {
    const coll = await carts('partial', [
      { _id: 'cart', products: [{ productId: 'p1', size: 'M', quantity: 1 }] },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'products',
      match: { productId: 'p1', size: 'M', color: 'red' },
    });
    expect(result).toMatchObject({ outcome: 'pushed' });
    expect((await coll.findOne({ _id: 'cart' }))?.products).toHaveLength(2);
  });

  it('identity values keep their type: the number 1 and the string "1" are different elements', async () => {
    const coll = await carts('types', [{ _id: 'cart', items: [{ id: 1, quantity: 1 }] }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { id: '1' },
    });
    expect(result).toMatchObject({ outcome: 'pushed' });
    expect(
      await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'items',
        match: { id: 1 },
      }),
    ).toEqual({ outcome: 'incremented', item: { id: 1, quantity: 2 } });
  });

  it('an existing element without the counter counts from 0', async () => {
    const coll = await carts('nocounter', [{ _id: 'cart', items: [{ sku: 'a', name: 'A' }] }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'items',
      match: { sku: 'a' },
      inc: { quantity: 3 },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { sku: 'a', name: 'A', quantity: 3 } });
  });

  it('duplicates left by a racy implementation: all are incremented, the first is reported', async () => {
    const coll = await carts('dups', [
      {
        _id: 'cart',
        courses: [
          { courseId: 'c1', quantity: 1 },
          { courseId: 'c2', quantity: 5 },
          { courseId: 'c1', quantity: 4 },
        ],
      },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'courses',
      match: { courseId: 'c1' },
      inc: { quantity: 2 },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 3 } });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 3 },
      { courseId: 'c2', quantity: 5 },
      { courseId: 'c1', quantity: 6 },
    ]);
  });

  it('a non-array at the path is a server error and changes nothing', async () => {
    const coll = await carts('notarray', [{ _id: 'cart', courses: 'oops' }]);
    const error = await rejectionOf(
      incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
      }),
    );
    expect(isInvalidArgumentError(error)).toBe(false);
    expect((error as { name?: string }).name).toBe('MongoServerError');
    expect(await coll.findOne({ _id: 'cart' })).toEqual({ _id: 'cart', courses: 'oops' });
  });
});

describe('round trips', () => {
  const paths: [string, Doc[], Partial<IncrementOrPushOptions<Doc>>][] = [
    ['incremented', [{ _id: 'cart', courses: [{ courseId: 'c1', quantity: 1 }] }], {}],
    ['pushed', [{ _id: 'cart', courses: [] }], {}],
    ['pushed', [{ _id: 'cart' }], {}],
    ['pushed', [], { upsert: true }],
    [
      'limitReached',
      [{ _id: 'cart', courses: [{ courseId: 'c1', quantity: 5 }] }],
      { max: { quantity: 5 } },
    ],
    ['notFound', [], {}],
  ];
  it.each(paths)(
    '%s: exactly one findAndModify (seed %j, extra options %j)',
    async (outcome, docs, extra) => {
      const coll = await carts('rt', docs);
      t.commands.reset();
      const result = await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
        ...extra,
      });
      expect(result.outcome).toBe(outcome);
      expect(t.commands.names()).toEqual(['findAndModify']);
      const command = t.commands.started[0]?.command;
      // One pipeline update, returning the before-image projected to the decision only.
      expect(Array.isArray(command?.update)).toBe(true);
      expect(command?.new).not.toBe(true);
      expect(Object.keys(command?.fields ?? {})).toEqual(['_id', 'facts']);
    },
  );
});

describe('invalid arguments: InvalidArgumentError naming the option, and no command sent', () => {
  const valid = { filter: { userId: 'u1' }, array: 'courses', match: { courseId: 'c1' } };
  const cases: [string, unknown, string][] = [
    ['options null', null, 'options'],
    ['options a string', 'courses', 'options'],
    ['options an array', [valid], 'options'],
    ['an unknown option (typo)', { ...valid, amout: 1 }, 'amout'],
    ['filter missing', { ...valid, filter: undefined }, 'filter'],
    ['filter a string', { ...valid, filter: 'u1' }, 'filter'],
    ['filter empty', { ...valid, filter: {} }, 'filter'],
    ['array missing', { ...valid, array: undefined }, 'array'],
    ['array empty', { ...valid, array: '' }, 'array'],
    ['array an operator', { ...valid, array: '$x' }, 'array'],
    ['array with an empty segment', { ...valid, array: 'a..b' }, 'array'],
    ['array with a positional segment', { ...valid, array: 'courses.$' }, 'array'],
    ['array a number', { ...valid, array: 1 }, 'array'],
    ['match missing', { ...valid, match: undefined }, 'match'],
    ['match empty', { ...valid, match: {} }, 'match'],
    ['match a string', { ...valid, match: 'c1' }, 'match'],
    [
      'match value an object (operator injection)',
      { ...valid, match: { courseId: { $ne: null } } },
      'match.courseId',
    ],
    ['match value an array', { ...valid, match: { courseId: ['c1'] } }, 'match.courseId'],
    ['match value NaN', { ...valid, match: { courseId: Number.NaN } }, 'match.courseId'],
    ['match value undefined', { ...valid, match: { courseId: undefined } }, 'match.courseId'],
    ['match value null', { ...valid, match: { courseId: null } }, 'match.courseId'],
    ['match key dotted', { ...valid, match: { 'course.id': 'c1' } }, 'match.course.id'],
    ['match key an operator', { ...valid, match: { $where: 'c1' } }, 'match.$where'],
    ['inc a number', { ...valid, inc: 1 }, 'inc'],
    ['inc empty', { ...valid, inc: {} }, 'inc'],
    ['inc 0', { ...valid, inc: { quantity: 0 } }, 'inc.quantity'],
    ['inc -1', { ...valid, inc: { quantity: -1 } }, 'inc.quantity'],
    ['inc Infinity', { ...valid, inc: { quantity: Number.POSITIVE_INFINITY } }, 'inc.quantity'],
    ['inc NaN', { ...valid, inc: { quantity: Number.NaN } }, 'inc.quantity'],
    ['inc a string', { ...valid, inc: { quantity: '1' } }, 'inc.quantity'],
    ['inc key also a match key', { ...valid, inc: { courseId: 1 } }, 'inc.courseId'],
    ['fields a string', { ...valid, fields: 'title' }, 'fields'],
    ['fields key also a match key', { ...valid, fields: { courseId: 'c2' } }, 'fields.courseId'],
    ['fields key also an inc key', { ...valid, fields: { quantity: 5 } }, 'fields.quantity'],
    ['fields key an operator', { ...valid, fields: { $set: 1 } }, 'fields.$set'],
    ['fields value undefined', { ...valid, fields: { title: undefined } }, 'fields.title'],
    ['max a number', { ...valid, max: 10 }, 'max'],
    ['max not a key of inc', { ...valid, max: { seats: 10 } }, 'max.seats'],
    // Inherited names are not keys of inc: Object.prototype.toString is no increment.
    ['max key inherited by inc (toString)', { ...valid, max: { toString: 10 } }, 'max.toString'],
    ['max key inherited by inc (valueOf)', { ...valid, max: { valueOf: 10 } }, 'max.valueOf'],
    [
      'max below its increment',
      { ...valid, inc: { quantity: 5 }, max: { quantity: 3 } },
      'max.quantity',
    ],
    ['max below the default increment', { ...valid, max: { quantity: 0.5 } }, 'max.quantity'],
    ['max a string', { ...valid, max: { quantity: '10' } }, 'max.quantity'],
    ['upsert a string', { ...valid, upsert: 'yes' }, 'upsert'],
    ['upsert a number', { ...valid, upsert: 1 }, 'upsert'],
    ['session not a session', { ...valid, session: {} }, 'session'],
    ['session a string', { ...valid, session: 'abc' }, 'session'],
  ];

  it.each(cases)('%s → option %j', async (_label, options, option) => {
    const coll = t.db.collection(t.uniqueName('bad'));
    t.commands.reset();
    const error = await rejectionOf(incrementOrPushArrayItem(coll, options as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ primitive: 'incrementOrPushArrayItem', option });
    expect(t.commands.names()).toEqual([]);
  });

  it.each([
    ['null', null],
    ['a plain object', {}],
    ['a Db', 'db'],
  ])('collection %s → option "collection"', async (_label, collection) => {
    t.commands.reset();
    const error = await rejectionOf(
      incrementOrPushArrayItem((collection === 'db' ? t.db : collection) as never, valid),
    );
    expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'collection' });
    expect(t.commands.names()).toEqual([]);
  });

  it('an ended session → option "session"', async () => {
    const session = t.client.startSession();
    await session.endSession();
    t.commands.reset();
    const error = await rejectionOf(
      incrementOrPushArrayItem(t.db.collection('x'), { ...valid, session }),
    );
    expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'session' });
    expect(t.commands.names()).toEqual([]);
  });
});

describe('caller values are stored literally, never evaluated', () => {
  it('a match value that looks like a field path ("$courseId", "$$el.courseId") is a plain string', async () => {
    const coll = await carts('literal', [
      { _id: 'cart', courses: [{ courseId: 'c1', quantity: 1 }] },
    ]);
    const add = (courseId: string) =>
      incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId },
      });
    // Evaluated as an expression, '$$el.courseId' would equal every element's own courseId and
    // increment c1; '$courseId' would be the (missing) root field and never match, pushing twice.
    expect(await add('$$el.courseId')).toMatchObject({ outcome: 'pushed' });
    expect(await add('$courseId')).toMatchObject({ outcome: 'pushed' });
    expect(await add('$courseId')).toEqual({
      outcome: 'incremented',
      item: { courseId: '$courseId', quantity: 2 },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 1 },
      { courseId: '$$el.courseId', quantity: 1 },
      { courseId: '$courseId', quantity: 2 },
    ]);
  });

  it('extra fields holding operator-like objects and expression strings are stored as given', async () => {
    const coll = await carts('literalfields', [{ _id: 'cart', courses: [] }]);
    const fields = {
      meta: { $inc: 1, nested: { $concat: ['a', 'b'] } },
      note: '$$ROOT',
      tags: ['$price', { $literal: 'x' }],
    };
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'courses',
      match: { courseId: 'c1' },
      fields,
    });
    expect(result).toEqual({
      outcome: 'pushed',
      created: false,
      item: { courseId: 'c1', quantity: 1, ...fields },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 1, ...fields },
    ]);
  });
});

describe('sessions and transactions', () => {
  it('inside the caller’s transaction: visible after commit, one findAndModify in the transaction', async () => {
    const coll = await carts('txn', [{ _id: 'cart', userId: 'u1', courses: [] }]);
    const session = t.client.startSession();
    try {
      t.commands.reset();
      const result = await session.withTransaction(async () => {
        const inside = await incrementOrPushArrayItem(coll, {
          filter: { userId: 'u1' },
          array: 'courses',
          match: { courseId: 'c1' },
          session,
        });
        // Not visible outside the transaction before commit.
        const outside = await t.db.collection<Doc>(coll.collectionName).findOne({ _id: 'cart' });
        expect(outside?.courses).toEqual([]);
        return inside;
      });
      expect(result).toEqual({
        outcome: 'pushed',
        created: false,
        item: { courseId: 'c1', quantity: 1 },
      });
      const [update] = t.commands.started;
      expect(update?.commandName).toBe('findAndModify');
      expect(update?.command.startTransaction).toBe(true);
      expect(update?.command.autocommit).toBe(false);
      expect(t.commands.names()).toEqual(['findAndModify', 'find', 'commitTransaction']);
    } finally {
      await session.endSession();
    }
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 1 },
    ]);
  });

  it('an aborted transaction discards the increment', async () => {
    const coll = await carts('txnabort', [
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] },
    ]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await incrementOrPushArrayItem(coll, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        session,
      });
      expect(result).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 2 } });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 1 },
    ]);
  });

  it('a session without a transaction is used for the command', async () => {
    const coll = await carts('sess', [{ _id: 'cart', courses: [] }]);
    const session = t.client.startSession();
    try {
      t.commands.reset();
      await incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
        session,
      });
      const lsid = t.commands.started[0]?.command.lsid as { id?: unknown } | undefined;
      expect(lsid?.id).toEqual(session.id?.id);
    } finally {
      await session.endSession();
    }
  });
});

describe('upsert races', () => {
  const WORKERS = 20;
  // One single-connection client per caller, so requests really interleave at the server.
  const clients = useRaceClients(WORKERS).all;

  it('20 concurrent upserts on a missing parent, unique index on the filter field: one created, one element with quantity 20', async () => {
    const coll = await carts('upsertrace');
    await coll.createIndex({ userId: 1 }, { unique: true });
    const { tally, values } = await race(WORKERS, (i) =>
      incrementOrPushArrayItem(via(clients[i]!, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        upsert: true,
      }),
    );
    expect(values.filter((result) => result.created === true)).toHaveLength(1);
    expect(tally).toEqual({ pushed: 1, incremented: WORKERS - 1 });
    const docs = await coll.find({}, { projection: { _id: 0 } }).toArray();
    expect(docs).toEqual([{ userId: 'u1', courses: [{ courseId: 'c1', quantity: WORKERS }] }]);
  });

  describe('the E11000 of a lost upsert race (fail point)', () => {
    const failPoints = useFailPointClients(() => t.db, 'incpush');

    // The losing upsert's insert hits the unique index. MongoDB 4.2+ retries that itself only
    // when the filter is equality-only on exactly the unique index's fields (and collations
    // match); for any other filter (`{ userId, storeId }` with a unique index on userId, a
    // range on expiry, a case-insensitive index) the E11000 reaches the client. The fail point
    // produces that reply deterministically: the first findAndModify fails with 11000 and
    // writes nothing, as a lost insert does; the retry then finds the winner's document.
    it('is answered by one retry: the caller gets the outcome against the winner’s document, two findAndModify sent', async () => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await carts('e11000', [
        { _id: 'winner', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] },
      ]);
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['findAndModify'], errorCode: 11000, appName },
      );
      commands.reset();
      const result = await incrementOrPushArrayItem(via(client, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        upsert: true,
      });
      expect(result).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 2 } });
      expect(commands.names()).toEqual(['findAndModify', 'findAndModify']);
      expect(await coll.countDocuments({})).toBe(1);
    });

    it('a second E11000 is not a race: it is rethrown after two attempts', async () => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await carts('e11000twice');
      await failCommand(
        t.db,
        { times: 2 },
        { failCommands: ['findAndModify'], errorCode: 11000, appName },
      );
      commands.reset();
      const error = await rejectionOf(
        incrementOrPushArrayItem(via(client, coll), {
          filter: { userId: 'u1' },
          array: 'courses',
          match: { courseId: 'c1' },
          upsert: true,
        }),
      );
      expect(error).toMatchObject({ code: 11000 });
      expect(commands.names()).toEqual(['findAndModify', 'findAndModify']);
      expect(await coll.countDocuments({})).toBe(0);
    });

    it('without upsert an E11000 is rethrown at once (one findAndModify)', async () => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await carts('e11000noupsert', [{ _id: 'cart', courses: [] }]);
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['findAndModify'], errorCode: 11000, appName },
      );
      commands.reset();
      const error = await rejectionOf(
        incrementOrPushArrayItem(via(client, coll), {
          filter: { _id: 'cart' },
          array: 'courses',
          match: { courseId: 'c1' },
        }),
      );
      expect(error).toMatchObject({ code: 11000 });
      expect(commands.names()).toEqual(['findAndModify']);
    });

    it('inside a transaction an E11000 is rethrown, not retried: the server has aborted the transaction', async () => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await carts('e11000txn');
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['findAndModify'], errorCode: 11000, appName },
      );
      const session = client.startSession();
      try {
        session.startTransaction();
        commands.reset();
        const error = await rejectionOf(
          incrementOrPushArrayItem(via(client, coll), {
            filter: { userId: 'u1' },
            array: 'courses',
            match: { courseId: 'c1' },
            upsert: true,
            session,
          }),
        );
        expect(error).toMatchObject({ code: 11000 });
        expect(commands.names()).toEqual(['findAndModify']);
        await session.abortTransaction();
      } finally {
        await session.endSession();
      }
      expect(await coll.countDocuments({})).toBe(0);
    });
  });
});

describe('a retried findAndModify (retryable writes)', () => {
  const failPoints = useFailPointClients(() => t.db, 'incpushretry');

  // The retry is answered from the stored pre-image of the first execution, WITHOUT the
  // projection the outcome is normally read from (mongod write_ops_retryability.cpp,
  // SERVER-44151; pinned in tests/conformance/retryable-writes).
  const retryNextFindAndModify = (appName: string) =>
    retryNextWrite(t.db, appName, 'findAndModify');

  const cases: [
    label: string,
    seed: Doc,
    extra: Partial<IncrementOrPushOptions<Doc>>,
    result: IncrementOrPushResult | { outcome: 'alreadyApplied'; document: Doc },
    stored: Doc,
  ][] = [
    [
      'incremented',
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1, title: 'Intro' }] },
      {},
      { outcome: 'incremented', item: { courseId: 'c1', quantity: 2, title: 'Intro' } },
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 2, title: 'Intro' }] },
    ],
    [
      'pushed',
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c2', quantity: 1 }] },
      { fields: { title: 'Intro' } },
      { outcome: 'pushed', item: { courseId: 'c1', quantity: 1, title: 'Intro' }, created: false },
      {
        _id: 'cart',
        userId: 'u1',
        courses: [
          { courseId: 'c2', quantity: 1 },
          { courseId: 'c1', quantity: 1, title: 'Intro' },
        ],
      },
    ],
    [
      'limitReached',
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 3 }] },
      { max: { quantity: 3 } },
      { outcome: 'limitReached', item: { courseId: 'c1', quantity: 3 } },
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 3 }] },
    ],
    [
      'incremented with an opId',
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] },
      { opId: 'req-1' },
      { outcome: 'incremented', item: { courseId: 'c1', quantity: 2 } },
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 2 }], _opIds: ['req-1'] },
    ],
    [
      'pushed with an opId',
      { _id: 'cart', userId: 'u1', _opIds: ['older'] },
      { opId: 'req-1', inc: { quantity: 2 } },
      { outcome: 'pushed', item: { courseId: 'c1', quantity: 2 }, created: false },
      {
        _id: 'cart',
        userId: 'u1',
        _opIds: ['older', 'req-1'],
        courses: [{ courseId: 'c1', quantity: 2 }],
      },
    ],
    [
      'alreadyApplied (the retried call was itself a repeat of the opId)',
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 2 }], _opIds: ['req-1'] },
      { opId: 'req-1' },
      {
        outcome: 'alreadyApplied',
        document: {
          _id: 'cart',
          userId: 'u1',
          courses: [{ courseId: 'c1', quantity: 2 }],
          _opIds: ['req-1'],
        },
      },
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 2 }], _opIds: ['req-1'] },
    ],
  ];

  it.each(cases)(
    '%s: the retry is answered with the unprojected pre-image; the outcome is still reported, and the update applied once',
    async (_label, seed, extra, expected, stored) => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await carts('retried', [seed]);
      await retryNextFindAndModify(appName);
      commands.reset();
      const result = await incrementOrPushArrayItem(via(client, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        ...extra,
      });
      expect(result).toEqual(expected);
      // The first attempt, the driver's retry (same lsid and txnNumber), answered with the
      // image, then one aggregate that has the server evaluate the very same projection over
      // that image, on a document of this collection (so under its default collation).
      expect(commands.names()).toEqual(['findAndModify', 'findAndModify', 'aggregate']);
      const [first, retry, aggregate] = commands.started;
      expect(String(retry?.command.txnNumber)).toBe(String(first?.command.txnNumber));
      expect(aggregate?.command.aggregate).toBe(coll.collectionName);
      expect(aggregate?.command.pipeline).toEqual([
        { $match: { _id: 'cart' } },
        { $limit: 1 },
        { $replaceWith: { $literal: seed } },
        { $project: first?.command.fields },
      ]);
      expect(await coll.findOne({ _id: 'cart' })).toEqual(stored);
    },
  );

  // An upsert that inserted is answered on retry with lastErrorObject.upserted and value null
  // (new: false), as on the first execution (write_ops_retryability.cpp).
  it('upsert that created the parent: the retry still resolves pushed with created: true, one document', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const coll = await carts('retriedUpsert');
    await retryNextFindAndModify(appName);
    commands.reset();
    const result = await incrementOrPushArrayItem(via(client, coll), {
      filter: { userId: 'u9' },
      array: 'courses',
      match: { courseId: 'c1' },
      upsert: true,
    });
    expect(result).toEqual({
      outcome: 'pushed',
      item: { courseId: 'c1', quantity: 1 },
      created: true,
    });
    // No image to evaluate (value null, lastErrorObject.upserted): no aggregate.
    expect(commands.names()).toEqual(['findAndModify', 'findAndModify']);
    const docs = await coll.find({}, { projection: { _id: 0 } }).toArray();
    expect(docs).toEqual([{ userId: 'u9', courses: [{ courseId: 'c1', quantity: 1 }] }]);
  });

  it('with an explicit session: the aggregate runs in that session, after the retried write', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const coll = await carts('retriedSession', [
      { _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] },
    ]);
    await retryNextFindAndModify(appName);
    commands.reset();
    const session = client.startSession();
    try {
      const result = await incrementOrPushArrayItem(via(client, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        session,
      });
      expect(result).toEqual({ outcome: 'incremented', item: { courseId: 'c1', quantity: 2 } });
    } finally {
      await session.endSession();
    }
    expect(commands.names()).toEqual(['findAndModify', 'findAndModify', 'aggregate']);
    const lsids = commands.started.map((event) => BSON.EJSON.stringify(event.command.lsid));
    expect(new Set(lsids).size).toBe(1);
  });

  it('an image holding $-prefixed and dotted field names: $literal sends it back as data, never as an expression', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    // Stored as given by MongoDB 5.0+ (`fields` values are never interpreted).
    const line = { courseId: 'c1', quantity: 1, meta: { $inc: { quantity: 5 }, 'a.b': '$price' } };
    const coll = await carts('retriedDollar', [{ _id: 'cart', userId: 'u1', courses: [line] }]);
    await retryNextFindAndModify(appName);
    commands.reset();
    const result = await incrementOrPushArrayItem(via(client, coll), {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { ...line, quantity: 2 } });
    expect(commands.names()).toEqual(['findAndModify', 'findAndModify', 'aggregate']);
  });

  it('an element holding __proto__ as an ordinary field: the image goes back through $literal and is reported without touching Object.prototype', async () => {
    const { client, appName } = await failPoints.appClient();
    // As js-bson deserialises what mongod stores: `__proto__` an own field of the element.
    const cart = BSON.deserialize(
      BSON.serialize({ _id: 'cart', userId: 'u1', courses: [{ courseId: 'c1', quantity: 1 }] }),
    );
    Object.defineProperty((cart.courses as Document[])[0], '__proto__', {
      value: { isAdmin: true },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    const coll = await carts('retriedProto', [cart]);
    await retryNextFindAndModify(appName);
    const result = await incrementOrPushArrayItem(via(client, coll), {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
    });
    expect(result.outcome).toBe('incremented');
    const item = result.item as Document;
    expect(Object.hasOwn(item, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(item)).toBe(Object.prototype);
    expect(item.quantity).toBe(2);
    expect(({} as Document).isAdmin).toBeUndefined();
  });

  it('counters of every numeric type: the outcome from the retry image equals the one the projection reports', async () => {
    const seed = (id: string): Doc => ({
      _id: id,
      courses: [
        { courseId: 'int', quantity: 1 },
        { courseId: 'long', quantity: Long.fromString('9007199254740993') },
        { courseId: 'double', quantity: 2.5 },
        { courseId: 'decimal', quantity: Decimal128.fromString('1.10') },
        { courseId: 'null', quantity: null },
        { courseId: 'missing' },
      ],
    });
    const { client, appName } = await failPoints.appClient();
    const coll = await carts('retriedTypes', [seed('projected'), seed('image')]);
    for (const courseId of ['int', 'long', 'double', 'decimal', 'null', 'missing']) {
      for (const inc of [{ quantity: 1 }, { quantity: 0.25 }]) {
        const options = { array: 'courses', match: { courseId }, inc };
        const projected = await incrementOrPushArrayItem(coll, {
          filter: { _id: 'projected' },
          ...options,
        });
        await retryNextFindAndModify(appName);
        const fromImage = await incrementOrPushArrayItem(via(client, coll), {
          filter: { _id: 'image' },
          ...options,
        });
        expect({ courseId, inc, result: fromImage }).toEqual({ courseId, inc, result: projected });
      }
    }
    const docs = await coll.find().toArray();
    expect(docs[1]?.courses).toEqual(docs[0]?.courses);
  });
});

describe('a retried findAndModify on a collection with a case-insensitive default collation (stub of mongod)', () => {
  // The offline server has no collation (its README). The stub answers as mongod does for a
  // collection created with `{ collation: { locale: 'en', strength: 2 } }`: the retried
  // findAndModify with the stored before-image, unprojected (write_ops_retryability.cpp,
  // SERVER-44151), and the aggregate evaluated with the strings compared case-insensitively
  // (support/case-insensitive.ts). The update itself, on the first execution, matched `'C1'`
  // for `'c1'` and incremented it: the outcome must say so.
  const preImage = { _id: 'cart', userId: 'u1', courses: [{ courseId: 'C1', quantity: 1 }] };

  it("match 'c1' against a stored 'C1': the server matched it, so the retry reports incremented (the stored element), not pushed", async () => {
    const { collection, calls, aggregateOptions } = caseInsensitiveCollection(
      [{ ...preImage, courses: [{ courseId: 'C1', quantity: 2 }] }],
      { retriedImage: preImage },
    );
    const result = await incrementOrPushArrayItem(collection, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'c1' },
    });
    expect(result).toEqual({ outcome: 'incremented', item: { courseId: 'C1', quantity: 2 } });
    // The driver's retry is inside the one findOneAndUpdate call; then one aggregate, read
    // from the primary (no session was given).
    expect(calls).toEqual(['findAndModify', 'aggregate']);
    expect(aggregateOptions).toEqual([{ readPreference: 'primary' }]);
  });

  it("an opId 'req-1' after a recorded 'REQ-1': the server saw it as applied, so the retry reports alreadyApplied", async () => {
    const image = { ...preImage, _opIds: ['REQ-1'] };
    const { collection } = caseInsensitiveCollection([image], { retriedImage: image });
    const result = await incrementOrPushArrayItem(collection, {
      filter: { userId: 'u1' },
      array: 'courses',
      match: { courseId: 'C1' },
      opId: 'req-1',
    });
    expect(result).toEqual({ outcome: 'alreadyApplied', document: image });
  });

  it('the document was deleted before the aggregate: a MongoAtomicsError that says the update was applied', async () => {
    const { collection, calls } = caseInsensitiveCollection([], { retriedImage: preImage });
    const error = await rejectionOf(
      incrementOrPushArrayItem(collection, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'C1' },
      }),
    );
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toMatch(/the update was applied.*deleted/);
    expect(calls).toEqual(['findAndModify', 'aggregate']);
  });
});

describe('a retried findAndModify whose aggregate fails', () => {
  it('rejects with a MongoAtomicsError that says the update was applied, the aggregate error as its cause', async () => {
    const failure = new Error('connection reset');
    const collection = {
      collectionName: 'stub',
      // A reply in the shape mongod answers a retried findAndModify with.
      async findOneAndUpdate() {
        return { ok: 1, lastErrorObject: { n: 1, updatedExisting: true }, value: { _id: 'cart' } };
      },
      aggregate() {
        return { toArray: () => Promise.reject(failure) };
      },
    } as unknown as Collection<Doc>;
    const error = await rejectionOf(
      incrementOrPushArrayItem(collection, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
      }),
    );
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toMatch(/the update was applied/);
    expect((error as Error).cause).toBe(failure);
  });
});

describe('the add-to-cart race (seed 000)', () => {
  const WORKERS = 100;
  // One single-connection client per caller, so requests really interleave at the server.
  const clients = useRaceClients(WORKERS).all;

  it('naive: positional $inc, then $push when it matched nothing: 100 concurrent adds to an empty cart leave duplicate lines', async () => {
    const coll = await carts('naive', [{ _id: 'cart', userId: 'u1', courses: [] }]);
    // Every request finishes step 1 before any runs step 2: the interleaving the seed describes.
    const allTried = barrier(WORKERS);
    await Promise.all(
      clients.map(async (client) => {
        const mine = via<Cart>(client, coll);
        const updated = await mine.findOneAndUpdate(
          { userId: 'u1', 'courses.courseId': 'c1' },
          { $inc: { 'courses.$.quantity': 1 } },
          { returnDocument: 'after' },
        );
        await allTried();
        if (updated === null) {
          await mine.updateOne(
            { userId: 'u1' },
            { $push: { courses: { courseId: 'c1', quantity: 1 } } },
          );
        }
      }),
    );
    const courses = (await coll.findOne({ _id: 'cart' }))?.courses as Document[];
    expect(courses.length).toBeGreaterThan(1);
    expect(courses).toHaveLength(WORKERS);
  });

  it('incrementOrPushArrayItem: 100 concurrent adds leave one line with quantity 100; one pushed, 99 incremented', async () => {
    const coll = await carts('safe', [{ _id: 'cart', userId: 'u1', courses: [] }]);
    const { tally, values: results } = await race(WORKERS, (i) =>
      incrementOrPushArrayItem(via(clients[i]!, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
      }),
    );
    expect(tally).toEqual({ pushed: 1, incremented: WORKERS - 1 });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: WORKERS },
    ]);
    // Every caller saw a distinct quantity: each increment was applied to the previous one.
    const seen = results.map((result) => result.item?.quantity as number).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: WORKERS }, (_, i) => i + 1));
  });

  it('30 concurrent +1 with max 10: exactly 10 succeed, 20 limitReached, final quantity 10', async () => {
    const CALLERS = 30;
    const coll = await carts('caps', [{ _id: 'cart', userId: 'u1', courses: [] }]);
    const { tally, values: results } = await race(CALLERS, (i) =>
      incrementOrPushArrayItem(via(clients[i]!, coll), {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        max: { quantity: 10 },
      }),
    );
    expect(results.filter((result) => result.outcome !== 'limitReached')).toHaveLength(10);
    expect(tally).toEqual({ pushed: 1, incremented: 9, limitReached: 20 });
    for (const result of results) {
      if (result.outcome === 'limitReached')
        expect(result.item).toEqual({ courseId: 'c1', quantity: 10 });
    }
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toEqual([
      { courseId: 'c1', quantity: 10 },
    ]);
  });
});

/**
 * incrementOrPushArrayItem: the exact text and option of each of its own refusals, the
 * boundary of `max` against its increment, the exact findAndModify it sends (filter, pipeline,
 * projection, flags) with and without `max`, a multi-field identity and an opId, every
 * outcome's fields and the pushed element's field order, the options it hands the driver, the
 * one retry of a lost upsert race (and the cases that are no race), and the refusal of a reply
 * that holds no outcome. Written to kill the mutants tests/increment-or-push.test.ts and the
 * other primitives' tests left alive (npm run mutation; docs/reliability.md, "Mutation
 * testing").
 */
import { type ClientSession, type Collection, type Document, MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, isMongoAtomicsError } from '../../src/errors.js';
import { incrementOrPushArrayItem } from '../../src/increment-or-push.js';
import { rejectionOf } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_increment_or_push');

const P = 'incrementOrPushArrayItem: option ';

/** The parent documents of these tests: string ids, any other fields. */
interface Doc {
  _id: string;
  [key: string]: unknown;
}

/** A fresh collection holding `docs`, the command log reset. */
async function carts(docs: Doc[] = []): Promise<Collection<Doc>> {
  const name = t.uniqueName('carts');
  await t.db.createCollection(name);
  const coll = t.db.collection<Doc>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

const valid = { filter: { _id: 'cart' }, array: 'courses', match: { courseId: 'c1' } };

describe('refusals of its own checks: the option, the whole message, nothing sent', () => {
  const cases: [label: string, options: Document, option: string, message: string][] = [
    [
      'array _id',
      { ...valid, array: '_id' },
      'array',
      `${P}"array" must not be _id, which MongoDB does not let an update change`,
    ],
    [
      'match a string',
      { ...valid, match: 'c1' },
      'match',
      `${P}"match" must be an object, got the string "c1"`,
    ],
    [
      'match empty',
      { ...valid, match: {} },
      'match',
      `${P}"match" must name at least one field: it is the identity of the element`,
    ],
    [
      'match key dotted',
      { ...valid, match: { 'a.b': 'c1' } },
      'match.a.b',
      `${P}"match.a.b" must be a plain field name (no ".", no leading "$")`,
    ],
    [
      'match value an object',
      { ...valid, match: { courseId: { $ne: null } } },
      'match.courseId',
      `${P}"match.courseId" must be a string, finite number, boolean, Date, ObjectId, Decimal128, Long or UUID/Binary (finite, built with the driver's classes), got an object`,
    ],
    ['inc a number', { ...valid, inc: 5 }, 'inc', `${P}"inc" must be an object, got 5`],
    ['inc empty', { ...valid, inc: {} }, 'inc', `${P}"inc" must name at least one counter`],
    [
      'inc key dotted',
      { ...valid, inc: { 'a.b': 1 } },
      'inc.a.b',
      `${P}"inc.a.b" must be a plain field name (no ".", no leading "$")`,
    ],
    [
      'inc key also a match key',
      { ...valid, inc: { courseId: 1 } },
      'inc.courseId',
      `${P}"inc.courseId" is also a key of match: name each field in one of match and inc`,
    ],
    [
      'inc 0',
      { ...valid, inc: { quantity: 0 } },
      'inc.quantity',
      `${P}"inc.quantity" must be a finite number greater than 0, got 0`,
    ],
    [
      'fields a string',
      { ...valid, fields: 'title' },
      'fields',
      `${P}"fields" must be an object of fields, got the string "title"`,
    ],
    [
      'fields key an operator',
      { ...valid, fields: { $set: 1 } },
      'fields.$set',
      `${P}"fields.$set" must be a plain field name (no ".", no leading "$")`,
    ],
    [
      'fields key also a match key',
      { ...valid, fields: { courseId: 'c2' } },
      'fields.courseId',
      `${P}"fields.courseId" is also a key of match: name each field in one of match and fields`,
    ],
    [
      'fields key also an inc key',
      { ...valid, inc: { seats: 1 }, fields: { seats: 5 } },
      'fields.seats',
      `${P}"fields.seats" is also a key of inc: name each field in one of inc and fields`,
    ],
    [
      'fields key also a key of the default inc',
      { ...valid, fields: { quantity: 5 } },
      'fields.quantity',
      `${P}"fields.quantity" is also a key of inc: name each field in one of inc and fields`,
    ],
    [
      'fields value undefined',
      { ...valid, fields: { title: undefined } },
      'fields.title',
      `${P}"fields.title" is undefined (omit the field instead)`,
    ],
    ['max a number', { ...valid, max: 10 }, 'max', `${P}"max" must be an object, got 10`],
    [
      'max not a key of inc (every key of inc listed)',
      { ...valid, inc: { quantity: 1, price: 2 }, max: { seats: 3 } },
      'max.seats',
      `${P}"max.seats" must be a key of inc (quantity, price)`,
    ],
    [
      'max key inherited by inc',
      { ...valid, max: { toString: 10 } },
      'max.toString',
      `${P}"max.toString" must be a key of inc (quantity)`,
    ],
    [
      'max a string',
      { ...valid, max: { quantity: '10' } },
      'max.quantity',
      `${P}"max.quantity" must be a finite number, got the string "10"`,
    ],
    [
      'max below its increment',
      { ...valid, inc: { quantity: 5 }, max: { quantity: 4.5 } },
      'max.quantity',
      `${P}"max.quantity" is 4.5, below the increment 5: it could never apply`,
    ],
    [
      'max below the default increment',
      { ...valid, max: { quantity: 0.5 } },
      'max.quantity',
      `${P}"max.quantity" is 0.5, below the increment 1: it could never apply`,
    ],
    [
      'upsert a string',
      { ...valid, upsert: 'yes' },
      'upsert',
      `${P}"upsert" must be true or false, got the string "yes"`,
    ],
    [
      'array is the op id log',
      { ...valid, array: '_opIds', opId: 'req-1' },
      'array',
      `${P}"array" overlaps the op id log field "_opIds" (choose another opIdLog.field)`,
    ],
    [
      'array inside the op id log',
      { ...valid, array: 'log.courses', opId: 'req-1', opIdLog: { field: 'log' } },
      'array',
      `${P}"array" overlaps the op id log field "log" (choose another opIdLog.field)`,
    ],
  ];

  it.each(cases)('%s → %s', async (_label, options, option, message) => {
    const coll = await carts();
    const error = await rejectionOf(incrementOrPushArrayItem(coll, options as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ primitive: 'incrementOrPushArrayItem', option });
    expect((error as Error).message).toBe(message);
    expect(t.commands.names()).toEqual([]);
  });

  it('a cap equal to its increment is accepted (it can be met once)', async () => {
    const coll = await carts([{ _id: 'cart', courses: [] }]);
    const options = { ...valid, inc: { quantity: 5 }, max: { quantity: 5 } };
    expect(await incrementOrPushArrayItem(coll, options)).toStrictEqual({
      outcome: 'pushed',
      item: { courseId: 'c1', quantity: 5 },
      created: false,
    });
    expect(await incrementOrPushArrayItem(coll, options)).toStrictEqual({
      outcome: 'limitReached',
      item: { courseId: 'c1', quantity: 5 },
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
  });
});

describe('the findAndModify sent, exactly', () => {
  // Shared parts of the expected command, spelled out as the server receives them.
  const items = { $ifNull: ['$courses', []] };
  const add = (path: string, step: number) => ({
    $add: [{ $ifNull: [path, 0] }, step],
  });
  const at = (position: string, body: Document) => ({
    $let: { vars: { el: { $arrayElemAt: ['$$items', position] } }, in: body },
  });
  /** `$$items`, then `$$idx` (the positions of the matches: native search, else `general`). */
  const located = (keys: unknown, sought: Document, isMatchEl: Document, body: Document) => ({
    $let: {
      vars: { items },
      in: {
        $let: {
          vars: { keys },
          in: {
            $let: {
              vars: { first: { $indexOfArray: ['$$keys', sought] } },
              in: {
                $let: {
                  vars: {
                    idx: {
                      $cond: [
                        {
                          $and: [
                            { $eq: [{ $size: '$$keys' }, { $size: '$$items' }] },
                            {
                              $eq: [
                                { $indexOfArray: ['$$keys', sought, { $add: ['$$first', 1] }] },
                                -1,
                              ],
                            },
                          ],
                        },
                        { $cond: [{ $eq: ['$$first', -1] }, [], ['$$first']] },
                        {
                          $filter: {
                            input: { $range: [0, { $size: '$$items' }] },
                            as: 'i',
                            cond: at('$$i', isMatchEl),
                          },
                        },
                      ],
                    },
                  },
                  in: body,
                },
              },
            },
          },
        },
      },
    },
  });
  const none = { $eq: [{ $size: '$$idx' }, 0] };
  const incrementMatches = (counters: Document) => ({
    $let: {
      vars: {
        built: {
          $reduce: {
            input: '$$idx',
            initialValue: { out: [], from: 0 },
            in: {
              out: {
                $concatArrays: [
                  '$$value.out',
                  {
                    $slice: [
                      { $slice: ['$$items', '$$this'] },
                      { $subtract: ['$$value.from', '$$this'] },
                    ],
                  },
                  [at('$$this', { $mergeObjects: ['$$el', counters] })],
                ],
              },
              from: { $add: ['$$this', 1] },
            },
          },
        },
      },
      in: {
        $concatArrays: [
          '$$built.out',
          { $slice: ['$$items', '$$built.from', { $size: '$$items' }] },
        ],
      },
    },
  });
  const noMatchFacts = {
    matched: { $literal: 0 },
    limited: { $literal: false },
    item: { $literal: {} },
  };
  const factsOf = (limited: Document, firstCounters: Document) => ({
    $cond: [
      none,
      noMatchFacts,
      {
        $let: {
          vars: { first: { $arrayElemAt: ['$$items', { $arrayElemAt: ['$$idx', 0] }] }, limited },
          in: {
            matched: { $size: '$$idx' },
            limited: '$$limited',
            item: {
              $cond: ['$$limited', '$$first', { $mergeObjects: ['$$first', firstCounters] }],
            },
          },
        },
      },
    ],
  });

  it('one identity field, the default counter, no max, no opId', async () => {
    const coll = await carts([{ _id: 'cart', courses: [] }]);
    await incrementOrPushArrayItem(coll, valid);
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command as Document;
    expect(command.findAndModify).toBe(coll.collectionName);
    expect(command.query).toStrictEqual({ _id: 'cart' });
    expect(command.new).toBe(false);
    expect(command.upsert).toBe(false);
    const loc = (body: Document) =>
      located(
        '$$items.courseId',
        { $literal: 'c1' },
        { $eq: ['$$el.courseId', { $literal: 'c1' }] },
        body,
      );
    expect(command.update).toStrictEqual([
      {
        $set: {
          courses: loc({
            $cond: [
              none,
              { $concatArrays: ['$$items', [{ $literal: { courseId: 'c1', quantity: 1 } }]] },
              incrementMatches({ quantity: add('$$el.quantity', 1) }),
            ],
          }),
        },
      },
    ]);
    expect(command.fields).toStrictEqual({
      _id: 0,
      facts: loc(factsOf({ $literal: false }, { quantity: add('$$first.quantity', 1) })),
    });
  });

  it('two identity fields, two counters, a cap, an opId, upsert', async () => {
    const coll = await carts([{ _id: 'cart', courses: [] }]);
    await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'courses',
      match: { a: 'c1', b: 2 },
      inc: { q: 1, r: 2 },
      max: { r: 5 },
      upsert: true,
      opId: 'x',
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command as Document;
    expect(command.query).toStrictEqual({ _id: 'cart' });
    expect(command.new).toBe(false);
    expect(command.upsert).toBe(true);
    const loc = (body: Document) =>
      located(
        { $zip: { inputs: ['$$items.a', '$$items.b'] } },
        { $literal: ['c1', 2] },
        {
          $and: [{ $eq: ['$$el.a', { $literal: 'c1' }] }, { $eq: ['$$el.b', { $literal: 2 }] }],
        },
        body,
      );
    const counters = (el: string) => ({ q: add(`$$${el}.q`, 1), r: add(`$$${el}.r`, 2) });
    const limited = {
      $anyElementTrue: [
        {
          $map: {
            input: '$$idx',
            as: 'i',
            in: at('$$i', { $or: [{ $gt: [add('$$el.r', 2), 5] }] }),
          },
        },
      ],
    };
    const seen = { $in: [{ $literal: 'x' }, { $ifNull: ['$_opIds', []] }] };
    expect(command.update).toStrictEqual([
      {
        $set: {
          courses: {
            $cond: [
              seen,
              '$courses',
              loc({
                $cond: [
                  none,
                  {
                    $concatArrays: ['$$items', [{ $literal: { a: 'c1', b: 2, q: 1, r: 2 } }]],
                  },
                  { $cond: [limited, '$$items', incrementMatches(counters('el'))] },
                ],
              }),
            ],
          },
          _opIds: {
            $cond: [
              { $or: [seen, loc({ $and: [{ $not: [none] }, limited] })] },
              { $ifNull: ['$_opIds', '$$REMOVE'] },
              {
                $slice: [
                  { $concatArrays: [{ $ifNull: ['$_opIds', []] }, [{ $literal: 'x' }]] },
                  -50,
                ],
              },
            ],
          },
        },
      },
    ]);
    expect(command.fields).toStrictEqual({
      _id: 0,
      facts: {
        $mergeObjects: [
          loc(factsOf(limited, counters('first'))),
          { seen, document: { $cond: [seen, '$$ROOT', null] } },
        ],
      },
    });
  });
});

describe('every outcome, field for field', () => {
  it('pushed: the new element holds match, inc, then fields, in that order', async () => {
    const coll = await carts([{ _id: 'cart', courses: [{ a: 'other', b: 1, q: 1 }] }]);
    const result = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: 'courses',
      match: { a: 'c1', b: 2 },
      inc: { q: 1, r: 2 },
      fields: { title: 'Intro', price: 9 },
    });
    expect(result).toStrictEqual({
      outcome: 'pushed',
      item: { a: 'c1', b: 2, q: 1, r: 2, title: 'Intro', price: 9 },
      created: false,
    });
    expect(Object.keys(result.item ?? {})).toEqual(['a', 'b', 'q', 'r', 'title', 'price']);
    const stored = await coll.findOne({ _id: 'cart' });
    expect(stored?.courses).toStrictEqual([
      { a: 'other', b: 1, q: 1 },
      { a: 'c1', b: 2, q: 1, r: 2, title: 'Intro', price: 9 },
    ]);
    expect(Object.keys(((stored?.courses ?? []) as Document[])[1] ?? {})).toEqual([
      'a',
      'b',
      'q',
      'r',
      'title',
      'price',
    ]);
  });

  it('pushed with created: true when the upsert inserted the parent', async () => {
    const coll = await carts();
    const result = await incrementOrPushArrayItem(coll, { ...valid, upsert: true });
    expect(result).toStrictEqual({
      outcome: 'pushed',
      item: { courseId: 'c1', quantity: 1 },
      created: true,
    });
    expect(await coll.find().toArray()).toStrictEqual([
      { _id: 'cart', courses: [{ courseId: 'c1', quantity: 1 }] },
    ]);
  });

  it('notFound: upsert defaults to false, nothing is created', async () => {
    const coll = await carts();
    expect(await incrementOrPushArrayItem(coll, valid)).toStrictEqual({ outcome: 'notFound' });
    expect(t.commands.started[0]?.command.upsert).toBe(false);
    expect(await coll.countDocuments()).toBe(0);
  });

  it('incremented: the first matching element as the update left it; other counters kept', async () => {
    const coll = await carts([
      { _id: 'cart', courses: [{ courseId: 'c1', quantity: 4, seats: 2, title: 'Intro' }] },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      ...valid,
      inc: { quantity: 1 },
      max: { quantity: 5 },
      fields: { title: 'ignored' },
    });
    expect(result).toStrictEqual({
      outcome: 'incremented',
      item: { courseId: 'c1', quantity: 5, seats: 2, title: 'Intro' },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toStrictEqual([
      { courseId: 'c1', quantity: 5, seats: 2, title: 'Intro' },
    ]);
  });

  it('limitReached: a counter one past its cap; the element reported and stored unchanged', async () => {
    const coll = await carts([
      { _id: 'cart', courses: [{ courseId: 'c1', quantity: 5, seats: 1 }] },
    ]);
    const result = await incrementOrPushArrayItem(coll, {
      ...valid,
      inc: { quantity: 1, seats: 1 },
      max: { quantity: 5 },
    });
    expect(result).toStrictEqual({
      outcome: 'limitReached',
      item: { courseId: 'c1', quantity: 5, seats: 1 },
    });
    expect((await coll.findOne({ _id: 'cart' }))?.courses).toStrictEqual([
      { courseId: 'c1', quantity: 5, seats: 1 },
    ]);
  });

  it('with an opId, limitReached records nothing and creates no log field', async () => {
    const coll = await carts([{ _id: 'cart', courses: [{ courseId: 'c1', quantity: 5 }] }]);
    const result = await incrementOrPushArrayItem(coll, {
      ...valid,
      max: { quantity: 5 },
      opId: 'req-1',
    });
    expect(result).toStrictEqual({
      outcome: 'limitReached',
      item: { courseId: 'c1', quantity: 5 },
    });
    expect(await coll.findOne({ _id: 'cart' })).toStrictEqual({
      _id: 'cart',
      courses: [{ courseId: 'c1', quantity: 5 }],
    });
  });

  it('with an opId: applied once, recorded; the repeat is alreadyApplied with the document', async () => {
    const coll = await carts([{ _id: 'cart', courses: [{ courseId: 'c1', quantity: 1 }] }]);
    const options = { ...valid, max: { quantity: 9 }, opId: 'req-1' };
    expect(await incrementOrPushArrayItem(coll, options)).toStrictEqual({
      outcome: 'incremented',
      item: { courseId: 'c1', quantity: 2 },
    });
    const after = { _id: 'cart', courses: [{ courseId: 'c1', quantity: 2 }], _opIds: ['req-1'] };
    expect(await coll.findOne({ _id: 'cart' })).toStrictEqual(after);
    expect(await incrementOrPushArrayItem(coll, options)).toStrictEqual({
      outcome: 'alreadyApplied',
      document: after,
    });
    expect(await coll.findOne({ _id: 'cart' })).toStrictEqual(after);
  });
});

// Stand-in collections: the replies below are ones the offline server cannot be made to send
// on cue (an E11000 from a lost upsert race at a chosen moment, a reply without the outcome
// projection). Each returns the shape the driver hands back for a findAndModify run with
// `includeResultMetadata: true`, so the function under test sees what it would see from mongod.
interface Call {
  filter: Document;
  update: unknown;
  options: Document;
}

function standIn(answers: (() => unknown)[]) {
  const calls: Call[] = [];
  const collection = {
    collectionName: 'stand_in',
    async findOneAndUpdate(filter: Document, update: unknown, options: Document) {
      calls.push({ filter, update, options });
      const answer = answers[calls.length - 1];
      if (answer === undefined) throw new Error('stand-in: no answer left');
      return answer();
    },
    aggregate() {
      throw new Error('stand-in: no aggregate expected');
    },
  } as unknown as Collection<Doc>;
  return { collection, calls };
}

const duplicateKey = () =>
  new MongoServerError({
    ok: 0,
    code: 11000,
    codeName: 'DuplicateKey',
    errmsg: 'E11000 duplicate key error collection: db.carts index: userId_1 dup key',
  });
const throws = (error: Error) => () => {
  throw error;
};
/** What mongod answers when the filter matched nothing and upsert was off. */
const noMatch = () => ({ ok: 1, value: null, lastErrorObject: { n: 0, updatedExisting: false } });
/** What mongod answers for a matched document: the projected before-image. */
const projected = (facts: unknown) => () => ({
  ok: 1,
  value: { facts },
  lastErrorObject: { n: 1, updatedExisting: true },
});

describe('the options handed to the driver', () => {
  it('before-image, the projection, upsert off, the result metadata, no session', async () => {
    const { collection, calls } = standIn([noMatch]);
    expect(await incrementOrPushArrayItem(collection, valid)).toStrictEqual({
      outcome: 'notFound',
    });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.filter).toStrictEqual({ _id: 'cart' });
    expect(calls[0]?.options).toEqual({
      returnDocument: 'before',
      projection: { _id: 0, facts: expect.any(Object) },
      upsert: false,
      includeResultMetadata: true,
    });
    expect(calls[0]?.options.session).toBeUndefined();
  });

  it('the session, when one is given', async () => {
    const session = t.client.startSession();
    try {
      const { collection, calls } = standIn([noMatch]);
      await incrementOrPushArrayItem(collection, { ...valid, upsert: true, session });
      expect(calls[0]?.options).toEqual({
        returnDocument: 'before',
        projection: { _id: 0, facts: expect.any(Object) },
        upsert: true,
        includeResultMetadata: true,
        session,
      });
      expect(calls[0]?.options.session).toBe(session);
    } finally {
      await session.endSession();
    }
  });
});

describe('a lost upsert race (E11000) is retried once; anything else is not', () => {
  const facts = { matched: 1, limited: false, item: { courseId: 'c1', quantity: 2 } };

  it('upsert, no session: the E11000 is answered by one more findAndModify', async () => {
    const { collection, calls } = standIn([throws(duplicateKey()), projected(facts)]);
    expect(await incrementOrPushArrayItem(collection, { ...valid, upsert: true })).toStrictEqual({
      outcome: 'incremented',
      item: { courseId: 'c1', quantity: 2 },
    });
    expect(calls).toHaveLength(2);
    expect(calls[1]).toStrictEqual(calls[0]);
  });

  it('upsert with a session outside a transaction: retried too', async () => {
    const session = t.client.startSession();
    try {
      const { collection, calls } = standIn([throws(duplicateKey()), projected(facts)]);
      const result = await incrementOrPushArrayItem(collection, {
        ...valid,
        upsert: true,
        session,
      });
      expect(result.outcome).toBe('incremented');
      expect(calls).toHaveLength(2);
    } finally {
      await session.endSession();
    }
  });

  it('a second E11000 is rethrown as it is, after two attempts', async () => {
    const second = duplicateKey();
    const { collection, calls } = standIn([throws(duplicateKey()), throws(second)]);
    const error = await rejectionOf(
      incrementOrPushArrayItem(collection, { ...valid, upsert: true }),
    );
    expect(error).toBe(second);
    expect(calls).toHaveLength(2);
  });

  it('without upsert: rethrown at once', async () => {
    const first = duplicateKey();
    const { collection, calls } = standIn([throws(first), projected(facts)]);
    expect(await rejectionOf(incrementOrPushArrayItem(collection, valid))).toBe(first);
    expect(calls).toHaveLength(1);
  });

  it('upsert, but another server error: rethrown at once', async () => {
    const other = new MongoServerError({ ok: 0, code: 2, codeName: 'BadValue', errmsg: 'bad' });
    const { collection, calls } = standIn([throws(other), projected(facts)]);
    expect(
      await rejectionOf(incrementOrPushArrayItem(collection, { ...valid, upsert: true })),
    ).toBe(other);
    expect(calls).toHaveLength(1);
  });

  it('upsert inside a transaction: rethrown at once (the server aborted the transaction)', async () => {
    const session: ClientSession = t.client.startSession();
    try {
      // Nothing reaches the server: the stand-in answers, and a transaction that sent no
      // command is only a state of the session.
      session.startTransaction();
      const first = duplicateKey();
      const { collection, calls } = standIn([throws(first), projected(facts)]);
      const error = await rejectionOf(
        incrementOrPushArrayItem(collection, { ...valid, upsert: true, session }),
      );
      expect(error).toBe(first);
      expect(calls).toHaveLength(1);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
  });
});

describe('a reply without the outcome projection is refused, word for word', () => {
  const message =
    "incrementOrPushArrayItem: the server's reply held neither the outcome projection nor the document; the update may have been applied, so do not repeat it blindly (pass an opId to make repeats safe)";
  const item = { courseId: 'c1', quantity: 2 };

  // Each reply spoils one fact (what a server before 4.4 might answer, if it answered at all).
  it.each([
    ['no facts at all', undefined],
    ['facts not a document', 5],
    ['matched not a number', { matched: '1', limited: false, item }],
    ['limited not a boolean', { matched: 1, limited: 'false', item }],
    ['item not a document', { matched: 1, limited: false, item: 'c1' }],
  ])('%s', async (_label, facts) => {
    const { collection, calls } = standIn([projected(facts)]);
    const error = await rejectionOf(incrementOrPushArrayItem(collection, valid));
    expect(isMongoAtomicsError(error)).toBe(true);
    expect(error).not.toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe(message);
    expect(calls).toHaveLength(1);
  });

  it('the same facts, well formed, are accepted', async () => {
    const { collection } = standIn([projected({ matched: 1, limited: false, item })]);
    expect(await incrementOrPushArrayItem(collection, valid)).toStrictEqual({
      outcome: 'incremented',
      item,
    });
  });
});

describe('a retried findAndModify answered with the stored image (stand-in)', () => {
  it('the aggregate that reads the outcome fails: the error names this primitive, word for word', async () => {
    const failure = new Error('connection reset');
    // A reply in the shape mongod answers a retried findAndModify with: the before-image,
    // unprojected (write_ops_retryability.cpp, SERVER-44151).
    const collection = {
      collectionName: 'stand_in',
      async findOneAndUpdate() {
        return { ok: 1, lastErrorObject: { n: 1, updatedExisting: true }, value: { _id: 'cart' } };
      },
      aggregate() {
        return { toArray: () => Promise.reject(failure) };
      },
    } as unknown as Collection<Doc>;
    const error = await rejectionOf(incrementOrPushArrayItem(collection, valid));
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toBe(
      'incrementOrPushArrayItem: the update was applied (a retried findAndModify was answered from the stored image, without the projection), but its outcome could not be read: the aggregate that evaluates it on the server failed. Do not repeat the call blindly (pass an opId to make repeats safe).',
    );
    expect((error as Error).cause).toBe(failure);
  });
});

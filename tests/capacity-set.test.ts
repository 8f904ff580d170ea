/**
 * addToSetWithCapacity and removeFromSetWithCapacity: outcomes, round trips, argument
 * validation, transactions, exactly-once op ids, and the ticketing races of seed 004
 * (overbooking the last place, registering one user twice, register/cancel storms).
 */
import { type Collection, Long, ObjectId, type WithId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import {
  InvalidArgumentError,
  isInvalidArgumentError,
  isRetryBudgetExhaustedError,
  RetryBudgetExhaustedError,
} from '../src/errors.js';
import { rejectionOf } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, type RaceReport, race, useRaceClients } from './support/race.js';

interface Event {
  _id: string;
  capacity?: unknown;
  tickets_sold?: number;
  registration_ids?: string[];
  limits?: { seats: number };
  booking?: { attendees?: string[]; stats?: { sold: number } };
  _opIds?: string[];
  log?: { ids: string[] };
}

const t = useTestDatabase('capacity_set');
const WORKERS = 50;
const clients = useRaceClients(WORKERS);

async function events(docs: Event[]) {
  const name = t.uniqueName('events');
  // Collections exist before any transaction uses them (MongoDB production considerations).
  await t.db.createCollection(name);
  const coll = t.db.collection<Event>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

/** The seed's shape: `registration_ids`, `tickets_sold`, and the capacity on the event. */
const seat = { array: 'registration_ids', counter: 'tickets_sold', capacity: 'capacity' } as const;
const unseat = { array: 'registration_ids', counter: 'tickets_sold' } as const;

const find = (coll: Collection<Event>, id = 'e1') => coll.findOne({ _id: id });

describe('addToSetWithCapacity outcomes', () => {
  it('adds the member and counts it in one update, returning the document after', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 2, tickets_sold: 1, registration_ids: ['u0'] },
    ]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(result).toEqual({
      outcome: 'added',
      document: { _id: 'e1', capacity: 2, tickets_sold: 2, registration_ids: ['u0', 'u1'] },
    });
    expect(await find(coll)).toEqual(result.document);
  });

  it('a member already in: alreadyMember with the document as read, and nothing changes', async () => {
    const doc = { _id: 'e1', capacity: 5, tickets_sold: 1, registration_ids: ['u1'] };
    const coll = await events([doc]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(result).toEqual({ outcome: 'alreadyMember', document: doc });
    expect(await find(coll)).toEqual(doc);
  });

  it('a member already in a full event is told alreadyMember, not full', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    ]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(result.outcome).toBe('alreadyMember');
  });

  it('no place left: full with the document as read, and nothing changes', async () => {
    const doc = { _id: 'e1', capacity: 2, tickets_sold: 2, registration_ids: ['u1', 'u2'] };
    const coll = await events([doc]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u3',
    });
    expect(result).toEqual({ outcome: 'full', document: doc });
    expect(await find(coll)).toEqual(doc);
  });

  it('capacity as a number caps the count, whatever the document holds', async () => {
    const coll = await events([{ _id: 'e1', capacity: 100 }]);
    const options = { ...seat, filter: { _id: 'e1' }, capacity: 1 };
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u1' })).outcome).toBe('added');
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u2' })).outcome).toBe('full');
    expect(await find(coll)).toEqual({
      _id: 'e1',
      capacity: 100,
      tickets_sold: 1,
      registration_ids: ['u1'],
    });
  });

  it("capacity as a field name: each document's own capacity applies", async () => {
    const coll = await events([
      { _id: 'small', capacity: 1 },
      { _id: 'large', capacity: 2 },
    ]);
    const outcomes = [];
    for (const id of ['small', 'large']) {
      for (const member of ['u1', 'u2', 'u3']) {
        const result = await addToSetWithCapacity(coll, { ...seat, filter: { _id: id }, member });
        outcomes.push(`${id}:${member}:${result.outcome}`);
      }
    }
    expect(outcomes).toEqual([
      'small:u1:added',
      'small:u2:full',
      'small:u3:full',
      'large:u1:added',
      'large:u2:added',
      'large:u3:full',
    ]);
  });

  it.each([
    ['missing', {}, 'lacks it'],
    ['null', { capacity: null }, 'holds null'],
    ['a numeric string', { capacity: '5' }, 'holds the string "5"'],
    ['an array', { capacity: [10] }, 'holds an array'],
    ['NaN', { capacity: Number.NaN }, 'holds NaN'],
  ])(
    'a capacity field that is %s lets nobody in: InvalidArgumentError on "capacity" saying what it holds, not full; nothing added, 1 round trip (an `_id` filter)',
    async (_case, fields, found) => {
      const coll = await events([{ _id: 'e1', ...fields }]);
      const error = await rejectionOf(
        addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member: 'u1' }),
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe('capacity');
      expect((error as Error).message).toBe(
        `addToSetWithCapacity: option "capacity" names "capacity", but the matched document ${found}: no place can be counted, nothing was added. Check the field name, or store the capacity as a number (int, long, double or Decimal128), or pass it as a number`,
      );
      expect(t.commands.names()).toEqual(['findAndModify']);
      expect(await find(coll)).toEqual({ _id: 'e1', ...fields });
    },
  );

  it('a counter holding a string: InvalidArgumentError on "counter", not full; a null counter counts as 0', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 5, tickets_sold: '2' as unknown as number },
      { _id: 'e2', capacity: 5, tickets_sold: null as unknown as number },
    ]);
    const error = await rejectionOf(
      addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member: 'u1' }),
    );
    expect((error as InvalidArgumentError).option).toBe('counter');
    expect((error as Error).message).toBe(
      'addToSetWithCapacity: option "counter" names "tickets_sold", but the matched document holds the string "2": no place can be counted, nothing was added. Check the field name, or store a number there (a missing counter counts as 0)',
    );
    expect(t.commands.names()).toEqual(['findAndModify']);
    // null passes the guard (`$ifNull`); the server's `$inc` then refuses it (TypeMismatch, 14).
    // With an `_id` filter the one-command pipeline refuses a null counter (its `$add` would
    // not), no verdict explains that, and the operator update is sent as before.
    t.commands.reset();
    const refused = await rejectionOf(
      addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e2' }, member: 'u1' }),
    );
    expect((refused as { code?: unknown }).code).toBe(14);
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
    expect(await find(coll)).toEqual({ _id: 'e1', capacity: 5, tickets_sold: '2' });
  });

  it('a Long capacity field counts like a number', async () => {
    const coll = await events([{ _id: 'e1', capacity: Long.fromNumber(1) }]);
    const options = { ...seat, filter: { _id: 'e1' } };
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u1' })).outcome).toBe('added');
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u2' })).outcome).toBe('full');
  });

  it('a missing counter counts as 0 and a missing array as empty: both are created', async () => {
    const coll = await events([{ _id: 'e1', capacity: 1 }]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(result).toEqual({
      outcome: 'added',
      document: { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    });
  });

  it('dotted paths: array, counter and capacity inside embedded documents', async () => {
    const coll = await events([{ _id: 'e1', limits: { seats: 1 } }]);
    const options = {
      filter: { _id: 'e1' },
      array: 'booking.attendees',
      counter: 'booking.stats.sold',
      capacity: 'limits.seats',
    };
    const added = await addToSetWithCapacity(coll, { ...options, member: 'u1' });
    expect(added).toEqual({
      outcome: 'added',
      document: {
        _id: 'e1',
        limits: { seats: 1 },
        booking: { attendees: ['u1'], stats: { sold: 1 } },
      },
    });
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u1' })).outcome).toBe(
      'alreadyMember',
    );
    expect((await addToSetWithCapacity(coll, { ...options, member: 'u2' })).outcome).toBe('full');
  });

  it('members compare by value: an equal ObjectId is alreadyMember', async () => {
    const user = new ObjectId();
    const coll = t.db.collection<{ _id: string; ids?: ObjectId[]; n?: number }>(
      t.uniqueName('oid'),
    );
    await coll.insertOne({ _id: 'e1' });
    const options = { filter: { _id: 'e1' }, array: 'ids', counter: 'n', capacity: 5 };
    expect((await addToSetWithCapacity(coll, { ...options, member: user })).outcome).toBe('added');
    const again = await addToSetWithCapacity(coll, {
      ...options,
      member: new ObjectId(user.toHexString()),
    });
    expect(again).toEqual({ outcome: 'alreadyMember', document: { _id: 'e1', ids: [user], n: 1 } });
  });

  it('capacity lowered below the count: adds are full, nobody is evicted, places reopen below the new capacity', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 1, tickets_sold: 3, registration_ids: ['u1', 'u2', 'u3'] },
    ]);
    const add = (member: string) =>
      addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member });
    const remove = (member: string) =>
      removeFromSetWithCapacity(coll, { ...unseat, filter: { _id: 'e1' }, member });
    const steps = [
      (await add('u4')).outcome,
      (await remove('u1')).outcome,
      (await add('u4')).outcome,
      (await remove('u2')).outcome,
      (await add('u4')).outcome,
    ];
    expect(steps).toEqual(['full', 'removed', 'full', 'removed', 'full']);
    expect(await find(coll)).toMatchObject({ tickets_sold: 1, registration_ids: ['u3'] });
    await remove('u3');
    expect((await add('u4')).outcome).toBe('added');
  });

  it('no matching document: notFound', async () => {
    const coll = await events([]);
    expect(
      await addToSetWithCapacity(coll, { ...seat, filter: { _id: 'nope' }, member: 'u1' }),
    ).toEqual({ outcome: 'notFound' });
  });
});

describe('removeFromSetWithCapacity outcomes', () => {
  it('removes the member and releases its place, returning the document after', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 2, tickets_sold: 2, registration_ids: ['u1', 'u2'] },
    ]);
    const result = await removeFromSetWithCapacity(coll, {
      ...unseat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(result).toEqual({
      outcome: 'removed',
      document: { _id: 'e1', capacity: 2, tickets_sold: 1, registration_ids: ['u2'] },
    });
    expect(await find(coll)).toEqual(result.document);
  });

  it.each([
    ['another member is in', { tickets_sold: 1, registration_ids: ['u2'] }],
    ['the array is missing', {}],
  ])(
    'not a member (%s): notMember with the document as read, and nothing changes',
    async (_case, fields) => {
      const doc = { _id: 'e1', capacity: 2, ...fields };
      const coll = await events([doc]);
      const result = await removeFromSetWithCapacity(coll, {
        ...unseat,
        filter: { _id: 'e1' },
        member: 'u1',
      });
      expect(result).toEqual({ outcome: 'notMember', document: doc });
      expect(await find(coll)).toEqual(doc);
    },
  );

  it('no matching document: notFound', async () => {
    const coll = await events([]);
    expect(
      await removeFromSetWithCapacity(coll, { ...unseat, filter: { _id: 'e1' }, member: 'u1' }),
    ).toEqual({ outcome: 'notFound' });
  });

  it('dotted paths: the member leaves the embedded array and the embedded counter drops', async () => {
    const coll = await events([
      { _id: 'e1', booking: { attendees: ['u1', 'u2'], stats: { sold: 2 } } },
    ]);
    const result = await removeFromSetWithCapacity(coll, {
      filter: { _id: 'e1' },
      array: 'booking.attendees',
      counter: 'booking.stats.sold',
      member: 'u2',
    });
    expect(result).toEqual({
      outcome: 'removed',
      document: { _id: 'e1', booking: { attendees: ['u1'], stats: { sold: 1 } } },
    });
  });

  it('a released place can be taken: full, then a removal, then the add succeeds', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    ]);
    const add = () => addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member: 'u2' });
    expect((await add()).outcome).toBe('full');
    await removeFromSetWithCapacity(coll, { ...unseat, filter: { _id: 'e1' }, member: 'u1' });
    expect(await add()).toEqual({
      outcome: 'added',
      document: { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u2'] },
    });
  });
});

describe('capacity set round trips', () => {
  it('add, success, a filter that is no `_id` equality: exactly one findAndModify carrying the guard and the update', async () => {
    const coll = await events([{ _id: 'e1', capacity: 1 }]);
    await addToSetWithCapacity(coll, { ...seat, filter: { _id: { $in: ['e1'] } }, member: 'u1' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command;
    expect(command?.update).toEqual({
      $inc: { tickets_sold: 1 },
      $addToSet: { registration_ids: 'u1' },
    });
    expect(command?.query).toEqual({
      $and: [
        { _id: { $in: ['e1'] } },
        { registration_ids: { $ne: 'u1' } },
        {
          $expr: {
            $and: [
              { $in: [{ $type: '$capacity' }, ['int', 'long', 'double', 'decimal']] },
              { $lt: [{ $ifNull: ['$tickets_sold', 0] }, '$capacity'] },
            ],
          },
        },
      ],
    });
  });

  it.each([
    ['alreadyMember', { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] }],
    ['full', { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u2'] }],
    ['notFound', { _id: 'other', capacity: 1 }],
  ])(
    'add, %s: one findAndModify with an `_id` filter; else one findAndModify, then one find',
    async (outcome, doc) => {
      const coll = await events([doc]);
      const result = await addToSetWithCapacity(coll, {
        ...seat,
        filter: { _id: 'e1' },
        member: 'u1',
      });
      expect(result.outcome).toBe(outcome);
      expect(t.commands.names()).toEqual(['findAndModify']);
      t.commands.reset();
      const other = await addToSetWithCapacity(coll, {
        ...seat,
        filter: { _id: { $in: ['e1'] } },
        member: 'u1',
      });
      expect(other).toEqual(result);
      expect(t.commands.names()).toEqual(['findAndModify', 'find']);
    },
  );

  it('remove, success, a filter that is no `_id` equality: exactly one findAndModify carrying the guard and the update', async () => {
    const coll = await events([{ _id: 'e1', tickets_sold: 1, registration_ids: ['u1'] }]);
    const filter = { _id: { $in: ['e1'] } };
    await removeFromSetWithCapacity(coll, { ...unseat, filter, member: 'u1' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command;
    expect(command?.query).toEqual({ $and: [filter, { registration_ids: 'u1' }] });
    expect(command?.update).toEqual({
      $pull: { registration_ids: 'u1' },
      $inc: { tickets_sold: -1 },
    });
  });

  it.each([
    ['notMember', { _id: 'e1', tickets_sold: 1, registration_ids: ['u2'] }],
    ['notFound', { _id: 'other' }],
  ])(
    'remove, %s: one findAndModify with an `_id` filter; else one findAndModify, then one find',
    async (outcome, doc) => {
      const coll = await events([doc]);
      const result = await removeFromSetWithCapacity(coll, {
        ...unseat,
        filter: { _id: 'e1' },
        member: 'u1',
      });
      expect(result.outcome).toBe(outcome);
      expect(t.commands.names()).toEqual(['findAndModify']);
      t.commands.reset();
      const other = await removeFromSetWithCapacity(coll, {
        ...unseat,
        filter: { _id: { $in: ['e1'] } },
        member: 'u1',
      });
      expect(other).toEqual(result);
      expect(t.commands.names()).toEqual(['findAndModify', 'find']);
    },
  );

  it('with opId and an `_id` filter: success and alreadyApplied are one findAndModify each', async () => {
    const coll = await events([{ _id: 'e1', capacity: 5 }]);
    const add = { ...seat, filter: { _id: 'e1' }, member: 'u1', opId: 'add-1' };
    const remove = { ...unseat, filter: { _id: 'e1' }, member: 'u1', opId: 'remove-1' };
    const sequence = [];
    for (const call of [
      () => addToSetWithCapacity(coll, add),
      () => addToSetWithCapacity(coll, add),
      () => removeFromSetWithCapacity(coll, remove),
      () => removeFromSetWithCapacity(coll, remove),
    ]) {
      t.commands.reset();
      const { outcome } = await call();
      sequence.push([outcome, ...t.commands.names()]);
    }
    expect(sequence).toEqual([
      ['added', 'findAndModify'],
      ['alreadyApplied', 'findAndModify'],
      ['removed', 'findAndModify'],
      ['alreadyApplied', 'findAndModify'],
    ]);
  });
});

/**
 * An event whose last place is taken just before each of the add's updates and freed just
 * before each of its failure reads, `losses` times (another client does both, as concurrent
 * requests would): every such try sees no place at the update and one at the read.
 */
function churning(coll: Collection<Event>, losses: number) {
  const other = clients.all[0]!.db(t.db.databaseName).collection<Event>(coll.collectionName);
  const churn = { array: 'registration_ids', counter: 'tickets_sold', filter: { _id: 'e1' } };
  // (The churn's own calls use an `_id` filter; the call under test uses `notById`.)
  let takes = 0;
  let frees = 0;
  const proxy = new Proxy(coll, {
    get(target, property, receiver) {
      if (property === 'findOneAndUpdate') {
        return async (...args: Parameters<typeof target.findOneAndUpdate>) => {
          if (takes < losses) {
            takes += 1;
            const taken = await addToSetWithCapacity(other, {
              ...churn,
              member: 'other',
              capacity: 'capacity',
            });
            expect(taken.outcome).toBe('added');
          }
          return (target.findOneAndUpdate as (...a: unknown[]) => unknown)(...args);
        };
      }
      if (property === 'findOne') {
        return async (...args: Parameters<typeof target.findOne>) => {
          if (frees < takes) {
            frees += 1;
            const freed = await removeFromSetWithCapacity(other, { ...churn, member: 'other' });
            expect(freed.outcome).toBe('removed');
          }
          return target.findOne(...args);
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
  return { proxy, tries: () => takes };
}

/**
 * The retry loop below exists only where the verdicts come from a second command: a filter
 * that is no `_id` equality. (With one, the outcome is the one the command itself saw.)
 */
const notById = { _id: { $in: ['e1'] } };

describe('with an `_id` filter, no retry: the one command both refuses and tells why', () => {
  it('add: a place taken just before the command is full, in 1 round trip, with the document it saw', async () => {
    const coll = await events([{ _id: 'e1', capacity: 1, tickets_sold: 0, registration_ids: [] }]);
    const { proxy, tries } = churning(coll, Number.POSITIVE_INFINITY);
    const result = await addToSetWithCapacity(proxy, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(tries()).toBe(1);
    expect(result).toEqual({
      outcome: 'full',
      document: { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['other'] },
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('remove: a member cancelled just before the command is notMember, in 1 round trip', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 2, tickets_sold: 1, registration_ids: ['u1'] },
    ]);
    const { proxy, tries } = rejoining(coll, 'u1', Number.POSITIVE_INFINITY);
    const result = await removeFromSetWithCapacity(proxy, {
      ...unseat,
      filter: { _id: 'e1' },
      member: 'u1',
    });
    expect(tries()).toBe(1);
    expect(result).toEqual({
      outcome: 'notMember',
      document: { _id: 'e1', capacity: 2, tickets_sold: 0, registration_ids: [] },
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });
});

describe('addToSetWithCapacity under churn: never full while its read shows a place', () => {
  const lastPlace = { _id: 'e1', capacity: 1, tickets_sold: 0, registration_ids: [] };

  it('two tries lose (no place at the update, one at the read): the third adds; 5 round trips', async () => {
    const coll = await events([lastPlace]);
    const { proxy, tries } = churning(coll, 2);
    const result = await addToSetWithCapacity(proxy, {
      ...seat,
      filter: notById,
      member: 'u1',
    });
    expect(tries()).toBe(2);
    expect(result).toEqual({
      outcome: 'added',
      document: { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    });
    expect(t.commands.names()).toEqual([
      'findAndModify',
      'find',
      'findAndModify',
      'find',
      'findAndModify',
    ]);
  });

  it('every try loses: RetryBudgetExhaustedError (maxAttempts, 10 attempts) after 20 round trips, not a full that the read contradicts; nothing written', async () => {
    const coll = await events([lastPlace]);
    const { proxy, tries } = churning(coll, Number.POSITIVE_INFINITY);
    const before = performance.now();
    const error = await addToSetWithCapacity(proxy, {
      ...seat,
      filter: notById,
      member: 'u1',
    }).then(
      (result) => result,
      (e: unknown) => e,
    );
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    expect(error).toMatchObject({ reason: 'maxAttempts', attempts: 10 });
    // The cause is an Error (as every RetryBudgetExhaustedError's) describing the last try.
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(((error as Error).cause as Error).message).toBe(
      'attempt 10: the guarded update matched nothing, and the read after it contradicted that',
    );
    // The time it reports is the time it took: between 0 and what this test measured around it.
    const elapsedMs = (error as RetryBudgetExhaustedError).elapsedMs;
    expect(elapsedMs).toBeGreaterThanOrEqual(0);
    expect(elapsedMs).toBeLessThanOrEqual(Math.ceil(performance.now() - before));
    expect((error as Error).message).toMatch(
      /^addToSetWithCapacity: 10 attempts found no place, yet every read afterwards showed one/,
    );
    expect(tries()).toBe(10);
    expect(t.commands.names()).toEqual(
      Array.from({ length: 10 }, () => ['findAndModify', 'find']).flat(),
    );
    // The last read freed the place again, and u1 was never added.
    expect(await find(coll)).toEqual(lastPlace);
  });
});

/**
 * A collection through which every update of the call under test finds `member` gone (another
 * client cancels it just before) and every read after it finds the member back (the other client
 * registers it again just before), `losses` times.
 */
function rejoining(coll: Collection<Event>, member: string, losses: number) {
  const other = clients.all[1]!.db(t.db.databaseName).collection<Event>(coll.collectionName);
  const churn = { ...seat, filter: notById, member };
  let leaves = 0;
  let returns = 0;
  const proxy = new Proxy(coll, {
    get(target, property, receiver) {
      if (property === 'findOneAndUpdate') {
        return async (...args: Parameters<typeof target.findOneAndUpdate>) => {
          if (leaves < losses) {
            leaves += 1;
            const { capacity: _capacity, ...leave } = churn;
            expect((await removeFromSetWithCapacity(other, leave)).outcome).toBe('removed');
          }
          return (target.findOneAndUpdate as (...a: unknown[]) => unknown)(...args);
        };
      }
      if (property === 'findOne') {
        return async (...args: Parameters<typeof target.findOne>) => {
          if (returns < leaves) {
            returns += 1;
            expect((await addToSetWithCapacity(other, churn)).outcome).toBe('added');
          }
          return target.findOne(...args);
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
  return { proxy, tries: () => leaves };
}

describe('removeFromSetWithCapacity under churn: never notMember while its read shows the member', () => {
  const registered = { _id: 'e1', capacity: 2, tickets_sold: 1, registration_ids: ['u1'] };

  it('two tries miss the member that the read then shows: the third removes it; 5 round trips', async () => {
    const coll = await events([registered]);
    const { proxy, tries } = rejoining(coll, 'u1', 2);
    const result = await removeFromSetWithCapacity(proxy, {
      ...unseat,
      filter: notById,
      member: 'u1',
    });
    expect(tries()).toBe(2);
    expect(result).toEqual({
      outcome: 'removed',
      document: { _id: 'e1', capacity: 2, tickets_sold: 0, registration_ids: [] },
    });
    expect(t.commands.names()).toEqual([
      'findAndModify',
      'find',
      'findAndModify',
      'find',
      'findAndModify',
    ]);
  });

  it('every try misses it: RetryBudgetExhaustedError (maxAttempts, 10 attempts), not a notMember that the read contradicts; nothing removed by this call', async () => {
    const coll = await events([registered]);
    const { proxy, tries } = rejoining(coll, 'u1', Number.POSITIVE_INFINITY);
    const error = await rejectionOf(
      removeFromSetWithCapacity(proxy, { ...unseat, filter: notById, member: 'u1' }),
    );
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    expect(error).toMatchObject({ reason: 'maxAttempts', attempts: 10 });
    // The cause is an Error (as every RetryBudgetExhaustedError's) describing the last try.
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(((error as Error).cause as Error).message).toBe(
      'attempt 10: the guarded update matched nothing, and the read after it contradicted that',
    );
    expect((error as Error).message).toMatch(
      /^removeFromSetWithCapacity: 10 attempts found no member, yet every read afterwards showed it/,
    );
    expect(tries()).toBe(10);
    expect(t.commands.names()).toEqual(
      Array.from({ length: 10 }, () => ['findAndModify', 'find']).flat(),
    );
    // The other client's last registration stands; this call removed nothing.
    expect(await find(coll)).toEqual(registered);
  });
});

describe('capacity set argument validation', () => {
  const doc = { _id: 'e1', capacity: 5, tickets_sold: 1, registration_ids: ['u0'] };
  const validRemove = { ...unseat, filter: { _id: 'e1' }, member: 'u1' };
  const validAdd = { ...validRemove, capacity: 5 };
  const common = (valid: Record<string, unknown>): [string, unknown][] => [
    ['options', null],
    ['options', 'e1'],
    ['filter', { ...valid, filter: undefined }],
    ['filter', { ...valid, filter: {} }],
    ['filter', { ...valid, filter: 'e1' }],
    ['array', { ...valid, array: undefined }],
    ['array', { ...valid, array: '' }],
    ['array', { ...valid, array: 'registration_ids.$' }],
    ['array', { ...valid, array: 'a..b' }],
    ['member', { ...valid, member: undefined }],
    ['member', { ...valid, member: null }],
    ['member', { ...valid, member: { $ne: null } }],
    ['member', { ...valid, member: ['u1'] }],
    ['member', { ...valid, member: Number.NaN }],
    ['counter', { ...valid, counter: undefined }],
    ['counter', { ...valid, counter: '$inc' }],
    ['counter', { ...valid, counter: 'registration_ids' }],
    ['counter', { ...valid, counter: 'registration_ids.count' }],
    ['session', { ...valid, session: {} }],
    ['opId', { ...valid, opId: '' }],
    ['opId', { ...valid, opId: 42 }],
    ['opId', { ...valid, opId: 'x'.repeat(201) }],
    ['opIdLog', { ...valid, opIdLog: { size: 10 } }],
    ['opIdLog', { ...valid, opId: 'a', opIdLog: 'log' }],
    ['opIdLog.size', { ...valid, opId: 'a', opIdLog: { size: 0 } }],
    ['opIdLog.field', { ...valid, opId: 'a', opIdLog: { field: '$log' } }],
    ['opIdLog.feild', { ...valid, opId: 'a', opIdLog: { feild: 'log' } }],
    ['array', { ...valid, opId: 'a', opIdLog: { field: 'registration_ids' } }],
    ['counter', { ...valid, opId: 'a', opIdLog: { field: 'tickets_sold' } }],
    ['membr', { ...valid, membr: 'u1' }],
  ];

  it.each([
    ...common(validAdd),
    ['capacity', { ...validRemove }],
    ['capacity', { ...validAdd, capacity: 0 }],
    ['capacity', { ...validAdd, capacity: -1 }],
    ['capacity', { ...validAdd, capacity: 1.5 }],
    ['capacity', { ...validAdd, capacity: Number.NaN }],
    ['capacity', { ...validAdd, capacity: Number.POSITIVE_INFINITY }],
    ['capacity', { ...validAdd, capacity: true }],
    ['capacity', { ...validAdd, capacity: '' }],
    ['capacity', { ...validAdd, capacity: '$capacity' }],
    ['capacity', { ...validAdd, capacity: 'tickets_sold' }],
    ['capacity', { ...validAdd, capacity: 'registration_ids' }],
    ['capacity', { ...validAdd, capacity: '_opIds', opId: 'a' }],
  ])(
    'addToSetWithCapacity: invalid %s → InvalidArgumentError naming it, nothing sent',
    async (option, options) => {
      const coll = await events([doc]);
      const error = await addToSetWithCapacity(coll, options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(isInvalidArgumentError(error)).toBe(true);
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as InvalidArgumentError).primitive).toBe('addToSetWithCapacity');
      expect(t.commands.started).toHaveLength(0);
      expect(await find(coll)).toEqual(doc);
    },
  );

  it.each([...common(validRemove), ['capacity', { ...validRemove, capacity: 5 }]])(
    'removeFromSetWithCapacity: invalid %s → InvalidArgumentError naming it, nothing sent',
    async (option, options) => {
      const coll = await events([doc]);
      const error = await removeFromSetWithCapacity(coll, options as never).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as InvalidArgumentError).primitive).toBe('removeFromSetWithCapacity');
      expect(t.commands.started).toHaveLength(0);
      expect(await find(coll)).toEqual(doc);
    },
  );

  it('a collection that is not a driver Collection → InvalidArgumentError on "collection"', async () => {
    const add = await addToSetWithCapacity({} as never, validAdd as never).catch((e: unknown) => e);
    const remove = await removeFromSetWithCapacity({} as never, validRemove as never).catch(
      (e) => e,
    );
    expect((add as InvalidArgumentError).option).toBe('collection');
    expect((remove as InvalidArgumentError).option).toBe('collection');
  });
});

describe('capacity set in a transaction', () => {
  it.each([
    ['an add', 'added'],
    ['a removal', 'removed'],
  ] as const)('joins the caller transaction: an abort undoes %s', async (_case, expected) => {
    const doc = { _id: 'e1', capacity: 2, tickets_sold: 1, registration_ids: ['u1'] };
    const coll = await events([doc]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result =
        expected === 'added'
          ? await addToSetWithCapacity(coll, {
              ...seat,
              filter: { _id: 'e1' },
              member: 'u2',
              session,
            })
          : await removeFromSetWithCapacity(coll, {
              ...unseat,
              filter: { _id: 'e1' },
              member: 'u1',
              session,
            });
      expect(result.outcome).toBe(expected);
      // Inside the transaction the change is visible to its own reads...
      expect((await coll.findOne({ _id: 'e1' }, { session }))?.tickets_sold).not.toBe(1);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    // ...and the abort leaves the event as it was.
    expect(await find(coll)).toEqual(doc);
  });

  it('joins the caller transaction: a commit keeps the registration', async () => {
    const coll = await events([{ _id: 'e1', capacity: 1 }]);
    const session = t.client.startSession();
    try {
      await session.withTransaction(async () => {
        await addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member: 'u1', session });
      });
    } finally {
      await session.endSession();
    }
    expect(await find(coll)).toEqual({
      _id: 'e1',
      capacity: 1,
      tickets_sold: 1,
      registration_ids: ['u1'],
    });
  });
});

describe('capacity set with opId (exactly once)', () => {
  it('the op id is recorded by the update that applies the operation', async () => {
    const coll = await events([{ _id: 'e1', capacity: 2 }]);
    const result = await addToSetWithCapacity(coll, {
      ...seat,
      filter: { _id: 'e1' },
      member: 'u1',
      opId: 'req-1',
    });
    expect(result).toEqual({
      outcome: 'added',
      document: {
        _id: 'e1',
        capacity: 2,
        tickets_sold: 1,
        registration_ids: ['u1'],
        _opIds: ['req-1'],
      },
    });
  });

  it('a repeat resolves alreadyApplied with the document (even when the event is now full) and changes nothing', async () => {
    const coll = await events([{ _id: 'e1', capacity: 1 }]);
    const options = { ...seat, filter: { _id: 'e1' }, member: 'u1', opId: 'req-1' };
    const first = await addToSetWithCapacity(coll, options);
    const again = await addToSetWithCapacity(coll, options);
    expect(again).toEqual({ outcome: 'alreadyApplied', document: first.document });
    expect(await find(coll)).toEqual(first.document);
  });

  it('a different opId applies: another member is added, the same member is alreadyMember', async () => {
    const coll = await events([{ _id: 'e1', capacity: 3 }]);
    const options = { ...seat, filter: { _id: 'e1' } };
    await addToSetWithCapacity(coll, { ...options, member: 'u1', opId: 'req-1' });
    const other = await addToSetWithCapacity(coll, { ...options, member: 'u2', opId: 'req-2' });
    const same = await addToSetWithCapacity(coll, { ...options, member: 'u1', opId: 'req-3' });
    expect([other.outcome, same.outcome]).toEqual(['added', 'alreadyMember']);
    expect(await find(coll)).toMatchObject({
      tickets_sold: 2,
      registration_ids: ['u1', 'u2'],
      _opIds: ['req-1', 'req-2'],
    });
  });

  it('an attempt that found the event full records nothing: the same opId applies once a place frees up', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    ]);
    const options = { ...seat, filter: { _id: 'e1' }, member: 'u2', opId: 'req-9' };
    expect((await addToSetWithCapacity(coll, options)).outcome).toBe('full');
    await removeFromSetWithCapacity(coll, { ...unseat, filter: { _id: 'e1' }, member: 'u1' });
    expect((await addToSetWithCapacity(coll, options)).outcome).toBe('added');
  });

  it('a retried cancellation does not cancel the registration made after it', async () => {
    const coll = await events([
      { _id: 'e1', capacity: 1, tickets_sold: 1, registration_ids: ['u1'] },
    ]);
    const cancel = { ...unseat, filter: { _id: 'e1' }, member: 'u1', opId: 'cancel-1' };
    expect((await removeFromSetWithCapacity(coll, cancel)).outcome).toBe('removed');
    await addToSetWithCapacity(coll, { ...seat, filter: { _id: 'e1' }, member: 'u1' });
    const retried = await removeFromSetWithCapacity(coll, cancel);
    expect(retried.outcome).toBe('alreadyApplied');
    expect(await find(coll)).toMatchObject({ tickets_sold: 1, registration_ids: ['u1'] });
  });

  it('opIdLog: a custom field keeps only the newest `size` ids', async () => {
    const coll = await events([{ _id: 'e1', capacity: 10 }]);
    for (const member of ['u1', 'u2', 'u3']) {
      await addToSetWithCapacity(coll, {
        ...seat,
        filter: { _id: 'e1' },
        member,
        opId: `req-${member}`,
        opIdLog: { field: 'log.ids', size: 2 },
      });
    }
    expect(await find(coll)).toMatchObject({
      tickets_sold: 3,
      log: { ids: ['req-u2', 'req-u3'] },
    });
  });

  it('the same opId sent 20 times concurrently applies once: 1 added, 19 alreadyApplied', async () => {
    const coll = await events([{ _id: 'e1', capacity: 5 }]);
    const { tally } = await race(20, (i) =>
      addToSetWithCapacity(
        clients.all[i]!.db(t.db.databaseName).collection<Event>(coll.collectionName),
        { ...seat, filter: { _id: 'e1' }, member: 'u1', opId: 'double-click' },
      ),
    );
    expect(tally).toEqual({ added: 1, alreadyApplied: 19 });
    expect(await find(coll)).toMatchObject({ tickets_sold: 1, registration_ids: ['u1'] });
  });
});

/** The check-then-write registration the seed replaces: read, check, barrier, `$inc` + `$push`. */
async function naiveRegister(coll: Collection<Event>, user: string, allRead: () => Promise<void>) {
  const event = await coll.findOne({ _id: 'e1' });
  await allRead();
  const sold = event?.tickets_sold ?? 0;
  if (event === null || sold >= (event.capacity as number)) return false;
  if (event.registration_ids?.includes(user)) return false;
  await coll.updateOne(
    { _id: 'e1' },
    { $inc: { tickets_sold: 1 }, $push: { registration_ids: user } },
  );
  return true;
}

/** The check-then-write cancellation: read, check membership, barrier, `$pull` + `$inc: -1`. */
async function naiveCancel(coll: Collection<Event>, user: string, allRead: () => Promise<void>) {
  const event = await coll.findOne({ _id: 'e1' });
  await allRead();
  if (!event?.registration_ids?.includes(user)) return false;
  await coll.updateOne(
    { _id: 'e1' },
    { $pull: { registration_ids: user }, $inc: { tickets_sold: -1 } },
  );
  return true;
}

describe('the last place (seed 004): 50 concurrent registrations for an event with 1 place', () => {
  async function onePlace() {
    const coll = await events([{ _id: 'e1', capacity: 1, tickets_sold: 0, registration_ids: [] }]);
    return coll.collectionName;
  }
  const via = (client: (typeof clients.all)[number], name: string) =>
    client.db(t.db.databaseName).collection<Event>(name);

  it('naive: "read, check sold < capacity, then $inc + $push" overbooks the event', async () => {
    const name = await onePlace();
    const allRead = barrier(WORKERS);
    const booked = await Promise.all(
      clients.all.map((client, i) => naiveRegister(via(client, name), `u${i}`, allRead)),
    );
    const event = await find(t.db.collection<Event>(name));
    expect(booked.filter(Boolean).length).toBeGreaterThan(1);
    expect(event?.tickets_sold).toBeGreaterThan(1);
  });

  it('addToSetWithCapacity: exactly one added, 49 full, counter 1 and one registration', async () => {
    const name = await onePlace();
    const { tally, values } = await race(WORKERS, (i) =>
      addToSetWithCapacity(via(clients.all[i]!, name), {
        ...seat,
        filter: { _id: 'e1' },
        member: `u${i}`,
      }),
    );
    expect(tally).toEqual({ added: 1, full: WORKERS - 1 });
    const event = await find(t.db.collection<Event>(name));
    expect(event?.tickets_sold).toBe(1);
    expect(event?.registration_ids).toHaveLength(1);
    expect(event).toEqual(values.find((r) => r.outcome === 'added')?.document);
  });
});

describe('a double click (seed 004): the same user registers twice concurrently', () => {
  async function roomy() {
    const coll = await events([{ _id: 'e1', capacity: 10, tickets_sold: 0, registration_ids: [] }]);
    return coll.collectionName;
  }
  const pair = () => clients.all.slice(0, 2);

  it('naive: check-then-write registers the user twice and counts two tickets', async () => {
    const name = await roomy();
    const allRead = barrier(2);
    await Promise.all(
      pair().map((client) =>
        naiveRegister(client.db(t.db.databaseName).collection<Event>(name), 'u1', allRead),
      ),
    );
    expect(await find(t.db.collection<Event>(name))).toMatchObject({
      tickets_sold: 2,
      registration_ids: ['u1', 'u1'],
    });
  });

  it('addToSetWithCapacity: one added, one alreadyMember, one ticket', async () => {
    const name = await roomy();
    const { tally } = await race(2, (i) =>
      addToSetWithCapacity(pair()[i]!.db(t.db.databaseName).collection<Event>(name), {
        ...seat,
        filter: { _id: 'e1' },
        member: 'u1',
      }),
    );
    expect(tally).toEqual({ added: 1, alreadyMember: 1 });
    expect(await find(t.db.collection<Event>(name))).toMatchObject({
      tickets_sold: 1,
      registration_ids: ['u1'],
    });
  });
});

describe('register/cancel storms (seed 004): 60 random operations from 30 clients on a 5-place event, 5 rounds', () => {
  const CAPACITY = 5;
  const CLIENTS = 30;
  const OPERATIONS = 60;
  const ROUNDS = 5;
  const USERS = 12;

  /** A seeded generator (mulberry32), so a failing storm replays identically. */
  function random(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let x = Math.imul(state ^ (state >>> 15), 1 | state);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
  }

  type Operation = { readonly kind: 'register' | 'cancel'; readonly user: string };
  function plan(next: () => number): Operation[] {
    return Array.from({ length: OPERATIONS }, () => ({
      kind: next() < 0.5 ? 'register' : 'cancel',
      user: `u${Math.floor(next() * USERS)}`,
    }));
  }

  /** What must hold after every round; the broken parts, empty when it holds. */
  function violations(event: WithId<Event> | null): string[] {
    const ids = event?.registration_ids ?? [];
    const sold = event?.tickets_sold ?? 0;
    const broken: string[] = [];
    if (sold !== ids.length) broken.push(`counter ${sold} ≠ ${ids.length} registrations`);
    if (sold > CAPACITY) broken.push(`counter ${sold} > capacity ${CAPACITY}`);
    if (new Set(ids).size !== ids.length) broken.push('a user is registered twice');
    return broken;
  }

  async function storm<T>(
    run: (coll: Collection<Event>, op: Operation, sync: () => Promise<void>) => Promise<T>,
  ) {
    const coll = await events([{ _id: 'e1', capacity: CAPACITY }]);
    const next = random(4);
    const rounds: { report: RaceReport<T>; broken: string[] }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const ops = plan(next);
      const report = await race(OPERATIONS, (i, { sync }) => {
        const client = clients.all[i % CLIENTS]!;
        return run(
          client.db(t.db.databaseName).collection<Event>(coll.collectionName),
          ops[i]!,
          sync,
        );
      });
      rounds.push({ report, broken: violations(await find(coll)) });
    }
    return { rounds, final: await find(coll) };
  }

  it('naive: check-then-write breaks the invariant (counter = registrations ≤ capacity)', async () => {
    const { rounds } = await storm((coll, op, allRead) =>
      op.kind === 'register'
        ? naiveRegister(coll, op.user, allRead)
        : naiveCancel(coll, op.user, allRead),
    );
    expect(rounds.some((round) => round.broken.length > 0)).toBe(true);
    expect(rounds.flatMap((round) => round.report.errors)).toEqual([]);
  });

  it('add/remove with capacity: the invariant holds after every round, and the outcomes add up', async () => {
    const { rounds, final } = await storm(async (coll, op) => {
      const options = { ...unseat, filter: { _id: 'e1' }, member: op.user };
      return op.kind === 'register'
        ? addToSetWithCapacity(coll, { ...options, capacity: 'capacity' })
        : removeFromSetWithCapacity(coll, options);
    });
    expect(rounds.map((round) => round.broken)).toEqual(Array.from({ length: ROUNDS }, () => []));
    const total = (outcome: string) =>
      rounds.reduce((sum, round) => sum + round.report.count(outcome), 0);
    expect(rounds.flatMap((round) => round.report.errors)).toEqual([]);
    expect(total('added') - total('removed')).toBe(final?.tickets_sold);
    // The storm really contended: the event filled up and some cancellations found nobody.
    expect(total('full')).toBeGreaterThan(0);
    expect(total('notMember')).toBeGreaterThan(0);
  });
});

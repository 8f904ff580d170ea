/**
 * Exactly-once operation ids (seed 001: double clicks, two devices, client retries) on the core
 * single-document primitives: a repeated opId applies once, in the same round trips.
 */
import type { Collection } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { claimOnce } from '../src/claim-once.js';
import { InvalidArgumentError } from '../src/errors.js';
import { guardedDecrement } from '../src/guarded-decrement.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

interface Doc {
  _id: string;
  stock?: number;
  status?: string;
  courses?: { courseId: string; quantity: number }[];
  _opIds?: string[];
  log?: { ops: string[] };
}

const t = useTestDatabase('op_id');
const REPEATS = 20;
const race = useRaceClients(REPEATS);

async function fresh(doc: Doc): Promise<Collection<Doc>> {
  const coll = t.db.collection<Doc>(t.uniqueName('ops'));
  await coll.insertOne(doc);
  t.commands.reset();
  return coll;
}

/** Sends the same call from REPEATS clients at once and counts the outcomes. */
async function repeatConcurrently<R extends { outcome: string }>(
  coll: Collection<Doc>,
  call: (mine: Collection<Doc>) => Promise<R>,
): Promise<Record<string, number>> {
  const ready = barrier(REPEATS);
  const results = await Promise.all(
    race.all.map(async (client) => {
      await ready();
      return call(client.db(t.db.databaseName).collection<Doc>(coll.collectionName));
    }),
  );
  const counts: Record<string, number> = {};
  for (const { outcome } of results) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

describe('the same opId sent 20 times concurrently applies once', () => {
  it('naive: without an opId, the same request sent 20 times applies 20 times', async () => {
    const coll = await fresh({ _id: 'p', stock: 100 });
    const counts = await repeatConcurrently(coll, (mine) =>
      guardedDecrement(mine, { filter: { _id: 'p' }, field: 'stock', amount: 5 }),
    );
    expect(counts).toEqual({ decremented: REPEATS });
    expect(await coll.findOne({ _id: 'p' })).toEqual({ _id: 'p', stock: 0 });
  });

  it('guardedDecrement: one decrement, 19 alreadyApplied', async () => {
    const coll = await fresh({ _id: 'p', stock: 100 });
    const counts = await repeatConcurrently(coll, (mine) =>
      guardedDecrement(mine, { filter: { _id: 'p' }, field: 'stock', amount: 5, opId: 'order-7' }),
    );
    expect(counts).toEqual({ decremented: 1, alreadyApplied: REPEATS - 1 });
    expect(await coll.findOne({ _id: 'p' })).toEqual({ _id: 'p', stock: 95, _opIds: ['order-7'] });
  });

  it('claimOnce: one claim, 19 alreadyApplied (not alreadyClaimed: the same request came back)', async () => {
    const coll = await fresh({ _id: 'o', status: 'pending' });
    const counts = await repeatConcurrently(coll, (mine) =>
      claimOnce(mine, { filter: { _id: 'o' }, field: 'status', to: 'paid', opId: 'webhook-1' }),
    );
    expect(counts).toEqual({ claimed: 1, alreadyApplied: REPEATS - 1 });
  });

  it('incrementOrPushArrayItem: one line with quantity 1, 19 alreadyApplied', async () => {
    const coll = await fresh({ _id: 'cart', courses: [] });
    const counts = await repeatConcurrently(coll, (mine) =>
      incrementOrPushArrayItem(mine, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
        opId: 'click-1',
      }),
    );
    expect(counts).toEqual({ pushed: 1, alreadyApplied: REPEATS - 1 });
    expect(await coll.findOne({ _id: 'cart' })).toEqual({
      _id: 'cart',
      courses: [{ courseId: 'c1', quantity: 1 }],
      _opIds: ['click-1'],
    });
  });
});

describe('opId semantics', () => {
  it('different opIds each apply; a repeat returns the document and changes nothing', async () => {
    const coll = await fresh({ _id: 'p', stock: 10 });
    const take = (opId: string) =>
      guardedDecrement(coll, { filter: { _id: 'p' }, field: 'stock', amount: 1, opId });
    expect((await take('a')).outcome).toBe('decremented');
    expect((await take('b')).outcome).toBe('decremented');
    const repeat = await take('a');
    expect(repeat).toEqual({
      outcome: 'alreadyApplied',
      document: { _id: 'p', stock: 8, _opIds: ['a', 'b'] },
    });
  });

  it('no extra round trip: success is one findAndModify, a repeat one findAndModify and one find', async () => {
    const coll = await fresh({ _id: 'o', status: 'pending' });
    await claimOnce(coll, { filter: { _id: 'o' }, field: 'status', to: 'paid', opId: 'x' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    t.commands.reset();
    await claimOnce(coll, { filter: { _id: 'o' }, field: 'status', to: 'paid', opId: 'x' });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });

  it('incrementOrPushArrayItem answers a repeat within its one command', async () => {
    const coll = await fresh({ _id: 'cart', courses: [] });
    const add = () =>
      incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
        opId: 'k',
      });
    await add();
    t.commands.reset();
    const repeat = await add();
    expect(repeat.outcome).toBe('alreadyApplied');
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('incrementOrPushArrayItem with upsert: a repeat does not create a second parent', async () => {
    const coll = t.db.collection<Doc & { userId?: string }>(t.uniqueName('carts'));
    const add = () =>
      incrementOrPushArrayItem(coll, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        upsert: true,
        opId: 'first-click',
      });
    expect(await add()).toMatchObject({ outcome: 'pushed', created: true });
    expect((await add()).outcome).toBe('alreadyApplied');
    expect(await coll.countDocuments({ userId: 'u1' })).toBe(1);
  });

  it('limitReached does not record the opId: the same request can apply once the cap allows', async () => {
    const coll = await fresh({ _id: 'cart', courses: [{ courseId: 'c1', quantity: 3 }] });
    const add = () =>
      incrementOrPushArrayItem(coll, {
        filter: { _id: 'cart' },
        array: 'courses',
        match: { courseId: 'c1' },
        max: { quantity: 3 },
        opId: 'later',
      });
    expect((await add()).outcome).toBe('limitReached');
    expect((await coll.findOne({ _id: 'cart' }))?._opIds).toBeUndefined();
    await coll.updateOne({ _id: 'cart' }, { $set: { 'courses.0.quantity': 1 } });
    expect((await add()).outcome).toBe('incremented');
  });

  it('keeps only the newest opIdLog.size ids, in a configurable field', async () => {
    const coll = await fresh({ _id: 'p', stock: 10, log: { ops: [] } });
    for (const opId of ['a', 'b', 'c', 'd']) {
      await guardedDecrement(coll, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        opId,
        opIdLog: { field: 'log.ops', size: 3 },
      });
    }
    expect(await coll.findOne({ _id: 'p' })).toEqual({
      _id: 'p',
      stock: 6,
      log: { ops: ['b', 'c', 'd'] },
    });
    // 'a' fell out of the window: a replay of it applies again (documented).
    const replay = await guardedDecrement(coll, {
      filter: { _id: 'p' },
      field: 'stock',
      amount: 1,
      opId: 'a',
      opIdLog: { field: 'log.ops', size: 3 },
    });
    expect(replay.outcome).toBe('decremented');
  });
});

describe('opId validation (nothing sent)', () => {
  const base = { filter: { _id: 'p' }, field: 'stock', amount: 1 };
  it.each([
    ['opId', { ...base, opId: '' }],
    ['opId', { ...base, opId: 42 }],
    ['opId', { ...base, opId: 'x'.repeat(201) }],
    ['opIdLog', { ...base, opIdLog: { size: 5 } }],
    ['opIdLog', { ...base, opId: 'a', opIdLog: 'log' }],
    ['opIdLog.size', { ...base, opId: 'a', opIdLog: { size: 0 } }],
    ['opIdLog.size', { ...base, opId: 'a', opIdLog: { size: 2.5 } }],
    ['opIdLog.field', { ...base, opId: 'a', opIdLog: { field: '$ops' } }],
    ['opIdLog.keep', { ...base, opId: 'a', opIdLog: { keep: 3 } }],
    ['field', { ...base, field: '_opIds', opId: 'a' }],
  ])('invalid %s → InvalidArgumentError naming it', async (option, options) => {
    const coll = await fresh({ _id: 'p', stock: 5 });
    const error = await guardedDecrement(coll, options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
  });

  it('claimOnce refuses `set` fields that overlap the op id log', async () => {
    const coll = await fresh({ _id: 'o', status: 'pending' });
    const error = await claimOnce(coll, {
      filter: { _id: 'o' },
      field: 'status',
      to: 'paid',
      set: { '_opIds.0': 'x' },
      opId: 'a',
    }).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe('set._opIds.0');
    expect(t.commands.started).toHaveLength(0);
  });

  it('incrementOrPushArrayItem refuses an array path that is the op id log', async () => {
    const coll = await fresh({ _id: 'cart' });
    const error = await incrementOrPushArrayItem(coll, {
      filter: { _id: 'cart' },
      array: '_opIds',
      match: { courseId: 'c1' },
      opId: 'a',
    }).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe('array');
    expect(t.commands.started).toHaveLength(0);
  });
});

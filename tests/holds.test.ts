/**
 * Quantity holds (issue 13): holdQuantity, confirmHold, releaseHold, releaseExpiredHolds.
 * Outcomes, round trips, validation, transactions, and the races of the naive "decrement now,
 * cron restores later" design (a doubled sweeper, a sweeper racing a confirmation, a late one).
 */
import type { Collection, Document, MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../src/errors.js';
import { confirmHold, holdQuantity, releaseExpiredHolds, releaseHold } from '../src/holds.js';
import { naiveVersusSafe } from '../src/testing/index.js';
import { sleep } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';
import { race, useRaceClients } from './support/race.js';

interface Product {
  _id: string;
  stock?: number;
  sku?: string;
  _holds?: Document[];
  _holdsSettled?: Document[];
}

const t = useTestDatabase('holds');
const WORKERS = 20;
const clients = useRaceClients(WORKERS);
const LONG = 10 * 60_000;

async function products(docs: Product[]) {
  const name = t.uniqueName('products');
  const coll = t.db.collection<Product>(name);
  await t.db.createCollection(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

function on(client: MongoClient, coll: Collection<Product>): Collection<Product> {
  return client.db(coll.dbName).collection<Product>(coll.collectionName);
}

const get = async (coll: Collection<Product>, id = 'p1') => (await coll.findOne({ _id: id }))!;

/** A hold that has lapsed by the server's clock: ttl 1 ms, then a short wait. */
async function lapsedHold(coll: Collection<Product>, holdId: string, amount: number) {
  const held = await holdQuantity(coll, {
    filter: { _id: 'p1' },
    field: 'stock',
    amount,
    holdId,
    ttlMs: 1,
  });
  expect(held.outcome).toBe('held');
  await sleep(15);
}

const hold = (coll: Collection<Product>, holdId: string, amount: number, extra = {}) =>
  holdQuantity(coll, {
    filter: { _id: 'p1' },
    field: 'stock',
    amount,
    holdId,
    ttlMs: LONG,
    ...extra,
  });
const settle = { filter: { _id: 'p1' }, field: 'stock' } as const;

describe('holdQuantity outcomes, one findAndModify each', () => {
  it('held: takes the amount and records the hold with a server-made expiry', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    const result = await hold(coll, 'h1', 3);
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(result.outcome).toBe('held');
    if (result.outcome !== 'held') return;
    expect(result.hold).toMatchObject({ id: 'h1', amount: 3 });
    expect(result.hold.expiresAt).toBeInstanceOf(Date);
    expect(result.document.stock).toBe(7);
    const doc = await get(coll);
    expect(doc.stock).toBe(7);
    expect(doc._holds).toHaveLength(1);
    expect(doc._holds?.[0]).toMatchObject({ id: 'h1', amount: 3 });
    expect(doc._holds?.[0]?.expiresAt).toEqual(result.hold.expiresAt);
  });

  it('alreadyHeld: the same hold id again takes nothing more and reports the live hold', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await hold(coll, 'h1', 3);
    t.commands.reset();
    const again = await hold(coll, 'h1', 3);
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(again).toMatchObject({ outcome: 'alreadyHeld', hold: { id: 'h1', amount: 3 } });
    expect((await get(coll)).stock).toBe(7);
  });

  it('insufficient: not enough above the floor, with what is available, nothing taken', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    expect(await hold(coll, 'h1', 4, { floor: 2 })).toEqual({
      outcome: 'insufficient',
      available: 3,
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(await get(coll)).toEqual({ _id: 'p1', stock: 5 });
  });

  it('tooManyHolds: at maxHolds live holds a new one is refused until one settles', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await hold(coll, 'a', 1, { maxHolds: 2 });
    await hold(coll, 'b', 1, { maxHolds: 2 });
    t.commands.reset();
    expect(await hold(coll, 'c', 1, { maxHolds: 2 })).toEqual({
      outcome: 'tooManyHolds',
      maxHolds: 2,
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    await confirmHold(coll, { ...settle, holdId: 'a' });
    expect((await hold(coll, 'c', 1, { maxHolds: 2 })).outcome).toBe('held');
    expect((await get(coll)).stock).toBe(7);
  });

  it('notFound: no document matches', async () => {
    const coll = await products([]);
    expect(await hold(coll, 'h1', 1)).toEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('a filter without _id is one findAndModify too', async () => {
    const coll = await products([{ _id: 'p1', sku: 'A-1', stock: 2 }]);
    const result = await holdQuantity(coll, {
      filter: { sku: 'A-1' },
      field: 'stock',
      amount: 3,
      holdId: 'h',
      ttlMs: LONG,
    });
    expect(result).toEqual({ outcome: 'insufficient', available: 2 });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('lapsed holds come back inside the next hold call: a new buyer gets the units, no sweeper needed', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    await lapsedHold(coll, 'old', 5);
    t.commands.reset();
    const result = await hold(coll, 'new', 5);
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(result.outcome).toBe('held');
    const doc = await get(coll);
    expect(doc.stock).toBe(0);
    expect(doc._holds?.map((h) => h.id)).toEqual(['new']);
    expect(doc._holdsSettled).toEqual([
      expect.objectContaining({ id: 'old', amount: 5, outcome: 'expired' }),
    ]);
  });

  it('a refused hold still reclaims (and writes) the lapsed holds: insufficient reports what is available after the reclaim', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    await lapsedHold(coll, 'old', 3);
    t.commands.reset();
    expect(await hold(coll, 'big', 6)).toEqual({ outcome: 'insufficient', available: 5 });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const doc = await get(coll);
    expect(doc.stock).toBe(5);
    expect(doc._holds).toEqual([]);
    expect(doc._holdsSettled?.[0]).toMatchObject({ id: 'old', outcome: 'expired' });
  });

  it('alreadySettled: a hold id is used once; holding a confirmed, released or lapsed id again takes nothing', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await hold(coll, 'c', 1);
    await confirmHold(coll, { ...settle, holdId: 'c' });
    await hold(coll, 'r', 1);
    await releaseHold(coll, { ...settle, holdId: 'r' });
    await lapsedHold(coll, 'e', 1);
    t.commands.reset();
    expect(await hold(coll, 'c', 1)).toEqual({ outcome: 'alreadySettled', settled: 'confirmed' });
    expect(await hold(coll, 'r', 1)).toEqual({ outcome: 'alreadySettled', settled: 'released' });
    expect(await hold(coll, 'e', 1)).toEqual({ outcome: 'alreadySettled', settled: 'expired' });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify', 'findAndModify']);
    expect((await get(coll)).stock).toBe(9);
  });

  it('a field that is missing or holds no number: InvalidArgumentError on "field", nothing changed, one command', async () => {
    const coll = await products([{ _id: 'p1', stock: '5' as never }]);
    const error = await hold(coll, 'h', 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe('field');
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(await get(coll)).toEqual({ _id: 'p1', stock: '5' });
  });

  it('a holds field that is no array: InvalidArgumentError on "holdsField", nothing changed', async () => {
    const coll = await products([{ _id: 'p1', stock: 5, _holds: 'x' as never }]);
    const error = await hold(coll, 'h', 1).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe('holdsField');
    expect(await get(coll)).toEqual({ _id: 'p1', stock: 5, _holds: 'x' });
  });

  it('joins the caller transaction: an abort gives the stock back and forgets the hold', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      expect((await hold(coll, 'h', 2, { session })).outcome).toBe('held');
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await get(coll)).toEqual({ _id: 'p1', stock: 5 });
  });
});

describe('confirmHold and releaseHold outcomes, one findAndModify each', () => {
  it('confirmed: the amount stays taken, the record moves to the log; repeats are told so', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await hold(coll, 'h', 4);
    t.commands.reset();
    const result = await confirmHold(coll, { ...settle, holdId: 'h' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(result).toMatchObject({ outcome: 'confirmed', amount: 4, document: { stock: 6 } });
    const doc = await get(coll);
    expect(doc.stock).toBe(6);
    expect(doc._holds).toEqual([]);
    expect(doc._holdsSettled?.[0]).toMatchObject({ id: 'h', amount: 4, outcome: 'confirmed' });
    expect(await confirmHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'alreadyConfirmed',
      amount: 4,
    });
    expect(await releaseHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'alreadyConfirmed',
      amount: 4,
    });
    expect((await get(coll)).stock).toBe(6);
  });

  it('released: the amount goes back; repeats are told so', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await hold(coll, 'h', 4);
    t.commands.reset();
    const result = await releaseHold(coll, { ...settle, holdId: 'h' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(result).toMatchObject({ outcome: 'released', amount: 4, document: { stock: 10 } });
    expect(await releaseHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'alreadyReleased',
      amount: 4,
    });
    expect(await confirmHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'alreadyReleased',
      amount: 4,
    });
    expect((await get(coll)).stock).toBe(10);
  });

  it('expired: confirming a lapsed hold gives its amount back in the same update, and confirms nothing', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    await lapsedHold(coll, 'h', 4);
    expect((await get(coll)).stock).toBe(6);
    t.commands.reset();
    expect(await confirmHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'expired',
      amount: 4,
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect((await get(coll)).stock).toBe(10);
    expect(await releaseHold(coll, { ...settle, holdId: 'h' })).toEqual({
      outcome: 'expired',
      amount: 4,
    });
    expect((await get(coll)).stock).toBe(10);
  });

  it('unknownHold: an id never held; notFound: no document', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    expect(await confirmHold(coll, { ...settle, holdId: 'nope' })).toEqual({
      outcome: 'unknownHold',
    });
    expect(await releaseHold(coll, { ...settle, filter: { _id: 'p2' }, holdId: 'h' })).toEqual({
      outcome: 'notFound',
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
    expect(await get(coll)).toEqual({ _id: 'p1', stock: 10 });
  });

  it('the settled log is bounded by keepSettled: an id that left it answers unknownHold', async () => {
    const coll = await products([{ _id: 'p1', stock: 10 }]);
    for (const id of ['a', 'b', 'c']) {
      await hold(coll, id, 1, { keepSettled: 2 });
      await confirmHold(coll, { ...settle, holdId: id, keepSettled: 2 });
    }
    expect((await get(coll))._holdsSettled?.map((h) => h.id)).toEqual(['b', 'c']);
    expect(await confirmHold(coll, { ...settle, holdId: 'a', keepSettled: 2 })).toEqual({
      outcome: 'unknownHold',
    });
    expect((await get(coll)).stock).toBe(7);
  });
});

describe('releaseExpiredHolds', () => {
  it('reclaims every lapsed hold of every document in one update; a second sweep finds nothing', async () => {
    const coll = await products([
      { _id: 'p1', stock: 5 },
      { _id: 'p2', stock: 5 },
      { _id: 'p3', stock: 5 },
    ]);
    for (const id of ['p1', 'p2']) {
      await holdQuantity(coll, {
        filter: { _id: id },
        field: 'stock',
        amount: 2,
        holdId: 'x',
        ttlMs: 1,
      });
    }
    await holdQuantity(coll, {
      filter: { _id: 'p3' },
      field: 'stock',
      amount: 2,
      holdId: 'x',
      ttlMs: LONG,
    });
    await sleep(15);
    t.commands.reset();
    expect(await releaseExpiredHolds(coll, { field: 'stock' })).toEqual({
      matched: 2,
      reclaimed: 2,
    });
    expect(t.commands.names()).toEqual(['update']);
    expect(await releaseExpiredHolds(coll, { field: 'stock' })).toEqual({
      matched: 0,
      reclaimed: 0,
    });
    const docs = await coll.find({}, { sort: { _id: 1 } }).toArray();
    expect(docs.map((d) => d.stock)).toEqual([5, 5, 3]);
    expect(docs.map((d) => d._holds?.length)).toEqual([0, 0, 1]);
  });

  it('a filter narrows the sweep', async () => {
    const coll = await products([
      { _id: 'p1', sku: 'a', stock: 5 },
      { _id: 'p2', sku: 'b', stock: 5 },
    ]);
    for (const id of ['p1', 'p2']) {
      await holdQuantity(coll, {
        filter: { _id: id },
        field: 'stock',
        amount: 2,
        holdId: 'x',
        ttlMs: 1,
      });
    }
    await sleep(15);
    expect(await releaseExpiredHolds(coll, { field: 'stock', filter: { sku: 'a' } })).toEqual({
      matched: 1,
      reclaimed: 1,
    });
    expect((await coll.find({}, { sort: { _id: 1 } }).toArray()).map((d) => d.stock)).toEqual([
      5, 3,
    ]);
  });
});

describe('argument validation: InvalidArgumentError naming the option, nothing sent', () => {
  const valid = { filter: { _id: 'p1' }, field: 'stock', amount: 1, holdId: 'h', ttlMs: 1000 };
  it.each([
    ['options', undefined],
    ['filter', { ...valid, filter: {} }],
    ['field', { ...valid, field: '' }],
    ['field', { ...valid, field: '__proto__.x' }],
    ['amount', { ...valid, amount: 0 }],
    ['amount', { ...valid, amount: Number.NaN }],
    ['holdId', { ...valid, holdId: '' }],
    ['holdId', { ...valid, holdId: 7 }],
    ['holdId', { ...valid, holdId: 'x'.repeat(201) }],
    ['ttlMs', { ...valid, ttlMs: 0 }],
    ['ttlMs', { ...valid, ttlMs: 1.5 }],
    ['ttlMs', { ...valid, ttlMs: 11 * 365 * 24 * 3600 * 1000 }],
    ['floor', { ...valid, floor: Number.POSITIVE_INFINITY }],
    ['maxHolds', { ...valid, maxHolds: 0 }],
    ['maxHolds', { ...valid, maxHolds: 1001 }],
    ['keepSettled', { ...valid, keepSettled: 1001 }],
    ['holdsField', { ...valid, holdsField: 'stock' }],
    ['holdsField', { ...valid, holdsField: '_id' }],
    ['settledField', { ...valid, settledField: '_holds' }],
    ['session', { ...valid, session: 'tx' }],
    ['ttl', { ...valid, ttl: 5 }],
  ])('holdQuantity: invalid %s', async (option, options) => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const error = await holdQuantity(coll, options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
  });

  it.each([
    ['holdId', { ...settle, holdId: '' }],
    ['field', { filter: { _id: 'p1' }, holdId: 'h' }],
    ['amount', { ...settle, holdId: 'h', amount: 1 }],
    ['keepSettled', { ...settle, holdId: 'h', keepSettled: 0 }],
  ])('confirmHold and releaseHold: invalid %s', async (option, options) => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    for (const settleFn of [confirmHold, releaseHold]) {
      const error = await settleFn(coll, options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe(option);
    }
    expect(t.commands.started).toHaveLength(0);
  });

  it.each([
    ['field', {}],
    ['filter', { field: 'stock', filter: {} }],
    ['limit', { field: 'stock', limit: 5 }],
  ])('releaseExpiredHolds: invalid %s', async (option, options) => {
    const coll = await products([]);
    const error = await releaseExpiredHolds(coll, options as never).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
  });
});

describe('concurrency: exactly one winner per hold, never oversold', () => {
  it(`${WORKERS} buyers of 1 unit against a stock of 8: exactly 8 held, stock 0`, async () => {
    const coll = await products([{ _id: 'p1', stock: 8 }]);
    const { tally } = await race(WORKERS, (i) => hold(on(clients.all[i]!, coll), `h${i}`, 1));
    expect(tally).toEqual({ held: 8, insufficient: WORKERS - 8 });
    const doc = await get(coll);
    expect(doc.stock).toBe(0);
    expect(doc._holds).toHaveLength(8);
  });

  it('confirms and releases of one hold racing: exactly one wins, the others are told which', async () => {
    const coll = await products([{ _id: 'p1', stock: 8 }]);
    await hold(coll, 'h', 3);
    const { tally } = await race(
      WORKERS,
      (i): Promise<{ outcome: string }> =>
        i % 2 === 0
          ? confirmHold(on(clients.all[i]!, coll), { ...settle, holdId: 'h' })
          : releaseHold(on(clients.all[i]!, coll), { ...settle, holdId: 'h' }),
    );
    const wins = (tally.confirmed ?? 0) + (tally.released ?? 0);
    expect(wins).toBe(1);
    const stock = (await get(coll)).stock;
    expect(stock).toBe(tally.confirmed === 1 ? 5 : 8);
    expect((tally.alreadyConfirmed ?? 0) + (tally.alreadyReleased ?? 0)).toBe(WORKERS - 1);
  });
});

// The naive design: a decrement now, a reservation document, and a cron job that restores the
// reservations that lapsed (find them, give the stock back, mark them restored).
describe('the naive "decrement now, cron restores later" design fails; holds hold', () => {
  interface Reservation {
    _id: string;
    amount: number;
    status: 'held' | 'confirmed' | 'restored';
    expiresAt: Date;
  }
  interface State {
    products: Collection<Product>;
    reservations: Collection<Reservation>;
  }

  async function stateWithLapsedHold(): Promise<State> {
    const products_ = await products([{ _id: 'p1', stock: 5 }]);
    const reservations = t.db.collection<Reservation>(t.uniqueName('reservations'));
    // Naive: 5 units taken, a reservation that lapsed a second ago.
    await products_.updateOne({ _id: 'p1' }, { $inc: { stock: -5 } });
    await reservations.insertOne({
      _id: 'r1',
      amount: 5,
      status: 'held',
      expiresAt: new Date(Date.now() - 1000),
    });
    return { products: products_, reservations };
  }

  async function naiveCron(state: State, sync: () => Promise<void>) {
    const lapsed = await state.reservations
      .find({ status: 'held', expiresAt: { $lte: new Date() } })
      .toArray();
    await sync();
    for (const r of lapsed) {
      await state.products.updateOne({ _id: 'p1' }, { $inc: { stock: r.amount } });
      await state.reservations.updateOne({ _id: r._id }, { $set: { status: 'restored' } });
    }
    return 'swept';
  }

  async function naiveConfirm(state: State, sync: () => Promise<void>) {
    await sync();
    const done = await state.reservations.updateOne(
      { _id: 'r1', status: 'held' },
      { $set: { status: 'confirmed' } },
    );
    return done.modifiedCount === 1 ? 'confirmed' : 'refused';
  }

  /** Conservation: stock + live held + confirmed = initial (5), and stock ≤ 5. */
  async function conservation(state: State, run: 'naive' | 'safe', confirmedSafe: number) {
    const doc = await get(state.products);
    const stock = doc.stock as number;
    let held = 0;
    let confirmed = confirmedSafe;
    if (run === 'naive') {
      for (const r of await state.reservations.find().toArray()) {
        if (r.status === 'held') held += r.amount;
        if (r.status === 'confirmed') confirmed += r.amount;
      }
    } else {
      held = (doc._holds ?? []).reduce((sum, h) => sum + (h.amount as number), 0);
      confirmed = (doc._holdsSettled ?? [])
        .filter((h) => h.outcome === 'confirmed')
        .reduce((sum, h) => sum + (h.amount as number), 0);
    }
    const violations: string[] = [];
    if (stock + held + confirmed !== 5) {
      violations.push(`stock ${stock} + held ${held} + confirmed ${confirmed} ≠ 5 (oversold)`);
    }
    return violations;
  }

  it('two sweepers at once: the naive cron gives the lapsed units back twice (stock 10 of 5); releaseExpiredHolds from both gives them back once', async () => {
    await naiveVersusSafe({
      invariant: 'stock + held + confirmed = initial',
      calls: 2,
      setup: async (run) => {
        if (run === 'naive') return stateWithLapsedHold();
        const state = { products: await products([{ _id: 'p1', stock: 5 }]) } as State;
        await lapsedHold(state.products, 'r1', 5);
        return state;
      },
      naive: (_i, { state, sync }) => naiveCron(state, sync),
      safe: async (i, { state, sync }) => {
        await sync();
        return releaseExpiredHolds(on(clients.all[i]!, state.products), { field: 'stock' });
      },
      check: (state, _report, run) => conservation(state, run, 0),
    });
  });

  it('a sweeper racing a late payment: the naive cron restores units the payment just confirmed; confirmHold and the sweep have one winner', async () => {
    await naiveVersusSafe({
      invariant: 'stock + held + confirmed = initial',
      calls: 3,
      setup: async (run) => {
        if (run === 'naive') return stateWithLapsedHold();
        const state = { products: await products([{ _id: 'p1', stock: 5 }]) } as State;
        await lapsedHold(state.products, 'r1', 5);
        return state;
      },
      naive: (i, { state, sync }) => (i === 0 ? naiveConfirm(state, sync) : naiveCron(state, sync)),
      safe: async (i, { state, sync }) => {
        await sync();
        const coll = on(clients.all[i]!, state.products);
        return i === 0
          ? (await confirmHold(coll, { ...settle, holdId: 'r1' })).outcome
          : releaseExpiredHolds(coll, { field: 'stock' });
      },
      check: (state, _report, run) => conservation(state, run, 0),
    });
  });

  it('a late (or missing) sweeper: naive stock stays stranded and the next buyer is refused; the next holdQuantity reclaims and sells', async () => {
    const naive = await stateWithLapsedHold();
    // No cron has run yet: the lapsed units are invisible to the next buyer.
    const naiveBuyer = await naive.products.updateOne(
      { _id: 'p1', stock: { $gte: 5 } },
      { $inc: { stock: -5 } },
    );
    expect(naiveBuyer.modifiedCount).toBe(0);

    const coll = await products([{ _id: 'p1', stock: 5 }]);
    await lapsedHold(coll, 'r1', 5);
    expect((await hold(coll, 'next', 5)).outcome).toBe('held');
    expect(await confirmHold(coll, { ...settle, holdId: 'r1' })).toEqual({
      outcome: 'expired',
      amount: 5,
    });
    expect((await get(coll)).stock).toBe(0);
  });
});

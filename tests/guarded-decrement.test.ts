/**
 * guardedDecrement and guardedDecrementAll: outcomes, round trips, argument validation,
 * transactions, and the inventory races of seeds 002 and 003 (oversell, partial orders).
 */
import type { WithId } from 'mongodb';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { InvalidArgumentError } from '../src/errors.js';
import {
  type GuardedDecrementAllResult,
  type GuardedDecrementResult,
  guardedDecrement,
  guardedDecrementAll,
} from '../src/guarded-decrement.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

interface Product {
  _id: string;
  stock?: number;
  inventory?: { available: number };
}

const t = useTestDatabase('guarded_decrement');
const WORKERS = 50;
const race = useRaceClients(WORKERS);

async function products(docs: Product[]) {
  const name = t.uniqueName('products');
  const coll = t.db.collection<Product>(name);
  // Collections exist before any transaction uses them (MongoDB production considerations).
  await t.db.createCollection(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

async function stockOf(
  coll: { findOne(filter: { _id: string }): Promise<Product | null> },
  id: string,
) {
  return (await coll.findOne({ _id: id }))?.stock;
}

describe('guardedDecrement outcomes', () => {
  it('takes the amount and returns the document after', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const result = await guardedDecrement(coll, {
      filter: { _id: 'p1' },
      field: 'stock',
      amount: 3,
    });
    expect(result).toEqual({ outcome: 'decremented', document: { _id: 'p1', stock: 2 } });
  });

  it('may take everything down to the floor exactly', async () => {
    const coll = await products([{ _id: 'p1', stock: 3 }]);
    expect(
      (await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 3 })).outcome,
    ).toBe('decremented');
    expect(await stockOf(coll, 'p1')).toBe(0);
  });

  it('more than remains: insufficient, with what is available, and nothing changes', async () => {
    const coll = await products([{ _id: 'p1', stock: 2 }]);
    const result = await guardedDecrement(coll, {
      filter: { _id: 'p1' },
      field: 'stock',
      amount: 3,
    });
    expect(result).toEqual({ outcome: 'insufficient', available: 2 });
    expect(await stockOf(coll, 'p1')).toBe(2);
  });

  it('respects a floor: only what is above it can be taken', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const options = { filter: { _id: 'p1' }, field: 'stock', floor: 2 };
    expect(await guardedDecrement(coll, { ...options, amount: 4 })).toEqual({
      outcome: 'insufficient',
      available: 3,
    });
    expect((await guardedDecrement(coll, { ...options, amount: 3 })).outcome).toBe('decremented');
    expect(await stockOf(coll, 'p1')).toBe(2);
  });

  it('decrements a dotted field', async () => {
    const coll = await products([{ _id: 'p1', inventory: { available: 4 } }]);
    const result = await guardedDecrement(coll, {
      filter: { _id: 'p1' },
      field: 'inventory.available',
      amount: 1,
    });
    expect(result).toEqual({
      outcome: 'decremented',
      document: { _id: 'p1', inventory: { available: 3 } },
    });
  });

  it('a non-numeric or missing field is insufficient with 0 available, never decremented', async () => {
    // A string stock (e.g. written by a form without conversion) must never count as stock.
    const coll = await products([
      { _id: 'text', stock: '10' as unknown as number },
      { _id: 'none' },
    ]);
    for (const id of ['text', 'none']) {
      expect(
        await guardedDecrement(coll, { filter: { _id: id }, field: 'stock', amount: 1 }),
      ).toEqual({
        outcome: 'insufficient',
        available: 0,
      });
    }
    expect(await stockOf(coll, 'text')).toBe('10');
  });

  it('no matching document: notFound', async () => {
    const coll = await products([]);
    expect(
      await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
    ).toEqual({
      outcome: 'notFound',
    });
  });
});

describe('guardedDecrement round trips', () => {
  it('success: exactly one findAndModify', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1 });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('insufficient and notFound: one findAndModify, then one find', async () => {
    const coll = await products([{ _id: 'p1', stock: 0 }]);
    await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1 });
    await guardedDecrement(coll, { filter: { _id: 'p2' }, field: 'stock', amount: 1 });
    expect(t.commands.names()).toEqual(['findAndModify', 'find', 'findAndModify', 'find']);
  });
});

describe('guardedDecrement argument validation', () => {
  const valid = { filter: { _id: 'p1' }, field: 'stock', amount: 1 };
  it.each([
    ['options', undefined],
    ['filter', { ...valid, filter: {} }],
    ['filter', { ...valid, filter: null }],
    ['field', { ...valid, field: '' }],
    ['field', { ...valid, field: 'stock.$' }],
    ['amount', { ...valid, amount: 0 }],
    ['amount', { ...valid, amount: -3 }],
    ['amount', { ...valid, amount: Number.POSITIVE_INFINITY }],
    ['amount', { ...valid, amount: '3' }],
    ['floor', { ...valid, floor: Number.NaN }],
    ['floor', { ...valid, floor: '0' }],
    ['session', { ...valid, session: 'tx' }],
    ['amout', { ...valid, amout: 2 }],
  ])('invalid %s → InvalidArgumentError naming it, nothing sent', async (option, options) => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const error = await guardedDecrement(coll, options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
    expect(await stockOf(coll, 'p1')).toBe(5);
  });
});

describe('guardedDecrement in a transaction', () => {
  it('joins the caller transaction: an abort gives the stock back', async () => {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await guardedDecrement(coll, {
        filter: { _id: 'p1' },
        field: 'stock',
        amount: 2,
        session,
      });
      expect(result).toEqual({ outcome: 'decremented', document: { _id: 'p1', stock: 3 } });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await stockOf(coll, 'p1')).toBe(5);
  });
});

describe('the last units (seed 002/003): stock 5, two concurrent orders of 3', () => {
  async function twoOrders(
    order: (client: (typeof race.all)[number], name: string) => Promise<boolean>,
  ) {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const results = await Promise.all(
      race.all.slice(0, 2).map((client) => order(client, coll.collectionName)),
    );
    return { succeeded: results.filter(Boolean).length, stock: await stockOf(coll, 'p1') };
  }

  it('naive "read stock, check, then $inc" oversells: both orders succeed, stock goes negative', async () => {
    const allRead = barrier(2);
    const outcome = await twoOrders(async (client, name) => {
      const coll = client.db(t.db.databaseName).collection<Product>(name);
      const product = await coll.findOne({ _id: 'p1' });
      await allRead();
      if ((product?.stock as number) < 3) return false;
      await coll.updateOne({ _id: 'p1' }, { $inc: { stock: -3 } });
      return true;
    });
    expect(outcome).toEqual({ succeeded: 2, stock: -1 });
  });

  it('guardedDecrement: exactly one order succeeds and the stock ends at 2', async () => {
    const ready = barrier(2);
    const outcome = await twoOrders(async (client, name) => {
      const coll = client.db(t.db.databaseName).collection<Product>(name);
      await ready();
      const result = await guardedDecrement(coll, {
        filter: { _id: 'p1' },
        field: 'stock',
        amount: 3,
      });
      return result.outcome === 'decremented';
    });
    expect(outcome).toEqual({ succeeded: 1, stock: 2 });
  });

  it('50 buyers of 1 unit against a stock of 20: exactly 20 succeed, 30 are told insufficient, stock 0', async () => {
    const coll = await products([{ _id: 'p1', stock: 20 }]);
    const ready = barrier(WORKERS);
    const results = await Promise.all(
      race.all.map(async (client) => {
        await ready();
        return guardedDecrement(
          client.db(t.db.databaseName).collection<Product>(coll.collectionName),
          {
            filter: { _id: 'p1' },
            field: 'stock',
            amount: 1,
          },
        );
      }),
    );
    expect(results.filter((r) => r.outcome === 'decremented')).toHaveLength(20);
    expect(results.filter((r) => r.outcome === 'insufficient')).toHaveLength(30);
    expect(await stockOf(coll, 'p1')).toBe(0);
  });
});

describe('guardedDecrementAll in its own transaction (client)', () => {
  const items = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ filter: { _id: `p${i}` }, amount: 1 }));
  const stocked = (n: number, stock: number) =>
    Array.from({ length: n }, (_, i) => ({ _id: `p${i}`, stock }));

  it.each([1, 10, 50])(
    '%i items: decremented in exactly 2 round trips (update, commitTransaction)',
    async (n) => {
      const coll = await products(stocked(n, 2));
      const result = await guardedDecrementAll(coll, {
        client: t.client,
        field: 'stock',
        items: items(n),
      });
      expect(result).toEqual({ outcome: 'decremented' });
      expect(t.commands.names()).toEqual(['update', 'commitTransaction']);
      const stocks = (await coll.find().toArray()).map((p) => p.stock);
      expect(stocks).toEqual(Array(n).fill(1));
    },
  );

  it('lists every short item, takes nothing, in 3 round trips (update, abortTransaction, aggregate)', async () => {
    const coll = await products([
      { _id: 'a', stock: 5 },
      { _id: 'b', stock: 1 },
      { _id: 'c', stock: 0 },
    ]);
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [
        { filter: { _id: 'a' }, amount: 2 },
        { filter: { _id: 'b' }, amount: 2 },
        { filter: { _id: 'c' }, amount: 1 },
      ],
    });
    expect(result).toEqual({
      outcome: 'insufficient',
      shortages: [
        { index: 1, requested: 2, available: 1 },
        { index: 2, requested: 1, available: 0 },
      ],
    });
    expect(t.commands.names()).toEqual(['update', 'abortTransaction', 'aggregate']);
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([5, 1, 0]);
  });

  it('items whose documents are missing: notFound with their indexes, nothing taken', async () => {
    const coll = await products([{ _id: 'a', stock: 5 }]);
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [
        { filter: { _id: 'x' }, amount: 1 },
        { filter: { _id: 'a' }, amount: 1 },
        { filter: { _id: 'y' }, amount: 1 },
      ],
    });
    expect(result).toEqual({ outcome: 'notFound', missing: [0, 2] });
    expect(await stockOf(coll, 'a')).toBe(5);
  });

  it('two items on one document are served in order: of 3 + 3 from a stock of 5 the second is short (2 left)', async () => {
    const coll = await products([{ _id: 'a', stock: 5 }]);
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [
        { filter: { _id: 'a' }, amount: 3 },
        { filter: { _id: 'a' }, amount: 3 },
      ],
    });
    expect(result).toEqual({
      outcome: 'insufficient',
      shortages: [{ index: 1, requested: 3, available: 2 }],
    });
    expect(await stockOf(coll, 'a')).toBe(5);
  });

  it('respects the floor for every item', async () => {
    const coll = await products([
      { _id: 'a', stock: 3 },
      { _id: 'b', stock: 3 },
    ]);
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      floor: 1,
      items: [
        { filter: { _id: 'a' }, amount: 2 },
        { filter: { _id: 'b' }, amount: 3 },
      ],
    });
    expect(result).toEqual({
      outcome: 'insufficient',
      shortages: [{ index: 1, requested: 3, available: 2 }],
    });
  });
});

describe('guardedDecrementAll in the caller transaction (session)', () => {
  it('decremented with an aggregate and one update; the caller commits', async () => {
    const coll = await products([
      { _id: 'a', stock: 2 },
      { _id: 'b', stock: 2 },
    ]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await guardedDecrementAll(coll, {
        session,
        field: 'stock',
        items: [
          { filter: { _id: 'a' }, amount: 1 },
          { filter: { _id: 'b' }, amount: 2 },
        ],
      });
      expect(result).toEqual({ outcome: 'decremented' });
      expect(t.commands.names()).toEqual(['aggregate', 'update']);
      await session.commitTransaction();
    } finally {
      await session.endSession();
    }
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([1, 0]);
  });

  it('a shortage leaves no decrement behind, and the caller can still commit its other work', async () => {
    const coll = await products([
      { _id: 'a', stock: 5 },
      { _id: 'b', stock: 0 },
    ]);
    const log = t.db.collection<{ _id: string }>(t.uniqueName('log'));
    await t.db.createCollection(log.collectionName);
    t.commands.reset();
    const session = t.client.startSession();
    try {
      session.startTransaction();
      await log.insertOne({ _id: 'attempt' }, { session });
      const result = await guardedDecrementAll(coll, {
        session,
        field: 'stock',
        items: [
          { filter: { _id: 'a' }, amount: 1 },
          { filter: { _id: 'b' }, amount: 1 },
        ],
      });
      expect(result).toEqual({
        outcome: 'insufficient',
        shortages: [{ index: 1, requested: 1, available: 0 }],
      });
      await session.commitTransaction();
    } finally {
      await session.endSession();
    }
    expect(t.commands.names()).toEqual(['insert', 'aggregate', 'commitTransaction']);
    expect(await log.findOne({ _id: 'attempt' })).toEqual({ _id: 'attempt' });
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([5, 0]);
  });
});

describe('guardedDecrementAll argument validation', () => {
  const valid = { field: 'stock', items: [{ filter: { _id: 'a' }, amount: 1 }] };
  it.each([
    ['items', { ...valid, items: [] }],
    ['items', { ...valid, items: 'a' }],
    ['items.0', { ...valid, items: [null] }],
    ['items.0.filter', { ...valid, items: [{ filter: {}, amount: 1 }] }],
    [
      'items.1.amount',
      {
        ...valid,
        items: [
          { filter: { _id: 'a' }, amount: 1 },
          { filter: { _id: 'b' }, amount: 0 },
        ],
      },
    ],
    ['items.0.qty', { ...valid, items: [{ filter: { _id: 'a' }, qty: 1 }] }],
    ['field', { ...valid, field: '$stock' }],
    ['floor', { ...valid, floor: Number.NaN }],
    ['client', { ...valid }],
    ['client', { ...valid, client: {} }],
  ])('invalid %s → InvalidArgumentError naming it, nothing sent', async (option, options) => {
    const coll = await products([{ _id: 'a', stock: 5 }]);
    const error = await guardedDecrementAll(coll, options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
  });

  it('a session without a transaction, or both session and client, are refused before sending anything', async () => {
    const coll = await products([{ _id: 'a', stock: 5 }]);
    const session = t.client.startSession();
    try {
      const outside = await guardedDecrementAll(coll, { ...valid, session }).catch(
        (e: unknown) => e,
      );
      expect((outside as InvalidArgumentError).option).toBe('session');
      session.startTransaction();
      const both = await guardedDecrementAll(coll, {
        ...valid,
        session,
        client: t.client,
      } as never).catch((e: unknown) => e);
      expect((both as InvalidArgumentError).option).toBe('client');
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(t.commands.names().filter((name) => name !== 'abortTransaction')).toEqual([]);
  });
});

describe('competing multi-item orders for the last units (seed 003)', () => {
  const lastUnits = () =>
    products([
      { _id: 'a', stock: 1 },
      { _id: 'b', stock: 1 },
    ]);

  it('naive item-by-item decrements leave partial orders behind: both fail, yet stock was taken', async () => {
    const coll = await lastUnits();
    const halfway = barrier(2);
    const orders = [
      ['a', 'b'],
      ['b', 'a'],
    ];
    const results = await Promise.all(
      orders.map(async (ids, i) => {
        const mine = race.all[i]!.db(t.db.databaseName).collection<Product>(coll.collectionName);
        const first = await guardedDecrement(mine, {
          filter: { _id: ids[0]! },
          field: 'stock',
          amount: 1,
        });
        await halfway();
        const second = await guardedDecrement(mine, {
          filter: { _id: ids[1]! },
          field: 'stock',
          amount: 1,
        });
        return first.outcome === 'decremented' && second.outcome === 'decremented';
      }),
    );
    expect(results).toEqual([false, false]);
    // Neither order went through, but each took one unit: 2 units gone for nothing.
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([0, 0]);
  });

  it('guardedDecrementAll: exactly one order gets both units, the other is told what is short', async () => {
    const coll = await lastUnits();
    const ready = barrier(2);
    const orders = [
      ['a', 'b'],
      ['b', 'a'],
    ];
    const results = await Promise.all(
      orders.map(async (ids, i) => {
        const client = race.all[i]!;
        await ready();
        return guardedDecrementAll(
          client.db(t.db.databaseName).collection<Product>(coll.collectionName),
          {
            client,
            field: 'stock',
            items: ids.map((id) => ({ filter: { _id: id }, amount: 1 })),
          },
        );
      }),
    );
    expect(results.filter((r) => r.outcome === 'decremented')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'insufficient')).toHaveLength(1);
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([0, 0]);
  });

  it('20 concurrent orders of (a, b) against 5 of each: exactly 5 succeed and stock never splits', async () => {
    const coll = await products([
      { _id: 'a', stock: 5 },
      { _id: 'b', stock: 5 },
    ]);
    const ready = barrier(20);
    const results = await Promise.all(
      race.all.slice(0, 20).map(async (client, i) => {
        await ready();
        const ids = i % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
        return guardedDecrementAll(
          client.db(t.db.databaseName).collection<Product>(coll.collectionName),
          {
            client,
            field: 'stock',
            items: ids.map((id) => ({ filter: { _id: id }, amount: 1 })),
            transaction: { maxAttempts: 200 },
          },
        );
      }),
    );
    expect(results.filter((r) => r.outcome === 'decremented')).toHaveLength(5);
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([0, 0]);
  });
});

describe('guardedDecrement types', () => {
  it('narrows on outcome', () => {
    const { outcome, document, available } = {} as GuardedDecrementResult<Product>;
    expectTypeOf(outcome).toEqualTypeOf<'decremented' | 'insufficient' | 'notFound'>();
    expectTypeOf(document).toEqualTypeOf<WithId<Product> | undefined>();
    expectTypeOf(available).toEqualTypeOf<number | undefined>();
    const all = {} as GuardedDecrementAllResult;
    if (all.outcome === 'insufficient') expectTypeOf(all.shortages[0]!.available).toBeNumber();
    if (all.outcome === 'notFound') expectTypeOf(all.missing).toEqualTypeOf<readonly number[]>();
  });

  it('requires exactly one of session or client', () => {
    type Options = Parameters<typeof guardedDecrementAll>[1];
    expectTypeOf<{ field: string; items: [] }>().not.toMatchTypeOf<Options>();
  });
});

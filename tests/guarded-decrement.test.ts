/**
 * guardedDecrement and guardedDecrementAll: outcomes, round trips, argument validation,
 * transactions, and the inventory races of seeds 002 and 003 (oversell, partial orders).
 */
import {
  type ClientSession,
  type Collection,
  type CommandSucceededEvent,
  Decimal128,
  type Document,
  Double,
  Int32,
  Long,
  type MongoClient,
} from 'mongodb';
import { describe, expect, it } from 'vitest';
import { GiveUpReason, InvalidArgumentError, isRetryBudgetExhaustedError } from '../src/errors.js';
import {
  type GuardedDecrementAllResult,
  guardedDecrement,
  guardedDecrementAll,
} from '../src/guarded-decrement.js';
import { rejectionOf } from './support/async.js';
import { failCommand, useFailPointClients } from './support/failpoints.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, race, useRaceClients } from './support/race.js';

interface Product {
  _id: string;
  stock?: number;
  inventory?: { available: number };
  name?: string;
}

const t = useTestDatabase('guarded_decrement');
const WORKERS = 50;
const clients = useRaceClients(WORKERS);

async function products(docs: Product[]) {
  const name = t.uniqueName('products');
  const coll = t.db.collection<Product>(name);
  // Collections exist before any transaction uses them (MongoDB production considerations).
  await t.db.createCollection(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

/** The same collection, reached through another client (the one a fail point targets). */
function appCollection(client: MongoClient, coll: Collection<Product>): Collection<Product> {
  return client.db(coll.dbName).collection<Product>(coll.collectionName);
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

  it('the one command writes and returns exactly what $inc would: each numeric type, an int overflowing to a long, the field in its place, a top-level field through $set and a dotted one through $replaceWith', async () => {
    const cases: [string, Document, number, number][] = [
      ['stock', { _id: 'a', name: 'x', stock: new Int32(5), tail: 1 }, 2, 0],
      ['stock', { _id: 'b', name: 'x', stock: Long.fromNumber(2 ** 40), tail: 1 }, 3, 0],
      ['stock', { _id: 'c', name: 'x', stock: new Double(2.5), tail: 1 }, 0.5, 0],
      ['stock', { _id: 'd', name: 'x', stock: Decimal128.fromString('1.10'), tail: 1 }, 1, 0],
      ['stock', { _id: 'e', name: 'x', stock: new Int32(-2147483648), tail: 1 }, 1, -1e10],
      ['inventory.available', { _id: 'f', inventory: { held: 1, available: new Int32(4) } }, 1, 0],
    ];
    const coll = await products([]);
    const copy = t.db.collection(`${coll.collectionName}_inc`);
    const exact = { promoteLongs: false, promoteValues: false } as const;
    for (const [field, stored, amount, floor] of cases) {
      await coll.insertOne(stored as never);
      await copy.insertOne(stored);
      t.commands.reset();
      const result = await guardedDecrement(coll as unknown as Collection<Document>, {
        filter: { _id: stored._id },
        field,
        amount,
        floor,
      });
      const command = t.commands.started[0]?.command as Document;
      expect(Object.keys(command.update[0])).toEqual([
        field.includes('.') ? '$replaceWith' : '$set',
      ]);
      await copy.updateOne({ _id: stored._id }, { $inc: { [field]: -amount } });
      const expected = await copy.findOne({ _id: stored._id });
      expect(result).toEqual({ outcome: 'decremented', document: expected });
      const written = await coll.findOne({ _id: stored._id } as never, exact);
      const byInc = await copy.findOne({ _id: stored._id }, exact);
      expect(written).toStrictEqual(byInc);
      expect(JSON.stringify(Object.keys(written ?? {}))).toBe(
        JSON.stringify(Object.keys(byInc ?? {})),
      );
    }
  });

  it('a missing or non-numeric field is reported, not disguised as insufficient: InvalidArgumentError on "field" naming what was found, nothing decremented, still 1 round trip', async () => {
    // A misspelt field (`stok`) or a stock written as a string by a form must not read as "out
    // of stock": the guard can never match such a document, whatever the stock really is.
    const coll = await products([
      { _id: 'text', stock: '10' as unknown as number },
      { _id: 'null', stock: null as unknown as number },
      { _id: 'nan', stock: Number.NaN },
      { _id: 'dec-nan', stock: Decimal128.fromString('NaN') as unknown as number },
      { _id: 'through-array', inventory: [{ available: 0 }] as unknown as { available: number } },
      { _id: 'ok', stock: 10 },
    ]);
    const cases: [id: string, field: string, found: string][] = [
      ['ok', 'stok', 'lacks it'],
      ['text', 'stock', 'holds the string "10"'],
      ['null', 'stock', 'holds null'],
      ['nan', 'stock', 'holds NaN'],
      ['dec-nan', 'stock', 'holds a Decimal128 (NaN)'],
      ['through-array', 'inventory.available', 'holds an array'],
    ];
    for (const [id, field, found] of cases) {
      for (const opId of [undefined, `op-${id}`]) {
        t.commands.reset();
        const error = await rejectionOf(
          guardedDecrement(coll, {
            filter: { _id: id },
            field,
            amount: 1,
            ...(opId === undefined ? {} : { opId }),
          }),
        );
        expect(error).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).option).toBe('field');
        expect((error as Error).message).toBe(
          `guardedDecrement: option "field" names "${field}", but the matched document ${found}: nothing was decremented. Check the field name, or store a number (int, long, double or Decimal128) in that field`,
        );
        // The update's own projection found it: no extra round trip.
        expect(t.commands.names()).toEqual(['findAndModify']);
      }
    }
    expect(await stockOf(coll, 'text')).toBe('10');
    expect(await stockOf(coll, 'ok')).toBe(10);
    expect(
      (await coll.find({}, { projection: { _opIds: 1 } }).toArray()).every((d) => !('_opIds' in d)),
    ).toBe(true);
    // A number that is merely too small stays a business outcome.
    expect(
      await guardedDecrement(coll, { filter: { _id: 'ok' }, field: 'stock', amount: 11 }),
    ).toEqual({ outcome: 'insufficient', available: 10 });
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

  it('calls with the same field, amount and floor send one kept command, frozen; another amount, floor or field builds another; with an opId each call builds its own', async () => {
    const coll = await products([
      { _id: 'p1', stock: 50 },
      { _id: 'p2', stock: 50 },
    ]);
    const sent = async (options: Document) => {
      t.commands.reset();
      // The outcome does not matter here (`other` is missing: InvalidArgumentError), the command does.
      await guardedDecrement(coll as unknown as Collection<Document>, options as never).catch(
        () => undefined,
      );
      const command = t.commands.started[0]?.command as Document;
      return { update: command.update as Document[], fields: command.fields as Document };
    };
    const take = { field: 'stock', amount: 1 };
    const first = await sent({ ...take, filter: { _id: 'p1' } });
    const again = await sent({ ...take, filter: { _id: 'p2' } });
    expect(again.update).toBe(first.update);
    expect(again.fields).toBe(first.fields);
    expect(Object.isFrozen(first.update)).toBe(true);
    expect(Object.isFrozen(first.update[0]?.$set.stock.$cond[0])).toBe(true);
    expect(Object.isFrozen(first.fields.r.$cond[2])).toBe(true);
    for (const other of [{ amount: 2 }, { floor: 1 }, { field: 'other' }]) {
      const changed = await sent({ ...take, ...other, filter: { _id: 'p1' } });
      expect(changed.update, JSON.stringify(other)).not.toBe(first.update);
    }
    const once = await sent({ ...take, filter: { _id: 'p1' }, opId: 'a' });
    const twice = await sent({ ...take, filter: { _id: 'p1' }, opId: 'b' });
    expect(twice.update).not.toBe(once.update);
    expect(Object.isFrozen(once.update)).toBe(false);
    expect(await stockOf(coll, 'p1')).toBe(44);
  });

  it('at most 256 commands are kept: the oldest is dropped first and built again when needed', async () => {
    const coll = await products([{ _id: 'p1', stock: 1 }]);
    const updateOf = async (amount: number) => {
      t.commands.reset();
      await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount });
      const command = t.commands.started[0]?.command as Document;
      return command.update as Document[];
    };
    // Amounts no other test uses, so that the kept commands are this test's own.
    const amounts = Array.from({ length: 257 }, (_, i) => 1000.5 + i);
    const first = new Map<number, Document[]>();
    for (const amount of amounts) first.set(amount, await updateOf(amount));
    // 256 commands newer than the oldest: the newest is kept, the oldest was dropped.
    const newest = amounts[256] as number;
    expect(await updateOf(newest)).toBe(first.get(newest));
    const oldest = amounts[0] as number;
    const rebuilt = await updateOf(oldest);
    expect(rebuilt).not.toBe(first.get(oldest));
    expect(rebuilt).toEqual(first.get(oldest));
    expect(await stockOf(coll, 'p1')).toBe(1);
  });

  it('insufficient, notFound, alreadyApplied: the same one findAndModify, nothing else', async () => {
    const coll = await products([{ _id: 'p1', stock: 0 }]);
    expect(
      await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
    ).toEqual({ outcome: 'insufficient', available: 0 });
    expect(
      await guardedDecrement(coll, { filter: { _id: 'p2' }, field: 'stock', amount: 1 }),
    ).toEqual({ outcome: 'notFound' });
    await coll.updateOne({ _id: 'p1' }, { $set: { stock: 1 } });
    const once = { filter: { _id: 'p1' }, field: 'stock', amount: 1, opId: 'r1' } as const;
    expect((await guardedDecrement(coll, once)).outcome).toBe('decremented');
    await coll.updateOne({ _id: 'p1' }, { $set: { stock: 5 } });
    t.commands.reset();
    expect(await guardedDecrement(coll, once)).toEqual({
      outcome: 'alreadyApplied',
      document: { _id: 'p1', stock: 5, _opIds: ['r1'] },
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    // An opId that is new, on a document without enough: insufficient, still one command.
    expect(await guardedDecrement(coll, { ...once, opId: 'r2', amount: 6 })).toEqual({
      outcome: 'insufficient',
      available: 5,
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
  });

  it('a failed call sends the document back only with alreadyApplied: insufficient returns the verdicts and the field, not the document', async () => {
    const coll = await products([{ _id: 'p1', stock: 0, name: 'x'.repeat(1000) }]);
    const replies: unknown[] = [];
    const listener = (event: CommandSucceededEvent) => {
      if (event.commandName === 'findAndModify') replies.push(event.reply);
    };
    t.client.on('commandSucceeded', listener);
    try {
      await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1 });
      await guardedDecrement(coll, { filter: { _id: 'p1' }, field: 'stock', amount: 1, opId: 'r' });
    } finally {
      t.client.off('commandSucceeded', listener);
    }
    expect(replies.map((reply) => (reply as Document).value)).toEqual([
      { r: { facts: { current: 0 } } },
      { r: { verdicts: { applied: false }, facts: { current: 0 } } },
    ]);
  });

  it('a filter without an _id equality keeps the guard in the filter: of two matching documents the one with enough is taken; failure then costs one find more', async () => {
    // Moving the guard into the update would let the filter pick a document that has too
    // little while another has enough, and refuse the order.
    const coll = await products([
      { _id: 'a', name: 'tee', stock: 0 },
      { _id: 'b', name: 'tee', stock: 4 },
    ]);
    const result = await guardedDecrement(coll, {
      filter: { name: 'tee' },
      field: 'stock',
      amount: 3,
    });
    expect(result).toEqual({
      outcome: 'decremented',
      document: { _id: 'b', name: 'tee', stock: 1 },
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    t.commands.reset();
    expect(
      await guardedDecrement(coll, { filter: { name: 'tee' }, field: 'stock', amount: 3 }),
    ).toEqual({ outcome: 'insufficient', available: 0 });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
    // The same two commands for an _id that is not a plain equality.
    t.commands.reset();
    expect(
      await guardedDecrement(coll, { filter: { _id: { $in: ['a'] } }, field: 'stock', amount: 3 }),
    ).toEqual({ outcome: 'insufficient', available: 0 });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });

  it('without an _id equality, the failure read fetches the field alone without an opId; with one, the document and the server verdict', async () => {
    const coll = await products([{ _id: 'p1', stock: 0, name: 'x'.repeat(1000) }]);
    const filter = { name: 'x'.repeat(1000) };
    await guardedDecrement(coll, { filter, field: 'stock', amount: 1 });
    await guardedDecrement(coll, { filter, field: 'stock', amount: 1, opId: 'r1' });
    const reads = t.commands.started.filter((event) => event.commandName === 'find');
    expect(reads.map((event) => event.command.projection)).toEqual([
      { stock: 1 },
      expect.objectContaining({ document: '$$ROOT' }),
    ]);
  });
});

describe('guardedDecrement writes nothing when it fails', () => {
  // mongod skips the storage write of an update whose result is byte-identical to the stored
  // document (pipeline_executor.cpp "Check for noop"; the update stage returns before its
  // WriteUnitOfWork): no oplog entry, and nothing for another transaction to conflict with.
  // The offline server's behaviour is pinned in tests/conformance/noop-updates.test.ts.
  it('a refused call inside a transaction leaves the document free: another transaction then updates it and commits, and so does the first', async () => {
    const coll = await products([{ _id: 'p1', stock: 1, name: 'tee' }]);
    const first = t.client.startSession();
    const second = t.client.startSession();
    try {
      first.startTransaction();
      for (const opId of [undefined, 'r1']) {
        expect(
          await guardedDecrement(coll, {
            filter: { _id: 'p1' },
            field: 'stock',
            amount: 2,
            session: first,
            ...(opId === undefined ? {} : { opId }),
          }),
        ).toEqual({ outcome: 'insufficient', available: 1 });
      }
      second.startTransaction();
      // Had the refused call written (even the same values), this would be a WriteConflict.
      await coll.updateOne({ _id: 'p1' }, { $set: { name: 'shirt' } }, { session: second });
      await second.commitTransaction();
      await first.commitTransaction();
    } finally {
      await first.endSession();
      await second.endSession();
    }
    expect(await coll.findOne({ _id: 'p1' })).toEqual({ _id: 'p1', stock: 1, name: 'shirt' });
  });

  it('a refused call in a transaction that starts after another transaction wrote the document: no WriteConflict for it', async () => {
    const coll = await products([{ _id: 'p1', stock: 1, name: 'tee' }]);
    const writer = t.client.startSession();
    const reader = t.client.startSession();
    try {
      writer.startTransaction();
      await coll.updateOne({ _id: 'p1' }, { $set: { name: 'shirt' } }, { session: writer });
      reader.startTransaction();
      // Its snapshot predates the writer's commit: it sees stock 1, refuses, and writes nothing.
      expect(
        await guardedDecrement(coll, {
          filter: { _id: 'p1' },
          field: 'stock',
          amount: 2,
          session: reader,
        }),
      ).toEqual({ outcome: 'insufficient', available: 1 });
      await writer.commitTransaction();
      await reader.commitTransaction();
    } finally {
      await writer.endSession();
      await reader.endSession();
    }
  });

  it('a refused call leaves the document byte for byte as it was (types, field order, op log)', async () => {
    const coll = await products([]);
    const stored = {
      _id: 'p1',
      inventory: { available: Long.fromNumber(2), reserved: new Int32(1) },
      name: 'tee',
      _opIds: ['old'],
    };
    await coll.insertOne(stored as never);
    const result = await guardedDecrement(coll, {
      filter: { _id: 'p1' },
      field: 'inventory.available',
      amount: 3,
      opId: 'r1',
    });
    expect(result).toEqual({ outcome: 'insufficient', available: 2 });
    const raw = await t.db
      .collection(coll.collectionName)
      .findOne({ _id: 'p1' as never }, { promoteLongs: false, promoteValues: false });
    expect(raw).toStrictEqual(stored);
    expect(Object.keys(raw ?? {})).toEqual(['_id', 'inventory', 'name', '_opIds']);
    expect(raw?.inventory.available).toBeInstanceOf(Long);
    expect(Object.keys(raw?.inventory ?? {})).toEqual(['available', 'reserved']);
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
    order: (client: (typeof clients.all)[number], name: string) => Promise<boolean>,
  ) {
    const coll = await products([{ _id: 'p1', stock: 5 }]);
    const results = await Promise.all(
      clients.all.slice(0, 2).map((client) => order(client, coll.collectionName)),
    );
    return { succeeded: results.filter(Boolean).length, stock: await stockOf(coll, 'p1') };
  }

  it('naive: "read stock, check, then $inc" oversells: both orders succeed, stock goes negative', async () => {
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
    const { tally } = await race(WORKERS, (i) =>
      guardedDecrement(
        clients.all[i]!.db(t.db.databaseName).collection<Product>(coll.collectionName),
        { filter: { _id: 'p1' }, field: 'stock', amount: 1 },
      ),
    );
    expect(tally).toEqual({ decremented: 20, insufficient: 30 });
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

  it('an item whose document lacks the field or holds no number: InvalidArgumentError on "field" naming the first such item and what it holds, nothing taken, 3 round trips', async () => {
    const coll = await products([
      { _id: 'a', stock: 5 },
      { _id: 'b', stock: 0 },
      { _id: 'text', stock: '7' as unknown as number },
      { _id: 'none' },
    ]);
    const error = await rejectionOf(
      guardedDecrementAll(coll, {
        client: t.client,
        field: 'stock',
        items: [
          { filter: { _id: 'a' }, amount: 1 },
          { filter: { _id: 'b' }, amount: 1 },
          { filter: { _id: 'text' }, amount: 1 },
          { filter: { _id: 'none' }, amount: 1 },
        ],
      }),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe('field');
    expect((error as Error).message).toBe(
      'guardedDecrementAll: option "field" names "stock", but the document of items.2 holds the string "7": nothing was decremented. Check the field name, or store a number (int, long, double or Decimal128) in that field',
    );
    expect(t.commands.names()).toEqual(['update', 'abortTransaction', 'aggregate']);
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([5, 0, '7', undefined]);

    t.commands.reset();
    const missing = await rejectionOf(
      guardedDecrementAll(coll, {
        client: t.client,
        // A misspelt path the types cannot see (typed `string`, as from config): run time reports it.
        field: 'stok' as string,
        items: [{ filter: { _id: 'a' }, amount: 1 }],
      }),
    );
    expect((missing as Error).message).toBe(
      'guardedDecrementAll: option "field" names "stok", but the document of items.0 lacks it: nothing was decremented. Check the field name, or store a number (int, long, double or Decimal128) in that field',
    );
    expect(t.commands.names()).toEqual(['update', 'abortTransaction', 'aggregate']);
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

  /**
   * Runs `work` in a caller's transaction that first writes a log entry and, whatever `work`
   * answers, commits; then asserts the commands sent and that the log entry was committed.
   */
  async function inCallersTransaction(work: (session: ClientSession) => Promise<void>) {
    const log = t.db.collection<{ _id: string }>(t.uniqueName('log'));
    await t.db.createCollection(log.collectionName);
    t.commands.reset();
    const session = t.client.startSession();
    try {
      session.startTransaction();
      await log.insertOne({ _id: 'attempt' }, { session });
      await work(session);
      await session.commitTransaction();
    } finally {
      await session.endSession();
    }
    expect(t.commands.names()).toEqual(['insert', 'aggregate', 'commitTransaction']);
    expect(await log.findOne({ _id: 'attempt' })).toEqual({ _id: 'attempt' });
  }

  it('a shortage leaves no decrement behind, and the caller can still commit its other work', async () => {
    const coll = await products([
      { _id: 'a', stock: 5 },
      { _id: 'b', stock: 0 },
    ]);
    await inCallersTransaction(async (session) => {
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
    });
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([5, 0]);
  });
  it('a field that is missing from an item\'s document: InvalidArgumentError on "field" after the one aggregate, nothing written, and the caller can still commit', async () => {
    const coll = await products([{ _id: 'a', stock: 5 }, { _id: 'b' }]);
    await inCallersTransaction(async (session) => {
      const error = await rejectionOf(
        guardedDecrementAll(coll, {
          session,
          field: 'stock',
          items: [
            { filter: { _id: 'a' }, amount: 1 },
            { filter: { _id: 'b' }, amount: 1 },
          ],
        }),
      );
      expect((error as InvalidArgumentError).option).toBe('field');
      expect((error as Error).message).toContain('the document of items.1 lacks it');
    });
    expect((await coll.find().toArray()).map((p) => p.stock)).toEqual([5, undefined]);
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

  it('naive: item-by-item decrements leave partial orders behind: both fail, yet stock was taken', async () => {
    const coll = await lastUnits();
    const halfway = barrier(2);
    const orders = [
      ['a', 'b'],
      ['b', 'a'],
    ];
    const results = await Promise.all(
      orders.map(async (ids, i) => {
        const mine = clients.all[i]!.db(t.db.databaseName).collection<Product>(coll.collectionName);
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
        const client = clients.all[i]!;
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
      clients.all.slice(0, 20).map(async (client, i) => {
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

describe('guardedDecrementAll: stock that changes between a short attempt and its diagnosis', () => {
  const failPoints = useFailPointClients(() => t.db, 'gdall');

  /** Runs `write` (on the test's own client) whenever the app client starts `command`. */
  function onCommand(client: MongoClient, command: string, write: () => Promise<unknown>) {
    const writes: Promise<unknown>[] = [];
    client.on('commandStarted', (event) => {
      if (event.commandName === command) writes.push(write());
    });
    return writes;
  }

  it('stock back before the diagnosis reads it: the order is tried again and taken (update, abort, aggregate, update, commit)', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const coll = await products([{ _id: 'a', stock: 1 }]);
    // The diagnosis waits on the server; the restock, sent when it starts, lands first.
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['aggregate'], blockConnection: true, blockTimeMS: 500, appName },
    );
    const restocks = onCommand(client, 'aggregate', () =>
      coll.updateOne({ _id: 'a' }, { $set: { stock: 5 } }),
    );
    commands.reset();
    const result = await guardedDecrementAll(appCollection(client, coll), {
      client,
      field: 'stock',
      items: [{ filter: { _id: 'a' }, amount: 2 }],
    });
    await Promise.all(restocks);
    expect(restocks).toHaveLength(1);
    expect(result).toEqual({ outcome: 'decremented' });
    expect(commands.names()).toEqual([
      'update',
      'abortTransaction',
      'aggregate',
      'update',
      'commitTransaction',
    ]);
    expect(await stockOf(coll, 'a')).toBe(3);
  });

  it('every attempt short, every diagnosis finding enough: gives up after exactly 5 rounds (RetryBudgetExhaustedError, maxAttempts)', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const coll = await products([{ _id: 'a', stock: 1 }]);
    // Both commands wait on the server while the stock flips: low under every update, high
    // under every diagnosis.
    await failCommand(t.db, 'alwaysOn', {
      failCommands: ['update', 'aggregate'],
      blockConnection: true,
      blockTimeMS: 300,
      appName,
    });
    const flips = [
      ...onCommand(client, 'update', () => coll.updateOne({ _id: 'a' }, { $set: { stock: 1 } })),
      ...onCommand(client, 'aggregate', () => coll.updateOne({ _id: 'a' }, { $set: { stock: 5 } })),
    ];
    commands.reset();
    const error = await rejectionOf(
      guardedDecrementAll(appCollection(client, coll), {
        client,
        field: 'stock',
        items: [{ filter: { _id: 'a' }, amount: 2 }],
      }),
    );
    await Promise.all(flips);
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    expect(error).toMatchObject({ reason: GiveUpReason.MaxAttempts, attempts: 5 });
    expect((error as Error).message).toMatch(/changing faster than orders can be checked/);
    expect(commands.names()).toEqual(
      Array.from({ length: 5 }, () => ['update', 'abortTransaction', 'aggregate']).flat(),
    );
    // Nothing was taken: the last flip set 5, and no update matched.
    expect(await stockOf(coll, 'a')).toBe(5);
  });
});

/** A small seeded generator (mulberry32): the same cases on every run and every machine. */
function seeded(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(values: readonly T[]): T => values[int(0, values.length - 1)] as T;
  return { next, int, pick };
}

type Rng = ReturnType<typeof seeded>;

/** A stock value of any numeric BSON type (int, long, double, Decimal128), or not a number. */
function stockValue(rng: Rng): unknown {
  const tenths = rng.int(-2, 30);
  switch (rng.int(0, 9)) {
    case 0:
    case 1:
      return new Int32(rng.int(-2, 8));
    case 2:
    case 3:
      return Long.fromNumber(rng.int(-2, 8));
    case 4:
    case 5:
      return new Double(rng.pick([tenths / 10, rng.int(0, 8), Number.NaN]));
    case 6:
    case 7:
    case 8:
      return Decimal128.fromString(
        rng.pick([(tenths / 10).toFixed(1), (tenths / 10).toFixed(2), String(rng.int(0, 8))]),
      );
    default:
      return rng.pick([undefined, null, '5']);
  }
}

/** Whether a stock value is a number the guard can match (any numeric BSON type, not NaN). */
function isNumber(value: unknown): boolean {
  if (value === undefined || value === null || typeof value === 'string') return false;
  return !(value instanceof Double && Number.isNaN(value.value));
}

/** The stock the document with this `_id` was seeded with. */
function seededStock(docs: readonly { _id: string; stock?: unknown }[], id: string | undefined) {
  return docs.find((doc) => doc._id === id)?.stock;
}

/** An amount: a whole number (int32 on the wire) or a fraction (a double). */
const amountValue = (rng: Rng) => rng.pick([rng.int(1, 4), rng.int(1, 15) / 10]);
const floorValue = (rng: Rng) => rng.pick([0, 0, 0, -1, 1, 0.1, 0.2, 0.5]);

/**
 * A value as it reads back: numbers by value (the driver returns int, long and double as JS
 * numbers), Decimal128 by its digits, anything else as JSON.
 */
function shown(value: unknown): string {
  if (value === undefined) return 'missing';
  const type = (value as { _bsontype?: unknown } | null)?._bsontype;
  if (type === 'Decimal128') return `Decimal128(${String(value)})`;
  if (typeof value === 'number' || type === 'Double' || type === 'Int32' || type === 'Long') {
    return `number(${String(Number(value))})`;
  }
  return JSON.stringify(value);
}

describe("guardedDecrementAll's diagnosis is the server's guard, for every numeric type", () => {
  it('a Decimal128 stock of 0.1 and an amount of 0.1: insufficient in both modes (the server: Decimal128 0.1 < double 0.1), not 5 rounds and a throw', async () => {
    const coll = await products([{ _id: 'a' }]);
    await coll.updateOne({ _id: 'a' }, { $set: { stock: Decimal128.fromString('0.1') as never } });
    // What the update's guard sees (MongoDB compares Decimal128 and double exactly, docs:
    // "Comparison/Sort Order"; ../shared/MONGODB.md): no match for 0.1, a match for 0.09.
    expect(await coll.countDocuments({ _id: 'a', stock: { $gte: 0.1 } })).toBe(0);
    expect(await coll.countDocuments({ _id: 'a', stock: { $gte: 0.09 } })).toBe(1);
    t.commands.reset();
    const own = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [{ filter: { _id: 'a' }, amount: 0.1 }],
    });
    const expected = {
      outcome: 'insufficient',
      shortages: [{ index: 0, requested: 0.1, available: 0.1 }],
    };
    expect(own).toEqual(expected);
    expect(t.commands.names()).toEqual(['update', 'abortTransaction', 'aggregate']);

    const session = t.client.startSession();
    try {
      session.startTransaction();
      t.commands.reset();
      const joined = await guardedDecrementAll(coll, {
        session,
        field: 'stock',
        items: [{ filter: { _id: 'a' }, amount: 0.1 }],
      });
      expect(joined).toEqual(expected);
      expect(t.commands.names()).toEqual(['aggregate']);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    const stored = await coll.findOne({ _id: 'a' });
    expect(String(stored?.stock)).toBe('0.1');
  });

  it('300 seeded random cases (int, long, double, Decimal128 stocks; whole and fractional amounts; floors; items sharing a document): outcome and shortages match what the update filter does on a copy', async () => {
    const SEED = 0x5eed07;
    const rng = seeded(SEED);
    const coll = await products([]);
    const oracle = t.db.collection<{ _id: string; stock?: unknown }>(t.uniqueName('oracle'));
    await t.db.createCollection(oracle.collectionName);
    const verdicts = { decremented: 0, insufficient: 0, broken: 0 };
    for (let n = 0; n < 300; n++) {
      const ids = ['a', 'b'];
      const docs = ids.map((_id) => {
        const value = stockValue(rng);
        return value === undefined ? { _id } : { _id, stock: value };
      });
      const floor = floorValue(rng);
      const items = Array.from({ length: rng.int(1, 3) }, () => ({
        filter: { _id: rng.pick(ids) },
        amount: amountValue(rng),
      }));
      const useSession = rng.next() < 0.5;
      const label = `seed ${SEED}, case ${n}: ${JSON.stringify({ docs: docs.map((d) => ({ _id: d._id, stock: shown(d.stock) })), floor, items, useSession })}`;

      // The oracle: the guarded statements themselves, in order, on a copy of the documents.
      await oracle.deleteMany({});
      await oracle.insertMany(docs.map((doc) => ({ ...doc })) as never);
      const short: number[] = [];
      for (const [index, item] of items.entries()) {
        const applied = await oracle.updateOne(
          { $and: [item.filter, { stock: { $gte: floor + item.amount } }] },
          { $inc: { stock: -item.amount } } as Document,
        );
        if (applied.matchedCount === 0) short.push(index);
      }

      await coll.deleteMany({});
      await coll.insertMany(docs.map((doc) => ({ ...doc })) as never);
      const run = async (): Promise<GuardedDecrementAllResult> => {
        if (!useSession) {
          return guardedDecrementAll(coll, { client: t.client, field: 'stock', floor, items });
        }
        const session = t.client.startSession();
        try {
          session.startTransaction();
          const outcome = await guardedDecrementAll(coll, {
            session,
            field: 'stock',
            floor,
            items,
          });
          await session.commitTransaction();
          return outcome;
        } finally {
          await session.endSession();
        }
      };
      const contents = async (c: { find(): { toArray(): Promise<Document[]> } }) =>
        (await c.find().toArray()).map((doc) => `${doc._id}:${shown(doc.stock)}`).sort();
      // A short item whose document holds no number (missing, null, a string, NaN) is reported
      // as an error naming the first such item, not as a shortage.
      const broken = short.find((index) => !isNumber(seededStock(docs, items[index]?.filter._id)));
      if (broken !== undefined) {
        verdicts.broken += 1;
        const error = await rejectionOf(run());
        expect(error, label).toBeInstanceOf(InvalidArgumentError);
        expect((error as Error).message, label).toContain(`the document of items.${broken} `);
        expect(await contents(coll), label).toEqual(
          docs.map((doc) => `${doc._id}:${shown(doc.stock)}`).sort(),
        );
        continue;
      }
      // A throw (the old JavaScript replay gave up or blamed the session) names its case too.
      const result = await run().catch((error: unknown) => {
        throw new Error(`${label}: threw ${String(error)}`, { cause: error });
      });

      if (short.length === 0) {
        verdicts.decremented += 1;
        expect(result, label).toEqual({ outcome: 'decremented' });
        expect(await contents(coll), label).toEqual(await contents(oracle));
      } else {
        verdicts.insufficient += 1;
        expect(result.outcome, label).toBe('insufficient');
        expect(
          result.shortages?.map((s) => s.index),
          label,
        ).toEqual(short);
        expect(
          result.shortages?.map((s) => s.requested),
          label,
        ).toEqual(short.map((index) => items[index]?.amount));
        // Nothing taken.
        expect(await contents(coll), label).toEqual(
          docs.map((doc) => `${doc._id}:${shown(doc.stock)}`).sort(),
        );
      }
    }
    // The cases exercise both verdicts, not just one.
    expect(verdicts.decremented).toBeGreaterThan(30);
    expect(verdicts.insufficient).toBeGreaterThan(30);
    expect(verdicts.broken).toBeGreaterThan(10);
  }, 120_000);
});

/**
 * guardedDecrement / guardedDecrementAll: the opId failure paths of the single form, the
 * refusal texts of guardedDecrementAll's option combinations, the query operators the shortage
 * diagnosis cannot run (inside arrays and nested objects too), the commands' exact options
 * (`ordered: true`, the diagnosis `$match`), the later rounds of the own-transaction mode, and
 * replies a conforming server never sends. Written to kill the mutants
 * tests/guarded-decrement.test.ts left alive (npm run mutation; docs/reliability.md,
 * "Mutation testing").
 *
 * Some tests hand guardedDecrementAll a stand-in collection (real client, scripted
 * `bulkWrite` and `aggregate`): the states they script (an update that keeps falling short
 * while every read finds enough stock; a write inside the caller's transaction that matches
 * less than the read before it; a diagnosis reply without a verdict per item) cannot be
 * produced on demand by a server. `withRetryingTransaction` is wrapped (vi.mock) only to see
 * the options each round passes it.
 */
import type { ClientSession, Collection, Document } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  InvalidArgumentError,
  isMongoAtomicsError,
  MongoAtomicsError,
  RetryBudgetExhaustedError,
} from '../../src/errors.js';
import { guardedDecrement, guardedDecrementAll } from '../../src/guarded-decrement.js';
import * as transaction from '../../src/transaction.js';
import { rejectionOf } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';

vi.mock('../../src/transaction.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/transaction.js')>();
  return { ...original, withRetryingTransaction: vi.fn(original.withRetryingTransaction) };
});
const runner = vi.mocked(transaction.withRetryingTransaction);

const t = useTestDatabase('mutants_guarded_decrement');

interface Product {
  _id: string;
  stock: number;
  gone?: null;
  _opIds?: string[];
}

async function products(...docs: Product[]) {
  const coll = t.db.collection<Product>(t.uniqueName('products'));
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  runner.mockClear();
  return coll;
}

afterEach(() => {
  runner.mockClear();
});

describe('guardedDecrement with an opId: each failure outcome exactly', () => {
  it('no document: notFound', async () => {
    const coll = await products();
    const result = await guardedDecrement(coll, {
      filter: { _id: 'none' },
      field: 'stock',
      amount: 1,
      opId: 'o1',
    });
    expect(result).toStrictEqual({ outcome: 'notFound' });
  });

  it('not enough, id not recorded: insufficient with what is available', async () => {
    const coll = await products({ _id: 'p1', stock: 2 });
    const result = await guardedDecrement(coll, {
      filter: { _id: 'p1' },
      field: 'stock',
      amount: 5,
      opId: 'o1',
    });
    expect(result).toStrictEqual({ outcome: 'insufficient', available: 2 });
  });

  it('a repeat: alreadyApplied with the document', async () => {
    const coll = await products({ _id: 'p1', stock: 2 });
    const options = { filter: { _id: 'p1' }, field: 'stock', amount: 2, opId: 'o1' };
    expect((await guardedDecrement(coll, options)).outcome).toBe('decremented');
    const repeat = await guardedDecrement(coll, options);
    expect(repeat).toStrictEqual({
      outcome: 'alreadyApplied',
      document: { _id: 'p1', stock: 0, _opIds: ['o1'] },
    });
  });
});

describe('guardedDecrementAll refusals, word for word, nothing sent', () => {
  const P = 'guardedDecrementAll: option';

  async function refusal(options: unknown, session?: ClientSession) {
    const coll = await products({ _id: 'p1', stock: 5 });
    const error = await rejectionOf(
      guardedDecrementAll(coll, {
        ...(options as object),
        ...(session === undefined ? {} : { session }),
      } as never),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(t.commands.names()).toEqual([]);
    return error as InvalidArgumentError;
  }

  const item = { filter: { _id: 'p1' }, amount: 1 };

  it('options that are not an object', async () => {
    const coll = await products();
    const error = await rejectionOf(guardedDecrementAll(coll, null as never));
    expect((error as Error).message).toBe(`${P} "options" must be an object, got null`);
  });

  it('empty items', async () => {
    const error = await refusal({ items: [], field: 'stock', client: t.client });
    expect(error.message).toBe(`${P} "items" must be a non-empty array of { filter, amount }`);
  });

  it('neither client nor session', async () => {
    const error = await refusal({ items: [item], field: 'stock' });
    expect(error.message).toBe(
      `${P} "client" or "session" is required: all-or-nothing needs a transaction`,
    );
  });

  it('transaction that is not an object', async () => {
    const error = await refusal({
      items: [item],
      field: 'stock',
      client: t.client,
      transaction: 5,
    });
    expect(error.option).toBe('transaction');
    expect(error.message).toBe(`${P} "transaction" must be an object of fields, got 5`);
  });

  it("transaction options the runner refuses are named under transaction, in the runner's words", async () => {
    const error = await refusal({
      items: [item],
      field: 'stock',
      client: t.client,
      transaction: { maxAttempts: 0 },
    });
    expect(error.option).toBe('transaction.maxAttempts');
    expect(error.message).toBe(`${P} "transaction.maxAttempts" must be a whole number ≥ 1, got 0`);
  });

  describe('with a session', () => {
    it.each([
      [
        'client as well',
        { client: true },
        'client',
        'cannot be combined with "session": pass one of them',
      ],
      [
        'transaction as well',
        { transaction: {} },
        'transaction',
        'applies only with "client"; the caller owns the transaction of "session"',
      ],
    ])('%s', async (_, extra, option, problem) => {
      const session = t.client.startSession();
      try {
        session.startTransaction();
        const error = await refusal(
          {
            items: [item],
            field: 'stock',
            ...extra,
            ...('client' in extra ? { client: t.client } : {}),
          },
          session,
        );
        expect(error.option).toBe(option);
        expect(error.message).toBe(`${P} "${option}" ${problem}`);
      } finally {
        await session.endSession();
      }
    });

    it('without a transaction in progress', async () => {
      const session = t.client.startSession();
      try {
        const error = await refusal({ items: [item], field: 'stock' }, session);
        expect(error.message).toBe(
          `${P} "session" must have a transaction in progress (or pass "client" to run one of its own)`,
        );
      } finally {
        await session.endSession();
      }
    });
  });

  it.each([
    ['$where at the top', { $where: 'true' }, '$where'],
    ['$text inside $or (an array)', { $or: [{ _id: 'p1' }, { $text: { $search: 'x' } }] }, '$text'],
    ['$near inside a field (a nested object)', { loc: { $near: [0, 0] } }, '$near'],
    ['$nearSphere inside a field', { loc: { $nearSphere: [0, 0] } }, '$nearSphere'],
  ])('a filter using %s', async (_, filter, operator) => {
    const error = await refusal({
      items: [
        { filter: { _id: 'p1' }, amount: 1 },
        { filter, amount: 1 },
      ],
      field: 'stock',
      client: t.client,
    });
    expect(error.option).toBe('items.1.filter');
    expect(error.message).toBe(
      `${P} "items.1.filter" uses ${operator}, which the shortage diagnosis (an aggregation) cannot run`,
    );
  });
});

describe('guardedDecrementAll commands', () => {
  it('a filter holding null is fine (the operator scan skips it)', async () => {
    const coll = await products({ _id: 'p1', stock: 5 });
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [{ filter: { _id: 'p1', gone: null }, amount: 2 }],
    });
    expect(result).toStrictEqual({ outcome: 'decremented' });
  });

  it("own transaction: the update is ordered; the diagnosis matches only the items' documents", async () => {
    const coll = await products({ _id: 'p1', stock: 5 }, { _id: 'p2', stock: 0 });
    const items = [
      { filter: { _id: 'p1' }, amount: 1 },
      { filter: { _id: 'p2' }, amount: 1 },
    ];
    const result = await guardedDecrementAll(coll, { client: t.client, field: 'stock', items });
    expect(result).toStrictEqual({
      outcome: 'insufficient',
      shortages: [{ index: 1, requested: 1, available: 0 }],
    });
    const update = t.commands.started.find((c) => c.commandName === 'update')?.command;
    expect(update?.ordered).toBe(true);
    const aggregate = t.commands.started.find((c) => c.commandName === 'aggregate')?.command;
    expect(aggregate?.pipeline[0]).toEqual({ $match: { $or: [{ _id: 'p1' }, { _id: 'p2' }] } });
  });

  it("caller's transaction: the update is ordered", async () => {
    const coll = await products({ _id: 'p1', stock: 5 });
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await guardedDecrementAll(coll, {
        session,
        field: 'stock',
        items: [{ filter: { _id: 'p1' }, amount: 1 }],
      });
      expect(result).toStrictEqual({ outcome: 'decremented' });
      await session.commitTransaction();
    } finally {
      await session.endSession();
    }
    const update = t.commands.started.find((c) => c.commandName === 'update')?.command;
    expect(update?.ordered).toBe(true);
  });

  it('no item matches any document: every item is missing', async () => {
    const coll = await products({ _id: 'p1', stock: 5 });
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [
        { filter: { _id: 'x' }, amount: 1 },
        { filter: { _id: 'y' }, amount: 1 },
      ],
    });
    expect(result).toStrictEqual({ outcome: 'notFound', missing: [0, 1] });
  });
});

/** A collection that owns t.client but whose bulkWrite and aggregate are scripted. */
function standIn(script: {
  bulkWrite?: (options: Document) => Promise<{ matchedCount: number }>;
  verdicts: () => Document[] | undefined;
}): Collection<Product> & { bulkWriteOptions: Document[]; aggregates: number } {
  const stub = {
    collectionName: 'stand_in',
    client: t.client,
    findOneAndUpdate: () => Promise.reject(new Error('not used')),
    bulkWriteOptions: [] as Document[],
    aggregates: 0,
    bulkWrite: (_operations: unknown, options: Document) => {
      stub.bulkWriteOptions.push(options);
      return script.bulkWrite === undefined
        ? Promise.resolve({ matchedCount: 0 })
        : script.bulkWrite(options);
    },
    aggregate: () => ({
      toArray: () => {
        stub.aggregates += 1;
        const verdicts = script.verdicts();
        return Promise.resolve(verdicts === undefined ? [] : [{ verdicts }]);
      },
    }),
  };
  return stub as unknown as Collection<Product> & {
    bulkWriteOptions: Document[];
    aggregates: number;
  };
}

describe('guardedDecrementAll in its own transaction, later rounds (stand-in collection)', () => {
  it('an update that keeps falling short while every read finds enough: gives up after 5 rounds, each round within the time left', async () => {
    const coll = standIn({ verdicts: () => [{ found: true, ok: true, seen: 10 }] });
    const given = { timeoutMs: 60_000, maxAttempts: 7 };
    const before = performance.now();
    const error = await rejectionOf(
      guardedDecrementAll(coll, {
        client: t.client,
        field: 'stock',
        items: [{ filter: { _id: 'p1' }, amount: 1 }],
        transaction: given,
      }),
    );
    const took = performance.now() - before;
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    const budget = error as RetryBudgetExhaustedError;
    expect(budget.message).toBe(
      'guardedDecrementAll: 5 attempts fell short, yet every read afterwards found enough stock: the stock is changing faster than orders can be checked',
    );
    expect(budget).toMatchObject({ reason: 'maxAttempts', attempts: 5, cause: undefined });
    expect(budget.elapsedMs).toBeGreaterThanOrEqual(0);
    expect(budget.elapsedMs).toBeLessThanOrEqual(Math.ceil(took));
    expect(coll.aggregates).toBe(5);
    expect(coll.bulkWriteOptions.map((o) => o.ordered)).toEqual([true, true, true, true, true]);

    const rounds = runner.mock.calls.map((call) => call[2]);
    expect(rounds).toHaveLength(5);
    // Round 1 passes the caller's options as given; later rounds the same with the time left.
    expect(rounds[0]).toBe(given);
    for (const later of rounds.slice(1)) {
      expect(later).toMatchObject({ maxAttempts: 7 });
      expect(later?.timeoutMs).toBeLessThanOrEqual(60_000);
      expect(later?.timeoutMs).toBeGreaterThanOrEqual(60_000 - Math.ceil(took) - 1);
    }
  });

  it('without transaction options, later rounds get what is left of the default 120 s', async () => {
    const coll = standIn({ verdicts: () => [{ found: true, ok: true, seen: 10 }] });
    const before = performance.now();
    await rejectionOf(
      guardedDecrementAll(coll, {
        client: t.client,
        field: 'stock',
        items: [{ filter: { _id: 'p1' }, amount: 1 }],
      }),
    );
    const took = performance.now() - before;
    const rounds = runner.mock.calls.map((call) => call[2]);
    expect(rounds[0]).toBeUndefined();
    for (const later of rounds.slice(1)) {
      expect(later?.timeoutMs).toBeLessThanOrEqual(120_000);
      expect(later?.timeoutMs).toBeGreaterThanOrEqual(120_000 - Math.ceil(took) - 1);
    }
  });

  it('an error other than a shortfall is rethrown unchanged, no diagnosis', async () => {
    const boom = new Error('boom');
    const coll = standIn({
      bulkWrite: () => Promise.reject(boom),
      verdicts: () => [{ found: true, ok: true, seen: 10 }],
    });
    const error = await rejectionOf(
      guardedDecrementAll(coll, {
        client: t.client,
        field: 'stock',
        items: [{ filter: { _id: 'p1' }, amount: 1 }],
      }),
    );
    expect(error).toBe(boom);
    expect(coll.aggregates).toBe(0);
  });

  it('a diagnosis reply without any document (no conforming server sends one: $facet always outputs one): every item is missing', async () => {
    const coll = standIn({ verdicts: () => undefined });
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [
        { filter: { _id: 'p1' }, amount: 1 },
        { filter: { _id: 'p2' }, amount: 1 },
      ],
    });
    expect(result).toStrictEqual({ outcome: 'notFound', missing: [0, 1] });
  });

  it('a diagnosis reply without a verdict for an item (no conforming server sends one): that item is missing', async () => {
    const coll = standIn({ verdicts: () => [] });
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [{ filter: { _id: 'p1' }, amount: 1 }],
    });
    expect(result).toStrictEqual({ outcome: 'notFound', missing: [0] });
  });
});

describe("guardedDecrementAll in the caller's transaction (stand-in collection)", () => {
  it('a write that matches less than the read before it: MongoAtomicsError, abort the transaction', async () => {
    const coll = standIn({ verdicts: () => [{ found: true, ok: true, seen: 10 }] });
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const error = await rejectionOf(
        guardedDecrementAll(coll, {
          session,
          field: 'stock',
          items: [{ filter: { _id: 'p1' }, amount: 1 }],
        }),
      );
      expect(isMongoAtomicsError(error)).toBe(true);
      expect(error).toBeInstanceOf(MongoAtomicsError);
      expect((error as Error).message).toBe(
        'guardedDecrementAll: the documents changed inside the transaction between its read and its write (parallel operations on one session?); abort the transaction',
      );
      expect(coll.bulkWriteOptions).toEqual([{ session, ordered: true }]);
    } finally {
      await session.abortTransaction();
      await session.endSession();
    }
  });
});

/**
 * Regressions found in review of the core primitives: each test failed before its fix.
 */
import { describe, expect, it } from 'vitest';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import {
  type IdempotencyResultNotStoredError,
  InvalidArgumentError,
  isIdempotencyResultNotStoredError,
  isRetryBudgetExhaustedError,
} from '../src/errors.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import { withIdempotencyKey } from '../src/idempotency.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { withRetryingTransaction } from '../src/transaction.js';
import { failCommand, useFailPointClients } from './support/failpoints.js';
import { useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('review_regressions');
const failPoints = useFailPointClients(() => t.db, 'rr');

async function fresh(docs: { _id: string; [key: string]: unknown }[]) {
  const name = t.uniqueName('c');
  await t.db.createCollection(name);
  const coll = t.db.collection<{ _id: string; [key: string]: unknown }>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

describe('business documents with fields named `value` and `ok`', () => {
  it('guardedDecrement reports decremented with the document, not its `value` field', async () => {
    const coll = await fresh([{ _id: 'g', stock: 5, value: null, ok: true }]);
    const result = await guardedDecrement(coll, {
      filter: { _id: 'g' },
      field: 'stock',
      amount: 3,
    });
    expect(result).toEqual({
      outcome: 'decremented',
      document: { _id: 'g', stock: 2, value: null, ok: true },
    });
  });

  it('claimOnce reports claimed for the winner', async () => {
    const coll = await fresh([{ _id: 'o', status: 'pending', value: 7, ok: 1 }]);
    const result = await claimOnce(coll, { filter: { _id: 'o' }, field: 'status', to: 'paid' });
    expect(result).toEqual({
      outcome: 'claimed',
      document: { _id: 'o', status: 'paid', value: 7, ok: 1 },
    });
  });
});

describe('paths a MongoDB update cannot write are refused before sending', () => {
  it('guardedDecrement field _id, claimOnce set._id and overlapping set paths, incrementOrPushArrayItem array _id.x', async () => {
    const coll = await fresh([{ _id: 'd', stock: 1, status: 'a' }]);
    const errors = await Promise.all([
      guardedDecrement(coll, { filter: { _id: 'd' }, field: '_id', amount: 1 }).catch(
        (e: unknown) => e,
      ),
      claimOnce(coll, { filter: { _id: 'd' }, field: 'status', to: 'b', set: { _id: 'x' } }).catch(
        (e: unknown) => e,
      ),
      claimOnce(coll, {
        filter: { _id: 'd' },
        field: 'status',
        to: 'b',
        set: { a: 1, 'a.b': 2 },
      }).catch((e: unknown) => e),
      incrementOrPushArrayItem(coll, {
        filter: { _id: 'd' },
        array: '_id.x',
        match: { k: 1 },
      }).catch((e: unknown) => e),
    ]);
    expect(errors.map((e) => (e as InvalidArgumentError).option)).toEqual([
      'field',
      'set._id',
      'set.a.b',
      'array',
    ]);
    expect(t.commands.started).toHaveLength(0);
  });

  it('guardedDecrementAll refuses item filters its diagnosis aggregate could not run ($where)', async () => {
    const coll = await fresh([{ _id: 'a', stock: 1 }]);
    const error = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [{ filter: { $where: 'true' }, amount: 1 }],
    }).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe('items.0.filter');
    expect(t.commands.started).toHaveLength(0);
  });
});

describe('guardedDecrementAll', () => {
  it('names invalid runner options as transaction.<name>, under its own primitive', async () => {
    const coll = await fresh([{ _id: 'a', stock: 1 }]);
    const error = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      items: [{ filter: { _id: 'a' }, amount: 1 }],
      transaction: { maxAttempts: 0 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).primitive).toBe('guardedDecrementAll');
    expect((error as InvalidArgumentError).option).toBe('transaction.maxAttempts');
    expect(t.commands.started).toHaveLength(0);
  });

  it('replays the server guard exactly: 1.7 − 1.1 is not ≥ 0.6 in floating point, so the item is short', async () => {
    const coll = await fresh([{ _id: 'a', stock: 1.7 }]);
    const result = await guardedDecrementAll(coll, {
      client: t.client,
      field: 'stock',
      floor: 0.6,
      items: [{ filter: { _id: 'a' }, amount: 1.1 }],
    });
    expect(result.outcome).toBe('insufficient');
    expect((await coll.findOne({ _id: 'a' }))?.stock).toBe(1.7);
  });
});

describe('withRetryingTransaction gives up on an unknown commit outcome without pretending nothing happened', () => {
  it('reason commitOutcomeUnknown when the budget runs out while the commit result is unknown', async () => {
    const { client, appName } = await failPoints.appClient();
    const coll = await fresh([]);
    await failCommand(t.db, 'alwaysOn', {
      failCommands: ['commitTransaction'],
      errorCode: 6,
      errorLabels: ['UnknownTransactionCommitResult'],
      appName,
    });
    const error = await withRetryingTransaction(
      client,
      async (session) => {
        await client
          .db(t.db.databaseName)
          .collection(coll.collectionName)
          .insertOne({ _id: 'x' } as never, { session });
      },
      { maxAttempts: 3, backoff: { initialDelayMs: 1, jitter: 'none' } },
    ).catch((e: unknown) => e);
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    expect((error as { reason: string }).reason).toBe('commitOutcomeUnknown');
    expect((error as Error).message).toMatch(/may have been committed/);
  });
});

describe('withIdempotencyKey when the result cannot be stored', () => {
  it('fn ran: a typed error carries the value, and the key is not released for an immediate re-run', async () => {
    const { client, appName } = await failPoints.appClient();
    const keys = await fresh([]);
    let runs = 0;
    await failCommand(t.db, { times: 1 }, { failCommands: ['update'], errorCode: 2, appName });
    const error = await withIdempotencyKey(
      client.db(t.db.databaseName).collection(keys.collectionName),
      {
        key: 'charge-1',
        fn: async () => {
          runs += 1;
          return { charged: 100 };
        },
      },
    ).catch((e: unknown) => e);
    expect(isIdempotencyResultNotStoredError(error)).toBe(true);
    expect((error as IdempotencyResultNotStoredError).value).toEqual({ charged: 100 });
    expect(runs).toBe(1);
    // A retry right away must not run fn again: the key is still held.
    const retry = await withIdempotencyKey(t.db.collection(keys.collectionName), {
      key: 'charge-1',
      fn: async () => {
        runs += 1;
        return { charged: 100 };
      },
    });
    expect(retry.outcome).toBe('inProgress');
    expect(runs).toBe(1);
  });
});

describe('addToSetWithCapacity never says full when the event has room', () => {
  it('a cancellation between the failed add and its read: the add is retried and succeeds', async () => {
    const events = await fresh([{ _id: 'e', capacity: 1, sold: 1, regs: ['u1'] }]);
    let interleaved = false;
    // The first failure read is preceded by u1 cancelling, as a concurrent request would.
    const racing = new Proxy(events, {
      get(target, property, receiver) {
        if (property === 'findOne' && !interleaved) {
          return async (...args: Parameters<typeof target.findOne>) => {
            interleaved = true;
            await removeFromSetWithCapacity(target, {
              filter: { _id: 'e' },
              array: 'regs',
              member: 'u1',
              counter: 'sold',
            });
            return target.findOne(...args);
          };
        }
        return Reflect.get(target, property, receiver);
      },
    });
    // A filter that is no `_id` equality: only that path has a failure read to race (with an
    // `_id` equality the update's own projection tells the outcome, see capacity-set.ts).
    const result = await addToSetWithCapacity(racing, {
      filter: { _id: { $in: ['e'] } },
      array: 'regs',
      member: 'u1',
      counter: 'sold',
      capacity: 'capacity',
    });
    expect(interleaved).toBe(true);
    expect(result.outcome).toBe('added');
    expect(await events.findOne({ _id: 'e' })).toEqual({
      _id: 'e',
      capacity: 1,
      sold: 1,
      regs: ['u1'],
    });
  });
});

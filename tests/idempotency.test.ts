/**
 * withIdempotencyKey: every outcome with its round trips, failure release, lease takeover,
 * fingerprint conflicts, transaction mode (result and business writes commit together; the
 * fence), argument validation, and the double-submit race of seeds 002/003 (20 concurrent
 * duplicates of one request), shown first with the naive "look up, run, store" version.
 *
 * The TTL monitor removing expired records is in idempotency-ttl.serial.test.ts (it changes a
 * server-wide parameter).
 */
import type { Collection, CommandStartedEvent, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  IdempotencyKeyConflictError,
  type IdempotencyResultNotStoredError,
  InvalidArgumentError,
  isIdempotencyKeyConflictError,
  isIdempotencyResultNotStoredError,
  isInvalidArgumentError,
  isMongoAtomicsError,
} from '../src/errors.js';
import {
  ensureIdempotencyIndexes,
  type IdempotencyRecord,
  withIdempotencyKey,
} from '../src/idempotency.js';
import { rejectionOf, sleep } from './support/async.js';
import { failCommand, useFailPointClients } from './support/failpoints.js';
import { type CommandLog, newClient, recordCommands, useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

interface Order {
  _id: string;
  total: number;
}

const t = useTestDatabase('idempotency');
const WORKERS = 20;
const race = useRaceClients(WORKERS);

/** A second client with its own command log, for the duplicate in two-caller tests. */
let second: { client: MongoClient; commands: CommandLog };
beforeAll(async () => {
  const client = newClient();
  await client.connect();
  second = { client, commands: recordCommands(client) };
});
afterAll(async () => {
  await second.client.close();
});

function deferred<T = void>() {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A fresh records collection; the command logs start empty. */
function freshKeys(): Collection<IdempotencyRecord> {
  const coll = t.db.collection<IdempotencyRecord>(t.uniqueName('keys'));
  t.commands.reset();
  second.commands.reset();
  return coll;
}

/** A fresh, already created business collection (transactions should not create it). */
async function freshOrders(): Promise<Collection<Order>> {
  const name = t.uniqueName('orders');
  await t.db.createCollection(name);
  return t.db.collection<Order>(name);
}

const on = <T extends object>(client: MongoClient, coll: Collection<T>) =>
  client.db(coll.dbName).collection<T>(coll.collectionName);

/** An fn that counts its runs. */
function counted<T>(value: T, before?: () => Promise<void>) {
  const calls = { runs: 0 };
  const fn = async () => {
    calls.runs += 1;
    await before?.();
    return value;
  };
  return Object.assign(calls, { fn });
}

describe('first call and replay', () => {
  it('the first call runs fn once and stores its value: executed, 2 round trips (findAndModify claim, update)', async () => {
    const keys = freshKeys();
    const work = counted({ orderId: 'o1', status: 201 });
    const before = Date.now();
    const result = await withIdempotencyKey(keys, {
      key: 'k1',
      fingerprint: 'POST /orders abc',
      fn: work.fn,
    });
    expect(result).toEqual({
      outcome: 'executed',
      value: { orderId: 'o1', status: 201 },
      leaseLost: false,
      tookOver: false,
    });
    expect(work.runs).toBe(1);
    expect(t.commands.names()).toEqual(['findAndModify', 'update']);
    const record = await keys.findOne({ _id: 'k1' });
    expect(record).toMatchObject({
      _id: 'k1',
      state: 'completed',
      fingerprint: 'POST /orders abc',
      value: { orderId: 'o1', status: 201 },
    });
    expect(record).not.toHaveProperty('leaseUntil');
    expect(record).not.toHaveProperty('fence');
    // Default retention: 24 h from completion.
    const retained = (record?.expiresAt.getTime() ?? 0) - before;
    expect(retained).toBeGreaterThanOrEqual(24 * 3600_000);
    expect(retained).toBeLessThan(24 * 3600_000 + 5_000);
  });

  it('a later duplicate replays the stored value without running fn: 1 round trip (the claim findAndModify answers with the record, writes nothing)', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k1', fn: async () => ({ charged: 500 }) });
    const again = counted({ charged: 999 });
    t.commands.reset();
    const result = await withIdempotencyKey(keys, { key: 'k1', fn: again.fn });
    expect(result).toEqual({ outcome: 'replayed', value: { charged: 500 } });
    expect(again.runs).toBe(0);
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('undefined replays as undefined, null as null (undefined is not stored)', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'void', fn: async () => undefined });
    await withIdempotencyKey(keys, { key: 'null', fn: async () => null });
    expect(await keys.findOne({ _id: 'void' })).not.toHaveProperty('value');
    const voidAgain = await withIdempotencyKey(keys, { key: 'void', fn: async () => 'ran' });
    const nullAgain = await withIdempotencyKey(keys, { key: 'null', fn: async () => 'ran' });
    expect(voidAgain).toEqual({ outcome: 'replayed', value: undefined });
    expect('value' in voidAgain).toBe(true);
    expect(nullAgain).toEqual({ outcome: 'replayed', value: null });
  });
});

describe('a concurrent duplicate', () => {
  it('while the first call runs, a duplicate resolves inProgress at once with the holder lease (one findAndModify); fn runs once', async () => {
    const keys = freshKeys();
    const started = deferred();
    const gate = deferred();
    const first = counted('first', async () => {
      started.resolve();
      await gate.promise;
    });
    const firstCall = withIdempotencyKey(keys, { key: 'k', leaseMs: 30_000, fn: first.fn });
    await started.promise;
    const duplicate = counted('duplicate');
    const result = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      fn: duplicate.fn,
    });
    expect(result.outcome).toBe('inProgress');
    const holder = await keys.findOne({ _id: 'k' });
    expect(result.leaseUntil).toEqual(holder?.leaseUntil);
    expect(second.commands.names()).toEqual(['findAndModify']);
    gate.resolve();
    expect((await firstCall).outcome).toBe('executed');
    expect(first.runs + duplicate.runs).toBe(1);
  });

  it('with wait, the duplicate resolves replayed once the first completes (one find per poll)', async () => {
    const keys = freshKeys();
    const started = deferred();
    const gate = deferred();
    const firstCall = withIdempotencyKey(keys, {
      key: 'k',
      fn: async () => {
        started.resolve();
        await gate.promise;
        return { receipt: 'r-1' };
      },
    });
    await started.promise;
    const duplicate = counted({ receipt: 'r-2' });
    const waiting = withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      wait: { timeoutMs: 5_000, intervalMs: 20 },
      fn: duplicate.fn,
    });
    await sleep(100);
    gate.resolve();
    expect(await waiting).toEqual({ outcome: 'replayed', value: { receipt: 'r-1' } });
    expect(await firstCall).toMatchObject({ outcome: 'executed', value: { receipt: 'r-1' } });
    expect(duplicate.runs).toBe(0);
    const names = second.commands.names();
    expect(names[0]).toBe('findAndModify');
    expect(names.slice(1).every((name) => name === 'find')).toBe(true);
    // It read at least twice before the first call finished, then once more.
    expect(names.length).toBeGreaterThanOrEqual(3);
  });

  it('with wait, the duplicate resolves inProgress when the wait limit passes first', async () => {
    const keys = freshKeys();
    const started = deferred();
    const gate = deferred();
    const firstCall = withIdempotencyKey(keys, {
      key: 'k',
      fn: async () => {
        started.resolve();
        await gate.promise;
        return 1;
      },
    });
    await started.promise;
    const duplicate = counted(2);
    const begun = performance.now();
    const result = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      wait: { timeoutMs: 150, intervalMs: 20 },
      fn: duplicate.fn,
    });
    const waited = performance.now() - begun;
    expect(result.outcome).toBe('inProgress');
    expect(waited).toBeGreaterThanOrEqual(145);
    expect(waited).toBeLessThan(3_000);
    expect(duplicate.runs).toBe(0);
    gate.resolve();
    expect((await firstCall).outcome).toBe('executed');
  });
});

describe('fn throws', () => {
  it('the key is released (findAndModify, delete), the error is rethrown unchanged, and a retry runs fn (findAndModify, update)', async () => {
    const keys = freshKeys();
    const thrown = new Error('card declined');
    const error = await rejectionOf(
      withIdempotencyKey(keys, {
        key: 'k',
        fn: async () => {
          throw thrown;
        },
      }),
    );
    expect(error).toBe(thrown);
    expect(t.commands.names()).toEqual(['findAndModify', 'delete']);
    expect(await keys.findOne({ _id: 'k' })).toBeNull();

    t.commands.reset();
    const retry = counted('charged');
    expect(await withIdempotencyKey(keys, { key: 'k', fn: retry.fn })).toMatchObject({
      outcome: 'executed',
      value: 'charged',
    });
    expect(retry.runs).toBe(1);
    expect(t.commands.names()).toEqual(['findAndModify', 'update']);
  });
});

describe('leases', () => {
  it('a holder that died (inProgress, lease expired) is taken over: fn runs, result stored, tookOver (claim findAndModify, takeover findAndModify, update)', async () => {
    const keys = freshKeys();
    const past = new Date(Date.now() - 1_000);
    await keys.insertOne({
      _id: 'k',
      state: 'inProgress',
      owner: 'dead-process',
      leaseUntil: past,
      createdAt: past,
      expiresAt: new Date(Date.now() + 3600_000),
    });
    t.commands.reset();
    const work = counted('recovered');
    const result = await withIdempotencyKey(keys, { key: 'k', fn: work.fn });
    expect(result).toEqual({
      outcome: 'executed',
      value: 'recovered',
      leaseLost: false,
      tookOver: true,
    });
    expect(work.runs).toBe(1);
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify', 'update']);
    const record = await keys.findOne({ _id: 'k' });
    expect(record).toMatchObject({ state: 'completed', value: 'recovered' });
    expect(record?.owner).not.toBe('dead-process');
  });

  it('a live lease is not taken over: inProgress, fn does not run, the record is unchanged', async () => {
    const keys = freshKeys();
    const holder: IdempotencyRecord = {
      _id: 'k',
      state: 'inProgress',
      owner: 'alive',
      leaseUntil: new Date(Date.now() + 60_000),
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 3600_000),
    };
    await keys.insertOne(holder);
    t.commands.reset();
    const work = counted('nope');
    const result = await withIdempotencyKey(keys, { key: 'k', fn: work.fn });
    expect(result).toEqual({ outcome: 'inProgress', leaseUntil: holder.leaseUntil });
    expect(work.runs).toBe(0);
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(await keys.findOne({ _id: 'k' })).toEqual(holder);
  });

  it('a lease that ends while fn runs (no transaction): a duplicate takes over and runs fn too; the first learns leaseLost', async () => {
    const keys = freshKeys();
    const gate = deferred();
    let runs = 0;
    let signal: AbortSignal | undefined;
    const firstCall = withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 100,
      fn: async (context) => {
        runs += 1;
        signal = context.signal;
        await gate.promise;
        return 'first';
      },
    });
    await sleep(200);
    // fn's signal told it the lease ended.
    expect(signal?.aborted).toBe(true);
    expect(isMongoAtomicsError(signal?.reason)).toBe(true);
    const duplicate = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      leaseMs: 100,
      fn: async () => {
        runs += 1;
        return 'second';
      },
    });
    expect(duplicate).toMatchObject({ outcome: 'executed', value: 'second', tookOver: true });
    gate.resolve();
    expect(await firstCall).toEqual({
      outcome: 'executed',
      value: 'first',
      leaseLost: true,
      tookOver: false,
    });
    // The failure mode leaseMs must be chosen against: fn ran twice.
    expect(runs).toBe(2);
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ state: 'completed', value: 'second' });
  });
});

describe('fingerprints', () => {
  it.each([
    ['completed', 'fp-B'],
    ['completed', undefined],
    ['inProgress', 'fp-B'],
  ] as const)(
    'a %s key reused with fingerprint %s: IdempotencyKeyConflictError, fn does not run, nothing changes',
    async (state, fingerprint) => {
      const keys = freshKeys();
      const existing: IdempotencyRecord = {
        _id: 'k',
        state,
        fingerprint: 'fp-A',
        owner: 'someone',
        ...(state === 'inProgress' ? { leaseUntil: new Date(Date.now() + 60_000) } : {}),
        ...(state === 'completed' ? { value: 'theirs' } : {}),
        createdAt: new Date(),
        expiresAt: new Date(Date.now() + 3600_000),
      };
      await keys.insertOne(existing);
      t.commands.reset();
      const work = counted('mine');
      const error = await rejectionOf(
        withIdempotencyKey(keys, {
          key: 'k',
          ...(fingerprint === undefined ? {} : { fingerprint }),
          fn: work.fn,
        }),
      );
      expect(error).toBeInstanceOf(IdempotencyKeyConflictError);
      expect(isIdempotencyKeyConflictError(error)).toBe(true);
      expect((error as IdempotencyKeyConflictError).key).toBe('k');
      expect(work.runs).toBe(0);
      expect(t.commands.names()).toEqual(['findAndModify']);
      expect(await keys.findOne({ _id: 'k' })).toEqual(existing);
    },
  );

  it('the same fingerprint replays', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k', fingerprint: 'fp', fn: async () => 7 });
    expect(
      await withIdempotencyKey(keys, { key: 'k', fingerprint: 'fp', fn: async () => 8 }),
    ).toEqual({ outcome: 'replayed', value: 7 });
  });
});

describe(`double submit (seeds 002/003): ${WORKERS} concurrent duplicates of one request`, () => {
  const collections = (name: string) =>
    race.all.map((client) => client.db(t.db.databaseName).collection<IdempotencyRecord>(name));

  it('naive: "look the key up, run fn if unknown, then store the result" runs fn more than once', async () => {
    const name = t.uniqueName('naive');
    const allLookedUp = barrier(WORKERS);
    let runs = 0;
    await Promise.all(
      collections(name).map(async (coll) => {
        const existing = await coll.findOne({ _id: 'k' });
        await allLookedUp();
        if (existing !== null) return;
        runs += 1;
        await sleep(10);
        await coll
          .insertOne({
            _id: 'k',
            state: 'completed',
            owner: 'naive',
            value: 'charged',
            createdAt: new Date(),
            expiresAt: new Date(),
          })
          .catch((error: MongoServerError) => {
            if (error.code !== 11000) throw error;
          });
      }),
    );
    // Every lookup happened before any store: every duplicate ran fn.
    expect(runs).toBe(WORKERS);
  });

  it('withIdempotencyKey: fn runs exactly once; one executed, every other duplicate inProgress or replayed', async () => {
    const name = t.uniqueName('safe');
    const ready = barrier(WORKERS);
    let runs = 0;
    const results = await Promise.all(
      collections(name).map(async (coll) => {
        await ready();
        return withIdempotencyKey(coll, {
          key: 'k',
          fn: async () => {
            runs += 1;
            await sleep(10);
            return 'charged';
          },
        });
      }),
    );
    expect(runs).toBe(1);
    expect(results.filter((r) => r.outcome === 'executed')).toHaveLength(1);
    for (const r of results.filter((r) => r.outcome !== 'executed')) {
      expect(['inProgress', 'replayed']).toContain(r.outcome);
      if (r.outcome === 'replayed') expect(r.value).toBe('charged');
    }
  });

  it('withIdempotencyKey: every duplicate sends one command (the claim answers with the record); fn runs once', async () => {
    const name = t.uniqueName('one-trip');
    const ready = barrier(WORKERS);
    const sentBy = race.all.map(() => [] as string[]);
    const listeners = race.all.map((client, i) => {
      const listener = (event: CommandStartedEvent) => {
        if (event.command[event.commandName] === name) sentBy[i]?.push(event.commandName);
      };
      client.on('commandStarted', listener);
      return listener;
    });
    let runs = 0;
    try {
      const results = await Promise.all(
        collections(name).map(async (coll) => {
          await ready();
          return withIdempotencyKey(coll, {
            key: 'k',
            fn: async () => {
              runs += 1;
              await sleep(10);
              return 'charged';
            },
          });
        }),
      );
      expect(runs).toBe(1);
      const executor = results.findIndex((r) => r.outcome === 'executed');
      expect(executor).toBeGreaterThanOrEqual(0);
      sentBy.forEach((names, i) => {
        // No E11000 reached the library (it would have read the record with a find).
        expect(names).toEqual(i === executor ? ['findAndModify', 'update'] : ['findAndModify']);
      });
    } finally {
      race.all.forEach((client, i) => {
        client.off('commandStarted', listeners[i] as (event: CommandStartedEvent) => void);
      });
    }
  });

  it('withIdempotencyKey with wait: fn runs once and all 19 duplicates replay its value', async () => {
    const name = t.uniqueName('waiting');
    const ready = barrier(WORKERS);
    let runs = 0;
    const results = await Promise.all(
      collections(name).map(async (coll) => {
        await ready();
        return withIdempotencyKey(coll, {
          key: 'k',
          wait: { timeoutMs: 10_000, intervalMs: 10 },
          fn: async () => {
            runs += 1;
            await sleep(50);
            return { receipt: 'r-1' };
          },
        });
      }),
    );
    expect(runs).toBe(1);
    expect(results.filter((r) => r.outcome === 'executed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'replayed')).toHaveLength(WORKERS - 1);
    for (const r of results) expect(r.value).toEqual({ receipt: 'r-1' });
  });
});

describe('transaction mode (client)', () => {
  it('the business write and the stored result commit together: findAndModify (claim), update (fence), [fn], update, commitTransaction', async () => {
    const keys = freshKeys();
    const orders = await freshOrders();
    t.commands.reset();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      client: t.client,
      fn: async ({ session, attempt }) => {
        await orders.insertOne({ _id: 'o1', total: 500 }, { session });
        return { orderId: 'o1', attempt };
      },
    });
    expect(result).toEqual({
      outcome: 'executed',
      value: { orderId: 'o1', attempt: 1 },
      leaseLost: false,
      tookOver: false,
    });
    expect(t.commands.names()).toEqual([
      'findAndModify',
      'update',
      'insert',
      'update',
      'commitTransaction',
    ]);
    // The fence, fn's write and the completion ran in one transaction.
    const [, fence, write, complete] = t.commands.started;
    expect(fence?.command.startTransaction).toBe(true);
    expect(String(write?.command.txnNumber)).toBe(String(fence?.command.txnNumber));
    expect(String(complete?.command.txnNumber)).toBe(String(fence?.command.txnNumber));
    expect(await orders.find({}).toArray()).toEqual([{ _id: 'o1', total: 500 }]);
    const record = await keys.findOne({ _id: 'k' });
    expect(record).toMatchObject({ state: 'completed', value: { orderId: 'o1', attempt: 1 } });
    expect(record).not.toHaveProperty('fence');

    const replay = await withIdempotencyKey(keys, {
      key: 'k',
      client: t.client,
      fn: async ({ session }) => {
        await orders.insertOne({ _id: 'o2', total: 500 }, { session });
        return { orderId: 'o2', attempt: 0 };
      },
    });
    expect(replay).toEqual({ outcome: 'replayed', value: { orderId: 'o1', attempt: 1 } });
    expect(await orders.countDocuments()).toBe(1);
  });

  it('crash window: while fn runs, others see the claim but neither the business write nor a result; when the transaction aborts, both stay absent and the key is released', async () => {
    const keys = freshKeys();
    const orders = await freshOrders();
    t.commands.reset();
    const written = deferred();
    const gate = deferred();
    const thrown = new Error('payment provider down');
    const call = withIdempotencyKey(keys, {
      key: 'k',
      client: t.client,
      fn: async ({ session }) => {
        await orders.insertOne({ _id: 'o1', total: 500 }, { session });
        written.resolve();
        await gate.promise;
        throw thrown;
      },
    });
    await written.promise;
    // If the process died right here: the claim is inProgress (with its lease), and there is
    // neither a business write nor a stored result for a retry to be confused by.
    expect(await on(second.client, keys).findOne({ _id: 'k' })).toMatchObject({
      state: 'inProgress',
    });
    expect(await on(second.client, orders).countDocuments()).toBe(0);
    gate.resolve();
    expect(await rejectionOf(call)).toBe(thrown);
    expect(t.commands.names()).toEqual([
      'findAndModify',
      'update',
      'insert',
      'abortTransaction',
      'delete',
    ]);
    expect(await orders.countDocuments()).toBe(0);
    expect(await keys.findOne({ _id: 'k' })).toBeNull();
  });

  it('a holder that died mid-transaction is taken over: the business write happens exactly once', async () => {
    const keys = freshKeys();
    const orders = await freshOrders();
    const past = new Date(Date.now() - 1_000);
    // What a crash before the commit leaves: the claim, and no business write.
    await keys.insertOne({
      _id: 'k',
      state: 'inProgress',
      owner: 'dead-process',
      leaseUntil: past,
      createdAt: past,
      expiresAt: new Date(Date.now() + 3600_000),
    });
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      client: t.client,
      fn: async ({ session }) => {
        await orders.insertOne({ _id: 'o1', total: 500 }, { session });
        return 'o1';
      },
    });
    expect(result).toMatchObject({ outcome: 'executed', value: 'o1', tookOver: true });
    expect(await orders.countDocuments()).toBe(1);
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ state: 'completed', value: 'o1' });
  });

  it('a completion that matches nothing aborts the business write (fn rewrote the record owner through its session)', async () => {
    const keys = freshKeys();
    const orders = await freshOrders();
    const error = await rejectionOf(
      withIdempotencyKey(keys, {
        key: 'k',
        client: t.client,
        fn: async ({ session }) => {
          await orders.insertOne({ _id: 'o1', total: 500 }, { session });
          await keys.updateOne({ _id: 'k' }, { $set: { owner: 'someone else' } }, { session });
          return 'o1';
        },
      }),
    );
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toMatch(/changed inside the transaction/);
    expect(await orders.countDocuments()).toBe(0);
    // The owner change was rolled back with the rest, so our claim was ours to release.
    expect(await keys.findOne({ _id: 'k' })).toBeNull();
  });

  it('the fence: a lease that ends while fn’s transaction runs is not taken over; the duplicate waits for the commit and replays', async () => {
    const keys = freshKeys();
    const orders = await freshOrders();
    let runs = 0;
    const fnStarted = deferred();
    const firstCall = withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 100,
      client: t.client,
      fn: async ({ session }) => {
        runs += 1;
        await orders.insertOne({ _id: `o${runs}`, total: 500 }, { session });
        fnStarted.resolve();
        await sleep(400);
        return `o${runs}`;
      },
    });
    await fnStarted.promise;
    await sleep(150); // the lease has ended; the transaction still runs
    const duplicate = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      leaseMs: 100,
      client: second.client,
      wait: { timeoutMs: 5_000, intervalMs: 20 },
      fn: async ({ session }) => {
        runs += 1;
        await on(second.client, orders).insertOne({ _id: `o${runs}`, total: 500 }, { session });
        return `o${runs}`;
      },
    });
    expect(duplicate).toEqual({ outcome: 'replayed', value: 'o1' });
    expect(await firstCall).toMatchObject({ outcome: 'executed', value: 'o1', leaseLost: false });
    expect(runs).toBe(1);
    // The takeover was tried, and waited behind the transaction instead of winning.
    expect(second.commands.names().slice(0, 2)).toEqual(['findAndModify', 'findAndModify']);
    expect(await orders.find({}).toArray()).toEqual([{ _id: 'o1', total: 500 }]);
  });

  it('without wait, a takeover blocked by the holder’s transaction answers inProgress within about a second', async () => {
    const keys = freshKeys();
    const gate = deferred();
    const fnStarted = deferred();
    const firstCall = withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 50,
      client: t.client,
      fn: async () => {
        fnStarted.resolve();
        await gate.promise;
        return 'done';
      },
    });
    await fnStarted.promise;
    await sleep(100);
    const begun = performance.now();
    const duplicate = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      fn: async () => 'twice',
    });
    const waited = performance.now() - begun;
    expect(duplicate.outcome).toBe('inProgress');
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(3_000);
    gate.resolve();
    expect(await firstCall).toMatchObject({ outcome: 'executed', value: 'done' });
  });
});

describe('transaction mode: a lease lost before the transaction starts', () => {
  const failPoints = useFailPointClients(() => t.db, 'idem');

  it('the fence matches nothing: fn never runs, the transaction is aborted, and the call reports the new holder (inProgress)', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const keys = freshKeys();
    // The fence is this client's first `update`: hold it 300 ms before it runs.
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['update'], blockConnection: true, blockTimeMS: 300, appName },
    );
    const fenceSent = deferred();
    client.on('commandStarted', (event) => {
      if (event.commandName === 'update') fenceSent.resolve();
    });
    commands.reset();
    let runs = 0;
    const call = withIdempotencyKey(on(client, keys), {
      key: 'k',
      client,
      fn: async () => {
        runs += 1;
        return 'should not run';
      },
    });
    await fenceSent.promise;
    // Meanwhile another caller takes the key over (as after an expired lease).
    const thiefLease = new Date(Date.now() + 60_000);
    await keys.updateOne({ _id: 'k' }, { $set: { owner: 'thief', leaseUntil: thiefLease } });
    const result = await call;
    expect(result).toEqual({ outcome: 'inProgress', leaseUntil: thiefLease });
    expect(runs).toBe(0);
    expect(commands.names()).toEqual(['findAndModify', 'update', 'abortTransaction', 'find']);
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ owner: 'thief', state: 'inProgress' });
  });
});

describe('messages true to the state', () => {
  const failPoints = useFailPointClients(() => t.db, 'idem-state');
  /** WriteConcernTimeout (64), as mongod reports it: not retryable, the write applied. */
  const writeConcernTimeout = {
    code: 64,
    codeName: 'WriteConcernTimeout',
    errmsg: 'waiting for replication timed out',
    errInfo: { wtimeout: true },
  };

  it('a completion that applied but came back with a write concern error: written, not "stays in progress"; duplicates replay', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const keys = freshKeys();
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['update'], writeConcernError: writeConcernTimeout, appName },
    );
    commands.reset();
    const work = counted({ charged: 100 });
    const error = await rejectionOf(
      withIdempotencyKey(on(client, keys), { key: 'k', fn: work.fn }),
    );
    expect(isIdempotencyResultNotStoredError(error)).toBe(true);
    const notStored = error as IdempotencyResultNotStoredError;
    expect(notStored.written).toBe(true);
    expect(notStored.value).toEqual({ charged: 100 });
    expect((notStored.cause as { code?: unknown }).code).toBe(64);
    expect(notStored.message).not.toMatch(/stays in progress/);
    expect(notStored.message).toMatch(/result was written/);
    expect(commands.names()).toEqual(['findAndModify', 'update']);
    // What the message says: the record is completed, and a duplicate replays it.
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({
      state: 'completed',
      value: { charged: 100 },
    });
    const duplicate = await withIdempotencyKey(keys, { key: 'k', fn: work.fn });
    expect(duplicate).toEqual({ outcome: 'replayed', value: { charged: 100 } });
    expect(work.runs).toBe(1);
  });

  it("a completion whose reply was lost (blocked past the socket timeout, twice): written 'unknown', and the record did become completed", async () => {
    const { client, appName } = await failPoints.appClient({
      socketTimeoutMS: 40,
      minHeartbeatFrequencyMS: 10,
    });
    const keys = freshKeys();
    // Both the update and the driver's retry of it wait 150 ms on the server, past the 40 ms
    // socket timeout: the driver gives up, the server then applies the first (the retry finds
    // it applied). Found by the fault matrix: this used to say `written: false`.
    await failCommand(
      t.db,
      { times: 2 },
      { failCommands: ['update'], blockConnection: true, blockTimeMS: 150, appName },
    );
    const work = counted('value');
    const error = await rejectionOf(
      withIdempotencyKey(on(client, keys), { key: 'k', fn: work.fn }),
    );
    expect(isIdempotencyResultNotStoredError(error)).toBe(true);
    const notStored = error as IdempotencyResultNotStoredError;
    expect(notStored.written).toBe('unknown');
    expect(notStored.message).toMatch(/reply to storing its result was lost/);
    const record = async () => (await keys.findOne({ _id: 'k' }))?.state;
    for (let i = 0; i < 100 && (await record()) !== 'completed'; i++) await sleep(20);
    expect(await record()).toBe('completed');
    expect(work.runs).toBe(1);
  });

  it('a completion the server refuses (a command error): written false, the key stays in progress', async () => {
    const { client, appName } = await failPoints.appClient();
    const keys = freshKeys();
    await failCommand(t.db, { times: 1 }, { failCommands: ['update'], errorCode: 2, appName });
    const error = await rejectionOf(
      withIdempotencyKey(on(client, keys), { key: 'k', fn: counted('value').fn }),
    );
    expect(isIdempotencyResultNotStoredError(error)).toBe(true);
    expect((error as IdempotencyResultNotStoredError).written).toBe(false);
    expect((error as Error).message).toMatch(/stays in progress/);
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ state: 'inProgress' });
  });

  it('a completion that matched nothing (lease taken over) with a write concern error: leaseLost, as without one', async () => {
    const { client, appName } = await failPoints.appClient();
    const keys = freshKeys();
    const gate = deferred();
    const firstCall = withIdempotencyKey(on(client, keys), {
      key: 'k',
      leaseMs: 100,
      fn: async () => {
        await gate.promise;
        return 'first';
      },
    });
    await sleep(200);
    const duplicate = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      leaseMs: 100,
      fn: async () => 'second',
    });
    expect(duplicate).toMatchObject({ outcome: 'executed', tookOver: true });
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['update'], writeConcernError: writeConcernTimeout, appName },
    );
    gate.resolve();
    expect(await firstCall).toEqual({
      outcome: 'executed',
      value: 'first',
      leaseLost: true,
      tookOver: false,
    });
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ state: 'completed', value: 'second' });
  });

  it('transaction mode, a commit error without a label: the error comes back while the server still holds the transaction open (the release does not wait for it to time out)', async () => {
    const { client, appName, commands } = await failPoints.appClient();
    const keys = freshKeys();
    const orders = await freshOrders();
    // A commit refused with no label: the runner gives up on it, and the server keeps the
    // transaction (and the fenced record) open until transactionLifetimeLimitSeconds (60 s).
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['commitTransaction'], errorCode: 2, errorLabels: [], appName },
    );
    commands.reset();
    let lsid: unknown;
    const error = await rejectionOf(
      withIdempotencyKey(on(client, keys), {
        key: 'k',
        client,
        fn: async ({ session }) => {
          lsid = session.id;
          await on(client, orders).insertOne({ _id: 'o1', total: 5 }, { session });
          return 'done';
        },
      }),
    );
    try {
      expect((error as MongoServerError).code).toBe(2);
      expect(commands.names()).toEqual([
        'findAndModify',
        'update',
        'insert',
        'update',
        'commitTransaction',
        'delete',
      ]);
      // The release was bounded: it gave up instead of waiting for the server's time limit.
      expect(commands.started.at(-1)?.command.maxTimeMS).toBeGreaterThan(0);
      // The proof that the call did not wait for the transaction to end: it still holds the
      // record now, so a plain write on it cannot get through.
      const blocked = await rejectionOf(keys.deleteOne({ _id: 'k' }, { maxTimeMS: 100 }));
      expect((blocked as MongoServerError).code).toBe(50);
      expect(await orders.countDocuments()).toBe(0);
    } finally {
      // Abort the left-open transaction now rather than at its time limit.
      await t.client.db('admin').command({ killSessions: [lsid] });
    }
    // Aborted: the business write is gone, and the claim is back as it was before the fence.
    expect(await orders.countDocuments()).toBe(0);
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({ state: 'inProgress' });
  });
});

describe(`an expired lease found by ${WORKERS} callers at once`, () => {
  const holderDied = async (keys: Collection<IdempotencyRecord>) => {
    const past = new Date(Date.now() - 1_000);
    await keys.insertOne({
      _id: 'k',
      state: 'inProgress',
      owner: 'dead-process',
      leaseUntil: past,
      createdAt: past,
      expiresAt: new Date(Date.now() + 3600_000),
    });
  };
  const collections = (name: string) =>
    race.all.map((client) => client.db(t.db.databaseName).collection<IdempotencyRecord>(name));

  it('naive: "read the expired lease, then take it over by _id": every caller takes it over and runs fn', async () => {
    const keys = freshKeys();
    await holderDied(keys);
    const allRead = barrier(WORKERS);
    let runs = 0;
    await Promise.all(
      collections(keys.collectionName).map(async (coll) => {
        const record = await coll.findOne({ _id: 'k' });
        await allRead();
        if (record === null || (record.leaseUntil?.getTime() ?? 0) > Date.now()) return;
        const taken = await coll.updateOne(
          { _id: 'k', state: 'inProgress' },
          { $set: { owner: String(Math.random()), leaseUntil: new Date(Date.now() + 60_000) } },
        );
        if (taken.matchedCount === 1) runs += 1;
      }),
    );
    expect(runs).toBe(WORKERS);
  });

  it('withIdempotencyKey: all read the expired lease before any takeover; exactly one takes it over and runs fn, the others answer inProgress', async () => {
    const keys = freshKeys();
    await holderDied(keys);
    const allRead = barrier(WORKERS);
    let runs = 0;
    const results = await Promise.all(
      collections(keys.collectionName).map((coll) => {
        // Every caller has read the expired record before any takeover is sent.
        const racing = new Proxy(coll, {
          get(target, property, receiver) {
            if (property === 'findOneAndUpdate') {
              return async (...args: unknown[]) => {
                await allRead();
                return (target.findOneAndUpdate as (...a: unknown[]) => unknown)(...args);
              };
            }
            return Reflect.get(target, property, receiver);
          },
        });
        return withIdempotencyKey(racing, {
          key: 'k',
          fn: async () => {
            runs += 1;
            await sleep(20);
            return 'charged once';
          },
        });
      }),
    );
    expect(runs).toBe(1);
    const executed = results.filter((r) => r.outcome === 'executed');
    expect(executed).toEqual([
      { outcome: 'executed', value: 'charged once', leaseLost: false, tookOver: true },
    ]);
    for (const r of results.filter((r) => r.outcome !== 'executed')) {
      expect(['inProgress', 'replayed']).toContain(r.outcome);
    }
    expect(await keys.findOne({ _id: 'k' })).toMatchObject({
      state: 'completed',
      value: 'charged once',
    });
  });
});

describe("fn's lease signal is made only when fn reads it", () => {
  /** AbortControllers constructed by src/idempotency.ts while `run` runs. */
  async function controllersMadeBy(run: () => Promise<unknown>): Promise<number> {
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        if (/src[\\/]idempotency\.ts/.test(new Error().stack ?? '')) made += 1;
      }
    };
    try {
      await run();
    } finally {
      globalThis.AbortController = Original;
    }
    return made;
  }
  const LEASE_MS = 123_457;
  const leaseTimers = (delays: readonly unknown[]) =>
    delays.filter((ms) => typeof ms === 'number' && ms > LEASE_MS - 10_000 && ms <= LEASE_MS);

  it('an fn that never reads its signal: no AbortController and no lease timer', async () => {
    const keys = freshKeys();
    const timers = vi.spyOn(globalThis, 'setTimeout');
    try {
      const made = await controllersMadeBy(() =>
        withIdempotencyKey(keys, { key: 'k', leaseMs: LEASE_MS, fn: async () => 'v' }),
      );
      expect(made).toBe(0);
      expect(leaseTimers(timers.mock.calls.map((call) => call[1]))).toEqual([]);
    } finally {
      timers.mockRestore();
    }
  });

  it('an fn that reads it: one AbortController and one lease timer, cleared when fn returns', async () => {
    const keys = freshKeys();
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const cleared = vi.spyOn(globalThis, 'clearTimeout');
    let signal: AbortSignal | undefined;
    try {
      const made = await controllersMadeBy(() =>
        withIdempotencyKey(keys, {
          key: 'k',
          leaseMs: LEASE_MS,
          fn: async (context) => {
            signal = context.signal;
            // Read twice: the same signal.
            expect(context.signal).toBe(signal);
            return 'v';
          },
        }),
      );
      expect(made).toBe(1);
      const leaseTimerIndexes = timers.mock.calls
        .map((call, i) => (leaseTimers([call[1]]).length === 1 ? i : -1))
        .filter((i) => i >= 0);
      expect(leaseTimerIndexes).toHaveLength(1);
      const handle = timers.mock.results[leaseTimerIndexes[0] as number]?.value;
      expect(cleared.mock.calls.map((call) => call[0])).toContain(handle);
      expect(signal?.aborted).toBe(false);
    } finally {
      timers.mockRestore();
      cleared.mockRestore();
    }
  });

  it('first read after the lease ended, fn still running: already aborted, with the lease error', async () => {
    const keys = freshKeys();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 30,
      fn: async (context) => {
        await sleep(80);
        const { signal } = context;
        return { aborted: signal.aborted, reason: isMongoAtomicsError(signal.reason) };
      },
    });
    expect(result).toMatchObject({ outcome: 'executed', value: { aborted: true, reason: true } });
  });
});

describe('TTL index', () => {
  it('ensureIdempotencyIndexes creates { expiresAt: 1 } with expireAfterSeconds 0 (one createIndexes); again is a no-op', async () => {
    const keys = freshKeys();
    expect(await ensureIdempotencyIndexes(keys)).toBe('expiresAt_1');
    expect(t.commands.names()).toEqual(['createIndexes']);
    expect(await ensureIdempotencyIndexes(keys)).toBe('expiresAt_1');
    const indexes = await keys.listIndexes().toArray();
    const ttl = indexes.filter((index) => index.name === 'expiresAt_1');
    expect(ttl).toHaveLength(1);
    expect(ttl[0]).toMatchObject({ key: { expiresAt: 1 }, expireAfterSeconds: 0 });
  });

  it('retentionMs sets expiresAt from completion', async () => {
    const keys = freshKeys();
    const before = Date.now();
    await withIdempotencyKey(keys, { key: 'k', retentionMs: 120_000, fn: async () => 1 });
    const record = await keys.findOne({ _id: 'k' });
    const retained = (record?.expiresAt.getTime() ?? 0) - before;
    expect(retained).toBeGreaterThanOrEqual(120_000);
    expect(retained).toBeLessThan(125_000);
  });
});

describe('invalid arguments', () => {
  const fn = async () => 1;
  const base = { key: 'k', fn };
  type Case = [label: string, options: () => unknown, option: string];
  const cases: Case[] = [
    ['options is null', () => null, 'options'],
    ['options is a string', () => 'k', 'options'],
    ['key is missing', () => ({ fn }), 'key'],
    ['key is empty', () => ({ ...base, key: '' }), 'key'],
    ['key is a number', () => ({ ...base, key: 42 }), 'key'],
    ['key is too long', () => ({ ...base, key: 'x'.repeat(513) }), 'key'],
    ['fn is missing', () => ({ key: 'k' }), 'fn'],
    ['fn is not a function', () => ({ ...base, fn: 'run' }), 'fn'],
    ['fingerprint is empty', () => ({ ...base, fingerprint: '' }), 'fingerprint'],
    ['fingerprint is an object', () => ({ ...base, fingerprint: { a: 1 } }), 'fingerprint'],
    ['leaseMs is 0', () => ({ ...base, leaseMs: 0 }), 'leaseMs'],
    ['leaseMs is negative', () => ({ ...base, leaseMs: -5 }), 'leaseMs'],
    ['leaseMs is NaN', () => ({ ...base, leaseMs: Number.NaN }), 'leaseMs'],
    ['leaseMs is Infinity', () => ({ ...base, leaseMs: Infinity }), 'leaseMs'],
    ['leaseMs is a string', () => ({ ...base, leaseMs: '100' }), 'leaseMs'],
    ['leaseMs overflows setTimeout', () => ({ ...base, leaseMs: 2 ** 31 }), 'leaseMs'],
    ['retentionMs is 0', () => ({ ...base, retentionMs: 0 }), 'retentionMs'],
    [
      'retentionMs does not exceed leaseMs',
      () => ({ ...base, leaseMs: 1_000, retentionMs: 1_000 }),
      'retentionMs',
    ],
    ['wait is a number', () => ({ ...base, wait: 100 }), 'wait'],
    ['wait.timeoutMs is missing', () => ({ ...base, wait: {} }), 'wait.timeoutMs'],
    ['wait.timeoutMs is 0', () => ({ ...base, wait: { timeoutMs: 0 } }), 'wait.timeoutMs'],
    [
      'wait.intervalMs is negative',
      () => ({ ...base, wait: { timeoutMs: 100, intervalMs: -1 } }),
      'wait.intervalMs',
    ],
    [
      'wait has an unknown key',
      () => ({ ...base, wait: { timeoutMs: 100, interval: 5 } }),
      'wait.interval',
    ],
    ['client is not a client', () => ({ ...base, client: {} }), 'client'],
    ['transaction without client', () => ({ ...base, transaction: {} }), 'transaction'],
    [
      'transaction is not an object',
      () => ({ ...base, client: t.client, transaction: 'fast' }),
      'transaction',
    ],
    [
      'transaction.maxAttempts is 0',
      () => ({ ...base, client: t.client, transaction: { maxAttempts: 0 } }),
      'transaction.maxAttempts',
    ],
    [
      'transaction.signal is not a signal',
      () => ({ ...base, client: t.client, transaction: { signal: {} } }),
      'transaction.signal',
    ],
    ['a session is passed', () => ({ ...base, session: {} }), 'session'],
    ['an unknown option (typo)', () => ({ ...base, lease: 5 }), 'lease'],
  ];

  it.each(cases)(
    '%s: InvalidArgumentError naming it, no command sent',
    async (_label, options, option) => {
      const keys = freshKeys();
      const error = await rejectionOf(withIdempotencyKey(keys, options() as never));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(isInvalidArgumentError(error)).toBe(true);
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as InvalidArgumentError).primitive).toBe('withIdempotencyKey');
      expect(t.commands.names()).toEqual([]);
    },
  );

  it('a client that does not own the collection: InvalidArgumentError on "client", no command sent on either client', async () => {
    const keys = freshKeys();
    const error = await rejectionOf(
      withIdempotencyKey(keys, { key: 'k', client: second.client, fn: async () => 1 }),
    );
    expect(isInvalidArgumentError(error)).toBe(true);
    expect(error).toMatchObject({ option: 'client', primitive: 'withIdempotencyKey' });
    expect(t.commands.names()).toEqual([]);
    expect(second.commands.names()).toEqual([]);
    // The owner itself is accepted, through the collection's own Db too.
    const ok = await withIdempotencyKey(on(second.client, keys), {
      key: 'k',
      client: second.client,
      fn: async () => 1,
    });
    expect(ok.outcome).toBe('executed');
  });

  it('a collection that is not a driver Collection: InvalidArgumentError on "collection", for both functions', async () => {
    t.commands.reset();
    const error = await rejectionOf(withIdempotencyKey({} as never, { key: 'k', fn }));
    expect((error as InvalidArgumentError).option).toBe('collection');
    const indexError = await rejectionOf(ensureIdempotencyIndexes({} as never));
    expect((indexError as InvalidArgumentError).option).toBe('collection');
    expect((indexError as InvalidArgumentError).primitive).toBe('ensureIdempotencyIndexes');
    expect(t.commands.names()).toEqual([]);
  });
});

/**
 * `mongo-atomics/testing`, the kit users run in their own test suites: every function, against
 * the test backend. The kit must work under any test runner, so it never imports vitest; these
 * tests use vitest only to check it.
 */
import type { Collection, MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, isInvalidArgumentError } from '../src/errors.js';
import { guardedDecrement } from '../src/guarded-decrement.js';
import {
  assertInvariant,
  barrier,
  clearFailPoint,
  FailPointError,
  InvariantViolationError,
  NaiveVersusSafeError,
  naiveVersusSafe,
  type RaceClients,
  race,
  raceClients,
  setFailPoint,
  uniqueAppName,
  withFailPoint,
} from '../src/testing/index.js';
import { rejectionOf } from './support/async.js';
import { useFailPointClients } from './support/failpoints.js';
import { testUri, useTestDatabase } from './support/mongo.js';

interface Counter {
  _id: string;
  n: number;
}

const t = useTestDatabase('testing_kit');
const WORKERS = 20;
let pool: RaceClients;
beforeAll(async () => {
  pool = await raceClients(testUri(), WORKERS, { monitorCommands: true });
});
afterAll(async () => {
  await pool?.close();
});

async function counter(prefix: string): Promise<string> {
  const name = t.uniqueName(prefix);
  await t.db.collection<Counter>(name).insertOne({ _id: 'c', n: 0 });
  return name;
}
const via = (client: MongoClient, name: string): Collection<Counter> =>
  client.db(t.db.databaseName).collection<Counter>(name);
const finalN = async (name: string) =>
  (await t.db.collection<Counter>(name).findOne({ _id: 'c' }))?.n;

/** Object.prototype's own keys, to show that tallies keyed by user strings never reach it. */
const prototypeKeys = () => Object.getOwnPropertyNames(Object.prototype).sort();

describe('barrier', () => {
  it('opens only when every party has arrived, then lets later arrivals straight through', async () => {
    const gate = barrier(3);
    const passed: number[] = [];
    const first = gate().then(() => passed.push(1));
    const second = gate().then(() => passed.push(2));
    await new Promise((resolve) => setImmediate(resolve));
    expect(passed).toEqual([]);
    expect({ arrived: gate.arrived, parties: gate.parties, isOpen: gate.isOpen }).toEqual({
      arrived: 2,
      parties: 3,
      isOpen: false,
    });
    await gate();
    await Promise.all([first, second]);
    expect(passed.sort()).toEqual([1, 2]);
    expect(gate.isOpen).toBe(true);
    await gate(); // a fourth arrival after opening does not wait
    expect(gate.arrived).toBe(3);
  });

  it('leave(): a party that will never arrive no longer holds the others', async () => {
    const gate = barrier(2);
    const waiting = gate();
    expect(gate.isOpen).toBe(false);
    gate.leave();
    await waiting;
    expect({ parties: gate.parties, isOpen: gate.isOpen }).toEqual({ parties: 1, isOpen: true });
  });

  it('rejects a party count that is not a positive integer, naming it', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '3', undefined]) {
      const error = (() => {
        try {
          barrier(bad as number);
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ primitive: 'barrier', option: 'parties' });
    }
  });
});

describe('race', () => {
  it('tallies outcomes: values by their own `outcome`, primitives as strings, errors by name', async () => {
    const report = await race(6, (i) => {
      if (i === 0) return { outcome: 'won' as const };
      if (i === 1) return { outcome: 'lost' as const };
      if (i === 2) return { outcome: 'lost' as const };
      if (i === 3) return true;
      if (i === 4) throw new RangeError('bad');
      return Promise.reject(new TypeError('worse'));
    });
    expect({ ...report.tally }).toEqual({
      won: 1,
      lost: 2,
      true: 1,
      'error:RangeError': 1,
      'error:TypeError': 1,
    });
    expect(report.settled.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
    ]);
    expect(report.values).toEqual([
      { outcome: 'won' },
      { outcome: 'lost' },
      { outcome: 'lost' },
      true,
    ]);
    expect(report.errors.map((e) => (e as Error).message)).toEqual(['bad', 'worse']);
    expect([report.count('lost'), report.count('missing')]).toEqual([2, 0]);
    expect(Object.isFrozen(report.tally)).toBe(true);
  });

  it('ignores an inherited `outcome` and tallies objects without one as "fulfilled"', async () => {
    const inherited = Object.create({ outcome: 'fromPrototype' }) as object;
    const report = await race(2, (i) => (i === 0 ? inherited : { other: 1 }));
    expect({ ...report.tally }).toEqual({ fulfilled: 2 });
  });

  it('outcome strings from user data ("__proto__", "constructor") are plain keys of a null-prototype tally', async () => {
    const before = prototypeKeys();
    const names = ['__proto__', 'constructor', '__proto__', 'toString', 'hasOwnProperty'];
    const report = await race(names.length, (i) => ({ outcome: names[i] as string }));
    expect(Object.getPrototypeOf(report.tally)).toBeNull();
    expect(Object.keys(report.tally).sort()).toEqual([
      '__proto__',
      'constructor',
      'hasOwnProperty',
      'toString',
    ]);
    expect(report.count('__proto__')).toBe(2);
    expect(report.count('constructor')).toBe(1);
    expect(report.count('valueOf')).toBe(0);
    expect(prototypeKeys()).toEqual(before);
    expect(({} as Record<string, unknown>).constructor).toBe(Object);
  });

  it('a custom `outcome` names each value; a non-string name is refused', async () => {
    const report = await race(4, (i) => i % 2 === 0, {
      outcome: (ok) => (ok ? 'sold' : 'refused'),
    });
    expect({ ...report.tally }).toEqual({ sold: 2, refused: 2 });
    const error = await rejectionOf(race(1, () => 1, { outcome: () => 7 as unknown as string }));
    expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'options.outcome' });
  });

  it('starts no call when an argument is bad', async () => {
    let called = 0;
    const fn = () => {
      called += 1;
    };
    for (const [args, option] of [
      [[0, fn], 'calls'],
      [[2.5, fn], 'calls'],
      [[2, 'fn'], 'fn'],
      [[2, fn, null], 'options'],
      [[2, fn, { outcome: 'outcome' }], 'options.outcome'],
    ] as const) {
      const error = await rejectionOf((race as (...a: unknown[]) => Promise<unknown>)(...args));
      expect(isInvalidArgumentError(error)).toBe(true);
      expect(error).toMatchObject({ primitive: 'race', option });
    }
    expect(called).toBe(0);
  });

  it('sync(): every call passes it only once all have reached it', async () => {
    const order: string[] = [];
    await race(5, async (i, { sync }) => {
      await new Promise((resolve) => setTimeout(resolve, (5 - i) * 3));
      order.push(`before ${i}`);
      await sync();
      order.push(`after ${i}`);
    });
    expect(order.slice(0, 5).every((step) => step.startsWith('before'))).toBe(true);
    expect(order.slice(5).every((step) => step.startsWith('after'))).toBe(true);
  });

  it('sync(): a call that fails before reaching it is withdrawn, so the others do not wait forever', async () => {
    const report = await race(4, async (i, { sync }) => {
      if (i === 0) throw new Error('failed before sync');
      await sync();
      await sync(); // a second call by the same party waits for the same opening
      return { outcome: 'synced' };
    });
    expect({ ...report.tally }).toEqual({ synced: 3, 'error:Error': 1 });
  });

  it('through raceClients and sync(), naive read-then-$set loses updates; $inc through the same harness does not', async () => {
    const naive = await counter('naive');
    await race(WORKERS, async (i, { sync }) => {
      const coll = via(pool.clients[i] as MongoClient, naive);
      const doc = await coll.findOne({ _id: 'c' });
      await sync();
      await coll.updateOne({ _id: 'c' }, { $set: { n: (doc?.n ?? 0) + 1 } });
    });
    // Every read came before any write, so every writer wrote 0 + 1.
    expect(await finalN(naive)).toBe(1);

    const atomic = await counter('inc');
    const report = await race(WORKERS, async (i, { sync }) => {
      await sync();
      return via(pool.clients[i] as MongoClient, atomic).updateOne(
        { _id: 'c' },
        { $inc: { n: 1 } },
      );
    });
    expect(report.errors).toEqual([]);
    expect(await finalN(atomic)).toBe(WORKERS);
  });

  it("tallies a primitive's outcomes: 20 buyers of 1 unit against a stock of 12", async () => {
    const name = t.uniqueName('stock');
    await t.db.collection<{ _id: string; stock: number }>(name).insertOne({ _id: 'p1', stock: 12 });
    const report = await race(WORKERS, (i) =>
      guardedDecrement(
        (pool.clients[i] as MongoClient)
          .db(t.db.databaseName)
          .collection<{ _id: string; stock: number }>(name),
        { filter: { _id: 'p1' }, field: 'stock', amount: 1 },
      ),
    );
    expect({ ...report.tally }).toEqual({ decremented: 12, insufficient: 8 });
  });
});

describe('raceClients', () => {
  it('gives connected clients with one connection each, and closes them', async () => {
    const { clients, close } = await raceClients(testUri(), 3, { appName: 'kit-race-clients' });
    expect(clients).toHaveLength(3);
    expect(new Set(clients).size).toBe(3);
    for (const client of clients) {
      expect(client.options.maxPoolSize).toBe(1);
      expect(client.options.appName).toBe('kit-race-clients');
      expect(await client.db('admin').command({ ping: 1 })).toMatchObject({ ok: 1 });
    }
    await close();
    await close(); // idempotent
    await expect(clients[0]?.db('admin').command({ ping: 1 })).rejects.toThrow();
  });

  it('rejects bad arguments before opening anything, naming them', async () => {
    for (const [args, option] of [
      [['', 2], 'uri'],
      [[testUri(), 0], 'count'],
      [[testUri(), 2, null], 'options'],
    ] as const) {
      const error = await rejectionOf(
        (raceClients as (...a: unknown[]) => Promise<unknown>)(...args),
      );
      expect(error).toMatchObject({
        name: 'InvalidArgumentError',
        primitive: 'raceClients',
        option,
      });
    }
  });

  it('when a client cannot connect, the error is thrown (no half-open set is returned)', async () => {
    const error = await rejectionOf(
      raceClients('mongodb://127.0.0.1:1/?directConnection=true', 2, {
        serverSelectionTimeoutMS: 200,
      }),
    );
    expect((error as Error).name).toBe('MongoServerSelectionError');
  });
});

describe('assertInvariant', () => {
  it('resolves when the check returns no violations', async () => {
    await expect(assertInvariant('nothing wrong', async () => [])).resolves.toBeUndefined();
  });

  it('throws an InvariantViolationError listing every violation', async () => {
    const name = t.uniqueName('inv');
    await t.db.collection<{ _id: string; stock: number }>(name).insertMany([
      { _id: 'a', stock: -1 },
      { _id: 'b', stock: 3 },
      { _id: 'c', stock: -2 },
    ]);
    const error = await rejectionOf(
      assertInvariant('stock never below 0', async () =>
        (
          await t.db
            .collection(name)
            .find({ stock: { $lt: 0 } })
            .sort({ _id: 1 })
            .toArray()
        ).map((doc) => `${doc._id}: stock ${doc.stock}`),
      ),
    );
    expect(error).toBeInstanceOf(InvariantViolationError);
    expect(error).toMatchObject({
      name: 'InvariantViolationError',
      invariant: 'stock never below 0',
      violations: ['a: stock -1', 'c: stock -2'],
    });
    expect((error as Error).message).toBe(
      'invariant "stock never below 0" violated (2):\n  - a: stock -1\n  - c: stock -2',
    );
  });

  it('a check that returns anything but an array of strings is refused, not taken as passing', async () => {
    for (const returned of [undefined, true, 'ok', [1]]) {
      const error = await rejectionOf(
        assertInvariant('x', () => returned as unknown as readonly string[]),
      );
      expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'check' });
    }
  });
});

describe('naiveVersusSafe', () => {
  const increments = {
    invariant: 'n equals the number of increments',
    calls: WORKERS,
    setup: () => counter('nvs'),
    naive: async (i: number, { state, sync }: { state: string; sync: () => Promise<void> }) => {
      const coll = via(pool.clients[i] as MongoClient, state);
      const doc = await coll.findOne({ _id: 'c' });
      await sync();
      await coll.updateOne({ _id: 'c' }, { $set: { n: (doc?.n ?? 0) + 1 } });
      return { outcome: 'incremented' };
    },
    safe: async (i: number, { state }: { state: string }) => {
      await via(pool.clients[i] as MongoClient, state).updateOne({ _id: 'c' }, { $inc: { n: 1 } });
      return { outcome: 'incremented' };
    },
    check: async (state: string) => {
      const n = await finalN(state);
      return n === WORKERS ? [] : [`n is ${n} after ${WORKERS} increments`];
    },
  };

  it('naiveVersusSafe: read-then-$set breaks the invariant, $inc holds it: both verdicts returned', async () => {
    const runs: string[] = [];
    const result = await naiveVersusSafe({
      ...increments,
      setup: (run) => {
        runs.push(run);
        return counter(run);
      },
    });
    expect(runs).toEqual(['naive', 'safe']);
    expect(result.naive.held).toBe(false);
    expect(result.naive.violations).toEqual([`n is 1 after ${WORKERS} increments`]);
    expect(result.safe).toMatchObject({ held: true, violations: [] });
    expect({ ...result.safe.report.tally }).toEqual({ incremented: WORKERS });
  });

  it('throws when the naive code holds: a storm that does not show the race proves nothing', async () => {
    const error = await rejectionOf(naiveVersusSafe({ ...increments, naive: increments.safe }));
    expect(error).toBeInstanceOf(NaiveVersusSafeError);
    expect((error as Error).message).toContain('the naive code held');
    expect((error as NaiveVersusSafeError).result.naive.held).toBe(true);
  });

  it('throws when the safe code breaks, with both verdicts in the message', async () => {
    const error = await rejectionOf(naiveVersusSafe({ ...increments, safe: increments.naive }));
    expect(error).toBeInstanceOf(NaiveVersusSafeError);
    const message = (error as Error).message;
    expect(message).toContain('the safe code broke the invariant');
    expect(message).not.toContain('the naive code held');
    expect(message).toContain(`naive: broke; outcomes {"incremented":${WORKERS}}`);
    expect(message).toContain(`n is 1 after ${WORKERS} increments`);
  });

  it('a safe call that throws is a violation unless allowSafeErrors', async () => {
    const throwing = {
      ...increments,
      safe: async (i: number, context: { state: string; sync: () => Promise<void> }) => {
        if (i === 3) throw new RangeError('boom');
        return increments.safe(i, context);
      },
      // Holds whatever happens, so only the thrown call can make the safe storm break.
      check: async (state: string) =>
        (await finalN(state)) === 1 ? [`lost updates in ${state}`] : [],
    };
    const error = await rejectionOf(naiveVersusSafe(throwing));
    expect((error as NaiveVersusSafeError).result.safe.violations).toEqual([
      'call 3 threw RangeError: boom',
    ]);
    const allowed = await naiveVersusSafe({ ...throwing, allowSafeErrors: true });
    expect({ ...allowed.safe.report.tally }).toEqual({
      incremented: WORKERS - 1,
      'error:RangeError': 1,
    });
  });

  it('refuses a bad spec before running any storm', async () => {
    let setups = 0;
    const spec = {
      ...increments,
      setup: () => {
        setups += 1;
        return 'unused';
      },
    };
    for (const [patch, option] of [
      [{ calls: 0 }, 'calls'],
      [{ invariant: '' }, 'invariant'],
      [{ check: undefined }, 'check'],
      [{ naive: null }, 'naive'],
      [{ allowSafeErrors: 'yes' }, 'allowSafeErrors'],
    ] as const) {
      const error = await rejectionOf(
        naiveVersusSafe({ ...spec, ...patch } as unknown as Parameters<typeof naiveVersusSafe>[0]),
      );
      expect(error).toMatchObject({ name: 'InvalidArgumentError', option });
    }
    expect(setups).toBe(0);
  });
});

describe('fail points', () => {
  const failPoints = useFailPointClients(() => t.db, 'kitfp');
  const configureCalls = () =>
    t.commands.started.filter((event) => event.commandName === 'configureFailPoint');

  it('withFailPoint { times: 1 }: the targeted client fails once, another client not at all; one command on, one off', async () => {
    const app = await failPoints.appClient();
    const other = await failPoints.appClient();
    const name = await counter('fp_times');
    t.commands.reset();
    const seen = await withFailPoint(
      t.client,
      { mode: { times: 1 }, data: { failCommands: ['find'], errorCode: 2, appName: app.appName } },
      async () => {
        const fromOther = await via(other.client, name).findOne({ _id: 'c' });
        const first = await rejectionOf(via(app.client, name).findOne({ _id: 'c' }));
        const second = await via(app.client, name).findOne({ _id: 'c' });
        return { fromOther, first, second };
      },
    );
    expect(seen.fromOther).toEqual({ _id: 'c', n: 0 });
    expect(seen.first).toMatchObject({ name: 'MongoServerError', code: 2 });
    expect(seen.second).toEqual({ _id: 'c', n: 0 });
    const sent = configureCalls().map((event) => ({
      db: event.databaseName,
      mode: event.command.mode,
      data: event.command.data,
    }));
    expect(sent).toEqual([
      {
        db: 'admin',
        mode: { times: 1 },
        data: { failCommands: ['find'], errorCode: 2, appName: app.appName },
      },
      { db: 'admin', mode: 'off', data: undefined },
    ]);
  });

  it('{ skip: 1 } lets the first command through and fails the rest; alwaysOn fails every one until cleared', async () => {
    const app = await failPoints.appClient();
    const name = await counter('fp_skip');
    const find = () => via(app.client, name).findOne({ _id: 'c' });
    await setFailPoint(t.client, {
      mode: { skip: 1 },
      data: { failCommands: ['find'], errorCode: 2, appName: app.appName },
    });
    await expect(find()).resolves.toEqual({ _id: 'c', n: 0 });
    await expect(find()).rejects.toMatchObject({ code: 2 });
    await expect(find()).rejects.toMatchObject({ code: 2 });
    await setFailPoint(t.client, {
      mode: 'alwaysOn',
      data: { failCommands: ['find'], errorCode: 2, appName: app.appName },
    });
    await expect(find()).rejects.toMatchObject({ code: 2 });
    await expect(find()).rejects.toMatchObject({ code: 2 });
    await clearFailPoint(t.client);
    await expect(find()).resolves.toEqual({ _id: 'c', n: 0 });
  });

  it('withFailPoint turns the fail point off when the callback throws, and rethrows its error', async () => {
    const app = await failPoints.appClient();
    const name = await counter('fp_finally');
    const failure = new Error('test body failed');
    const error = await rejectionOf(
      withFailPoint(
        t.client,
        { mode: 'alwaysOn', data: { failCommands: ['find'], errorCode: 2, appName: app.appName } },
        () => {
          throw failure;
        },
      ),
    );
    expect(error).toBe(failure);
    await expect(via(app.client, name).findOne({ _id: 'c' })).resolves.toEqual({ _id: 'c', n: 0 });
  });

  it('a bad spec is refused naming the field, and no command is sent', async () => {
    t.commands.reset();
    const data = { failCommands: ['find'] };
    for (const [spec, option] of [
      [{ mode: 'off', data }, 'spec.mode'],
      [{ mode: { times: 0 }, data }, 'spec.mode.times'],
      [{ mode: { skip: -1 }, data }, 'spec.mode.skip'],
      [{ mode: 'alwaysOn', data: { failCommands: [] } }, 'spec.data.failCommands'],
      [{ mode: 'alwaysOn', data: { failCommands: [''] } }, 'spec.data.failCommands.0'],
      [{ mode: 'alwaysOn', data: { failCommands: ['find'], appName: 3 } }, 'spec.data.appName'],
      [{ mode: 'alwaysOn' }, 'spec.data'],
    ] as const) {
      for (const run of [
        () => setFailPoint(t.client, spec as never),
        () => withFailPoint(t.client, spec as never, () => 1),
      ]) {
        const error = await rejectionOf(run());
        expect(error).toMatchObject({ name: 'InvalidArgumentError', option });
      }
    }
    const fnError = await rejectionOf(
      withFailPoint(t.client, { mode: 'alwaysOn', data }, 'fn' as never),
    );
    expect(fnError).toMatchObject({ name: 'InvalidArgumentError', option: 'fn' });
    expect(t.commands.names()).toEqual([]);
  });

  // The offline server, like mongodb-memory-server here, has test commands enabled. A mongod
  // without `enableTestCommands=1` does not know the command and answers
  // `{ ok: 0, errmsg: "no such command: 'configureFailPoint'", code: 59, codeName: 'CommandNotFound' }`
  // (src/mongo/db/service_entry_point_common.cpp); the driver turns that into a
  // MongoServerError, which this stand-in client throws.
  it('a server without test commands: FailPointError saying enableTestCommands=1 is needed, cause kept', async () => {
    const { MongoServerError } = await import('mongodb');
    const refusal = new MongoServerError({
      ok: 0,
      errmsg: "no such command: 'configureFailPoint'",
      code: 59,
      codeName: 'CommandNotFound',
    });
    const sent: unknown[] = [];
    const refusing = {
      db: (name: string) => ({
        command: async (command: unknown) => {
          sent.push({ name, command });
          throw refusal;
        },
      }),
    } as unknown as MongoClient;
    let ran = false;
    const error = await rejectionOf(
      withFailPoint(refusing, { mode: 'alwaysOn', data: { failCommands: ['find'] } }, () => {
        ran = true;
      }),
    );
    expect(error).toBeInstanceOf(FailPointError);
    expect((error as Error).message).toContain('enableTestCommands=1');
    expect((error as Error).cause).toBe(refusal);
    expect(ran).toBe(false);
    expect(sent).toHaveLength(1);
    await expect(clearFailPoint(refusing)).rejects.toThrow(/enableTestCommands=1/);
  });

  it('other refusals (e.g. Unauthorized) keep the server message', async () => {
    const refusing = {
      db: () => ({
        command: async () => {
          throw Object.assign(new Error('not authorized on admin to execute command'), {
            code: 13,
          });
        },
      }),
    } as unknown as MongoClient;
    const error = await rejectionOf(clearFailPoint(refusing));
    expect(error).toMatchObject({ name: 'FailPointError' });
    expect((error as Error).message).toBe(
      'clearFailPoint: configureFailPoint failed: Error: not authorized on admin to execute command',
    );
  });

  it('when the callback throws and turning the fail point off fails too, says it may still be on', async () => {
    let calls = 0;
    const flaky = {
      db: () => ({
        command: async () => {
          calls += 1;
          if (calls > 1) throw new Error('connection closed');
          return { ok: 1 };
        },
      }),
    } as unknown as MongoClient;
    const failure = new Error('body failed');
    const error = await rejectionOf(
      withFailPoint(flaky, { mode: 'alwaysOn', data: { failCommands: ['find'] } }, () => {
        throw failure;
      }),
    );
    expect(error).toBeInstanceOf(FailPointError);
    expect((error as Error).message).toContain('may still be on');
    const cause = (error as Error).cause as AggregateError;
    expect(cause.errors[0]).toBe(failure);
    expect((cause.errors[1] as Error).message).toContain('connection closed');
  });

  it('uniqueAppName gives a new name each call, with the prefix', () => {
    const a = uniqueAppName('kit');
    const b = uniqueAppName('kit');
    expect(a).not.toBe(b);
    expect(a.startsWith(`kit-${process.pid}-`)).toBe(true);
  });
});

/**
 * withIdempotencyKey: the read loop's exits (a record that vanished, the MAX_ROUNDS give-up on
 * each of its three paths), the lease boundary (a lease ending exactly now is taken over), the
 * exact commands (claim document, takeover filter and update, completion, release, fence), the
 * wait intervals, the `held` answer, the abort signal, and the exact refusal texts. Written to
 * kill the mutants tests/idempotency.test.ts left alive (npm run mutation; docs/reliability.md,
 * "Mutation testing").
 *
 * Clock: several tests freeze `Date.now` (the library's lease clock) so that dates and delays
 * are exact; `performance.now` (the wait deadline) keeps running, so waits still end (their limits are generous: a first read that comes after the
 * deadline under load would skip the sleep the test looks for).
 * Delays are read from a spy on `setTimeout` (it still schedules): the driver's own timers are
 * in that list too, so the tests look for the library's delay in it, never at its length.
 *
 * Interleavings that cannot be produced on demand (a record deleted between two reads, a claim
 * the server answers with E11000, a churn of claims that never ends, a takeover that keeps losing, a fence that
 * keeps failing, a takeover blocked by a transaction at an exact clock) are made by a Proxy on
 * the real records collection that runs or scripts the other caller's action at that point;
 * each test says what it scripts.
 */
import {
  type Collection,
  type CommandStartedEvent,
  type Document,
  MongoServerError,
} from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  InvalidArgumentError,
  isIdempotencyKeyConflictError,
  MongoAtomicsError,
} from '../../src/errors.js';
import {
  type IdempotencyRecord,
  IdempotencyState,
  withIdempotencyKey,
} from '../../src/idempotency.js';
import { rejectionOf, sleep } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_idempotency');

/** A fixed lease clock (ms since the epoch), for exact dates. */
const T = 1_700_000_000_000;

afterEach(() => {
  vi.restoreAllMocks();
});

function freshKeys(name = 'keys'): Collection<IdempotencyRecord> {
  const coll = t.db.collection<IdempotencyRecord>(t.uniqueName(name));
  t.commands.reset();
  return coll;
}

/** The real collection with some methods replaced (the other caller's action, or a reply). */
function scripted(
  coll: Collection<IdempotencyRecord>,
  overrides: Record<string, (...args: never[]) => unknown>,
): Collection<IdempotencyRecord> {
  return new Proxy(coll, {
    get(target, property, receiver) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) {
        return overrides[property];
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

function freezeClock() {
  vi.spyOn(Date, 'now').mockReturnValue(T);
}

/** The delays passed to setTimeout from now on (the driver's included). */
function timerDelays(): () => unknown[] {
  const spy = vi.spyOn(globalThis, 'setTimeout');
  return () => spy.mock.calls.map((call) => call[1]);
}

const sent = (name: string): CommandStartedEvent[] =>
  t.commands.started.filter((event) => event.commandName === name);
const only = (name: string): Document => {
  const events = sent(name);
  expect(events).toHaveLength(1);
  return (events[0] as CommandStartedEvent).command;
};

/** Was this findOneAndUpdate call the claim (an upsert), not a takeover? */
const isClaim = (args: readonly unknown[]): boolean =>
  (args[2] as { upsert?: unknown } | undefined)?.upsert === true;

/** The real findOneAndUpdate of `coll`, for the claims a scripted collection lets through. */
const realFindOneAndUpdate =
  (coll: Collection<IdempotencyRecord>) =>
  (...args: never[]): unknown =>
    (coll.findOneAndUpdate as (...a: never[]) => unknown).apply(coll, args);

/** The claim command (the first findAndModify sent). */
const claimCommand = (): Document => {
  const [first] = sent('findAndModify');
  expect(first).toBeDefined();
  return (first as CommandStartedEvent).command;
};

/** The reply of a server that does not retry an upsert that met a duplicate key. */
const duplicateKey = () =>
  new MongoServerError({
    code: 11000,
    errmsg: 'E11000 duplicate key error collection: db.keys index: _id_ dup key: { _id: "k" }',
  });

/** A record of a live or expired claim held by someone else, written directly. */
async function heldBy(
  coll: Collection<IdempotencyRecord>,
  owner: string,
  leaseUntil: Date,
  extra: Partial<IdempotencyRecord> = {},
) {
  await coll.insertOne({
    _id: 'k',
    state: 'inProgress',
    owner,
    leaseUntil,
    createdAt: new Date(T - 10_000),
    expiresAt: new Date(T + 3_600_000),
    ...extra,
  });
  t.commands.reset();
}

const giveUp =
  'withIdempotencyKey: key "k" was claimed by another caller 20 times in a row and released or lost again each time; giving up, fn did not run. Call again later; if it keeps happening, check that fn finishes within leaseMs (callers that outlive their lease are taken over)';

describe('the read loop', () => {
  it('the record vanishes while a duplicate waits: the next poll finds nothing, the call claims again and runs fn once', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() + 60_000));
    let reads = 0;
    // Scripted: the holder releases the key just before our first poll.
    const racing = scripted(keys, {
      findOne: async (...args: never[]) => {
        reads += 1;
        if (reads === 1) await keys.deleteOne({ _id: 'k' });
        return (keys.findOne as (...a: never[]) => unknown)(...args);
      },
    });
    let runs = 0;
    const result = await withIdempotencyKey(racing, {
      key: 'k',
      wait: { timeoutMs: 5_000, intervalMs: 5 },
      fn: async () => {
        runs += 1;
        return 'mine';
      },
    });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value: 'mine',
      leaseLost: false,
      tookOver: false,
    });
    expect(runs).toBe(1);
    expect(reads).toBe(1);
    // The claim that found the holder, the holder's release (same client), our poll, the new
    // claim, the completion.
    expect(t.commands.names()).toEqual([
      'findAndModify',
      'delete',
      'find',
      'findAndModify',
      'update',
    ]);
    const record = await keys.findOne({ _id: 'k' });
    expect(record).toMatchObject({ state: 'completed', value: 'mine' });
    expect(record?.owner).not.toBe('holder');
  });

  it('a claim answered with E11000 (a server that does not retry the upsert): the record is read with find, as the old insert did', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k', fn: async () => 'theirs' });
    t.commands.reset();
    let claims = 0;
    const unretried = scripted(keys, {
      findOneAndUpdate: async () => {
        claims += 1;
        throw duplicateKey();
      },
    });
    const result = await withIdempotencyKey(unretried, { key: 'k', fn: async () => 'mine' });
    expect(result).toStrictEqual({ outcome: 'replayed', value: 'theirs' });
    expect(claims).toBe(1);
    expect(t.commands.names()).toEqual(['find']);
  });

  it('the record vanishes between a claim answered with E11000 and our read: the call claims again and runs fn once', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() + 60_000));
    let claims = 0;
    // Scripted: the first claim meets the duplicate key unretried; the holder releases the key
    // before our read.
    const racing = scripted(keys, {
      findOneAndUpdate: async (...args: never[]) => {
        claims += 1;
        if (claims > 1) return realFindOneAndUpdate(keys)(...args);
        await keys.deleteOne({ _id: 'k' });
        throw duplicateKey();
      },
    });
    const result = await withIdempotencyKey(racing, { key: 'k', fn: async () => 'mine' });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value: 'mine',
      leaseLost: false,
      tookOver: false,
    });
    expect(claims).toBe(2);
    expect(t.commands.names()).toEqual(['delete', 'find', 'findAndModify', 'update']);
  });

  it('claims that keep failing while every read finds nothing: gives up after 20 claims', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() + 60_000));
    let claims = 0;
    // Scripted: every claim meets a duplicate key the server did not retry, and every read
    // then finds the key released (a churn of claims and releases).
    const churn = scripted(keys, {
      findOneAndUpdate: async () => {
        claims += 1;
        throw duplicateKey();
      },
      findOne: async () => null,
    });
    let runs = 0;
    const error = await rejectionOf(
      withIdempotencyKey(churn, {
        key: 'k',
        fn: async () => {
          runs += 1;
          return 1;
        },
      }),
    );
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toBe(giveUp);
    expect(runs).toBe(0);
    expect(claims).toBe(20);
    expect(t.commands.names()).toEqual([]);
  });

  it('takeovers that keep losing: gives up after 20 rounds (one claim, 19 reads)', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() - 60_000));
    let takeovers = 0;
    // Scripted: another caller wins every takeover first.
    const losing = scripted(keys, {
      findOneAndUpdate: async (...args: never[]) => {
        if (isClaim(args)) return realFindOneAndUpdate(keys)(...args);
        takeovers += 1;
        return null;
      },
    });
    const error = await rejectionOf(withIdempotencyKey(losing, { key: 'k', fn: async () => 1 }));
    expect((error as Error).message).toBe(giveUp);
    expect(takeovers).toBe(20);
    // The claim's answer is the first read.
    expect(t.commands.names()).toEqual(['findAndModify', ...Array(19).fill('find')]);
  });

  it('transaction mode, takeovers whose fence keeps failing: gives up after 20 rounds; fn never runs', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() - 60_000));
    let fences = 0;
    // Scripted: every takeover wins, and every fence then finds the claim gone again.
    const stolen = scripted(keys, {
      findOneAndUpdate: async (...args: never[]) =>
        isClaim(args) ? realFindOneAndUpdate(keys)(...args) : { _id: 'k' },
      updateOne: async () => {
        fences += 1;
        return { acknowledged: true, matchedCount: 0, modifiedCount: 0, upsertedCount: 0 };
      },
    });
    let runs = 0;
    const error = await rejectionOf(
      withIdempotencyKey(stolen, {
        key: 'k',
        client: t.client,
        fn: async () => {
          runs += 1;
          return 1;
        },
      }),
    );
    expect((error as Error).message).toBe(giveUp);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect(fences).toBe(20);
    expect(runs).toBe(0);
    expect(sent('findAndModify')).toHaveLength(1);
    expect(sent('find')).toHaveLength(19);
  });

  it('claims and reads the record of its own key, from the primary', async () => {
    const keys = freshKeys();
    await keys.insertOne({
      _id: 'other',
      state: 'completed',
      owner: 'x',
      value: 'not mine',
      createdAt: new Date(),
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    await withIdempotencyKey(keys, { key: 'k', fn: async () => 'mine' });
    // A collection whose default read preference is not the primary.
    const leaning = t.db.collection<IdempotencyRecord>(keys.collectionName, {
      readPreference: 'secondaryPreferred',
    });
    t.commands.reset();
    const result = await withIdempotencyKey(leaning, { key: 'k', fn: async () => 'again' });
    expect(result).toStrictEqual({ outcome: 'replayed', value: 'mine' });
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(claimCommand().query).toEqual({ _id: 'k' });
    // A wait poll is a find from the primary.
    await heldBy(keys, 'holder', new Date(Date.now() + 60_000), { _id: 'held' });
    await withIdempotencyKey(leaning, {
      key: 'held',
      wait: { timeoutMs: 30, intervalMs: 5 },
      fn: async () => 'again',
    });
    const finds = sent('find');
    expect(finds.length).toBeGreaterThanOrEqual(1);
    for (const { command } of finds) {
      expect(command.filter).toEqual({ _id: 'held' });
      expect(command.$readPreference?.mode ?? 'primary').toBe('primary');
    }
  });

  it('a completed record without its own value replays undefined, never an inherited one', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k', fn: async () => undefined });
    t.commands.reset();
    // Scripted reply: the record read back with a prototype that carries `value`.
    const inherited = scripted(keys, {
      findOne: async () => {
        const record = await keys.findOne({ _id: 'k' });
        return Object.assign(Object.create({ value: 'inherited' }), record);
      },
    });
    const result = await withIdempotencyKey(inherited, { key: 'k', fn: async () => 'again' });
    expect(result).toStrictEqual({ outcome: 'replayed', value: undefined });
  });

  it('an inProgress record read without a lease date counts as expired: it is taken over', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'holder', new Date(Date.now() - 60_000));
    // Scripted reply: the record read back without `leaseUntil`.
    const dateless = scripted(keys, {
      findOne: async () => {
        const record = await keys.findOne({ _id: 'k' });
        const { leaseUntil: _ignored, ...rest } = record as IdempotencyRecord;
        return rest;
      },
    });
    const result = await withIdempotencyKey(dateless, { key: 'k', fn: async () => 'v' });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value: 'v',
      leaseLost: false,
      tookOver: true,
    });
  });

  it('a fingerprint conflict names the key; a record without fingerprint conflicts with a call that has one', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k', fn: async () => 1 });
    const error = await rejectionOf(
      withIdempotencyKey(keys, { key: 'k', fingerprint: 'fp', fn: async () => 2 }),
    );
    expect(isIdempotencyKeyConflictError(error)).toBe(true);
    expect(error).toMatchObject({ key: 'k' });
  });
});

describe('the lease boundary and the exact commands (frozen clock)', () => {
  it('a lease that ends exactly now is taken over: the findAndModify filter and update, then the completion', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'old', new Date(T));
    freezeClock();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 5_000,
      retentionMs: 60_000,
      fn: async () => 'v',
    });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value: 'v',
      leaseLost: false,
      tookOver: true,
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify', 'update']);
    const takeover = (sent('findAndModify')[1] as CommandStartedEvent).command;
    expect(takeover.query).toEqual({
      _id: 'k',
      state: 'inProgress',
      owner: 'old',
      leaseUntil: { $lte: new Date(T) },
    });
    const owner = takeover.update.$set.owner;
    expect(typeof owner).toBe('string');
    expect(owner).not.toBe('old');
    expect(takeover.update).toEqual({
      $set: { owner, leaseUntil: new Date(T + 5_000), expiresAt: new Date(T + 60_000) },
    });
    expect(takeover.maxTimeMS).toBe(1_000);
    const update = only('update');
    expect(update.updates).toHaveLength(1);
    expect(update.updates[0].q).toEqual({ _id: 'k', owner, state: 'inProgress' });
    expect(update.updates[0].u).toEqual({
      $set: {
        state: 'completed',
        value: 'v',
        completedAt: new Date(T),
        expiresAt: new Date(T + 60_000),
      },
      $unset: { leaseUntil: '', fence: '' },
    });
    expect(await keys.findOne({ _id: 'k' })).toStrictEqual({
      _id: 'k',
      state: 'completed',
      owner,
      value: 'v',
      createdAt: new Date(T - 10_000),
      completedAt: new Date(T),
      expiresAt: new Date(T + 60_000),
    });
  });

  it('a lease that ends one ms from now is live: inProgress with that lease, nothing taken', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'old', new Date(T + 1));
    freezeClock();
    const result = await withIdempotencyKey(keys, { key: 'k', fn: async () => 'v' });
    expect(result).toStrictEqual({ outcome: 'inProgress', leaseUntil: new Date(T + 1) });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('the claim document with the defaults (lease 60 s, retention 24 h) and a fingerprint; no write concern', async () => {
    const keys = freshKeys();
    freezeClock();
    let during: IdempotencyRecord | null = null;
    await withIdempotencyKey(keys, {
      key: 'k',
      fingerprint: 'fp',
      fn: async () => {
        during = await keys.findOne({ _id: 'k' });
        return undefined;
      },
    });
    const claim = only('findAndModify');
    expect(claim.query).toStrictEqual({ _id: 'k' });
    expect(claim.upsert).toBe(true);
    expect(claim.new).toBe(false);
    expect(Object.keys(claim.update)).toEqual(['$setOnInsert']);
    const claimed = { _id: 'k', ...claim.update.$setOnInsert };
    expect(claimed).toStrictEqual({
      _id: 'k',
      state: 'inProgress',
      fingerprint: 'fp',
      owner: expect.any(String),
      leaseUntil: new Date(T + 60_000),
      createdAt: new Date(T),
      expiresAt: new Date(T + 86_400_000),
    });
    expect(claim.writeConcern).toBeUndefined();
    expect(during).toStrictEqual(claimed);
    // Completion of `undefined`: no value field is written.
    const update = only('update');
    expect(update.updates[0].q).toEqual({ _id: 'k', owner: claimed.owner, state: 'inProgress' });
    expect(Object.hasOwn(update.updates[0].u.$set, 'value')).toBe(false);
    expect(update.updates[0].u.$set).toEqual({
      state: 'completed',
      completedAt: new Date(T),
      expiresAt: new Date(T + 86_400_000),
    });
  });

  it('the claim document without a fingerprint has no fingerprint field', async () => {
    const keys = freshKeys();
    await withIdempotencyKey(keys, { key: 'k', fn: async () => 1 });
    const claimed = only('findAndModify').update.$setOnInsert;
    expect(Object.keys(claimed).sort()).toEqual(
      ['createdAt', 'expiresAt', 'leaseUntil', 'owner', 'state'].sort(),
    );
  });

  it('the exported states', () => {
    expect(IdempotencyState).toStrictEqual({ InProgress: 'inProgress', Completed: 'completed' });
  });

  it('a failed fn: the release deletes only our running claim, waiting at most 1 s', async () => {
    const keys = freshKeys();
    const boom = new Error('boom');
    const error = await rejectionOf(
      withIdempotencyKey(keys, {
        key: 'k',
        fn: async () => {
          throw boom;
        },
      }),
    );
    expect(error).toBe(boom);
    expect(t.commands.names()).toEqual(['findAndModify', 'delete']);
    const owner = only('findAndModify').update.$setOnInsert.owner;
    const release = only('delete');
    expect(release.deletes).toEqual([{ q: { _id: 'k', owner, state: 'inProgress' }, limit: 1 }]);
    expect(release.maxTimeMS).toBe(1_000);
  });

  it('a claim refused for another reason than E11000: that error, unchanged; fn does not run', async () => {
    const keys = freshKeys();
    const refused = new MongoServerError({ code: 2, codeName: 'BadValue', errmsg: 'refused' });
    // Scripted reply: the claim fails with a plain command error.
    const refusing = scripted(keys, {
      findOneAndUpdate: async () => {
        throw refused;
      },
    });
    let runs = 0;
    const error = await rejectionOf(
      withIdempotencyKey(refusing, {
        key: 'k',
        fn: async () => {
          runs += 1;
          return 1;
        },
      }),
    );
    expect(error).toBe(refused);
    expect(runs).toBe(0);
    expect(t.commands.names()).toEqual([]);
  });
});

describe('a takeover the holder’s transaction blocks (scripted MaxTimeMSExpired, frozen clock)', () => {
  /** The reply mongod sends when findAndModify waited past its maxTimeMS behind a transaction. */
  const maxTimeExpired = () =>
    new MongoServerError({
      code: 50,
      codeName: 'MaxTimeMSExpired',
      errmsg: 'operation exceeded time limit',
    });

  async function blocked() {
    const keys = freshKeys();
    await heldBy(keys, 'old', new Date(T - 1_000));
    const maxTimes: unknown[] = [];
    const records = scripted(keys, {
      findOneAndUpdate: async (...args: never[]) => {
        if (isClaim(args)) return realFindOneAndUpdate(keys)(...args);
        maxTimes.push((args[2] as { maxTimeMS?: unknown } | undefined)?.maxTimeMS);
        throw maxTimeExpired();
      },
    });
    return { keys, records, maxTimes };
  }

  it('without wait: inProgress, come back in 100 ms; the takeover waited at most 1 s', async () => {
    const { records, maxTimes } = await blocked();
    freezeClock();
    const result = await withIdempotencyKey(records, { key: 'k', fn: async () => 1 });
    expect(result).toStrictEqual({ outcome: 'inProgress', leaseUntil: new Date(T + 100) });
    expect(maxTimes).toEqual([1_000]);
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('with wait: every takeover waits the remaining time (whole ms), polls at intervalMs, then inProgress in intervalMs', async () => {
    const { records, maxTimes } = await blocked();
    freezeClock();
    const delays = timerDelays();
    const result = await withIdempotencyKey(records, {
      key: 'k',
      wait: { timeoutMs: 800, intervalMs: 7 },
      fn: async () => 1,
    });
    expect(result).toStrictEqual({ outcome: 'inProgress', leaseUntil: new Date(T + 7) });
    expect(maxTimes.length).toBeGreaterThanOrEqual(1);
    for (const ms of maxTimes) {
      expect(Number.isInteger(ms)).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(1);
      expect(ms).toBeLessThanOrEqual(800);
    }
    expect(maxTimes[0]).toBeGreaterThan(1);
    expect(delays()).toContain(7);
  });

  it('another takeover error: rethrown unchanged', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'old', new Date(Date.now() - 1_000));
    const failure = new MongoServerError({ code: 2, codeName: 'BadValue', errmsg: 'no' });
    const records = scripted(keys, {
      findOneAndUpdate: async (...args: never[]) => {
        if (isClaim(args)) return realFindOneAndUpdate(keys)(...args);
        throw failure;
      },
    });
    const error = await rejectionOf(withIdempotencyKey(records, { key: 'k', fn: async () => 1 }));
    expect(error).toBe(failure);
  });
});

describe('waiting for a live lease (frozen clock)', () => {
  it('sleeps until one ms past the lease end when that comes before the interval', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'other', new Date(T + 30));
    freezeClock();
    const delays = timerDelays();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      wait: { timeoutMs: 600, intervalMs: 1_000 },
      fn: async () => 1,
    });
    expect(result).toStrictEqual({ outcome: 'inProgress', leaseUntil: new Date(T + 30) });
    expect(delays()).toContain(31);
    expect(delays()).not.toContain(29);
  });

  it('polls every 100 ms by default', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'other', new Date(T + 60_000));
    freezeClock();
    const delays = timerDelays();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      wait: { timeoutMs: 600 },
      fn: async () => 1,
    });
    expect(result).toStrictEqual({ outcome: 'inProgress', leaseUntil: new Date(T + 60_000) });
    expect(delays()).toContain(100);
  });

  it('polls at the given intervalMs', async () => {
    const keys = freshKeys();
    await heldBy(keys, 'other', new Date(T + 60_000));
    freezeClock();
    const delays = timerDelays();
    await withIdempotencyKey(keys, {
      key: 'k',
      wait: { timeoutMs: 600, intervalMs: 40 },
      fn: async () => 1,
    });
    expect(delays()).toContain(40);
    expect(delays()).not.toContain(100);
  });
});

describe('the abort signal fn receives', () => {
  it('stays quiet while the lease runs, and after fn returned or threw', async () => {
    const keys = freshKeys();
    let during: boolean | undefined;
    let kept: AbortSignal | undefined;
    await withIdempotencyKey(keys, {
      key: 'k',
      fn: async ({ signal }) => {
        await sleep(30);
        during = signal.aborted;
        return 1;
      },
    });
    expect(during).toBe(false);
    await withIdempotencyKey(keys, {
      key: 'short',
      leaseMs: 100,
      fn: async ({ signal }) => {
        kept = signal;
        return 1;
      },
    });
    let thrownWith: AbortSignal | undefined;
    await rejectionOf(
      withIdempotencyKey(keys, {
        key: 'short-failing',
        leaseMs: 100,
        fn: async ({ signal }) => {
          thrownWith = signal;
          throw new Error('boom');
        },
      }),
    );
    await sleep(250);
    expect(kept?.aborted).toBe(false);
    expect(thrownWith?.aborted).toBe(false);
  });

  it('aborts when the lease ends, with a MongoAtomicsError saying so', async () => {
    const keys = freshKeys();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      leaseMs: 50,
      fn: ({ signal }) =>
        new Promise<string>((resolve) => {
          signal.addEventListener('abort', () => {
            const reason = signal.reason as Error;
            resolve(`${reason instanceof MongoAtomicsError} ${reason.message}`);
          });
        }),
    });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value:
        'true withIdempotencyKey: the lease on key "k" ended (leaseMs 50); another caller may take it over and run fn. Stop fn\'s work on this signal, and raise leaseMs above fn\'s worst-case duration',
      leaseLost: false,
      tookOver: false,
    });
  });
});

describe('transaction mode commands', () => {
  it('claim with w: majority, the fence and the completion inside the transaction', async () => {
    const keys = freshKeys();
    const result = await withIdempotencyKey(keys, {
      key: 'k',
      client: t.client,
      fn: async ({ attempt }) => attempt,
    });
    expect(result).toStrictEqual({
      outcome: 'executed',
      value: 1,
      leaseLost: false,
      tookOver: false,
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'update', 'update', 'commitTransaction']);
    const claim = only('findAndModify');
    expect(claim.writeConcern).toEqual({ w: 'majority' });
    const owner = claim.update.$setOnInsert.owner;
    const [fence, completion] = sent('update').map((event) => event.command);
    expect(fence?.updates[0].q).toEqual({ _id: 'k', owner, state: 'inProgress' });
    expect(fence?.updates[0].u).toEqual({ $inc: { fence: 1 } });
    expect(fence?.startTransaction).toBe(true);
    expect(fence?.txnNumber).toBeDefined();
    expect(completion?.updates[0].q).toEqual({ _id: 'k', owner, state: 'inProgress' });
    expect(completion?.txnNumber).toEqual(fence?.txnNumber);
    expect(completion?.lsid).toEqual(fence?.lsid);
    const record = await keys.findOne({ _id: 'k' });
    expect(record).toMatchObject({ state: 'completed', value: 1, owner });
    expect(record).not.toHaveProperty('fence');
    expect(record).not.toHaveProperty('leaseUntil');
  });

  it('a completion that matches nothing inside the transaction: the exact error', async () => {
    const keys = freshKeys();
    const error = await rejectionOf(
      withIdempotencyKey(keys, {
        key: 'k',
        client: t.client,
        fn: async ({ session }) => {
          await keys.updateOne({ _id: 'k' }, { $set: { owner: 'someone else' } }, { session });
          return 1;
        },
      }),
    );
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toBe(
      'withIdempotencyKey: the record of key "k" was changed inside the transaction (does fn write to the idempotency collection?); the transaction was aborted. Keep fn\'s writes out of the idempotency collection',
    );
  });

  it('valid transaction options are accepted: none, an empty object, a real signal with a budget', async () => {
    const keys = freshKeys();
    for (const [key, transaction] of [
      ['a', {}],
      ['b', { maxAttempts: 2, signal: new AbortController().signal }],
    ] as const) {
      const result = await withIdempotencyKey(keys, {
        key,
        client: t.client,
        transaction,
        fn: async () => key,
      });
      expect(result).toStrictEqual({
        outcome: 'executed',
        value: key,
        leaseLost: false,
        tookOver: false,
      });
    }
  });
});

describe('refusals: the exact text, nothing sent', () => {
  const fn = async () => 1;
  const base = { key: 'k', fn };
  const long = (n: number) => 'x'.repeat(n);
  const signalLike = Object.assign(() => undefined, {
    aborted: false,
    addEventListener: () => undefined,
  });
  type Case = [options: () => unknown, option: string, problem: string];
  const cases: Case[] = [
    [
      () => ({ ...base, key: '' }),
      'key',
      'must be a non-empty string of at most 512 characters, got the string ""',
    ],
    [
      () => ({ ...base, key: 42 }),
      'key',
      'must be a non-empty string of at most 512 characters, got 42',
    ],
    [
      () => ({ ...base, key: long(513) }),
      'key',
      `must be a non-empty string of at most 512 characters, got the string ${JSON.stringify(long(513))}`,
    ],
    [
      () => ({ ...base, fingerprint: long(1025) }),
      'fingerprint',
      `must be a non-empty string of at most 1024 characters, got the string ${JSON.stringify(long(1025))}`,
    ],
    [() => ({ ...base, leaseMs: 2 ** 31 }), 'leaseMs', 'must be at most 2147483647 (~24.8 days)'],
    [
      () => ({ ...base, leaseMs: 1_000, retentionMs: 1_000 }),
      'retentionMs',
      'must exceed leaseMs (1000): the TTL index would otherwise delete claims that are still running',
    ],
    [
      () => ({ ...base, retentionMs: 60_000 }),
      'retentionMs',
      'must exceed leaseMs (60000): the TTL index would otherwise delete claims that are still running',
    ],
    [
      () => ({ ...base, wait: 100 }),
      'wait',
      'must be an object { timeoutMs, intervalMs? }, got 100',
    ],
    [
      () => ({ ...base, wait: { timeoutMs: 100, interval: 5 } }),
      'wait.interval',
      'is not a wait option (known: timeoutMs, intervalMs)',
    ],
    [
      () => ({ ...base, wait: { timeoutMs: 0 } }),
      'wait.timeoutMs',
      'must be a finite number greater than 0, got 0',
    ],
    [
      () => ({ ...base, wait: { timeoutMs: 2 ** 31 } }),
      'wait.timeoutMs',
      'must be at most 2147483647 (~24.8 days)',
    ],
    [
      () => ({ ...base, wait: { timeoutMs: 10, intervalMs: 2 ** 31 } }),
      'wait.intervalMs',
      'must be at most 2147483647 (~24.8 days)',
    ],
    [
      () => ({ ...base, session: {} }),
      'session',
      'is not accepted: the claim must commit before fn runs, outside any transaction; pass "client" to run fn in a transaction whose session fn receives',
    ],
    [
      () => ({ ...base, transaction: {} }),
      'transaction',
      'applies only with "client" (transaction mode)',
    ],
    [
      () => ({ ...base, client: t.client, transaction: 'fast' }),
      'transaction',
      'must be an object, got the string "fast"',
    ],
    [
      () => ({ ...base, client: t.client, transaction: { signal: null } }),
      'transaction.signal',
      'must be an AbortSignal, got null',
    ],
    [
      () => ({
        ...base,
        client: t.client,
        transaction: { signal: { aborted: 'no', addEventListener: () => undefined } },
      }),
      'transaction.signal',
      'must be an AbortSignal, got an object',
    ],
    [
      () => ({
        ...base,
        client: t.client,
        transaction: { signal: { aborted: false, addEventListener: 1 } },
      }),
      'transaction.signal',
      'must be an AbortSignal, got an object',
    ],
    [
      () => ({ ...base, client: t.client, transaction: { signal: signalLike } }),
      'transaction.signal',
      'must be an AbortSignal, got a function',
    ],
  ];

  it.each(cases)('refusal %#: option %s', async (options, option, problem) => {
    const keys = freshKeys();
    const error = await rejectionOf(withIdempotencyKey(keys, options() as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ option, primitive: 'withIdempotencyKey' });
    expect((error as Error).message).toBe(`withIdempotencyKey: option "${option}" ${problem}`);
    expect(t.commands.names()).toEqual([]);
  });

  it("a transaction option the runner refuses: named under transaction., with the runner's text", async () => {
    const keys = freshKeys();
    const error = await rejectionOf(
      withIdempotencyKey(keys, { key: 'k', fn, client: t.client, transaction: { maxAttempts: 0 } }),
    );
    expect(error).toMatchObject({ option: 'transaction.maxAttempts' });
    expect((error as Error).message).toMatch(
      /^withIdempotencyKey: option "transaction\.maxAttempts" is invalid: withRetryingTransaction: option "maxAttempts" /,
    );
    expect(t.commands.names()).toEqual([]);
  });

  it('the bounds themselves are accepted: key of 512, fingerprint of 1024, leaseMs 2147483647, retentionMs just above leaseMs', async () => {
    const keys = freshKeys();
    const runs = [
      { key: long(512), fn },
      { key: 'f', fingerprint: long(1024), fn },
      { key: 'l', leaseMs: 2_147_483_647, retentionMs: 2_147_483_648, fn },
      { key: 'r', leaseMs: 1_000, retentionMs: 1_001, fn },
      { key: 'w', wait: { timeoutMs: 2_147_483_647, intervalMs: 2_147_483_647 }, fn },
    ];
    for (const options of runs) {
      expect(await withIdempotencyKey(keys, options)).toStrictEqual({
        outcome: 'executed',
        value: 1,
        leaseLost: false,
        tookOver: false,
      });
    }
  });
});

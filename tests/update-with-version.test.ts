/**
 * updateWithVersion: outcomes, the version guard on the wire, conflicts and their backoff, the
 * attempt cap, validation of options and of the callback's update, cancellation, opId,
 * transactions, and the read-modify-save race of seed 001 (two submissions both read xp and
 * both save their own total).
 *
 * Conflicts are injected deterministically: the callback itself bumps the version from another
 * client (whose commands are not recorded) between this call's read and its write.
 */
import type { MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { hasErrorLabel } from '../src/driver.js';
import {
  GiveUpReason,
  InvalidArgumentError,
  isInvalidArgumentError,
  isRetryBudgetExhaustedError,
  RetryBudgetExhaustedError,
} from '../src/errors.js';
import { withRetryingTransaction } from '../src/transaction.js';
import { updateWithVersion, type VersionConflictEvent } from '../src/update-with-version.js';
import { rejectionOf } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

interface Student {
  _id: string;
  xp?: number;
  level?: number;
  n?: number;
  version?: number;
  meta?: { rev?: number };
  history?: string[];
  tags?: string[];
  _opIds?: string[];
}

const t = useTestDatabase('update_with_version');
const WORKERS = 50;
const race = useRaceClients(WORKERS);

async function students(docs: Student[]) {
  const coll = t.db.collection<Student>(t.uniqueName('students'));
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

/** The same collection through another client: its commands are not in `t.commands`. */
function elsewhere(name: string, index = 0) {
  const client = race.all[index];
  if (client === undefined) throw new Error('race clients are not connected');
  return client.db(t.db.databaseName).collection<Student>(name);
}

/** Another writer's versioned change, committed between this call's read and its write. */
async function bumpElsewhere(name: string, id: string, set: Partial<Student> = {}) {
  await elsewhere(name).updateOne(
    { _id: id },
    Object.keys(set).length === 0 ? { $inc: { version: 1 } } : { $inc: { version: 1 }, $set: set },
  );
}

function conflicts() {
  const events: VersionConflictEvent[] = [];
  return {
    events,
    onConflict: (event: VersionConflictEvent) => {
      events.push(event);
    },
    delays: () => events.map((event) => event.delayMs),
  };
}

/** The filter and update of the n-th recorded command (a findAndModify). */
function sent(index: number): { query: unknown; update: unknown } {
  const command = t.commands.started[index]?.command;
  return { query: command?.query, update: command?.update };
}

describe('updateWithVersion outcomes', () => {
  it('writes the computed update only at the version read, bumps the version, returns the document after', async () => {
    const coll = await students([{ _id: 's1', xp: 90, level: 0, version: 3 }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: (student) => {
        const xp = (student.xp ?? 0) + 25;
        return xp >= 100 ? { $set: { xp: 0 }, $inc: { level: 1 } } : { $set: { xp } };
      },
    });
    expect(result).toEqual({
      outcome: 'updated',
      attempts: 1,
      document: { _id: 's1', xp: 0, level: 1, version: 4 },
    });
    expect(await coll.findOne({ _id: 's1' })).toEqual(result.document);
    // The contract on the wire: filter AND _id AND version guard; the update plus the bump.
    expect(sent(1)).toEqual({
      query: { $and: [{ _id: 's1' }, { _id: 's1' }, { version: 3 }] },
      update: { $set: { xp: 0 }, $inc: { level: 1, version: 1 } },
    });
  });

  it('a document without a version field is at version 0: guard { $exists: false }, written as version 1', async () => {
    const coll = await students([{ _id: 's1', xp: 10 }]);
    const seen: number[] = [];
    const first = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: (s) => {
        seen.push(s.version ?? 0);
        return { $inc: { xp: 5 } };
      },
    });
    expect(first).toEqual({
      outcome: 'updated',
      attempts: 1,
      document: { _id: 's1', xp: 15, version: 1 },
    });
    expect(sent(1).query).toEqual({
      $and: [{ _id: 's1' }, { _id: 's1' }, { version: { $exists: false } }],
    });
    const second = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: () => ({ $inc: { xp: 5 } }),
    });
    expect(second.document).toEqual({ _id: 's1', xp: 20, version: 2 });
    expect(seen).toEqual([0]);
  });

  it('a dotted versionField is guarded and bumped in place', async () => {
    const coll = await students([{ _id: 's1', xp: 1, meta: { rev: 7 } }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      versionField: 'meta.rev',
      update: () => ({ $set: { xp: 2 } }),
    });
    expect(result.document).toEqual({ _id: 's1', xp: 2, meta: { rev: 8 } });
    expect(sent(1).query).toEqual({ $and: [{ _id: 's1' }, { _id: 's1' }, { 'meta.rev': 7 }] });
  });

  it('the callback returns null: skipped with the document as read, nothing written, 1 round trip', async () => {
    const coll = await students([{ _id: 's1', xp: 40, version: 2 }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: (s) => ((s.xp ?? 0) >= 40 ? null : { $inc: { xp: 1 } }),
    });
    expect(result).toEqual({
      outcome: 'skipped',
      attempts: 1,
      document: { _id: 's1', xp: 40, version: 2 },
    });
    expect(t.commands.names()).toEqual(['find']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 40, version: 2 });
  });

  it('no matching document: notFound after 1 round trip, the callback never runs', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    let calls = 0;
    const result = await updateWithVersion(coll, {
      filter: { _id: 'nobody' },
      update: () => {
        calls += 1;
        return { $set: { xp: 1 } };
      },
    });
    expect(result).toEqual({ outcome: 'notFound' });
    expect(calls).toBe(0);
    expect(t.commands.names()).toEqual(['find']);
  });

  it('a document deleted between read and write: the re-read tells, notFound', async () => {
    const coll = await students([{ _id: 's1', xp: 1, version: 1 }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: async () => {
        await elsewhere(coll.collectionName).deleteOne({ _id: 's1' });
        return { $set: { xp: 2 } };
      },
    });
    expect(result).toEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['find', 'findAndModify', 'find']);
    expect(await coll.countDocuments()).toBe(0);
  });

  it('a non-numeric version in the document: InvalidArgumentError on versionField, the callback never runs, nothing written', async () => {
    const coll = t.db.collection<{ _id: string; version: string }>(t.uniqueName('bad'));
    await coll.insertOne({ _id: 's1', version: 'v3' });
    t.commands.reset();
    let calls = 0;
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        update: () => {
          calls += 1;
          return { $set: { x: 1 } };
        },
      }),
    );
    expect(isInvalidArgumentError(error)).toBe(true);
    expect((error as InvalidArgumentError).option).toBe('versionField');
    expect(calls).toBe(0);
    expect(t.commands.names()).toEqual(['find']);
  });
});

describe('updateWithVersion conflicts and retries', () => {
  it('after a conflict the callback runs again with attempt 2 and the document as the other writer left it: nothing is lost', async () => {
    const coll = await students([{ _id: 's1', xp: 10, version: 1 }]);
    const calls: { attempt: number; xp: number | undefined; version: number | undefined }[] = [];
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      update: async (s, { attempt }) => {
        calls.push({ attempt, xp: s.xp, version: s.version });
        // The other writer adds 100 xp after our read: our `xp + 5` must not overwrite it.
        if (attempt === 1) await bumpElsewhere(coll.collectionName, 's1', { xp: 110 });
        return { $set: { xp: (s.xp ?? 0) + 5 } };
      },
    });
    expect(calls).toEqual([
      { attempt: 1, xp: 10, version: 1 },
      { attempt: 2, xp: 110, version: 2 },
    ]);
    expect(result).toEqual({
      outcome: 'updated',
      attempts: 2,
      document: { _id: 's1', xp: 115, version: 3 },
    });
  });

  it('round trips: 2 on success (find + findAndModify); 4 after one conflict', async () => {
    const coll = await students([
      { _id: 'a', xp: 0 },
      { _id: 'b', xp: 0 },
    ]);
    await updateWithVersion(coll, { filter: { _id: 'a' }, update: () => ({ $inc: { xp: 1 } }) });
    expect(t.commands.names()).toEqual(['find', 'findAndModify']);

    t.commands.reset();
    const result = await updateWithVersion(coll, {
      filter: { _id: 'b' },
      update: async (_s, { attempt }) => {
        if (attempt === 1) await bumpElsewhere(coll.collectionName, 'b');
        return { $inc: { xp: 1 } };
      },
    });
    expect(result.attempts).toBe(2);
    expect(t.commands.names()).toEqual(['find', 'findAndModify', 'find', 'findAndModify']);
    // The second write is guarded by the version the second read saw.
    expect(sent(3).query).toEqual({ $and: [{ _id: 'b' }, { _id: 'b' }, { version: 1 }] });
  });

  it("exact backoff with jitter 'none': initial 10, factor 2, max 50 waits 10, 20, 40, 50, 50 ms", async () => {
    const coll = await students([{ _id: 's1', version: 1 }]);
    const log = conflicts();
    const started = performance.now();
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      backoff: { initialDelayMs: 10, factor: 2, maxDelayMs: 50, jitter: 'none' },
      onConflict: log.onConflict,
      update: async (_s, { attempt }) => {
        if (attempt <= 5) await bumpElsewhere(coll.collectionName, 's1');
        return { $set: { xp: attempt } };
      },
    });
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ outcome: 'updated', attempts: 6 });
    expect(log.delays()).toEqual([10, 20, 40, 50, 50]);
    expect(
      log.events.map(({ attempt, expectedVersion }) => ({ attempt, expectedVersion })),
    ).toEqual([1, 2, 3, 4, 5].map((n) => ({ attempt: n, expectedVersion: n })));
    // The waits really happen (timers may fire a millisecond early).
    expect(elapsed).toBeGreaterThanOrEqual(170 - 5);
  });

  it('default backoff: full jitter under min(5 × 1.5^(n−1), 500) ms', async () => {
    const coll = await students([{ _id: 's1' }]);
    const log = conflicts();
    await updateWithVersion(coll, {
      filter: { _id: 's1' },
      onConflict: log.onConflict,
      update: async (_s, { attempt }) => {
        if (attempt <= 4) await bumpElsewhere(coll.collectionName, 's1');
        return { $set: { xp: attempt } };
      },
    });
    const caps = [5, 7.5, 11.25, 16.875];
    expect(log.delays()).toHaveLength(caps.length);
    log.delays().forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(caps[i] ?? 0);
    });
  });

  it('attempt cap: a document that changes before every write ends in RetryBudgetExhaustedError with attempts === maxAttempts, none of our writes applied', async () => {
    const coll = await students([{ _id: 's1', xp: 0, version: 1 }]);
    const log = conflicts();
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        maxAttempts: 4,
        backoff: { initialDelayMs: 1, jitter: 'none' },
        onConflict: log.onConflict,
        update: async () => {
          await bumpElsewhere(coll.collectionName, 's1');
          return { $inc: { xp: 1 } };
        },
      }),
    );
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    expect(isRetryBudgetExhaustedError(error)).toBe(true);
    const budget = error as RetryBudgetExhaustedError;
    expect(budget.reason).toBe(GiveUpReason.MaxAttempts);
    expect(budget.attempts).toBe(4);
    // The cause is an Error (as every RetryBudgetExhaustedError's) carrying the last conflict.
    expect(budget.cause).toBeInstanceOf(Error);
    expect(budget.cause).toMatchObject({
      attempt: 4,
      expectedVersion: 4,
      message: 'attempt 4 required version 4, but the document had changed',
    });
    expect(budget.message).toMatch(/last read version 4, now 5/);
    // onConflict runs before each backoff, not before giving up.
    expect(log.events.map((event) => event.attempt)).toEqual([1, 2, 3]);
    // 2 per attempt, plus the read that tells a conflict from a deletion or an applied opId.
    expect(t.commands.names()).toEqual([
      ...Array(4).fill(['find', 'findAndModify']).flat(),
      'find',
    ]);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 0, version: 5 });
  });

  it('maxAttempts defaults to 10', async () => {
    const coll = await students([{ _id: 's1' }]);
    let runs = 0;
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        backoff: { initialDelayMs: 0 },
        update: async () => {
          runs += 1;
          await bumpElsewhere(coll.collectionName, 's1');
          return { $inc: { xp: 1 } };
        },
      }),
    );
    expect((error as RetryBudgetExhaustedError).attempts).toBe(10);
    expect(runs).toBe(10);
  });

  it('an error thrown by the callback propagates unchanged; nothing is written', async () => {
    const coll = await students([{ _id: 's1', xp: 5, version: 1 }]);
    const thrown = new Error('assignment not found');
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        update: async () => {
          throw thrown;
        },
      }),
    );
    expect(error).toBe(thrown);
    expect(t.commands.names()).toEqual(['find']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 5, version: 1 });
  });

  it('an onConflict hook that throws ends the call with its error, before any further attempt', async () => {
    const coll = await students([{ _id: 's1', version: 1 }]);
    const hookError = new Error('metrics down');
    let runs = 0;
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        onConflict: () => {
          throw hookError;
        },
        update: async () => {
          runs += 1;
          await bumpElsewhere(coll.collectionName, 's1');
          return { $set: { xp: 1 } };
        },
      }),
    );
    expect(error).toBe(hookError);
    expect(runs).toBe(1);
    expect(t.commands.names()).toEqual(['find', 'findAndModify']);
  });
});

describe('updateWithVersion cancellation', () => {
  it('an already-aborted signal rejects with its reason; nothing is sent, the callback never runs', async () => {
    const coll = await students([{ _id: 's1' }]);
    const reason = new Error('request closed');
    let calls = 0;
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        signal: AbortSignal.abort(reason),
        update: () => {
          calls += 1;
          return { $set: { xp: 1 } };
        },
      }),
    );
    expect(error).toBe(reason);
    expect(calls).toBe(0);
    expect(t.commands.started).toHaveLength(0);
  });

  it('aborting during the backoff between attempts rejects at once with its reason; no re-read, nothing of ours written', async () => {
    const coll = await students([{ _id: 's1', xp: 0, version: 1 }]);
    const controller = new AbortController();
    const reason = new Error('client went away');
    let runs = 0;
    const started = performance.now();
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        signal: controller.signal,
        backoff: { initialDelayMs: 5_000, jitter: 'none' },
        onConflict: () => {
          setTimeout(() => controller.abort(reason), 20);
        },
        update: async () => {
          runs += 1;
          await bumpElsewhere(coll.collectionName, 's1');
          return { $inc: { xp: 1 } };
        },
      }),
    );
    expect(error).toBe(reason);
    // Well under the 5 s wait: the abort interrupted it (loose for loaded CI machines).
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(runs).toBe(1);
    expect(t.commands.names()).toEqual(['find', 'findAndModify']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 0, version: 2 });
  });

  it('aborted while the callback computes: its update is not written', async () => {
    const coll = await students([{ _id: 's1', xp: 0 }]);
    const controller = new AbortController();
    const reason = new Error('timeout');
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        signal: controller.signal,
        update: () => {
          controller.abort(reason);
          return { $set: { xp: 1 } };
        },
      }),
    );
    expect(error).toBe(reason);
    expect(t.commands.names()).toEqual(['find']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 0 });
  });
});

describe("updateWithVersion checks the callback's update before writing", () => {
  it.each([
    ['a replacement document', { xp: 5 }, {}],
    ['a field without an operator next to one', { $set: { xp: 5 }, level: 2 }, {}],
    ['$set of the version', { $set: { version: 7 } }, {}],
    ['$inc of the version', { $inc: { version: 1 } }, {}],
    ['$unset of the version', { $unset: { version: '' } }, {}],
    ['a path inside the version', { $set: { 'version.major': 1 } }, {}],
    ['$rename onto the version', { $rename: { xp: 'version' } }, {}],
    ['the parent of a dotted versionField', { $set: { meta: {} } }, { versionField: 'meta.rev' }],
    ['the op id log', { $set: { _opIds: [] } }, { opId: 'req-1' }],
    ['_id', { $set: { _id: 's2' } }, {}],
    ['an aggregation pipeline', [{ $set: { xp: 1 } }], {}],
    ['an empty update', {}, {}],
    ['undefined (a forgotten return)', undefined, {}],
    ['a string', '$inc', {}],
    ['an unknown operator', { $sett: { xp: 1 } }, {}],
    ['$setOnInsert (there is no upsert)', { $setOnInsert: { xp: 1 } }, {}],
    ['an operator over a non-object', { $set: 5 }, {}],
  ] as const)(
    '%s → InvalidArgumentError on "update", only the read sent, nothing written',
    async (_case, returned, extra) => {
      const coll = await students([{ _id: 's1', xp: 3 }]);
      const error = await rejectionOf(
        updateWithVersion(coll, {
          filter: { _id: 's1' },
          update: () => returned as never,
          ...extra,
        }),
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).option).toBe('update');
      expect((error as InvalidArgumentError).primitive).toBe('updateWithVersion');
      expect(t.commands.names()).toEqual(['find']);
      expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 3 });
    },
  );
});

describe('updateWithVersion argument validation', () => {
  let calls = 0;
  const update = () => {
    calls += 1;
    return { $set: { xp: 1 } };
  };
  const valid = { filter: { _id: 's1' }, update };
  it.each([
    ['options', null],
    ['filter', { ...valid, filter: undefined }],
    ['filter', { ...valid, filter: {} }],
    ['filter', { ...valid, filter: 's1' }],
    ['update', { ...valid, update: undefined }],
    ['update', { ...valid, update: { $set: { xp: 1 } } }],
    ['versionField', { ...valid, versionField: '' }],
    ['versionField', { ...valid, versionField: '$v' }],
    ['versionField', { ...valid, versionField: 'a..b' }],
    ['versionField', { ...valid, versionField: '_id' }],
    ['versionField', { ...valid, versionField: 5 }],
    ['maxAttempts', { ...valid, maxAttempts: 0 }],
    ['maxAttempts', { ...valid, maxAttempts: 1.5 }],
    ['maxAttempts', { ...valid, maxAttempts: '3' }],
    ['maxAttempts', { ...valid, maxAttempts: Number.POSITIVE_INFINITY }],
    ['backoff', { ...valid, backoff: 'fast' }],
    ['backoff.jitter', { ...valid, backoff: { jitter: 'half' } }],
    ['backoff.factor', { ...valid, backoff: { factor: 0.5 } }],
    ['backoff.initialDelayMs', { ...valid, backoff: { initialDelayMs: -1 } }],
    ['backoff.delay', { ...valid, backoff: { delay: 5 } }],
    ['onConflict', { ...valid, onConflict: 'log' }],
    ['signal', { ...valid, signal: {} }],
    ['signal', { ...valid, signal: new AbortController() }],
    ['session', { ...valid, session: {} }],
    ['opId', { ...valid, opId: '' }],
    ['opId', { ...valid, opId: 42 }],
    ['opId', { ...valid, opId: 'x'.repeat(201) }],
    ['opIdLog', { ...valid, opIdLog: { size: 10 } }],
    ['opIdLog.size', { ...valid, opId: 'r1', opIdLog: { size: 0 } }],
    ['versionField', { ...valid, opId: 'r1', opIdLog: { field: 'version' } }],
    ['retries', { ...valid, retries: 3 }],
  ])(
    'invalid %s → InvalidArgumentError naming it, nothing sent, the callback never runs',
    async (option, options) => {
      const coll = await students([{ _id: 's1', xp: 0 }]);
      calls = 0;
      const error = await rejectionOf(updateWithVersion(coll, options as never));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(isInvalidArgumentError(error)).toBe(true);
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as InvalidArgumentError).primitive).toBe('updateWithVersion');
      expect(t.commands.started).toHaveLength(0);
      expect(calls).toBe(0);
    },
  );

  it('a collection that is not a driver Collection → InvalidArgumentError on "collection"', async () => {
    const error = await rejectionOf(updateWithVersion({} as never, valid as never));
    expect((error as InvalidArgumentError).option).toBe('collection');
  });
});

describe('updateWithVersion with opId', () => {
  it('a repeat resolves alreadyApplied on the first read: the callback does not run, 1 round trip', async () => {
    const coll = await students([{ _id: 's1', xp: 0 }]);
    let calls = 0;
    const options = {
      filter: { _id: 's1' },
      opId: 'submission-7',
      update: () => {
        calls += 1;
        return { $inc: { xp: 10 } };
      },
    };
    const first = await updateWithVersion(coll, options);
    expect(first).toEqual({
      outcome: 'updated',
      attempts: 1,
      document: { _id: 's1', xp: 10, version: 1, _opIds: ['submission-7'] },
    });
    t.commands.reset();
    const again = await updateWithVersion(coll, options);
    expect(again).toEqual({ outcome: 'alreadyApplied', document: first.document });
    expect(calls).toBe(1);
    expect(t.commands.names()).toEqual(['find']);
  });

  it('the id guard is in the write filter: a repeat recorded between read and write by a writer that does not bump the version still resolves alreadyApplied', async () => {
    const coll = await students([{ _id: 's1', xp: 0, version: 4 }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      opId: 'req-9',
      update: async () => {
        // e.g. a guardedDecrement with the same opId: it records the id, not a version.
        await elsewhere(coll.collectionName).updateOne(
          { _id: 's1' },
          { $push: { _opIds: 'req-9' } },
        );
        return { $inc: { xp: 10 } };
      },
    });
    expect(result).toEqual({
      outcome: 'alreadyApplied',
      document: { _id: 's1', xp: 0, version: 4, _opIds: ['req-9'] },
    });
    expect(sent(1)).toEqual({
      query: {
        $and: [
          { $and: [{ _id: 's1' }, { _id: 's1' }, { version: 4 }] },
          { _opIds: { $ne: 'req-9' } },
        ],
      },
      update: {
        $inc: { xp: 10, version: 1 },
        $push: { _opIds: { $each: ['req-9'], $slice: -50 } },
      },
    });
    expect(t.commands.names()).toEqual(['find', 'findAndModify', 'find']);
  });

  it("a callback update that itself uses $push: both pushes land, the user's and the op id log's, in one write", async () => {
    const coll = await students([{ _id: 's1', xp: 0, version: 2 }]);
    const result = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      opId: 'req-3',
      update: () => ({
        $inc: { xp: 5 },
        $push: { history: { $each: ['submitted'], $slice: -10 }, tags: 'late' },
      }),
    });
    const expected = {
      _id: 's1',
      xp: 5,
      version: 3,
      history: ['submitted'],
      tags: ['late'],
      _opIds: ['req-3'],
    };
    expect(result).toEqual({ outcome: 'updated', attempts: 1, document: expected });
    expect(t.commands.names()).toEqual(['find', 'findAndModify']);
    expect(await coll.findOne({ _id: 's1' })).toEqual(expected);
    expect(sent(1)?.update).toEqual({
      $inc: { xp: 5, version: 1 },
      $push: {
        history: { $each: ['submitted'], $slice: -10 },
        tags: 'late',
        _opIds: { $each: ['req-3'], $slice: -50 },
      },
    });
    // And the id still guards a repeat: nothing is pushed twice.
    const again = await updateWithVersion(coll, {
      filter: { _id: 's1' },
      opId: 'req-3',
      update: () => ({ $push: { history: 'submitted' } }),
    });
    expect(again).toEqual({ outcome: 'alreadyApplied', document: expected });
  });

  it('the same opId 20 times concurrently, all reading before any writes: updated once, 19 alreadyApplied', async () => {
    const coll = await students([{ _id: 's1', n: 0 }]);
    const repeats = 20;
    const allRead = barrier(repeats);
    let calls = 0;
    const results = await Promise.all(
      Array.from({ length: repeats }, async (_, i) =>
        updateWithVersion(elsewhere(coll.collectionName, i), {
          filter: { _id: 's1' },
          opId: 'double-click',
          maxAttempts: 100,
          update: async (s, { attempt }) => {
            calls += 1;
            if (attempt === 1) await allRead();
            return { $set: { n: (s.n ?? 0) + 1 } };
          },
        }),
      ),
    );
    expect(results.filter((r) => r.outcome === 'updated')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'alreadyApplied')).toHaveLength(repeats - 1);
    // Every loser learned it from its re-read: no callback ran a second time.
    expect(calls).toBe(repeats);
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      n: 1,
      version: 1,
      _opIds: ['double-click'],
    });
  });
});

describe('updateWithVersion in transactions', () => {
  it('joins the caller transaction: an abort undoes the update', async () => {
    const coll = await students([{ _id: 's1', xp: 1, version: 1 }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await updateWithVersion(coll, {
        filter: { _id: 's1' },
        update: () => ({ $set: { xp: 2 } }),
        session,
      });
      expect(result).toMatchObject({ outcome: 'updated', document: { xp: 2, version: 2 } });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 1, version: 1 });
  });

  it('a concurrent writer inside a transaction is a WriteConflict, rethrown unchanged after one attempt, not retried here', async () => {
    const coll = await students([{ _id: 's1', xp: 1, version: 1 }]);
    const attempts: number[] = [];
    const session = t.client.startSession();
    let error: unknown;
    try {
      session.startTransaction();
      error = await rejectionOf(
        updateWithVersion(coll, {
          filter: { _id: 's1' },
          session,
          update: async (_s, { attempt }) => {
            attempts.push(attempt);
            await bumpElsewhere(coll.collectionName, 's1', { xp: 50 });
            return { $set: { xp: 2 } };
          },
        }),
      );
    } finally {
      await session.endSession();
    }
    expect((error as MongoServerError).code).toBe(112);
    expect(hasErrorLabel(error, 'TransientTransactionError')).toBe(true);
    expect(attempts).toEqual([1]);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 50, version: 2 });
  });

  it('withRetryingTransaction re-runs the call on that WriteConflict: the callback starts again at attempt 1 and sees the other write', async () => {
    const coll = await students([{ _id: 's1', xp: 1, version: 1 }]);
    const seen: { attempt: number; xp: number | undefined }[] = [];
    const result = await withRetryingTransaction(t.client, (session, { attempt: txn }) =>
      updateWithVersion(coll, {
        filter: { _id: 's1' },
        session,
        update: async (s, { attempt }) => {
          seen.push({ attempt, xp: s.xp });
          if (txn === 1) await bumpElsewhere(coll.collectionName, 's1', { xp: 50 });
          return { $set: { xp: (s.xp ?? 0) + 1 } };
        },
      }),
    );
    expect(seen).toEqual([
      { attempt: 1, xp: 1 },
      { attempt: 1, xp: 50 },
    ]);
    expect(result).toMatchObject({ outcome: 'updated', attempts: 1 });
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 51, version: 3 });
  });
});

describe('read-modify-save race (seed 001): 50 concurrent increments of one counter', () => {
  async function counter() {
    const name = t.uniqueName('race');
    await t.db.collection<Student>(name).insertOne({ _id: 'c', n: 0 });
    return name;
  }

  it('naive: "read n, then $set n + 1" (no version guard) loses updates', async () => {
    const name = await counter();
    const allRead = barrier(WORKERS);
    await Promise.all(
      race.all.map(async (_, i) => {
        const coll = elsewhere(name, i);
        const doc = await coll.findOne({ _id: 'c' });
        await allRead();
        await coll.updateOne({ _id: 'c' }, { $set: { n: (doc?.n ?? 0) + 1 } });
      }),
    );
    const final = await t.db.collection<Student>(name).findOne({ _id: 'c' });
    expect(final?.n).toBeLessThan(WORKERS);
  });

  it('updateWithVersion, same interleaving (every first read before any write): n === 50 exactly', async ({
    annotate,
  }) => {
    const name = await counter();
    const allRead = barrier(WORKERS);
    const results = await Promise.all(
      race.all.map((_, i) =>
        updateWithVersion(elsewhere(name, i), {
          filter: { _id: 'c' },
          maxAttempts: 100,
          update: async (doc, { attempt }) => {
            if (attempt === 1) await allRead();
            return { $set: { n: (doc.n ?? 0) + 1 } };
          },
        }),
      ),
    );
    const attempts = results.map((r) => (r.outcome === 'updated' ? r.attempts : 0));
    expect(attempts.every((a) => a >= 1)).toBe(true);
    // Exactly one first attempt can win when all first reads precede all writes.
    expect(attempts.filter((a) => a === 1)).toHaveLength(1);
    const final = await t.db.collection<Student>(name).findOne({ _id: 'c' });
    expect(final).toEqual({ _id: 'c', n: WORKERS, version: WORKERS });
    const total = attempts.reduce((sum, a) => sum + a, 0);
    await annotate(
      `max attempts ${Math.max(...attempts)}, total attempts ${total} for ${WORKERS} writers`,
    );
  });
});

/**
 * updateWithVersion: every update operator the callback may return, the exact text of each
 * refusal of the callback's update and options, a version that is NaN or missing in a
 * conflict, and the give-up's elapsed time. Written to kill the mutants
 * tests/update-with-version.test.ts left alive (npm run mutation; docs/reliability.md,
 * "Mutation testing").
 */
import { Double, MongoServerError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, RetryBudgetExhaustedError } from '../../src/errors.js';
import { updateWithVersion, type VersionConflictEvent } from '../../src/update-with-version.js';
import { rejectionOf } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_update_with_version');

interface Doc {
  _id: string;
  version?: unknown;
  n?: number;
  a?: string;
  b?: string;
  d?: Date;
  tags?: string[];
}

async function docs(doc: Doc = { _id: 'd1', version: 1, n: 6, a: 'x', tags: ['x', 'y'] }) {
  const coll = t.db.collection<Doc>(t.uniqueName('docs'));
  await coll.insertOne(doc);
  t.commands.reset();
  return coll;
}

describe('every update operator updateWithVersion accepts from the callback is written', () => {
  it.each([
    ['$set', { a: 'z' }, { a: 'z' }],
    ['$unset', { a: '' }, { a: undefined }],
    ['$inc', { n: 1 }, { n: 7 }],
    ['$mul', { n: 2 }, { n: 12 }],
    ['$min', { n: 2 }, { n: 2 }],
    ['$max', { n: 9 }, { n: 9 }],
    ['$rename', { a: 'b' }, { a: undefined, b: 'x' }],
    ['$push', { tags: 'z' }, { tags: ['x', 'y', 'z'] }],
    ['$addToSet', { tags: 'z' }, { tags: ['x', 'y', 'z'] }],
    ['$pull', { tags: 'x' }, { tags: ['y'] }],
    ['$pullAll', { tags: ['x', 'y'] }, { tags: [] }],
    ['$pop', { tags: 1 }, { tags: ['x'] }],
    ['$bit', { n: { and: 2 } }, { n: 2 }],
  ])('%s', async (operator, fields, expected) => {
    const coll = await docs();
    const result = await updateWithVersion(coll, {
      filter: { _id: 'd1' },
      update: () => ({ [operator]: fields }),
    });
    expect(result.outcome).toBe('updated');
    const stored = await coll.findOne({ _id: 'd1' });
    expect(stored).toMatchObject({ version: 2 });
    for (const [key, value] of Object.entries(expected)) {
      expect(stored?.[key as keyof Doc]).toEqual(value);
    }
  });

  it('$currentDate', async () => {
    const coll = await docs();
    const result = await updateWithVersion(coll, {
      filter: { _id: 'd1' },
      update: () => ({ $currentDate: { d: true } }),
    });
    expect(result.outcome).toBe('updated');
    expect((await coll.findOne({ _id: 'd1' }))?.d).toBeInstanceOf(Date);
  });

  it('a $set whose value is a string naming the version field is data, not a path', async () => {
    const coll = await docs();
    const result = await updateWithVersion(coll, {
      filter: { _id: 'd1' },
      update: () => ({ $set: { a: 'version', b: '_id' } }),
    });
    expect(result.outcome).toBe('updated');
    expect(await coll.findOne({ _id: 'd1' })).toMatchObject({ a: 'version', b: '_id' });
  });

  it('a $rename to a non-string target is left for the server to refuse (no path check of a number)', async () => {
    const coll = await docs();
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 'd1' },
        update: () => ({ $rename: { a: 5 } }) as never,
      }),
    );
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(2);
  });
});

describe("the refusals of the callback's update, word for word, nothing written", () => {
  const P = 'updateWithVersion: option "update" ';
  it.each([
    [
      [{ $set: { a: 1 } }],
      `${P}returned an array: aggregation pipelines are not supported, return operators such as { $set: … }`,
    ],
    [
      'x',
      `${P}returned the string "x": return an operator update such as { $set: … }, or null to skip`,
    ],
    [{}, `${P}returned an empty update: return null to skip instead`],
    [
      { a: 1 },
      `${P}returned a field without an operator ("a"): replacement documents are not supported, use { $set: … }`,
    ],
    [{ $setOnInsert: { a: 1 } }, `${P}returned an unknown update operator "$setOnInsert"`],
    [{ $set: 5 }, `${P}returned $set with 5; it takes an object of fields`],
    [
      { $set: { '_id.x': 1 } },
      `${P}returned $set on "_id.x": MongoDB does not let an update change _id`,
    ],
    [
      { $rename: { a: 'version.x' } },
      `${P}returned $rename on "version.x", which overlaps the version field "version" (updateWithVersion bumps it itself)`,
    ],
  ])('%j', async (update, message) => {
    const coll = await docs();
    const error = await rejectionOf(
      updateWithVersion(coll, { filter: { _id: 'd1' }, update: () => update as never }),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe(message);
    expect(t.commands.names()).toEqual(['find']);
  });

  it('a signal that is no AbortSignal, word for word, nothing sent', async () => {
    const coll = await docs();
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 'd1' },
        update: () => null,
        signal: { aborted: false } as never,
      }),
    );
    expect((error as Error).message).toBe(
      'updateWithVersion: option "signal" must be an AbortSignal, got an object',
    );
    expect(t.commands.names()).toEqual([]);
  });
});

describe('the version as read', () => {
  it.each([
    // The driver hands a stored double NaN back as the number NaN.
    ['NaN', new Double(Number.NaN), 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['a string', '3', 'the string "3"'],
  ])('%s in the document is refused on versionField, word for word', async (_, version, shown) => {
    const coll = await docs({ _id: 'd1', version });
    let ran = false;
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 'd1' },
        update: () => {
          ran = true;
          return { $set: { a: 'z' } };
        },
      }),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe(
      `updateWithVersion: option "versionField" holds ${shown} in the matched document; a version must be a number (or missing)`,
    );
    expect(ran).toBe(false);
    expect(t.commands.names()).toEqual(['find']);
  });

  it('a missing version is reported as expectedVersion 0 in a conflict and in the give-up', async () => {
    const coll = await docs({ _id: 'd1', n: 0 });
    const other = t.db.collection<Doc>(coll.collectionName);
    const events: VersionConflictEvent[] = [];
    const before = performance.now();
    const error = await rejectionOf(
      updateWithVersion(coll, {
        filter: { _id: 'd1' },
        maxAttempts: 2,
        update: async (doc) => {
          // Another writer changes the version before each of our writes: sets it when it is
          // missing, removes it when it is set.
          await other.updateOne(
            { _id: 'd1' },
            doc.version === undefined ? { $set: { version: 1 } } : { $unset: { version: '' } },
          );
          return { $inc: { n: 1 } };
        },
        onConflict: (event) => {
          events.push(event);
        },
      }),
    );
    const took = performance.now() - before;
    expect(events.map((e) => e.expectedVersion)).toEqual([0]);
    expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
    const budget = error as RetryBudgetExhaustedError;
    expect(budget.message).toBe(
      'updateWithVersion: gave up after 2 attempt(s) (maxAttempts): the document changed between every read and write (last read version 1, now 0); nothing was written. Raise maxAttempts, or call again when fewer writers update this document',
    );
    expect(budget.cause).toBeInstanceOf(Error);
    expect({ ...(budget.cause as object) }).toStrictEqual({ attempt: 2, expectedVersion: 1 });
    expect((budget.cause as Error).message).toBe(
      'attempt 2 required version 1, but the document had changed',
    );
    expect(budget.elapsedMs).toBeGreaterThanOrEqual(0);
    expect(budget.elapsedMs).toBeLessThanOrEqual(Math.ceil(took));
  });
});

/**
 * applyProgress: the exact text and option of each of its own refusals, the exact command it
 * sends, level thresholds at their boundaries, a stored level that is fractional, negative, NaN,
 * infinite or not a number, badge rules at their boundary, the checks on the projected reply,
 * and placeField's rebuilding of the returned document (array and scalar parents, the property
 * descriptors it defines). Written to kill the mutants tests/apply-progress.test.ts and the
 * other suites leave alive (npm run mutation; docs/reliability.md, "Mutation testing").
 */
import type { Collection, Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { applyProgress, placeField } from '../../src/apply-progress.js';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import { MAX_NAME_LENGTH } from '../../src/validate.js';
import { rejectionOf } from '../support/async.js';
import { caseInsensitiveCollection } from '../support/case-insensitive.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_apply_progress');

/** Any fields, a string `_id` (a bare `Document` collection types `_id` as an ObjectId). */
type Student = { _id: string } & Document;

async function students(docs: Document[] = []): Promise<Collection<Student>> {
  const coll = t.db.collection<Student>(t.uniqueName('students'));
  if (docs.length > 0) await coll.insertMany(docs as Student[]);
  t.commands.reset();
  return coll;
}

const P = 'applyProgress: option';
const valid = { filter: { _id: 's1' }, inc: { xp: 10 } };
const rule = { badge: 'b', counter: 'xp', atLeast: 1 };
const level = { field: 'level', counter: 'xp', thresholds: [10] };

/** The refusal of `options`: an InvalidArgumentError, no command sent, the document untouched. */
async function refusal(options: unknown): Promise<InvalidArgumentError> {
  const coll = await students([{ _id: 's1', xp: 1 }]);
  const error = await rejectionOf(applyProgress(coll, options as never));
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect(t.commands.names()).toEqual([]);
  expect(await coll.find({}).toArray()).toStrictEqual([{ _id: 's1', xp: 1 }]);
  return error as InvalidArgumentError;
}

describe("applyProgress's own refusals: the option named and the full message, nothing sent", () => {
  const long = 'a'.repeat(MAX_NAME_LENGTH + 1);
  const cases: [label: string, options: unknown, option: string, message: string][] = [
    [
      'an unknown option',
      { ...valid, levels: level },
      'levels',
      `${P} "levels" is not an option of applyProgress (known: filter, inc, level, badges, session, opId, opIdLog)`,
    ],
    [
      'filter missing',
      { inc: { xp: 1 } },
      'filter',
      `${P} "filter" must be a query filter object, got a undefined`,
    ],
    [
      'inc an array',
      { ...valid, inc: [10] },
      'inc',
      `${P} "inc" must be an object of counters, got an array`,
    ],
    [
      'inc null',
      { ...valid, inc: null },
      'inc',
      `${P} "inc" must be an object of counters, got null`,
    ],
    ['inc empty', { ...valid, inc: {} }, 'inc', `${P} "inc" must name at least one counter`],
    [
      'an inc amount 0',
      { ...valid, inc: { xp: 0 } },
      'inc.xp',
      `${P} "inc.xp" must be a finite number greater than 0, got 0`,
    ],
    [
      'an inc key inside another ("stats.xp" under "stats")',
      { ...valid, inc: { stats: 1, 'stats.xp': 1 } },
      'inc.stats.xp',
      `${P} "inc.stats.xp" overlaps inc.stats ("stats"): name a field of its own`,
    ],
    [
      'an inc key around another ("stats" over "stats.xp")',
      { ...valid, inc: { 'stats.xp': 1, stats: 1 } },
      'inc.stats',
      `${P} "inc.stats" overlaps inc.stats.xp ("stats.xp"): name a field of its own`,
    ],
    [
      'level.field the same as an inc key (a === b)',
      { ...valid, level: { ...level, field: 'xp' } },
      'level.field',
      `${P} "level.field" overlaps inc.xp ("xp"): name a field of its own`,
    ],
    [
      'badges.field the same as level.field',
      { ...valid, level, badges: { field: 'level', rules: [rule] } },
      'badges.field',
      `${P} "badges.field" overlaps level.field ("level"): name a field of its own`,
    ],
    ['level a number', { ...valid, level: 5 }, 'level', `${P} "level" must be an object, got 5`],
    [
      'level with an unknown key',
      { ...valid, level: { ...level, threshold: [1] } },
      'level.threshold',
      `${P} "level.threshold" is unknown (known: field, counter, thresholds)`,
    ],
    [
      'thresholds not an array',
      { ...valid, level: { ...level, thresholds: 100 } },
      'level.thresholds',
      `${P} "level.thresholds" must be a non-empty array of numbers, got 100`,
    ],
    [
      'thresholds empty',
      { ...valid, level: { ...level, thresholds: [] } },
      'level.thresholds',
      `${P} "level.thresholds" must be a non-empty array of numbers, got an array`,
    ],
    [
      'thresholds decreasing',
      { ...valid, level: { ...level, thresholds: [100, 500, 400] } },
      'level.thresholds.2',
      `${P} "level.thresholds.2" is 400, below the previous threshold 500: thresholds must not decrease`,
    ],
    [
      'a threshold NaN',
      { ...valid, level: { ...level, thresholds: [100, Number.NaN] } },
      'level.thresholds.1',
      `${P} "level.thresholds.1" must be a finite number, got NaN`,
    ],
    [
      'level.counter the level field',
      { ...valid, level: { ...level, counter: 'level' } },
      'level.counter',
      `${P} "level.counter" overlaps level.field ("level"): name an inc key or another field`,
    ],
    [
      'level.counter inside an incremented counter',
      { ...valid, level: { ...level, counter: 'xp.total' } },
      'level.counter',
      `${P} "level.counter" overlaps inc.xp ("xp"): name an inc key or another field`,
    ],
    [
      'level.counter the badges field (written after level.field, checked before the counters)',
      {
        ...valid,
        level: { ...level, counter: 'badges' },
        badges: { field: 'badges', rules: [rule] },
      },
      'level.counter',
      `${P} "level.counter" overlaps badges.field ("badges"): name an inc key or another field`,
    ],
    [
      'badges a string',
      { ...valid, badges: 'x' },
      'badges',
      `${P} "badges" must be an object, got the string "x"`,
    ],
    [
      'badges with an unknown key',
      { ...valid, badges: { field: 'badges', rule } },
      'badges.rule',
      `${P} "badges.rule" is unknown (known: field, rules)`,
    ],
    [
      'badges.rules not an array',
      { ...valid, badges: { field: 'badges', rules: 'x' } },
      'badges.rules',
      `${P} "badges.rules" must be a non-empty array of rules, got the string "x"`,
    ],
    [
      'badges.rules empty',
      { ...valid, badges: { field: 'badges', rules: [] } },
      'badges.rules',
      `${P} "badges.rules" must be a non-empty array of rules, got an array`,
    ],
    [
      'a rule not an object',
      { ...valid, badges: { field: 'badges', rules: [rule, 'b'] } },
      'badges.rules.1',
      `${P} "badges.rules.1" must be an object, got the string "b"`,
    ],
    [
      'a rule with an unknown key',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, min: 1 }] } },
      'badges.rules.0.min',
      `${P} "badges.rules.0.min" is unknown (known: badge, counter, atLeast)`,
    ],
    [
      'an empty badge',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, badge: '' }] } },
      'badges.rules.0.badge',
      `${P} "badges.rules.0.badge" must be a non-empty string of at most ${MAX_NAME_LENGTH} characters, got the string ""`,
    ],
    [
      'a numeric badge',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, badge: 5 }] } },
      'badges.rules.0.badge',
      `${P} "badges.rules.0.badge" must be a non-empty string of at most ${MAX_NAME_LENGTH} characters, got 5`,
    ],
    [
      `a badge of ${MAX_NAME_LENGTH + 1} characters`,
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, badge: long }] } },
      'badges.rules.0.badge',
      `${P} "badges.rules.0.badge" must be a non-empty string of at most ${MAX_NAME_LENGTH} characters, got the string "${long}"`,
    ],
    [
      'a repeated badge',
      { ...valid, badges: { field: 'badges', rules: [rule, { ...rule, atLeast: 5 }] } },
      'badges.rules.1.badge',
      `${P} "badges.rules.1.badge" repeats the badge "b": list each badge once`,
    ],
    [
      'a rule counter the level field',
      {
        ...valid,
        level,
        badges: { field: 'badges', rules: [rule, { ...rule, badge: 'c', counter: 'level' }] },
      },
      'badges.rules.1.counter',
      `${P} "badges.rules.1.counter" overlaps level.field ("level"): name an inc key or another field`,
    ],
    [
      'a rule atLeast a string',
      {
        ...valid,
        badges: { field: 'badges', rules: [rule, { ...rule, badge: 'c', atLeast: '10' }] },
      },
      'badges.rules.1.atLeast',
      `${P} "badges.rules.1.atLeast" must be a finite number, got the string "10"`,
    ],
    [
      'an inc key that is the op id log',
      { ...valid, opId: 'r', opIdLog: { field: 'xp' } },
      'inc.xp',
      `${P} "inc.xp" overlaps the op id log field "xp" (choose another opIdLog.field)`,
    ],
    [
      'level.counter inside the op id log',
      { ...valid, opId: 'r', level: { ...level, counter: '_opIds.n' } },
      'level.counter',
      `${P} "level.counter" overlaps the op id log field "_opIds" (choose another opIdLog.field)`,
    ],
    [
      'a rule counter inside the op id log',
      {
        ...valid,
        opId: 'r',
        badges: { field: 'badges', rules: [rule, { ...rule, badge: 'c', counter: '_opIds.n' }] },
      },
      'badges.rules.1.counter',
      `${P} "badges.rules.1.counter" overlaps the op id log field "_opIds" (choose another opIdLog.field)`,
    ],
  ];

  it.each(cases)('%s', async (_label, options, option, message) => {
    const error = await refusal(options);
    expect(error.option).toBe(option);
    expect(error.primitive).toBe('applyProgress');
    expect(error.message).toBe(message);
  });

  it('a collection that is not a driver Collection is refused before anything else', async () => {
    const error = await rejectionOf(applyProgress({} as never, valid as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe('collection');
  });
});

describe('what the checks accept', () => {
  it('names that share a prefix without a dot do not overlap; a one-letter field "S" is a field', async () => {
    // "S": a list of written paths seeded with a stray string would read as the path "S".
    const coll = await students([{ _id: 's1' }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 1, xpx: 2, S: 3 },
      level: { field: 'xpLevel', counter: 'xpx', thresholds: [2] },
      badges: { field: 'x', rules: [{ badge: 'S', counter: 'S', atLeast: 3 }] },
      opId: 'op',
      opIdLog: { field: 'xp_ops' },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 1, xpx: 2, S: 3, xp_ops: ['op'], xpLevel: 1, x: ['S'] },
      levelsGained: [1],
      badgesEarned: ['S'],
    });
  });

  it(`equal thresholds, a negative first threshold, and a badge of exactly ${MAX_NAME_LENGTH} characters`, async () => {
    const badge = 'b'.repeat(MAX_NAME_LENGTH);
    const coll = await students([{ _id: 's1' }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 10 },
      level: { field: 'level', counter: 'xp', thresholds: [-5, 10, 10, 11] },
      badges: { field: 'badges', rules: [{ badge, counter: 'xp', atLeast: 10 }] },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 10, level: 3, badges: [badge] },
      levelsGained: [1, 2, 3],
      badgesEarned: [badge],
    });
  });
});

describe('the command sent: one findAndModify, exactly', () => {
  const numeric = (expr: unknown) => ({
    $let: { vars: { n: expr }, in: { $cond: [{ $isNumber: '$$n' }, '$$n', 0] } },
  });

  it('filter with the op id guard, the pipeline $set, and the projection of the facts', async () => {
    const coll = await students([
      { _id: 's1', xp: 5, streak: 3, level: 0, badges: ['old'], _opIds: ['older'] },
    ]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 10, 'stats.n': 1 },
      level: { field: 'level', counter: 'xp', thresholds: [10, 20] },
      badges: {
        field: 'badges',
        rules: [
          { badge: 'ten', counter: 'xp', atLeast: 10 },
          { badge: 'streaky', counter: 'streak', atLeast: 3 },
          { badge: 'old', counter: 'xp', atLeast: 0 },
          { badge: 'never', counter: 'streak', atLeast: 4 },
        ],
      },
      opId: 'op-1',
      opIdLog: { size: 5 },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: {
        _id: 's1',
        xp: 15,
        streak: 3,
        level: 1,
        badges: ['old', 'ten', 'streaky'],
        _opIds: ['older', 'op-1'],
        stats: { n: 1 },
      },
      levelsGained: [1],
      badgesEarned: ['ten', 'streaky'],
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command as Document;
    expect(await coll.findOne({ _id: 's1' })).toStrictEqual(result.document);

    const xp = { $add: [{ $ifNull: ['$xp', 0] }, 10] };
    const n = { $add: [{ $ifNull: ['$stats.n', 0] }, 1] };
    const opIds = {
      $slice: [{ $concatArrays: [{ $ifNull: ['$_opIds', []] }, [{ $literal: 'op-1' }]] }, -5],
    };
    const levelBefore = numeric('$level');
    const levelAfter = {
      $max: [
        levelBefore,
        {
          $let: {
            vars: { c: numeric(xp) },
            in: {
              $size: {
                $filter: {
                  input: { $literal: [10, 20] },
                  as: 't',
                  cond: { $gte: ['$$c', '$$t'] },
                },
              },
            },
          },
        },
      ],
    };
    const held = {
      $concatArrays: [
        { $cond: [{ $gte: [numeric(xp), 10] }, [{ $literal: 'ten' }], []] },
        { $cond: [{ $gte: [numeric('$streak'), 3] }, [{ $literal: 'streaky' }], []] },
        { $cond: [{ $gte: [numeric(xp), 0] }, [{ $literal: 'old' }], []] },
        { $cond: [{ $gte: [numeric('$streak'), 4] }, [{ $literal: 'never' }], []] },
      ],
    };
    const earned = {
      $filter: { input: held, as: 'b', cond: { $not: [{ $in: ['$$b', '$$had'] }] } },
    };
    const had = { $ifNull: ['$badges', []] };
    const badgesAfter = { $let: { vars: { had }, in: { $concatArrays: ['$$had', earned] } } };

    // An `_id` filter: the op id guard is in the pipeline, around the one `$set`.
    const seen = {
      $or: [
        { $eq: ['$_opIds', { $literal: 'op-1' }] },
        {
          $cond: [{ $isArray: '$_opIds' }, { $in: [{ $literal: 'op-1' }, '$_opIds'] }, false],
        },
      ],
    };
    expect(command.query).toStrictEqual({ _id: 's1' });
    expect(command.update).toStrictEqual([
      { $replaceWith: { $cond: [seen, { parked: '$$ROOT' }, '$$ROOT'] } },
      { $set: { xp, 'stats.n': n, _opIds: opIds, level: levelAfter, badges: badgesAfter } },
      { $replaceWith: { $cond: [{ $eq: [{ $type: '$_id' }, 'missing'] }, '$parked', '$$ROOT'] } },
    ]);
    // The $set lists the fields in this order, so new fields land in it on the server.
    expect(Object.keys(command.update[1].$set)).toEqual([
      'xp',
      'stats.n',
      '_opIds',
      'level',
      'badges',
    ]);
    expect(command.fields).toStrictEqual({
      _id: 0,
      before: '$$ROOT',
      facts: {
        $cond: [
          seen,
          { $literal: { repeat: true } },
          {
            $mergeObjects: [
              {
                counters: [xp, n],
                opIds,
                levelBefore,
                level: levelAfter,
                badges: badgesAfter,
                earned: { $let: { vars: { had }, in: earned } },
              },
            ],
          },
        ],
      },
    });
    expect(command.new).toBe(false);
  });

  it('a filter without an _id equality: the op id guard in the filter, the $set alone, the facts unconditional', async () => {
    const coll = await students([{ _id: 's1', name: 'ann', xp: 5 }]);
    const result = await applyProgress(coll, {
      filter: { name: 'ann' },
      inc: { xp: 10 },
      opId: 'op-1',
      opIdLog: { size: 5 },
    });
    expect(result.outcome).toBe('applied');
    const command = t.commands.started[0]?.command as Document;
    const xp = { $add: [{ $ifNull: ['$xp', 0] }, 10] };
    const opIds = {
      $slice: [{ $concatArrays: [{ $ifNull: ['$_opIds', []] }, [{ $literal: 'op-1' }]] }, -5],
    };
    expect(command.query).toStrictEqual({ $and: [{ name: 'ann' }, { _opIds: { $ne: 'op-1' } }] });
    expect(command.update).toStrictEqual([{ $set: { xp, _opIds: opIds } }]);
    expect(command.fields).toStrictEqual({
      _id: 0,
      before: '$$ROOT',
      facts: { $mergeObjects: [{ counters: [xp], opIds }] },
    });
  });

  it('the parking field is named after no path the call writes or reads', async () => {
    const coll = await students([{ _id: 's1', parked: 7, _parked: 1 }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { 'parked.x': 1 },
      badges: { field: 'b', rules: [{ badge: 'p', counter: '_parked', atLeast: 1 }] },
      opId: 'op-1',
    });
    expect(result.outcome).toBe('applied');
    const command = t.commands.started[0]?.command as Document;
    expect(command.update[0].$replaceWith.$cond[1]).toStrictEqual({ __parked: '$$ROOT' });
    expect(command.update[2].$replaceWith.$cond[1]).toBe('$__parked');
  });

  it('without opId, level and badges: the caller filter alone, the counters only', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    const result = await applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 2 } });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 3 },
      levelsGained: [],
      badgesEarned: [],
    });
    const command = t.commands.started[0]?.command as Document;
    const xp = { $add: [{ $ifNull: ['$xp', 0] }, 2] };
    expect(command.query).toStrictEqual({ _id: 's1' });
    expect(command.update).toStrictEqual([{ $set: { xp } }]);
    expect(command.fields).toStrictEqual({
      _id: 0,
      before: '$$ROOT',
      facts: { $mergeObjects: [{ counters: [xp] }] },
    });
  });
});

describe('outcomes without a match', () => {
  it('notFound without opId: exactly { outcome: "notFound" }, one command', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    expect(await applyProgress(coll, { filter: { _id: 'nobody' }, inc: { xp: 1 } })).toStrictEqual({
      outcome: 'notFound',
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('notFound with opId: the failure read finds no document', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    expect(
      await applyProgress(coll, { filter: { _id: 'nobody' }, inc: { xp: 1 }, opId: 'r' }),
    ).toStrictEqual({ outcome: 'notFound' });
    // An `_id` filter: nothing matched the filter itself, nothing to read.
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('notFound with opId and a filter without an _id equality: the failure read finds no document', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    expect(
      await applyProgress(coll, { filter: { name: 'nobody' }, inc: { xp: 1 }, opId: 'r' }),
    ).toStrictEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });

  it('notFound with opId: the document exists but does not match the rest of the filter', async () => {
    const coll = await students([{ _id: 's1', xp: 1, team: 'a' }]);
    expect(
      await applyProgress(coll, { filter: { _id: 's1', team: 'b' }, inc: { xp: 1 }, opId: 'r' }),
    ).toStrictEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('notFound with opId and a filter without an _id equality: the document exists but has not recorded the id (filter did not match)', async () => {
    const coll = await students([{ _id: 's1', xp: 1, team: 'a' }]);
    expect(
      await applyProgress(coll, {
        filter: { _id: { $in: ['s1'] }, team: 'b' },
        inc: { xp: 1 },
        opId: 'r',
      }),
    ).toStrictEqual({ outcome: 'notFound' });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });

  it('alreadyApplied: exactly the outcome and the document as it is, in the one command', async () => {
    const coll = await students([{ _id: 's1', xp: 1, _opIds: ['r'] }]);
    expect(
      await applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 1 }, opId: 'r' }),
    ).toStrictEqual({ outcome: 'alreadyApplied', document: { _id: 's1', xp: 1, _opIds: ['r'] } });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('alreadyApplied with a filter without an _id equality: exactly the outcome and the document as read', async () => {
    const coll = await students([{ _id: 's1', xp: 1, _opIds: ['r'] }]);
    expect(
      await applyProgress(coll, { filter: { xp: 1 }, inc: { xp: 1 }, opId: 'r' }),
    ).toStrictEqual({ outcome: 'alreadyApplied', document: { _id: 's1', xp: 1, _opIds: ['r'] } });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });
});

describe('levels: thresholds at their boundary, and every kind of stored level', () => {
  const thresholds = [10, 20, 30];

  it.each([
    [0, 9, 0, []],
    [0, 10, 1, [1]],
    [0, 11, 1, [1]],
    [10, 9, 1, []],
    [10, 10, 2, [2]],
    [0, 30, 3, [1, 2, 3]],
    [0, 1000, 3, [1, 2, 3]],
  ])('xp %d + %d: level %d, levelsGained %j', async (xp, award, reached, gained) => {
    // The stored level is the one `xp` had reached.
    const stored = xp >= 10 ? 1 : 0;
    const coll = await students([{ _id: 's1', xp, level: stored }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: award },
      level: { field: 'level', counter: 'xp', thresholds },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: xp + award, level: reached },
      levelsGained: gained,
      badgesEarned: [],
    });
  });

  it.each<[label: string, stored: unknown, award: number, level: unknown, gained: number[]]>([
    ['a level raised by hand above the reached one stays', 4, 25, 4, []],
    ['one level above a stored 4', 4, 55, 5, [5]],
    ['equal to the stored level: nothing gained', 2, 20, 2, []],
    ['a fractional stored level 1.5: levels 2 and 3', 1.5, 30, 3, [2, 3]],
    ['a negative stored level: from level 1', -3, 20, 2, [1, 2]],
    ['a stored NaN counts as 0', Number.NaN, 20, 2, [1, 2]],
    ['a stored string counts as 0 and is overwritten', 'gold', 10, 1, [1]],
    [
      'a stored Infinity stays, nothing gained',
      Number.POSITIVE_INFINITY,
      60,
      Number.POSITIVE_INFINITY,
      [],
    ],
    ['a stored 2^53 stays, nothing gained', 2 ** 53, 60, 2 ** 53, []],
  ])('%s', async (_label, stored, award, expectedLevel, gained) => {
    const coll = await students([{ _id: 's1', level: stored }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: award },
      level: { field: 'level', counter: 'xp', thresholds: [10, 20, 30, 40, 50] },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', level: expectedLevel, xp: award },
      levelsGained: gained,
      badgesEarned: [],
    });
  });

  it('a level counter not incremented here: its current value, as a number or 0', async () => {
    const coll = await students([
      { _id: 'a', streak: 20 },
      { _id: 'b', streak: '20' },
    ]);
    const options = {
      inc: { xp: 1 },
      level: { field: 'level', counter: 'streak', thresholds: [10, 20, 30] },
    };
    expect(await applyProgress(coll, { ...options, filter: { _id: 'a' } })).toStrictEqual({
      outcome: 'applied',
      document: { _id: 'a', streak: 20, xp: 1, level: 2 },
      levelsGained: [1, 2],
      badgesEarned: [],
    });
    expect(await applyProgress(coll, { ...options, filter: { _id: 'b' } })).toStrictEqual({
      outcome: 'applied',
      document: { _id: 'b', streak: '20', xp: 1, level: 0 },
      levelsGained: [],
      badgesEarned: [],
    });
  });
});

describe('badges: rules at their boundary, held badges, counters read as they are', () => {
  it.each([
    [8, []],
    [9, ['ten']],
    [10, ['ten']],
  ])('submissions %d + 1 against atLeast 10: earned %j', async (before, earned) => {
    const coll = await students([{ _id: 's1', submissions: before }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { submissions: 1 },
      badges: { field: 'badges', rules: [{ badge: 'ten', counter: 'submissions', atLeast: 10 }] },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', submissions: before + 1, badges: earned },
      levelsGained: [],
      badgesEarned: earned,
    });
  });

  it('a held badge is neither added again nor reported; no rule holding adds nothing to a missing field', async () => {
    const coll = await students([
      { _id: 'a', xp: 10, badges: ['ten'] },
      { _id: 'b', xp: 0 },
    ]);
    const badges = {
      field: 'badges',
      rules: [
        { badge: 'ten', counter: 'xp', atLeast: 10 },
        { badge: 'twenty', counter: 'xp', atLeast: 20 },
      ],
    };
    expect(
      await applyProgress(coll, { filter: { _id: 'a' }, inc: { xp: 1 }, badges }),
    ).toStrictEqual({
      outcome: 'applied',
      document: { _id: 'a', xp: 11, badges: ['ten'] },
      levelsGained: [],
      badgesEarned: [],
    });
    expect(
      await applyProgress(coll, { filter: { _id: 'b' }, inc: { xp: 1 }, badges }),
    ).toStrictEqual({
      outcome: 'applied',
      document: { _id: 'b', xp: 1, badges: [] },
      levelsGained: [],
      badgesEarned: [],
    });
  });

  it('a rule counter named toString is the field of that name (here missing, then 10), not the inherited method', async () => {
    const coll = await students([{ _id: 'a' }, { _id: 'b', toString: 10 }]);
    const badges = {
      field: 'badges',
      rules: [{ badge: 'ten', counter: 'toString', atLeast: 10 }],
    };
    for (const [id, earned] of [
      ['a', []],
      ['b', ['ten']],
    ] as const) {
      const result = await applyProgress(coll, { filter: { _id: id }, inc: { xp: 1 }, badges });
      expect(result).toMatchObject({ outcome: 'applied', badgesEarned: earned });
    }
  });
});

describe('sessions', () => {
  it('the update runs in the session: an aborted transaction leaves the document as it was', async () => {
    const coll = await students([{ _id: 's1', xp: 1 }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 1 }, session });
      expect(result).toMatchObject({ outcome: 'applied', document: { xp: 2 } });
      const command = t.commands.started[0]?.command as Document;
      expect(command.startTransaction).toBe(true);
      expect(command.lsid).toStrictEqual(session.id);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await coll.findOne({ _id: 's1' })).toStrictEqual({ _id: 's1', xp: 1 });
  });
});

describe('a retried findAndModify answered with the stored image (stand-in for mongod)', () => {
  // The offline server cannot answer a retried findAndModify from its stored image without a
  // fail point (tests/apply-progress.test.ts does that over the wire); this stand-in answers as
  // mongod does (write_ops_retryability.cpp, SERVER-44151): the unprojected before-image, and
  // the aggregate that evaluates the projection over it (tests/support/case-insensitive.ts).
  it('the image goes through one aggregate; the outcome is read from its projection', async () => {
    const image = { _id: 's1', xp: 5, level: 0 };
    const { collection, calls, aggregateOptions } = caseInsensitiveCollection(
      [{ _id: 's1', xp: 15, level: 1 }],
      { retriedImage: image },
    );
    const result = await applyProgress(collection, {
      filter: { _id: 's1' },
      inc: { xp: 10 },
      level: { field: 'level', counter: 'xp', thresholds: [10] },
    });
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 15, level: 1 },
      levelsGained: [1],
      badgesEarned: [],
    });
    expect(calls).toEqual(['findAndModify', 'aggregate']);
    expect(aggregateOptions).toEqual([{ readPreference: 'primary' }]);
  });

  it('a document deleted before the aggregate: the error names applyProgress', async () => {
    const { collection } = caseInsensitiveCollection([], {
      retriedImage: { _id: 's1', xp: 5 },
    });
    const error = await rejectionOf(
      applyProgress(collection, { filter: { _id: 's1' }, inc: { xp: 10 } }),
    );
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toMatch(/^applyProgress: the update was applied /);
  });
});

describe('the checks on the projected reply', () => {
  // A stand-in collection that answers the findAndModify with `reply`. A server that evaluates
  // the projection (4.4+) always sends `{ before, facts }` with every fact; one that does not
  // (before 4.4) sends whatever its projection rules make of it. Each reply below lacks or
  // spoils exactly one fact, and must be refused as a projection the server did not evaluate,
  // never half-read into an outcome.
  const options = {
    filter: { _id: 's1' },
    inc: { xp: 10 },
    level: { field: 'level', counter: 'xp', thresholds: [10] },
    badges: { field: 'badges', rules: [{ badge: 'ten', counter: 'xp', atLeast: 10 }] },
    opId: 'op-1',
  };
  const facts = {
    counters: [10],
    opIds: ['op-1'],
    levelBefore: 0,
    level: 1,
    badges: ['ten'],
    earned: ['ten'],
  };
  const answering = (reply: Document) =>
    ({
      collectionName: 'stand_in',
      findOneAndUpdate: async () => reply,
    }) as unknown as Collection<Student>;
  const without = (key: keyof typeof facts) =>
    Object.fromEntries(Object.entries(facts).filter(([k]) => k !== key));

  it('a reply with every fact is read into the outcome', async () => {
    const result = await applyProgress(answering({ before: { _id: 's1' }, facts }), options);
    expect(result).toStrictEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 10, _opIds: ['op-1'], level: 1, badges: ['ten'] },
      levelsGained: [1],
      badgesEarned: ['ten'],
    });
  });

  it.each<[string, Document]>([
    ['nothing', {}],
    ['before not a document', { before: 5, facts }],
    ['facts missing', { before: { _id: 's1' } }],
    ['facts an array', { before: { _id: 's1' }, facts: [facts] }],
    ['counters missing', { before: { _id: 's1' }, facts: without('counters') }],
    ['opIds missing', { before: { _id: 's1' }, facts: without('opIds') }],
    ['level missing', { before: { _id: 's1' }, facts: without('level') }],
    ['levelBefore missing', { before: { _id: 's1' }, facts: without('levelBefore') }],
    ['badges missing', { before: { _id: 's1' }, facts: without('badges') }],
    ['earned missing', { before: { _id: 's1' }, facts: without('earned') }],
    ['earned holding a number', { before: { _id: 's1' }, facts: { ...facts, earned: [5] } }],
    [
      'earned holding a string and a number',
      { before: { _id: 's1' }, facts: { ...facts, earned: ['ten', 5] } },
    ],
  ])('%s: refused', async (_label, reply) => {
    const error = await rejectionOf(applyProgress(answering(reply), options));
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toBe(
      'applyProgress: the server did not evaluate the findAndModify projection (MongoDB 4.4+ is required), so the outcome cannot be read; the update may have been applied. Upgrade the server to MongoDB 4.4 or later, and check the document before repeating the call',
    );
  });
});

describe('placeField: the returned document rebuilt as a pipeline $set writes it', () => {
  it('a top-level field, a new parent, an existing parent (siblings kept), a scalar parent', () => {
    const doc: Document = { _id: 1, a: { keep: 1 }, s: 5 };
    placeField(doc, 'top', 1);
    placeField(doc, 'fresh.x.y', 2);
    placeField(doc, 'a.b', 3);
    placeField(doc, 's.t', 4);
    expect(doc).toStrictEqual({
      _id: 1,
      a: { keep: 1, b: 3 },
      s: { t: 4 },
      top: 1,
      fresh: { x: { y: 2 } },
    });
  });

  it('an array parent: each document element gets the field, a scalar element becomes a document', () => {
    const doc: Document = { list: [{ x: 1 }, 5, null, [1]] };
    placeField(doc, 'list.b', 7);
    expect(doc.list.slice(0, 3)).toStrictEqual([{ x: 1, b: 7 }, { b: 7 }, { b: 7 }]);
    // A nested array stays an array. (mongod's $set goes into it too, [{ b: 7 }], which
    // placeField does not: reported, see the mutation report; only the kind is asserted here.)
    expect(Array.isArray(doc.list[3])).toBe(true);
  });

  it('every placed field is an own, writable, enumerable, configurable property', () => {
    const doc: Document = {};
    placeField(doc, 'a.b', 1);
    for (const [target, key, value] of [
      [doc, 'a', { b: 1 }],
      [doc.a, 'b', 1],
    ] as const) {
      expect(Object.getOwnPropertyDescriptor(target, key)).toStrictEqual({
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    }
  });

  it('through applyProgress: a level under a scalar parent replaces it with a document', async () => {
    // The document as mongod's pipeline $set leaves it: a scalar parent replaced by a document
    // holding the computed field (mongod projection_node.cpp, applyExpressionsToValue). Not
    // compared with what the offline server stored: it (mingo) leaves a scalar or array parent
    // unchanged there, unlike mongod.
    const coll = await students([{ _id: 's1', progress: 5 }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 10 },
      level: { field: 'progress.level', counter: 'xp', thresholds: [10] },
    });
    expect(result.document).toStrictEqual({ _id: 's1', progress: { level: 1 }, xp: 10 });
  });
});

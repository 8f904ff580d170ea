/**
 * applyProgress: counters, level and badges in one atomic update, reporting what each call
 * earned.
 *
 * The race it closes is seed 001's: "read the student, add the XP in JS, check the level
 * threshold, add the badge, then save()". Two awards that both read before either saves lose
 * one award's points, and both see the threshold crossed, so both announce the same level-up.
 * The race tests below first show that under this file's harness, then show the primitive
 * holding under the same one.
 */
import { BSON, type Collection, Decimal128, type Document, Long, type MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import {
  type ApplyProgressOnceResult,
  type ApplyProgressOptions,
  type ApplyProgressResult,
  applyProgress,
  placeField,
} from '../src/apply-progress.js';
import {
  InvalidArgumentError,
  isInvalidArgumentError,
  isMongoAtomicsError,
} from '../src/errors.js';
import { rejectionOf } from './conformance/helpers.js';
import { caseInsensitiveCollection } from './support/case-insensitive.js';
import { retryNextWrite, useFailPointClients } from './support/failpoints.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, useRaceClients } from './support/race.js';

/** The student of seed 001, as an application would type it. */
interface Student {
  _id: string;
  name?: string;
  xp?: number;
  auraPoints?: number;
  submissions?: number;
  streak?: unknown;
  level?: number;
  badges?: string[];
  stats?: { xp?: number; submissions?: number };
  progress?: { level?: number; badges?: string[] };
  _opIds?: string[];
  meta?: { ops?: string[] };
}

const t = useTestDatabase('apply_progress');

type ProgressAppliedLike = { document?: Document } & Record<string, unknown>;
const WORKERS = 50;
const race = useRaceClients(WORKERS);

async function students(docs: Student[] = []): Promise<Collection<Student>> {
  const coll = t.db.collection<Student>(t.uniqueName('students'));
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

/** The same collection through a race client. */
const via = (client: MongoClient, coll: Collection<Student>) =>
  client.db(t.db.databaseName).collection<Student>(coll.collectionName);

/**
 * Seed 001's rule, "level L → L+1 needs 100·(L+1)² XP, counted from the last level-up", as
 * cumulative thresholds: reaching level n takes 100·(1² + 2² + … + n²) = 100·n(n+1)(2n+1)/6 XP.
 */
const SEED_THRESHOLDS = Array.from(
  { length: 30 },
  (_, i) => (100 * (i + 1) * (i + 2) * (2 * i + 3)) / 6,
);

/** XP earned since the current level was reached (what the seed stores in `xp`). */
const xpIntoLevel = (xp: number, level: number) =>
  xp - (level === 0 ? 0 : (SEED_THRESHOLDS[level - 1] as number));

/** The seed's per-level rule applied to cumulative XP, carrying the excess over. */
function seedLevel(totalXp: number): { level: number; xp: number } {
  let level = 0;
  let xp = totalXp;
  while (xp >= 100 * (level + 1) ** 2) {
    xp -= 100 * (level + 1) ** 2;
    level += 1;
  }
  return { level, xp };
}

const BADGES = {
  field: 'badges',
  rules: [
    { badge: 'first-submission', counter: 'submissions', atLeast: 1 },
    { badge: 'ten-submissions', counter: 'submissions', atLeast: 10 },
    { badge: 'fifty-submissions', counter: 'submissions', atLeast: 50 },
  ],
} as const;
const LEVEL = { field: 'level', counter: 'xp', thresholds: SEED_THRESHOLDS } as const;

describe('outcomes', () => {
  it('one award crossing two thresholds reports both levels: levelsGained [2, 3]', async () => {
    const coll = await students([{ _id: 's1', xp: 450, level: 1 }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 1000 },
      level: LEVEL,
    });
    expect(result).toEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 1450, level: 3 },
      levelsGained: [2, 3],
      badgesEarned: [],
    });
    expect(await coll.findOne({ _id: 's1' })).toEqual(result.document);
  });

  it('earns the badges whose rule now holds, in rule order, and keeps the earlier ones', async () => {
    const coll = await students([{ _id: 's1', submissions: 9, badges: ['first-submission'] }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { submissions: 1 },
      badges: BADGES,
    });
    expect(result).toEqual({
      outcome: 'applied',
      document: { _id: 's1', submissions: 10, badges: ['first-submission', 'ten-submissions'] },
      levelsGained: [],
      badgesEarned: ['ten-submissions'],
    });
    expect(await coll.findOne({ _id: 's1' })).toEqual(result.document);
  });

  it('badges are a set: held badges keep their order and are never added or reported twice', async () => {
    const coll = await students([
      { _id: 's1', submissions: 9, badges: ['legacy', 'ten-submissions', 'legacy'] },
    ]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { submissions: 1 },
      badges: BADGES,
    });
    expect(result.badgesEarned).toEqual(['first-submission']);
    expect(result.document?.badges).toEqual([
      'legacy',
      'ten-submissions',
      'legacy',
      'first-submission',
    ]);
    const again = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { submissions: 1 },
      badges: BADGES,
    });
    expect(again.badgesEarned).toEqual([]);
    expect((await coll.findOne({ _id: 's1' }))?.badges).toEqual(result.document?.badges);
  });

  it('missing counters, level and badges start at 0 and [] (new fields in update order)', async () => {
    const coll = await students([{ _id: 's1', name: 'Ada' }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 100, auraPoints: 100, submissions: 1 },
      level: LEVEL,
      badges: BADGES,
    });
    expect(result).toEqual({
      outcome: 'applied',
      document: {
        _id: 's1',
        name: 'Ada',
        xp: 100,
        auraPoints: 100,
        submissions: 1,
        level: 1,
        badges: ['first-submission'],
      },
      levelsGained: [1],
      badgesEarned: ['first-submission'],
    });
    const stored = await coll.findOne({ _id: 's1' });
    expect(stored).toEqual(result.document);
    expect(Object.keys(result.document ?? {})).toEqual(Object.keys(stored ?? {}));
  });

  it('null counters, level and badges also start at 0 and []', async () => {
    const coll = await students([
      { _id: 's1', xp: null, level: null, badges: null } as unknown as Student,
    ]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 500, submissions: 1 },
      level: LEVEL,
      badges: BADGES,
    });
    expect(result).toMatchObject({ levelsGained: [1, 2], badgesEarned: ['first-submission'] });
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 500,
      level: 2,
      badges: ['first-submission'],
      submissions: 1,
    });
  });

  it('a level never decreases: a manually raised level is kept, and only levels above it are reported', async () => {
    const coll = await students([{ _id: 's1', xp: 0, level: 4 }]);
    const award = (xp: number) =>
      applyProgress(coll, { filter: { _id: 's1' }, inc: { xp }, level: LEVEL });
    // 1400 XP is level 3 by the thresholds: below the stored 4, which stays.
    expect(await award(1400)).toMatchObject({ document: { xp: 1400, level: 4 }, levelsGained: [] });
    // 5500 XP is level 5: one level above the stored one.
    expect(await award(4100)).toMatchObject({
      document: { xp: 5500, level: 5 },
      levelsGained: [5],
    });
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 5500, level: 5 });
  });

  it('a level past the last threshold stays at thresholds.length', async () => {
    const coll = await students([{ _id: 's1' }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 1e9 },
      level: { field: 'level', counter: 'xp', thresholds: [10, 20, 20] },
    });
    // Equal thresholds are two levels reached at the same count.
    expect(result).toMatchObject({ document: { level: 3 }, levelsGained: [1, 2, 3] });
  });

  it('a rule on a counter this call does not increment uses its current value (non-numbers count as 0)', async () => {
    const coll = await students([
      { _id: 'a', streak: 5 },
      { _id: 'b', streak: '7' },
    ]);
    const options = {
      inc: { xp: 1 },
      badges: { field: 'badges', rules: [{ badge: 'on-fire', counter: 'streak', atLeast: 3 }] },
      level: { field: 'level', counter: 'streak', thresholds: [1, 5, 10] },
    };
    expect(await applyProgress(coll, { ...options, filter: { _id: 'a' } })).toMatchObject({
      document: { streak: 5, level: 2, badges: ['on-fire'] },
      levelsGained: [1, 2],
      badgesEarned: ['on-fire'],
    });
    expect(await applyProgress(coll, { ...options, filter: { _id: 'b' } })).toMatchObject({
      document: { streak: '7', level: 0, badges: [] },
      levelsGained: [],
      badgesEarned: [],
    });
  });

  it('dotted paths: nested counters, level and badges are created and updated in place', async () => {
    const coll = await students([{ _id: 's1', stats: { xp: 90 }, progress: {} }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { 'stats.xp': 20, 'stats.submissions': 1 },
      level: { field: 'progress.level', counter: 'stats.xp', thresholds: SEED_THRESHOLDS },
      badges: {
        field: 'progress.badges',
        rules: [{ badge: 'first', counter: 'stats.submissions', atLeast: 1 }],
      },
    });
    const stored = await coll.findOne({ _id: 's1' });
    expect(stored).toEqual({
      _id: 's1',
      stats: { xp: 110, submissions: 1 },
      progress: { level: 1, badges: ['first'] },
    });
    expect(result).toEqual({
      outcome: 'applied',
      document: stored,
      levelsGained: [1],
      badgesEarned: ['first'],
    });
  });

  it('counters only: no level, no badges, nothing reported', async () => {
    const coll = await students([{ _id: 's1', xp: 1, level: 0 }]);
    expect(await applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 0.5 } })).toEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 1.5, level: 0 },
      levelsGained: [],
      badgesEarned: [],
    });
  });

  it('resolves notFound and writes nothing when no document matches', async () => {
    const coll = await students([{ _id: 's1', xp: 0 }]);
    const result = await applyProgress(coll, {
      filter: { _id: 'nobody' },
      inc: { xp: 10 },
      level: LEVEL,
      badges: BADGES,
    });
    expect(result).toEqual({ outcome: 'notFound' });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 's1', xp: 0 }]);
  });

  it('a counter holding a string is a server error, and nothing is written', async () => {
    const coll = await students([{ _id: 's1', xp: 'lots', level: 0 } as unknown as Student]);
    const error = await rejectionOf(
      applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 10 }, level: LEVEL }),
    );
    expect(isInvalidArgumentError(error)).toBe(false);
    expect((error as { name?: string }).name).toBe('MongoServerError');
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 'lots', level: 0 });
  });

  it('caller values are stored literally: badge names like "$xp" and "$$ROOT" are strings', async () => {
    const coll = await students([{ _id: 's1', xp: 5 }]);
    const result = await applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 1 },
      badges: {
        field: 'badges',
        rules: [
          { badge: '$xp', counter: 'xp', atLeast: 1 },
          { badge: '$$ROOT', counter: 'xp', atLeast: 1 },
        ],
      },
    });
    expect(result.badgesEarned).toEqual(['$xp', '$$ROOT']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 6,
      badges: ['$xp', '$$ROOT'],
    });
  });
});

describe("seed 001's rule as cumulative thresholds", () => {
  it('the thresholds are the running sums of 100·(level+1)²', () => {
    expect(SEED_THRESHOLDS.slice(0, 5)).toEqual([100, 500, 1400, 3000, 5500]);
  });

  it.each([1, 99, 100, 101, 499, 500, 1399, 1400, 2999, 3000, 5499, 5500, 12345])(
    '%i XP in total: the same level and XP into the level as the seed’s per-level rule',
    async (totalXp) => {
      const coll = await students([{ _id: 's1' }]);
      const result = await applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: totalXp },
        level: LEVEL,
      });
      const expected = seedLevel(totalXp);
      const level = result.document?.level as number;
      expect(level).toBe(expected.level);
      expect(xpIntoLevel(totalXp, level)).toBe(expected.xp);
      expect(result.levelsGained).toEqual(Array.from({ length: level }, (_, i) => i + 1));
    },
  );
});

describe('round trips', () => {
  const options = { filter: { _id: 's1' }, inc: { xp: 200 }, level: LEVEL, badges: BADGES };

  it('applied: exactly one findAndModify (a pipeline update returning the projected before-image)', async () => {
    const coll = await students([{ _id: 's1' }]);
    expect((await applyProgress(coll, options)).outcome).toBe('applied');
    expect(t.commands.names()).toEqual(['findAndModify']);
    const command = t.commands.started[0]?.command;
    expect(Array.isArray(command?.update)).toBe(true);
    expect(command?.update).toHaveLength(1);
    expect(command?.new).not.toBe(true);
    expect(Object.keys(command?.fields ?? {})).toEqual(['_id', 'before', 'facts']);
  });

  it('applied with an opId: still exactly one findAndModify', async () => {
    const coll = await students([{ _id: 's1' }]);
    expect((await applyProgress(coll, { ...options, opId: 'req-1' })).outcome).toBe('applied');
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('notFound without an opId: one findAndModify (nothing else can make it match nothing)', async () => {
    const coll = await students([]);
    expect((await applyProgress(coll, options)).outcome).toBe('notFound');
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it.each<[string, Student[]]>([
    ['notFound', []],
    ['alreadyApplied', [{ _id: 's1', _opIds: ['req-1'] }]],
  ])(
    '%s with an opId and an _id filter: one findAndModify, nothing else',
    async (outcome, docs) => {
      const coll = await students(docs);
      expect((await applyProgress(coll, { ...options, opId: 'req-1' })).outcome).toBe(outcome);
      expect(t.commands.names()).toEqual(['findAndModify']);
    },
  );

  it.each<[string, Student[]]>([
    ['notFound', []],
    ['alreadyApplied', [{ _id: 's1', name: 'ann', _opIds: ['req-1'] }]],
  ])(
    '%s with an opId and a filter without an _id equality: one findAndModify, then one find',
    async (outcome, docs) => {
      const coll = await students(docs);
      expect(
        (await applyProgress(coll, { ...options, filter: { name: 'ann' }, opId: 'req-1' })).outcome,
      ).toBe(outcome);
      expect(t.commands.names()).toEqual(['findAndModify', 'find']);
    },
  );
});

describe('invalid arguments: InvalidArgumentError naming the option, and no command sent', () => {
  const valid = { filter: { _id: 's1' }, inc: { xp: 10 } };
  const rule = { badge: 'b', counter: 'xp', atLeast: 1 };
  const cases: [string, unknown, string][] = [
    ['options null', null, 'options'],
    ['an unknown option (typo)', { ...valid, levels: LEVEL }, 'levels'],
    ['filter missing', { ...valid, filter: undefined }, 'filter'],
    ['filter empty', { ...valid, filter: {} }, 'filter'],
    ['inc missing', { ...valid, inc: undefined }, 'inc'],
    ['inc empty', { ...valid, inc: {} }, 'inc'],
    ['inc an array', { ...valid, inc: [10] }, 'inc'],
    ['inc 0', { ...valid, inc: { xp: 0 } }, 'inc.xp'],
    ['inc negative', { ...valid, inc: { xp: -10 } }, 'inc.xp'],
    ['inc NaN', { ...valid, inc: { xp: Number.NaN } }, 'inc.xp'],
    ['inc Infinity', { ...valid, inc: { xp: Number.POSITIVE_INFINITY } }, 'inc.xp'],
    ['inc a string', { ...valid, inc: { xp: '10' } }, 'inc.xp'],
    ['inc key an operator', { ...valid, inc: { $xp: 1 } }, 'inc.$xp'],
    ['inc key with an empty segment', { ...valid, inc: { 'stats..xp': 1 } }, 'inc.stats..xp'],
    ['inc key _id', { ...valid, inc: { _id: 1 } }, 'inc._id'],
    ['inc keys overlapping', { ...valid, inc: { stats: 1, 'stats.xp': 1 } }, 'inc.stats.xp'],
    ['level a number', { ...valid, level: 1 }, 'level'],
    [
      'level with an unknown key',
      { ...valid, level: { ...LEVEL, threshold: [1] } },
      'level.threshold',
    ],
    ['level.field missing', { ...valid, level: { counter: 'xp', thresholds: [1] } }, 'level.field'],
    ['level.field a counter', { ...valid, level: { ...LEVEL, field: 'xp' } }, 'level.field'],
    [
      'level.field inside a counter',
      { ...valid, level: { ...LEVEL, field: 'xp.level' } },
      'level.field',
    ],
    [
      'level.counter missing',
      { ...valid, level: { field: 'level', thresholds: [1] } },
      'level.counter',
    ],
    [
      'level.counter the level itself',
      { ...valid, level: { ...LEVEL, counter: 'level' } },
      'level.counter',
    ],
    [
      'level.counter the badges field',
      {
        ...valid,
        level: { ...LEVEL, counter: 'badges' },
        badges: { field: 'badges', rules: [rule] },
      },
      'level.counter',
    ],
    [
      'thresholds not an array',
      { ...valid, level: { ...LEVEL, thresholds: 100 } },
      'level.thresholds',
    ],
    ['thresholds empty', { ...valid, level: { ...LEVEL, thresholds: [] } }, 'level.thresholds'],
    [
      'thresholds decreasing',
      { ...valid, level: { ...LEVEL, thresholds: [100, 500, 400] } },
      'level.thresholds.2',
    ],
    [
      'thresholds with NaN',
      { ...valid, level: { ...LEVEL, thresholds: [100, Number.NaN] } },
      'level.thresholds.1',
    ],
    [
      'thresholds with Infinity',
      { ...valid, level: { ...LEVEL, thresholds: [Number.POSITIVE_INFINITY] } },
      'level.thresholds.0',
    ],
    [
      'thresholds with a string',
      { ...valid, level: { ...LEVEL, thresholds: ['100'] } },
      'level.thresholds.0',
    ],
    ['badges an array', { ...valid, badges: [rule] }, 'badges'],
    [
      'badges.field a counter',
      { ...valid, badges: { field: 'xp', rules: [rule] } },
      'badges.field',
    ],
    [
      'badges.field the level field',
      { ...valid, level: LEVEL, badges: { field: 'level', rules: [rule] } },
      'badges.field',
    ],
    ['badges.rules missing', { ...valid, badges: { field: 'badges' } }, 'badges.rules'],
    ['badges.rules empty', { ...valid, badges: { field: 'badges', rules: [] } }, 'badges.rules'],
    [
      'a rule not an object',
      { ...valid, badges: { field: 'badges', rules: ['b'] } },
      'badges.rules.0',
    ],
    [
      'a rule with an unknown key',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, min: 1 }] } },
      'badges.rules.0.min',
    ],
    [
      'a rule with an empty badge',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, badge: '' }] } },
      'badges.rules.0.badge',
    ],
    [
      'a rule with a numeric badge',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, badge: 5 }] } },
      'badges.rules.0.badge',
    ],
    [
      'duplicate badge names',
      { ...valid, badges: { field: 'badges', rules: [rule, { ...rule, atLeast: 5 }] } },
      'badges.rules.1.badge',
    ],
    [
      'a rule counter an operator',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, counter: '$xp' }] } },
      'badges.rules.0.counter',
    ],
    [
      'a rule counter missing',
      { ...valid, badges: { field: 'badges', rules: [{ badge: 'b', atLeast: 1 }] } },
      'badges.rules.0.counter',
    ],
    [
      'a rule counter the level field',
      {
        ...valid,
        level: LEVEL,
        badges: { field: 'badges', rules: [rule, { ...rule, badge: 'c', counter: 'level' }] },
      },
      'badges.rules.1.counter',
    ],
    [
      'a rule atLeast NaN',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, atLeast: Number.NaN }] } },
      'badges.rules.0.atLeast',
    ],
    [
      'a rule atLeast a string',
      { ...valid, badges: { field: 'badges', rules: [{ ...rule, atLeast: '10' }] } },
      'badges.rules.0.atLeast',
    ],
    ['session not a session', { ...valid, session: {} }, 'session'],
    ['opId empty', { ...valid, opId: '' }, 'opId'],
    ['opId a number', { ...valid, opId: 7 }, 'opId'],
    ['opIdLog without opId', { ...valid, opIdLog: { size: 10 } }, 'opIdLog'],
    ['opIdLog.size 0', { ...valid, opId: 'r', opIdLog: { size: 0 } }, 'opIdLog.size'],
    ['opIdLog.field a counter', { ...valid, opId: 'r', opIdLog: { field: 'xp' } }, 'inc.xp'],
    [
      'opIdLog.field the badges field',
      {
        ...valid,
        opId: 'r',
        opIdLog: { field: 'badges.log' },
        badges: { field: 'badges', rules: [rule] },
      },
      'badges.field',
    ],
    [
      'opIdLog.field the level counter',
      { ...valid, opId: 'r', level: { ...LEVEL, counter: '_opIds' } },
      'level.counter',
    ],
  ];

  it.each(cases)('%s → option %j', async (_label, options, option) => {
    const coll = t.db.collection(t.uniqueName('bad'));
    t.commands.reset();
    const error = await rejectionOf(applyProgress(coll, options as never));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ primitive: 'applyProgress', option });
    expect(t.commands.names()).toEqual([]);
  });

  it('a collection that is not a driver Collection → option "collection"', async () => {
    t.commands.reset();
    const error = await rejectionOf(applyProgress({} as never, valid as never));
    expect(error).toMatchObject({ name: 'InvalidArgumentError', option: 'collection' });
    expect(t.commands.names()).toEqual([]);
  });
});

describe('sessions and transactions', () => {
  it('joins the caller’s transaction: an abort undoes the points, the level and the badges', async () => {
    const coll = await students([{ _id: 's1', xp: 90, level: 0, submissions: 0 }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: 10, submissions: 1 },
        level: LEVEL,
        badges: BADGES,
        session,
      });
      expect(result).toMatchObject({ levelsGained: [1], badgesEarned: ['first-submission'] });
      expect(t.commands.started[0]?.command.startTransaction).toBe(true);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 90,
      level: 0,
      submissions: 0,
    });
  });

  it('joins the caller’s transaction: a commit keeps it, one findAndModify inside', async () => {
    const coll = await students([{ _id: 's1', xp: 90 }]);
    const session = t.client.startSession();
    try {
      await session.withTransaction(async () => {
        await applyProgress(coll, {
          filter: { _id: 's1' },
          inc: { xp: 10 },
          level: LEVEL,
          session,
        });
      });
    } finally {
      await session.endSession();
    }
    expect(t.commands.names()).toEqual(['findAndModify', 'commitTransaction']);
    expect(await coll.findOne({ _id: 's1' })).toEqual({ _id: 's1', xp: 100, level: 1 });
  });
});

describe('exactly once with opId (double click, two devices, client retry)', () => {
  it('a repeat resolves alreadyApplied with the document as read, and changes nothing', async () => {
    const coll = await students([{ _id: 's1', xp: 90 }]);
    const award = () =>
      applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: 10 },
        level: LEVEL,
        opId: 'pomodoro-42',
      });
    const first = await award();
    expect(first).toEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 100, _opIds: ['pomodoro-42'], level: 1 },
      levelsGained: [1],
      badgesEarned: [],
    });
    expect(await award()).toEqual({ outcome: 'alreadyApplied', document: first.document });
    expect(await coll.findOne({ _id: 's1' })).toEqual(first.document);
  });

  it('opIdLog: a custom field keeps only the newest `size` ids', async () => {
    const coll = await students([{ _id: 's1' }]);
    for (const opId of ['a', 'b', 'c']) {
      await applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: 1 },
        opId,
        opIdLog: { field: 'meta.ops', size: 2 },
      });
    }
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 3,
      meta: { ops: ['b', 'c'] },
    });
  });

  it('the same opId sent 20 times concurrently applies once: 1 applied, 19 alreadyApplied', async () => {
    const coll = await students([{ _id: 's1', xp: 90, submissions: 0 }]);
    const clients = race.all.slice(0, 20);
    const ready = barrier(clients.length);
    const results = await Promise.all(
      clients.map(async (client) => {
        await ready();
        return applyProgress(via(client, coll), {
          filter: { _id: 's1' },
          inc: { xp: 10, submissions: 1 },
          level: LEVEL,
          badges: BADGES,
          opId: 'submission-7',
        });
      }),
    );
    const applied = results.filter((r) => r.outcome === 'applied');
    expect(applied).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'alreadyApplied')).toHaveLength(19);
    expect(applied[0]).toMatchObject({ levelsGained: [1], badgesEarned: ['first-submission'] });
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 100,
      submissions: 1,
      _opIds: ['submission-7'],
      level: 1,
      badges: ['first-submission'],
    });
  });
});

describe('an opId repeat answers in its one command, and writes nothing', () => {
  const award = (coll: Collection<Student>, extra: Partial<ApplyProgressOptions<Student>> = {}) =>
    applyProgress(coll, {
      filter: { _id: 's1' },
      inc: { xp: 10, submissions: 1 },
      level: LEVEL,
      badges: BADGES,
      opId: 'req-1',
      ...extra,
    } as ApplyProgressOptions<Student>);

  it('one command on an opId repeat: the findAndModify reports alreadyApplied with the document as it is', async () => {
    const coll = await students([{ _id: 's1', xp: 90, submissions: 0 }]);
    const first = await award(coll);
    expect(first.outcome).toBe('applied');
    await coll.updateOne({ _id: 's1' }, { $set: { name: 'ann' } });
    t.commands.reset();
    expect(await award(coll)).toEqual({
      outcome: 'alreadyApplied',
      document: { ...first.document, name: 'ann' },
    });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('a filter without an _id equality keeps the guard in the filter: of two matching documents the one that has not applied the op is awarded', async () => {
    // With the guard in the update, the filter could pick the document that already holds
    // the id and report a repeat while the other one still lacks the award.
    const coll = await students([
      { _id: 'a', name: 'team', xp: 0, _opIds: ['req-1'] },
      { _id: 'b', name: 'team', xp: 0 },
    ]);
    const result = await award(coll, {
      filter: { name: 'team' },
      level: undefined,
      badges: undefined,
    });
    expect(result).toMatchObject({ outcome: 'applied', document: { _id: 'b', xp: 10 } });
    expect(await coll.findOne({ _id: 'a' })).toEqual({
      _id: 'a',
      name: 'team',
      xp: 0,
      _opIds: ['req-1'],
    });
  });

  it('a repeat leaves the document byte for byte as it was (types, field order), even with a counter that no longer adds up', async () => {
    const coll = await students([]);
    const stored = {
      _id: 's1',
      xp: Long.fromNumber(90),
      level: new BSON.Int32(1),
      stats: { submissions: new BSON.Double(2) },
      // A string counter: the award would fail on `$add`; a repeat is reported all the same,
      // as when the guard was in the filter (the facts are not evaluated on a repeat).
      submissions: 'many',
      _opIds: ['older', 'req-1'],
      badges: ['first-submission'],
    };
    await coll.insertOne(stored as never);
    const raw = async () =>
      Buffer.from(
        (await coll.findOne(
          { _id: 's1' },
          { raw: true, promoteValues: false },
        )) as unknown as Uint8Array,
      );
    const before = await raw();
    t.commands.reset();
    const result = await award(coll, {
      inc: { xp: 10, 'stats.submissions': 1, submissions: 1 },
    });
    expect(result.outcome).toBe('alreadyApplied');
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect((await raw()).equals(before)).toBe(true);
  });

  it('a repeat inside a transaction leaves the document free: another transaction then updates it and commits, and so does the first', async () => {
    // mongod skips the storage write of a pipeline update whose result is byte-identical to
    // the stored document (pipeline_executor.cpp "Check for noop"): no oplog entry, nothing
    // for another transaction to conflict with (offline server: tests/conformance/noop-updates).
    const coll = await students([{ _id: 's1', xp: 100, name: 'ann', _opIds: ['req-1'] }]);
    const first = t.client.startSession();
    const second = t.client.startSession();
    try {
      first.startTransaction();
      expect((await award(coll, { session: first })).outcome).toBe('alreadyApplied');
      second.startTransaction();
      // Had the repeat written (even the same values), this would be a WriteConflict.
      await coll.updateOne({ _id: 's1' }, { $set: { name: 'bob' } }, { session: second });
      await second.commitTransaction();
      await first.commitTransaction();
    } finally {
      await first.endSession();
      await second.endSession();
    }
    expect(await coll.findOne({ _id: 's1' })).toEqual({
      _id: 's1',
      xp: 100,
      name: 'bob',
      _opIds: ['req-1'],
    });
  });

  it('a repeat in a transaction that starts after another transaction wrote the document: no WriteConflict for it', async () => {
    const coll = await students([{ _id: 's1', xp: 100, name: 'ann', _opIds: ['req-1'] }]);
    const writer = t.client.startSession();
    const reader = t.client.startSession();
    try {
      writer.startTransaction();
      await coll.updateOne({ _id: 's1' }, { $set: { name: 'bob' } }, { session: writer });
      reader.startTransaction();
      // Its snapshot predates the writer's commit: it sees the id, and writes nothing.
      expect(await award(coll, { session: reader })).toEqual({
        outcome: 'alreadyApplied',
        document: { _id: 's1', xp: 100, name: 'ann', _opIds: ['req-1'] },
      });
      await writer.commitTransaction();
      await reader.commitTransaction();
    } finally {
      await writer.endSession();
      await reader.endSession();
    }
  });

  it.each<[string, Document]>([
    ['missing fields', { _id: 'x' }],
    ['nested paths and a scalar parent', { _id: 'x', stats: 3, level: 'high', badges: null }],
    [
      'BSON types and field order',
      {
        _id: 'x',
        badges: ['b0'],
        submissions: new BSON.Int32(9),
        xp: Decimal128.fromString('89.5'),
        level: Long.fromNumber(0),
        stats: { xp: new BSON.Double(1), other: 'o' },
        _opIds: ['older'],
      },
    ],
  ])(
    'a success stores byte for byte what the guard-in-filter command stores (%s)',
    async (_, seed) => {
      // The same award on twin documents: one through an `_id` filter (op id guard in the
      // pipeline), the other through a filter without an `_id` equality (guard in the filter,
      // the command applyProgress has always sent).
      const coll = await students([
        { ...seed, _id: 'p' } as Student,
        { ...seed, _id: 'q' } as Student,
      ]);
      const options = {
        inc: { xp: 100, 'stats.xp': 5, submissions: 1 },
        level: { field: 'level', counter: 'xp', thresholds: [100, 200] },
        badges: { field: 'badges', rules: [{ badge: 'b1', counter: 'submissions', atLeast: 1 }] },
        opId: 'req-1',
      } as const;
      const viaId = await applyProgress(coll, {
        ...options,
        filter: { _id: 'p' },
      });
      const viaFilter = await applyProgress(coll, {
        ...options,
        filter: { _id: { $in: ['q'] } },
      });
      // The two forms were sent: the guard in the pipeline, then the guard in the filter.
      const updates = t.commands.started
        .filter((event) => event.commandName === 'findAndModify')
        .map((event) => (event.command.update as Document[]).length);
      expect(updates).toEqual([3, 1]);
      const { _id: _p, ...idDoc } = viaId.document as Document;
      const { _id: _q, ...filterDoc } = viaFilter.document as Document;
      expect(idDoc).toStrictEqual(filterDoc);
      expect({ ...viaId, document: undefined }).toStrictEqual({
        ...viaFilter,
        document: undefined,
      });
      const bytes = async (id: string) => {
        const doc = (await coll.findOne({ _id: id }, { promoteValues: false })) as Document;
        const { _id, ...rest } = doc;
        return Buffer.from(BSON.serialize(rest));
      };
      expect((await bytes('p')).equals(await bytes('q'))).toBe(true);
    },
  );
});

describe('a retried findAndModify (retryable writes)', () => {
  const failPoints = useFailPointClients(() => t.db, 'progressretry');

  // The retry is answered from the stored pre-image of the first execution, WITHOUT the
  // projection the outcome is normally read from (mongod write_ops_retryability.cpp,
  // SERVER-44151; pinned in tests/conformance/retryable-writes).
  const retryNextFindAndModify = (appName: string) =>
    retryNextWrite(t.db, appName, 'findAndModify');

  const cases: [
    label: string,
    seed: Student,
    options: Omit<ApplyProgressOptions<Student>, 'filter'>,
    expected: ApplyProgressOnceResult<Student>,
  ][] = [
    [
      'counters only',
      { _id: 's1', name: 'Ada', xp: 5 },
      { inc: { xp: 10, submissions: 1 } },
      {
        outcome: 'applied',
        document: { _id: 's1', name: 'Ada', xp: 15, submissions: 1 },
        levelsGained: [],
        badgesEarned: [],
      },
    ],
    [
      'levels and badges',
      { _id: 's1', xp: 450, level: 1, submissions: 9, badges: ['first-submission'] },
      { inc: { xp: 1000, submissions: 1 }, level: LEVEL, badges: BADGES },
      {
        outcome: 'applied',
        document: {
          _id: 's1',
          xp: 1450,
          level: 3,
          submissions: 10,
          badges: ['first-submission', 'ten-submissions'],
        },
        levelsGained: [2, 3],
        badgesEarned: ['ten-submissions'],
      },
    ],
    [
      'levels and badges, dotted paths, nothing earned',
      { _id: 's1', stats: { xp: 10 }, progress: { level: 0, badges: [] } },
      {
        inc: { 'stats.xp': 5, 'stats.submissions': 1 },
        level: { field: 'progress.level', counter: 'stats.xp', thresholds: [100] },
        badges: {
          field: 'progress.badges',
          rules: [{ badge: 'five', counter: 'stats.submissions', atLeast: 5 }],
        },
      },
      {
        outcome: 'applied',
        document: {
          _id: 's1',
          stats: { xp: 15, submissions: 1 },
          progress: { level: 0, badges: [] },
        },
        levelsGained: [],
        badgesEarned: [],
      },
    ],
    [
      'levels and badges with an opId',
      { _id: 's1', xp: 90, _opIds: ['older'] },
      { inc: { xp: 10, submissions: 1 }, level: LEVEL, badges: BADGES, opId: 'req-1' },
      {
        outcome: 'applied',
        document: {
          _id: 's1',
          xp: 100,
          _opIds: ['older', 'req-1'],
          submissions: 1,
          level: 1,
          badges: ['first-submission'],
        },
        levelsGained: [1],
        badgesEarned: ['first-submission'],
      },
    ],
    [
      'an opId with a log kept to its size',
      { _id: 's1', meta: { ops: ['a', 'b'] } },
      { inc: { xp: 1 }, opId: 'c', opIdLog: { field: 'meta.ops', size: 2 } },
      {
        outcome: 'applied',
        document: { _id: 's1', meta: { ops: ['b', 'c'] }, xp: 1 },
        levelsGained: [],
        badgesEarned: [],
      },
    ],
  ];

  it.each(cases)(
    '%s: the retry is answered with the unprojected pre-image; the outcome is still reported, and the award applied once',
    async (_label, seed, options, expected) => {
      const { client, appName, commands } = await failPoints.appClient();
      const coll = await students([seed]);
      await retryNextFindAndModify(appName);
      commands.reset();
      const result = await applyProgress(via(client, coll), { filter: { _id: 's1' }, ...options });
      expect(result).toEqual(expected);
      // The first attempt, the driver's retry (same lsid and txnNumber), answered with the
      // image, then one aggregate that has the server evaluate the very same projection over
      // that image, on a document of this collection (so under its default collation).
      expect(commands.names()).toEqual(['findAndModify', 'findAndModify', 'aggregate']);
      const [first, retry, aggregate] = commands.started;
      expect(String(retry?.command.txnNumber)).toBe(String(first?.command.txnNumber));
      expect(aggregate?.command.aggregate).toBe(coll.collectionName);
      expect(aggregate?.command.pipeline).toEqual([
        { $match: { _id: 's1' } },
        { $limit: 1 },
        { $replaceWith: { $literal: seed } },
        { $project: first?.command.fields },
      ]);
      expect(await coll.findOne({ _id: 's1' })).toEqual(expected.document);
    },
  );

  it('stored values of every numeric type: the result from the retry image equals the one the projection reports', async () => {
    const seeds: Record<string, unknown>[] = [
      { xp: 99, level: 0 },
      { xp: Long.fromNumber(99), level: Long.fromNumber(0) },
      { xp: 99.5, level: 0.5 },
      { xp: Decimal128.fromString('99.90'), level: Decimal128.fromString('1') },
      { xp: null, level: Number.NaN, submissions: Decimal128.fromString('0.1') },
      { level: 'gold', submissions: 'many' },
      { xp: Long.fromString('9007199254740993') },
    ];
    const { client, appName } = await failPoints.appClient();
    const coll = await students([]);
    for (const [i, seed] of seeds.entries()) {
      for (const amount of [1, 0.25]) {
        await coll.insertMany([
          { _id: `p${i}-${amount}`, ...seed },
          { _id: `i${i}-${amount}`, ...seed },
        ]);
        const options = {
          inc: { xp: amount },
          level: { field: 'level', counter: 'xp', thresholds: [100, 100.2] },
          badges: {
            field: 'badges',
            rules: [
              { badge: 'xp', counter: 'xp', atLeast: 100 },
              { badge: 'tenth', counter: 'submissions', atLeast: 0.1 },
            ],
          },
        };
        const projected = await applyProgress(coll, {
          filter: { _id: `p${i}-${amount}` },
          ...options,
        });
        await retryNextFindAndModify(appName);
        const fromImage = await applyProgress(via(client, coll), {
          filter: { _id: `i${i}-${amount}` },
          ...options,
        });
        const { document: a, ...rest } = projected as unknown as ProgressAppliedLike;
        const { document: b, ...restImage } = fromImage as unknown as ProgressAppliedLike;
        expect({ seed, amount, ...restImage, document: { ...b, _id: 'x' } }).toEqual({
          seed,
          amount,
          ...rest,
          document: { ...a, _id: 'x' },
        });
      }
    }
  });

  it('a rule counter named toString reads the field, not Object.prototype.toString', async () => {
    const { client, appName } = await failPoints.appClient();
    const coll = await students([]);
    await coll.insertOne({ _id: 's1', toString: 10 } as unknown as Student);
    await retryNextFindAndModify(appName);
    const result = await applyProgress(via(client, coll), {
      filter: { _id: 's1' },
      inc: { xp: 1 },
      // Not a path of Student: typed as a plain string, it is left to the run-time validation.
      badges: {
        field: 'badges',
        rules: [{ badge: 'ten', counter: 'toString' as string, atLeast: 10 }],
      },
    });
    expect(result).toMatchObject({ outcome: 'applied', badgesEarned: ['ten'] });
  });

  it('a document holding __proto__, constructor and prototype fields: returned as fields, Object.prototype untouched', async () => {
    const names = Object.getOwnPropertyNames(Object.prototype).sort();
    const { client, appName } = await failPoints.appClient();
    const coll = await students([]);
    // As js-bson deserialises what mongod stores: `__proto__` is an own field.
    const stored = BSON.deserialize(
      BSON.serialize(
        JSON.parse(
          '{"_id":"s1","xp":1,"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}},"prototype":5}',
        ),
      ),
    );
    await coll.insertOne(stored as Student);
    await retryNextFindAndModify(appName);
    const result = await applyProgress(via(client, coll), {
      filter: { _id: 's1' },
      inc: { xp: 1 },
    });
    expect(result.outcome).toBe('applied');
    const document = result.document as Document;
    expect(Object.hasOwn(document, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(document)).toBe(Object.prototype);
    expect(document.xp).toBe(2);
    expect(({} as Document).isAdmin).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(names);
  });
});

describe('a retried findAndModify on a collection with a case-insensitive default collation (stub of mongod)', () => {
  // The offline server has no collation (its README). The stub answers as mongod does for a
  // collection created with `{ collation: { locale: 'en', strength: 2 } }`: the retried
  // findAndModify with the stored before-image, unprojected (write_ops_retryability.cpp,
  // SERVER-44151), and the aggregate evaluated with the strings compared case-insensitively
  // (support/case-insensitive.ts).
  const badges = { field: 'badges', rules: [{ badge: 'Gold', counter: 'xp', atLeast: 100 }] };
  const preImage: Student = { _id: 's1', xp: 90, badges: ['gold'] };

  it("a held badge 'gold' is the rule's 'Gold' to the server: the retry does not report it as earned again", async () => {
    // What the first execution left: `$in` found 'Gold' in ['gold'], so nothing was added.
    const { collection, calls, aggregateOptions } = caseInsensitiveCollection(
      [{ ...preImage, xp: 100 }],
      { retriedImage: preImage },
    );
    const result = await applyProgress(collection, {
      filter: { _id: 's1' },
      inc: { xp: 10 },
      badges,
    });
    expect(result).toEqual({
      outcome: 'applied',
      document: { _id: 's1', xp: 100, badges: ['gold'] },
      levelsGained: [],
      badgesEarned: [],
    });
    expect(calls).toEqual(['findAndModify', 'aggregate']);
    expect(aggregateOptions).toEqual([{ readPreference: 'primary' }]);
  });

  it('the document was deleted before the aggregate: a MongoAtomicsError that says the award was applied', async () => {
    const { collection, calls } = caseInsensitiveCollection([], { retriedImage: preImage });
    const error = await rejectionOf(
      applyProgress(collection, { filter: { _id: 's1' }, inc: { xp: 10 }, badges }),
    );
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toMatch(/the update was applied.*deleted/);
    expect(calls).toEqual(['findAndModify', 'aggregate']);
  });
});

describe('rebuilding the returned document never reaches a prototype', () => {
  /** A document as js-bson deserialises what mongod returns: `__proto__` is an own field. */
  const fromServer = (json: string): Document => BSON.deserialize(BSON.serialize(JSON.parse(json)));
  const prototypeNames = () => Object.getOwnPropertyNames(Object.prototype).sort();

  it('placing along __proto__ segments writes the fields themselves; ({}).isAdmin stays undefined', () => {
    const names = prototypeNames();
    const doc = fromServer(
      '{"_id":"s1","__proto__":{"isAdmin":0},"profile":{"__proto__":{"a":1}}}',
    );
    expect(Object.hasOwn(doc, '__proto__')).toBe(true);
    placeField(doc, '__proto__.isAdmin', 1);
    placeField(doc, 'profile.__proto__.isAdmin', 1);
    placeField(doc, 'fresh.__proto__.isAdmin', 1);
    placeField(doc, '__proto__', { isAdmin: 2 });
    expect(({} as Document).isAdmin).toBeUndefined();
    expect(prototypeNames()).toEqual(names);
    expect(Object.getPrototypeOf(doc)).toBe(Object.prototype);
    expect(JSON.stringify(BSON.deserialize(BSON.serialize(doc)))).toBe(
      '{"_id":"s1","__proto__":{"isAdmin":2},"profile":{"__proto__":{"a":1,"isAdmin":1}},"fresh":{"__proto__":{"isAdmin":1}}}',
    );
  });

  it('an inherited name on the path (constructor, toString) is a missing field, not the inherited member', () => {
    const doc = fromServer('{"_id":"s1"}');
    placeField(doc, 'constructor.prototype.isAdmin', 1);
    placeField(doc, 'toString.x', 1);
    expect(({} as Document).isAdmin).toBeUndefined();
    expect((Object as unknown as Document).prototype.isAdmin).toBeUndefined();
    expect(JSON.stringify(doc)).toBe(
      '{"_id":"s1","constructor":{"prototype":{"isAdmin":1}},"toString":{"x":1}}',
    );
  });
});

describe('seed 001 race: concurrent awards to one student', () => {
  it('naive: "findOne, compute XP/level/badges in JS, then $set" loses points and grants level 1 many times', async () => {
    const coll = await students([
      { _id: 's1', xp: 90, auraPoints: 90, level: 0, submissions: 0, badges: [] },
    ]);
    const allRead = barrier(WORKERS);
    const levelUps = await Promise.all(
      race.all.map(async (client) => {
        const mine = via(client, coll);
        // The seed's code, per request: read, change in memory, save.
        const student = (await mine.findOne({ _id: 's1' })) as Required<Student>;
        await allRead();
        const reward = 10;
        student.auraPoints += reward;
        student.xp += reward;
        let leveledUp = false;
        if (student.xp >= 100 * (student.level + 1) ** 2) {
          student.level += 1;
          student.xp = 0;
          leveledUp = true; // "Congratulations! … reached Level 1"
        }
        student.submissions += 1;
        if (student.submissions >= 1) {
          student.badges = [...new Set([...student.badges, 'first-submission'])];
        }
        const { _id, ...changes } = student;
        await mine.updateOne({ _id }, { $set: changes });
        return leveledUp;
      }),
    );
    const final = await coll.findOne({ _id: 's1' });
    // 50 awards of 10 should add 500 points; each save overwrote the others' with its own.
    expect(final?.auraPoints).toBeLessThan(90 + 10 * WORKERS);
    expect(final?.submissions).toBeLessThan(WORKERS);
    // And level 1 was announced by more than one request.
    expect(levelUps.filter(Boolean).length).toBeGreaterThan(1);
  });

  it('applyProgress: 200 concurrent awards (50 clients × 4) keep every point; each level and badge is earned by exactly one call', async () => {
    const AWARDS_PER_CLIENT = 4;
    const total = WORKERS * AWARDS_PER_CLIENT;
    const coll = await students([{ _id: 's1', name: 'Ada' }]);
    const badges = {
      field: 'badges',
      rules: [
        ...BADGES.rules,
        { badge: 'hundred-submissions', counter: 'submissions', atLeast: 100 },
        { badge: 'two-hundred-submissions', counter: 'submissions', atLeast: 200 },
        { badge: 'unreachable', counter: 'submissions', atLeast: 201 },
        { badge: 'aura-1000', counter: 'auraPoints', atLeast: 1000 },
      ],
    };
    const ready = barrier(WORKERS);
    const perClient = await Promise.all(
      race.all.map(async (client) => {
        const mine = via(client, coll);
        await ready();
        const results: ApplyProgressResult<Student>[] = [];
        for (let i = 0; i < AWARDS_PER_CLIENT; i++) {
          results.push(
            await applyProgress(mine, {
              filter: { _id: 's1' },
              inc: { xp: 10, auraPoints: 10, submissions: 1 },
              level: LEVEL,
              badges,
            }),
          );
        }
        return results;
      }),
    );
    const results = perClient.flat();
    const applied = results.filter((r) => r.outcome === 'applied');
    expect(applied).toHaveLength(total);

    const final = await coll.findOne({ _id: 's1' });
    expect(final).toMatchObject({ xp: 10 * total, auraPoints: 10 * total, submissions: total });

    // Every call's before→after is one step of the serial history: 200 distinct after-states.
    const steps = applied.map((r) => r.document.submissions).sort((a, b) => (a ?? 0) - (b ?? 0));
    expect(steps).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    // 2000 XP is level 3 (1400 ≤ 2000 < 3000): levels 1, 2, 3, each reported once, by the call
    // that crossed its threshold.
    const levels = applied.flatMap((r) => r.levelsGained).sort((a, b) => a - b);
    expect(levels).toEqual([1, 2, 3]);
    for (const r of applied) {
      for (const level of r.levelsGained) {
        const threshold = SEED_THRESHOLDS[level - 1] as number;
        expect(r.document.xp).toBeGreaterThanOrEqual(threshold);
        expect((r.document.xp as number) - 10).toBeLessThan(threshold);
      }
    }
    expect(final?.level).toBe(3);

    const earned = applied.flatMap((r) => r.badgesEarned);
    expect([...earned].sort()).toEqual(
      [
        'aura-1000',
        'fifty-submissions',
        'first-submission',
        'hundred-submissions',
        'ten-submissions',
        'two-hundred-submissions',
      ].sort(),
    );
    // The stored set is exactly the union of the gains, in the order they were earned.
    const inOrder = [...applied]
      .sort((a, b) => (a.document.submissions ?? 0) - (b.document.submissions ?? 0))
      .flatMap((r) => r.badgesEarned);
    expect(final?.badges).toEqual(inOrder);
  });
});

/**
 * The gamification example (examples/gamification/) over HTTP: every endpoint, every error
 * response, validation that writes nothing, and the two races of seed 001 run naive versus safe.
 */
import { type Barrier, barrier, naiveVersusSafe } from 'mongo-atomics/testing';
import { ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/gamification/app.js';
import { collections, freshStudent, LEVEL_THRESHOLDS } from '../../examples/gamification/model.js';
import { createNaiveApp } from '../../examples/gamification/naive.js';
import { prepare, SAMPLE } from '../../examples/gamification/setup.js';
import {
  checkPomodoroStorm,
  checkSubmissionStorm,
  finishOne,
  POMODORO_STORM,
  type Replied,
  SUBMISSION_STORM,
  setupPomodoroStorm,
  setupSubmissionStorm,
  submitOne,
} from '../../examples/gamification/storm.js';
import { useTestDatabase } from '../support/mongo.js';
import { call, type Listening, listen, writesDuring } from './support.js';

const test = useTestDatabase('ex_gamification');

let real: Listening;
let naive: Listening;
/** The naive app waits here between its reads and its writes; each storm sets a fresh one. */
let gate: Barrier | undefined;

beforeAll(async () => {
  await prepare(test.db);
  real = await listen(createApp(test.db));
  naive = await listen(createNaiveApp(test.db, { afterRead: () => gate?.() ?? Promise.resolve() }));
});
afterAll(async () => {
  await real?.close();
  await naive?.close();
});

const values = (report: { values: readonly Replied[] }) => report.values;

describe('races (naive versus safe, same load)', () => {
  it('100 different assignments submitted at once: the naive app loses XP and repeats level-ups; the real one keeps every point and reports each level and badge once', async () => {
    const { naive: broken, safe } = await naiveVersusSafe({
      invariant: 'xp = sum awarded; each level and badge reported exactly once; records = responses',
      calls: SUBMISSION_STORM.requests,
      setup: async (run) => {
        // Every naive request reads before any writes: the lost update shows on every run.
        gate = run === 'naive' ? barrier(SUBMISSION_STORM.requests) : undefined;
        return setupSubmissionStorm(test.db);
      },
      naive: (i, { state }) => submitOne(naive.url, state, i),
      safe: (i, { state }) => submitOne(real.url, state, i),
      check: async (state, report) =>
        (await checkSubmissionStorm(test.db, state, values(report), report.errors.length)).violations,
    });
    // The naive break, precisely: 100 × 201, but the XP of one award, level 1 announced 100 times.
    expect(broken.violations).toContain('xp is 100, expected 100 × 100 = 10000');
    expect(broken.violations).toContain('level 1 was reported 100 times');
    expect({ ...safe.report.tally }).toEqual({ '201': 100 });
    const student = await collections(test.db).students.findOne({ name: 'Storm' }, { sort: { _id: -1 } });
    expect(student).toMatchObject({ xp: 10_000, level: 6, submissions: 100 });
  });

  it('one pomodoro finished 50 times at once (same opId): the naive app awards it 50 times; the real one once, every answer the same', async () => {
    const { naive: broken, safe } = await naiveVersusSafe({
      invariant: 'one session awarded once; one 201, the rest 200 repeats with the same body',
      calls: POMODORO_STORM.requests,
      setup: async (run) => {
        gate = run === 'naive' ? barrier(POMODORO_STORM.requests) : undefined;
        return setupPomodoroStorm(test.db);
      },
      naive: (_i, { state }) => finishOne(naive.url, state),
      safe: (_i, { state }) => finishOne(real.url, state),
      check: async (state, report) =>
        (await checkPomodoroStorm(test.db, state, values(report), report.errors.length)).violations,
    });
    expect(broken.violations).toContain(
      'one 25-minute session awarded 50 times: xp 1250, 1250 minutes (expected xp 25, 1 session)',
    );
    expect({ ...safe.report.tally }).toEqual({ '201': 1, '200:repeat': 49 });
  });
});

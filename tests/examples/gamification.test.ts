/**
 * The gamification example (examples/gamification/) over HTTP: every endpoint, every error
 * response, validation that writes nothing, and the two races of seed 001 run naive versus safe.
 */
import { applyProgress } from 'mongo-atomics';
import { type Barrier, barrier, naiveVersusSafe, race } from 'mongo-atomics/testing';
import { ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/gamification/app.js';
import { collections, freshStudent } from '../../examples/gamification/model.js';
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
import { call, type Listening, listen, type Reply, writesDuring } from './support.js';

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
      invariant:
        'xp = sum awarded; each level and badge reported exactly once; records = responses',
      calls: SUBMISSION_STORM.requests,
      setup: async (run) => {
        // Every naive request reads before any writes: the lost update shows on every run.
        gate = run === 'naive' ? barrier(SUBMISSION_STORM.requests) : undefined;
        return setupSubmissionStorm(test.db);
      },
      naive: (i, { state }) => submitOne(naive.url, state, i),
      safe: (i, { state }) => submitOne(real.url, state, i),
      check: async (state, report) =>
        (await checkSubmissionStorm(test.db, state, values(report), report.errors.length))
          .violations,
    });
    // The naive break, precisely: 100 × 201, but the XP of one award, level 1 announced 100 times.
    expect(broken.violations).toContain('xp is 100, expected 100 × 100 = 10000');
    expect(broken.violations).toContain('level 1 was reported 100 times');
    expect({ ...safe.report.tally }).toEqual({ '201': 100 });
    const student = await collections(test.db).students.findOne(
      { name: 'Storm' },
      { sort: { _id: -1 } },
    );
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

// =============================================================================================
// Endpoints, one request at a time
// =============================================================================================

const hex = (id: ObjectId) => id.toHexString();
const json = { 'content-type': 'application/json' };

/** A new student with the given counters; returns its id. */
async function newStudent(
  fields: Partial<ReturnType<typeof freshStudent>> = {},
): Promise<ObjectId> {
  const _id = new ObjectId();
  await collections(test.db).students.insertOne({ ...freshStudent('Test'), ...fields, _id });
  return _id;
}

/** A new assignment worth `points`, due in a day (or `dueInMs` from now). */
async function newAssignment(points: number, dueInMs = 86_400_000): Promise<ObjectId> {
  const _id = new ObjectId();
  await collections(test.db).assignments.insertOne({
    _id,
    title: `A${points}`,
    points,
    dueDate: new Date(Date.now() + dueInMs),
  });
  return _id;
}

/** Everything the app writes, to compare before and after a rejected request. */
async function snapshot() {
  const { students, submissions, pomodoros } = collections(test.db);
  return {
    students: await students.find({}, { sort: { _id: 1 } }).toArray(),
    submissions: await submissions.find({}, { sort: { _id: 1 } }).toArray(),
    pomodoros: await pomodoros.find({}).toArray(),
  };
}

/** Sends a request that must be rejected with 400 naming `field`, and proves it wrote nothing. */
async function expectRejected(method: string, path: string, body: unknown, field: string) {
  const before = await snapshot();
  let reply: Reply | undefined;
  const writes = await writesDuring(test.commands, async () => {
    reply = await call(real.url, method, path, body === undefined ? {} : { body });
  });
  expect(reply?.status).toBe(400);
  expect(reply?.body).toMatchObject({ field });
  expect(['invalidRequest', 'malformedJson']).toContain(reply?.body.error);
  expect(writes).toEqual([]);
  expect(await snapshot()).toEqual(before);
}

describe('GET /students/:id, /assignments, /leaderboard', () => {
  it('a student: 200 with level, cumulative xp, xp into the level and to the next', async () => {
    const id = await newStudent({
      xp: 650,
      level: 2,
      auraPoints: 650,
      badges: ['first-submission'],
    });
    const reply = await call(real.url, 'GET', `/students/${hex(id)}`);
    expect(reply.status).toBe(200);
    expect(reply.body.student).toEqual({
      id: hex(id),
      name: 'Test',
      level: 2,
      xp: 650,
      xpIntoLevel: 150,
      xpToNextLevel: 750,
      auraPoints: 650,
      submissions: 0,
      pomodoroSessions: 0,
      pomodoroMinutes: 0,
      badges: ['first-submission'],
    });
  });

  it('an unknown student is 404 studentNotFound; a malformed id or an operator is 400 naming id', async () => {
    const unknown = new ObjectId();
    const reply = await call(real.url, 'GET', `/students/${hex(unknown)}`);
    expect(reply).toMatchObject({
      status: 404,
      body: { error: 'studentNotFound', studentId: hex(unknown) },
    });
    for (const bad of ['nope', '123', `${hex(unknown)}0`, encodeURIComponent('{"$gt":""}')]) {
      const r = await call(real.url, 'GET', `/students/${bad}`);
      expect(r).toMatchObject({ status: 400, body: { error: 'invalidRequest', field: 'id' } });
    }
  });

  it('assignments: soonest due first, with points and due date', async () => {
    const reply = await call(real.url, 'GET', '/assignments');
    expect(reply.status).toBe(200);
    // The sample quiz is the only one already past due: it comes first.
    expect(reply.body.assignments[0]).toEqual({
      id: hex(SAMPLE.assignments.lateQuiz),
      title: 'Quiz: transactions (past due)',
      points: 50,
      dueDate: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });

  it('the leaderboard sorts by level, then xp, then id; limit picks how many (10 by default)', async () => {
    const top = await newStudent({ xp: 9_000_000, level: 60 });
    const second = await newStudent({ xp: 8_000_000, level: 60 });
    const third = await newStudent({ xp: 7_000_000, level: 59 });
    const reply = await call(real.url, 'GET', '/leaderboard?limit=3');
    expect(reply.status).toBe(200);
    expect(reply.body.sortedBy).toEqual(['level desc', 'xp desc', 'id asc']);
    expect(reply.body.students.map((s: { id: string; rank: number }) => [s.rank, s.id])).toEqual([
      [1, hex(top)],
      [2, hex(second)],
      [3, hex(third)],
    ]);
    const byDefault = await call(real.url, 'GET', '/leaderboard');
    expect(byDefault.body.students.length).toBe(
      Math.min(10, await collections(test.db).students.countDocuments()),
    );
  });

  it('leaderboard limits that are not 1..100 or not plain numbers are 400 naming limit (or the unknown query key)', async () => {
    for (const limit of ['0', '-1', '1.5', 'ten', '101', '1e2', '']) {
      const r = await call(real.url, 'GET', `/leaderboard?limit=${encodeURIComponent(limit)}`);
      expect(r, limit).toMatchObject({
        status: 400,
        body: { error: 'invalidRequest', field: 'limit' },
      });
    }
    const twice = await call(real.url, 'GET', '/leaderboard?limit=1&limit=2');
    expect(twice).toMatchObject({ status: 400, body: { field: 'limit' } });
    const operator = await call(real.url, 'GET', '/leaderboard?limit[$gt]=1');
    expect(operator).toMatchObject({
      status: 400,
      body: { error: 'invalidRequest', field: 'limit[$gt]' },
    });
    const extra = await call(real.url, 'GET', '/leaderboard?sort=xp');
    expect(extra).toMatchObject({ status: 400, body: { field: 'sort' } });
  });

  it('an unknown route is 404 with a JSON body', async () => {
    const reply = await call(real.url, 'GET', '/students');
    expect(reply).toMatchObject({ status: 404, body: { error: 'notFound' } });
    expect((await call(real.url, 'DELETE', `/students/${hex(new ObjectId())}`)).status).toBe(404);
  });
});

describe('POST /students/:id/submissions', () => {
  it('201 with the award, the level-up and the first badge; a resubmission is 200 with the same result, nothing added', async () => {
    const student = await newStudent();
    const assignment = await newAssignment(120);
    const path = `/students/${hex(student)}/submissions`;
    const first = await call(real.url, 'POST', path, { body: { assignmentId: hex(assignment) } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      submission: { assignmentId: hex(assignment), late: false },
      xpAwarded: 120,
      auraPointsAwarded: 120,
      levelsGained: [1],
      badgesEarned: ['first-submission'],
      student: { level: 1, xp: 120, xpIntoLevel: 20, xpToNextLevel: 380, submissions: 1 },
      repeat: false,
    });
    const again = await call(real.url, 'POST', path, { body: { assignmentId: hex(assignment) } });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ ...first.body, repeat: true });
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({
      xp: 120,
      auraPoints: 120,
      submissions: 1,
    });
    expect(await collections(test.db).submissions.countDocuments({ studentId: student })).toBe(1);
  });

  it('the same assignment submitted 30 times at once: one 201, 29 repeats with the same body, awarded once', async () => {
    const student = await newStudent();
    const assignment = await newAssignment(100);
    const report = await race(30, () =>
      submitOne(real.url, { studentId: student, assignmentIds: [assignment] }, 0),
    );
    expect({ ...report.tally }).toEqual({ '201': 1, '200:repeat': 29 });
    const [first] = report.values.filter((r) => r.status === 201);
    for (const reply of report.values)
      expect(reply.body).toEqual({ ...first?.body, repeat: reply.status === 200 });
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({
      xp: 100,
      level: 1,
      submissions: 1,
      badges: ['first-submission'],
    });
    expect(await collections(test.db).submissions.countDocuments({ studentId: student })).toBe(1);
  });

  it('a late submission earns half the points, rounded up', async () => {
    const student = await newStudent();
    const late = await newAssignment(51, -1000);
    const reply = await call(real.url, 'POST', `/students/${hex(student)}/submissions`, {
      body: { assignmentId: hex(late) },
    });
    expect(reply).toMatchObject({
      status: 201,
      body: { xpAwarded: 26, submission: { late: true } },
    });
  });

  it('a late submission is marked late even when half the points rounded up is all the points (1 point)', async () => {
    const student = await newStudent();
    const late = await newAssignment(1, -1000);
    const reply = await call(real.url, 'POST', `/students/${hex(student)}/submissions`, {
      body: { assignmentId: hex(late) },
    });
    expect(reply).toMatchObject({
      status: 201,
      body: { xpAwarded: 1, submission: { late: true } },
    });
    expect(
      await collections(test.db).submissions.findOne({ studentId: student, assignmentId: late }),
    ).toMatchObject({ late: true, xpAwarded: 1 });
  });

  it('one award crossing two thresholds reports both levels (100 and 500 XP)', async () => {
    const student = await newStudent();
    const big = await newAssignment(600);
    const reply = await call(real.url, 'POST', `/students/${hex(student)}/submissions`, {
      body: { assignmentId: hex(big) },
    });
    expect(reply.body).toMatchObject({ levelsGained: [1, 2], student: { level: 2, xp: 600 } });
  });

  it('a resubmission the op id log has forgotten is still answered from the record, not awarded again', async () => {
    const student = await newStudent();
    const assignment = await newAssignment(100);
    const path = `/students/${hex(student)}/submissions`;
    const first = await call(real.url, 'POST', path, { body: { assignmentId: hex(assignment) } });
    await collections(test.db).students.updateOne({ _id: student }, { $set: { _opIds: [] } });
    const again = await call(real.url, 'POST', path, { body: { assignmentId: hex(assignment) } });
    expect(again).toMatchObject({ status: 200, body: { ...first.body, repeat: true } });
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({
      xp: 100,
    });
  });

  it('unknown student: 404 studentNotFound; unknown assignment: 404 assignmentNotFound; nothing recorded', async () => {
    const before = await collections(test.db).submissions.countDocuments();
    const unknownStudent = new ObjectId();
    const r1 = await call(real.url, 'POST', `/students/${hex(unknownStudent)}/submissions`, {
      body: { assignmentId: hex(SAMPLE.assignments.lab) },
    });
    expect(r1).toMatchObject({
      status: 404,
      body: { error: 'studentNotFound', studentId: hex(unknownStudent) },
    });
    const unknownAssignment = new ObjectId();
    const r2 = await call(real.url, 'POST', `/students/${hex(SAMPLE.students.linus)}/submissions`, {
      body: { assignmentId: hex(unknownAssignment) },
    });
    expect(r2).toMatchObject({
      status: 404,
      body: { error: 'assignmentNotFound', assignmentId: hex(unknownAssignment) },
    });
    expect(await collections(test.db).submissions.countDocuments()).toBe(before);
  });

  it('rejects bad input with 400 naming the field, and writes nothing', async () => {
    const path = `/students/${hex(SAMPLE.students.linus)}/submissions`;
    const assignmentId = hex(SAMPLE.assignments.lab);
    await expectRejected('POST', path, '{"assignmentId": ', 'body');
    await expectRejected('POST', path, undefined, 'body');
    await expectRejected('POST', path, {}, 'assignmentId');
    await expectRejected('POST', path, { assignmentId: 'abc' }, 'assignmentId');
    await expectRejected('POST', path, { assignmentId: { $gt: '' } }, 'assignmentId');
    await expectRejected('POST', path, { assignmentId: 42 }, 'assignmentId');
    await expectRejected('POST', path, [assignmentId], 'body');
    await expectRejected('POST', path, { assignmentId, points: 1000 }, 'points');
    await expectRejected('POST', '/students/nope/submissions', { assignmentId }, 'id');
    await expectRejected(
      'POST',
      `/students/${encodeURIComponent('{"$ne":null}')}/submissions`,
      { assignmentId },
      'id',
    );
  });
});

describe('POST /students/:id/pomodoros', () => {
  const path = (id: ObjectId) => `/students/${hex(id)}/pomodoros`;

  it('201 with the award; the same opId again is 200 with the same body, marked a repeat', async () => {
    const student = await newStudent({ xp: 90 });
    const first = await call(real.url, 'POST', path(student), {
      body: { opId: 'tab-1', minutes: 25 },
    });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      session: { opId: 'tab-1', minutes: 25 },
      xpAwarded: 25,
      levelsGained: [1],
      badgesEarned: [],
      student: { xp: 115, level: 1, pomodoroSessions: 1, pomodoroMinutes: 25 },
      repeat: false,
    });
    const again = await call(real.url, 'POST', path(student), {
      body: { opId: 'tab-1', minutes: 25 },
    });
    expect(again).toEqual(
      expect.objectContaining({ status: 200, body: { ...first.body, repeat: true } }),
    );
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({
      xp: 115,
      pomodoroSessions: 1,
    });
  });

  it('two devices finishing two different sessions: both count', async () => {
    const student = await newStudent();
    const [phone, laptop] = await Promise.all([
      call(real.url, 'POST', path(student), {
        body: { opId: 'phone-1', minutes: 25 },
        headers: json,
      }),
      call(real.url, 'POST', path(student), {
        body: { opId: 'laptop-1', minutes: 50 },
        headers: json,
      }),
    ]);
    expect([phone?.status, laptop?.status]).toEqual([201, 201]);
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({
      xp: 75,
      pomodoroSessions: 2,
      pomodoroMinutes: 75,
    });
  });

  it('the same opId with other minutes is 409 opIdReused, with the session the id stands for', async () => {
    const student = await newStudent();
    await call(real.url, 'POST', path(student), { body: { opId: 'reused', minutes: 25 } });
    const reply = await call(real.url, 'POST', path(student), {
      body: { opId: 'reused', minutes: 50 },
    });
    expect(reply).toMatchObject({
      status: 409,
      body: { error: 'opIdReused', session: { opId: 'reused', minutes: 25 }, xpAwarded: 25 },
    });
    expect(await collections(test.db).students.findOne({ _id: student })).toMatchObject({ xp: 25 });
  });

  it('the first request died after its award and before its record: a repeat records it once, without guessing levels', async () => {
    const student = await newStudent({ xp: 90 });
    const { students } = collections(test.db);
    // What the dead request did: the award, with its op id, and nothing more.
    await applyProgress(students, {
      filter: { _id: student },
      inc: { xp: 25, auraPoints: 25, pomodoroSessions: 1, pomodoroMinutes: 25 },
      opId: 'pomodoro:orphan',
    });
    const quick = await listen(createApp(test.db, { recordWaitMs: 50 }));
    try {
      const reply = await call(quick.url, 'POST', path(student), {
        body: { opId: 'orphan', minutes: 25 },
      });
      expect(reply).toMatchObject({
        status: 200,
        body: {
          repeat: true,
          recovered: true,
          xpAwarded: 25,
          levelsGained: [],
          student: { xp: 115 },
        },
      });
      const again = await call(quick.url, 'POST', path(student), {
        body: { opId: 'orphan', minutes: 25 },
      });
      expect(again.body).toEqual(reply.body);
    } finally {
      await quick.close();
    }
    expect(await students.findOne({ _id: student })).toMatchObject({
      xp: 115,
      pomodoroSessions: 1,
    });
  });

  it('unknown student: 404 studentNotFound, no session recorded', async () => {
    const unknown = new ObjectId();
    const reply = await call(real.url, 'POST', path(unknown), { body: { opId: 'x', minutes: 25 } });
    expect(reply).toMatchObject({
      status: 404,
      body: { error: 'studentNotFound', studentId: hex(unknown) },
    });
    expect(await collections(test.db).pomodoros.countDocuments({ '_id.studentId': unknown })).toBe(
      0,
    );
  });

  it('rejects bad minutes, opIds and bodies with 400 naming the field, and writes nothing', async () => {
    const p = path(SAMPLE.students.linus);
    for (const minutes of [0, -5, 1.5, 181, 1e12, '25', null, { $gt: 0 }, true]) {
      await expectRejected('POST', p, { opId: 'ok', minutes }, 'minutes');
    }
    for (const opId of ['', 'has space', 'x'.repeat(65), { $gt: '' }, 7, 'a.b', '$where']) {
      await expectRejected('POST', p, { opId, minutes: 25 }, 'opId');
    }
    await expectRejected('POST', p, { opId: 'ok' }, 'minutes');
    await expectRejected('POST', p, { opId: 'ok', minutes: 25, xp: 1000 }, 'xp');
    await expectRejected(
      'POST',
      p,
      '{"opId":"ok","minutes":25,"__proto__":{"admin":true}}',
      '__proto__',
    );
    await expectRejected(
      'POST',
      p,
      '{"opId":"ok","minutes":25,"constructor":{"prototype":{}}}',
      'constructor',
    );
    await expectRejected('POST', p, '{"opId":"ok","minutes":25', 'body');
    await expectRejected('POST', p, 'null', 'body');
    await expectRejected('POST', '/students/0/pomodoros', { opId: 'ok', minutes: 25 }, 'id');
  });
});

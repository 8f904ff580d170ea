/**
 * The gamification service (seed 001): assignment submissions and finished pomodoro sessions
 * award XP and aura points; levels and badges follow from them; a leaderboard reads them.
 *
 * What must hold however many requests arrive at once (two devices, a double click, a client
 * retrying after a timeout, a class submitting before the deadline):
 * - every award counts, exactly once: the student's XP is the sum of what the 201 responses
 *   awarded, never less (a lost update) and never more (a request applied twice);
 * - each level-up and each badge is reported by exactly one response, the one whose award
 *   caused it: the seed's `console.log('Congratulations!')` runs once per level;
 * - a submission is recorded once per (student, assignment) and a pomodoro once per operation
 *   id; a repeat answers 200 with the first result, marked `repeat: true`.
 *
 * How: `applyProgress` adds the XP and derives the level and badges on the server in ONE
 * single-document update, reporting what THIS call earned, and records the operation id
 * (`submission:<assignmentId>`, `pomodoro:<opId>`) in the same update, so of N concurrent
 * copies of one operation exactly one applies. That call then writes the operation's record
 * (the submission, the session), which is what repeats answer with.
 *
 * Why not the seed's "FINAL FIX: USE TRANSACTIONS": the award and the record would commit
 * together, but every award to a student writes that student's document, so concurrent awards
 * conflict and retry. 100 concurrent submissions by one student took 1 381 transaction retries
 * (and 12 to 30 s) on the test server; single-document updates take none. The price is a gap
 * between the two writes, handled below (`awaitRecord`): see the README, "If the process dies".
 */
import { setTimeout as sleep } from 'node:timers/promises';
import express, { type Express, type Response, Router } from 'express';
import { applyProgress, type ProgressApplied } from 'mongo-atomics';
import { type Db, type Filter, ObjectId } from 'mongodb';
import { z } from 'zod';
import {
  errorHandler,
  HttpError,
  notFound,
  objectId,
  parse,
  quantity,
  token,
} from '../shared/http.js';
import {
  type Award,
  collections,
  isLate,
  LEVEL_THRESHOLDS,
  type PomodoroSession,
  pomodoroReward,
  type Student,
  type StudentView,
  SUBMISSION_BADGES,
  type Submission,
  studentView,
  submissionReward,
} from './model.js';

export interface AppOptions {
  /**
   * How long a repeat waits for the record of an award that another request has applied but
   * not yet recorded (normally a few milliseconds: the time between its two writes). After
   * that the first request is presumed dead and the repeat writes the record itself.
   * @default 5000
   */
  readonly recordWaitMs?: number;
}

/** Pomodoro lengths the app accepts: whole minutes, 1 to 3 hours. */
export const MAX_POMODORO_MINUTES = 180;
export const LEADERBOARD_MAX = 100;

export const studentParams = z.strictObject({ id: objectId });
export const submissionBody = z.strictObject({ assignmentId: objectId });
export const pomodoroBody = z.strictObject({
  opId: token,
  minutes: quantity(MAX_POMODORO_MINUTES),
});
const leaderboardQuery = z.strictObject({
  // Query strings are strings: accept only plain decimal digits, then range-check the number.
  limit: z
    .string()
    .regex(/^[0-9]{1,3}$/, 'must be a whole number')
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(1, 'must be at least 1')
        .max(LEADERBOARD_MAX, `must be at most ${LEADERBOARD_MAX}`),
    )
    .optional(),
});

/** The level and badge rules, in `applyProgress`'s terms (see model.ts for the seed's rule). */
const PROGRESS_RULES = {
  level: { field: 'level', counter: 'xp', thresholds: LEVEL_THRESHOLDS },
  badges: {
    field: 'badges',
    rules: SUBMISSION_BADGES.map(({ badge, atLeast }) => ({
      badge,
      counter: 'submissions',
      atLeast,
    })),
  },
} as const;

const awardOf = (applied: ProgressApplied<Student>, xp: number): Award => ({
  xpAwarded: xp,
  auraPointsAwarded: xp,
  levelsGained: applied.levelsGained,
  badgesEarned: applied.badgesEarned,
});

/** How an award went: this request applied it (201) or a request before it did (200). */
type Once<R> = { readonly created: boolean; readonly record: R } | 'studentNotFound';

export function createApp(db: Db, options: AppOptions = {}): Express {
  const { students, assignments, submissions, pomodoros } = collections(db);
  const recordWaitMs = options.recordWaitMs ?? 5000;

  /**
   * Applies an award once per operation and returns its record.
   *
   * 1. The record already exists: a repeat; answer with it (no write). This read also covers
   *    a repeat arriving after the student's op id log (newest 50 ids) forgot the id.
   * 2. `applyProgress` with the operation's id: `applied` means THIS request made the award
   *    and is the one to report its levels and badges; it writes the record with
   *    `$setOnInsert` (upsert), so a record already written by a repeat that gave up waiting
   *    (step 3) is kept, and this request answers with that one: the database and the
   *    responses never disagree.
   * 3. `alreadyApplied`: a concurrent copy applied it and is about to write the record; wait
   *    for it. If it never comes (that request's process died between its two writes), write
   *    the record without the levels and badges, which nobody can know any more: they are then
   *    reported at most once rather than exactly once (`recovered: true`).
   */
  async function awardOnce<R extends Award>(op: {
    readonly studentId: ObjectId;
    readonly opId: string;
    readonly inc: Readonly<Record<string, number>>;
    readonly xp: number;
    readonly find: () => Promise<R | null>;
    /** Upserts `record` with `$setOnInsert`; true if this call inserted it. */
    readonly insert: (record: R) => Promise<boolean>;
    readonly build: (award: Award & { recovered?: true }, student: StudentView) => R;
  }): Promise<Once<R>> {
    const existing = await op.find();
    if (existing !== null) return { created: false, record: existing };

    const progress = await applyProgress(students, {
      filter: { _id: op.studentId },
      inc: op.inc,
      ...PROGRESS_RULES,
      opId: op.opId,
    });
    if (progress.outcome === 'notFound') return 'studentNotFound';
    if (progress.outcome === 'applied') {
      const record = op.build(awardOf(progress, op.xp), studentView(progress.document));
      if (await op.insert(record)) return { created: true, record };
      const kept = await op.find();
      if (kept === null) throw new Error(`record of ${op.opId} vanished`);
      return { created: true, record: kept };
    }
    const recorded = await awaitRecord(op.find);
    if (recorded !== null) return { created: false, record: recorded };
    const recovered = op.build(
      {
        xpAwarded: op.xp,
        auraPointsAwarded: op.xp,
        levelsGained: [],
        badgesEarned: [],
        recovered: true,
      },
      studentView(progress.document),
    );
    await op.insert(recovered);
    const record = await op.find();
    if (record === null) throw new Error(`record of ${op.opId} vanished`);
    return { created: false, record };
  }

  /** Polls for a record another request is writing (every 10 ms, up to `recordWaitMs`). */
  async function awaitRecord<R>(find: () => Promise<R | null>): Promise<R | null> {
    const deadline = Date.now() + recordWaitMs;
    for (;;) {
      const record = await find();
      if (record !== null || Date.now() >= deadline) return record;
      await sleep(10);
    }
  }

  const app = express();
  app.use(express.json({ limit: '16kb' }));
  app.use(readRoutes(db));

  /**
   * Submit an assignment: 201 with what it earned; 200 with the first submission's result
   * (`repeat: true`) when this student already submitted it, however many times and however
   * concurrently they try.
   */
  app.post('/students/:id/submissions', async (req, res) => {
    const { id: studentId } = parse(studentParams, req.params, 'params');
    const { assignmentId } = parse(submissionBody, req.body, 'body');

    const assignment = await assignments.findOne({ _id: assignmentId });
    if (assignment === null) {
      throw new HttpError(404, {
        error: 'assignmentNotFound',
        assignmentId: assignmentId.toHexString(),
      });
    }
    const submittedAt = new Date();
    const xp = submissionReward(assignment, submittedAt);
    // The unique { studentId, assignmentId } index (setup.ts) makes this the one record.
    const key: Filter<Submission> = { studentId, assignmentId };

    const outcome = await awardOnce<Submission>({
      studentId,
      opId: `submission:${assignmentId.toHexString()}`,
      inc: { xp, auraPoints: xp, submissions: 1 },
      xp,
      find: () => submissions.findOne(key),
      insert: async (record) => {
        // studentId and assignmentId come from the filter's equalities: leaving them out of
        // the update lets the server retry a colliding upsert itself (MONGODB.md, upserts).
        const { studentId: _s, assignmentId: _a, ...fields } = record;
        const result = await submissions.updateOne(key, { $setOnInsert: fields }, { upsert: true });
        return result.upsertedCount === 1;
      },
      build: (award, student) => ({
        _id: new ObjectId(),
        studentId,
        assignmentId,
        submittedAt,
        late: isLate(assignment, submittedAt),
        ...award,
        student,
      }),
    });
    if (outcome === 'studentNotFound') throw studentNotFound(studentId);

    const { created, record } = outcome;
    sendAward(res, created, {
      submission: {
        id: record._id.toHexString(),
        assignmentId: record.assignmentId.toHexString(),
        submittedAt: record.submittedAt.toISOString(),
        late: record.late,
      },
      ...awardFields(record),
      student: record.student,
    });
  });

  /**
   * Finish a pomodoro session. The client generates `opId` once per session (a UUID, say) and
   * sends it with every attempt: a double click, a retry after a timeout and the same session
   * finished from a second device all carry it, so it counts once; two different sessions
   * (two ids) both count. 201 the first time, then 200 with the same body and `repeat: true`;
   * 409 `opIdReused` if the id comes back with different minutes.
   */
  app.post('/students/:id/pomodoros', async (req, res) => {
    const { id: studentId } = parse(studentParams, req.params, 'params');
    const { opId, minutes } = parse(pomodoroBody, req.body, 'body');
    const xp = pomodoroReward(minutes);
    const finishedAt = new Date();
    // `_id` is { studentId, opId } (field order matters in an embedded `_id`: always this one).
    const _id = { studentId, opId };

    const outcome = await awardOnce<PomodoroSession>({
      studentId,
      // Its own namespace in the student's op id log: never collides with a submission's.
      opId: `pomodoro:${opId}`,
      inc: { xp, auraPoints: xp, pomodoroSessions: 1, pomodoroMinutes: minutes },
      xp,
      find: () => pomodoros.findOne({ _id }),
      insert: async (record) => {
        const { _id: _key, ...fields } = record;
        const result = await pomodoros.updateOne(
          { _id },
          { $setOnInsert: fields },
          { upsert: true },
        );
        return result.upsertedCount === 1;
      },
      build: (award, student) => ({ _id, minutes, finishedAt, ...award, student }),
    });
    if (outcome === 'studentNotFound') throw studentNotFound(studentId);

    const { created, record } = outcome;
    const body = {
      session: {
        opId: record._id.opId,
        minutes: record.minutes,
        finishedAt: record.finishedAt.toISOString(),
      },
      ...awardFields(record),
      student: record.student,
    };
    if (!created && record.minutes !== minutes) {
      // Same id, different session: a client bug (an id reused). Say what the id stands for.
      throw new HttpError(409, {
        error: 'opIdReused',
        message: `opId ${opId} already finished a session of ${record.minutes} minutes`,
        ...body,
      });
    }
    sendAward(res, created, body);
  });

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

/**
 * The read-only routes (assignments, a student, the leaderboard). They write nothing, so the
 * naive app serves the very same ones.
 */
export function readRoutes(db: Db): Router {
  const { students, assignments } = collections(db);
  const router = Router();

  router.get('/assignments', async (_req, res) => {
    const list = await assignments.find({}, { sort: { dueDate: 1, _id: 1 }, limit: 100 }).toArray();
    res.json({
      assignments: list.map((a) => ({
        id: a._id.toHexString(),
        title: a.title,
        points: a.points,
        dueDate: a.dueDate.toISOString(),
      })),
    });
  });

  router.get('/students/:id', async (req, res) => {
    const { id } = parse(studentParams, req.params, 'params');
    const student = await students.findOne({ _id: id });
    if (student === null) throw studentNotFound(id);
    res.json({ student: studentView(student) });
  });

  /**
   * Leaderboard: highest level first, then most XP (cumulative XP already orders students of
   * one level; the level comes first so a level raised by hand still ranks), then the oldest
   * account (`_id`) so ties have a stable order. Served by the `{ level: -1, xp: -1, _id: 1 }`
   * index (setup.ts).
   */
  router.get('/leaderboard', async (req, res) => {
    const { limit = 10 } = parse(leaderboardQuery, req.query, 'query');
    const top = await students.find({}, { sort: { level: -1, xp: -1, _id: 1 }, limit }).toArray();
    res.json({
      sortedBy: ['level desc', 'xp desc', 'id asc'],
      students: top.map((student, i) => ({ rank: i + 1, ...studentView(student) })),
    });
  });
  return router;
}

export function studentNotFound(id: ObjectId): HttpError {
  return new HttpError(404, { error: 'studentNotFound', studentId: id.toHexString() });
}

export const awardFields = (award: Award): Award => ({
  xpAwarded: award.xpAwarded,
  auraPointsAwarded: award.auraPointsAwarded,
  levelsGained: award.levelsGained,
  badgesEarned: award.badgesEarned,
  ...(award.recovered === true ? { recovered: true as const } : {}),
});

/** 201 for the request that applied the award; 200 with the same body for every repeat. */
export function sendAward(
  res: Response,
  created: boolean,
  body: Award & { student: StudentView } & Record<string, unknown>,
): void {
  res.status(created ? 201 : 200).json({ ...body, repeat: !created });
}

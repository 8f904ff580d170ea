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
 *   id; a repeat answers 200 with the first result, marked `repeat: true`;
 * - the award and its record (the submission, the session) are written all or nothing: the
 *   seed's "FINAL FIX: USE TRANSACTIONS".
 *
 * How: `applyProgress` adds the XP and derives the level and badges on the server in one
 * single-document update, reporting what THIS call earned; `withRetryingTransaction` writes the
 * award and its record together and retries on write conflicts; the record's unique key and the
 * award's `opId` make a repeat of the same operation a no-op.
 */
import express, { type Express, type Response } from 'express';
import {
  applyProgress,
  isRetryBudgetExhaustedError,
  type ProgressApplied,
  withRetryingTransaction,
} from 'mongo-atomics';
import { type ClientSession, type Db, MongoServerError, ObjectId } from 'mongodb';
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
   * The transaction's retry budget. Every award to one student writes that student's document,
   * so concurrent awards conflict and retry; the defaults absorb a class's worth of them.
   * @default { timeoutMs: 20_000, maxAttempts: 200 }
   */
  readonly retry?: { readonly timeoutMs?: number; readonly maxAttempts?: number };
}

/** Pomodoro lengths the app accepts: whole minutes, 1 to 3 hours. */
export const MAX_POMODORO_MINUTES = 180;
export const LEADERBOARD_MAX = 100;

const studentParams = z.strictObject({ id: objectId });
const submissionBody = z.strictObject({ assignmentId: objectId });
const pomodoroBody = z.strictObject({ opId: token, minutes: quantity(MAX_POMODORO_MINUTES) });
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

const isDuplicateKey = (error: unknown): boolean =>
  error instanceof MongoServerError && error.code === 11000;

const awardOf = (applied: ProgressApplied<Student>, xp: number): Award => ({
  xpAwarded: xp,
  auraPointsAwarded: xp,
  levelsGained: applied.levelsGained,
  badgesEarned: applied.badgesEarned,
});

export function createApp(db: Db, options: AppOptions = {}): Express {
  const { students, assignments, submissions, pomodoros } = collections(db);
  const client = db.client;
  const retry = { timeoutMs: 20_000, maxAttempts: 200, ...options.retry };

  /**
   * Runs `fn` in a transaction, retried on write conflicts within the budget. A budget spent
   * (a student hammered by far more concurrent awards than expected) is a 503 the client may
   * retry: nothing was written.
   */
  async function transaction<T>(fn: (session: ClientSession) => Promise<T>): Promise<T> {
    try {
      return await withRetryingTransaction(client, (session) => fn(session), retry);
    } catch (error) {
      if (isRetryBudgetExhaustedError(error) && error.reason !== 'commitOutcomeUnknown') {
        throw new HttpError(503, {
          error: 'busy',
          message: 'too many concurrent updates to this student; nothing was recorded, retry',
          retryable: true,
        });
      }
      throw error;
    }
  }

  const app = express();
  app.use(express.json({ limit: '16kb' }));

  app.get('/assignments', async (_req, res) => {
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

  app.get('/students/:id', async (req, res) => {
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
  app.get('/leaderboard', async (req, res) => {
    const { limit = 10 } = parse(leaderboardQuery, req.query, 'query');
    const top = await students.find({}, { sort: { level: -1, xp: -1, _id: 1 }, limit }).toArray();
    res.json({
      sortedBy: ['level desc', 'xp desc', 'id asc'],
      students: top.map((student, i) => ({ rank: i + 1, ...studentView(student) })),
    });
  });

  /**
   * Submit an assignment: 201 with what it earned; 200 with the first submission's result
   * (`repeat: true`) when this student already submitted it, however many times and however
   * concurrently they try.
   */
  app.post('/students/:id/submissions', async (req, res) => {
    const { id: studentId } = parse(studentParams, req.params, 'params');
    const { assignmentId } = parse(submissionBody, req.body, 'body');

    // Assignments are not written by this request: read outside the transaction.
    const assignment = await assignments.findOne({ _id: assignmentId });
    if (assignment === null) {
      throw new HttpError(404, {
        error: 'assignmentNotFound',
        assignmentId: assignmentId.toHexString(),
      });
    }
    const submittedAt = new Date();
    const xp = submissionReward(assignment, submittedAt);
    const late = xp !== assignment.points;

    const findFirst = (session?: ClientSession) =>
      submissions.findOne({ studentId, assignmentId }, session === undefined ? {} : { session });

    let outcome: { created: boolean; submission: Submission | null } | 'studentNotFound';
    try {
      outcome = await transaction(async (session) => {
        // The award, the level and the badges in one atomic update. The opId makes a second
        // submission of the same assignment a no-op on the student even before the unique
        // index below is reached (and tells us, in the same round trip, that it is a repeat).
        const progress = await applyProgress(students, {
          filter: { _id: studentId },
          inc: { xp, auraPoints: xp, submissions: 1 },
          ...PROGRESS_RULES,
          opId: `submission:${assignmentId.toHexString()}`,
          session,
        });
        if (progress.outcome === 'notFound') return 'studentNotFound';
        if (progress.outcome === 'alreadyApplied') {
          // Committed with the award (same transaction), so this snapshot holds it.
          return { created: false, submission: await findFirst(session) };
        }
        const submission: Submission = {
          _id: new ObjectId(),
          studentId,
          assignmentId,
          submittedAt,
          late,
          ...awardOf(progress, xp),
          student: studentView(progress.document),
        };
        // The unique { studentId, assignmentId } index is the lasting guard: the op id log
        // keeps the newest 50 ids only. If it forgot this one, the insert fails with E11000,
        // the server aborts the transaction, and the award above is rolled back with it.
        await submissions.insertOne(submission, { session });
        return { created: true, submission };
      });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      outcome = { created: false, submission: await findFirst() };
    }

    if (outcome === 'studentNotFound') throw studentNotFound(studentId);
    const { created, submission } = outcome;
    if (submission === null) {
      // The op log says this assignment was submitted, but its record is gone (deleted by
      // hand?). Refuse to guess rather than award it again.
      throw new Error(`submission record missing for ${studentId} / ${assignmentId}`);
    }
    sendAward(res, created, {
      submission: {
        id: submission._id.toHexString(),
        assignmentId: submission.assignmentId.toHexString(),
        submittedAt: submission.submittedAt.toISOString(),
        late: submission.late,
      },
      ...awardFields(submission),
      student: submission.student,
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
    const key = { studentId, opId };
    const xp = pomodoroReward(minutes);
    const finishedAt = new Date();

    const findFirst = (session?: ClientSession) =>
      pomodoros.findOne({ _id: key }, session === undefined ? {} : { session });

    let outcome: { created: boolean; session: PomodoroSession | null } | 'studentNotFound';
    try {
      outcome = await transaction(async (session) => {
        const progress = await applyProgress(students, {
          filter: { _id: studentId },
          inc: { xp, auraPoints: xp, pomodoroSessions: 1, pomodoroMinutes: minutes },
          ...PROGRESS_RULES,
          // Its own namespace in the student's op id log: a pomodoro id can never collide
          // with a submission's.
          opId: `pomodoro:${opId}`,
          session,
        });
        if (progress.outcome === 'notFound') return 'studentNotFound';
        if (progress.outcome === 'alreadyApplied') {
          return { created: false, session: await findFirst(session) };
        }
        const record: PomodoroSession = {
          _id: key,
          minutes,
          finishedAt,
          ...awardOf(progress, xp),
          student: studentView(progress.document),
        };
        // `_id` is { studentId, opId }: the lasting guard once the op log has forgotten the id.
        await pomodoros.insertOne(record, { session });
        return { created: true, session: record };
      });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      outcome = { created: false, session: await findFirst() };
    }

    if (outcome === 'studentNotFound') throw studentNotFound(studentId);
    const { created, session: record } = outcome;
    if (record === null) throw new Error(`pomodoro record missing for ${studentId} / ${opId}`);
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

function studentNotFound(id: ObjectId): HttpError {
  return new HttpError(404, { error: 'studentNotFound', studentId: id.toHexString() });
}

const awardFields = (award: Award): Award => ({
  xpAwarded: award.xpAwarded,
  auraPointsAwarded: award.auraPointsAwarded,
  levelsGained: award.levelsGained,
  badgesEarned: award.badgesEarned,
});

/** 201 for the request that applied the award; 200 with the same body for every repeat. */
function sendAward(
  res: Response,
  created: boolean,
  body: Award & { student: StudentView } & Record<string, unknown>,
): void {
  res.status(created ? 201 : 200).json({ ...body, repeat: !created });
}

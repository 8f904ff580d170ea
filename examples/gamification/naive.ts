// DO NOT COPY: the seed's racy handlers (read the student, compute in JavaScript, save), kept to show the races the real app (app.ts) closes.
/**
 * The naive gamification service: the same routes and responses as app.ts, written the way
 * seed 001 wrote them.
 *
 * - Submissions: read the student, add the reward in JavaScript, check the level threshold,
 *   count the submissions for the badge, then save every field read (Mongoose's `save()` sets
 *   the modified paths). Two submissions at once both read XP 0, both save 0 + reward: one
 *   award is lost, and both announce the same level-up and the same badge.
 * - Pomodoros: the seed's second attempt, `$inc` and `$push` with a "processed ids" list
 *   checked first. Two clicks both check before either pushes: the session is awarded twice
 *   (the session record's unique id then fails the second insert, after the harm is done).
 *
 * `afterRead` is awaited between the reads and the writes, on every request, before any early
 * return. Tests pass a `barrier(n)` from mongo-atomics/testing so that every request reads
 * before any writes: the worst interleaving, on every run. In production nothing forces it, and
 * nothing prevents it: the window is a few milliseconds per request, and a class submitting
 * before a deadline or a double click falls into it.
 */
import express, { type Express } from 'express';
import { type Db, ObjectId } from 'mongodb';
import { errorHandler, HttpError, notFound, parse } from '../shared/http.js';
import {
  awardFields,
  pomodoroBody,
  readRoutes,
  sendAward,
  studentNotFound,
  studentParams,
  submissionBody,
} from './app.js';
import {
  type Award,
  collections,
  isLate,
  levelFor,
  type PomodoroSession,
  pomodoroReward,
  type Student,
  SUBMISSION_BADGES,
  type Submission,
  studentView,
  submissionReward,
} from './model.js';

export interface NaiveOptions {
  /** Awaited after every request's reads and before its writes (tests: a barrier). */
  readonly afterRead?: () => Promise<void>;
}

/** The naive app keeps the ids it processed in its own field (the guide's naive version). */
type NaiveStudent = Student & { processedOps?: string[] };

/** The seed's `checkBadgeFromSubmissions(count)`: the highest badge the count qualifies for. */
function checkBadgeFromSubmissions(count: number): string | undefined {
  return SUBMISSION_BADGES.filter((rule) => count >= rule.atLeast).at(-1)?.badge;
}

const levelsBetween = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i + 1);

export function createNaiveApp(db: Db, options: NaiveOptions = {}): Express {
  const { students, assignments, submissions, pomodoros } = collections(db);
  const naiveStudents = db.collection<NaiveStudent>('students');
  const afterRead = options.afterRead ?? (async () => {});

  const app = express();
  app.use(express.json({ limit: '16kb' }));
  app.use(readRoutes(db));

  app.post('/students/:id/submissions', async (req, res) => {
    const { id: studentId } = parse(studentParams, req.params, 'params');
    const { assignmentId } = parse(submissionBody, req.body, 'body');

    const student = await students.findOne({ _id: studentId });
    const assignment = await assignments.findOne({ _id: assignmentId });
    const existing = await submissions.findOne({ studentId, assignmentId });
    await afterRead(); // the race window: everything below decides from what was read above

    if (assignment === null) {
      throw new HttpError(404, {
        error: 'assignmentNotFound',
        assignmentId: assignmentId.toHexString(),
      });
    }
    if (student === null) throw studentNotFound(studentId);
    if (existing !== null) return sendSubmission(existing, false);

    const submittedAt = new Date();
    const reward = submissionReward(assignment, submittedAt);
    const submission: Submission = {
      _id: new ObjectId(),
      studentId,
      assignmentId,
      submittedAt,
      late: isLate(assignment, submittedAt),
      xpAwarded: reward,
      auraPointsAwarded: reward,
      levelsGained: [],
      badgesEarned: [],
      student: studentView(student),
    };
    await submissions.insertOne(submission);

    // The seed: student.xp += reward; if (student.xp >= next) { level up, congratulate }.
    student.auraPoints += reward;
    student.xp += reward;
    const previousLevel = student.level;
    student.level = Math.max(student.level, levelFor(student.xp));
    const levelsGained = levelsBetween(previousLevel, student.level);

    // The seed: Submission.find({ studentId }).length, then checkBadgeFromSubmissions.
    const count = (await submissions.find({ studentId }).toArray()).length;
    student.submissions = count;
    const badgeId = checkBadgeFromSubmissions(count);
    const badgesEarned: string[] = [];
    if (badgeId !== undefined && !student.badges.includes(badgeId)) {
      student.badges = [...new Set([...student.badges, badgeId])];
      badgesEarned.push(badgeId);
    }
    // student.save(): the modified paths, as computed from the read above.
    await students.updateOne(
      { _id: studentId },
      {
        $set: {
          xp: student.xp,
          auraPoints: student.auraPoints,
          level: student.level,
          submissions: student.submissions,
          badges: student.badges,
        },
      },
    );
    const award: Award = {
      xpAwarded: reward,
      auraPointsAwarded: reward,
      levelsGained,
      badgesEarned,
    };
    const recorded = { ...submission, ...award, student: studentView(student) };
    await submissions.updateOne(
      { _id: submission._id },
      { $set: { ...award, student: recorded.student } },
    );
    return sendSubmission(recorded, true);

    function sendSubmission(s: Submission, created: boolean): void {
      sendAward(res, created, {
        submission: {
          id: s._id.toHexString(),
          assignmentId: s.assignmentId.toHexString(),
          submittedAt: s.submittedAt.toISOString(),
          late: s.late,
        },
        ...awardFields(s),
        student: s.student,
      });
    }
  });

  app.post('/students/:id/pomodoros', async (req, res) => {
    const { id: studentId } = parse(studentParams, req.params, 'params');
    const { opId, minutes } = parse(pomodoroBody, req.body, 'body');

    const student = await naiveStudents.findOne({ _id: studentId });
    await afterRead(); // the race window

    if (student === null) throw studentNotFound(studentId);
    const key = { studentId, opId };
    if (student.processedOps?.includes(opId)) {
      // "Seen it": answer with the recorded session.
      const first = await pomodoros.findOne({ _id: key });
      if (first === null) throw new Error('pomodoro record missing');
      return sendSession(first, false);
    }

    const xp = pomodoroReward(minutes);
    const level = Math.max(student.level, levelFor(student.xp + xp));
    // The seed's "fix": $inc and $push are atomic... each on its own. The check above is not.
    await naiveStudents.updateOne(
      { _id: studentId },
      {
        $inc: { xp, auraPoints: xp, pomodoroSessions: 1, pomodoroMinutes: minutes },
        $push: { processedOps: opId },
        $max: { level },
      },
    );
    const after = {
      ...student,
      xp: student.xp + xp,
      auraPoints: student.auraPoints + xp,
      pomodoroSessions: student.pomodoroSessions + 1,
      pomodoroMinutes: student.pomodoroMinutes + minutes,
      level,
    };
    const record: PomodoroSession = {
      _id: key,
      minutes,
      finishedAt: new Date(),
      xpAwarded: xp,
      auraPointsAwarded: xp,
      levelsGained: levelsBetween(student.level, level),
      badgesEarned: [],
      student: studentView(after),
    };
    // An upsert, so the second click's record does not fail with E11000: it "succeeds" too,
    // after its XP was added a second time.
    const { _id: _key, ...fields } = record;
    await pomodoros.updateOne({ _id: key }, { $setOnInsert: fields }, { upsert: true });
    return sendSession(record, true);

    function sendSession(s: PomodoroSession, created: boolean): void {
      sendAward(res, created, {
        session: { opId: s._id.opId, minutes: s.minutes, finishedAt: s.finishedAt.toISOString() },
        ...awardFields(s),
        student: s.student,
      });
    }
  });

  app.use(notFound);
  app.use(errorHandler);
  return app;
}

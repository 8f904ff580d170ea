/**
 * The gamification example's data model and rules (seed 001), shared by the real app, the
 * naive app and the tests: what a student, an assignment, a submission and a pomodoro session
 * look like in MongoDB, how much XP an action is worth, and the level and badge rules.
 *
 * XP is stored CUMULATIVE and never reset. The seed needs 100·(L+1)² XP to go from level L to
 * L+1 and resets XP to 0 at each level-up; the same rule, with cumulative XP, is "level n is
 * reached at 100·(1² + … + n²) XP" (see docs/guides/apply-progress.md). Unlike the seed, XP
 * beyond a threshold is kept, and one large award may cross several levels. What the seed showed
 * (XP earned towards the next level) is `xpIntoLevel` in every student view.
 */
import type { Db, ObjectId } from 'mongodb';

export interface Student {
  _id: ObjectId;
  name: string;
  /** Cumulative XP, never reset. */
  xp: number;
  /** The seed's "aura points": earned like XP, never spent here. */
  auraPoints: number;
  level: number;
  /** Assignments submitted (each counted once): what the badges follow. */
  submissions: number;
  pomodoroSessions: number;
  pomodoroMinutes: number;
  /** Badge names, in the order they were earned. */
  badges: string[];
  /** `applyProgress`'s op id log (newest 50 operation ids); the naive app keeps its own. */
  _opIds?: string[];
}

export interface Assignment {
  _id: ObjectId;
  title: string;
  /** XP (and aura points) for a submission on time; half of it (rounded up) when late. */
  points: number;
  dueDate: Date;
}

/** What an award earned, as the response that caused it reports it. */
export interface Award {
  readonly xpAwarded: number;
  readonly auraPointsAwarded: number;
  /** The levels THIS request reached (each level is reported by exactly one request). */
  readonly levelsGained: number[];
  /** The badges THIS request unlocked (each badge is reported by exactly one request). */
  readonly badgesEarned: string[];
  /**
   * Set when the request that applied the award died before recording it and a repeat wrote
   * the record instead: the levels and badges that award earned are unknown (empty here).
   */
  readonly recovered?: true;
}

/** One submission per (student, assignment): a unique index on `{ studentId, assignmentId }`. */
export interface Submission extends Award {
  _id: ObjectId;
  studentId: ObjectId;
  assignmentId: ObjectId;
  submittedAt: Date;
  late: boolean;
  /** The student as this submission left them (what the 201 reported; a repeat replays it). */
  student: StudentView;
}

/**
 * One finished pomodoro session, keyed by the client's operation id: `_id` is
 * `{ studentId, opId }`, so the same operation can be recorded once per student only.
 */
export interface PomodoroSession extends Award {
  _id: { studentId: ObjectId; opId: string };
  minutes: number;
  finishedAt: Date;
  student: StudentView;
}

/** A student as the API shows it. */
export interface StudentView {
  readonly id: string;
  readonly name: string;
  readonly level: number;
  readonly xp: number;
  /** XP earned since the current level was reached (what the seed stored as `xp`). */
  readonly xpIntoLevel: number;
  /** XP still needed for the next level; null past the last level this app lists. */
  readonly xpToNextLevel: number | null;
  readonly auraPoints: number;
  readonly submissions: number;
  readonly pomodoroSessions: number;
  readonly pomodoroMinutes: number;
  readonly badges: readonly string[];
}

export const collections = (db: Db) => ({
  students: db.collection<Student>('students'),
  assignments: db.collection<Assignment>('assignments'),
  submissions: db.collection<Submission>('submissions'),
  pomodoros: db.collection<PomodoroSession>('pomodoroSessions'),
});

/** Levels this app knows: 60 levels is 7 381 000 XP, far past anything a semester earns. */
export const MAX_LEVEL = 60;

/**
 * Cumulative XP needed for level n (n ≥ 1) at index n − 1: 100·n(n+1)(2n+1)/6, the running sum
 * of the seed's 100·(L+1)². [100, 500, 1400, 3000, 5500, 9100, 14000, …]
 */
export const LEVEL_THRESHOLDS: readonly number[] = Array.from(
  { length: MAX_LEVEL },
  (_, i) => (100 * (i + 1) * (i + 2) * (2 * i + 3)) / 6,
);

/** The level cumulative `xp` gives (used by the naive app and the tests; the real app lets the server decide). */
export function levelFor(xp: number): number {
  let level = 0;
  while (level < LEVEL_THRESHOLDS.length && xp >= (LEVEL_THRESHOLDS[level] as number)) level += 1;
  return level;
}

/** Badges earned from the number of submissions, in the order they are reached. */
export const SUBMISSION_BADGES = [
  { badge: 'first-submission', atLeast: 1 },
  { badge: 'ten-submissions', atLeast: 10 },
  { badge: 'twenty-five-submissions', atLeast: 25 },
  { badge: 'fifty-submissions', atLeast: 50 },
  { badge: 'hundred-submissions', atLeast: 100 },
] as const;

/**
 * Whether a submission at `now` is late. Decided from the dates, never from the reward: half of
 * 1 point rounded up is 1 point, so comparing the reward with the points misses late ones.
 */
export const isLate = (assignment: Assignment, now: Date): boolean =>
  now.getTime() > assignment.dueDate.getTime();

/** The seed's `rewardfunc(dueDate, now)`: full points on time, half (rounded up) when late. */
export function submissionReward(assignment: Assignment, now: Date): number {
  return isLate(assignment, now) ? Math.ceil(assignment.points / 2) : assignment.points;
}

/** A finished pomodoro is worth 1 XP (and 1 aura point) per focused minute. */
export const pomodoroReward = (minutes: number): number => minutes;

export function studentView(student: Student): StudentView {
  const { xp, level } = student;
  const reachedAt = level === 0 ? 0 : (LEVEL_THRESHOLDS[level - 1] ?? 0);
  const next = LEVEL_THRESHOLDS[level];
  return {
    id: student._id.toHexString(),
    name: student.name,
    level,
    xp,
    xpIntoLevel: xp - reachedAt,
    xpToNextLevel: next === undefined ? null : next - xp,
    auraPoints: student.auraPoints,
    submissions: student.submissions,
    pomodoroSessions: student.pomodoroSessions,
    pomodoroMinutes: student.pomodoroMinutes,
    badges: [...student.badges],
  };
}

/** A new student's counters (the sample data and the tests start from these). */
export const freshStudent = (name: string): Omit<Student, '_id'> & { _id?: ObjectId } => ({
  name,
  xp: 0,
  auraPoints: 0,
  level: 0,
  submissions: 0,
  pomodoroSessions: 0,
  pomodoroMinutes: 0,
  badges: [],
});

/**
 * The two storms of the gamification example, shared by its test (tests/examples/
 * gamification.test.ts) and its demo scenario (demo.ts): how to set each one up, one request
 * of it, and the check of the database against what the responses said.
 *
 * 1. Submissions: one student submits 100 DIFFERENT assignments at once, each worth 100 XP.
 *    Invariant: XP = 100 × 100 = the sum the 201s awarded; the level is what that XP gives;
 *    every level from 1 to it and every badge is reported by exactly one response; one
 *    submission record per 201, holding what that 201 said.
 * 2. Pomodoro: the same session (one opId) finished 50 times at once (double clicks, retries,
 *    a second device). Invariant: awarded once; one 201, every other answer a 200 repeat with
 *    the same body; one session record.
 */
import { isDeepStrictEqual } from 'node:util';
import { type Db, ObjectId } from 'mongodb';
import {
  type Assignment,
  collections,
  freshStudent,
  levelFor,
  SUBMISSION_BADGES,
} from './model.js';

/** One HTTP answer, with a name for the race's tally: `201`, `200:repeat`, `404:studentNotFound`… */
export interface Replied {
  readonly outcome: string;
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: checked field by field below
  readonly body: any;
}

/** POSTs JSON and names the answer for the tally. */
export async function postJson(base: string, path: string, body: unknown): Promise<Replied> {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const parsed = JSON.parse(await response.text());
  const detail = parsed?.error ?? (parsed?.repeat === true ? 'repeat' : undefined);
  return {
    outcome: detail === undefined ? String(response.status) : `${response.status}:${detail}`,
    status: response.status,
    body: parsed,
  };
}

const countBy = (items: readonly string[]): Map<string, number> => {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
};

/** "201 ×97, 500:internal ×3": what the storm's answers were, for violation messages. */
const describeAnswers = (replies: readonly Replied[]): string =>
  [...countBy(replies.map((r) => r.outcome))].map(([k, n]) => `${k} ×${n}`).join(', ');

// =============================================================================================
// Storm 1: 100 different assignments submitted at once by one student
// =============================================================================================

export const SUBMISSION_STORM = { requests: 100, points: 100 } as const;

export interface SubmissionStormState {
  readonly studentId: ObjectId;
  readonly assignmentIds: readonly ObjectId[];
}

/** A new student and `requests` new assignments worth `points` each, due in a week. */
export async function setupSubmissionStorm(
  db: Db,
  requests: number = SUBMISSION_STORM.requests,
): Promise<SubmissionStormState> {
  const { students, assignments } = collections(db);
  const studentId = new ObjectId();
  await students.insertOne({ ...freshStudent('Storm'), _id: studentId });
  const dueDate = new Date(Date.now() + 7 * 24 * 60 * 60 * 1000);
  const list: Assignment[] = Array.from({ length: requests }, (_, i) => ({
    _id: new ObjectId(),
    title: `Storm assignment ${i + 1}`,
    points: SUBMISSION_STORM.points,
    dueDate,
  }));
  await assignments.insertMany(list);
  return { studentId, assignmentIds: list.map((a) => a._id) };
}

/** Request `i` of the storm: submits assignment `i`. */
export function submitOne(base: string, state: SubmissionStormState, i: number): Promise<Replied> {
  const assignmentId = state.assignmentIds[i];
  if (assignmentId === undefined) throw new RangeError(`no assignment ${i}`);
  return postJson(base, `/students/${state.studentId.toHexString()}/submissions`, {
    assignmentId: assignmentId.toHexString(),
  });
}

export interface SubmissionStormSummary {
  readonly violations: string[];
  /** For the demo's table, e.g. "xp=100, level=1, level-ups reported=100". */
  readonly finalState: string;
}

/**
 * Checks the database after the submission storm against the invariant and against the
 * responses. `failed` counts requests that threw (no HTTP answer at all).
 */
export async function checkSubmissionStorm(
  db: Db,
  state: SubmissionStormState,
  replies: readonly Replied[],
  failed = 0,
): Promise<SubmissionStormSummary> {
  const { students, submissions } = collections(db);
  const violations: string[] = [];
  const requests = state.assignmentIds.length;
  if (failed > 0) violations.push(`${failed} requests got no HTTP answer`);
  const created = replies.filter((r) => r.status === 201);
  if (created.length !== requests) {
    violations.push(
      `${created.length} of ${requests} submissions got 201 (${describeAnswers(replies)})`,
    );
  }

  const student = await students.findOne({ _id: state.studentId });
  if (student === null)
    return { violations: ['the student disappeared'], finalState: 'no student' };
  const awarded = created.reduce((sum, r) => sum + Number(r.body.xpAwarded), 0);
  const expectedXp = requests * SUBMISSION_STORM.points;
  if (student.xp !== expectedXp) {
    violations.push(
      `xp is ${student.xp}, expected ${requests} × ${SUBMISSION_STORM.points} = ${expectedXp}`,
    );
  }
  if (student.xp !== awarded)
    violations.push(`xp is ${student.xp} but the 201s awarded ${awarded}`);
  if (student.auraPoints !== awarded) {
    violations.push(`auraPoints is ${student.auraPoints} but the 201s awarded ${awarded}`);
  }
  if (student.level !== levelFor(student.xp)) {
    violations.push(
      `level is ${student.level}, but ${student.xp} XP gives level ${levelFor(student.xp)}`,
    );
  }

  // Every level reached, reported exactly once across all responses.
  const levelReports = countBy(
    created.flatMap((r) => (r.body.levelsGained as number[]).map(String)),
  );
  for (let level = 1; level <= student.level; level += 1) {
    const times = levelReports.get(String(level)) ?? 0;
    if (times !== 1) violations.push(`level ${level} was reported ${times} times`);
  }
  for (const [level, times] of levelReports) {
    if (Number(level) > student.level)
      violations.push(`level ${level} reported ${times}× but never reached`);
  }

  // Every badge due for `requests` submissions held, and reported exactly once.
  const badgeReports = countBy(created.flatMap((r) => r.body.badgesEarned as string[]));
  const due = SUBMISSION_BADGES.filter((rule) => rule.atLeast <= requests).map(
    (rule) => rule.badge,
  );
  if (!isDeepStrictEqual(student.badges, due)) {
    violations.push(
      `badges are ${JSON.stringify(student.badges)}, expected ${JSON.stringify(due)}`,
    );
  }
  for (const badge of new Set([...due, ...badgeReports.keys()])) {
    const times = badgeReports.get(badge) ?? 0;
    if (times !== 1) violations.push(`badge ${badge} was reported ${times} times`);
  }

  // The records are what the responses said: one per 201, each with its response's award.
  const records = await submissions.find({ studentId: state.studentId }).toArray();
  if (records.length !== created.length || student.submissions !== created.length) {
    violations.push(
      `${records.length} submission records, student.submissions ${student.submissions}, ${created.length} 201s`,
    );
  }
  const byId = new Map(records.map((record) => [record._id.toHexString(), record]));
  let mismatched = 0;
  for (const reply of created) {
    const record = byId.get(reply.body.submission.id);
    const said = {
      xpAwarded: reply.body.xpAwarded,
      levelsGained: reply.body.levelsGained,
      badgesEarned: reply.body.badgesEarned,
    };
    const stored = record && {
      xpAwarded: record.xpAwarded,
      levelsGained: record.levelsGained,
      badgesEarned: record.badgesEarned,
    };
    if (!isDeepStrictEqual(said, stored)) mismatched += 1;
  }
  if (mismatched > 0) violations.push(`${mismatched} 201s disagree with their submission record`);

  const reportedLevelUps = [...levelReports.values()].reduce((a, b) => a + b, 0);
  return {
    violations,
    finalState: `xp=${student.xp}, level=${student.level}, level-ups reported=${reportedLevelUps}`,
  };
}

// =============================================================================================
// Storm 2: one pomodoro session finished 50 times at once (same opId)
// =============================================================================================

export const POMODORO_STORM = {
  requests: 50,
  minutes: 25,
  opId: 'focus-2024-05-01T09-00',
} as const;

export interface PomodoroStormState {
  readonly studentId: ObjectId;
}

export async function setupPomodoroStorm(db: Db): Promise<PomodoroStormState> {
  const studentId = new ObjectId();
  await collections(db).students.insertOne({ ...freshStudent('Clicker'), _id: studentId });
  return { studentId };
}

/** One click (or retry) of "finish session": always the same opId and minutes. */
export function finishOne(base: string, state: PomodoroStormState): Promise<Replied> {
  return postJson(base, `/students/${state.studentId.toHexString()}/pomodoros`, {
    opId: POMODORO_STORM.opId,
    minutes: POMODORO_STORM.minutes,
  });
}

export async function checkPomodoroStorm(
  db: Db,
  state: PomodoroStormState,
  replies: readonly Replied[],
  failed = 0,
): Promise<{ violations: string[]; finalState: string }> {
  const { students, pomodoros } = collections(db);
  const { minutes, opId } = POMODORO_STORM;
  const violations: string[] = [];
  if (failed > 0) violations.push(`${failed} requests got no HTTP answer`);
  const created = replies.filter((r) => r.status === 201);
  const repeats = replies.filter((r) => r.status === 200 && r.body.repeat === true);
  if (created.length !== 1 || repeats.length !== replies.length - 1) {
    violations.push(`expected one 201 and only 200 repeats, got ${describeAnswers(replies)}`);
  }
  const [first] = created;
  if (first !== undefined) {
    const { repeat: _r, ...firstBody } = first.body;
    const disagreeing = replies.filter((r) => {
      const { repeat: _repeat, ...body } = r.body;
      return !isDeepStrictEqual(body, firstBody);
    }).length;
    if (disagreeing > 0) violations.push(`${disagreeing} responses disagree with the 201's body`);
  }

  const student = await students.findOne({ _id: state.studentId });
  if (student === null)
    return { violations: ['the student disappeared'], finalState: 'no student' };
  if (
    student.xp !== minutes ||
    student.pomodoroSessions !== 1 ||
    student.pomodoroMinutes !== minutes
  ) {
    violations.push(
      `one ${minutes}-minute session awarded ${student.pomodoroSessions} times: xp ${student.xp}, ` +
        `${student.pomodoroMinutes} minutes (expected xp ${minutes}, 1 session)`,
    );
  }
  const records = await pomodoros.find({ '_id.studentId': state.studentId }).toArray();
  if (records.length !== 1 || records[0]?._id.opId !== opId) {
    violations.push(`${records.length} session records (expected 1)`);
  } else if (first !== undefined && records[0]?.xpAwarded !== first.body.xpAwarded) {
    violations.push('the session record disagrees with the 201');
  }
  return {
    violations,
    finalState: `xp=${student.xp}, sessions=${student.pomodoroSessions}, 201s=${created.length}`,
  };
}

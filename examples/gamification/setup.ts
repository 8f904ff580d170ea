/**
 * Startup for the gamification example: the indexes the app relies on, and a little sample
 * data. Safe to run twice (index creation is idempotent; samples are upserted by fixed ids).
 */
import { type Db, ObjectId } from 'mongodb';
import { collections, freshStudent } from './model.js';

/** Fixed ids, so the README's curl lines work on every fresh start. */
export const SAMPLE = {
  students: {
    ada: new ObjectId('65f000000000000000000a01'),
    linus: new ObjectId('65f000000000000000000a02'),
  },
  assignments: {
    essay: new ObjectId('65f000000000000000000b01'),
    lab: new ObjectId('65f000000000000000000b02'),
    lateQuiz: new ObjectId('65f000000000000000000b03'),
  },
} as const;

export interface Prepared {
  readonly studentId: string;
  readonly assignmentId: string;
}

export async function prepare(db: Db): Promise<Prepared> {
  const { students, assignments, submissions } = collections(db);

  // One record per (student, assignment): the app upserts the record by these two fields, and
  // two concurrent upserts of a missing document would otherwise both insert. With the unique
  // index the server retries the loser as an update (equality filter on exactly the index's
  // fields), so it finds the winner's record and `$setOnInsert` leaves it as it is.
  await submissions.createIndex(
    { studentId: 1, assignmentId: 1 },
    { unique: true, name: 'one_submission_per_assignment' },
  );
  // Pomodoro sessions need no extra index: their `_id` is { studentId, opId }, unique already.
  // The leaderboard's sort, served from an index instead of sorting every student.
  await students.createIndex({ level: -1, xp: -1, _id: 1 }, { name: 'leaderboard' });

  const day = 24 * 60 * 60 * 1000;
  const samples = [
    { _id: SAMPLE.assignments.essay, title: 'Essay: the CAP theorem', points: 120, due: 30 * day },
    { _id: SAMPLE.assignments.lab, title: 'Lab: indexes', points: 80, due: 30 * day },
    {
      _id: SAMPLE.assignments.lateQuiz,
      title: 'Quiz: transactions (past due)',
      points: 50,
      due: -day,
    },
  ];
  for (const { _id, title, points, due } of samples) {
    await assignments.updateOne(
      { _id },
      { $setOnInsert: { title, points, dueDate: new Date(Date.now() + due) } },
      { upsert: true },
    );
  }
  for (const [name, _id] of [
    ['Ada', SAMPLE.students.ada],
    ['Linus', SAMPLE.students.linus],
  ] as const) {
    const { _id: _ignored, ...fields } = freshStudent(name);
    await students.updateOne({ _id }, { $setOnInsert: fields }, { upsert: true });
  }
  return {
    studentId: SAMPLE.students.ada.toHexString(),
    assignmentId: SAMPLE.assignments.essay.toHexString(),
  };
}

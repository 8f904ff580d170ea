/**
 * Snapshot reads outside transactions: `readConcern: { level: 'snapshot' }`, with or without
 * `atClusterTime`.
 *
 * Sources: MongoDB manual, reference/read-concern-snapshot ("Outside of multi-document
 * transactions, read concern "snapshot" is available on primaries and secondaries for" find,
 * aggregate and distinct; "All other read commands prohibit "snapshot""; "Read Concern and
 * atClusterTime"; the history kept is minSnapshotHistoryWindowInSeconds);
 * mongodb/specifications source/sessions/snapshot-sessions.md (the first read of a snapshot
 * session sends `level: 'snapshot'` alone and saves `atClusterTime` from the reply, the cursor's
 * for find/aggregate, the top-level one for distinct; later reads send it back);
 * server jstests/libs/global_snapshot_reads_util.js (cursor.atClusterTime in find/aggregate and
 * getMore replies, atClusterTime = an insert's operationTime reads the data as of that insert,
 * plain reads carry no atClusterTime), src/mongo/db/read_concern_mongod.cpp (atClusterTime
 * ahead of the cluster time: InvalidOptions), the count command's supportsReadConcern
 * ("read concern snapshot not supported", InvalidOptions), WiredTiger's SnapshotTooOld (239)
 * for a read timestamp older than the history kept.
 */
import {
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Document,
  Timestamp,
} from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('snapshot_reads');
const sent: CommandStartedEvent[] = [];
const replies: CommandSucceededEvent[] = [];

beforeAll(() => {
  t.client.on('commandStarted', (event) => sent.push(event));
  t.client.on('commandSucceeded', (event) => replies.push(event));
});

function reset(): void {
  sent.length = 0;
  replies.length = 0;
}

function compare(a: Timestamp, b: Timestamp): number {
  return a.t !== b.t ? a.t - b.t : a.i - b.i;
}

const SNAPSHOT = { level: 'snapshot' } as const;

/** A fresh collection holding `_id` 0..count-1 with `v: 'old'`; resolves to it and the insert's time. */
async function seeded(prefix: string, count: number) {
  const name = t.uniqueName(prefix);
  const documents = Array.from({ length: count }, (_, i) => ({ _id: i, v: 'old' }));
  const reply = await t.db.command({ insert: name, documents });
  return { name, insertTime: reply.operationTime as Timestamp };
}

async function updateAll(name: string): Promise<Timestamp> {
  const reply = await t.db.command({
    update: name,
    updates: [{ q: {}, u: { $set: { v: 'new' } }, multi: true }],
  });
  return reply.operationTime as Timestamp;
}

describe('snapshot reads with the driver (snapshot sessions)', () => {
  it('the first read sends level snapshot alone; later reads send its atClusterTime and keep seeing that snapshot', async () => {
    const { name } = await seeded('session', 3);
    const coll = t.db.collection<Doc>(name);
    const session = t.client.startSession({ snapshot: true });
    try {
      reset();
      expect(await coll.find({}, { session }).sort({ _id: 1 }).toArray()).toEqual([
        { _id: 0, v: 'old' },
        { _id: 1, v: 'old' },
        { _id: 2, v: 'old' },
      ]);
      const first = sent.find((event) => event.commandName === 'find')!.command;
      expect(first.readConcern).toEqual(SNAPSHOT);
      const atClusterTime = (
        replies.find((event) => event.commandName === 'find')!.reply as Document
      ).cursor.atClusterTime as Timestamp;
      expect(atClusterTime).toBeInstanceOf(Timestamp);

      await updateAll(name);

      reset();
      const again = await coll.find({}, { session }).sort({ _id: 1 }).toArray();
      expect(again.map((doc) => doc.v)).toEqual(['old', 'old', 'old']);
      expect(await coll.distinct('v', {}, { session })).toEqual(['old']);
      const counted = await coll
        .aggregate([{ $group: { _id: '$v', n: { $sum: 1 } } }], { session })
        .toArray();
      expect(counted).toEqual([{ _id: 'old', n: 3 }]);
      for (const event of sent.filter((e) =>
        ['find', 'distinct', 'aggregate'].includes(e.commandName),
      )) {
        expect(event.command.readConcern.level).toBe('snapshot');
        expect(compare(event.command.readConcern.atClusterTime, atClusterTime)).toBe(0);
      }
      // Outside the session the update is visible.
      expect(await coll.distinct('v')).toEqual(['new']);
    } finally {
      await session.endSession();
    }
  });

  it('distinct as the first read of a snapshot session: the driver takes atClusterTime from the top-level field', async () => {
    const { name } = await seeded('distinct_first', 2);
    const coll = t.db.collection<Doc>(name);
    const session = t.client.startSession({ snapshot: true });
    try {
      reset();
      expect(await coll.distinct('v', {}, { session })).toEqual(['old']);
      const reply = replies.find((event) => event.commandName === 'distinct')!.reply as Document;
      expect(reply.atClusterTime).toBeInstanceOf(Timestamp);
      await updateAll(name);
      reset();
      expect(await coll.find({}, { session }).toArray()).toHaveLength(2);
      const find = sent.find((event) => event.commandName === 'find')!.command;
      expect(compare(find.readConcern.atClusterTime, reply.atClusterTime)).toBe(0);
      expect(await coll.distinct('v', {}, { session })).toEqual(['old']);
    } finally {
      await session.endSession();
    }
  });
});

describe('snapshot reads as commands', () => {
  it('find and aggregate report cursor.atClusterTime; getMore continues on the same snapshot and repeats it', async () => {
    for (const command of ['find', 'aggregate'] as const) {
      const { name, insertTime } = await seeded(`cursor_${command}`, 10);
      const opened =
        command === 'find'
          ? await t.db.command({
              find: name,
              sort: { _id: 1 },
              batchSize: 5,
              readConcern: SNAPSHOT,
            })
          : await t.db.command({
              aggregate: name,
              pipeline: [{ $sort: { _id: 1 } }],
              cursor: { batchSize: 5 },
              readConcern: SNAPSHOT,
            });
      const atClusterTime = opened.cursor.atClusterTime as Timestamp;
      expect(atClusterTime).toBeInstanceOf(Timestamp);
      expect(compare(atClusterTime, insertTime)).toBeGreaterThanOrEqual(0);
      expect(opened.cursor.firstBatch.map((doc: Doc) => doc.v)).toEqual(Array(5).fill('old'));

      await updateAll(name);

      const more = await t.db.command({ getMore: opened.cursor.id, collection: name });
      expect(more.cursor.nextBatch).toEqual(
        Array.from({ length: 5 }, (_, i) => ({ _id: i + 5, v: 'old' })),
      );
      expect(compare(more.cursor.atClusterTime, atClusterTime)).toBe(0);
    }
  });

  it('atClusterTime = an earlier write operationTime reads the data as of that write', async () => {
    const { name, insertTime } = await seeded('at_time', 3);
    const updateTime = await updateAll(name);
    expect(compare(updateTime, insertTime)).toBeGreaterThan(0);

    const before = await t.db.command({
      find: name,
      sort: { _id: 1 },
      readConcern: { ...SNAPSHOT, atClusterTime: insertTime },
    });
    expect(before.cursor.firstBatch.map((doc: Doc) => doc.v)).toEqual(['old', 'old', 'old']);
    expect(compare(before.cursor.atClusterTime, insertTime)).toBe(0);

    const after = await t.db.command({
      aggregate: name,
      pipeline: [{ $group: { _id: '$v', n: { $sum: 1 } } }],
      cursor: {},
      readConcern: { ...SNAPSHOT, atClusterTime: updateTime },
    });
    expect(after.cursor.firstBatch).toEqual([{ _id: 'new', n: 3 }]);

    const distinct = await t.db.command({
      distinct: name,
      key: 'v',
      readConcern: { ...SNAPSHOT, atClusterTime: insertTime },
    });
    expect(distinct.values).toEqual(['old']);
    expect(compare(distinct.atClusterTime, insertTime)).toBe(0);

    // A document inserted after updateTime is not part of that snapshot.
    await t.db.command({ insert: name, documents: [{ _id: 99, v: 'later' }] });
    const atUpdate = await t.db.command({
      find: name,
      readConcern: { ...SNAPSHOT, atClusterTime: updateTime },
    });
    expect(atUpdate.cursor.firstBatch.map((doc: Doc) => doc._id).sort()).toEqual([0, 1, 2]);
  });

  it('only snapshot reads carry atClusterTime: a plain or majority read of the same collection has none', async () => {
    const { name } = await seeded('plain', 1);
    const snapshot = await t.db.command({ distinct: name, key: '_id', readConcern: SNAPSHOT });
    expect(snapshot.atClusterTime).toBeInstanceOf(Timestamp);
    const find = await t.db.command({ find: name });
    expect(Object.hasOwn(find.cursor, 'atClusterTime')).toBe(false);
    const distinct = await t.db.command({ distinct: name, key: '_id' });
    expect(Object.hasOwn(distinct, 'atClusterTime')).toBe(false);
    const majority = await t.db.command({ find: name, readConcern: { level: 'majority' } });
    expect(Object.hasOwn(majority.cursor, 'atClusterTime')).toBe(false);
  });
});

describe('what mongod refuses', () => {
  it('count with read concern snapshot outside a transaction: InvalidOptions (72)', async () => {
    const { name } = await seeded('count', 1);
    const error = await serverError(t.db.command({ count: name, readConcern: SNAPSHOT }));
    expect(error.code).toBe(72);
    expect(error.codeName).toBe('InvalidOptions');
    expect(error.message).toContain('read concern snapshot not supported');
  });

  it('atClusterTime without level snapshot: InvalidOptions (72)', async () => {
    const { name, insertTime } = await seeded('no_level', 1);
    const error = await serverError(
      t.db.command({ find: name, readConcern: { level: 'majority', atClusterTime: insertTime } }),
    );
    expect(error.code).toBe(72);
    expect(error.codeName).toBe('InvalidOptions');
    expect(error.message).toContain(
      'atClusterTime field can be set only if level is equal to snapshot',
    );
  });

  it('an atClusterTime ahead of the cluster time: InvalidOptions (72)', async () => {
    const { name, insertTime } = await seeded('future', 1);
    const future = new Timestamp({ t: insertTime.t + 24 * 3600, i: 1 });
    const error = await serverError(
      t.db.command({ find: name, readConcern: { ...SNAPSHOT, atClusterTime: future } }),
    );
    expect(error.code).toBe(72);
    expect(error.codeName).toBe('InvalidOptions');
    expect(error.message).toContain(
      'readConcern atClusterTime value must not be greater than the current clusterTime',
    );
  });

  // Manual, reference/parameters: minSnapshotHistoryWindowInSeconds, default 300.
  it('the history kept for snapshot reads is minSnapshotHistoryWindowInSeconds, 300 s by default', async () => {
    const reply = await t.client
      .db('admin')
      .command({ getParameter: 1, minSnapshotHistoryWindowInSeconds: 1 });
    expect(reply.minSnapshotHistoryWindowInSeconds).toBe(300);
  });

  it('an atClusterTime older than the history kept: SnapshotTooOld (239)', async () => {
    const { name } = await seeded('too_old', 1);
    const error = await serverError(
      t.db.command({
        find: name,
        readConcern: { ...SNAPSHOT, atClusterTime: new Timestamp({ t: 1, i: 1 }) },
      }),
    );
    expect(error.code).toBe(239);
    expect(error.codeName).toBe('SnapshotTooOld');
  });
});

/**
 * Cluster time, operation time and causally consistent sessions on a replica set member.
 *
 * Sources: mongodb/specifications source/sessions/driver-sessions.md ("Gossipping the cluster
 * time": servers that support it send `$clusterTime` in every reply, the driver sends the
 * highest one it has seen), source/causal-consistency/causal-consistency.md (operationTime in
 * replies; the first read of a causally consistent session sends no afterClusterTime, later
 * reads send `readConcern.afterClusterTime` = the session's operationTime); server
 * src/mongo/db/service_entry_point_common.cpp (appendClusterAndOperationTime on success and
 * on error; computeOperationTime: the last write's optime for a write, the last applied optime
 * for a read), src/mongo/db/vector_clock.cpp (a replica set member without keys signs with a
 * zero hash and keyId 0; an unsigned `$clusterTime` is accepted when auth is off),
 * src/mongo/db/repl/read_concern_args.cpp and src/mongo/db/read_concern_mongod.cpp
 * (afterClusterTime rules). The mongod this suite runs against has no keyFile (README).
 */
import {
  Binary,
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Document,
  Long,
  MongoServerError,
  Timestamp,
} from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('cluster_time');
const succeeded: CommandSucceededEvent[] = [];
/** Every command sent, `ping` and `hello` included (the shared log leaves those out). */
const sentLog: CommandStartedEvent[] = [];

beforeAll(() => {
  t.client.on('commandSucceeded', (event) => succeeded.push(event));
  t.client.on('commandStarted', (event) => sentLog.push(event));
});

function compare(a: Timestamp, b: Timestamp): number {
  return a.t !== b.t ? a.t - b.t : a.i - b.i;
}

/** Asserts the shape of `$clusterTime` and `operationTime` in a reply (or error), returns them. */
function stamped(reply: Document): { clusterTime: Timestamp; operationTime: Timestamp } {
  expect(reply.operationTime).toBeInstanceOf(Timestamp);
  const gossip = reply.$clusterTime as Document;
  expect(gossip.clusterTime).toBeInstanceOf(Timestamp);
  // Without signing keys mongod sends a dummy signature: 20 zero bytes, keyId 0.
  const hash = gossip.signature.hash as Binary;
  expect(hash).toBeInstanceOf(Binary);
  expect(Buffer.from(hash.buffer)).toEqual(Buffer.alloc(20));
  expect(Long.fromValue(gossip.signature.keyId).isZero()).toBe(true);
  // The operation time never runs ahead of the cluster time.
  expect(compare(reply.operationTime, gossip.clusterTime)).toBeLessThanOrEqual(0);
  return { clusterTime: gossip.clusterTime, operationTime: reply.operationTime };
}

function started(name: string): CommandStartedEvent[] {
  return sentLog.filter((event) => event.commandName === name);
}

function reset(): void {
  sentLog.length = 0;
  succeeded.length = 0;
}

describe('$clusterTime and operationTime in replies', () => {
  it('ping, hello and a data command reply with $clusterTime (dummy signature) and operationTime', async () => {
    stamped(await t.client.db('admin').command({ ping: 1 }));
    stamped(await t.client.db('admin').command({ hello: 1 }));
    stamped(await t.db.command({ find: t.uniqueName('none'), filter: {} }));
  });

  it('an error reply carries them too', async () => {
    const error = await serverError(t.db.command({ find: 1 }));
    expect(error).toBeInstanceOf(MongoServerError);
    stamped(error as unknown as Document);
  });

  it('each write gets a new, higher operationTime; a read after it reports at least that time', async () => {
    const name = t.uniqueName('writes');
    const first = stamped(await t.db.command({ insert: name, documents: [{ _id: 1 }] }));
    const second = stamped(await t.db.command({ insert: name, documents: [{ _id: 2 }] }));
    expect(compare(second.operationTime, first.operationTime)).toBeGreaterThan(0);
    const update = stamped(
      await t.db.command({ update: name, updates: [{ q: { _id: 1 }, u: { $set: { a: 1 } } }] }),
    );
    expect(compare(update.operationTime, second.operationTime)).toBeGreaterThan(0);
    const read = stamped(await t.db.command({ find: name, filter: {} }));
    expect(compare(read.operationTime, update.operationTime)).toBeGreaterThanOrEqual(0);
    expect(compare(read.clusterTime, update.operationTime)).toBeGreaterThanOrEqual(0);
  });

  it('the driver gossips the cluster time back, and the server never answers with a lower one', async () => {
    const before = stamped(await t.client.db('admin').command({ ping: 1 }));
    reset();
    const after = stamped(await t.client.db('admin').command({ ping: 1 }));
    const sent = started('ping')[0]!.command.$clusterTime as Document;
    expect(compare(sent.clusterTime, before.clusterTime)).toBeGreaterThanOrEqual(0);
    expect(compare(after.clusterTime, sent.clusterTime)).toBeGreaterThanOrEqual(0);
  });

  it('a later $clusterTime sent by a client advances the server cluster time (no auth: unsigned is accepted)', async () => {
    const now = stamped(await t.client.db('admin').command({ ping: 1 }));
    const ahead = new Timestamp({ t: now.clusterTime.t + 5, i: 7 });
    const session = t.client.startSession();
    try {
      session.advanceClusterTime({
        clusterTime: ahead,
        signature: { hash: new Binary(Buffer.alloc(20), 0), keyId: Long.ZERO },
      });
      reset();
      const reply = stamped(await t.client.db('admin').command({ ping: 1 }, { session }));
      const sent = started('ping')[0]!.command.$clusterTime as Document;
      expect(compare(sent.clusterTime, ahead)).toBe(0);
      expect(compare(reply.clusterTime, ahead)).toBeGreaterThanOrEqual(0);
      // Every later reply, on any session, is at least as late.
      const later = stamped(await t.db.command({ find: t.uniqueName('none'), filter: {} }));
      expect(compare(later.clusterTime, ahead)).toBeGreaterThanOrEqual(0);
    } finally {
      await session.endSession();
    }
  });
});

describe('causally consistent sessions', () => {
  // causal-consistency.md test plan: the first read sends no afterClusterTime; a read after a
  // write sends the write's operationTime; the server honours it.
  it('a read after a write in the session sends afterClusterTime = the write operationTime and sees the write', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('causal'));
    await coll.insertOne({ _id: 'seed' });
    const session = t.client.startSession({ causalConsistency: true });
    try {
      reset();
      await coll.findOne({ _id: 'seed' }, { session });
      expect(started('find')[0]!.command.readConcern?.afterClusterTime).toBeUndefined();

      await coll.updateOne({ _id: 'seed' }, { $set: { v: 1 } }, { session });
      const written = succeeded.filter((event) => event.commandName === 'update').at(-1)!
        .reply as Document;
      const writeTime = stamped(written).operationTime;
      expect(compare(session.operationTime!, writeTime)).toBe(0);

      reset();
      const doc = await coll.findOne({ _id: 'seed' }, { session });
      expect(doc).toEqual({ _id: 'seed', v: 1 });
      const sent = started('find')[0]!.command.readConcern as Document;
      expect(compare(sent.afterClusterTime, writeTime)).toBe(0);
    } finally {
      await session.endSession();
    }
  });

  it('afterClusterTime at the current cluster time is served; every read level but available/linearizable takes it', async () => {
    const name = t.uniqueName('after');
    const write = stamped(await t.db.command({ insert: name, documents: [{ _id: 1 }] }));
    for (const level of [undefined, 'local', 'majority', 'snapshot']) {
      const readConcern = {
        ...(level === undefined ? {} : { level }),
        afterClusterTime: write.operationTime,
      };
      const reply = await t.db.command({ find: name, filter: {}, readConcern });
      expect(reply.cursor.firstBatch).toEqual([{ _id: 1 }]);
    }
  });

  // read_concern_mongod.cpp: "readConcern afterClusterTime value must not be greater than the
  // current clusterTime" (InvalidOptions) rather than waiting for a time that may never come.
  it('an afterClusterTime ahead of the cluster time is refused with InvalidOptions (72)', async () => {
    const now = stamped(await t.client.db('admin').command({ ping: 1 }));
    const future = new Timestamp({ t: now.clusterTime.t + 24 * 3600, i: 1 });
    const error = await serverError(
      t.db.command({
        find: t.uniqueName('future'),
        filter: {},
        readConcern: { afterClusterTime: future },
      }),
    );
    expect(error.code).toBe(72);
    expect(error.codeName).toBe('InvalidOptions');
    expect(error.message).toContain(
      'readConcern afterClusterTime value must not be greater than the current clusterTime',
    );
  });

  // read_concern_args.cpp: afterClusterTime only with level majority, local or snapshot.
  it.each(['available', 'linearizable'])(
    'afterClusterTime with level %s is refused with InvalidOptions (72)',
    async (level) => {
      const now = stamped(await t.client.db('admin').command({ ping: 1 }));
      const error = await serverError(
        t.db.command({
          find: t.uniqueName('level'),
          filter: {},
          readConcern: { level, afterClusterTime: now.operationTime },
        }),
      );
      expect(error.code).toBe(72);
      expect(error.codeName).toBe('InvalidOptions');
      expect(error.message).toContain(
        'afterClusterTime field can be set only if level is equal to',
      );
    },
  );

  it('afterClusterTime together with atClusterTime is refused with InvalidOptions (72)', async () => {
    const now = stamped(await t.client.db('admin').command({ ping: 1 }));
    const error = await serverError(
      t.db.command({
        find: t.uniqueName('both'),
        filter: {},
        readConcern: {
          level: 'snapshot',
          afterClusterTime: now.operationTime,
          atClusterTime: now.operationTime,
        },
      }),
    );
    expect(error.code).toBe(72);
    expect(error.codeName).toBe('InvalidOptions');
  });
});

/**
 * A standalone mongod (no --replSet): no transactions, no retryable writes.
 *
 * Sources: MongoDB manual core/transactions ("transactions … require a replica set or sharded
 * cluster"); server src/mongo/db/service_entry_point_common.cpp, which rejects a txnNumber on a
 * standalone with IllegalOperation (20) "Transaction numbers are only allowed on a replica set
 * member or mongos" (quoted in ../shared/MONGODB.md).
 *
 * The standalone is a mongodb-memory-server mongod when that is the run's backend, else the
 * offline server in standalone mode (a MONGODB_URI backend cannot provide a standalone).
 */
import { MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedMongo, startStandalone } from '../../offline-server/src/embedded.js';
import { backendKind } from '../support/mongo.js';

let standalone: EmbeddedMongo;
let client: MongoClient;

beforeAll(async () => {
  standalone = await startStandalone(backendKind() === 'memory-server');
  client = new MongoClient(standalone.uri, { monitorCommands: true });
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await standalone?.stop();
});

describe(`standalone server (${process.env.MONGO_ATOMICS_TEST_BACKEND ?? 'per backend'})`, () => {
  it('hello names no replica set', async () => {
    const hello = await client.db('admin').command({ hello: 1 });
    expect(hello.isWritablePrimary).toBe(true);
    expect(hello.setName).toBeUndefined();
  });

  it('plain writes work without transactions', async () => {
    const coll = client.db('ma_standalone').collection<{ _id: number; n: number }>('c');
    await coll.insertOne({ _id: 1, n: 0 });
    await coll.updateOne({ _id: 1 }, { $inc: { n: 1 } });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 1 });
    await client.db('ma_standalone').dropDatabase();
  });

  // What the server answers, read from command monitoring: driver 7 rewrites this error into
  // "This MongoDB deployment does not support retryable writes…" before the caller sees it.
  it('a transaction is refused with IllegalOperation (20): transaction numbers need a replica set', async () => {
    const failures = new Map<string, unknown>();
    const onFailed = (event: { commandName: string; failure: unknown }) =>
      failures.set(event.commandName, event.failure);
    client.on('commandFailed', onFailed);
    const session = client.startSession();
    try {
      session.startTransaction();
      const error = await client
        .db('ma_standalone')
        .collection('c')
        .insertOne({ x: 1 }, { session })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(MongoServerError);
      await session.abortTransaction().catch(() => {});
    } finally {
      client.off('commandFailed', onFailed);
      await session.endSession();
    }
    const reply = failures.get('insert') as MongoServerError;
    expect(reply.code).toBe(20);
    expect(reply.codeName).toBe('IllegalOperation');
    expect(reply.message).toMatch(
      /Transaction numbers are only allowed on a replica set member or mongos/,
    );
  });

  // service_entry_point_common.cpp computes operationTime and gossips $clusterTime only on a
  // replica set member; read_concern_mongod.cpp refuses snapshot reads on a standalone.
  it('replies carry no $clusterTime or operationTime, and read concern snapshot is NotAReplicaSet (123)', async () => {
    const db = client.db('ma_standalone_clock');
    const reply = await db.command({ insert: 'c', documents: [{ _id: 1 }] });
    expect(reply.$clusterTime).toBeUndefined();
    expect(reply.operationTime).toBeUndefined();
    const error = await db.command({ find: 'c', readConcern: { level: 'snapshot' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(123);
    expect((error as MongoServerError).codeName).toBe('NotAReplicaSet');
    await db.dropDatabase();
  });
});

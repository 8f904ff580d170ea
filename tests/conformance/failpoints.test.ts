/**
 * The `failCommand` fail point (configureFailPoint, sent to admin; needs enableTestCommands=1).
 *
 * Sources: mongodb/specifications source/transactions/tests/README.md ("Server Fail Point":
 * failCommands, errorCode, errorLabels, closeConnection, blockConnection/blockTimeMS,
 * writeConcernError, appName; modes times/skip/alwaysOn/off); server jstest
 * jstests/core/failcommand_failpoint.js (times and skip only count listed commands,
 * closeConnection, writeConcernError applies the write and adds the error, errorLabels
 * override, appName scoping); mongodb/mongo wiki "The failCommand fail point";
 * server src/mongo/db/error_labels.cpp (labels computed as usual when errorLabels is absent).
 *
 * Every fail point here is scoped to a dedicated client's appName, and the conformance files
 * that touch failCommand take a cross-process lock, so parallel test files cannot trip over
 * each other's fail points.
 */
import {
  type MongoClientOptions,
  MongoNetworkError,
  MongoServerError,
  MongoWriteConcernError,
} from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { failCommand, useFailPointClients } from '../support/failpoints.js';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, rejectionOf, serverError } from './helpers.js';

const t = useTestDatabase('failpoints');
let collName = '';
const failPoints = useFailPointClients(() => t.db, 'fp');

beforeAll(async () => {
  collName = t.uniqueName('fp');
  await t.db.collection<Doc>(collName).insertMany([
    { _id: 1, n: 0 },
    { _id: 2, n: 0 },
  ]);
});

/** A dedicated client with its own appName, and this file's collection through it. */
async function appClient(options: MongoClientOptions = {}) {
  const handle = await failPoints.appClient(options);
  return { ...handle, coll: handle.client.db(t.db.databaseName).collection<Doc>(collName) };
}

describe('failCommand modes', () => {
  // failcommand_failpoint.js: { times: 1 } fails the next listed command once, with the given
  // code and exactly the given labels; commands not listed are not counted.
  it('{ times: 1 } with errorCode and errorLabels fails the next listed command once', async () => {
    const { appName, coll } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['update'],
        errorCode: 112,
        errorLabels: ['TransientTransactionError'],
        appName,
      },
    );
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ n: 0 });
    const error = await serverError(coll.updateOne({ _id: 1 }, { $inc: { n: 1 } }));
    expect(error.code).toBe(112);
    expect(error.errorLabels).toEqual(['TransientTransactionError']);
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ n: 0 });
    await coll.updateOne({ _id: 1 }, { $inc: { n: 1 } });
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ n: 1 });
    await coll.updateOne({ _id: 1 }, { $inc: { n: -1 } });
  });

  // failcommand_failpoint.js: { skip: 2 } lets two listed commands through, then fails.
  it('{ skip: 2 } lets the first two listed commands through and fails the third', async () => {
    const { appName, coll } = await appClient({ retryReads: false });
    await failCommand(t.db, { skip: 2 }, { failCommands: ['find'], errorCode: 2, appName });
    expect(await coll.findOne({ _id: 1 })).not.toBeNull();
    expect(await coll.findOne({ _id: 2 })).not.toBeNull();
    const error = await serverError(coll.findOne({ _id: 1 }));
    expect(error.code).toBe(2);
  });

  // alwaysOn fails every listed command until the fail point is turned off.
  it("'alwaysOn' fails every time until 'off'", async () => {
    const { appName, coll } = await appClient({ retryReads: false });
    await failCommand(t.db, 'alwaysOn', { failCommands: ['find'], errorCode: 2, appName });
    for (let i = 0; i < 3; i += 1) {
      expect((await serverError(coll.findOne({ _id: 1 }))).code).toBe(2);
    }
    await failCommand(t.db, 'off');
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ _id: 1 });
  });
});

describe('failCommand actions', () => {
  // failcommand_failpoint.js: closeConnection closes the socket instead of answering.
  it('closeConnection: the driver sees a network error (no retry for reads when disabled)', async () => {
    const { appName, coll } = await appClient({ retryReads: false });
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['find'], closeConnection: true, appName },
    );
    const error = await rejectionOf(coll.findOne({ _id: 1 }));
    expect(error).toBeInstanceOf(MongoNetworkError);
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ _id: 1 });
  });

  // retryable-writes spec: a network error on a retryable write is retried once, and the
  // closed attempt never ran, so the document is written exactly once.
  it('closeConnection on a retryable insert: the driver retries once and it succeeds', async () => {
    const { appName, coll, commands } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['insert'],
        closeConnection: true,
        appName,
      },
    );
    await coll.insertOne({ _id: 'net-retry' });
    expect(commands.names().filter((name) => name === 'insert')).toHaveLength(2);
    expect(await t.db.collection<Doc>(collName).countDocuments({ _id: 'net-retry' })).toBe(1);
  });

  // Transactions tests README: blockConnection + blockTimeMS delay the reply by blockTimeMS.
  it('blockConnection delays the reply by at least blockTimeMS, then answers normally', async () => {
    const { appName, coll } = await appClient();
    const blockTimeMS = 300;
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['find'],
        blockConnection: true,
        blockTimeMS,
        appName,
      },
    );
    const started = performance.now();
    const doc = await coll.findOne({ _id: 2 });
    const elapsed = performance.now() - started;
    expect(doc).toEqual({ _id: 2, n: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(blockTimeMS);
    const quick = performance.now();
    await coll.findOne({ _id: 2 });
    expect(performance.now() - quick).toBeLessThan(blockTimeMS);
  });

  // failcommand_failpoint.js: writeConcernError — the write is applied and the reply carries
  // the configured writeConcernError; the driver raises MongoWriteConcernError.
  it('writeConcernError: the write is applied and the driver raises MongoWriteConcernError', async () => {
    const { appName, coll } = await appClient();
    const writeConcernError = { code: 64, errmsg: 'waiting for replication timed out' };
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], writeConcernError, appName });
    const error = await rejectionOf(coll.insertOne({ _id: 'wce' }));
    expect(error).toBeInstanceOf(MongoWriteConcernError);
    expect(error).toBeInstanceOf(MongoServerError);
    const wce = error as MongoWriteConcernError;
    expect(wce.code).toBe(64);
    expect(wce.result?.writeConcernError).toMatchObject(writeConcernError);
    expect(await t.db.collection<Doc>(collName).countDocuments({ _id: 'wce' })).toBe(1);
  });
});

describe('failCommand scoping and labels', () => {
  // failcommand_failpoint.js: with appName, only connections from that application fail.
  it('appName scoping: only the client with that appName is affected', async () => {
    const target = await appClient({ retryReads: false });
    const bystander = await appClient({ retryReads: false });
    await failCommand(t.db, 'alwaysOn', {
      failCommands: ['find'],
      errorCode: 2,
      appName: target.appName,
    });
    expect((await serverError(target.coll.findOne({ _id: 1 }))).code).toBe(2);
    expect(await bystander.coll.findOne({ _id: 1 })).toMatchObject({ _id: 1 });
    expect(await t.db.collection<Doc>(collName).findOne({ _id: 1 })).toMatchObject({ _id: 1 });
    expect((await serverError(target.coll.findOne({ _id: 1 }))).code).toBe(2);
  });

  // Transactions tests README / error_labels.cpp: without errorLabels the server computes the
  // labels itself, so WriteConflict (112) inside a transaction is TransientTransactionError.
  it('112 injected inside a transaction without errorLabels is labelled TransientTransactionError', async () => {
    const { client, appName, coll } = await appClient();
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 112, appName });
    const session = client.startSession();
    try {
      session.startTransaction();
      await coll.findOne({ _id: 1 }, { session });
      const error = await serverError(coll.insertOne({ _id: 'in-txn' }, { session }));
      expect(error.code).toBe(112);
      expect(error.hasErrorLabel('TransientTransactionError')).toBe(true);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await t.db.collection<Doc>(collName).countDocuments({ _id: 'in-txn' })).toBe(0);
  });
});

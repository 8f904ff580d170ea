/**
 * Retryable writes: retried once by the driver, applied at most once by the server.
 *
 * Sources: mongodb/specifications source/retryable-writes/retryable-writes.md (lsid + txnNumber
 * give "at-most-once semantics"; retry once on a network error or a RetryableWriteError label;
 * 4.4+ servers attach RetryableWriteError themselves), MongoDB manual core/retryable-writes
 * (retryable error codes include ShutdownInProgress 91); server jstest
 * jstests/core/failcommand_failpoint.js ("This normally fails with RetryableWriteError label"
 * for an insert carrying txnNumber); server src/mongo/db/error_labels.cpp.
 *
 * A retried findAndModify is answered from the stored image of its first execution, and
 * `fields` (the projection) is NOT applied to it: server src/mongo/db/ops/write_ops_retryability.cpp
 * (parseOplogEntryForFindAndModify builds `value` from the stored pre- or post-image and
 * `lastErrorObject` from the oplog entry; nothing there projects) and SERVER-44151. mongod 6.0+
 * also adds `retriedStmtId` (find_and_modify.cpp); it is not asserted here, older servers omit it.
 */
import { type Db, type Document, Long, type MongoClientOptions } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { failCommand, retryNextWrite, useFailPointClients } from '../support/failpoints.js';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError } from './helpers.js';

const t = useTestDatabase('retryable_writes');
const failPoints = useFailPointClients(() => t.db, 'rw');

/** A fail point client that also records each failed command's labels. */
async function appClient(options: MongoClientOptions = {}) {
  const handle = await failPoints.appClient(options);
  const failures: { commandName: string; labels: string[] }[] = [];
  handle.client.on('commandFailed', (event) => {
    const failure = event.failure as Error & { errorLabels?: string[] };
    failures.push({ commandName: event.commandName, labels: [...(failure.errorLabels ?? [])] });
  });
  return { ...handle, failures };
}

async function counter(name: string) {
  const coll = t.db.collection<Doc>(name);
  await coll.insertOne({ _id: 'c', n: 0 });
  return coll;
}

describe('retryable writes', () => {
  // retryable-writes spec: a network error on the first attempt → one retry with the same
  // lsid and txnNumber; the $inc is applied exactly once.
  it('an update whose first attempt hits closeConnection is retried and applied exactly once', async () => {
    const name = t.uniqueName('net');
    const coll = await counter(name);
    const { client, appName, commands } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['update'],
        closeConnection: true,
        appName,
      },
    );
    const result = await client
      .db(t.db.databaseName)
      .collection<Doc>(name)
      .updateOne({ _id: 'c' }, { $inc: { n: 1 } });
    expect(result.modifiedCount).toBe(1);
    expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1 });
    const updates = commands.started.filter((event) => event.commandName === 'update');
    expect(updates).toHaveLength(2);
    expect(updates[0]?.command.txnNumber).toBeDefined();
    expect(String(updates[1]?.command.txnNumber)).toBe(String(updates[0]?.command.txnNumber));
    expect(updates[1]?.command.lsid.id.toString('hex')).toBe(
      updates[0]?.command.lsid.id.toString('hex'),
    );
  });

  // retryable-writes spec + error_labels.cpp: the server labels ShutdownInProgress (91) on a
  // retryable write RetryableWriteError (no errorLabels given to the fail point), so the
  // driver retries; the write lands once.
  it('ShutdownInProgress (91) without explicit labels gets RetryableWriteError and is retried', async () => {
    const name = t.uniqueName('code91');
    const coll = t.db.collection<Doc>(name);
    const { client, appName, commands, failures } = await appClient();
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 91, appName });
    await client.db(t.db.databaseName).collection<Doc>(name).insertOne({ _id: 'once' });
    expect(commands.names().filter((n) => n === 'insert')).toHaveLength(2);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.commandName).toBe('insert');
    expect(failures[0]?.labels).toContain('RetryableWriteError');
    expect(await coll.countDocuments({ _id: 'once' })).toBe(1);
  });

  // Retryable writes spec ("write concern errors" with a retryable code are retried) and
  // error_labels.cpp (RetryableWriteError only for a retryable write concern error code): the
  // write was applied; the retry is answered from the server's record, once, without the error.
  it('a retryable write concern error (91) is retried; the $inc is applied once', async () => {
    const coll = await counter(t.uniqueName('wce91'));
    const { client, appName, commands } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['update'],
        writeConcernError: { code: 91, errmsg: 'shutting down' },
        appName,
      },
    );
    const result = await client
      .db(t.db.databaseName)
      .collection<Doc>(coll.collectionName)
      .updateOne({ _id: 'c' }, { $inc: { n: 1 } });
    expect(result.modifiedCount).toBe(1);
    expect(commands.names().filter((n) => n === 'update')).toHaveLength(2);
    expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1 });
  });

  // A write concern timeout (64) is not a retryable code: no RetryableWriteError, no retry.
  it('a write concern timeout (64) is not retried', async () => {
    const coll = await counter(t.uniqueName('wce64'));
    const { client, appName, commands, failures } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['update'], writeConcernError: { code: 64, errmsg: 'timed out' }, appName },
    );
    const error = await client
      .db(t.db.databaseName)
      .collection<Doc>(coll.collectionName)
      .updateOne({ _id: 'c' }, { $inc: { n: 1 } })
      .then(
        () => undefined,
        (e: unknown) => e as { code?: number; errorLabels?: string[] },
      );
    expect(error?.code).toBe(64);
    expect(error?.errorLabels ?? []).not.toContain('RetryableWriteError');
    expect(commands.names().filter((n) => n === 'update')).toHaveLength(1);
    expect(failures).toHaveLength(0);
    expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1 });
  });

  // failcommand_failpoint.js: the label comes from the server for a write that carries
  // txnNumber (a retryable write) — seen here on a raw command the driver does not retry.
  it('the server attaches RetryableWriteError to 91 on a raw insert carrying lsid and txnNumber', async () => {
    const name = t.uniqueName('raw91');
    const { client, appName } = await appClient();
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 91, appName });
    const session = client.startSession();
    try {
      const error = await serverError(
        client
          .db(t.db.databaseName)
          .command(
            { insert: name, documents: [{ _id: 1 }], txnNumber: Long.fromNumber(1) },
            { session },
          ),
      );
      expect(error.code).toBe(91);
      expect(error.errorLabels).toContain('RetryableWriteError');
    } finally {
      await session.endSession();
    }
  });

  // Control: with retryWrites: false the same injected 91 reaches the application.
  it('with retryWrites disabled the injected 91 is not retried', async () => {
    const name = t.uniqueName('noretry');
    const { client, appName, commands } = await appClient({ retryWrites: false });
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 91, appName });
    const error = await serverError(
      client.db(t.db.databaseName).collection<Doc>(name).insertOne({ _id: 'x' }),
    );
    expect(error.code).toBe(91);
    expect(commands.names().filter((n) => n === 'insert')).toHaveLength(1);
    expect(commands.started[0]?.command.txnNumber).toBeUndefined();
    expect(await t.db.collection<Doc>(name).countDocuments()).toBe(0);
  });

  // retryable-writes spec: the server executes a given (lsid, txnNumber) write at most once;
  // resending it returns the recorded result without applying it again.
  it('the server applies a write resent with the same lsid and txnNumber only once', async () => {
    const name = t.uniqueName('dedupe');
    const coll = await counter(name);
    // A dedicated client: its pooled server session ends up with txnNumber 8, which would make
    // the driver's own later txnNumbers on that session too old.
    const { client } = await appClient();
    const db = client.db(t.db.databaseName);
    const session = client.startSession();
    try {
      const command = {
        update: name,
        updates: [{ q: { _id: 'c' }, u: { $inc: { n: 1 } } }],
        txnNumber: Long.fromNumber(7),
      };
      const first = await db.command({ ...command }, { session });
      const second = await db.command({ ...command }, { session });
      expect(first).toMatchObject({ ok: 1, n: 1, nModified: 1 });
      expect(second).toMatchObject({ ok: 1, n: 1, nModified: 1 });
      expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1 });
      // A new txnNumber on the same session is a new write.
      await db.command({ ...command, txnNumber: Long.fromNumber(8) }, { session });
      expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 2 });
    } finally {
      await session.endSession();
    }
  });

  describe('a retried findAndModify is answered from the stored image, without the projection', () => {
    // Increasing across calls: a later call may reuse the pooled server session (same lsid),
    // and a txnNumber it already used would be answered as a retry of that earlier write.
    let txnNumber = 100;

    /** Sends `command` twice with one lsid and txnNumber (a retry, as the driver sends it). */
    async function sendTwice(db: Db, command: Document): Promise<[Document, Document]> {
      txnNumber += 1;
      const session = db.client.startSession();
      try {
        const stamped = () => ({ ...command, txnNumber: Long.fromNumber(txnNumber) });
        const first = await db.command(stamped(), { session });
        const second = await db.command(stamped(), { session });
        return [first, second];
      } finally {
        await session.endSession();
      }
    }

    it.each([
      {
        returnNew: false,
        projected: { n: 0, doubled: 0 },
        image: { _id: 'c', n: 0, other: 'kept' },
      },
      {
        returnNew: true,
        projected: { n: 1, doubled: 2 },
        image: { _id: 'c', n: 1, other: 'kept' },
      },
    ])(
      'an update with new: $returnNew: the first answer is projected, the retry carries the whole stored image',
      async ({ returnNew, projected, image }) => {
        const name = t.uniqueName('famUpdate');
        const coll = t.db.collection<Doc>(name);
        await coll.insertOne({ _id: 'c', n: 0, other: 'kept' });
        const { client } = await appClient();
        const [first, retry] = await sendTwice(client.db(t.db.databaseName), {
          findAndModify: name,
          query: { _id: 'c' },
          update: { $inc: { n: 1 } },
          new: returnNew,
          fields: { _id: 0, n: 1, doubled: { $multiply: ['$n', 2] } },
        });
        expect(first).toMatchObject({ ok: 1, lastErrorObject: { n: 1, updatedExisting: true } });
        expect(first.value).toEqual(projected);
        expect(retry).toMatchObject({ ok: 1, lastErrorObject: { n: 1, updatedExisting: true } });
        expect(retry.value).toEqual(image);
        // Applied once: the retry did not run the update again.
        expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1, other: 'kept' });
      },
    );

    it('an upsert that inserted: upserted _id, updatedExisting false; value null (new: false) or the whole inserted document (new: true)', async () => {
      const name = t.uniqueName('famUpsert');
      const coll = t.db.collection<Doc>(name);
      const { client } = await appClient();
      const db = client.db(t.db.databaseName);
      const base = {
        findAndModify: name,
        update: { $inc: { n: 1 } },
        upsert: true,
        fields: { _id: 0 },
      };
      const [, before] = await sendTwice(db, { ...base, query: { _id: 'a' } });
      expect(before).toMatchObject({
        ok: 1,
        lastErrorObject: { n: 1, updatedExisting: false, upserted: 'a' },
        value: null,
      });
      const [first, after] = await sendTwice(db, { ...base, query: { _id: 'b' }, new: true });
      expect(first.value).toEqual({ n: 1 });
      expect(after).toMatchObject({
        ok: 1,
        lastErrorObject: { n: 1, updatedExisting: false, upserted: 'b' },
      });
      expect(after.value).toEqual({ _id: 'b', n: 1 });
      expect(await coll.find().sort({ _id: 1 }).toArray()).toEqual([
        { _id: 'a', n: 1 },
        { _id: 'b', n: 1 },
      ]);
    });

    it('a remove: the retry carries the whole deleted document', async () => {
      const name = t.uniqueName('famRemove');
      const coll = t.db.collection<Doc>(name);
      await coll.insertMany([
        { _id: 1, n: 5 },
        { _id: 2, n: 6 },
      ]);
      const { client } = await appClient();
      const [first, retry] = await sendTwice(client.db(t.db.databaseName), {
        findAndModify: name,
        query: {},
        sort: { _id: 1 },
        remove: true,
        fields: { _id: 0 },
      });
      expect(first.value).toEqual({ n: 5 });
      expect(retry).toMatchObject({ ok: 1, lastErrorObject: { n: 1 } });
      expect(retry.value).toEqual({ _id: 1, n: 5 });
      // The retry did not delete the next document.
      expect(await coll.find().toArray()).toEqual([{ _id: 2, n: 6 }]);
    });

    // The same through the driver: a retryable write concern error (91, labelled
    // RetryableWriteError by the server) makes findOneAndUpdate resend the command, and what the
    // application receives is the unprojected pre-image, applied once.
    it('findOneAndUpdate with a projection, retried after a write concern error 91, resolves to the whole pre-image', async () => {
      const name = t.uniqueName('famWce');
      const coll = t.db.collection<Doc>(name);
      await coll.insertOne({ _id: 'c', n: 0, other: 'kept' });
      const { client, appName, commands } = await appClient();
      await retryNextWrite(t.db, appName, 'findAndModify');
      const result = await client
        .db(t.db.databaseName)
        .collection<Doc>(name)
        .findOneAndUpdate(
          { _id: 'c' },
          { $inc: { n: 1 } },
          { projection: { _id: 0, n: 1 }, includeResultMetadata: true },
        );
      expect(commands.names().filter((n) => n === 'findAndModify')).toHaveLength(2);
      expect(result.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
      expect(result.value).toEqual({ _id: 'c', n: 0, other: 'kept' });
      expect(await coll.findOne({ _id: 'c' })).toEqual({ _id: 'c', n: 1, other: 'kept' });
    });
  });
});

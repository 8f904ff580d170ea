/**
 * Error labels as mongod 7.0 computes them: server src/mongo/db/error_labels.cpp
 * (getErrorLabels, ErrorLabelBuilder::isTransientTransactionError / isRetryableWriteError,
 * mongo::isTransientTransactionError) over the categories of src/mongo/base/error_codes.yml
 * (RetriableError, SnapshotError, NeedRetargettingError); the failCommand fail point's
 * `errorLabels` override (src/mongo/db/commands.cpp, service_entry_point_common.cpp
 * _waitForWriteConcern); a command that fails on its own still waits for write concern
 * (RunCommandAndWaitForWriteConcern::_handleError), so a fail point writeConcernError joins the
 * error reply. Driver specs: mongodb/specifications transactions (error-labels.yml:
 * errorLabelsContain / errorLabelsOmit) and retryable-writes.
 *
 * The labels asserted are the server's own: they are read from the command monitoring event
 * (the reply as it arrived), before the driver adds labels of its own, such as
 * UnknownTransactionCommitResult, which mongod never sends.
 */
import { type ClientSession, type Document, Long, type MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { failCommand, useFailPointClients } from '../support/failpoints.js';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, rejectionOf } from './helpers.js';

const t = useTestDatabase('error_labels');
const failPoints = useFailPointClients(() => t.db, 'lbl');

interface Seen {
  readonly commandName: string;
  /** ok: 0, or ok: 1 with a writeConcernError: the replies mongod labels. */
  readonly failed: boolean;
  readonly code: number | undefined;
  readonly labels: readonly string[] | undefined;
  readonly writeConcernError: Document | undefined;
}

/** A fail point client that records every reply's labels as the server sent them. */
async function appClient() {
  const handle = await failPoints.appClient();
  const seen: Seen[] = [];
  handle.client.on('commandFailed', (event) => {
    const failure = event.failure as Error & {
      code?: number;
      errorLabels?: string[];
      errorResponse?: Document;
    };
    seen.push({
      commandName: event.commandName,
      failed: true,
      code: failure.code,
      labels: failure.errorLabels === undefined ? undefined : [...failure.errorLabels],
      writeConcernError: failure.errorResponse?.writeConcernError as Document | undefined,
    });
  });
  handle.client.on('commandSucceeded', (event) => {
    const reply = event.reply as Document;
    seen.push({
      commandName: event.commandName,
      failed: reply.writeConcernError !== undefined,
      code: undefined,
      labels: Array.isArray(reply.errorLabels) ? [...(reply.errorLabels as string[])] : undefined,
      writeConcernError: reply.writeConcernError as Document | undefined,
    });
  });
  const coll = handle.client.db(t.db.databaseName).collection<Doc>(t.uniqueName('c'));
  await coll.insertOne({ _id: 'seed' });
  seen.length = 0;
  return { ...handle, coll, seen };
}

/** The labels of the first failed reply to `commandName` (none is `[]`). */
function firstLabels(seen: readonly Seen[], commandName: string): readonly string[] {
  const event = seen.find((e) => e.commandName === commandName && e.failed);
  expect(event, `a reply to ${commandName}`).toBeDefined();
  return event?.labels ?? [];
}

async function inTransaction<T>(
  client: MongoClient,
  fn: (session: ClientSession) => Promise<T>,
): Promise<T> {
  const session = client.startSession();
  try {
    session.startTransaction();
    return await fn(session);
  } finally {
    await session.abortTransaction().catch(() => undefined);
    await session.endSession();
  }
}

// error_codes.yml codes whose category or name makes them transient inside a transaction
// (isTransientTransactionError); codes that carry required extra info (StaleConfig, StaleDbVersion,
// ShardCannotRefreshDueToLocksHeld…) cannot be injected by failCommand and are left out.
const TRANSIENT_IN_TRANSACTION: readonly (readonly [number, string])[] = [
  [112, 'WriteConflict'],
  [24, 'LockTimeout'],
  [267, 'PreparedTransactionInProgress'],
  [239, 'SnapshotTooOld'],
  [246, 'SnapshotUnavailable'],
  [250, 'StaleChunkHistory'],
  [272, 'MigrationConflict'],
  [251, 'NoSuchTransaction'],
];

// error_codes.yml category RetriableError (ErrorCodes::isRetriableError), injectable ones.
const RETRIABLE: readonly (readonly [number, string])[] = [
  [6, 'HostUnreachable'],
  [7, 'HostNotFound'],
  [89, 'NetworkTimeout'],
  [91, 'ShutdownInProgress'],
  [134, 'ReadConcernMajorityNotAvailableYet'],
  [189, 'PrimarySteppedDown'],
  [262, 'ExceededTimeLimit'],
  [9001, 'SocketException'],
  [10107, 'NotWritablePrimary'],
  [11600, 'InterruptedAtShutdown'],
  [11602, 'InterruptedDueToReplStateChange'],
  [13435, 'NotPrimaryNoSecondaryOk'],
  [13436, 'NotPrimaryOrSecondary'],
];

// Neither transient nor retriable: no label on any command.
const UNLABELLED: readonly (readonly [number, string])[] = [
  [2, 'BadValue'],
  [13, 'Unauthorized'],
  [50, 'MaxTimeMSExpired'],
  [64, 'WriteConcernTimeout'],
  [117, 'ConflictingOperationInProgress'],
];

describe('error_labels.cpp: a non-commit command inside a transaction', () => {
  // isTransientTransactionError: the named codes and SnapshotError codes, and NoSuchTransaction.
  it.each(TRANSIENT_IN_TRANSACTION)('%i (%s) is TransientTransactionError only', async (code) => {
    const { client, appName, coll, seen } = await appClient();
    await inTransaction(client, async (session) => {
      await coll.findOne({ _id: 'seed' }, { session });
      await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: code, appName });
      await rejectionOf(coll.insertOne({ _id: 'x' }, { session }));
    });
    expect(firstLabels(seen, 'insert')).toEqual(['TransientTransactionError']);
  });

  // isTransientTransactionError, outside commit/abort: every RetriableError code is transient
  // too; build() then never adds RetryableWriteError (the two labels are exclusive).
  it.each(RETRIABLE)(
    'retriable %i (%s) is TransientTransactionError, not RetryableWriteError',
    async (code) => {
      const { client, appName, coll, seen } = await appClient();
      await inTransaction(client, async (session) => {
        await coll.findOne({ _id: 'seed' }, { session });
        await failCommand(t.db, { times: 1 }, { failCommands: ['find'], errorCode: code, appName });
        await rejectionOf(coll.findOne({ _id: 'seed' }, { session }));
      });
      expect(firstLabels(seen, 'find')).toEqual(['TransientTransactionError']);
    },
  );

  // isTransientTransactionError: InternalTransactionNotSupported (358) is RetriableError but
  // explicitly never transient; inside a transaction it is not a retryable write either.
  it.each([[358, 'InternalTransactionNotSupported'] as const, ...UNLABELLED])(
    '%i (%s) gets no label',
    async (code) => {
      const { client, appName, coll, seen } = await appClient();
      await inTransaction(client, async (session) => {
        await coll.findOne({ _id: 'seed' }, { session });
        await failCommand(
          t.db,
          { times: 1 },
          { failCommands: ['update'], errorCode: code, appName },
        );
        await rejectionOf(coll.updateOne({ _id: 'seed' }, { $set: { a: 1 } }, { session }));
      });
      expect(firstLabels(seen, 'update')).toEqual([]);
    },
  );
  // transactions spec error-labels.yml ("do not add RetryableWriteError label to
  // writeConcernError ShutdownInProgress that occurs within transaction"): a write concern error
  // alone is never transient (no code), and only commit/abort are retryable in a transaction.
  it('a write concern error 91 on an insert in a transaction gets no label', async () => {
    const { client, appName, coll, seen } = await appClient();
    await inTransaction(client, async (session) => {
      await coll.findOne({ _id: 'seed' }, { session });
      await failCommand(
        t.db,
        { times: 1 },
        {
          failCommands: ['insert'],
          writeConcernError: { code: 91, codeName: 'ShutdownInProgress', errmsg: 'down' },
          appName,
        },
      );
      await coll.insertOne({ _id: 'x' }, { session }).catch(() => undefined);
    });
    expect(firstLabels(seen, 'insert')).toEqual([]);
  });
});

describe('error_labels.cpp: a retryable write (txnNumber without autocommit)', () => {
  // isRetryableWriteError: a RetriableError code on a retryable write. The driver retries it
  // once; the fail point fired only for the first attempt.
  it.each([...RETRIABLE, [358, 'InternalTransactionNotSupported'] as const])(
    '%i (%s) is RetryableWriteError',
    async (code) => {
      const { appName, coll, seen } = await appClient();
      await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: code, appName });
      await coll.insertOne({ _id: `rw-${code}` });
      expect(firstLabels(seen, 'insert')).toEqual(['RetryableWriteError']);
    },
  );

  // Transient codes are transient only in a transaction; outside one they carry no label.
  it.each([...TRANSIENT_IN_TRANSACTION, ...UNLABELLED])('%i (%s) gets no label', async (code) => {
    const { appName, coll, seen } = await appClient();
    await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: code, appName });
    await rejectionOf(coll.insertOne({ _id: `rw-${code}` }));
    expect(firstLabels(seen, 'insert')).toEqual([]);
  });

  // isRetryableWriteError: the write concern error's code counts as well.
  it('a write concern error with a retriable code (91) is RetryableWriteError', async () => {
    const { appName, coll, seen } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['insert'],
        writeConcernError: { code: 91, codeName: 'ShutdownInProgress', errmsg: 'shutting down' },
        appName,
      },
    );
    await coll.insertOne({ _id: 'wce-91' });
    expect(firstLabels(seen, 'insert')).toEqual(['RetryableWriteError']);
  });

  it.each([
    [64, 'WriteConcernTimeout'],
    [100, 'UnsatisfiableWriteConcern'],
    [79, 'UnknownReplWriteConcern'],
  ])('a write concern error %i (%s) gets no label', async (code, codeName) => {
    const { appName, coll, seen } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['insert'],
        writeConcernError: { code, codeName, errmsg: 'injected' },
        appName,
      },
    );
    await rejectionOf(coll.insertOne({ _id: `wce-${code}` }));
    expect(firstLabels(seen, 'insert')).toEqual([]);
  });
});

describe('error_labels.cpp: commitTransaction and abortTransaction', () => {
  async function commitFails(data: Document): Promise<readonly string[]> {
    const { client, appName, coll, seen } = await appClient();
    await inTransaction(client, async (session) => {
      await coll.insertOne(
        { _id: `c-${String(data.errorCode ?? data.writeConcernError?.code)}` },
        { session },
      );
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['commitTransaction'], appName, ...data },
      );
      // A RetryableWriteError commit is retried once by the driver, and then succeeds.
      await session.commitTransaction().catch(() => undefined);
    });
    return firstLabels(seen, 'commitTransaction');
  }

  // Named codes and SnapshotError codes are transient on commit too (PreparedTransactionInProgress
  // included); NoSuchTransaction is, without a write concern error.
  it.each(TRANSIENT_IN_TRANSACTION)(
    '%i (%s) on commit is TransientTransactionError',
    async (code) => {
      expect(await commitFails({ errorCode: code })).toEqual(['TransientTransactionError']);
    },
  );

  // On commit/abort RetriableError codes are not transient (isCommitOrAbort): they are
  // RetryableWriteError (isTransactionCommitOrAbort).
  it.each(RETRIABLE)('retriable %i (%s) on commit is RetryableWriteError', async (code) => {
    expect(await commitFails({ errorCode: code })).toEqual(['RetryableWriteError']);
  });

  // mongod sends no UnknownTransactionCommitResult (the driver adds it for MaxTimeMSExpired and
  // write concern errors; transactions spec).
  it.each(UNLABELLED)('%i (%s) on commit gets no label from the server', async (code) => {
    expect(await commitFails({ errorCode: code })).toEqual([]);
  });

  it('a write concern error 91 on commit is RetryableWriteError', async () => {
    const labels = await commitFails({
      writeConcernError: { code: 91, codeName: 'ShutdownInProgress', errmsg: 'shutting down' },
    });
    expect(labels).toEqual(['RetryableWriteError']);
  });

  it('a write concern error 64 on commit gets no label from the server', async () => {
    const labels = await commitFails({
      writeConcernError: { code: 64, codeName: 'WriteConcernTimeout', errmsg: 'waiting' },
    });
    expect(labels).toEqual([]);
  });

  it.each(RETRIABLE.slice(0, 4))(
    'retriable %i (%s) on abort is RetryableWriteError',
    async (code) => {
      const { client, appName, coll, seen } = await appClient();
      const session = client.startSession();
      try {
        session.startTransaction();
        await coll.insertOne({ _id: `a-${code}` }, { session });
        await failCommand(
          t.db,
          { times: 1 },
          { failCommands: ['abortTransaction'], errorCode: code, appName },
        );
        await session.abortTransaction(); // the driver retries abort once and swallows errors
      } finally {
        await session.endSession();
      }
      expect(firstLabels(seen, 'abortTransaction')).toEqual(['RetryableWriteError']);
    },
  );

  // A commit for a transaction that never started fails NoSuchTransaction on its own; mongod
  // still waits for write concern (_handleError), so the fail point's write concern error
  // joins the reply, and isTransientTransactionError(NoSuchTransaction, hasWriteConcernError,
  // commit) is false: the transaction's outcome may be durable elsewhere.
  async function commitUnknown(writeConcernError?: Document) {
    const { client, appName, seen } = await appClient();
    if (writeConcernError !== undefined) {
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['commitTransaction'], writeConcernError, appName },
      );
    }
    const session = client.startSession();
    try {
      await rejectionOf(
        client
          .db('admin')
          .command(
            { commitTransaction: 1, txnNumber: Long.fromNumber(4242), autocommit: false },
            { session },
          ),
      );
    } finally {
      await session.endSession();
    }
    const event = seen.find((e) => e.commandName === 'commitTransaction' && e.failed);
    expect(event?.code).toBe(251);
    return event;
  }

  it('NoSuchTransaction on commit without a write concern error is TransientTransactionError', async () => {
    expect((await commitUnknown())?.labels).toEqual(['TransientTransactionError']);
  });

  it('NoSuchTransaction on commit with a write concern error 64 gets no label', async () => {
    const event = await commitUnknown({
      code: 64,
      codeName: 'WriteConcernTimeout',
      errmsg: 'waiting',
    });
    expect(event?.writeConcernError?.code).toBe(64);
    expect(event?.labels ?? []).toEqual([]);
  });

  it('NoSuchTransaction on commit with a write concern error 91 is RetryableWriteError only', async () => {
    const event = await commitUnknown({ code: 91, codeName: 'ShutdownInProgress', errmsg: 'down' });
    expect(event?.labels).toEqual(['RetryableWriteError']);
  });
});

// ErrorLabelBuilder::build / isNonResumableChangeStreamError: the code alone decides, on any
// command, in a session or not (error_codes.yml category NonResumableChangeStreamError).
describe('error_labels.cpp: NonResumableChangeStreamError', () => {
  it.each([
    [280, 'ChangeStreamFatalError'],
    [286, 'ChangeStreamHistoryLost'],
  ])('%i (%s) on a find is NonResumableChangeStreamError', async (code) => {
    const { appName, coll, seen } = await appClient();
    await failCommand(t.db, { times: 1 }, { failCommands: ['find'], errorCode: code, appName });
    await rejectionOf(coll.findOne({ _id: 'seed' }));
    expect(firstLabels(seen, 'find')).toEqual(['NonResumableChangeStreamError']);
  });

  it('280 on an insert in a transaction is NonResumableChangeStreamError, not transient', async () => {
    const { client, appName, coll, seen } = await appClient();
    await inTransaction(client, async (session) => {
      await coll.findOne({ _id: 'seed' }, { session });
      await failCommand(t.db, { times: 1 }, { failCommands: ['insert'], errorCode: 280, appName });
      await rejectionOf(coll.insertOne({ _id: 'x' }, { session }));
    });
    expect(firstLabels(seen, 'insert')).toEqual(['NonResumableChangeStreamError']);
  });
});

describe('error_labels.cpp getErrorLabels: a fail point with errorLabels overrides them', () => {
  it('errorLabels [] removes the labels a retriable code would get on a retryable write', async () => {
    const { appName, coll, seen } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      { failCommands: ['insert'], errorCode: 10107, errorLabels: [], appName },
    );
    const error = (await rejectionOf(coll.insertOne({ _id: 'none' }))) as { code?: number };
    expect(error.code).toBe(10107);
    expect(firstLabels(seen, 'insert')).toEqual([]);
  });

  it('errorLabels replace TransientTransactionError inside a transaction, verbatim', async () => {
    const { client, appName, coll, seen } = await appClient();
    await inTransaction(client, async (session) => {
      await coll.findOne({ _id: 'seed' }, { session });
      await failCommand(
        t.db,
        { times: 1 },
        { failCommands: ['insert'], errorCode: 112, errorLabels: ['SomeLabel', 'Other'], appName },
      );
      await rejectionOf(coll.insertOne({ _id: 'x' }, { session }));
    });
    expect(firstLabels(seen, 'insert')).toEqual(['SomeLabel', 'Other']);
  });

  it('errorLabels apply to a write concern error too', async () => {
    const { appName, coll, seen } = await appClient();
    await failCommand(
      t.db,
      { times: 1 },
      {
        failCommands: ['insert'],
        writeConcernError: { code: 91, codeName: 'ShutdownInProgress', errmsg: 'down' },
        errorLabels: [],
        appName,
      },
    );
    await rejectionOf(coll.insertOne({ _id: 'wce-override' }));
    expect(firstLabels(seen, 'insert')).toEqual([]);
  });
});

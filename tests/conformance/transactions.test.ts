/**
 * Multi-document transactions on a replica set.
 *
 * Sources: MongoDB manual, core/transactions, core/transactions-in-applications (error labels,
 * withTransaction), core/transactions-production-consideration ("Runtime Limit ...
 * transactionLifetimeLimitSeconds ... aborted by a periodic cleanup process"; the cleanup runs
 * every transactionLifetimeLimitSeconds/2, at most once per second — DOCS-11599);
 * server jstests jstests/core/txns/repeatable_reads_in_transaction.js,
 * write_conflicts_with_non_txns.js, multi_statement_transaction_abort.js,
 * multi_statement_transaction_write_error.js, abort_expired_transaction.js;
 * server src/mongo/db/error_labels.cpp (TransientTransactionError for WriteConflict and for
 * NoSuchTransaction); mongodb/specifications source/transactions/transactions.md and
 * source/transactions-convenient-api/transactions-convenient-api.md.
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, rejectionOf, serverError, sleep, track, withSession } from './helpers.js';

const t = useTestDatabase('transactions');
const TRANSIENT = 'TransientTransactionError';

/** Collections are created before any transaction uses them (production considerations). */
async function fresh(prefix: string, docs: Doc[] = []) {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  const coll = t.db.collection<Doc>(name);
  if (docs.length > 0) await coll.insertMany(docs);
  return coll;
}

describe('commit and abort', () => {
  // transactions docs: writes become visible to everyone at commit.
  it('commit makes every write of the transaction visible', async () => {
    const coll = await fresh('commit', [{ _id: 'a', balance: 100 }]);
    await withSession(t.client, async (session) => {
      t.commands.reset();
      session.startTransaction();
      await coll.updateOne({ _id: 'a' }, { $inc: { balance: -30 } }, { session });
      await coll.insertOne({ _id: 'b', balance: 30 }, { session });
      await session.commitTransaction();
    });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'a', balance: 70 },
      { _id: 'b', balance: 30 },
    ]);
    // transactions spec: the first command starts the transaction, all carry the same
    // txnNumber with autocommit: false, commitTransaction goes to admin.
    const [first, second, commit] = t.commands.started;
    expect(first?.command.startTransaction).toBe(true);
    expect(first?.command.autocommit).toBe(false);
    expect(second?.command.startTransaction).toBeUndefined();
    expect(String(second?.command.txnNumber)).toBe(String(first?.command.txnNumber));
    expect(commit?.commandName).toBe('commitTransaction');
    expect(commit?.databaseName).toBe('admin');
  });

  it('abort discards every write of the transaction', async () => {
    const coll = await fresh('abort', [{ _id: 'a', balance: 100 }]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.updateOne({ _id: 'a' }, { $inc: { balance: -30 } }, { session });
      await coll.insertOne({ _id: 'b', balance: 30 }, { session });
      await coll.deleteOne({ _id: 'a' }, { session });
      await session.abortTransaction();
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'a', balance: 100 }]);
  });
});

describe('isolation', () => {
  // repeatable_reads_in_transaction.js: after the transaction's first read, writes committed
  // outside it are invisible to it; its own writes are visible to it.
  it('reads see a snapshot taken at the first read, plus the transaction own writes', async () => {
    const coll = await fresh('snapshot', [
      { _id: 1, v: 0 },
      { _id: 2, v: 0 },
    ]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      expect(await coll.find({}, { session }).sort({ _id: 1 }).toArray()).toEqual([
        { _id: 1, v: 0 },
        { _id: 2, v: 0 },
      ]);

      await coll.updateOne({ _id: 1 }, { $set: { v: 'outside' } });
      await coll.insertOne({ _id: 3, v: 'outside' });
      await coll.updateOne({ _id: 2 }, { $set: { v: 'inside' } }, { session });

      expect(await coll.find({}, { session }).sort({ _id: 1 }).toArray()).toEqual([
        { _id: 1, v: 0 },
        { _id: 2, v: 'inside' },
      ]);
      expect(await coll.findOne({ _id: 3 }, { session })).toBeNull();
      expect(await coll.countDocuments({}, { session })).toBe(2);
      await session.commitTransaction();
    });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, v: 'outside' },
      { _id: 2, v: 'inside' },
      { _id: 3, v: 'outside' },
    ]);
  });

  // multi_statement_transaction_abort.js: uncommitted writes are invisible to other readers.
  it('uncommitted writes are invisible outside the transaction until commit', async () => {
    const coll = await fresh('invisible', [{ _id: 1, v: 'old' }]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 2, v: 'new' }, { session });
      await coll.updateOne({ _id: 1 }, { $set: { v: 'changed' } }, { session });
      expect(await coll.findOne({ _id: 2 })).toBeNull();
      expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 'old' });
      expect(await coll.countDocuments()).toBe(1);
      await session.commitTransaction();
    });
    expect(await coll.countDocuments()).toBe(2);
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, v: 'changed' });
  });
});

describe('write conflicts', () => {
  // multi_statement_transaction_abort.js / error_labels.cpp: the second transaction to write a
  // document fails at once with WriteConflict (112) labelled TransientTransactionError; the
  // first one commits normally.
  it('two transactions writing one document: the second gets WriteConflict (112), transient', async () => {
    const coll = await fresh('wc', [{ _id: 1, n: 0 }]);
    const s1 = t.client.startSession();
    const s2 = t.client.startSession();
    try {
      s1.startTransaction();
      s2.startTransaction();
      await coll.updateOne({ _id: 1 }, { $inc: { n: 1 } }, { session: s1 });
      const started = Date.now();
      const error = await serverError(
        coll.updateOne({ _id: 1 }, { $inc: { n: 100 } }, { session: s2 }),
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(error.code).toBe(112);
      expect(error.codeName).toBe('WriteConflict');
      expect(error.hasErrorLabel(TRANSIENT)).toBe(true);
      await s2.abortTransaction();
      await s1.commitTransaction();
    } finally {
      await s1.endSession();
      await s2.endSession();
    }
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 1 });
  });

  // write_conflicts_with_non_txns.js (last case): a transaction that writes a document
  // updated outside it after its snapshot gets WriteConflict, and the server has aborted it.
  it('a transaction writing a document changed after its snapshot gets WriteConflict and is aborted', async () => {
    const coll = await fresh('wcsnap', [{ _id: 1, n: 0 }]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.findOne({ _id: 1 }, { session });
      await coll.updateOne({ _id: 1 }, { $set: { n: 5 } });
      const error = await serverError(coll.updateOne({ _id: 1 }, { $inc: { n: 1 } }, { session }));
      expect(error.code).toBe(112);
      expect(error.hasErrorLabel(TRANSIENT)).toBe(true);
      const commit = await serverError(session.commitTransaction());
      expect(commit.code).toBe(251);
    });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 5 });
  });

  // write_conflicts_with_non_txns.js: a plain write to a document written by an open
  // transaction keeps retrying (blocks) and applies on top of the committed state.
  it('a plain update of a document written by an open transaction waits for the commit, then applies', async () => {
    const coll = await fresh('block', [{ _id: 1, n: 0 }]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.updateOne({ _id: 1 }, { $inc: { n: 1 } }, { session });
      const plain = track(coll.updateOne({ _id: 1 }, { $inc: { n: 10 } }));
      await sleep(200);
      expect(plain.settled).toBe(false);
      await session.commitTransaction();
      const result = await plain.promise;
      expect(result.matchedCount).toBe(1);
      expect(result.modifiedCount).toBe(1);
    });
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 11 });
  });

  // write_conflicts_with_non_txns.js: after the transaction aborts, the blocked plain insert
  // goes ahead and succeeds.
  it('a plain insert blocked by an uncommitted transactional insert succeeds after the abort', async () => {
    const coll = await fresh('blockabort');
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1, by: 'txn' }, { session });
      const plain = track(coll.insertOne({ _id: 1, by: 'plain' }));
      await sleep(200);
      expect(plain.settled).toBe(false);
      await session.abortTransaction();
      await plain.promise;
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1, by: 'plain' }]);
  });

  // write_conflicts_with_non_txns.js: with maxTimeMS the blocked plain write gives up with
  // MaxTimeMSExpired (50); after commit, a conflicting insert is a DuplicateKey.
  it('a blocked plain insert with maxTimeMS fails with MaxTimeMSExpired (50)', async () => {
    const coll = await fresh('blockmax');
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1, by: 'txn' }, { session });
      const outcome = await t.db
        .command({
          insert: coll.collectionName,
          documents: [{ _id: 1, by: 'plain' }],
          maxTimeMS: 100,
        })
        .catch((error: unknown) => error);
      const code =
        outcome instanceof Error
          ? (outcome as Error & { code?: number }).code
          : ((outcome as Document).writeErrors?.[0]?.code as number | undefined);
      expect(code).toBe(50);
      await session.commitTransaction();
    });
    const dup = await serverError(coll.insertOne({ _id: 1, by: 'plain' }));
    expect(dup.code).toBe(11000);
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1, by: 'txn' }]);
  });
});

describe('aborted transactions', () => {
  // multi_statement_transaction_abort.js / error_labels.cpp: once aborted, commitTransaction
  // for that txnNumber fails with NoSuchTransaction (251), labelled TransientTransactionError.
  it('commitTransaction after abortTransaction fails with NoSuchTransaction (251)', async () => {
    const coll = await fresh('commitafterabort');
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1 }, { session });
      await session.abortTransaction();
      // The driver refuses commit-after-abort client-side, so send the command itself: with
      // the session, the driver attaches lsid, the same txnNumber and autocommit: false.
      const error = await serverError(
        t.client.db('admin').command({ commitTransaction: 1 }, { session }),
      );
      expect(error.code).toBe(251);
      expect(error.codeName).toBe('NoSuchTransaction');
      expect(error.hasErrorLabel(TRANSIENT)).toBe(true);
    });
    expect(await coll.countDocuments()).toBe(0);
  });

  // multi_statement_transaction_write_error.js + multi_statement_transaction_abort.js:
  // DuplicateKey inside a transaction has no error label, the server aborts the transaction,
  // and the commit then fails with NoSuchTransaction.
  it('DuplicateKey inside a transaction has no transient label and the commit then fails with 251', async () => {
    const coll = await fresh('dupintxn', [{ _id: 1, by: 'outside' }]);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 2, by: 'txn' }, { session });
      const dup = await serverError(coll.insertOne({ _id: 1, by: 'txn' }, { session }));
      expect(dup.code).toBe(11000);
      expect(dup.hasErrorLabel(TRANSIENT)).toBe(false);
      expect(dup.errorLabels).toEqual([]);
      const commit = await serverError(session.commitTransaction());
      expect(commit.code).toBe(251);
      expect(commit.hasErrorLabel(TRANSIENT)).toBe(true);
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1, by: 'outside' }]);
  });
});

describe('withTransaction', () => {
  // transactions-convenient-api spec: withTransaction runs the callback in a transaction,
  // commits it and (driver v6+) resolves to the callback's return value.
  it('session.withTransaction commits the callback writes and returns its value', async () => {
    const coll = await fresh('withtxn', [
      { _id: 'alice', balance: 50 },
      { _id: 'bob', balance: 0 },
    ]);
    const result = await withSession(t.client, (session) =>
      session.withTransaction(async () => {
        const from = await coll.findOneAndUpdate(
          { _id: 'alice', balance: { $gte: 20 } },
          { $inc: { balance: -20 } },
          { session, returnDocument: 'after' },
        );
        if (from === null) throw new Error('insufficient funds');
        await coll.updateOne({ _id: 'bob' }, { $inc: { balance: 20 } }, { session });
        return from.balance as number;
      }),
    );
    expect(result).toBe(30);
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'alice', balance: 30 },
      { _id: 'bob', balance: 20 },
    ]);
  });

  it('an error thrown by the callback aborts the transaction and is rethrown', async () => {
    const coll = await fresh('withtxnerr', [{ _id: 'alice', balance: 50 }]);
    const error = await rejectionOf(
      withSession(t.client, (session) =>
        session.withTransaction(async () => {
          await coll.updateOne({ _id: 'alice' }, { $inc: { balance: -20 } }, { session });
          throw new Error('business rule failed');
        }),
      ),
    );
    expect((error as Error).message).toBe('business rule failed');
    expect(await coll.findOne({ _id: 'alice' })).toEqual({ _id: 'alice', balance: 50 });
  });
});

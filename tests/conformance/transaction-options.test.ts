/**
 * The read concern of a multi-document transaction belongs to its first statement.
 *
 * Sources: mongod src/mongo/db/service_entry_point_common.cpp (ExecCommandDatabase::_setup:
 * InvalidOptions (72), "Only the first command in a transaction may specify a readConcern",
 * unless the command starts the transaction or its read concern is empty) and
 * src/mongo/db/transaction_participant.cpp (unstashTransactionResources, the same check);
 * src/mongo/db/repl/read_concern_args.cpp ReadConcernArgs::isEmpty (no level, afterClusterTime,
 * atClusterTime or opTime: `readConcern: {}` is empty); server jstest
 * jstests/core/txns/no_read_or_write_concern_inside_txn.js (insert and find refused with each
 * level, and the transaction still commits with what its other statements wrote). The manual,
 * core/transactions "Transactions and Read Concern": the read concern is set at the transaction
 * level, not on its operations.
 *
 * The driver itself sends a read concern only with a transaction's first statement, so later
 * ones are sent here with `db.command` on the session (which adds `txnNumber` and
 * `autocommit: false` and leaves the command's own `readConcern` as it is).
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError, withSession } from './helpers.js';

const t = useTestDatabase('txn_options');
const MESSAGE = 'Only the first command in a transaction may specify a readConcern';

describe('read concern on a statement after the first in a transaction', () => {
  for (const level of ['local', 'majority', 'snapshot'] as const) {
    it(`level ${level} on an insert and on a find: InvalidOptions (72); the transaction still commits`, async () => {
      const coll = t.db.collection<Doc>(t.uniqueName(`rc_${level}`));
      await withSession(t.client, async (session) => {
        session.startTransaction({ readConcern: { level: 'snapshot' } });
        await coll.insertOne({ _id: 1 }, { session });
        for (const command of [
          { insert: coll.collectionName, documents: [{ _id: 2 }], readConcern: { level } },
          { find: coll.collectionName, filter: {}, readConcern: { level } },
        ]) {
          const error = await serverError(t.db.command(command, { session }));
          expect(error.code).toBe(72);
          expect(error.codeName).toBe('InvalidOptions');
          expect(error.message).toContain(MESSAGE);
        }
        await session.commitTransaction();
      });
      expect(await coll.find({}).toArray()).toEqual([{ _id: 1 }]);
    });
  }

  it('an afterClusterTime alone is a read concern too', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('rc_after'));
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1 }, { session });
      const after = session.operationTime;
      expect(after).toBeDefined();
      const error = await serverError(
        t.db.command(
          { find: coll.collectionName, filter: {}, readConcern: { afterClusterTime: after } },
          { session },
        ),
      );
      expect(error.code).toBe(72);
      expect(error.message).toContain(MESSAGE);
      await session.commitTransaction();
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1 }]);
  });

  it('an empty readConcern names none: the statement runs in the transaction', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('rc_empty'));
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1 }, { session });
      const reply = await t.db.command(
        { insert: coll.collectionName, documents: [{ _id: 2 }], readConcern: {} },
        { session },
      );
      expect(reply.n).toBe(1);
      await session.commitTransaction();
    });
    expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([{ _id: 1 }, { _id: 2 }]);
  });

  it("the first statement's read concern is accepted", async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('rc_first'));
    await withSession(t.client, async (session) => {
      session.startTransaction({ readConcern: { level: 'majority' } });
      await coll.insertOne({ _id: 1 }, { session });
      await session.commitTransaction();
    });
    const first = t.commands.started.filter(
      (event) => event.commandName === 'insert' && event.command.startTransaction === true,
    );
    expect(first.at(-1)?.command.readConcern).toEqual({ level: 'majority' });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1 }]);
  });
});

/**
 * Creating collections and indexes inside a multi-document transaction (MongoDB 4.4+).
 *
 * Sources: MongoDB manual, core/transactions-operations "Create Collections and Indexes in a
 * Transaction" (https://www.mongodb.com/docs/manual/core/transactions-operations/) and
 * reference/read-concern-local "Read Concern local and Transactions" (explicit creation needs
 * read concern "local"; implicit creation takes any); mongodb/specifications
 * source/transactions/tests/unified/create-collection.yml and create-index.yml (what is created
 * in a transaction does not exist for anyone else until the commit); server jstests
 * jstests/core/txns/create_collection.js, create_indexes.js, create_collection_parallel.js and
 * commands_in_txns_read_concern.js; server src/mongo/db/commands/create_indexes_cmd.cpp
 * (OperationNotSupportedInTransaction for an index on an existing or non-empty collection) and
 * src/mongo/db/transaction_validation.cpp validateWriteConcernForTransaction, with
 * jstests/core/txns/no_read_or_write_concern_inside_txn.js (no write concern inside a
 * transaction except on commit and abort).
 */
import type { ClientSession, Collection } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { type Doc, serverError, withSession } from './helpers.js';

const t = useTestDatabase('ddl_in_txn');
const TRANSIENT = 'TransientTransactionError';

/** Whether the collection exists, as a client outside any transaction sees it. */
async function existsOutside(name: string): Promise<boolean> {
  const found = await t.db.listCollections({ name }, { nameOnly: true }).toArray();
  return found.length > 0;
}

/** Index names of the collection as seen outside any transaction; null when it does not exist. */
async function indexNamesOutside(coll: Collection<Doc>): Promise<string[] | null> {
  try {
    const indexes = await coll.listIndexes().toArray();
    return indexes.map((index) => String(index.name)).sort();
  } catch (error) {
    // listIndexes on a missing collection: NamespaceNotFound (26).
    if ((error as { code?: unknown }).code === 26) return null;
    throw error;
  }
}

async function inTransaction<T>(
  fn: (session: ClientSession) => Promise<T>,
  options: Parameters<ClientSession['startTransaction']>[0] = {},
): Promise<T> {
  return withSession(t.client, async (session) => {
    session.startTransaction(options);
    try {
      return await fn(session);
    } finally {
      if (session.inTransaction()) await session.abortTransaction();
    }
  });
}

describe('a collection created in a transaction', () => {
  // create-collection.yml "explicitly create collection using create command".
  it('explicit create: invisible outside until the commit, usable inside, kept after it', async () => {
    const name = t.uniqueName('explicit');
    const coll = t.db.collection<Doc>(name);
    await inTransaction(async (session) => {
      await t.db.createCollection(name, { session });
      await coll.insertOne({ _id: 1, v: 'inside' }, { session });
      expect(await coll.find({}, { session }).toArray()).toEqual([{ _id: 1, v: 'inside' }]);

      expect(await existsOutside(name)).toBe(false);
      expect(await coll.find({}).toArray()).toEqual([]);
      expect(await indexNamesOutside(coll)).toBeNull();

      await session.commitTransaction();
    });
    expect(await existsOutside(name)).toBe(true);
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1, v: 'inside' }]);
  });

  // create-collection.yml "implicitly create collection using insert".
  it('implicit create by the first insert: invisible outside until the commit', async () => {
    const name = t.uniqueName('implicit');
    const coll = t.db.collection<Doc>(name);
    await inTransaction(async (session) => {
      await coll.insertOne({ _id: 1 }, { session });
      expect(await existsOutside(name)).toBe(false);
      await session.commitTransaction();
    });
    expect(await existsOutside(name)).toBe(true);
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1 }]);
  });

  // create_collection.js: an aborted transaction leaves no collection behind, empty or not.
  it('abort: the collection vanishes, explicit or implicit (upsert)', async () => {
    const explicit = t.uniqueName('abort_explicit');
    const implicit = t.uniqueName('abort_upsert');
    await inTransaction(async (session) => {
      await t.db.createCollection(explicit, { session });
      await t.db
        .collection<Doc>(implicit)
        .updateOne({ _id: 1 }, { $set: { v: 1 } }, { upsert: true, session });
      await session.abortTransaction();
    });
    expect(await existsOutside(explicit)).toBe(false);
    expect(await existsOutside(implicit)).toBe(false);
    expect(await t.db.collection<Doc>(implicit).countDocuments()).toBe(0);
  });

  // create_collection_parallel.js: inside a transaction, creating a collection that exists
  // fails with NamespaceExists (48), even with the same (no) options.
  it('create of a collection the transaction already sees: NamespaceExists (48)', async () => {
    const name = t.uniqueName('exists');
    await t.db.createCollection(name);
    await inTransaction(async (session) => {
      const error = await serverError(t.db.createCollection(name, { session }));
      expect(error.code).toBe(48);
      expect(error.codeName).toBe('NamespaceExists');
    });
  });
});

describe('an index created in a transaction', () => {
  // create-index.yml "create index on a non-existing collection".
  it('on a missing collection: collection and index invisible outside until the commit', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('idx_missing'));
    await inTransaction(async (session) => {
      expect(await coll.createIndex({ x: 1 }, { name: 't_1', session })).toBe('t_1');
      expect(await indexNamesOutside(coll)).toBeNull();
      await session.commitTransaction();
    });
    expect(await indexNamesOutside(coll)).toEqual(['_id_', 't_1']);
  });

  // create-index.yml "create index on a collection created within the same transaction";
  // create_indexes.js: the index is in force for the rest of the transaction.
  it('on a collection created earlier in the transaction: enforced inside, visible at commit', async () => {
    const name = t.uniqueName('idx_created');
    const coll = t.db.collection<Doc>(name);
    await inTransaction(async (session) => {
      await t.db.createCollection(name, { session });
      await coll.createIndex({ x: 1 }, { name: 'x_unique', unique: true, session });
      expect(await indexNamesOutside(coll)).toBeNull();
      await coll.insertOne({ _id: 1, x: 'a' }, { session });
      await session.commitTransaction();
    });
    expect(await indexNamesOutside(coll)).toEqual(['_id_', 'x_unique']);
    const error = await serverError(coll.insertOne({ _id: 2, x: 'a' }));
    expect(error.code).toBe(11000);
  });

  // create_indexes.js "Testing createIndexes in a transaction that aborts".
  it('abort: neither the collection nor the index remain', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('idx_abort'));
    await inTransaction(async (session) => {
      await coll.createIndex({ x: 1 }, { session });
      await coll.insertOne({ _id: 1, x: 1 }, { session });
      await session.abortTransaction();
    });
    expect(await indexNamesOutside(coll)).toBeNull();
    expect(await existsOutside(coll.collectionName)).toBe(false);
  });

  // create_indexes_cmd.cpp: an index build on a collection that existed before the transaction
  // needs an exclusive lock, which a transaction may not take, so it is refused
  // (OperationNotSupportedInTransaction, 263) even on an empty collection. A createIndexes that
  // adds nothing returns early (indexesAlreadyExist), before that check, and succeeds.
  it('on a collection that existed before the transaction: 263, unless the index already exists', async () => {
    const name = t.uniqueName('idx_existing');
    const coll = t.db.collection<Doc>(name);
    await coll.createIndex({ x: 1 }, { name: 'x_1' });
    await withSession(t.client, async (session) => {
      session.startTransaction();
      const reply = await t.db.command(
        { createIndexes: name, indexes: [{ key: { x: 1 }, name: 'x_1' }] },
        { session },
      );
      expect(reply.note).toBe('all indexes already exist');
      expect(reply.numIndexesBefore).toBe(2);
      expect(reply.numIndexesAfter).toBe(2);

      const error = await serverError(coll.createIndex({ y: 1 }, { session }));
      expect(error.code).toBe(263);
      expect(error.codeName).toBe('OperationNotSupportedInTransaction');
      expect(error.message).toContain(
        `Cannot create new indexes on existing collection ${t.db.databaseName}.${name}`,
      );
      // The failed command aborted the transaction.
      const commit = await serverError(session.commitTransaction());
      expect(commit.code).toBe(251);
    });
    expect(await indexNamesOutside(coll)).toEqual(['_id_', 'x_1']);
  });

  // create_indexes.js "createIndexes on a non-empty collection created in the same transaction".
  it('on a collection created in the transaction after writing to it: 263, and nothing remains', async () => {
    const name = t.uniqueName('idx_nonempty');
    const coll = t.db.collection<Doc>(name);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await t.db.createCollection(name, { session });
      await coll.insertOne({ _id: 1, a: 1 }, { session });
      const error = await serverError(coll.createIndex({ a: 1 }, { session }));
      expect(error.code).toBe(263);
      expect(error.codeName).toBe('OperationNotSupportedInTransaction');
      expect(error.message).toContain(
        `Cannot create new indexes on non-empty collection ${t.db.databaseName}.${name}`,
      );
      await session.abortTransaction();
    });
    expect(await existsOutside(name)).toBe(false);
  });
});

describe('read concern', () => {
  // commands_in_txns_read_concern.js: explicit creation under read concern "snapshot" fails with
  // InvalidOptions (72) and aborts the transaction, and succeeds under "local";
  // read-concern-local: implicit creation is allowed under any read concern.
  it('explicit create and createIndexes need read concern local (else 72); implicit creation does not', async () => {
    const refused = t.uniqueName('rc_snapshot');
    const implicit = t.db.collection<Doc>(t.uniqueName('rc_implicit'));
    const local = t.uniqueName('rc_local');
    await withSession(t.client, async (session) => {
      session.startTransaction({ readConcern: { level: 'snapshot' } });
      const error = await serverError(t.db.createCollection(refused, { session }));
      expect(error.code).toBe(72);
      expect(error.codeName).toBe('InvalidOptions');
      const commit = await serverError(session.commitTransaction());
      expect(commit.code).toBe(251);

      session.startTransaction({ readConcern: { level: 'snapshot' } });
      const indexError = await serverError(
        t.db.collection<Doc>(refused).createIndex({ x: 1 }, { session }),
      );
      expect(indexError.code).toBe(72);
      expect(indexError.codeName).toBe('InvalidOptions');
      await session.abortTransaction();

      session.startTransaction({ readConcern: { level: 'snapshot' } });
      await implicit.insertOne({ _id: 1 }, { session });
      await session.commitTransaction();

      session.startTransaction({ readConcern: { level: 'local' } });
      await t.db.createCollection(local, { session });
      await t.db.collection<Doc>(local).createIndex({ x: 1 }, { session });
      await session.commitTransaction();
    });
    expect(await existsOutside(refused)).toBe(false);
    expect(await implicit.find({}).toArray()).toEqual([{ _id: 1 }]);
    expect(await indexNamesOutside(t.db.collection<Doc>(local))).toEqual(['_id_', 'x_1']);
  });
});

describe('concurrent creates of the same collection', () => {
  // create_collection_parallel.js "one inside and one outside a txn": the create outside does
  // not see (or wait for) the transaction's; the transaction's commit then fails with
  // WriteConflict (112), labelled TransientTransactionError (error_labels.cpp).
  it('created in a transaction, then outside it: the commit fails with WriteConflict', async () => {
    const name = t.uniqueName('race_outside');
    const coll = t.db.collection<Doc>(name);
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await t.db.createCollection(name, { session });
      await coll.insertOne({ _id: 'inside' }, { session });

      await t.db.createCollection(name);
      await coll.insertOne({ _id: 'outside' });

      const error = await serverError(session.commitTransaction());
      expect(error.code).toBe(112);
      expect(error.codeName).toBe('WriteConflict');
      expect(error.hasErrorLabel(TRANSIENT)).toBe(true);
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'outside' }]);
  });

  // create_collection_parallel.js "both attempt to commit, second to commit fails".
  it('created in two transactions: the second commit fails with WriteConflict', async () => {
    const name = t.uniqueName('race_two');
    const coll = t.db.collection<Doc>(name);
    const first = t.client.startSession();
    const second = t.client.startSession();
    try {
      second.startTransaction();
      await coll.insertOne({ _id: 'second' }, { session: second });
      first.startTransaction();
      await coll.insertOne({ _id: 'first' }, { session: first });

      await second.commitTransaction();
      const error = await serverError(first.commitTransaction());
      expect(error.code).toBe(112);
      expect(error.hasErrorLabel(TRANSIENT)).toBe(true);
    } finally {
      await first.endSession();
      await second.endSession();
    }
    expect(await coll.find({}).toArray()).toEqual([{ _id: 'second' }]);
  });

  // create_collection_parallel.js: "create cannot observe the collection created in the other
  // transaction so the command will succeed and we will instead throw WCE when trying to commit".
  it('created and committed after the transaction snapshot: create succeeds, commit fails', async () => {
    const name = t.uniqueName('race_snapshot');
    const other = t.db.collection<Doc>(t.uniqueName('race_snapshot_other'));
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await other.insertOne({ _id: 1 }, { session });

      await t.db.collection<Doc>(name).insertOne({ _id: 'outside' });

      await t.db.createCollection(name, { session });
      const error = await serverError(session.commitTransaction());
      expect(error.code).toBe(112);
    });
    expect(await existsOutside(other.collectionName)).toBe(false);
    expect(await t.db.collection<Doc>(name).find({}).toArray()).toEqual([{ _id: 'outside' }]);
  });
});

describe('write concern inside a transaction', () => {
  // transaction_validation.cpp: "writeConcern is not allowed within a multi-statement
  // transaction" (InvalidOptions, 72) for every command but commit and abort;
  // no_read_or_write_concern_inside_txn.js: the refusal does not abort the transaction.
  it('a statement with its own write concern is refused (72); the transaction still commits', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('wc'));
    const other = t.uniqueName('wc_create');
    await withSession(t.client, async (session) => {
      session.startTransaction();
      await coll.insertOne({ _id: 1 }, { session });
      for (const command of [
        { insert: coll.collectionName, documents: [{ _id: 2 }], writeConcern: { w: 1 } },
        { create: other, writeConcern: { w: 'majority' } },
      ]) {
        const error = await serverError(t.db.command(command, { session }));
        expect(error.code).toBe(72);
        expect(error.codeName).toBe('InvalidOptions');
        expect(error.message).toContain(
          'writeConcern is not allowed within a multi-statement transaction',
        );
      }
      await session.commitTransaction();
    });
    expect(await coll.find({}).toArray()).toEqual([{ _id: 1 }]);
    expect(await existsOutside(other)).toBe(false);
  });
});

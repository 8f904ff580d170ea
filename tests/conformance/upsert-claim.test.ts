/**
 * Claim-or-read in one command: `findAndModify` with `upsert`, an update made only of
 * `$setOnInsert`, and the document before the write (withIdempotencyKey's claim). What it
 * relies on, written to pass on a real mongod (4.4+) as on the offline server.
 *
 * Sources: MongoDB manual, reference/operator/update/setOnInsert ("If the update operation does
 * not result in an insert, $setOnInsert does nothing"); reference/command/findAndModify (`new`
 * defaults to false: the document before the modification, null when the upsert inserted;
 * "Upsert with Duplicate Values"); SERVER-37124 (4.2: the server retries an upsert that meets a
 * duplicate key when the query is an equality on exactly the violated unique index's fields and
 * the update leaves them alone) and SERVER-47212 (the same retry for findAndModify);
 * /work/shared/MONGODB.md, "Upserts and unique indexes" and "Atomicity and conflicts" (a plain
 * write on a document an open transaction wrote waits for it, then applies against the
 * committed state).
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { useRaceClients } from '../support/race.js';
import { barrier, type Doc, sleep, track } from './helpers.js';

const t = useTestDatabase('upsert_claim');
const WORKERS = 20;
const clients = useRaceClients(WORKERS).all;

const claimUpdate = (owner: string) => ({
  $setOnInsert: { state: 'inProgress', owner, createdAt: new Date(0) },
});

describe('findAndModify upsert with only $setOnInsert, returning the document before', () => {
  // findAndModify docs (new: false, upsert): nothing matched, so the answer is null and the
  // document is inserted from the _id equality plus $setOnInsert.
  it('no document: inserts _id plus the $setOnInsert fields and answers null (upserted)', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('insert'));
    const result = await coll.findOneAndUpdate({ _id: 'k' }, claimUpdate('me'), {
      upsert: true,
      returnDocument: 'before',
      includeResultMetadata: true,
    });
    expect(result.value).toBeNull();
    expect(result.lastErrorObject).toMatchObject({ n: 1, updatedExisting: false, upserted: 'k' });
    expect(await coll.findOne({ _id: 'k' })).toStrictEqual({
      _id: 'k',
      state: 'inProgress',
      owner: 'me',
      createdAt: new Date(0),
    });
  });

  // setOnInsert docs: "If the update operation does not result in an insert, $setOnInsert does
  // nothing." The answer is the stored document; nothing is modified.
  it('a document exists: answers it as stored and leaves it unchanged (nModified 0 through update)', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('exists'));
    const stored = { _id: 'k', state: 'completed', owner: 'first', value: { n: 1 } };
    await coll.insertOne(stored);
    const result = await coll.findOneAndUpdate({ _id: 'k' }, claimUpdate('second'), {
      upsert: true,
      returnDocument: 'before',
      includeResultMetadata: true,
    });
    expect(result.value).toStrictEqual(stored);
    expect(result.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
    expect(result.lastErrorObject?.upserted).toBeUndefined();
    expect(await coll.findOne({ _id: 'k' })).toStrictEqual(stored);
    // The same update through the update command reports that it modified nothing.
    const update = await coll.updateOne({ _id: 'k' }, claimUpdate('third'), { upsert: true });
    expect(update).toMatchObject({ matchedCount: 1, modifiedCount: 0, upsertedCount: 0 });
    expect(await coll.findOne({ _id: 'k' })).toStrictEqual(stored);
  });
});

describe('concurrent upserts on one _id (SERVER-37124, SERVER-47212; findAndModify, "Upsert with Duplicate Values")', () => {
  // An equality on _id only, an update that leaves _id alone, outside a transaction: the server
  // retries the loser's duplicate key as an update, so no caller sees E11000.
  it(`${WORKERS} connections upsert the same _id at once: one inserts (null), every other answers that document; no E11000`, async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('race'));
    const go = barrier(WORKERS);
    const answers = await Promise.all(
      clients.map(async (client, i) => {
        await go();
        return client
          .db(t.db.databaseName)
          .collection<Doc>(coll.collectionName)
          .findOneAndUpdate({ _id: 'k' }, claimUpdate(`owner-${i}`), {
            upsert: true,
            returnDocument: 'before',
          });
      }),
    );
    const inserted = answers.filter((answer) => answer === null);
    expect(inserted).toHaveLength(1);
    const stored = await coll.findOne({ _id: 'k' });
    const winner = answers.indexOf(null);
    expect(stored).toStrictEqual({
      _id: 'k',
      state: 'inProgress',
      owner: `owner-${winner}`,
      createdAt: new Date(0),
    });
    for (const answer of answers) if (answer !== null) expect(answer).toStrictEqual(stored);
    expect(await coll.countDocuments()).toBe(1);
  });

  // MONGODB.md: a plain write on a document an open transaction wrote keeps retrying until the
  // transaction ends, then applies against the committed state: here the upsert finds the
  // committed document and does not insert (no E11000, $setOnInsert not applied).
  it('a transaction inserted the _id and has not committed: a plain upsert waits, then answers the committed document', async () => {
    const coll = t.db.collection<Doc>(t.uniqueName('txn'));
    await t.db.createCollection(coll.collectionName);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      await coll.insertOne({ _id: 'k', owner: 'transaction' }, { session });
      const plain = track(
        coll.findOneAndUpdate({ _id: 'k' }, claimUpdate('plain'), {
          upsert: true,
          returnDocument: 'before',
          maxTimeMS: 10_000,
        }),
      );
      await sleep(100);
      expect(plain.settled).toBe(false);
      await session.commitTransaction();
      expect(await plain.promise).toStrictEqual({ _id: 'k', owner: 'transaction' });
      expect(await coll.findOne({ _id: 'k' })).toStrictEqual({ _id: 'k', owner: 'transaction' });
    } finally {
      await session.endSession();
    }
  });
});

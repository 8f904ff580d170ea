/**
 * Proves the test harness can observe races against the backend.
 *
 * Sources: MongoDB manual, core/write-operations-atomicity ("a write operation is atomic on the
 * level of a single document"), reference/operator/update/inc, and the read-modify-write lost
 * update described under "Concurrency Control" on that page.
 *
 * Why 50 separate MongoClients rather than one client with maxPoolSize >= 50: one client
 * multiplexes operations over a pool that opens connections lazily (at most `maxConnecting`,
 * default 2, at a time) and hands them out in queue order, so "50 concurrent operations" often
 * run over a handful of sockets, in the order they were queued. Separate clients each own a
 * socket to the server, and the server serves connections concurrently, so the operations
 * really interleave at the server. For the lost-update assertion we go further and make the
 * interleaving deterministic: a barrier holds every writer until all 50 reads have returned,
 * so every writer computes `0 + 1` and the final value is 1 on every run.
 */
import type { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { useRaceClients } from '../support/race.js';
import { barrier, type Doc } from './helpers.js';

const t = useTestDatabase('race_harness');
const WORKERS = 50;
const clients = useRaceClients(WORKERS).all;

async function counter(prefix: string) {
  const name = t.uniqueName(prefix);
  await t.db.collection<Doc>(name).insertOne({ _id: 'counter', n: 0, version: 0 });
  return name;
}

const collFor = (client: MongoClient, name: string) =>
  client.db(t.db.databaseName).collection<Doc>(name);

describe('race harness', () => {
  it('naive: 50 concurrent read-then-$set increments lose updates (final n < 50)', async () => {
    const name = await counter('naive');
    const allRead = barrier(WORKERS);
    await Promise.all(
      clients.map(async (client) => {
        const coll = collFor(client, name);
        const doc = await coll.findOne({ _id: 'counter' });
        await allRead();
        await coll.updateOne({ _id: 'counter' }, { $set: { n: (doc?.n as number) + 1 } });
      }),
    );
    const final = await t.db.collection<Doc>(name).findOne({ _id: 'counter' });
    expect(final?.n).toBeLessThan(WORKERS);
    // With every read before any write, every writer wrote 0 + 1.
    expect(final?.n).toBe(1);
  });

  it('50 concurrent $inc increments are all applied (final n === 50)', async () => {
    const name = await counter('inc');
    const ready = barrier(WORKERS);
    await Promise.all(
      clients.map(async (client) => {
        await ready();
        await collFor(client, name).updateOne({ _id: 'counter' }, { $inc: { n: 1 } });
      }),
    );
    const final = await t.db.collection<Doc>(name).findOne({ _id: 'counter' });
    expect(final?.n).toBe(WORKERS);
  });

  // A conditional update on a version read by everyone: the single-document update is atomic,
  // so exactly one of the 50 compare-and-set writers wins.
  it('50 concurrent compare-and-set updates on the same version: exactly one wins', async () => {
    const name = await counter('cas');
    const allRead = barrier(WORKERS);
    const modified = await Promise.all(
      clients.map(async (client) => {
        const coll = collFor(client, name);
        const doc = await coll.findOne({ _id: 'counter' });
        await allRead();
        const result = await coll.updateOne(
          { _id: 'counter', version: doc?.version as number },
          { $inc: { n: 1, version: 1 } },
        );
        return result.modifiedCount;
      }),
    );
    expect(modified.reduce((sum, count) => sum + count, 0)).toBe(1);
    expect(await t.db.collection<Doc>(name).findOne({ _id: 'counter' })).toEqual({
      _id: 'counter',
      n: 1,
      version: 1,
    });
  });
});

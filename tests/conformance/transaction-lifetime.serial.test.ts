/**
 * Transaction lifetime limit. This file changes a server-wide parameter
 * (`transactionLifetimeLimitSeconds`), which would abort other files' transactions, so it runs
 * in the `serial` vitest project, after every parallel file has finished (see vitest.config.ts).
 *
 * Sources: MongoDB manual, core/transactions-production-consideration ("Runtime Limit ...
 * transactionLifetimeLimitSeconds ... aborted by a periodic cleanup process"; the cleanup runs
 * every transactionLifetimeLimitSeconds/2, at most once per second — DOCS-11599); server jstest
 * jstests/core/txns/abort_expired_transaction.js.
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../support/mongo.js';
import { withServerParameter } from '../support/server-parameters.js';
import { type Doc, serverError, withSession } from './helpers.js';

const t = useTestDatabase('txn_lifetime');

async function fresh(prefix: string) {
  const name = t.uniqueName(prefix);
  await t.db.createCollection(name);
  return t.db.collection<Doc>(name);
}

describe('transaction lifetime limit', () => {
  // abort_expired_transaction.js + production considerations: with
  // transactionLifetimeLimitSeconds lowered to 1, an idle transaction is aborted by the
  // periodic reaper (period limit/2, at least 1 s). A plain insert blocked behind the expired
  // transaction's uncommitted insert then goes through, and the transaction's next statement
  // fails with NoSuchTransaction (251).
  it('an expired transaction is aborted by the server', async () => {
    await withServerParameter(t.client, 'transactionLifetimeLimitSeconds', 1, async () => {
      const coll = await fresh('lifetime');
      await withSession(t.client, async (session) => {
        session.startTransaction();
        await coll.insertOne({ _id: 'x', by: 'txn' }, { session });
        const started = Date.now();
        const reply = await t.db.command({
          insert: coll.collectionName,
          documents: [{ _id: 'x', by: 'plain' }],
          maxTimeMS: 8_000,
        });
        const waited = Date.now() - started;
        expect(reply.ok).toBe(1);
        expect(reply.n).toBe(1);
        expect(reply.writeErrors).toBeUndefined();
        // It had to wait for the expiry (1 s after the transaction started) and the reaper.
        expect(waited).toBeGreaterThanOrEqual(500);

        const error = await serverError(coll.insertOne({ _id: 'y', by: 'txn' }, { session }));
        expect(error.code).toBe(251);
        expect(error.codeName).toBe('NoSuchTransaction');
        await session.abortTransaction().catch(() => {});
      });
      expect(await coll.find({}).toArray()).toEqual([{ _id: 'x', by: 'plain' }]);
    });
  }, 20_000);
});

/**
 * Expired idempotency records are removed by the TTL index that ensureIdempotencyIndexes
 * creates. The TTL monitor runs every `ttlMonitorSleepSecs` (60 s by default); this file lowers
 * that server-wide parameter to 1 s, so it runs in the `serial` vitest project, alone, and
 * restores the parameter afterwards.
 *
 * Sources: MongoDB manual, core/index-ttl ("the background task that removes expired documents
 * runs every 60 seconds"; expireAfterSeconds 0 expires at the date in the field) and
 * reference/parameters (ttlMonitorSleepSecs).
 */
import { describe, expect, it } from 'vitest';
import {
  ensureIdempotencyIndexes,
  type IdempotencyRecord,
  withIdempotencyKey,
} from '../src/idempotency.js';
import { sleep } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';
import { withServerParameter } from './support/server-parameters.js';

const t = useTestDatabase('idempotency_ttl');

describe('idempotency records expire', () => {
  it('with ttlMonitorSleepSecs 1, a record past expiresAt disappears within a few seconds, and the key can run again', async () => {
    await withServerParameter(t.client, 'ttlMonitorSleepSecs', 1, async () => {
      const keys = t.db.collection<IdempotencyRecord>(t.uniqueName('keys'));
      await ensureIdempotencyIndexes(keys);

      const short = { leaseMs: 100, retentionMs: 500 };
      await withIdempotencyKey(keys, { key: 'old', ...short, fn: async () => 'first' });
      await withIdempotencyKey(keys, { key: 'kept', fn: async () => 'kept' });
      expect(
        await withIdempotencyKey(keys, { key: 'old', ...short, fn: async () => 'second' }),
      ).toEqual({ outcome: 'replayed', value: 'first' });

      const started = Date.now();
      while ((await keys.findOne({ _id: 'old' })) !== null) {
        expect(Date.now() - started).toBeLessThan(8_000);
        await sleep(100);
      }
      // Only the expired record went; the default retention (24 h) keeps the other.
      expect(await keys.findOne({ _id: 'kept' })).toMatchObject({ state: 'completed' });
      expect(
        await withIdempotencyKey(keys, { key: 'old', ...short, fn: async () => 'second' }),
      ).toMatchObject({ outcome: 'executed', value: 'second' });
    });
  }, 20_000);
});

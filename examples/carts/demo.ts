/**
 * The carts scenario of `npm run demo`: seed 002's "two tabs log in at the same moment", 50
 * times over. 50 concurrent merges of one guest cart (4 T-shirts, 2 hoodies, 1 cap) into a user
 * cart holding 8 T-shirts, against the naive app and the real one.
 */
import { race } from 'mongo-atomics/testing';
import type { DemoScenario } from '../demo/scenario.js';
import {
  checkMergeStorm,
  describeMergeState,
  MERGE_REQUESTS,
  mergeOne,
  setUpMergeStorm,
} from './storm.js';

export const scenario: DemoScenario = {
  title: `Carts: ${MERGE_REQUESTS} logins merge one guest cart`,
  seed: '002',
  requests: MERGE_REQUESTS,
  invariant: 'merged once: T-shirt 8+4 capped at 10, 3 lines, guest cart empty',
  async run(db, kind, onDone) {
    const storm = await setUpMergeStorm(db, kind);
    try {
      const report = await race(MERGE_REQUESTS, async () => {
        try {
          return await mergeOne(storm);
        } finally {
          onDone();
        }
      });
      if (report.errors.length > 0) throw report.errors[0];
      const violations = await checkMergeStorm(storm, report.values);
      return {
        succeeded: report.count('merged'),
        finalState: await describeMergeState(storm),
        held: violations.length === 0,
      };
    } finally {
      await storm.app.close();
    }
  },
};

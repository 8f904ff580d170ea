/**
 * The demo's inventory scenario (seed 003): 100 concurrent multi-line orders, each for one unit
 * of A and one of B, against 30 units of A and 20 of B, sent over HTTP to the naive app and to
 * the real one. The storm's pieces (setup, one request, the check) are storm.ts, shared with
 * tests/examples/inventory.test.ts.
 */
import { barrier, race } from 'mongo-atomics/testing';
import type { DemoScenario } from '../demo/scenario.js';
import { createApp } from './app.js';
import { createNaiveApp } from './naive.js';
import { prepare } from './setup.js';
import { checkOrderRace, ORDER_RACE, openOrderRace, orderBoth } from './storm.js';

/** The demo sends no payment callbacks; the apps still need a secret to start. */
const DEMO_SECRET = 'demo-secret-not-for-production';

export const scenario: DemoScenario = {
  title: `Inventory: ${ORDER_RACE.requests} orders of {A:1, B:1}, stock A=${ORDER_RACE.stockA} B=${ORDER_RACE.stockB}`,
  seed: '003',
  requests: ORDER_RACE.requests,
  invariant: 'stock never below 0; units taken = orders created (201); no partial order',
  async run(db, kind, onDone) {
    await prepare(db);
    const app =
      kind === 'naive'
        ? // Every request reads before any writes: the race shows on every run.
          createNaiveApp(db, {
            paymentSecret: DEMO_SECRET,
            afterRead: barrier(ORDER_RACE.requests),
          })
        : createApp(db, { paymentSecret: DEMO_SECRET });
    const state = await openOrderRace(db, app);
    try {
      const report = await race(ORDER_RACE.requests, async () => {
        try {
          return await orderBoth(state);
        } finally {
          onDone();
        }
      });
      const outcome = await checkOrderRace(db, state, report.values);
      return {
        succeeded: outcome.created,
        finalState: outcome.finalState,
        held: outcome.violations.length === 0 && report.errors.length === 0,
      };
    } finally {
      await state.close();
    }
  },
};

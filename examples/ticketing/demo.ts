/**
 * The ticketing scenario of `npm run demo` (seed 004's own stress test, over HTTP): 50 users
 * register at the same moment for an event with one seat, once against the naive app and once
 * against the real one.
 */
import { barrier, race } from 'mongo-atomics/testing';
import type { DemoScenario } from '../demo/scenario.js';
import { listen } from '../shared/listen.js';
import { createApp } from './app.js';
import { createNaiveApp } from './naive.js';
import {
  lastSeatStorm,
  sendStormRequest,
  setUpStormEvent,
  stormFinalState,
  stormViolations,
} from './storm.js';

const storm = lastSeatStorm;

export const scenario: DemoScenario = {
  title: storm.title,
  seed: '004',
  requests: storm.requests,
  invariant: 'at most 1 registration; sold = registrations',
  async run(db, kind, onDone) {
    const eventId = await setUpStormEvent(db, storm);
    // The naive app waits, after its read, until every request has read: the race shows on
    // every run instead of now and then (see naive.ts).
    const app =
      kind === 'naive' ? createNaiveApp(db, { afterRead: barrier(storm.requests) }) : createApp(db);
    const server = await listen(app);
    try {
      const report = await race(storm.requests, async (index) => {
        try {
          return await sendStormRequest(server.url, storm, eventId, index);
        } finally {
          onDone();
        }
      });
      const violations = await stormViolations(db, storm, eventId, report);
      return {
        succeeded: report.count('registered'),
        finalState: await stormFinalState(db, eventId),
        held: violations.length === 0,
      };
    } finally {
      await server.close();
    }
  },
};
